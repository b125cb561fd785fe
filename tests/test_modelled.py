"""Tests of the modelled SPX chain (research_lib.modelled).

Shape and determinism tests need nothing but the package. The realism tests compare a modelled chain with a
real day of the 2026 Cboe EOD archive (same spot, quote time and that day's VIX close) and skip with a reason
when ../shared/data is absent. Their tolerances are documented next to each check; they come from
``benchmarks/calibrate_modelled.py``, which prints the same comparison for every real day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from conftest import EOD_ARCHIVE, SHARED_DATA, shared_file

from research_lib import calendar as cal
from research_lib.core import gex, pricing
from research_lib.core.chain import CONTRACT_COLUMNS, ChainSnapshot, validate_contracts
from research_lib.data import market, modelled as md

NY = "America/New_York"
# A Friday in 2024 (regular session), its close, and the same moment intraday.
DAY = "2024-03-08"
SPOT = 5123.69
VIX = 14.7


@pytest.fixture(scope="module")
def chain() -> ChainSnapshot:
    return md.modelled_chain(spot=SPOT, date=DAY, vix=VIX)


@pytest.fixture(scope="module")
def intraday() -> ChainSnapshot:
    return md.modelled_chain(spot=SPOT, quote_time=f"{DAY} 11:30", vix=VIX)


def kinds_of(snap: ChainSnapshot) -> pd.DataFrame:
    c = snap.contracts
    per = c.groupby(["expiration", "root"], sort=True).agg(settlement=("settlement", "first")).reset_index()
    per["kind"] = md.classify_expiries(per["expiration"], per["root"])
    return per


# --------------------------------------------------------------------------------------------------
# shape


def test_snapshot_is_valid_labelled_and_documented(chain):
    assert isinstance(chain, ChainSnapshot)
    assert tuple(chain.contracts.columns) == CONTRACT_COLUMNS
    # Validation is idempotent on what create() returned.
    pd.testing.assert_frame_equal(validate_contracts(chain.contracts), chain.contracts)
    assert chain.modelled is True
    assert chain.source == "modelled:SPX"
    assert chain.underlying == "SPX"
    assert chain.notes[0] == "MODELLED DATA: not market quotes"
    text = " | ".join(chain.notes)
    for needle in (f"spot {SPOT:g} (given)", f"vix {VIX:g} (given)", "seed 0", "rate 0", "div_yield 0",
                   "session close of 2024-03-08", "calibrate_modelled.py"):
        assert needle in text
    assert chain.snapshot_date == dt.date(2024, 3, 8)
    assert chain.quote_time == pd.Timestamp(f"{DAY} 16:00", tz=NY)
    assert "MODELLED" in repr(chain)


def test_expiry_count_and_kinds(chain):
    per = kinds_of(chain)
    n_dates = per["expiration"].nunique()
    assert 45 <= n_dates <= 60, n_dates  # real files: 52-56 (2026 archive), 55 (2024-01-07 csv)
    counts = per["kind"].value_counts()
    assert counts["daily"] >= 15
    assert counts["weekly"] >= 3
    assert counts["end_of_month"] >= 6
    assert counts["monthly_pm"] >= 4
    assert counts["monthly_am"] >= 15
    # Roots and settlement styles: SPX AM monthlies, SPXW PM everything else.
    am = per[per["root"] == "SPX"]
    assert (am["settlement"] == "AM").all() and (am["kind"] == "monthly_am").all()
    pm = per[per["root"] == "SPXW"]
    assert (pm["settlement"] == "PM").all() and (pm["kind"] != "monthly_am").all()
    # AM expiries are third Fridays (or the Thursday before a Friday holiday).
    for d in am["expiration"]:
        d = d.date()
        third_friday = cal.third_friday(d.year, d.month)
        assert d == third_friday or (d == third_friday - dt.timedelta(days=1) and not cal.is_session(third_friday))
    # SPXW dailies cover every session of the next ~5 weeks.
    nxt = cal.sessions(dt.date(2024, 3, 11), dt.date(2024, 4, 12))
    listed = set(pm["expiration"])
    assert all(s in listed for s in nxt[:20])
    # LEAPS: December AM expiries from one to about six years out.
    leaps = am[(am["expiration"].dt.month == 12) & (am["expiration"] > pd.Timestamp("2025-03-08"))]
    years = sorted(leaps["expiration"].dt.year)
    assert years[0] == 2025 and years[-1] >= 2028 and years[-1] <= 2030
    assert max(am["expiration"]) <= pd.Timestamp("2030-03-08")


def test_listed_expiries_table(chain):
    table = md.listed_expiries(chain.quote_time)
    assert list(table.columns) == ["expiration", "root", "settlement", "kind", "settles_at", "dte"]
    assert not table.duplicated(["expiration", "root"]).any()
    assert (table["settles_at"] > chain.quote_time).all()
    got = set(zip(table["expiration"], table["root"], strict=True))
    have = set(zip(chain.contracts["expiration"], chain.contracts["root"], strict=True))
    assert got == have


def test_strikes_on_the_listed_grid(chain):
    c = chain.contracts
    K = c["strike"].to_numpy()
    assert np.allclose(K % 5, 0)
    for (exp, root), g in c.groupby(["expiration", "root"]):
        strikes = np.sort(g["strike"].unique())
        kind = md.classify_expiries([exp], [root])[0]
        settle = cal.settlement_times([exp], ["AM" if root == "SPX" else "PM"])[0]
        T = (settle - cal.market_moment(chain.quote_time)).total_seconds() / cal.YEAR_SECONDS
        dte = (exp - pd.Timestamp(chain.snapshot_date)).days
        np.testing.assert_array_equal(strikes, md.strike_grid(SPOT, T, kind, dte=dte, month=exp.month))
        # calls and puts on the same strikes
        assert set(g.loc[g["right"] == "C", "strike"]) == set(g.loc[g["right"] == "P", "strike"])
    # The nearest daily lists every 5-point strike within 2% of spot; LEAPS only multiples of 100.
    first = c[c["expiration"] == c["expiration"].min()]
    near = np.sort(first.loc[(first["strike"] - SPOT).abs() <= 0.02 * SPOT, "strike"].unique())
    assert np.allclose(np.diff(near), 5.0)
    leaps = c[c["expiration"] >= pd.Timestamp("2026-12-01")]
    assert np.allclose(leaps["strike"] % 100, 0)
    # Spacing widens away from spot: a 1-month monthly lists 5-point strikes at the money, 100+ 40% below.
    monthly = np.sort(c.loc[(c["root"] == "SPX") & (c["expiration"] == pd.Timestamp("2024-04-19")), "strike"].unique())
    gaps = pd.Series(np.diff(monthly), index=monthly[1:])
    assert gaps[(gaps.index > 0.98 * SPOT) & (gaps.index < 1.02 * SPOT)].max() == 5
    assert gaps[gaps.index < 0.6 * SPOT].min() >= 100


def test_strike_counts_like_real_listings():
    # Per expiry at SPX 7575 (2026-07-10 of the archive, contracts with OI > 0): near dailies 310-360 contracts,
    # 3-4 weeks out 140-190; AM monthlies within 3 months 680-1040; beyond 6 months 230-400.
    n = lambda T, kind, dte: 2 * len(md.strike_grid(7575.0, T, kind, dte=dte, month=7))  # noqa: E731
    assert 250 <= n(1 / 365, "daily", 1) <= 420
    assert 120 <= n(27 / 365, "daily", 27) <= 300
    assert 700 <= n(40 / 365, "monthly_am", 40) <= 1300
    assert 200 <= n(0.8, "monthly_am", 292) <= 500


def test_zero_dte_listed_only_before_the_close(intraday, chain):
    today = pd.Timestamp(DAY)
    assert (intraday.contracts["expiration"] == today).any()
    assert not (chain.contracts["expiration"] == today).any()
    assert intraday.snapshot_date == chain.snapshot_date
    # nothing expired before the quote time
    for snap in (intraday, chain):
        settle = cal.settlement_times(snap.contracts["expiration"].to_numpy(), snap.contracts["settlement"].to_numpy())
        assert (settle > snap.quote_time).all()


def test_am_monthly_expires_at_the_open():
    # Third Friday 2024-03-15: the AM monthly is live before the open, gone after it; SPXW PM stays till 16:00.
    before = md.listed_expiries(pd.Timestamp("2024-03-15 08:00", tz=NY))
    after = md.listed_expiries(pd.Timestamp("2024-03-15 10:00", tz=NY))
    at_close = md.listed_expiries(pd.Timestamp("2024-03-15 16:00", tz=NY))
    key = pd.Timestamp("2024-03-15")
    assert ((before["expiration"] == key) & (before["root"] == "SPX")).any()
    assert not ((after["expiration"] == key) & (after["root"] == "SPX")).any()
    assert ((after["expiration"] == key) & (after["root"] == "SPXW")).any()
    assert not (at_close["expiration"] == key).any()


def test_holidays_and_early_closes():
    # Juneteenth 2026 is the third Friday of June: the monthly moves to Thursday 2026-06-18.
    table = md.listed_expiries(pd.Timestamp("2026-06-01 16:00", tz=NY))
    am = table[table["root"] == "SPX"]
    assert pd.Timestamp("2026-06-18") in set(am["expiration"])
    assert pd.Timestamp("2026-06-19") not in set(table["expiration"])
    # Good Friday 2025-04-18: April's monthly is Thursday 2025-04-17.
    table = md.listed_expiries(pd.Timestamp("2025-03-20 16:00", tz=NY))
    assert pd.Timestamp("2025-04-17") in set(table.loc[table["root"] == "SPX", "expiration"])
    # The day after Thanksgiving closes at 13:00: the 0DTE is listed at 12:00, settles at 13:00, gone at 13:30.
    noon = md.listed_expiries(pd.Timestamp("2024-11-29 12:00", tz=NY))
    row = noon[noon["expiration"] == pd.Timestamp("2024-11-29")]
    assert len(row) == 1 and row["settles_at"].iloc[0] == pd.Timestamp("2024-11-29 13:00", tz=NY)
    later = md.listed_expiries(pd.Timestamp("2024-11-29 13:30", tz=NY))
    assert not (later["expiration"] == pd.Timestamp("2024-11-29")).any()


def test_weekend_quote_describes_the_previous_close():
    snap = md.modelled_chain(spot=SPOT, quote_time="2024-03-09 10:00", vix=VIX)
    assert snap.snapshot_date == dt.date(2024, 3, 8)
    assert snap.contracts["expiration"].min() == pd.Timestamp("2024-03-11")


def test_historical_spxw_weekdays():
    # Before 2022-04-18 there were no Tuesday/Thursday SPXW expiries; 2018 had Monday/Wednesday/Friday.
    # A Monday holiday moves that week's Monday expiry to the Tuesday (Cboe's Monday Weeklys rule; the 2019
    # archive lists Tuesday 2019-05-28 after Memorial Day): here Tuesday 2019-01-22, after MLK day.
    table = md.listed_expiries(pd.Timestamp("2018-12-31 16:00", tz=NY))
    daily = table.loc[table["kind"] == "daily", "expiration"]
    tuesdays = daily[daily.dt.day_of_week == 1]
    assert set(daily.dt.day_of_week) <= {0, 1, 2}
    assert all(not cal.is_session(d - pd.Timedelta(days=1)) for d in tuesdays)
    assert pd.Timestamp("2019-01-22") in set(tuesdays)
    assert len(table["expiration"].unique()) >= 30


# --------------------------------------------------------------------------------------------------
# surface, quotes, greeks


def test_smile_and_term_structure():
    T = np.array([7, 30, 91, 365, 730]) / 365.0
    low = md.atm_vol(T, 12.0)
    high = md.atm_vol(T, 40.0)
    assert np.all(np.diff(low) > 0)  # contango at a low VIX
    assert np.all(np.diff(high) < 0)  # backwardation at a high VIX
    s = md.SURFACE
    assert md.atm_vol(30 / 365, 17.0) == pytest.approx(s.vix_c0 + s.vix_c1 * 0.17, abs=1e-9)
    # put skew at every tenor: IV falls with strike up to the money, and 5% OTM puts are dearer than calls
    k = np.linspace(-0.1, 0.0, 21)
    for t in T:
        iv = md.implied_vol_surface(k, t, 17.0)
        assert np.all(np.diff(iv) < 0)
        assert md.implied_vol_surface(-0.05, t, 17.0) > md.implied_vol_surface(0.05, t, 17.0)


def test_surface_has_no_static_arbitrage():
    s = md.SURFACE
    assert s.eta <= md.eta_max(s.rho, s.gamma)
    with pytest.raises(md.ModelledChainError, match="butterfly"):
        dataclasses.replace(s, eta=1.01 * md.eta_max(s.rho, s.gamma))
    k = np.linspace(-1.5, 0.8, 2301)
    Ts = np.array([1, 3, 7, 14, 30, 60, 91, 182, 365, 730, 1825]) / 365.0
    for vix in (10.0, 17.0, 35.0, 80.0):
        w_prev = np.zeros_like(k)
        for t in Ts:
            iv = md.implied_vol_surface(k, t, vix)
            w = iv * iv * t
            assert np.all(w >= w_prev - 1e-12)  # no calendar arbitrage: total variance grows with T
            w_prev = w
            K = np.exp(k)
            calls = pricing.price(1.0, K, t, iv, 0.0, 0.0, True)
            slope = np.diff(calls) / np.diff(K)
            assert np.all(np.diff(slope) > -1e-9)  # no butterfly arbitrage: call prices convex in K
            assert np.all(slope <= 1e-12) and np.all(slope >= -1 - 1e-12)


def test_quotes_and_vendor_greeks(chain):
    c = chain.contracts
    assert (c["bid"] >= 0).all() and (c["ask"] > c["bid"]).all()
    cents = np.rint(c[["bid", "ask"]].to_numpy() * 100).astype(int)
    assert (cents % 5 == 0).all()
    assert (c.loc[c["bid"] >= 3, "bid"].mul(100).round().astype(int) % 10 == 0).all()
    # IV, delta and gamma are rounded to 4 decimals like Cboe's; a gamma that rounds to 0 is NaN (missing).
    for col in ("iv", "delta", "gamma"):
        v = c[col].dropna().to_numpy()
        assert np.allclose(v, np.round(v, 4))
    assert c["iv"].notna().all() and c["delta"].notna().all()
    assert c["gamma"].isna().any() and c["gamma"].notna().mean() > 0.5
    # Greeks agree with the model at the rounded IV.
    T = gex.time_to_expiry(chain, gex.GexConfig())
    is_call = (c["right"] == "C").to_numpy()
    delta = pricing.delta(chain.spot, c["strike"].to_numpy(), T, c["iv"].to_numpy(), 0.0, 0.0, is_call)
    assert np.nanmax(np.abs(delta - c["delta"].to_numpy())) < 2e-3
    # Mid quotes price back to the model IV near the money.
    near = ((c["strike"] / chain.spot - 1).abs() < 0.03) & (c["bid"] > 1)
    mid = (c["bid"] + c["ask"]) / 2
    iv = pricing.implied_vol(mid[near].to_numpy(), chain.spot, c.loc[near, "strike"].to_numpy(), T[near], 0.0,
                             0.0, is_call[near]).iv
    assert np.nanmedian(np.abs(iv - c.loc[near, "iv"].to_numpy())) < 0.005
    # Volumes: whole contracts; turnover (volume / OI) highest in the nearest expiry, lowest in the far ones.
    assert (c["volume"] % 1 == 0).all() and c["volume"].sum() > 0
    by_exp = c.groupby("expiration")[["volume", "open_interest"]].sum()
    turnover = by_exp["volume"] / by_exp["open_interest"]
    assert turnover.iloc[0] == turnover.max()
    assert turnover.iloc[0] > 3 * turnover[turnover.index > pd.Timestamp("2024-06-01")].max()
    assert c.loc[c["volume"] == 0, "last"].isna().all()


def test_rate_and_dividend_move_the_forward():
    flat = md.modelled_chain(spot=SPOT, date=DAY, vix=VIX)
    carry = md.modelled_chain(spot=SPOT, date=DAY, vix=VIX, rate=0.05, div_yield=0.013)
    key = ["root", "expiration", "strike", "right"]
    pd.testing.assert_frame_equal(flat.contracts[key], carry.contracts[key])
    assert "rate 0.05, div_yield 0.013" in " ".join(carry.notes)
    # A one-year call is worth more with positive carry.
    sel = (flat.contracts["expiration"] == pd.Timestamp("2025-03-21")) & (flat.contracts["strike"] == 5200) & (
        flat.contracts["right"] == "C")
    assert carry.contracts.loc[sel, "bid"].iloc[0] > flat.contracts.loc[sel, "bid"].iloc[0]


# --------------------------------------------------------------------------------------------------
# open interest


def test_open_interest_profile(chain):
    c = chain.contracts
    oi = c["open_interest"]
    assert (oi >= 0).all() and (oi % 1 == 0).all()
    assert 12e6 <= oi.sum() <= 40e6  # real SPX: 13.5-26 M contracts (2022-2026 files)
    below, above = c["strike"] < SPOT, c["strike"] > SPOT
    is_put = c["right"] == "P"
    # puts heavier below spot, calls above (real 2026-08-21: 11.3 M puts / 4.3 M calls below spot)
    assert oi[below & is_put].sum() > 1.5 * oi[below & ~is_put].sum()
    assert oi[above & ~is_put].sum() > 1.5 * oi[above & is_put].sum()
    # Round strikes concentrate OI: within 10% of spot, mean OI of multiples of 100 > 50 > 25 > the rest.
    near = c[(c["strike"] / SPOT - 1).abs() < 0.10]
    cls = md.round_class(near["strike"])
    mean = near["open_interest"].groupby(np.where(cls >= 100, 100, cls)).mean()
    assert mean[100] > mean[50] > mean[25] > mean[10] and mean[25] > mean[5]
    # Monthlies are heavier than weeklies and dailies.
    per = c.groupby(["expiration", "root"])["open_interest"].sum().reset_index()
    per["kind"] = md.classify_expiries(per["expiration"], per["root"])
    soon = per[per["expiration"] <= pd.Timestamp("2024-04-30")]
    top_am = soon.loc[soon["kind"] == "monthly_am", "open_interest"].max()
    assert top_am > 3 * soon.loc[soon["kind"].isin(["daily", "weekly"]), "open_interest"].max()
    assert soon.loc[soon["kind"] == "weekly", "open_interest"].median() > soon.loc[
        soon["kind"] == "daily", "open_interest"].median()


def test_round_strike_weighting_keeps_block_mass():
    K = np.arange(6800.0, 7305.0, 5.0)
    smooth = np.exp(-0.5 * ((K - 7050) / 80) ** 2)
    out = md._with_round_strikes(K, smooth, "monthly_am", md.OPEN_INTEREST)
    blocks = np.floor(K / 500 + 0.5)
    for b in np.unique(blocks):
        assert out[blocks == b].sum() == pytest.approx(smooth[blocks == b].sum(), rel=1e-12)
    assert out[K == 7000][0] > 10 * out[K == 6995][0]


# --------------------------------------------------------------------------------------------------
# determinism, seeds, defaults, errors


def test_deterministic_per_seed(chain):
    again = md.modelled_chain(spot=SPOT, date=DAY, vix=VIX)
    pd.testing.assert_frame_equal(again.contracts, chain.contracts)
    assert again.notes == chain.notes
    other = md.modelled_chain(spot=SPOT, date=DAY, vix=VIX, seed=7)
    a, b = chain.contracts, other.contracts
    key = ["root", "expiration", "strike", "right"]
    pd.testing.assert_frame_equal(a[key], b[key])  # same listings
    for col in ("iv", "delta", "gamma", "bid", "ask"):
        pd.testing.assert_series_equal(a[col], b[col])  # the surface and quotes do not depend on the seed
    assert (a["open_interest"] != b["open_interest"]).mean() > 0.5  # different OI noise
    assert b["open_interest"].sum() == pytest.approx(a["open_interest"].sum(), rel=0.35)
    assert "seed 7" in " ".join(other.notes)


def test_defaults_without_any_data(monkeypatch):
    """A fresh clone with no data: no market file -> arch's bundled S&P 500 history."""
    def no_file(kind, market_dir=None):
        raise market.MarketDataNotFoundError(f"no {kind} file (test)")

    monkeypatch.setattr(market.parsing, "find_market_file", no_file)  # no market file anywhere (read by _load)
    history = md.offline_spot_history()
    assert "arch.data.sp500" in history.attrs["source"]
    assert history.index[-1] == pd.Timestamp("2018-12-31")
    snap = md.modelled_chain()
    assert snap.snapshot_date == dt.date(2018, 12, 31)
    assert snap.spot == pytest.approx(2506.85, abs=0.01)
    assert snap.quote_time == pd.Timestamp("2018-12-31 16:00", tz=NY)
    text = " ".join(snap.notes)
    assert "arch.data.sp500" in text and f"vix {md.DEFAULT_VIX:g} = DEFAULT_VIX" in text
    assert "the last date of the offline history" in text
    # A given date inside the history takes that day's close; intraday, the previous close (no look-ahead).
    assert md.modelled_chain(date="2018-12-28").spot == pytest.approx(2485.74, abs=0.01)
    assert md.modelled_chain(quote_time="2018-12-28 11:00").spot == pytest.approx(
        float(history.loc["2018-12-27"]), abs=1e-9)
    # After the history ends there is no spot to take.
    with pytest.raises(md.ModelledChainError, match="pass spot="):
        md.modelled_chain(date="2024-03-08")


