"""The local Parquet store: round trips, idempotent imports, concurrent writers, crashes, corruption."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import EOD_ARCHIVE, INTRADAY_ARCHIVE, IVOL_FILE, QUOTEDATA, ROOT, shared_file
from hypothesis import HealthCheck, given, settings, strategies as st
from synthetic import snapshot

from research_lib.core.chain import NY, ChainSnapshot, ResearchLibError
from research_lib.data.sources import UnknownFormatError, read_chain, read_chains, scan
from research_lib.data.store import (
    CATALOGUE_COLUMNS,
    FORMAT_VERSION,
    METADATA_KEY,
    ChainStore,
    SnapshotNotStoredError,
    StoreEntry,
    StoreError,
    age,
    content_sha256,
    encode_snapshot,
    read_snapshot_file,
)

TESTS = Path(__file__).resolve().parent
ROWS = [(exp, k, r, 100.0 + k, 0.2 + k / 1000) for exp in ("2024-03-15", "2024-04-19")
        for k in range(90, 111, 5) for r in "CP"]
#: The rows the child processes below build (keep in step with WORKER and CRASHER).
CHILD_ROWS = [("2024-03-15", k, r, 100.0 + k, 0.2) for k in range(90, 111, 5) for r in "CP"]


def assert_same(got: ChainSnapshot, want: ChainSnapshot) -> None:
    """Every field equal, the contract table identical (dtypes, index, values, NaNs)."""
    pd.testing.assert_frame_equal(got.contracts, want.contracts, check_exact=True)
    for field in ("underlying", "spot", "source", "snapshot_date", "modelled", "notes"):
        assert getattr(got, field) == getattr(want, field), field
    assert got.quote_time == want.quote_time
    assert str(got.quote_time.tz) == "America/New_York"
    assert got.quote_time.unit == want.quote_time.unit


def files_in(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.parquet") if "chains" in p.parts and not p.name.startswith("."))


def temps_in(root: Path) -> list[Path]:
    return sorted(root.rglob(".tmp-*"))


def synth(quote_time="2024-03-01 12:00", **kw) -> ChainSnapshot:
    return snapshot(ROWS, quote_time=quote_time, **kw)


# --------------------------------------------------------------------------------------------------
# round trips


def test_round_trip_hand_built_snapshot_and_layout(tmp_path):
    base = synth("2024-03-01 12:34:56.789")
    table = base.contracts.copy()
    table.loc[0, ["bid", "last", "iv", "delta", "gamma"]] = np.nan       # missing vendor fields
    table.loc[1, "strike"] = 1e-3                                         # extreme but valid values
    table.loc[2, "open_interest"] = 0.0
    snap = ChainSnapshot.create(underlying="spx", spot=101.2345678901234, quote_time=base.quote_time,
                                source="tradier: SPX/chains?x=1 (ünïcode)", contracts=table,
                                snapshot_date=dt.date(2024, 2, 29), modelled=True,
                                notes=("first note", "ünïcode \"quoted\" note"))
    store = ChainStore(tmp_path)
    entry = store.put(snap)
    assert entry.created and not entry.replaced and entry.rows == len(snap.contracts)
    assert entry.sha256 == content_sha256(snap)

    rel = entry.path.relative_to(tmp_path)
    assert rel.parts[:3] == ("chains", "underlying=SPX", "date=2024-02-29")  # trading date, not quote date
    assert rel.name.startswith("123456_tradier-SPX-chains-x-1") and rel.suffix == ".parquet"
    assert (tmp_path / "catalogue.parquet").is_file()

    assert_same(store.get("SPX"), snap)
    assert_same(read_snapshot_file(entry.path), snap)

    # The scalar fields sit in the Parquet schema metadata with a format version; DATE expirations.
    schema = pq.read_schema(entry.path)
    meta = json.loads(schema.metadata[METADATA_KEY])
    assert meta["version"] == FORMAT_VERSION and meta["underlying"] == "SPX" and meta["modelled"] is True
    assert meta["notes"] == list(snap.notes) and meta["spot"] == snap.spot
    assert pd.Timestamp(meta["quote_time"]) == snap.quote_time
    assert schema.field("expiration").type == pa.date32()

    listing = store.list()
    assert list(listing.columns) == list(CATALOGUE_COLUMNS)
    row = listing.iloc[0]
    assert (row["underlying"], row["date"], row["rows"], row["modelled"]) == ("SPX", dt.date(2024, 2, 29),
                                                                              len(snap.contracts), True)
    assert row["quote_time"] == snap.quote_time and row["path"] == rel.as_posix()


# every real quote file when present, and the synthetic file of each format (tests/fixtures.py) always
QUOTE_FILES = [*(sorted(p.name for p in QUOTEDATA.glob("*")) if QUOTEDATA.exists() else []),
               *(f"synthetic:{k}" for k in ("cboe_csv", "cboe_dat", "cboe_json", "eod_archive", "intraday_archive",
                                             "ivolatility"))]


def _chain_file(request, name):
    if name.startswith("synthetic:"):
        return request.getfixturevalue("synthetic").files[name.split(":", 1)[1]]
    return shared_file(QUOTEDATA / name)


@pytest.mark.parametrize("name", QUOTE_FILES)
def test_round_trip_real_quote_files(tmp_path, name, request):
    snap = read_chain(_chain_file(request, name))
    store = ChainStore(tmp_path)
    entry = store.put(snap)
    assert entry.created
    assert_same(store.get(snap.underlying, date=snap.snapshot_date), snap)
    assert not store.put(snap).created


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if INTRADAY_ARCHIVE.exists() else [])])
def test_round_trip_intraday_archive_day(tmp_path, name, request):
    path, day = ((INTRADAY_ARCHIVE, "2019-06-03") if name == "real"
                 else (request.getfixturevalue("synthetic").files["intraday_archive"], "2024-02-16"))
    snap = read_chain(path, date=day)
    store = ChainStore(tmp_path)
    store.put(snap)
    got = store.get("SPX", date=day)
    assert_same(got, snap)
    assert any("12:45" in n for n in got.notes)  # provenance notes survive


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if IVOL_FILE.exists() else [])])
def test_import_ivolatility_file_round_trips_every_day(tmp_path, name, request):
    # (file, days, an inner window of them, the file's span)
    if name == "real":
        path, n, inner, span = (IVOL_FILE, 5, [dt.date(2011, 1, d) for d in (4, 5, 6)],
                                "2011-01-03..2011-01-07")
    else:
        path, n, inner, span = (request.getfixturevalue("synthetic").files["ivolatility"], 2,
                                [dt.date(2024, 3, 5)], "2024-03-01..2024-03-05")
    store = ChainStore(tmp_path)
    report = store.import_file(path, progress=False)
    originals = list(read_chains(path))
    assert report.snapshots_imported == len(originals) == n
    assert report.rows_imported == sum(len(s.contracts) for s in originals)
    for snap in originals:
        assert_same(store.get("SPX", date=snap.snapshot_date), snap)
    stored = list(store.iter_snapshots("SPX", start=inner[0].isoformat(), end=inner[-1].isoformat()))
    assert [s.snapshot_date for s in stored] == inner

    mtimes = {p: p.stat().st_mtime_ns for p in files_in(tmp_path)}
    again = store.import_file(path, progress=False)
    assert again.snapshots_imported == 0 and len(again.already_stored) == n and not again.skipped_by_file
    assert f"0 imported, {n} already in the store ({span})" in again.summary()
    assert {p: p.stat().st_mtime_ns for p in files_in(tmp_path)} == mtimes


finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
maybe = st.one_of(st.just(float("nan")), finite)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_round_trip_property(tmp_path_factory, data):
    """Any valid snapshot comes back identical, and a second put is a no-op."""
    n = data.draw(st.integers(1, 12))
    strikes = data.draw(st.lists(st.floats(0.5, 1e5, allow_nan=False), min_size=n, max_size=n, unique=True))
    rows = pd.DataFrame({
        "root": data.draw(st.sampled_from(["SPX", "SPXW", "QQQ", "BRK.B"])),
        "expiration": pd.Timestamp("2024-06-21") + pd.to_timedelta(
            data.draw(st.lists(st.integers(0, 2000), min_size=n, max_size=n)), unit="D"),
        "settlement": data.draw(st.sampled_from(["AM", "PM"])),
        "strike": strikes,
        "right": data.draw(st.lists(st.sampled_from("CP"), min_size=n, max_size=n)),
        **{c: data.draw(st.lists(maybe, min_size=n, max_size=n)) for c in ("bid", "ask", "last", "volume")},
        "open_interest": data.draw(st.lists(finite, min_size=n, max_size=n)),
        "iv": data.draw(st.lists(st.one_of(st.just(float("nan")), st.floats(0, 50)), min_size=n, max_size=n)),
        "delta": data.draw(st.lists(st.one_of(st.just(float("nan")), st.floats(-1, 1)), min_size=n, max_size=n)),
        "gamma": data.draw(st.lists(st.one_of(st.just(float("nan")), st.floats(0, 10)), min_size=n, max_size=n)),
    })
    quote_time = pd.Timestamp("2020-01-01", tz=NY) + pd.Timedelta(
        microseconds=data.draw(st.integers(0, 10**14)))
    snap = ChainSnapshot.create(
        underlying=data.draw(st.sampled_from(["SPX", "_SPX", "qqq", "BRK.B", "^VIX"])),
        spot=data.draw(st.floats(1e-3, 1e6)), quote_time=quote_time,
        source=data.draw(st.text(min_size=1, max_size=80)), contracts=rows,
        modelled=data.draw(st.booleans()), notes=data.draw(st.lists(st.text(max_size=30), max_size=3)))
    store = ChainStore(tmp_path_factory.mktemp("prop"))
    entry = store.put(snap)
    assert_same(store.read(entry), snap)
    assert_same(store.get(snap.underlying, date=snap.snapshot_date), snap)
    again = store.put(snap)
    assert not again.created and again.path == entry.path
    assert len(files_in(store.root)) == 1 and len(store.list()) == 1


# --------------------------------------------------------------------------------------------------
# put / get / list semantics


def test_put_is_idempotent_and_a_changed_snapshot_replaces_the_old(tmp_path):
    store = ChainStore(tmp_path)
    snap = synth()
    first = store.put(snap)
    mtime = first.path.stat().st_mtime_ns
    catalogue_mtime = store.catalogue_path.stat().st_mtime_ns
    second = store.put(snap)
    assert (second.created, second.path) == (False, first.path)
    assert first.path.stat().st_mtime_ns == mtime                  # not rewritten
    assert store.catalogue_path.stat().st_mtime_ns == catalogue_mtime
    assert len(files_in(tmp_path)) == 1

    # Same identity (underlying, quote time, source), other content: the stored file is replaced.
    changed = snap.replace(spot=101.0)
    third = store.put(changed)
    assert third.created and third.replaced and third.path == first.path
    assert len(files_in(tmp_path)) == 1 and len(store.list()) == 1
    assert_same(store.get("SPX"), changed)

    # Another source at the same moment is another snapshot.
    other = store.put(snap.replace(source="synthetic-2"))
    assert other.created and other.path != first.path and len(store.list()) == 2


def test_get_picks_the_latest_quote_and_says_what_exists_when_missing(tmp_path):
    store = ChainStore(tmp_path)
    a = store.put(synth("2024-03-01 10:00"))
    b = store.put(synth("2024-03-01 15:30", spot=101.0))
    c = store.put(synth("2024-03-04 11:00", spot=102.0))
    store.put(snapshot(ROWS, quote_time="2024-03-05 09:45", underlying="SPY").replace(source="cboe_csv:spy.csv"))

    assert store.get("SPX").spot == 102.0                                      # overall latest
    assert store.get("spx", date="2024-03-01").spot == 101.0                   # latest of that day
    assert store.get("_SPX", date=dt.date(2024, 3, 1), as_of="2024-03-01 12:00").spot == 100.0
    assert store.get("SPY", source="cboe_csv").underlying == "SPY"             # source kind
    assert store.get("SPY", source="cboe_csv:spy.csv").underlying == "SPY"     # exact source
    assert store.latest("SPX").path == c.path and store.latest("NDX") is None
    assert store.latest("SPX") == dataclasses.replace(c, created=False)
    assert store.find("SPX", date="2024-03-01").path == b.path
    assert a.path != b.path
    assert list(store.list("SPX")["quote_time"].dt.strftime("%d %H:%M")) == ["01 10:00", "01 15:30", "04 11:00"]
    assert set(store.list()["underlying"]) == {"SPX", "SPY"}

    with pytest.raises(SnapshotNotStoredError, match=r"no SPX snapshot of 2024-03-02 .*3 SPX snapshots dated "
                       r"2024-03-01\.\.2024-03-04 .*nearest: 2024-03-01 before, 2024-03-04 after"):
        store.get("SPX", date="2024-03-02")
    with pytest.raises(SnapshotNotStoredError, match=r"from source 'tradier'"):
        store.get("SPX", source="tradier")
    with pytest.raises(SnapshotNotStoredError, match=r"no NDX snapshot.*underlyings stored: SPX, SPY"):
        store.get("NDX")
    with pytest.raises(SnapshotNotStoredError, match="it is empty"):
        ChainStore(tmp_path / "empty").get("SPX")
    assert issubclass(SnapshotNotStoredError, StoreError) and issubclass(StoreError, ResearchLibError)
    assert not (tmp_path / "empty").exists()   # reading an absent store creates nothing


def test_age_of_an_entry(tmp_path):
    entry = ChainStore(tmp_path).put(synth("2024-03-01 12:00"))
    assert isinstance(entry, StoreEntry) and entry.quote_time == pd.Timestamp("2024-03-01 12:00", tz=NY)
    assert age(entry, now="2024-03-01 13:30") == pd.Timedelta("90min")          # naive = New York
    assert entry.age(pd.Timestamp("2024-03-01 18:00", tz="UTC")) == pd.Timedelta("1h")
    assert age(entry) > pd.Timedelta(days=365)


def test_delete(tmp_path):
    store = ChainStore(tmp_path)
    store.put(synth("2024-03-01 10:00"))
    keep = store.put(synth("2024-03-04 10:00"))
    gone = store.delete("SPX", date="2024-03-01")
    assert len(gone) == 1 and not gone[0].path.exists() and not gone[0].path.parent.exists()
    assert list(store.list()["path"]) == [keep.path.relative_to(tmp_path).as_posix()]
    assert store.delete("SPX", date="2024-03-01") == ()


def test_unstorable_inputs(tmp_path):
    store = ChainStore(tmp_path)
    with pytest.raises(TypeError, match="ChainSnapshot"):
        store.put(synth().contracts)
    bad = synth().replace(underlying="../ETC")
    with pytest.raises(StoreError, match="cannot name a store folder"):
        store.put(bad)
    assert files_in(tmp_path) == []


def test_a_file_name_collision_is_refused_not_overwritten(tmp_path):
    store = ChainStore(tmp_path)
    a = store.put(synth())
    b = synth().replace(source="another source")
    squatter = tmp_path / store.relative_path(b)
    squatter.write_bytes(a.path.read_bytes())   # as if b's name were taken by a's snapshot
    with pytest.raises(StoreError, match="file name collision"):
        store.put(b)
    assert_same(store.read(squatter), synth())


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "mine"))
    assert ChainStore().root == tmp_path / "mine"
    monkeypatch.delenv("RESEARCH_LIB_DATA")
    assert ChainStore().root == ROOT / "data"


# --------------------------------------------------------------------------------------------------
# imports


@pytest.mark.shared_data
def test_eod_archive_import_then_reimport(tmp_path):
    """47 clean days imported (the file labelled 08-07 as 08-06, its trading date), the archive's 4 unusable
    days reported with its reasons; a re-import
    creates nothing and says so. (One test: the import takes ~8 s and should run once under xdist.)"""
    path = shared_file(EOD_ARCHIVE)
    store = ChainStore(tmp_path)
    report = store.import_file(path, progress=False)
    listing = scan(path)
    ok = listing[listing["status"] == "ok"]
    bad = listing[listing["status"] != "ok"]
    assert (len(ok), len(bad)) == (47, 4)
    assert report.snapshots_imported == 47 and report.files == (path,)
    assert [e.snapshot_date for e in report.imported] == list(ok["date"])
    assert report.rows_imported == int(store.list("SPX")["rows"].sum())
    assert [(s.date, s.reason) for s in report.skipped] == list(zip(bad["date"], bad["reason"], strict=True))
    assert report.snapshots_skipped == 4 and report.already_stored == ()
    text = report.summary()
    assert "imported 47 snapshots" in text and "4 skipped by the file" in text
    for reason in bad["reason"]:
        assert reason in text
    assert len(store.list()) == 47 and len(files_in(store.root)) == 47
    assert store.get("SPX", date="2026-08-06").snapshot_date == dt.date(2026, 8, 6)

    # What is stored is what the archive holds.
    assert_same(store.get("SPX"), read_chain(path))  # the latest clean day
    assert store.get("SPX", date="2026-07-01").snapshot_date == dt.date(2026, 7, 1)
    with pytest.raises(SnapshotNotStoredError, match="2026-07-03"):
        store.get("SPX", date="2026-07-03")  # a day the archive marks unusable

    # Re-import: a few days keep it quick (reading the whole archive again takes ~5 s); the
    # ivolatility test re-imports a whole file.
    before = {p: p.stat().st_mtime_ns for p in files_in(store.root)}
    catalogue = store.list()
    days = ["2026-06-12", "2026-06-13", "2026-08-20", "2026-08-21"]
    again = store.import_file(path, dates=days, progress=False)
    assert again.snapshots_imported == 0 and again.rows_imported == 0
    assert [(s.date.isoformat(), s.stored) for s in again.skipped] == [
        ("2026-06-12", True), ("2026-06-13", False), ("2026-08-20", True), ("2026-08-21", True)]
    assert {s.reason for s in again.already_stored} == {"already in the store"}
    assert "flag DROP" in again.skipped[1].reason
    assert list(again.skipped_table().columns) == ["file", "date", "reason"]
    assert "0 imported, 3 already in the store (2026-06-12..2026-08-21), 1 skipped by the file" in again.summary()
    assert {p: p.stat().st_mtime_ns for p in files_in(store.root)} == before
    pd.testing.assert_frame_equal(store.list(), catalogue)


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if EOD_ARCHIVE.exists() else [])])
def test_import_selected_dates(tmp_path, name, request):
    # (file, a clean day, an unusable day and a word of its reason, a day after the file, its span)
    if name == "real":
        path, ok, (bad, why), after, span = (EOD_ARCHIVE, "2026-08-20", ("2026-06-19", "HOLIDAY"), "2026-09-01",
                                             "2026-06-12..2026-08-21")
    else:
        path, ok, (bad, why), after, span = (request.getfixturevalue("synthetic").files["eod_archive"], "2024-03-05",
                                             ("2024-03-02", "DROP_WEEKEND"), "2024-04-01", "2024-03-01..2024-03-06")
    report = ChainStore(tmp_path).import_file(path, dates=[ok, bad, after], progress=False)
    assert [e.snapshot_date for e in report.imported] == [dt.date.fromisoformat(ok)]
    reasons = {s.date: s.reason for s in report.skipped}
    assert why in reasons[dt.date.fromisoformat(bad)]
    assert reasons[dt.date.fromisoformat(after)] == f"not in the file (it covers {span})"


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if QUOTEDATA.exists() else [])])
def test_import_paths_folder_reimport_and_bad_files(tmp_path, capsys, name, request):
    folder = tmp_path / "downloads"
    folder.mkdir()
    if name == "real":
        files = {n: shared_file(QUOTEDATA / n) for n in ("spy_2020-06-22.dat", "xsp_2023-09-14.csv")}
        underlyings, dat = {"SPY", "XSP"}, "spy_2020-06-22.dat"
    else:  # the synthetic .dat (SPX 2024-03-06) and the iVolatility file's first day alone (SPX 2024-03-01)
        from fixtures import write_ivolatility

        syn = request.getfixturevalue("synthetic")
        first = dt.date(2024, 3, 1)
        files = {"spx_synthetic.dat": syn.files["cboe_dat"],
                 "ivol.csv": write_ivolatility(tmp_path / "ivol.csv", {first: syn.ivol_snaps[first]}, gzipped=False)}
        underlyings, dat = {"SPX"}, "spx_synthetic.dat"
    for n, target in files.items():   # two small files, linked not copied
        (folder / n).symlink_to(target)
    (folder / ".hidden.csv").write_text("ignored: hidden\n")
    store = ChainStore(tmp_path / "store")
    report = store.import_paths([folder], progress=None)  # auto: stderr is not a terminal in tests
    assert report.snapshots_imported == 2 and len(report.files) == 2 and not report.failed
    assert {e.underlying for e in report.imported} == underlyings
    assert capsys.readouterr().err == ""                  # no progress bar
    again = store.import_paths(folder, progress=False)
    assert again.snapshots_imported == 0 and len(again.already_stored) == 2
    assert "imported 0 snapshots (0 contracts) from 2 files; skipped 2" in again.summary()

    junk = tmp_path / "notes.txt"
    junk.write_text("not a chain\n")
    with pytest.raises(UnknownFormatError, match="notes.txt"):
        store.import_paths([junk])
    mixed = store.import_paths([junk, folder / dat], errors="skip", progress=False)
    assert [f.file for f in mixed.failed] == [junk] and len(mixed.already_stored) == 1
    assert "notes.txt: FAILED: UnknownFormatError" in mixed.summary()


# --------------------------------------------------------------------------------------------------
# concurrency and crashes (real processes)

WORKER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    import pandas as pd
    from synthetic import snapshot
    from research_lib.data.store import ChainStore
    root, wid, rounds, gate = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])
    rows = [("2024-03-15", k, r, 100.0 + k, 0.2) for k in range(90, 111, 5) for r in "CP"]
    store = ChainStore(root)
    (gate.parent / f"ready-{wid}").touch()
    deadline = time.time() + 60
    while not gate.exists() and time.time() < deadline:
        time.sleep(0.002)
    out = []
    for r in range(rounds):
        day = pd.Timestamp(f"2024-03-0{1 + r % 3}")
        own = snapshot(rows, quote_time=day + pd.Timedelta(hours=9.5, minutes=wid * 100 + r), spot=100 + wid)
        shared = snapshot(rows, quote_time=day + pd.Timedelta(hours=15, minutes=r), spot=99.0)
        for snap in (own, shared):
            e = store.put(snap)
            out.append([str(e.path), e.created, snap.quote_time.isoformat(), snap.spot])
        listed = set(store.list()["path"])  # a reader racing the other writer sees its own writes
        assert all(str(Path(p).relative_to(root)) in listed for p, *_ in out), "lost an entry"
    print(json.dumps(out))
""")


