"""Intraday flow speed on the real files: reading the SPY ticks and signing all 1.9M trades.

Prints, best of N runs each:

  read            read_trades of each of the five tick zips, every trade kept (04:00-20:00), and of the busiest
                  day's regular hours (s, trades/s)
  sign            sign_trades over the five days concatenated (1,887,460 trades, session labels as integers):
                  tick rule and Lee-Ready (the prevailing quotes already joined), trades/s (goal >= 5M/s);
                  and the as-of quote join itself (prevailing_quote)
  bars            bar_flow of the signed regular-hours trades of the five days to 1-minute bars (s)
  agreement       the share of trades the tick rule and Lee-Ready sign alike (regular hours, per day)

The lead adds the volume profile and the ``binary scan`` figures. Run: ``.venv/bin/python benchmarks/flow.py
[--repeat N] [--shared DIR]`` (about 20 s).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gex import best_of  # benchmarks/gex.py: best wall time of N calls (this folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = ROOT.parent / "shared" / "data"
TICKS = Path("market") / "ticks" / "spy_2013-10-07_2013-10-11"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    folder = args.shared / TICKS
    if not folder.is_dir():
        print(f"benchmark data not found: {folder}", file=sys.stderr)
        return 2

    import numpy as np
    import pandas as pd

    from research_lib import calendar
    from research_lib.core.order_flow import bar_flow, prevailing_quote, sign_trades
    from research_lib.data.market.intraday import quote_files, read_quote_bars, read_trades, tick_files

    calendar.exchange_calendar()  # one-time calendar build, not part of any figure
    files = tick_files(folder)
    qfiles = quote_files(folder)

    print("read")
    days = []
    for f in files:
        t, trades = best_of(lambda f=f: read_trades(f, regular_hours=False, drop_suspicious=False), args.repeat)
        days.append(trades)
        print(f"  {f.name}  {len(trades):>9,} trades  {t:6.3f} s  {len(trades) / t / 1e6:5.2f} M trades/s")
    busiest = max(files, key=lambda f: f.stat().st_size)
    t, rth = best_of(lambda: read_trades(busiest), args.repeat)
    print(f"  {busiest.name} regular hours  {len(rth):>9,} trades  {t:6.3f} s")

    everything = pd.concat(days, ignore_index=True)
    price = everything["price"].to_numpy()
    session = np.repeat(np.arange(len(days)), [len(d) for d in days])
    quotes = [read_quote_bars(q, regular_hours=False) for q in qfiles]
    qall = pd.concat(quotes, ignore_index=True)
    qsession = np.repeat(np.arange(len(quotes)), [len(q) for q in quotes])
    t_join, (bid, ask) = best_of(lambda: prevailing_quote(everything["ts"], qall["ts"], qall["bid"], qall["ask"],
                                                       trade_session=session, quote_session=qsession), args.repeat)
    t_tick, tick = best_of(lambda: sign_trades(price, "tick", session=session), args.repeat)
    t_lr, lr = best_of(lambda: sign_trades(price, "lee_ready", bid, ask, session), args.repeat)
    n = len(price)
    print(f"sign ({n:,} trades, 5 sessions)")
    print(f"  tick rule       {t_tick * 1e3:7.1f} ms  {n / t_tick / 1e6:6.1f} M trades/s  (goal >= 5)")
    print(f"  Lee-Ready       {t_lr * 1e3:7.1f} ms  {n / t_lr / 1e6:6.1f} M trades/s")
    print(f"  quote join      {t_join * 1e3:7.1f} ms  {n / t_join / 1e6:6.1f} M trades/s")

    rth_all = pd.concat([read_trades(f) for f in files], ignore_index=True)
    rth_sess = rth_all["session"].to_numpy()
    rth_q = prevailing_quote(rth_all["ts"], qall["ts"], qall["bid"], qall["ask"],
                             trade_session=rth_sess, quote_session=qall["session"].to_numpy())
    rth_signs = sign_trades(rth_all["price"], "lee_ready", *rth_q, rth_sess)
    t_bars, flow = best_of(lambda: bar_flow(rth_all, rth_signs, "1min"), args.repeat)
    print(f"bars\n  bar_flow to 1-minute bars  {len(rth_all):,} trades -> {len(flow):,} bars  {t_bars:6.3f} s")

    print("agreement (regular hours: tick rule vs Lee-Ready)")
    rth_tick = sign_trades(rth_all["price"], "tick", session=rth_sess)
    for day, idx in rth_all.groupby("session").indices.items():
        print(f"  {day}  {np.mean(rth_tick[idx] == rth_signs[idx]):6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
