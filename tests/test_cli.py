"""The command line, run in-process through main() and once as a real subprocess."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import types

import pytest
from conftest import EOD_ARCHIVE, QUOTEDATA, ROOT, shared_file

from research_lib.cli import EXIT_BAD_INPUT, EXIT_NO_RESULT, EXIT_OK, EXIT_USAGE, main
from research_lib.core import gex
from research_lib.data.market import snapshot_config
from research_lib.data.sources import read_chain

REQUIRED = {"date", "quote_time", "spot", "net_gex", "call_gex", "put_gex", "zero_gamma", "zero_gamma_crossings",
            "call_wall", "put_wall", "max_pain", "convention"}


REAL_CSV = QUOTEDATA / "spx_2024-01-07.csv"


@pytest.fixture(params=["synthetic", *(["real"] if REAL_CSV.exists() else [])])
def spx_csv(request):
    """A Cboe quote-table CSV of SPX: the synthetic one always, the real Sunday download when present.
    ``date``: its trading date; ``header``: the download's own date line, when it differs."""
    if request.param == "real":
        return types.SimpleNamespace(path=REAL_CSV, date="2024-01-05", header="quoted 2024-01-07")
    return types.SimpleNamespace(path=request.getfixturevalue("synthetic").files["cboe_csv"], date="2024-03-06",
                                 header="")


@pytest.fixture(params=["synthetic", *(["real"] if EOD_ARCHIVE.exists() else [])])
def eod_archive(request):
    """A multi-day EOD archive: the synthetic one always, the real 2026 one when present. ``n_files``,
    ``n_ok``: file days and usable days; ``skipped``: a skipped day and a word of its reason."""
    if request.param == "real":
        return types.SimpleNamespace(path=EOD_ARCHIVE, n_files=51, n_ok=47, skipped=("2026-07-03", "Juneteenth"),
                                     holiday="2026-06-19", last="2026-08-21")
    return types.SimpleNamespace(path=request.getfixturevalue("synthetic").files["eod_archive"], n_files=5,
                                 n_ok=4, skipped=("2024-03-02", "DROP_WEEKEND"), holiday="2024-03-02",
                                 last="2024-03-06")


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(map(str, argv)), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_gex_table_output(spx_csv):
    code, out, err = run("gex", spx_csv.path)
    assert code == EXIT_OK and err == ""
    # the Sunday download of Friday's close is a 2024-01-05 snapshot quoted 2024-01-07 (issue 9)
    assert f"SPX {spx_csv.date}" in out and spx_csv.header in out and "zero gamma" in out and "call wall" in out and "max pain" in out


@pytest.mark.parametrize("convention", ["model", "perfiliev"])
def test_gex_json_matches_library(convention, spx_csv):
    path = spx_csv.path
    code, out, _ = run("gex", path, "--json", "--convention", convention)
    assert code == EXIT_OK
    lines = out.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert REQUIRED <= set(record)
    snap = read_chain(path)
    expected = gex.analyze(snap, snapshot_config(snap, convention)).levels  # the one default (issue 9)
    assert record["net_gex"] == pytest.approx(expected.net_gex)
    assert record["zero_gamma"] == pytest.approx(expected.zero_gamma)
    assert record["call_wall"] == expected.call_wall and record["put_wall"] == expected.put_wall
    assert record["convention"] == convention
    assert expected.max_pain and {d.isoformat(): v for d, v in expected.max_pain.items()} == record["max_pain"]
    assert abs(record["net_gex"]) > 1e9  # dollars, not billions


def test_gex_options_reach_the_config(spx_csv):
    path = spx_csv.path
    code, out, _ = run("gex", path, "--json", "--convention", "perfiliev", "--days-per-year", "252",
                       "--no-zero-dte-floor", "--grid", "120")
    cfg = json.loads(out)["config"]
    assert code == 0 and (cfg["days_per_year"], cfg["zero_dte_floor"], cfg["grid_points"]) == (252, False, 120)
    code, out, _ = run("gex", path, "--json", "--rate", "0.05", "--div-yield", "0.01", "--max-dte", "30",
                       "--exclude-0dte")
    cfg = json.loads(out)["config"]
    assert (cfg["rate"], cfg["div_yield"], cfg["expiries"]["max_dte"], cfg["expiries"]["exclude_0dte"]) == (
        0.05, 0.01, 30, True)