def test_concurrent_writers_lose_nothing_and_duplicate_nothing(tmp_path):
    workers, rounds = 2, 15
    root, gate = tmp_path / "store", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(TESTS), str(root), str(w), str(rounds), str(gate)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(workers)]
    deadline = time.time() + 60
    while len(list(tmp_path.glob("ready-*"))) < workers and time.time() < deadline:
        time.sleep(0.01)
    gate.touch()  # all start writing at once
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.extend(json.loads(out))

    store = ChainStore(root)
    distinct = workers * rounds + rounds
    # The catalogue file as written — not repaired from a listing — holds every snapshot exactly once.
    raw = store.list(verify=False)
    assert len(raw) == distinct and raw["path"].is_unique
    pd.testing.assert_frame_equal(store.list(), raw)
    assert len(files_in(root)) == distinct and temps_in(root) == []

    created: dict[str, int] = {}
    for path, was_created, qt, spot in results:
        created[path] = created.get(path, 0) + was_created
        snap = read_snapshot_file(path)
        assert snap.quote_time == pd.Timestamp(qt) and snap.spot == spot
    assert len(created) == distinct
    assert set(created.values()) == {1}  # each shared snapshot written by exactly one process
    assert_same(store.get("SPX", date="2024-03-01", as_of="2024-03-01 15:00"),
                snapshot(CHILD_ROWS, quote_time="2024-03-01 15:00", spot=99.0))


