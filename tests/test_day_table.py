"""The day table (research_lib.data.market.load_day_table): one row per NYSE session, the strict missing-value
rule, on a synthetic market folder (tests/fixtures.py) and on the real files (skipped without ../shared)."""

from __future__ import annotations

import csv
import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, shared_file
from fixtures import market_frame, write_market_history

from research_lib import calendar as cal
from research_lib.data.market import DAY_TABLE_COLUMNS, load_day_table, tbill_discount_to_continuous
from research_lib.errors import DayTableError, MarketDataError

END = dt.date(2024, 3, 6)
N = 600  # sessions of the synthetic files
GEX_FROM = 300  # the synthetic published GEX starts 300 sessions in (after the first dividend-yield estimate)


@pytest.fixture(scope="module")
def frame():
    return market_frame(END, N)


def _folder(tmp_path, frame, *, drop=None, blank=None):
    """Write the synthetic market files, then drop rows of some files (``drop``: file prefix -> dates) or blank
    one cell (``blank``: (file prefix, column, dates))."""
    folder = write_market_history(tmp_path / "market", frame)
    drop = dict(drop or {})
    drop["squeezemetrics"] = [*frame.index[:GEX_FROM], *drop.get("squeezemetrics", [])]
    for prefix, dates in drop.items():
        path = next(folder.glob(prefix + "*"))
        raw = pd.read_csv(path, dtype=str)
        col = raw.columns[0]
        parsed = pd.to_datetime(raw[col], format="mixed")
        raw = raw[~parsed.isin(pd.to_datetime(list(dates)))]
        raw.to_csv(path, index=False)
    if blank is not None:
        prefix, column, dates = blank
        path = next(folder.glob(prefix + "*"))
        raw = pd.read_csv(path, dtype=str)
        parsed = pd.to_datetime(raw[raw.columns[0]], format="mixed")
        raw.loc[parsed.isin(pd.to_datetime(list(dates))), column] = ""
        raw.to_csv(path, index=False)
    return folder


def test_defaults_columns_and_values(tmp_path, frame):
    folder = _folder(tmp_path, frame)
    t = load_day_table(market_dir=folder)
    assert tuple(t.columns) == DAY_TABLE_COLUMNS
    assert t.index.name == "date" and t.index.tz is None
    # default start: the published GEX file's first date; end: the last session with close, VIX and rate
    f = frame.iloc[GEX_FROM:]
    assert t.index[0] == f.index[0] and t.index[-1] == pd.Timestamp(END)
    assert list(t.index) == list(cal.sessions(f.index[0], END))
    assert (t["filled"] == "").all()
    np.testing.assert_allclose(t["close"], f["spx"])
    np.testing.assert_allclose(t["vix3m"], f["vix3m"])
    np.testing.assert_allclose(t["gex"], f["sm_gex"])
    np.testing.assert_allclose(t["rate"], tbill_discount_to_continuous(f["irx"].to_numpy() / 100))
    assert t["div_yield"].between(0.012, 0.014).all()  # the synthetic total return carries 1.3%/yr
    assert {"cboe_VIX_History.csv", "cboe_VIX9D_History.csv"} <= set(t.attrs["sources"])
    sub = load_day_table("2024-01-02", "2024-01-31", market_dir=folder)
    assert sub.index[0] == pd.Timestamp("2024-01-02") and len(sub) == len(cal.sessions("2024-01-02", "2024-01-31"))


def test_carried_inputs_are_named_in_filled(tmp_path, frame):
    days = frame.index[-40:-37]  # three sessions in a row
    folder = _folder(tmp_path, frame, drop={"cboe_VIX3M": days, "squeezemetrics": days[:1],
                                            "irx_13week": days[1:2]})
    t = load_day_table(market_dir=folder)
    before = frame.index[-41]
    assert (t.loc[days, "vix3m"] == frame.loc[before, "vix3m"]).all()
    assert t.loc[days[0], "filled"] == "vix3m;gex;dix"
    assert t.loc[days[1], "filled"] == "vix3m;rate"
    assert t.loc[days[2], "filled"] == "vix3m"
    assert t.attrs["carried"] == {"vix3m": 3, "rate": 1, "gex": 1, "dix": 1}
    assert (t.drop(index=days)["filled"] == "").all()
    # max_carry=2: three missing VIX3M sessions in a row are too many
    with pytest.raises(DayTableError, match="vix3m") as info:
        load_day_table(market_dir=folder, max_carry=2)
    assert info.value.column == "vix3m" and info.value.date == str(days[0].date())


