"""Every reader on a synthetic file of its format (tests/fixtures.py): no ../shared needed.

Each file holds the modelled chain (known spot, date and contracts) written in a real layout; the test
asserts that format detection names the format and that reading it back gives the snapshot's values.
"""

from __future__ import annotations

import datetime as dt
import gzip

import numpy as np
import pandas as pd
import pytest
from fixtures import CHAIN_DATE, EOD_DAYS, SyntheticData, market_frame, write_cboe_csv

from research_lib.core.chain import CONTRACT_COLUMNS, NY, ChainError
from research_lib.data.sources import SnapshotNotFoundError, detect_format, read_chain, read_chains, scan

KEY = ["root", "expiration", "strike", "right"]
SINGLE = [k for k, f in SyntheticData.FORMATS.items() if f in ("cboe_csv", "cboe_dat", "cboe_json")]


def _sorted(c: pd.DataFrame) -> pd.DataFrame:
    return c.sort_values(KEY).reset_index(drop=True)


def assert_same_contracts(got: pd.DataFrame, want: pd.DataFrame, *, columns=None) -> None:
    """Same contracts, same values (NaN where the snapshot has NaN) on ``columns``."""
    got, want = _sorted(got), _sorted(want)
    assert list(got.columns) == list(CONTRACT_COLUMNS)
    assert len(got) == len(want)
    for col in columns or CONTRACT_COLUMNS:
        if got[col].dtype.kind in "fi":
            np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=0, atol=1e-9,
                                       equal_nan=True, err_msg=col)
        else:
            assert (got[col].to_numpy() == want[col].to_numpy()).all(), col


@pytest.mark.parametrize("name", sorted(SyntheticData.FORMATS))
def test_each_synthetic_file_is_detected_as_its_format(synthetic, name):
    assert detect_format(synthetic.files[name]).name == SyntheticData.FORMATS[name]


@pytest.mark.parametrize("name", SINGLE)
def test_single_snapshot_files_read_back_the_modelled_chain(synthetic, name):
    chain = synthetic.chain
    snap = read_chain(synthetic.files[name])
    assert (snap.underlying, snap.snapshot_date) == ("SPX", CHAIN_DATE)
    assert snap.spot == pytest.approx(chain.spot, abs=5e-5)
    assert snap.quote_time == pd.Timestamp("2024-03-06 16:00").tz_localize(NY) == chain.quote_time
    assert snap.spot == pytest.approx(market_frame()["spx"].iloc[-1])  # the history's close of that day
    assert_same_contracts(snap.contracts, chain.contracts)
    # SPX (AM monthly) and SPXW (PM) on the same monthly strike stay two contracts
    c = snap.contracts
    assert set(c["root"]) == {"SPX", "SPXW"}
    assert dict(c.groupby("root")["settlement"].agg(lambda s: set(s)).items()) == {"SPX": {"AM"}, "SPXW": {"PM"}}
    # the vendor's 0 (a gamma that rounds to 0) is read as missing
    assert not (c["gamma"] == 0).any() and c["gamma"].isna().any()
    assert read_chain(synthetic.files[name], date=CHAIN_DATE.isoformat()).snapshot_date == CHAIN_DATE
    with pytest.raises(SnapshotNotFoundError, match="one snapshot"):
        read_chain(synthetic.files[name], date="2024-03-07")
    cat = scan(synthetic.files[name])
    assert list(cat["date"]) == [CHAIN_DATE] and list(cat["rows"]) == [len(chain.contracts)]


def test_eod_archive_catalogue_and_days(synthetic):
    path = synthetic.files["eod_archive"]
    cat = scan(path)
    assert list(cat["file_date"]) == sorted(EOD_DAYS)
    assert list(cat["status"]) == ["ok", "skipped", "ok", "ok", "ok"]
    weekend = cat[cat["file_date"] == dt.date(2024, 3, 2)].iloc[0]
    assert "2024-03-01, a session served by its own file" in weekend["reason"] and "DROP_WEEKEND" in weekend["reason"]
    # the latest clean day by default; every clean day through read_chains
    last = read_chain(path)
    assert last.snapshot_date == CHAIN_DATE
    snaps = list(read_chains(path))
    assert [s.snapshot_date for s in snaps] == [dt.date(2024, 3, d) for d in (1, 4, 5, 6)]
    for s in snaps:
        want = synthetic.eod_snaps[s.snapshot_date]
        assert s.spot == want.spot and s.quote_time == pd.Timestamp(f"{s.snapshot_date} 16:00").tz_localize(NY)
        kept = want.contracts[want.contracts["open_interest"] > 0]  # the archive keeps OI > 0 only
        # no last or volume in the archive; the roots come back from Cboe's symbol order
        assert_same_contracts(s.contracts, kept, columns=[c for c in CONTRACT_COLUMNS if c not in ("last", "volume")])
        assert s.contracts["last"].isna().all()
    with pytest.raises(SnapshotNotFoundError, match="DROP_WEEKEND"):
        read_chain(path, date="2024-03-02")
    with pytest.raises(SnapshotNotFoundError, match=r"no snapshot for 2024-03-07 \(the file covers"):
        read_chain(path, date="2024-03-07")