def test_default_history_through_market_module():
    history = md.offline_spot_history()
    assert len(history) > 4000 and history.index.is_monotonic_increasing
    assert isinstance(history.attrs.get("source"), str) and history.attrs["source"]
    snap = md.modelled_chain(seed=1)
    assert snap.snapshot_date == history.index[-1].date()
    assert snap.spot == pytest.approx(float(history.iloc[-1]))


@pytest.mark.parametrize("kwargs, match", [
    ({"underlying": "NDX", "spot": 100.0, "date": DAY}, "only"),
    ({"spot": -5.0, "date": DAY}, "spot"),
    ({"spot": SPOT, "date": DAY, "vix": -3.0}, "vix"),
    ({"spot": SPOT, "date": DAY, "vix": float("nan")}, "vix"),
    ({"spot": SPOT, "date": "2024-03-09"}, "not an NYSE session"),
    ({"spot": SPOT, "date": "not a date"}, "not a date"),
    ({"spot": SPOT, "date": DAY, "quote_time": "2024-03-07 12:00"}, "is not on date"),
    ({"spot": SPOT, "date": DAY, "rate": 5.0}, "rate"),
    ({"spot": SPOT, "date": DAY, "seed": -1}, "seed"),
    ({"spot": SPOT, "date": DAY, "seed": 1.5}, "seed"),
])
def test_bad_inputs_raise(kwargs, match):
    with pytest.raises(md.ModelledChainError, match=match):
        md.modelled_chain(**kwargs)


