"""Every ``to_dict`` of the core layer goes through the one JSON helper (:func:`research_lib.formatting.jsonable`):
strict JSON whatever the numbers hold (NaN and ±inf as None, numpy scalars as Python numbers), dates and times
as ISO 8601 text, enums as their values. Synthetic data only (the modelled chain), so a fresh clone runs it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math

import numpy as np
import pytest

from research_lib.core import gex
from research_lib.core.alerts import Alert, AlertRule, Severity
from research_lib.core.regime import Action, Regime, RegimeResult, RegimeScores, Trend
from research_lib.core.strategy import NoValidStrategy, StrategyKind, StrategyParams, build_strategy
from research_lib.data.modelled import modelled_chain
from research_lib.formatting import jsonable

NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def snap():
    return modelled_chain("SPX", spot=4700.0, date="2024-01-05", quote_time="2024-01-05 15:00", vix=13.0)


@pytest.fixture(scope="module")
def analysis(snap):
    return gex.analyze(snap)


@pytest.fixture(scope="module")
def bull_put(snap):
    res = build_strategy("bull_put_spread", snap)
    assert res.valid, res
    return res


def strict(d: dict) -> dict:
    """``d`` after a strict JSON round trip (raises on NaN, inf and anything json cannot hold)."""
    return json.loads(json.dumps(d, allow_nan=False))


def test_key_levels_with_nan_and_numpy_numbers(analysis):
    lv = dataclasses.replace(analysis.levels, net_vanna=NAN, net_charm=np.float64("nan"), cumulative_flip=INF,
                             n_contracts=np.int64(analysis.levels.n_contracts), spot=np.float64(4700.0))
    d = lv.to_dict()
    assert strict(d) == d
    assert d["net_vanna"] is None and d["net_charm"] is None and d["cumulative_flip"] is None
    assert type(d["n_contracts"]) is int and type(d["spot"]) is float
    assert d["date"] == lv.date.isoformat() and d["quote_time"] == lv.quote_time.isoformat()
    assert all(isinstance(k, str) and dt.date.fromisoformat(k) for k in d["max_pain"])
    assert d == jsonable(d)      # already plain: the helper is a no-op on its own output


def test_walls_and_config(analysis):
    walls = dataclasses.replace(analysis.walls, call_wall=NAN, put_wall=np.float64(4600.0))
    d = walls.to_dict()
    assert strict(d) == d and d["call_wall"] is None and type(d["put_wall"]) is float
    cfg = gex.GexConfig.model(expiries=gex.ExpiryFilter(dates=(dt.date(2024, 2, 16),)))
    d = cfg.to_dict()
    assert strict(d) == d
    assert d["expiries"]["dates"] == ["2024-02-16"] and d["dealer_sign"] == list(cfg.dealer_sign)


def test_regime_result():
    scores = RegimeScores(gex_measure=np.float64(1.5), iv_rank=NAN, term_ratio=INF, missing=("vix3m",))
    res = RegimeResult(Regime.POSITIVE_GAMMA, Trend.UPTREND, 70, Action.SELL_PREMIUM, ("a", "b"), scores,
                       date=dt.date(2024, 1, 5))
    d = res.to_dict()
    assert strict(d) == d
    assert d["date"] == "2024-01-05" and d["regime"] == "POSITIVE_GAMMA" and type(d["regime"]) is str
    assert d["scores"]["iv_rank"] is None and d["scores"]["term_ratio"] is None
    assert d["scores"]["gex_measure"] == 1.5 and d["scores"]["missing"] == ["vix3m"]


def test_alert():
    a = Alert(AlertRule.GEX_CONCENTRATION, Severity.WARNING, "m", value=NAN, threshold=np.float64(0.5),
              underlying="SPX", date=dt.date(2024, 1, 5), expiration=dt.date(2024, 1, 19))
    d = a.to_dict()
    assert strict(d) == d
    assert d["value"] is None and type(d["threshold"]) is float
    assert d["rule"] == "gex_concentration" and type(d["rule"]) is str and type(d["severity"]) is str
    assert d["date"] == "2024-01-05" and d["expiration"] == "2024-01-19"


def test_strategy_result_and_its_legs(bull_put):
    leg = dataclasses.replace(bull_put.legs[0], iv=NAN, delta=np.float64(-0.3))
    d = leg.to_dict()
    assert strict(d) == d and d["iv"] is None and d["expiration"] == leg.expiration.isoformat()
    res = dataclasses.replace(bull_put, legs=(leg, *bull_put.legs[1:]), expected_value=NAN,
                              pop=np.float64(bull_put.pop))
    d = res.to_dict()
    assert strict(d) == d
    assert d["expected_value"] is None and d["legs"][0]["iv"] is None and type(d["pop"]) is float
    assert d["valuation_time"] == res.valuation_time.isoformat() and d["expiration"] == res.expiration.isoformat()
    assert d["natural"]["breakevens"] == list(res.natural.breakevens) and d["greeks"]["delta"] == res.greeks.delta
    assert d["params"] == res.params.to_dict() and d["liquidity"] == res.liquidity.to_dict()
    assert d["kind"] == "bull_put_spread" and type(d["kind"]) is str


def test_no_valid_strategy_and_params():
    nv = NoValidStrategy(StrategyKind.IRON_CONDOR, "SPX", "why", "over_budget", expiration=dt.date(2024, 2, 16),
                         min_max_loss=INF, candidates=((10.0, np.float64(850.0)), (5.0, math.nan)))
    d = nv.to_dict()
    assert strict(d) == d
    assert d["min_max_loss"] is None and d["candidates"] == [[10.0, 850.0], [5.0, None]]
    assert d["expiration"] == "2024-02-16" and d["kind"] == "iron_condor"
    p = StrategyParams(roots=("SPXW",), width_points=25)
    assert strict(p.to_dict()) == p.to_dict() and p.to_dict()["roots"] == ["SPXW"]
