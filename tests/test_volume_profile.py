"""The volume profile (research_lib.core.volume_profile): every rule by hand, the market_profile preset against
the py-market-profile package and its own fixture, properties on random bars, bad input, and the real SPY minute
bars (skipped without ../shared)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, shared_file
from hypothesis import example, given, settings, strategies as st
from synthetic import bars, random_bars

from research_lib.core import volume_profile as vp
from research_lib.errors import EmptyProfileError, ProfileInputError, ProfileParamsError
from research_lib.formatting import to_json

INTRADAY = SHARED_DATA / "market" / "intraday"
GOOGL = INTRADAY / "googl_30min_2017-09-27_2017-10-03.csv"
SPY_1MIN = INTRADAY / "spy_1min_2025-09-15_2026-03-19.csv.gz"

#: Three bars worked by hand below (row size 1: row k holds (k - 1, k]).
HAND = [(100.2, 102.0, 101.0, 300.0),   # 09:30 rows 101, 102: 150 each; closes in row 101
        (101.5, 101.8, 101.6, 100.0),   # 09:35 row 102: 100; closes in row 102
        (102.5, 104.0, 103.9, 90.0)]    # 09:45 rows 103, 104: 45 each; closes in row 104


def hand_bars():
    b = bars(HAND)
    b["ts"] = b["ts"] + pd.to_timedelta([0, 4, 13], unit="min")  # 09:30, 09:35, 09:45
    return b


# --------------------------------------------------------------------------------------------------
# the rules, by hand


def test_poc_ties_go_to_the_row_nearest_the_middle_then_the_lower():
    assert vp.point_of_control([5, 1, 5, 1, 1]) == 2          # middle index 2
    assert vp.point_of_control([1, 5, 1, 5, 1, 1]) == 3       # middle 2.5: index 3 is 0.5 away, 1 is 1.5
    assert vp.point_of_control([5, 1, 1, 5]) == 0             # middle 1.5: both 1.5 away, the lower
    assert vp.point_of_control([1, 9, 2]) == 1
    assert vp.point_of_control([0.1 + 0.2, 0.3, 0.0]) == 1    # 0.30000000000000004 ties 0.3 (float sums)
    with pytest.raises(EmptyProfileError):
        vp.point_of_control([])


def test_value_area_two_rows_at_a_time_by_hand():
    v = [1, 2, 3, 10, 4, 4, 1, 1]  # total 26, 70% = 18.2, POC index 3
    # step 1: above 4 + 4 = 8 beats below 3 + 2 = 5 -> rows 3..5 hold 18 < 18.2
    # step 2: above 1 + 1 = 2 loses to below 3 + 2 = 5 -> rows 1..5 hold 23: done
    assert vp.grow_value_area(v, 3, 0.70, rule="two_row") == (1, 5)
    # one row at a time: 4 > 3 (14), 4 > 3 (18), 1 < 3 (21 >= 18.2): rows 2..5
    assert vp.grow_value_area(v, 3, 0.70, rule="one_row") == (2, 5)


def test_value_area_edge_cases_by_hand():
    # the side below is exhausted: the pair above is added (10 + 3 + 2 = 15 >= 11.2)
    assert vp.grow_value_area([10, 3, 2, 1], 0, 0.70) == (0, 2)
    # one row left below (2) against the pair above (1 + 1 = 2): a tie adds both (14 of 15 >= 10.5)
    assert vp.grow_value_area([2, 10, 1, 1, 1], 1, 0.70) == (0, 3)
    # a tie in the one-row rule adds both rows too
    assert vp.grow_value_area([1, 4, 10, 4, 1], 2, 0.70, rule="one_row") == (1, 3)
    # the POC alone already holds the share
    assert vp.grow_value_area([1, 20, 1], 1, 0.70) == (1, 1)
    # exactly the share stops (>=): 5 of 10 with share 0.5
    assert vp.grow_value_area([5, 3, 2], 0, 0.5, rule="one_row") == (0, 0)
    # sums that differ in the last bit tie: 0.1 + 0.2 above, 0.3 below
    assert vp.grow_value_area([0.3, 5.0, 0.1, 0.2], 1, 0.9) == (0, 3)   # not (1, 3): 5.3 of 5.6 would do
    # the whole profile for share 1
    assert vp.grow_value_area([1, 2, 3, 2, 1], 2, 1.0) == (0, 4)
    with pytest.raises(ProfileParamsError, match="va_rule"):
        vp.grow_value_area([1, 2], 1, rule="three_row")


def test_volume_nodes_by_hand():
    v = [1, 2, 8, 2, 1, 6, 1]
    # smoothing 1, prominence 10% of 8: peaks at 2 (prominence 7) and 5 (6 - 1 = 5); the dip at 4 (5)
    hvn, lvn = vp.volume_nodes(v, prominence=0.10, smoothing=1)
    assert hvn.tolist() == [2, 5] and lvn.tolist() == [4]
    # prominence 70% of 8 = 5.6 keeps only the peak at 2
    hvn, lvn = vp.volume_nodes(v, prominence=0.70, smoothing=1)
    assert hvn.tolist() == [2] and lvn.tolist() == []
    # a 3-row average: [1.5, 11/3, 4, 11/3, 3, 8/3, 3.5]: one peak (2), one dip (5)
    hvn, lvn = vp.volume_nodes(v, prominence=0.0, smoothing=3)
    assert hvn.tolist() == [2] and lvn.tolist() == [5]
    # the first and last rows are never nodes; a plateau counts once, at its middle
    assert vp.volume_nodes([9, 1, 9], prominence=0, smoothing=1)[0].tolist() == []
    assert vp.volume_nodes([1, 5, 5, 5, 1], prominence=0, smoothing=1)[0].tolist() == [2]


def test_balanced_target_mirrors_the_longer_side():
    assert vp.balanced_target(102.0, 101.0, 104.0) == 100.0   # 2 above >= 1 below: 102 - 2
    assert vp.balanced_target(103.0, 100.0, 104.0) == 106.0   # 1 above < 3 below: 103 + 3
    assert vp.balanced_target(102.0, 100.0, 104.0) == 100.0   # equal: the side above is mirrored


def test_default_row_size_by_hand():
    assert vp.default_row_size(600.0, 606.7) == 0.1     # 0.067 per row needed: 0.05 too small, 0.10
    assert vp.default_row_size(600.0, 601.6) == 0.02    # 0.016 -> 0.02
    assert vp.default_row_size(600.0, 623.65) == 0.5    # 0.2365 -> 0.5
    assert vp.default_row_size(600.0, 601.0) == 0.01    # exactly 100 rows of a tick
    assert vp.default_row_size(600.0, 600.0) == 0.01
    assert vp.default_row_size(10.0, 30.0, tick=0.05, target_rows=10) == 2.5  # 40 ticks: 1, 2, 5 x 10^j ticks
    with pytest.raises(ProfileParamsError):
        vp.default_row_size(2.0, 1.0)


def test_row_index_is_immune_to_binary_noise():
    assert vp.row_index([659.58, 0.3, 100.0, 100.001], 0.01).tolist() == [65958, 30, 10000, 10001]
    assert vp.row_index([0.1 + 0.2], 0.1).tolist() == [3]    # 0.30000000000000004 / 0.1 is row 3, not 4


def test_the_range_method_by_hand():
    p = vp.volume_profile(hand_bars(), row_size=1.0, node_smoothing=1)
    assert p.rows["price"].tolist() == [101.0, 102.0, 103.0, 104.0]
    assert p.rows["volume"].tolist() == [150.0, 250.0, 45.0, 45.0]
    assert p.rows["bars"].tolist() == [1, 2, 1, 1]
    # total 490, 70% = 343: POC 102 (250); above 45 + 45 = 90 loses to below 150 (one row left): 400
    assert (p.poc, p.val, p.vah, p.low, p.high) == (102.0, 101.0, 102.0, 101.0, 104.0)
    assert p.volume == 490.0 and p.va_volume == 400.0
    assert p.single_prints == (101.0, 103.0, 104.0)
    assert p.balanced_target == 100.0                      # 2 above >= 1 below: 102 - 2
    assert (p.or_low, p.or_high) == (100.2, 102.0)         # bars starting before 09:40: the first two
    assert (p.ib_low, p.ib_high) == (100.2, 104.0)
    assert p.session == dt.date(2024, 3, 6) and p.n_bars == 3 and p.n_sessions == 1
    assert p.hvn == (102.0,) and p.lvn == ()    # 250 rises 100 above 150 (>= 10% of 250); 45, 45 ends the rows
    assert p.method == "range" and p.va_rule == "two_row" and p.preset is None


def test_the_close_method_by_hand():
    p = vp.volume_profile(hand_bars(), row_size=1.0, method="close")
    assert p.rows["volume"].tolist() == [300.0, 100.0, 0.0, 90.0]   # the grid still spans the traded range
    # POC 101; below exhausted, the pair above (100 + 0) is added: 400 >= 343
    assert (p.poc, p.val, p.vah, p.low, p.high) == (101.0, 101.0, 103.0, 101.0, 104.0)
    assert p.rows["bars"].tolist() == [1, 2, 1, 1]                  # single prints do not depend on the method


def test_the_preset_by_hand():
    p = vp.market_profile(hand_bars(), row_size=1.0)
    # occupied rows only, from the closes: 101 (300), 102 (100), 104 (90)
    assert p.rows["price"].tolist() == [101.0, 102.0, 104.0]
    assert p.rows["volume"].tolist() == [300.0, 100.0, 90.0]
    # POC 101; the package's loop: 300 <= 343, nothing below, 102 above: 400 > 343
    assert (p.poc, p.val, p.vah, p.low, p.high) == (101.0, 101.0, 102.0, 101.0, 104.0)
    assert p.balanced_target == 98.0                       # 3 above >= 0 below: 101 - 3
    assert (p.or_low, p.or_high) == (100.2, 102.0)         # starting at or before 09:40
    assert p.hvn == () and p.lvn == ()
    assert p.method == "close" and p.va_rule == "market_profile" and p.preset == "market_profile"


def test_the_preset_stops_only_above_the_share_and_prefers_the_row_above_on_ties():
    # 5 of 10 is not more than 50%: the package goes on to the row above
    b = bars([(0.9, 1.0, 1.0, 5.0), (1.9, 2.0, 2.0, 3.0), (2.9, 3.0, 3.0, 2.0)])
    p = vp.market_profile(b, row_size=1.0, value_area=0.5)
    assert (p.val, p.vah) == (1.0, 2.0)
    assert vp.volume_profile(b, row_size=1.0, method="close", value_area=0.5, va_rule="one_row").vah == 1.0
    # equal rows either side of the POC: the package takes the one above (below only when strictly larger)
    b = bars([(0.9, 1.0, 1.0, 1.0), (1.9, 2.0, 2.0, 4.0), (2.9, 3.0, 3.0, 10.0), (3.9, 4.0, 4.0, 4.0),
              (4.9, 5.0, 5.0, 1.0)])
    p = vp.market_profile(b, row_size=1.0, value_area=0.5)   # 10 <= 10, take 4 above: 14 > 10
    assert (p.val, p.vah) == (3.0, 4.0)
    # POC ties: the maximum nearest index len / 2 = 2 (not (len - 1) / 2 = 1.5): index 2 of [9, 9, 9, 1]
    b = bars([(c - 0.1, c, c, v) for c, v in ((1.0, 9.0), (2.0, 9.0), (3.0, 9.0), (4.0, 1.0))])
    assert vp.market_profile(b, row_size=1.0).poc == 3.0
    # strict local extrema of the occupied rows
    b = bars([(c - 0.1, c, c, v) for c, v in ((1.0, 1.0), (2.0, 5.0), (3.0, 2.0), (4.0, 6.0), (5.0, 6.0))])
    p = vp.market_profile(b, row_size=1.0)
    assert p.hvn == (2.0,) and p.lvn == (3.0,)


def test_the_preset_takes_a_zero_row_where_the_package_would_fail():
    # occupied rows [2, 10, 0, 8]: the package adds 2 below, then (nothing below, 0 above) adds None and fails
    b = bars([(0.9, 1.0, 1.0, 2.0), (1.9, 2.0, 2.0, 10.0), (2.9, 3.0, 3.0, 0.0), (3.9, 4.0, 4.0, 8.0)])
    p = vp.market_profile(b, row_size=1.0)
    assert (p.val, p.vah, p.va_volume) == (1.0, 4.0, 20.0)


def test_opening_range_and_initial_balance_per_session():
    b = pd.concat([bars([(10.0, 11.0, 10.5, 1.0)] * 3 + [(9.0, 12.0, 10.0, 1.0)], minutes=5),
                   bars([(20.0, 21.0, 20.5, 1.0), (19.0, 22.0, 21.0, 1.0)], session="2024-03-07", minutes=30)],
                  ignore_index=True)
    o = vp.opening_range(b)
    # day 1: bars at 09:30, 09:35 are within 10 minutes (09:40 is not); day 2: only 09:30
    assert o.loc[dt.date(2024, 3, 6), ["low", "high", "bars"]].tolist() == [10.0, 11.0, 2]
    assert o.loc[dt.date(2024, 3, 7), ["low", "high", "bars"]].tolist() == [20.0, 21.0, 1]
    ib = vp.initial_balance(b)
    assert ib.loc[dt.date(2024, 3, 6), ["low", "high", "bars"]].tolist() == [9.0, 12.0, 4]
    assert ib.loc[dt.date(2024, 3, 7), ["low", "high", "bars"]].tolist() == [19.0, 22.0, 2]
    assert ib.loc[dt.date(2024, 3, 7), "end"] == pd.Timestamp("2024-03-07 10:30", tz="America/New_York")
    with pytest.raises(ProfileParamsError, match="minutes"):
        vp.opening_range(b, minutes=0)


def test_range_and_composite_profiles_select_their_bars():
    b = random_bars(n=60)
    days = sorted(set(b["session"]))
    one = vp.composite_profile(b, [days[1]], row_size=0.05)
    assert one.session == days[1] and one.n_bars == 60
    t0, t1 = b["ts"].iloc[10], b["ts"].iloc[20]
    r = vp.range_profile(b, t0, t1, row_size=0.05)
    assert r.n_bars == 11 and r.start == t0 and r.end == t1          # both ends included
    same = vp.volume_profile(b.iloc[10:21], row_size=0.05)
    assert (r.poc, r.val, r.vah, r.volume) == (same.poc, same.val, same.vah, same.volume)
    every = vp.composite_profile(b, row_size=0.05)
    assert every.session is None and every.n_sessions == 3 and every.volume == b["volume"].sum()
    with pytest.raises(EmptyProfileError, match="no bar starts"):
        vp.range_profile(b, "2030-01-01", "2030-01-02")
    with pytest.raises(ProfileParamsError, match="end"):
        vp.range_profile(b, t1, t0)
    with pytest.raises(EmptyProfileError, match="sessions asked"):
        vp.composite_profile(b, [dt.date(2030, 1, 1)])


def test_session_profiles_equal_one_profile_per_session():
    b = random_bars(seed=3)
    for kwargs in ({}, {"row_size": 0.03, "method": "close", "va_rule": "one_row"}, {"preset": "market_profile"}):
        many = vp.session_profiles(b, **kwargs)
        assert [p.session for p in many] == sorted(set(b["session"]))
        for p in many:
            alone = vp.volume_profile(b[b["session"] == p.session], **kwargs)
            assert p.to_dict() == alone.to_dict()
            assert p.rows.equals(alone.rows)


def test_time_weight_counts_bars():
    b = hand_bars().assign(volume=0.0)
    p = vp.volume_profile(b, row_size=1.0, weight="time", node_smoothing=1)
    # each bar weighs 1: rows 101, 102 get 1/2 from bar A, row 102 1 from B, rows 103, 104 1/2 from C
    assert p.rows["volume"].tolist() == [0.5, 1.5, 0.5, 0.5] and p.volume == 3.0 and p.weight == "time"
    assert p.poc == 102.0 and "bars 3" in p.describe()
    assert vp.developing_profile(b, row_size=1.0, weight="time")["poc"].tolist() == [101.0, 102.0, 102.0]
    with pytest.raises(ProfileParamsError, match="weight"):
        vp.volume_profile(b, weight="shares")


def test_profile_json_is_strict():
    p = vp.volume_profile(random_bars(n=50, sessions=("2024-03-06",)))
    d = p.to_dict()
    text = to_json(d)
    assert "NaN" not in text and '"date": "2024-03-06"' in text
    assert isinstance(d["hvn"], list) and d["start"].startswith("2024-03-06T14:30:00")


# --------------------------------------------------------------------------------------------------
# the developing profile: no look-ahead


def test_developing_profile_is_the_profile_of_each_prefix():
    b = random_bars(n=40, sessions=("2024-03-05", "2024-03-06"), seed=7)
    dev = vp.developing_profile(b, row_size=0.02)
    assert list(dev.columns) == ["ts", "session", "poc", "val", "vah", "volume", "low", "high"]
    for i in (0, 1, 5, 17, 39, 40, 41, 79):
        day = b["session"].iloc[i]
        start = int(np.flatnonzero(b["session"].to_numpy() == day)[0])
        p = vp.volume_profile(b.iloc[start:i + 1], row_size=0.02)
        assert dev.iloc[i][["poc", "val", "vah", "volume", "low", "high"]].tolist() == \
            [p.poc, p.val, p.vah, p.volume, p.low, p.high]
    # prefix invariance: the first k bars give the first k rows
    for k in (1, 25, 41, 60):
        pd.testing.assert_frame_equal(vp.developing_profile(b.iloc[:k], row_size=0.02), dev.iloc[:k])


def test_developing_profile_needs_a_row_size_and_no_preset():
    b = random_bars(n=5, sessions=("2024-03-06",))
    with pytest.raises(ProfileParamsError, match="row_size"):
        vp.developing_profile(b, row_size=None)
    with pytest.raises(ProfileParamsError, match="preset"):
        vp.developing_profile(b, row_size=0.01, preset="market_profile")


def test_developing_profile_before_any_volume_is_nan():
    b = bars([(1.0, 2.0, 1.5, 0.0), (1.0, 3.0, 2.5, 10.0)])
    dev = vp.developing_profile(b, row_size=1.0)
    assert dev["poc"].isna().tolist() == [True, False]
    assert dev.iloc[1][["poc", "val", "vah", "volume"]].tolist() == [2.0, 1.0, 3.0, 10.0]


# --------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("kwargs, argument", [
    ({"row_size": 0}, "row_size"), ({"row_size": -0.01}, "row_size"), ({"row_size": float("nan")}, "row_size"),
    ({"row_size": True}, "row_size"), ({"value_area": 0}, "value_area"), ({"value_area": 1.2}, "value_area"),
    ({"method": "vwap"}, "method"), ({"va_rule": "two-row"}, "va_rule"), ({"preset": "tpo"}, "preset"),
    ({"preset": "market_profile", "method": "range"}, "method"),
    ({"preset": "market_profile", "va_rule": "two_row"}, "va_rule"),
    ({"tick": 0}, "tick"), ({"target_rows": 0}, "target_rows"), ({"target_rows": 2.5}, "target_rows"),
    ({"node_prominence": 1.5}, "node_prominence"), ({"node_smoothing": 4}, "node_smoothing"),
    ({"opening_minutes": -1}, "opening_minutes"), ({"ib_minutes": float("inf")}, "ib_minutes"),
    ({"colour": "red"}, "colour"),
])
def test_bad_parameters_raise_a_named_error(kwargs, argument):
    with pytest.raises(ProfileParamsError) as err:
        vp.volume_profile(hand_bars(), **kwargs)
    assert err.value.argument == argument and str(err.value).startswith(f"{argument}:")


@pytest.mark.parametrize("column, value, what", [
    ("high", np.nan, "not a finite number"), ("low", np.inf, "not a finite number"),
    ("low", 103.0, "low above the bar's high"), ("close", 99.0, "close outside"),
    ("volume", -1.0, "negative volume"),
])
def test_bad_bars_raise_a_named_error(column, value, what):
    b = hand_bars()
    b.loc[1, column] = value
    with pytest.raises(ProfileInputError, match=what) as err:
        vp.volume_profile(b)
    assert err.value.column == column and err.value.n_bad == 1
    assert "2024-03-06 14:35:00" in str(err.value)            # the example names the bar


def test_bars_out_of_order_missing_columns_or_empty_are_refused():
    b = hand_bars()
    with pytest.raises(ProfileInputError, match="time order"):
        vp.volume_profile(b.iloc[[1, 0, 2]])
    with pytest.raises(ProfileInputError, match="lack the column") as err:
        vp.volume_profile(b.drop(columns="volume"))
    assert err.value.column == "volume"
    with pytest.raises(ProfileInputError, match="not timestamps") as err:
        vp.volume_profile(b.assign(ts=b["ts"].astype(str)))
    assert err.value.column == "ts"
    with pytest.raises(ProfileInputError, match="DataFrame"):
        vp.volume_profile(b.to_dict())
    with pytest.raises(EmptyProfileError, match="no bars"):
        vp.session_profiles(b.iloc[:0])
    zero = b.assign(volume=0.0)
    with pytest.raises(EmptyProfileError, match="volume 0"):
        vp.volume_profile(zero)
    with pytest.raises(EmptyProfileError, match="volume 0"):
        vp.market_profile(zero)


# --------------------------------------------------------------------------------------------------
# properties


bar_lists = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 12), st.integers(0, 12), st.integers(0, 5000)),
    min_size=1, max_size=40)


def _bars_from(raw, tick=0.05):
    rows = []
    for low, width, at, vol in raw:
        lo, hi = 100 + low * tick, 100 + (low + width) * tick
        rows.append((lo, hi, 100 + (low + min(at, width)) * tick, float(vol)))
    if sum(r[3] for r in rows) == 0:
        rows[0] = rows[0][:3] + (1.0,)
    return bars(rows)


@settings(max_examples=150)
@given(raw=bar_lists, row=st.sampled_from([0.05, 0.1, 0.25, 1.0]), method=st.sampled_from(vp.METHODS),
       rule=st.sampled_from(vp.VA_RULES), share=st.sampled_from([0.5, 0.68, 0.7, 1.0]))
@example(raw=[(0, 0, 0, 7)], row=0.05, method="range", rule="two_row", share=0.7)          # one bar, one row
@example(raw=[(0, 12, 0, 0), (60, 0, 0, 5)], row=0.05, method="close", rule="one_row", share=1.0)  # a gap
@example(raw=[(0, 4, 2, 10), (0, 4, 2, 10)], row=1.0, method="range", rule="two_row", share=0.5)
def test_profile_invariants(raw, row, method, rule, share):
    b = _bars_from(raw)
    p = vp.volume_profile(b, row_size=row, method=method, va_rule=rule, value_area=share)
    prices = p.rows["price"].to_numpy()
    assert np.allclose(np.diff(prices), row)                                     # no gaps
    assert math.isclose(p.rows["volume"].sum(), b["volume"].sum(), rel_tol=1e-12)   # volume conserved
    assert p.volume == b["volume"].sum()
    assert p.low <= p.val <= p.poc <= p.vah <= p.high                            # the area holds the POC
    assert p.low == vp.row_index([b["low"].min()], row)[0] * row or math.isclose(
        p.low, vp.row_index([b["low"].min()], row)[0] * row)
    assert p.va_volume >= share * p.volume * (1 - 1e-12)
    assert p.rows["volume"].max() == p.rows.loc[p.rows["price"] == p.poc, "volume"].iloc[0]
    assert set(p.hvn) | set(p.lvn) <= set(prices[1:-1])
    assert set(p.single_prints) == set(prices[p.rows["bars"].to_numpy() == 1])


@settings(max_examples=100)
@given(raw=bar_lists, row=st.sampled_from([0.05, 0.1, 0.25]), share=st.sampled_from([0.5, 0.7, 0.95]))
@example(raw=[(0, 0, 0, 3), (1, 0, 0, 3)], row=0.05, share=0.5)   # a POC tie between two rows
def test_preset_invariants(raw, row, share):
    b = _bars_from(raw)
    p = vp.market_profile(b, row_size=row, value_area=share)
    assert (p.rows["volume"] > 0).any() and p.rows["price"].is_monotonic_increasing
    assert p.rows["bars"].sum() == len(b)                              # every close in one row
    assert p.low <= p.val <= p.poc <= p.vah <= p.high
    assert p.va_volume > share * p.volume or p.val == p.low and p.vah == p.high


# --------------------------------------------------------------------------------------------------
# the preset against the py-market-profile package and its own fixture


def _package():
    return pytest.importorskip("market_profile", reason="py-market-profile (pip install marketprofile) is not "
                                                        "installed: the preset is checked by hand only")


def _package_dict(frame: pd.DataFrame, row_size: float, mode: str = "vol") -> dict:
    mp_mod = _package()
    df = pd.DataFrame({"Open": frame["open"].to_numpy(), "High": frame["high"].to_numpy(),
                       "Low": frame["low"].to_numpy(), "Close": frame["close"].to_numpy(),
                       "Volume": frame["volume"].to_numpy()},
                      index=pd.DatetimeIndex(frame["ts"]).tz_localize(None))
    mp = mp_mod.MarketProfile(df, row_size=row_size, mode=mode)
    d = mp[mp.df.index.min():mp.df.index.max()].as_dict()
    d["hvn"] = [float(x) for x in d.pop("hvn").index]
    d["lvn"] = [float(x) for x in d.pop("lvn").index]
    return {k: (float(v) if k not in ("hvn", "lvn") else v) for k, v in d.items()}


def _ours(p: vp.VolumeProfile) -> dict:
    return {"or_low": p.or_low, "or_high": p.or_high, "ib_low": p.ib_low, "ib_high": p.ib_high, "poc": p.poc,
            "low": p.low, "high": p.high, "val": p.val, "vah": p.vah, "bt": p.balanced_target,
            "hvn": list(p.hvn), "lvn": list(p.lvn)}


def googl_bars() -> pd.DataFrame:
    """The package's fixture as bars (its clock read as given: UTC, one session per calendar date)."""
    raw = pd.read_csv(shared_file(GOOGL))
    ts = pd.to_datetime(raw["Timestamp"]).dt.tz_localize("UTC").dt.as_unit("ns")
    return pd.DataFrame({"ts": ts, "session": ts.dt.date, "open": raw["Open"], "high": raw["High"],
                         "low": raw["Low"], "close": raw["Close"], "volume": raw["Volume"].astype(float)})


