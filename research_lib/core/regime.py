"""Market regime: dealer gamma (positive / negative / neutral), trend, IV rank, and the action they suggest.

The classifier reads one day's inputs (:class:`RegimeInputs`) and returns a :class:`RegimeResult`: the gamma
regime, the trend, a confidence 0-100, an action and the reasons, each a sentence built from the numbers.
Every threshold is a field of :class:`RegimeParams`, in units that carry across underlyings and years.

Rules (defaults in brackets)
----------------------------
GEX measure
    With a ``net_gex_history`` of at least ``min_gex_history`` [60] observations: net GEX relative to its own
    trailing typical size, ``net_gex / median(|net_gex_history|)`` over the last ``gex_window`` [252]
    observations (a signed, unit-free number: +1 means "as long gamma as usual"). Otherwise the share of
    gross GEX, ``net_gex / (|call_gex| + |put_gex|)`` (in [-1, 1]). A gross GEX or a trailing median below
    :data:`MIN_GEX_SCALE` [$1 per 1% move] is "no exposure": that scale is not used (nothing to divide by). A centred z-score is deliberately not
    used: published GEX is positive on ~90% of days, so "below its mean" would call ordinary long-gamma
    days negative. The history must be in the same units and convention as ``net_gex``.
Gamma regime
    ``POSITIVE_GAMMA`` when the measure is at or above its positive threshold [+0.25 relative, +0.05 of
    gross] and spot is at least the buffer above zero gamma; ``NEGATIVE_GAMMA`` when the measure is at or
    below its negative threshold [-0.25, -0.05] or spot is at least the buffer below zero gamma;
    ``NEUTRAL`` otherwise. The buffer is ``zero_gamma_buffer_pct`` [0.5] % of spot, or, when
    ``zero_gamma_buffer_em`` is set and VIX is known, that many expected moves of ``expected_move_days``
    [1] calendar days, ``EM% = VIX × sqrt(days / 365)``. With no zero-gamma level (``None``: the profile
    has no flip in its grid) the GEX measure alone decides.
Trend
    ``UPTREND`` when MA20 is at least ``trend_band_pct`` [0.5] % above MA50 and spot is not more than the
    band below MA20; ``DOWNTREND`` mirrored; ``SIDEWAYS`` otherwise (a pull-back through MA20 by more than
    the band, or MAs within the band of each other). MAs are simple means of the last 20 / 50 closes.
IV
    IV rank ``(VIX - min) / (max - min)`` and IV percentile (share of the window strictly below VIX) over
    the last ``iv_window`` [252] VIX closes, both in percent (0-100). They equal
    :func:`research_lib.core.indicators.iv_rank` / :func:`~research_lib.core.indicators.iv_percentile` × 100 when the
    history ends with the day's VIX.
Action
    ``SELL_PREMIUM``: positive gamma and IV rank above ``iv_rank_sell`` [40]. ``BUY_DIRECTIONAL``: negative
    gamma and a clear trend (buy in the trend's direction). ``STAY_OUT`` otherwise.
Confidence
    ``base`` [50] plus the action's evidence: SELL_PREMIUM ``+ gex_score + iv_score + term_score``;
    BUY_DIRECTIONAL ``- gex_score - iv_score + |trend_score|`` (cheap options help a buyer); STAY_OUT, the
    no-trade default, adds nothing. Each missing input costs ``missing_penalty`` [10]. Clipped to [0, 100].
    The scores are signed (see :class:`RegimeScores`): ``gex_score`` in ±``weight_gex`` [25] (+ long
    gamma: the mean of ``measure / (2 × threshold)`` and ``distance to zero gamma / (2 × buffer)``, each
    clipped to ±1), ``iv_score`` in ±``weight_iv`` [20] (+ rich premium: 0 at ``iv_rank_sell``, full at
    IV rank 100 or -full at 0), ``trend_score`` in ±``weight_trend`` [15] (+ up: the two MA gaps summed
    over 4 × the band), ``term_score`` in ±``weight_term`` [10] (+ contango: ``(backwardation_ratio -
    VIX/VIX3M) / term_full_scale``).
Term structure (wording)
    Each segment is named from its own ratio: VIX/VIX3M at or above ``backwardation_ratio`` [1.0] is
    backwardation, below it contango; VIX9D/VIX above ``front_backwardation_ratio`` [1.0] (VIX9D above VIX)
    is a front-end backwardation, at or below it contango. Both in contango: "in contango"; both inverted:
    "in backwardation (stress)"; otherwise the sentence says which segment is which. Only VIX/VIX3M feeds
    the score.
Distance to zero gamma
    One computation everywhere (regime reasons, alerts, the decision's *why*):
    :func:`zero_gamma_distance_pct` ``= (spot - zero_gamma) / spot × 100`` (% of spot, the unit of the
    buffer), worded by :func:`describe_zero_gamma_distance` with two decimals ("7.84% below").

Missing and bad input
---------------------
``None`` means missing. A missing spot gives ``NEUTRAL``; a missing net GEX (or no way to scale it: no
gross GEX and no long enough history) gives ``NEUTRAL`` unless spot is below zero gamma by the buffer; a
missing VIX or price history leaves the gamma regime alone and the action ``STAY_OUT`` where it needs
it. Every reason names what was missing. ``require_complete=True`` gives NEUTRAL / STAY_OUT whenever any
input is missing. A history whose last observation is more than
``max_history_age_days`` [7] calendar days before the date counts as missing. Bad values (NaN, inf,
negative spot, a history running past the date) raise :class:`RegimeInputError` naming the field.

Example
-------
>>> from research_lib import gex, regime
>>> from research_lib.pipeline.inputs import regime_inputs_for
>>> analysis = gex.analyze(snapshot)                           # doctest: +SKIP
>>> inputs = regime_inputs_for(analysis.levels)                 # doctest: +SKIP
>>> result = regime.classify_regime(inputs)                     # doctest: +SKIP
>>> result.regime, result.trend, result.action, result.confidence, result.reasons   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from typing import Any

import numpy as np
import pandas as pd

from research_lib.checks import FieldChecks
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    RegimeInputError as RegimeInputError,
    RegimeParamsError as RegimeParamsError,
)
from research_lib.formatting import fmt_money, jsonable
from research_lib.settings import NY

__all__ = [
    "Action",
    "Regime",
    "RegimeInputError",
    "RegimeInputs",
    "RegimeParams",
    "RegimeParamsError",
    "RegimeResult",
    "RegimeScores",
    "Trend",
    "classify_regime",
    "describe_zero_gamma_distance",
    "zero_gamma_distance_pct",
]



_PARAM_CHECKS = FieldChecks(lambda field, value, why: RegimeParamsError(field, f"{why}, got {value!r}"))


class Regime(enum.StrEnum):
    """Dealer gamma regime."""

    POSITIVE_GAMMA = "POSITIVE_GAMMA"
    NEGATIVE_GAMMA = "NEGATIVE_GAMMA"
    NEUTRAL = "NEUTRAL"


class Trend(enum.StrEnum):
    """Price trend from the moving averages."""

    UPTREND = "UPTREND"
    DOWNTREND = "DOWNTREND"
    SIDEWAYS = "SIDEWAYS"


class Action(enum.StrEnum):
    """What the regime suggests doing."""

    SELL_PREMIUM = "SELL_PREMIUM"
    BUY_DIRECTIONAL = "BUY_DIRECTIONAL"
    STAY_OUT = "STAY_OUT"


# --------------------------------------------------------------------------------------------------
# parameters


@dataclasses.dataclass(frozen=True)
class RegimeParams:
    """Every threshold of :func:`classify_regime`, with its unit. Change one with :func:`dataclasses.replace`.

    Attributes
    ----------
    gex_rel_positive, gex_rel_negative : float
        Net GEX / median |net GEX| over the trailing ``gex_window`` observations of ``net_gex_history``
        (unit-free, signed). At or beyond these it is "clearly" positive / negative. Defaults +0.25 / -0.25:
        a quarter of the usual size. On SqueezeMetrics' published series 2012-2026 about 80% of days are at
        or above +0.25 and 4% at or below -0.25 (2020-03-16: -0.61; 2022-06-13: -0.80).
    gex_window, min_gex_history : int
        Observations in the trailing GEX window, and the fewest finite ones it needs (else the gross
        ratio is used).
    gex_ratio_positive, gex_ratio_negative : float
        Fallback measure, net GEX as a share of gross GEX ``|call_gex| + |put_gex|`` (in [-1, 1]).
        Defaults ±0.05: 5% of all the gamma on the book net to one side. Real SPX chains give -0.36
        (2022-06-11), -0.09 (2024-01-07), +0.04 (2023-09-14, on the flip).
    zero_gamma_buffer_pct : float
        Distance of spot from zero gamma, % of spot, that counts as clearly above / below. Default 0.5%,
        about half a day's expected move at VIX 20 (1-day EM = 20 / sqrt(365) = 1.05%).
    zero_gamma_buffer_em : float, optional
        When set and VIX is known, the buffer is this many expected moves of ``expected_move_days``
        instead: ``EM% = VIX × sqrt(expected_move_days / 365)``. Scales with the vol level.
    expected_move_days : float
        Horizon of that expected move, calendar days.
    iv_rank_sell : float
        IV rank (percent, 0-100) above which premium is rich enough to sell. Default 40 (the reference
        system's rule).
    iv_window, min_iv_history : int
        VIX observations in the IV-rank window (252 = a year), and the fewest it needs.
    trend_short, trend_long : int
        Moving-average windows, closes (20, 50).
    trend_band_pct : float
        % of price: MA20 must be this far beyond MA50, and spot not this far back through MA20, for a
        trend. 0.5% (about half a daily SPX move) calls 45% of S&P 500 days since 2000 up, 17% down and
        38% sideways.
    backwardation_ratio : float
        VIX / VIX3M at or above which the term structure counts as inverted (stress). Default 1.0.
    term_full_scale : float
        |1 - VIX / VIX3M| at which the term score is full. Default 0.10.
    front_backwardation_ratio : float
        VIX9D / VIX above which the front end of the term structure counts as inverted (VIX9D above VIX).
        Default 1.0. Wording only (see "Term structure" in the module docstring).
    confidence_base : float
        Confidence before evidence, 0-100.
    weight_gex, weight_iv, weight_trend, weight_term : float
        Largest magnitude of each score (confidence points).
    missing_penalty : float
        Confidence points lost per missing input.
    max_history_age_days : int
        A history whose last observation is more than this many calendar days before the date counts as
        missing (stale).
    require_complete : bool
        True: any missing input (zero gamma, VIX, price history included) gives NEUTRAL / STAY_OUT.
    """

    gex_rel_positive: float = 0.25
    gex_rel_negative: float = -0.25
    gex_window: int = 252
    min_gex_history: int = 60
    gex_ratio_positive: float = 0.05
    gex_ratio_negative: float = -0.05
    zero_gamma_buffer_pct: float = 0.5
    zero_gamma_buffer_em: float | None = None
    expected_move_days: float = 1.0
    iv_rank_sell: float = 40.0
    iv_window: int = 252
    min_iv_history: int = 252
    trend_short: int = 20
    trend_long: int = 50
    trend_band_pct: float = 0.5
    backwardation_ratio: float = 1.0
    term_full_scale: float = 0.10
    front_backwardation_ratio: float = 1.0
    confidence_base: float = 50.0
    weight_gex: float = 25.0
    weight_iv: float = 20.0
    weight_trend: float = 15.0
    weight_term: float = 10.0
    missing_penalty: float = 10.0
    max_history_age_days: int = 7
    require_complete: bool = False

    def __post_init__(self):
        check = _PARAM_CHECKS
        check.number("gex_rel_positive", self.gex_rel_positive, lo=0, lo_open=True)
        check.number("gex_rel_negative", self.gex_rel_negative, hi=0, hi_open=True)
        check.number("gex_ratio_positive", self.gex_ratio_positive, lo=0, hi=1, lo_open=True, hi_open=True)
        check.number("gex_ratio_negative", self.gex_ratio_negative, lo=-1, hi=0, lo_open=True, hi_open=True)
        for name in ("zero_gamma_buffer_pct", "trend_band_pct", "missing_penalty", "weight_gex", "weight_iv",
                     "weight_trend", "weight_term"):
            check.number(name, getattr(self, name), lo=0)
        check.number("zero_gamma_buffer_em", self.zero_gamma_buffer_em, lo=0, optional=True)
        check.number("expected_move_days", self.expected_move_days, lo=0, lo_open=True, unit="calendar days")
        check.number("iv_rank_sell", self.iv_rank_sell, lo=0, hi=100, hi_open=True, unit="IV rank, percent")
        check.number("confidence_base", self.confidence_base, lo=0, hi=100, unit="confidence, percent")
        for name in ("backwardation_ratio", "front_backwardation_ratio", "term_full_scale"):
            check.number(name, getattr(self, name), lo=0, lo_open=True)
        for window, minimum in (("gex_window", "min_gex_history"), ("iv_window", "min_iv_history")):
            w = check.whole(window, getattr(self, window), lo=2, unit="observations")
            m = check.whole(minimum, getattr(self, minimum), lo=2, unit="observations")
            check.require(m <= w, minimum, m, f"must be <= {window} ({w})")
        short = check.whole("trend_short", self.trend_short, lo=1, unit="closes")
        long_ = check.whole("trend_long", self.trend_long, lo=1, unit="closes")
        check.require(short < long_, "trend_short", short, f"must be shorter than trend_long ({long_})")
        check.whole("max_history_age_days", self.max_history_age_days, lo=0, unit="calendar days")
        check.flag("require_complete", self.require_complete)


# --------------------------------------------------------------------------------------------------
# inputs


def _as_date(value: Any, field: str) -> dt.date | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise RegimeInputError(field, f"{value!r} is not a date") from exc
    if ts is pd.NaT or pd.isna(ts):
        raise RegimeInputError(field, "is NaT; use None for a missing date")
    if ts.tzinfo is not None:
        ts = ts.tz_convert(NY)
    return ts.date()


#: Largest magnitude accepted, per kind of field (larger is a corrupt value, and would overflow the maths).
MAX_PRICE = 1e9
MAX_VOL_INDEX = 1000.0
MAX_GEX = 1e18
#: Smallest positive price or vol-index value accepted (smaller would overflow the ratios).
MIN_POSITIVE = 1e-6
#: Smallest GEX scale, $ per 1% move, that counts as exposure: a gross GEX ``|call_gex| + |put_gex|`` or a
#: trailing median ``|net_gex|`` below it is "no exposure" (no scale to divide by). One dollar per 1% move
#: is far below any listed chain (a single SPX contract near the money is ~$10^4) and keeps
#: ``net / scale`` finite for every accepted ``net`` (|net| <= MAX_GEX); without it a subnormal
#: denominator such as 2.2e-311 makes the share of gross GEX overflow to inf.
MIN_GEX_SCALE = 1.0
_LIMITS = {"spot": MAX_PRICE, "zero_gamma": MAX_PRICE, "price_history": MAX_PRICE, "vix": MAX_VOL_INDEX,
           "vix9d": MAX_VOL_INDEX, "vix3m": MAX_VOL_INDEX, "vix_history": MAX_VOL_INDEX, "net_gex": MAX_GEX,
           "call_gex": MAX_GEX, "put_gex": MAX_GEX, "net_gex_history": MAX_GEX}
#: Histories whose values must be positive.
_POSITIVE_HISTORIES = ("price_history", "vix_history")


def _as_number(value: Any, field: str, *, positive: bool = False) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool | str | bytes) or not isinstance(value, int | float | np.integer | np.floating):
        raise RegimeInputError(field, f"must be a number or None, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise RegimeInputError(field, f"must be finite, got {value!r} (use None for a missing value)")
    if positive and x < MIN_POSITIVE:
        raise RegimeInputError(field, f"must be > 0 (at least {MIN_POSITIVE:g}), got {value!r}")
    if abs(x) > _LIMITS[field]:
        raise RegimeInputError(field, f"|{value!r}| exceeds {_LIMITS[field]:g}: not a plausible value")
    return x


def _as_history(value: Any, field: str, date: dt.date | None) -> pd.Series | None:
    """Validate a daily history: a numeric Series, sorted unique dates (when dated), nothing after ``date``.

    Non-finite values are holes (dropped). Returns a float Series or None.
    """
    if value is None:
        return None
    if not isinstance(value, pd.Series):
        raise RegimeInputError(field, f"must be a pandas Series or None, got {type(value).__name__}")
    if value.dtype.kind in "iuf":
        vals = value.to_numpy(dtype=float)
    else:
        try:
            vals = pd.to_numeric(value, errors="raise").to_numpy(dtype=float)
        except (TypeError, ValueError) as exc:
            raise RegimeInputError(field, f"holds non-numeric values ({exc})") from exc
    index = value.index
    if isinstance(index, pd.DatetimeIndex):
        if index.tz is not None:
            index = index.tz_convert(NY).tz_localize(None)
        days = index.to_numpy().astype("datetime64[D]")
        if np.isnat(days).any():
            raise RegimeInputError(field, "has NaT dates in its index")
        if len(days) > 1 and not (days[1:] > days[:-1]).all():
            raise RegimeInputError(field, "index must be sorted dates without duplicates (one row per day)")
        if date is not None and len(days) and days[-1] > np.datetime64(date, "D"):
            raise RegimeInputError(
                field, f"runs past the date {date} (last observation {pd.Timestamp(days[-1]).date()}): "
                       f"look-ahead; cut the history at the date")
        index = pd.DatetimeIndex(days.astype("datetime64[ns]"), name=index.name)
    keep = np.isfinite(vals)
    good = vals[keep]
    bad = good < MIN_POSITIVE
    if field in _POSITIVE_HISTORIES and bad.any():
        raise RegimeInputError(field, f"{int(bad.sum())} values are <= 0 or below {MIN_POSITIVE:g} (e.g. "
                                      f"{good[bad][0]!r}); prices and vol indices are positive")
    if (np.abs(good) > _LIMITS[field]).any():
        raise RegimeInputError(field, f"values exceed {_LIMITS[field]:g} in magnitude: not plausible")
    return pd.Series(good, index=index[keep], name=value.name)


@dataclasses.dataclass(frozen=True)
class RegimeInputs:
    """One day's inputs to :func:`classify_regime`. ``None`` means missing; bad values raise
    :class:`RegimeInputError` at construction.

    Attributes
    ----------
    spot : float or None
        Underlying price (points), > 0.
    net_gex, call_gex, put_gex : float or None
        GEX, $ per 1% move (:mod:`research_lib.gex` units). Gross GEX is ``|call_gex| + |put_gex|``.
    zero_gamma : float or None
        Zero-gamma level (points), > 0; None when the profile has no flip (the GEX measure alone decides).
    vix, vix9d, vix3m : float or None
        The day's volatility-index readings (index points, > 0). For another underlying, pass its own
        vol index.
    vix_history : Series or None
        Daily VIX closes up to the date (a row dated the date itself may be there), for IV rank/percentile.
    price_history : Series or None
        Daily closes of the underlying up to and including the date, for the moving averages. Never beyond.
    net_gex_history : Series or None
        Daily net GEX up to the date, same units and convention as ``net_gex``.
    date : datetime.date or None
        The day classified. When given, dated histories must not run past it.
    underlying : str
        For reasons and reports.
    notes : tuple of str
        Provenance remarks (what could not be loaded and why); copied into the reasons.
    gex_label : str
        What ``net_gex`` is, in the reasons: ``"net GEX"`` (the headline) or ``"regime GEX"``
        (:mod:`research_lib.core.regime_gex`, what :meth:`from_analysis` passes when given one).
    """

    spot: float | None
    net_gex: float | None
    call_gex: float | None = None
    put_gex: float | None = None
    zero_gamma: float | None = None
    vix: float | None = None
    vix_history: pd.Series | None = dataclasses.field(default=None, repr=False, compare=False)
    price_history: pd.Series | None = dataclasses.field(default=None, repr=False, compare=False)
    net_gex_history: pd.Series | None = dataclasses.field(default=None, repr=False, compare=False)
    vix9d: float | None = None
    vix3m: float | None = None
    date: dt.date | None = None
    underlying: str = "SPX"
    notes: tuple[str, ...] = ()
    gex_label: str = "net GEX"

    def __post_init__(self):
        s = object.__setattr__
        s(self, "date", _as_date(self.date, "date"))
        s(self, "spot", _as_number(self.spot, "spot", positive=True))
        for name in ("net_gex", "call_gex", "put_gex"):
            s(self, name, _as_number(getattr(self, name), name))
        for name in ("zero_gamma", "vix", "vix9d", "vix3m"):
            s(self, name, _as_number(getattr(self, name), name, positive=True))
        for name in ("vix_history", "price_history", "net_gex_history"):
            s(self, name, _as_history(getattr(self, name), name, self.date))
        if not isinstance(self.underlying, str) or not self.underlying.strip():
            raise RegimeInputError("underlying", f"must be a non-empty string, got {self.underlying!r}")
        if not isinstance(self.gex_label, str) or not self.gex_label.strip():
            raise RegimeInputError("gex_label", f"must be a non-empty string, got {self.gex_label!r}")
        if isinstance(self.notes, str) or not all(isinstance(n, str) for n in self.notes):
            raise RegimeInputError("notes", "must be a sequence of strings")
        s(self, "notes", tuple(self.notes))

    @property
    def gross_gex(self) -> float | None:
        """``|call_gex| + |put_gex|`` ($ per 1% move), None when either is missing."""
        if self.call_gex is None or self.put_gex is None:
            return None
        return abs(self.call_gex) + abs(self.put_gex)

    @classmethod
    def from_analysis(cls, levels, *, price_history: pd.Series | None = None,
                      vix_history: pd.Series | None = None, net_gex_history: pd.Series | None = None,
                      vix: float | None = None, vix9d: float | None = None, vix3m: float | None = None,
                      max_age_days: int = 7, notes: tuple[str, ...] = (), regime_gex=None) -> RegimeInputs:
        """Inputs from a :class:`~research_lib.gex.KeyLevels` (or a :class:`~research_lib.gex.GexAnalysis`).

        Histories are cut at ``levels.date`` (no look-ahead). ``vix`` defaults to the last VIX close at or
        before the date when it is at most ``max_age_days`` calendar days old. With ``regime_gex`` (a
        :class:`~research_lib.core.regime_gex.RegimeGex`), its value, call and put GEX replace the headline's
        and ``net_gex_history`` must be the same series (``regime_gex`` of the earlier days).
        """
        levels = getattr(levels, "levels", levels)
        date = _as_date(levels.date, "date")
        notes = list(notes)
        price_history = _cut(price_history, date)
        vix_history = _cut(vix_history, date)
        net_gex_history = _cut(net_gex_history, date)
        if vix is None and vix_history is not None:
            vix = _last_fresh(vix_history, date, max_age_days, "VIX", notes)
        net, call, put, label = levels.net_gex, levels.call_gex, levels.put_gex, "net GEX"
        if regime_gex is not None:
            net, call, put, label = regime_gex.value, regime_gex.call_gex, regime_gex.put_gex, "regime GEX"
        return cls(spot=levels.spot, net_gex=net, call_gex=call, put_gex=put, gex_label=label,
                   zero_gamma=levels.zero_gamma, vix=vix, vix9d=vix9d, vix3m=vix3m, vix_history=vix_history,
                   price_history=price_history, net_gex_history=net_gex_history, date=date,
                   underlying=levels.underlying, notes=tuple(dict.fromkeys(notes)))


def _cut(series, date: dt.date | None):
    """``series`` (a Series or DataFrame) up to and including ``date``; undated input unchanged."""
    if series is None or date is None or not isinstance(series, pd.Series | pd.DataFrame):
        return series
    if isinstance(series.index, pd.DatetimeIndex):
        idx = series.index
        if idx.tz is not None:
            idx = idx.tz_convert(NY).tz_localize(None)
        return series[np.asarray(idx.normalize() <= pd.Timestamp(date))]
    return series


def _last_fresh(series: pd.Series, date: dt.date | None, max_age_days: int, what: str,
                notes: list[str]) -> float | None:
    """The last finite value of ``series`` if it is at most ``max_age_days`` old on ``date``."""
    s = pd.to_numeric(series, errors="coerce")
    s = s[np.isfinite(s.to_numpy(dtype=float))]
    if s.empty:
        notes.append(f"{what}: no observation at or before {date}")
        return None
    if date is not None and isinstance(s.index, pd.DatetimeIndex):
        s = _cut(s, date)
        if s.empty:
            notes.append(f"{what}: no observation at or before {date}")
            return None
        last = s.index[-1].date()
        age = (date - last).days
        if age > max_age_days:
            notes.append(f"{what}: the last close is from {last}, {age} days before {date} "
                         f"(more than {max_age_days}); treated as missing")
            return None
    return float(s.iloc[-1])


# --------------------------------------------------------------------------------------------------
# results


@dataclasses.dataclass(frozen=True)
class RegimeScores:
    """The numbers behind a :class:`RegimeResult`. None where the input was missing.

    Attributes
    ----------
    gex_measure : float or None
        The GEX measure the regime used: ``gex_relative`` or ``gex_ratio`` (``gex_measure_kind``).
    gex_measure_kind : {"relative", "ratio"} or None
    gex_relative : float or None
        Net GEX / median |net GEX| of the trailing window (unit-free, signed).
    gex_percentile : float or None
        Share of the trailing net-GEX window strictly below today's net GEX, percent.
    gex_ratio : float or None
        Net GEX / gross GEX, in [-1, 1].
    distance_to_zero_gamma_pct : float or None
        ``(spot - zero_gamma) / spot × 100``: positive when spot is above zero gamma.
    zero_gamma_buffer_pct : float
        The buffer used, % of spot.
    iv_rank, iv_percentile : float or None
        Percent (0-100).
    ma_short, ma_long : float or None
        Moving averages of the closes (points).
    spot_vs_ma_short_pct, ma_short_vs_long_pct : float or None
        ``(spot / MA20 - 1) × 100`` and ``(MA20 / MA50 - 1) × 100``.
    term_ratio, front_ratio : float or None
        VIX / VIX3M and VIX9D / VIX.
    gex_score, iv_score, trend_score, term_score : float
        Signed evidence in confidence points (see the module docstring).
    missing : tuple of str
        The inputs that were missing or stale.
    """

    gex_measure: float | None = None
    gex_measure_kind: str | None = None
    gex_relative: float | None = None
    gex_percentile: float | None = None
    gex_ratio: float | None = None
    distance_to_zero_gamma_pct: float | None = None
    zero_gamma_buffer_pct: float = 0.0
    iv_rank: float | None = None
    iv_percentile: float | None = None
    ma_short: float | None = None
    ma_long: float | None = None
    spot_vs_ma_short_pct: float | None = None
    ma_short_vs_long_pct: float | None = None
    term_ratio: float | None = None
    front_ratio: float | None = None
    gex_score: float = 0.0
    iv_score: float = 0.0
    trend_score: float = 0.0
    term_score: float = 0.0
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready (:func:`~research_lib.formatting.jsonable`): every field, NaN as None."""
        return jsonable(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class RegimeResult:
    """What :func:`classify_regime` says about one day.

    Attributes
    ----------
    regime : Regime
    trend : Trend
    confidence : int
        0-100.
    action : Action
    reasons : tuple of str
        Sentences built from the numbers: the gamma regime, the trend, IV, term structure, the action, and
        anything missing.
    scores : RegimeScores
    date : datetime.date or None
    underlying : str
    """

    regime: Regime
    trend: Trend
    confidence: int
    action: Action
    reasons: tuple[str, ...]
    scores: RegimeScores
    date: dt.date | None = None
    underlying: str = "SPX"

    def to_dict(self) -> dict:
        """JSON-ready (:func:`~research_lib.formatting.jsonable`; enums as their string values, the date as ISO)."""
        return jsonable({
            "date": self.date,
            "underlying": self.underlying,
            "regime": str(self.regime),
            "trend": str(self.trend),
            "confidence": self.confidence,
            "action": str(self.action),
            "reasons": self.reasons,
            "scores": self.scores,
        })


# --------------------------------------------------------------------------------------------------
# the classifier


def _clip(x: float, lo: float = -1.0, hi: float = 1.0) -> float:
    return float(min(hi, max(lo, x)))


def _fresh(series: pd.Series | None, date: dt.date | None, params: RegimeParams, what: str,
           missing: list[str], reasons: list[str]) -> pd.Series | None:
    """``series`` if present and not stale, else None (recording why)."""
    if series is None:
        return None
    if series.empty:
        missing.append(what)
        reasons.append(f"{what} is empty (no finite observation).")
        return None
    if date is not None and isinstance(series.index, pd.DatetimeIndex):
        age = (date - series.index[-1].date()).days
        if age > params.max_history_age_days:
            missing.append(what)
            reasons.append(f"{what} is stale: last observation {series.index[-1].date()}, {age} days before "
                           f"{date} (max {params.max_history_age_days}).")
            return None
    return series


def _gex_measure(inputs: RegimeInputs, params: RegimeParams, hist: pd.Series | None,
                 missing: list[str], reasons: list[str]) -> dict:
    out: dict[str, Any] = {"gex_measure": None, "gex_measure_kind": None, "gex_relative": None,
                           "gex_percentile": None, "gex_ratio": None}
    net = inputs.net_gex
    gross = inputs.gross_gex
    if net is not None and gross is not None and gross >= MIN_GEX_SCALE:
        out["gex_ratio"] = net / gross
    elif net is not None and gross is not None:
        reasons.append(f"Gross GEX {gross:.3g} $/1% is below the {MIN_GEX_SCALE:g} $/1% floor (MIN_GEX_SCALE): "
                       f"no exposure to scale {inputs.gex_label} by.")
    if net is not None and hist is not None:
        window = hist.iloc[-params.gex_window:]
        scale = float(np.median(np.abs(window.to_numpy()))) if len(window) else 0.0
        if len(window) >= params.min_gex_history and scale >= MIN_GEX_SCALE:
            out["gex_relative"] = net / scale
            out["gex_percentile"] = float((window.to_numpy() < net).mean() * 100.0)
        else:
            reasons.append(f"{inputs.gex_label} history too short or flat for its trailing distribution ({len(window)} "
                           f"observations, needs {params.min_gex_history}); using the share of gross GEX.")
    if out["gex_relative"] is not None:
        out["gex_measure"], out["gex_measure_kind"] = out["gex_relative"], "relative"
    elif out["gex_ratio"] is not None:
        out["gex_measure"], out["gex_measure_kind"] = out["gex_ratio"], "ratio"
    elif net is None:
        missing.append("net_gex")
        reasons.append(f"{inputs.gex_label[0].upper()}{inputs.gex_label[1:]} is missing: the gamma sign is unknown.")
    else:
        missing.append("gex_scale")
        reasons.append(f"{inputs.gex_label[0].upper()}{inputs.gex_label[1:]} {fmt_money(net, symbol='$')}/1% has no scale (give call_gex and put_gex, or a net_gex_history "
                       f"of at least {params.min_gex_history} observations): 'clearly positive' cannot be judged.")
    return out


def _iv(inputs: RegimeInputs, params: RegimeParams, hist: pd.Series | None,
        missing: list[str], reasons: list[str]) -> tuple[float | None, float | None]:
    if inputs.vix is None:
        missing.append("vix")
        reasons.append("VIX is missing: IV rank unknown.")
        return None, None
    if hist is None:
        if "vix_history" not in missing:        # else already reported (stale or empty)
            missing.append("vix_history")
            reasons.append(f"VIX {inputs.vix:.2f} but no VIX history: IV rank unknown.")
        return None, None
    window = hist.iloc[-params.iv_window:].to_numpy()
    if len(window) < params.min_iv_history:
        missing.append("vix_history")
        reasons.append(f"VIX history has {len(window)} observations, IV rank needs {params.min_iv_history}.")
        return None, None
    v = inputs.vix
    lo, hi = min(window.min(), v), max(window.max(), v)
    rank = 100.0 * (v - lo) / (hi - lo) if hi > lo else None
    pct = 100.0 * float((window < v).mean())
    if rank is None:
        missing.append("vix_history")
        reasons.append("VIX history is flat (max == min): IV rank undefined.")
        return None, pct
    return float(rank), pct


def _trend(inputs: RegimeInputs, params: RegimeParams, hist: pd.Series | None,
           missing: list[str], reasons: list[str]) -> tuple[Trend | None, dict]:
    out: dict[str, Any] = {"ma_short": None, "ma_long": None, "spot_vs_ma_short_pct": None,
                           "ma_short_vs_long_pct": None}
    if hist is None:
        if "price_history" not in missing:      # else already reported (stale or empty)
            missing.append("price_history")
            reasons.append("Price history is missing: trend unknown (SIDEWAYS assumed).")
        return None, out
    if len(hist) < params.trend_long:
        missing.append("price_history")
        reasons.append(f"Price history has {len(hist)} closes, MA{params.trend_long} needs {params.trend_long}: "
                       f"trend unknown (SIDEWAYS assumed).")
        return None, out
    if inputs.spot is None:
        return None, out
    closes = hist.to_numpy()
    ma_s = float(closes[-params.trend_short:].mean())
    ma_l = float(closes[-params.trend_long:].mean())
    a = (inputs.spot / ma_s - 1.0) * 100.0
    b = (ma_s / ma_l - 1.0) * 100.0
    out.update(ma_short=ma_s, ma_long=ma_l, spot_vs_ma_short_pct=a, ma_short_vs_long_pct=b)
    band = params.trend_band_pct
    if b >= band and a >= -band:
        trend = Trend.UPTREND
    elif b <= -band and a <= band:
        trend = Trend.DOWNTREND
    else:
        trend = Trend.SIDEWAYS
    return trend, out


def _pct(x: float) -> str:
    return f"{abs(x):.2f}% {'above' if x >= 0 else 'below'}"


def zero_gamma_distance_pct(spot: float, zero_gamma: float) -> float:
    """Distance of spot from zero gamma, % of spot: ``(spot - zero_gamma) / spot × 100``.

    Positive when spot is above zero gamma. The one computation behind every "x% above/below zero gamma"
    (regime reasons and scores, alerts, :func:`research_lib.decisions.describe_why`); % of spot is the unit
    of the zero-gamma buffer. Both inputs in points, > 0 (not checked: callers validate them).
    """
    return (float(spot) - float(zero_gamma)) / float(spot) * 100.0


def describe_zero_gamma_distance(spot: float, zero_gamma: float) -> str:
    """``"7.84% below"``, ``"0.36% above"``, or ``"at"`` when the distance rounds to 0.00%: the wording of
    :func:`zero_gamma_distance_pct` (two decimals), to be followed by ``"zero gamma <level>"``."""
    d = zero_gamma_distance_pct(spot, zero_gamma)
    if round(abs(d), 2) == 0:
        return "at"
    return _pct(d)


def _term_text(term_ratio: float | None, front_ratio: float | None, p: RegimeParams) -> str | None:
    """The term-structure sentence: each segment named from its own ratio (module docstring)."""
    parts = []
    if term_ratio is not None:
        parts.append(("VIX/VIX3M", term_ratio, term_ratio >= p.backwardation_ratio))
    if front_ratio is not None:
        parts.append(("VIX9D/VIX", front_ratio, front_ratio > p.front_backwardation_ratio))
    if not parts:
        return None
    figures = ", ".join(f"{name} {x:.2f}" for name, x, _ in parts)
    inverted = [inv for _, _, inv in parts]
    if not any(inverted):
        return f"Term structure in contango: {figures}."
    if all(inverted):
        return f"Term structure in backwardation (stress): {figures}."
    each = "; ".join(f"{name} {x:.2f} {'backwardation' if inv else 'contango'}" for name, x, inv in parts)
    front_inv = front_ratio is not None and front_ratio > p.front_backwardation_ratio
    where = ("the front end is inverted (VIX9D above VIX)" if front_inv
             else "the 1-3 month segment is inverted (VIX above VIX3M)")
    return f"Term structure mixed, {where}: {each}."


@dataclasses.dataclass(frozen=True)
class _ZeroGamma:
    """Step 2 of :func:`classify_regime`: where spot stands against zero gamma, and the buffer."""

    dist: float | None          # spot's distance above zero gamma, % of spot (negative: below)
    buffer: float               # % of spot that counts as clearly above / below
    buffer_text: str


def _zero_gamma_step(inputs: RegimeInputs, p: RegimeParams, missing: list[str], notes: list[str]) -> _ZeroGamma:
    """The zero-gamma buffer (fixed % of spot, or ``zero_gamma_buffer_em`` expected moves at the day's VIX)
    and spot's distance from zero gamma; a missing level is added to ``missing`` and explained in ``notes``."""
    buffer = p.zero_gamma_buffer_pct
    buffer_text = f"buffer {buffer:.2f}% of spot"
    if p.zero_gamma_buffer_em is not None and inputs.vix is not None:
        em_pct = inputs.vix * math.sqrt(p.expected_move_days / 365.0)
        buffer = p.zero_gamma_buffer_em * em_pct
        buffer_text = (f"buffer {buffer:.2f}% = {p.zero_gamma_buffer_em:g} × the {p.expected_move_days:g}-day "
                       f"expected move at VIX {inputs.vix:.1f}")
    dist = None
    if inputs.spot is not None and inputs.zero_gamma is not None:
        dist = zero_gamma_distance_pct(inputs.spot, inputs.zero_gamma)
    elif inputs.zero_gamma is None:
        missing.append("zero_gamma")
        notes.append("No zero-gamma level (none given, or no flip in the profile grid): the GEX measure alone "
                     "decides the regime.")
    return _ZeroGamma(dist, buffer, buffer_text)


def _gex_thresholds(kind: str | None, p: RegimeParams) -> tuple[float, float]:
    """(positive, negative) thresholds of the GEX measure: relative to its history, or the gross ratio."""
    return ((p.gex_rel_positive, p.gex_rel_negative) if kind == "relative"
            else (p.gex_ratio_positive, p.gex_ratio_negative))


def _regime_step(inputs: RegimeInputs, p: RegimeParams, gex: dict[str, Any], zg: _ZeroGamma,
                 missing: list[str]) -> tuple[Regime, str]:
    """Step 3: the regime and its reason, from the GEX measure against its thresholds and spot against
    zero gamma (both clearly positive: POSITIVE_GAMMA; either clearly negative: NEGATIVE_GAMMA)."""
    m, kind = gex["gex_measure"], gex["gex_measure_kind"]
    pos_thr, neg_thr = _gex_thresholds(kind, p)
    gex_pos = m is not None and m >= pos_thr
    gex_neg = m is not None and m <= neg_thr
    below = zg.dist is not None and zg.dist <= -zg.buffer
    above = zg.dist is not None and zg.dist >= zg.buffer

    def gex_text() -> str:
        if m is None:
            return f"{inputs.gex_label} unscaled" if inputs.net_gex is not None else f"{inputs.gex_label} missing"
        net = fmt_money(inputs.net_gex, symbol='$')
        if kind == "relative":
            return (f"{inputs.gex_label} {net}/1% is {m:+.2f}× its typical size over the last {p.gex_window} days "
                    f"(percentile {gex['gex_percentile']:.0f}%; thresholds {pos_thr:+.2f}/{neg_thr:+.2f})")
        return f"{inputs.gex_label} {net}/1% is {m:+.2f} of gross GEX (thresholds {pos_thr:+.2f}/{neg_thr:+.2f})"

    def zg_text() -> str:
        if zg.dist is None:
            return "zero gamma unknown"
        return (f"spot {inputs.spot:,.2f} is {describe_zero_gamma_distance(inputs.spot, inputs.zero_gamma)} zero "
                f"gamma {inputs.zero_gamma:,.2f} ({zg.buffer_text})")

    required_missing = [x for x in missing if x in ("spot", "net_gex", "gex_scale")]
    if p.require_complete and missing:
        return Regime.NEUTRAL, (f"Neutral: require_complete is set and {', '.join(dict.fromkeys(missing))} "
                                f"{'is' if len(set(missing)) == 1 else 'are'} missing.")
    if inputs.spot is None:
        return Regime.NEUTRAL, f"Neutral: spot is missing; {gex_text()}."
    if gex_pos and (above or inputs.zero_gamma is None):
        return Regime.POSITIVE_GAMMA, f"Positive gamma: {gex_text()}; {zg_text()}."
    if gex_neg or below:
        why = gex_text() if gex_neg else f"{zg_text()}, although {gex_text()}"
        return Regime.NEGATIVE_GAMMA, f"Negative gamma: {why}" + (f"; {zg_text()}." if gex_neg else ".")
    if required_missing:
        return Regime.NEUTRAL, f"Neutral: {', '.join(dict.fromkeys(required_missing))} missing; {zg_text()}."
    if gex_pos:
        return Regime.NEUTRAL, f"Neutral: {gex_text()}, but {zg_text()} — not clearly above the flip."
    return Regime.NEUTRAL, f"Neutral: {gex_text()}; {zg_text()}."


def _trend_reason(inputs: RegimeInputs, p: RegimeParams, trend: Trend, ma: dict[str, Any]) -> str | None:
    """The trend sentence (spot against MA-short, MA-short against MA-long); None without averages."""
    if ma["ma_short"] is None:
        return None
    return (f"{trend.title()}: spot {inputs.spot:,.2f} is "
            f"{_pct(ma['spot_vs_ma_short_pct'])} MA{p.trend_short} {ma['ma_short']:,.2f}, which is "
            f"{_pct(ma['ma_short_vs_long_pct'])} MA{p.trend_long} {ma['ma_long']:,.2f} "
            f"(band {p.trend_band_pct:.2f}%).")


def _scores_step(p: RegimeParams, gex: dict[str, Any], zg: _ZeroGamma, iv_rank: float | None,
                 ma: dict[str, Any], term_ratio: float | None) -> tuple[float, float, float, float]:
    """Step 4: the signed scores (gex, iv, trend, term), each within ± its weight in confidence points.

    GEX: the mean of the GEX measure scaled to twice its threshold and spot's distance scaled to twice
    the buffer (each clipped to ±1). IV: IV rank's distance from ``iv_rank_sell``, scaled to the room on
    that side. Trend: spot-vs-MA-short plus MA-short-vs-long over four bands (the sign alone when the band
    is 0). Term: ``backwardation_ratio - VIX/VIX3M`` over ``term_full_scale``. A missing input scores 0.
    """
    m = gex["gex_measure"]
    pos_thr, neg_thr = _gex_thresholds(gex["gex_measure_kind"], p)
    s_g = None
    if m is not None:
        s_g = _clip(m / (2 * pos_thr)) if m >= 0 else _clip(m / (2 * abs(neg_thr)))
    dist, buffer = zg.dist, zg.buffer
    s_z = _clip(dist / (2 * buffer)) if dist is not None and buffer > 0 else (
        None if dist is None else float(np.sign(dist)))
    parts = [x for x in (s_g, s_z) if x is not None]
    gex_score = p.weight_gex * (sum(parts) / len(parts)) if parts else 0.0
    iv_score = 0.0
    if iv_rank is not None:
        sell = p.iv_rank_sell
        iv_score = p.weight_iv * (_clip((iv_rank - sell) / (100 - sell)) if iv_rank >= sell
                                  else _clip((iv_rank - sell) / sell if sell > 0 else 0.0))
    trend_score = 0.0
    if ma["ma_short"] is not None and p.trend_band_pct > 0:
        trend_score = p.weight_trend * _clip((ma["spot_vs_ma_short_pct"] + ma["ma_short_vs_long_pct"])
                                             / (4 * p.trend_band_pct))
    elif ma["ma_short"] is not None:
        trend_score = p.weight_trend * float(np.sign(ma["spot_vs_ma_short_pct"] + ma["ma_short_vs_long_pct"]))
    term_score = 0.0
    if term_ratio is not None:
        term_score = p.weight_term * _clip((p.backwardation_ratio - term_ratio) / p.term_full_scale)
    return gex_score, iv_score, trend_score, term_score


def _action_step(regime: Regime, trend: Trend, iv_rank: float | None, has_averages: bool, p: RegimeParams,
                 gex_score: float, iv_score: float, trend_score: float,
                 term_score: float) -> tuple[Action, str, float]:
    """Step 5: the action, its reason and the evidence (confidence points) behind it.

    SELL_PREMIUM: positive gamma and IV rank above ``iv_rank_sell`` (evidence gex + iv + term).
    BUY_DIRECTIONAL: negative gamma and a trend (evidence -gex - iv + |trend|). Else STAY_OUT (0).
    """
    if regime == Regime.POSITIVE_GAMMA and iv_rank is not None and iv_rank > p.iv_rank_sell:
        return (Action.SELL_PREMIUM,
                f"SELL_PREMIUM: dealers long gamma dampen moves and IV rank {iv_rank:.0f}% is above "
                f"{p.iv_rank_sell:.0f}%: premium is rich.",
                gex_score + iv_score + term_score)
    if regime == Regime.NEGATIVE_GAMMA and trend != Trend.SIDEWAYS and has_averages:
        side = "bullish" if trend == Trend.UPTREND else "bearish"
        iv_note = f" (IV rank {iv_rank:.0f}%)" if iv_rank is not None else " (IV rank unknown)"
        return (Action.BUY_DIRECTIONAL,
                f"BUY_DIRECTIONAL ({side}): dealers short gamma amplify moves; buy in the direction of "
                f"the {trend.lower()}{iv_note}.",
                -gex_score - iv_score + abs(trend_score))
    if regime == Regime.POSITIVE_GAMMA:
        why = (f"IV rank {iv_rank:.0f}% is not above {p.iv_rank_sell:.0f}%: premium too cheap to sell"
               if iv_rank is not None else "IV rank unknown, so premium cannot be judged rich")
        return Action.STAY_OUT, f"STAY_OUT: positive gamma but {why}.", 0.0
    if regime == Regime.NEGATIVE_GAMMA:
        why = "no clear trend to trade with" if has_averages else "the trend is unknown"
        return Action.STAY_OUT, f"STAY_OUT: negative gamma but {why}.", 0.0
    return Action.STAY_OUT, "STAY_OUT: no clear dealer-gamma regime.", 0.0


def classify_regime(inputs: RegimeInputs, params: RegimeParams | None = None) -> RegimeResult:
    """Classify one day: gamma regime, trend, confidence, action and reasons (rules in the module docstring).

    Parameters
    ----------
    inputs : RegimeInputs
    params : RegimeParams, optional
        Defaults to ``RegimeParams()``.

    Returns
    -------
    RegimeResult
        Never raises on missing input: the regime falls back to NEUTRAL and the action to STAY_OUT, with
        reasons naming what was missing.

    Raises
    ------
    RegimeInputError
        ``inputs`` is not a :class:`RegimeInputs`, or a price history gives non-positive averages.
    """
    if not isinstance(inputs, RegimeInputs):
        raise RegimeInputError("inputs", f"must be a RegimeInputs, got {type(inputs).__name__}")
    params = RegimeParams() if params is None else params
    if not isinstance(params, RegimeParams):
        raise RegimeParamsError("params", f"must be a RegimeParams, got {type(params).__name__}")
    p = params
    missing: list[str] = []
    notes: list[str] = []          # data remarks, after the main reasons

    # 1. the inputs: fresh histories, the GEX measure, IV rank, the moving averages
    if inputs.spot is None:
        missing.append("spot")
        notes.append("Spot is missing: nothing can be placed against zero gamma or the moving averages.")
    gex_hist = _fresh(inputs.net_gex_history, inputs.date, p, "net_gex_history", missing, notes)
    vix_hist = _fresh(inputs.vix_history, inputs.date, p, "vix_history", missing, notes)
    px_hist = _fresh(inputs.price_history, inputs.date, p, "price_history", missing, notes)
    gex = _gex_measure(inputs, p, gex_hist, missing, notes)
    iv_rank, iv_pct = _iv(inputs, p, vix_hist, missing, notes)
    trend, ma = _trend(inputs, p, px_hist, missing, notes)

    # 2-3. zero gamma, then the regime
    zg = _zero_gamma_step(inputs, p, missing, notes)
    regime, regime_reason = _regime_step(inputs, p, gex, zg, missing)
    trend = trend if trend is not None else Trend.SIDEWAYS
    iv_reason = None
    if iv_rank is not None:
        iv_reason = (f"VIX {inputs.vix:.2f}: IV rank {iv_rank:.0f}% and IV percentile {iv_pct:.0f}% over the last "
                     f"{min(p.iv_window, len(vix_hist))} closes.")
    term_ratio = inputs.vix / inputs.vix3m if inputs.vix is not None and inputs.vix3m is not None else None
    front_ratio = inputs.vix9d / inputs.vix if inputs.vix is not None and inputs.vix9d is not None else None

    # 4-5. scores, then the action and the confidence
    gex_score, iv_score, trend_score, term_score = _scores_step(p, gex, zg, iv_rank, ma, term_ratio)
    action, action_reason, evidence = _action_step(regime, trend, iv_rank, ma["ma_short"] is not None, p,
                                                   gex_score, iv_score, trend_score, term_score)
    n_missing = len(dict.fromkeys(missing))
    confidence = _clip(p.confidence_base + evidence - p.missing_penalty * n_missing, 0.0, 100.0)
    if not math.isfinite(confidence):     # pragma: no cover - every term is finite by construction
        confidence = 0.0

    reasons = [regime_reason]
    for r in (_trend_reason(inputs, p, trend, ma), iv_reason, _term_text(term_ratio, front_ratio, p), action_reason):
        if r is not None:
            reasons.append(r)
    reasons.extend(notes)
    reasons.extend(f"Note: {n}" for n in inputs.notes)

    scores = RegimeScores(
        gex_measure=gex["gex_measure"], gex_measure_kind=gex["gex_measure_kind"], gex_relative=gex["gex_relative"],
        gex_percentile=gex["gex_percentile"], gex_ratio=gex["gex_ratio"], distance_to_zero_gamma_pct=zg.dist,
        zero_gamma_buffer_pct=zg.buffer, iv_rank=iv_rank, iv_percentile=iv_pct, term_ratio=term_ratio,
        front_ratio=front_ratio, gex_score=gex_score, iv_score=iv_score, trend_score=trend_score,
        term_score=term_score, missing=tuple(dict.fromkeys(missing)), **ma)
    return RegimeResult(regime=regime, trend=trend, confidence=int(round(confidence)), action=action,
                        reasons=tuple(reasons), scores=scores, date=inputs.date, underlying=inputs.underlying)
