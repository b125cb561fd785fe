"""Each session of an intraday bar file against the one before: its volume profile, its market state and its LVN
alerts — what ``research-lib market-state`` prints and records, and what ``notebooks/volume_profile.ipynb`` shows.

:func:`session_states` takes regular-hours bars (:func:`research_lib.data.market.intraday.read_bars`), builds one
volume profile per session (:func:`research_lib.core.volume_profile.session_profiles`), and for every session
after the first classifies it against the *prior* session's value area
(:func:`research_lib.core.market_state.classify_session`) and raises the alerts of the prior session's LVNs
(:func:`research_lib.core.market_state.lvn_alerts`). Session ``i`` reads only sessions ``i − 1`` and ``i``: the
state of a day never depends on a later day (a test cuts the file and compares). :func:`record_alerts` stores the
alerts in the decision log beside the GEX alerts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os

import pandas as pd

from research_lib.core import volume_profile as vp
from research_lib.core.market_state import (
    LvnAlert,
    MarketState,
    MarketStateParams,
    classify_session,
    lvn_alerts,
)
from research_lib.errors import EmptyProfileError
from research_lib.formatting import jsonable

__all__ = ["STATE_COLUMNS", "SessionStates", "file_states", "record_alerts", "session_states"]

#: Columns of :attr:`SessionStates.table`.
STATE_COLUMNS = ("date", "state", "detail", "open_location", "close_location", "extension", "open", "close", "low",
                 "high", "ib_low", "ib_high", "prior_val", "prior_vah", "prior_poc", "prior_lvn", "poc", "val", "vah",
                 "alerts")


@dataclasses.dataclass(frozen=True)
class SessionStates:
    """The sessions of a bar file, each against the one before.

    Attributes
    ----------
    profiles : tuple of VolumeProfile
        One per session, in date order (the first has no state: nothing before it).
    states : tuple of MarketState
        One per session after the first.
    alerts : tuple of LvnAlert
        Every session's LVN alerts, in time order.
    underlying : str
    """

    profiles: tuple
    states: tuple[MarketState, ...]
    alerts: tuple[LvnAlert, ...]
    underlying: str

    @property
    def table(self) -> pd.DataFrame:
        """One row per classified session, columns :data:`STATE_COLUMNS` (``prior_lvn`` a list of prices,
        ``alerts`` the count)."""
        by_day = {p.session: p for p in self.profiles}
        prior = {self.profiles[i + 1].session: self.profiles[i] for i in range(len(self.profiles) - 1)}
        counts: dict[dt.date, int] = {}
        for a in self.alerts:
            counts[a.date] = counts.get(a.date, 0) + 1
        rows = []
        for s in self.states:
            p, q = by_day[s.session], prior[s.session]
            rows.append({"date": s.session, "state": s.state, "detail": s.detail, "open_location": s.open_location,
                         "close_location": s.close_location, "extension": s.extension, "open": s.open,
                         "close": s.close, "low": s.low, "high": s.high, "ib_low": s.ib_low, "ib_high": s.ib_high,
                         "prior_val": s.prior_val, "prior_vah": s.prior_vah, "prior_poc": q.poc,
                         "prior_lvn": list(q.lvn), "poc": p.poc, "val": p.val, "vah": p.vah,
                         "alerts": counts.get(s.session, 0)})
        return pd.DataFrame(rows, columns=list(STATE_COLUMNS))

    def records(self) -> list[dict]:
        """One JSON-ready dict per classified session: the table's row, the reasons, and the alerts."""
        alerts: dict[dt.date, list] = {}
        for a in self.alerts:
            alerts.setdefault(a.date, []).append({**a.to_dict(), "timestamp": a.timestamp})
        out = []
        for row, s in zip(self.table.to_dict(orient="records"), self.states, strict=True):
            out.append(jsonable({**row, "reasons": list(s.reasons), "alerts": alerts.get(s.session, [])}))
        return out


def session_states(bars: pd.DataFrame, *, underlying: str = "SPY", params: MarketStateParams | None = None,
                   **profile_kwargs) -> SessionStates:
    """Profile every session of ``bars``, classify each after the first against the one before, raise the LVN
    alerts (module docstring).

    Parameters
    ----------
    bars : DataFrame
        Regular-hours bars of one instrument, several sessions (:func:`read_bars`).
    underlying : str
        Named in the alerts.
    params : MarketStateParams, optional
        The state rules' thresholds; the initial balance of the state uses ``params.ib_minutes``.
    **profile_kwargs
        Passed to :func:`research_lib.core.volume_profile.session_profiles` (``row_size``, ``method``, ``va_rule``,
        ``value_area``, ``node_prominence`` ...).

    Raises
    ------
    EmptyProfileError
        No bars at all.
    """
    p = params or MarketStateParams()
    if not len(bars):
        raise EmptyProfileError("no bars: nothing to profile")
    profiles = vp.session_profiles(bars, **profile_kwargs)
    groups = {day: frame for day, frame in bars.groupby("session", sort=True)}
    states, alerts = [], []
    for prior, today in zip(profiles[:-1], profiles[1:], strict=True):
        day_bars = groups[today.session]
        states.append(classify_session(day_bars, prior.val, prior.vah, p))
        alerts.extend(lvn_alerts(day_bars, prior.lvn, underlying=underlying, params=p))
    return SessionStates(profiles=tuple(profiles), states=tuple(states), alerts=tuple(alerts), underlying=underlying)


def file_states(path: str | os.PathLike, *, underlying: str | None = None, date=None,
                params: MarketStateParams | None = None, **profile_kwargs) -> SessionStates:
    """:func:`session_states` of a bar file (regular hours); ``date`` keeps that session (and the one before it,
    which it is classified against). ``underlying`` defaults to the file name's first word (``spy_1min_…`` → SPY).
    """
    # lazy: start-up time — the intraday readers are loaded only when a file is read
    from research_lib.data.market.intraday import read_bars

    bars = read_bars(path, regular_hours=True)
    if underlying is None:
        underlying = os.path.basename(os.fspath(path)).split("_")[0].split(".")[0].upper() or "SPY"
    if date is not None:
        day = pd.Timestamp(date).date()
        days = sorted(set(bars["session"]))
        if day not in days:
            raise EmptyProfileError(f"{path}: no regular-hours bars on {day} (the file holds {days[0]} .. {days[-1]})")
        i = days.index(day)
        bars = bars[bars["session"].isin(days[max(i - 1, 0):i + 1])]
    return session_states(bars, underlying=underlying, params=params, **profile_kwargs)


def record_alerts(states: SessionStates, log=None) -> int:
    """Store the LVN alerts in the decision log (default ``data/decisions.sqlite``) beside the GEX alerts, each at
    its bar's time; returns how many."""
    # lazy: start-up time — the decision log is opened only when alerts are recorded
    from research_lib.records.decisions import DecisionLog

    log = log if log is not None else DecisionLog()
    return log.record_alerts(states.alerts)  # one transaction; each alert keeps its own bar's time