def test_preset_reproduces_the_package_test_on_its_fixture():
    p = vp.market_profile(googl_bars(), row_size=0.05)
    # the package's own tests/market_profile_test.py (values rounded to cents there)
    assert [round(x, 2) for x in (p.ib_low, p.ib_high, p.or_low, p.or_high)] == [927.74, 935.53, 927.74, 927.74]
    assert [round(x, 2) for x in (p.poc, p.balanced_target, p.low, p.high, p.val, p.vah)] == \
        [944.50, 961.25, 927.75, 959.30, 944.20, 958.95]


def test_preset_equals_the_package_on_its_fixture_per_session_and_in_all():
    b = googl_bars()
    assert _ours(vp.market_profile(b)) == _package_dict(b, 0.05)
    for row in (0.05, 0.25, 1.0):
        for day in sorted(set(b["session"])):
            part = b[b["session"] == day]
            assert _ours(vp.market_profile(part, row_size=row)) == _package_dict(part, row), (day, row)


def test_preset_by_time_equals_the_package_tpo_mode():
    b = googl_bars()
    assert _ours(vp.market_profile(b, weight="time")) == _package_dict(b, 0.05, mode="tpo")
    p = vp.market_profile(b, weight="time")
    assert p.volume == 65 and p.rows["volume"].tolist() == p.rows["bars"].astype(float).tolist()


