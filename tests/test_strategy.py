"""Strategy selection and construction: every selector branch, legs chosen on hand-built and real chains,
the payoff figures against independent formulas and a Monte Carlo check, and fuzzed input."""

from __future__ import annotations

import enum
import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import EOD_ARCHIVE, QUOTEDATA, shared_file
from hypothesis import HealthCheck, given, settings, strategies as st
from scipy.stats import norm
from synthetic import contract_rows

from research_lib.core import gex
from research_lib.core.chain import ChainSnapshot
from research_lib.core.strategy import (
    Leg,
    LiquidityReport,
    NoValidStrategy,
    StrategyChoice,
    StrategyError,
    StrategyKind,
    StrategyParams,
    StrategyParamsError,
    StrategyResult,
    UnknownActionError,
    UnknownStrategyError,
    UnknownTrendError,
    build_strategy,
    expiry_payoff,
    leg_candidates,
    payoff_stats,
    premium_text,
    select_strategy,
    strategy_for,
)

K = StrategyKind
BUILDABLE = [K.BULL_PUT_SPREAD, K.BEAR_CALL_SPREAD, K.IRON_CONDOR, K.BULL_CALL_SPREAD, K.BEAR_PUT_SPREAD]
CREDIT = {K.BULL_PUT_SPREAD, K.BEAR_CALL_SPREAD, K.IRON_CONDOR}


# ------------------------------------------------------------------------------------------------
# selector


class Action(enum.StrEnum):  # the shape research_lib.regime uses (lower-case values, as auto() gives)
    SELL_PREMIUM = "sell_premium"
    BUY_DIRECTIONAL = "buy_directional"
    STAY_OUT = "stay_out"


class Trend(enum.StrEnum):
    UPTREND = "UPTREND"
    DOWNTREND = "DOWNTREND"
    SIDEWAYS = "SIDEWAYS"


SELECTOR_TABLE = [
    ("SELL_PREMIUM", "UPTREND", K.BULL_PUT_SPREAD),
    ("SELL_PREMIUM", "DOWNTREND", K.BEAR_CALL_SPREAD),
    ("SELL_PREMIUM", "SIDEWAYS", K.IRON_CONDOR),
    ("BUY_DIRECTIONAL", "UPTREND", K.BULL_CALL_SPREAD),
    ("BUY_DIRECTIONAL", "DOWNTREND", K.BEAR_PUT_SPREAD),
    ("BUY_DIRECTIONAL", "SIDEWAYS", K.NONE),
    ("STAY_OUT", "UPTREND", K.NONE),
    ("STAY_OUT", "DOWNTREND", K.NONE),
    ("STAY_OUT", "SIDEWAYS", K.NONE),
]


@pytest.mark.parametrize("action, trend, kind", SELECTOR_TABLE)
def test_every_selector_branch(action, trend, kind):
    for a, t in ((action, trend), (Action[action], Trend[trend]), (action.lower().replace("_", " "), f" {trend} ")):
        choice = select_strategy(a, t)
        assert isinstance(choice, StrategyChoice)
        assert choice.kind is kind
        assert (choice.action, choice.trend) == (action, trend)
        assert choice.reason
    if kind is K.NONE:
        assert ("STAY_OUT" in choice.reason) or ("SIDEWAYS" in choice.reason)


@pytest.mark.parametrize("action, trend, error", [
    ("SELL", "UPTREND", UnknownActionError),
    ("", "UPTREND", UnknownActionError),
    (None, "UPTREND", UnknownActionError),
    (3, "UPTREND", UnknownActionError),
    ("SELL_PREMIUM", "UP", UnknownTrendError),
    ("STAY_OUT", "sideways-ish", UnknownTrendError),
    ("BUY_DIRECTIONAL", 1.0, UnknownTrendError),
])
def test_unknown_action_or_trend_raises_a_named_error(action, trend, error):
    with pytest.raises(error) as info:
        select_strategy(action, trend)
    assert isinstance(info.value, StrategyError) and isinstance(info.value, ValueError)
    allowed = ("SELL_PREMIUM", "BUY_DIRECTIONAL", "STAY_OUT") if error is UnknownActionError else ("UPTREND",)
    if isinstance(action, str) and isinstance(trend, str):
        assert all(word in str(info.value) for word in allowed)


def test_kinds_accept_names_values_and_reject_others():
    assert StrategyChoice("iron condor", "by hand").kind is K.IRON_CONDOR
    assert StrategyChoice("BULL_PUT_SPREAD", "x").kind is K.BULL_PUT_SPREAD
    with pytest.raises(UnknownStrategyError):
        StrategyChoice("butterfly", "x")
    assert K.IRON_CONDOR.is_credit and not K.BULL_CALL_SPREAD.is_credit


# ------------------------------------------------------------------------------------------------
# hand-built chains priced by an independent Black-Scholes (scipy)

QUOTE = pd.Timestamp("2024-03-01 12:00", tz="America/New_York")  # a Friday, in session: valuation = quote time


def bs_ref(S, K_, T, vol, is_call, r=0.0, q=0.0):
    """(price, delta) by the textbook formulas with scipy's normal distribution."""
    d1 = (np.log(S / K_) + (r - q + 0.5 * vol * vol) * T) / (vol * np.sqrt(T))
    d2 = d1 - vol * np.sqrt(T)
    call = S * np.exp(-q * T) * norm.cdf(d1) - K_ * np.exp(-r * T) * norm.cdf(d2)
    put = K_ * np.exp(-r * T) * norm.cdf(-d2) - S * np.exp(-q * T) * norm.cdf(-d1)
    delta = np.where(is_call, np.exp(-q * T) * norm.cdf(d1), -np.exp(-q * T) * norm.cdf(-d1))
    return np.where(is_call, call, put), delta


def years_to(expiry: str, settlement: str = "PM") -> float:
    hour = "16:00" if settlement == "PM" else "09:30"
    return (pd.Timestamp(f"{expiry} {hour}", tz="America/New_York") - QUOTE).total_seconds() / (365 * 86400)


