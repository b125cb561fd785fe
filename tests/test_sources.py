"""Readers: every real chain file parses into one shape; header variants; archives' unclean days."""

from __future__ import annotations

import datetime as dt
import gzip
import types

import numpy as np
import pandas as pd
import pytest
from conftest import (
    EOD_ARCHIVE,
    INTRADAY_ARCHIVE,
    IVOL_FILE,
    QUOTEDATA,
    all_chain_files,
    shared_file,
)

from research_lib.core.chain import CONTRACT_COLUMNS, NY, ChainError
from research_lib.data.sources import (
    SnapshotNotFoundError,
    UnknownFormatError,
    detect_format,
    read_chain,
    read_chains,
    scan,
)
from research_lib.data.sources.cboe_csv import parse_cboe_timestamp

# file → (format, underlying, spot, header moment, trading date of the prices, expected roots);
# the trading dates are SOURCES.md's: weekend downloads hold the Friday close.
QUOTE_FILES = {
    "spx_2022-02-05.csv": ("cboe_csv", "SPX", 4500.5298, "2022-02-05 20:09", "2022-02-04", {"SPX", "SPXW"}),
    "ndx_2022-02-05.csv": ("cboe_csv", "NDX", 14694.3506, "2022-02-05 20:26", "2022-02-04", {"NDX", "NDXP"}),
    "spx_2022-06-11.csv": ("cboe_csv", "SPX", 3900.8601, "2022-06-11 20:47", "2022-06-10", {"SPX", "SPXW"}),
    "spx_2022-07-12.csv": ("cboe_csv", "SPX", 3856.28, "2022-07-12 11:55", "2022-07-12", {"SPX", "SPXW"}),
    "spx_2023-09-14.csv": ("cboe_csv", "SPX", 4505.1001, "2023-09-14 16:31", "2023-09-14", {"SPX", "SPXW"}),
    "spy_2023-09-14.csv": ("cboe_csv", "SPY", 450.81, "2023-09-14 16:31", "2023-09-14", {"SPY"}),
    "xsp_2023-09-14.csv": ("cboe_csv", "XSP", 450.51, "2023-09-14 16:30", "2023-09-14", {"XSP"}),
    "spx_2024-01-07.csv": ("cboe_csv", "SPX", 4697.2402, "2024-01-07 10:52", "2024-01-05", {"SPX", "SPXW"}),
    "spy_2020-06-22.dat": ("cboe_dat", "SPY", 310.68, "2020-06-22 20:42", "2020-06-22", {"SPY"}),
}


def test_every_shared_chain_file_is_covered():
    files = all_chain_files()
    if not files:
        pytest.skip("../shared/data/chains is absent")
    for f in files:
        assert detect_format(f).name in {"cboe_csv", "cboe_dat", "spx_eod_archive", "cboe_intraday_archive",
                                         "ivolatility_csv"}, f


@pytest.mark.parametrize("name", sorted(QUOTE_FILES))
def test_quote_files_parse(name):
    fmt, underlying, spot, moment, trading, roots = QUOTE_FILES[name]
    path = shared_file(QUOTEDATA / name)
    assert detect_format(path).name == fmt
    snap = read_chain(path)
    assert snap.underlying == underlying
    assert snap.spot == pytest.approx(spot)
    assert snap.quote_time == pd.Timestamp(moment).tz_localize(NY)
    assert str(snap.quote_time.tz) == NY
    assert snap.snapshot_date == dt.date.fromisoformat(trading)  # the session the prices belong to
    c = snap.contracts
    assert tuple(c.columns) == CONTRACT_COLUMNS
    assert set(c["root"]) == roots
    assert set(c["right"]) == {"C", "P"}
    assert (c["strike"] > 0).all() and (c["open_interest"] >= 0).all()
    # vendor zeros that mean missing became NaN
    assert not (c["iv"] == 0).any() and not (c["gamma"] == 0).any()
    # settlement from the root: AM only for the index monthlies
    am_roots = set(c.loc[c["settlement"] == "AM", "root"])
    assert am_roots <= {"SPX", "NDX"}
    # every contract key appears once
    assert not c.duplicated(["root", "expiration", "strike", "right"]).any()


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if (QUOTEDATA / "spx_2024-01-07.csv").exists() else [])])
def test_spx_file_keeps_spx_and_spxw_on_the_same_monthly_strike(name, request):
    if name == "real":
        snap, expiry, strike = read_chain(shared_file(QUOTEDATA / "spx_2024-01-07.csv")), "2024-01-19", 4700
    else:  # the synthetic chain's March monthly, at the money
        snap, expiry, strike = read_chain(request.getfixturevalue("synthetic").files["cboe_csv"]), "2024-03-15", 5150
    c = snap.contracts
    monthly = c[(c["expiration"] == expiry) & (c["strike"] == strike) & (c["right"] == "C")]
    assert set(monthly["root"]) == {"SPX", "SPXW"}
    assert dict(zip(monthly["root"], monthly["settlement"], strict=True)) == {"SPX": "AM", "SPXW": "PM"}


