"""The intraday readers (research_lib.data.market.intraday): bars, tick trades, 1-second quote / trade bars.

Real files in ../shared/data/market (skipped when absent) and synthetic files in the same layouts
(tests/intraday_fixtures.py) so a fresh clone tests every reader; bad files raise IntradayFileError naming the
file, the column, the count and an example line.
"""

from __future__ import annotations

import datetime as dt
import gzip
import zipfile

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, shared_file
from hypothesis import given, settings, strategies as st
from intraday_fixtures import EARLY_CLOSE_DAY, NORMAL_DAY, bars, tick_day, write_bars, write_tick_files

from research_lib.data.market.intraday import (
    BAR_COLUMNS,
    QUOTE_COLUMNS,
    TRADE_COLUMNS,
    file_date,
    quote_files,
    read_bars,
    read_quote_bars,
    read_second_trades,
    read_trades,
    regular_hours_mask,
    tick_files,
)
from research_lib.errors import IntradayFileError, MarketDataError

INTRADAY = SHARED_DATA / "market" / "intraday"
TICKS = SHARED_DATA / "market" / "ticks" / "spy_2013-10-07_2013-10-11"
NY = "America/New_York"


def _ny(frame):
    return frame["ts"].dt.tz_convert(NY)


# --------------------------------------------------------------------------------------------------------
# synthetic files (fresh clone)


@pytest.fixture(scope="module")
def ticks(tmp_path_factory):
    root = tmp_path_factory.mktemp("ticks")
    days = {d: tick_day(d, seed=i) for i, d in enumerate((NORMAL_DAY, EARLY_CLOSE_DAY))}
    files = {d: write_tick_files(root, td) for d, td in days.items()}
    return root, days, files


def test_trades_round_trip_regular_hours_and_suspicious(ticks):
    _, days, files = ticks
    for day, td in days.items():
        out = read_trades(files[day]["trades"])
        assert tuple(out.columns) == TRADE_COLUMNS
        assert str(out["ts"].dtype) == "datetime64[ns, UTC]"
        t = td.trades
        rth = (t["ms"] >= td.open_ms) & (t["ms"] < td.close_ms)
        want = t[rth & (t["suspicious"] == 0)]
        assert len(out) == len(want)
        np.testing.assert_allclose(out["price"], want["price"] / 10_000)
        np.testing.assert_array_equal(out["size"], want["size"].astype(float))
        assert list(out["exchange"]) == list(want["exchange"])
        assert list(out["condition"]) == list(want["condition"])
        assert out.attrs["suspicious_dropped"] == int(t.loc[rth, "suspicious"].sum()) == 2
        assert out.attrs["outside_hours"] == int((~rth).sum())
        assert set(out["session"]) == {day}
        local = _ny(out)
        assert local.min() >= pd.Timestamp(f"{day} 09:30", tz=NY)
        close = "13:00" if day == EARLY_CLOSE_DAY else "16:00"
        assert local.max() < pd.Timestamp(f"{day} {close}", tz=NY)
        # ms since midnight ET, exactly
        ms = (local.dt.tz_localize(None) - pd.Timestamp(day)) // pd.Timedelta(milliseconds=1)
        np.testing.assert_array_equal(ms.to_numpy(), want["ms"].to_numpy())


def test_trades_all_hours_keep_file_order_and_flags(ticks):
    _, days, files = ticks
    td = days[NORMAL_DAY]
    out = read_trades(files[NORMAL_DAY]["trades"], regular_hours=False, drop_suspicious=False)
    assert len(out) == len(td.trades)
    np.testing.assert_array_equal(out["suspicious"], td.trades["suspicious"].astype(bool))
    assert out.attrs["suspicious_dropped"] == 0 and out.attrs["outside_hours"] == 0
    assert out["ts"].is_monotonic_increasing


