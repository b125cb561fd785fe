"""Order flow (research_lib.core.order_flow): signing by hand and against slow pure-Python references
(py_vollib style: the references live only here), prefix invariance (no look-ahead), bar splits, per-bar
flow, the synthetic truth, and real-data checks on the 2013 SPY ticks (skipped without ../shared)."""

from __future__ import annotations

import datetime as dt
import math
import statistics

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, shared_file
from hypothesis import given, settings, strategies as st
from intraday_fixtures import NORMAL_DAY, bars, tick_day, write_tick_files

from research_lib.core.order_flow import (
    BAR_FLOW_COLUMNS,
    SESSION_FLOW_COLUMNS,
    aggressive_bars,
    bar_buy_share,
    bar_flow,
    bar_flow_from_bars,
    cvd,
    pressure,
    prevailing_quote,
    session_flow,
    sign_trades,
)
from research_lib.data.market.intraday import read_quote_bars, read_trades
from research_lib.errors import OrderFlowInputError

TICKS = SHARED_DATA / "market" / "ticks" / "spy_2013-10-07_2013-10-11"


# --------------------------------------------------------------------------------------------------------
# slow references (plain Python loops, the rules as written in the literature)


def ref_tick(prices, sessions=None):
    out, last_price, last_sign, last_session = [], None, 0, object()
    for i, p in enumerate(prices):
        s = None if sessions is None else sessions[i]
        if i == 0 or s != last_session:
            last_price, last_sign, last_session = p, 0, s
            out.append(0)
            continue
        if p > last_price:
            last_sign = 1
        elif p < last_price:
            last_sign = -1
        last_price = p
        out.append(last_sign)
    return out


def ref_lee_ready(prices, bids, asks, sessions=None):
    tick = ref_tick(prices, sessions)
    out = []
    for p, b, a, t in zip(prices, bids, asks, tick, strict=True):
        if math.isnan(b) or math.isnan(a) or b > a or p == (b + a) / 2:
            out.append(t)
        else:
            out.append(1 if p > (b + a) / 2 else -1)
    return out


def ref_bvc(o, c, sessions, window, min_periods):
    out, hist = [], []
    for i in range(len(c)):
        if i == 0 or sessions[i] != sessions[i - 1]:
            hist, dp = [], c[i] - o[i]
        else:
            dp = c[i] - c[i - 1]
        hist.append(dp)
        win = hist[-window:]
        sd = statistics.stdev(win) if len(win) >= max(min_periods, 2) else float("nan")
        out.append(0.5 * (1 + math.erf(dp / sd / math.sqrt(2))) if sd > 0 else 0.5)
    return out


def ref_aggressive(delta, sessions, k, window, min_periods):
    out = []
    for i in range(len(delta)):
        prev = [delta[j] for j in range(max(0, i - window), i) if sessions[j] == sessions[i]]
        if len(prev) < min_periods:
            out.append(0)
            continue
        med = statistics.median(prev)
        scale = 1.482602218505602 * statistics.median([abs(x - med) for x in prev])
        out.append(1 if scale > 0 and delta[i] > k * scale else -1 if scale > 0 and delta[i] < -k * scale else 0)
    return out


# --------------------------------------------------------------------------------------------------------
# signing by hand


def test_tick_rule_by_hand():
    p = [10.00, 10.01, 10.01, 10.00, 10.00, 10.02]
    assert sign_trades(p).tolist() == [0, 1, 1, -1, -1, 1]
    assert sign_trades([10, 10, 10.01, 10.01]).tolist() == [0, 0, 1, 1]  # zero ticks after the first: unsigned
    assert sign_trades([10, 10.01, 10.02, 10.02, 10.01], session=["a", "a", "b", "b", "b"]).tolist() == [0, 1, 0, 0, -1]
    assert sign_trades([]).tolist() == [] and sign_trades([5.0]).tolist() == [0]
    assert sign_trades(p).dtype == np.int8


