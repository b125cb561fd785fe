"""Market history loaders, the rate and dividend-yield lookups, and the regime helpers.

Real-data tests read ../shared/data/market (skipped with a reason when absent); the error, fallback and
look-ahead tests write tiny hand-made files to tmp_path.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, shared_file
from hypothesis import given, settings, strategies as st

from research_lib.core import indicators
from research_lib.core.chain import ResearchLibError
from research_lib.data import market as m

MARKET = SHARED_DATA / "market"
CHAIN_DATES = ["2011-01-03", "2019-06-03", "2020-06-22", "2022-02-04", "2022-06-10", "2022-07-12",
               "2023-09-14", "2024-01-05", "2026-08-21"]


def _need(name: str):
    """Skip unless the shared file exists; return the shared market dir for ``market_dir=``."""
    shared_file(MARKET / name)
    return MARKET


def _check_index(frame: pd.DataFrame):
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.name == "date"
    assert frame.index.tz is None
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert (frame.index == frame.index.normalize()).all()
    assert "source" in frame.attrs


def _write(path, text: str):
    path.write_text(text.lstrip("\n"))
    return path


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """Default resolution isolated from the machine: no env var, a repo root without data/ or shared/."""
    monkeypatch.delenv(m.ENV_VAR, raising=False)
    monkeypatch.setattr(m.files, "REPO_ROOT", tmp_path / "nowhere" / "repo")
    return tmp_path


# ------------------------------------------------------------------------------------------------------
# Loaders on the real files
# ------------------------------------------------------------------------------------------------------
def test_spx_daily_real():
    d = _need("spx_daily_1982-01-04_2026-08-21.csv")
    spx = m.load_index_daily("SPX", market_dir=d)
    _check_index(spx)
    assert list(spx.columns) == ["open", "high", "low", "close", "total_return_close"]
    assert spx.index[0] == pd.Timestamp("1982-01-04") and spx.index[-1] == pd.Timestamp("2026-08-21")
    assert len(spx) == 11249  # 11,251 rows less the two non-session copies
    assert spx.attrs["dropped_non_sessions"] == ["1985-09-27", "2024-12-25"]
    assert spx.attrs["source"].endswith("spx_daily_1982-01-04_2026-08-21.csv")
    assert set(spx.attrs["vendors"]) == {"lseg_ric_.INX(TimWilding/FinanceDataSet)", "yahoo_^GSPC(dougie-r2/rustskew)"}
    row = spx.loc["2020-03-16"]
    assert row["close"] == pytest.approx(2386.13)
    assert row["open"] == pytest.approx(2508.59)
    assert row["total_return_close"] == pytest.approx(4861.2186)
    assert spx.loc["2008-10-13", "close"] == pytest.approx(1003.35)
    # close everywhere; open from 1991-08-12; high/low from 1982-09-20; total return 1988-01-04 → 2025-05-13
    assert spx["close"].notna().all()
    assert spx["open"].first_valid_index() == pd.Timestamp("1991-08-12")
    assert spx.loc[:"1991-08-09", "open"].isna().all() and spx.loc["1991-08-12":, "open"].notna().all()
    assert spx["high"].first_valid_index() == pd.Timestamp("1982-09-20")
    tr = spx["total_return_close"]
    assert (tr.first_valid_index(), tr.last_valid_index()) == (pd.Timestamp("1988-01-04"), pd.Timestamp("2025-05-13"))
    assert tr.loc["1988-01-04":"2025-05-13"].notna().all()
    assert spx["close"].between(100, 10_000).all()
    raw = m.load_index_daily(market_dir=d, sessions_only=False)
    assert len(raw) == 11251 and pd.Timestamp("2024-12-25") in raw.index
    with pytest.raises(ValueError, match="unknown index"):
        m.load_index_daily("NDX", market_dir=d)


def test_spy_daily_real():
    d = _need("spy_daily_raw_1998-01-02_2021-03-31.csv")
    spy = m.load_spy_daily(market_dir=d)
    _check_index(spy)
    assert list(spy.columns) == ["open", "high", "low", "close", "volume"]
    assert len(spy) == 5849
    assert spy.loc["2021-03-31", "close"] == pytest.approx(396.33)
    assert spy.loc["1998-01-02", "close"] == pytest.approx(97.36)  # unadjusted
    assert (spy["volume"] > 0).all()


@pytest.mark.parametrize("name, first, rows, close_2020_03_16, columns", [
    ("VIX", "1990-01-02", 9234, 82.69, ["open", "high", "low", "close"]),
    ("VIX9D", "2011-01-04", 3909, 106.66, ["open", "high", "low", "close"]),
    ("VIX3M", "2009-09-18", 4235, 67.70, ["open", "high", "low", "close"]),
    ("VVIX", "2007-01-03", 4916, 207.59, ["close"]),
    ("SKEW", "1990-01-02", 9189, 114.66, ["close"]),
])
def test_vol_index_real(name, first, rows, close_2020_03_16, columns):
    d = _need(f"cboe_{name}_History.csv")
    f = m.load_vol_index(name.lower(), market_dir=d)
    _check_index(f)
    assert list(f.columns) == columns
    assert f.index[0] == pd.Timestamp(first) and f.index[-1] == pd.Timestamp("2026-07-22")
    assert len(f) == rows
    assert f.loc["2020-03-16", "close"] == pytest.approx(close_2020_03_16)
    assert f["close"].between(5, 250).all()


def test_vix_holiday_rows_and_vvix_cleaning():
    d = _need("cboe_VVIX_History.csv")
    _need("cboe_VIX_History.csv")
    vix = m.load_vol_index("VIX", market_dir=d)
    assert pd.Timestamp("2022-05-30") in vix.index  # Memorial Day: a real Cboe GTH value
    sessions = m.load_vol_index("VIX", market_dir=d, sessions_only=True)
    assert len(vix) - len(sessions) == 33 and pd.Timestamp("2022-05-30") not in sessions.index
    raw = m.load_vol_index("VVIX", market_dir=d, clean=False)
    assert raw.index[0] == pd.Timestamp("2006-03-06")
    assert raw.loc["2006-03-15", "close"] == pytest.approx(15.71)  # a 2006 bad print
    clean = m.load_vol_index("VVIX", market_dir=d)
    assert clean.index[0] >= m.VVIX_CLEAN_START and "2006" in clean.attrs["cleaned"]
    assert len(raw) - len(clean) == 150
    with pytest.raises(ValueError, match="unknown volatility index"):
        m.load_vol_index("VXN", market_dir=d)


def test_vix_family_real():
    d = _need("cboe_SKEW_History.csv")
    fam = m.load_vix_family(market_dir=d)
    _check_index(fam)
    assert list(fam.columns) == ["vix", "vix9d", "vix3m", "vvix", "skew"]
    assert fam.loc["2020-03-16"].round(2).to_dict() == {
        "vix": 82.69, "vix9d": 106.66, "vix3m": 67.70, "vvix": 207.59, "skew": 114.66}
    assert fam.loc["1995-06-01", "vix9d"] != fam.loc["1995-06-01", "vix9d"]  # NaN before VIX9D starts
    assert fam["skew"].loc["2000-09-20":"2000-09-29"].isna().all()  # the documented SKEW hole
    assert set(fam.attrs["sources"]) == set(fam.columns)


def test_put_call_ratios_real():
    d = _need("cboe_put_call_ratios_2019-10-07_2026-07-22.csv")
    pc = m.load_put_call_ratios(market_dir=d)
    _check_index(pc)
    assert pc.columns[:6].tolist() == ["total", "index", "etp", "equity", "vix", "spx_spxw"]
    assert len(pc.columns) == 23
    assert pc.attrs["cleaned"]["index"] == 74 and pc.attrs["dropped_non_sessions"] == ["2025-01-09"]
    broad = pc[list(m.PUT_CALL_BROAD)]
    assert not broad.isin(m.PUT_CALL_PLACEHOLDERS).any().any()
    assert broad.max().max() < 3.5
    assert pc["total"].median() == pytest.approx(0.90, abs=0.02)
    raw = m.load_put_call_ratios(market_dir=d, clean=False)
    assert raw.loc["2020-10-26", "total"] == 11.0 and len(raw) == len(pc) + 1


def test_rates_real_are_decimals():
    d = _need("irx_13week_tbill_2000-01-03_2026-08-20.csv")
    r = m.load_rates(market_dir=d)
    _check_index(r)
    assert list(r.columns) == ["fed_funds", "tbill_3m", "tbill_13w"]
    assert r.index[0] == pd.Timestamp("1954-07-01")
    for col in r.columns:
        assert r[col].max() < 0.25, col  # decimals, not percent
    assert r.loc["2023-09-14", "fed_funds"] == pytest.approx(0.0533)
    assert r.loc["2023-09-14", "tbill_13w"] == pytest.approx(0.05295)
    assert np.isnan(r.loc["2021-01-01", "tbill_3m"])  # FRED's "." holiday marker
    assert r.loc["1981-09-01", "tbill_3m"] == pytest.approx(0.1701)
    assert r["tbill_13w"].min() == pytest.approx(-0.00105)  # 2020-03-26: negative bill yields are real
    assert r["fed_funds"].loc["1990":"2026-07-08"].notna().all()  # calendar-daily, no holes, to 2026-07-08


def test_published_gex_real():
    d = _need("squeezemetrics_dix_gex_2011-05-02_2026-08-21.csv")
    g = m.load_published_gex(market_dir=d)
    _check_index(g)
    assert list(g.columns) == ["price", "dix", "gex"]
    assert len(g) == 3850
    assert g.loc["2020-03-16", "price"] == pytest.approx(2386.13)
    assert g.loc["2020-03-16", "gex"] < 0  # dealers short gamma in the crash, in SqueezeMetrics' model
    assert g["dix"].between(0.3, 0.6).all()
    if (MARKET / "spx_daily_1982-01-04_2026-08-21.csv").exists():
        spx = m.load_index_daily(market_dir=d)
        diff = (g["price"] - spx["close"].reindex(g.index)).abs()
        assert diff.max() < 1.1 and (diff > 0.5).sum() == 2  # 2018-03-29 and 2019-08-12 differ by ~1 pt


# ------------------------------------------------------------------------------------------------------
# Risk-free rate
# ------------------------------------------------------------------------------------------------------
def test_rate_conversions_by_hand():
    # 13-week bill at a 5% discount: price 1 - 0.05*91/360 = 0.987361, r = -ln(P)*365/91
    assert m.tbill_discount_to_continuous(0.05) == pytest.approx(-math.log(1 - 0.05 * 91 / 360) * 365 / 91)
    assert m.tbill_discount_to_continuous(0.05) == pytest.approx(0.0510175, abs=1e-7)
    assert m.bond_equivalent_to_continuous(0.05) == pytest.approx(math.log(1 + 0.05 * 91 / 365) * 365 / 91)
    assert m.money_market_to_continuous(0.0533) == pytest.approx(365 * math.log(1 + 0.0533 / 360))
    assert m.tbill_discount_to_continuous(0.0) == 0.0
    assert m.tbill_discount_to_continuous(-0.001) < 0
    assert np.isnan(m.tbill_discount_to_continuous(5.0))  # price <= 0
    arr = m.tbill_discount_to_continuous(np.array([0.01, 0.02]))
    assert arr.shape == (2,) and (np.diff(arr) > 0).all()
    # the bank-discount yield is below the continuous rate, which is below the bond-equivalent yield
    r = m.tbill_discount_to_continuous(0.05)
    bey = 365 * 0.05 / (360 - 0.05 * 91)
    assert 0.05 < r < bey


def test_irx_and_dgs3mo_agree_after_conversion():
    """IRX is quoted on a discount basis, DGS3MO on a bond-equivalent basis: after each is converted, the
    two 3-month rates agree to about a basis point over 2000-2021 -- the conversions are the right ones."""
    d = _need("fred_DGS3MO_1981-09-01_2021-01-04.csv")
    _need("irx_13week_tbill_2000-01-03_2026-08-20.csv")
    r = m.load_rates(market_dir=d)[["tbill_3m", "tbill_13w"]].dropna()
    assert len(r) > 5000
    diff = m.bond_equivalent_to_continuous(r["tbill_3m"]) - m.tbill_discount_to_continuous(r["tbill_13w"])
    assert abs(np.median(diff)) < 2e-4
    assert np.quantile(np.abs(diff), 0.95) < 6e-4
    raw_gap = (r["tbill_3m"] - r["tbill_13w"]).mean()
    assert raw_gap > 4e-4  # unconverted, the quotes differ by ~5 bp on average


@pytest.mark.parametrize("date, lo, hi", [
    ("2023-09-14", 0.053, 0.055),
    ("2021-06-01", 0.0, 0.001),
    ("2024-01-05", 0.052, 0.054),
    ("2019-06-03", 0.022, 0.024),
    ("2022-07-12", 0.020, 0.023),
])
def test_risk_free_rate_known_dates(date, lo, hi):
    d = _need("irx_13week_tbill_2000-01-03_2026-08-20.csv")
    r = m.risk_free_rate(date, market_dir=d)
    assert isinstance(r, float)
    assert lo <= r <= hi


def test_risk_free_rates_sources_and_edges():
    d = _need("fred_DFF_1954-07-01_2026-07-08.csv")
    _need("fred_DGS3MO_1981-09-01_2021-01-04.csv")
    _need("irx_13week_tbill_2000-01-03_2026-08-20.csv")
    out = m.risk_free_rates(["1960-01-04", "1990-01-02", "2000-01-03", "2023-09-16", "2026-08-21"], market_dir=d)
    assert list(out.columns) == ["rate", "source", "as_of", "quoted"]
    assert out["source"].tolist() == ["fed_funds", "dgs3mo", "irx", "irx", "irx"]
    assert out.loc["2023-09-16", "as_of"] == pd.Timestamp("2023-09-15")  # Saturday → Friday's quote
    assert out.loc["2026-08-21", "as_of"] == pd.Timestamp("2026-08-20")  # the IRX file ends the day before
    assert (out["as_of"] <= out.index).all()
    assert out.loc["2023-09-16", "rate"] == pytest.approx(m.tbill_discount_to_continuous(out.loc["2023-09-16", "quoted"]))
    assert m.risk_free_rate("2020-03-26", market_dir=d) < 0
    # explicit sources
    assert m.risk_free_rate("2023-09-14", source="fed_funds", market_dir=d) == pytest.approx(
        m.money_market_to_continuous(0.0533))
    with pytest.raises(m.MarketDataError, match="no observation within 14 days"):
        m.risk_free_rate("2023-09-14", source="dgs3mo", market_dir=d)  # DGS3MO ends 2021-01-04
    assert m.risk_free_rate("2023-09-14", source="dgs3mo", market_dir=d, max_staleness_days=None) == pytest.approx(
        m.bond_equivalent_to_continuous(0.0009))
    with pytest.raises(m.MarketDataError, match=r"before the rate data starts \(1954-07-01, fed_funds\)"):
        m.risk_free_rate("1950-01-03", market_dir=d)
    with pytest.raises(m.MarketDataError, match="no observation within 14 days"):
        m.risk_free_rate("2027-06-01", market_dir=d)
    with pytest.raises(ValueError, match="unknown rate source"):
        m.risk_free_rate("2023-09-14", source="libor", market_dir=d)
    # tz-aware moments are taken as their New York date
    ts = pd.Timestamp("2023-09-15 02:00", tz="UTC")  # 22:00 on the 14th in New York
    assert m.risk_free_rates([ts], market_dir=d)["as_of"].iloc[0] == pd.Timestamp("2023-09-14")


def test_risk_free_rate_never_looks_ahead(tmp_path):
    _write(tmp_path / "irx_13week_tbill_2020-01-02_2020-01-13.csv", """
