"""research_lib.history on three days of an SPX EOD archive in a temporary store, with a market history beside
them: the synthetic archive and history (tests/fixtures.py) always, and the real 2026 archive with the shared
market history when ../shared/data is present."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import types

import numpy as np
import pandas as pd
import pytest
from conftest import EOD_ARCHIVE, QUOTEDATA, SHARED_DATA, shared_file
from matplotlib.figure import Figure

from research_lib.core import gex
from research_lib.core.chain import ResearchLibError
from research_lib.data import market
from research_lib.data.store import ChainStore
from research_lib.pipeline import decide, history
from research_lib.ui import plots

# days: three consecutive sessions of the archive with a VIX close too (the shared VIX file ends
# 2026-07-22); checks: sessions inside the year before the middle day, the first exactly a year before
DATASETS = {
    "real": {"days": ("2026-07-20", "2026-07-21", "2026-07-22"),
             "checks": ("2025-07-21", "2025-12-01", "2026-03-16", "2026-07-20")},
    "synthetic": {"days": ("2024-03-04", "2024-03-05", "2024-03-06"),
                  "checks": ("2023-03-06", "2023-09-01", "2023-12-01", "2024-03-04")},
}


@pytest.fixture(scope="module", params=["synthetic", *(["real"] if EOD_ARCHIVE.exists() else [])])
def data(request):
    """The data set of this run: its archive, market folder, days, and a Sunday download of a Friday close."""
    if request.param == "real":
        archive, market_dir = shared_file(EOD_ARCHIVE), shared_file(SHARED_DATA / "market")
        weekend = (shared_file(QUOTEDATA / "spx_2024-01-07.csv"), "2024-01-05", "2024-01-07")
    else:
        from fixtures import write_cboe_csv

        syn = request.getfixturevalue("synthetic")
        archive, market_dir = syn.files["eod_archive"], syn.market_dir
        friday = syn.eod_snaps[__import__("datetime").date(2024, 3, 1)]
        sunday = friday.replace(quote_time=pd.Timestamp("2024-03-03 10:52").tz_localize("America/New_York"))
        weekend = (write_cboe_csv(syn.root / "spx_sunday_download.csv", sunday), "2024-03-01", "2024-03-03")
    days = DATASETS[request.param]["days"]
    return types.SimpleNamespace(name=request.param, archive=archive, market_dir=market_dir, days=days,
                                 mid=days[1], checks=DATASETS[request.param]["checks"], weekend=weekend)


@pytest.fixture(scope="module")
def snaps(data):
    from research_lib.data.sources import read_chain

    return {d: read_chain(data.archive, date=d) for d in data.days}


@pytest.fixture(scope="module")
def market_dir(data):
    return data.market_dir


@pytest.fixture(scope="module")
def analyses(snaps, market_dir):
    """Each day priced the way decide() prices it, by hand."""
    out = {}
    for d, snap in snaps.items():
        rate, q, _ = decide.model_rates(snap, market_dir=market_dir)
        out[d] = gex.analyze(snap, gex.GexConfig.model(rate=rate, div_yield=q))
    return out


@pytest.fixture(scope="module")
def store(snaps, tmp_path_factory):
    st = ChainStore(tmp_path_factory.mktemp("history_store"))
    for snap in snaps.values():
        st.put(snap)
    return st


@pytest.fixture(scope="module")
def hist(store, market_dir):
    return history.net_gex_history("SPX", store=store, market_dir=market_dir)


@pytest.fixture(scope="module")
def ctx(analyses, store, market_dir, hist):
    return history.history_context(analyses[sorted(analyses)[1]], store=store, market_dir=market_dir)


def _small_store(tmp_path, snaps, days) -> ChainStore:
    st = ChainStore(tmp_path / "store")
    for d in days:
        st.put(snaps[d])
    return st


def _boom(*args, **kwargs):
    raise AssertionError("recomputed although cached")


# --------------------------------------------------------------------------------------------------
# net_gex_history


def test_history_equals_analyze_with_model_rates(hist, analyses, data):
    assert list(hist.index) == [pd.Timestamp(d) for d in data.days]
    assert isinstance(hist.index, pd.DatetimeIndex) and hist.index.tz is None and hist.index.name == "date"
    assert hist.index.is_monotonic_increasing and hist.index.is_unique
    assert set(history.HISTORY_COLUMNS) <= set(hist.columns)
    for d, a in analyses.items():
        row = hist.loc[pd.Timestamp(d)]
        lv = a.levels
        assert row["net_gex"] == pytest.approx(lv.net_gex, rel=1e-12)
        assert row["zero_gamma"] == pytest.approx(lv.zero_gamma, rel=1e-12)
        assert row["spot"] == lv.spot and row["source"] == lv.source
        assert (row["rate"], row["div_yield"]) == (a.config.rate, a.config.div_yield)
    assert hist.attrs["skipped"] == [] and hist.attrs["computed"] == len(data.days)


def test_perfiliev_convention_and_window(store, snaps, data):
    h = history.net_gex_history("spx", store=store, convention="perfiliev", end=data.mid, days=1)
    assert list(h.index) == [pd.Timestamp(data.days[0]), pd.Timestamp(data.mid)]  # both ends included
    want = gex.analyze(snaps[data.mid], gex.config_from("perfiliev")).levels
    assert h.loc[data.mid, "net_gex"] == pytest.approx(want.net_gex, rel=1e-12)
    assert h.loc[data.mid, "zero_gamma"] == pytest.approx(want.zero_gamma, rel=1e-12)
    assert history.cache_path(store, "perfiliev").exists()


def test_second_call_reads_the_cache_only(tmp_path, snaps, market_dir, monkeypatch, data):
    st = _small_store(tmp_path, snaps, data.days[:2])
    first = history.net_gex_history("SPX", store=st, market_dir=market_dir)
    assert (st.root / "cache" / "net_gex_model.parquet").exists()
    monkeypatch.setattr(gex, "analyze", _boom)
    monkeypatch.setattr(ChainStore, "read", _boom)
    second = history.net_gex_history("SPX", store=st, market_dir=market_dir)
    pd.testing.assert_frame_equal(first, second)
    assert (second.attrs["computed"], second.attrs["from_cache"]) == (0, 2)


def test_changed_snapshot_invalidates_its_row(tmp_path, snaps, market_dir, monkeypatch, data):
    DAYS = data.days
    st = _small_store(tmp_path, snaps, DAYS[:2])
    before = history.net_gex_history("SPX", store=st, market_dir=market_dir)
    snap = snaps[DAYS[1]]
    contracts = snap.contracts.copy()
    contracts["open_interest"] = contracts["open_interest"] * 2.0
    changed = dataclasses.replace(snap, contracts=contracts)
    assert st.put(changed).replaced
    calls = []
    real = gex.analyze
    monkeypatch.setattr(gex, "analyze", lambda s, c=None: calls.append(s.snapshot_date) or real(s, c))
    after = history.net_gex_history("SPX", store=st, market_dir=market_dir)
    assert calls == [snap.snapshot_date]                      # only the changed snapshot is repriced
    rate, q, _ = decide.model_rates(changed, market_dir=market_dir)
    want = real(changed, gex.GexConfig.model(rate=rate, div_yield=q)).levels.net_gex
    assert after.loc[DAYS[1], "net_gex"] == pytest.approx(want, rel=1e-12)
    assert after.loc[DAYS[1], "net_gex"] == pytest.approx(2 * before.loc[DAYS[1], "net_gex"], rel=1e-9)
    assert after.loc[DAYS[0], "net_gex"] == before.loc[DAYS[0], "net_gex"]


def test_a_cache_of_another_rates_method_is_recomputed(tmp_path, snaps, market_dir, monkeypatch, data):
    """The cache key holds the rates method: a cache written when history priced otherwise (r = q = 0
    before issue 9) is rebuilt, not served."""
    DAYS = data.days
    st = _small_store(tmp_path, snaps, days=DAYS[:1])
    first = history.net_gex_history("SPX", store=st, market_dir=market_dir)
    assert first.attrs["computed"] == 1
    assert history.net_gex_history("SPX", store=st, market_dir=market_dir).attrs["from_cache"] == 1
    monkeypatch.setattr(market, "RATES_METHOD", market.RATES_METHOD + " (changed)")
    again = history.net_gex_history("SPX", store=st, market_dir=market_dir)
    assert (again.attrs["computed"], again.attrs["from_cache"]) == (1, 0)
    # and the rows are priced with the snapshot's own rates, as every other path prices them
    want = market.snapshot_rates(snaps[DAYS[0]], market_dir=market_dir)
    assert (again["rate"].iloc[0], again["div_yield"].iloc[0]) == (want.rate, want.div_yield) and want.rate > 0.03


def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path, snaps, market_dir, data):
    st = _small_store(tmp_path, snaps, days=data.days[:1])
    first = history.net_gex_history("SPX", store=st, market_dir=market_dir)
    path = history.cache_path(st)
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.warns(history.HistoryCacheWarning, match="unreadable"):
        again = history.net_gex_history("SPX", store=st, market_dir=market_dir)
    pd.testing.assert_frame_equal(first, again, check_like=True)
    assert again.attrs["computed"] == 1
    assert history.net_gex_history("SPX", store=st, market_dir=market_dir).attrs["from_cache"] == 1


def test_latest_market_quote_of_a_day_modelled_left_out(tmp_path, snaps, market_dir, data):
    DAYS = data.days
    snap = snaps[DAYS[0]]
    st = _small_store(tmp_path, snaps, days=DAYS[:1])
    earlier = dataclasses.replace(snap, quote_time=snap.quote_time - pd.Timedelta(hours=4),
                                  contracts=snap.contracts.assign(open_interest=snap.contracts["open_interest"] * 3))
    modelled = dataclasses.replace(snap, quote_time=snap.quote_time + pd.Timedelta(hours=1), modelled=True,
                                   source="modelled:test", contracts=earlier.contracts)
    st.put(earlier)
    st.put(modelled)
    h = history.net_gex_history("SPX", store=st, market_dir=market_dir)
    assert len(h) == 1 and h["quote_time"].iloc[0] == snap.quote_time
    rate, q, _ = decide.model_rates(snap, market_dir=market_dir)
    want = gex.analyze(snap, gex.GexConfig.model(rate=rate, div_yield=q)).levels.net_gex
    assert h["net_gex"].iloc[0] == pytest.approx(want, rel=1e-12)
    assert any("1 modelled SPX snapshot left out" in n for n in h.attrs["notes"])


def test_unanalysable_snapshot_is_skipped_and_listed(tmp_path, snaps, market_dir, data):
    DAYS = data.days
    snap = snaps[DAYS[0]]
    st = ChainStore(tmp_path / "store")
    st.put(dataclasses.replace(snap, contracts=snap.contracts.assign(iv=np.nan)))
    h = history.net_gex_history("SPX", store=st, market_dir=market_dir)
    assert h.empty and list(h.columns) == list(history.HISTORY_COLUMNS)
    (skip,) = h.attrs["skipped"]
    assert skip["date"] == DAYS[0] and "NoExposureError" in skip["error"]
    assert any("skipped SPX snapshot" in n and "NoExposureError" in n for n in h.attrs["notes"])
    again = history.net_gex_history("SPX", store=st, market_dir=market_dir)   # the failure is cached
    assert again.attrs["from_cache"] == 1 and again.attrs["skipped"] == h.attrs["skipped"]


def test_empty_store_and_bad_arguments(tmp_path):
    h = history.net_gex_history("SPX", store=tmp_path / "none")
    assert h.empty and "no stored market snapshot of SPX" in h.attrs["notes"][0]
    assert not (tmp_path / "none").exists()
    for kwargs in ({"days": -1}, {"convention": "vanna"}, {"end": "not a date"}, {"symbol": " "},
                   {"store": 3}):
        with pytest.raises(history.HistoryArgumentError) as err:
            history.net_gex_history(**{"store": tmp_path, **kwargs})
        assert isinstance(err.value, ResearchLibError | ValueError) and err.value.argument in str(err.value)


# --------------------------------------------------------------------------------------------------
# history_context


def test_context_values_equal_the_loaders(ctx, hist, market_dir, data):
    f = ctx.frame
    assert list(f.columns) == list(history.CONTEXT_COLUMNS)
    assert ctx.date == pd.Timestamp(data.mid).date()
    assert f.index.max() == pd.Timestamp(data.mid)           # no look-ahead: the next day is in every source
    assert f.index.min() >= pd.Timestamp(data.checks[0])
    pub = market.load_published_gex(market_dir=market_dir)["gex"]
    vix = market.load_vol_index("VIX", market_dir=market_dir)["close"].dropna()
    rank = market.iv_rank(vix, window=252) * 100
    for d in data.checks:
        ts = pd.Timestamp(d)
        assert f.loc[ts, "published_gex"] == pub.loc[ts]
        assert f.loc[ts, "vix"] == vix.loc[ts]
        assert f.loc[ts, "iv_rank"] == pytest.approx(rank.loc[ts], rel=1e-12)
    assert not math.isnan(f["iv_rank"].iloc[0])                  # ranked on the full history
    assert f["iv_rank"].between(0, 100).all()
    assert f.loc[data.days[0], "net_gex"] == hist.loc[data.days[0], "net_gex"]
    assert set(ctx.sources) == set(history.CONTEXT_COLUMNS) and ctx.notes == ()


def test_report_value_wins_over_the_stored_one(analyses, store, market_dir, data):
    last = data.days[-1]
    lv = dataclasses.replace(analyses[last].levels, net_gex=-1.5e9)
    c = history.history_context(lv, days=10, store=store, market_dir=market_dir)
    assert c.frame.loc[last, "net_gex"] == -1.5e9
    assert c.frame.index.min() >= pd.Timestamp(last) - pd.Timedelta(days=10)
    assert c.frame["net_gex"].count() == 3


def test_to_dict_and_summary(ctx, data):
    d = json.loads(json.dumps(ctx.to_dict()))
    both = ctx.frame[["net_gex", "published_gex"]].dropna()
    agree = int((np.sign(both["net_gex"]) == np.sign(both["published_gex"])).sum())
    assert d["sign_agreement"] == {"n": 2, "agree": agree, "share": agree / 2}
    assert d["series"]["net_gex"]["count"] == 2 and d["series"]["net_gex"]["last_date"] == data.mid
    assert d["series"]["vix"]["last_value"] == ctx.frame["vix"].dropna().iloc[-1]
    text = ctx.summary()
    assert "SPX history context" in text and "sign agreement" in text and "SqueezeMetrics units" in text


def test_missing_market_files_and_empty_store_give_notes(analyses, tmp_path, data):
    c = history.history_context(analyses[data.mid], store=tmp_path / "store", market_dir=tmp_path / "empty")
    assert c.frame["published_gex"].isna().all() and c.frame["vix"].isna().all()
    assert list(c.frame.index) == [pd.Timestamp(data.mid)]  # the report's own value only
    text = " | ".join(c.notes)
    assert "published GEX unavailable" in text and "VIX and IV rank unavailable" in text
    assert "no stored market snapshot of SPX" in text
    assert c.to_dict()["sign_agreement"] == {"n": 0, "agree": 0, "share": None}


def test_published_gex_left_out_for_other_underlyings(analyses, market_dir, data):
    lv = dataclasses.replace(analyses[data.mid].levels, underlying="NDX")
    c = history.history_context(lv, market_dir=market_dir, net_gex_history=pd.Series(dtype=float))
    assert c.frame["published_gex"].isna().all() and c.frame["vix"].notna().any()
    assert any("published GEX left out" in n for n in c.notes)
    with pytest.raises(history.HistoryArgumentError):
        history.history_context(object())
    with pytest.raises(history.HistoryArgumentError):
        history.history_context(lv, iv_rank_window=1, net_gex_history=pd.Series(dtype=float))


# --------------------------------------------------------------------------------------------------
# the plot


def _texts(fig) -> str:
    return " ".join(t.get_text() for a in fig.axes for t in a.texts)


def test_plot_full_and_empty(ctx, analyses, tmp_path, data):
    empty = history.history_context(analyses[data.mid], market_dir=tmp_path / "empty",
                                    net_gex_history=pd.Series(dtype=float))
    empty = dataclasses.replace(empty, frame=empty.frame.iloc[:0])
    for c in (ctx, empty):
        fig = plots.history_context(c)
        assert isinstance(fig, Figure) and len(fig.axes) == 4       # 3 panels + the published-GEX twin
        assert "SPX" in fig.axes[0].get_title() and data.mid in fig.axes[0].get_title()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=40)
        assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "no data" not in _texts(plots.history_context(ctx))
    assert _texts(fig).count("no data") == 4
    given = Figure()
    assert plots.history_context(ctx, ax=given.add_subplot()) is given and len(given.axes) == 4


def test_a_weekend_download_lines_up_with_the_published_series(tmp_path, market_dir, data):
    """spx_2024-01-07.csv (a Sunday download of Friday's close; synthetic: 2024-03-03 of 03-01) is stored
    and charted as the Friday, the session SqueezeMetrics' published GEX has a value for (issue 9: it was
    the Sunday, a day without one)."""
    path, friday, sunday = data.weekend
    st = ChainStore(tmp_path / "store")
    report = st.import_file(path, progress=False)
    assert [e.snapshot_date.isoformat() for e in report.imported] == [friday]
    assert st.get("SPX", date=friday).quote_time.date().isoformat() == sunday
    h = history.net_gex_history("SPX", store=st, market_dir=market_dir)
    assert list(h.index) == [pd.Timestamp(friday)]
    ctx = history.history_context(gex.analyze(st.get("SPX", date=friday),
                                              market.snapshot_config(st.get("SPX"), market_dir=market_dir)),
                                  days=10, store=st, market_dir=market_dir)
    row = ctx.frame.loc[pd.Timestamp(friday)]
    assert np.isfinite(row["net_gex"]) and np.isfinite(row["published_gex"])
    assert ctx.sign_agreement()["n"] >= 1
    assert pd.Timestamp(sunday) not in ctx.frame.index