def test_date_all_prints_one_line_per_clean_day(eod_archive):
    code, out, _ = run("gex", eod_archive.path, "--date", "all", "--json")
    assert code == EXIT_OK
    records = [json.loads(line) for line in out.strip().splitlines()]
    assert len(records) == eod_archive.n_ok  # real: the file labelled 08-07 serves 08-06 (issue 9)
    dates = [r["date"] for r in records]
    assert dates == sorted(dates) and eod_archive.holiday not in dates and eod_archive.last in dates
    assert all(r["zero_gamma"] is None or r["zero_gamma"] > 0 for r in records)


def test_scan_command(eod_archive):
    code, out, _ = run("scan", eod_archive.path)
    assert code == EXIT_OK and f"{eod_archive.n_files} snapshot(s), {eod_archive.n_ok} usable" in out
    assert eod_archive.skipped[1] in out


@pytest.mark.parametrize("content, code", [("hello,world\n", EXIT_BAD_INPUT), ("", EXIT_BAD_INPUT)])
def test_bad_files_exit_nonzero_with_one_line(tmp_path, content, code):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    rc, out, err = run("gex", p)
    assert rc == code and out == ""
    assert len(err.strip().splitlines()) == 1 and "bad.csv" in err


def test_missing_file_and_bad_date(tmp_path, eod_archive):
    rc, _, err = run("gex", tmp_path / "nope.csv")
    assert rc == EXIT_BAD_INPUT and "no such file" in err
    rc, _, err = run("gex", eod_archive.path, "--date", eod_archive.skipped[0])
    assert rc == EXIT_BAD_INPUT and "skipped" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run("gex", eod_archive.path, "--date", "July 3rd")
    assert rc == EXIT_USAGE and "YYYY-MM-DD" in err


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if REAL_CSV.exists() else [])])
def test_expired_only_chain_exits_4(tmp_path, name, request):
    if name == "real":  # the Sunday download still lists Friday's expired expiry
        src, first = REAL_CSV, "Fri Jan 05 2024"
    else:  # the synthetic chain's first expiry (Thu 03-07), downloaded the day after
        from fixtures import write_cboe_csv

        chain = request.getfixturevalue("synthetic").chain
        src = write_cboe_csv(tmp_path / "friday.csv", chain.replace(
            quote_time=chain.quote_time + __import__("pandas").Timedelta(days=2)))
        first = "Thu Mar 07 2024"
    lines = src.read_text().splitlines()
    kept = lines[:4] + [ln for ln in lines[4:] if ln.startswith(first)]
    assert len(kept) > 10
    p = tmp_path / "expired.csv"
    p.write_text("\n".join(kept) + "\n")
    rc, out, err = run("gex", p)
    assert rc == EXIT_NO_RESULT and "expired" in err and len(err.strip().splitlines()) == 1


def test_bad_option_values(spx_csv):
    path = spx_csv.path
    assert run("gex", path, "--grid", "1")[0] == EXIT_USAGE
    assert run("gex", path, "--rate", "nan")[0] == EXIT_USAGE
    assert run("gex", path, "--convention", "squeeze")[0] == EXIT_USAGE
    assert run("nonsense")[0] == EXIT_USAGE