def test_quote_and_lee_ready_by_hand():
    p = [10.02, 10.00, 10.01, 10.01, 10.03, 10.03]
    b = [10.00, 10.00, 10.00, np.nan, 10.04, 10.02]
    a = [10.02, 10.02, 10.02, np.nan, 10.02, 10.04]  # row 4 crossed, row 3 no quote
    assert sign_trades(p, "quote", b, a).tolist() == [1, -1, 0, 0, 0, 0]
    # at the mid / no quote / crossed: the tick rule (row 2 up-tick from 10.00, row 3 zero tick, row 4 up, row 5 zero)
    assert sign_trades(p, "lee_ready", b, a).tolist() == [1, -1, 1, 1, 1, 1]


def test_prevailing_quote_as_of_with_lag():
    q_ts = pd.to_datetime(["2025-11-26 14:30:00", "2025-11-26 14:30:01", "2025-11-26 14:30:05"], utc=True)
    t_ts = pd.to_datetime(["2025-11-26 14:30:00.500", "2025-11-26 14:30:01", "2025-11-26 14:30:01.999",
                           "2025-11-26 14:30:02", "2025-11-26 14:30:09"], utc=True, format="ISO8601")
    bid, ask = [1.0, 2.0, 3.0], [1.1, 2.1, 3.1]
    b, a = prevailing_quote(t_ts, q_ts, bid, ask)  # a bar's close is known one second after its start
    np.testing.assert_array_equal(b, [np.nan, 1.0, 1.0, 2.0, 3.0])
    b0, _ = prevailing_quote(t_ts, q_ts, bid, ask, lag="0s")
    np.testing.assert_array_equal(b0, [1.0, 2.0, 2.0, 2.0, 3.0])
    bs, _ = prevailing_quote(t_ts, q_ts, bid, ask, lag="0s", trade_session=[1, 1, 1, 2, 2],
                             quote_session=[1, 1, 2])
    np.testing.assert_array_equal(bs, [1.0, 2.0, 2.0, np.nan, 3.0])  # never another session's quote
    with pytest.raises(OrderFlowInputError, match="ascending"):
        prevailing_quote(t_ts, q_ts[::-1], bid, ask)


@pytest.mark.parametrize("kwargs,match", [
    ({"price": [1.0, 2.0], "rule": "midpoint"}, "rule must be one of"),
    ({"price": [1.0, 2.0], "rule": "quote"}, "needs bid and ask"),
    ({"price": [1.0, np.nan]}, "non-finite"),
    ({"price": [1.0, -2.0]}, "non-positive"),
    ({"price": [1.0, 2.0], "rule": "lee_ready", "bid": [1.0], "ask": [1.0]}, "has 1 values, expected 2"),
    ({"price": [1.0, 2.0], "rule": "quote", "bid": [1.0, np.inf], "ask": [1.0, 2.0]}, "infinite"),
    ({"price": [1.0, 2.0], "session": [1]}, "session has 1 values"),
])
def test_sign_trades_bad_input(kwargs, match):
    with pytest.raises(OrderFlowInputError, match=match):
        sign_trades(**kwargs)


# --------------------------------------------------------------------------------------------------------
# against the references, and no look-ahead

trades_st = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 2), st.integers(-3, 3), st.integers(0, 2)),
                     min_size=0, max_size=60)


def _arrays(rows):
    price = np.array([100 + 0.01 * r[0] for r in rows])
    session = np.cumsum([r[1] == 2 for r in rows]) if rows else np.array([], dtype=int)  # new session ~1/3
    mid = price + 0.005 * np.array([r[2] for r in rows])
    half = 0.005 * np.array([r[3] for r in rows])
    bid, ask = mid - half, mid + half
    gone = np.array([r[3] == 0 and r[2] == 3 for r in rows], dtype=bool)  # some trades without a quote
    bid[gone] = np.nan
    ask[gone] = np.nan
    return price, session, bid, ask


@settings(max_examples=200)
@given(trades_st)
def test_signing_matches_reference(rows):
    price, session, bid, ask = _arrays(rows)
    assert sign_trades(price, session=session).tolist() == ref_tick(price.tolist(), session.tolist())
    assert sign_trades(price, "lee_ready", bid, ask, session).tolist() == ref_lee_ready(
        price.tolist(), bid.tolist(), ask.tolist(), session.tolist())


