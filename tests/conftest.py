"""Shared fixtures. Real-data tests read ../shared/data (beside the checkout) and skip with a reason when
it is absent; the files are never copied into the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI (CI=true) runs the property tests on a fixed, derandomized set of examples so a red run is
# reproducible and never a lottery; local runs keep exploring new examples every time.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
    settings.load_profile("ci")

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
    from research_lib.sources import read_chain

    return read_chain(shared_file(QUOTEDATA / "spx_2024-01-07.csv"))


@pytest.fixture(scope="session")
def spx_eod_last():
    from research_lib.sources import read_chain

    return read_chain(shared_file(EOD_ARCHIVE))
