"""The store's catalogue, ``catalogue.parquet``: one row per stored snapshot, a cache rebuildable from the
snapshot files' footers. Its Parquet layout, the listing of the files on disk (:func:`walk`), the check
that the two agree (:func:`in_step`) and the repair (:func:`reconcile`, with quarantine of unreadable
files). :class:`~research_lib.data.store.ChainStore` keeps it, under its lock."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from research_lib import __version__
from research_lib.core.chain import NY
from research_lib.data.store.snapshots import (
    CHAINS_DIR,
    METADATA_KEY,
    _s,
    read_metadata,
)
from research_lib.errors import StoreError
from research_lib.fs import TEMP_PREFIX

log = logging.getLogger(__name__)

#: Version of the catalogue file layout.
CATALOGUE_VERSION = 1
CATALOGUE_NAME = "catalogue.parquet"
QUARANTINE_DIR = "quarantine"

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



def walk(root: Path) -> tuple[dict[str, tuple[int, int]], list[Path]]:
    """Snapshot files on disk (relative path -> (size, mtime_ns)) and leftover temp files."""
    files: dict[str, tuple[int, int]] = {}
    temps: list[Path] = []
    chains = root / CHAINS_DIR
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


def in_step(cat: pd.DataFrame | None, files: dict[str, tuple[int, int]]) -> bool:
    if cat is None or len(cat) != len(files):
        return False
    on_disk = {(p, s, m) for p, (s, m) in files.items()}
    listed = set(zip(cat["path"], cat["size"].astype(int), cat["mtime_ns"].astype(int), strict=True))
    return on_disk == listed


def reconcile(root: Path, cat: pd.DataFrame | None, files: dict[str, tuple[int, int]], *,
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
        path = root / rel
        try:
            meta = read_metadata(path)
            check_partition(meta, rel, path)
        except StoreError as exc:
            if corrupt == "quarantine":
                quarantine(root, path, rel, exc)
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
                         f"{root / QUARANTINE_DIR}", path=None) from bad[0]
    return _catalogue_frame(rows)


def check_partition(meta: dict[str, Any], rel: str, path: Path) -> None:
    parts = rel.split("/")
    want = (f"underlying={meta['underlying']}", f"date={meta['snapshot_date'].isoformat()}")
    if tuple(parts[1:3]) != want:
        raise StoreError(f"holds a {meta['underlying']} snapshot of {meta['snapshot_date']} but sits in "
                         f"{'/'.join(parts[1:3])}", path=path)


def quarantine(root: Path, path: Path, rel: str, exc: StoreError) -> None:
    dest = root / QUARANTINE_DIR / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dest)
    log.warning("%s: moved to %s", exc, dest)

