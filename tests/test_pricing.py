"""Tests for :mod:`research_lib.pricing` (vectorised Black-Scholes-Merton).

Reference values come from QuantLib (``AnalyticEuropeanEngine``), from finite differences of the
module's own functions, from put-call parity and from a scalar ``brentq`` implied-vol solver.

Tolerances (all documented next to the assertions):

* QuantLib: ``|ours - ql| <= 1e-8 * |ql| + floor``; the absolute floors (1e-12 of the natural
  scale of the quantity) only matter for values that are tiny anyway (deep OTM prices, deltas
  of 1e-30, ...) where both implementations are limited by cancellation.
* Finite differences: central differences with relative bumps; truncation + rounding errors
  are ~1e-7 relative, so the tolerance is 1e-5 relative (plus a tiny floor).
* Implied vol: see the individual tests; accuracy is bounded by the information in the price
  (``price rounding / vega``), which is what the tolerances encode.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scipy.optimize import brentq

from research_lib.core import pricing as bs

R, Q, S0 = 0.05, 0.015, 100.0


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def implied_vol_scalar_reference(price, S, K, T, r, q, is_call, lo=1e-6, hi=20.0):
    """Scalar reference implied vol: ``brentq`` on ``price(sigma) - target`` over ``[lo, hi]``.

    Returns NaN when the target is not bracketed.
    """

    def f(sig):
        return float(bs.price(S, K, T, sig, r, q, is_call)) - price

    f_lo, f_hi = f(lo), f(hi)
    if not (f_lo < 0 < f_hi):
        return float("nan")
    return brentq(f, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)


def assert_close(ours, ref, rel, floor, what=""):
    ours, ref = np.asarray(ours, dtype=float), np.asarray(ref, dtype=float)
    err = np.abs(ours - ref)
    bound = rel * np.abs(ref) + floor
    bad = ~(err <= bound)
    if bad.any():
        i = np.flatnonzero(bad.ravel())[:5]
        raise AssertionError(
            f"{what}: {bad.sum()} mismatches, e.g. ours={ours.ravel()[i]}, ref={ref.ravel()[i]}, "
            f"err={err.ravel()[i]}, bound={np.broadcast_to(bound, err.shape).ravel()[i]}"
        )


def otm_price(S, K, T, sigma, r, q):
    """Price of the out-of-the-money (forward sense) option = time value, computed directly."""
    fwd_call_otm = np.log(S / K) + (r - q) * T <= 0
    return bs.price(S, K, T, sigma, r, q, fwd_call_otm)


def iv_grid():
    """Wide grid: deep ITM/OTM, T from one minute to 5 years, vols from 1 % to 500 %."""
    log_m = np.linspace(-2.0, 2.0, 33)
    days = np.array([1 / 24 / 60, 1 / 24, 1.0, 7.0, 30.0, 91.0, 365.0, 5 * 365.0])
    vols = np.array([0.01, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0])
    lm, d, v, c = (a.ravel() for a in np.meshgrid(log_m, days, vols, [True, False], indexing="ij"))
    return S0 * np.exp(lm), d / 365.0, v, c


# ---------------------------------------------------------------------------------------------
# QuantLib cross-checks
# ---------------------------------------------------------------------------------------------
QL_DAYS = [1, 7, 30, 91, 365, 1095]
QL_VOLS = [0.05, 0.2, 0.6, 1.5]
QL_STRIKES = [50.0, 80.0, 95.0, 100.0, 105.0, 125.0, 200.0]


@pytest.fixture(scope="module")
def ql_cases():
    """QuantLib prices / greeks on the grid; T = days / 365 so Actual365Fixed matches exactly."""
    ql = pytest.importorskip("QuantLib")
    settings_ = ql.Settings.instance()
    previous = settings_.evaluationDate
    today = ql.Date(15, 1, 2024)
    settings_.evaluationDate = today
    try:
        dc = ql.Actual365Fixed()
        spot = ql.QuoteHandle(ql.SimpleQuote(S0))
        r_ts = ql.YieldTermStructureHandle(ql.FlatForward(today, R, dc))  # continuous compounding
        q_ts = ql.YieldTermStructureHandle(ql.FlatForward(today, Q, dc))
        rows = []
        for sigma in QL_VOLS:
            vol = ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), sigma, dc))
            process = ql.BlackScholesMertonProcess(spot, q_ts, r_ts, vol)
            engine = ql.AnalyticEuropeanEngine(process)
            for days in QL_DAYS:
                for K in QL_STRIKES:
                    for is_call in (True, False):
                        payoff = ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, K)
                        opt = ql.EuropeanOption(payoff, ql.EuropeanExercise(today + days))
                        opt.setPricingEngine(engine)
                        rows.append(
                            dict(
                                K=K, T=days / 365.0, sigma=sigma, is_call=is_call, price=opt.NPV(),
                                delta=opt.delta(), gamma=opt.gamma(), vega=opt.vega(),
                                theta=opt.theta(), rho=opt.rho(), opt=opt, process=process,
                            )
                        )  # fmt: skip
        yield {k: np.array([row[k] for row in rows]) for k in rows[0]}
    finally:
        settings_.evaluationDate = previous


def test_quantlib_conventions_sanity(ql_cases):
    # QuantLib theta is per year (thetaPerDay = theta / 365) and vega/rho are per 1.00
    opt = ql_cases["opt"][0]
    assert opt.thetaPerDay() == pytest.approx(opt.theta() / 365.0, rel=1e-12)


@pytest.mark.parametrize(
    ("name", "floor"),
    [
        # absolute floors: 1e-12 of the natural scale (S for values, 1 for delta, 1/S for gamma)
        ("price", 1e-12 * S0),
        ("delta", 1e-12),
        ("gamma", 1e-12 / S0),
        ("vega", 1e-12 * S0),
        ("theta", 1e-12 * S0),
        ("rho", 1e-12 * S0),
    ],
)
def test_matches_quantlib(ql_cases, name, floor):
    c = ql_cases
    func = getattr(bs, name)
    ours = func(S0, c["K"], c["T"], c["sigma"], R, Q, c["is_call"])
    # relative 1e-8 where the math allows; the floor covers values that are ~0 anyway
    assert_close(ours, c[name], rel=1e-8, floor=floor, what=name)


def test_greeks_dataclass_matches_quantlib_and_single_functions(ql_cases):
    c = ql_cases
    g = bs.greeks(S0, c["K"], c["T"], c["sigma"], R, Q, c["is_call"])
    assert_close(g.price, c["price"], 1e-8, 1e-12 * S0, "price")
    assert_close(g.delta, c["delta"], 1e-8, 1e-12, "delta")
    assert_close(g.gamma, c["gamma"], 1e-8, 1e-12 / S0, "gamma")
    assert_close(g.vega, c["vega"], 1e-8, 1e-12 * S0, "vega")
    assert_close(g.theta, c["theta"], 1e-8, 1e-12 * S0, "theta")
    args = (S0, c["K"], c["T"], c["sigma"], R, Q, c["is_call"])
    for field in ("price", "delta", "gamma", "vega", "theta", "vanna", "charm"):
        np.testing.assert_allclose(getattr(g, field), getattr(bs, field)(*args), rtol=1e-14, atol=0)
    with pytest.raises(AttributeError):
        g.price = 1.0  # frozen


def test_implied_vol_matches_quantlib(ql_cases):
    c = ql_cases
    # QuantLib's solver needs a visible time value; keep cases with price well above intrinsic
    tv = otm_price(S0, c["K"], c["T"], c["sigma"], R, Q)
    keep = np.flatnonzero((tv > 1e-3) & (c["sigma"] <= 1.5))[::3]
    assert keep.size > 40
    ql_iv = np.array(
        [c["opt"][i].impliedVolatility(c["price"][i], c["process"][i], 1e-12, 1000, 1e-4, 10.0) for i in keep]
    )
    res = bs.implied_vol(c["price"][keep], S0, c["K"][keep], c["T"][keep], R, Q, c["is_call"][keep])
    assert (res.reason == "ok").all()
    np.testing.assert_allclose(res.iv, ql_iv, rtol=1e-8)
    np.testing.assert_allclose(res.iv, c["sigma"][keep], rtol=1e-8)


# ---------------------------------------------------------------------------------------------
# finite differences and parity
# ---------------------------------------------------------------------------------------------
def fd_grid():
    K = S0 * np.exp(np.linspace(-0.6, 0.6, 13))
    T = np.array([1, 7, 30, 182, 730]) / 365.0
    sig = np.array([0.08, 0.25, 0.9])
    K, T, sig, c = (a.ravel() for a in np.meshgrid(K, T, sig, [True, False], indexing="ij"))
    return K, T, sig, c


def test_vanna_is_fd_of_delta_in_sigma():
    K, T, sig, c = fd_grid()
    h = 1e-5 * sig
    fd = (bs.delta(S0, K, T, sig + h, R, Q, c) - bs.delta(S0, K, T, sig - h, R, Q, c)) / (2 * h)
    # central difference: truncation ~ h^2, rounding ~ 1e-16 / 1e-5 -> 1e-5 rel + 1e-9 abs
    assert_close(bs.vanna(S0, K, T, sig, R, Q, c), fd, rel=1e-5, floor=1e-9, what="vanna")


def test_charm_is_minus_fd_of_delta_in_T():
    K, T, sig, c = fd_grid()
    h = 1e-5 * T
    fd = -(bs.delta(S0, K, T + h, sig, R, Q, c) - bs.delta(S0, K, T - h, sig, R, Q, c)) / (2 * h)
    assert_close(bs.charm(S0, K, T, sig, R, Q, c), fd, rel=1e-5, floor=1e-7, what="charm")


def test_gamma_is_fd_of_price_and_of_delta():
    K, T, sig, c = fd_grid()
    h = 1e-3 * S0 * sig * np.sqrt(T)  # bump relative to the 1-sd move of the underlying
    p_up, p_0, p_dn = (bs.price(S0 + k * h, K, T, sig, R, Q, c) for k in (1, 0, -1))
    fd2 = (p_up - 2 * p_0 + p_dn) / h**2
    g = bs.gamma(S0, K, T, sig, R, Q)
    # second differences: truncation ~1e-6 relative, rounding ~ eps * price / h^2
    rounding = 8 * np.finfo(float).eps * (S0 + K) / h**2
    assert_close(g, fd2, rel=1e-5, floor=rounding, what="gamma vs d2 price")
    fd1 = (bs.delta(S0 + h, K, T, sig, R, Q, c) - bs.delta(S0 - h, K, T, sig, R, Q, c)) / (2 * h)
    assert_close(g, fd1, rel=1e-5, floor=1e-10, what="gamma vs d delta")


def test_vega_theta_rho_are_fd_of_price():
    K, T, sig, c = fd_grid()
    hs, ht, hr = 1e-5 * sig, 1e-5 * T, 1e-5
    fd_vega = (bs.price(S0, K, T, sig + hs, R, Q, c) - bs.price(S0, K, T, sig - hs, R, Q, c)) / (2 * hs)
    fd_theta = -(bs.price(S0, K, T + ht, sig, R, Q, c) - bs.price(S0, K, T - ht, sig, R, Q, c)) / (2 * ht)
    fd_rho = (bs.price(S0, K, T, sig, R + hr, Q, c) - bs.price(S0, K, T, sig, R - hr, Q, c)) / (2 * hr)
    assert_close(bs.vega(S0, K, T, sig, R, Q), fd_vega, 1e-6, 1e-7, "vega")
    assert_close(bs.theta(S0, K, T, sig, R, Q, c), fd_theta, 1e-6, 1e-6, "theta")
    assert_close(bs.rho(S0, K, T, sig, R, Q, c), fd_rho, 1e-6, 1e-7, "rho")


def test_put_call_parity():
    rng = np.random.default_rng(7)
    n = 5000
    S = rng.uniform(20, 500, n)
    K = S * np.exp(rng.uniform(-1.5, 1.5, n))
    T = rng.uniform(1 / 365 / 24, 5, n)
    sig = np.exp(rng.uniform(np.log(0.01), np.log(3.0), n))
    r, q = rng.uniform(-0.01, 0.1, n), rng.uniform(0, 0.06, n)
    call, put = bs.price(S, K, T, sig, r, q, True), bs.price(S, K, T, sig, r, q, False)
    parity = S * np.exp(-q * T) - K * np.exp(-r * T)
    np.testing.assert_allclose(call - put, parity, rtol=0, atol=1e-10)
    dc, dp = bs.delta(S, K, T, sig, r, q, True), bs.delta(S, K, T, sig, r, q, False)
    np.testing.assert_allclose(dc - dp, np.exp(-q * T), rtol=0, atol=1e-14)
    assert ((call >= 0) & (put >= 0)).all()


def test_known_value_and_signs():
    # Hull's textbook example: S=42, K=40, T=0.5, r=10 %, sigma=20 %: call 4.76, put 0.81
    assert bs.price(42.0, 40.0, 0.5, 0.2, 0.1, 0.0, True) == pytest.approx(4.7594, abs=1e-4)
    assert bs.price(42.0, 40.0, 0.5, 0.2, 0.1, 0.0, False) == pytest.approx(0.8086, abs=1e-4)
    g = bs.greeks(100.0, 100.0, 0.25, 0.2, 0.0, 0.0, True)
    assert g.theta < 0 < g.vega and g.gamma > 0 and 0.5 < g.delta < 0.6
    d1, d2 = bs.d1_d2(100.0, 100.0, 1.0, 0.2)
    assert d1 == pytest.approx(0.1) and d2 == pytest.approx(-0.1)


# ---------------------------------------------------------------------------------------------
# API: broadcasting, scalars, rights, invalid elements, blockwise evaluation
# ---------------------------------------------------------------------------------------------
def test_scalars_return_floats_and_arrays_broadcast():
    p = bs.price(100.0, 100.0, 0.5, 0.2, R, Q, True)
    assert isinstance(p, float) and np.ndim(p) == 0
    S = np.array([[90.0], [100.0], [110.0]])
    K = np.array([80.0, 100.0, 120.0, 140.0])
    out = bs.gamma(S, K, 0.25, 0.3, R, Q)
    assert out.shape == (3, 4)
    assert bs.price(S, K, 0.25, 0.3, R, Q, np.array([True, False, True, False])).shape == (3, 4)
    d1, d2 = bs.d1_d2(S, K, 0.25, 0.3)
    assert d1.shape == d2.shape == (3, 4)
    assert bs.gamma(100.0, 100.0, 0.5, 0.2, R, Q, is_call=np.array([True, False])).shape == (2,)
    # strings are accepted wherever is_call is
    np.testing.assert_array_equal(
        bs.price(100.0, K, 0.5, 0.2, R, Q, ["C", "P", "c", "put"]),
        bs.price(100.0, K, 0.5, 0.2, R, Q, [True, False, True, False]),
    )


def test_as_is_call():
    np.testing.assert_array_equal(bs.as_is_call(["C", "P", " c ", "CALL", "put"]), [1, 0, 1, 1, 0])
    np.testing.assert_array_equal(bs.as_is_call(np.array([True, False])), [True, False])
    np.testing.assert_array_equal(bs.as_is_call(np.array(["C", True, False], dtype=object)), [1, 1, 0])
    np.testing.assert_array_equal(bs.as_is_call(np.array([b"P", b"C"])), [False, True])
    assert bs.as_is_call("C").shape == ()
    assert bs.as_is_call(np.array([["C", "P"], ["P", "P"]])).shape == (2, 2)
    with pytest.raises(ValueError, match="'X'"):
        bs.as_is_call(["C", "X", "P"])
    with pytest.raises(ValueError, match="None"):
        bs.as_is_call(np.array(["C", None], dtype=object))
    with pytest.raises(ValueError, match="1"):
        bs.as_is_call([1, 0])


def test_invalid_elements_are_nan_without_warnings():
    bad = dict(
        S=[-1.0, 0.0, np.nan, np.inf, 100, 100, 100, 100, 100, 100, 100, 100, 100],
        K=[100, 100, 100, 100, 0.0, -5, np.nan, 100, 100, 100, 100, 100, 100],
        T=[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0, -1, np.nan, 0.5, 0.5, 0.5],
        sigma=[0.2] * 10 + [0.0, -0.2, np.nan],
    )
    args = [np.array(bad[k], dtype=float) for k in ("S", "K", "T", "sigma")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for f in (bs.price, bs.delta, bs.theta, bs.rho, bs.charm, bs.gamma, bs.vega, bs.vanna):
            assert np.isnan(f(*args, R, Q, True)).all(), f.__name__
        assert np.isnan(bs.price(100.0, 100.0, 0.5, 0.2, np.nan, Q, True))
        assert np.isnan(bs.gamma(100.0, 100.0, 0.5, 0.2, R, np.inf))
        g = bs.greeks(*args, R, Q, False)
        assert all(np.isnan(getattr(g, f)).all() for f in ("price", "delta", "charm"))


def test_blockwise_evaluation_matches_single_block(monkeypatch):
    rng = np.random.default_rng(3)
    S = rng.uniform(90, 110, (500, 1))
    K = np.linspace(50, 150, 170)
    T = rng.uniform(1 / 365, 2, (500, 1))
    sig = rng.uniform(0.1, 0.8, (500, 170))
    sig[3, 5] = np.nan
    c = rng.random((500, 170)) < 0.5
    assert S.size * K.size > 2 * bs._BLOCK  # exercises the blockwise path
    chunked = bs.greeks(S, K, T, sig, R, Q, c)
    monkeypatch.setattr(bs, "_BLOCK", 10**9)
    whole = bs.greeks(S, K, T, sig, R, Q, c)
    for f in ("price", "delta", "gamma", "vega", "theta", "vanna", "charm"):
        np.testing.assert_array_equal(getattr(chunked, f), getattr(whole, f))
    assert np.isnan(chunked.gamma[3, 5]) and np.isfinite(np.delete(chunked.gamma.ravel(), 3 * 170 + 5)).all()


# ---------------------------------------------------------------------------------------------
# implied volatility
# ---------------------------------------------------------------------------------------------
def test_implied_vol_round_trip_wide_grid():
    K, T, sig, c = iv_grid()
    p = bs.price(S0, K, T, sig, R, Q, c)
    res = bs.implied_vol(p, S0, K, T, R, Q, c)
    ok = res.reason == "ok"
    assert set(np.unique(res.reason)) <= {"ok", "no_price", "no_time_value"}
    # prices that underflow to 0 -> no_price; ITM prices whose time value is lost in rounding
    # -> no_time_value; everything with a time value above 1e-11 of the spot must be solved
    tv = otm_price(S0, K, T, sig, R, Q)
    assert ok[tv > 1e-11 * S0].all()
    assert (res.reason[p == 0] == "no_price").all()
    assert ok.mean() > 0.45  # the grid has many 1-minute / 1 % vol deep ITM/OTM points
    assert np.isnan(res.iv[~ok]).all() and (res.iv[ok] > 0).all()

    # 1) re-pricing: within rounding of the inputs (relative 1e-9 for tiny OTM prices)
    p2 = bs.price(S0, K[ok], T[ok], res.iv[ok], R, Q, c[ok])
    assert_close(p2, p[ok], rel=1e-9, floor=1e-13 * (S0 + K[ok]), what="re-price")

    # 2) the vol itself, where the price identifies it: error <= price rounding / vega
    vega = bs.vega(S0, K[ok], T[ok], sig[ok], R, Q)
    price_noise = 8 * np.finfo(float).eps * (S0 + K[ok])
    ident = tv[ok] > 1e-9 * S0
    err = np.abs(res.iv[ok] - sig[ok])
    bound = 1e-9 * sig[ok] + price_noise / vega
    assert (err[ident] <= bound[ident]).all()
    # deep OTM with tiny but positive prices (down to 1e-300): solved on a log scale, so the vol
    # is still accurate to ~1e-9 relative
    tiny = (tv[ok] < 1e-9 * S0) & (tv[ok] == p[ok])
    assert tiny.sum() > 50
    np.testing.assert_allclose(res.iv[ok][tiny], sig[ok][tiny], rtol=1e-8)


def test_implied_vol_iterations_are_few():
    K, T, sig, c = iv_grid()
    F = S0 * np.exp((R - Q) * T)
    y = -np.abs(np.log(F / K))
    tv = otm_price(S0, K, T, sig, R, Q)
    beta = tv / np.exp(-R * T) / np.sqrt(F * K)
    keep = beta > 0
    with np.errstate(all="ignore"):
        _, status, n_iter = bs._solve_total_std(y[keep], beta[keep], 1e-10, 100)
    assert (status == 0).all()
    assert n_iter.max() <= 8 and np.mean(n_iter) < 5


def test_implied_vol_matches_brentq_reference():
    rng = np.random.default_rng(11)
    n = 150
    K = S0 * np.exp(rng.uniform(-0.8, 0.8, n))
    T = rng.choice([1 / 365, 7 / 365, 0.1, 0.5, 2.0], n)
    sig = rng.uniform(0.03, 2.0, n)
    c = rng.random(n) < 0.5
    p = bs.price(S0, K, T, sig, R, Q, c)
    ref = np.array(
        [implied_vol_scalar_reference(*a, R, Q, ci) for *a, ci in zip(p, [S0] * n, K, T, c, strict=True)]
    )
    res = bs.implied_vol(p, S0, K, T, R, Q, c)
    both = np.isfinite(ref) & (res.reason == "ok")
    assert both.sum() > 0.8 * n
    # the rest are deep ITM options whose time value is lost in rounding (the reference
    # sometimes "finds" a vol there from rounding noise)
    tv = otm_price(S0, K, T, sig, R, Q)
    assert (res.reason[~both] == "no_time_value").all() and (tv[~both] < 1e-10 * S0).all()
    vega = bs.vega(S0, K, T, sig, R, Q)
    # the two solvers agree to the precision the price allows
    with np.errstate(divide="ignore"):  # vega underflows to 0 for the no_time_value cases
        bound = 1e-9 * sig + 16 * np.finfo(float).eps * (S0 + K) / vega
    assert (np.abs(res.iv - ref)[both] <= bound[both]).all()


def test_implied_vol_edges_near_expiry_and_extreme_vols():
    one_minute = 1 / 365 / 24 / 60
    K = np.array([100.0, 100.05, 99.95, 100.0, 100.0, 150.0, 60.0, 100.0])
    T = np.array([one_minute, one_minute, one_minute, one_minute, 5.0, 5.0, 5.0, 0.01])
    sig = np.array([0.01, 0.5, 0.5, 5.0, 5.0, 5.0, 0.01, 0.01])
    for is_call in (True, False):
        p = bs.price(S0, K, T, sig, R, Q, is_call)
        res = bs.implied_vol(p, S0, K, T, R, Q, is_call)
        tv = otm_price(S0, K, T, sig, R, Q)
        ident = tv > 1e-6
        assert (res.reason[ident] == "ok").all()
        # 500 % vol over 5 years is within 1e-8 of the upper bound: information limited
        np.testing.assert_allclose(res.iv[ident], sig[ident], rtol=1e-7)


def test_implied_vol_edge_cases_reasons():
    T = 0.5
    dq, dr = np.exp(-Q * T), np.exp(-R * T)
    lower_call = S0 * dq - 80.0 * dr  # ITM call, K = 80
    cases = [
        # (price, S, K, T, is_call, expected reason)
        (5.0, S0, 100.0, T, True, "ok"),
        (0.5 * lower_call, S0, 80.0, T, True, "below_intrinsic"),
        (lower_call, S0, 80.0, T, True, "no_time_value"),
        (S0 * dq, S0, 100.0, T, True, "above_upper_bound"),
        (S0 * dq * 1.01, S0, 100.0, T, True, "above_upper_bound"),
        (100.0 * dr, S0, 100.0, T, False, "above_upper_bound"),
        (np.inf, S0, 100.0, T, False, "above_upper_bound"),
        (0.0, S0, 100.0, T, True, "no_price"),
        (-1.0, S0, 100.0, T, True, "no_price"),
        (np.nan, S0, 100.0, T, False, "no_price"),
        (5.0, S0, 100.0, 0.0, True, "expired"),
        (5.0, S0, 100.0, -0.1, True, "expired"),
        (5.0, 0.0, 100.0, T, True, "bad_input"),
        (5.0, -100.0, 100.0, T, True, "bad_input"),
        (5.0, np.nan, 100.0, T, True, "bad_input"),
        (5.0, S0, 0.0, T, True, "bad_input"),
        (5.0, S0, 100.0, np.nan, True, "bad_input"),
        (1e-320, 1e300, 100.0, 0.5, False, "no_convergence"),  # normalised price underflows
    ]
    price, S, K, TT, c, expected = (np.array(col) for col in zip(*cases, strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = bs.implied_vol(price.astype(float), S.astype(float), K.astype(float), TT.astype(float), R, Q, c)
    np.testing.assert_array_equal(res.reason, expected)
    assert np.isfinite(res.iv[0]) and np.isnan(res.iv[1:]).all()
    np.testing.assert_array_equal(res.ok, expected == "ok")
    assert set(expected) <= set(bs.IV_REASONS)


def test_implied_vol_scalar_shape_and_no_convergence():
    p = bs.price(100.0, 110.0, 0.5, 0.3, R, Q, False)
    res = bs.implied_vol(p, 100.0, 110.0, 0.5, R, Q, "P")
    assert isinstance(res.reason, str) and res.reason == "ok" and res.ok
    assert isinstance(res.iv, float) and res.iv == pytest.approx(0.3, rel=1e-12)
    grid = bs.implied_vol(np.full((2, 3), p), 100.0, 110.0, 0.5, R, Q, False)
    assert grid.iv.shape == grid.reason.shape == (2, 3)
    starved = bs.implied_vol(p, 100.0, 110.0, 0.5, R, Q, False, max_iter=1)
    assert starved.reason == "no_convergence" and np.isnan(starved.iv)


def test_implied_vol_solves_a_random_25k_chain():
    """The benchmark's input (benchmarks/gex.py times it): nearly every element solves and reprices."""
    rng = np.random.default_rng(0)
    n = 25_000
    K = S0 * np.exp(rng.uniform(-0.5, 0.5, n))
    T = rng.uniform(1 / 365, 2, n)
    sig = rng.uniform(0.05, 1.0, n)
    c = rng.random(n) < 0.5
    p = bs.price(S0, K, T, sig, R, Q, c)
    res = bs.implied_vol(p, S0, K, T, R, Q, c)
    assert (res.reason == "ok").mean() > 0.98
    ok = res.reason == "ok"
    np.testing.assert_allclose(bs.price(S0, K[ok], T[ok], res.iv[ok], R, Q, c[ok]), p[ok], rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# property tests
# ---------------------------------------------------------------------------------------------
any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)
special = st.sampled_from([0.0, -0.0, 1e-300, 5e-324, 1e300, -1e300, 1.0, 100.0, np.nan, np.inf, -np.inf])
wild = st.one_of(any_float, special)
rows = st.lists(st.tuples(wild, wild, wild, wild, wild, wild, wild, st.booleans()), min_size=1, max_size=12)

