"""Market state against the prior value area, and LVN alerts (research_lib.core.market_state), on hand-built
sessions whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research_lib.core.alerts import AlertRule, Severity
from research_lib.core.market_state import MarketStateParams, classify_session, lvn_alerts
from research_lib.errors import MarketStateError


def _bars(path, *, start="2025-10-01 09:30", minutes=30):
    """One bar every ``minutes`` along ``path`` of (open, high, low, close)."""
    ts = pd.date_range(pd.Timestamp(start, tz="America/New_York"), periods=len(path), freq=f"{minutes}min")
    o, h, lo, c = (np.array(x, dtype=float) for x in zip(*path, strict=True))
    return pd.DataFrame({"ts": ts.tz_convert("UTC"), "open": o, "high": h, "low": lo, "close": c,
                         "volume": np.full(len(path), 1000.0)})


# prior value area 100-102 in every case; the IB is the first two 30-minute bars
TREND_UP = [(102.5, 103.0, 102.4, 102.9), (102.9, 103.2, 102.8, 103.1), (103.1, 104.0, 103.0, 103.9),
            (103.9, 104.5, 103.8, 104.4)]
INSIDE = [(101.0, 101.5, 100.5, 101.2), (101.2, 101.6, 100.8, 101.0), (101.0, 101.4, 100.9, 101.3)]
RETURNED = [(103.0, 103.2, 102.5, 102.6), (102.6, 102.7, 101.8, 101.9), (101.9, 102.0, 101.0, 101.5)]
NEUTRAL = [(101.0, 101.5, 100.5, 101.0), (101.0, 101.4, 100.7, 101.1), (101.1, 102.4, 101.0, 102.3),
           (102.3, 102.4, 99.8, 100.2), (100.2, 100.8, 100.1, 100.7)]
TREND_DOWN = [(99.8, 99.9, 99.0, 99.2), (99.2, 99.4, 98.9, 99.0), (99.0, 99.1, 97.5, 97.6)]


@pytest.mark.parametrize("path,state,detail,ext", [
    (TREND_UP, "trend_up", "one-way extension", "up"),
    (INSIDE, "balanced", "inside value", "none"),
    (RETURNED, "balanced", "returned to value", "down"),
    (NEUTRAL, "balanced", "neutral", "both"),
    (TREND_DOWN, "trend_down", "one-way extension", "down"),
])
def test_states_by_hand(path, state, detail, ext):
    s = classify_session(_bars(path), 100.0, 102.0)
    assert (s.state, s.detail, s.extension) == (state, detail, ext)
    assert s.open == path[0][0] and s.close == path[-1][3]
    assert s.ib_high == max(p[1] for p in path[:2]) and s.ib_low == min(p[2] for p in path[:2])
    assert str(s.session) == "2025-10-01" and state in s.reasons[-1]


def test_a_close_outside_without_one_way_extension_is_an_unconfirmed_breakout():
    path = [(101.5, 102.6, 101.4, 102.5), (102.5, 102.7, 102.2, 102.6), (102.6, 102.7, 102.3, 102.4)]
    s = classify_session(_bars(path), 100.0, 102.0)
    assert (s.state, s.detail, s.close_location, s.extension) == ("balanced", "unconfirmed breakout", "above", "none")


def test_extension_threshold_is_a_percentage_of_the_ib_bound():
    path = [(101.0, 101.5, 100.5, 101.0), (101.0, 101.5, 100.5, 101.0), (101.0, 101.6, 101.0, 101.5)]
    assert classify_session(_bars(path), 100.0, 102.0).extension == "up"          # 101.6 > 101.5 x 1.0005
    # 101.6 < 101.5 x 1.001 = 101.6015: no extension at 0.1%
    assert classify_session(_bars(path), 100.0, 102.0, MarketStateParams(extension_pct=0.1)).extension == "none"


def test_bad_input_is_named():
    with pytest.raises(MarketStateError, match="VAL <= VAH"):
        classify_session(_bars(INSIDE), 103.0, 102.0)
    with pytest.raises(MarketStateError, match="no bars"):
        classify_session(_bars(INSIDE).iloc[:0], 100.0, 102.0)
    with pytest.raises(MarketStateError, match="lack column"):
        classify_session(_bars(INSIDE).drop(columns="high"), 100.0, 102.0)
    with pytest.raises(MarketStateError, match="ib_minutes"):
        MarketStateParams(ib_minutes=0)


def test_lvn_alerts_first_touch_and_a_close_through_by_hand():
    # nodes at 103.05 (bar 0's high 103.0 is 0.0485% away, within 0.10%: INFO at 09:30, its open 102.5 and close
    # 102.9 both below) and 104.2 (first within reach in bar 3, which opens 103.9 and closes 104.4: closed through,
    # WARNING at 11:00; bar 2's high 104.0 is 0.19% away); 110 never reached
    alerts = lvn_alerts(_bars(TREND_UP), [103.05, 104.2, 110.0], underlying="SPY")
    assert [(a.level, a.severity, a.timestamp.strftime("%H:%M")) for a in alerts] == [
        (103.05, Severity.INFO, "09:30"), (104.2, Severity.WARNING, "11:00")]
    assert alerts[0].value == pytest.approx(0.05 / 103.05 * 100) and alerts[1].value == 0.0
    assert all(a.rule == AlertRule.LVN_PROXIMITY for a in alerts)
    # a node just beyond a bar: within 0.10% of 103.3 is 103.197 -> bar 1's high 103.2 is 0.097% away: touched
    (near,) = lvn_alerts(_bars(TREND_UP[:2]), [103.3], underlying="SPY")
    assert near.value == pytest.approx((103.3 - 103.2) / 103.3 * 100)
    assert lvn_alerts(_bars(TREND_UP[:2]), [103.4], underlying="SPY") == []


def test_lvn_alerts_go_into_the_decision_log_beside_the_gex_alerts(tmp_path):
    from research_lib.records.decisions import DecisionLog

    log = DecisionLog(tmp_path / "d.sqlite")
    alerts = lvn_alerts(_bars(TREND_UP), [103.05, 104.2], underlying="SPY")
    assert log.record_alerts(alerts) == 2
    stored = log.read_alerts(rule="lvn_proximity")
    assert list(stored["severity"]) == ["INFO", "WARNING"] and set(stored["underlying"]) == {"SPY"}


# ------------------------------------------------------------------------------------------------
# every session of a file against the one before (pipeline.sessions) and `research-lib market-state`
def _sessions_bars():
    """Three synthetic sessions of 1-minute bars (a drifting walk), the read_bars layout."""
    rng = np.random.default_rng(3)
    frames = []
    for day, drift in (("2025-10-01", 0.0), ("2025-10-02", 0.02), ("2025-10-03", -0.02)):
        ts = pd.date_range(pd.Timestamp(f"{day} 09:30", tz="America/New_York"), periods=390, freq="1min")
        close = 100 + np.cumsum(drift + rng.normal(0, 0.05, 390))
        open_ = np.r_[close[0], close[:-1]]
        frames.append(pd.DataFrame({"ts": ts.tz_convert("UTC"), "session": pd.Timestamp(day).date(), "open": open_,
                                    "high": np.maximum(open_, close) + 0.02, "low": np.minimum(open_, close) - 0.02,
                                    "close": close, "volume": rng.integers(1000, 5000, 390).astype(float)}))
    return pd.concat(frames, ignore_index=True)


def test_session_states_use_only_the_session_and_the_one_before():
    from research_lib.pipeline.sessions import STATE_COLUMNS, session_states

    bars = _sessions_bars()
    full = session_states(bars, underlying="SPY", row_size=0.05)
    assert [s.session.isoformat() for s in full.states] == ["2025-10-02", "2025-10-03"]
    assert list(full.table.columns) == list(STATE_COLUMNS)
    # the same state whether or not later sessions are in the file (no look-ahead)
    cut = session_states(bars[bars["session"] <= pd.Timestamp("2025-10-02").date()], underlying="SPY", row_size=0.05)
    assert cut.states[0] == full.states[0]
    assert [a for a in full.alerts if a.date.isoformat() == "2025-10-02"] == list(cut.alerts)
    # and each state is classify_session against the prior profile's value area, recomputed here
    prior = full.profiles[0]
    day = bars[bars["session"] == pd.Timestamp("2025-10-02").date()]
    assert full.states[0] == classify_session(day, prior.val, prior.vah)


def test_market_state_command_json_and_record(tmp_path, monkeypatch):
    import io
    import json

    from research_lib import cli

    path = tmp_path / "spy_1min_synthetic.csv"
    bars = _sessions_bars()
    pd.DataFrame({"datetime": pd.DatetimeIndex(bars["ts"]).tz_convert("America/New_York").strftime("%Y-%m-%d %H:%M:%S"),
                  **{c: bars[c] for c in ("open", "high", "low", "close", "volume")}}).to_csv(path, index=False)
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path))
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["market-state", str(path), "--json", "--record", "--row-size", "0.05"], out=out, err=err) == 0
    lines = [json.loads(x, parse_constant=lambda t: (_ for _ in ()).throw(ValueError(t)))
             for x in out.getvalue().splitlines()]
    assert [x["date"] for x in lines] == ["2025-10-02", "2025-10-03"] and all(x["state"] for x in lines)
    n = sum(len(x["alerts"]) for x in lines)
    assert f"{n} LVN alert(s) recorded" in err.getvalue()
    from research_lib.records.decisions import DecisionLog

    assert len(DecisionLog(tmp_path / "decisions.sqlite").read_alerts(rule="lvn_proximity")) == n
    out = io.StringIO()
    assert cli.main(["market-state", str(path), "--date", "2025-10-03"], out=out, err=io.StringIO()) == 0
    assert "1 session(s)" in out.getvalue() and "2025-10-03" in out.getvalue()


def test_real_spy_sessions_states_and_alerts():
    from conftest import SHARED_DATA, shared_file

    from research_lib.pipeline.sessions import file_states

    path = shared_file(SHARED_DATA / "market" / "intraday" / "spy_1min_2025-09-15_2026-03-19.csv.gz")
    st = file_states(path)
    table = st.table
    assert len(table) == 128 and set(table["state"]) == {"trend_up", "trend_down", "balanced"}
    # the open and close are the file's own first open and last close of each session (pandas alone)
    from research_lib import calendar as cal

    raw = pd.read_csv(path, parse_dates=["datetime"])
    closes = {d: cal.session_close(d).strftime("%H:%M") for d in set(raw["datetime"].dt.date)}   # 13:00 early
    hhmm = raw["datetime"].dt.strftime("%H:%M")
    raw = raw[(hhmm >= "09:30") & (hhmm < raw["datetime"].dt.date.map(closes))]
    by_day = raw.groupby(raw["datetime"].dt.date)
    first, last = by_day["open"].first(), by_day["close"].last()
    for row in table.itertuples():
        assert row.open == first[row.date] and row.close == last[row.date]
    assert all(a.level in set(sum(table["prior_lvn"], [])) for a in st.alerts)