def test_unsorted_file_is_stable_sorted(tmp_path):
    lines = ["36000500,1000000,100,Q,1,0", "36000100,1000100,200,P,1,0", "36000100,1000200,300,Z,1,0"]
    p = _zip_text(tmp_path / "20251126_trade.zip", lines)
    out = read_trades(p)
    assert list(out["size"]) == [200.0, 300.0, 100.0]  # equal times keep the file's order


def test_quote_and_second_bars_round_trip(ticks):
    _, days, files = ticks
    td = days[EARLY_CLOSE_DAY]
    q = read_quote_bars(files[EARLY_CLOSE_DAY]["quotes"])
    assert tuple(q.columns) == QUOTE_COLUMNS
    want = td.quotes[(td.quotes["ms"] >= td.open_ms) & (td.quotes["ms"] < td.close_ms)]
    assert len(q) == len(want) == 3.5 * 3600  # 09:30-13:00, one row a second
    np.testing.assert_allclose(q["bid"], want["bid_close"] / 10_000)
    np.testing.assert_allclose(q["ask_size"], want["ask_size"])
    s = read_second_trades(files[EARLY_CLOSE_DAY]["seconds"])
    assert tuple(s.columns) == BAR_COLUMNS
    ws = td.seconds[(td.seconds["ms"] >= td.open_ms) & (td.seconds["ms"] < td.close_ms)]
    np.testing.assert_allclose(s["close"], ws["close"] / 10_000)
    np.testing.assert_allclose(s["volume"], ws["volume"])


def test_folders_list_daily_files(ticks):
    root, days, files = ticks
    assert tick_files(root) == sorted(f["trades"] for f in files.values())
    assert quote_files(root) == sorted(f["quotes"] for f in files.values())
    assert tick_files(files[NORMAL_DAY]["trades"]) == [files[NORMAL_DAY]["trades"]]
    with pytest.raises(IntradayFileError, match="no such file"):
        tick_files(root / "nope")
    with pytest.raises(IntradayFileError, match=r"no \*_trade.zip files"):
        tick_files(_empty(root))


def _empty(root):
    p = root / "empty"
    p.mkdir(exist_ok=True)
    return p


def test_file_date():
    assert file_date("x/20131008_trade.zip") == dt.date(2013, 10, 8)
    assert file_date("x/trades.zip", "20131009_spy_Trade_Tick.csv") == dt.date(2013, 10, 9)
    with pytest.raises(IntradayFileError, match="no YYYYMMDD date"):
        file_date("x/trades.zip", "spy.csv")


def test_date_override(tmp_path):
    p = _zip_text(tmp_path / "trades.zip", ["36000000,1000000,100,Q,1,0"])
    with pytest.raises(IntradayFileError, match="no YYYYMMDD"):
        read_trades(p)
    out = read_trades(p, date="2025-11-26")
    assert _ny(out).iloc[0] == pd.Timestamp("2025-11-26 10:00", tz=NY)


@pytest.mark.parametrize("layout,suffix", [("spy", ".csv.gz"), ("spy", ".csv"), ("sp500", ".csv"),
                                           ("googl", ".csv")])
def test_bars_layouts_and_early_close(tmp_path, layout, suffix):
    frame = bars()
    path = write_bars(tmp_path / f"bars{suffix}", frame, layout=layout)
    tz = "America/Los_Angeles" if layout == "googl" else NY
    out = read_bars(path, tz=tz)
    assert tuple(out.columns) == BAR_COLUMNS
    assert out.groupby("session").size().to_dict() == {NORMAL_DAY: 390, EARLY_CLOSE_DAY: 210}
    assert out.attrs["outside_hours"] == len(frame) - 600
    local = _ny(out)
    assert local[out["session"] == EARLY_CLOSE_DAY].max() == pd.Timestamp(f"{EARLY_CLOSE_DAY} 12:59", tz=NY)
    kept = frame.set_index("datetime").loc[local.dt.tz_localize(None)]
    np.testing.assert_allclose(out["close"], kept["close"])
    np.testing.assert_allclose(out["high"], kept["high"])
    if layout != "sp500":
        np.testing.assert_allclose(out["volume"], kept["volume"])
    every = read_bars(path, regular_hours=False, tz=tz)
    assert len(every) == len(frame) and every.attrs["outside_hours"] == 0


