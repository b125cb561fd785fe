"""Attribution of the change of net GEX between two snapshots (research_lib.core.gex_change and its I/O
wrapper research_lib.pipeline.gex_change, the CLI command gex-change, the plot).

Synthetic pairs whose answer is known by construction, a slow per-contract reference (plain loops, scalar
Black-Scholes, every one of the 120 orderings for Shapley) that the vectorised path must agree with, and
every consecutive pair of the two real archives when ../shared is present.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import EOD_ARCHIVE, INTRADAY_ARCHIVE, shared_file
from hypothesis import given, settings, strategies as st
from synthetic import snapshot

from research_lib import calendar as cal
from research_lib.cli import EXIT_BAD_INPUT, EXIT_NO_RESULT, EXIT_OK, EXIT_USAGE, main
from research_lib.core import gex
from research_lib.core.chain import ChainSnapshot
from research_lib.core.gex_change import (
    CAUSES,
    FACTORS,
    GexChange,
    attribute_change,
    expiry_bucket_labels,
    moneyness_bucket_labels,
)
from research_lib.data.store import ChainStore
from research_lib.errors import (
    AttributionParamsError,
    ChainError,
    ChangeInputError,
    DuplicateContractError,
    GexConfigError,
    SnapshotOrderError,
    UnderlyingMismatchError,
)
from research_lib.pipeline import gex_change as pgc

MON, TUE = "2024-03-04", "2024-03-05"
EXPIRIES = ("2024-03-04", "2024-03-08", "2024-03-15", "2024-06-21")
STRIKES = (90.0, 95.0, 98.0, 100.0, 102.0, 105.0, 110.0)


def rows(expiries=EXPIRIES, strikes=STRIKES, *, oi=lambda e, k, r: 1000.0 + 10 * k if r == "C" else 1800.0 - 5 * k, iv=lambda e, k, r: 0.2):
    return [(e, k, r, oi(e, k, r), iv(e, k, r)) for e in expiries for k in strikes for r in "CP"]


def cfg(rate=0.05, q=0.01, **kw):
    return gex.GexConfig.model(rate=rate, div_yield=q, **kw)


def nonzero(ch: GexChange) -> set[str]:
    return {c for c, v in ch.by_cause.items() if v != 0.0}


def exact(ch: GexChange) -> float:
    """|Σ causes − change| relative to the gross GEX moved (floating-point rounding only)."""
    gross = ch.contracts["gex_before"].abs().sum() + ch.contracts["gex_after"].abs().sum()
    return abs(ch.residual) / max(gross, 1.0)


def net_gex(snap, config) -> float:
    return float(gex.exposures(snap, config)[0]["gex"].sum())


def assert_consistent(ch: GexChange, before, after, cb, ca, nets=None):
    """The invariants every attribution must hold (``nets``: the two net GEX figures, when known)."""
    nets = (net_gex(before, cb), net_gex(after, ca)) if nets is None else nets
    assert (ch.net_before, ch.net_after) == nets
    assert ch.change == ch.net_after - ch.net_before
    assert exact(ch) < 1e-12
    assert list(ch.by_cause.index) == list(CAUSES)
    for table, labels in ((ch.by_expiry, ch.expiry_labels), (ch.by_moneyness, ch.moneyness_labels)):
        assert list(table.index) == list(labels) and list(table.columns) == [*CAUSES, "total"]
        np.testing.assert_allclose(table[list(CAUSES)].sum().to_numpy(), ch.by_cause.to_numpy(), rtol=1e-12,
                                   atol=1e-6)
        assert table["total"].sum() == pytest.approx(ch.change, rel=1e-12, abs=1e-6)
    c = ch.contracts
    np.testing.assert_allclose(c["total"], c["gex_after"] - c["gex_before"], rtol=1e-11, atol=1e-6)
    assert c["gex_before"].sum() == pytest.approx(ch.net_before, rel=1e-12, abs=1e-6)
    assert c["gex_after"].sum() == pytest.approx(ch.net_after, rel=1e-12, abs=1e-6)
    assert not c[[*CAUSES, "total", "gex_before", "gex_after"]].isna().any().any()


# --------------------------------------------------------------------------------------------------
# the slow reference: plain loops, scalar Black-Scholes (py_vollib style)


def ref_gamma(S, K, T, sigma, r, q):
    if not (T > 0) or not (sigma > 0) or math.isnan(sigma):
        return 0.0
    sst = sigma * math.sqrt(T)
    d1 = (math.log(S / K) + (r - q + 0.5 * sigma * sigma) * T) / sst
    return math.exp(-q * T) * math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi) / (S * sst)


def ref_years(expiration, settlement, snap, config):
    settle = cal.settlement_times([expiration], [settlement])[0]
    return (settle - gex.valuation_moment(snap, config)).total_seconds() / (365.0 * 86400.0)


def ref_passes(expiration, snap, f: gex.ExpiryFilter):
    dte = (pd.Timestamp(expiration) - pd.Timestamp(snap.snapshot_date)).days
    return (f.max_dte is None or dte <= f.max_dte) and not (f.exclude_0dte and dte == 0)


def reference(before, after, cb, ca, method):
    """{key: {cause: $}} computed one contract at a time."""
    def table(snap):
        return {(r.root, pd.Timestamp(r.expiration), float(r.strike), r.right): r
                for r in snap.contracts.itertuples(index=False)}

    tb, ta = table(before), table(after)
    listed = {k[1] for k in tb}
    out = {}
    for key in tb.keys() | ta.keys():
        rb, ra = tb.get(key), ta.get(key)
        exp, K = key[1], key[2]
        sign = cb.dealer_sign[0] if key[3] == "C" else cb.dealer_sign[1]
        T0 = ref_years(exp, (rb or ra).settlement, before, cb)
        T1 = ref_years(exp, (ra or rb).settlement, after, ca)
        live0 = T0 > 0 and ref_passes(exp, before, cb.expiries)
        live1 = T1 > 0 and ref_passes(exp, after, ca.expiries)
        inputs = {"spot": (before.spot, after.spot), "time": (T0, T1),
                  "rates": ((cb.rate, cb.div_yield), (ca.rate, ca.div_yield)),
                  "iv": (rb.iv if rb else ra.iv, ra.iv if ra else rb.iv),  # absent: the other side's IV
                  "open_interest": (rb.open_interest if rb else 0.0, ra.open_interest if ra else 0.0)}

        def value(switched, inputs=inputs, sign=sign, K=K):
            x = {f: inputs[f][1 if f in switched else 0] for f in FACTORS}
            S, (r, q) = x["spot"], x["rates"]
            return sign * x["open_interest"] * 100 * ref_gamma(S, K, x["time"], x["iv"], r, q) * S * S * 0.01

        causes = dict.fromkeys(CAUSES, 0.0)
        g0 = value(set()) if live0 else 0.0
        g1 = value(set(FACTORS)) if live1 else 0.0
        if live0 and live1 and exp in listed:
            orders = [FACTORS] if method == "sequential" else list(itertools.permutations(FACTORS))
            for order in orders:
                switched: set = set()
                for f in order:
                    v0 = value(switched)
                    switched.add(f)
                    causes[f] += (value(switched) - v0) / len(orders)
        elif live0 and T1 <= 0:
            causes["rolled_off"] = -g0
        elif live1 and exp not in listed:
            causes["new_listings"] = g1
        elif live0 and not live1:
            causes["window"] = -g0
        elif live1 and not live0:
            causes["window"] = g1
        out[key] = causes
    return out


def assert_matches_reference(ch, before, after, cb, ca):
    ref = reference(before, after, cb, ca, ch.method)
    got = {(r.root, pd.Timestamp(r.expiration), float(r.strike), r.right): r for r in ch.contracts.itertuples()}
    for key, causes in ref.items():
        if key not in got:
            assert all(v == 0.0 for v in causes.values()), key
            continue
        for c in CAUSES:
            assert getattr(got[key], c) == pytest.approx(causes[c], rel=1e-9, abs=1e-6), (key, c)


# --------------------------------------------------------------------------------------------------
# synthetic pairs


def full_pair():
    """Everything moves: spot, time (a day), rates, IV, OI; an expiry rolls off, one is new, a contract
    appears, one vanishes, one loses its IV."""
    b_rows = [r for r in rows() if not (r[0] == "2024-03-15" and r[1] == 110.0 and r[2] == "C")]
    a_rows = [(e, k, r, oi * (1.1 if r == "C" else 0.95), iv + 0.01 * (k - 100) / 10)
              for e, k, r, oi, iv in rows(EXPIRIES[1:] + ("2024-04-19",))
              if not (e == "2024-03-08" and k == 90.0 and r == "P")]
    a_rows = [(e, k, r, oi, math.nan if (e, k, r) == ("2024-03-15", 100.0, "C") else iv)
              for e, k, r, oi, iv in a_rows]
    before = snapshot(b_rows, spot=100.0, quote_time=f"{MON} 12:00")
    after = snapshot(a_rows, spot=101.5, quote_time=f"{TUE} 12:00")
    return before, after, cfg(0.05, 0.01), cfg(0.052, 0.012)


@pytest.mark.parametrize("method", ["sequential", "shapley"])
def test_everything_moving_sums_exactly_and_matches_the_slow_reference(method):
    before, after, cb, ca = full_pair()
    ch = attribute_change(before, after, cb, ca, method=method)
    assert_consistent(ch, before, after, cb, ca)
    assert nonzero(ch) == {"spot", "time", "rates", "iv", "open_interest", "rolled_off", "new_listings"}
    assert ch.by_cause["window"] == 0.0
    assert_matches_reference(ch, before, after, cb, ca)
    # the net figures are gex.analyze's
    assert ch.net_before == gex.analyze(before, cb).levels.net_gex
    assert ch.net_after == gex.analyze(after, ca).levels.net_gex
    statuses = ch.contracts.set_index(["expiration", "strike", "right"])["status"]
    assert statuses[(pd.Timestamp("2024-03-15"), 110.0, "C")] == "appeared"
    assert statuses[(pd.Timestamp("2024-03-08"), 90.0, "P")] == "vanished"
    assert any("appeared" in n for n in ch.notes) and any("no IV" in n for n in ch.notes)


def test_shapley_and_sequential_share_each_contracts_total_but_not_its_split():
    before, after, cb, ca = full_pair()
    seq = attribute_change(before, after, cb, ca, method="sequential")
    sha = attribute_change(before, after, cb, ca, method="shapley")
    np.testing.assert_allclose(seq.contracts["total"], sha.contracts["total"], rtol=1e-11, atol=1e-6)
    assert seq.by_cause[["rolled_off", "new_listings", "window"]].tolist() == \
        sha.by_cause[["rolled_off", "new_listings", "window"]].tolist()
    assert seq.by_cause["spot"] != pytest.approx(sha.by_cause["spot"], rel=1e-6)  # the order matters


def after_hours_pair(**after_changes):
    """Two quotes after the same close: same valuation moment (16:00), so T is identical."""
    before = snapshot(rows(), spot=100.0, quote_time=f"{MON} 17:00")
    spot = after_changes.pop("spot", 100.0)
    after = snapshot(after_changes.pop("rows", rows()), spot=spot, quote_time=f"{MON} 18:00")
    return before, after


@pytest.mark.parametrize("method", ["sequential", "shapley"])
def test_only_spot_differs_only_spot_moves(method):
    before, after = after_hours_pair(spot=101.0)
    ch = attribute_change(before, after, cfg(), method=method)
    assert nonzero(ch) == {"spot"}
    assert ch.by_cause["spot"] == pytest.approx(ch.change, rel=1e-12)
    assert_consistent(ch, before, after, cfg(), cfg())


@pytest.mark.parametrize("method", ["sequential", "shapley"])
def test_only_open_interest_differs_only_open_interest_moves(method):
    moved = [(e, k, r, oi * (2.0 if k == 100.0 else 1.0), iv) for e, k, r, oi, iv in rows()
             if not (k == 95.0 and r == "P")]  # a row gone: open interest to 0
    before, after = after_hours_pair(rows=moved)
    ch = attribute_change(before, after, cfg(), method=method)
    assert nonzero(ch) == {"open_interest"}
    assert_consistent(ch, before, after, cfg(), cfg())
    # by hand: the 100 strikes doubled, the 95 puts went to zero
    c = ch.contracts
    doubled = c[(c["strike"] == 100.0)]["gex_before"].sum()
    gone = c[(c["strike"] == 95.0) & (c["right"] == "P")]["gex_before"].sum()
    assert ch.change == pytest.approx(doubled - gone, rel=1e-12)


def test_only_iv_and_only_rates():
    bumped = [(e, k, r, oi, iv * 1.2) for e, k, r, oi, iv in rows()]
    before, after = after_hours_pair(rows=bumped)
    assert nonzero(attribute_change(before, after, cfg())) == {"iv"}
    before, after = after_hours_pair()
    ch = attribute_change(before, after, cfg(0.05, 0.01), cfg(0.06, 0.015), method="shapley")
    assert nonzero(ch) == {"rates"}


def test_an_expiry_rolls_off():
    before = snapshot(rows(), spot=100.0, quote_time=f"{MON} 12:00")
    after = snapshot(rows(), spot=100.0, quote_time=f"{TUE} 12:00")
    ch = attribute_change(before, after, cfg())
    exp_b, _ = gex.exposures(before, cfg())
    expiring = exp_b[exp_b["expiration"] == pd.Timestamp("2024-03-04")]["gex"].sum()
    assert expiring != 0.0
    assert ch.by_cause["rolled_off"] == pytest.approx(-expiring, rel=1e-12)
    assert ch.by_expiry.loc["0–1", "rolled_off"] == pytest.approx(ch.by_cause["rolled_off"], rel=1e-12)
    assert ch.by_cause["new_listings"] == 0.0 and ch.by_cause["spot"] == 0.0
    assert nonzero(ch) == {"rolled_off", "time"}
    assert any("rolled off" in n for n in ch.notes)


def test_a_new_expiry_is_listed():
    before, _ = after_hours_pair()
    extra = rows() + rows(("2024-04-19",))
    after = snapshot(extra, spot=100.0, quote_time=f"{MON} 18:00")
    ch = attribute_change(before, after, cfg(), method="shapley")
    exp_a, _ = gex.exposures(after, cfg())
    assert ch.by_cause["new_listings"] == pytest.approx(
        exp_a[exp_a["expiration"] == pd.Timestamp("2024-04-19")]["gex"].sum(), rel=1e-12)
    assert nonzero(ch) == {"new_listings"}
    assert ch.by_expiry["new_listings"].ne(0).sum() == 1  # all in one bucket (31–90 days)
    assert ch.by_expiry.loc["31–90", "new_listings"] == pytest.approx(ch.by_cause["new_listings"], rel=1e-12)


def test_contracts_entering_and_leaving_the_expiry_window():
    # max_dte 7: the 03-12 expiry is 8 days out on Monday, 7 on Tuesday: it enters
    before = snapshot(rows(("2024-03-08", "2024-03-12")), spot=100.0, quote_time=f"{MON} 12:00")
    after = snapshot(rows(("2024-03-08", "2024-03-12")), spot=100.0, quote_time=f"{TUE} 12:00")
    c7 = cfg(expiries=gex.ExpiryFilter(max_dte=7))
    ch = attribute_change(before, after, c7)
    exp_a, _ = gex.exposures(after, c7)
    entered = exp_a[exp_a["expiration"] == pd.Timestamp("2024-03-12")]["gex"].sum()
    assert ch.by_cause["window"] == pytest.approx(entered, rel=1e-12) and entered != 0
    assert_consistent(ch, before, after, c7, c7)
    assert_matches_reference(ch, before, after, c7, c7)
    # exclude_0dte: Tuesday's expiry counts on Monday, is today's on Tuesday: it leaves
    before = snapshot(rows(("2024-03-05", "2024-03-08")), spot=100.0, quote_time=f"{MON} 12:00")
    after = snapshot(rows(("2024-03-05", "2024-03-08")), spot=100.0, quote_time=f"{TUE} 10:00")
    c0 = cfg(expiries=gex.ExpiryFilter(exclude_0dte=True))
    ch = attribute_change(before, after, c0, method="shapley")
    exp_b, _ = gex.exposures(before, c0)
    left = exp_b[exp_b["expiration"] == pd.Timestamp("2024-03-05")]["gex"].sum()
    assert ch.by_cause["window"] == pytest.approx(-left, rel=1e-12) and left != 0
    assert_consistent(ch, before, after, c0, c0)
    assert_matches_reference(ch, before, after, c0, c0)


def test_buckets_follow_their_edges():
    assert expiry_bucket_labels() == ("0–1", "2–7", "8–30", "31–90", "> 90")
    assert moneyness_bucket_labels() == ("< -10%", "-10% to -5%", "-5% to -2%", "-2% to +2%", "+2% to +5%",
                                         "+5% to +10%", ">= +10%")
    before, after, cb, ca = full_pair()
    ch = attribute_change(before, after, cb, ca, expiry_edges=(3, 45), moneyness_edges=(-0.03, 0.03))
    assert ch.expiry_labels == ("0–3", "4–45", "> 45") and ch.moneyness_labels == ("< -3%", "-3% to +3%", ">= +3%")
    c = ch.contracts
    days = (c["expiration"] - pd.Timestamp(ch.date_after)).dt.days
    assert (c.loc[days <= 3, "expiry_bucket"] == "0–3").all() and (c.loc[days > 45, "expiry_bucket"] == "> 45").all()
    m = c["strike"] / ch.spot_after - 1
    assert (c.loc[m >= 0.03, "moneyness_bucket"] == ">= +3%").all()
    assert (c.loc[m < -0.03, "moneyness_bucket"] == "< -3%").all()
    assert_consistent(ch, before, after, cb, ca)


@settings(max_examples=25)
@given(spot=st.floats(0.9, 1.1), oi_scale=st.floats(0.0, 3.0), iv_shift=st.floats(-0.1, 0.2),
       rate=st.floats(-0.01, 0.08), drop=st.integers(0, 40), hours=st.integers(1, 60))
def test_any_pair_sums_exactly_both_ways(spot, oi_scale, iv_shift, rate, drop, hours):
    before = snapshot(rows(), spot=100.0, quote_time=f"{MON} 10:00")
    later = pd.Timestamp(f"{MON} 10:00") + pd.Timedelta(hours=hours)
    a_rows = [(e, k, r, oi * oi_scale, iv + iv_shift) for i, (e, k, r, oi, iv) in enumerate(rows()) if i != drop]
    after = snapshot(a_rows, spot=100.0 * spot, quote_time=str(later))
    cb, ca = cfg(0.05, 0.01), cfg(rate, 0.01)
    totals = []
    for method in ("sequential", "shapley"):
        ch = attribute_change(before, after, cb, ca, method=method)
        assert_consistent(ch, before, after, cb, ca)
        totals.append(ch.contracts["total"].to_numpy())
    np.testing.assert_allclose(totals[0], totals[1], rtol=1e-10, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# bad input: named errors


def test_bad_inputs_raise_named_errors():
    before, after, cb, ca = full_pair()
    spy = snapshot(rows(), spot=100.0, quote_time=f"{TUE} 12:00", underlying="SPY")
    with pytest.raises(UnderlyingMismatchError, match="SPX.*SPY"):
        attribute_change(before, spy)
    with pytest.raises(SnapshotOrderError, match="later"):
        attribute_change(after, before)
    with pytest.raises(SnapshotOrderError):
        attribute_change(before, before)
    assert issubclass(UnderlyingMismatchError, ChangeInputError) and issubclass(SnapshotOrderError, ChangeInputError)
    with pytest.raises(GexConfigError, match="vendor"):
        attribute_change(before, after, gex.GexConfig.perfiliev())
    with pytest.raises(GexConfigError, match="expiries"):
        attribute_change(before, after, cfg(), cfg(expiries=gex.ExpiryFilter(max_dte=30)))
    with pytest.raises(GexConfigError, match="dealer_sign"):
        attribute_change(before, after, cfg(), cfg(dealer_sign=(-1.0, 1.0)))
    with pytest.raises(AttributionParamsError, match="method"):
        attribute_change(before, after, method="banzhaf")
    for edges in ((), (7, 1), (1, 1), (1.5, 7), (-1, 7), (1, float("nan")), "17", (True, 7)):
        with pytest.raises(AttributionParamsError, match="expiry_edges"):
            attribute_change(before, after, expiry_edges=edges)
    for edges in ((), (0.05, -0.05), (-1.0, 0.1), (0.0, float("inf"))):
        with pytest.raises(AttributionParamsError, match="moneyness_edges"):
            attribute_change(before, after, moneyness_edges=edges)
    with pytest.raises(AttributionParamsError, match="ChainSnapshot"):
        attribute_change(before.contracts, after)


def test_duplicated_contracts_are_refused_by_name():
    before, after, cb, ca = full_pair()
    dup = pd.concat([after.contracts, after.contracts.iloc[:3]], ignore_index=True)
    twice = dataclasses.replace(after, contracts=dup)  # around ChainSnapshot.create, which refuses it too
    with pytest.raises(DuplicateContractError, match="after snapshot") as info:
        attribute_change(before, twice)
    assert isinstance(info.value, ChainError) and info.value.n_bad == 6
    with pytest.raises(ChainError, match="duplicated"):
        ChainSnapshot.create(underlying="SPX", spot=100.0, quote_time=after.quote_time, source="x", contracts=dup)


def test_to_dict_is_strict_json_and_describe_is_readable():
    before, after, cb, ca = full_pair()
    ch = attribute_change(before, after, cb, ca, method="shapley")
    text = json.dumps(ch.to_dict(), allow_nan=False)
    record = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert record["by_cause"] == {c: float(v) for c, v in ch.by_cause.items()}
    assert record["by_expiry"]["0–1"]["rolled_off"] == pytest.approx(ch.by_cause["rolled_off"], rel=1e-12)
    assert record["date_after"] == TUE and record["method"] == "shapley" and len(record["top_contracts"]) == 10
    out = ch.describe()
    for word in ("cause", "rolled_off", "by expiry", "by moneyness", "0–1", "-2% to +2%"):
        assert word in out, word


# --------------------------------------------------------------------------------------------------
# the I/O wrapper, the CLI, the plot (synthetic)


def test_change_history_and_previous_day_of_a_synthetic_archive(synthetic):
    path = synthetic.files["eod_archive"]
    hist = pgc.change_history(path)
    days = sorted(synthetic.eod_snaps)
    assert list(hist["date"]) == days[1:] and list(hist["date_before"]) == days[:-1]
    bucket_cols = [f"expiry {b}" for b in expiry_bucket_labels()]
    assert list(hist.columns) == [*pgc.HISTORY_COLUMNS, *CAUSES, *bucket_cols]
    np.testing.assert_allclose(hist[list(CAUSES)].sum(axis=1), hist["change"], rtol=1e-12)
    np.testing.assert_allclose(hist[bucket_cols].sum(axis=1), hist["change"], rtol=1e-12)
    prev, reason = pgc.previous_in_file(path, days[-1])
    assert prev.snapshot_date == days[-2] and str(days[-2]) in reason
    assert pgc.previous_in_file(path, days[0]) == (None, f"no clean day before {days[0]} in {path.name}")
    res = pgc.change_since_previous(pgc.read_chain(path, date=days[-1]), "file", path=path)
    assert res.change.change == pytest.approx(hist["change"].iloc[-1], rel=1e-12)
    none = pgc.change_since_previous(pgc.read_chain(path, date=days[0]), "file", path=path)
    assert none.change is None and "no clean day" in none.reason and none.to_dict()["change"] is None
    assert pgc.change_history([]).empty


def test_previous_snapshot_in_the_store(tmp_path, synthetic):
    store = ChainStore(tmp_path / "store")
    snaps = [synthetic.eod_snaps[d] for d in sorted(synthetic.eod_snaps)[:3]]
    for s in snaps:
        store.put(s)
    prev, reason = pgc.previous_snapshot(snaps[2], "store", store=store)
    assert prev.snapshot_date == snaps[1].snapshot_date and "stored" in reason
    assert prev.contracts.equals(store.get("SPX", date=snaps[1].snapshot_date).contracts)
    prev, reason = pgc.previous_in_store(snaps[0], store)
    assert prev is None and "before" in reason
    market = snaps[2].replace(modelled=False)
    assert pgc.previous_in_store(market, store)[0] is None  # only modelled chains are stored: none is market
    res = pgc.change_since_previous(snaps[2], "cboe", store=store)
    assert res.change is not None and res.change.date_before == snaps[1].snapshot_date


def test_variance_shares_history_record_and_latest(synthetic, tmp_path):
    path = synthetic.files["eod_archive"]
    hist = pgc.change_history(pgc.daily_snapshots(path), method="shapley")
    shares = pgc.variance_shares(hist)
    for group in ("cause", "expiry"):
        assert shares.loc[group, "share"].sum() == pytest.approx(1.0, rel=1e-9)
    spot = hist["spot"]
    assert shares.loc[("cause", "spot"), "sd"] == pytest.approx(spot.std(), rel=1e-12)
    assert shares.loc[("cause", "spot"), "share"] == pytest.approx(
        np.cov(spot, hist["change"])[0, 1] / hist["change"].var(), rel=1e-9)
    record = strict(json.dumps(pgc.history_to_dict(hist)))
    assert record["pairs"] == len(hist) and record["columns"]["change"] == pytest.approx(list(hist["change"]))
    assert math.isnan(pgc.variance_shares(hist.iloc[:1])["share"].iloc[0])
    latest = pgc.change_at_latest(path, method="shapley")
    assert latest.change.change == pytest.approx(hist["change"].iloc[-1], rel=1e-12)
    # the store: one market snapshot per date (modelled ones left out)
    store = ChainStore(tmp_path / "store")
    snaps = [synthetic.eod_snaps[d].replace(modelled=False) for d in sorted(synthetic.eod_snaps)[:3]]
    for s in snaps:
        store.put(s)
    store.put(synthetic.eod_snaps[sorted(synthetic.eod_snaps)[3]])  # modelled: not part of the history
    got = list(pgc.daily_snapshots("store", "SPX", store=store))
    assert [g.snapshot_date for g in got] == [s.snapshot_date for s in snaps]
    assert pgc.change_at_latest("store", store=store).change.date_after == snaps[-1].snapshot_date
    assert pgc.change_at_latest("store", "SPY", store=store).change is None


@pytest.mark.notebook
def test_gex_change_notebook_on_a_synthetic_archive(synthetic, tmp_path):
    papermill = pytest.importorskip("papermill")
    from conftest import ROOT

    path = synthetic.files["eod_archive"]
    out = tmp_path / "gex_change.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "gex_change.ipynb"), str(out),
                               parameters={"source": str(path), "method": "shapley"}, cwd=str(ROOT / "notebooks"),
                               kernel_name="python3", progress_bar=False, execution_timeout=600)
    nb = json.loads(out.read_text())
    recorded = next(o["data"]["application/json"] for c in nb["cells"] for o in c.get("outputs", [])
                    if "application/json" in o.get("data", {}))
    hist = pgc.change_history(path, method="shapley")
    assert recorded["history"] == strict(json.dumps(pgc.history_to_dict(hist)))
    assert recorded["latest"]["change"]["change"] == pytest.approx(hist["change"].iloc[-1], rel=1e-12)
    images = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    assert images == 2  # the daily bars and the latest day's waterfall


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def strict(line: str) -> dict:
    def refuse(name):
        raise AssertionError(f"non-strict JSON constant {name}")
    return json.loads(line, parse_constant=refuse)


def test_cli_gex_change_text_json_all_and_before(synthetic):
    path = synthetic.files["eod_archive"]
    days = sorted(synthetic.eod_snaps)
    code, out, err = run("gex-change", str(path), "--date", str(days[2]))
    assert code == EXIT_OK, err
    for word in ("cause", "spot", "rolled_off", "by expiry", "by moneyness", f"previous clean day {days[1]}"):
        assert word in out, word
    code, out, err = run("gex-change", str(path), "--date", str(days[2]), "--previous", str(days[0]), "--json",
                         "--method", "shapley")
    assert code == EXIT_OK, err
    rec = strict(out)
    assert rec["date_before"] == str(days[0]) and rec["method"] == "shapley"
    expected = pgc.change_between(pgc.read_chain(path, date=days[0]), pgc.read_chain(path, date=days[2]),
                                  method="shapley")
    assert rec["change"] == pytest.approx(expected.change, rel=1e-12)
    assert rec["by_cause"] == pytest.approx(expected.by_cause.to_dict(), rel=1e-12, abs=1e-6)
    code, out, err = run("gex-change", str(path), "--date", "all", "--json")
    assert code == EXIT_OK, err
    lines = [strict(x) for x in out.splitlines()]
    assert [x["date_after"] for x in lines] == [str(d) for d in days[1:]]
    assert all(abs(sum(x["by_cause"].values()) - x["change"]) < 1e-9 * max(1.0, abs(x["net_before"]))
               for x in lines)
    # two single-snapshot files
    csv = synthetic.files["cboe_csv"]
    code, out, err = run("gex-change", str(csv), "--before", str(path), "--previous", str(days[2]), "--json")
    assert code == EXIT_OK, err
    assert strict(out)["date_after"] == str(synthetic.chain.snapshot_date)


def test_cli_gex_change_refusals(synthetic):
    path = synthetic.files["eod_archive"]
    first = sorted(synthetic.eod_snaps)[0]
    code, _, err = run("gex-change", str(path), "--date", str(first))
    assert code == EXIT_NO_RESULT and "no clean day before" in err
    assert run("gex-change", str(path), "--method", "banzhaf")[0] == EXIT_USAGE
    code, _, err = run("gex-change", str(path), "--date", "all", "--before", str(path))
    assert code == EXIT_USAGE and "--date all" in err
    assert run("gex-change")[0] == EXIT_USAGE
    code, _, err = run("gex-change", str(path), "--before", str(synthetic.files["cboe_csv"]))
    assert code == EXIT_BAD_INPUT and "SnapshotOrderError" in err  # the "before" file is the later one
    code, out, _ = run("gex-change", "--help")
    assert code == EXIT_OK and "--previous" in out


def test_plot_gex_change_two_panels():
    from matplotlib.figure import Figure

    from research_lib.ui import plots

    before, after, cb, ca = full_pair()
    ch = attribute_change(before, after, cb, ca)
    fig = plots.gex_change(ch)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    waterfall, by_expiry = fig.axes
    labels = [t.get_text() for t in waterfall.get_xticklabels()]
    assert labels[0] == "before" and labels[-1] == "after" and "rolled off" in labels
    heights = [p.get_height() for p in waterfall.patches]
    assert heights[0] == pytest.approx(ch.net_before / 1e9) and heights[-1] == pytest.approx(ch.net_after / 1e9)
    assert [t.get_text() for t in by_expiry.get_xticklabels()] == list(ch.expiry_labels)
    one = Figure()
    fig2 = plots.gex_change(ch, ax=one.add_subplot())
    assert fig2 is one and len(one.axes) == 2
    with pytest.raises(AttributionParamsError, match="ax"):
        plots.gex_change(ch, ax=[one.axes[0]])


def test_plot_gex_change_history(synthetic):
    from research_lib.ui import plots

    hist = pgc.change_history(synthetic.files["eod_archive"])
    fig = plots.gex_change_history(hist)
    (ax,) = fig.axes
    dots = [line for line in ax.get_lines() if line.get_label() == "change"]
    assert len(dots) == 1 and list(dots[0].get_ydata()) == pytest.approx(list(hist["change"] / 1e9))
    assert "no data" in plots.gex_change_history(hist.iloc[:0]).axes[0].texts[0].get_text()


# --------------------------------------------------------------------------------------------------
# real archives


@pytest.fixture(scope="module", params=["eod", "intraday"])
def archive_days(request):
    path = shared_file(EOD_ARCHIVE if request.param == "eod" else INTRADAY_ARCHIVE)
    from research_lib.data.market import snapshot_config
    from research_lib.data.sources import read_chains

    snaps = list(read_chains(path))
    configs = [snapshot_config(s) for s in snaps]
    return path, snaps, configs, [net_gex(s, c) for s, c in zip(snaps, configs, strict=True)]


def test_every_consecutive_pair_of_the_real_archives(archive_days):
    path, snaps, configs, nets = archive_days
    assert len(snaps) > 40
    for i in range(1, len(snaps)):
        method = "shapley" if i % 5 == 0 else "sequential"
        b, a, cb, ca = snaps[i - 1], snaps[i], configs[i - 1], configs[i]
        ch = attribute_change(b, a, cb, ca, method=method)
        assert_consistent(ch, b, a, cb, ca, nets=(nets[i - 1], nets[i]))
        if i <= 2:
            assert ch.net_before == gex.analyze(b, cb).levels.net_gex
            assert ch.net_after == gex.analyze(a, ca).levels.net_gex
        assert (ch.by_cause["window"], ch.by_cause["rates"] if cb.rate == ca.rate and
                cb.div_yield == ca.div_yield else 0.0) == (0.0, 0.0)


def test_a_hand_checked_day_against_the_raw_parquet():
    path = shared_file(EOD_ARCHIVE)
    from research_lib.data.market import snapshot_config
    from research_lib.data.sources import read_chain

    raw = pd.read_parquet(path, columns=["file_date", "price_date", "flag", "expiration", "oi", "strike", "cp"])
    day = raw[(raw["file_date"] == "2026-08-20") & (raw["price_date"] == "2026-08-20")]
    assert set(day["flag"].astype(str)) == {"OK"}
    expiring = day[day["expiration"] == "2026-08-21"]
    b, a = read_chain(path, date="2026-08-20"), read_chain(path, date="2026-08-21")
    cb, ca = snapshot_config(b), snapshot_config(a)
    ch = attribute_change(b, a, cb, ca)
    c = ch.contracts
    rolled = c[(c["rolled_off"] != 0) | ((c["expiration"] == pd.Timestamp("2026-08-21")) & (c["status"] != "appeared"))]
    # every contract of the 08-21 expiry held on 08-20 rolled off at the 08-21 close, straight from the raw rows
    assert len(rolled) == len(expiring)
    assert rolled["open_interest_before"].sum() == expiring["oi"].sum()
    assert sorted(zip(rolled["strike"], rolled["right"], strict=True)) == \
        sorted(zip(expiring["strike"].astype(float), expiring["cp"].astype(str), strict=True))
    exp_b, _ = gex.exposures(b, cb)
    assert ch.by_cause["rolled_off"] == pytest.approx(
        -exp_b.loc[exp_b["expiration"] == pd.Timestamp("2026-08-21"), "gex"].sum(), rel=1e-12)
    assert ch.by_expiry.loc["0–1"].drop(["rolled_off", "total"]).abs().sum() == 0.0
    # the spot effect by hand for the largest contract of the 08-28 expiry: same IV, OI, T, rates, new spot
    live = c[(c["expiration"] == pd.Timestamp("2026-08-28")) & (c["status"] == "matched")]
    row = live.loc[live["gex_before"].abs().idxmax()]
    T0 = ref_years(row["expiration"], row["settlement"], b, cb)
    sign = 1.0 if row["right"] == "C" else -1.0

    def value(S):
        return sign * row["open_interest_before"] * 100 * ref_gamma(S, row["strike"], T0, row["iv_before"], cb.rate,
                                                                    cb.div_yield) * S * S * 0.01

    assert value(b.spot) == pytest.approx(row["gex_before"], rel=1e-10)
    assert row["spot"] == pytest.approx(value(a.spot) - value(b.spot), rel=1e-9)
    assert dt.date(2026, 8, 20) == ch.date_before