SIGNED = (bs.price, bs.delta, bs.theta, bs.rho, bs.charm)
UNSIGNED = (bs.gamma, bs.vega, bs.vanna)


def _finite_or_nan(x):
    return not np.isinf(np.asarray(x)).any()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows)
def test_property_never_raises_warns_or_returns_inf(data):
    P, S, K, T, sig, r, q, c = (np.array(col) for col in zip(*data, strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for f in SIGNED:
            assert _finite_or_nan(f(S, K, T, sig, r, q, c)), f.__name__
            assert _finite_or_nan(f(S[0], K[0], T[0], sig[0], r[0], q[0], bool(c[0]))), f.__name__
        for f in UNSIGNED:
            assert _finite_or_nan(f(S, K, T, sig, r, q)), f.__name__
        g = bs.greeks(S, K, T, sig, r, q, c)
        assert all(_finite_or_nan(getattr(g, f)) for f in ("price", "delta", "gamma", "vega"))
        assert all(_finite_or_nan(getattr(g, f)) for f in ("theta", "vanna", "charm"))
        assert all(_finite_or_nan(x) for x in bs.d1_d2(S, K, T, sig, r, q))
        res = bs.implied_vol(P, S, K, T, r, q, c)
        scalar_res = bs.implied_vol(P[0], S[0], K[0], T[0], r[0], q[0], bool(c[0]))
    ok = res.reason == "ok"
    assert set(np.unique(res.reason)) <= set(bs.IV_REASONS)
    assert np.isfinite(res.iv[ok]).all() and (res.iv[ok] > 0).all() and np.isnan(res.iv[~ok]).all()
    assert scalar_res.reason == res.reason[0]
    np.testing.assert_array_equal(scalar_res.iv, res.iv[0])
    # invalid inputs -> NaN (NaN anywhere, or non-positive S, K, T, sigma)
    invalid = ~(np.isfinite(np.c_[S, K, T, sig, r, q]).all(axis=1) & (np.c_[S, K, T, sig] > 0).all(axis=1))
    assert np.isnan(bs.price(S, K, T, sig, r, q, c)[invalid]).all()


valid_rows = st.lists(
    st.tuples(
        st.floats(1e-2, 1e5),  # S
        st.floats(1e-2, 1e5),  # K
        st.floats(1e-6, 30.0),  # T (years)
        st.floats(1e-3, 5.0),  # sigma
        st.floats(-0.2, 0.3),  # r
        st.floats(-0.2, 0.3),  # q
        st.booleans(),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(valid_rows)
def test_property_valid_inputs_give_finite_results(data):
    S, K, T, sig, r, q, c = (np.array(col) for col in zip(*data, strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = bs.greeks(S, K, T, sig, r, q, c)
        for f in ("price", "delta", "gamma", "vega", "theta", "vanna", "charm"):
            assert np.isfinite(getattr(g, f)).all(), f
        for f in (bs.rho,):
            assert np.isfinite(f(S, K, T, sig, r, q, c)).all()
        assert np.isfinite(bs.d1_d2(S, K, T, sig, r, q)).all()
        res = bs.implied_vol(g.price, S, K, T, r, q, c)
    assert (g.price >= 0).all() and (g.gamma >= 0).all() and (g.vega >= 0).all()
    # round trip: either solved (and re-prices) or flagged as not identifiable (price 0, no time
    # value, or within rounding of the upper bound for huge sigma * sqrt(T))
    assert set(np.unique(res.reason)) <= {"ok", "no_price", "no_time_value", "above_upper_bound"}
    ok = res.reason == "ok"
    p2 = bs.price(S[ok], K[ok], T[ok], res.iv[ok], r[ok], q[ok], c[ok])
    assert_close(p2, g.price[ok], rel=1e-9, floor=1e-13 * (S[ok] + K[ok]), what="re-price")