def bsm_chain(*, spot=100.0, vol=0.20, expiries=("2024-04-15",), strikes=None, half_spread=0.01,
              rel_half_spread=0.02, roots=(("SPXW", "PM"),), skew=0.0) -> ChainSnapshot:
    """A chain priced by BSM at ``vol`` (plus ``skew`` per unit of log-moneyness), quoted mid ± the larger of
    ``half_spread`` and ``rel_half_spread`` × price: a 4% market on a 0.15-delta wing, like SPX's, so the
    default liquidity rules (spread <= 10% of mid) keep the strikes a spread uses."""
    strikes = np.arange(60.0, 141.0, 1.0) if strikes is None else strikes
    tables = []
    for root, settlement in roots:
        rows = [(e, k, right, 500.0, vol) for e in expiries for k in strikes for right in "CP"]
        t = contract_rows(rows, root=root, settlement=settlement)
        T = np.array([years_to(str(e.date()), settlement) for e in t["expiration"]])
        iv = vol - skew * np.log(t["strike"].to_numpy() / spot)
        price, delta = bs_ref(spot, t["strike"].to_numpy(), T, iv, (t["right"] == "C").to_numpy())
        t["iv"] = iv
        half = np.maximum(half_spread, rel_half_spread * price)
        t["bid"] = np.round(np.maximum(price - half, 0.0), 6)
        t["ask"] = np.round(price + half, 6)
        t["last"] = price
        t["delta"] = delta
        tables.append(t)
    return ChainSnapshot.create(underlying="SPX", spot=spot, quote_time=QUOTE, source="synthetic:bsm",
                                contracts=pd.concat(tables, ignore_index=True))


def expected_pick(snap: ChainSnapshot, expiry: str, right: str, target: float, *, need_bid: bool,
                  beyond: float | None = None, root: str = "SPXW", max_spread=0.10) -> float:
    """The strike an independent scan of the chain picks for ``|delta|`` nearest ``target`` (spread limit: the
    default StrategyParams.max_spread_pct, 10% of mid)."""
    c = snap.contracts
    c = c[(c["expiration"] == pd.Timestamp(expiry)) & (c["right"] == right) & (c["root"] == root)]
    settlement = c["settlement"].iloc[0]
    mid = (c["bid"] + c["ask"]) / 2
    ok = ((c["ask"] - c["bid"]) / mid <= max_spread) & (c["ask"] > 0)
    if need_bid:
        ok &= c["bid"] > 0
    if beyond is not None:
        ok &= (c["strike"] < beyond) if right == "P" else (c["strike"] > beyond)
    c = c[ok]
    _, delta = bs_ref(snap.spot, c["strike"].to_numpy(), years_to(expiry, settlement), c["iv"].to_numpy(),
                      right == "C")
    gap = np.abs(np.abs(delta) - target)
    best = gap.min()
    ties = c["strike"].to_numpy()[np.isclose(gap, best, rtol=0, atol=1e-12)]
    return float(ties.min() if right == "P" else ties.max())  # ties: further out of the money


@pytest.fixture(scope="module")
def flat_chain():
    return bsm_chain(expiries=("2024-03-22", "2024-04-12", "2024-04-19", "2024-05-17"))


@pytest.mark.parametrize("kind", BUILDABLE)
def test_hand_built_chain_legs_match_an_independent_scan(flat_chain, kind):
    snap = flat_chain
    res = build_strategy(kind, snap)
    assert isinstance(res, StrategyResult) and res.valid, getattr(res, "reason", "")
    # 2024-03-01 + 45 days = 2024-04-15: the 04-12 (42 DTE) and 04-19 (49 DTE) expiries bracket it; 42 is nearer.
    assert res.expiration == pd.Timestamp("2024-04-12").date() and res.dte == 42
    exp = "2024-04-12"
    legs = {(leg.right, leg.side): leg for leg in res.legs}
    rights = {"P"} if kind in (K.BULL_PUT_SPREAD, K.BEAR_PUT_SPREAD) else {"C"} if kind in (
        K.BEAR_CALL_SPREAD, K.BULL_CALL_SPREAD) else {"P", "C"}
    assert {leg.right for leg in res.legs} == rights and len(res.legs) == 2 * len(rights)
    for right in rights:
        if kind in CREDIT:
            short = expected_pick(snap, exp, right, 0.30, need_bid=True)
            long_ = expected_pick(snap, exp, right, 0.15, need_bid=False, beyond=short)
        else:
            long_ = expected_pick(snap, exp, right, 0.50, need_bid=False)
            short = expected_pick(snap, exp, right, 0.30, need_bid=True, beyond=long_)
        assert legs[(right, -1)].strike == short
        assert legs[(right, 1)].strike == long_
    for leg in res.legs:
        _, ref_delta = bs_ref(snap.spot, leg.strike, res.T, leg.iv, leg.right == "C")
        assert leg.delta == pytest.approx(float(ref_delta), abs=1e-9)
    assert res.T == pytest.approx(years_to(exp), abs=1e-12)
    assert res.sigma == pytest.approx(0.20, abs=1e-12)  # flat smile: the ATM-forward IV is the flat vol


def test_width_selects_the_far_leg_by_points_or_percent(flat_chain):
    res = build_strategy(K.BULL_PUT_SPREAD, flat_chain, StrategyParams(width_points=5))
    short = next(leg for leg in res.legs if leg.side < 0)
    long_ = next(leg for leg in res.legs if leg.side > 0)
    assert short.strike - long_.strike == 5 and res.width == 5
    assert res.max_loss == pytest.approx((5 - res.credit_mid) * 100)
    res = build_strategy(K.BEAR_CALL_SPREAD, flat_chain, StrategyParams(width_pct=0.032))  # 3.2 points → 3
    assert res.width == 3
    res = build_strategy(K.BULL_CALL_SPREAD, flat_chain, StrategyParams(width_points=4))
    long_ = next(leg for leg in res.legs if leg.side > 0)
    short = next(leg for leg in res.legs if leg.side < 0)
    assert short.strike - long_.strike == 4 and res.max_loss == pytest.approx(-res.credit_mid * 100)


