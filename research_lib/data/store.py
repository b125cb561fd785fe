"""The local Parquet store of chain snapshots: :class:`ChainStore`.

Every :class:`~research_lib.chain.ChainSnapshot` you fetch or import can be kept here and read back
exactly as it was put (same contract table, same fields). The store is a folder (``data/`` beside the
package, or ``$RESEARCH_LIB_DATA``)::

    <root>/
      chains/underlying=SPX/date=2024-01-05/160000_cboe_csv-spx_2024-01-05_1a2b3c4d.parquet
      catalogue.parquet     one row per stored snapshot (rebuildable from the files)
      .lock                 taken (fcntl.flock) by every writer

One Parquet file per snapshot, in hive-style partitions by underlying and trading date
(``snapshot_date``). The file name is the quote time (``HHMMSS``, New York), a readable slug of the
source (file extensions dropped), and the first 8 hex digits of a hash of the snapshot's identity
(underlying, full quote time, source), so different snapshots never share a name and the same
snapshot always gets the same one. The file holds
the contract table (:data:`~research_lib.chain.CONTRACT_COLUMNS`; ``expiration`` as a Parquet DATE)
and, in the Parquet schema metadata under the ``research_lib`` key, a JSON object with the format
version and the snapshot's fields: underlying, spot, quote time (ISO 8601 with its UTC offset),
source, snapshot date, modelled, notes, rows, ``sha256`` (the content key, see :func:`content_sha256`)
and ``written_at``. Other tools (DuckDB, polars, ``pyarrow.dataset``) read the folder as one dataset.

Identity and idempotency
    A snapshot is identified by (underlying, quote time, source). Putting one whose identity and
    content are already stored does nothing and returns ``created=False``; putting one with the same
    identity but different content (a reader was fixed, a file re-downloaded) replaces the stored file
    (``created=True, replaced=True``).

Safety
    Writes are atomic: the bytes go to ``.tmp-<uuid>-<name>`` in the destination folder, are fsynced,
    then ``os.replace``-d into place (and the folder fsynced). Every write happens under an exclusive
    ``fcntl.flock`` on ``<root>/.lock``, so several processes may write at once; the catalogue is
    rewritten the same atomic way under the same lock. Readers never see a half-written file and ignore
    names starting with ``.``; a temp file left by a crashed writer is removed by the next write in
    that folder (or by :meth:`ChainStore.rebuild_catalogue`). The catalogue is a cache: when it is
    missing, unreadable or out of step with the files (a crash between the file and the catalogue
    update, files copied in by hand), :meth:`ChainStore.list` notices (it compares the catalogue
    with a listing of the files, sizes and modification times) and repairs it. The lock needs a
    local file system (``flock`` on network file systems is not relied on); POSIX only.

Example
-------
>>> from research_lib.data.store import ChainStore, age
>>> store = ChainStore()                      # data/ or $RESEARCH_LIB_DATA      # doctest: +SKIP
>>> print(store.import_file("../shared/data/chains/spx_eod_2026-06-12_2026-08-21.parquet").summary())
... # doctest: +SKIP
>>> snap = store.get("SPX", date="2026-08-21")  # latest quote of that day     # doctest: +SKIP
>>> age(store.latest("SPX"))                  # how old the newest quote is     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import hashlib
import io
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from research_lib import __version__
from research_lib.core.chain import CONTRACT_COLUMNS, NY, ChainSnapshot, ResearchLibError
from research_lib.core.plausibility import check_chain
from research_lib.data.sources import read_chain, read_chains, scan
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    NothingToImportError as NothingToImportError,
    SnapshotNotStoredError as SnapshotNotStoredError,
    StoreError as StoreError,
)
from research_lib.formatting import parse_date
from research_lib.fs import TEMP_PREFIX, atomic_write, file_lock
from research_lib.settings import ENV_DATA, data_root

log = logging.getLogger(__name__)

#: Version of the snapshot file layout (schema + metadata). Readers accept files up to this version.
FORMAT_VERSION = 1
#: Version of the catalogue file layout.
CATALOGUE_VERSION = 1
#: Schema metadata key holding the JSON fields of a snapshot file.
METADATA_KEY = b"research_lib"
#: Environment variable naming the store root.
ENV_ROOT = ENV_DATA
CATALOGUE_NAME = "catalogue.parquet"
LOCK_NAME = ".lock"
CHAINS_DIR = "chains"
QUARANTINE_DIR = "quarantine"

_STRING_COLUMNS = ("root", "settlement", "right")
FILE_SCHEMA = pa.schema([
    (c, pa.string() if c in _STRING_COLUMNS else pa.date32() if c == "expiration" else pa.float64())
    for c in CONTRACT_COLUMNS
])

#: Columns of :meth:`ChainStore.list` (the catalogue), in order.
CATALOGUE_COLUMNS: tuple[str, ...] = (
    "underlying", "date", "quote_time", "source", "rows", "spot", "modelled", "path", "written_at", "sha256",
)
_CATALOGUE_SCHEMA = pa.schema([
    ("underlying", pa.string()),
    ("date", pa.date32()),
    ("quote_time", pa.timestamp("ns", tz=NY)),
    ("source", pa.string()),
    ("rows", pa.int64()),
    ("spot", pa.float64()),
    ("modelled", pa.bool_()),
    ("path", pa.string()),
    ("written_at", pa.timestamp("ns", tz="UTC")),
    ("sha256", pa.string()),
    ("size", pa.int64()),       # file size in bytes      } to notice files changed behind the
    ("mtime_ns", pa.int64()),   # file modification time } catalogue's back
])

_UNDERLYING_OK = re.compile(r"[A-Z0-9^][A-Z0-9.^_-]{0,19}")


# --------------------------------------------------------------------------------------------------
# errors and results


@dataclasses.dataclass(frozen=True)
class StoreEntry:
    """One stored snapshot, as :meth:`ChainStore.put` and :meth:`ChainStore.latest` return it.

    Attributes
    ----------
    path : Path
        The snapshot's Parquet file (absolute).
    rows : int
        Number of contracts.
    created : bool
        True when the call that returned this entry wrote the file; False when an identical snapshot
        was already stored (and always False from :meth:`ChainStore.latest`).
    underlying : str
    quote_time : pandas.Timestamp
        tz-aware, America/New_York.
    source : str
    snapshot_date : datetime.date
        The trading date the prices belong to (the ``date`` partition).
    spot : float
    modelled : bool
    sha256 : str
        Content key (:func:`content_sha256`).
    replaced : bool
        True when ``put`` overwrote a stored snapshot of the same identity whose content differed.
    """

    path: Path
    rows: int
    created: bool
    underlying: str
    quote_time: pd.Timestamp
    source: str
    snapshot_date: dt.date
    spot: float
    modelled: bool
    sha256: str
    replaced: bool = False

    def age(self, now: Any = None) -> pd.Timedelta:
        """How old the quote is: ``now - quote_time`` (see :func:`age`)."""
        return age(self, now)


@dataclasses.dataclass(frozen=True)
class SkippedSnapshot:
    """A snapshot an import did not add, and why.

    ``stored`` is True when an identical snapshot was already in the store (``reason`` is
    ``"already in the store"``); False when the file itself marks the day unusable (``reason`` is the
    file's, from :func:`research_lib.sources.scan`) or does not hold an asked date.
    """

    file: Path
    date: dt.date | None
    reason: str
    stored: bool = False


@dataclasses.dataclass(frozen=True)
class ImportFailure:
    """A file :meth:`ChainStore.import_paths` could not import (with ``errors="skip"``)."""

    file: Path
    error: str


ALREADY_STORED = "already in the store"


@dataclasses.dataclass(frozen=True)
class ImportReport:
    """What an import did. Reports of several files add up (``a + b``).

    Attributes
    ----------
    files : tuple of Path
        The files read.
    imported : tuple of StoreEntry
        Snapshots written by this import (``replaced`` tells when one overwrote a changed version).
    imported_from : tuple of Path
        The file each of ``imported`` came from (same order).
    skipped : tuple of SkippedSnapshot
        Snapshots not written: identical ones already stored, days the file marks unusable.
    failed : tuple of ImportFailure
        Files that could not be read (only from ``import_paths(..., errors="skip")``).
    seconds : float
        Wall time of the import.
    """

    files: tuple[Path, ...] = ()
    imported: tuple[StoreEntry, ...] = ()
    imported_from: tuple[Path, ...] = ()
    skipped: tuple[SkippedSnapshot, ...] = ()
    failed: tuple[ImportFailure, ...] = ()
    seconds: float = 0.0

    @property
    def snapshots_imported(self) -> int:
        return len(self.imported)

    @property
    def rows_imported(self) -> int:
        """Contracts written (sum of the imported snapshots' rows)."""
        return sum(e.rows for e in self.imported)

    @property
    def snapshots_skipped(self) -> int:
        return len(self.skipped)

    @property
    def already_stored(self) -> tuple[SkippedSnapshot, ...]:
        return tuple(s for s in self.skipped if s.stored)

    @property
    def skipped_by_file(self) -> tuple[SkippedSnapshot, ...]:
        return tuple(s for s in self.skipped if not s.stored)

    def __add__(self, other: ImportReport) -> ImportReport:
        if not isinstance(other, ImportReport):
            return NotImplemented
        return ImportReport(self.files + other.files, self.imported + other.imported,
                            self.imported_from + other.imported_from, self.skipped + other.skipped,
                            self.failed + other.failed, self.seconds + other.seconds)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (strict-JSON ready with :func:`research_lib.formatting.to_json`)."""
        return {
            "snapshots_imported": self.snapshots_imported, "rows_imported": self.rows_imported,
            "snapshots_skipped": self.snapshots_skipped, "files": [str(f) for f in self.files],
            "imported": [{"file": str(src), "underlying": e.underlying, "date": e.snapshot_date.isoformat(),
                          "quote_time": e.quote_time.isoformat(), "source": e.source, "rows": e.rows,
                          "replaced": e.replaced, "path": str(e.path)}
                         for e, src in zip(self.imported, self.imported_from, strict=True)],
            "skipped": [{"file": str(x.file), "date": None if x.date is None else x.date.isoformat(),
                         "reason": x.reason, "already_stored": x.stored} for x in self.skipped],
            "failed": [{"file": str(x.file), "error": x.error} for x in self.failed],
            "seconds": round(self.seconds, 3),
        }

    def skipped_table(self) -> pd.DataFrame:
        """The skipped snapshots: columns ``file, date, reason``."""
        return pd.DataFrame({"file": [s.file.name for s in self.skipped],
                             "date": [s.date for s in self.skipped],
                             "reason": [s.reason for s in self.skipped]},
                            columns=["file", "date", "reason"])

    def summary(self, max_lines: int = 20) -> str:
        """A few lines for people: totals, then per file what was imported and each skipped day."""
        n_files = len(self.files)
        head = (f"imported {self.snapshots_imported} snapshot{_s(self.snapshots_imported)} "
                f"({self.rows_imported:,} contracts) from {n_files} file{_s(n_files)}; "
                f"skipped {self.snapshots_skipped}")
        if self.failed:
            head += f"; {len(self.failed)} file{_s(len(self.failed))} failed"
        lines = [head]
        failed_files = {x.file for x in self.failed}
        for f in self.files:
            if f in failed_files:
                continue
            imp = [e for e, src in zip(self.imported, self.imported_from, strict=True) if src == f]
            stored = [s for s in self.skipped if s.file == f and s.stored]
            by_file = [s for s in self.skipped if s.file == f and not s.stored]
            n_rep = sum(e.replaced for e in imp)
            parts = [f"{len(imp)} imported" + (f" ({n_rep} replacing a changed version)" if n_rep else "")]
            if stored:
                dates = [s.date for s in stored if s.date is not None]
                span = f" ({_span(dates)})" if dates else ""
                parts.append(f"{len(stored)} {ALREADY_STORED}{span}")
            if by_file:
                parts.append(f"{len(by_file)} skipped by the file")
            lines.append(f"  {f.name}: " + ", ".join(parts))
            for s in by_file[:max_lines]:
                lines.append(f"    {s.date if s.date is not None else '?'}  {s.reason}")
            if len(by_file) > max_lines:
                lines.append(f"    ... and {len(by_file) - max_lines} more")
        for fail in self.failed:
            lines.append(f"  {fail.file.name}: FAILED: {fail.error}")
        return "\n".join(lines)


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _span(dates: list[dt.date]) -> str:
    lo, hi = min(dates), max(dates)
    return str(lo) if lo == hi else f"{lo}..{hi}"


# --------------------------------------------------------------------------------------------------
# helpers


def age(entry: StoreEntry | ChainSnapshot | pd.Timestamp, now: Any = None) -> pd.Timedelta:
    """How old a quote is: ``now - quote_time`` in wall-clock time.

    Parameters
    ----------
    entry : StoreEntry, ChainSnapshot or tz-aware Timestamp
        Anything with a ``quote_time`` (or the quote time itself).
    now : timestamp-like, optional
        Defaults to the current time. A naive value is taken as New York time.

    Returns
    -------
    pandas.Timedelta
        Negative when ``now`` is before the quote. Market hours are not considered: Friday's close is
        ~62 h old on Monday morning.
    """
    qt = entry if isinstance(entry, pd.Timestamp) else entry.quote_time
    now_ts = pd.Timestamp.now(tz=NY) if now is None else pd.Timestamp(now)
    if now_ts.tzinfo is None:
        now_ts = now_ts.tz_localize(NY)
    return now_ts - qt


def default_root() -> Path:
    """``$RESEARCH_LIB_DATA`` when set, else ``data/`` in the repository (beside the package)."""
    return data_root()


def _float_bytes(values: np.ndarray) -> bytes:
    v = np.asarray(values, dtype="float64") + 0.0          # -0.0 -> 0.0
    v = np.where(np.isnan(v), np.nan, v)                    # one NaN bit pattern
    return np.ascontiguousarray(v).tobytes()


def content_sha256(snapshot: ChainSnapshot) -> str:
    """The content key of a snapshot: SHA-256 over its contract table (column by column: names,
    strings, dates as int64 ns, floats with -0.0 and NaN normalised) and its scalar fields.

    Two snapshots with the same key are equal in every field and every cell. Independent of pandas'
    and pyarrow's versions (no pickles, no Parquet bytes).
    """
    h = hashlib.sha256()
    c = snapshot.contracts
    h.update(f"rows={len(c)}\n".encode())
    for col in CONTRACT_COLUMNS:
        h.update(f"\x1e{col}\x1f".encode())
        s = c[col]
        if col in _STRING_COLUMNS:
            h.update("\x1f".join(s.astype(str).tolist()).encode())
        elif col == "expiration":
            h.update(np.ascontiguousarray(s.to_numpy(dtype="datetime64[ns]").view("int64")).tobytes())
        else:
            h.update(_float_bytes(s.to_numpy(dtype="float64", na_value=np.nan)))
    fields = {"underlying": snapshot.underlying, "spot": float(snapshot.spot).hex(),
              "quote_time": _iso(snapshot.quote_time), "source": snapshot.source,
              "snapshot_date": snapshot.snapshot_date.isoformat(), "modelled": bool(snapshot.modelled),
              "notes": list(snapshot.notes)}
    h.update(b"\x1e" + json.dumps(fields, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).tz_convert(NY).isoformat()


def _source_slug(source: str) -> str:
    """A readable file-name fragment of a source string (file extensions dropped, at most 60 chars)."""
    slug = re.sub(r"\.(parquet|csv|dat|json|txt|gz|zip)(?=$|[^A-Za-z0-9])", "", source, flags=re.IGNORECASE)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", slug).strip("-._")[:60].rstrip("-._")
    return slug or "source"


def _identity_hash(underlying: str, quote_time: pd.Timestamp, source: str) -> str:
    key = json.dumps([underlying, _iso(quote_time), source], ensure_ascii=False)
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def _as_date(value: Any) -> dt.date:
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return parse_date(value)  # "is not YYYY-MM-DD", or "does not exist" for 2026-02-30


def _norm_underlying(underlying: str) -> str:
    if not isinstance(underlying, str) or not underlying.strip():
        raise ValueError(f"underlying must be a non-empty string, got {underlying!r}")
    return underlying.strip().upper().lstrip("_")


# --------------------------------------------------------------------------------------------------
# snapshot files


def encode_snapshot(snapshot: ChainSnapshot, *, sha256: str | None = None,
                    written_at: pd.Timestamp | None = None) -> bytes:
    """The Parquet bytes of one snapshot file (see the module docstring for the layout)."""
    c = snapshot.contracts
    if list(c.columns) != list(CONTRACT_COLUMNS):
        raise StoreError(f"contract table columns {list(c.columns)} are not {list(CONTRACT_COLUMNS)}; "
                         "build snapshots with ChainSnapshot.create")
    exp = c["expiration"]
    if exp.dtype != "datetime64[ns]" or bool((exp != exp.dt.normalize()).any()):
        raise StoreError("expiration must be datetime64[ns] dates at midnight (as ChainSnapshot.create "
                         "makes them)")
    meta = {
        "format": "research_lib.chain_snapshot",
        "version": FORMAT_VERSION,
        "underlying": snapshot.underlying,
        "spot": float(snapshot.spot),
        "quote_time": _iso(snapshot.quote_time),
        "quote_time_unit": getattr(snapshot.quote_time, "unit", "ns"),
        "source": snapshot.source,
        "snapshot_date": snapshot.snapshot_date.isoformat(),
        "modelled": bool(snapshot.modelled),
        "notes": list(snapshot.notes),
        "rows": len(c),
        "sha256": sha256 or content_sha256(snapshot),
        "written_at": (written_at or pd.Timestamp.now(tz="UTC")).isoformat(),
        "research_lib_version": __version__,
    }
    table = pa.Table.from_pandas(c, preserve_index=False).cast(FILE_SCHEMA)
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta, ensure_ascii=False).encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def _parse_metadata(raw: dict[bytes, bytes] | None, path: Path) -> dict[str, Any]:
    if not raw or METADATA_KEY not in raw:
        raise StoreError("no research_lib metadata in the Parquet schema: not a snapshot written by "
                         "ChainStore (move it out of the store's chains/ folder)", path=path)
    try:
        meta = json.loads(raw[METADATA_KEY].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"research_lib metadata is not valid JSON ({exc}); the file is corrupt",
                         path=path) from exc
    if not isinstance(meta, dict) or meta.get("format") != "research_lib.chain_snapshot":
        raise StoreError("research_lib metadata does not describe a chain snapshot", path=path)
    version = meta.get("version")
    if not isinstance(version, int):
        raise StoreError(f"research_lib metadata has no format version (got {version!r})", path=path)
    if version > FORMAT_VERSION:
        raise StoreError(f"written in store format version {version} by research_lib "
                         f"{meta.get('research_lib_version', '?')}; this research_lib ({__version__}) reads "
                         f"up to version {FORMAT_VERSION}: upgrade research_lib", path=path)
    missing = [k for k in ("underlying", "spot", "quote_time", "source", "snapshot_date", "modelled",
                           "notes", "rows", "sha256", "written_at") if k not in meta]
    if missing:
        raise StoreError(f"research_lib metadata lacks {missing}", path=path)
    try:
        meta["quote_time"] = pd.Timestamp(meta["quote_time"]).tz_convert(NY)
        meta["snapshot_date"] = dt.date.fromisoformat(meta["snapshot_date"])
        meta["written_at"] = pd.Timestamp(meta["written_at"]).tz_convert("UTC")
        meta["spot"] = float(meta["spot"])
        meta["rows"] = int(meta["rows"])
    except (TypeError, ValueError) as exc:
        raise StoreError(f"research_lib metadata has a bad field ({exc})", path=path) from exc
    return meta


@contextlib.contextmanager
def _reading(p: Path):
    """Turn any failure while reading snapshot file ``p`` into a :class:`StoreError` naming it."""
    try:
        yield
    except StoreError:
        raise
    except FileNotFoundError as exc:
        raise StoreError("no such file (deleted while reading?)", path=p) from exc
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise StoreError(f"corrupt Parquet file ({type(exc).__name__}: {exc})", path=p) from exc


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The fields of a snapshot file (from its Parquet footer only; the table is not read).

    Raises :class:`StoreError` naming the file when it is not a readable snapshot file.
    """
    p = Path(path)
    with _reading(p):
        with open(p, "rb") as fh:
            pf = pq.ParquetFile(fh)
            meta = _parse_metadata(pf.schema_arrow.metadata, p)
            meta["num_rows"] = pf.metadata.num_rows
    if meta["num_rows"] != meta["rows"]:
        raise StoreError(f"holds {meta['num_rows']} rows but its metadata says {meta['rows']}", path=p)
    return meta


def read_snapshot_file(path: str | os.PathLike, *, verify: bool = True) -> ChainSnapshot:
    """Read one snapshot file back into the :class:`ChainSnapshot` that was stored.

    ``verify`` recomputes the content key and compares it with the one stored at write time, so a
    damaged file never reads back as silently different data.

    Raises
    ------
    StoreError
        The file is not a readable Parquet file, lacks the research_lib metadata, was written by a
        newer format version, has unexpected columns or fails its checksum. The message names it.
    """
    p = Path(path)
    with _reading(p):
        with open(p, "rb") as fh:
            pf = pq.ParquetFile(fh)
            meta = _parse_metadata(pf.schema_arrow.metadata, p)
            table = pf.read()
    if not table.schema.equals(FILE_SCHEMA, check_metadata=False):
        raise StoreError(f"unexpected columns/types {table.schema.names} (want {FILE_SCHEMA.names} as "
                         f"{[str(t) for t in FILE_SCHEMA.types]})", path=p)
    try:
        table.validate(full=True)  # e.g. invalid UTF-8 in a damaged string page
        i = table.schema.get_field_index("expiration")
        table = table.set_column(i, "expiration", table.column(i).cast(pa.timestamp("ns")))
        contracts = table.to_pandas()
        quote_time = meta["quote_time"]
        unit = meta.get("quote_time_unit")
        if unit in ("s", "ms", "us", "ns"):
            quote_time = quote_time.as_unit(unit)
        snap = ChainSnapshot(underlying=str(meta["underlying"]), spot=meta["spot"], quote_time=quote_time,
                             source=str(meta["source"]), contracts=contracts,
                             snapshot_date=meta["snapshot_date"], modelled=bool(meta["modelled"]),
                             notes=tuple(str(n) for n in meta["notes"]))
        sha = content_sha256(snap) if verify else None
    except Exception as exc:  # corrupt values that pass the footer checks
        raise StoreError(f"corrupt data ({type(exc).__name__}: {exc})", path=p) from exc
    if verify and sha != meta["sha256"]:
        raise StoreError("content does not match the checksum stored when it was written: the file is "
                         "corrupt (delete it and import the snapshot again)", path=p)
    # Plausibility warnings are a pure function of the stored data: recomputed, not stored.
    return dataclasses.replace(snap, warnings=check_chain(snap.contracts, spot=snap.spot,
                                                          snapshot_date=snap.snapshot_date, where=snap.source))


# --------------------------------------------------------------------------------------------------
# the catalogue


def _empty_catalogue() -> pd.DataFrame:
    return _CATALOGUE_SCHEMA.empty_table().to_pandas()


def _catalogue_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return _empty_catalogue()
    cols = {name: [r[name] for r in rows] for name in _CATALOGUE_SCHEMA.names}
    table = pa.table({name: pa.array(cols[name], type=_CATALOGUE_SCHEMA.field(name).type)
                      for name in _CATALOGUE_SCHEMA.names})
    return table.to_pandas()


def _sort_catalogue(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["underlying", "quote_time", "source", "path"], kind="stable").reset_index(drop=True)


def _encode_catalogue(df: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(df[list(_CATALOGUE_SCHEMA.names)], schema=_CATALOGUE_SCHEMA,
                                 preserve_index=False)
    meta = {"format": "research_lib.catalogue", "version": CATALOGUE_VERSION,
            "research_lib_version": __version__}
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def _decode_catalogue(path: Path) -> pd.DataFrame:
    """Read the catalogue; raise StoreError when it is unreadable or of another version."""
    try:
        with open(path, "rb") as fh:
            table = pq.read_table(fh)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise StoreError(f"corrupt catalogue ({type(exc).__name__}: {exc})", path=path) from exc
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    try:
        meta = json.loads(raw) if raw else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        meta = {}
    if meta.get("format") != "research_lib.catalogue" or meta.get("version") != CATALOGUE_VERSION:
        raise StoreError(f"not a version-{CATALOGUE_VERSION} catalogue (metadata {meta!r})", path=path)
    if not table.schema.equals(_CATALOGUE_SCHEMA, check_metadata=False):
        raise StoreError(f"catalogue has unexpected columns {table.schema.names}", path=path)
    return table.to_pandas()


def _row_from_meta(meta: dict[str, Any], rel: str, size: int, mtime_ns: int) -> dict[str, Any]:
    return {"underlying": meta["underlying"], "date": meta["snapshot_date"],
            "quote_time": meta["quote_time"], "source": meta["source"], "rows": meta["rows"],
            "spot": meta["spot"], "modelled": bool(meta["modelled"]), "path": rel,
            "written_at": meta["written_at"], "sha256": meta["sha256"], "size": size, "mtime_ns": mtime_ns}


# --------------------------------------------------------------------------------------------------
# the store


class ChainStore:
    """The local Parquet store of chain snapshots (see the module docstring for layout and safety).

    Parameters
    ----------
    root : path-like, optional
        The store folder. Defaults to ``$RESEARCH_LIB_DATA``, else ``data/`` in the repository.
        Created on the first write.
    """

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root).expanduser() if root is not None else default_root()
        self._cache: tuple[tuple[int, int, int], pd.DataFrame] | None = None

    def __repr__(self) -> str:
        return f"ChainStore({str(self.root)!r})"

    # -- paths -------------------------------------------------------------------------------------

    @property
    def catalogue_path(self) -> Path:
        return self.root / CATALOGUE_NAME

    def relative_path(self, snapshot: ChainSnapshot) -> str:
        """Where ``snapshot`` is (or would be) stored, relative to the root, with ``/`` separators."""
        und = snapshot.underlying
        if not _UNDERLYING_OK.fullmatch(und):
            raise StoreError(f"underlying {und!r} cannot name a store folder (use letters, digits, . ^ _ -)")
        qt = snapshot.quote_time.tz_convert(NY)
        name = (f"{qt:%H%M%S}_{_source_slug(snapshot.source)}_"
                f"{_identity_hash(und, qt, snapshot.source)}.parquet")
        return f"{CHAINS_DIR}/underlying={und}/date={snapshot.snapshot_date.isoformat()}/{name}"

    # -- locking, temp files -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Exclusive lock on ``<root>/.lock`` (blocks until free; released if the process dies)."""
        with file_lock(self.root / LOCK_NAME):
            yield

    def _clean_temps(self, folder: Path) -> int:
        """Remove leftover temp files in ``folder``. Only call with the lock held: every temp file is
        written under the lock, so any seen then belongs to a writer that died."""
        n = 0
        if not folder.is_dir():
            return 0
        for entry in _scandir(folder):
            if entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    n += 1
                    log.warning("removed %s, left by a write that was interrupted", entry.path)
        return n

    # -- catalogue ---------------------------------------------------------------------------------

    def _read_catalogue(self) -> pd.DataFrame | None:
        """The catalogue file's rows (cached by inode/size/mtime), or None when missing or unreadable."""
        path = self.catalogue_path
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        try:
            df = _decode_catalogue(path)
        except FileNotFoundError:
            return None
        except StoreError as exc:
            log.warning("%s; rebuilding it from the snapshot files", exc)
            return None
        self._cache = (key, df)
        return df

    def _write_catalogue(self, df: pd.DataFrame) -> pd.DataFrame:
        df = _sort_catalogue(df)
        atomic_write(self.catalogue_path, _encode_catalogue(df))
        st = self.catalogue_path.stat()
        self._cache = ((st.st_ino, st.st_size, st.st_mtime_ns), df)
        return df

    def _walk(self) -> tuple[dict[str, tuple[int, int]], list[Path]]:
        """Snapshot files on disk (relative path -> (size, mtime_ns)) and leftover temp files."""
        files: dict[str, tuple[int, int]] = {}
        temps: list[Path] = []
        chains = self.root / CHAINS_DIR
        if not chains.is_dir():
            return files, temps
        for u in _scandir(chains):
            if not (u.name.startswith("underlying=") and u.is_dir(follow_symlinks=False)):
                continue
            for d in _scandir(u.path):
                if not (d.name.startswith("date=") and d.is_dir(follow_symlinks=False)):
                    continue
                for f in _scandir(d.path):
                    if f.name.startswith(TEMP_PREFIX):
                        temps.append(Path(f.path))
                    elif f.name.startswith(".") or not f.name.endswith(".parquet"):
                        continue
                    else:
                        try:
                            st = f.stat(follow_symlinks=False)
                        except FileNotFoundError:  # deleted meanwhile
                            continue
                        files[f"{CHAINS_DIR}/{u.name}/{d.name}/{f.name}"] = (st.st_size, st.st_mtime_ns)
        return files, temps

    @staticmethod
    def _in_step(cat: pd.DataFrame | None, files: dict[str, tuple[int, int]]) -> bool:
        if cat is None or len(cat) != len(files):
            return False
        on_disk = {(p, s, m) for p, (s, m) in files.items()}
        listed = set(zip(cat["path"], cat["size"].astype(int), cat["mtime_ns"].astype(int), strict=True))
        return on_disk == listed

    def _reconcile(self, cat: pd.DataFrame | None, files: dict[str, tuple[int, int]], *,
                   corrupt: str = "raise") -> pd.DataFrame:
        """The catalogue made to agree with ``files``: keep rows whose file is unchanged, read the
        footers of new or changed files, drop rows whose file is gone."""
        keep: dict[str, dict[str, Any]] = {}
        if cat is not None:
            for row in cat.to_dict("records"):
                if files.get(row["path"]) == (int(row["size"]), int(row["mtime_ns"])):
                    keep[row["path"]] = row
        rows = list(keep.values())
        bad: list[StoreError] = []
        for rel, (size, mtime) in sorted(files.items()):
            if rel in keep:
                continue
            path = self.root / rel
            try:
                meta = read_metadata(path)
                self._check_partition(meta, rel, path)
            except StoreError as exc:
                if corrupt == "quarantine":
                    self._quarantine(path, rel, exc)
                elif corrupt == "omit":  # left out; list() will name it
                    log.warning("%s; left out of the catalogue", exc)
                else:
                    bad.append(exc)
                continue
            rows.append(_row_from_meta(meta, rel, size, mtime))
        if bad:
            more = f" (and {len(bad) - 1} more unreadable file{_s(len(bad) - 1)})" if len(bad) > 1 else ""
            raise StoreError(f"{bad[0]}{more}. Delete or move the file(s), or call "
                             f"ChainStore.rebuild_catalogue(corrupt='quarantine') to move them to "
                             f"{self.root / QUARANTINE_DIR}", path=None) from bad[0]
        return _catalogue_frame(rows)

    @staticmethod
    def _check_partition(meta: dict[str, Any], rel: str, path: Path) -> None:
        parts = rel.split("/")
        want = (f"underlying={meta['underlying']}", f"date={meta['snapshot_date'].isoformat()}")
        if tuple(parts[1:3]) != want:
            raise StoreError(f"holds a {meta['underlying']} snapshot of {meta['snapshot_date']} but sits in "
                             f"{'/'.join(parts[1:3])}", path=path)

    def _quarantine(self, path: Path, rel: str, exc: StoreError) -> None:
        dest = self.root / QUARANTINE_DIR / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)
        log.warning("%s: moved to %s", exc, dest)

    def _catalogue(self, *, verify: bool = True) -> pd.DataFrame:
        """The catalogue, checked against the files (and repaired on disk when out of step)."""
        cat = self._read_catalogue()
        if not verify and cat is not None:
            return cat
        files, _ = self._walk()
        if self._in_step(cat, files):
            return cat
        if cat is None and not files:  # nothing stored (maybe no store yet): create nothing
            return _empty_catalogue()
        try:
            with self._lock():
                cat = self._read_catalogue()
                files, temps = self._walk()
                if self._in_step(cat, files):
                    return cat
                for folder in {t.parent for t in temps} | {self.root}:
                    self._clean_temps(folder)
                fixed = self._reconcile(cat, files)
                log.info("catalogue of %s was %s; rebuilt from the files", self.root,
                         "missing" if cat is None else "out of step")
                return self._write_catalogue(fixed)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            log.info("cannot write to %s (%s): catalogue repaired in memory only", self.root, exc)
            return _sort_catalogue(self._reconcile(cat, self._walk()[0]))

    def rebuild_catalogue(self, *, corrupt: str = "raise") -> pd.DataFrame:
        """Rebuild ``catalogue.parquet`` from the snapshot files' footers and remove leftover temp files.

        Parameters
        ----------
        corrupt : ``"raise"`` or ``"quarantine"``
            What to do with an unreadable or misplaced file: raise :class:`StoreError` naming it, or move
            it to ``<root>/quarantine/`` (same relative path) and leave it out.

        Returns
        -------
        DataFrame
            The new catalogue (as :meth:`list` returns it).
        """
        if corrupt not in ("raise", "quarantine"):
            raise ValueError(f"corrupt={corrupt!r}: use 'raise' or 'quarantine'")
        with self._lock():
            files, temps = self._walk()
            for folder in {t.parent for t in temps} | {self.root}:
                self._clean_temps(folder)
            cat = self._write_catalogue(self._reconcile(None, files, corrupt=corrupt))
        return self._public(cat)

    @staticmethod
    def _public(cat: pd.DataFrame, underlying: str | None = None) -> pd.DataFrame:
        if underlying is not None:
            cat = cat[cat["underlying"] == _norm_underlying(underlying)]
        return cat[list(CATALOGUE_COLUMNS)].reset_index(drop=True).copy()

    # -- public API --------------------------------------------------------------------------------

    def list(self, underlying: str | None = None, *, verify: bool = True) -> pd.DataFrame:
        """The catalogue: one row per stored snapshot, sorted by underlying and quote time.

        Columns :data:`CATALOGUE_COLUMNS`: ``underlying``; ``date`` (trading date, datetime.date);
        ``quote_time`` (tz-aware New York); ``source``; ``rows`` (contracts); ``spot``; ``modelled``;
        ``path`` (relative to the root); ``written_at`` (UTC); ``sha256`` (content key).

        ``verify`` (default) compares the catalogue with a listing of the files and repairs it when it
        is missing or out of step; ``verify=False`` trusts the catalogue file when there is one.

        Raises :class:`StoreError` when an unreadable file has to be catalogued (it is named).
        """
        return self._public(self._catalogue(verify=verify), underlying)

    def put(self, snapshot: ChainSnapshot) -> StoreEntry:
        """Store ``snapshot``; idempotent.

        Returns
        -------
        StoreEntry
            ``created=False`` when an identical snapshot (same underlying, quote time, source and
            content) is already stored: nothing is written. Same identity with other content: the
            stored file is replaced (``created=True, replaced=True``).

        Raises
        ------
        TypeError
            ``snapshot`` is not a ChainSnapshot.
        StoreError
            The snapshot cannot be stored (an underlying that cannot name a folder, a table not built
            by :meth:`ChainSnapshot.create`).
        """
        if not isinstance(snapshot, ChainSnapshot):
            raise TypeError(f"put() takes a ChainSnapshot, got {type(snapshot).__name__}")
        rel = self.relative_path(snapshot)
        final = self.root / rel
        sha = content_sha256(snapshot)

        # Fast path, no lock: the identical file is there and the catalogue already lists it.
        if self._stored_sha(final, snapshot) == sha:
            cat = self._read_catalogue()
            if cat is not None:
                st = _stat(final)
                hit = cat[cat["path"] == rel]
                if st is not None and len(hit) == 1 and (int(hit["size"].iloc[0]), int(hit["mtime_ns"].iloc[0])) \
                        == (st.st_size, st.st_mtime_ns) and hit["sha256"].iloc[0] == sha:
                    return self._entry(snapshot, final, sha, created=False)

        written_at = pd.Timestamp.now(tz="UTC")
        data = encode_snapshot(snapshot, sha256=sha, written_at=written_at)  # the slow part, unlocked
        with self._lock():
            self._clean_temps(final.parent)
            self._clean_temps(self.root)
            old = self._stored_sha(final, snapshot)
            created = old != sha
            if created:
                atomic_write(final, data)
            st = final.stat()
            cat = self._read_catalogue()
            if cat is None:  # missing or unreadable: rebuild it from every file (this one included)
                self._write_catalogue(self._reconcile(None, self._walk()[0], corrupt="omit"))
            else:
                hit = cat["path"] == rel
                fresh = (hit.sum() == 1 and int(cat.loc[hit, "size"].iloc[0]) == st.st_size
                         and int(cat.loc[hit, "mtime_ns"].iloc[0]) == st.st_mtime_ns
                         and cat.loc[hit, "sha256"].iloc[0] == sha)
                if not fresh:
                    meta = read_metadata(final) if not created else {
                        "underlying": snapshot.underlying, "snapshot_date": snapshot.snapshot_date,
                        "quote_time": snapshot.quote_time, "source": snapshot.source,
                        "rows": len(snapshot.contracts), "spot": float(snapshot.spot),
                        "modelled": bool(snapshot.modelled), "written_at": written_at, "sha256": sha}
                    row = _catalogue_frame([_row_from_meta(meta, rel, st.st_size, st.st_mtime_ns)])
                    rest = cat[~hit]
                    self._write_catalogue(pd.concat([rest, row], ignore_index=True) if len(rest) else row)
        return self._entry(snapshot, final, sha, created=created, replaced=created and old is not None)

    @staticmethod
    def _stored_sha(final: Path, snapshot: ChainSnapshot) -> str | None:
        """The content key of the file at ``final``: None when there is no file, ``"unreadable"`` when
        it is damaged (put then rewrites it). Raises StoreError when it holds another snapshot (the
        8-hex-digit identity hash in the name collided: never silently overwrite)."""
        if not final.exists():
            return None
        try:
            meta = read_metadata(final)
        except StoreError as exc:
            log.warning("%s; it will be overwritten", exc)
            return "unreadable"
        if (meta["underlying"], meta["quote_time"], meta["source"]) != (
                snapshot.underlying, snapshot.quote_time, snapshot.source):
            raise StoreError(f"holds {meta['underlying']} {meta['quote_time']} from {meta['source']!r}, not "
                             f"the {snapshot.underlying} {snapshot.quote_time} from {snapshot.source!r} being "
                             "put (file name collision): store it elsewhere or delete that file", path=final)
        return meta["sha256"]

    @staticmethod
    def _entry(snapshot: ChainSnapshot, path: Path, sha: str, *, created: bool,
               replaced: bool = False) -> StoreEntry:
        return StoreEntry(path=path, rows=len(snapshot.contracts), created=created,
                          underlying=snapshot.underlying, quote_time=snapshot.quote_time,
                          source=snapshot.source, snapshot_date=snapshot.snapshot_date,
                          spot=float(snapshot.spot), modelled=bool(snapshot.modelled), sha256=sha,
                          replaced=replaced)

    def _entry_from_row(self, row: Any) -> StoreEntry:
        return StoreEntry(path=self.root / row.path, rows=int(row.rows), created=False,
                          underlying=row.underlying, quote_time=row.quote_time, source=row.source,
                          snapshot_date=row.date, spot=float(row.spot), modelled=bool(row.modelled),
                          sha256=row.sha256)

    def _select(self, underlying: str, date: Any = None, source: str | None = None, *, as_of: Any = None,
                modelled: bool | None = None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
        und = _norm_underlying(underlying)
        cat = self._catalogue()
        mine = cat[cat["underlying"] == und]
        sel = mine
        asked = [f"{und} snapshot"]
        if date is not None:
            day = _as_date(date)
            sel = sel[sel["date"] == day]
            asked.append(f"of {day}")
        if source is not None:
            kind = sel["source"].str.split(":", n=1).str[0]
            sel = sel[(sel["source"] == source) | (kind == source)]
            asked.append(f"from source {source!r}")
        if as_of is not None:
            cutoff = pd.Timestamp(as_of)
            cutoff = cutoff.tz_localize(NY) if cutoff.tzinfo is None else cutoff
            sel = sel[sel["quote_time"] <= cutoff]
            asked.append(f"quoted at or before {cutoff:%Y-%m-%d %H:%M %Z}")
        if modelled is not None:
            sel = sel[sel["modelled"] == bool(modelled)]
            asked.append("(modelled)" if modelled else "(market data)")
        return sel, mine, " ".join(asked)

    def _not_stored(self, asked: str, mine: pd.DataFrame, und: str,
                    date: Any = None) -> SnapshotNotStoredError:
        if len(mine):
            dates = sorted(set(mine["date"]))
            sources = sorted({s.split(":", 1)[0] for s in mine["source"]})
            have = (f"it holds {len(mine)} {und} snapshot{_s(len(mine))} dated {_span(dates)} "
                    f"from {', '.join(sources)}")
            if date is not None:
                day = _as_date(date)
                before = [d for d in dates if d < day]
                after = [d for d in dates if d > day]
                near = ([f"{before[-1]} before"] if before else []) + ([f"{after[0]} after"] if after else [])
                if near and day not in dates:
                    have += f" (nearest: {', '.join(near)})"
        else:
            others = sorted(set(self._catalogue()["underlying"]))
            have = (f"it holds no {und} snapshot (underlyings stored: {', '.join(others)})" if others
                    else "it is empty (import files with ChainStore.import_file or `research-lib import`)")
        return SnapshotNotStoredError(f"no {asked} in the store at {self.root}; {have}")

    def find(self, underlying: str, date: Any = None, source: str | None = None, *, as_of: Any = None,
             modelled: bool | None = None) -> StoreEntry | None:
        """The entry :meth:`get` would read, or None."""
        sel, _, _ = self._select(underlying, date, source, as_of=as_of, modelled=modelled)
        if sel.empty:
            return None
        best = sel.sort_values(["quote_time", "written_at"], kind="stable").tail(1)
        return self._entry_from_row(next(best.itertuples(index=False)))

    def require(self, underlying: str, date: Any = None, source: str | None = None, *, as_of: Any = None,
                modelled: bool | None = None) -> StoreEntry:
        """The entry :meth:`get` would read, without reading it (the catalogue only).

        Raises :class:`SnapshotNotStoredError` like :meth:`get` when nothing matches, with the same
        message (what was asked, what the store holds, the nearest dates).
        """
        sel, mine, asked = self._select(underlying, date, source, as_of=as_of, modelled=modelled)
        if sel.empty:
            raise self._not_stored(asked, mine, _norm_underlying(underlying), date)
        best = sel.sort_values(["quote_time", "written_at"], kind="stable").tail(1)
        return self._entry_from_row(next(best.itertuples(index=False)))

    def get(self, underlying: str, date: Any = None, source: str | None = None, *, as_of: Any = None,
            modelled: bool | None = None) -> ChainSnapshot:
        """The stored snapshot of ``underlying`` with the latest quote time among those matching.

        Parameters
        ----------
        underlying : str
            ``SPX``, ``spx`` and ``_SPX`` are the same.
        date : str or date, optional
            Trading date (``"2024-01-05"``); None: any date (the overall latest).
        source : str, optional
            The exact ``source`` string, or its kind before the colon (``"cboe_csv"``).
        as_of : timestamp-like, optional
            Only quotes at or before this moment (naive = New York time): no look-ahead in backtests.
        modelled : bool, optional
            True: only modelled chains; False: only market data; None: either.

        Raises
        ------
        SnapshotNotStoredError
            Nothing matches; the message says what was asked and what the store holds.
        StoreError
            The matching file is unreadable (named in the message).
        """
        sel, mine, asked = self._select(underlying, date, source, as_of=as_of, modelled=modelled)
        if sel.empty:
            raise self._not_stored(asked, mine, _norm_underlying(underlying), date)
        best = sel.sort_values(["quote_time", "written_at"], kind="stable").iloc[-1]
        return read_snapshot_file(self.root / best["path"])

    def read(self, entry: StoreEntry | str | os.PathLike) -> ChainSnapshot:
        """Read one stored snapshot: a :class:`StoreEntry`, or a path (absolute, or relative to the root
        as in the catalogue's ``path`` column)."""
        path = entry.path if isinstance(entry, StoreEntry) else Path(entry)
        return read_snapshot_file(path if path.is_absolute() else self.root / path)

    def iter_snapshots(self, underlying: str, start: Any = None, end: Any = None,
                       source: str | None = None) -> Iterator[ChainSnapshot]:
        """Every stored snapshot of ``underlying`` with trading date in [start, end], in quote-time order."""
        sel, _, _ = self._select(underlying, None, source)
        if start is not None:
            sel = sel[sel["date"] >= _as_date(start)]
        if end is not None:
            sel = sel[sel["date"] <= _as_date(end)]
        for rel in sel.sort_values(["quote_time", "source"], kind="stable")["path"]:
            yield read_snapshot_file(self.root / rel)

    def latest(self, underlying: str) -> StoreEntry | None:
        """The stored snapshot of ``underlying`` with the latest quote time, or None."""
        return self.find(underlying)

    def delete(self, underlying: str, date: Any = None, source: str | None = None, *,
               quote_time: Any = None) -> tuple[StoreEntry, ...]:
        """Delete the stored snapshots of ``underlying`` matching ``date``, ``source`` (as in :meth:`get`)
        and ``quote_time`` (exact); all of the underlying's when none is given. Returns what was deleted."""
        with self._lock():
            files, _ = self._walk()
            cat = self._read_catalogue()
            if not self._in_step(cat, files):
                cat = self._write_catalogue(self._reconcile(cat, files))
            und = _norm_underlying(underlying)
            hit = cat["underlying"] == und
            if date is not None:
                hit &= cat["date"] == _as_date(date)
            if source is not None:
                hit &= (cat["source"] == source) | (cat["source"].str.split(":", n=1).str[0] == source)
            if quote_time is not None:
                qt = pd.Timestamp(quote_time)
                hit &= cat["quote_time"] == (qt.tz_localize(NY) if qt.tzinfo is None else qt)
            gone = [self._entry_from_row(r) for r in cat[hit].itertuples(index=False)]
            for e in gone:
                with contextlib.suppress(FileNotFoundError):
                    e.path.unlink()
                for folder in (e.path.parent, e.path.parent.parent):
                    with contextlib.suppress(OSError):
                        folder.rmdir()  # only when empty
            if gone:
                self._write_catalogue(cat[~hit])
        return tuple(gone)

    # -- imports -----------------------------------------------------------------------------------

    def import_file(self, path: str | os.PathLike, *, dates: Iterable[Any] | None = None,
                    progress: bool | None = None) -> ImportReport:
        """Put every clean snapshot of a chain file (any format :mod:`research_lib.sources` reads).

        Parameters
        ----------
        path : path-like
            A chain file; multi-day archives give one snapshot per clean day.
        dates : iterable of date-like, optional
            Only these trading dates (asked dates the file does not hold are reported as skipped).
        progress : bool, optional
            A tqdm bar over snapshots; default: when stderr is a terminal.

        Returns
        -------
        ImportReport
            Imported snapshots and rows; skipped ones with the reason (``"already in the store"``, or
            the file's own reason for an unusable day). Re-importing a file imports nothing.

        Raises
        ------
        FileNotFoundError, UnknownFormatError, ChainError
            From the reader. Snapshots put before an error stay stored (re-running is safe).
        NothingToImportError
            The file holds no snapshot at all (a zero-row archive, a header without rows).
        """
        t0 = time.perf_counter()
        p = Path(path)
        listing = scan(p)
        if listing.empty:
            raise NothingToImportError("holds no snapshot: the file has no rows to import", path=p)
        wanted = None if dates is None else {_as_date(d) for d in dates}
        skipped: list[SkippedSnapshot] = []
        ok_days: list[dt.date] = []
        for row in listing.itertuples(index=False):
            if wanted is not None and row.date not in wanted:
                continue
            if row.status == "ok":
                ok_days.append(row.date)
            else:
                skipped.append(SkippedSnapshot(p, row.date, str(row.reason) or str(row.status)))
        if wanted is not None:
            held = set(listing["date"])
            span = _span(sorted(held)) if held else "nothing"
            for d in sorted(wanted - held):
                skipped.append(SkippedSnapshot(p, d, f"not in the file (it covers {span})"))
        imported: list[StoreEntry] = []
        bar = _progress_bar(progress, total=len(ok_days), desc=p.name)
        try:
            snapshots: Iterable[ChainSnapshot]
            if len(ok_days) == 1:  # one read, not scan + read (a single-snapshot file's scan is a read)
                snapshots = [read_chain(p, date=ok_days[0])]
            elif ok_days:
                snapshots = read_chains(p, dates=ok_days if wanted is not None else None)
            else:
                snapshots = []
            for snap in snapshots:
                entry = self.put(snap)
                if entry.created:
                    imported.append(entry)
                else:
                    skipped.append(SkippedSnapshot(p, snap.snapshot_date, ALREADY_STORED, stored=True))
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        skipped.sort(key=lambda s: (s.date is None, s.date or dt.date.min))
        return ImportReport((p,), tuple(imported), (p,) * len(imported), tuple(skipped), (),
                            time.perf_counter() - t0)

    def import_paths(self, paths: str | os.PathLike | Iterable[str | os.PathLike], *,
                     progress: bool | None = None, errors: str = "raise") -> ImportReport:
        """:meth:`import_file` over several files (a folder stands for the files under it, hidden ones
        excluded). One combined :class:`ImportReport`.

        ``errors="skip"`` imports every file it can and records each one that cannot be imported (unknown
        format, corrupt, missing, empty; a folder without files) in the report's ``failed`` with the
        reason; ``"raise"`` (default) stops at the first.

        Raises
        ------
        NothingToImportError
            No path given, or (``errors="raise"``) a folder without a file or a file without a row.
        """
        if errors not in ("raise", "skip"):
            raise ValueError(f"errors={errors!r}: use 'raise' or 'skip'")
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        paths = list(paths)
        if not paths:
            raise NothingToImportError("nothing to import: no path given")
        report = ImportReport()
        files: list[Path] = []
        for item in paths:
            p = Path(item)
            if p.is_dir():
                found = sorted(f for f in p.rglob("*") if f.is_file()
                               and not any(part.startswith(".") for part in f.relative_to(p).parts))
                if not found:
                    empty = NothingToImportError("the folder holds no file to import (hidden files are "
                                                 "not imported)", path=p)
                    if errors == "raise":
                        raise empty
                    report = report + ImportReport((p,), failed=(ImportFailure(p, _failure_text(empty)),))
                files.extend(found)
            else:
                files.append(p)
        for f in files:
            try:
                report = report + self.import_file(f, progress=progress)
            except (ResearchLibError, OSError, EOFError, ValueError) as exc:  # any unreadable file
                if errors == "raise":
                    raise
                report = report + ImportReport((f,), failed=(ImportFailure(f, _failure_text(exc)),))
        return report


def _failure_text(exc: BaseException) -> str:
    """Why a file failed, without repeating its path (the report names the file)."""
    text = str(exc)
    path = getattr(exc, "path", None) or getattr(exc, "filename", None) or getattr(exc, "where", None)
    if path is not None:
        for prefix in (f"{path}: ", f"{Path(str(path)).name}: "):
            text = text.removeprefix(prefix)
    return f"{type(exc).__name__}: {text}"


def _scandir(path: str | os.PathLike) -> list[os.DirEntry]:
    """The entries of a folder; none when it vanished meanwhile (delete() removes empty folders)."""
    try:
        with os.scandir(path) as it:
            return list(it)
    except FileNotFoundError:
        return []


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _progress_bar(progress: bool | None, *, total: int, desc: str):
    if progress is None:
        progress = sys.stderr is not None and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="snapshot")


__all__ = [
    "CATALOGUE_COLUMNS",
    "FORMAT_VERSION",
    "ChainStore",
    "ImportFailure",
    "ImportReport",
    "NothingToImportError",
    "SkippedSnapshot",
    "SnapshotNotStoredError",
    "StoreEntry",
    "StoreError",
    "age",
    "content_sha256",
    "default_root",
    "encode_snapshot",
    "read_metadata",
    "read_snapshot_file",
]
