"""Speed of the volume profile: the session profiles of the 129 days of 1-minute SPY bars.

Prints, best of N (the bars already read; reading the file is timed apart):

  read_bars                         the CSV.gz into the bars table (s)
  session_profiles, default rows    129 profiles, each with its own row size (at most 100 rows) (s; goal <= 0.2)
  session_profiles, 1-cent rows     the same on a one-cent grid (s)
  the market_profile preset         129 profiles of the py-market-profile rules, 0.05 rows (s)
  composite                         one profile over all 49,885 bars, 1-cent rows (s)
  developing profile                the POC/VAL/VAH after each bar of one session (ms a session)
  one session alone                 volume_profile of one day's bars (ms), to compare with the vectorised run

Run: ``.venv/bin/python benchmarks/profile.py [--repeat N] [--shared DIR]`` (a few seconds).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = ROOT.parent / "shared" / "data"
SPY_1MIN = "market/intraday/spy_1min_2025-09-15_2026-03-19.csv.gz"


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    path = args.shared / SPY_1MIN
    if not path.exists():
        print(f"benchmark data not found: {path}", file=sys.stderr)
        return 2

    from research_lib.core import volume_profile as vp
    from research_lib.data.market.intraday import read_bars

    t0 = time.perf_counter()
    bars = read_bars(path)
    t_read = time.perf_counter() - t0
    n_sessions = bars["session"].nunique()
    day = bars[bars["session"] == bars["session"].iloc[-1]]
    print(f"{path.name}: {len(bars):,} bars, {n_sessions} sessions")
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
        t = best(fn, args.repeat)
        shown = f"{t * 1000:8.1f} ms" if unit == "ms" else f"{t:8.3f} s "
        extra = f"   goal <= {goal} s: {'met' if t <= goal else 'MISSED'} ({t / goal:.2f} of it)" if goal else ""
        print(f"  {name:<34}{shown}{extra}")
    per_day = best(lambda: vp.volume_profile(day), args.repeat)
    allday = best(lambda: vp.session_profiles(bars), args.repeat)
    print(f"  vectorised vs one at a time       {per_day * n_sessions / allday:8.1f} x "
          f"(129 x one session / all sessions at once)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
