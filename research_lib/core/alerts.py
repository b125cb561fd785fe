"""Rule-based alerts on a GEX snapshot and its regime: one function per rule, each returning an
:class:`Alert` or None, and :func:`evaluate_alerts` running them all.

Rules (defaults of :class:`AlertParams` in brackets; every threshold in units that carry across underlyings)
-------------------------------------------------------------------------------------------------------
``spot_near_zero_gamma`` [WARNING]
    Spot within ``near_zero_gamma_pct`` [0.5] % of spot of the zero-gamma level: dealers' hedging flips
    from dampening to amplifying moves nearby. Fires at ``distance <= threshold``.
``gex_concentration`` [WARNING]
    One strike within ``concentration_window_pct`` [5] % of spot holds at least ``concentration_share``
    [0.15] of the chain's gross GEX (``Σ |call_gex| + |put_gex|`` over all strikes). Fires at
    ``share >= threshold``. On the shared SPX snapshots the largest share is 0.05-0.11 (NDX 0.13), and 0.20 at
    4500 on 2023-09-14, the eve of a quarterly expiry.
``pin_risk_near_expiry`` [WARNING]
    An expiry at most ``pin_max_days`` [1] calendar days away whose pin score (:func:`research_lib.gex.pin_risk`,
    0-100) is at least ``pin_min_score`` [25]. Fires at ``score >= threshold``; the highest-scoring such
    expiry is reported. Real SPX 1-DTE scores: 12 (2024-01-08), 29 (2023-09-15, quarterly expiry).
``regime_change`` [WARNING]
    The gamma regime differs from the previous snapshot's and the new result's confidence is at least
    ``regime_change_min_confidence`` [0]. Fires at ``confidence >= threshold``.
``dealers_destabilising`` [CRITICAL]
    Net GEX at most ``destabilising_gex_ratio`` [-0.05] of gross GEX and spot at least
    ``destabilising_below_pct`` [0.5] % of spot below zero gamma (or no zero-gamma level at all: the
    profile is negative across its whole grid). Dealers short gamma sell into falls. Fires at
    ``ratio <= threshold``.

Alerts are small frozen dataclasses with :meth:`Alert.to_dict` for the decision log; this module stores
nothing.

Example
-------
>>> analysis = gex.analyze(snapshot)                                           # doctest: +SKIP
>>> result = regime.classify_regime(regime_inputs_for(analysis.levels))         # doctest: +SKIP
>>> alerts.alerts_for(analysis, regime=result, previous_regime=yesterday)       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from typing import Any

import pandas as pd

from research_lib.checks import FieldChecks, prefixed
from research_lib.core.regime import RegimeResult, describe_zero_gamma_distance, zero_gamma_distance_pct
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    AlertInputError as AlertInputError,
    AlertParamsError as AlertParamsError,
)
from research_lib.formatting import fmt_money, jsonable

__all__ = [
    "Alert",
    "AlertInputError",
    "AlertParams",
    "AlertParamsError",
    "AlertRule",
    "Severity",
    "alerts_for",
    "dealers_destabilising",
    "evaluate_alerts",
    "gex_concentration",
    "pin_risk_near_expiry",
    "regime_change",
    "spot_near_zero_gamma",
]


_PARAM_CHECKS = FieldChecks(prefixed(AlertParamsError, "AlertParams"))


class Severity(enum.StrEnum):
    """How urgent an alert is. Ordered: ``Severity.INFO.rank < Severity.CRITICAL.rank``."""

    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return ("INFO", "WARNING", "CRITICAL").index(self.value)


class AlertRule(enum.StrEnum):
    """The rules, named as their functions."""

    SPOT_NEAR_ZERO_GAMMA = "spot_near_zero_gamma"
    GEX_CONCENTRATION = "gex_concentration"
    PIN_RISK_NEAR_EXPIRY = "pin_risk_near_expiry"
    REGIME_CHANGE = "regime_change"
    DEALERS_DESTABILISING = "dealers_destabilising"
    #: intraday flow (:func:`research_lib.core.market_state.lvn_alerts`): price at a prior session's low-volume node
    LVN_PROXIMITY = "lvn_proximity"


@dataclasses.dataclass(frozen=True)
class AlertParams:
    """Thresholds and severity of every rule (see the module docstring for the rules and defaults).

    Attributes
    ----------
    near_zero_gamma_pct : float
        % of spot.
    concentration_share : float
        Share of gross GEX at one strike, in (0, 1].
    concentration_window_pct : float
        Only strikes within this % of spot are considered.
    pin_min_score : float
        Pin score, 0-100.
    pin_max_days : int
        Calendar days from the snapshot date to the expiry (0 = same-day expiry).
    regime_change_min_confidence : float
        Confidence (0-100) the new regime needs for its change to alert.
    destabilising_gex_ratio : float
        Net GEX / gross GEX, in [-1, 0].
    destabilising_below_pct : float
        % of spot that spot must be below zero gamma.
    *_severity : Severity
        Severity of each rule's alert (a string such as ``"CRITICAL"`` is accepted).
    """

    near_zero_gamma_pct: float = 0.5
    near_zero_gamma_severity: Severity = Severity.WARNING
    concentration_share: float = 0.15
    concentration_window_pct: float = 5.0
    concentration_severity: Severity = Severity.WARNING
    pin_min_score: float = 25.0
    pin_max_days: int = 1
    pin_severity: Severity = Severity.WARNING
    regime_change_min_confidence: float = 0.0
    regime_change_severity: Severity = Severity.WARNING
    destabilising_gex_ratio: float = -0.05
    destabilising_below_pct: float = 0.5
    destabilising_severity: Severity = Severity.CRITICAL

    def __post_init__(self):
        check = _PARAM_CHECKS
        for f in dataclasses.fields(self):
            if f.name.endswith("_severity"):
                text = check.choice(f.name, getattr(self, f.name), [s.value for s in Severity],
                                    normalise=lambda v: str(v).upper())
                object.__setattr__(self, f.name, Severity(text))
        check.number("near_zero_gamma_pct", self.near_zero_gamma_pct, lo=0, unit="% of spot")
        check.number("concentration_share", self.concentration_share, lo=0, hi=1, lo_open=True,
                     unit="share of gross GEX")
        check.number("concentration_window_pct", self.concentration_window_pct, lo=0, lo_open=True,
                     unit="% of spot")
        check.number("pin_min_score", self.pin_min_score, lo=0, hi=100, unit="pin score")
        check.whole("pin_max_days", self.pin_max_days, lo=0, unit="calendar days")
        check.number("regime_change_min_confidence", self.regime_change_min_confidence, lo=0, hi=100,
                     unit="confidence, percent")
        check.number("destabilising_gex_ratio", self.destabilising_gex_ratio, lo=-1, hi=0,
                     unit="net GEX / gross GEX")
        check.number("destabilising_below_pct", self.destabilising_below_pct, lo=0, unit="% of spot")


@dataclasses.dataclass(frozen=True)
class Alert:
    """One alert.

    Attributes
    ----------
    rule : AlertRule
    severity : Severity
    message : str
        A sentence with the numbers.
    value : float
        The measured quantity, in the threshold's unit (% of spot, share of gross GEX, pin score,
        confidence, net/gross ratio).
    threshold : float
        The threshold it was compared with.
    underlying : str
    date : datetime.date or None
        The snapshot's date.
    level : float or None
        The price level concerned (zero gamma, the strike, the pin strike), points.
    expiration : datetime.date or None
        The expiry concerned (pin risk).
    """

    rule: AlertRule
    severity: Severity
    message: str
    value: float
    threshold: float
    underlying: str
    date: dt.date | None
    level: float | None = None
    expiration: dt.date | None = None

    def to_dict(self) -> dict:
        """JSON-ready (:func:`~research_lib.formatting.jsonable`): enums as strings, dates as ISO, NaN as None."""
        return jsonable({
            "rule": str(self.rule),
            "severity": str(self.severity),
            "message": self.message,
            "value": self.value,
            "threshold": self.threshold,
            "underlying": self.underlying,
            "date": self.date,
            "level": self.level,
            "expiration": self.expiration,
        })


# --------------------------------------------------------------------------------------------------
# helpers


def _levels(levels: Any):
    """KeyLevels from KeyLevels or GexAnalysis, with its spot checked."""
    lv = getattr(levels, "levels", levels)
    for attr in ("spot", "net_gex", "call_gex", "put_gex", "zero_gamma", "underlying", "date"):
        if not hasattr(lv, attr):
            raise AlertInputError(f"levels has no {attr!r}: pass a gex.KeyLevels or gex.GexAnalysis")
    spot = lv.spot
    if isinstance(spot, bool) or not isinstance(spot, int | float) or not math.isfinite(spot) or spot <= 0:
        raise AlertInputError(f"levels.spot must be a positive finite price, got {spot!r}")
    zg = lv.zero_gamma
    if zg is not None and (not isinstance(zg, int | float) or not math.isfinite(zg) or zg <= 0):
        raise AlertInputError(f"levels.zero_gamma must be None or a positive finite price, got {zg!r}")
    for attr in ("net_gex", "call_gex", "put_gex"):
        v = getattr(lv, attr)
        if not isinstance(v, int | float) or not math.isfinite(v):
            raise AlertInputError(f"levels.{attr} must be a finite number, got {v!r}")
    return lv


def _params(params: AlertParams | None) -> AlertParams:
    if params is None:
        return AlertParams()
    if not isinstance(params, AlertParams):
        raise AlertParamsError(f"params must be an AlertParams, got {type(params).__name__}")
    return params


def _date(value) -> dt.date | None:
    return None if value is None else pd.Timestamp(value).date()


# --------------------------------------------------------------------------------------------------
# the rules


def _require_frame(frame, name: str, columns: tuple[str, ...]) -> None:
    """Raise :class:`AlertInputError` unless ``frame`` is GexAnalysis.<name>-shaped (a DataFrame with
    ``columns``)."""
    if not isinstance(frame, pd.DataFrame):
        raise AlertInputError(f"{name} must be a DataFrame (GexAnalysis.{name}), got {type(frame).__name__}")
    for col in columns:
        if col not in frame.columns:
            raise AlertInputError(f"{name} has no {col!r} column (expected GexAnalysis.{name})")


def spot_near_zero_gamma(levels, params: AlertParams | None = None) -> Alert | None:
    """Spot within ``near_zero_gamma_pct`` % of spot of zero gamma (None when there is no zero gamma)."""
    p = _params(params)
    lv = _levels(levels)
    if lv.zero_gamma is None:
        return None
    dist = zero_gamma_distance_pct(lv.spot, lv.zero_gamma)
    if abs(dist) > p.near_zero_gamma_pct:
        return None
    return Alert(
        rule=AlertRule.SPOT_NEAR_ZERO_GAMMA, severity=p.near_zero_gamma_severity,
        message=(f"{lv.underlying} {lv.spot:,.2f} is {describe_zero_gamma_distance(lv.spot, lv.zero_gamma)} zero "
                 f"gamma {lv.zero_gamma:,.2f} "
                 f"(alert within {p.near_zero_gamma_pct:.2f}%): dealer hedging flips from dampening to "
                 f"amplifying moves nearby."),
        value=abs(dist), threshold=p.near_zero_gamma_pct, underlying=lv.underlying, date=_date(lv.date),
        level=float(lv.zero_gamma))


def gex_concentration(levels, strikes: pd.DataFrame, params: AlertParams | None = None) -> Alert | None:
    """The strike within ``concentration_window_pct`` % of spot holding the largest share of gross GEX,
    when that share is at least ``concentration_share``.

    ``strikes`` is :attr:`research_lib.gex.GexAnalysis.strikes` (indexed by strike, with ``call_gex`` and
    ``put_gex``). None when the table is empty or has no gross GEX.
    """
    p = _params(params)
    lv = _levels(levels)
    _require_frame(strikes, "strikes", ("call_gex", "put_gex"))
    if strikes.empty:
        return None
    k = pd.to_numeric(pd.Series(strikes.index, index=strikes.index), errors="coerce")
    if k.isna().any():
        raise AlertInputError("strikes must be indexed by numeric strikes")
    gross_k = strikes["call_gex"].abs() + strikes["put_gex"].abs()
    if not gross_k.map(math.isfinite).all():
        raise AlertInputError("strikes: call_gex / put_gex hold non-finite values")
    total = float(gross_k.sum())
    if total <= 0:
        return None
    near = (k - lv.spot).abs() <= p.concentration_window_pct / 100.0 * lv.spot
    if not near.any():
        return None
    share = gross_k[near] / total
    strike = float(share.idxmax())
    value = float(share.max())
    if value < p.concentration_share:
        return None
    dist = (strike - lv.spot) / lv.spot * 100.0
    return Alert(
        rule=AlertRule.GEX_CONCENTRATION, severity=p.concentration_severity,
        message=(f"{lv.underlying} strike {strike:,.2f} ({dist:+.2f}% from spot) holds {value:.0%} of gross GEX "
                 f"({fmt_money(float(gross_k[share.idxmax()]), symbol='$', signed=False)} of {fmt_money(total, symbol='$', signed=False)}/1%; alert at "
                 f"{p.concentration_share:.0%}): hedging flows concentrate there."),
        value=value, threshold=p.concentration_share, underlying=lv.underlying, date=_date(lv.date), level=strike)


def pin_risk_near_expiry(levels, pin_risk: pd.DataFrame, params: AlertParams | None = None) -> Alert | None:
    """The highest pin score among expiries at most ``pin_max_days`` calendar days away, when at least
    ``pin_min_score``.

    ``pin_risk`` is :attr:`research_lib.gex.GexAnalysis.pin_risk` (indexed by expiration, with
    ``pin_strike``, ``distance_pct``, ``z``, ``score``). Expiries before the snapshot date are ignored.
    """
    p = _params(params)
    lv = _levels(levels)
    _require_frame(pin_risk, "pin_risk", ("score", "pin_strike"))
    if pin_risk.empty:
        return None
    try:
        exps = pd.DatetimeIndex(pin_risk.index)
    except (TypeError, ValueError) as exc:
        raise AlertInputError("pin_risk must be indexed by expiration dates") from exc
    today = pd.Timestamp(lv.date)
    dte = (exps.normalize() - today).days.to_numpy()
    score = pd.to_numeric(pin_risk["score"], errors="coerce").to_numpy(dtype=float)
    ok = (dte >= 0) & (dte <= p.pin_max_days) & (score >= p.pin_min_score)
    if not ok.any():
        return None
    best = max((i for i in range(len(ok)) if ok[i]), key=lambda i: score[i])
    row = pin_risk.iloc[best]
    exp = exps[best].date()
    strike = float(row["pin_strike"])
    extra = ""
    if "distance_pct" in row.index and "z" in row.index and math.isfinite(row["z"]):
        extra = f", {row['distance_pct']:+.2f}% from spot ({row['z']:.2f} expected moves)"
    when = "today" if dte[best] == 0 else f"in {int(dte[best])} day{'s' if dte[best] != 1 else ''}"
    return Alert(
        rule=AlertRule.PIN_RISK_NEAR_EXPIRY, severity=p.pin_severity,
        message=(f"{lv.underlying} pin risk {score[best]:.0f}/100 at {strike:,.2f}{extra} for the {exp} expiry "
                 f"{when} (alert at {p.pin_min_score:.0f} within {p.pin_max_days} day"
                 f"{'' if p.pin_max_days == 1 else 's'})."),
        value=float(score[best]), threshold=p.pin_min_score, underlying=lv.underlying, date=_date(lv.date),
        level=strike, expiration=exp)


def regime_change(regime: RegimeResult, previous_regime: RegimeResult | None,
                  params: AlertParams | None = None) -> Alert | None:
    """The gamma regime changed from ``previous_regime`` (an earlier snapshot's result) and the new
    result's confidence is at least ``regime_change_min_confidence``. None without a previous result.

    Raises :class:`AlertInputError` when the two results are of different underlyings or the previous one
    is dated after the current one.
    """
    p = _params(params)
    if previous_regime is None:
        return None
    for name, r in (("regime", regime), ("previous_regime", previous_regime)):
        if not isinstance(r, RegimeResult):
            raise AlertInputError(f"{name} must be a RegimeResult, got {type(r).__name__}")
    if regime.underlying != previous_regime.underlying:
        raise AlertInputError(f"regime is for {regime.underlying} but previous_regime for "
                              f"{previous_regime.underlying}")
    if regime.date is not None and previous_regime.date is not None and previous_regime.date > regime.date:
        raise AlertInputError(f"previous_regime ({previous_regime.date}) is dated after regime ({regime.date})")
    if regime.regime == previous_regime.regime or regime.confidence < p.regime_change_min_confidence:
        return None
    since = f" on {previous_regime.date}" if previous_regime.date is not None else ""
    return Alert(
        rule=AlertRule.REGIME_CHANGE, severity=p.regime_change_severity,
        message=(f"{regime.underlying} regime changed from {previous_regime.regime}{since} to {regime.regime} "
                 f"(confidence {regime.confidence}, action {regime.action}): {regime.reasons[0]}"),
        value=float(regime.confidence), threshold=p.regime_change_min_confidence, underlying=regime.underlying,
        date=regime.date)


def dealers_destabilising(levels, params: AlertParams | None = None) -> Alert | None:
    """Dealers short gamma with spot below zero gamma: net GEX at most ``destabilising_gex_ratio`` of gross
    GEX, and spot at least ``destabilising_below_pct`` % below zero gamma (or no zero gamma at all, the
    profile being negative across its grid). None when gross GEX is 0."""
    p = _params(params)
    lv = _levels(levels)
    gross = abs(lv.call_gex) + abs(lv.put_gex)
    if gross <= 0:
        return None
    ratio = lv.net_gex / gross
    if ratio > p.destabilising_gex_ratio:
        return None
    if lv.zero_gamma is None:
        where = "no zero-gamma level in the profile grid (negative throughout)"
    else:
        below = -zero_gamma_distance_pct(lv.spot, lv.zero_gamma)
        if below < p.destabilising_below_pct:
            return None
        where = (f"spot {lv.spot:,.2f} is {describe_zero_gamma_distance(lv.spot, lv.zero_gamma)} zero gamma "
                 f"{lv.zero_gamma:,.2f}")
    return Alert(
        rule=AlertRule.DEALERS_DESTABILISING, severity=p.destabilising_severity,
        message=(f"{lv.underlying} dealers short gamma: net GEX {fmt_money(lv.net_gex, symbol='$')}/1% is {ratio:+.2f} of gross "
                 f"(alert at {p.destabilising_gex_ratio:+.2f}) and {where} (alert at "
                 f"{p.destabilising_below_pct:.2f}%): hedging sells into falls and buys into rallies."),
        value=ratio, threshold=p.destabilising_gex_ratio, underlying=lv.underlying, date=_date(lv.date),
        level=None if lv.zero_gamma is None else float(lv.zero_gamma))


# --------------------------------------------------------------------------------------------------
# all of them


def evaluate_alerts(levels, regime: RegimeResult | None = None, previous_regime: RegimeResult | None = None,
                    pin_risk: pd.DataFrame | None = None, strikes: pd.DataFrame | None = None,
                    params: AlertParams | None = None) -> tuple[Alert, ...]:
    """Run every rule whose inputs are given; the alerts that fire, most severe first (then in rule order).

    Parameters
    ----------
    levels : KeyLevels or GexAnalysis
    regime, previous_regime : RegimeResult, optional
        The regime change rule runs when both are given.
    pin_risk : DataFrame, optional
        :attr:`GexAnalysis.pin_risk`; the pin rule runs when given.
    strikes : DataFrame, optional
        :attr:`GexAnalysis.strikes`; the concentration rule runs when given.
    params : AlertParams, optional
    """
    p = _params(params)
    found: list[Alert | None] = [
        dealers_destabilising(levels, p),
        spot_near_zero_gamma(levels, p),
        gex_concentration(levels, strikes, p) if strikes is not None else None,
        pin_risk_near_expiry(levels, pin_risk, p) if pin_risk is not None else None,
        regime_change(regime, previous_regime, p) if regime is not None and previous_regime is not None else None,
    ]
    alerts = [a for a in found if a is not None]
    return tuple(sorted(alerts, key=lambda a: -a.severity.rank))


def alerts_for(analysis, regime: RegimeResult | None = None, previous_regime: RegimeResult | None = None,
               params: AlertParams | None = None) -> tuple[Alert, ...]:
    """:func:`evaluate_alerts` on a :class:`~research_lib.gex.GexAnalysis` (its levels, strikes and pin risk)."""
    for attr in ("levels", "strikes", "pin_risk"):
        if not hasattr(analysis, attr):
            raise AlertInputError(f"analysis has no {attr!r}: pass a gex.GexAnalysis")
    return evaluate_alerts(analysis.levels, regime=regime, previous_regime=previous_regime,
                           pin_risk=analysis.pin_risk, strikes=analysis.strikes, params=params)
