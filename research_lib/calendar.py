"""The exchange calendar: sessions, holidays, early closes and option settlement moments.

Backed by `exchange-calendars <https://github.com/gerrymanoim/exchange_calendars>`_ (NYSE, ``XNYS``),
loaded lazily once per process for 1985–2040 (quote times 1990–2040). Every day count in research_lib goes through here.
Building that calendar takes ~0.7 s, so its session table is kept in a small Parquet file under
``$RESEARCH_LIB_CACHE`` (default ``$XDG_CACHE_HOME/research_lib`` or ``~/.cache/research_lib``), named by
the exchange-calendars version and the range; an unreadable or unwritable cache is simply rebuilt or
skipped.

Settlement moments
------------------
* PM-settled options (SPXW, SPY, ...) settle at the session's close on the expiry date: 16:00 ET, or
  13:00 ET on an early-close day.
* AM-settled options (SPX, NDX, RUT monthlies) settle on the special opening quotation: the moment used
  is the session's open, 09:30 ET.
* An expiry date that is not a session (a listing error, or a date beyond the calendar) uses the plain
  weekday times, 16:00 / 09:30 ET.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    CalendarRangeError as CalendarRangeError,
)
from research_lib.fs import atomic_write
from research_lib.settings import ENV_CACHE, NY

CALENDAR_NAME = "XNYS"
CALENDAR_START = "1985-01-02"  # earlier than any accepted quote time (1990-01-02)
CALENDAR_END = "2040-12-31"


@functools.lru_cache(maxsize=1)
def exchange_calendar():
    """The NYSE calendar (``exchange_calendars`` ``XNYS``), 1985–2040, cached."""
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        # exchange-calendars 4.x calls a pandas API that pandas 3.1 deprecates; harmless, not ours.
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return xcals.get_calendar(CALENDAR_NAME, start=CALENDAR_START, end=CALENDAR_END)


def cache_dir() -> Path:
    """Where research_lib keeps derived, rebuildable files (``$RESEARCH_LIB_CACHE``, else the XDG cache)."""
    env = os.environ.get(ENV_CACHE, "").strip()
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "research_lib"


def _schedule_cache_path() -> Path:
    from importlib.metadata import version

    return cache_dir() / f"{CALENDAR_NAME}_{CALENDAR_START}_{CALENDAR_END}_xcals{version('exchange_calendars')}.parquet"


def _build_schedule() -> pd.DataFrame:
    sched = exchange_calendar().schedule[["open", "close"]]
    out = pd.DataFrame({
        "open": sched["open"].dt.tz_convert(NY),
        "close": sched["close"].dt.tz_convert(NY),
    })
    out.index = pd.DatetimeIndex(out.index).tz_localize(None).astype("datetime64[ns]")
    return out


@functools.lru_cache(maxsize=1)
def _schedule_ny() -> pd.DataFrame:
    """Session open and close (New York) by tz-naive date, from the disk cache or built and cached."""
    path = _schedule_cache_path()
    try:
        cached = pd.read_parquet(path)
        if list(cached.columns) == ["open", "close"] and len(cached) > 10_000:
            cached.index = pd.DatetimeIndex(cached.index).astype("datetime64[ns]")
            return cached
    except (OSError, ValueError):  # missing or unreadable: rebuild below
        pass
    out = _build_schedule()
    try:
        atomic_write(path, out.to_parquet())
    except OSError:  # a read-only home: keep the in-memory table only
        pass
    return out


def _to_naive_dates(dates) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(np.asarray(dates, dtype=object))))
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    return idx.normalize().astype("datetime64[ns]")


def is_session(date) -> bool:
    """True when ``date`` (anything :class:`pandas.Timestamp` accepts) is an NYSE trading day."""
    return bool(_to_naive_dates([date])[0] in _schedule_ny().index)


def sessions(start, end) -> pd.DatetimeIndex:
    """The NYSE trading days from ``start`` to ``end`` inclusive (tz-naive dates)."""
    idx = _schedule_ny().index
    return idx[(idx >= pd.Timestamp(start)) & (idx <= pd.Timestamp(end))]


def session_close(date) -> pd.Timestamp:
    """The close of the session on ``date`` in New York time (13:00 on early closes).

    A date that is not a session gives 16:00 of that date.
    """
    d = _to_naive_dates([date])[0]
    sched = _schedule_ny()
    if d in sched.index:
        return sched.at[d, "close"]
    return (d + pd.Timedelta(hours=16)).tz_localize(NY)


def session_open(date) -> pd.Timestamp:
    """The open of the session on ``date`` in New York time (09:30). A date that is not a session gives 09:30."""
    d = _to_naive_dates([date])[0]
    sched = _schedule_ny()
    if d in sched.index:
        return sched.at[d, "open"]
    return (d + pd.Timedelta(hours=9, minutes=30)).tz_localize(NY)


def market_state(ts=None, *, grace_minutes: float = 15.0) -> tuple[bool, str]:
    """Whether the market is in session at ``ts`` (default now), and a sentence saying so.

    ``grace_minutes`` after the close still count as in session (the closing marks of a cron job a minute late).

    Returns
    -------
    (bool, str)
        ``(True, "in session until 16:00 EDT")`` or ``(False, "2026-07-04 is not a trading day")``,
        ``(False, "before the open (09:30 EDT) of 2026-07-06")``, ``(False, "after the close (16:00 EDT) of …")``.
    """
    now = pd.Timestamp.now(tz=NY) if ts is None else pd.Timestamp(ts)
    now = now.tz_localize(NY) if now.tzinfo is None else now.tz_convert(NY)
    day = now.date()
    if not is_session(day):
        return False, f"{day} is not a trading day"
    opens, closes = session_open(day), session_close(day)
    if now < opens:
        return False, f"before the open ({opens:%H:%M %Z}) of {day}"
    if now > closes + pd.Timedelta(minutes=grace_minutes):
        return False, f"after the close ({closes:%H:%M %Z}) of {day}"
    return True, f"in session until {closes:%H:%M %Z}"


def settlement_times(expiration, settlement) -> pd.DatetimeIndex:
    """The settlement moment of each contract, tz-aware New York time.

    Parameters
    ----------
    expiration : array-like of dates
        Expiry dates.
    settlement : array-like of ``"AM"``/``"PM"``
        Settlement style per contract, same length.

    Returns
    -------
    DatetimeIndex (America/New_York)
        PM: the session close on the expiry date (16:00, or 13:00 on an early close); AM: the session
        open (09:30). Dates that are not sessions use 16:00 / 09:30 of that date.
    """
    exp = _to_naive_dates(expiration)
    is_am = np.asarray(settlement) == "AM"
    if len(exp) != len(is_am):
        raise ValueError(f"expiration ({len(exp)}) and settlement ({len(is_am)}) differ in length")
    uniq, inverse = np.unique(exp.values, return_inverse=True)
    sched = _schedule_ny().reindex(pd.DatetimeIndex(uniq))
    default_open = pd.DatetimeIndex(uniq).tz_localize(NY) + pd.Timedelta(hours=9, minutes=30)
    default_close = pd.DatetimeIndex(uniq).tz_localize(NY) + pd.Timedelta(hours=16)
    opens = pd.DatetimeIndex(sched["open"]).where(sched["open"].notna().values, default_open)
    closes = pd.DatetimeIndex(sched["close"]).where(sched["close"].notna().values, default_close)
    opens_ns = opens.asi8[inverse]
    closes_ns = closes.asi8[inverse]
    return pd.DatetimeIndex(np.where(is_am, opens_ns, closes_ns)).tz_localize("UTC").tz_convert(NY)


def last_close_at_or_before(ts) -> pd.Timestamp:
    """The most recent session close at or before ``ts`` (tz-aware), in New York time.

    During a session this is the previous session's close; use :func:`market_moment` for "the moment
    prices refer to".
    """
    ts = pd.Timestamp(ts).tz_convert(NY)
    sched = _schedule_ny()
    closes = sched["close"]
    pos = closes.searchsorted(ts, side="right") - 1
    if pos < 0:
        raise CalendarRangeError(f"{ts} is before the calendar's first session ({CALENDAR_START})")
    return closes.iloc[pos]


def market_moment(ts) -> pd.Timestamp:
    """The moment a quote taken at ``ts`` describes: ``ts`` itself during a session, otherwise the
    close of the last session before it (a Saturday download of Friday's chain → Friday 16:00).

    Raises :class:`CalendarRangeError` outside the calendar's 1990–2040 range.
    """
    ts = pd.Timestamp(ts).tz_convert(NY)
    sched = _schedule_ny()
    if ts.tz_localize(None) > sched.index[-1] + pd.Timedelta(days=1):
        raise CalendarRangeError(f"{ts} is after the calendar's last session ({CALENDAR_END})")
    d = ts.tz_localize(None).normalize()
    if d in sched.index and sched.at[d, "open"] <= ts <= sched.at[d, "close"]:
        return ts
    return last_close_at_or_before(ts)


def trading_date(ts) -> dt.date:
    """The trading date whose prices a quote taken at ``ts`` shows: the session ``ts`` falls in, else the
    last session that closed before it.

    A Sunday download of Friday's close (2024-01-07 10:52 → 2024-01-05), a holiday download
    (2026-06-19 → 2026-06-18) and a pre-open fetch (2026-06-23 08:50 → 2026-06-22) all belong to the
    previous session; a quote taken during a session or after its close belongs to that session.

    Parameters
    ----------
    ts : tz-aware timestamp
        The quote time (any time zone; read in New York time).

    Raises
    ------
    CalendarRangeError
        ``ts`` outside the calendar's 1990–2040 range.
    """
    return market_moment(ts).tz_convert(NY).date()


YEAR_SECONDS = 365.0 * 86400.0


# --------------------------------------------------------------------------------------------------
# the standard monthly SPX expiry (the Cboe PUT/BXM roll date)


def third_friday(year: int, month: int) -> dt.date:
    """The third Friday of ``year``-``month``."""
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def monthly_expiry(year: int, month: int) -> dt.date:
    """The standard monthly SPX expiry of a month: its third Friday, or the last NYSE session before it when
    that Friday is not a session (2026-06-18: Juneteenth falls on Friday 2026-06-19; 2025-04-17: Good Friday).
    Beyond the exchange calendar's end (:data:`CALENDAR_END`) the plain third Friday.
    """
    day = third_friday(year, month)
    if day > dt.date.fromisoformat(CALENDAR_END):
        return day
    while not is_session(day):
        day -= dt.timedelta(days=1)
    return day


def roll_dates(start, end) -> list[dt.date]:
    """Monthly SPX expiries (:func:`monthly_expiry`) from ``start`` to ``end``, both included."""
    a, b = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    out = []
    y, m = a.year, a.month
    while (y, m) <= (b.year, b.month):
        d = monthly_expiry(y, m)
        if a <= d <= b:
            out.append(d)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def next_monthly_expiry(day) -> dt.date:
    """The first monthly expiry strictly after ``day``."""
    d = pd.Timestamp(day).date()
    y, m = d.year, d.month
    while True:
        e = monthly_expiry(y, m)
        if e > d:
            return e
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