def test_console_script_and_module_entry_points(synthetic):
    path = synthetic.files["cboe_csv"]
    script = ROOT / ".venv" / "bin" / "research-lib"
    commands = [[sys.executable, "-m", "research_lib", "gex", str(path), "--json"]]
    if script.exists():
        commands.append([str(script), "gex", str(path), "--json"])
    for cmd in commands:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        assert REQUIRED <= set(json.loads(proc.stdout))
    proc = subprocess.run([sys.executable, "-m", "research_lib", "gex", "/nonexistent.csv"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == EXIT_BAD_INPUT and "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if (QUOTEDATA / "spx_2023-09-14.csv").exists() else [])])
def test_auto_rates_come_from_market_history(name, request, monkeypatch):
    from conftest import SHARED_DATA

    if name == "real":
        shared_file(SHARED_DATA / "market" / "irx_13week_tbill_2000-01-03_2026-08-20.csv")
        path, rates, yields = shared_file(QUOTEDATA / "spx_2023-09-14.csv"), (0.052, 0.056), (0.013, 0.02)
    else:  # the synthetic history: IRX 4.95% (discount) on the day, total return 1.3%/yr over the price
        syn = request.getfixturevalue("synthetic")
        monkeypatch.setenv("RESEARCH_LIB_MARKET_DATA", str(syn.market_dir))
        path, rates, yields = syn.files["cboe_csv"], (0.049, 0.052), (0.011, 0.015)
    code, out, err = run("gex", path, "--json", "--rate", "auto", "--div-yield", "auto")
    assert code == EXIT_OK, err
    cfg = json.loads(out)["config"]
    assert rates[0] < cfg["rate"] < rates[1] and yields[0] < cfg["div_yield"] < yields[1]
    assert run("gex", path, "--rate", "soon")[0] == EXIT_USAGE


# --------------------------------------------------------------------------------------------------------
# synthetic chain files (no ../shared needed), strict JSON


def _reject_constant(name):
    raise ValueError(f"not strict JSON: {name}")


def strict_loads(text: str):
    """json.loads that rejects NaN, Infinity and -Infinity, as a strict parser does."""
    return json.loads(text, parse_constant=_reject_constant)


def cboe_json_payload(snap, *, max_expiries: int = 6) -> dict:
    """A Cboe delayed-quotes payload holding ``snap``'s contracts (the next ``max_expiries`` expiries)."""
    c = snap.contracts
    keep = sorted(c["expiration"].unique())[:max_expiries]
    c = c[c["expiration"].isin(keep)]
    options = []
    for row in c.itertuples(index=False):
        strike = int(round(row.strike * 1000))
        options.append({
            "option": f"{row.root}{row.expiration:%y%m%d}{row.right}{strike:08d}",
            "bid": row.bid, "ask": row.ask, "iv": row.iv, "open_interest": row.open_interest,
            "volume": row.volume, "delta": row.delta, "gamma": 0.0 if row.gamma != row.gamma else row.gamma,
            "last_trade_price": 0, "last_trade_time": None})
    stamp = snap.quote_time.tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S")
    return {"timestamp": stamp, "symbol": f"_{snap.underlying}",
            "data": {"symbol": f"_{snap.underlying}", "current_price": snap.spot, "options": options}}


@pytest.fixture(scope="module")
def modelled_snap():
    from research_lib.data.modelled import modelled_chain, offline_spot_history

    day = offline_spot_history().index[-2].date().isoformat()
    return modelled_chain("SPX", date=day)


@pytest.fixture
def chain_file(tmp_path, modelled_snap):
    """The modelled SPX chain written as a Cboe JSON file."""
    path = tmp_path / "spx_modelled.json"
    path.write_text(json.dumps(cboe_json_payload(modelled_snap)))
    return path


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """An empty store, decision log and reports folder in tmp; no network."""
    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("RESEARCH_LIB_REPORTS", str(tmp_path / "reports"))
    for var in ("TRADIER_TOKEN", "POLYGON_API_KEY", "RESEARCH_LIB_PROVIDERS", "RESEARCH_LIB_CBOE_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_synthetic_chain_file_reads_back(chain_file, modelled_snap):
    snap = read_chain(chain_file)
    assert snap.underlying == "SPX" and snap.spot == pytest.approx(modelled_snap.spot)
    assert snap.snapshot_date == modelled_snap.snapshot_date


# --------------------------------------------------------------------------------------------------------
# exit codes: one test per row of the table (cli.EXIT_CODES)


def test_the_exit_code_table_is_the_documented_one():
    from research_lib import cli

    assert sorted(cli.EXIT_CODES) == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert cli.EXIT_CODES[cli.EXIT_USAGE].startswith("bad usage")
    for code, meaning in cli.EXIT_CODES.items():  # the module docstring's table says the same
        assert f"{code}  {meaning.split(' (')[0]}" in cli.__doc__.replace("\n   ", " "), code


def test_exit_0_success(sandbox, chain_file):
    code, out, err = run("gex", chain_file)
    assert code == EXIT_OK and "SPX" in out and "zero gamma" in out


def test_exit_1_an_unexpected_error_is_not_passed_off_as_a_bad_option(sandbox, chain_file, monkeypatch):
    """A plain ValueError from deep inside (not the command line's own argument check) used to exit 2
    ("bad option"); it is a bug or an unnamed bad input, so it raises (exit 1, with its traceback)."""
    import research_lib.sources as sources

    def broken(*a, **k):
        raise ValueError("Too many columns specified")  # what pandas' parser raises

    monkeypatch.setattr(sources, "read_chain", broken)
    with pytest.raises(ValueError, match="Too many columns"):
        main(["gex", str(chain_file)], out=io.StringIO(), err=io.StringIO())
    proc = subprocess.run([sys.executable, "-c", "import research_lib.sources as s, sys\n"
                           "def broken(*a, **k):\n    raise RuntimeError('boom')\n"
                           "s.read_chain = broken\nfrom research_lib.cli import main\n"
                           f"sys.exit(main(['gex', {str(chain_file)!r}]))"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 1 and "RuntimeError: boom" in proc.stderr


@pytest.mark.parametrize("argv, message", [
    (["gex", "{file}", "--bogus"], "unrecognized arguments"),
    (["gex", "{file}", "--date", "2026-02-30"], "2026-02-30 does not exist (February 2026 has 28 days)"),
    (["gex", "{file}", "--date", "2026-2-3"], "'2026-2-3' is not YYYY-MM-DD"),
    (["decide", "--source", "{file}", "--date", "2026-02-30", "--no-record"], "2026-02-30 does not exist"),
    (["report", "daily", "--date", "2023-04-31"], "2023-04-31 does not exist (April 2023 has 30 days)"),
    (["decide", "--source", "{file}", "--date", "all", "--no-record"], "a decision is for one trading day"),
    (["report", "daily", "--date", "all"], "a report is for one trading day"),
    (["gex", "--source", "modelled", "--date", "all"], "--date all"),
    (["gex", "{file}", "--symbol", "QQQ"], "--symbol QQQ does not match"),
    (["gex", "{file}", "--symbol", ""], "an empty value is not a ticker"),
    (["decide", "--source", "{file}", "--symbol", "QQQ", "--no-record"], "--symbol QQQ does not match"),
    (["decide", "--source", "{file}", "--account", "-5", "--no-record"], "positive"),
    (["fetch", "S P X"], "is not a ticker"),
    (["gex", "{file}", "--grid", "1"], "bad option"),
    (["report", "daily", "--account", "0"], "account"),
    (["report", "prune"], "needs a filter"),
])
def test_exit_2_bad_usage(sandbox, chain_file, argv, message):
    code, out, err = run(*[a.replace("{file}", str(chain_file)) for a in argv])
    assert code == EXIT_USAGE, err
    assert message in err and out == ""
    assert not (sandbox / "reports").exists() and not (sandbox / "data" / "decisions.sqlite").exists()


def test_exit_2_a_real_date_is_never_called_malformed(sandbox, chain_file):
    """Before: `decide --date 2026-02-30` said "is not YYYY-MM-DD" (it is; the day does not exist)."""
    _, _, err = run("decide", "--source", chain_file, "--date", "2026-02-30", "--no-record")
    assert "is not YYYY-MM-DD" not in err and "does not exist" in err
    from research_lib.cli import parse_date_option

    assert parse_date_option("2024-02-29") == "2024-02-29" and parse_date_option(" Latest ") is None
    assert parse_date_option("all", allow_all=True) == "all"


def test_exit_2_symbol_must_match_the_file(sandbox, chain_file):
    """Before: `gex SPXFILE --symbol QQQ` printed SPX with exit 0, and `--symbol ""` became SPX."""
    code, out, err = run("gex", chain_file, "--symbol", "QQQ")
    assert (code, out) == (EXIT_USAGE, "") and "holds SPX options" in err
    assert run("gex", chain_file, "--symbol", "spx")[0] == EXIT_OK  # the same underlying, any case
    assert run("gex", chain_file, "--symbol", "_SPX")[0] == EXIT_OK  # Cboe's spelling
    assert run("gex", "--source", "modelled", "--symbol", "")[0] == EXIT_USAGE


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("hello,world\n1,2\n"), "not a chain format"),
    (lambda p: None, "no such file"),
])
def test_exit_3_bad_input_file(sandbox, tmp_path, make, message):
    p = tmp_path / "bad.csv"
    make(p)
    code, out, err = run("gex", p)
    assert code == EXIT_BAD_INPUT and out == "" and message in err.lower()
    assert len(err.strip().splitlines()) == 1 and "bad.csv" in err


def test_exit_4_nothing_to_compute_and_no_source_answered(sandbox, chain_file):
    code, out, err = run("fetch", "SPX")
    assert code == EXIT_NO_RESULT and "no source answered" in err
    code, out, err = run("gex", "--source", "store", "--symbol", "SPY")
    assert code == EXIT_NO_RESULT and "no source answered: NoChainAvailableError" in err
    code, out, err = run("decide", "--source", "store", "--symbol", "SPY", "--no-record")
    assert code == EXIT_NO_RESULT and "no SPY snapshot" in err


@pytest.mark.parametrize("cls_path, args, code", [
    ("research_lib.market:MarketDataError", ("no rate on 2026-06-12",), EXIT_NO_RESULT),
    ("research_lib.market:MarketDataNotFoundError", ("no irx file",), EXIT_NO_RESULT),
    ("research_lib.regime:RegimeInputError", ("spot", "spot is NaN"), EXIT_NO_RESULT),
    ("research_lib.alerts:AlertInputError", ("missing column",), EXIT_NO_RESULT),
    ("research_lib.modelled:ModelledChainError", ("no offline spot",), EXIT_NO_RESULT),
    ("research_lib.sources.auto:NoChainAvailableError", ("nothing",), EXIT_NO_RESULT),
    ("research_lib.store:SnapshotNotStoredError", ("not stored",), EXIT_NO_RESULT),
    ("research_lib.gex:NoExposureError", ("every contract expired",), EXIT_NO_RESULT),
    ("research_lib.decisions:DuplicateDecisionError", ("decision abc is already in the log",), 7),
    ("research_lib.decisions:SchemaVersionError", ("schema 9 is newer",), 7),
    ("research_lib.decisions:DecisionLogError", ("not a decision log",), 7),
    ("research_lib.decisions:DecisionError", ("leg strike NaN",), 7),
    ("research_lib.store:StoreError", ("corrupt parquet",), EXIT_BAD_INPUT),
    ("research_lib.chain:ChainError", ("bad rows",), EXIT_BAD_INPUT),
    ("research_lib.store:NothingToImportError", ("empty",), EXIT_BAD_INPUT),
    ("research_lib.calendar:CalendarRangeError", ("2099",), EXIT_BAD_INPUT),
    ("research_lib.sizing:SizingError", ("account must be positive",), EXIT_USAGE),
    ("research_lib.regime:RegimeParamsError", ("min_confidence", "above 100"), EXIT_USAGE),
    ("research_lib.gex:GexConfigError", ("grid too small",), EXIT_USAGE),
    ("research_lib.daily:ReportParameterError", ("bad",), EXIT_USAGE),
    ("research_lib.reports:ReportLockedError", ("held",), 6),
])
def test_each_library_error_reaching_decide_exits_with_its_code(sandbox, monkeypatch, cls_path, args, code):
    """The real ``decide`` command with the library raising each class. Before the fix every one of these
    that is also a ValueError (market data, regime input, duplicate decision ...) exited 2."""
    import importlib

    import research_lib.decide as decide_mod

    module, name = cls_path.split(":")
    cls = getattr(importlib.import_module(module), name)

    def raising(*a, **k):
        raise cls(*args)

    monkeypatch.setattr(decide_mod, "decide", raising)
    rc, out, err = run("decide", "--source", "modelled", "--no-record")
    assert rc == code, err
    assert out == "" and len(err.strip().splitlines()) == 1 and name in err


def test_every_library_error_class_has_a_documented_code():
    """Every ResearchLibError subclass (the readers' included) lands on a code of the table, and the
    ones that are also ValueErrors are not all sent to 2."""
    import importlib
    import pkgutil

    import research_lib
    from research_lib.cli import EXIT_CODES, exit_code_for
    from research_lib.core.chain import ResearchLibError

    for m in pkgutil.walk_packages(research_lib.__path__, "research_lib."):
        if m.name.split(".")[-1] not in ("__main__",):
            importlib.import_module(m.name)

    def subclasses(c):
        for s in c.__subclasses__():
            yield s
            yield from subclasses(s)

    seen = {}
    for cls in set(subclasses(ResearchLibError)):
        if cls.__module__.startswith("research_lib"):
            exc = cls.__new__(cls)
            seen[cls.__name__] = exit_code_for(exc)
    assert seen and all(code in EXIT_CODES and code not in (None, 0, 1) for code in seen.values()), seen
    assert seen["MarketDataError"] == seen["RegimeInputError"] == EXIT_NO_RESULT
    assert seen["DuplicateDecisionError"] == 7 and seen["UnknownFormatError"] == EXIT_BAD_INPUT


def test_exit_7_decision_log_refuses(sandbox, modelled_snap, monkeypatch):
    """A decision log written by a newer research_lib: the real log raises, decide exits 7."""
    (sandbox / "data").mkdir()
    (sandbox / "data" / "decisions.sqlite").write_text("this is not SQLite at all\n" * 10)
    rc, out, err = run("decide", "--source", "modelled")
    assert rc == 7, err
    assert "decision log" in err


# --------------------------------------------------------------------------------------------------------
# strict JSON from every --json


def test_decide_json_is_strict_on_the_bootstrap_path(sandbox, chain_file):
    """Before: `"kelly": NaN` on a fresh log (the bootstrap path)."""
    code, out, err = run("decide", "--source", chain_file, "--json", "--no-record")
    assert code == EXIT_OK, err
    record = strict_loads(out)
    assert "NaN" not in out and "Infinity" not in out
    assert record["levels"]["spot"] > 0 and record["decision"]["type"] in ("ENTRY", "SKIP")


def test_decide_json_on_a_real_bootstrap_file_is_strict(sandbox):
    code, out, err = run("decide", "--source", shared_file(QUOTEDATA / "spx_2022-02-05.csv"), "--json",
                         "--no-record")
    assert code == EXIT_OK, err
    assert strict_loads(out)["sizing"]["kelly"] is None


def test_every_json_output_is_strict(sandbox, chain_file):
    outputs = {}
    for argv in (["gex", chain_file, "--json"], ["gex", "--source", "modelled", "--json"],
                 ["import", chain_file, "--json", "--no-progress"], ["store", "--json"],
                 ["decide", "--source", "store", "--json", "--no-record"],
                 ["report", "prune", "--failed", "--json", "--dry-run"]):
        code, out, err = run(*argv)
        assert code == EXIT_OK, (argv, err)
        outputs[argv[0]] = [strict_loads(line) for line in out.strip().splitlines()]
    assert outputs["import"][0]["snapshots_imported"] == 1
    assert outputs["store"][0]["underlying"] == "SPX"


def test_to_json_turns_nan_and_timestamps_into_strict_json():
    import datetime as dt

    import numpy as np
    import pandas as pd

    from research_lib.formatting import to_json

    text = to_json({"k": float("nan"), "i": np.float64("-inf"), "n": np.int64(3), "t": pd.NaT,
                    dt.date(2024, 1, 5): pd.Timestamp("2024-01-05 16:00", tz="America/New_York"),
                    "a": np.array([1.5, np.nan])})
    assert strict_loads(text) == {"k": None, "i": None, "n": 3, "t": None,
                                  "2024-01-05": "2024-01-05T16:00:00-05:00", "a": [1.5, None]}


# --------------------------------------------------------------------------------------------------------
# option names, fetch, import


def test_no_record_everywhere_and_no_log_still_works(sandbox, chain_file):
    log = sandbox / "data" / "decisions.sqlite"
    for flag in ("--no-record", "--no-log"):
        code, _, err = run("decide", "--source", chain_file, flag)
        assert code == EXIT_OK, err
        assert not log.exists() or _n_decisions(log) == 0, flag
    code, _, err = run("decide", "--source", chain_file)
    assert code == EXIT_OK and _n_decisions(log) == 1
    from research_lib.cli import _build_parser

    assert "--no-log" not in _build_parser().format_help()
    help_text = io.StringIO()
    assert main(["decide", "--help"], out=help_text) == EXIT_OK
    assert "--no-record" in help_text.getvalue() and "--no-log" not in help_text.getvalue()


def _n_decisions(path):
    from research_lib.records.decisions import DecisionLog

    return len(DecisionLog(path).read())


def test_fetch_offline_says_nothing_was_fetched_and_no_fallback(sandbox, chain_file):
    """Before: exit 4 "no SPX chain from source 'auto': ...; store: no SPX snapshot in the store" (a
    store fallback fetch does not have), or with a stored SPX: "STALE" store chain described."""
    assert run("import", chain_file, "--no-progress")[0] == EXIT_OK  # the store now holds SPX
    code, out, err = run("fetch", "SPX")
    assert code == EXIT_NO_RESULT and out == ""
    assert "no live provider answered for SPX; nothing was fetched or stored" in err
    assert "RESEARCH_LIB_OFFLINE is set" in err and "no network connection was tried" in err
    assert "store" not in err.replace("fetched or stored", "") and "STALE" not in err


def test_fetch_says_why_each_live_provider_did_not_answer(sandbox, monkeypatch):
    from http_server import closed_port_url

    monkeypatch.delenv("RESEARCH_LIB_OFFLINE")
    monkeypatch.setenv("RESEARCH_LIB_CBOE_URL", closed_port_url())
    code, out, err = run("fetch", "SPX")
    assert code == EXIT_NO_RESULT and out == ""
    assert "nothing was fetched or stored" in err and "cboe: Provider" in err
    assert "tradier: not tried, TRADIER_TOKEN is not set" in err and "polygon: not tried" in err


def test_fetch_json_from_a_live_provider_is_strict(sandbox, monkeypatch, modelled_snap):
    from http_server import LoopbackServer, Reply

    monkeypatch.delenv("RESEARCH_LIB_OFFLINE")
    with LoopbackServer() as srv:
        srv.route("/api/global/delayed_quotes/options/_SPX.json", Reply(body=cboe_json_payload(modelled_snap)))
        monkeypatch.setenv("RESEARCH_LIB_CBOE_URL", srv.url)
        code, out, err = run("fetch", "SPX", "--provider", "cboe", "--json")
    assert code == EXIT_OK, err
    record = strict_loads(out)
    assert record["provider"] == "cboe" and record["contracts"] > 1000


def test_import_goes_on_past_bad_files_and_exits_3(sandbox, chain_file, tmp_path):
    """Before: `import garbage.csv good.csv` stopped at garbage.csv (exit 3, nothing imported)."""
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("hello,world\n1,2\n")
    code, out, err = run("import", garbage, chain_file, tmp_path / "missing.csv", "--no-progress")
    assert code == EXIT_BAD_INPUT
    assert "imported 1 snapshot" in out and "2 files failed" in out
    assert "garbage.csv: UnknownFormatError" in err and "missing.csv" in err
    assert "2 of 3 paths could not be imported; every other one was imported" in err
    from research_lib.data.store import ChainStore

    assert list(ChainStore().list()["underlying"]) == ["SPX"]


def test_import_of_nothing_is_an_error_naming_what_was_empty(sandbox, tmp_path, spx_csv):
    """Before: an empty folder or a zero-row archive exited 0 with "imported 0"."""
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run("import", empty, "--no-progress")
    assert code == EXIT_BAD_INPUT and "NothingToImportError" in err and "empty" in err
    assert "folder holds no file" in err
    header = tmp_path / "header_only.csv"
    header.write_text("\n".join(spx_csv.path.read_text().splitlines()[:4]) + "\n")
    code, out, err = run("import", header, "--no-progress")
    assert code == EXIT_BAD_INPUT and "header_only.csv" in err


def test_a_bad_provider_order_is_a_usage_error(sandbox, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_PROVIDERS", "cboe,nasdaq")
    for argv in (["fetch", "SPX"], ["gex", "--source", "auto"], ["decide", "--no-record"]):
        code, out, err = run(*argv)
        assert code == EXIT_USAGE and "unknown providers ['nasdaq']" in err, argv
