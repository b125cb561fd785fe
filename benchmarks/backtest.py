"""Benchmark of the backtest engine on the whole 2026 SPX EOD archive (1.13M rows, 47 clean days).

Prints (wall time, seconds; best of N runs for the backtests, the load once):
  load        every clean day of the archive read into ChainSnapshots (Feed -> read_chains), rows and rows/s
  (a) fixed   bull_put, daily entries, every exit rule on (profit target 50%, stop 200%, 7 DTE, max hold 10),
              on the loaded snapshots: chain rows per second after the load        goal >= 2.5M rows/s
              (optopsy 2.2.0 on this archive on this machine: 0.8-1.1M rows/s, exits at a fixed DTE only)
  (b) regime  strategy auto (decide_on each day with the market history as of that day) against loading the
              archive and analysing every day's levels once (gex.analyze, model convention, the day's rates):
              ratio (load + regime backtest) / (load + analyse every day)          goal <= 1.5
  stats       backtest_stats of the fixed run: the first call in this process (vectorbt's import and its
              kernels, from the numba cache when warm) and a second call

Run: ``.venv/bin/python benchmarks/backtest.py [--repeat N] [--path FILE] [--market-dir DIR]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "chains" / "spx_eod_2026-06-12_2026-08-21.parquet"


def best_of(fn, repeat):
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--market-dir", default=None, help="market history folder (default: the usual search)")
    parser.add_argument("--account", type=float, default=1_000_000.0,
                        help="initial equity of the fixed run (large enough to size a 10-point spread)")
    args = parser.parse_args(argv)
    if not args.path.exists():
        print(f"benchmark data not found: {args.path} (needs ../shared/data beside the checkout)", file=sys.stderr)
        return 2

    from research_lib import calendar
    from research_lib.backtest import engine, params
    from research_lib.backtest.feed import Feed
    from research_lib.core import gex
    from research_lib.data.market import snapshot_config

    run_backtest, BacktestParams = engine.run_backtest, params.BacktestParams

    calendar.exchange_calendar()  # one-time calendar build, not part of any figure
    t0 = time.perf_counter()
    feed = Feed(args.path, "SPX")
    snaps = list(feed)
    t_load = time.perf_counter() - t0
    rows = sum(len(s.contracts) for s in snaps)
    print(f"archive     {args.path.name}: {len(snaps)} days, {rows:,} chain rows, "
          f"{len(feed.missing_days)} missing sessions")
    print(f"load        {t_load:8.3f} s   {rows / t_load / 1e6:6.2f}M rows/s")

    fixed = BacktestParams(strategy="bull_put", entry="daily", width=10.0, max_open=5, profit_target=0.5,
                           stop_loss=2.0, exit_dte=7, max_hold=10, account=args.account)
    t_fixed, result = best_of(lambda: run_backtest(snaps, fixed, market_dir=args.market_dir), args.repeat)
    print(f"(a) fixed   {t_fixed:8.3f} s   {rows / t_fixed / 1e6:6.2f}M rows/s after the load   (goal >= 2.5M); "
          f"{len(result.trades)} trades, exits {result.trades['exit_reason'].value_counts().to_dict()}")

    def analyse_all():
        return [gex.analyze(s, snapshot_config(s, "model", market_dir=args.market_dir)).levels for s in snaps]

    t_analyse, _ = best_of(analyse_all, args.repeat)
    auto = BacktestParams(strategy="auto", account=args.account)
    t_auto, auto_result = best_of(lambda: run_backtest(snaps, auto, market_dir=args.market_dir), args.repeat)
    ratio = (t_load + t_auto) / (t_load + t_analyse)
    print(f"(b) regime  {t_auto:8.3f} s   analyse every day {t_analyse:.3f} s; "
          f"(load + regime) / (load + analyse) = {ratio:.2f}   (goal <= 1.5); {len(auto_result.trades)} trades")

    t0 = time.perf_counter()
    result.stats()
    t_first = time.perf_counter() - t0
    t_second, stats = best_of(result.stats, args.repeat)
    print(f"stats       first call {t_first:.3f} s (vectorbt import + kernels), then {t_second:.4f} s; "
          f"{stats.library}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