def test_lowercase_and_underscore_underlying():
    assert md.modelled_chain("_spx", spot=SPOT, date=DAY, vix=VIX).underlying == "SPX"


def test_both_gex_conventions_work(chain, intraday):
    for snap in (chain, intraday):
        for config in (gex.GexConfig.model(), gex.GexConfig.perfiliev()):
            lv = gex.analyze(snap, config).levels
            for value in (lv.net_gex, lv.call_gex, lv.put_gex, lv.net_vanna, lv.net_charm):
                assert math.isfinite(value)
            assert lv.call_gex > 0 > lv.put_gex
            assert lv.zero_gamma is not None and 0.8 * SPOT < lv.zero_gamma < 1.2 * SPOT
            assert lv.modelled is True
        # The vendor gamma column is the model's gamma (calendar time, r = q = 0 here) rounded to 4 decimals:
        # vendor-gamma totals agree with the model convention's to rounding.
        model = gex.analyze(snap, gex.GexConfig.model()).levels
        vendor = gex.analyze(snap, gex.GexConfig.model(gamma_source="vendor")).levels
        assert vendor.call_gex == pytest.approx(model.call_gex, rel=0.02)
        assert vendor.put_gex == pytest.approx(model.put_gex, rel=0.02)


def test_walls_of_the_default_like_chain_are_distinct_and_on_their_side():
    """Issue 9: the modelled chain of 2026-08-21 (the default where the offline history ends there) had call
    wall = put wall = 8,000, spot 7,674: heavy call and put OI at the 1000-multiple. The walls now net calls
    against puts at each strike and are sought on their side of spot."""
    snap = md.modelled_chain(spot=7674.37, date="2026-08-21", vix=17.0)
    for config in (gex.GexConfig.model(), gex.GexConfig.perfiliev()):
        a = gex.analyze(snap, config)
        assert a.walls.call_gex_max_strike == a.walls.put_gex_max_strike == 8000.0  # the old definition
        lv = a.levels
        assert lv.put_wall < snap.spot < lv.call_wall
        assert lv.call_wall % 50 == 0 and lv.put_wall % 50 == 0


