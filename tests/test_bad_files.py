"""Damaged and implausible chain files (issue 9, section 7).

Every corrupted variant is built at test time, from a small modelled chain written in a real file
format (so a fresh clone without ../shared tests it) and, when ../shared/data is present, from the
real files. Each goes through the command line (``gex``, ``decide --source``, ``import``) in-process:

* unreadable files (damaged Parquet pages, a truncated ``.csv.gz``, a CSV cut mid-row, a directory)
  exit 3 with ONE stderr line naming the file, no traceback;
* impossible chains (spot ×1e5, one open interest of 9e8, IV = 99 everywhere, IV and gamma swapped)
  exit 3 with :class:`ImplausibleChainError` naming the check;
* suspicious chains (a spot digit flipped, open interest and volume swapped) exit 0 with a
  ``WARNING:`` line in the table and ``warnings`` in the JSON;
* all open interest 0 exits 4, "nothing to compute".
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import EOD_ARCHIVE, INTRADAY_ARCHIVE, IVOL_FILE, QUOTEDATA, all_chain_files, shared_file

from research_lib.cli import EXIT_BAD_INPUT, EXIT_NO_RESULT, EXIT_OK, main
from research_lib.core import gex, plausibility
from research_lib.core.chain import ChainError, ImplausibleChainError, UnreadableFileError
from research_lib.data.modelled import modelled_chain
from research_lib.data.sources import read_chain, read_chains, scan

HEADER = ["Expiration Date", "Calls", "Last Sale", "Net", "Bid", "Ask", "Volume", "IV", "Delta", "Gamma",
          "Open Interest", "Strike", "Puts", "Last Sale", "Net", "Bid", "Ask", "Volume", "IV", "Delta",
          "Gamma", "Open Interest"]
# Column positions in a row of the Cboe quote table: (call, put).
COL = {"volume": (6, 17), "iv": (7, 18), "gamma": (9, 20), "open_interest": (10, 21)}


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------------------------------
# writers: a snapshot in the Cboe quote-table CSV and in the EOD-archive Parquet layout


@pytest.fixture(scope="module")
def chain():
    """A modelled SPX chain cut to the expiries of the next ~45 days (a few thousand contracts)."""
    snap = modelled_chain("SPX", date="2024-01-05", quote_time="2024-01-05 15:00")
    c = snap.contracts
    keep = c["expiration"] <= pd.Timestamp("2024-02-20")
    return snap.replace(contracts=c[keep].reset_index(drop=True))


def _num(x) -> str:
    return "" if pd.isna(x) else f"{x:.10g}"


def write_cboe_csv(snap, path, *, gz: bool = False) -> None:
    """``snap`` as a Cboe "download CSV" quote table (one row per root, expiry and strike)."""
    c = snap.contracts
    keys = ["root", "expiration", "strike"]
    calls, puts = c[c["right"] == "C"], c[c["right"] == "P"]
    wide = calls.merge(puts, on=keys, how="outer", suffixes=("_c", "_p")).sort_values(keys)
    qt = snap.quote_time
    lines = ["", f"Standard & Poors 500 Index,Last: {snap.spot:.4f},Change: 0",
             f'"Date: {qt:%B %d, %Y at %I:%M %p} {qt.tzname()}",Bid: 0,Ask: 0,Size: 0*0,Volume: 0',
             ",".join(HEADER)]
    for row in wide.itertuples(index=False):
        r = row._asdict()
        exp = pd.Timestamp(r["expiration"])

        def side(r, exp, s, right):
            if pd.isna(r[f"open_interest_{s}"]):
                return [""] * 10
            sym = f"{r['root']}{exp:%y%m%d}{right}{round(r['strike'] * 1000):08d}"
            return [sym, _num(r[f"last_{s}"]), "0", _num(r[f"bid_{s}"]), _num(r[f"ask_{s}"]),
                    _num(r[f"volume_{s}"]), _num(r[f"iv_{s}"]), _num(r[f"delta_{s}"]), _num(r[f"gamma_{s}"]),
                    _num(r[f"open_interest_{s}"])]

        lines.append(",".join([f"{exp:%a %b %d %Y}", *side(r, exp, "c", "C"), f"{r['strike']:.2f}",
                                *side(r, exp, "p", "P")]))
    text = "\n".join(lines) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


def write_eod_parquet(snap, path, *, compression: str) -> None:
    """``snap`` as one clean day of the SPX EOD archive (SPX rows before SPXW, as Cboe orders them)."""
    c = snap.contracts
    day = pd.Timestamp(snap.snapshot_date)
    n = len(c)
    table = pd.DataFrame({
        "file_date": [day] * n, "price_date": [day] * n, "feed_timestamp": [f"{day:%Y-%m-%d} 16:15:00"] * n,
        "spot": snap.spot, "strike": c["strike"], "dte": (c["expiration"] - day).dt.days.astype("int64"),
        "cp": c["right"], "oi": c["open_interest"], "gamma": c["gamma"].fillna(0.0), "delta": c["delta"],
        "iv": c["iv"].fillna(0.0), "bid": c["bid"], "ask": c["ask"], "expiration": c["expiration"],
        "flag": "OK"})
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path, compression=compression,
                   data_page_size=4096)


def damage_data_pages(src, dst) -> None:
    """Copy ``src`` with the middle of every column chunk's pages overwritten (headers and footer kept)."""
    data = bytearray(src.read_bytes())
    md = pq.ParquetFile(src).metadata
    for rg in range(md.num_row_groups):
        for ci in range(md.num_columns):
            col = md.row_group(rg).column(ci)
            start = col.dictionary_page_offset or col.data_page_offset
            size = col.total_compressed_size
            if size < 400:
                continue
            for i in range(start + size // 3, start + 2 * size // 3, 5):
                data[i] ^= 0x5A
    dst.write_bytes(bytes(data))


def edit_cboe_csv(src, dst, edit) -> None:
    """Copy a Cboe quote table with ``edit(spot_line_fields, rows)`` applied (rows: lists of fields)."""
    raw = src.read_bytes()
    text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8-sig")
    lines = text.splitlines()
    h = next(i for i, ln in enumerate(lines) if ln.startswith("Expiration Date,Calls,"))
    first = next(csv.reader([lines[h - 2]]))
    rows = [next(csv.reader([ln])) for ln in lines[h + 1:] if ln.strip()]
    edit(first, rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    buf.write("\n".join(lines[:h - 2]) + ("\n" if h >= 3 else ""))
    w.writerow(first)
    buf.write(lines[h - 1] + "\n" + lines[h] + "\n")
    w.writerows(rows)
    dst.write_text(buf.getvalue())


# --------------------------------------------------------------------------------------------------
# 1. unreadable files: exit 3, one line naming the file, in gex, decide --source and import


def _assert_bad_input(path, tmp_path, monkeypatch, *, name=None, scan=True):
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "store"))
    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    commands = [["gex", path], ["gex", path, "--date", "all"], ["decide", "--source", path, "--no-log"],
                ["import", path]]
    for argv in commands + ([["scan", path]] if scan else []):
        code, _, err = run(*argv)
        assert code == EXIT_BAD_INPUT, (argv, code, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, (argv, err)
        assert str(name or path) in lines[0] and "UnreadableFileError" in lines[0], (argv, err)
    return lines[0]


@pytest.mark.parametrize("compression, low_level", [("zstd", "ZSTD|end of stream|decompress"),
                                                    ("snappy", "snappy|end of stream|decompress")])
def test_damaged_parquet_pages(chain, tmp_path, monkeypatch, compression, low_level):
    good = tmp_path / "good.parquet"
    write_eod_parquet(chain, good, compression=compression)
    assert len(read_chain(good).contracts) == len(chain.contracts)  # the writer is right
    bad = tmp_path / f"bad_{compression}.parquet"
    damage_data_pages(good, bad)
    with pytest.raises(UnreadableFileError, match=low_level) as info:
        read_chain(bad)
    assert isinstance(info.value.__cause__, OSError)  # pyarrow's own error, kept as the cause
    # scan reads only the date and flag columns: it lists the days of a file whose data pages are bad
    _assert_bad_input(bad, tmp_path, monkeypatch, scan=False)


def test_truncated_csv_gz(chain, tmp_path, monkeypatch):
    good = tmp_path / "chain.csv.gz"
    write_cboe_csv(chain, good, gz=True)
    assert len(read_chain(good).contracts) == len(chain.contracts)
    bad = tmp_path / "cut.csv.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UnreadableFileError, match="truncated or damaged compressed data") as info:
        read_chain(bad)
    assert isinstance(info.value.__cause__, EOFError)
    _assert_bad_input(bad, tmp_path, monkeypatch)


@pytest.mark.parametrize("where", ["first row", "middle"])
def test_csv_cut_mid_row(chain, tmp_path, monkeypatch, where):
    good = tmp_path / "chain.csv"
    write_cboe_csv(chain, good)
    text = good.read_text()
    header_end = text.index("Open Interest\n") + len("Open Interest\n")
    cut = header_end + 40 if where == "first row" else text.index("\n", len(text) // 2) + 60
    bad = tmp_path / "cut.csv"
    bad.write_text(text[:cut])
    # before: "bad option: Too many columns specified" (exit 2) / "open interest is required"
    with pytest.raises(UnreadableFileError, match="last row is cut short"):
        read_chain(bad)
    _assert_bad_input(bad, tmp_path, monkeypatch)


def test_directory_is_not_a_file(tmp_path, monkeypatch):
    folder = tmp_path / "chains"
    folder.mkdir()
    with pytest.raises(UnreadableFileError, match="is a directory; give a chain file"):
        read_chain(folder)
    with pytest.raises(UnreadableFileError, match="is a directory"):
        scan(folder)
    code, _, err = run("gex", folder)
    assert code == EXIT_BAD_INPUT and "is a directory" in err and "no such file" not in err


def test_named_errors_pass_unchanged(tmp_path):
    """The edge wraps only low-level failures: library errors keep their class."""
    p = tmp_path / "x.csv"
    p.write_text("hello,world\n1,2\n")
    with pytest.raises(ChainError) as info:
        read_chain(p)
    assert type(info.value).__name__ == "UnknownFormatError"
    with pytest.raises(FileNotFoundError):
        read_chain(tmp_path / "missing.csv")


def test_real_parquet_archives_damaged(tmp_path, monkeypatch):
    for src in (shared_file(EOD_ARCHIVE), shared_file(INTRADAY_ARCHIVE)):
        bad = tmp_path / f"bad_{src.name}"
        damage_data_pages(src, bad)
        with pytest.raises(UnreadableFileError, match=r"damaged or truncated file \(OSError: "):
            list(read_chains(bad))
        monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "store"))
        for argv in (["gex", bad, "--date", "all"], ["import", bad]):
            code, _, err = run(*argv)
            assert code == EXIT_BAD_INPUT and len(err.strip().splitlines()) == 1 and str(bad) in err, err