def test_intraday_archive_days_and_assumed_time(synthetic):
    path = synthetic.files["intraday_archive"]
    cat = scan(path)
    assert list(cat["status"]) == ["ok", "skipped", "ok"] and "not an NYSE session" in cat["reason"].iloc[1]
    for day, want in synthetic.intraday_snaps.items():
        snap = read_chain(path, date=day.isoformat())
        assert snap.spot == want.spot and snap.quote_time == pd.Timestamp(f"{day} 12:45").tz_localize(NY)
        assert any("12:45" in n for n in snap.notes)
        assert_same_contracts(snap.contracts, want.contracts)
    with pytest.raises(SnapshotNotFoundError, match="skipped"):
        read_chain(path, date="2024-02-19")


@pytest.mark.parametrize("name", ["ivolatility", "ivolatility_plain"])
def test_ivolatility_days_and_missing_iv(synthetic, name):
    path = synthetic.files[name]
    assert list(scan(path)["date"]) == sorted(synthetic.ivol_snaps)
    snaps = list(read_chains(path))
    assert [s.snapshot_date for s in snaps] == sorted(synthetic.ivol_snaps)
    for s in snaps:
        want = synthetic.ivol_snaps[s.snapshot_date]
        assert s.spot == want.spot and s.quote_time == pd.Timestamp(f"{s.snapshot_date} 16:00").tz_localize(NY)
        # no last in the file; -1 IV (iVolatility's "no value") read as missing
        assert_same_contracts(s.contracts, want.contracts, columns=[c for c in CONTRACT_COLUMNS if c != "last"])
        n_missing = int(want.contracts["iv"].isna().sum())
        assert any(f"{n_missing} rows with iv = -1" in n for n in s.notes)


def test_gzipped_files_read_like_the_plain_ones(synthetic):
    for plain, gz in (("cboe_csv", "cboe_csv_gz"), ("cboe_json", "cboe_json_gz"), ("ivolatility_plain", "ivolatility")):
        assert synthetic.files[gz].read_bytes()[:2] == b"\x1f\x8b"
        a, b = read_chain(synthetic.files[plain]), read_chain(synthetic.files[gz])
        pd.testing.assert_frame_equal(a.contracts, b.contracts)
        assert (a.spot, a.quote_time, a.snapshot_date) == (b.spot, b.quote_time, b.snapshot_date)


def test_a_corrupt_synthetic_quote_table_names_the_column(synthetic, tmp_path):
    lines = synthetic.files["cboe_csv"].read_text().splitlines()
    parts = lines[10].split(",")
    parts[10] = "lots"  # the call's open interest
    lines[10] = ",".join(parts)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ChainError, match=r"open_interest.*1 bad row.*lots"):
        read_chain(bad)
    parts = synthetic.files["cboe_csv"].read_text().splitlines()[10].split(",")
    parts[11] = "99999.00"
    lines[10] = ",".join(parts)
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ChainError, match="Strike disagrees with the OCC symbol"):
        read_chain(bad)


def test_a_weekend_download_of_the_synthetic_chain_is_fridays_snapshot(synthetic, tmp_path):
    """The Sunday download of Friday's close: quote time the header's, trading date the Friday."""
    friday = synthetic.eod_snaps[dt.date(2024, 3, 1)]
    sunday = friday.replace(quote_time=pd.Timestamp("2024-03-03 10:52").tz_localize(NY))
    snap = read_chain(write_cboe_csv(tmp_path / "sunday.csv", sunday))
    assert snap.snapshot_date == dt.date(2024, 3, 1)
    assert snap.quote_time == pd.Timestamp("2024-03-03 10:52").tz_localize(NY)
    assert read_chain(tmp_path / "sunday.csv", date="2024-03-03").snapshot_date == dt.date(2024, 3, 1)


def test_market_history_files_load_with_their_values(synthetic):
    from research_lib import market

    f = market_frame()
    d = synthetic.market_dir
    spx = market.load_index_daily("SPX", market_dir=d)
    assert spx.index.equals(f.index) and np.allclose(spx["close"], f["spx"])
    assert np.allclose(spx["total_return_close"], f["spxtr"])
    vix = market.load_vix_family(market_dir=d)
    assert vix["vix"].iloc[-1] == pytest.approx(15.0)
    assert np.allclose(vix.loc[f.index, "vix3m"], f["vix3m"])
    gex = market.load_published_gex(market_dir=d)
    assert np.allclose(gex["gex"], f["sm_gex"]) and np.allclose(gex["dix"], f["dix"])
    rates = market.load_rates(market_dir=d)
    assert len(rates) and rates.index[-1] <= f.index[-1]
    assert 0.045 < market.risk_free_rate(CHAIN_DATE, market_dir=d) < 0.06
    # the total-return file grows 1.3%/yr faster than the price: that is the implied yield
    assert market.dividend_yield(CHAIN_DATE, market_dir=d).value == pytest.approx(0.013, abs=0.002)


def test_gzip_of_a_csv_header_only_is_an_empty_chain(synthetic, tmp_path):
    head = synthetic.files["cboe_csv"].read_text().splitlines()[:4]
    p = tmp_path / "head.csv.gz"
    p.write_bytes(gzip.compress(("\n".join(head) + "\n").encode()))
    with pytest.raises(ChainError, match="no rows"):
        read_chain(p)
