"""The regime classifier: every branch on hand-built inputs, named days on real history, a real chain, and
fuzzed bad input."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import QUOTEDATA, SHARED_DATA, shared_file
from hypothesis import HealthCheck, example, given, settings, strategies as st

import research_lib.core.regime as regime_module
from research_lib.core import gex
from research_lib.core.chain import ResearchLibError
from research_lib.core.regime import (
    Action,
    Regime,
    RegimeInputError,
    RegimeInputs,
    RegimeParams,
    RegimeParamsError,
    RegimeResult,
    Trend,
    classify_regime,
)
from research_lib.data import market
from research_lib.pipeline.inputs import regime_inputs_for

DATE = dt.date(2024, 3, 1)
DAYS = pd.bdate_range(end=DATE, periods=300)


def vix_history(low=10.0, high=40.0, n=300) -> pd.Series:
    """VIX closes from ``low`` to ``high`` and back: over the last 252 days min/max are low/high."""
    x = np.concatenate([np.linspace(low, high, n // 2), np.linspace(high, low, n - n // 2)])
    return pd.Series(x, index=DAYS[-n:])


def price_history(kind="up", spot=100.0, n=300) -> pd.Series:
    """Closes ending near ``spot``: a steady 0.1%/day rise (up), fall (down), or flat with noise."""
    t = np.arange(n)[::-1]
    if kind == "up":
        x = spot * np.exp(-0.001 * t)
    elif kind == "down":
        x = spot * np.exp(0.001 * t)
    else:
        x = spot * (1 + 0.001 * np.sin(t))
    return pd.Series(x, index=DAYS[-n:])


def make(**kw) -> RegimeInputs:
    """Positive gamma (ratio +0.10 of gross, spot 2% above zero gamma), IV rank 50%, uptrend."""
    base = dict(spot=100.0, net_gex=11e9, call_gex=60.5e9, put_gex=-49.5e9, zero_gamma=98.0, vix=25.0,
                vix_history=vix_history(), price_history=price_history("up"), date=DATE)
    base.update(kw)
    return RegimeInputs(**base)


# --------------------------------------------------------------------------------------------------
# the classifier's branches


def test_positive_gamma_rich_premium_sells():
    r = classify_regime(make())
    assert (r.regime, r.trend, r.action) == (Regime.POSITIVE_GAMMA, Trend.UPTREND, Action.SELL_PREMIUM)
    assert r.scores.gex_measure_kind == "ratio" and r.scores.gex_ratio == pytest.approx(0.10)
    assert r.scores.distance_to_zero_gamma_pct == pytest.approx(2.0)
    assert r.scores.iv_rank == pytest.approx(50.0)
    text = " ".join(r.reasons)
    assert "+$11.00B/1%" in text and "+0.10 of gross" in text and "IV rank 50%" in text and "above 40%" in text
    assert r.confidence > RegimeParams().confidence_base
    assert r.scores.missing == ()
    assert r.date == DATE


def test_positive_gamma_cheap_premium_stays_out():
    r = classify_regime(make(vix=12.0))          # rank (12-10)/(40-10) = 6.7%
    assert (r.regime, r.action) == (Regime.POSITIVE_GAMMA, Action.STAY_OUT)
    assert "too cheap to sell" in r.reasons[-1]


def test_iv_rank_threshold_is_strict():
    # rank exactly 40: (22 - 10) / 30
    r = classify_regime(make(vix=22.0))
    assert r.scores.iv_rank == pytest.approx(40.0)
    assert r.action == Action.STAY_OUT
    r = classify_regime(make(vix=22.0), RegimeParams(iv_rank_sell=39.9))
    assert r.action == Action.SELL_PREMIUM


def test_gex_ratio_threshold_is_inclusive():
    at = make(net_gex=5e9, call_gex=52.5e9, put_gex=-47.5e9)       # exactly +0.05 of 100B
    assert classify_regime(at).regime == Regime.POSITIVE_GAMMA
    below = make(net_gex=4.9e9, call_gex=52.45e9, put_gex=-47.55e9)
    assert classify_regime(below).regime == Regime.NEUTRAL


def test_positive_gex_within_the_zero_gamma_buffer_is_neutral():
    r = classify_regime(make(zero_gamma=99.8))     # 0.2% above: inside the 0.5% buffer
    assert r.regime == Regime.NEUTRAL and r.action == Action.STAY_OUT
    assert "not clearly above the flip" in r.reasons[0]
    assert classify_regime(make(zero_gamma=99.5)).regime == Regime.POSITIVE_GAMMA     # exactly the buffer


def test_spot_below_zero_gamma_is_negative_even_with_positive_gex():
    r = classify_regime(make(zero_gamma=101.0))
    assert r.regime == Regime.NEGATIVE_GAMMA
    assert "1.00% below zero gamma" in r.reasons[0] and "although" in r.reasons[0]


@pytest.mark.parametrize(("kind", "trend", "side"), [("down", Trend.DOWNTREND, "bearish"),
                                                      ("up", Trend.UPTREND, "bullish")])
def test_negative_gamma_with_a_trend_buys_in_its_direction(kind, trend, side):
    r = classify_regime(make(net_gex=-20e9, call_gex=40e9, put_gex=-60e9, zero_gamma=103.0,
                             price_history=price_history(kind)))
    assert (r.regime, r.trend, r.action) == (Regime.NEGATIVE_GAMMA, trend, Action.BUY_DIRECTIONAL)
    assert side in r.reasons[-1]
    assert r.scores.gex_score < 0


def test_negative_gamma_sideways_stays_out():
    r = classify_regime(make(net_gex=-20e9, call_gex=40e9, put_gex=-60e9, zero_gamma=103.0,
                             price_history=price_history("flat")))
    assert (r.regime, r.trend, r.action) == (Regime.NEGATIVE_GAMMA, Trend.SIDEWAYS, Action.STAY_OUT)
    assert "no clear trend" in r.reasons[-1]


def test_small_gex_far_from_zero_gamma_is_neutral():
    r = classify_regime(make(net_gex=1e9, call_gex=50.5e9, put_gex=-49.5e9, zero_gamma=95.0))
    assert r.regime == Regime.NEUTRAL and r.action == Action.STAY_OUT
    assert r.reasons[-1] == "STAY_OUT: no clear dealer-gamma regime."


def test_trend_bands():
    ph = price_history("up")                        # MA20 ≈ 99.0, MA50 ≈ 97.6: MA20 1.5% above MA50
    ma20 = ph.iloc[-20:].mean()
    assert classify_regime(make(price_history=ph, spot=ma20 * 0.996)).trend == Trend.UPTREND   # pull-back < band
    assert classify_regime(make(price_history=ph, spot=ma20 * 0.994)).trend == Trend.SIDEWAYS  # beyond band
    assert classify_regime(make(price_history=ph), RegimeParams(trend_band_pct=2.0)).trend == Trend.SIDEWAYS
    r = classify_regime(make(price_history=ph))
    assert r.scores.ma_short == pytest.approx(ma20)
    assert r.scores.ma_long == pytest.approx(ph.iloc[-50:].mean())
    assert r.scores.trend_score > 0
    assert classify_regime(make(price_history=price_history("down"))).scores.trend_score < 0


def test_history_measure_uses_the_trailing_distribution():
    hist = pd.Series(np.r_[np.full(200, 4e9), np.full(100, 2e9)], index=DAYS)    # median |x| of last 252: 4B
    r = classify_regime(make(net_gex=2e9, net_gex_history=hist))
    assert r.scores.gex_measure_kind == "relative"
    assert r.scores.gex_relative == pytest.approx(0.5)
    assert r.regime == Regime.POSITIVE_GAMMA
    assert "typical size" in r.reasons[0]
    # a positive but small reading is not "clearly positive"; a negative one is negative
    assert classify_regime(make(net_gex=0.8e9, net_gex_history=hist)).regime == Regime.NEUTRAL
    assert classify_regime(make(net_gex=-1e9, net_gex_history=hist, zero_gamma=None)).regime == \
        Regime.NEGATIVE_GAMMA
    # too short a history falls back to the gross ratio, and says so
    r = classify_regime(make(net_gex_history=hist.iloc[-30:]))
    assert r.scores.gex_measure_kind == "ratio"
    assert any("history too short" in x for x in r.reasons)


def test_expected_move_buffer():
    # spot 1% above zero gamma: clear of a 0.5% buffer, not of one 1-day expected move at VIX 25 (1.31%)
    inputs = make(zero_gamma=99.0)
    assert classify_regime(inputs).regime == Regime.POSITIVE_GAMMA
    r = classify_regime(inputs, RegimeParams(zero_gamma_buffer_em=1.0))
    assert r.scores.zero_gamma_buffer_pct == pytest.approx(25 / math.sqrt(365))
    assert r.regime == Regime.NEUTRAL
    assert "expected move at VIX 25.0" in r.reasons[0]


def test_term_structure_moves_the_confidence_of_a_sale():
    contango = classify_regime(make(vix3m=29.0, vix9d=22.0))
    inverted = classify_regime(make(vix3m=22.0, vix9d=30.0))
    assert contango.action == inverted.action == Action.SELL_PREMIUM
    assert contango.scores.term_score > 0 > inverted.scores.term_score
    assert contango.confidence > inverted.confidence
    assert any("backwardation" in x for x in inverted.reasons)
    assert inverted.scores.term_ratio == pytest.approx(25 / 22)
    assert inverted.scores.front_ratio == pytest.approx(30 / 25)


def test_term_structure_wording_names_each_segment_from_its_own_ratio():
    # issue 9: VIX/VIX3M 0.93 with VIX9D/VIX 1.04 was called "contango"; the front end is inverted
    words = lambda **kw: next(x for x in classify_regime(make(**kw)).reasons if x.startswith("Term"))  # noqa: E731
    mixed = words(vix=25.0, vix3m=25 / 0.93, vix9d=26.0)
    assert mixed.startswith("Term structure mixed, the front end is inverted (VIX9D above VIX)")
    assert "VIX/VIX3M 0.93 contango" in mixed and "VIX9D/VIX 1.04 backwardation" in mixed
    assert words(vix3m=29.0, vix9d=22.0) == "Term structure in contango: VIX/VIX3M 0.86, VIX9D/VIX 0.88."
    assert words(vix3m=22.0, vix9d=30.0) == "Term structure in backwardation (stress): VIX/VIX3M 1.14, VIX9D/VIX 1.20."
    assert "the 1-3 month segment is inverted" in words(vix3m=24.0, vix9d=24.0)
    assert words(vix9d=26.0) == "Term structure in backwardation (stress): VIX9D/VIX 1.04."  # VIX3M missing
    assert not any(x.startswith("Term") for x in classify_regime(make()).reasons)


def test_one_zero_gamma_distance_in_the_regime_the_alerts_and_the_decision():
    """issue 9: "7.84% below zero gamma" in the regime and "7.3% below" in the why line, from one chain."""
    from research_lib.core import alerts
    from research_lib.core.regime import describe_zero_gamma_distance, zero_gamma_distance_pct
    from research_lib.records.decisions import MarketContext, describe_why

    spot, zg = 3900.86, 4206.73                      # spx_2022-06-11.csv, model convention
    assert zero_gamma_distance_pct(spot, zg) == pytest.approx((3900.86 - 4206.73) / 3900.86 * 100, rel=1e-15)
    assert describe_zero_gamma_distance(spot, zg) == "7.84% below"
    assert describe_zero_gamma_distance(100.0, 99.9999) == "at"
    r = classify_regime(make(spot=spot, zero_gamma=zg, net_gex=-44.88e9, call_gex=39.49e9, put_gex=-84.37e9))
    why = describe_why(MarketContext("SPX", spot, net_gex=-44.88e9, zero_gamma=zg))
    levels_like = dataclasses.make_dataclass("L", ["spot", "net_gex", "call_gex", "put_gex", "zero_gamma",
                                                   "underlying", "date"])(spot, -44.88e9, 39.49e9, -84.37e9, zg,
                                                                          "SPX", DATE)
    alert = alerts.dealers_destabilising(levels_like)
    phrase = "3,900.86 is 7.84% below zero gamma 4,206.73"
    assert phrase in r.reasons[0] and phrase in why and phrase in alert.message
    assert r.scores.distance_to_zero_gamma_pct == pytest.approx(zero_gamma_distance_pct(spot, zg), rel=1e-15)


def test_iv_rank_and_percentile_match_the_market_helpers():
    rng = np.random.default_rng(7)
    v = pd.Series(15 + 5 * np.abs(rng.standard_normal(300)).cumsum() % 30, index=DAYS)
    r = classify_regime(make(vix=float(v.iloc[-1]), vix_history=v))
    assert r.scores.iv_rank == pytest.approx(100 * market.iv_rank(v).iloc[-1])
    assert r.scores.iv_percentile == pytest.approx(100 * market.iv_percentile(v).iloc[-1])


# --------------------------------------------------------------------------------------------------
# missing input: NEUTRAL / STAY_OUT with the reason, never a crash


def test_missing_spot():
    r = classify_regime(make(spot=None))
    assert (r.regime, r.action) == (Regime.NEUTRAL, Action.STAY_OUT)
    assert "spot" in r.scores.missing and "spot is missing" in r.reasons[0]


def test_missing_net_gex():
    r = classify_regime(make(net_gex=None, zero_gamma=99.0))
    assert (r.regime, r.action) == (Regime.NEUTRAL, Action.STAY_OUT)
    assert "net_gex" in r.scores.missing
    assert any("Net GEX is missing" in x for x in r.reasons)


def test_net_gex_without_a_scale():
    r = classify_regime(make(call_gex=None, put_gex=None))
    assert r.regime == Regime.NEUTRAL
    assert "gex_scale" in r.scores.missing
    assert any("has no scale" in x for x in r.reasons)


def test_spot_below_zero_gamma_needs_no_gex_scale():
    r = classify_regime(make(net_gex=None, zero_gamma=102.0))
    assert r.regime == Regime.NEGATIVE_GAMMA


def test_missing_vix_blocks_a_sale():
    for kw in (dict(vix=None), dict(vix_history=None), dict(vix_history=vix_history().iloc[-100:])):
        r = classify_regime(make(**kw))
        assert (r.regime, r.action) == (Regime.POSITIVE_GAMMA, Action.STAY_OUT), kw
        assert r.scores.iv_rank is None
        assert "IV rank unknown" in " ".join(r.reasons) or "IV rank needs" in " ".join(r.reasons)
        assert r.confidence == RegimeParams().confidence_base - RegimeParams().missing_penalty


def test_missing_trend_blocks_a_directional_buy():
    for ph in (None, price_history("down").iloc[-30:]):
        r = classify_regime(make(net_gex=-20e9, call_gex=40e9, put_gex=-60e9, zero_gamma=103.0, price_history=ph))
        assert (r.regime, r.trend, r.action) == (Regime.NEGATIVE_GAMMA, Trend.SIDEWAYS, Action.STAY_OUT)
        assert "price_history" in r.scores.missing
        assert "trend is unknown" in " ".join(r.reasons)


def test_no_zero_gamma_lets_gex_decide_and_costs_confidence():
    full = classify_regime(make())
    r = classify_regime(make(zero_gamma=None))
    assert r.regime == Regime.POSITIVE_GAMMA and r.action == Action.SELL_PREMIUM
    assert "zero_gamma" in r.scores.missing
    assert r.confidence < full.confidence


def test_stale_history_counts_as_missing():
    old = vix_history()
    old.index = old.index - pd.Timedelta(days=30)
    r = classify_regime(make(vix_history=old))
    assert "vix_history" in r.scores.missing and r.action == Action.STAY_OUT
    assert any("stale" in x for x in r.reasons)
    assert classify_regime(make(vix_history=old), RegimeParams(max_history_age_days=60)).action == \
        Action.SELL_PREMIUM


def test_require_complete():
    r = classify_regime(make(zero_gamma=None), RegimeParams(require_complete=True))
    assert (r.regime, r.action) == (Regime.NEUTRAL, Action.STAY_OUT)
    assert "zero_gamma" in r.reasons[0]
    assert classify_regime(make(), RegimeParams(require_complete=True)).action == Action.SELL_PREMIUM


def test_everything_missing():
    r = classify_regime(RegimeInputs(spot=None, net_gex=None))
    assert (r.regime, r.trend, r.action) == (Regime.NEUTRAL, Trend.SIDEWAYS, Action.STAY_OUT)
    assert 0 <= r.confidence < RegimeParams().confidence_base
    assert {"spot", "net_gex", "vix", "price_history", "zero_gamma"} <= set(r.scores.missing)


def test_result_is_json_ready():
    d = classify_regime(make(vix3m=28.0)).to_dict()
    assert json.loads(json.dumps(d))["action"] == "SELL_PREMIUM"
    assert d["scores"]["iv_rank"] == pytest.approx(50.0)


# --------------------------------------------------------------------------------------------------
# bad input: named errors


@pytest.mark.parametrize(("field", "value"), [
    ("spot", -1.0), ("spot", 0.0), ("spot", math.nan), ("spot", math.inf), ("spot", "100"), ("spot", True),
    ("net_gex", math.nan), ("call_gex", -math.inf), ("zero_gamma", 0.0), ("zero_gamma", math.nan),
    ("vix", -5.0), ("vix", math.nan), ("vix3m", 0.0), ("vix9d", 5000.0), ("spot", 1e12), ("date", "not a date"),
])
def test_bad_scalars_name_the_field(field, value):
    with pytest.raises(RegimeInputError, match=f"RegimeInputs.{field}") as info:
        make(**{field: value})
    assert info.value.field == field
    assert isinstance(info.value, ResearchLibError) and isinstance(info.value, ValueError)


def test_bad_histories_name_the_field():
    ph = price_history()
    with pytest.raises(RegimeInputError, match="look-ahead"):
        make(price_history=ph, date=ph.index[-10].date())
    with pytest.raises(RegimeInputError, match="sorted"):
        make(price_history=ph.iloc[::-1])
    with pytest.raises(RegimeInputError, match="non-numeric"):
        make(vix_history=pd.Series(["a"] * 300, index=DAYS))
    with pytest.raises(RegimeInputError, match="price_history.*are <= 0"):
        make(price_history=ph - 200)
    with pytest.raises(RegimeInputError, match="must be a pandas Series"):
        make(price_history=ph.to_numpy())
    with pytest.raises(RegimeInputError, match="inputs"):
        classify_regime({"spot": 100.0})


def test_holes_in_histories_are_skipped():
    v = vix_history()
    v.iloc[-5] = np.nan
    r = classify_regime(make(vix_history=v))
    assert r.scores.iv_rank == pytest.approx(50.0)


@pytest.mark.parametrize(("field", "value"), [
    ("gex_rel_positive", -0.1), ("gex_ratio_negative", 0.1), ("gex_ratio_positive", 1.5),
    ("zero_gamma_buffer_pct", -1.0), ("iv_rank_sell", 100.0), ("trend_short", 50), ("min_iv_history", 300),
    ("confidence_base", 101.0), ("weight_gex", math.nan), ("trend_band_pct", "0.5"), ("gex_window", 2.5),
])
def test_bad_params_name_the_field(field, value):
    with pytest.raises(RegimeParamsError, match=f"RegimeParams.{field}"):
        RegimeParams(**{field: value})


_wild = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6))


@st.composite
def _number(draw, lo, hi):
    """Mostly a plausible value or None; sometimes anything (NaN, inf, negative, huge, an int)."""
    kind = draw(st.integers(0, 9))
    if kind < 6:
        return draw(st.floats(lo, hi))
    return None if kind < 8 else draw(_wild)


@st.composite
def _history(draw, lo, hi):
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return None
    elements = st.floats(lo, hi) if kind < 8 else st.floats(allow_nan=True, allow_infinity=True)
    return draw(st.lists(elements, max_size=80))


def _series(values, dated):
    if values is None:
        return None
    return pd.Series(values, index=DAYS[len(DAYS) - len(values):] if dated else None, dtype=float)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spot=_number(50, 150), net=_number(-20e9, 20e9), call=_number(0, 50e9), put=_number(-50e9, 0),
       zg=_number(50, 150), vix=_number(5, 90), v3=_number(5, 90), v9=_number(5, 90),
       vhist=_history(5, 90), prices=_history(50, 150), ghist=_history(-20e9, 20e9), dated=st.booleans(),
       params=st.sampled_from([RegimeParams(), RegimeParams(min_iv_history=2, iv_window=10, min_gex_history=2),
                               RegimeParams(zero_gamma_buffer_em=0.5, trend_band_pct=0.0, zero_gamma_buffer_pct=0.0,
                                            min_iv_history=5, trend_short=2, trend_long=5)]))
# found on a fresh clone: a subnormal gross GEX made the share of gross GEX overflow to inf
@example(spot=100.0, net=1.0, call=2.2e-311, put=0.0, zg=None, vix=None, v3=None, v9=None, vhist=None, prices=None,
         ghist=None, dated=False, params=RegimeParams())
def test_fuzzed_inputs_give_a_named_error_or_a_valid_result(spot, net, call, put, zg, vix, v3, v9, vhist, prices,
                                                            ghist, dated, params):
    try:
        inputs = RegimeInputs(
            spot=spot, net_gex=net, call_gex=call, put_gex=put, zero_gamma=zg, vix=vix, vix3m=v3, vix9d=v9,
            vix_history=_series(vhist, dated), net_gex_history=_series(ghist, dated),
            price_history=_series(prices, dated), date=DATE)
    except RegimeInputError:
        return
    r = classify_regime(inputs, params)
    assert isinstance(r, RegimeResult)
    assert isinstance(r.confidence, int) and 0 <= r.confidence <= 100
    assert r.regime in Regime and r.trend in Trend and r.action in Action
    assert r.reasons and all(isinstance(x, str) and x for x in r.reasons)
    for f in dataclasses.fields(r.scores):
        v = getattr(r.scores, f.name)
        if isinstance(v, float):
            assert math.isfinite(v), f.name
    if r.action == Action.SELL_PREMIUM:
        assert r.regime == Regime.POSITIVE_GAMMA and r.scores.iv_rank > params.iv_rank_sell
    if r.action == Action.BUY_DIRECTIONAL:
        assert r.regime == Regime.NEGATIVE_GAMMA and r.trend != Trend.SIDEWAYS


def test_a_gross_or_typical_gex_below_the_floor_is_no_exposure_not_an_infinite_measure():
    from research_lib.core.regime import MIN_GEX_SCALE

    # a subnormal gross GEX: no share of gross (it would be 1 / 2.2e-311 = inf)
    r = classify_regime(RegimeInputs(spot=100.0, net_gex=1.0, call_gex=2.2e-311, put_gex=0.0, date=DATE))
    assert r.scores.gex_ratio is None and r.scores.gex_measure is None
    assert r.regime == Regime.NEUTRAL and "gex_scale" in r.scores.missing
    assert any("Gross GEX 2.2e-311 $/1% is below the 1 $/1% floor" in x for x in r.reasons)
    # a history whose typical size is subnormal: no relative measure either, the gross share decides
    hist = pd.Series(np.full(100, 1e-310), index=DAYS[-100:])
    r = classify_regime(RegimeInputs(spot=100.0, net_gex=5e9, call_gex=6e9, put_gex=-1e9, net_gex_history=hist,
                                     date=DATE))
    assert r.scores.gex_relative is None and r.scores.gex_measure_kind == "ratio"
    assert r.scores.gex_measure == pytest.approx(5e9 / 7e9)
    # at the floor it is a scale again
    r = classify_regime(RegimeInputs(spot=100.0, net_gex=0.5, call_gex=MIN_GEX_SCALE, put_gex=0.0, date=DATE))
    assert r.scores.gex_ratio == 0.5


# --------------------------------------------------------------------------------------------------
# real history: named days (SqueezeMetrics' published GEX as net GEX and its own history; no zero gamma)


@pytest.fixture(scope="module")
def history():
    market_dir = shared_file(SHARED_DATA / "market")
    spx = market.load_index_daily(market_dir=market_dir)["close"]
    fam = market.load_vix_family(market_dir=market_dir)
    published = market.load_published_gex(market_dir=market_dir)["gex"]
    return spx, fam, published


def classify_day(history, day, **kw):
    spx, fam, published = history
    d = pd.Timestamp(day)
    upto = lambda s: s[s.index <= d]  # noqa: E731
    row = fam.loc[d]
    finite = lambda x: None if not np.isfinite(x) else float(x)  # noqa: E731
    inputs = RegimeInputs(spot=float(spx[d]), net_gex=float(published[d]), zero_gamma=None,
                          vix=float(row["vix"]), vix9d=finite(row["vix9d"]), vix3m=finite(row["vix3m"]),
                          vix_history=upto(fam["vix"].dropna()), price_history=upto(spx),
                          net_gex_history=upto(published), date=d, **kw)
    return classify_regime(inputs)


def test_covid_crash_2020_03_16(history):
    r = classify_day(history, "2020-03-16")
    assert r.trend == Trend.DOWNTREND
    assert r.scores.iv_rank == pytest.approx(100.0) and r.scores.iv_percentile > 99
    assert r.regime == Regime.NEGATIVE_GAMMA                 # published GEX -1.76B, -0.61x its usual size
    assert r.action == Action.BUY_DIRECTIONAL and "BUY_DIRECTIONAL (bearish)" in " ".join(r.reasons)
    assert r.scores.term_ratio > 1.2                         # VIX 82.7 over VIX3M 67.7: backwardation
    assert r.scores.iv_score > 0 and 50 <= r.confidence <= 70  # expensive options temper a buy


def test_calm_summer_2017_07_14(history):
    r = classify_day(history, "2017-07-14")
    assert r.trend == Trend.UPTREND
    assert r.scores.iv_rank < 5                              # VIX 9.51, the year's low
    assert r.regime == Regime.POSITIVE_GAMMA
    assert r.action == Action.STAY_OUT and "too cheap to sell" in " ".join(r.reasons)


def test_bear_market_2022_06_13(history):
    r = classify_day(history, "2022-06-13")
    assert r.trend == Trend.DOWNTREND
    assert r.scores.iv_rank > 80
    assert r.regime == Regime.NEGATIVE_GAMMA and r.action == Action.BUY_DIRECTIONAL


def test_after_the_august_2024_spike_sells_premium(history):
    r = classify_day(history, "2024-08-08")                  # VIX 23.8, 3 days after its 38.6 close
    assert r.regime == Regime.POSITIVE_GAMMA and r.scores.iv_rank > 40
    assert r.action == Action.SELL_PREMIUM


def test_negative_gamma_days_are_followed_by_more_volatility(history):
    """Over 2012-2026 (every 5th day), realised vol over the next 5 sessions is higher after NEGATIVE_GAMMA
    days than after POSITIVE_GAMMA days. The classifier sees nothing after each day."""
    spx, fam, published = history
    vix = fam["vix"].dropna()
    days = published.index[(published.index >= "2012-06-01")].intersection(spx.index).intersection(vix.index)[::5]
    rets = np.log(spx).diff()
    fwd = rets[::-1].rolling(5).std()[::-1].shift(-1) * math.sqrt(252) * 100
    regimes = {}
    for d in days:
        upto = lambda s, d=d: s[s.index <= d]  # noqa: E731
        r = classify_regime(RegimeInputs(spot=float(spx[d]), net_gex=float(published[d]), vix=float(vix[d]),
                                         vix_history=upto(vix), price_history=upto(spx),
                                         net_gex_history=upto(published), date=d))
        regimes[d] = r.regime
    reg = pd.Series(regimes)
    vol = fwd.reindex(reg.index)
    pos = vol[reg == Regime.POSITIVE_GAMMA].median()
    neg = vol[reg == Regime.NEGATIVE_GAMMA].median()
    assert (reg == Regime.NEGATIVE_GAMMA).sum() >= 20
    assert neg > 1.5 * pos


# --------------------------------------------------------------------------------------------------
# a real chain


@pytest.fixture(scope="module")
def spx_2024_analysis():
    from research_lib.data.sources import read_chain

    return gex.analyze(read_chain(shared_file(QUOTEDATA / "spx_2024-01-07.csv")))


def test_real_chain_2024_01_07(spx_2024_analysis):
    shared_file(SHARED_DATA / "market")
    levels = spx_2024_analysis.levels
    inputs = regime_inputs_for(levels, market_dir=SHARED_DATA / "market")
    # a Sunday download of Friday's close: its trading date is Friday 2024-01-05 (issue 9), the histories
    # end there, nothing later
    assert inputs.date == dt.date(2024, 1, 5)
    assert inputs.price_history.index[-1] == pd.Timestamp("2024-01-05")
    assert inputs.vix_history.index[-1] == pd.Timestamp("2024-01-05")
    assert inputs.vix == pytest.approx(13.35) and inputs.vix3m == pytest.approx(15.51)
    r = classify_regime(inputs)
    assert isinstance(r, RegimeResult) and 0 <= r.confidence <= 100
    # model GEX: net -21.1B of 235.7B gross (-0.09), spot 0.81% below zero gamma 4735
    assert r.regime == Regime.NEGATIVE_GAMMA
    assert r.scores.gex_ratio == pytest.approx(levels.net_gex / (levels.call_gex - levels.put_gex))
    assert r.scores.distance_to_zero_gamma_pct == pytest.approx(-0.81, abs=0.01)
    assert r.trend == Trend.UPTREND                          # MA20 3.8% over MA50; spot 0.33% under MA20
    assert r.scores.iv_rank == pytest.approx(9.2, abs=0.5)
    assert r.action == Action.BUY_DIRECTIONAL and "bullish" in r.reasons[-1]
    assert r.scores.missing == ()
    assert len(r.reasons) >= 4


def test_real_chain_without_market_data(spx_2024_analysis, tmp_path):
    inputs = regime_inputs_for(spx_2024_analysis, market_dir=tmp_path)
    assert inputs.price_history is None and inputs.vix is None
    r = classify_regime(inputs)
    assert r.regime == Regime.NEGATIVE_GAMMA              # the chain alone still says negative gamma
    assert r.action == Action.STAY_OUT
    text = " ".join(r.reasons)
    assert "price history unavailable" in text and "VIX history unavailable" in text


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if (QUOTEDATA / "spx_2024-01-07.csv").exists() else [])])
def test_from_analysis_cuts_histories_and_drops_stale_vix(name, request):
    if name == "real":  # the Sunday download: its trading date is Friday 2024-01-05
        analysis, day = request.getfixturevalue("spx_2024_analysis"), "2024-01-05"
    else:
        analysis, day = gex.analyze(request.getfixturevalue("synthetic_chain")), "2024-03-06"
    days = pd.bdate_range("2023-01-02", pd.Timestamp(day) + pd.Timedelta(days=54))
    closes = pd.Series(np.linspace(3800, 4900, len(days)), index=days)
    vix = pd.Series(15.0, index=days)
    inputs = RegimeInputs.from_analysis(analysis, price_history=closes, vix_history=vix)
    assert inputs.price_history.index[-1] == pd.Timestamp(day)
    assert inputs.vix == 15.0
    stale = RegimeInputs.from_analysis(analysis, vix_history=vix[vix.index <= pd.Timestamp(day) - pd.Timedelta(days=35)])
    assert stale.vix is None and any("treated as missing" in n for n in stale.notes)


# ------------------------------------------------------------------------------------------------
# the steps of classify_regime, one at a time


def _ma(short_pct=None, long_pct=None):
    keys = ("ma_short", "ma_long", "spot_vs_ma_short_pct", "ma_short_vs_long_pct")
    if short_pct is None:
        return dict.fromkeys(keys)
    return dict(zip(keys, (100.0, 99.0, short_pct, long_pct), strict=True))


def test_scores_step_scales_each_input_to_its_weight():
    p = RegimeParams()
    gex = {"gex_measure": 0.25, "gex_measure_kind": "relative"}       # half of 2 × the +0.25 threshold
    zg = regime_module._ZeroGamma(dist=-0.5, buffer=0.5, buffer_text="")  # half of 2 × the buffer, below
    g, iv, tr, term = regime_module._scores_step(p, gex, zg, iv_rank=70.0, ma=_ma(1.0, 1.0), term_ratio=0.95)
    assert g == pytest.approx(p.weight_gex * (0.5 - 0.5) / 2)
    assert iv == pytest.approx(p.weight_iv * (70 - 40) / 60)
    assert tr == pytest.approx(p.weight_trend * 1.0)                  # (1 + 1) / (4 × 0.5), clipped at 1
    assert term == pytest.approx(p.weight_term * 0.5)                 # (1 - 0.95) / 0.10
    # nothing known: every score 0; a zero band gives the trend's sign alone
    none = regime_module._scores_step(p, {"gex_measure": None, "gex_measure_kind": None},
                                      regime_module._ZeroGamma(None, 0.5, ""), None, _ma(), None)
    assert none == (0.0, 0.0, 0.0, 0.0)
    flat = regime_module._scores_step(RegimeParams(trend_band_pct=0.0), gex, zg, None, _ma(-0.1, 0.05), None)
    assert flat[2] == -p.weight_trend


@pytest.mark.parametrize(("regime", "trend", "iv_rank", "has_ma", "action", "evidence"), [
    (Regime.POSITIVE_GAMMA, Trend.SIDEWAYS, 60.0, True, Action.SELL_PREMIUM, 10 + 5 + 2),
    (Regime.POSITIVE_GAMMA, Trend.UPTREND, 40.0, True, Action.STAY_OUT, 0.0),    # not *above* iv_rank_sell
    (Regime.NEGATIVE_GAMMA, Trend.DOWNTREND, None, True, Action.BUY_DIRECTIONAL, -10 - 5 + 7),
    (Regime.NEGATIVE_GAMMA, Trend.UPTREND, 30.0, False, Action.STAY_OUT, 0.0),   # no averages: no trend
    (Regime.NEGATIVE_GAMMA, Trend.SIDEWAYS, 30.0, True, Action.STAY_OUT, 0.0),
    (Regime.NEUTRAL, Trend.UPTREND, 90.0, True, Action.STAY_OUT, 0.0),
])
def test_action_step_and_its_evidence(regime, trend, iv_rank, has_ma, action, evidence):
    got, reason, ev = regime_module._action_step(regime, trend, iv_rank, has_ma, RegimeParams(),
                                                 gex_score=10.0, iv_score=5.0, trend_score=-7.0, term_score=2.0)
    assert got is action and reason.startswith(action.value) and ev == pytest.approx(evidence)