@settings(max_examples=60)
@given(raw=bar_lists, row=st.sampled_from([0.05, 0.1, 0.3]), minutes=st.sampled_from([1, 5, 30]))
@example(raw=[(0, 0, 0, 3), (1, 0, 0, 3), (2, 0, 0, 3), (3, 0, 0, 1)], row=0.05, minutes=1)
def test_preset_equals_the_package_on_random_bars(raw, row, minutes):
    _package()
    b = _bars_from([(lo, w, a, max(v, 1)) for lo, w, a, v in raw])   # the package fails on zero rows
    b["ts"] = b["ts"].iloc[0] + pd.to_timedelta(np.arange(len(b)) * minutes, unit="min")
    assert _ours(vp.market_profile(b, row_size=row)) == _package_dict(b, row)


# --------------------------------------------------------------------------------------------------
# the real SPY minute bars


@pytest.fixture(scope="module")
def spy_1min():
    from research_lib.data.market.intraday import read_bars

    return read_bars(shared_file(SPY_1MIN))


def test_spy_session_profiles_are_sane(spy_1min):
    ps = vp.session_profiles(spy_1min)
    assert len(ps) == 129
    for p in ps:
        day = spy_1min[spy_1min["session"] == p.session]
        assert p.low <= p.val <= p.poc <= p.vah <= p.high
        assert p.low - p.row_size < day["low"].min() <= p.low and p.high - p.row_size < day["high"].max() <= p.high
        assert p.va_volume >= 0.70 * p.volume * (1 - 1e-12) and p.va_volume < p.volume
        assert math.isclose(p.volume, day["volume"].sum(), rel_tol=1e-12)
        assert len(p.rows) <= 101 and p.n_bars == len(day)
        first_hour = day[day["ts"].dt.tz_convert("America/New_York").dt.time < dt.time(10, 30)]
        assert (p.ib_low, p.ib_high) == (first_hour["low"].min(), first_hour["high"].max())
        assert p.n_bars <= 390
    # the two early closes (09:30-13:00); some other days lack a few minutes
    assert {p.session for p in ps if p.n_bars == 210} == {dt.date(2025, 11, 28), dt.date(2025, 12, 24)}