def test_quote_table_row_count_matches_the_file(quote_csv):
    path = quote_csv.path
    n_lines = sum(1 for line in open(path) if line[:3] in {"Mon", "Tue", "Wed", "Thu", "Fri"})
    assert len(read_chain(path).contracts) == 2 * n_lines


@pytest.mark.parametrize("text, expected", [
    ("Date: February 5 2022, 8:09 PM EST", "2022-02-05 20:09"),
    ("Date: June 11, 2022, 8:47 PM EDT", "2022-06-11 20:47"),
    ("Date: September 14, 2023 at 4:31 PM EDT", "2023-09-14 16:31"),
    ("Date: January 7, 2024 at 10:52 AM EST", "2024-01-07 10:52"),
    ("Date: 9 June 2023, 10:18 PM EDT", "2023-06-09 22:18"),
    ("Jun 22 2020 @ 20:42 ET", "2020-06-22 20:42"),
])
def test_cboe_timestamp_locales(text, expected):
    assert parse_cboe_timestamp(text, where="t") == pd.Timestamp(expected).tz_localize(NY)


def test_cboe_timestamp_rejects_foreign_zone_and_garbage():
    with pytest.raises(ChainError, match="not New York time"):
        parse_cboe_timestamp("Date: June 9 2023, 10:18 PM CET", where="t")
    with pytest.raises(ChainError, match="unreadable quote date"):
        parse_cboe_timestamp("Date: someday soon", where="t")


REAL_CSV = QUOTEDATA / "spx_2023-09-14.csv"


@pytest.fixture(params=["synthetic", *(["real"] if REAL_CSV.exists() else [])])
def quote_csv(request):
    """A Cboe quote-table CSV: the synthetic one always, spx_2023-09-14.csv when present. ``header``: its
    date line's moment as written, ``eu``: the same moment in the day-month-year locale."""
    if request.param == "real":
        return types.SimpleNamespace(path=REAL_CSV, header="September 14, 2023 at 4:31 PM EDT",
                                     eu="14 September 2023, 4:31 PM EDT", moment="2023-09-14 16:31")
    return types.SimpleNamespace(path=request.getfixturevalue("synthetic").files["cboe_csv"],
                                 header="March 6, 2024 at 4:00 PM EST", eu="6 March 2024, 4:00 PM EST",
                                 moment="2024-03-06 16:00")


def _variant(tmp_path, src, transform, name="variant.csv"):
    lines = open(src).read().splitlines()
    out = tmp_path / name
    out.write_text("\n".join(transform(lines)) + "\n")
    return out


