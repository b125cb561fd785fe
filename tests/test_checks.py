"""The shared helpers of the clean-up: field checks of the parameter classes (:mod:`research_lib.checks`)
and the one age formatter."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from research_lib import daily
from research_lib.checks import FieldChecks, interval, prefixed
from research_lib.core.alerts import AlertParams, AlertParamsError
from research_lib.core.gex import GexConfig, GexConfigError
from research_lib.core.regime import RegimeParams, RegimeParamsError
from research_lib.core.sizing import SizingError, SizingParams, TradeStats
from research_lib.core.strategy import StrategyParams, StrategyParamsError
from research_lib.formatting import fmt_age
from research_lib.records.decisions import DecisionError, MarketContext


class Boom(ValueError):
    pass


CHECK = FieldChecks(prefixed(Boom, "P"))


@pytest.mark.parametrize(("bounds", "text"), [
    (dict(lo=0, hi=1), "in [0, 1]"), (dict(lo=0, hi=1, lo_open=True), "in (0, 1]"),
    (dict(lo=-1, hi=0, hi_open=True), "in [-1, 0)"), (dict(lo=0), ">= 0"), (dict(lo=0, lo_open=True), "> 0"),
    (dict(hi=0, hi_open=True), "< 0"), (dict(hi=20_000), "<= 20000"), ({}, ""),
])
def test_interval_words(bounds, text):
    assert interval(**bounds) == text


@pytest.mark.parametrize("value", [True, np.bool_(True), "1", None, math.nan, math.inf, -math.inf, 0.0, 1.0 + 1e-12])
def test_number_refuses_non_numbers_and_values_outside_the_range(value):
    with pytest.raises(Boom, match=r"^P\.x=.*: must be a finite number in \(0, 1\] \(share\)$"):
        CHECK.number("x", value, lo=0, hi=1, lo_open=True, unit="share")


def test_number_converts_and_accepts_numpy_scalars_and_optional_none():
    assert CHECK.number("x", np.int64(3), lo=0) == 3.0 and isinstance(CHECK.number("x", np.float32(0.5)), float)
    assert CHECK.number("x", None, optional=True) is None
    with pytest.raises(Boom, match="or None"):
        CHECK.number("x", -1, lo=0, optional=True)


def test_whole_probability_choice_flag():
    assert CHECK.whole("n", np.int64(4), lo=2) == 4
    for bad in (1, 2.0, True, "3", math.nan):
        with pytest.raises(Boom, match=r"P\.n=.*: must be a whole number >= 2"):
            CHECK.whole("n", bad, lo=2)
    assert CHECK.whole("n", 45.0, lo=0, integral_floats=True) == 45
    with pytest.raises(Boom):
        CHECK.whole("n", 4.5, lo=0, integral_floats=True)
    with pytest.raises(Boom, match=r"in \[0, 1\]"):
        CHECK.probability("p", 1.5)
    assert CHECK.choice("c", "warning", ("INFO", "WARNING"), normalise=str.upper) == "WARNING"
    with pytest.raises(Boom, match=r"P\.c='loud': must be one of 'INFO', 'WARNING'"):
        CHECK.choice("c", "loud", ("INFO", "WARNING"), normalise=str.upper)
    with pytest.raises(Boom):
        CHECK.choice("c", ["unhashable"], {"a"})
    assert CHECK.flag("f", np.bool_(False)) is False
    with pytest.raises(Boom, match="must be True or False"):
        CHECK.flag("f", 1)


# Every parameter class words the same refusal the same way, with its own error class.
@pytest.mark.parametrize(("make", "error", "expected"), [
    (lambda: AlertParams(concentration_share=1.5), AlertParamsError,
     "AlertParams.concentration_share=1.5: must be a finite number in (0, 1]"),
    (lambda: RegimeParams(gex_ratio_positive=1.5), RegimeParamsError,
     "RegimeParams.gex_ratio_positive: must be a finite number in (0, 1), got 1.5"),
    (lambda: SizingParams(kelly_fraction=1.5), SizingError,
     "kelly_fraction=1.5: must be a finite number in (0, 1]"),
    (lambda: TradeStats(1.5, 0.1, 0.1, 3), SizingError, "win_rate=1.5: must be a finite number in [0, 1]"),
    (lambda: StrategyParams(short_delta=1.5), StrategyParamsError,
     "StrategyParams.short_delta=1.5: must be a finite number in (0, 1)"),
    (lambda: GexConfig(rate=5.0), GexConfigError,
     "GexConfig.rate=5.0: must be a finite number in [-1, 1] (decimal rate: 0.05 = 5%)"),
    (lambda: GexConfig(grid_points=1), GexConfigError, "GexConfig.grid_points=1: must be a whole number in [2, 100000]"),
    (lambda: MarketContext("SPX", 100.0, zero_gamma=-1.0), DecisionError,
     "context.zero_gamma=-1.0: must be a finite number > 0"),
    (lambda: AlertParams(pin_max_days=-1), AlertParamsError, "AlertParams.pin_max_days=-1: must be a whole number >= 0"),
    (lambda: SizingParams(min_trades_for_kelly=-1), SizingError, "min_trades_for_kelly=-1: must be a whole number >= 0"),
    (lambda: RegimeParams(gex_window=1), RegimeParamsError, "RegimeParams.gex_window: must be a whole number >= 2"),
    (lambda: StrategyParams(target_dte=-1), StrategyParamsError,
     "StrategyParams.target_dte=-1: must be a whole number in [0, 20000]"),
])
def test_every_params_class_words_a_refusal_alike(make, error, expected):
    with pytest.raises(error) as info:
        make()
    assert str(info.value).startswith(expected)


def test_numpy_scalars_are_numbers_in_every_params_class():
    # pandas hands out numpy scalars; AlertParams and RegimeParams used to refuse np.int64 / np.float32
    assert AlertParams(pin_max_days=np.int64(2), concentration_share=np.float32(0.5)).pin_max_days == 2
    assert RegimeParams(gex_rel_positive=np.float32(0.3)).gex_rel_positive == pytest.approx(0.3)
    assert SizingParams(kelly_fraction=np.float64(0.25)).kelly_fraction == 0.25
    assert StrategyParams(target_dte=np.int64(30)).target_dte == 30


def test_one_age_formatter_for_the_report_and_the_source_status():
    """daily (``5.0 hours``) and sources.auto (``5.0 h``) word ages through formatting.fmt_age."""
    assert fmt_age(None) == "unknown age" and fmt_age(None, missing="n/a (live quote)") == "n/a (live quote)"
    assert fmt_age(pd.Timedelta(hours=5)) == "5.0 h"
    assert fmt_age(dt.timedelta(hours=5), hours="hours") == "5.0 hours"
    assert fmt_age(pd.Timedelta(hours=47.9)) == "47.9 h" and fmt_age(pd.Timedelta(hours=72)) == "3.0 days"
    assert daily._age_text(pd.Timedelta(hours=20)) == "20.0 hours"