date,irx_13w_tbill_yield_pct
2020-01-02,1.50
2020-01-06,3.00
2020-01-13,9.00
""")
    out = m.risk_free_rates(["2020-01-02", "2020-01-03", "2020-01-05", "2020-01-06", "2020-01-12", "2020-01-13"],
                            source="irx", market_dir=tmp_path)
    assert out["quoted"].tolist() == [0.015, 0.015, 0.015, 0.03, 0.03, 0.09]
    assert out["as_of"].dt.strftime("%m-%d").tolist() == ["01-02", "01-02", "01-02", "01-06", "01-06", "01-13"]
    assert (out["as_of"] <= out.index).all()
    with pytest.raises(m.MarketDataError, match="before the rate data starts") as exc:
        m.risk_free_rate("2020-01-01", source="irx", market_dir=tmp_path)
    assert exc.value.example == "2020-01-01"
    # appending a later observation never changes an earlier answer
    before = m.risk_free_rate("2020-01-12", source="irx", market_dir=tmp_path)
    with open(tmp_path / "irx_13week_tbill_2020-01-02_2020-01-13.csv", "a") as fh:
        fh.write("2020-01-14,0.10\n")
    assert m.risk_free_rate("2020-01-12", source="irx", market_dir=tmp_path) == before


def test_risk_free_rate_auto_with_missing_files(tmp_path):
    _write(tmp_path / "DFF.csv", """
