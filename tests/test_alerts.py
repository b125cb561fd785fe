"""Alert rules: each fires at its threshold and stays quiet just past it; real chains give sensible alerts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math

import pandas as pd
import pytest
from conftest import QUOTEDATA, shared_file

from research_lib.core import gex
from research_lib.core.alerts import (
    Alert,
    AlertInputError,
    AlertParams,
    AlertParamsError,
    AlertRule,
    Severity,
    alerts_for,
    dealers_destabilising,
    evaluate_alerts,
    gex_concentration,
    pin_risk_near_expiry,
    regime_change,
    spot_near_zero_gamma,
)
from research_lib.core.regime import Action, Regime, RegimeResult, RegimeScores, Trend

DATE = dt.date(2024, 3, 1)


def levels(spot=100.0, net=-10e9, call=45e9, put=-55e9, zero_gamma=101.0, underlying="SPX", date=DATE):
    """A hand-built KeyLevels (only the fields the rules read matter)."""
    return gex.KeyLevels(
        underlying=underlying, date=date, quote_time=pd.Timestamp(date).tz_localize("America/New_York"),
        spot=spot, convention="model", net_gex=net, call_gex=call, put_gex=put, zero_gamma=zero_gamma,
        zero_gamma_crossings=() if zero_gamma is None else (zero_gamma,), cumulative_flip=None, call_wall=None,
        put_wall=None, max_pain={}, net_vanna=0.0, net_charm=0.0, net_delta=0.0, n_contracts=1, n_expired=0,
        n_filtered=0, n_unpriced=0, source="synthetic", modelled=True)


def result(regime=Regime.POSITIVE_GAMMA, confidence=60, date=DATE, underlying="SPX"):
    return RegimeResult(regime=regime, trend=Trend.SIDEWAYS, confidence=confidence, action=Action.STAY_OUT,
                        reasons=(f"{regime} because of the numbers.",), scores=RegimeScores(), date=date,
                        underlying=underlying)


def above(x: float) -> float:
    return math.nextafter(x, math.inf)


def below(x: float) -> float:
    return math.nextafter(x, -math.inf)


# --------------------------------------------------------------------------------------------------
# spot near zero gamma


def test_spot_near_zero_gamma_fires_at_the_threshold():
    lv = levels(spot=100.0, zero_gamma=100.3)
    dist = abs(100.0 - 100.3) / 100.0 * 100.0
    a = spot_near_zero_gamma(lv, AlertParams(near_zero_gamma_pct=dist))
    assert a is not None and a.rule == AlertRule.SPOT_NEAR_ZERO_GAMMA and a.severity == Severity.WARNING
    assert a.value == dist and a.threshold == dist and a.level == 100.3
    assert "0.30% below zero gamma 100.30" in a.message
    assert spot_near_zero_gamma(lv, AlertParams(near_zero_gamma_pct=below(dist))) is None
    assert spot_near_zero_gamma(levels(zero_gamma=99.6)) is not None          # 0.4% above, default 0.5%
    assert spot_near_zero_gamma(levels(zero_gamma=99.4)) is None              # 0.6%
    assert spot_near_zero_gamma(levels(zero_gamma=None)) is None


# --------------------------------------------------------------------------------------------------
# GEX concentration


def strikes_table(rows):
    """rows: (strike, call_gex, put_gex)"""
    return pd.DataFrame(rows, columns=["strike", "call_gex", "put_gex"]).set_index("strike").assign(
        net_gex=lambda t: t.call_gex + t.put_gex)


def test_gex_concentration_fires_at_the_threshold():
    # gross 100: 97 holds 10, 100 holds 30, 104 holds 20, 120 (outside the 5% window) holds 40
    t = strikes_table([(97.0, 4.0, -6.0), (100.0, 20.0, -10.0), (104.0, 15.0, -5.0), (120.0, 40.0, 0.0)])
    a = gex_concentration(levels(), t, AlertParams(concentration_share=0.30))
    assert a is not None and a.rule == AlertRule.GEX_CONCENTRATION
    assert a.level == 100.0 and a.value == pytest.approx(0.30)
    assert "holds 30% of gross GEX" in a.message
    assert gex_concentration(levels(), t, AlertParams(concentration_share=above(a.value))) is None
    # the 40% strike is 20% away: only counted with a wider window
    wide = gex_concentration(levels(), t, AlertParams(concentration_window_pct=25.0))
    assert wide is not None and wide.level == 120.0 and wide.value == pytest.approx(0.40)


def test_gex_concentration_edge_cases():
    assert gex_concentration(levels(), strikes_table([])) is None
    assert gex_concentration(levels(), strikes_table([(100.0, 0.0, 0.0)])) is None
    with pytest.raises(AlertInputError, match="put_gex"):
        gex_concentration(levels(), pd.DataFrame({"call_gex": [1.0]}, index=[100.0]))
    with pytest.raises(AlertInputError, match="DataFrame"):
        gex_concentration(levels(), [1, 2])


# --------------------------------------------------------------------------------------------------
# pin risk


def pin_table(rows):
    """rows: (expiration, pin_strike, score)"""
    t = pd.DataFrame(rows, columns=["expiration", "pin_strike", "score"])
    t["expiration"] = pd.to_datetime(t["expiration"])
    return t.assign(distance_pct=(t.pin_strike - 100.0), z=0.3).set_index("expiration")


def test_pin_risk_fires_at_the_threshold_and_within_the_days():
    t = pin_table([("2024-02-29", 100.0, 90.0),      # already expired: ignored
                   ("2024-03-01", 100.0, 30.0),      # same day
                   ("2024-03-02", 101.0, 35.0),      # tomorrow
                   ("2024-03-04", 99.0, 80.0)])      # 3 days out
    a = pin_risk_near_expiry(levels(), t, AlertParams(pin_min_score=35.0))
    assert a is not None and a.rule == AlertRule.PIN_RISK_NEAR_EXPIRY
    assert (a.value, a.level, a.expiration) == (35.0, 101.0, dt.date(2024, 3, 2))
    assert "in 1 day" in a.message and "0.30 expected moves" in a.message
    assert pin_risk_near_expiry(levels(), t, AlertParams(pin_min_score=above(35.0))) is None
    same_day = pin_risk_near_expiry(levels(), t, AlertParams(pin_min_score=30.0, pin_max_days=0))
    assert same_day is not None and same_day.expiration == DATE and "today" in same_day.message
    later = pin_risk_near_expiry(levels(), t, AlertParams(pin_max_days=3))
    assert later.value == 80.0 and later.expiration == dt.date(2024, 3, 4)
    assert pin_risk_near_expiry(levels(), pin_table([])) is None
    with pytest.raises(AlertInputError, match="score"):
        pin_risk_near_expiry(levels(), t.drop(columns="score"))


# --------------------------------------------------------------------------------------------------
# regime change


def test_regime_change():
    before = result(Regime.POSITIVE_GAMMA, date=dt.date(2024, 2, 29))
    now = result(Regime.NEGATIVE_GAMMA, confidence=70)
    a = regime_change(now, before)
    assert a is not None and a.rule == AlertRule.REGIME_CHANGE and a.severity == Severity.WARNING
    assert "from POSITIVE_GAMMA on 2024-02-29 to NEGATIVE_GAMMA" in a.message
    assert regime_change(now, before, AlertParams(regime_change_min_confidence=70)) is not None
    assert regime_change(now, before, AlertParams(regime_change_min_confidence=above(70.0))) is None
    assert regime_change(now, result(Regime.NEGATIVE_GAMMA)) is None
    assert regime_change(now, None) is None
    with pytest.raises(AlertInputError, match="previous_regime"):
        regime_change(now, result(date=dt.date(2024, 3, 4)))
    with pytest.raises(AlertInputError, match="SPY"):
        regime_change(now, result(underlying="SPY"))


# --------------------------------------------------------------------------------------------------
# dealers destabilising


def test_dealers_destabilising_fires_at_both_thresholds():
    lv = levels(spot=100.0, net=-10e9, call=45e9, put=-55e9, zero_gamma=101.0)
    ratio = -10e9 / 100e9
    gap = (101.0 - 100.0) / 100.0 * 100.0
    at = AlertParams(destabilising_gex_ratio=ratio, destabilising_below_pct=gap)
    a = dealers_destabilising(lv, at)
    assert a is not None and a.severity == Severity.CRITICAL and a.value == ratio and a.level == 101.0
    assert "1.00% below zero gamma" in a.message
    assert dealers_destabilising(lv, dataclasses.replace(at, destabilising_gex_ratio=below(ratio))) is None
    assert dealers_destabilising(lv, dataclasses.replace(at, destabilising_below_pct=above(gap))) is None
    assert dealers_destabilising(levels(net=10e9, call=55e9, put=-45e9)) is None       # long gamma
    assert dealers_destabilising(levels(zero_gamma=99.0)) is None                      # spot above the flip
    deep = dealers_destabilising(levels(zero_gamma=None))
    assert deep is not None and "negative throughout" in deep.message
    assert dealers_destabilising(levels(net=0.0, call=0.0, put=0.0)) is None


# --------------------------------------------------------------------------------------------------
# all rules together, params, serialisation


def test_evaluate_alerts_orders_by_severity_and_skips_rules_without_input():
    lv = levels(zero_gamma=100.4)       # 0.4% below the flip: near zero gamma, not destabilising (0.5%)
    assert [a.rule for a in evaluate_alerts(lv)] == [AlertRule.SPOT_NEAR_ZERO_GAMMA]
    lv = levels(zero_gamma=102.0)
    t = strikes_table([(100.0, 20.0, -20.0), (101.0, 1.0, -1.0)])
    pins = pin_table([("2024-03-01", 100.0, 60.0)])
    out = evaluate_alerts(lv, regime=result(Regime.NEGATIVE_GAMMA), previous_regime=result(Regime.NEUTRAL,
                          date=dt.date(2024, 2, 29)), pin_risk=pins, strikes=t)
    assert [a.rule for a in out] == [AlertRule.DEALERS_DESTABILISING, AlertRule.GEX_CONCENTRATION,
                                     AlertRule.PIN_RISK_NEAR_EXPIRY, AlertRule.REGIME_CHANGE]
    assert all(isinstance(a, Alert) and a.date == DATE and a.underlying == "SPX" for a in out)
    rows = json.loads(json.dumps([a.to_dict() for a in out]))
    assert rows[0]["severity"] == "CRITICAL" and rows[2]["expiration"] == "2024-03-01"


def test_severities_are_parameters():
    p = AlertParams(near_zero_gamma_severity="critical", destabilising_severity=Severity.INFO)
    assert p.near_zero_gamma_severity is Severity.CRITICAL
    assert spot_near_zero_gamma(levels(zero_gamma=100.1), p).severity == Severity.CRITICAL
    assert Severity.INFO.rank < Severity.WARNING.rank < Severity.CRITICAL.rank


@pytest.mark.parametrize(("field", "value"), [
    ("near_zero_gamma_pct", -0.1), ("concentration_share", 0.0), ("concentration_share", 1.5),
    ("pin_min_score", 101.0), ("pin_max_days", 1.5), ("destabilising_gex_ratio", 0.1),
    ("regime_change_min_confidence", math.nan), ("pin_severity", "LOUD"), ("destabilising_below_pct", "1"),
])
def test_bad_params_are_named(field, value):
    with pytest.raises(AlertParamsError, match=f"AlertParams.{field}"):
        AlertParams(**{field: value})


def test_bad_levels_are_named():
    with pytest.raises(AlertInputError, match="spot"):
        spot_near_zero_gamma(levels(spot=math.nan))
    with pytest.raises(AlertInputError, match="zero_gamma"):
        spot_near_zero_gamma(levels(zero_gamma=-5.0))
    with pytest.raises(AlertInputError, match="KeyLevels"):
        evaluate_alerts(object())


# --------------------------------------------------------------------------------------------------
# real chains


@pytest.fixture(scope="module")
def analyses():
    from research_lib.data.sources import read_chain

    return {name: gex.analyze(read_chain(shared_file(QUOTEDATA / f"spx_{name}.csv")))
            for name in ("2024-01-07", "2023-09-14")}


def test_real_chain_2024_01_07_dealers_short_gamma(analyses):
    """Net GEX -0.09 of gross and spot 0.81% under zero gamma 4735: destabilising, and nothing else (no
    strike over 7% of gross GEX, the best 1-DTE pin score is 12)."""
    out = alerts_for(analyses["2024-01-07"])
    assert [a.rule for a in out] == [AlertRule.DEALERS_DESTABILISING]
    assert out[0].severity == Severity.CRITICAL
    assert out[0].value == pytest.approx(-0.089, abs=0.001)
    assert out[0].level == pytest.approx(4735.2, abs=0.1)


def test_real_chain_2023_09_14_quarterly_expiry_eve(analyses):
    """The day before the September 2023 quarterly expiry: spot 4505 sits 0.24% above zero gamma 4494, the
    4500 strike holds 20% of gross GEX, and the next day's expiry pins there (score 29)."""
    a = analyses["2023-09-14"]
    out = {x.rule: x for x in alerts_for(a, regime=result(Regime.NEUTRAL, date=a.levels.date),
                                         previous_regime=result(Regime.POSITIVE_GAMMA, date=dt.date(2023, 9, 13)))}
    assert set(out) == {AlertRule.SPOT_NEAR_ZERO_GAMMA, AlertRule.GEX_CONCENTRATION,
                        AlertRule.PIN_RISK_NEAR_EXPIRY, AlertRule.REGIME_CHANGE}
    assert out[AlertRule.SPOT_NEAR_ZERO_GAMMA].value == pytest.approx(0.24, abs=0.01)
    assert out[AlertRule.GEX_CONCENTRATION].level == 4500.0
    assert out[AlertRule.GEX_CONCENTRATION].value == pytest.approx(0.198, abs=0.005)
    pin = out[AlertRule.PIN_RISK_NEAR_EXPIRY]
    assert (pin.level, pin.expiration) == (4500.0, dt.date(2023, 9, 15)) and 25 <= pin.value <= 35
