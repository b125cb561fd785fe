"""Benchmark and report of the data effects on net GEX (research_lib.pipeline.gex_effects) over the two real
chain archives: the 2026 SPX EOD archive (quotes after the close) and the 2019 intraday archive.

Prints the wall time of reading each archive and of measuring it (seconds; the brief's goal: both
measurements together under 60 s), then the full table as markdown (one value column per archive).

Run: ``.venv/bin/python benchmarks/gex_effects.py [--chains DIR] [--daily-csv DIR]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CHAINS = ROOT.parent / "shared" / "data" / "chains"
ARCHIVES = ("spx_eod_2026-06-12_2026-08-21.parquet", "spx_intraday_2019-04-25_2019-07-22.parquet")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chains", type=Path, default=CHAINS, help="folder holding the two archives")
    parser.add_argument("--daily-csv", type=Path, default=None, help="also write each archive's daily series here")
    args = parser.parse_args(argv)
    from research_lib.data.sources import read_chains
    from research_lib.pipeline.gex_effects import effects_markdown, measure_effects

    tables, measure_total = [], 0.0
    for name in ARCHIVES:
        path = args.chains / name
        if not path.exists():
            print(f"missing {path}: get ../shared/data (see shared/data/SOURCES.md)", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        snaps = list(read_chains(path))
        t1 = time.perf_counter()
        result = measure_effects(snaps)
        t2 = time.perf_counter()
        measure_total += t2 - t1
        print(f"{name}: {len(snaps)} snapshots, read {t1 - t0:.1f} s, measured {t2 - t1:.1f} s "
              f"({(t2 - t1) / len(snaps):.2f} s per snapshot)")
        tables.append(result.table)
        if args.daily_csv is not None:
            args.daily_csv.mkdir(parents=True, exist_ok=True)
            result.daily.to_csv(args.daily_csv / f"{path.stem}_effects_daily.csv", index=False)
    print(f"measuring both: {measure_total:.1f} s (goal < 60 s)\n")
    print(effects_markdown(pd.concat(tables, ignore_index=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