# --------------------------------------------------------------------------------------------------
# realism against real days (skip when ../shared/data is absent)

#: 2026 archive days with a VIX close in the shared file (VIX 15.0-20.3 on these).
REAL_DAYS = ("2026-06-24", "2026-07-15", "2026-07-22")


@pytest.fixture(scope="module")
def vix_closes() -> pd.Series:
    from research_lib.data.market import load_vol_index

    path = shared_file(SHARED_DATA / "market" / "cboe_VIX_History.csv")
    return load_vol_index("VIX", market_dir=path.parent)["close"]


@pytest.fixture(scope="module")
def real_and_modelled(vix_closes):
    from research_lib.data.sources import read_chains

    path = shared_file(EOD_ARCHIVE)
    out = {}
    for real in read_chains(path, dates=REAL_DAYS):
        vix = float(vix_closes.loc[pd.Timestamp(real.snapshot_date)])
        mod = md.modelled_chain(spot=real.spot, quote_time=real.quote_time, vix=vix)
        out[real.snapshot_date.isoformat()] = (real, mod, gex.analyze(real), gex.analyze(mod))
    return out


@pytest.mark.shared_data
@pytest.mark.parametrize("day", REAL_DAYS)
def test_listing_matches_a_real_day(real_and_modelled, day):
    real, mod, _, _ = real_and_modelled[day]
    assert mod.spot == real.spot and mod.snapshot_date == real.snapshot_date
    # Expiries and contracts within ±30% of the real day's (the archive keeps contracts with OI > 0 only;
    # over the 46 days the calibration finds ratios 0.93-0.98 and 0.95-1.17).
    n_real, n_mod = real.contracts["expiration"].nunique(), mod.contracts["expiration"].nunique()
    assert abs(n_mod / n_real - 1) <= 0.30
    assert abs(len(mod.contracts) / len(real.contracts) - 1) <= 0.30
    # Total open interest within ±30% (calibration: 0.70-1.14 over the 46 days, median 0.96).
    ratio = mod.contracts["open_interest"].sum() / real.contracts["open_interest"].sum()
    assert 0.7 <= ratio <= 1.3


