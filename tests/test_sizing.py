"""Position sizing: the reference Kelly example, caps, bootstrap, negative Kelly, bad input, invariants."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import research_lib.core.sizing as sizing_module
from research_lib.core.chain import ResearchLibError
from research_lib.core.sizing import (
    BELOW_ONE_CONTRACT,
    BOOTSTRAP,
    NEGATIVE_KELLY,
    OPEN_RISK_CAP,
    PER_TRADE_CAP,
    ZERO_CONFIDENCE,
    ZERO_KELLY,
    SizingError,
    SizingParams,
    SizingResult,
    TradeStats,
    account_needed,
    kelly,
    kelly_label,
    risk_budget,
    size_position,
)

REF = TradeStats(win_rate=0.68, avg_win=0.15, avg_loss=0.25, n_trades=120)


# --------------------------------------------------------------------------------------------------
# the reference example (issue 4)


def test_reference_example_exactly():
    r = size_position(50_000, 500, REF)
    assert r.kelly == pytest.approx((0.68 * 0.15 - 0.32 * 0.25) / 0.25, abs=1e-15)
    assert r.kelly == pytest.approx(0.088, abs=1e-15)
    assert r.fractional_kelly == pytest.approx(0.044, abs=1e-15)
    assert r.risk_budget == 2200.0                      # exactly, to the cent
    assert r.risk_budget / 500 == pytest.approx(4.4)
    assert r.contracts == 4
    assert r.risk_used == 2000.0
    assert r.risk_fraction == pytest.approx(0.044)
    assert r.capped_by is None and r.base == "kelly" and r.tradeable
    assert r.how == ("Half-Kelly 4.4% of $50,000 = $2,200 at risk; $500 max loss per contract → "
                     "4 contracts ($2,000)")
    assert r.reasons[0].startswith("Kelly 8.8% from 68% wins, average win 15% and average loss 25%")
    assert "rounded down to 4" in r.reasons[-1]


def test_reference_system_rounded_up_to_5_and_that_breaks_the_budget():
    """The reference system traded ceil(4.4) = 5 contracts: $2,500 at risk against a $2,200 budget
    (5% of the account instead of 4.4%, 14% over). We trade floor(4.4) = 4 and stay within it."""
    r = size_position(50_000, 500, REF)
    reference_contracts = math.ceil(r.risk_budget / r.max_loss_per_contract)
    assert reference_contracts == 5
    assert reference_contracts * 500 == 2500 > r.risk_budget
    assert (reference_contracts * 500) / r.risk_budget - 1 == pytest.approx(0.136, abs=1e-3)
    assert r.contracts == reference_contracts - 1 and r.risk_used <= r.risk_budget


def test_kelly_function_and_its_two_formulas():
    assert kelly(0.68, 0.15, 0.25) == pytest.approx(0.088, abs=1e-15)
    growth = kelly(0.68, 0.15, 0.25, formula="growth_optimal")
    assert growth == pytest.approx(0.68 / 0.25 - 0.32 / 0.15)           # p/L - q/W = 0.5867
    assert growth == pytest.approx(0.5866666666666667)
    assert kelly(0.68, 0.15, 0.25) == pytest.approx(growth * 0.15)       # reference = W x growth-optimal
    # the textbook even-money bet that loses its stake: both are p - q
    assert kelly(0.6, 1.0, 1.0) == pytest.approx(0.2)
    assert kelly(0.6, 1.0, 1.0, formula="growth_optimal") == pytest.approx(0.2)
    # the reference formula only sees W/L: percent or dollars give the same number
    assert kelly(0.68, 15, 25) == pytest.approx(0.088)
    assert kelly(0.68, 600, 1000) == pytest.approx(0.088)
    # W > 1 (a debit trade winning twice its risk): the reference formula is the more aggressive one
    assert kelly(0.4, 2.0, 0.8) == pytest.approx(0.4)
    assert kelly(0.4, 2.0, 0.8, formula="growth_optimal") == pytest.approx(0.2)


def test_growth_optimal_formula_maximises_log_growth():
    p, w, l_ = 0.68, 0.15, 0.25
    x = np.linspace(0.0, 3.99, 400_001)                     # 1 - x*L > 0 needs x < 4
    g = p * np.log1p(x * w) + (1 - p) * np.log1p(-x * l_)
    assert x[np.argmax(g)] == pytest.approx(kelly(p, w, l_, formula="growth_optimal"), abs=1e-4)


def test_kelly_edge_cases():
    assert kelly(1.0, 0.2, 0.0) == math.inf                  # edge and no loss: unbounded
    assert kelly(0.5, 0.0, 0.0) == 0.0                       # neither
    assert kelly(0.0, 0.0, 0.3) == pytest.approx(-1.0)
    assert kelly(0.3, 0.0, 0.3, formula="growth_optimal") == -math.inf
    with pytest.raises(SizingError, match="formula"):
        kelly(0.5, 0.1, 0.1, formula="half")


# --------------------------------------------------------------------------------------------------
# the steps


@pytest.mark.parametrize("win_rate, expected_cap", [(0.40, NEGATIVE_KELLY), (0.625, ZERO_KELLY)])
def test_no_edge_gives_zero_contracts_with_the_reason(win_rate, expected_cap):
    stats = TradeStats(win_rate, 0.15, 0.25, 200)          # 0.625 x 0.15 = 0.375 x 0.25: zero edge
    r = size_position(50_000, 500, stats)
    assert r.contracts == 0 and r.risk_budget == 0.0 and r.risk_used == 0.0 and not r.tradeable
    assert r.capped_by == expected_cap
    assert r.kelly <= 0
    assert any("no edge" in s for s in r.reasons)
    if expected_cap == NEGATIVE_KELLY:
        assert r.kelly == pytest.approx((0.4 * 0.15 - 0.6 * 0.25) / 0.25)
        assert r.how == "Kelly -36% ≤ 0 (no edge) → 0 contracts"


def test_bootstrap_until_enough_history():
    few = TradeStats(0.68, 0.15, 0.25, 12)
    r = size_position(50_000, 500, few)
    assert r.base == "bootstrap" and r.capped_by == BOOTSTRAP
    assert r.risk_budget == 500.0 and r.contracts == 1
    assert r.kelly == pytest.approx(0.088)                   # reported, not used
    assert "only 12 trades of history (< 30)" in r.reasons[1]
    assert r.how.startswith("Bootstrap 1% of $50,000 = $500 at risk")
    # no history at all, and a bad-looking short history: still the bootstrap risk
    none = size_position(50_000, 500, None)
    assert none.contracts == 1 and math.isnan(none.kelly) and "no trade history" in none.reasons[0]
    losing = size_position(50_000, 500, TradeStats(0.2, 0.15, 0.25, 10))
    assert losing.base == "bootstrap" and losing.contracts == 1
    # exactly min_trades switches to Kelly
    assert size_position(50_000, 500, TradeStats(0.68, 0.15, 0.25, 30)).base == "kelly"
    custom = size_position(50_000, 250, few, params=SizingParams(bootstrap_risk=0.02, min_trades_for_kelly=5))
    assert custom.base == "kelly" and custom.contracts == 8


def test_per_trade_cap():
    r = size_position(50_000, 500, REF, params=SizingParams(formula="growth_optimal"))
    assert r.fractional_kelly == pytest.approx(0.29333, abs=1e-5)
    assert r.capped_by == PER_TRADE_CAP and r.risk_budget == 2500.0 and r.contracts == 5
    assert "capped at 5%" in r.how
    strong = size_position(100_000, 1_000, TradeStats(0.9, 0.3, 0.2, 500))   # Kelly 125%
    assert strong.capped_by == PER_TRADE_CAP and strong.risk_budget == 5_000.0 and strong.contracts == 5
    tight = size_position(50_000, 500, REF, params=SizingParams(max_risk_per_trade=0.02))
    assert tight.capped_by == PER_TRADE_CAP and tight.contracts == 2


def test_open_risk_cap():
    r = size_position(50_000, 500, REF, open_risk=9_000)    # cap 20% = $10,000, room $1,000
    assert r.capped_by == OPEN_RISK_CAP and r.risk_budget == 1_000.0 and r.contracts == 2
    assert "cut to $1,000 by the 20% open-risk cap ($9,000 already at risk)" in r.how
    full = size_position(50_000, 500, REF, open_risk=12_000)
    assert full.capped_by == OPEN_RISK_CAP and full.contracts == 0 and full.risk_budget == 0.0
    assert "no new risk" in full.reasons[-1]
    roomy = size_position(50_000, 500, REF, open_risk=7_000)  # room $3,000 > $2,200: not binding
    assert roomy.capped_by is None and roomy.contracts == 4


def test_confidence_scaling():
    r = size_position(50_000, 500, REF, confidence=70)
    assert r.risk_budget == 1_540.0 and r.contracts == 3     # 4.4% x 0.7 = 3.08%
    assert r.how.startswith("Half-Kelly 4.4% × 70% confidence = 3.08% of $50,000 = $1,540 at risk")
    zero = size_position(50_000, 500, REF, confidence=0)
    assert zero.contracts == 0 and zero.capped_by == ZERO_CONFIDENCE
    off = size_position(50_000, 500, REF, confidence=70, params=SizingParams(scale_by_confidence=False))
    assert off.risk_budget == 2_200.0
    boot = size_position(50_000, 100, None, confidence=50)   # scales the bootstrap too
    assert boot.risk_budget == 250.0 and boot.contracts == 2
    # scaling comes before the caps: a capped size at 70% confidence is still capped
    capped = size_position(50_000, 500, REF, confidence=70, params=SizingParams(formula="growth_optimal"))
    assert capped.capped_by == PER_TRADE_CAP and capped.contracts == 5


def test_budget_below_one_contract():
    r = size_position(10_000, 500, REF)                      # $440 < $500
    assert r.contracts == 0 and r.risk_budget == 440.0 and r.capped_by == BELOW_ONE_CONTRACT
    assert "less than one contract" in r.reasons[-1]


def test_float_noise_neither_adds_nor_drops_a_contract():
    # 7 x 1.1 = 7.700000000000001 in floating point; the budget is $7.70: 7 contracts fit
    r = size_position(100, 1.1, None, params=SizingParams(bootstrap_risk=0.077, max_risk_per_trade=0.1))
    assert r.risk_budget == 7.70 and r.contracts == 7 and r.risk_used == 7.70
    # 0.57 x 100 = 56.99999999999999: still 10 contracts of $5.70
    r = size_position(100, 5.7, None, params=SizingParams(bootstrap_risk=0.57, max_risk_per_trade=0.6,
                                                          max_total_open_risk=0.9))
    assert r.risk_budget == 57.0 and r.contracts == 10


def test_kelly_labels():
    assert [kelly_label(f) for f in (0.5, 0.25, 1.0, 0.3)] == ["Half-Kelly", "Quarter-Kelly", "Full Kelly",
                                                               "0.3×Kelly"]
    r = size_position(50_000, 500, REF, params=SizingParams(kelly_fraction=0.25))
    assert r.how.startswith("Quarter-Kelly 2.2% of $50,000 = $1,100 at risk") and r.contracts == 2


def test_result_is_frozen():
    r = size_position(50_000, 500, REF)
    assert isinstance(r, SizingResult)
    with pytest.raises(AttributeError):
        r.contracts = 5  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------
# trade statistics


def test_trade_stats_from_returns():
    returns = [0.15] * 68 + [-0.25] * 32
    s = TradeStats.from_returns(returns)
    assert (s.win_rate, s.avg_win, s.avg_loss, s.n_trades) == (0.68, pytest.approx(0.15), pytest.approx(0.25), 100)
    assert s.expectancy == pytest.approx(np.mean(returns))
    assert size_position(50_000, 500, s).contracts == 4
    series = pd.Series([0.2, -0.5, 0.0, 0.1], index=list("abcd"))
    t = TradeStats.from_returns(series)
    assert t.win_rate == 0.5 and t.avg_win == pytest.approx(0.15) and t.avg_loss == pytest.approx(0.25)
    assert t.expectancy == pytest.approx(series.mean())      # scratches count as zero-size losses
    assert TradeStats.from_returns(np.array([0.3, 0.1])).avg_loss == 0.0
    assert TradeStats.from_returns([]) == TradeStats(0.0, 0.0, 0.0, 0)
    with pytest.raises(SizingError, match=r"trade 'c' of 3"):
        TradeStats.from_returns(pd.Series([0.1, -0.2, np.nan], index=list("abc")))
    with pytest.raises(SizingError, match=r"trade 1 of 2"):
        TradeStats.from_returns([0.1, "x"])


# --------------------------------------------------------------------------------------------------
# bad input: named errors


@pytest.mark.parametrize("kwargs, arg", [
    (dict(win_rate=68, avg_win=0.15, avg_loss=0.25, n_trades=10), "win_rate"),
    (dict(win_rate=-0.1, avg_win=0.15, avg_loss=0.25, n_trades=10), "win_rate"),
    (dict(win_rate=float("nan"), avg_win=0.15, avg_loss=0.25, n_trades=10), "win_rate"),
    (dict(win_rate=0.6, avg_win=0.15, avg_loss=-0.25, n_trades=10), "avg_loss"),
    (dict(win_rate=0.6, avg_win=float("inf"), avg_loss=0.25, n_trades=10), "avg_win"),
    (dict(win_rate=0.6, avg_win=None, avg_loss=0.25, n_trades=10), "avg_win"),
    (dict(win_rate=0.6, avg_win=0.15, avg_loss=0.25, n_trades=-1), "n_trades"),
    (dict(win_rate=0.6, avg_win=0.15, avg_loss=0.25, n_trades=2.5), "n_trades"),
    (dict(win_rate=True, avg_win=0.15, avg_loss=0.25, n_trades=10), "win_rate"),
])
def test_bad_trade_stats(kwargs, arg):
    with pytest.raises(SizingError) as info:
        TradeStats(**kwargs)
    assert info.value.argument == arg and arg in str(info.value)
    assert isinstance(info.value, ResearchLibError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("args, kwargs, arg", [
    ((0, 500, REF), {}, "account"),
    ((-50_000, 500, REF), {}, "account"),
    ((float("nan"), 500, REF), {}, "account"),
    (("50000", 500, REF), {}, "account"),
    ((50_000, 0, REF), {}, "max_loss_per_contract"),
    ((50_000, float("inf"), REF), {}, "max_loss_per_contract"),
    ((50_000, None, REF), {}, "max_loss_per_contract"),
    ((50_000, 500, REF), {"confidence": 120}, "confidence"),
    ((50_000, 500, REF), {"confidence": float("nan")}, "confidence"),
    ((50_000, 500, REF), {"open_risk": -1}, "open_risk"),
    ((50_000, 500, {"win_rate": 0.68}), {}, "stats"),
    ((50_000, 500, REF), {"params": {"kelly_fraction": 0.5}}, "params"),
])
def test_bad_sizing_arguments(args, kwargs, arg):
    with pytest.raises(SizingError) as info:
        size_position(*args, **kwargs)
    assert info.value.argument == arg


@pytest.mark.parametrize("kwargs, arg", [
    (dict(kelly_fraction=0), "kelly_fraction"),
    (dict(kelly_fraction=1.5), "kelly_fraction"),
    (dict(max_risk_per_trade=5), "max_risk_per_trade"),
    (dict(max_total_open_risk=0.02), "max_risk_per_trade"),       # per-trade cap above the total cap
    (dict(bootstrap_risk=0.1), "bootstrap_risk"),                 # above the per-trade cap
    (dict(min_trades_for_kelly=-3), "min_trades_for_kelly"),
    (dict(scale_by_confidence="yes"), "scale_by_confidence"),
    (dict(formula="full"), "formula"),
])
def test_bad_params(kwargs, arg):
    with pytest.raises(SizingError) as info:
        SizingParams(**kwargs)
    assert info.value.argument == arg


# --------------------------------------------------------------------------------------------------
# invariants (hypothesis)

_money = st.floats(min_value=0.01, max_value=1e9, allow_nan=False, allow_infinity=False)
_frac = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
_mag = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)


@st.composite
def _params(draw):
    total = draw(st.floats(min_value=0.001, max_value=1.0))
    per_trade = draw(st.floats(min_value=0.0005, max_value=1.0).filter(lambda x: x <= total))
    return SizingParams(kelly_fraction=draw(st.floats(min_value=0.01, max_value=1.0)),
                        max_risk_per_trade=per_trade, max_total_open_risk=total,
                        min_trades_for_kelly=draw(st.integers(0, 50)),
                        bootstrap_risk=draw(st.floats(min_value=0.0, max_value=per_trade)),
                        scale_by_confidence=draw(st.booleans()),
                        formula=draw(st.sampled_from(["reference", "growth_optimal"])))


@settings(max_examples=400, deadline=None)
@given(account=_money, per=_money, p=_frac, w=_mag, l_=_mag, n=st.integers(0, 1000),
       conf=st.floats(min_value=0, max_value=100), open_risk=st.floats(min_value=0, max_value=2e9),
       params=_params(), no_stats=st.booleans())
def test_never_over_budget_never_negative(account, per, p, w, l_, n, conf, open_risk, params, no_stats):
    stats = None if no_stats else TradeStats(p, w, l_, n)
    r = size_position(account, per, stats, confidence=conf, open_risk=open_risk, params=params)
    assert isinstance(r.contracts, int) and r.contracts >= 0
    assert r.risk_budget >= 0 and r.risk_used >= 0
    assert r.contracts * per <= r.risk_budget + 0.005                  # never over the budget (to the cent)
    assert (r.contracts + 1) * per > r.risk_budget - 0.005             # ... and floor, not lower
    tol = 1e-9
    assert r.risk_budget <= params.max_risk_per_trade * account * (1 + tol) + tol     # per-trade cap
    room = max(params.max_total_open_risk * account - open_risk, 0.0)
    assert r.risk_budget <= room * (1 + tol) + tol                     # open risk + this trade within the cap
    assert math.isfinite(r.risk_fraction) and r.risk_fraction <= params.max_risk_per_trade * (1 + tol)
    if stats is None or n < params.min_trades_for_kelly:
        assert r.base == "bootstrap"
        assert r.risk_budget <= params.bootstrap_risk * account * (1 + tol) + tol
    assert r.how and all(r.reasons)


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.floats(), st.integers(), st.none(), st.text(max_size=3), st.booleans()),
       field=st.sampled_from(["win_rate", "avg_win", "avg_loss", "n_trades"]))
def test_fuzzed_stats_raise_only_sizing_error(value, field):
    kwargs = dict(win_rate=0.5, avg_win=0.1, avg_loss=0.1, n_trades=40)
    kwargs[field] = value
    try:
        s = TradeStats(**kwargs)
    except SizingError:
        return
    r = size_position(10_000, 100, s)
    assert r.contracts >= 0


# --------------------------------------------------------------------------------------------------
# the budget before the spread is known, and the account a spread needs


@pytest.mark.parametrize("stats, conf, open_risk", [
    (None, 94, 0.0), (None, 100, 0.0), (TradeStats(0.68, 0.15, 0.25, 120), 70, 0.0),
    (TradeStats(0.68, 0.15, 0.25, 120), 100, 48_000.0), (TradeStats(0.3, 0.1, 0.5, 120), 100, 0.0)])
def test_risk_budget_is_size_positions_budget_for_any_max_loss(stats, conf, open_risk):
    budget = risk_budget(250_000, stats, confidence=conf, open_risk=open_risk)
    for per in (1.0, 415.5, 4155.0, 1e7):
        assert size_position(250_000, per, stats, confidence=conf, open_risk=open_risk).risk_budget == budget
    assert budget == {(None, 94): 2350.0, (None, 100): 2500.0}.get((stats, conf), budget)


def test_the_issue_case_needs_an_account_of_442022():
    """issue 9: bootstrap 1% × 94% of $250,000 = $2,350 against a $4,155 spread: 0 contracts."""
    assert size_position(250_000, 4155, None, confidence=94).contracts == 0
    need = account_needed(4155, None, confidence=94)
    assert need == math.ceil(4155 / 0.0094)                 # 442,021.28 → the next whole dollar
    assert size_position(need, 4155, None, confidence=94).contracts == 1
    assert size_position(need - 1, 4155, None, confidence=94).contracts == 0


def test_account_needed_with_kelly_caps_and_open_risk():
    stats = TradeStats(0.68, 0.15, 0.25, 120)                # half Kelly 4.4%
    assert account_needed(500, stats) == math.ceil(500 / 0.044)
    assert account_needed(500, TradeStats(0.9, 1.0, 0.1, 120)) == 500 / 0.05     # per-trade cap 5%
    # $9,900 already open: the 20% open-risk cap needs (500 + 9,900) / 0.2 = 52,000, not 500 / 1%
    need = account_needed(500, None, open_risk=9_900)
    assert need == 52_000
    assert size_position(need, 500, None, open_risk=9_900).contracts == 1
    assert size_position(need - 1, 500, None, open_risk=9_900).contracts == 0
    # no edge or no confidence: no account is big enough
    assert account_needed(500, TradeStats(0.3, 0.1, 0.5, 120)) is None
    assert account_needed(500, None, confidence=0) is None
    with pytest.raises(SizingError, match="max_loss_per_contract"):
        account_needed(0.0)


# ------------------------------------------------------------------------------------------------
# the budget steps, one at a time


def test_trade_risk_step_scales_by_confidence_then_caps():
    p = SizingParams(max_risk_per_trade=0.05)
    kelly_base = sizing_module._BaseRisk(0.2, 0.1, "kelly", 0.1, None, "Half-Kelly 10%")
    reasons: list[str] = []
    risk, capped_by, how = sizing_module._trade_risk(kelly_base, 80.0, p, reasons)
    assert (risk, capped_by) == (0.05, sizing_module.PER_TRADE_CAP)       # 10% × 0.8 = 8% > 5%
    assert how == "Half-Kelly 10% × 80% confidence capped at 5%" and len(reasons) == 2
    risk, capped_by, how = sizing_module._trade_risk(kelly_base, 40.0, p, [])
    assert (risk, capped_by, how) == (pytest.approx(0.04), None, "Half-Kelly 10% × 40% confidence = 4%")
    risk, capped_by, _ = sizing_module._trade_risk(kelly_base, 0.0, p, [])
    assert (risk, capped_by) == (0.0, sizing_module.ZERO_CONFIDENCE)


def test_open_risk_cap_step_binds_even_on_a_zero_budget():
    p = SizingParams(max_total_open_risk=0.20)
    assert sizing_module._open_risk_cap(1000.0, 100_000.0, 5_000.0, p, [], "h") == (1000.0, "h", False)
    budget, how, bound = sizing_module._open_risk_cap(1000.0, 100_000.0, 19_500.0, p, [], "h")
    assert (budget, bound) == (500.0, True) and "cut to $500 by the 20% open-risk cap" in how
    # zero confidence with the cap already reached: the cap is what the result names
    assert sizing_module._open_risk_cap(0.0, 100_000.0, 25_000.0, p, [], "h")[::2] == (0.0, True)
    res = size_position(100_000.0, 500.0, None, confidence=0.0, open_risk=25_000.0, params=p)
    assert res.contracts == 0 and res.capped_by == sizing_module.OPEN_RISK_CAP
