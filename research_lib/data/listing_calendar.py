"""Every SPX/SPXW expiry listed on every session of a period, at once: the fast path of
:func:`research_lib.data.modelled.listed_expiries`.

:func:`research_lib.data.modelled.listed_expiries` answers for one quote time (tens of milliseconds: it walks the
calendar out to the LEAPS); a fifteen-year backtest asks on ~3,900 sessions. :func:`listing_calendar` applies the
same rules (the era's :class:`~research_lib.data.modelled.ListingRules` of ``LISTING_ERAS``, ``SPXW_WEEKDAY_SINCE``,
the Monday-holiday and monthly-Friday rules) in the other direction: for each expiry it computes the sessions on
which it is listed (``listed_from`` .. ``listed_until``), so the expiries of session D are those listed on D that
settle after D's close. Only expiries up to ``horizon_days`` calendar days
ahead are produced (the window a backtest can enter). ``tests/test_history_backtest.py`` checks it against
``listed_expiries`` on sampled days of 2011-2026 (the slow reference).

The quote moment is each session's close (what a daily backtest sees): an expiry settling at that close (the PM
0DTE) is not listed; an AM expiry settles at that morning's open, so it is not listed on its own day either.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

from research_lib import calendar as cal
from research_lib.data import modelled
from research_lib.errors import ModelledChainError


@dataclasses.dataclass(frozen=True)
class ListingCalendar:
    """Expiries and the sessions on which they are listed.

    Attributes
    ----------
    expiries : DataFrame
        One row per (expiration, root): ``expiration`` (datetime64[ns], midnight), ``root`` (``SPX`` AM /
        ``SPXW`` PM), ``settlement`` (``AM``/``PM``), ``kind`` (:data:`~research_lib.data.modelled.EXPIRY_KINDS`),
        ``settles_ns`` (the settlement moment, ns since the epoch, UTC), ``listed_from`` (datetime64[ns]: the
        first session it is listed on), ``listed_until`` (datetime64[ns]: the session it stops being listed,
        exclusive: its expiration, or the start of the next listing era). Sorted by (expiration, root,
        listed_from).
    sessions : DatetimeIndex
        The sessions covered.
    horizon_days : int
        Expiries more than this many calendar days after a session are not listed for it here.
    """

    expiries: pd.DataFrame
    sessions: pd.DatetimeIndex
    horizon_days: int

    def on(self, day) -> pd.DataFrame:
        """The expiries listed at the close of session ``day`` (rows of :attr:`expiries`, plus ``dte``)."""
        ts = pd.Timestamp(day).normalize()
        close_ns = cal.session_close(ts.date()).value if cal.is_session(ts.date()) else None
        if close_ns is None:
            raise ModelledChainError(f"{ts.date()} is not a session")
        e = self.expiries
        m = ((e["listed_from"] <= ts) & (e["listed_until"] > ts) & (e["settles_ns"] > close_ns)
             & ((e["expiration"] - ts).dt.days <= self.horizon_days)).to_numpy()
        out = e[m].drop_duplicates(["expiration", "root"]).copy()
        out["dte"] = (out["expiration"] - ts).dt.days
        return out.reset_index(drop=True)


def _since_ok(weekday: np.ndarray, listed_from: np.ndarray) -> np.ndarray:
    """The first date an SPXW expiry of that weekday may be listed (SPXW_WEEKDAY_SINCE): NaT where never."""
    out = np.full(len(weekday), np.datetime64("NaT"), dtype="datetime64[D]")
    for wd, since in modelled.SPXW_WEEKDAY_SINCE.items():
        out[weekday == wd] = np.datetime64(since, "D")
    return np.where(np.isnat(out), out, np.maximum(listed_from, out))


def listing_calendar(first, last, *, horizon_days: int = 400) -> ListingCalendar:
    """The listing calendar of the sessions ``first``..``last`` (see the module docstring).

    Each era of :data:`research_lib.data.modelled.LISTING_ERAS` lists by its own
    :class:`~research_lib.data.modelled.ListingRules`; an expiry is listed on the sessions of an era from the
    first one its rules allow, so a row of :attr:`ListingCalendar.expiries` is one interval
    ``[listed_from, listed_until)`` of one era (an expiry listed across two eras has two rows).

    Parameters
    ----------
    first, last : date-like
        First and last session served (both included).
    horizon_days : int
        Calendar days ahead produced (>= 1); a backtest needs its largest ``dte + dte_tolerance``.

    Returns
    -------
    ListingCalendar

    Raises
    ------
    ModelledChainError
        ``first`` after ``last`` or a horizon below 1.
    """
    first = pd.Timestamp(first).normalize()
    last = pd.Timestamp(last).normalize()
    if first > last:
        raise ModelledChainError(f"listing calendar: first {first.date()} is after last {last.date()}")
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int | np.integer) or horizon_days < 1:
        raise ModelledChainError(f"listing calendar: horizon_days must be a whole number >= 1, got {horizon_days!r}")
    end = min(last + pd.Timedelta(days=horizon_days + 7), pd.Timestamp(cal.CALENDAR_END))
    sess = cal.sessions(first.date() - dt.timedelta(days=30), end.date())
    sess_d = sess.to_numpy().astype("datetime64[D]")
    served = sess_d[(sess_d >= np.datetime64(first.date(), "D")) & (sess_d <= np.datetime64(last.date(), "D"))]
    eras = list(modelled.LISTING_ERAS)
    frames = []
    for j, (since, rules) in enumerate(eras):
        until = eras[j + 1][0] if j + 1 < len(eras) else dt.date.max
        lo = max(np.datetime64(since, "D"), served[0])
        hi = min(np.datetime64(until, "D") if until < dt.date.max else served[-1] + 1, served[-1] + 1)
        if lo >= hi:
            continue
        era = _era_rows(rules, sess_d, lo, end)
        era["listed_from"] = np.maximum(era["listed_from"].to_numpy(), pd.Timestamp(lo).to_datetime64())
        era["listed_until"] = np.minimum(era["expiration"].to_numpy(), pd.Timestamp(hi).to_datetime64())
        frames.append(era[era["listed_from"] < era["listed_until"]])
    frame = pd.concat(frames, ignore_index=True)
    frame["root"] = np.where(frame["is_am"], "SPX", "SPXW")
    frame["settlement"] = np.where(frame["is_am"], "AM", "PM")
    frame["settles_ns"] = cal.settlement_times(frame["expiration"].to_numpy(), frame["settlement"].to_numpy()).asi8
    frame["kind"] = modelled.classify_expiries(frame["expiration"], frame["root"])
    frame = frame.sort_values(["expiration", "root", "listed_from"]).reset_index(drop=True)
    return ListingCalendar(expiries=frame[["expiration", "root", "settlement", "kind", "settles_ns", "listed_from",
                                           "listed_until"]],
                           sessions=pd.DatetimeIndex(served), horizon_days=int(horizon_days))


def _era_rows(rules: modelled.ListingRules, sess_d: np.ndarray, lo: np.datetime64, end: pd.Timestamp) -> pd.DataFrame:
    """(expiration, is_am, listed_from) of every expiry after ``lo`` up to ``end`` under one era's ``rules``: the
    first day the rules list it (it may be before ``lo``; the caller clips to the era)."""
    rows = []          # (expiration day, is_am, listed_from day)
    last_day = np.datetime64(end.date(), "D")

    def add(exp: np.ndarray, am: bool, listed_from: np.ndarray) -> None:
        keep = ~np.isnat(listed_from)
        rows.append((exp[keep], np.full(int(keep.sum()), am), listed_from[keep]))

    def first_session_from(days: np.ndarray) -> np.ndarray:
        """The first session on or after each day (the sessions before the calendar's start: its first)."""
        i = np.searchsorted(sess_d, days, side="left")
        return sess_d[np.minimum(i, len(sess_d) - 1)]

    # Dailies: session e is one of the next `daily_sessions` sessions after D -> listed from the session
    # `daily_sessions` sessions before e (none when the era has no dailies).
    if rules.daily_sessions:
        pos = np.flatnonzero((sess_d > lo) & (sess_d <= last_day))
        e_d = sess_d[pos]
        weekday = pd.DatetimeIndex(e_d).day_of_week.to_numpy()
        # Tuesdays and Thursdays are listed over fewer sessions where the era says so (tue_thu_sessions)
        tue_thu = rules.daily_sessions if rules.tue_thu_sessions is None else min(rules.tue_thu_sessions,
                                                                                 rules.daily_sessions)
        reach = np.where(np.isin(weekday, (1, 3)), tue_thu, rules.daily_sessions)
        lf = sess_d[np.maximum(pos - reach, 0)]
        lf = np.where(reach > 0, lf, np.datetime64("NaT"))
        add(e_d, False, _since_ok(weekday, lf))
        # a Monday expiry on a holiday moves to the Tuesday (listed like that Tuesday, from Monday's start date)
        mondays = pd.date_range(pd.Timestamp(lo), end, freq="W-MON").to_numpy().astype("datetime64[D]")
        hol = mondays[~np.isin(mondays, sess_d)]
        tue = hol + np.timedelta64(1, "D")
        tpos = np.searchsorted(sess_d, tue)
        ok = (tpos < len(sess_d)) & (sess_d[np.minimum(tpos, len(sess_d) - 1)] == tue)
        tue, tpos = tue[ok], tpos[ok]
        add(tue, False, _since_ok(np.zeros(len(tue), dtype=int), sess_d[np.maximum(tpos - rules.daily_sessions, 0)]))
    # Friday weeklies (the Thursday before a Friday holiday): listed when (Friday - D) <= weekly_days.
    fridays = pd.date_range(pd.Timestamp(lo) - pd.Timedelta(days=7), end, freq="W-FRI").to_numpy().astype(
        "datetime64[D]")
    if rules.weekly_skip_monthly:
        monthly = np.array([np.datetime64(cal.monthly_expiry(f.year, f.month), "D")
                            for f in pd.DatetimeIndex(fridays)], dtype="datetime64[D]")
        fridays = fridays[(fridays != monthly) & (fridays - np.timedelta64(1, "D") != monthly)]
    lf = _since_ok(np.full(len(fridays), 4), first_session_from(fridays - np.timedelta64(rules.weekly_days, "D")))
    exp = fridays.copy()
    for j in np.flatnonzero(~np.isin(fridays, sess_d)):      # a holiday Friday: the session before
        e = pd.Timestamp(fridays[j]).date()
        while e <= pd.Timestamp(cal.CALENDAR_END).date() and not cal.is_session(e):
            e -= dt.timedelta(days=1)
        exp[j] = np.datetime64(e, "D")
    add(exp, False, lf)
    # End of month (the month's last session): monthly within eom_monthly_days, quarter ends within
    # eom_quarterly_days.
    months = pd.period_range(pd.Timestamp(lo).to_period("M"), end.to_period("M") + 1, freq="M")
    eom, mon = [], []
    for p in months:
        ms = sess_d[(sess_d >= np.datetime64(p.start_time.date(), "D"))
                    & (sess_d <= np.datetime64(p.end_time.date(), "D"))]
        if len(ms):
            eom.append(ms[-1])
            mon.append(p.month)
    e_d = np.array(eom, dtype="datetime64[D]")
    mon = np.array(mon)
    reach = np.where(mon % 3 == 0, max(rules.eom_monthly_days, rules.eom_quarterly_days), rules.eom_monthly_days)
    lf = first_session_from(e_d - reach.astype("timedelta64[D]"))
    add(e_d, False, np.where(reach > 0, lf, np.datetime64("NaT")))
    # Monthly dates: SPXW PM within pm_monthly_days; SPX AM within the longest reach of its month.
    md = np.array([np.datetime64(cal.monthly_expiry(p.year, p.month), "D") for p in months], dtype="datetime64[D]")
    mm = np.array([p.month for p in months])
    if rules.pm_monthly_days:
        add(md, False, first_session_from(md - np.timedelta64(rules.pm_monthly_days, "D")))
    am_reach = np.full(len(md), rules.am_monthly_days)
    am_reach = np.where(mm % 3 == 0, np.maximum(am_reach, rules.am_quarterly_days), am_reach)
    am_reach = np.where(np.isin(mm, (6, 12)), np.maximum(am_reach, rules.am_june_december_days), am_reach)
    am_reach = np.where(mm == 12, np.maximum(am_reach, rules.leaps_days), am_reach)
    add(md, True, first_session_from(md - am_reach.astype("timedelta64[D]")))

    exp = np.concatenate([r[0] for r in rows])
    am = np.concatenate([r[1] for r in rows])
    lf = np.concatenate([r[2] for r in rows])
    frame = pd.DataFrame({"expiration": exp.astype("datetime64[ns]"), "is_am": am,
                          "listed_from": lf.astype("datetime64[ns]")})
    # one row per (expiration, root): the earliest listing of the rules that list it
    frame = frame.groupby(["expiration", "is_am"], as_index=False, sort=True)["listed_from"].min()
    return frame[(frame["expiration"] > pd.Timestamp(lo)) & (frame["expiration"] <= end)].reset_index(drop=True)


__all__ = ["ListingCalendar", "listing_calendar"]