def test_spy_composite_and_fine_rows(spy_1min):
    p = vp.composite_profile(spy_1min, row_size=0.01)
    assert p.n_sessions == 129 and p.low <= p.val <= p.poc <= p.vah <= p.high
    fine = vp.session_profiles(spy_1min, row_size=0.01)
    assert all(q.va_volume >= 0.7 * q.volume * (1 - 1e-12) for q in fine)


# --------------------------------------------------------------------------------------------------
# the chart


@pytest.mark.parametrize("style", ["candles", "line"])
def test_the_chart_draws_the_profile_beside_the_bars(style):
    import io

    from matplotlib.figure import Figure

    from research_lib.ui import plots

    b = random_bars(n=120, sessions=("2024-03-06",), seed=5)
    p = vp.volume_profile(b, node_smoothing=1)
    fig = plots.volume_profile(b, p, style=style, title="SYN")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax_p, ax_v = fig.axes
    assert ax_p.get_shared_y_axes().joined(ax_p, ax_v)
    # one horizontal bar per row, as long as the row's volume, centred in its row
    widths = [patch.get_width() for patch in ax_v.patches]
    assert widths == p.rows["volume"].tolist()
    centres = [patch.get_y() + patch.get_height() / 2 for patch in ax_v.patches]
    assert np.allclose(centres, p.rows["price"] - p.row_size / 2)
    labels = [t.get_text() for t in ax_p.get_legend().get_texts()]
    assert f"POC {p.poc:g}" in labels and f"VAH {p.vah:g}" in labels and f"VAL {p.val:g}" in labels
    dev_line = next(line for line in ax_p.get_lines() if line.get_label() == "developing POC")
    dev = vp.developing_profile(b, row_size=p.row_size)
    assert np.allclose(dev_line.get_ydata(), dev["poc"] - p.row_size / 2)
    assert "SYN volume profile — 2024-03-06" in ax_p.get_title()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_chart_of_a_preset_composite_and_bad_arguments():
    from research_lib.ui import plots

    b = random_bars(n=30, seed=2)
    p = vp.market_profile(b, row_size=0.1)
    fig = plots.volume_profile(b, p)
    ax_p = fig.axes[0]
    assert not any(line.get_label() == "developing POC" for line in ax_p.get_lines())  # the preset has none
    assert "3 sessions" in ax_p.get_title() and "market_profile" in ax_p.get_title()
    with pytest.raises(ProfileParamsError, match="style"):
        plots.volume_profile(b, p, style="ohlc")
    with pytest.raises(ProfileParamsError, match="ax"):
        plots.volume_profile(b, p, ax=fig.axes[0])


