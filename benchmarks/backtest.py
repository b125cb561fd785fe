"""Speed of the backtest engine on the whole 2026 EOD archive (../shared/data, read at run time).

(a) A fixed strategy (an iron condor, 50-point wings) with **daily entries** and **every exit rule** on (profit
    target 50%, stop 200%, exit at 7 DTE, max hold 20 sessions, expiry, missing legs, end of data), one contract,
    up to 10 open: chain rows per second of the backtest call, the load excluded (the snapshots are read first).
    Goal of issue 12: >= 2.5M rows/s.
(b) The regime-driven backtest (``auto``: ``decide_on`` every day) against loading the archive and analysing
    every day's levels once (``gex.analyze`` at the day's rate and yield): goal <= 1.5x.

Wall time and process CPU time are both printed (the machine is shared: CPU time is the steadier figure).
Run: ``.venv/bin/python benchmarks/backtest.py [--shared DIR] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=os.environ.get("RESEARCH_LIB_SHARED_DATA", ROOT.parent / "shared" / "data"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-auto", action="store_true")
    args = ap.parse_args(argv)
    shared = Path(args.shared)
    archive = shared / "chains" / "spx_eod_2026-06-12_2026-08-21.parquet"
    market = shared / "market"
    if not archive.exists():
        print(f"missing {archive}: put shared/data beside the checkout or pass --shared", file=sys.stderr)
        return 2

    from research_lib.backtest.engine import chain_rows, run_backtest
    from research_lib.backtest.feed import Feed
    from research_lib.backtest.params import BacktestParams
    from research_lib.core import gex
    from research_lib.data.market import load_index_daily, load_market_history, snapshot_rates

    (snaps, load_w, load_c) = _timed(lambda: list(Feed(archive)))
    rows = chain_rows(snaps)
    daily = load_index_daily("SPX", market_dir=market)
    print(f"archive: {len(snaps)} days, {rows:,} chain rows served; load {load_w:.2f} s wall, {load_c:.2f} s CPU")

    fixed = BacktestParams(strategy="iron_condor", entry="daily", max_open=10, width=50, contracts=1,
                           account=10_000_000.0, max_hold=20, fill="mid")
    run_backtest(snaps[:3], fixed, market_dir=market, daily=daily)          # warm caches (calendar, imports)
    best = None
    for _ in range(args.repeat):
        res, w, c = _timed(lambda: run_backtest(snaps, fixed, market_dir=market, daily=daily))
        best = (w, c) if best is None or w < best[0] else best
    w, c = best
    reasons = res.trades["exit_reason"].value_counts().to_dict()
    print(f"(a) fixed iron condor, daily entries, all exits: {len(res.trades)} trades {reasons}")
    print(f"    best of {args.repeat}: {w:.3f} s wall -> {rows / w / 1e6:.2f}M rows/s; {c:.3f} s CPU -> "
          f"{rows / c / 1e6:.2f}M rows/s (goal >= 2.5M)")
    if args.skip_auto:
        return 0

    def analyse():
        for s in snaps:
            r = snapshot_rates(s, market_dir=market)
            gex.analyze(s, gex.GexConfig.model(rate=r.rate, div_yield=r.div_yield))

    _, ana_w, ana_c = _timed(analyse)
    history = load_market_history(market)
    auto = BacktestParams(strategy="auto", entry="daily", max_open=3, account=1_000_000.0)
    res, bt_w, bt_c = _timed(lambda: run_backtest(snaps, auto, market_history=history, market_dir=market,
                                                  daily=daily))
    base_w, base_c = load_w + ana_w, load_c + ana_c
    print(f"(b) regime-driven: {len(res.trades)} trades; load + analyse every day: {base_w:.2f} s wall "
          f"({base_c:.2f} s CPU); load + backtest: {load_w + bt_w:.2f} s wall ({load_c + bt_c:.2f} s CPU)")
    print(f"    ratio {(load_w + bt_w) / base_w:.2f}x wall, {(load_c + bt_c) / base_c:.2f}x CPU (goal <= 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