def test_header_variants_read_identically(tmp_path, quote_csv):
    src = quote_csv.path
    base = read_chain(src).contracts
    no_blank = _variant(tmp_path, src, lambda ls: ls[1:], "a.csv")
    trailing = _variant(tmp_path, src, lambda ls: [ls[0]] + [ln + ",,," for ln in ls[1:]], "b.csv")
    assert quote_csv.header in src.read_text()[:300]
    eu_date = _variant(tmp_path, src, lambda ls: [ls[0], ls[1], ls[2].replace(quote_csv.header, quote_csv.eu),
                                                  *ls[3:]], "c.csv")
    for path in (no_blank, trailing, eu_date):
        snap = read_chain(path)
        assert snap.quote_time == pd.Timestamp(quote_csv.moment).tz_localize(NY)
        pd.testing.assert_frame_equal(snap.contracts, base)


def test_corrupt_quote_table_names_column_and_row(tmp_path, quote_csv):
    src = quote_csv.path

    def corrupt(lines):
        parts = lines[10].split(",")
        parts[10] = "lots"  # call open interest
        lines[10] = ",".join(parts)
        return lines

    with pytest.raises(ChainError, match=r"open_interest.*1 bad row.*lots"):
        read_chain(_variant(tmp_path, src, corrupt))


def test_strike_column_must_match_symbol(tmp_path, quote_csv):
    src = quote_csv.path

    def corrupt(lines):
        parts = lines[10].split(",")
        parts[11] = "99999.00"
        lines[10] = ",".join(parts)
        return lines

    with pytest.raises(ChainError, match="Strike disagrees with the OCC symbol"):
        read_chain(_variant(tmp_path, src, corrupt))


def test_header_only_file_is_an_empty_chain(tmp_path, quote_csv):
    src = quote_csv.path
    with pytest.raises(ChainError, match="no rows"):
        read_chain(_variant(tmp_path, src, lambda ls: ls[:4]))


@pytest.mark.parametrize("content, match", [
    (b"", "empty file"),
    (b"hello,world\n1,2\n", "not a chain format"),
    (b"\x00\x01\x02binary", "binary file"),
    (b"PAR1garbage", "corrupt Parquet"),
])
def test_unknown_formats(tmp_path, content, match):
    p = tmp_path / "x.csv"
    p.write_bytes(content)
    with pytest.raises(UnknownFormatError, match=match):
        read_chain(p)


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        read_chain("no/such/file.csv")


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if (QUOTEDATA / "spx_2024-01-07.csv").exists() else [])])
def test_single_snapshot_file_rejects_other_dates(name, request, tmp_path):
    if name == "real":
        path, friday, sunday, monday = shared_file(QUOTEDATA / "spx_2024-01-07.csv"), 5, 7, 8
        month = "2024-01"
    else:  # the synthetic 2024-03-01 chain, downloaded on Sunday 03-03
        from fixtures import write_cboe_csv

        snap = request.getfixturevalue("synthetic").eod_snaps[dt.date(2024, 3, 1)]
        path = write_cboe_csv(tmp_path / "sunday.csv", snap.replace(
            quote_time=pd.Timestamp("2024-03-03 10:52").tz_localize(NY)))
        friday, sunday, monday, month = 1, 3, 4, "2024-03"
    # the Sunday download of Friday's close: found by its trading date and by its header date
    assert read_chain(path, date=f"{month}-{friday:02d}").snapshot_date == dt.date.fromisoformat(f"{month}-{friday:02d}")
    assert read_chain(path, date=f"{month}-{sunday:02d}").snapshot_date == dt.date.fromisoformat(f"{month}-{friday:02d}")
    with pytest.raises(SnapshotNotFoundError, match=f"of {month}-{friday:02d}, downloaded {month}-{sunday:02d}, "
                                                    f"not {month}-{monday:02d}"):
        read_chain(path, date=f"{month}-{monday:02d}")


# ------------------------------------------------------------------------------------------------
# archives

EOD_SKIPPED = {dt.date(2026, 6, 13), dt.date(2026, 6, 19), dt.date(2026, 6, 23), dt.date(2026, 7, 3)}


