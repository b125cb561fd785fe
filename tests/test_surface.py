"""The smoothed IV surface (research_lib.core.surface): recovery of a known surface from exact and noisy
quotes (tests/synthetic.py), its rules (out-of-the-money side, flat wings, too few quotes, the spot it is
solved at), bad input, and the real archives."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import EOD_ARCHIVE, INTRADAY_ARCHIVE, shared_file
from hypothesis import given, settings, strategies as st
from synthetic import priced_chain

from research_lib.core.gex import GexConfig, time_to_expiry
from research_lib.core.surface import FIT_COLUMNS, fit_smile, smoothed_iv
from research_lib.errors import QuoteFitArgumentError
from research_lib.formatting import to_json

R, Q = 0.05, 0.013
CFG = GexConfig(rate=R, div_yield=Q)


@pytest.fixture(scope="module")
def exact():
    return priced_chain(rate=R, div_yield=Q)


def _k(snap, spot):
    T = time_to_expiry(snap, CFG)
    return np.log(snap.contracts["strike"].to_numpy() / spot) - (R - Q) * T


def _in_range(snap, surf, spot):
    k = _k(snap, spot)
    f = surf.fits.set_index(["expiration", "root"])
    key = pd.MultiIndex.from_arrays([snap.contracts["expiration"], snap.contracts["root"]])
    lo, hi = f.reindex(key)["k_min"].to_numpy(), f.reindex(key)["k_max"].to_numpy()
    return (k >= lo) & (k <= hi), k, lo, hi


def test_recovers_a_known_smooth_surface(exact):
    surf = smoothed_iv(exact, CFG)
    truth = exact.contracts["iv"].to_numpy()
    inside, *_ = _in_range(exact, surf, 5000.0)
    assert inside.sum() > 2000
    err = np.abs(surf.iv - truth)[inside] * 100  # vol points, calls and puts, in and out of the money
    assert err.max() < 0.1
    assert tuple(surf.fits.columns) == FIT_COLUMNS and len(surf.fits) == 6
    assert (surf.fits["method"] == "p-spline").all() and (surf.fits["rmse"] < 0.01).all()
    used = np.isfinite(surf.quote_iv)
    np.testing.assert_allclose(surf.quote_iv[used], truth[used], atol=1e-8)  # the re-solved quote IVs are exact
    assert surf.fitted.all() and surf.notes == ()


def test_noisy_quotes_fit_closer_to_the_truth_than_their_own_ivs():
    noisy = priced_chain(rate=R, div_yield=Q, noise=0.8, seed=1)
    surf = smoothed_iv(noisy, CFG)
    truth = noisy.contracts["iv"].to_numpy()
    used = np.isfinite(surf.quote_iv)
    assert used.sum() > 1000
    raw = np.sqrt(np.mean((surf.quote_iv[used] - truth[used]) ** 2))
    fit = np.sqrt(np.mean((surf.iv[used] - truth[used]) ** 2))
    assert raw > 0.0005  # the noise is there: 0.05 vol point or more
    assert fit < 0.5 * raw


def test_only_out_of_the_money_quotes_are_used(exact):
    surf = smoothed_iv(exact, CFG)
    k = _k(exact, 5000.0)
    calls = (exact.contracts["right"] == "C").to_numpy()
    used = np.isfinite(surf.quote_iv)
    assert (k[used & calls] >= 0).all() and (k[used & ~calls] < 0).all()
    assert used[calls & (k >= 0)].any() and used[~calls & (k < 0)].any()
    # a garbage ITM quote changes nothing
    c = exact.contracts.copy()
    itm = calls & (k < -0.01)
    c.loc[itm, ["bid", "ask"]] = c.loc[itm, ["bid", "ask"]] * 1.2
    again = smoothed_iv(exact.replace(contracts=c), CFG)
    np.testing.assert_array_equal(again.iv, surf.iv)


def test_wings_are_flat_beyond_the_fitted_range(exact):
    surf = smoothed_iv(exact, CFG)
    inside, k, lo, hi = _in_range(exact, surf, 5000.0)
    assert (~inside).sum() > 100
    for _, sub in exact.contracts.groupby("expiration"):
        idx = sub.index.to_numpy()
        inner = idx[inside[idx]]
        edges = (inner[np.argmin(k[inner])], inner[np.argmax(k[inner])])
        for side, edge in ((idx[k[idx] < lo[idx]], edges[0]), (idx[k[idx] > hi[idx]], edges[1])):
            if len(side):  # every contract beyond the range gets the smile's end value
                np.testing.assert_allclose(surf.iv[side], surf.iv[edge], rtol=0, atol=1e-12)


def test_an_expiry_with_too_few_quotes_keeps_its_own_iv(exact):
    c = exact.contracts.copy()
    exp = sorted(c["expiration"].unique())[1]
    rows = c["expiration"] == exp
    keep_two = c[rows].index[np.argsort(np.abs(c.loc[rows, "strike"].to_numpy() - 5000.0))[:8]]
    c.loc[rows & ~c.index.isin(keep_two), "bid"] = 0.0
    c.loc[rows, "iv"] = 0.33  # the contracts' own IV, distinguishable
    surf = smoothed_iv(exact.replace(contracts=c), CFG)
    mask = rows.to_numpy()
    np.testing.assert_array_equal(surf.iv[mask], 0.33)
    assert not surf.fitted[mask].any() and surf.fitted[~mask].all()
    row = surf.fits.set_index("expiration").loc[exp]
    assert row["method"] == "own_iv" and row["n_quotes"] < 5 and np.isnan(row["rmse"])
    assert any("1 of 6 expiries" in n and f"{mask.sum()} contracts keep their own IV" in n for n in surf.notes)
    # no own IV either: NaN, and said
    c.loc[rows, "iv"] = np.nan
    surf = smoothed_iv(exact.replace(contracts=c), CFG)
    assert np.isnan(surf.iv[mask]).all() and any("have no IV" in n for n in surf.notes)


def test_expired_contracts_get_nan():
    snap = priced_chain(rate=R, div_yield=Q, expiry_days=(0, 1, 7))  # the same-day expiry, after its close
    surf = smoothed_iv(snap, CFG)
    expired = (snap.contracts["expiration"] == snap.contracts["expiration"].min()).to_numpy()
    assert expired.sum() > 0 and np.isnan(surf.iv[expired]).all() and np.isfinite(surf.iv[~expired]).all()
    assert len(surf.fits) == 2 and any("expired" in n for n in surf.notes)


def test_a_chain_with_nothing_live_gives_nan_and_no_fits():
    snap = priced_chain(rate=R, div_yield=Q, expiry_days=(0,))
    surf = smoothed_iv(snap, CFG)
    assert np.isnan(surf.iv).all() and surf.fits.empty and tuple(surf.fits.columns) == FIT_COLUMNS
    assert not surf.fitted.any() and surf.notes == (f"{len(snap.contracts)} expired contracts get NaN",)


def test_quotes_are_solved_at_the_spot_given():
    after = priced_chain(spot=5010.0, print_spot=5000.0, rate=R, div_yield=Q)
    truth = after.contracts["iv"].to_numpy()
    right = smoothed_iv(after, CFG, spot=5010.0)
    inside, *_ = _in_range(after, right, 5010.0)
    assert right.spot == 5010.0 and np.abs(right.iv - truth)[inside].max() < 0.001
    wrong = smoothed_iv(after, CFG)  # at the print: the quotes look like a different smile
    inside_w, *_ = _in_range(after, wrong, 5000.0)
    assert np.abs(wrong.iv - truth)[inside_w].max() > 0.005
    assert wrong.fits["rmse"].max() > right.fits["rmse"].max()


@pytest.mark.parametrize("kwargs, argument", [
    ({"spot": -1.0}, "spot"), ({"spot": float("nan")}, "spot"), ({"spot": float("inf")}, "spot"),
    ({"min_quotes": 2}, "min_quotes"), ({"min_quotes": 5.5}, "min_quotes"),
    ({"max_rel_spread": 0.0}, "max_rel_spread"), ({"max_rel_spread": float("nan")}, "max_rel_spread"),
])
def test_bad_arguments_name_themselves(exact, kwargs, argument):
    with pytest.raises(QuoteFitArgumentError) as info:
        smoothed_iv(exact, CFG, **kwargs)
    assert info.value.argument == argument


def test_a_smile_needs_two_distinct_strikes():
    with pytest.raises(QuoteFitArgumentError, match="2 or more distinct strikes"):
        fit_smile(np.zeros(6), np.full(6, 0.2), np.full(6, 0.01))


def test_fit_smile_downweights_an_outlier():
    k = np.linspace(-0.2, 0.1, 40)
    iv = 0.2 - 0.3 * k + 0.5 * k * k
    bad = iv.copy()
    bad[20] += 0.05  # a stale quote, 5 vol points off
    spline, lo, hi, _ = fit_smile(k, bad, np.full(40, 0.002))
    assert abs(spline(k[20]) - iv[20]) < 0.005
    assert np.abs(spline(np.delete(k, 20)) - np.delete(iv, 20)).max() < 0.003


def test_to_dict_is_strict_json(exact):
    d = json.loads(to_json(smoothed_iv(priced_chain(rate=R, div_yield=Q, expiry_days=(0, 1, 7)), CFG)))
    assert d["iv"][0] is None and len(d["fits"]) == 2 and d["spot"] == 5000.0


# --------------------------------------------------------------------------------------------------
# real data


def test_real_surfaces_fit_within_about_a_vol_point():
    from research_lib.core.parity import parity_spot
    from research_lib.data.market import snapshot_config
    from research_lib.data.sources import read_chain

    snap = read_chain(shared_file(EOD_ARCHIVE), date="2026-06-24")
    cfg = snapshot_config(snap, "model")
    at_print = smoothed_iv(snap, cfg)
    at_parity = smoothed_iv(snap, cfg, spot=parity_spot(snap, cfg).spot)
    assert (at_parity.fits["method"] == "p-spline").mean() > 0.9
    # the after-close quotes are consistent at the parity spot, not at the print: calls and puts disagree
    front = at_print.fits["expiration"] <= pd.Timestamp("2026-07-10")
    assert at_parity.fits.loc[front, "rmse"].median() < at_print.fits.loc[front, "rmse"].median()
    assert at_parity.fits["rmse"].median() < 1.0
    live = np.isfinite(at_parity.iv)
    assert live.mean() > 0.95 and (at_parity.iv[live] > 0.01).all() and (at_parity.iv[live] < 5).all()
    snap19 = read_chain(shared_file(INTRADAY_ARCHIVE), date="2019-06-03")
    s19 = smoothed_iv(snap19, snapshot_config(snap19, "model"))
    assert s19.fits["rmse"].median() < 1.0


@settings(max_examples=25)
@given(data=st.data())
def test_garbage_quotes_give_ivs_within_the_quoted_range(data):
    """Any bid/ask (missing, zero, crossed, huge): no error, no infinity, each fitted IV within the range of
    its expiry's quote IVs, each unfitted one the contract's own."""
    snap = priced_chain(expiry_days=(2, 9), width=1.0)
    n = len(snap.contracts)
    quote = st.one_of(st.just(np.nan), st.just(0.0), st.floats(0.0, 2e3))
    c = snap.contracts.copy()
    c["bid"] = data.draw(st.lists(quote, min_size=n, max_size=n))
    # asks near the bids (so that many quotes pass the spread rule and get fitted), or anything
    factor = np.array(data.draw(st.lists(st.floats(0.5, 3.0), min_size=n, max_size=n)))
    c["ask"] = np.where(data.draw(st.booleans()), c["bid"].to_numpy() * factor,
                        data.draw(st.lists(quote, min_size=n, max_size=n)))
    bad = snap.replace(contracts=c)
    surf = smoothed_iv(bad, CFG, min_quotes=3)
    assert not np.isinf(surf.iv).any() and not np.isinf(surf.quote_iv).any()
    for _, sub in bad.contracts.groupby("expiration"):
        idx = sub.index.to_numpy()
        q = surf.quote_iv[idx]
        if surf.fitted[idx].all():
            assert np.nanmin(q) - 1e-12 <= surf.iv[idx].min() and surf.iv[idx].max() <= np.nanmax(q) + 1e-12
        else:
            np.testing.assert_array_equal(surf.iv[idx], bad.contracts["iv"].to_numpy()[idx])
