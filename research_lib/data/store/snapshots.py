"""The snapshot files of the store: where one is put (paths), its Parquet bytes and metadata, reading it
back, its content key (:func:`content_sha256`) and the :class:`StoreEntry` that describes a stored one.

The layout is described in :mod:`research_lib.data.store`."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from research_lib import __version__
from research_lib.core.chain import CONTRACT_COLUMNS, NY, ChainSnapshot
from research_lib.core.plausibility import check_chain
from research_lib.errors import StoreError
from research_lib.formatting import parse_date
from research_lib.settings import ENV_DATA, data_root

#: Version of the snapshot file layout (schema + metadata). Readers accept files up to this version.
FORMAT_VERSION = 1
#: Schema metadata key holding the JSON fields of a snapshot file.
METADATA_KEY = b"research_lib"
#: Environment variable naming the store root.
ENV_ROOT = ENV_DATA
CHAINS_DIR = "chains"

_STRING_COLUMNS = ("root", "settlement", "right")
FILE_SCHEMA = pa.schema([
    (c, pa.string() if c in _STRING_COLUMNS else pa.date32() if c == "expiration" else pa.float64())
    for c in CONTRACT_COLUMNS
])


_UNDERLYING_OK = re.compile(r"[A-Z0-9^][A-Z0-9.^_-]{0,19}")


# --------------------------------------------------------------------------------------------------
# the stored snapshot


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
    """The Parquet bytes of one snapshot file (see :mod:`research_lib.data.store` for the layout)."""
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

