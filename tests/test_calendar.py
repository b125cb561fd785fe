"""The exchange calendar behind every day count: sessions, holidays, early closes, settlement moments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic import snapshot

from research_lib import calendar as cal
from research_lib.core import gex

NY = "America/New_York"


def ts(text):
    return pd.Timestamp(text).tz_localize(NY)


@pytest.mark.parametrize("day, expected", [
    ("2026-06-19", False),  # Juneteenth
    ("2026-07-03", False),  # Independence Day observed
    ("2025-01-09", False),  # national day of mourning (President Carter)
    ("2024-11-28", False),  # Thanksgiving
    ("2024-11-29", True), ("2026-06-18", True), ("2026-06-20", False),  # Saturday
])
def test_sessions_and_holidays(day, expected):
    assert cal.is_session(day) is expected


def test_early_closes_and_regular_closes():
    assert cal.session_close("2024-11-29") == ts("2024-11-29 13:00")
    assert cal.session_close("2024-12-24") == ts("2024-12-24 13:00")
    assert cal.session_close("2024-12-23") == ts("2024-12-23 16:00")
    assert cal.session_close("2026-06-19") == ts("2026-06-19 16:00")  # not a session: plain 16:00


def test_settlement_times_am_pm_and_holiday_shifted_monthly():
    t = cal.settlement_times(["2026-06-18", "2026-06-18", "2024-11-29", "2041-01-04"], ["AM", "PM", "PM", "PM"])
    assert list(t) == [ts("2026-06-18 09:30"), ts("2026-06-18 16:00"), ts("2024-11-29 13:00"),
                       ts("2041-01-04 16:00")]  # beyond the calendar: plain times


def test_market_moment():
    assert cal.market_moment(ts("2024-01-05 11:00")) == ts("2024-01-05 11:00")  # in session
    assert cal.market_moment(ts("2024-01-07 10:52")) == ts("2024-01-05 16:00")  # Sunday → Friday close
    assert cal.market_moment(ts("2024-11-29 14:00")) == ts("2024-11-29 13:00")  # after an early close
    assert cal.market_moment(ts("2026-06-19 12:00")) == ts("2026-06-18 16:00")  # holiday
    assert cal.market_moment(ts("2024-01-08 08:00")) == ts("2024-01-05 16:00")  # pre-open Monday
    with pytest.raises(cal.CalendarRangeError):
        cal.market_moment(ts("2045-01-03 12:00"))


def test_sessions_range():
    s = cal.sessions("2026-06-12", "2026-06-22")
    assert [d.strftime("%m-%d") for d in s] == ["06-12", "06-15", "06-16", "06-17", "06-18", "06-22"]


def test_gex_day_count_over_a_holiday_and_an_early_close():
    # Quote Wednesday 2026-06-17 16:00. The June monthly moved to Thursday 06-18 (Juneteenth Friday):
    # AM settles at Thursday's open (17.5 h), PM at its close (24 h). A Monday 06-22 expiry is 5 days.
    rows = [("2026-06-18", 100, "C", 10, 0.2), ("2026-06-22", 100, "C", 10, 0.2)]
    am = gex.time_to_expiry(snapshot(rows[:1], root="SPX", settlement="AM", quote_time="2026-06-17 16:00"),
                            gex.GexConfig.model())
    pm = gex.time_to_expiry(snapshot(rows, quote_time="2026-06-17 16:00"), gex.GexConfig.model())
    np.testing.assert_allclose(am * 365 * 24, [17.5])
    np.testing.assert_allclose(pm * 365 * 24, [24.0, 5 * 24.0])
    # Black Friday 2024: a 0DTE quoted at 12:00 has one hour left, not four
    bf = gex.time_to_expiry(snapshot([("2024-11-29", 100, "C", 10, 0.2)], quote_time="2024-11-29 12:00"),
                            gex.GexConfig.model())
    np.testing.assert_allclose(bf * 365 * 24, [1.0])