def test_bars_non_session_day_dropped_in_regular_hours(tmp_path):
    path = write_bars(tmp_path / "b.csv", bars(days=(dt.date(2025, 11, 27),), start="09:30", end="16:00"))  # Thanksgiving
    assert len(read_bars(path)) == 0
    assert len(read_bars(path, regular_hours=False)) == 390


def test_bars_parquet_and_offsets(tmp_path):
    frame = bars(days=(NORMAL_DAY,), start="09:00", end="10:00")
    aware = frame.assign(datetime=pd.DatetimeIndex(frame["datetime"]).tz_localize(NY))
    aware.to_parquet(tmp_path / "b.parquet")
    out = read_bars(tmp_path / "b.parquet")
    assert len(out) == 30 and _ny(out).iloc[0] == pd.Timestamp(f"{NORMAL_DAY} 09:30", tz=NY)
    frame.set_index("datetime").to_parquet(tmp_path / "naive_index.parquet")
    assert len(read_bars(tmp_path / "naive_index.parquet")) == 30
    iso = aware.assign(datetime=[t.isoformat() for t in aware["datetime"]])
    iso.to_csv(tmp_path / "iso.csv", index=False)
    pd.testing.assert_series_equal(read_bars(tmp_path / "iso.csv")["ts"], out["ts"])


def test_regular_hours_mask():
    ts = pd.Series(pd.to_datetime(["2025-11-28 09:29:59", "2025-11-28 09:30", "2025-11-28 12:59:59",
                                   "2025-11-28 13:00", "2025-11-27 12:00", "2025-11-26 15:59:59.999"], format="ISO8601")
                   .tz_localize(NY))
    session, regular = regular_hours_mask(ts)
    assert list(regular) == [False, True, True, False, False, True]
    assert session[4] == dt.date(2025, 11, 27)


# --------------------------------------------------------------------------------------------------------
# bad files


def _zip_text(path, lines, member=None):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member or path.name.replace(".zip", ".csv"), "\n".join(lines) + "\n")
    return path


GOOD = "36000000,1000000,100,Q,1,0"


@pytest.mark.parametrize("bad,match,column,line", [
    ("36000000,1000000,100,Q,1,0,7", "malformed lines", None, 2),
    ("36000000,1000000,100,Q", "malformed lines", None, 2),
    ("36000000,10x0000,100,Q,1,0", "non-numeric", "price", 2),
    ("36000000,,100,Q,1,0", "non-numeric", "price", 2),
    ("36000000,1000000,-100,Q,1,0", "negative sizes", "size", 2),
    ("36000000,0,100,Q,1,0", "non-positive prices", "price", 2),
    ("36000000,1000000,100,Q,1,2", "other than 0 / 1", "suspicious", 2),
    ("96000000,1000000,100,Q,1,0", "outside", "ms", 2),
])
def test_bad_trade_files(tmp_path, bad, match, column, line):
    p = _zip_text(tmp_path / "20251126_trade.zip", [GOOD, bad, GOOD, bad])
    with pytest.raises(IntradayFileError, match=match) as exc:
        read_trades(p)
    err = exc.value
    assert isinstance(err, MarketDataError) and err.path == str(p) and str(p) in str(err)
    assert err.column == column and err.line == line and err.n_bad == 2
    assert f"line {line}" in str(err) and "2 bad rows" in str(err)


@pytest.mark.parametrize("content,match", [
    (b"", "empty file"),
    (b"PK\x03\x04 broken", "unreadable: a damaged or truncated zip"),
])
def test_unreadable_trade_files(tmp_path, content, match):
    p = tmp_path / "20251126_trade.zip"
    p.write_bytes(content)
    with pytest.raises(IntradayFileError) as exc:
        read_trades(p)
    assert match in str(exc.value).removeprefix(f"{p}: ")