def test_eod_archive_catalogue():
    cat = scan(shared_file(EOD_ARCHIVE))
    assert len(cat) == 51
    assert set(cat.loc[cat["status"] == "skipped", "date"]) == EOD_SKIPPED
    # 49 sessions minus 06-23 and 08-07 (true closes missing) = 47 clean days: the file labelled 08-07
    # holds the 08-06 close (its price_date) and serves 08-06 (SOURCES.md counts 45 clean files).
    assert (cat["status"] == "ok").sum() == 47
    assert cat["rows"].sum() == 1_132_015
    assert cat["date"].is_unique
    reasons = dict(zip(cat["date"], cat["reason"], strict=True))
    assert "Juneteenth" in reasons[dt.date(2026, 6, 19)]
    assert "weekend" in reasons[dt.date(2026, 6, 13)]
    # the duplicates repeat a session their own file serves; the catalogue says so
    assert "2026-06-18, a session served by its own file" in reasons[dt.date(2026, 6, 19)]
    relabelled = cat[cat["date"] != cat["file_date"]]
    assert list(zip(relabelled["date"], relabelled["file_date"], relabelled["status"], strict=True)) == [
        (dt.date(2026, 8, 6), dt.date(2026, 8, 7), "ok")]
    ok_dates = set(cat.loc[cat["status"] == "ok", "date"])
    assert dt.date(2026, 8, 7) not in ok_dates and dt.date(2026, 8, 6) in ok_dates


def test_eod_archive_mislabelled_file_serves_its_trading_date():
    path = shared_file(EOD_ARCHIVE)
    raw = pd.read_parquet(path, filters=[("file_date", "==", pd.Timestamp("2026-08-07"))])
    assert set(raw["price_date"]) == {pd.Timestamp("2026-08-06")}  # the file's own record
    snap = read_chain(path, date="2026-08-06")
    assert snap.snapshot_date == dt.date(2026, 8, 6)
    assert snap.quote_time == pd.Timestamp("2026-08-06 16:00").tz_localize(NY)
    assert snap.spot == pytest.approx(float(raw["spot"].iloc[0])) and len(snap.contracts) == len(raw)
    assert any("labelled 2026-08-07" in n and "MISLABELED" in n for n in snap.notes)
    with pytest.raises(SnapshotNotFoundError, match="labelled 2026-08-07 holds the close of 2026-08-06"):
        read_chain(path, date="2026-08-07")
    # read_chains (one read of the file) gives the same snapshot
    many = list(read_chains(path, dates=["2026-08-05", "2026-08-06"]))
    assert [s.snapshot_date for s in many] == [dt.date(2026, 8, 5), dt.date(2026, 8, 6)]
    pd.testing.assert_frame_equal(many[1].contracts, snap.contracts)


def _tiny_eod_archive(path, files):
    """An archive in the spx_eod layout: ``files`` maps file_date → (price_date, flag, spot)."""
    frames = []
    for file_date, (price_date, flag, spot) in files.items():
        fd = pd.Timestamp(file_date)
        exp = pd.to_datetime(["2024-03-15", "2024-03-15", "2024-03-28", "2024-03-28"])
        frames.append(pd.DataFrame({
            "file_date": fd, "price_date": pd.Timestamp(price_date), "feed_timestamp": str(fd),
            "spot": spot, "strike": [5000.0, 5100.0, 5000.0, 5100.0], "dte": (exp - fd).days,
            "cp": ["C", "P", "C", "P"], "oi": [100.0, 200.0, 300.0, 400.0], "gamma": 0.001, "delta": 0.5,
            "iv": 0.15, "bid": 10.0, "ask": 11.0, "expiration": exp, "flag": flag}))
    pd.concat(frames, ignore_index=True).to_parquet(path)
    return path