@pytest.mark.shared_data
@pytest.mark.parametrize("day", REAL_DAYS)
def test_smile_matches_a_real_day(real_and_modelled, day):
    real, mod, _, _ = real_and_modelled[day]
    r, m = md.smile_summary(real), md.smile_summary(mod)
    # 30-day ATM IV within 1 vol point (calibration: mean -0.2, max 0.7 over the 46 days);
    # 25-delta put-call skew within 1.5 vol points (mean +0.1, max 2.1 on the low-skew days of August).
    assert abs(m.atm_iv - r.atm_iv) < 0.010
    assert abs(m.skew25 - r.skew25) < 0.015
    assert m.skew25 > 0 and m.put25_iv > m.atm_iv > m.call25_iv


@pytest.mark.shared_data
@pytest.mark.parametrize("day", REAL_DAYS)
def test_gex_levels_like_a_real_day(real_and_modelled, day):
    real, mod, ra, ma = real_and_modelled[day]
    rl, ml = ra.levels, ma.levels
    for value in (ml.net_gex, ml.call_gex, ml.put_gex):
        assert math.isfinite(value)
    # Call and put GEX within a factor 1.5 of the real day's (calibration: 0.78-1.36 and 0.59-1.25).
    assert 1 / 1.5 <= ml.call_gex / rl.call_gex <= 1.5
    assert 1 / 1.75 <= ml.put_gex / rl.put_gex <= 1.5
    # Net GEX in the range of the real days: |net| below a third of the gross.
    assert abs(ml.net_gex) < (ml.call_gex - ml.put_gex) / 3
    # Zero gamma exists, within 0.8-1.2 spot, and within 5% of the real day's.
    assert ml.zero_gamma is not None and 0.8 * mod.spot < ml.zero_gamma < 1.2 * mod.spot
    assert abs(ml.zero_gamma / rl.zero_gamma - 1) < 0.05
    # Walls at round strikes (real: 7000/7500/7600/8000 on these days).
    assert ml.call_wall % 50 == 0 and ml.put_wall % 50 == 0
    # The vendor-gamma convention works on the modelled chain too.
    pl = gex.analyze(mod, gex.GexConfig.perfiliev()).levels
    assert math.isfinite(pl.net_gex) and pl.zero_gamma is not None
    assert pl.n_unpriced < 0.5 * pl.n_contracts


@pytest.mark.shared_data
def test_classification_agrees_with_real_roots():
    from research_lib.data.sources import read_chain

    snap = read_chain(shared_file(SHARED_DATA / "chains" / "cboe_quotedata" / "spx_2024-01-07.csv"))
    per = snap.contracts.groupby(["expiration", "root"]).size().reset_index()
    per["kind"] = md.classify_expiries(per["expiration"], per["root"])
    assert (per.loc[per["root"] == "SPX", "kind"] == "monthly_am").all()
    spxw_on_monthly = per[(per["root"] == "SPXW") & per["expiration"].isin(per.loc[per["root"] == "SPX", "expiration"])]
    assert (spxw_on_monthly["kind"] == "monthly_pm").all()
    # The modelled listing of that day matches the real one's expiry count within 10%.
    mod = md.modelled_chain(spot=snap.spot, quote_time=snap.quote_time, vix=13.35)
    assert abs(mod.contracts["expiration"].nunique() / per["expiration"].nunique() - 1) < 0.10
