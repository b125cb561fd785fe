"""What drives the day-to-day noise of net GEX: the change attribution over both real SPX archives.

For each archive (the 2026 Cboe EOD archive and the 2019 intraday scrapes, every consecutive pair of clean
days, model convention, each day priced with its own rate and dividend yield) and each method (sequential,
Shapley), prints:

  per cause       sd of its daily contribution ($bn per 1% move) and its share of the variance of the daily
                  change, cov(cause, change) / var(change) — the shares sum to 1
  per expiry      the same for the expiry buckets (0–1, 2–7, 8–30, 31–90, > 90 calendar days)
  timing          one attribution (best of N on the archive's last pair, ms; the snapshots already read and
                  their configs looked up) and the whole archive (change_history: reading every clean day,
                  rates lookups and every attribution, s)
  exactness       max |Σ causes − change| over the pairs ($)

Run: ``.venv/bin/python benchmarks/gex_change.py [--repeat N] [--shared DIR]`` (about a minute).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = ROOT.parent / "shared" / "data"
ARCHIVES = ("spx_eod_2026-06-12_2026-08-21.parquet", "spx_intraday_2019-04-25_2019-07-22.parquet")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    paths = [args.shared / "chains" / name for name in ARCHIVES]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"benchmark data not found: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2

    from research_lib import calendar
    from research_lib.core.gex_change import CAUSES, attribute_change
    from research_lib.data.market import snapshot_config
    from research_lib.data.sources import read_chain, scan
    from research_lib.pipeline.gex_change import change_history, variance_shares

    calendar.exchange_calendar()  # one-time calendar build, not part of any figure
    for path in paths:
        ok = scan(path)
        days = sorted(ok.loc[ok["status"] == "ok", "date"])
        before, after = read_chain(path, date=days[-2]), read_chain(path, date=days[-1])
        cb, ca = snapshot_config(before), snapshot_config(after)
        print(f"\n{path.name}: {len(days)} clean days, {len(days) - 1} pairs, last pair {len(before.contracts):,} "
              f"-> {len(after.contracts):,} contracts")
        for method in ("sequential", "shapley"):
            one = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                attribute_change(before, after, cb, ca, method=method)
                one.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            hist = change_history(path, method=method)
            whole = time.perf_counter() - t0
            resid = (hist[list(CAUSES)].sum(axis=1) - hist["change"]).abs().max()
            print(f"  {method}: one attribution {min(one) * 1e3:.0f} ms (best of {args.repeat}); whole archive "
                  f"{whole:.1f} s; max |sum of causes - change| {resid:.2g} $")
            print(f"    daily change: sd {hist['change'].std() / 1e9:.2f}B, mean net GEX "
                  f"{hist['net_after'].mean() / 1e9:.2f}B")
            table = variance_shares(hist)
            for group in ("cause", "expiry"):
                print(f"    {group:<14}{'sd $bn':>9}{'share':>8}")
                for part, row in table.loc[group].iterrows():
                    print(f"    {part:<14}{row['sd'] / 1e9:>9.2f}{row['share']:>8.3f}")
                print(f"    {'(sum)':<14}{'':>9}{table.loc[group, 'share'].sum():>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