def test_eod_archive_trading_dates_without_shared_data(tmp_path):
    path = _tiny_eod_archive(tmp_path / "tiny.parquet", {
        "2024-03-01": ("2024-03-01", "OK", 5100.0),
        "2024-03-02": ("2024-03-01", "DROP: weekend duplicate", 5100.0),   # a repeat of a served session
        "2024-03-05": ("2024-03-04", "MISLABELED: prices of 03-04", 5050.0),  # the only copy of 03-04
        "2024-03-06": ("2024-03-06", "OK", 5080.0),
    })
    cat = scan(path)
    assert list(zip(cat["date"], cat["file_date"], cat["status"], strict=True)) == [
        (dt.date(2024, 3, 1), dt.date(2024, 3, 1), "ok"),
        (dt.date(2024, 3, 2), dt.date(2024, 3, 2), "skipped"),
        (dt.date(2024, 3, 4), dt.date(2024, 3, 5), "ok"),
        (dt.date(2024, 3, 6), dt.date(2024, 3, 6), "ok")]
    snap = read_chain(path, date="2024-03-04")
    assert (snap.snapshot_date, snap.spot) == (dt.date(2024, 3, 4), 5050.0)
    assert snap.quote_time == pd.Timestamp("2024-03-04 16:00").tz_localize(NY)
    with pytest.raises(SnapshotNotFoundError, match="labelled 2024-03-05 holds the close of 2024-03-04"):
        read_chain(path, date="2024-03-05")
    assert [s.snapshot_date for s in read_chains(path)] == [dt.date(2024, 3, 1), dt.date(2024, 3, 4),
                                                            dt.date(2024, 3, 6)]
    assert [s.spot for s in read_chains(path)] == [5100.0, 5050.0, 5080.0]


def test_weekend_download_gets_the_previous_session_as_trading_date(tmp_path):
    """A Cboe CSV downloaded on a Sunday (or a holiday, or before the open) is the previous session's
    snapshot; the quote time stays the header's and the perfiliev weekday count starts from it."""
    from research_lib.core import gex

    def write(name, header):
        text = ("\nS&P 500 INDEX,Last: 4697.24,Change: 0\n"
                f'"Date: {header}",Bid: 0,Ask: 0,Size: 0*0,Volume: 0\n'
                "Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,Strike,Puts,"
                "Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest\n"
                "Fri Jan 05 2024,SPXW240105C04700000,1,0,1,1.1,0,0.1,0.5,0.01,100,4700.00,SPXW240105P04700000,"
                "1,0,1,1.1,0,0.1,-0.5,0.01,100\n"
                "Mon Jan 08 2024,SPXW240108C04700000,1,0,1,1.1,0,0.12,0.5,0.01,200,4700.00,SPXW240108P04700000,"
                "1,0,1,1.1,0,0.12,-0.5,0.01,300\n")
        (tmp_path / name).write_text(text)
        return tmp_path / name

    cases = {"January 7, 2024 at 10:52 AM EST": dt.date(2024, 1, 5),   # Sunday
             "January 6, 2024 at 9:00 PM EST": dt.date(2024, 1, 5),     # Saturday
             "January 8, 2024 at 8:00 AM EST": dt.date(2024, 1, 5),     # Monday before the open
             "January 5, 2024 at 4:31 PM EST": dt.date(2024, 1, 5),     # Friday after the close
             "January 5, 2024 at 11:00 AM EST": dt.date(2024, 1, 5)}    # Friday, in the session
    for i, (header, trading) in enumerate(cases.items()):
        snap = read_chain(write(f"f{i}.csv", header))
        assert snap.snapshot_date == trading, header
        assert snap.quote_time.strftime("%B %-d, %Y") == header.split(" at ")[0]
        assert read_chain(tmp_path / f"f{i}.csv", date=trading.isoformat()).snapshot_date == trading
    sunday = read_chain(tmp_path / "f0.csv")
    # the published method counts weekdays from the header's date: the Friday expiry has expired, the
    # Monday one is floored at one day
    assert gex.weekday_count_start(sunday) == np.datetime64("2024-01-07")
    perf = gex.analyze(sunday, gex.GexConfig.perfiliev())
    assert perf.levels.n_expired == 2 and perf.levels.n_contracts == 2
    T = gex.time_to_expiry(sunday, gex.GexConfig.perfiliev())
    monday = (sunday.contracts["expiration"] == "2024-01-08").to_numpy()
    assert np.allclose(T[monday], 1 / 262) and (T[~monday] <= 0).all()


