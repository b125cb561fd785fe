"""The two engines a sweep runs, behind one pair of functions: :func:`prepare` builds the inputs every
configuration shares (once per sweep, sent once to each worker), :func:`run_one` runs one configuration on them.

- ``chains``: the real daily chains of an archive or the store (:class:`~research_lib.backtest.feed.Feed`), read
  once into a list of snapshots, and the underlying's daily history for the settlements;
  :func:`research_lib.backtest.engine.run_backtest` on them.
- ``history``: the model-priced history (:func:`research_lib.backtest.history.history_inputs`: the day table and
  the model's per-day surfaces); :func:`research_lib.backtest.fastpath.run_history_fast` on it where it applies
  (when-flat entries, one position: the defaults), else :func:`research_lib.backtest.history.run_history_backtest`
  (the same results, day by day).

A configuration whose run raises a :class:`~research_lib.errors.ResearchLibError` (no chain in range, a
settlement the history lacks, statistics on an impossible curve...) is an outcome with its ``error``, not an
exception: the sweep goes on and the results table says which configuration failed and why.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pandas as pd

from research_lib.backtest.engine import run_backtest
from research_lib.backtest.params import BacktestParams
from research_lib.backtest.stats import SUMMARY_KEYS, backtest_stats, summary_record
from research_lib.errors import ResearchLibError
from research_lib.sweep.grid import SweepConfig, SweepSpec

#: The statistics of each configuration, named like the keys of ``research-lib backtest chains --json``.
STAT_KEYS = tuple(k for k in SUMMARY_KEYS if k not in ("start", "end", "days", "missing_days", "assumptions")
                  and not k.endswith("_path"))


@dataclasses.dataclass(frozen=True, eq=False)
class SharedInputs:
    """What every configuration of a sweep reads (picklable: sent once to each worker).

    Attributes
    ----------
    engine : str
        ``chains`` or ``history``.
    data : Any
        ``chains``: the list of :class:`~research_lib.core.chain.ChainSnapshot`; ``history``: the
        ``HistoryInputs``.
    daily : DataFrame or None
        ``chains``: the underlying's daily history (``open``, ``close``) for the settlements.
    market_dir : str or None
        The market history folder (rates).
    description : str
        What was read (for the log and ``sweep.json``).
    seconds : float
        Time to build these inputs.
    """

    engine: str
    data: Any
    daily: pd.DataFrame | None
    market_dir: str | None
    description: str
    seconds: float


@dataclasses.dataclass(frozen=True, eq=False)
class ConfigOutcome:
    """One configuration's result.

    Attributes
    ----------
    config_id : str
    stats : dict
        :data:`STAT_KEYS` → value (strict-JSON values: None where undefined or infinite, as in the backtest's
        JSON); every value None when the run failed.
    equity : Series
        The daily equity ($), indexed by trading date (Timestamp); empty when the run failed.
    seconds : float
        Wall time of the run (backtest and statistics).
    error : str or None
        ``ErrorClass: message`` of a failed run.
    """

    config_id: str
    stats: dict
    equity: pd.Series
    seconds: float
    error: str | None = None


def prepare(spec: SweepSpec, *, market_dir=None) -> SharedInputs:
    """The inputs every configuration of ``spec`` shares, read once.

    Parameters
    ----------
    spec : SweepSpec
    market_dir : path, optional
        Market history folder (default: the project's market data).

    Raises
    ------
    BacktestInputError
        A chain source without a clean day in the range.
    """
    t0 = time.perf_counter()
    md = None if market_dir is None else str(market_dir)
    start, end = spec.fixed.get("start"), spec.fixed.get("end")
    if spec.engine == "history":
        # lazy: start-up time — the model-priced history (surfaces, calendars) loads only for a history sweep
        from research_lib.backtest.history import history_inputs

        inputs = history_inputs(start, end, market_dir=md)
        return SharedInputs(engine="history", data=inputs, daily=None, market_dir=md,
                            description=f"model-priced history {start or '...'}..{end or '...'}",
                            seconds=time.perf_counter() - t0)
    # lazy: start-up time — the chain readers and the market loaders load only for a chains sweep
    from research_lib.backtest.feed import Feed
    from research_lib.data.market import load_index_daily

    feed = Feed(spec.source, spec.symbol, start=start, end=end)
    snaps = list(feed)
    daily = load_index_daily("SPX" if spec.symbol in ("SPX", "SPXW") else spec.symbol, market_dir=md)
    return SharedInputs(engine="chains", data=snaps, daily=daily, market_dir=md, description=feed.describe(),
                        seconds=time.perf_counter() - t0)


def _backtest(params: BacktestParams, shared: SharedInputs):
    if shared.engine == "history":
        # lazy: start-up time — the model-priced history loads only for a history sweep
        from research_lib.backtest.fastpath import run_history_fast, supports
        from research_lib.backtest.history import run_history_backtest

        # the fast path (trade by trade, memoised across the configurations a worker runs) where it applies:
        # its results equal the day-by-day engine's (tests/test_history_fastpath.py)
        if supports(params) is None:
            return run_history_fast(params, shared.data)
        return run_history_backtest(params, shared.data)
    return run_backtest(shared.data, params, daily=shared.daily, market_dir=shared.market_dir)


def run_one(config: SweepConfig, shared: SharedInputs) -> ConfigOutcome:
    """Run one configuration on the shared inputs: the backtest, then its statistics.

    A :class:`~research_lib.errors.ResearchLibError` of the run is recorded in the outcome (``error``), every
    statistic None and the equity empty; any other exception is a bug and propagates.
    """
    t0 = time.perf_counter()
    try:
        result = _backtest(config.backtest_params(), shared)
        record = summary_record(result, backtest_stats(result))
    except ResearchLibError as exc:
        return ConfigOutcome(config_id=config.config_id, stats=dict.fromkeys(STAT_KEYS), equity=_empty_equity(),
                             seconds=time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}")
    eq = result.equity
    equity = pd.Series(eq["equity"].to_numpy(dtype=float), index=pd.DatetimeIndex(pd.to_datetime(eq["date"]),
                                                                                 name="date"), name="equity")
    return ConfigOutcome(config_id=config.config_id, stats={k: record[k] for k in STAT_KEYS}, equity=equity,
                         seconds=time.perf_counter() - t0)


def _empty_equity() -> pd.Series:
    return pd.Series([], index=pd.DatetimeIndex([], name="date"), dtype=float, name="equity")


__all__ = ["ConfigOutcome", "STAT_KEYS", "SharedInputs", "prepare", "run_one"]