@settings(max_examples=100)
@given(trades_st, st.integers(0, 60))
def test_signing_prefix_invariance(rows, k):
    price, session, bid, ask = _arrays(rows)
    for rule in ("tick", "quote", "lee_ready"):
        full = sign_trades(price, rule, bid, ask, session)
        part = sign_trades(price[:k], rule, bid[:k], ask[:k], session[:k])
        np.testing.assert_array_equal(part, full[:k])


# --------------------------------------------------------------------------------------------------------
# bars without trades


def test_bar_splits_by_hand():
    o, h, lo, c = [10, 10, 10, 10, 10], [11, 11, 10.5, 10, 11], [9, 9, 9.5, 10, 9], [10.5, 9.5, 10, 10, 10]
    assert bar_buy_share(o, h, lo, c, "bar").tolist() == [1, 0, 0.5, 0.5, 0.5]
    assert bar_buy_share(o, h, lo, c, "bar", tie="previous").tolist() == [1, 0, 0, 0, 0]
    assert bar_buy_share(o, h, lo, c, "bar", tie="previous", session=[1, 1, 2, 2, 2]).tolist() == [1, 0, 0.5, 0.5, 0.5]
    np.testing.assert_allclose(bar_buy_share(o, h, lo, c, "clv"), [0.75, 0.25, 0.5, 0.5, 0.5])
    with pytest.raises(OrderFlowInputError, match="high < low"):
        bar_buy_share([10], [9], [11], [10], "clv")
    with pytest.raises(OrderFlowInputError, match="tie must be"):
        bar_buy_share(o, h, lo, c, "bar", tie="zero")
    with pytest.raises(OrderFlowInputError, match="min_periods"):
        bar_buy_share(o, h, lo, c, "bvc", window=3, min_periods=5)


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(-4, 4), st.booleans()), min_size=1, max_size=50),
       st.integers(2, 8), st.integers(1, 8))
def test_bvc_matches_reference_and_has_no_look_ahead(moves, window, min_periods):
    min_periods = min(min_periods, window)
    c = 100 + 0.01 * np.cumsum([m for m, _ in moves])
    o = np.r_[100.0, c[:-1]]
    h, lo = np.maximum(o, c) + 0.01, np.minimum(o, c) - 0.01
    sess = np.cumsum([new for _, new in moves])
    got = bar_buy_share(o, h, lo, c, "bvc", session=sess, window=window, min_periods=min_periods)
    np.testing.assert_allclose(got, ref_bvc(o.tolist(), c.tolist(), sess.tolist(), window, min_periods), atol=1e-12)
    k = len(c) // 2
    np.testing.assert_array_equal(bar_buy_share(o[:k], h[:k], lo[:k], c[:k], "bvc", session=sess[:k], window=window,
                                                min_periods=min_periods), got[:k])


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(-50, 50), st.booleans()), min_size=0, max_size=60),
       st.integers(3, 10), st.integers(1, 6))
def test_aggressive_bars_match_reference(rows, window, min_periods):
    min_periods = min(min_periods, window)
    delta = np.array([float(d) for d, _ in rows])
    sess = np.cumsum([new for _, new in rows]) if rows else np.array([], dtype=int)
    got = aggressive_bars(delta, sess, k=2.0, window=window, min_periods=min_periods)
    assert got.tolist() == ref_aggressive(delta.tolist(), sess.tolist(), 2.0, window, min_periods)
    k = len(delta) // 2
    np.testing.assert_array_equal(aggressive_bars(delta[:k], sess[:k], k=2.0, window=window,
                                                  min_periods=min_periods), got[:k])


def test_cvd_pressure_aggressive_by_hand():
    np.testing.assert_array_equal(cvd([1, 2, -5, 4, 1], [1, 1, 1, 2, 2]), [1, 3, -2, 4, 5])
    np.testing.assert_allclose(pressure([3, 1, 0, 0], [1, 1, 0, 2], [1, 1, 1, 2], window=2), [0.75, 2 / 3, 0.5, 0])
    assert np.isnan(pressure([0.0], [0.0])[0])  # no signed volume: no pressure
    d = np.r_[np.tile([1.0, -1.0], 10), 9.0, -9.0, 2.0]
    assert aggressive_bars(d, k=3.0, window=20, min_periods=10).tolist()[-3:] == [1, -1, 0]
    assert aggressive_bars(np.zeros(30)).tolist() == [0] * 30  # zero dispersion: never aggressive
    with pytest.raises(OrderFlowInputError, match="k must be"):
        aggressive_bars([1.0], k=0)