def test_pm_root_is_preferred_and_roots_restrict():
    snap = bsm_chain(expiries=("2024-04-19",), roots=(("SPX", "AM"), ("SPXW", "PM")))
    res = build_strategy(K.IRON_CONDOR, snap)
    assert {leg.root for leg in res.legs} == {"SPXW"} and {leg.settlement for leg in res.legs} == {"PM"}
    assert "SPXW rather than SPX" in res.reason
    res = build_strategy(K.IRON_CONDOR, snap, StrategyParams(roots=("SPX",)))
    assert {leg.root for leg in res.legs} == {"SPX"}
    assert res.T == pytest.approx(years_to("2024-04-19", "AM"), abs=1e-12)  # AM: settles at the 09:30 open
    res = build_strategy(K.IRON_CONDOR, snap, StrategyParams(roots=("SPX", "SPXW"), prefer_pm=True))
    assert {leg.root for leg in res.legs} == {"SPX"}  # an explicit order wins
    res = build_strategy(K.IRON_CONDOR, snap, StrategyParams(prefer_pm=False))
    assert len({leg.root for leg in res.legs}) == 1


def test_iron_condor_is_a_put_spread_plus_a_call_spread(flat_chain):
    ic = build_strategy(K.IRON_CONDOR, flat_chain)
    bp = build_strategy(K.BULL_PUT_SPREAD, flat_chain)
    bc = build_strategy(K.BEAR_CALL_SPREAD, flat_chain)
    assert ic.legs == tuple(sorted(bp.legs + bc.legs, key=lambda leg: (leg.right != "P", leg.strike)))
    assert ic.credit_mid == pytest.approx(bp.credit_mid + bc.credit_mid)
    assert ic.width == max(bp.width, bc.width)
    assert ic.max_loss == pytest.approx((ic.width - ic.credit_mid) * 100)
    assert len(ic.breakevens) == 2
    assert ic.breakevens[0] == pytest.approx(max(leg.strike for leg in bp.legs) - ic.credit_mid)
    assert ic.breakevens[1] == pytest.approx(min(leg.strike for leg in bc.legs) + ic.credit_mid)
    for field in ("delta", "gamma", "vega", "theta"):
        assert getattr(ic.greeks, field) == pytest.approx(getattr(bp.greeks, field) + getattr(bc.greeks, field))
    assert ic.greeks.theta > 0 and ic.greeks.vega < 0 and ic.greeks.gamma < 0


def test_closed_form_pop_and_ev_match_textbook_formulas():
    """Bull put spread under a lognormal: POP = P(S_T > breakeven); EV from undiscounted BSM values."""
    S, T, vol, r, q = 100.0, 0.12, 0.25, 0.04, 0.01
    legs = [Leg("X", pd.Timestamp("2024-04-12").date(), "PM", 90.0, "P", 1, 1, 0, 0, 0, vol, 0, 0, 0, 0, 0),
            Leg("X", pd.Timestamp("2024-04-12").date(), "PM", 95.0, "P", -1, 1, 0, 0, 0, vol, 0, 0, 0, 0, 0)]
    credit = 1.4
    st_ = payoff_stats(legs, credit, spot=S, T=T, sigma=vol, rate=r, div_yield=q)
    be = 95.0 - credit
    z = (math.log(be / S) - (r - q - vol * vol / 2) * T) / (vol * math.sqrt(T))
    assert st_.breakevens == pytest.approx((be,))
    assert st_.pop == pytest.approx(1 - norm.cdf(z), abs=1e-12)
    p90, _ = bs_ref(S, 90.0, T, vol, False, r, q)
    p95, _ = bs_ref(S, 95.0, T, vol, False, r, q)
    assert st_.expected_value == pytest.approx((credit + (p90 - p95) * math.exp(r * T)) * 100, rel=1e-10)
    assert st_.max_profit == pytest.approx(140.0) and st_.max_loss == pytest.approx(360.0)


def test_unbounded_and_two_sided_payoffs():
    d = pd.Timestamp("2024-04-12").date()
    straddle = [Leg("X", d, "PM", 100.0, "C", 1, 1, 0, 0, 0, .2, 0, 0, 0, 0, 0),
                Leg("X", d, "PM", 100.0, "P", 1, 1, 0, 0, 0, .2, 0, 0, 0, 0, 0)]
    s = payoff_stats(straddle, -6.0, spot=100, T=0.1, sigma=0.2)
    assert s.max_profit == math.inf and s.max_loss == pytest.approx(600.0)
    assert s.breakevens == pytest.approx((94.0, 106.0))
    z = lambda x: (math.log(x / 100) + 0.02 * 0.1) / (0.2 * math.sqrt(0.1))  # noqa: E731
    assert s.pop == pytest.approx(norm.cdf(z(94.0)) + 1 - norm.cdf(z(106.0)), abs=1e-12)
    short_call = [Leg("X", d, "PM", 100.0, "C", -1, 1, 0, 0, 0, .2, 0, 0, 0, 0, 0)]
    s = payoff_stats(short_call, 3.0, spot=100, T=0.1, sigma=0.2)
    assert s.max_loss == math.inf and s.max_profit == pytest.approx(300.0) and s.breakevens == (103.0,)
    with pytest.raises(StrategyError):
        payoff_stats(short_call, 3.0, spot=100, T=0.0, sigma=0.2)
    with pytest.raises(StrategyError):
        payoff_stats([], 3.0, spot=100, T=0.1, sigma=0.2)


# ------------------------------------------------------------------------------------------------
# no valid strategy


def _with(snap: ChainSnapshot, **cols) -> ChainSnapshot:
    table = snap.contracts.copy()
    for name, value in cols.items():
        table[name] = value(table) if callable(value) else value
    return snap.replace(contracts=table)


@pytest.mark.parametrize("kind", BUILDABLE)
def test_chain_without_bids_is_not_valid(flat_chain, kind):
    res = build_strategy(kind, _with(flat_chain, bid=0.0))
    assert isinstance(res, NoValidStrategy) and res.valid is False
    assert res.code == "no_quotes" and "without a bid" in res.reason
    res = build_strategy(kind, _with(flat_chain, bid=np.nan))
    assert not res.valid and "without a bid" in res.reason
    # without a spread limit the zero bids are usable for long legs, but nothing can be sold
    res = build_strategy(kind, _with(flat_chain, bid=0.0), StrategyParams(max_spread_pct=None))
    assert not res.valid and res.code == "no_quotes"