@pytest.fixture(params=["synthetic", *(["real"] if EOD_ARCHIVE.exists() else [])])
def eod(request):
    """An EOD archive: the synthetic one always (tests/fixtures.py), the real 2026 one when present.
    ``skipped``: a skipped day and its flag; ``before``: a day before the file; ``days``: three clean days;
    ``last``: the last day, its spot and a monthly expiry on it with an ATM strike; ``size``: contracts a day."""
    if request.param == "real":
        return types.SimpleNamespace(path=EOD_ARCHIVE, skipped=("2026-07-03", "HOLIDAY"), before="2025-01-02",
                                     days=["2026-06-12", "2026-07-02", "2026-08-05"], size=(20_000, 25_000),
                                     last=("2026-08-21", 7674.3701, "2026-09-18", 7700))
    syn = request.getfixturevalue("synthetic")
    return types.SimpleNamespace(path=syn.files["eod_archive"], skipped=("2024-03-02", "DROP_WEEKEND"),
                                 before="2024-01-02", days=["2024-03-01", "2024-03-04", "2024-03-05"],
                                 size=(800, 2_000), last=("2024-03-06", syn.chain.spot, "2024-03-15", 5150))


def test_eod_archive_skipped_day_says_why(eod):
    with pytest.raises(SnapshotNotFoundError, match=eod.skipped[1]):
        read_chain(eod.path, date=eod.skipped[0])
    with pytest.raises(SnapshotNotFoundError, match=f"no snapshot for {eod.before}"):
        read_chain(eod.path, date=eod.before)


def test_eod_archive_day_keeps_both_monthly_rows_as_separate_contracts(eod):
    path = eod.path
    day, spot, monthly, strike = eod.last
    raw = pd.read_parquet(path, filters=[("file_date", "==", pd.Timestamp(day))])
    snap = read_chain(path, date=day)
    c = snap.contracts
    assert len(c) == len(raw)  # nothing dropped
    assert c["open_interest"].sum() == raw["oi"].sum()
    assert snap.spot == pytest.approx(spot)
    assert snap.quote_time == pd.Timestamp(f"{day} 16:00").tz_localize(NY)
    # SPX rows are AM monthlies only; the next monthly has both roots on the same strike
    spx = c[c["root"] == "SPX"]
    assert (spx["settlement"] == "AM").all()
    assert set(spx["expiration"].dt.day_of_week) <= {3, 4}
    sep = c[(c["expiration"] == monthly) & (c["strike"] == strike) & (c["right"] == "P")]
    assert set(sep["root"]) == {"SPX", "SPXW"}
    if eod.path != EOD_ARCHIVE:  # the modelled chain lists no expired AM monthly: the rest is the real file's
        return
    # the AM monthly expiring on the snapshot date was settled at the open: no quotes left
    am_today = c[(c["root"] == "SPX") & (c["expiration"] == "2026-08-21")]
    assert len(am_today) and am_today["ask"].fillna(0).eq(0).all()