def test_long_holes_and_required_inputs_raise(tmp_path, frame):
    days = frame.index[-30:-24]  # six sessions
    folder = _folder(tmp_path, frame, drop={"cboe_VIX9D": days})
    with pytest.raises(DayTableError, match=r"vix9d missing for more than 5 sessions in a row from") as info:
        load_day_table(market_dir=folder)
    assert isinstance(info.value, MarketDataError)
    assert info.value.date == str(days[0].date())
    # outside the hole the table builds
    assert len(load_day_table(end=days[0] - pd.Timedelta(days=1), market_dir=folder)) > 0
    # VIX and the close are never carried
    day = frame.index[-10]
    folder2 = _folder(tmp_path / "b", frame, drop={"cboe_VIX_": [day]})
    with pytest.raises(DayTableError, match="vix missing on 1 session") as info:
        load_day_table(market_dir=folder2, end=END)
    assert info.value.column == "vix" and info.value.date == str(day.date())
    folder3 = _folder(tmp_path / "c", frame, blank=("spx_daily", "close", [day]))
    with pytest.raises(DayTableError, match="close") as info:
        load_day_table(market_dir=folder3)
    assert info.value.date == str(day.date())
    with pytest.raises(DayTableError, match="no NYSE session"):
        load_day_table("2024-03-09", "2024-03-10", market_dir=folder3)
    with pytest.raises(ValueError, match="max_carry"):
        load_day_table(market_dir=folder3, max_carry=-1)


def test_default_end_stops_at_the_last_vix(tmp_path, frame):
    folder = _folder(tmp_path, frame, drop={"cboe_VIX_": frame.index[-3:]})
    t = load_day_table(market_dir=folder)
    assert t.index[-1] == frame.index[-4]


def test_dividend_yield_after_the_total_return_index_ends(tmp_path, frame):
    folder = _folder(tmp_path, frame, blank=("spx_daily", "spxtr_close", frame.index[-20:]))
    t = load_day_table(market_dir=folder)
    tail = t.iloc[-20:]
    assert (tail["filled"] == "div_yield").all()
    assert (tail["div_yield"] == t["div_yield"].iloc[-21]).all()
    assert t.attrs["div_yield_as_of"] == str(frame.index[-21].date())
    assert t.attrs["carried"] == {"div_yield": 20}


# --------------------------------------------------------------------------------------------------
# the real files


def _csv_rows(path, date_col, fmt):
    with open(path, newline="") as fh:
        return {dt.datetime.strptime(r[date_col], fmt).date(): r for r in csv.DictReader(fh)}


def test_real_day_table():
    market = shared_file(SHARED_DATA / "market")
    t = load_day_table(market_dir=market)
    assert t.index[0] == pd.Timestamp("2011-05-02") and t.index[-1] == pd.Timestamp("2026-07-22")
    assert len(t) == len(cal.sessions("2011-05-02", "2026-07-22")) == 3828
    assert t[list(DAY_TABLE_COLUMNS[:-1])].notna().all().all()
    # the known holes: IRX on Veterans Day 2016 and 10 sessions in June-July 2026; the total return ends 2025-05-13
    rate_filled = t.index[t["filled"].str.contains("rate")]
    assert len(rate_filled) == 11 and pd.Timestamp("2016-11-11") in rate_filled
    assert t.attrs["div_yield_as_of"] == "2025-05-13"
    assert not t.loc[:"2025-05-13", "filled"].str.contains("div_yield").any()
    assert t.loc["2025-05-14":, "filled"].str.contains("div_yield").all()
    # spot checks against the raw CSVs, read independently
    vix = _csv_rows(market / "cboe_VIX_History.csv", "DATE", "%m/%d/%Y")
    vix9d = _csv_rows(market / "cboe_VIX9D_History.csv", "DATE", "%m/%d/%Y")
    spx = _csv_rows(next(market.glob("spx_daily_*.csv")), "date", "%Y-%m-%d")
    gex = _csv_rows(next(market.glob("squeezemetrics_dix_gex_*.csv")), "date", "%Y-%m-%d")
    irx = _csv_rows(next(market.glob("irx_13week_tbill_*.csv")), "date", "%Y-%m-%d")
    for day in (dt.date(2011, 5, 2), dt.date(2015, 8, 24), dt.date(2020, 3, 16), dt.date(2026, 7, 22)):
        row = t.loc[pd.Timestamp(day)]
        assert row["vix"] == pytest.approx(float(vix[day]["CLOSE"]))
        assert row["vix9d"] == pytest.approx(float(vix9d[day]["CLOSE"]))
        assert row["close"] == pytest.approx(float(spx[day]["close"]))
        assert row["open"] == pytest.approx(float(spx[day]["open"]))
        assert row["gex"] == pytest.approx(float(gex[day]["gex"]))
        assert row["dix"] == pytest.approx(float(gex[day]["dix"]))
        d = float(irx[day]["irx_13w_tbill_yield_pct"]) / 100
        assert row["rate"] == pytest.approx(-math.log(1 - d * 91 / 360) * 365 / 91)
    assert t.loc["2020-03-16", "vix"] > 80
