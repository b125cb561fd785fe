"""Intraday flow speed on the real files (issue 15's three goals): the volume profiles of the 129 sessions of
1-minute SPY bars (goal <= 0.2 s in total), signing the 1.9M SPY trades (goal >= 5M trades/s), and ``binary scan``
of the four-day, 22M-quote Polymarket dataset (goal <= 10 s on 2 cores).

Prints, best of N runs each:

  profile         read_bars of the SPY 1-minute file; session_profiles of its 129 sessions with the default rows
                  (goal <= 0.2 s), on 1-cent rows, the market_profile preset, a composite, a developing profile,
                  one session alone and the vectorised speed-up

  read            read_trades of each of the five tick zips, every trade kept (04:00-20:00), and of the busiest
                  day's regular hours (s, trades/s)
  sign            sign_trades over the five days concatenated (1,887,460 trades, session labels as integers):
                  tick rule and Lee-Ready (the prevailing quotes already joined), trades/s (goal >= 5M/s);
                  and the as-of quote join itself (prevailing_quote)
  bars            bar_flow of the signed regular-hours trades of the five days to 1-minute bars (s)
  agreement       the share of trades the tick rule and Lee-Ready sign alike (regular hours, per day)

  scan            ``binary scan`` of the top-of-book dataset (benchmarks/binary.py; once, it reads 22M rows)

Run: ``.venv/bin/python benchmarks/flow.py [--repeat N] [--shared DIR] [--skip profile|sign|scan ...]`` (about a
minute).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gex import best_of  # benchmarks/gex.py: best wall time of N calls (this folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = ROOT.parent / "shared" / "data"
TICKS = Path("market") / "ticks" / "spy_2013-10-07_2013-10-11"
SPY_1MIN = Path("market") / "intraday" / "spy_1min_2025-09-15_2026-03-19.csv.gz"


def profile_section(shared: Path, repeat: int) -> None:
    """The volume profiles of every session of the SPY 1-minute file."""
    import time

    from research_lib.core import volume_profile as vp
    from research_lib.data.market.intraday import read_bars

    path = shared / SPY_1MIN
    if not path.exists():
        print(f"profile: benchmark data not found: {path}")
        return
    t0 = time.perf_counter()
    bars = read_bars(path)
    t_read = time.perf_counter() - t0
    n_sessions = bars["session"].nunique()
    day = bars[bars["session"] == bars["session"].iloc[-1]]
    print(f"profile ({path.name}: {len(bars):,} bars, {n_sessions} sessions)")
    print(f"  read_bars                         {t_read:8.3f} s")
    figures = [
        ("session_profiles, default rows", lambda: vp.session_profiles(bars), "s", 0.2),
        ("session_profiles, 1-cent rows", lambda: vp.session_profiles(bars, row_size=0.01), "s", None),
        ("the market_profile preset", lambda: vp.session_profiles(bars, preset="market_profile"), "s", None),
        ("composite, 1-cent rows", lambda: vp.composite_profile(bars, row_size=0.01), "s", None),
        ("developing profile, one session", lambda: vp.developing_profile(day, row_size=0.05), "ms", None),
        ("one session alone", lambda: vp.volume_profile(day), "ms", None),
    ]
    vp.session_profiles(bars)  # warm-up (imports, caches)
    for name, fn, unit, goal in figures:
        t, _ = best_of(fn, repeat)
        shown = f"{t * 1000:8.1f} ms" if unit == "ms" else f"{t:8.3f} s "
        extra = f"   goal <= {goal} s: {'met' if t <= goal else 'MISSED'} ({t / goal:.2f} of it)" if goal else ""
        print(f"  {name:<34}{shown}{extra}")
    per_day, _ = best_of(lambda: vp.volume_profile(day), repeat)
    allday, _ = best_of(lambda: vp.session_profiles(bars), repeat)
    print(f"  vectorised vs one at a time       {per_day * n_sessions / allday:8.1f} x "
          f"({n_sessions} x one session / all sessions at once)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip", action="append", default=[], choices=("profile", "sign", "scan"))
    args = parser.parse_args(argv)
    if "profile" not in args.skip:
        profile_section(args.shared, args.repeat)
    if "sign" not in args.skip:
        sign_section(args.shared, args.repeat)
    if "scan" not in args.skip:
        scan_section(args.shared)
    return 0


def scan_section(shared: Path) -> None:
    """``binary scan`` of the top-of-book dataset, timed once (benchmarks/binary.py)."""
    try:
        from binary import scan_figures  # benchmarks/binary.py (this folder is on sys.path)
    except ImportError as exc:
        print(f"scan: benchmarks/binary.py is not available ({exc})")
        return
    scan_figures(shared)


def sign_section(shared: Path, repeat: int) -> None:
    """Reading the tick zips, signing every trade, the quote join, 1-minute bars, tick vs Lee-Ready."""
    folder = shared / TICKS
    if not folder.is_dir():
        print(f"sign: benchmark data not found: {folder}")
        return

    import numpy as np
    import pandas as pd

    from research_lib import calendar
    from research_lib.core.order_flow import bar_flow, prevailing_quote, sign_trades
    from research_lib.data.market.intraday import quote_files, read_quote_bars, read_trades, tick_files

    calendar.exchange_calendar()  # one-time calendar build, not part of any figure
    files = tick_files(folder)
    qfiles = quote_files(folder)

    print("sign: read")
    days = []
    for f in files:
        t, trades = best_of(lambda f=f: read_trades(f, regular_hours=False, drop_suspicious=False), repeat)
        days.append(trades)
        print(f"  {f.name}  {len(trades):>9,} trades  {t:6.3f} s  {len(trades) / t / 1e6:5.2f} M trades/s")
    busiest = max(files, key=lambda f: f.stat().st_size)
    t, rth = best_of(lambda: read_trades(busiest), repeat)
    print(f"  {busiest.name} regular hours  {len(rth):>9,} trades  {t:6.3f} s")

    everything = pd.concat(days, ignore_index=True)
    price = everything["price"].to_numpy()
    session = np.repeat(np.arange(len(days)), [len(d) for d in days])
    quotes = [read_quote_bars(q, regular_hours=False) for q in qfiles]
    qall = pd.concat(quotes, ignore_index=True)
    qsession = np.repeat(np.arange(len(quotes)), [len(q) for q in quotes])
    t_join, (bid, ask) = best_of(lambda: prevailing_quote(everything["ts"], qall["ts"], qall["bid"], qall["ask"],
                                                       trade_session=session, quote_session=qsession), repeat)
    t_tick, tick = best_of(lambda: sign_trades(price, "tick", session=session), repeat)
    t_lr, lr = best_of(lambda: sign_trades(price, "lee_ready", bid, ask, session), repeat)
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
    t_bars, flow = best_of(lambda: bar_flow(rth_all, rth_signs, "1min"), repeat)
    print(f"bars\n  bar_flow to 1-minute bars  {len(rth_all):,} trades -> {len(flow):,} bars  {t_bars:6.3f} s")

    print("agreement (regular hours: tick rule vs Lee-Ready)")
    rth_tick = sign_trades(rth_all["price"], "tick", session=rth_sess)
    for day, idx in rth_all.groupby("session").indices.items():
        print(f"  {day}  {np.mean(rth_tick[idx] == rth_signs[idx]):6.1%}")


if __name__ == "__main__":
    sys.exit(main())