def test_truncated_zip_and_gzip(tmp_path):
    good = _zip_text(tmp_path / "20251126_trade.zip", [GOOD] * 200)
    cut = tmp_path / "cut" / "20251126_trade.zip"
    cut.parent.mkdir()
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(IntradayFileError, match="damaged or truncated zip"):
        read_trades(cut)
    gz = tmp_path / "bars.csv.gz"
    gz.write_bytes(gzip.compress(b"datetime,open,high,low,close,volume\n" * 50)[:40])
    with pytest.raises(IntradayFileError) as exc:
        read_bars(gz)
    assert "unreadable" in str(exc.value).removeprefix(f"{gz}: ")


def test_zip_with_two_members_and_missing_file(tmp_path):
    p = tmp_path / "20251126_trade.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("a.csv", GOOD)
        zf.writestr("b.csv", GOOD)
    with pytest.raises(IntradayFileError, match="exactly one CSV, this one holds 2"):
        read_trades(p)
    with pytest.raises(IntradayFileError, match="no such file"):
        read_trades(tmp_path / "20251126_nope.zip")
    with pytest.raises(IntradayFileError, match="is a folder"):
        read_bars(tmp_path)


def test_bad_quote_bars(tmp_path):
    good = "36000000,1000000,1000100,999900,1000000,100,1000100,1000200,1000000,1000100,100"
    bad = "36001000,1000000,999000,999900,1000000,100,1000100,1000200,1000000,1000100,100"  # bid high < low
    p = _zip_text(tmp_path / "20251126_quote.zip", [good, bad])
    with pytest.raises(IntradayFileError, match="bid_high below bid_low") as exc:
        read_quote_bars(p)
    assert exc.value.column == "bid_high" and exc.value.line == 2
    p = _zip_text(tmp_path / "20251126_quote.zip", [good, good.replace(",100,1000100", ",-5,1000100")])
    with pytest.raises(IntradayFileError, match="negative sizes"):
        read_quote_bars(p)


def _bar_csv(path, rows):
    path.write_text("datetime,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("bad,match,column", [
    ("2025-11-26 09:31:00,10,9,11,10,5", "high below low", "high"),
    ("2025-11-26 09:31:00,12,11,9,10,5", "open outside", "open"),
    ("2025-11-26 09:31:00,10,11,9,10,-5", "negative volumes", "volume"),
    ("2025-11-26 09:31:00,10,11,9,x,5", "non-numeric", "close"),
    ("2025-11-26 09:31:00,10,11,9,,5", "non-numeric", "close"),
    ("2025-11-26 9h31,10,11,9,10,5", "unparseable date-times", "datetime"),
    ("2025-11-26 09:30:00,10,11,9,10,5", "duplicate bar times", "datetime"),
])
def test_bad_bar_files(tmp_path, bad, match, column):
    p = _bar_csv(tmp_path / "b.csv", ["2025-11-26 09:30:00,10,11,9,10,5", bad])
    with pytest.raises(IntradayFileError, match=match) as exc:
        read_bars(p)
    assert exc.value.column == column and exc.value.line in (2, 3) and "line" in str(exc.value)