def test_eod_archive_reads_every_clean_day(eod):
    snaps = list(read_chains(eod.path, dates=eod.days))
    assert [s.snapshot_date for s in snaps] == [dt.date.fromisoformat(d) for d in eod.days]
    for s in snaps:
        assert eod.size[0] < len(s.contracts) < eod.size[1]


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if INTRADAY_ARCHIVE.exists() else [])])
def test_intraday_archive(name, request):
    if name == "real":
        path, n, skipped, day, roots = (INTRADAY_ARCHIVE, 58, {dt.date(2019, 5, 27), dt.date(2019, 7, 4)},
                                        "2019-06-03", {"SPX", "SPXW"})
    else:  # Presidents' Day 2024-02-19 repeats 02-16; the nearest six expiries are all SPXW
        path, n, skipped, day, roots = (request.getfixturevalue("synthetic").files["intraday_archive"], 3,
                                        {dt.date(2024, 2, 19)}, "2024-02-16", {"SPXW"})
    cat = scan(path)
    assert len(cat) == n
    assert set(cat.loc[cat["status"] == "skipped", "date"]) == skipped
    snap = read_chain(path, date=day)
    assert snap.underlying == "SPX"
    assert set(snap.contracts["root"]) == roots
    assert any("12:45" in n for n in snap.notes)
    raw = pd.read_parquet(path, filters=[("quotedate", "==", pd.Timestamp(day))])
    assert snap.spot == pytest.approx(raw["underlying_last"].iloc[0])
    assert len(snap.contracts) == len(raw)


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if IVOL_FILE.exists() else [])])
def test_ivolatility_file(name, request):
    if name == "real":
        path, days, rows, want_roots, spot = (IVOL_FILE, [dt.date(2011, 1, d) for d in (3, 4, 5, 6, 7)], 9832,
                                              {"SPX", "SPXPM", "SPXW"}, 1271.87)
    else:  # two days of the synthetic chain, its six nearest expiries
        syn = request.getfixturevalue("synthetic")
        path, days, want_roots = syn.files["ivolatility"], sorted(syn.ivol_snaps), {"SPXW"}
        rows, spot = sum(len(s.contracts) for s in syn.ivol_snaps.values()), syn.ivol_snaps[days[0]].spot
    cat = scan(path)
    assert list(cat["date"]) == days
    snaps = list(read_chains(path))
    assert len(snaps) == len(days)
    assert sum(len(s.contracts) for s in snaps) == rows
    roots = set().union(*(set(s.contracts["root"]) for s in snaps))
    assert roots == want_roots
    first = snaps[0]
    assert first.spot == pytest.approx(spot)
    assert set(first.contracts.loc[first.contracts["root"] == "SPXPM", "settlement"]) == (
        {"PM"} if name == "real" else set())
    # iVolatility's -1 "no value" IV is read as missing, not rejected and not kept as -1
    assert not (first.contracts["iv"] < 0).any()
    assert any("iv = -1" in n for n in first.notes)


def test_gzipped_quote_table_is_detected(tmp_path, quote_csv):
    src = quote_csv.path
    gz = tmp_path / "spy.csv.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    assert detect_format(gz).name == "cboe_csv"
    pd.testing.assert_frame_equal(read_chain(gz).contracts, read_chain(src).contracts)


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if (QUOTEDATA / "spx_2024-01-07.csv").exists() else [])])
def test_numeric_values_survive_reading(name, request):
    if name == "real":
        path = shared_file(QUOTEDATA / "spx_2024-01-07.csv")
        # "Fri Jan 05 2024,SPXW240105C01200000,3499.25,-1.1,3492.4,3501.3,1,0,0,0,24,1200.00,..."
        key, want = ("SPXW", "2024-01-05", 1200, "C"), (3499.25, 3492.4, 3501.3, 1.0, 24.0)
    else:  # a deep in-the-money call of the synthetic chain: gamma rounds to 0 (written 0, read as missing)
        syn = request.getfixturevalue("synthetic")
        path, c = syn.files["cboe_csv"], syn.chain.contracts
        deep = c[(c["right"] == "C") & c["gamma"].isna() & c["last"].notna() & (c["root"] == "SPXW")].iloc[0]
        key = (deep["root"], deep["expiration"], deep["strike"], "C")
        want = tuple(float(deep[k]) for k in ("last", "bid", "ask", "volume", "open_interest"))
    snap = read_chain(path)
    c = snap.contracts
    row = c[(c["root"] == key[0]) & (c["expiration"] == key[1]) & (c["strike"] == key[2]) & (c["right"] == key[3])]
    row = row.iloc[0]
    assert (row["last"], row["bid"], row["ask"], row["volume"], row["open_interest"]) == want
    assert np.isnan(row["gamma"]) and (name != "real" or np.isnan(row["iv"]))
