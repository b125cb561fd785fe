"""Run a sweep: every configuration of a grid as one backtest, serially, on a local process pool or on a Dask
cluster, each result stored as it arrives; then the results tables and the overfitting checks.

Where the work runs (:func:`run_sweep`):

- ``workers=1``: in this process, one configuration after the other;
- default: a :class:`concurrent.futures.ProcessPoolExecutor` of ``workers`` processes (default
  ``os.cpu_count()``); the shared inputs (:func:`research_lib.sweep.engines.prepare`) go to each worker **once**,
  through the pool's initializer, and each task carries only its configurations (:func:`batches`: those that
  select the same legs travel together, so a worker's memo of the history's fast path serves them all);
- ``scheduler="tcp://HOST:PORT"`` (or ``$DASK_SCHEDULER_ADDRESS``): a Dask distributed cluster
  (``dask scheduler`` and ``dask worker tcp://HOST:PORT``); the shared inputs are scattered once to every worker
  (``client.scatter(..., broadcast=True)``), ``client.map`` sends the same batches, results are stored in the
  order they complete (``as_completed``).

Every worker points numba at the project's on-disk cache
(:func:`research_lib.backtest.stats.use_project_numba_cache`) before the statistics import vectorbt, so the
kernels compile once per machine, not once per worker or task. The results do not depend on where they ran: the
table is in the grid's expansion order, each row's values come from its own backtest (``seconds`` aside).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from research_lib.backtest.stats import use_project_numba_cache
from research_lib.errors import SweepInputError, SweepStatisticError
from research_lib.formatting import jsonable
from research_lib.sweep import deflated, walkforward
from research_lib.sweep.engines import STAT_KEYS, SharedInputs, prepare, run_one
from research_lib.sweep.grid import SweepConfig, SweepSpec, expand
from research_lib.sweep.store import SweepStore

#: The environment variable naming a Dask scheduler (as Dask itself reads it).
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"

Progress = Callable[[int, int, str], None]


@dataclasses.dataclass(frozen=True, eq=False)
class SweepResult:
    """A finished sweep.

    Attributes
    ----------
    spec : SweepSpec
    table : DataFrame
        One row per configuration (:data:`research_lib.sweep.store.RESULT_COLUMNS`, the grid keys after
        ``config_id``), in the expansion order.
    equity : DataFrame
        Dates × config_id ($) of the configurations without an error.
    walk_forward : DataFrame
        :func:`research_lib.sweep.walkforward.walk_forward` of the equity (may be empty: too few days).
    walk_forward_summary : WalkForwardSummary
    deflated_sharpe : DeflatedSharpe or None
        Of the best configuration; None (with :attr:`deflated_note`) when it cannot be computed.
    deflated_note : str or None
    best : dict or None
        The configuration with the highest ``sharpe`` (ties: the first in the expansion): ``config_id``,
        ``values`` and its statistics; None when no configuration has a Sharpe ratio.
    paths : dict
        ``results_path`` (CSV), ``parquet_path``, ``equity_path``, ``summary_path`` (sweep.json).
    folder : Path
    configs, done, skipped, failed : int
        Configurations in the grid, computed by this run, found finished in the folder, ended with an error.
    seconds : float
        Wall time of this run.
    prepare_seconds : float
        Time to build the shared inputs (0 when every configuration was already finished).
    mode : str
        ``serial``, ``pool``, ``dask``, or ``none`` (every configuration was already finished; ``workers`` 0).
    workers : int
    """

    spec: SweepSpec
    table: pd.DataFrame
    equity: pd.DataFrame
    walk_forward: pd.DataFrame
    walk_forward_summary: walkforward.WalkForwardSummary
    deflated_sharpe: deflated.DeflatedSharpe | None
    deflated_note: str | None
    best: dict | None
    paths: dict
    folder: Path
    configs: int
    done: int
    skipped: int
    failed: int
    seconds: float
    prepare_seconds: float
    mode: str
    workers: int

    def summary(self) -> dict:
        """Strict-JSON-ready: the ``--json`` record (counts, paths, best, walk-forward, deflated Sharpe)."""
        return jsonable({
            "configs": self.configs, "results_path": self.paths["results_path"],
            "parquet_path": self.paths["parquet_path"], "equity_path": self.paths["equity_path"],
            "summary_path": self.paths["summary_path"], "folder": self.folder, "seconds": self.seconds,
            "prepare_seconds": self.prepare_seconds, "done": self.done, "skipped": self.skipped,
            "failed": self.failed, "mode": self.mode, "workers": self.workers, "engine": self.spec.engine,
            "best": self.best, "walk_forward": self.walk_forward_summary.to_dict(),
            "walk_forward_windows": window_records(self.walk_forward),
            "deflated_sharpe": None if self.deflated_sharpe is None else self.deflated_sharpe.to_dict(),
            "deflated_note": self.deflated_note, "spec": self.spec.to_dict()})


# ----------------------------------------------------------------------------------------------------
# workers

_SHARED: SharedInputs | None = None


def worker_setup() -> str:
    """Run once in each worker process: numba's cache at the project's folder (before vectorbt loads)."""
    return str(use_project_numba_cache())


def _init_pool_worker(shared: SharedInputs) -> None:
    global _SHARED
    worker_setup()
    _SHARED = shared


def _pool_task(batch: list[SweepConfig]):
    return run_batch(batch, _SHARED)


def run_batch(batch: list[SweepConfig], shared: SharedInputs) -> list:
    """:func:`~research_lib.sweep.engines.run_one` of each configuration of ``batch``, in order, in one process."""
    return [run_one(c, shared) for c in batch]


#: Parameters that do not change which legs a configuration selects on a given day (exits, fills, costs, sizing):
#: configurations that differ only in these share a worker's memoised selections (the history's fast path).
_EXIT_KEYS = frozenset({"profit_target", "stop_loss", "exit_dte", "max_hold", "fill", "commission", "contracts",
                        "account", "sizing", "regime_exit", "missing_leg_days"})


def batches(todo: list[SweepConfig], workers: int) -> list[list[SweepConfig]]:
    """``todo`` cut into tasks: configurations that select the same legs (equal but for :data:`_EXIT_KEYS`) go
    together, so one worker computes their selections once; groups larger than a quarter of an even share of
    the work are split (load balance). Every configuration appears exactly once; order within a batch is
    ``todo``'s."""
    groups: dict = {}
    for c in todo:
        key = json.dumps({k: v for k, v in c.params.items() if k not in _EXIT_KEYS}, sort_keys=True, default=str)
        groups.setdefault(key, []).append(c)
    size = max(1, len(todo) // (4 * max(int(workers), 1)))

    def window(group: list[SweepConfig]) -> str:
        # groups of one entry window run one after the other: the history's memo of priced grids serves them
        p = group[0].params
        return json.dumps([p.get("strategy"), p.get("dte"), p.get("dte_tolerance")], default=str)

    ordered = sorted(groups.values(), key=window)          # stable: the expansion order within a window
    return [g[i:i + size] for g in ordered for i in range(0, len(g), size)]


def _default_folder(out) -> Path:
    if out is not None:
        return Path(out)
    # lazy: start-up time — the reports machinery (papermill, nbconvert) is not needed to run a sweep
    from research_lib.reporting.runner import new_run_id, reports_root

    return reports_root(None) / "sweeps" / new_run_id()


def run_sweep(spec: SweepSpec, *, workers: int | None = None, scheduler: str | None = None, out=None,
              progress: Progress | None = None, market_dir=None) -> SweepResult:
    """Run every configuration of ``spec`` not yet finished in ``out``, then write the results.

    Parameters
    ----------
    spec : SweepSpec
        From :func:`research_lib.sweep.grid.load_grid`.
    workers : int, optional
        Local processes (default ``os.cpu_count()``); 1 runs in this process. Ignored with a scheduler.
    scheduler : str, optional
        A Dask scheduler address (``tcp://HOST:PORT``); default ``$DASK_SCHEDULER_ADDRESS``; None and unset: local.
    out : path, optional
        The sweep's folder (default ``reports/sweeps/<run id>/``): rerun with the same folder to resume.
    progress : callable, optional
        ``progress(done, total, config_id)`` after each configuration is stored (``done`` counts the skipped
        ones too, ``total`` the grid's configurations); on a resumed run, first once with the number already
        finished and ``config_id`` "". An exception it raises (e.g. KeyboardInterrupt) stops
        the sweep; what was stored stays.
    market_dir : path, optional
        Market history folder.

    Returns
    -------
    SweepResult

    Raises
    ------
    SweepInputError
        ``out`` holds another grid's sweep, or a bad ``workers``.
    """
    t0 = time.perf_counter()
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise SweepInputError(spec.path, "options", "workers", f"{workers!r}: a whole number >= 1")
    configs = expand(spec)
    folder = _default_folder(out)
    store = SweepStore(folder, spec)
    finished = store.finished()
    todo = [c for c in configs if c.config_id not in finished]
    skipped = len(configs) - len(todo)
    address = scheduler or os.environ.get(SCHEDULER_ENV, "").strip() or None
    n_workers = 1 if address is None and (workers == 1) else (workers or os.cpu_count() or 1)
    mode = "dask" if address else ("serial" if n_workers == 1 or len(todo) <= 1 else "pool")
    if not todo:   # everything was finished: nothing runs anywhere
        mode, n_workers = "none", 0
    prepare_seconds = 0.0
    count = [skipped]

    def stored(outcome):
        store.write(outcome)
        count[0] += 1
        if progress is not None:
            progress(count[0], len(configs), outcome.config_id)

    if skipped and progress is not None:
        progress(skipped, len(configs), "")
    if todo:
        shared = prepare(spec, market_dir=market_dir)
        prepare_seconds = shared.seconds
        if mode == "dask":
            n_workers = _run_dask(address, todo, shared, stored)
        elif mode == "pool":
            _run_pool(min(n_workers, len(todo)), todo, shared, stored)
        else:
            worker_setup()
            for c in todo:
                stored(run_one(c, shared))
    table, equity = store.results(configs)
    wf = spec.walk_forward
    windows = walkforward.walk_forward(equity, train_days=wf["train_days"], test_days=wf["test_days"],
                                       statistic=wf["statistic"]) if equity.shape[1] else \
        pd.DataFrame(columns=list(walkforward.WINDOW_COLUMNS))
    wf_summary = walkforward.summarize(equity, windows, statistic=wf["statistic"], train_days=wf["train_days"],
                                       test_days=wf["test_days"])
    best = best_config(table, spec.keys)
    dsr, note = _deflated(table, equity, best)
    seconds = time.perf_counter() - t0
    result_counts = {"configs": len(configs), "done": len(todo), "skipped": skipped,
                     "failed": int(table["error"].notna().sum())}
    summary = {"spec": spec.to_dict(), "spec_hash": spec.spec_hash(), **result_counts, "seconds": seconds,
               "prepare_seconds": prepare_seconds, "mode": mode, "workers": n_workers,
               "config_seconds": {"sum": float(table["seconds"].sum()), "median": float(table["seconds"].median())},
               "best": best, "walk_forward": wf_summary.to_dict(),
               "walk_forward_windows": window_records(windows),
               "deflated_sharpe": None if dsr is None else dsr.to_dict(), "deflated_note": note}
    paths = store.write_results(table, equity, summary)
    return SweepResult(spec=spec, table=table, equity=equity, walk_forward=windows, walk_forward_summary=wf_summary,
                       deflated_sharpe=dsr, deflated_note=note, best=best, paths=paths, folder=folder,
                       seconds=seconds, prepare_seconds=prepare_seconds, mode=mode, workers=n_workers,
                       **result_counts)


def _run_pool(n: int, todo: list[SweepConfig], shared: SharedInputs, stored) -> None:
    pool = cf.ProcessPoolExecutor(max_workers=n, initializer=_init_pool_worker, initargs=(shared,))
    try:
        futures = [pool.submit(_pool_task, b) for b in batches(todo, n)]
        for f in cf.as_completed(futures):
            for outcome in f.result():
                stored(outcome)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _run_dask(address: str, todo: list[SweepConfig], shared: SharedInputs, stored) -> int:
    # lazy: start-up time — distributed (tornado, the comms) loads only for a cluster run
    from distributed import Client, as_completed

    with Client(address) as client:
        client.run(worker_setup)
        n = len(client.scheduler_info()["workers"])
        remote = client.scatter(shared, broadcast=True)
        tasks = batches(todo, n)
        futures = client.map(run_batch, tasks, shared=remote, key=[f"sweep-{b[0].config_id}-{len(b)}" for b in tasks])
        try:
            for f in as_completed(futures):
                for outcome in f.result():
                    stored(outcome)
        except BaseException:
            client.cancel(futures)
            raise
    return n


def window_records(windows: pd.DataFrame) -> list[dict]:
    """The walk-forward table as JSON-ready records, its dates as ``YYYY-MM-DD``."""
    out = windows.copy()
    for col in ("train_start", "train_end", "test_start", "test_end"):
        out[col] = [pd.Timestamp(v).date() for v in out[col]]
    return jsonable(out.to_dict(orient="records"))


def best_config(table: pd.DataFrame, keys, statistic: str = "sharpe") -> dict | None:
    """The row with the highest ``statistic`` (ties: the first in the table's order), as ``config_id``,
    ``values`` (the grid keys) and ``stats`` (:data:`STAT_KEYS`); None when no row has the statistic."""
    col = pd.to_numeric(table[statistic], errors="coerce")
    if not col.notna().any():
        return None
    row = table.loc[col.idxmax()]
    return jsonable({"config_id": row["config_id"], "values": {k: row[k] for k in keys},
                     "stats": {k: row[k] for k in STAT_KEYS}, "statistic": statistic})


def _deflated(table: pd.DataFrame, equity: pd.DataFrame, best: dict | None):
    """(DeflatedSharpe or None, why not) of the best configuration, from the equity curves' daily returns (the
    trials: every configuration with a defined Sharpe ratio on those returns)."""
    if best is None or equity.shape[1] == 0:
        return None, "no configuration has a Sharpe ratio"
    rets = walkforward.daily_returns(equity)
    sr = walkforward.statistic_of(rets, "sharpe")
    trials = sr[sr.notna()]
    best_id = best["config_id"]
    if best_id not in trials.index:
        return None, f"the best configuration {best_id} has no Sharpe ratio on its daily returns"
    try:
        return deflated.deflated_sharpe_ratio(rets[best_id].to_numpy(), trials.to_numpy()), None
    except SweepStatisticError as exc:
        return None, str(exc)


__all__ = ["SCHEDULER_ENV", "SweepResult", "best_config", "run_sweep", "worker_setup"]