def test_bar_files_missing_columns(tmp_path):
    (tmp_path / "a.csv").write_text("when,open,high,low,close,volume\n2025-11-26 09:30,1,1,1,1,1\n")
    with pytest.raises(IntradayFileError, match="no datetime column"):
        read_bars(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("datetime,open,high,low,close\n2025-11-26 09:30,1,1,1,1\n")
    with pytest.raises(IntradayFileError, match=r"missing columns \['volume'\]"):
        read_bars(tmp_path / "b.csv")
    (tmp_path / "c.csv.gz").write_bytes(gzip.compress(b"datetime,open,high,low,close,volume\n"))
    with pytest.raises(IntradayFileError, match="no rows"):
        read_bars(tmp_path / "c.csv.gz")
    (tmp_path / "d.parquet").write_bytes(b"not parquet")
    with pytest.raises(IntradayFileError, match="unreadable Parquet"):
        read_bars(tmp_path / "d.parquet")


@settings(max_examples=40)
@given(row=st.integers(0, 49), col=st.integers(0, 5), junk=st.sampled_from(["x", "", "1e", "--1", "1,2", "nan"]))
def test_fuzz_one_bad_cell_is_named(tmp_path_factory, row, col, junk):
    """Any one corrupted cell of a tick file raises IntradayFileError naming its line (exchange and
    condition are free text: a junk value there is only an error when it breaks the field count)."""
    lines = [f"{36000000 + i * 10},{1000000 + i},{100 + i},Q,1,0" for i in range(50)]
    cells = lines[row].split(",")
    cells[col] = junk
    lines[row] = ",".join(cells)
    p = _zip_text(tmp_path_factory.mktemp("fz") / "20251126_trade.zip", lines)
    text_field = col in (3, 4)
    if text_field and "," not in junk and junk != "":
        out = read_trades(p)
        assert len(out) == 50
        return
    if text_field and junk == "":
        with pytest.raises(IntradayFileError, match="empty values") as exc:
            read_trades(p)
    else:
        with pytest.raises(IntradayFileError) as exc:
            read_trades(p)
    assert exc.value.line == row + 1


# --------------------------------------------------------------------------------------------------------
# the real files (skipped without ../shared)


def test_real_spy_1min():
    out = read_bars(shared_file(INTRADAY / "spy_1min_2025-09-15_2026-03-19.csv.gz"))
    per = out.groupby("session").size()
    assert len(per) == 129
    assert per[dt.date(2025, 11, 28)] == 210 and per[dt.date(2025, 12, 24)] == 210  # 213 in the file
    assert out.attrs["outside_hours"] == 6
    assert per.max() == 390 and out["ts"].is_unique and out["ts"].is_monotonic_increasing
    assert _ny(out).dt.time.min() == dt.time(9, 30)


def test_real_spy_5min_and_index_and_googl():
    five = read_bars(shared_file(INTRADAY / "spy_5min_2025-05-12_2026-03-12.csv.gz"))
    per = five.groupby("session").size()
    assert len(per) == 210 and per.max() == 78 and five.attrs["outside_hours"] > 0
    assert per.iloc[-1] < 78  # the last day is partial
    sp = read_bars(shared_file(INTRADAY / "sp500_1min_2019-11-05_2019-11-08.csv"))
    assert sp.groupby("session").size().tolist() == [390] * 4 and (sp["volume"] == 0).all()
    assert (sp["high"] >= sp[["open", "close"]].max(axis=1)).all()  # Open, Close, High, Low mapped by name
    g = shared_file(INTRADAY / "googl_30min_2017-09-27_2017-10-03.csv")
    as_given = read_bars(g, regular_hours=False)
    assert len(as_given) == 65
    pacific = read_bars(g, tz="America/Los_Angeles")
    assert _ny(pacific).dt.time.min() == dt.time(9, 30) and len(pacific) == 61  # the 13:00 PT bars are 16:00 ET


def test_real_ticks_volumes_and_quotes():
    files = tick_files(shared_file(TICKS))
    assert [f.name for f in files] == [f"201310{d:02d}_trade.zip" for d in range(7, 12)]
    everything = sum(len(read_trades(f, regular_hours=False, drop_suspicious=False)) for f in files)
    assert everything == 1_887_460
    day = read_trades(files[1])
    assert 81e6 <= day["size"].sum() <= 159e6 and day.attrs["suspicious_dropped"] == 0
    assert day["session"].eq(dt.date(2013, 10, 8)).all()
    flagged = read_trades(files[3], regular_hours=False, drop_suspicious=False)["suspicious"].sum()
    assert flagged == 10
    q = read_quote_bars(quote_files(TICKS)[1])
    assert (q["bid"] <= q["ask"]).mean() > 0.99 and q["ts"].is_unique
    s = read_second_trades(TICKS / "second" / "20131008_trade.zip")
    assert abs(s["volume"].sum() / day["size"].sum() - 1) < 0.01  # the second bars add up to the ticks