observation_date,DFF
2020-01-02,1.55
2020-01-03,1.55
""")
    with pytest.warns(m.MarketDataWarning, match="irx_13week_tbill_"):
        out = m.risk_free_rates(["2020-01-03"], market_dir=tmp_path)
    assert out["source"].iloc[0] == "fed_funds"
    assert out["rate"].iloc[0] == pytest.approx(m.money_market_to_continuous(0.0155))
    with pytest.raises(m.MarketDataNotFoundError, match="irx_13week_tbill_"):
        m.risk_free_rate("2020-01-03", source="irx", market_dir=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(m.MarketDataNotFoundError, match="fred.stlouisfed.org/series/DFF"):
        m.risk_free_rate("2020-01-03", market_dir=empty)


# ------------------------------------------------------------------------------------------------------
# Dividend yield
# ------------------------------------------------------------------------------------------------------
def test_dividend_yield_real_sample():
    d = _need("spx_daily_1982-01-04_2026-08-21.csv")
    dates = pd.date_range("1989-02-01", "2025-05-01", freq="37D")
    q = m.dividend_yields(dates, market_dir=d)["value"]
    assert len(q) > 300 and q.notna().all()
    # The S&P 500's real dividend yield: ~3.5% around 1990, ~1.1% in 2000-01, 1.3-2.7% since 2002.
    assert q.between(0.011, 0.038).all()
    assert q.loc["2002":].between(0.013, 0.0275).all()
    assert q.loc["1989":"1991"].mean() == pytest.approx(0.035, abs=0.003)
    assert q.loc["2000":"2001"].between(0.011, 0.0135).all()
    for date in ["2011-01-03", "2019-06-03", "2023-09-14", "2024-01-05"]:
        dy = m.dividend_yield(date, market_dir=d)
        assert 0.013 <= dy.value <= 0.026, date
        assert dy.as_of == pd.Timestamp(date) and not dy.carried_forward
        assert "total-return" in dy.method
        assert float(dy) == dy.value


def test_dividend_yield_after_total_return_ends_and_before_it_starts():
    d = _need("spx_daily_1982-01-04_2026-08-21.csv")
    last = m.dividend_yield("2025-05-13", market_dir=d)
    later = m.dividend_yield("2026-08-21", market_dir=d)
    assert later.carried_forward and not last.carried_forward
    assert later.value == last.value and later.as_of == pd.Timestamp("2025-05-13")
    assert "carried forward" in later.note and "2025-05-13" in later.note
    assert 0.013 <= later.value <= 0.014
    with pytest.raises(m.MarketDataError, match=r"365-day windows \(earliest date: 1989-01-09\)") as exc:
        m.dividend_yield("1989-01-06", market_dir=d)
    assert exc.value.column == "total_return_close"
    assert m.dividend_yield("1989-01-09", market_dir=d).as_of == pd.Timestamp("1989-01-09")
    assert m.dividend_yield("1989-01-05", median_of=1, market_dir=d).value == pytest.approx(0.0366, abs=5e-4)
    dataclass = m.DividendYield(0.01, pd.Timestamp("2020-01-02"), "x", "y")
    with pytest.raises(AttributeError):
        dataclass.value = 0.02  # frozen


def test_dividend_yield_robust_to_one_day_total_return_misprint():
    """The total-return index is 1.8% too low on 1990-01-24 (one day). The plain two-point formula takes
    it in whole when the window starts or ends there; the median of five windows does not."""
    d = _need("spx_daily_1982-01-04_2026-08-21.csv")
    plain = m.dividend_yield("1991-01-24", median_of=1, market_dir=d).value
    robust = m.dividend_yield("1991-01-24", market_dir=d).value
    assert plain > 0.05
    assert robust == pytest.approx(0.036, abs=0.003)
    assert m.dividend_yield("1990-01-24", median_of=1, market_dir=d).value < 0.017
    assert m.dividend_yield("1990-01-24", market_dir=d).value == pytest.approx(0.036, abs=0.003)


def test_dividend_yield_recovers_a_known_yield_without_look_ahead(tmp_path):
    """Synthetic index: total return = price × exp(q t) with q = 2%/yr, then 4%/yr from 2021-01-01."""
    dates = pd.bdate_range("2019-01-01", "2021-12-31")
    t = (dates - dates[0]).days.to_numpy() / 365.0
    switch = (pd.Timestamp("2021-01-01") - dates[0]).days / 365.0
    acc = 0.02 * t + np.where(t > switch, 0.02 * (t - switch), 0.0)
    price = 3000 * np.exp(0.05 * np.sin(t * 7))
    frame = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "open": "", "high": "", "low": "",
                          "close": price.round(6), "spxtr_close": (price * np.exp(acc)).round(6)})
    frame.to_csv(tmp_path / "spx_daily_test.csv", index=False)
    q = m.dividend_yield("2020-06-15", market_dir=tmp_path)
    assert q.value == pytest.approx(0.02, abs=1e-5)
    # the estimate on 2020-12-31 cannot know about the change on 2021-01-01
    assert m.dividend_yield("2020-12-31", market_dir=tmp_path).value == pytest.approx(0.02, abs=1e-5)
    assert m.dividend_yield("2021-12-31", market_dir=tmp_path).value == pytest.approx(0.04, abs=2e-4)
    assert m.dividend_yield("2020-12-31", median_of=1, market_dir=tmp_path).value == pytest.approx(0.02, abs=1e-5)


# ------------------------------------------------------------------------------------------------------
# Missing and corrupt files
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, pattern, where", [
    (lambda d: m.load_index_daily(market_dir=d), "spx_daily_*.csv", "finance.yahoo.com"),
    (lambda d: m.load_spy_daily(market_dir=d), "spy_daily_raw_*.csv", "finance.yahoo.com"),
    (lambda d: m.load_vol_index("VIX", market_dir=d), "cboe_VIX_History.csv", "vix_historical_data"),
    (lambda d: m.load_vol_index("VVIX", market_dir=d), "VVIX_History.csv", "cdn.cboe.com"),
    (lambda d: m.load_vix_family(market_dir=d), "cboe_VIX_History.csv", "cboe.com"),
    (lambda d: m.load_put_call_ratios(market_dir=d), "cboe_put_call_ratios_*.csv", "market_statistics"),
    (lambda d: m.load_rates(market_dir=d), "fred_DFF_*.csv", "fred.stlouisfed.org/series/DFF"),
    (lambda d: m.load_published_gex(market_dir=d), "squeezemetrics_dix_gex_*.csv", "squeezemetrics.com"),
    (lambda d: m.dividend_yield("2020-01-02", market_dir=d), "spx_daily_*.csv", "finance.yahoo.com"),
])
def test_missing_file_says_what_where_and_how(tmp_path, call, pattern, where):
    with pytest.raises(m.MarketDataNotFoundError) as exc:
        call(tmp_path)
    msg = str(exc.value)
    assert pattern in msg and str(tmp_path) in msg and where in msg
    assert isinstance(exc.value, ResearchLibError) and isinstance(exc.value, FileNotFoundError)
    assert exc.value.searched == (tmp_path,)


def test_missing_file_lists_default_dirs(no_env):
    with pytest.raises(m.MarketDataNotFoundError) as exc:
        m.load_published_gex()
    msg = str(exc.value)
    assert "data/market (missing)" in msg and "shared/data/market (missing)" in msg and m.ENV_VAR in msg


VIX_HEAD = """
DATE,OPEN,HIGH,LOW,CLOSE
01/02/1990,17.240000,17.240000,17.240000,17.240000
01/03/1990,18.190000,18.190000,18.190000,18.190000
01/04/1990,19.220000,19.220000,19.220000,19.220000
"""


def test_corrupt_duplicate_date(tmp_path):
    _write(tmp_path / "cboe_VIX_History.csv", VIX_HEAD + "01/03/1990,18.2,18.2,18.2,18.2\n")
    with pytest.raises(m.MarketDataError) as exc:
        m.load_vol_index("VIX", market_dir=tmp_path)
    e = exc.value
    assert e.path.endswith("cboe_VIX_History.csv") and e.column == "DATE" and e.n_bad == 2
    assert "'01/03/1990' on lines 3 and 5" in str(e) and "duplicate dates" in str(e)


def test_corrupt_number(tmp_path):
    _write(tmp_path / "cboe_VIX_History.csv", VIX_HEAD + "01/05/1990,18.2,18.2,18.2,\"18,2\"\n")
    with pytest.raises(m.MarketDataError) as exc:
        m.load_vol_index("VIX", market_dir=tmp_path)
    e = exc.value
    assert e.column == "CLOSE" and e.n_bad == 1 and "'18,2' on line 5" in str(e)
    assert "cboe_VIX_History.csv" in str(e)


def test_corrupt_date_and_header(tmp_path):
    _write(tmp_path / "cboe_SKEW_History.csv", "DATE,SKEW\n01/02/1990,126.09\n13/45/1990,123.3\nn/a,1\n")
    with pytest.raises(m.MarketDataError, match=r"unparseable dates \[column 'DATE', 2 bad rows, e.g. '13/45/1990' on line 3\]"):
        m.load_vol_index("SKEW", market_dir=tmp_path)
    _write(tmp_path / "cboe_SKEW_History.csv", "WHEN,SKEW\n01/02/1990,126.09\n")
    with pytest.raises(m.MarketDataError, match="no date column"):
        m.load_vol_index("SKEW", market_dir=tmp_path)
    _write(tmp_path / "cboe_SKEW_History.csv", "DATE,LEVEL\n01/02/1990,126.09\n")
    with pytest.raises(m.MarketDataError, match="missing column 'close'"):
        m.load_vol_index("SKEW", market_dir=tmp_path)
    _write(tmp_path / "cboe_SKEW_History.csv", "DATE,SKEW\n")
    with pytest.raises(m.MarketDataError, match="no rows"):
        m.load_vol_index("SKEW", market_dir=tmp_path)
    _write(tmp_path / "cboe_SKEW_History.csv", "DATE,SKEW\n01/02/1990,inf\n")
    with pytest.raises(m.MarketDataError, match="unparseable numbers"):
        m.load_vol_index("SKEW", market_dir=tmp_path)


def test_fred_missing_marker_is_nan_but_other_text_is_an_error(tmp_path):
    _write(tmp_path / "DGS3MO.csv", "observation_date,DGS3MO\n2020-01-01,.\n2020-01-02,1.54\n2020-01-03,\n")
    _write(tmp_path / "DFF.csv", "observation_date,DFF\n2020-01-01,1.55\n")
    _write(tmp_path / "irx_13week_tbill_x.csv", "date,irx_13w_tbill_yield_pct\n2020-01-02,1.50\n")
    r = m.load_rates(market_dir=tmp_path)
    assert np.isnan(r.loc["2020-01-01", "tbill_3m"]) and r.loc["2020-01-02", "tbill_3m"] == pytest.approx(0.0154)
    _write(tmp_path / "DGS3MO.csv", "observation_date,DGS3MO\n2020-01-01,ND\n")
    with pytest.raises(m.MarketDataError, match="'ND' on line 2"):
        m.load_rates(market_dir=tmp_path)


def test_unsorted_file_is_sorted_and_user_names_match(tmp_path):
    # Cboe's own download name, rows out of order
    _write(tmp_path / "VIX_History.csv", "DATE,OPEN,HIGH,LOW,CLOSE\n01/03/1990,1,2,0.5,1.5\n01/02/1990,1,2,0.5,1.2\n")
    vix = m.load_vol_index("VIX", market_dir=tmp_path)
    assert vix.index.is_monotonic_increasing and vix["close"].tolist() == [1.2, 1.5]
    assert vix.attrs["source"].endswith("VIX_History.csv")
    # VVIX_History.csv must not be taken for VIX (and vice versa)
    (tmp_path / "VIX_History.csv").unlink()
    _write(tmp_path / "VVIX_History.csv", "DATE,VVIX\n01/03/2007,90\n")
    with pytest.raises(m.MarketDataNotFoundError):
        m.load_vol_index("VIX", market_dir=tmp_path)
    assert m.load_vol_index("VVIX", market_dir=tmp_path)["close"].tolist() == [90.0]


def test_newest_of_several_matches_and_cache_follows_edits(tmp_path):
    _write(tmp_path / "squeezemetrics_dix_gex_2011-05-02_2020-01-01.csv", "date,price,dix,gex\n2011-05-02,1,0.4,1e9\n")
    newest = _write(tmp_path / "squeezemetrics_dix_gex_2011-05-02_2026-08-21.csv",
                    "date,price,dix,gex\n2011-05-02,1,0.4,1e9\n2011-05-03,2,0.4,2e9\n")
    g = m.load_published_gex(market_dir=tmp_path)
    assert g.attrs["source"] == str(newest) and len(g) == 2
    g.loc[g.index[0], "price"] = -1  # callers get copies
    assert m.load_published_gex(market_dir=tmp_path)["price"].iloc[0] == 1
    with open(newest, "a") as fh:
        fh.write("2011-05-04,3,0.4,3e9\n")
    assert len(m.load_published_gex(market_dir=tmp_path)) == 3


def test_default_resolution_order(monkeypatch, tmp_path):
    repo = tmp_path / "repo"
    shared = tmp_path / "shared" / "data" / "market"
    own = repo / "data" / "market"
    env = tmp_path / "env"
    for d in (shared, own, env):
        d.mkdir(parents=True)
    monkeypatch.setattr(m.files, "REPO_ROOT", repo)
    monkeypatch.delenv(m.ENV_VAR, raising=False)
    _write(shared / "cboe_SKEW_History.csv", "DATE,SKEW\n01/02/1990,101\n")
    assert m.load_vol_index("SKEW")["close"].iloc[0] == 101
    _write(own / "SKEW_History.csv", "DATE,SKEW\n01/02/1990,102\n")
    assert m.load_vol_index("SKEW")["close"].iloc[0] == 102
    monkeypatch.setenv(m.ENV_VAR, str(env))
    assert m.load_vol_index("SKEW")["close"].iloc[0] == 102  # env dir has no SKEW file: next dir serves
    _write(env / "cboe_SKEW_History.csv", "DATE,SKEW\n01/02/1990,103\n")
    assert m.load_vol_index("SKEW")["close"].iloc[0] == 103
    assert m.market_data_dirs() == [env, own, shared]
    assert m.market_data_dirs(tmp_path) == [tmp_path]


# ------------------------------------------------------------------------------------------------------
# Offline fallback
# ------------------------------------------------------------------------------------------------------
def test_offline_fallback_serves_arch_data(no_env):
    pytest.importorskip("arch")
    empty = no_env / "empty"
    empty.mkdir()
    with pytest.raises(m.MarketDataNotFoundError):
        m.load_index_daily("SPX", market_dir=empty)
    spx = m.load_index_daily("SPX", market_dir=empty, offline_ok=True)
    _check_index(spx)
    assert spx.attrs["source"] == "arch.data.sp500 (real S&P 500 history to 2018-12-31, offline fallback)"
    assert list(spx.columns) == ["open", "high", "low", "close", "total_return_close"]
    assert spx.index[0] == pd.Timestamp("1999-01-04") and spx.index[-1] == pd.Timestamp("2018-12-31")
    assert spx.loc["2008-10-13", "close"] == pytest.approx(1003.35, abs=0.01)
    assert spx["total_return_close"].isna().all()
    vix = m.load_vol_index("VIX", market_dir=empty, offline_ok=True)
    _check_index(vix)
    assert vix.attrs["source"].startswith("arch.data.vix (real VIX closes 2014-01-03 to 2019-01-03")
    assert vix.loc["2018-02-05", "close"] == pytest.approx(37.32, abs=0.01)
    assert vix[["open", "high", "low"]].isna().all().all()
    # default resolution (no env var, no repo data/market) falls back the same way
    assert m.load_index_daily(offline_ok=True).attrs["source"].startswith("arch.data.sp500")
    with pytest.raises(m.MarketDataNotFoundError):
        m.load_vol_index("VIX9D", market_dir=empty, offline_ok=True)  # no fallback for VIX9D


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if (SHARED_DATA / "market" / "cboe_VIX_History.csv").exists()
                                                  else [])])
def test_file_wins_over_offline_fallback(name, request):
    d = _need("cboe_VIX_History.csv") if name == "real" else request.getfixturevalue("synthetic").market_dir
    vix = m.load_vol_index("VIX", market_dir=d, offline_ok=True)
    assert vix.attrs["source"].endswith("cboe_VIX_History.csv")


# ------------------------------------------------------------------------------------------------------
# Regime helpers
# ------------------------------------------------------------------------------------------------------
def test_iv_rank_and_percentile_by_hand():
    s = pd.Series([10.0, 20.0, 15.0, 30.0, 25.0, 25.0], name="vix")
    rank = m.iv_rank(s, window=3)
    # windows: [10,20,15] → (15-10)/10; [20,15,30] → 1; [15,30,25] → 10/15; [30,25,25] → 0
    assert rank.name == "vix"
    np.testing.assert_allclose(rank.to_numpy(), [np.nan, np.nan, 0.5, 1.0, 10 / 15, 0.0])
    pct = m.iv_percentile(s, window=3)
    # share of the 3-value window strictly below today: [10,20,15]: 1/3; [20,15,30]: 2/3; [15,30,25]: 1/3;
    # [30,25,25]: 0 (ties are not below)
    np.testing.assert_allclose(pct.to_numpy(), [np.nan, np.nan, 1 / 3, 2 / 3, 1 / 3, 0.0])
    np.testing.assert_allclose(m.iv_rank(s, window=3, min_periods=1).to_numpy()[:2], [np.nan, 1.0])
    np.testing.assert_allclose(m.iv_percentile(s, window=3, min_periods=2).to_numpy()[:2], [np.nan, 0.5])


def test_regime_helpers_nan_and_edges():
    s = pd.Series([1.0, np.nan, 3.0, np.inf, 2.0, 2.0, 2.0])
    rank = m.iv_rank(s, window=3, min_periods=2)
    assert np.isnan(rank.iloc[1]) and np.isnan(rank.iloc[3])  # today's value missing
    assert rank.iloc[2] == 1.0  # [1, nan, 3]: two observations are enough
    assert np.isnan(m.iv_rank(s, window=3).iloc[2])  # the default needs a full window
    assert np.isnan(rank.iloc[6])  # flat window [2, 2, 2]: no rank
    pct = m.iv_percentile(s, window=3, min_periods=2)
    assert pct.iloc[2] == 0.5 and pct.iloc[6] == 0.0
    ma = m.moving_average(s, 3, min_periods=2)
    np.testing.assert_allclose(ma.to_numpy(), [np.nan, np.nan, 2.0, np.nan, 2.5, 2.0, 2.0])
    np.testing.assert_allclose(m.moving_average([1, 2, 3, 4], 2).to_numpy(), [np.nan, 1.5, 2.5, 3.5])
    assert m.iv_rank(pd.Series([], dtype=float)).empty and m.iv_percentile([]).empty
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [3.0, 2.0, 1.0]})
    assert m.iv_rank(frame, 2)["b"].tolist()[1:] == [0.0, 0.0]
    assert m.moving_average(frame, 2)["a"].tolist()[1:] == [1.5, 2.5]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            m.iv_rank(s, window=bad)
    with pytest.raises(ValueError):
        m.iv_percentile(s, window=3, min_periods=4)
    with pytest.raises(ValueError):
        m.moving_average(s, 0)


def test_iv_percentile_blocks_match_and_real_vix(monkeypatch):
    rng = np.random.default_rng(0)
    x = pd.Series(rng.normal(20, 5, 3000))
    x[rng.random(3000) < 0.05] = np.nan
    whole = m.iv_percentile(x, 252, min_periods=200)
    monkeypatch.setattr(indicators, "_PERCENTILE_BLOCK", 97)  # the indicators live in core.indicators
    chunked = m.iv_percentile(x, 252, min_periods=200)
    pd.testing.assert_series_equal(whole, chunked)
    ref = x.rolling(252, min_periods=200).apply(lambda w: np.sum(w[~np.isnan(w)] < w[-1]) / np.sum(~np.isnan(w)),
                                                raw=True)
    ref[x.isna()] = np.nan
    pd.testing.assert_series_equal(whole, ref, check_names=False)
    if (MARKET / "cboe_VIX_History.csv").exists():
        vix = m.load_vol_index("VIX", market_dir=MARKET)["close"]
        assert m.iv_rank(vix).loc["2020-03-16"] == 1.0  # the record close
        assert m.iv_percentile(vix).loc["2020-03-16"] == pytest.approx(251 / 252)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                                 st.sampled_from([np.nan, 0.0, 1.0])), max_size=40),
       window=st.integers(1, 12), data=st.data())
def test_property_rank_and_percentile_in_unit_interval(values, window, data):
    min_periods = data.draw(st.integers(1, window))
    s = pd.Series(values, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rank = m.iv_rank(s, window, min_periods=min_periods)
        pct = m.iv_percentile(s, window, min_periods=min_periods)
    for out in (rank, pct):
        assert len(out) == len(s)
        v = out.to_numpy()
        ok = np.isnan(v) | ((v >= 0) & (v <= 1))
        assert ok.all()
        assert np.isnan(v[~np.isfinite(s.to_numpy())]).all()  # missing today → NaN
    assert (pct.dropna() < 1).all()


def test_snapshot_rates_to_dict_is_strict_json():
    """SnapshotRates.to_dict goes through the one JSON helper: NaN becomes None, any date-like its ISO day."""
    rates = m.SnapshotRates(rate=float("nan"), div_yield=np.float64(0.015), date=pd.Timestamp("2024-03-13"),
                            underlying="SPX", notes=("rate 0: test",))
    d = rates.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["rate"] is None and d["div_yield"] == 0.015 and d["date"] == "2024-03-13"
    assert d["notes"] == ["rate 0: test"] and d["underlying"] == "SPX"
