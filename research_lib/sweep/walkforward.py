"""Walk-forward evaluation of a sweep: choose on a training window, report the next window out of sample, roll.

Pure functions over the sweep's equity matrix (no I/O). The statistic of a window is computed from the **daily
returns of the equity curve** ``r_t = equity_t / equity_{t-1} - 1`` (so an equity matrix of N days has N - 1
returns; the first day has no return, the initial account not being part of the matrix):

- ``sharpe``: ``mean(r) / std(r, ddof=1) × √252`` (risk-free rate 0, like the backtest's statistics);
  undefined (NaN) when the returns do not vary or there are fewer than 2;
- ``total_return``: ``Π(1 + r) − 1``;
- ``mean_return``: ``mean(r) × 252`` (annualised arithmetic mean).

Windows (in returns, i.e. sessions after the first): training ``[i, i + train_days)``, test
``[i + train_days, i + train_days + test_days)``, then ``i += test_days``; the last test window may be shorter
but has at least ``max(2, test_days // 2)`` returns (a statistic on a handful of days says nothing), else it is
not formed. In each window the configuration
with the highest in-sample statistic is chosen (ties: the first column; configurations whose statistic is
undefined are never chosen); its out-of-sample statistic is reported beside the median out-of-sample statistic of
every configuration (what a choice at random would have given, typically).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from research_lib.errors import SweepStatisticError

#: Sessions a year (annualisation).
SESSIONS_PER_YEAR = 252
#: The statistics a walk-forward can rank by.
STATISTICS = ("sharpe", "total_return", "mean_return")
#: The columns of :func:`walk_forward`'s table.
WINDOW_COLUMNS = ("train_start", "train_end", "test_start", "test_end", "config_id", "in_sample", "out_of_sample",
                  "oos_median", "configs")


def daily_returns(equity: pd.DataFrame) -> pd.DataFrame:
    """``equity_t / equity_{t-1} - 1`` of every column, the first row dropped.

    Raises
    ------
    SweepStatisticError
        A non-finite or non-positive equity.
    """
    values = equity.to_numpy(dtype=float)
    if values.size and (not np.isfinite(values).all() or (values <= 0).any()):
        raise SweepStatisticError("equity must be positive and finite on every day to have returns")
    return equity.astype(float).pct_change().iloc[1:]


def statistic_of(returns: pd.DataFrame, statistic: str = "sharpe",
                 sessions_per_year: int = SESSIONS_PER_YEAR) -> pd.Series:
    """The statistic of each column of a returns table (see the module docstring); NaN where undefined."""
    if statistic not in STATISTICS:
        raise SweepStatisticError(f"statistic {statistic!r}: one of {', '.join(STATISTICS)}")
    r = returns.to_numpy(dtype=float)
    n = r.shape[0]
    if statistic == "total_return":
        out = np.prod(1.0 + r, axis=0) - 1.0 if n else np.zeros(r.shape[1])
    elif statistic == "mean_return":
        out = r.mean(axis=0) * sessions_per_year if n else np.full(r.shape[1], np.nan)
    else:
        if n < 2:
            out = np.full(r.shape[1], np.nan)
        else:
            sd = r.std(axis=0, ddof=1)
            mean = r.mean(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                out = np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0) * math.sqrt(sessions_per_year), np.nan)
    return pd.Series(out, index=returns.columns, dtype=float)


def walk_forward(equity: pd.DataFrame, *, train_days: int = 504, test_days: int = 252,
                 statistic: str = "sharpe") -> pd.DataFrame:
    """Rolling walk-forward windows over a sweep's equity curves.

    Parameters
    ----------
    equity : DataFrame
        Dates (ascending) × configurations (the config ids as columns), $; every configuration over the same
        days, positive and finite.
    train_days, test_days : int
        Returns (sessions) in each training and test window (≥ 2).
    statistic : str
        ``sharpe``, ``total_return`` or ``mean_return`` (see the module docstring).

    Returns
    -------
    DataFrame
        One row per window (:data:`WINDOW_COLUMNS`): ``train_start``, ``train_end``, ``test_start``, ``test_end``
        (dates, both ends included), ``config_id`` (the chosen configuration, None when no statistic was defined
        in training), ``in_sample`` (its training statistic), ``out_of_sample`` (its test statistic),
        ``oos_median`` (the median test statistic over the configurations where it is defined), ``configs``
        (configurations ranked). Empty when the data is shorter than one training window plus
        ``max(2, test_days // 2)`` test returns.

    Raises
    ------
    SweepStatisticError
        Bad window lengths, an unknown statistic, dates not ascending, or a non-positive equity.
    """
    for name, v in (("train_days", train_days), ("test_days", test_days)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 2:
            raise SweepStatisticError(f"{name} {v!r}: a whole number of sessions >= 2")
    if statistic not in STATISTICS:
        raise SweepStatisticError(f"statistic {statistic!r}: one of {', '.join(STATISTICS)}")
    if not equity.index.is_monotonic_increasing or equity.index.has_duplicates:
        raise SweepStatisticError("the equity's dates must be ascending and unique")
    rets = daily_returns(equity)
    rows = []
    i = 0
    n = len(rets)
    min_test = max(2, test_days // 2)
    while i + train_days + min_test <= n:
        train = rets.iloc[i:i + train_days]
        test = rets.iloc[i + train_days:i + train_days + test_days]
        ins = statistic_of(train, statistic)
        oos = statistic_of(test, statistic)
        chosen = ins.idxmax() if ins.notna().any() else None
        rows.append({"train_start": train.index[0], "train_end": train.index[-1], "test_start": test.index[0],
                     "test_end": test.index[-1], "config_id": chosen,
                     "in_sample": float(ins[chosen]) if chosen is not None else math.nan,
                     "out_of_sample": float(oos[chosen]) if chosen is not None else math.nan,
                     "oos_median": float(oos.median()) if oos.notna().any() else math.nan,
                     "configs": int(ins.notna().sum())})
        i += test_days
    return pd.DataFrame(rows, columns=list(WINDOW_COLUMNS))


def stitched_returns(equity: pd.DataFrame, windows: pd.DataFrame) -> pd.Series:
    """The out-of-sample daily returns of the walk-forward: in each test window, the chosen configuration's
    returns (a window without a choice contributes nothing), concatenated in date order."""
    rets = daily_returns(equity)
    parts = [rets.loc[w.test_start:w.test_end, w.config_id] for w in windows.itertuples()
             if w.config_id is not None]
    if not parts:
        return pd.Series(dtype=float, name="oos_return")
    return pd.concat(parts).rename("oos_return")


@dataclasses.dataclass(frozen=True)
class WalkForwardSummary:
    """The walk-forward in figures.

    Attributes
    ----------
    statistic : str
    train_days, test_days, windows : int
    oos_days : int
        Returns in the stitched out-of-sample series.
    oos_statistic : float or None
        The statistic of the stitched out-of-sample returns (None: undefined or no window).
    oos_total_return : float or None
    mean_in_sample, mean_out_of_sample, mean_oos_median : float or None
        Means over the windows of the chosen configuration's in-sample and out-of-sample statistic and of the
        windows' out-of-sample medians.
    """

    statistic: str
    train_days: int
    test_days: int
    windows: int
    oos_days: int
    oos_statistic: float | None
    oos_total_return: float | None
    mean_in_sample: float | None
    mean_out_of_sample: float | None
    mean_oos_median: float | None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def summarize(equity: pd.DataFrame, windows: pd.DataFrame, *, statistic: str = "sharpe", train_days: int = 504,
              test_days: int = 252) -> WalkForwardSummary:
    """The :class:`WalkForwardSummary` of :func:`walk_forward`'s ``windows`` over ``equity``."""
    oos = stitched_returns(equity, windows)
    frame = oos.to_frame()
    stat = statistic_of(frame, statistic).iloc[0] if len(oos) else math.nan
    total = float(np.prod(1.0 + oos.to_numpy()) - 1.0) if len(oos) else math.nan

    def mean(col):
        v = windows[col].to_numpy(dtype=float) if len(windows) else np.empty(0)
        v = v[np.isfinite(v)]
        return _num(v.mean()) if len(v) else None

    return WalkForwardSummary(statistic=statistic, train_days=train_days, test_days=test_days,
                              windows=len(windows), oos_days=len(oos), oos_statistic=_num(stat),
                              oos_total_return=_num(total), mean_in_sample=mean("in_sample"),
                              mean_out_of_sample=mean("out_of_sample"), mean_oos_median=mean("oos_median"))


__all__ = ["SESSIONS_PER_YEAR", "STATISTICS", "WINDOW_COLUMNS", "WalkForwardSummary", "daily_returns",
           "statistic_of", "stitched_returns", "summarize", "walk_forward"]