# --------------------------------------------------------------------------------------------------
# the command: research-lib profile


def run(*argv):
    import io

    from research_lib.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = main(list(map(str, argv)), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def strict_lines(text):
    import json

    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


@pytest.fixture(scope="module")
def bar_file(tmp_path_factory):
    """Three synthetic sessions written in the SPY minute-bar layout (a fresh clone has no ../shared)."""
    from intraday_fixtures import write_bars

    b = random_bars(seed=11)
    frame = b.drop(columns=["ts", "session"]).assign(
        datetime=b["ts"].dt.tz_convert("America/New_York").dt.tz_localize(None), volume=b["volume"].astype("int64"))
    return write_bars(tmp_path_factory.mktemp("bars") / "syn_1min.csv.gz", frame, layout="spy")


def test_profile_command_every_session_as_json(bar_file):
    from research_lib.data.market.intraday import read_bars

    code, out, err = run("profile", bar_file, "--date", "all", "--json")
    assert code == 0 and err == ""
    lines = strict_lines(out)
    assert [d["date"] for d in lines] == ["2024-03-04", "2024-03-05", "2024-03-06"]
    expected = vp.session_profiles(read_bars(bar_file))
    for d, p in zip(lines, expected, strict=True):
        for key in ("poc", "val", "vah", "low", "high", "volume", "balanced_target", "ib_low", "ib_high",
                    "or_low", "or_high", "row_size"):
            assert d[key] == getattr(p, key), key
        assert d["hvn"] == list(p.hvn) and d["lvn"] == list(p.lvn) and d["file"] == str(bar_file)


def test_profile_command_latest_a_date_and_the_composite(bar_file):
    code, out, _ = run("profile", bar_file, "--json")
    assert code == 0 and [d["date"] for d in strict_lines(out)] == ["2024-03-06"]      # latest by default
    code, out, _ = run("profile", bar_file, "--date", "2024-03-05", "--json", "--row-size", "0.05",
                       "--method", "close", "--va-rule", "one-row", "--value-area", "0.68")
    (d,) = strict_lines(out)
    assert (d["date"], d["row_size"], d["method"], d["va_rule"], d["value_area"]) == \
        ("2024-03-05", 0.05, "close", "one_row", 0.68)
    code, out, _ = run("profile", bar_file, "--period", "all", "--json")
    (d,) = strict_lines(out)
    assert code == 0 and d["date"] is None and d["n_sessions"] == 3 and d["n_bars"] == 3 * 390
    assert d["start"].startswith("2024-03-04T14:30") and d["end"].startswith("2024-03-06T20:59")
    code, out, _ = run("profile", bar_file, "--date", "all")
    assert code == 0 and len(out.splitlines()) == 3 and "POC" in out and "VA" in out


def test_profile_command_preset(bar_file):
    code, out, _ = run("profile", bar_file, "--preset", "market_profile", "--json")
    (d,) = strict_lines(out)
    assert code == 0 and d["preset"] == "market_profile" and d["row_size"] == 0.05
    assert {"balanced_target", "ib_low", "ib_high", "or_low", "or_high"} <= set(d)


@pytest.mark.parametrize("argv, code, words", [
    (("--preset", "market_profile", "--method", "range"), 2, "method"),
    (("--preset", "market_profile", "--va-rule", "two-row"), 2, "va_rule"),
    (("--row-size", "0"), 2, "row"),
    (("--value-area", "1.5"), 2, "share"),
    (("--period", "all", "--date", "2024-03-05"), 2, "--period all"),
    (("--date", "2024-02-30"), 2, "does not exist"),
    (("--date", "2024-03-07"), 4, "no bars on 2024-03-07"),
])
def test_profile_command_refusals(bar_file, argv, code, words):
    got, out, err = run("profile", bar_file, *argv)
    assert got == code and out == "" and words in err


def test_profile_command_on_a_missing_or_bad_file(tmp_path):
    code, _, err = run("profile", tmp_path / "nothing.csv")
    assert code == 3 and "nothing.csv" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("datetime,open,high,low,close,volume\n2024-03-06 09:30:00,1,2,x,1,5\n")
    code, _, err = run("profile", bad)
    assert code == 3 and "bad.csv" in err


def test_profile_command_on_the_package_fixture():
    code, out, _ = run("profile", shared_file(GOOGL), "--period", "all", "--preset", "market_profile",
                       "--all-hours", "--json")
    (d,) = strict_lines(out)
    assert code == 0
    assert [d[k] for k in ("poc", "val", "vah", "low", "high", "balanced_target")] == \
        [944.5, 944.2, 958.95, 927.75, 959.3, 961.25]
    assert [d[k] for k in ("ib_low", "ib_high", "or_low", "or_high")] == [927.74, 935.53, 927.74, 927.74]


def test_profile_command_reads_the_fixture_in_its_own_zone():
    # Pacific times: 06:30 is the New York open; the 13:00 bars start at the close: 61 of 65 bars are kept
    code, out, _ = run("profile", shared_file(GOOGL), "--date", "all", "--tz", "America/Los_Angeles", "--json")
    lines = strict_lines(out)
    assert code == 0 and [d["date"] for d in lines] == ["2017-09-27", "2017-09-28", "2017-09-29", "2017-10-02",
                                                        "2017-10-03"]
    assert sum(d["n_bars"] for d in lines) == 61 and lines[0]["start"] == "2017-09-27T13:30:00+00:00"
    code, _, err = run("profile", shared_file(GOOGL), "--tz", "Mars/Olympus")
    assert code == 2 and "Mars/Olympus" in err


def test_profile_command_by_time_on_the_index_file():
    path = shared_file(INTRADAY / "sp500_1min_2019-11-05_2019-11-08.csv")
    code, _, err = run("profile", path)
    assert code == 4 and "volume 0" in err and "--weight time" in err
    code, out, _ = run("profile", path, "--date", "all", "--weight", "time", "--json")
    lines = strict_lines(out)
    assert code == 0 and [d["volume"] for d in lines] == [390.0] * 4 and lines[0]["weight"] == "time"
    assert all(d["low"] <= d["val"] <= d["poc"] <= d["vah"] <= d["high"] for d in lines)


def test_profile_command_on_real_spy_bars():
    code, out, _ = run("profile", shared_file(SPY_1MIN), "--date", "all", "--json")
    lines = strict_lines(out)
    assert code == 0 and len(lines) == 129
    assert all(d["low"] <= d["val"] <= d["poc"] <= d["vah"] <= d["high"] for d in lines)


def test_profiles_frame_holds_one_row_per_profile():
    b = random_bars(n=30)
    ps = vp.session_profiles(b)
    f = vp.profiles_frame(ps)
    assert f["date"].tolist() == [p.session for p in ps] and f["poc"].tolist() == [p.poc for p in ps]
    assert f["hvn"].tolist() == [p.hvn for p in ps] and {"val", "vah", "or_low", "ib_high"} <= set(f.columns)
    assert list(vp.profiles_frame([]).columns) == list(f.columns)


def test_preset_equals_the_package_on_every_spy_session(spy_1min):
    _package()
    ps = vp.session_profiles(spy_1min, preset="market_profile")
    assert len(ps) == 129
    for p in ps:
        assert _ours(p) == _package_dict(spy_1min[spy_1min["session"] == p.session], 0.05), p.session
