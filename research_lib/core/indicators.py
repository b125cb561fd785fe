"""Indicators of a daily series: IV rank, IV percentile, moving averages (pure, vectorised).

Each takes a Series (or anything :class:`pandas.Series` accepts; a DataFrame is done column by column)
indexed by date and returns the same shape, NaN until a window is full (or ``min_periods`` is reached).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _as_series(series) -> pd.Series:
    if isinstance(series, pd.Series):
        s = series.astype(float)
    else:
        arr = np.asarray(series, dtype=float)
        if arr.ndim != 1:
            raise ValueError(f"expected a 1-D series, got shape {arr.shape}")
        s = pd.Series(arr)
    return s.where(np.isfinite(s.to_numpy()))


def _check_window(window: int, min_periods: int | None, name: str = "window") -> tuple[int, int]:
    if isinstance(window, bool) or int(window) != window or window < 1:
        raise ValueError(f"{name} must be a positive integer, got {window!r}")
    window = int(window)
    mp = window if min_periods is None else min_periods
    if isinstance(mp, bool) or int(mp) != mp or not 1 <= mp <= window:
        raise ValueError(f"min_periods must be an integer in [1, {window}], got {min_periods!r}")
    return window, int(mp)


def iv_rank(series, window: int = 252, *, min_periods: int | None = None):
    """Implied-volatility rank over a trailing window: ``(x - min) / (max - min)``.

    Parameters
    ----------
    series : Series or 1-D array-like (a DataFrame is handled column by column)
        E.g. VIX closes. Non-finite values are missing.
    window : int, default 252
        Observations (rows) in the trailing window, today included.
    min_periods : int, optional
        Fewest non-missing observations a window needs; default ``window``.

    Returns
    -------
    Series (or DataFrame), same index
        In [0, 1]: 0 at the window's low, 1 at its high. NaN where today's value is missing, where the
        window holds fewer than ``min_periods`` non-missing observations, and where max == min (a flat
        window has no rank). Empty input gives an empty result.
    """
    if isinstance(series, pd.DataFrame):
        return series.apply(lambda c: iv_rank(c, window, min_periods=min_periods))
    window, mp = _check_window(window, min_periods)
    s = _as_series(series)
    roll = s.rolling(window, min_periods=mp)
    lo, hi = roll.min(), roll.max()
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (s - lo) / span.where(span > 0)
    return out.clip(0.0, 1.0).rename(s.name)


#: Rows per block in :func:`iv_percentile` (bounds memory at block × window comparisons).
_PERCENTILE_BLOCK = 65536


def iv_percentile(series, window: int = 252, *, min_periods: int | None = None):
    """Implied-volatility percentile: the share of the trailing window strictly below today's value.

    ``count(x_i < x_today) / count(non-missing x_i)`` over the trailing ``window`` observations, today
    included (so the result is in [0, (n-1)/n]: 0 at a new low, just under 1 at a new high; ties count as
    not below).

    Parameters
    ----------
    series : Series or 1-D array-like (a DataFrame is handled column by column)
        Non-finite values are missing.
    window : int, default 252
        Observations in the trailing window, today included.
    min_periods : int, optional
        Fewest non-missing observations a window needs; default ``window``.

    Returns
    -------
    Series (or DataFrame), same index
        In [0, 1). NaN where today's value is missing or the window holds fewer than ``min_periods``
        non-missing observations.
    """
    if isinstance(series, pd.DataFrame):
        return series.apply(lambda c: iv_percentile(c, window, min_periods=min_periods))
    window, mp = _check_window(window, min_periods)
    s = _as_series(series)
    x = s.to_numpy(dtype=float)
    n = len(x)
    out = np.full(n, np.nan)
    if n:
        padded = np.concatenate([np.full(window - 1, np.nan), x])
        block = _PERCENTILE_BLOCK
        for start in range(0, n, block):
            stop = min(n, start + block)
            win = np.lib.stride_tricks.sliding_window_view(padded[start: stop + window - 1], window)
            cur = x[start:stop, None]
            count = (~np.isnan(win)).sum(axis=1)
            below = (win < cur).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                res = below / count
            res[(count < mp) | np.isnan(x[start:stop])] = np.nan
            out[start:stop] = res
    return pd.Series(out, index=s.index, name=s.name)


def moving_average(series, n: int, *, min_periods: int | None = None):
    """Simple moving average over the trailing ``n`` observations (today included).

    Parameters
    ----------
    series : Series, DataFrame or 1-D array-like
        Non-finite values are missing and skipped.
    n : int
        Window length in observations (rows), not calendar days.
    min_periods : int, optional
        Fewest non-missing observations a window needs; default ``n``.

    Returns
    -------
    Series (or DataFrame), same index
        The mean of the non-missing values in each window; NaN where there are fewer than
        ``min_periods`` of them.
    """
    n, mp = _check_window(n, min_periods, name="n")
    if isinstance(series, pd.DataFrame):
        frame = series.astype(float)
        frame = frame.where(np.isfinite(frame.to_numpy()))
        return frame.rolling(n, min_periods=mp).mean()
    s = _as_series(series)
    return s.rolling(n, min_periods=mp).mean()