def test_chain_without_iv_is_not_valid_unless_filled_from_mid(flat_chain):
    snap = _with(flat_chain, iv=np.nan, delta=np.nan)
    res = build_strategy(K.BULL_PUT_SPREAD, snap)
    assert not res.valid and res.code == "no_quotes" and "without an implied volatility" in res.reason
    filled = build_strategy(K.BULL_PUT_SPREAD, snap, StrategyParams(fill_iv_from_mid=True))
    base = build_strategy(K.BULL_PUT_SPREAD, flat_chain)
    assert filled.valid
    assert [leg.strike for leg in filled.legs] == [leg.strike for leg in base.legs]
    assert (leg_candidates(snap, StrategyParams(fill_iv_from_mid=True))["iv_source"] == "mid").any()


def test_no_expiry_near_the_target(flat_chain):
    res = build_strategy(K.IRON_CONDOR, flat_chain, StrategyParams(target_dte=200))
    assert not res.valid and res.code == "no_expiry"
    assert "200-DTE" in res.reason and "2024-05-17 (77 DTE)" in res.reason
    snap = bsm_chain(expiries=("2024-03-08",))
    res = build_strategy(K.BULL_PUT_SPREAD, snap)
    assert not res.valid and res.code == "no_expiry" and "2024-03-08 (7 DTE)" in res.reason
    res = build_strategy(K.BULL_PUT_SPREAD, snap, StrategyParams(roots=("SPY",)))
    assert not res.valid and "no live expiry" in res.reason


def test_crossed_quotes_and_wide_spreads_are_skipped(flat_chain):
    crossed = _with(flat_chain, bid=lambda t: t["ask"] + 0.5)
    res = build_strategy(K.BEAR_CALL_SPREAD, crossed)
    assert not res.valid and "crossed quotes" in res.reason
    wide = _with(flat_chain, ask=lambda t: t["bid"] * 3 + 0.1)
    res = build_strategy(K.BEAR_CALL_SPREAD, wide)
    assert not res.valid and "above 10% of mid" in res.reason
    assert build_strategy(K.BEAR_CALL_SPREAD, wide, StrategyParams(max_spread_pct=None)).valid
    thin = _with(flat_chain, open_interest=3.0)
    res = build_strategy(K.BEAR_CALL_SPREAD, thin, StrategyParams(min_open_interest=10))
    assert not res.valid and "open interest below 10" in res.reason


def test_one_quoted_put_is_not_a_spread(flat_chain):
    keep = lambda t: np.where((t["right"] == "P") & (t["strike"] != 95), np.nan, t["bid"])  # noqa: E731
    res = build_strategy(K.BULL_PUT_SPREAD, _with(flat_chain, bid=keep))
    assert not res.valid and res.code == "no_quotes"
    assert build_strategy(K.BEAR_CALL_SPREAD, _with(flat_chain, bid=keep)).valid  # calls untouched


def test_far_leg_missing_gives_a_reason():
    snap = bsm_chain(expiries=("2024-04-12",), strikes=np.arange(96.0, 141.0, 1.0))
    # puts from 96 up: the 0.30-delta put (~95) is the lowest strike, nothing below it for the wing
    res = build_strategy(K.BULL_PUT_SPREAD, snap, StrategyParams(short_delta=0.2, long_delta=0.1))
    assert not res.valid and res.code == "no_long_leg" and "beyond the short 96P" in res.reason
    assert res.expiration == pd.Timestamp("2024-04-12").date()


def test_stay_out_builds_nothing(flat_chain):
    res = strategy_for("STAY_OUT", "SIDEWAYS", flat_chain)
    assert isinstance(res, NoValidStrategy) and res.code == "no_trade" and "STAY_OUT" in res.reason
    assert json.loads(json.dumps(res.to_dict()))["valid"] is False


@pytest.mark.parametrize("kwargs", [
    dict(short_delta=0), dict(short_delta=1.2), dict(long_delta=0.35), dict(debit_long_delta=0.2),
    dict(width_points=5, width_pct=0.01), dict(width_points=-5), dict(width_pct=1.0), dict(width_pct=float("nan")),
    dict(target_dte=-1), dict(target_dte=4.5), dict(dte_tolerance="7"), dict(max_spread_pct=0),
    dict(min_open_interest=-1), dict(rate=5.0), dict(div_yield=float("inf")), dict(roots=()), dict(roots=(1,)),
    dict(multiplier=0), dict(prefer_pm="yes"), dict(short_delta=True), dict(min_width_pct=-0.01),
    dict(min_width_pct=1.0),
])
def test_bad_params_raise_a_named_error(kwargs):
    with pytest.raises(StrategyParamsError):
        StrategyParams(**kwargs)


def test_bad_arguments_raise_named_errors(flat_chain):
    with pytest.raises(StrategyError):
        build_strategy(K.IRON_CONDOR, "not a chain")
    with pytest.raises(StrategyParamsError):
        build_strategy(K.IRON_CONDOR, flat_chain, {"target_dte": 30})
    with pytest.raises(UnknownStrategyError):
        build_strategy("strangle", flat_chain)
    assert StrategyParams(roots="spxw").roots == ("SPXW",)


# ------------------------------------------------------------------------------------------------
# liquidity rules (issue 9: an ENTRY bought a put with open interest 0)


def test_liquidity_defaults_are_documented_and_demanding():
    p = StrategyParams()
    assert (p.min_open_interest, p.max_spread_pct, p.min_width_pct) == (5.0, 0.10, 0.002)


def test_a_leg_without_open_interest_is_not_used_and_the_report_says_so(flat_chain):
    base = build_strategy(K.BULL_CALL_SPREAD, flat_chain)
    long_k = next(leg.strike for leg in base.legs if leg.side > 0)
    exp = pd.Timestamp(base.expiration)
    # the strike the spread buys has no open interest, its neighbour a market 20% wide, the next one no bid
    t = flat_chain.contracts
    at = lambda k: (t["expiration"] == exp) & (t["right"] == "C") & (t["strike"] == k)  # noqa: E731
    snap = _with(flat_chain, open_interest=lambda t: np.where(at(long_k), 0.0, t["open_interest"]),
                 ask=lambda t: np.where(at(long_k + 1), t["bid"] * 1.25, t["ask"]),
                 bid=lambda t: np.where(at(long_k - 1), 0.0, t["bid"]))
    res = build_strategy(K.BULL_CALL_SPREAD, snap)
    assert res.valid and long_k not in [leg.strike for leg in res.legs]
    assert all(leg.open_interest >= 5 for leg in res.legs)
    liq = res.liquidity
    assert isinstance(liq, LiquidityReport) and liq.where == f"SPXW {base.expiration} calls"
    # one contract per rule, against the same count on the untouched chain
    ref = base.liquidity
    assert (liq.open_interest, liq.spread, liq.no_bid) == (ref.open_interest + 1, ref.spread + 1, ref.no_bid + 1)
    assert liq.usable == ref.usable - 3 and liq.considered == ref.considered
    assert f"removed {liq.open_interest} with open interest < 5, {liq.spread} with a bid/ask spread > 10% of mid, " \
        f"{liq.no_bid} without a bid" in res.summary()
    assert liq.summary() in res.summary() and liq.summary() in res.reason
    assert json.loads(json.dumps(res.to_dict(), allow_nan=False))["liquidity"]["open_interest"] == liq.open_interest


