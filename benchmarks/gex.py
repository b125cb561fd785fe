"""Benchmark of the GEX engine on the largest day of the 2026 SPX EOD archive (~23k contracts).

Prints, best of N runs each (wall time, seconds):
  load        read_chain of that day (Parquet filter, SPX/SPXW split, validation); also the cold
              figure, which first scans the archive's catalogue
  exposures   per-contract GEX / vanna / charm / delta
  profile     a 400-level gamma profile with every zero-gamma crossing refined by Brent's method
  exp pass    one numpy.exp pass over contracts × levels elements (the floor any profile must pay)
  ratio       profile / exp pass                                   goal <= 5
  summary     gex.analyze(): exposures, tables, profile, zero gamma, walls, max pain, pin risk   goal <= 0.3 s
  iv solve    pricing.implied_vol over the day's contracts, from their mid prices (for reference)

Run: ``make bench`` or ``.venv/bin/python benchmarks/gex.py [--repeat N] [--path FILE]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

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
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--levels", type=int, default=400)
    args = parser.parse_args(argv)
    if not args.path.exists():
        print(f"benchmark data not found: {args.path} (needs ../shared/data beside the checkout)", file=sys.stderr)
        return 2

    from research_lib import calendar
    from research_lib.core import gex, pricing
    from research_lib.data.sources import read_chain, scan

    calendar.exchange_calendar()  # one-time calendar build (~1 s), not part of any figure
    cat = scan(args.path)
    ok = cat[cat["status"] == "ok"]
    day = ok.loc[ok["rows"].idxmax(), "date"]
    from research_lib.data.sources import archives

    archives._scan_eod_cached.cache_clear()
    t_cold, _ = best_of(lambda: read_chain(args.path, date=day), 1)
    t_load, snap = best_of(lambda: read_chain(args.path, date=day), max(2, args.repeat // 2))
    config = gex.GexConfig.model(grid_points=args.levels, rate=0.04, div_yield=0.013)

    t_exp_table, (table, _) = best_of(lambda: gex.exposures(snap, config), args.repeat)
    t_profile, (profile, zero) = best_of(
        lambda: (lambda p: (p, gex.zero_gamma(p)))(gex.gamma_profile(snap, config)), args.repeat)
    n_live = int(np.isfinite(snap.contracts["iv"]).sum())
    grid = np.random.default_rng(0).standard_normal((args.levels, n_live))
    t_exp, _ = best_of(lambda: np.exp(grid), args.repeat)
    t_summary, analysis = best_of(lambda: gex.analyze(snap, config), args.repeat)

    c = snap.contracts
    mid = ((c["bid"] + c["ask"]) / 2).to_numpy()
    T = gex.time_to_expiry(snap, config)
    is_call = (c["right"] == "C").to_numpy()
    t_iv, iv = best_of(lambda: pricing.implied_vol(mid, snap.spot, c["strike"].to_numpy(), T, 0.04, 0.013, is_call),
                       args.repeat)

    lv = analysis.levels
    print(f"benchmark: {args.path.name}, day {day} ({len(snap.contracts):,} contracts, {n_live:,} with IV, "
          f"{snap.contracts['expiration'].nunique()} expiries), best of {args.repeat}")
    print(f"  load         {t_load * 1e3:8.1f} ms   (cold, file catalogue not yet cached: {t_cold * 1e3:.1f} ms)")
    print(f"  exposures    {t_exp_table * 1e3:8.1f} ms   ({len(table):,} contracts counted)")
    print(f"  profile      {t_profile * 1e3:8.1f} ms   ({args.levels} levels, {len(zero.crossings)} zero crossing(s))")
    print(f"  exp pass     {t_exp * 1e3:8.1f} ms   (numpy.exp over {args.levels} x {n_live:,} = "
          f"{args.levels * n_live / 1e6:.1f}M elements)")
    print(f"  ratio        {t_profile / t_exp:8.2f}      profile / exp pass   (goal <= 5)")
    print(f"  summary      {t_summary * 1e3:8.1f} ms   gex.analyze, everything  (goal <= 300 ms)")
    print(f"  iv solve     {t_iv * 1e3:8.1f} ms   implied_vol of {len(mid):,} mids "
          f"({int((iv.reason == 'ok').sum()):,} ok)")
    print(f"  levels: net {lv.net_gex / 1e9:+.2f}B, zero gamma {lv.zero_gamma:,.2f}, call wall {lv.call_wall:,.0f}, "
          f"put wall {lv.put_wall:,.0f}, spot {lv.spot:,.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
