"""Put-call parity (research_lib.core.parity): forwards and the implied spot, on chains priced at a known spot
(tests/synthetic.py), against a slow reference loop, and on the real archives (checked from the raw parquet rows)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import EOD_ARCHIVE, INTRADAY_ARCHIVE, shared_file
from hypothesis import given, settings, strategies as st
from synthetic import priced_chain

from research_lib.core.gex import GexConfig, time_to_expiry
from research_lib.core.parity import FORWARD_COLUMNS, implied_forwards, parity_spot
from research_lib.errors import NoParityExpiryError, NothingToComputeError, QuoteFitArgumentError
from research_lib.formatting import to_json

R, Q = 0.05, 0.013
CFG = GexConfig(rate=R, div_yield=Q)


@pytest.fixture(scope="module")
def exact():
    return priced_chain(rate=R, div_yield=Q)


@pytest.fixture(scope="module")
def shifted():
    """Quotes priced 10 points above the print, as after-close quotes are."""
    return priced_chain(spot=5010.0, print_spot=5000.0, rate=R, div_yield=Q)


def reference_forwards(snapshot, config, *, n_strikes=6, min_days=1.0, max_rel_spread=0.5) -> pd.DataFrame:
    """Slow reference: loops over expiries, roots and strikes, one quote at a time."""
    c = snapshot.contracts
    T = time_to_expiry(snapshot, config)
    out = []
    for exp in sorted(c["expiration"].unique()):
        chosen = None
        for root in sorted(c.loc[c["expiration"] == exp, "root"].unique(), key=lambda r: r != "SPXW"):
            rows = c[(c["expiration"] == exp) & (c["root"] == root)]
            t = float(T[rows.index[0]])
            if t * config.days_per_year < min_days - 1e-9:
                continue
            forwards = []
            for strike in sorted(rows["strike"].unique(), key=lambda k: (abs(k - snapshot.spot), k)):
                legs = {}
                for _, leg in rows[rows["strike"] == strike].iterrows():
                    bid, ask = leg["bid"], leg["ask"]
                    if not (math.isfinite(bid) and math.isfinite(ask) and bid > 0 and ask >= bid):
                        continue
                    if (ask - bid) / ((ask + bid) / 2) > max_rel_spread:
                        continue
                    legs[leg["right"]] = (bid + ask) / 2
                if "C" in legs and "P" in legs:
                    forwards.append(strike + math.exp(config.rate * t) * (legs["C"] - legs["P"]))
                if len(forwards) == n_strikes:
                    break
            if len(forwards) >= 3:
                f = float(np.median(forwards))
                chosen = {"expiration": exp, "root": root, "T": t, "forward": f,
                          "spot": f * math.exp(-(config.rate - config.div_yield) * t), "n_strikes": len(forwards),
                          "dispersion": float(np.median([abs(x - f) for x in forwards]))}
                break
        if chosen:
            out.append(chosen)
    return pd.DataFrame(out)


def test_parity_recovers_the_pricing_spot(exact):
    ps = parity_spot(exact, CFG)
    assert abs(ps.spot - 5000.0) < 0.01
    assert abs(ps.difference) < 0.01 and ps.print_spot == 5000.0
    fw = implied_forwards(exact, CFG)
    T = fw["T"].to_numpy()
    np.testing.assert_allclose(fw["forward"], 5000.0 * np.exp((R - Q) * T), rtol=1e-9)
    assert (fw["dispersion"] < 1e-6).all() and (fw["n_strikes"] == 6).all()
    assert tuple(fw.columns) == FORWARD_COLUMNS


def test_parity_finds_quotes_taken_ten_points_above_the_print(shifted):
    ps = parity_spot(shifted, CFG)
    assert abs(ps.difference - 10.0) < 0.01
    assert len(ps.expiries) == 3 and all(abs(s - 5010.0) < 0.01 for s in ps.spots)
    assert ps.expiries == tuple(sorted(ps.expiries))
    assert "3 expiries" in ps.note


def test_fast_path_matches_the_reference_loop():
    noisy = priced_chain(rate=R, div_yield=Q, noise=0.9, seed=3, spot=5003.0, print_spot=5000.0)
    fast = implied_forwards(noisy, CFG)
    slow = reference_forwards(noisy, CFG)
    assert len(fast) == len(slow) == 6
    for col in ("T", "forward", "spot", "dispersion"):
        np.testing.assert_allclose(fast[col].to_numpy(), slow[col].to_numpy(), rtol=1e-12, atol=1e-9)
    assert (fast["n_strikes"].to_numpy() == slow["n_strikes"].to_numpy()).all()
    assert (fast["dispersion"] > 0).all()  # the noise is seen
    fast3 = implied_forwards(noisy, CFG, n_strikes=3, max_rel_spread=0.2)
    slow3 = reference_forwards(noisy, CFG, n_strikes=3, max_rel_spread=0.2)
    np.testing.assert_allclose(fast3["forward"].to_numpy(), slow3["forward"].to_numpy(), rtol=1e-12)


def test_min_and_max_days_select_the_expiries(exact):
    fw = implied_forwards(exact, CFG)
    days = fw["T"] * 365
    assert days.min() == pytest.approx(1.0)  # the next-day expiry counts (T of exactly one day)
    assert len(implied_forwards(exact, CFG, min_days=1.5)) == len(fw) - 1
    ps = parity_spot(exact, CFG, max_days=1.0, n_expiries=3)
    assert len(ps.expiries) == 1
    # expiries 1, 2, 7, 14, 30 and 60 days out (less an hour across the DST change): five within 30 days
    assert len(parity_spot(exact, CFG, n_expiries=10).expiries) == 5


def test_the_pm_root_is_preferred_over_the_am_one(exact):
    c = exact.contracts
    exp = sorted(c["expiration"].unique())[2]
    am = c[c["expiration"] == exp].copy()
    am["root"], am["settlement"] = "SPX", "AM"
    am.loc[am["right"] == "C", ["bid", "ask"]] += 20.0  # a very different forward
    both = exact.replace(contracts=pd.concat([c, am], ignore_index=True))
    row = implied_forwards(both, CFG).set_index("expiration").loc[exp]
    assert row["root"] == "SPXW" and abs(row["spot"] - 5000.0) < 0.01
    # the SPXW quotes of that expiry unusable: the AM rows serve it, with T to the 09:30 open
    c2 = both.contracts.copy()
    c2.loc[(c2["expiration"] == exp) & (c2["root"] == "SPXW"), "bid"] = 0.0
    row = implied_forwards(exact.replace(contracts=c2), CFG).set_index("expiration").loc[exp]
    assert row["root"] == "SPX" and row["settlement"] == "AM" and row["spot"] > 5015.0
    assert len(implied_forwards(exact.replace(contracts=c2), CFG)) == 6


def test_no_qualifying_expiry_is_a_named_error(exact):
    c = exact.contracts.copy()
    c["bid"] = 0.0
    with pytest.raises(NoParityExpiryError, match="no expiry within 1..30 days") as info:
        parity_spot(exact.replace(contracts=c), CFG)
    assert isinstance(info.value, NothingToComputeError)
    assert implied_forwards(exact.replace(contracts=c), CFG).empty
    far = exact.contracts[exact.contracts["expiration"] > exact.contracts["expiration"].min() + pd.Timedelta(days=40)]
    with pytest.raises(NoParityExpiryError, match="1 expiries qualify at any tenor"):
        parity_spot(exact.replace(contracts=far), CFG)
    # wide quotes everywhere: nothing usable under a tight spread limit
    with pytest.raises(NoParityExpiryError):
        parity_spot(exact, CFG, max_rel_spread=0.01)


@pytest.mark.parametrize("kwargs, argument", [
    ({"n_strikes": 2}, "n_strikes"), ({"n_strikes": 4.5}, "n_strikes"), ({"min_days": 0.0}, "min_days"),
    ({"min_days": float("nan")}, "min_days"), ({"max_rel_spread": -1.0}, "max_rel_spread"),
    ({"n_expiries": 0}, "n_expiries"), ({"max_days": 0.5}, "max_days"), ({"max_days": -3.0}, "max_days"),
])
def test_bad_arguments_name_themselves(exact, kwargs, argument):
    with pytest.raises(QuoteFitArgumentError) as info:
        parity_spot(exact, CFG, **kwargs)
    assert info.value.argument == argument


def test_parity_spot_to_dict_is_strict_json(shifted):
    import json

    d = json.loads(to_json(parity_spot(shifted, CFG)))
    assert d["expiries"][0] == "2024-03-07" and abs(d["difference"] - 10.0) < 0.01


# --------------------------------------------------------------------------------------------------
# real data


def _raw_day(path, file_date: str) -> pd.DataFrame:
    raw = pd.read_parquet(path, filters=[("file_date", "==", pd.Timestamp(file_date))])
    assert len(raw) > 10_000
    return raw


def test_2026_06_24_quotes_are_about_forty_points_above_the_print():
    path = shared_file(EOD_ARCHIVE)
    from research_lib.data.market import snapshot_config
    from research_lib.data.sources import read_chain

    raw = _raw_day(path, "2026-06-24")
    print_spot = float(raw["spot"].iloc[0])
    snap = read_chain(path, date="2026-06-24")
    cfg = snapshot_config(snap, "model")
    # by hand from the raw rows: the 2026-06-25 expiry (T = one day, close to close), the 6 strikes nearest the
    # print with a two-sided call and put, F = K + e^{rT} (C_mid - P_mid), spot = F e^{-(r-q)T}
    day = raw[raw["expiration"] == pd.Timestamp("2026-06-25")]
    calls = day[day["cp"] == "C"].set_index("strike")
    puts = day[day["cp"] == "P"].set_index("strike")
    both = calls[["bid", "ask"]].join(puts[["bid", "ask"]].add_suffix("_p"), how="inner")
    both = both[(both["bid"] > 0) & (both["bid_p"] > 0)]
    nearest = both.loc[sorted(both.index, key=lambda k: (abs(k - print_spot), k))[:6]]
    t = 1.0 / 365.0
    f = nearest.index + math.exp(cfg.rate * t) * ((nearest["bid"] + nearest["ask"]) / 2
                                                  - (nearest["bid_p"] + nearest["ask_p"]) / 2)
    hand = float(np.median(f)) * math.exp(-(cfg.rate - cfg.div_yield) * t)
    assert 30.0 < hand - print_spot < 45.0
    # the ATM pair itself: at 7360 the call mid 52.25 and the put mid 16.55 put the forward 37.5 above 7358.22
    atm = nearest.loc[7360.0]
    assert (atm["bid"], atm["ask"], atm["bid_p"], atm["ask_p"]) == (51.9, 52.6, 16.4, 16.7)
    fw = implied_forwards(snap, cfg)
    first = fw.iloc[0]
    assert first["expiration"] == pd.Timestamp("2026-06-25") and first["T"] == pytest.approx(t)
    assert first["spot"] == pytest.approx(hand, abs=0.01)
    ps = parity_spot(snap, cfg)
    assert 35.0 < ps.difference < 45.0
    assert snap.spot == print_spot


def test_2026_archive_differs_by_points_and_2019_archive_by_under_one():
    from research_lib.data.market import snapshot_config
    from research_lib.data.sources import read_chains

    eod = [parity_spot(s, snapshot_config(s, "model")).difference for s in read_chains(shared_file(EOD_ARCHIVE))]
    assert len(eod) >= 45
    assert 5.0 < float(np.std(eod, ddof=1)) < 15.0 and max(np.abs(eod)) > 35.0
    days = ["2019-04-25", "2019-05-01", "2019-06-03", "2019-07-01", "2019-07-22"]
    intraday = [parity_spot(s, snapshot_config(s, "model")).difference
                for s in read_chains(shared_file(INTRADAY_ARCHIVE), dates=days)]
    assert len(intraday) == 5 and max(np.abs(intraday)) < 4.0


@settings(max_examples=12)
@given(shift=st.floats(-60.0, 60.0), rate=st.floats(0.0, 0.08), div_yield=st.floats(0.0, 0.03),
       spot=st.floats(1000.0, 8000.0))
def test_parity_recovers_any_shift_and_rates(shift, rate, div_yield, spot):
    snap = priced_chain(spot=spot + shift, print_spot=spot, rate=rate, div_yield=div_yield, expiry_days=(1, 3, 8))
    ps = parity_spot(snap, GexConfig(rate=rate, div_yield=div_yield))
    assert ps.difference == pytest.approx(shift, abs=0.01)


@settings(max_examples=25)
@given(data=st.data())
def test_garbage_quotes_never_break_the_forwards(data):
    """Any bid/ask (missing, zero, crossed, huge): a table or the named error, never NaN forwards."""
    snap = priced_chain(expiry_days=(2, 9), width=0.5)
    n = len(snap.contracts)
    quote = st.one_of(st.just(np.nan), st.just(0.0), st.floats(0.0, 1e5))
    bid = np.array(data.draw(st.lists(quote, min_size=n, max_size=n)))
    ask = np.array(data.draw(st.lists(quote, min_size=n, max_size=n)))
    c = snap.contracts.copy()
    c["bid"], c["ask"] = bid, ask
    bad = snap.replace(contracts=c)
    fw = implied_forwards(bad, CFG)
    assert np.isfinite(fw[["T", "forward", "spot", "dispersion"]].to_numpy(dtype=float)).all()
    assert (fw["n_strikes"] >= 3).all()
    try:
        ps = parity_spot(bad, CFG)
    except NoParityExpiryError:
        assert fw.empty or (fw["T"] * 365 > 30).all()
    else:
        assert np.isfinite(ps.spot)