def test_liquidity_counts_match_an_independent_count(flat_chain):
    snap = _with(flat_chain, open_interest=lambda t: np.where(t["strike"] % 3 == 0, 2.0, 500.0))
    res = build_strategy(K.BULL_PUT_SPREAD, snap)
    t = snap.contracts
    t = t[(t["expiration"] == pd.Timestamp(res.expiration)) & (t["right"] == "P")]
    mid = (t["bid"] + t["ask"]) / 2
    wide = (t["ask"] - t["bid"]) / mid > 0.10
    no_bid = t["bid"] <= 0
    low = t["open_interest"] < 5
    liq = res.liquidity
    assert liq.considered == len(t)
    assert liq.no_bid == int(no_bid.sum())
    assert liq.spread == int((wide & ~no_bid).sum())
    assert liq.open_interest == int((low & ~wide & ~no_bid).sum())
    assert liq.usable == int((~low & ~wide & ~no_bid).sum())
    assert all(leg.strike % 3 != 0 for leg in res.legs)


@pytest.mark.shared_data
def test_the_issue_entry_no_longer_buys_a_put_nobody_holds():
    """spx_2022-06-11.csv: the bear put spread bought the 3915P with open interest 0."""
    from research_lib.data.sources import read_chain

    snap = read_chain(shared_file(QUOTEDATA / "spx_2022-06-11.csv"))
    old = build_strategy(K.BEAR_PUT_SPREAD, snap, StrategyParams(min_open_interest=0, max_spread_pct=0.5))
    assert [(leg.strike, leg.open_interest) for leg in old.legs if leg.side > 0] == [(3915.0, 0.0)]
    res = build_strategy(K.BEAR_PUT_SPREAD, snap)
    assert res.valid and all(leg.open_interest >= 5 for leg in res.legs)
    assert all((leg.ask - leg.bid) / leg.mid <= 0.10 for leg in res.legs)
    assert all(leg.bid > 0 for leg in res.legs if leg.side < 0)
    assert res.liquidity.open_interest > 0 and "open interest < 5" in res.summary()


# ------------------------------------------------------------------------------------------------
# the premium's sign, printed once


def test_premium_text_prints_magnitudes_after_the_word():
    assert premium_text(-41.55, -42.0) == "debit 41.55 mid / 42.00 natural"
    assert premium_text(1.2, 1.05) == "credit 1.20 mid / 1.05 natural"
    assert premium_text(0.05, -0.10) == "credit 0.05 mid / debit 0.10 natural"


@pytest.mark.parametrize("kind", BUILDABLE)
def test_summary_never_flips_the_sign_of_the_premium(flat_chain, kind):
    res = build_strategy(kind, flat_chain)
    line = res.summary().splitlines()[1]
    word = "credit" if kind in CREDIT else "debit"
    assert line.startswith(f"  {word} {abs(res.credit_mid):.2f} mid / {abs(res.credit_natural):.2f} natural")
    assert "-" not in line.split("per share")[0]


# ------------------------------------------------------------------------------------------------
# fitting the risk budget


def _brute_force_widest(res_full: StrategyResult, snap: ChainSnapshot, kind, budget: float, min_w: float):
    """Widest far strike (same near leg, usable quotes) whose mid max loss per contract fits ``budget``."""
    near = next(leg for leg in res_full.legs if (leg.side < 0) == (kind in CREDIT))
    far0 = next(leg for leg in res_full.legs if leg is not near)
    c = leg_candidates(snap, res_full.params, expiration=res_full.expiration)
    c = c[(c["root"] == near.root) & (c["right"] == near.right) & c["usable"]]
    if kind not in CREDIT:
        c = c[c["bid"] > 0]
    best = None
    for _, row in c.iterrows():
        w = abs(row["strike"] - near.strike)
        beyond = (row["strike"] < near.strike) if near.right == "P" else (row["strike"] > near.strike)
        if not beyond or w > abs(far0.strike - near.strike) or w < min_w:
            continue
        premium = (near.mid - row["mid"]) if kind in CREDIT else (row["mid"] - near.mid)
        loss = ((w - premium) if kind in CREDIT else -premium) * 100
        if loss <= budget and (best is None or w > best[0]):
            best = (w, row["strike"], loss)
    return best


@pytest.mark.parametrize("kind", [K.BULL_PUT_SPREAD, K.BEAR_CALL_SPREAD, K.BULL_CALL_SPREAD, K.BEAR_PUT_SPREAD])
def test_a_budget_below_the_spread_narrows_it_to_the_widest_that_fits(kind):
    snap = bsm_chain(expiries=("2024-04-12",), strikes=np.arange(60.0, 141.0, 0.5))
    full = build_strategy(kind, snap)
    assert full.valid and full.risk_budget is None and full.budget_note == ""
    # a budget above the full max loss changes nothing
    roomy = build_strategy(kind, snap, risk_budget=full.max_loss + 1)
    assert [leg.strike for leg in roomy.legs] == [leg.strike for leg in full.legs] and roomy.budget_note == ""
    budget = round(full.max_loss * 0.6, 2)
    res = build_strategy(kind, snap, risk_budget=budget)
    assert res.valid, res.reason
    assert res.max_loss <= budget < full.max_loss and res.width < full.width
    expect = _brute_force_widest(full, snap, kind, budget, 0.002 * snap.spot)
    assert res.width == expect[0] and res.max_loss == pytest.approx(expect[2], abs=1e-6)
    near = lambda r: [leg.strike for leg in r.legs if (leg.side < 0) == (kind in CREDIT)]  # noqa: E731
    assert near(res) == near(full)                               # the near leg does not move
    assert f"width {res.width:g} points instead of {full.width:g}" in res.budget_note
    assert f"${budget:,.2f} risk budget" in res.budget_note and res.budget_note in res.summary()
    assert res.risk_budget == budget


