"""Validation report of the model-priced history (MODELLED PRICES) against the real SPX chains of ../shared/data.

Prints, with the time each part takes:

1. the spread errors (:func:`research_lib.backtest.validation.spread_errors`): for every real-chain day and each
   default strategy, the legs the engine chooses on the real chain priced by the model that day against the real
   mid — median and 90th percentile of |error| in dollars per contract and in % of the credit, overall, by source
   and by strategy (:func:`~research_lib.backtest.validation.summarise_errors`);
2. the same backtest on the real chains and on the modelled history
   (:func:`~research_lib.backtest.validation.compare_backtests`) on the 2026 EOD archive and the 2019 intraday
   archive (sessions inside the day table only: it ends when the VIX file does).

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/history_validation.py [--shared DIR] [--market-dir DIR]
[--strategy bull_put] [--csv OUT.csv]`` (about a minute).
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from research_lib.backtest import validation as v
from research_lib.data import modelled_history as mh

ARCHIVES = ("chains/spx_eod_2026-06-12_2026-08-21.parquet", "chains/spx_intraday_2019-04-25_2019-07-22.parquet")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=None, help="the shared data folder (default ../shared/data)")
    ap.add_argument("--market-dir", default=None, help="market files (default: the usual search)")
    ap.add_argument("--strategy", default="bull_put", help="strategy of the backtest comparison")
    ap.add_argument("--csv", default=None, help="write the per-day error table here")
    args = ap.parse_args(argv)
    pd.set_option("display.width", 160)
    pd.set_option("display.max_columns", 20)

    files = v.real_chain_files(args.shared)
    if not files:
        print(f"no real chain under {v.shared_data_dir(args.shared)}: nothing to validate", file=sys.stderr)
        return 1
    print(mh.describe_calibration() + "\n")
    t0 = time.perf_counter()
    snaps = list(v.real_chain_snapshots(files))
    t1 = time.perf_counter()
    errors = v.spread_errors(snaps, market_dir=args.market_dir)
    t2 = time.perf_counter()
    summary = v.summarise_errors(errors)
    priced = int((errors["skip"] == "").sum())
    print(f"spread errors: {len(snaps)} real-chain days from {len(files)} files, {len(errors)} rows "
          f"({priced} priced); read {t1 - t0:.1f} s, priced {t2 - t1:.1f} s")
    print("(|error| in $ per contract and in % of the real mid credit; median_error is the signed bias, model − "
          "real)")
    print(summary.round(2).to_string(index=False))
    reasons = errors.loc[errors["skip"] != "", "skip"].str.replace(r" on \d{4}-\d\d-\d\d$", "", regex=True)
    if len(reasons):
        print("\nrows not priced, by reason:")
        print(reasons.value_counts().to_string())
    if args.csv:
        errors.to_csv(args.csv, index=False)
        print(f"\nper-day table written to {args.csv}")

    root = v.shared_data_dir(args.shared)
    params = v.DEFAULT_COMPARISON.replace(strategy=args.strategy)
    for rel in ARCHIVES:
        path = root / rel
        if not path.exists():
            print(f"\n{rel}: absent, no comparison")
            continue
        t0 = time.perf_counter()
        cmp = v.compare_backtests(path, params, market_dir=args.market_dir)
        t1 = time.perf_counter()
        print(f"\n{path.name}: {args.strategy} on real chains vs {v.LABEL}, {cmp.start}..{cmp.end} "
              f"({cmp.real.days} real sessions, {cmp.model.days} modelled; real missing: "
              f"{', '.join(map(str, cmp.real_missing_days)) or 'none'}); {t1 - t0:.1f} s")
        print(cmp.table.to_string(float_format=lambda x: f"{x:,.4f}"))
        if len(cmp.entries):
            print(f"entries on the same date ({len(cmp.entries)}):")
            print(cmp.entries[["entry_date", "real_entry_price", "model_entry_price", "difference",
                               "real_exit_reason", "model_exit_reason"]].to_string(index=False))
    print("\nby construction: " + "; ".join(v.BY_CONSTRUCTION))
    return 0


if __name__ == "__main__":
    sys.exit(main())
