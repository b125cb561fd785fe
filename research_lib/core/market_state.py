"""Market state of an intraday session against the prior session's value area, and LVN proximity alerts.

Pure functions on one session's regular-hours bars (columns ``ts``, ``open``, ``high``, ``low``, ``close``,
``volume``, the layout of :func:`research_lib.data.market.intraday.read_bars`) and on numbers of the prior
session's volume profile (:mod:`research_lib.core.volume_profile`): its value area low/high and its low-volume
nodes. Nothing here reads a file.

The rules (Dalton's auction vocabulary, made exact; parameters in :class:`MarketStateParams`)
--------------------------------------------------------------------------------------------
*Open* and *close* locations: ``above`` the prior VAH, ``below`` the prior VAL, else ``inside`` (the bounds count as
inside). *Initial balance* (IB): the high and low of the bars starting in the first ``ib_minutes`` [60] of the
session. *Range extension*: ``up`` when the session's high exceeds the IB high by more than ``extension_pct`` [0.05]
% of the IB high, ``down`` likewise below the IB low; both, or none.

``trend_up``
    closes above the prior VAH, with range extension up only (the IB was broken one way and held);
``trend_down``
    the mirror: closes below the prior VAL with range extension down only;
``balanced``
    everything else, with the kind in ``detail``: ``inside value`` (opened and closed inside), ``returned to
    value`` (opened outside, closed inside: the outside open was rejected), ``neutral`` (range extension both
    ways), ``unconfirmed breakout`` (closed outside without a one-way extension).

LVN alerts (:func:`lvn_alerts`): a prior session's low-volume node is a price the market moved through fast; when
the price comes back within ``lvn_distance_pct`` [0.10] % of it, the node is "in play" (an INFO alert at the first
bar whose high-low range comes that close); a close through it (the bar opens on one side and closes on the other)
makes it a WARNING. One alert per node per session, at its first touch; the alert's time is that bar's start.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from research_lib.checks import FieldChecks, prefixed
from research_lib.core.alerts import Alert, AlertRule, Severity
from research_lib.errors import MarketStateError
from research_lib.formatting import jsonable

__all__ = ["BALANCED_KINDS", "STATES", "LvnAlert", "MarketState", "MarketStateParams", "classify_session", "lvn_alerts"]

#: The states, and the kinds of ``balanced``.
STATES = ("trend_up", "trend_down", "balanced")
BALANCED_KINDS = ("inside value", "returned to value", "neutral", "unconfirmed breakout")

_CHECKS = FieldChecks(prefixed(MarketStateError, "MarketStateParams"))


@dataclasses.dataclass(frozen=True)
class MarketStateParams:
    """Thresholds of the market-state rules and the LVN alerts (defaults in the module docstring).

    Attributes
    ----------
    ib_minutes : int
        Minutes of the initial balance from the session's first bar, in [1, 390].
    extension_pct : float
        % of the IB high (low) the session must trade beyond it to count as a range extension, ≥ 0.
    lvn_distance_pct : float
        % of the node's price within which the price is "at" an LVN, > 0.
    """

    ib_minutes: int = 60
    extension_pct: float = 0.05
    lvn_distance_pct: float = 0.10

    def __post_init__(self) -> None:
        _CHECKS.whole("ib_minutes", self.ib_minutes, lo=1, hi=390, unit="minutes")
        _CHECKS.number("extension_pct", self.extension_pct, lo=0.0, unit="% of the IB bound")
        _CHECKS.number("lvn_distance_pct", self.lvn_distance_pct, lo=0.0, lo_open=True, unit="% of the node")


@dataclasses.dataclass(frozen=True)
class MarketState:
    """One session's state (module docstring).

    Attributes
    ----------
    session : datetime.date
    state : str
        One of :data:`STATES`.
    detail : str
        The kind of ``balanced`` (:data:`BALANCED_KINDS`), or ``"one-way extension"`` for a trend.
    open_location, close_location : str
        ``"above"``, ``"below"`` or ``"inside"`` the prior value area.
    extension : str
        ``"up"``, ``"down"``, ``"both"`` or ``"none"``.
    open, close, high, low, ib_high, ib_low : float
    prior_val, prior_vah : float
    reasons : tuple of str
        The sentences with the numbers.
    """

    session: dt.date
    state: str
    detail: str
    open_location: str
    close_location: str
    extension: str
    open: float
    close: float
    high: float
    low: float
    ib_high: float
    ib_low: float
    prior_val: float
    prior_vah: float
    reasons: tuple[str, ...]

    def to_dict(self) -> dict:
        return jsonable(dataclasses.asdict(self))


def _check_bars(bars: pd.DataFrame, where: str) -> pd.DataFrame:
    need = ("ts", "open", "high", "low", "close")
    missing = [c for c in need if c not in bars.columns]
    if missing:
        raise MarketStateError(f"{where}: the bars lack column(s) {', '.join(missing)} (need {', '.join(need)})")
    if not len(bars):
        raise MarketStateError(f"{where}: no bars")
    values = bars[["open", "high", "low", "close"]].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise MarketStateError(f"{where}: {int((~np.isfinite(values)).any(axis=1).sum())} bar(s) with a missing price")
    return bars.sort_values("ts", kind="stable")


def _where(price: float, val: float, vah: float) -> str:
    return "above" if price > vah else "below" if price < val else "inside"


def classify_session(bars: pd.DataFrame, prior_val: float, prior_vah: float,
                     params: MarketStateParams | None = None) -> MarketState:
    """The state of one session (its regular-hours bars) against the prior session's value area.

    Parameters
    ----------
    bars : DataFrame
        One session's bars (``ts`` tz-aware, ``open``, ``high``, ``low``, ``close``), any bar length.
    prior_val, prior_vah : float
        The prior session's value area low and high (``prior_val <= prior_vah``).
    params : MarketStateParams, optional

    Raises
    ------
    MarketStateError
        No bars, a missing column or price, or a value area that is not finite or has VAL above VAH.
    """
    p = params or MarketStateParams()
    if not (np.isfinite(prior_val) and np.isfinite(prior_vah) and prior_val <= prior_vah):
        raise MarketStateError(f"prior value area [{prior_val!r}, {prior_vah!r}] is not a finite range with VAL <= VAH")
    b = _check_bars(bars, "classify_session")
    ts = pd.DatetimeIndex(b["ts"])
    session = ts[0].tz_convert("America/New_York").date() if ts.tz is not None else ts[0].date()
    in_ib = (ts - ts[0]) < pd.Timedelta(minutes=p.ib_minutes)
    high, low = float(b["high"].max()), float(b["low"].min())
    ib_high, ib_low = float(b["high"][in_ib].max()), float(b["low"][in_ib].min())
    up = high > ib_high * (1 + p.extension_pct / 100)
    down = low < ib_low * (1 - p.extension_pct / 100)
    extension = "both" if up and down else "up" if up else "down" if down else "none"
    o, c = float(b["open"].iloc[0]), float(b["close"].iloc[-1])
    ol, cl = _where(o, prior_val, prior_vah), _where(c, prior_val, prior_vah)
    reasons = [f"opened {o:.2f} {ol} and closed {c:.2f} {cl} the prior value area {prior_val:.2f}-{prior_vah:.2f}",
               f"initial balance ({p.ib_minutes} min) {ib_low:.2f}-{ib_high:.2f}, session {low:.2f}-{high:.2f}: "
               f"range extension {extension}"]
    if cl == "above" and extension == "up":
        state, detail = "trend_up", "one-way extension"
    elif cl == "below" and extension == "down":
        state, detail = "trend_down", "one-way extension"
    else:
        state = "balanced"
        if extension == "both":
            detail = "neutral"
        elif cl == "inside":
            detail = "inside value" if ol == "inside" else "returned to value"
        else:
            detail = "unconfirmed breakout"
    reasons.append(f"{state} ({detail})")
    return MarketState(session=session, state=state, detail=detail, open_location=ol, close_location=cl,
                       extension=extension, open=o, close=c, high=high, low=low, ib_high=ib_high, ib_low=ib_low,
                       prior_val=float(prior_val), prior_vah=float(prior_vah), reasons=tuple(reasons))


@dataclasses.dataclass(frozen=True)
class LvnAlert(Alert):
    """An :class:`~research_lib.core.alerts.Alert` of rule ``lvn_proximity`` with its bar's time (``timestamp``):
    the decision log stores it beside the GEX alerts (:meth:`DecisionLog.record_alerts`)."""

    timestamp: pd.Timestamp | None = None


def lvn_alerts(bars: pd.DataFrame, lvns: Sequence[float], *, underlying: str,
               params: MarketStateParams | None = None) -> list[LvnAlert]:
    """The LVN alerts of one session: each prior low-volume node at its first touch (module docstring).

    Parameters
    ----------
    bars : DataFrame
        The session's bars in time order (``ts``, ``open``, ``high``, ``low``, ``close``).
    lvns : sequence of float
        The prior session's LVN prices.
    underlying : str
        Named in the alerts.

    Returns
    -------
    list of LvnAlert
        In the order of their bars; ``value`` is the closest distance in % of the node at that bar, ``threshold``
        ``lvn_distance_pct``, ``level`` the node.
    """
    p = params or MarketStateParams()
    b = _check_bars(bars, "lvn_alerts")
    nodes = np.asarray([x for x in lvns if np.isfinite(x) and x > 0], dtype=float)
    if not len(nodes):
        return []
    hi = b["high"].to_numpy(dtype=float)[:, None]
    lo = b["low"].to_numpy(dtype=float)[:, None]
    op = b["open"].to_numpy(dtype=float)[:, None]
    cl = b["close"].to_numpy(dtype=float)[:, None]
    # distance of each bar's range to each node, in % of the node (0 when the bar's range holds it)
    dist = np.maximum(np.maximum(lo - nodes, nodes - hi), 0.0) / nodes * 100.0
    near = dist <= p.lvn_distance_pct
    through = ((op - nodes) * (cl - nodes)) < 0
    ts = pd.DatetimeIndex(b["ts"])
    out = []
    for j, node in enumerate(nodes):
        hits = np.flatnonzero(near[:, j])
        if not len(hits):
            continue
        i = int(hits[0])
        crossed = bool(through[i, j])
        when = ts[i].tz_convert("America/New_York") if ts.tz is not None else ts[i]
        sev = Severity.WARNING if crossed else Severity.INFO
        msg = (f"{underlying} {'closed through' if crossed else 'at'} the prior session's low-volume node {node:.2f} "
               f"at {when:%H:%M} (bar {float(lo[i, 0]):.2f}-{float(hi[i, 0]):.2f}, within {p.lvn_distance_pct:g}%)")
        out.append(LvnAlert(rule=AlertRule.LVN_PROXIMITY, severity=sev, message=msg, value=float(dist[i, j]),
                            threshold=p.lvn_distance_pct, underlying=underlying, date=when.date(), level=float(node),
                            timestamp=when))
    out.sort(key=lambda a: a.timestamp)
    return out