def test_an_iron_condor_narrows_both_sides():
    snap = bsm_chain(expiries=("2024-04-12",), strikes=np.arange(60.0, 141.0, 0.5))
    full = build_strategy(K.IRON_CONDOR, snap)
    res = build_strategy(K.IRON_CONDOR, snap, risk_budget=full.max_loss / 2)
    assert res.valid and res.max_loss <= full.max_loss / 2
    shorts = lambda r: sorted(leg.strike for leg in r.legs if leg.side < 0)  # noqa: E731
    assert shorts(res) == shorts(full)
    widths = [abs(a.strike - b.strike) for a, b in (res.legs[:2], res.legs[2:])]
    assert max(widths) == res.width < full.width
    assert res.max_loss == pytest.approx((res.width - res.credit_mid) * 100)


def test_nothing_fits_a_tiny_budget_and_the_result_says_what_the_narrowest_loses():
    snap = bsm_chain(expiries=("2024-04-12",), strikes=np.arange(60.0, 141.0, 0.5))
    full = build_strategy(K.BULL_PUT_SPREAD, snap)
    res = build_strategy(K.BULL_PUT_SPREAD, snap, risk_budget=5.0)
    assert isinstance(res, NoValidStrategy) and res.code == "over_budget" and res.risk_budget == 5.0
    widths = [w for w, _ in res.candidates]
    assert widths == sorted(widths, reverse=True) and widths[0] == full.width
    assert min(widths) == 0.5                      # one listed step: above the 0.2 points of min_width_pct
    assert res.min_max_loss == min(x for _, x in res.candidates) > 5.0
    assert f"loses ${res.min_max_loss:,.2f} per contract, more than the $5.00 risk budget" in res.reason
    assert res.liquidity is not None and res.expiration == full.expiration
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["code"] == "over_budget" and d["candidates"][0] == [full.width, pytest.approx(full.max_loss)]
    # a larger minimum width stops earlier
    wide_min = build_strategy(K.BULL_PUT_SPREAD, snap, StrategyParams(min_width_pct=0.02), risk_budget=5.0)
    assert min(w for w, _ in wide_min.candidates) == 2.0 and "minimum width 2 points (2.00% of spot)" in wide_min.reason


def test_a_bad_budget_is_a_named_error(flat_chain):
    for bad in (0, -1.0, float("nan"), float("inf"), "100"):
        with pytest.raises(StrategyError, match="risk_budget"):
            build_strategy(K.BULL_PUT_SPREAD, flat_chain, risk_budget=bad)


# ------------------------------------------------------------------------------------------------
# real chains from ../shared/data


@pytest.fixture(scope="module")
def spy_2023():
    from research_lib.data.sources import read_chain

    return read_chain(shared_file(QUOTEDATA / "spy_2023-09-14.csv"))


# the synthetic SPX chain always; each real one when its file is present (no skip on a fresh clone)
REAL_CHAINS = [name for name, path in (("spx_2024", QUOTEDATA / "spx_2024-01-07.csv"),
                                       ("spy_2023", QUOTEDATA / "spy_2023-09-14.csv"),
                                       ("spx_eod_last", EOD_ARCHIVE)) if path.exists()]


@pytest.fixture(scope="module", params=["synthetic_chain", *REAL_CHAINS])
def real_chain(request):
    return request.getfixturevalue(request.param)


_BUILT: dict = {}


def built(snap: ChainSnapshot, kind: StrategyKind) -> StrategyResult:
    key = (snap.source, kind)
    if key not in _BUILT:
        _BUILT[key] = build_strategy(kind, snap)
    res = _BUILT[key]
    assert res.valid, res.reason
    return res


def nearest_expiry_to_target(snap: ChainSnapshot, target: int = 45):
    today = gex.valuation_moment(snap, gex.GexConfig.model()).date()
    exps = sorted({d for d in snap.expirations if d >= today})
    return min(exps, key=lambda d: (abs((d - today).days - target), d))


@pytest.mark.shared_data
@pytest.mark.parametrize("kind", BUILDABLE)
def test_real_chain_legs_exist_at_the_nearest_expiry(real_chain, kind):
    snap = real_chain
    res = built(snap, kind)
    assert res.expiration == nearest_expiry_to_target(snap)
    assert abs(res.dte - 45) <= 7
    table = snap.contracts.set_index(["root", "expiration", "strike", "right"])
    for leg in res.legs:
        row = table.loc[(leg.root, pd.Timestamp(leg.expiration), leg.strike, leg.right)]
        assert (row["bid"], row["ask"], row["iv"]) == (leg.bid, leg.ask, leg.iv)
        assert leg.mid == pytest.approx((leg.bid + leg.ask) / 2)
        assert 0 < leg.bid <= leg.ask if leg.side < 0 else 0 <= leg.bid <= leg.ask
        _, ref = bs_ref(snap.spot, leg.strike, res.T, leg.iv, leg.right == "C")
        assert leg.delta == pytest.approx(float(ref), abs=1e-9)
    assert len({(leg.root, leg.expiration) for leg in res.legs}) == 1
    if snap.underlying == "SPX":
        assert {leg.root for leg in res.legs} == {"SPXW"}  # PM preferred where the SPX monthly is listed too


