"""Speed of ``research-lib binary scan`` on the four-day, 22M-quote Polymarket top-of-book dataset.

Times :func:`research_lib.data.binary_topbook.scan_topbook` on ``../shared/data/binary/polymarket_topbook_2026-07``
(every default: 300 s staleness, no fee, tick 0.001, every multi-slug question): the first run in the process
(what the command line does once) split into its phases — reading the day files, aligning the outcomes
(:func:`align_event_polls`), the rest — then the best of ``--repeat`` more; wall and CPU seconds (CPU well under
wall means another process had the cores).
Issue 15's goal: <= 10 s on 2 cores. Prints figures; asserts nothing.
Run: ``.venv/bin/python benchmarks/binary.py [--dir DIR] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import research_lib.data.binary_topbook as topbook  # noqa: E402

DATASET = ROOT.parent / "shared" / "data" / "binary" / "polymarket_topbook_2026-07"


def _phases(folder: Path) -> dict[str, float]:
    """One run with the reader and the alignment wrapped in timers."""
    spent = {"read": 0.0, "align": 0.0}
    real_read, real_align = topbook._read_day, topbook.align_event_polls

    def timed(fn, key):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[key] += time.perf_counter() - t
        return wrapper

    read, align = timed(real_read, "read"), timed(real_align, "align")
    topbook._read_day, topbook.align_event_polls = read, align
    try:
        t = time.perf_counter()
        topbook.scan_topbook(folder)
        total = time.perf_counter() - t
    finally:
        topbook._read_day, topbook.align_event_polls = real_read, real_align
    spent["rest"] = total - spent["read"] - spent["align"]
    spent["total"] = total
    return spent


def scan_figures(shared: Path | None = None, *, folder: Path | None = None, repeat: int = 3) -> None:
    """Print the scan's figures for the dataset under ``shared`` (``../shared/data``) or at ``folder``."""
    folder = folder or (Path(shared) / "binary" / "polymarket_topbook_2026-07" if shared else DATASET)
    if not (folder / "markets.parquet").is_file():
        print(f"scan: no dataset at {folder} (../shared/data/binary/polymarket_topbook_2026-07): nothing to time")
        return
    c = time.process_time()
    first = _phases(folder)  # a fresh process, as the command line runs it (memory not yet mapped, pools cold)
    first_cpu = time.process_time() - c
    walls, cpus = [], []
    result = None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        result = topbook.scan_topbook(folder)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    t = result.totals
    best = min(walls)
    print(f"binary scan of {folder.name}: {t['files']} days, {t['rows']:,} quotes ({t['rows_in_events']:,} in "
          f"multi-outcome events), {t['polls']:,} polls, {t['events']:,} events listed")
    print(f"  first run in the process (as the command line runs): {first['total']:.2f} s wall, {first_cpu:.2f} s "
          f"CPU; read {first['read']:.2f} s, align {first['align']:.2f} s, rest {first['rest']:.2f} s")
    print(f"  then best of {repeat}: {best:.2f} s wall (all: {', '.join(f'{x:.2f}' for x in walls)}), "
          f"{cpus[walls.index(best)]:.2f} s CPU; {t['rows'] / best / 1e6:.1f} M quotes/s")
    print(f"  goal <= 10 s on 2 cores: {'met' if first['total'] <= 10 else 'NOT met'} by the first run "
          f"({first['total'] / 10:.2f} of the budget)")
    print(f"  episodes: buy-all {t['buy_episodes']}, sell-all {t['sell_episodes']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=DATASET)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    scan_figures(folder=args.dir, repeat=args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
