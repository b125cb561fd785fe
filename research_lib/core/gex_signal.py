"""How good a daily GEX series is as a regime signal: agreement with a reference series, noise, and what it
tells about the next days' realised volatility.

Flat pure functions on date-indexed Series (empyrical style). The measures of issue 11's table:

* :func:`correlation` and :func:`sign_agreement` with a reference (SqueezeMetrics' published GEX), on the
  days both have a value;
* :func:`relative_noise`: the standard deviation of day-to-day changes over the mean absolute level
  (unit-free, so series in different units compare);
* :func:`forward_realised_vol`: the annualised close-to-close realised volatility of the index over the
  ``horizon`` sessions after each day (in vol points), and :func:`rv_separation`: its mean on the days the
  series is negative minus its mean on the days it is positive — positive when negative gamma is followed by
  larger moves, which is what GEX is supposed to tell a trader.

:func:`signal_measures` gathers them for one series; :data:`GOALS` are the issue's targets.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from research_lib.errors import NothingToComputeError
from research_lib.formatting import jsonable

#: Annualisation of daily returns.
SESSIONS_PER_YEAR = 252

#: Fewest days on each side (series < 0, series > 0) for a realised-volatility separation to be measured: with
#: fewer, one or two days' moves would decide it (the published series has one negative day in the 2026 archive).
MIN_SIDE_DAYS = 5

#: The targets of issue 11 (correlation by archive year; the rest on every archive).
GOALS = {"correlation_2019": 0.90, "correlation_2026": 0.80, "sign_agreement": 0.85, "noise_vs_reference": 1.5}


def _aligned(series: pd.Series, reference: pd.Series) -> pd.DataFrame:
    both = pd.concat([series.rename("x"), reference.rename("ref")], axis=1).dropna()
    if len(both) < 3:
        raise NothingToComputeError(f"only {len(both)} days with both series: at least 3 are needed")
    return both


def correlation(series: pd.Series, reference: pd.Series) -> float:
    """Pearson correlation of the levels on the days both have a value."""
    both = _aligned(series, reference)
    return float(both["x"].corr(both["ref"]))


def sign_agreement(series: pd.Series, reference: pd.Series) -> float:
    """Share of the common days (0-1) on which both series have the same sign (a zero matches only a zero)."""
    both = _aligned(series, reference)
    return float((np.sign(both["x"]) == np.sign(both["ref"])).mean())


def relative_noise(series: pd.Series) -> float:
    """``std(day-to-day change) / mean(|level|)`` over the observations in order (unit-free).

    NaN values are dropped first; consecutive observations count as consecutive days (an archive's missing
    days are not filled). Raises NothingToComputeError with fewer than 3 observations or a zero level.
    """
    s = series.dropna()
    if len(s) < 3:
        raise NothingToComputeError(f"relative noise needs at least 3 observations, got {len(s)}")
    level = float(s.abs().mean())
    if level == 0:
        raise NothingToComputeError("relative noise of a series that is 0 everywhere is undefined")
    return float(s.diff().std() / level)


def forward_realised_vol(close: pd.Series, horizon: int = 1) -> pd.Series:
    """Annualised realised volatility over the ``horizon`` sessions after each date, in vol points.

    ``100 × sqrt(252 / h × Σ_{i=1..h} r_{t+i}²)`` with ``r`` the close-to-close log return; NaN for the last
    ``horizon`` dates (the future is not known). ``close`` is a date-indexed series of index closes.
    """
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a whole number of sessions >= 1, got {horizon!r}")
    c = close.dropna().sort_index()
    if (c <= 0).any():
        raise ValueError("closes must be positive")
    r2 = np.log(c).diff() ** 2
    ahead = sum(r2.shift(-i) for i in range(1, horizon + 1))
    return 100.0 * np.sqrt(SESSIONS_PER_YEAR / horizon * ahead)


@dataclasses.dataclass(frozen=True)
class RvSeparation:
    """Mean forward realised vol on negative-series days against positive-series days.

    Attributes
    ----------
    horizon : int
        Sessions ahead.
    negative, positive : float
        Mean forward RV (vol points) on the days the series is < 0 / > 0; NaN when there is no such day.
    n_negative, n_positive : int
    separation : float
        ``negative − positive`` (vol points); NaN unless both sides have at least ``min_days`` days.
    min_days : int
        That minimum (:data:`MIN_SIDE_DAYS` by default).
    """

    horizon: int
    negative: float
    positive: float
    n_negative: int
    n_positive: int
    separation: float
    min_days: int = MIN_SIDE_DAYS

    def to_dict(self) -> dict:
        return jsonable(dataclasses.asdict(self))


def rv_separation(series: pd.Series, close: pd.Series, horizon: int = 1, *,
                  min_days: int = MIN_SIDE_DAYS) -> RvSeparation:
    """:class:`RvSeparation` of ``series`` against the index ``close`` (dates of both are normalised to days).

    The two means are reported whenever a side has a day; the separation only when both sides have at least
    ``min_days`` days (else NaN: not measurable on this sample)."""
    rv = forward_realised_vol(close, horizon)
    rv.index = pd.DatetimeIndex(rv.index).normalize()
    s = series.dropna()
    ahead = rv.reindex(pd.DatetimeIndex(s.index).normalize()).to_numpy()
    x = s.to_numpy()
    ok = np.isfinite(ahead)
    neg, pos = ahead[ok & (x < 0)], ahead[ok & (x > 0)]
    def mean(a: np.ndarray) -> float:
        return float(a.mean()) if len(a) else math.nan

    sep = mean(neg) - mean(pos) if min(len(neg), len(pos)) >= max(int(min_days), 1) else math.nan
    return RvSeparation(horizon=int(horizon), negative=mean(neg), positive=mean(pos), n_negative=int(len(neg)),
                        n_positive=int(len(pos)), separation=float(sep), min_days=int(min_days))


def signal_measures(series: pd.Series, reference: pd.Series | None, close: pd.Series | None) -> dict:
    """Every measure of one series: ``n`` (days), ``mean`` (level), ``correlation``, ``sign_agreement``,
    ``noise`` (relative), ``noise_vs_reference`` (its ratio to the reference's on the same days),
    ``rv1_separation`` / ``rv5_separation`` with their ``n_negative`` counts (NaN when a side has fewer than
    :data:`MIN_SIDE_DAYS` days). Missing inputs give NaN."""
    s = series.dropna()
    out = {"n": int(len(s)), "mean": float(s.mean()) if len(s) else math.nan}
    nan = math.nan
    if reference is not None:
        both = _aligned(s, reference)
        out["correlation"] = correlation(both["x"], both["ref"])
        out["sign_agreement"] = sign_agreement(both["x"], both["ref"])
        out["noise"] = relative_noise(both["x"])
        out["noise_vs_reference"] = out["noise"] / relative_noise(both["ref"])
    else:
        out.update(correlation=nan, sign_agreement=nan, noise=relative_noise(s), noise_vs_reference=nan)
    for h in (1, 5):
        if close is None:
            out[f"rv{h}_separation"], out[f"rv{h}_n_negative"] = nan, 0
            continue
        sep = rv_separation(s, close, h)
        out[f"rv{h}_separation"] = sep.separation
        out[f"rv{h}_n_negative"] = sep.n_negative
    return out


__all__ = ["GOALS", "MIN_SIDE_DAYS", "RvSeparation", "SESSIONS_PER_YEAR", "correlation", "forward_realised_vol",
           "relative_noise", "rv_separation", "sign_agreement", "signal_measures"]
