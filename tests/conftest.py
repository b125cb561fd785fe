"""Shared fixtures. Real-data tests read ../shared/data (beside the checkout) and skip with a reason when
it is absent; the files are never copied into the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis profiles. Every `make test` / pytest run, on CI or not, uses "deterministic": a fixed,
# derandomized set of examples (seeded from each test), no example database, no timing-based failures
# (no deadline, no too_slow health check), so a red run is reproducible and a newcomer's `make test`
# passes every time. `make fuzz` (HYPOTHESIS_PROFILE=fuzz) explores instead: random examples, many more
# of them (each test's own max_examples times HYPOTHESIS_FUZZ_FACTOR, default 20, and at least
# FUZZ_EXAMPLES), the example database on, print_blob so a failure prints its @reproduce_failure.
# Every case a fuzz run finds becomes an @example(...) on its test (with the fix), so the
# deterministic run keeps checking it from then on.
FUZZ_EXAMPLES = 2000
settings.register_profile("deterministic", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("deterministic"))  # the old name, same thing
settings.register_profile("fuzz", derandomize=False, max_examples=FUZZ_EXAMPLES, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "").strip() or "deterministic"
settings.load_profile(PROFILE)


def pytest_report_header(config):
    return f"hypothesis profile: {PROFILE} ({settings.default!r})"


def pytest_collection_modifyitems(config, items):
    """Under the fuzz profile, raise each property test's own max_examples (a @settings on the test
    would otherwise win over the profile) to max(its value x HYPOTHESIS_FUZZ_FACTOR, FUZZ_EXAMPLES)."""
    if settings.default.derandomize:  # not fuzzing: leave every test exactly as written
        return
    raw = os.environ.get("HYPOTHESIS_FUZZ_FACTOR", "20")
    try:
        factor = int(raw)
    except ValueError:
        raise pytest.UsageError(f"HYPOTHESIS_FUZZ_FACTOR={raw!r}: must be a whole number") from None
    for item in items:
        test = getattr(item, "obj", None)
        if not getattr(test, "is_hypothesis_test", False):
            continue
        own = getattr(test, "_hypothesis_internal_use_settings", None)
        if own is None:
            raise pytest.UsageError("cannot raise max_examples for fuzzing: hypothesis changed how a test's "
                                    "settings are stored (_hypothesis_internal_use_settings)")
        test._hypothesis_internal_use_settings = settings(
            own, max_examples=max(own.max_examples * factor, FUZZ_EXAMPLES), derandomize=False)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RESEARCH_LIB_SHARED_DATA", ROOT.parent / "shared" / "data"))
CHAINS = SHARED_DATA / "chains"
QUOTEDATA = CHAINS / "cboe_quotedata"
EOD_ARCHIVE = CHAINS / "spx_eod_2026-06-12_2026-08-21.parquet"
INTRADAY_ARCHIVE = CHAINS / "spx_intraday_2019-04-25_2019-07-22.parquet"
IVOL_FILE = CHAINS / "spx_ivolatility_2011-01-03_2011-01-07.csv.gz"

SKIP_REASON = f"real market data not found at {SHARED_DATA} (set RESEARCH_LIB_SHARED_DATA or put shared/ beside the checkout)"


def shared_file(path: Path) -> Path:
    """``path`` if it exists, else skip the calling test with a clear reason."""
    if not path.exists():
        pytest.skip(f"{SKIP_REASON}: missing {path.name}")
    return path


def all_chain_files() -> list[Path]:
    """Every chain file in ../shared/data/chains (empty when the folder is absent)."""
    if not CHAINS.exists():
        return []
    return sorted(p for p in CHAINS.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def spx_2024():
    from research_lib.data.sources import read_chain

    return read_chain(shared_file(QUOTEDATA / "spx_2024-01-07.csv"))


@pytest.fixture(scope="session")
def spx_eod_last():
    from research_lib.data.sources import read_chain

    return read_chain(shared_file(EOD_ARCHIVE))


# ------------------------------------------------------------------------------------------------
# synthetic files (tests/fixtures.py): every format and a market history, written once per session, so
# a fresh clone without ../shared still tests every reader, the command line and the plots


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """:class:`fixtures.SyntheticData`: the modelled chain in every file format, plus a market history."""
    from fixtures import write_all

    return write_all(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="session", autouse=True)
def fresh_clone_market_history(tmp_path_factory):
    """On a fresh clone (no ``../shared/data/market``, no ``data/market``, ``$RESEARCH_LIB_MARKET_DATA``
    unset) point ``$RESEARCH_LIB_MARKET_DATA`` at the synthetic market history for the whole session, as a
    user's own download would be: the modelled chain then has a spot for recent dates, ``decide`` a VIX
    and rates. Where real market data is present nothing changes (the real files serve). Yields the
    folder, or None."""
    searched = (SHARED_DATA / "market", ROOT.parent / "shared" / "data" / "market", ROOT / "data" / "market")
    if (os.environ.get("RESEARCH_LIB_MARKET_DATA", "").strip() or any(d.is_dir() for d in searched)
            or not Path(__file__).with_name("fixtures.py").exists()):  # (a copy of this file alone: no writers)
        yield None
        return
    from fixtures import write_market_history

    folder = write_market_history(tmp_path_factory.mktemp("fresh_clone_market"))
    os.environ["RESEARCH_LIB_MARKET_DATA"] = str(folder)
    try:
        yield folder
    finally:
        os.environ.pop("RESEARCH_LIB_MARKET_DATA", None)


@pytest.fixture(scope="session")
def synthetic_chain(synthetic):
    """The synthetic SPX chain (every expiry, ~15k contracts) as read back from its Cboe CSV file."""
    from research_lib.data.sources import read_chain

    return read_chain(synthetic.files["cboe_csv"])


#: Chain fixtures for tests whose point holds on any SPX chain: the synthetic one always, the real
#: Sunday download spx_2024-01-07.csv too when ../shared is present (never a skip on a fresh clone).
SPX_CHAINS = ["synthetic_chain"] + (["spx_2024"] if (QUOTEDATA / "spx_2024-01-07.csv").exists() else [])


@pytest.fixture(scope="session", params=SPX_CHAINS)
def spx_chain(request):
    """An SPX chain: the synthetic one, and the real spx_2024-01-07.csv when present (see SPX_CHAINS)."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def gex_validation_real(request, tmp_path_factory):
    """:func:`research_lib.pipeline.gex_validation.validate` over the two real archives (about a minute), computed
    once per test run for the tests and the notebook test that compare with it (under xdist the first worker
    computes it and the others read its pickle, keyed by the run's id); skips without ../shared."""
    for rel in ("chains/spx_eod_2026-06-12_2026-08-21.parquet", "chains/spx_intraday_2019-04-25_2019-07-22.parquet",
                "market/squeezemetrics_dix_gex_2011-05-02_2026-08-21.csv"):
        shared_file(SHARED_DATA / rel)
    import pickle

    from research_lib.fs import file_lock
    from research_lib.pipeline import gex_validation

    run = getattr(request.config, "workerinput", {}).get("testrunuid")
    if run is None:  # not under xdist: nothing to share
        return gex_validation.validate(SHARED_DATA)
    shared = tmp_path_factory.getbasetemp().parent  # the same folder for every worker of this run
    path = shared / f"gex_validation_{run}.pickle"
    with file_lock(shared / f"gex_validation_{run}.lock"):
        if path.exists():
            return pickle.loads(path.read_bytes())
        result = gex_validation.validate(SHARED_DATA)
        path.write_bytes(pickle.dumps(result))
        return result