def test_real_truncated_files(tmp_path, monkeypatch):
    gz = shared_file(IVOL_FILE)
    bad = tmp_path / gz.name
    bad.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    _assert_bad_input(bad, tmp_path, monkeypatch)
    src = shared_file(QUOTEDATA / "spx_2024-01-07.csv")
    text = src.read_text()
    for cut in (text.index("\n", 2000) + 30, len(text) // 2, len(text) - 5):
        bad = tmp_path / "spx_cut.csv"
        bad.write_text(text[:cut])
        _assert_bad_input(bad, tmp_path, monkeypatch)


# --------------------------------------------------------------------------------------------------
# 2. implausible data: an error for the impossible, a visible warning for the suspicious


def _spot_times(factor):
    def edit(first, rows):
        i = next(k for k, f in enumerate(first) if f.strip().startswith("Last:"))
        first[i] = f"Last: {float(first[i].split(':')[1]) * factor:.4f}"
    return edit


def _set_spot(text):
    def edit(first, rows):
        i = next(k for k, f in enumerate(first) if f.strip().startswith("Last:"))
        first[i] = f"Last: {text}"
    return edit


def _one_huge_oi(first, rows):
    rows[len(rows) // 2][COL["open_interest"][0]] = "900000000"


def _iv_everywhere(first, rows):
    for r in rows:
        for i in COL["iv"]:
            if r[i - 6]:
                r[i] = "99"


def _swap(a, b):
    def edit(first, rows):
        for r in rows:
            for i, j in zip(COL[a], COL[b], strict=True):
                r[i], r[j] = r[j], r[i]
    return edit


def _all_oi_zero(first, rows):
    for r in rows:
        for i in COL["open_interest"]:
            if r[i - 9]:
                r[i] = "0"


ERRORS = {  # edit → the check named by ImplausibleChainError
    "spot x 1e5": (_spot_times(1e5), "spot|forward"),
    "one open interest 9e8": (_one_huge_oi, "open_interest"),
    "IV = 99 everywhere": (_iv_everywhere, "iv"),
    "IV and gamma swapped": (_swap("iv", "gamma"), "iv_gamma_swapped"),
}


def _variant(src, tmp_path, edit, name="variant.csv"):
    dst = tmp_path / name
    edit_cboe_csv(src, dst, edit)
    return dst


def _assert_impossible(path, check):
    with pytest.raises(ImplausibleChainError) as info:
        read_chain(path)
    assert re.fullmatch(check, info.value.check), info.value
    code, out, err = run("gex", path)
    assert code == EXIT_BAD_INPUT and out == "" and len(err.strip().splitlines()) == 1, err
    assert "ImplausibleChainError" in err and path.name in err


def _assert_warned(path, pattern):
    snap = read_chain(path)
    assert any(re.search(pattern, w) for w in snap.warnings), snap.warnings
    code, out, err = run("gex", path)
    assert code == EXIT_OK, err
    warned = [ln for ln in out.splitlines() if ln.strip().startswith("WARNING:")]
    assert warned and any(re.search(pattern, ln) for ln in warned), out
    code, out, _ = run("gex", path, "--json")
    record = json.loads(out)
    assert code == EXIT_OK and record["warnings"] == list(snap.warnings)
    return snap


@pytest.fixture(scope="module")
def synthetic_csv(chain, tmp_path_factory):
    path = tmp_path_factory.mktemp("chain") / "modelled_spx.csv"
    write_cboe_csv(chain, path)
    return path


def test_synthetic_chain_is_clean(synthetic_csv, chain):
    snap = read_chain(synthetic_csv)
    assert snap.warnings == () and chain.warnings == ()
    assert len(snap.contracts) == len(chain.contracts)


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_impossible_chain_is_an_error(synthetic_csv, tmp_path, case):
    edit, check = ERRORS[case]
    _assert_impossible(_variant(synthetic_csv, tmp_path, edit), check)


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_impossible_real_chain_is_an_error(tmp_path, case):
    edit, check = ERRORS[case]
    _assert_impossible(_variant(shared_file(QUOTEDATA / "spx_2024-01-07.csv"), tmp_path, edit), check)


def test_spot_digit_flipped_warns(synthetic_csv, chain, tmp_path):
    flipped = f"{chain.spot * 1.064:.4f}"  # 4697 -> 4997 is +6.4%
    snap = _assert_warned(_variant(synthetic_csv, tmp_path, _set_spot(flipped)), r"put-call-parity forward")
    assert "+6.4%" in snap.warnings[0]


def test_real_spot_digit_flipped_warns(tmp_path):
    src = shared_file(QUOTEDATA / "spx_2024-01-07.csv")
    snap = _assert_warned(_variant(src, tmp_path, _set_spot("4997.2402")), r"put-call-parity forward")
    assert "4,997.24" in snap.warnings[0]


@pytest.mark.parametrize("real", [False, *([True] if (QUOTEDATA / "spx_2024-01-07.csv").exists() else [])],
                         ids=lambda real: "real" if real else "modelled")
def test_open_interest_and_volume_swapped_warns(synthetic_csv, tmp_path, real):
    src = shared_file(QUOTEDATA / "spx_2024-01-07.csv") if real else synthetic_csv
    _assert_warned(_variant(src, tmp_path, _swap("open_interest", "volume")),
                   r"volume and open interest columns swapped")


@pytest.mark.parametrize("real", [False, *([True] if (QUOTEDATA / "spx_2024-01-07.csv").exists() else [])],
                         ids=lambda real: "real" if real else "modelled")
def test_all_open_interest_zero_is_nothing_to_compute(synthetic_csv, tmp_path, real):
    src = shared_file(QUOTEDATA / "spx_2024-01-07.csv") if real else synthetic_csv
    path = _variant(src, tmp_path, _all_oi_zero)
    with pytest.raises(gex.NoExposureError, match="open interest 0"):
        gex.analyze(read_chain(path))
    code, out, err = run("gex", path)
    assert code == EXIT_NO_RESULT and out == "" and "nothing to compute" in err, err


def test_decide_shows_the_warning(synthetic_csv, chain, tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "store"))
    path = _variant(synthetic_csv, tmp_path, _set_spot(f"{chain.spot * 1.064:.4f}"))
    code, out, err = run("decide", "--source", path, "--no-log", "--json")
    assert code == EXIT_OK, err
    assert json.loads(out)["levels"]["warnings"] == list(read_chain(path).warnings) != []


# --------------------------------------------------------------------------------------------------
# 3. the checks themselves


def _table(chain, **changes):
    c = chain.contracts.copy()
    for col, value in changes.items():
        c[col] = value
    return c


def test_parity_forward_of_the_modelled_chain(chain):
    fwd, n = plausibility.parity_forward(chain.contracts, chain.snapshot_date)
    assert n == plausibility.LIMITS.forward_expiries
    assert fwd == pytest.approx(chain.spot, rel=2e-3)  # r = q = 0: F = S up to the quotes' ticks


def test_forward_thresholds(chain):
    c = chain.contracts
    limits = plausibility.LIMITS
    ok = plausibility.check_chain(c, spot=chain.spot * (1 + limits.forward_warn / 2), snapshot_date=chain.snapshot_date)
    assert ok == ()
    warned = plausibility.check_chain(c, spot=chain.spot * (1 + 2 * limits.forward_warn),
                                      snapshot_date=chain.snapshot_date)
    assert len(warned) == 1 and "put-call-parity forward" in warned[0]
    with pytest.raises(ImplausibleChainError, match="does not belong to these quotes") as info:
        plausibility.check_chain(c, spot=chain.spot * (1 + 1.5 * limits.forward_error),
                                 snapshot_date=chain.snapshot_date)
    assert info.value.check == "forward"


def test_flat_quotes_give_no_forward(chain):
    """A hand-built chain with one quote on every row says nothing about the forward: not judged."""
    c = _table(chain, bid=1.0, ask=1.1)
    assert plausibility.parity_forward(c, chain.snapshot_date) == (None, 0)
    assert plausibility.check_chain(c, spot=chain.spot * 1.5, snapshot_date=chain.snapshot_date) == ()


def test_spot_far_outside_the_strikes_without_quotes(chain):
    c = _table(chain, bid=np.nan, ask=np.nan)
    assert plausibility.check_chain(c, spot=chain.spot, snapshot_date=chain.snapshot_date) == ()
    with pytest.raises(ImplausibleChainError, match="far outside the strikes"):
        plausibility.check_chain(c, spot=chain.spot * 100, snapshot_date=chain.snapshot_date)


def test_iv_checks(chain):
    day = chain.snapshot_date
    with pytest.raises(ImplausibleChainError, match="percent written as decimal"):
        plausibility.check_chain(_table(chain, iv=chain.contracts["iv"] * 100), spot=chain.spot, snapshot_date=day)
    few = chain.contracts.copy()
    few.loc[few.index[:10], "iv"] = 20.0  # a few extreme deep rows: fine
    assert plausibility.check_chain(few, spot=chain.spot, snapshot_date=day) == ()
    many = chain.contracts.copy()
    many.loc[many.index[: len(many) * 2 // 5], "iv"] = 8.0  # 40% of the rows above 300%, median still sane
    warned = plausibility.check_chain(many, spot=chain.spot, snapshot_date=day)
    assert any("IVs are above" in w for w in warned)


def test_open_interest_share(chain):
    day = chain.snapshot_date
    c = chain.contracts.copy()
    c["open_interest"] = (c["open_interest"] / 10).round()  # keep the big contract below oi_contract_max
    total = c["open_interest"].sum()
    i = c.index[len(c) // 2]
    c.loc[i, "open_interest"] = total * 0.5  # one contract: a third of the new total
    warned = plausibility.check_chain(c, spot=chain.spot, snapshot_date=day)
    assert any("of the chain's open interest" in w for w in warned)
    c.loc[i, "open_interest"] = total * 3  # three quarters of the total
    with pytest.raises(ImplausibleChainError, match="corrupt open interest"):
        plausibility.check_chain(c, spot=chain.spot, snapshot_date=day)


def test_small_tables_are_not_judged(chain):
    c = chain.contracts.iloc[:10]
    assert plausibility.check_chain(c, spot=chain.spot * 1e5, snapshot_date=chain.snapshot_date) == ()


def test_no_real_file_trips_an_error_or_a_warning():
    """Every real file, and every 6th day of the archives (all 116 snapshots were measured, see the
    plausibility module; reading them all here would take a minute), plus the day with the largest
    honest forward gap (EOD 2026-06-24, -0.53%)."""
    files = all_chain_files()
    if not files:
        pytest.skip("../shared/data/chains is absent")
    n = 0
    for f in files:
        if f.parent.name == "cboe_quotedata":  # one snapshot each
            snaps = [read_chain(f)]
        else:
            days = scan(f)
            days = sorted(days.loc[days["status"] == "ok", "date"])
            sample = set(days[::6]) | ({pd.Timestamp("2026-06-24").date()} & set(days))
            snaps = read_chains(f, dates=sample)
        for snap in snaps:  # an ImplausibleChainError would fail here
            assert snap.warnings == (), (f.name, snap.snapshot_date, snap.warnings)
            n += 1
    assert n == 9 + 8 + 10 + 1  # quote tables, EOD (06-24 among them), intraday, iVolatility days


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if EOD_ARCHIVE.exists() else [])])
def test_checks_cost_a_few_ms(name, request):
    if name == "real":
        snap = read_chain(shared_file(EOD_ARCHIVE), date="2026-06-12")  # the largest day, 23,671 contracts
        assert len(snap.contracts) > 23_000
    else:  # the synthetic full chain (tests/fixtures.py), ~15k contracts
        snap = request.getfixturevalue("synthetic_chain")
        assert len(snap.contracts) > 14_000
    plausibility.check_chain(snap.contracts, spot=snap.spot, snapshot_date=snap.snapshot_date)
    t0 = time.perf_counter()
    for _ in range(10):
        plausibility.check_chain(snap.contracts, spot=snap.spot, snapshot_date=snap.snapshot_date)
    assert (time.perf_counter() - t0) / 10 < 0.05  # measured ~2.6 ms; a loose bound for a busy CI box


def test_store_round_trip_keeps_the_warning(synthetic_csv, chain, tmp_path):
    from research_lib.data.store import ChainStore

    snap = read_chain(_variant(synthetic_csv, tmp_path, _set_spot(f"{chain.spot * 1.064:.4f}")))
    assert snap.warnings
    store = ChainStore(tmp_path / "store")
    store.put(snap)
    assert store.get("SPX").warnings == snap.warnings