# --------------------------------------------------------------------------------------------------------
# per-bar flow on the synthetic files (fresh clone)


@pytest.fixture(scope="module")
def synthetic_day(tmp_path_factory):
    td = tick_day(NORMAL_DAY, n_trades=6000, seed=3)
    files = write_tick_files(tmp_path_factory.mktemp("flow"), td)
    trades = read_trades(files["trades"])
    quotes = read_quote_bars(files["quotes"], regular_hours=False)
    return td, trades, quotes


def test_lee_ready_recovers_the_synthetic_truth(synthetic_day):
    td, trades, quotes = synthetic_day
    b, a = prevailing_quote(trades["ts"], quotes["ts"], quotes["bid"], quotes["ask"])
    signs = sign_trades(trades["price"], "lee_ready", b, a, trades["session"])
    t = td.trades
    truth = t[(t["ms"] >= td.open_ms) & (t["ms"] < td.close_ms) & (t["suspicious"] == 0)]["side"].to_numpy()
    assert len(truth) == len(signs)
    known = truth != 0
    np.testing.assert_array_equal(signs[known], truth[known])  # every trade at the bid or the ask is right
    q = sign_trades(trades["price"], "quote", b, a)
    assert (q[~known] == 0).all()  # the mid trades are the quote rule's unsigned ones...
    tick = sign_trades(trades["price"], "tick", session=trades["session"])
    np.testing.assert_array_equal(signs[~known], tick[~known])  # ...and Lee-Ready gives them the tick sign
    lagless, _ = prevailing_quote(trades["ts"], quotes["ts"], quotes["bid"], quotes["ask"], lag="0s")
    assert np.mean(sign_trades(trades["price"], "quote", lagless, _)[known] == truth[known]) < 0.9  # look-ahead hurts


def test_bar_flow_sums_and_columns(synthetic_day):
    _, trades, quotes = synthetic_day
    b, a = prevailing_quote(trades["ts"], quotes["ts"], quotes["bid"], quotes["ask"])
    signs = sign_trades(trades["price"], "lee_ready", b, a, trades["session"])
    flow = bar_flow(trades, signs, "1min")
    assert tuple(flow.columns) == BAR_FLOW_COLUMNS
    assert flow["trades"].sum() == len(trades)
    assert flow["volume"].sum() == trades["size"].sum()
    np.testing.assert_allclose(flow["buy_volume"] + flow["sell_volume"] + flow["unsigned_volume"], flow["volume"])
    assert flow["buy_volume"].sum() == trades["size"][signs > 0].sum()
    assert (flow["ts"].dt.second == 0).all() and flow["ts"].is_unique
    np.testing.assert_allclose(flow["cvd"], flow["delta"].cumsum())
    assert ((flow["high"] >= flow["close"]) & (flow["low"] <= flow["open"])).all()
    five = bar_flow(trades, signs, "5min")
    assert five["volume"].sum() == flow["volume"].sum() and len(five) <= 78
    summary = session_flow(flow)
    assert tuple(summary.columns) == SESSION_FLOW_COLUMNS and len(summary) == 1
    row = summary.iloc[0]
    assert row["date"] == NORMAL_DAY and row["trades"] == len(trades) and row["bars"] == len(flow)
    assert row["cvd_close"] == row["delta"] == row["buy_volume"] - row["sell_volume"]
    assert row["cvd_low"] <= row["cvd_close"] <= row["cvd_high"]
    for bad, match in (("2h", "dividing one hour"), ("7min", "dividing one hour"), ("soon", "duration")):
        with pytest.raises(OrderFlowInputError, match=match):
            bar_flow(trades, signs, bad)
    with pytest.raises(OrderFlowInputError, match="signs must be"):
        bar_flow(trades, np.full(len(trades), 2), "1min")