@pytest.mark.shared_data
@pytest.mark.parametrize("kind", BUILDABLE)
def test_real_chain_deltas_are_near_their_targets(real_chain, kind):
    """Each leg's |delta| is the one nearest its target: off by no more than the step to a neighbouring strike."""
    snap = real_chain
    res = built(snap, kind)
    params = res.params
    cands = leg_candidates(snap, params, expiration=res.expiration)
    for leg in res.legs:
        is_short = leg.side < 0
        if kind in CREDIT:
            target = params.short_delta if is_short else params.long_delta
        else:
            target = params.debit_long_delta if not is_short else params.short_delta
        pool = cands[(cands["root"] == leg.root) & (cands["right"] == leg.right) & cands["usable"]]
        if is_short:
            pool = pool[pool["bid"] > 0]
        pool = pool.sort_values("strike")
        strikes = pool["strike"].to_numpy()
        deltas = np.abs(pool["delta"].to_numpy())
        i = int(np.flatnonzero(strikes == leg.strike)[0])
        steps = [abs(deltas[i] - deltas[j]) for j in (i - 1, i + 1) if 0 <= j < len(deltas)]
        assert abs(abs(leg.delta) - target) <= max(steps) + 1e-12
        # the liquidity rules thin the strikes out: on the 2026-08-21 archive day the 0.50-delta 7675P holds
        # 3 contracts (< 5), so the bear put spread buys 7650P at |Δ| 0.46
        assert abs(abs(leg.delta) - target) <= 0.04


@pytest.mark.shared_data
@pytest.mark.parametrize("kind", BUILDABLE)
def test_real_chain_payoff_figures(real_chain, kind):
    res = built(real_chain, kind)
    m = res.params.multiplier
    assert res.credit_natural <= res.credit_mid
    assert res.natural.premium == res.credit_natural
    if kind in CREDIT:
        assert 0 < res.credit_mid < res.width
        assert res.max_profit == pytest.approx(res.credit_mid * m)
        assert res.max_loss == pytest.approx((res.width - res.credit_mid) * m)
        assert res.natural.max_loss == pytest.approx((res.width - res.credit_natural) * m)
        assert res.greeks.theta > 0 and res.greeks.vega < 0
    else:
        debit = -res.credit_mid
        assert 0 < debit < res.width
        assert res.max_loss == pytest.approx(debit * m)
        assert res.max_profit == pytest.approx((res.width - debit) * m)
        assert res.greeks.vega > 0
    shorts = {leg.right: leg.strike for leg in res.legs if leg.side < 0}
    longs = {leg.right: leg.strike for leg in res.legs if leg.side > 0}
    c = res.credit_mid
    expected_be = {
        K.BULL_PUT_SPREAD: (shorts.get("P", 0) - c,),
        K.BEAR_CALL_SPREAD: (shorts.get("C", 0) + c,),
        K.IRON_CONDOR: (shorts.get("P", 0) - c, shorts.get("C", 0) + c),
        K.BULL_CALL_SPREAD: (longs.get("C", 0) - c,),
        K.BEAR_PUT_SPREAD: (longs.get("P", 0) + c,),
    }[kind]
    assert res.breakevens == pytest.approx(expected_be)
    assert expiry_payoff(res.legs, np.array(res.breakevens), c) == pytest.approx(0, abs=1e-9)
    for stats in (res.mid, res.natural):
        assert 0 <= stats.pop <= 1
    assert 0.2 < res.pop < 0.9
    assert res.natural.pop <= res.pop + 1e-12 and res.natural.expected_value <= res.expected_value + 1e-9
    assert 0.03 < res.sigma < 1.0
    assert json.loads(json.dumps(res.to_dict()))["kind"] == str(kind)
    assert list(res.legs_frame()["strike"]) == [leg.strike for leg in res.legs]
    assert str(kind.label) in res.summary()


def monte_carlo(res: StrategyResult, premium: float, n: int = 200_000, seed: int = 7):
    """Simulated P&L per contract: S_T lognormal at res.sigma, drift rate - div_yield; payoff written out here."""
    rng = np.random.default_rng(seed)
    r, q, T, vol = res.params.rate, res.params.div_yield, res.T, res.sigma
    s_t = res.spot * np.exp((r - q - vol * vol / 2) * T + vol * math.sqrt(T) * rng.standard_normal(n))
    pnl = np.full(n, premium)
    for leg in res.legs:
        intrinsic = np.maximum(s_t - leg.strike, 0) if leg.right == "C" else np.maximum(leg.strike - s_t, 0)
        pnl += leg.side * leg.quantity * intrinsic
    return pnl * res.params.multiplier


@pytest.mark.shared_data
@pytest.mark.parametrize("kind", BUILDABLE)
def test_pop_and_ev_match_monte_carlo(spx_chain, kind):
    res = built(spx_chain, kind)
    for stats in (res.mid, res.natural):
        pnl = monte_carlo(res, stats.premium)
        n = len(pnl)
        p_mc = float((pnl > 0).mean())
        se_p = math.sqrt(p_mc * (1 - p_mc) / n)
        assert abs(stats.pop - p_mc) <= 3 * se_p, (stats.pop, p_mc, se_p)
        se_ev = float(pnl.std(ddof=1)) / math.sqrt(n)
        assert abs(stats.expected_value - pnl.mean()) <= 3 * se_ev, (stats.expected_value, pnl.mean(), se_ev)
        assert pnl.max() <= stats.max_profit + 1e-6 and -pnl.min() <= stats.max_loss + 1e-6


@pytest.mark.shared_data
def test_real_chain_with_rates_and_widths(spx_chain):
    spx_2024 = spx_chain
    params = StrategyParams(rate=0.053, div_yield=0.014, width_points=50)
    res = build_strategy(K.IRON_CONDOR, spx_2024, params)
    assert res.valid and res.width == 50
    assert {round(abs(a.strike - b.strike)) for a, b in zip(res.legs[::2], res.legs[1::2], strict=True)} == {50}
    pnl = monte_carlo(res, res.credit_mid)
    se = math.sqrt(res.pop * (1 - res.pop) / len(pnl))
    assert abs(res.pop - (pnl > 0).mean()) <= 3 * se + 1e-12
    res = build_strategy(K.BULL_PUT_SPREAD, spx_2024, StrategyParams(width_pct=0.01))
    assert res.valid and abs(res.width - 0.01 * spx_2024.spot) <= 5 / 2 + 1e-9  # SPXW strikes every 5 points
    res = build_strategy(K.BULL_PUT_SPREAD, spx_2024, StrategyParams(roots=("SPX",)))
    assert res.valid and {leg.root for leg in res.legs} == {"SPX"} and {leg.settlement for leg in res.legs} == {"AM"}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["synthetic", *(["real"] if EOD_ARCHIVE.exists() else [])])
