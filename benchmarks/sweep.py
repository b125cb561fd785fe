"""Speed of a parameter sweep: N configurations through the local process pool and through a local Dask cluster.

A bull put grid over ``short_delta``, ``long_delta`` (or ``width``), ``dte``, ``profit_target``, ``stop_loss`` and
``exit_dte`` (the smallest grid of those keys with at least N configurations; N = 1,000 by default: 5 x 5 x 5 x 4
x 2 x 1), run

(a) one configuration alone in this process (warm: the second run, imports and numba kernels loaded);
(b) through the local pool (``--workers``, default 2): total seconds, seconds per configuration, the speed-up
    over (a) x N; issue 13's goal: 1,000 configurations of the 2011-2026 history in <= 60 s on 2 cores;
(c) through a local Dask cluster (``LocalCluster``, the same number of worker processes, one thread each): total
    seconds (cluster start-up apart) and the overhead ratio Dask / pool;
(d) the numba start of a fresh worker process: importing vectorbt and the first ``backtest_stats`` with an empty
    numba cache (cold: every kernel compiled) and with the project's cache (warm: loaded from disk).

Prints figures; asserts nothing about time. ``--engine history`` (default) needs
``research_lib.backtest.history``; ``--engine chains --source ARCHIVE`` runs on real chains (the 2026 archive by
default). Run: ``.venv/bin/python benchmarks/sweep.py [--configs N] [--engine chains|history] [--source PATH]
[--start D] [--end D] [--workers 2] [--skip-dask]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Candidate values of each grid key, most informative first; the grid takes the first k of each.
VALUES = {
    "short_delta": [0.30, 0.20, 0.25, 0.35, 0.15, 0.40],    # every one above every long_delta
    "long_delta": [0.10, 0.05, 0.08, 0.12, 0.03, 0.02],
    "dte": [45, 30, 60, 21, 14, 90, 7],
    "profit_target": [0.5, "none", 0.25, 0.75, 0.9],
    "stop_loss": [2.0, "none", 1.0, 3.0],
    "exit_dte": [7, "none", 14, 3],
}
#: Sizes of the default 1,000-configuration grid (issue 13's benchmark).
DEFAULT_SIZES = {"short_delta": 5, "long_delta": 5, "dte": 5, "profit_target": 4, "stop_loss": 2, "exit_dte": 1}


def grid_sizes(n: int) -> dict[str, int]:
    """The default sizes for 1,000; otherwise grow the keys round-robin from 1 until the product reaches n."""
    if n == 1000:
        return dict(DEFAULT_SIZES)
    sizes = dict.fromkeys(VALUES, 1)
    for key in itertools.cycle(VALUES):
        if math.prod(sizes.values()) >= n:
            return sizes
        if sizes[key] < len(VALUES[key]):
            sizes[key] += 1
        elif all(sizes[k] == len(VALUES[k]) for k in VALUES):
            return sizes


def grid_text(sizes: dict, *, engine: str, source: str | None, start: str | None, end: str | None) -> str:
    fixed = {"engine": engine, "strategy": "bull_put", "contracts": 1, "account": 1_000_000, "rate": 0.04,
             "entry": "when-flat"}
    if source:
        fixed["source"] = source
    if start:
        fixed["start"] = start
    if end:
        fixed["end"] = end
    lines = ["[backtest]", *(f"{k} = {json.dumps(v)}" for k, v in fixed.items()), "[grid]"]
    lines += [f"{k} = {json.dumps(VALUES[k][:sizes[k]])}" for k in VALUES]
    if engine == "chains":   # a few months of chains: short walk-forward windows
        lines += ["[walk_forward]", "train_days = 20", "test_days = 10"]
    return "\n".join(lines) + "\n"


NUMBA_PROBE = """
import time, sys
t0 = time.perf_counter()
from research_lib.sweep.grid import load_grid, expand
from research_lib.sweep.engines import prepare, run_one
spec = load_grid(sys.argv[1])
shared = prepare(spec, market_dir=sys.argv[2] or None)
t1 = time.perf_counter()
out = run_one(expand(spec)[0], shared)
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {out.error}")
"""


def numba_start(grid: Path, market_dir: str | None, cache: str) -> tuple[float, float]:
    """(inputs seconds, first configuration seconds) of a fresh process with ``NUMBA_CACHE_DIR=cache``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", NUMBA_PROBE, str(grid), market_dir or ""], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=1000)
    ap.add_argument("--engine", choices=("chains", "history"), default="history")
    ap.add_argument("--source", default=None, help="chains: an archive (default: the shared 2026 EOD archive)")
    ap.add_argument("--start", default=None)
    ap.add_argument("--end", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--market-dir", default=None)
    ap.add_argument("--skip-dask", action="store_true")
    ap.add_argument("--skip-numba", action="store_true")
    args = ap.parse_args(argv)
    source = args.source
    if args.engine == "chains" and source is None:
        shared = Path(os.environ.get("RESEARCH_LIB_SHARED_DATA", ROOT.parent / "shared" / "data"))
        source = str(shared / "chains" / "spx_eod_2026-06-12_2026-08-21.parquet")
        if not Path(source).exists():
            print(f"missing {source}: pass --source", file=sys.stderr)
            return 2
    start = args.start or ("2011-05-02" if args.engine == "history" else None)

    from research_lib.backtest.stats import numba_cache_dir, use_project_numba_cache
    from research_lib.sweep.engines import prepare, run_one
    from research_lib.sweep.grid import expand, load_grid
    from research_lib.sweep.runner import run_sweep

    use_project_numba_cache()
    work = Path(tempfile.mkdtemp(prefix="sweep_bench_"))
    sizes = grid_sizes(args.configs)
    grid = work / "grid.toml"
    grid.write_text(grid_text(sizes, engine=args.engine, source=source, start=start, end=args.end))
    spec = load_grid(grid)
    configs = expand(spec)
    print(f"grid: {' x '.join(f'{k} {v}' for k, v in sizes.items())} = {len(configs)} configurations, "
          f"engine {spec.engine}, {start or 'the data'}..{args.end or 'the data'}")

    t = time.perf_counter()
    shared = prepare(spec, market_dir=args.market_dir)
    print(f"shared inputs: {time.perf_counter() - t:.2f} s ({shared.description})")
    first = run_one(configs[0], shared)
    t = time.perf_counter()
    one = run_one(configs[0], shared)
    warm = time.perf_counter() - t
    # the same configuration on freshly built inputs (imports loaded, nothing memoised): what a sweep's first
    # configuration of each leg selection costs
    fresh = prepare(spec, market_dir=args.market_dir)
    t = time.perf_counter()
    run_one(configs[-1], fresh)
    single = time.perf_counter() - t
    print(f"(a) one configuration alone: {single:.3f} s on fresh inputs, {warm:.3f} s again with its selections "
          f"memoised (first in this process, imports included, {first.seconds:.3f} s); {one.stats['trades']} trades, "
          f"error {one.error}")

    t = time.perf_counter()
    pool = run_sweep(spec, workers=args.workers, out=work / "pool", market_dir=args.market_dir)
    pool_s = time.perf_counter() - t
    print(f"(b) local pool, {args.workers} workers: {pool_s:.2f} s for {pool.done} configurations = "
          f"{pool_s / max(pool.done, 1):.3f} s each ({pool.prepare_seconds:.2f} s of it the shared inputs); "
          f"speed-up over one-at-a-time on fresh inputs {single * pool.done / pool_s:.2f}x; {pool.failed} failed; "
          f"goal <= 60 s for 1,000: {'met' if pool_s <= 60 and pool.done >= 1000 else 'not met'}")

    if not args.skip_dask:
        from distributed import LocalCluster

        t = time.perf_counter()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster:
            start_s = time.perf_counter() - t
            t = time.perf_counter()
            dask = run_sweep(spec, scheduler=cluster.scheduler_address, out=work / "dask",
                             market_dir=args.market_dir)
            dask_s = time.perf_counter() - t
        same = dask.table.drop(columns="seconds").equals(pool.table.drop(columns="seconds"))
        print(f"(c) Dask LocalCluster, {dask.workers} workers: {dask_s:.2f} s ({dask_s / max(dask.done, 1):.3f} s "
              f"each; cluster start {start_s:.2f} s apart); overhead ratio Dask / pool {dask_s / pool_s:.2f}; "
              f"table identical to the pool's: {same}")

    if not args.skip_numba:
        cold = numba_start(grid, args.market_dir, tempfile.mkdtemp(prefix="numba_cold_"))
        warm = numba_start(grid, args.market_dir, str(numba_cache_dir()))
        print(f"(d) a fresh worker's first configuration: cold numba cache {cold[1]:.2f} s, warm (the project's "
              f"{numba_cache_dir()}) {warm[1]:.2f} s; ratio {cold[1] / warm[1]:.1f}x (inputs {cold[0]:.2f} / "
              f"{warm[0]:.2f} s)")
    print(f"outputs under {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