def test_bar_flow_prefix_invariance(synthetic_day):
    """The flow of the first k trades equals the flow of all trades on every bar the prefix completed."""
    _, trades, _ = synthetic_day
    signs = sign_trades(trades["price"], session=trades["session"])
    full = bar_flow(trades, signs)
    for k in (1, 500, 1700, len(trades) - 3):
        part = bar_flow(trades.iloc[:k], signs[:k])
        done = len(part) - 1  # the prefix's last bar may be cut
        pd.testing.assert_frame_equal(part.iloc[:done], full.iloc[:done])


def test_bar_flow_from_bars_on_synthetic_bars():
    b = bars(start="09:30", end="16:00")
    b = b.assign(ts=pd.DatetimeIndex(b["datetime"]).tz_localize("America/New_York").tz_convert("UTC"),
                 session=[t.date() for t in b["datetime"]])
    for rule in ("bar", "clv", "bvc"):
        flow = bar_flow_from_bars(b, rule)
        assert "trades" not in flow.columns and "buy_share" in flow.columns
        np.testing.assert_allclose(flow["buy_volume"] + flow["sell_volume"], b["volume"])
        assert ((flow["buy_share"] >= 0) & (flow["buy_share"] <= 1)).all()
        s = session_flow(flow)
        assert s["trades"].isna().all() and s["bars"].tolist() == [390, 390]
        np.testing.assert_allclose(s["cvd_close"], s["delta"])
        cut = bar_flow_from_bars(b.iloc[:400], rule)
        pd.testing.assert_frame_equal(cut, flow.iloc[:400])  # no look-ahead
    with pytest.raises(OrderFlowInputError, match="lacks columns"):
        bar_flow_from_bars(b.drop(columns="volume"))


# --------------------------------------------------------------------------------------------------------
# real data (skipped without ../shared)


@pytest.fixture(scope="module")
def real_day():
    trades = read_trades(shared_file(TICKS / "tick" / "20131008_trade.zip"))
    quotes = read_quote_bars(shared_file(TICKS / "second" / "20131008_quote.zip"), regular_hours=False, ohlc=True)
    return trades, quotes


def test_real_trades_inside_the_quotes(real_day):
    trades, quotes = real_day
    p = trades["price"].to_numpy()
    # the second's own quote range [lowest bid, highest ask]: the data line up in time (SOURCES: 99.3%)
    lo, _ = prevailing_quote(trades["ts"], quotes["ts"], quotes["bid_low"], quotes["ask_high"], lag="0s")
    _, hi = prevailing_quote(trades["ts"], quotes["ts"], quotes["bid_low"], quotes["ask_high"], lag="0s")
    inside_range = np.mean((p >= lo - 1e-9) & (p <= hi + 1e-9))
    # the quote known when the trade printed (the previous second's closing quote): much less, SPY trades
    # faster than a one-second quote bar
    b, a = prevailing_quote(trades["ts"], quotes["ts"], quotes["bid"], quotes["ask"])
    inside_known = np.mean((p >= b - 1e-9) & (p <= a + 1e-9))
    print(f"2013-10-08: {inside_range:.2%} inside the second's quote range, {inside_known:.2%} inside the "
          "prevailing (known) quote")
    assert inside_range >= 0.99
    assert 0.65 <= inside_known <= 0.80
    assert np.isnan(b).sum() == 0  # the pre-market quotes prevail at the open


def test_real_tick_vs_lee_ready(real_day):
    trades, quotes = real_day
    b, a = prevailing_quote(trades["ts"], quotes["ts"], quotes["bid"], quotes["ask"])
    tick = sign_trades(trades["price"], session=trades["session"])
    lr = sign_trades(trades["price"], "lee_ready", b, a, trades["session"])
    agree = np.mean(tick == lr)
    print(f"2013-10-08: tick rule and Lee-Ready agree on {agree:.1%} of {len(tick):,} trades")
    assert 0.75 <= agree <= 0.95
    assert (lr == 0).sum() <= 5 and (tick == 0).sum() < 0.02 * len(tick)
    summary = session_flow(bar_flow(trades, lr))
    row = summary.iloc[0]
    assert row["date"] == dt.date(2013, 10, 8) and row["bars"] == 390 and row["trades"] == len(trades)
    assert row["volume"] == trades["size"].sum() and 0.4 < row["buy_share"] < 0.6