def test_eod_archive_other_day(name, request):
    from research_lib.data.sources import read_chain

    if name == "real":
        snap = read_chain(shared_file(EOD_ARCHIVE), date="2026-07-15")
    else:  # the synthetic archive's full-chain day
        snap = read_chain(request.getfixturevalue("synthetic").files["eod_archive"], date="2024-03-06")
    for kind in BUILDABLE:
        res = build_strategy(kind, snap)
        assert res.valid, res.reason
        assert res.expiration == nearest_expiry_to_target(snap)
        assert res.credit_natural <= res.credit_mid and 0 <= res.pop <= 1


# ------------------------------------------------------------------------------------------------
# fuzzing: hand-built chains with arbitrary quotes never raise anything but named errors


@st.composite
def fuzz_chains(draw, target_dte: int = 45):
    """Chains with 1-4 expiries near ``target_dte`` and 1-14 strikes; quotes either arbitrary (NaN, zero,
    crossed ...) or BSM prices at a random vol, spread and skew with some quotes knocked out."""
    n_exp = draw(st.integers(1, 4))
    dtes = draw(st.lists(st.integers(max(target_dte - 40, 0), target_dte + 40), min_size=n_exp, max_size=n_exp,
                         unique=True))
    spot = draw(st.floats(5.0, 5000.0))
    n_k = draw(st.integers(1, 14))
    strikes = sorted({round(spot * draw(st.floats(0.5, 1.5)), 2) for _ in range(n_k)})
    rows = [(pd.Timestamp("2024-03-01") + pd.Timedelta(days=d), k, right, 10.0, 0.2)
            for d in dtes for k in strikes for right in "CP"]
    table = contract_rows(rows, root=draw(st.sampled_from(["SPXW", "SPX", "SPY"])),
                          settlement=draw(st.sampled_from(["AM", "PM"])))
    n = len(table)
    if draw(st.booleans()):
        price = st.one_of(st.just(np.nan), st.just(0.0), st.floats(0.0, spot))
        table["bid"] = draw(st.lists(price, min_size=n, max_size=n))
        table["ask"] = draw(st.lists(price, min_size=n, max_size=n))
        table["iv"] = draw(st.lists(st.one_of(st.just(np.nan), st.floats(0.0, 5.0)), min_size=n, max_size=n))
    else:
        vol = draw(st.floats(0.05, 1.5))
        skew = draw(st.floats(-0.5, 0.5))
        iv = np.clip(vol - skew * np.log(table["strike"].to_numpy() / spot), 0.01, 5.0)
        T = np.maximum((table["expiration"] - pd.Timestamp("2024-03-01")).dt.days.to_numpy(), 0.25) / 365
        price, _ = bs_ref(spot, table["strike"].to_numpy(), T, iv, (table["right"] == "C").to_numpy())
        half = draw(st.floats(0.0, 0.2)) * price + draw(st.floats(0.0, 0.01)) * spot / 100
        table["bid"] = np.maximum(price - half, 0.0)
        table["ask"] = price + half
        table["iv"] = iv
        holes = np.array(draw(st.lists(st.integers(0, 9), min_size=n, max_size=n)))
        table.loc[holes == 0, "bid"] = np.nan
        table.loc[holes == 1, "iv"] = np.nan
        table.loc[holes == 2, "bid"] = table.loc[holes == 2, "ask"] + 1.0
    table["open_interest"] = draw(st.lists(st.floats(0.0, 1e4), min_size=n, max_size=n))
    hour = draw(st.sampled_from(["09:00", "12:00", "16:30"]))
    return ChainSnapshot.create(underlying="SPX", spot=spot, quote_time=pd.Timestamp(f"2024-03-01 {hour}",
                                tz="America/New_York"), source="fuzz", contracts=table)


@st.composite
def fuzz_params(draw):
    long_d = draw(st.floats(0.01, 0.3))
    short_d = draw(st.floats(long_d + 0.01, 0.6))
    width = draw(st.sampled_from([None, "points", "pct"]))
    return StrategyParams(
        target_dte=draw(st.sampled_from([45, 45, 45, 10, 0])), dte_tolerance=draw(st.sampled_from([0, 7, 15, 40])),
        short_delta=short_d,
        long_delta=long_d, debit_long_delta=draw(st.floats(short_d + 0.01, 0.99)),
        width_points=draw(st.floats(0.1, 500)) if width == "points" else None,
        width_pct=draw(st.floats(0.001, 0.5)) if width == "pct" else None,
        max_spread_pct=draw(st.sampled_from([None, 0.1, 0.5, 2.0])),
        min_open_interest=draw(st.sampled_from([0.0, 0.0, 100.0])), rate=draw(st.sampled_from([0.0, 0.05, -0.01])),
        div_yield=draw(st.sampled_from([0.0, 0.02])), fill_iv_from_mid=draw(st.booleans()),
        prefer_pm=draw(st.booleans()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fuzz_chains(), fuzz_params(), st.sampled_from(BUILDABLE),
       st.one_of(st.none(), st.floats(1.0, 1e6)))
def test_fuzzed_chains_give_a_result_or_a_reason(snap, params, kind, budget):
    res = build_strategy(kind, snap, params, risk_budget=budget)
    assert isinstance(res, StrategyResult | NoValidStrategy)
    if not res.valid:
        assert res.reason and res.code in {"no_expiry", "no_quotes", "no_short_leg", "no_long_leg", "bad_prices",
                                           "overlap", "over_budget"}
        if res.code == "over_budget":
            assert budget is not None and res.min_max_loss > budget
            assert all(x > budget for _, x in res.candidates)
            json.dumps(res.to_dict(), allow_nan=False)
        return
    if budget is not None:
        assert res.max_loss <= budget + 1e-9 and res.risk_budget == budget
    assert 0 <= res.pop <= 1 and 0 <= res.natural.pop <= 1
    assert res.credit_natural <= res.credit_mid + 1e-12
    assert abs(res.dte - params.target_dte) <= params.dte_tolerance
    strikes = set(snap.contracts["strike"])
    assert all(leg.strike in strikes for leg in res.legs)
    m = params.multiplier
    if kind in CREDIT:
        assert res.max_loss == pytest.approx((res.width - res.credit_mid) * m)
    else:
        assert res.max_loss == pytest.approx(-res.credit_mid * m)
    assert all(math.isfinite(x) for x in (res.expected_value, res.max_profit, res.sigma, res.greeks.delta))