CRASHER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    from synthetic import snapshot
    import research_lib.fs as fs_module
    import research_lib.store as store_module
    root, target, how = sys.argv[2], sys.argv[3], sys.argv[4]
    def crash(temp_path, final_path):
        assert temp_path.exists() and temp_path.name.startswith(".tmp-")
        if (final_path.name == "catalogue.parquet") == (target == "catalogue"):
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            os._exit(17)
    fs_module._after_temp_write = crash
    rows = [("2024-03-15", k, r, 100.0 + k, 0.2) for k in range(90, 111, 5) for r in "CP"]
    store_module.ChainStore(root).put(snapshot(rows, quote_time="2024-03-04 12:00"))
    sys.exit(0)
""")



def crash_child(root: Path, target: str, how: str) -> int:
    proc = subprocess.run([sys.executable, "-c", CRASHER, str(TESTS), str(root), target, how],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode


@pytest.mark.parametrize("how", ["kill", "exit"])
def test_crash_between_temp_write_and_rename_of_a_snapshot(tmp_path, how):
    store = ChainStore(tmp_path)
    kept = store.put(synth("2024-03-01 12:00"))
    before = store.list()
    rc = crash_child(tmp_path, "snapshot", how)
    assert rc == (-signal.SIGKILL if how == "kill" else 17)

    leftovers = temps_in(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].parent.name == "date=2024-03-04"
    pd.testing.assert_frame_equal(store.list(), before)          # readers ignore the temp file
    with pytest.raises(SnapshotNotStoredError):
        store.get("SPX", date="2024-03-04")
    assert_same(store.read(kept), synth("2024-03-01 12:00"))

    lost = snapshot(CHILD_ROWS, quote_time="2024-03-04 12:00")
    entry = store.put(lost)                                      # the lock was released by the dead child
    assert entry.created and temps_in(tmp_path) == []           # ... and its leftover is cleaned up
    assert_same(store.get("SPX", date="2024-03-04"), lost)
    assert len(store.list(verify=False)) == 2


def test_crash_between_snapshot_and_catalogue_update(tmp_path):
    store = ChainStore(tmp_path)
    store.put(synth("2024-03-01 12:00"))
    assert crash_child(tmp_path, "catalogue", "exit") == 17
    assert [t.parent for t in temps_in(tmp_path)] == [tmp_path]  # the catalogue's temp file
    assert len(store.list(verify=False)) == 1                     # the catalogue file is stale ...
    listing = store.list()                                        # ... the store is not
    assert len(listing) == 2 and temps_in(tmp_path) == []
    assert len(store.list(verify=False)) == 2                     # repaired on disk
    lost = snapshot(CHILD_ROWS, quote_time="2024-03-04 12:00")
    assert_same(store.get("SPX"), lost)
    assert not store.put(lost).created


def test_leftover_temp_files_are_ignored_then_cleaned(tmp_path):
    store = ChainStore(tmp_path)
    entry = store.put(synth())
    stray = entry.path.parent / ".tmp-deadbeef-123456_x.parquet"
    stray.write_bytes(b"half a file")
    (tmp_path / ".tmp-cafe-catalogue.parquet").write_bytes(b"half a catalogue")
    assert len(store.list()) == 1                  # ignored by readers
    store.put(synth("2024-03-01 13:00"))           # same folder: cleaned by the next write there
    assert temps_in(tmp_path) == []


# --------------------------------------------------------------------------------------------------
# corruption and a missing catalogue


def test_missing_or_corrupt_catalogue_is_rebuilt(tmp_path):
    store = ChainStore(tmp_path)
    for i in range(4):
        store.put(synth(f"2024-03-0{1 + i} 12:00", spot=100 + i))
    want = store.list()
    store.catalogue_path.unlink()
    pd.testing.assert_frame_equal(ChainStore(tmp_path).list(), want)
    assert store.catalogue_path.is_file()

    store.catalogue_path.write_bytes(b"PAR1 garbage")
    assert store.get("SPX").spot == 103
    pd.testing.assert_frame_equal(ChainStore(tmp_path).list(verify=False), want)

    store.catalogue_path.unlink()                   # a put with no catalogue catalogues every file
    store.put(synth("2024-03-08 12:00"))
    assert len(ChainStore(tmp_path).list(verify=False)) == 5
    pd.testing.assert_frame_equal(store.rebuild_catalogue(), store.list())

    # Files copied in from another store are picked up.
    other = ChainStore(tmp_path / "other")
    extra = other.put(synth("2024-04-01 12:00"))
    dest = tmp_path / extra.path.relative_to(other.root)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(extra.path.read_bytes())
    assert len(store.list()) == 6 and store.get("SPX").quote_time.month == 4


def test_corrupt_snapshot_file_is_named(tmp_path):
    store = ChainStore(tmp_path)
    good = store.put(synth("2024-03-01 12:00"))
    bad = store.put(synth("2024-03-04 12:00"))
    data = bad.path.read_bytes()
    bad.path.write_bytes(data[: len(data) // 2])    # truncated
    with pytest.raises(StoreError, match=str(bad.path.name)) as info:
        store.get("SPX")
    assert "corrupt Parquet file" in str(info.value) and "quarantine" in str(info.value)
    with pytest.raises(StoreError, match=str(bad.path.name)):
        store.read(bad)
    # Quarantine moves it aside; the rest of the store works again.
    table = store.rebuild_catalogue(corrupt="quarantine")
    assert list(table["path"]) == [good.path.relative_to(tmp_path).as_posix()]
    assert (tmp_path / "quarantine" / bad.path.relative_to(tmp_path)).is_file()
    assert store.get("SPX").quote_time.day == 1
    # The same snapshot put again is stored again.
    assert store.put(synth("2024-03-04 12:00")).created


def test_damaged_data_fails_its_checksum(tmp_path):
    store = ChainStore(tmp_path)
    snap = synth()
    entry = store.put(snap)
    # Rewrite the file with one changed price but the original metadata (as a bit flip would).
    table = pq.read_table(entry.path)
    bids = table.column("bid").to_pylist()
    bids[3] += 0.05
    table = table.set_column(table.schema.get_field_index("bid"), "bid", pa.array(bids))
    pq.write_table(table, entry.path)
    with pytest.raises(StoreError, match="does not match the checksum"):
        store.read(entry)
    assert read_snapshot_file(entry.path, verify=False).contracts["bid"].iloc[3] == pytest.approx(1.05)


def test_foreign_and_future_files(tmp_path):
    store = ChainStore(tmp_path)
    entry = store.put(synth())
    foreign = entry.path.parent / "someone_elses.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), foreign)
    with pytest.raises(StoreError, match="someone_elses.parquet: no research_lib metadata"):
        store.list()
    foreign.unlink()

    table = pq.read_table(entry.path)
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    meta["version"] = FORMAT_VERSION + 1
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()}), entry.path)
    with pytest.raises(StoreError, match=rf"{entry.path.name}: written in store format version "
                                         rf"{FORMAT_VERSION + 1}.*upgrade research_lib"):
        store.read(entry)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4),
       truncate=st.one_of(st.none(), st.floats(0, 1)))
def test_damaged_file_reads_back_equal_or_raises_store_error(tmp_path_factory, flips, truncate):
    """Whatever happens to the bytes, a read gives the stored snapshot or a StoreError naming the file."""
    root = tmp_path_factory.mktemp("fuzz")
    snap = synth()
    path = root / "x.parquet"
    data = bytearray(encode_snapshot(snap))
    for where, value in flips:
        data[int(where * len(data))] = value
    if truncate is not None:
        data = data[: int(truncate * len(data))]
    path.write_bytes(bytes(data))
    try:
        got = read_snapshot_file(path)
    except StoreError as exc:
        assert str(exc).startswith(f"{path}: ")
    else:
        assert_same(got, snap)


def test_files_are_plain_parquet_datasets(tmp_path):
    """Other tools read the store as one hive-partitioned dataset."""
    store = ChainStore(tmp_path)
    store.put(synth("2024-03-01 12:00"))
    store.put(snapshot(ROWS, quote_time="2024-03-04 12:00", underlying="QQQ"))
    import pyarrow.dataset as ds

    table = ds.dataset(tmp_path / "chains", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 2 * len(ROWS)
    assert set(table.column("underlying").to_pylist()) == {"SPX", "QQQ"}



# --------------------------------------------------------------------------------------------------------
# imports: every good file, each bad one reported; nothing to import is an error


def _cboe_json(tmp_path, name="spx.json"):
    """The modelled SPX chain as a Cboe JSON file (no ../shared needed)."""
    from test_cli import cboe_json_payload

    from research_lib.data.modelled import modelled_chain, offline_spot_history

    day = offline_spot_history().index[-2].date().isoformat()
    path = tmp_path / name
    path.write_text(json.dumps(cboe_json_payload(modelled_chain("SPX", date=day))))
    return path


def test_import_paths_skip_imports_every_good_file_and_names_each_bad_one(tmp_path):
    from research_lib.data.store import NothingToImportError

    store = ChainStore(tmp_path / "store")
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("hello,world\n1,2\n")
    truncated = tmp_path / "truncated.json"
    truncated.write_text('{"data": {"options": [')
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    (empty_dir / ".hidden").write_text("x")
    good = _cboe_json(tmp_path)
    report = store.import_paths([garbage, good, truncated, empty_dir, tmp_path / "missing.csv"], errors="skip",
                                progress=False)
    assert report.snapshots_imported == 1 and len(store.list()) == 1
    failed = {f.file.name: f.error for f in report.failed}
    assert set(failed) == {"garbage.csv", "truncated.json", "empty", "missing.csv"}
    assert failed["garbage.csv"].startswith("UnknownFormatError: ")
    assert failed["empty"].startswith("NothingToImportError: the folder holds no file")
    assert "4 files failed" in report.summary() and "spx.json: 1 imported" in report.summary()
    record = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert record["snapshots_imported"] == 1 and len(record["failed"]) == 4
    with pytest.raises(NothingToImportError, match="folder holds no file"):
        store.import_paths([empty_dir])
    with pytest.raises(NothingToImportError, match="no path given"):
        store.import_paths([])


def test_a_file_without_rows_is_nothing_to_import(tmp_path, synthetic):
    """Before: a zero-row archive imported "0 snapshots" and the command exited 0."""
    from research_lib.data.store import NothingToImportError

    archive = synthetic.files["eod_archive"]  # the layout is what matters (the real archive's is the same)
    zero = tmp_path / "zero_rows.parquet"
    pq.write_table(pq.read_table(archive).slice(0, 0), zero)
    with pytest.raises(NothingToImportError, match="zero_rows.parquet: holds no snapshot"):
        ChainStore(tmp_path / "store").import_file(zero)


def test_store_dates_that_do_not_exist_are_not_called_malformed(tmp_path):
    store = ChainStore(tmp_path / "store")
    store.put(snapshot([("2024-03-15", 100.0, "C", 10.0, 0.2)]))
    with pytest.raises(ValueError, match="2024-02-30 does not exist"):
        store.find("SPX", date="2024-02-30")
    with pytest.raises(ValueError, match="is not YYYY-MM-DD"):
        store.find("SPX", date="Feb 3")
    entry = store.require("SPX")
    assert entry.underlying == "SPX" and not entry.created
    with pytest.raises(SnapshotNotStoredError, match="no SPX snapshot of 2020-01-02"):
        store.require("SPX", date="2020-01-02")
