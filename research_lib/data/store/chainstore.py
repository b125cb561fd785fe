"""The store itself, :class:`ChainStore`: put, find, get, list and delete snapshots under one lock, keeping the
catalogue (:mod:`.catalogue`) in step with the snapshot files (:mod:`.snapshots`); imports are
:mod:`.imports`."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from research_lib.core.chain import NY, ChainSnapshot
from research_lib.data.store.catalogue import (
    CATALOGUE_COLUMNS,
    CATALOGUE_NAME,
    _catalogue_frame,
    _decode_catalogue,
    _empty_catalogue,
    _encode_catalogue,
    _row_from_meta,
    _scandir,
    _sort_catalogue,
    _stat,
    in_step,
    reconcile,
    walk,
)
from research_lib.data.store.imports import ImportReport, import_file, import_paths
from research_lib.data.store.snapshots import (
    _UNDERLYING_OK,
    CHAINS_DIR,
    StoreEntry,
    _as_date,
    _identity_hash,
    _norm_underlying,
    _s,
    _source_slug,
    _span,
    content_sha256,
    default_root,
    encode_snapshot,
    read_metadata,
    read_snapshot_file,
)
from research_lib.errors import SnapshotNotStoredError, StoreError
from research_lib.fs import TEMP_PREFIX, atomic_write, file_lock

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class ChainStore:
    """The local Parquet store of chain snapshots (see :mod:`research_lib.data.store` for layout and safety).

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

    def _catalogue(self, *, verify: bool = True) -> pd.DataFrame:
        """The catalogue, checked against the files (and repaired on disk when out of step)."""
        cat = self._read_catalogue()
        if not verify and cat is not None:
            return cat
        files, _ = walk(self.root)
        if in_step(cat, files):
            return cat
        if cat is None and not files:  # nothing stored (maybe no store yet): create nothing
            return _empty_catalogue()
        try:
            with self._lock():
                cat = self._read_catalogue()
                files, temps = walk(self.root)
                if in_step(cat, files):
                    return cat
                for folder in {t.parent for t in temps} | {self.root}:
                    self._clean_temps(folder)
                fixed = reconcile(self.root, cat, files)
                log.info("catalogue of %s was %s; rebuilt from the files", self.root,
                         "missing" if cat is None else "out of step")
                return self._write_catalogue(fixed)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            log.info("cannot write to %s (%s): catalogue repaired in memory only", self.root, exc)
            return _sort_catalogue(reconcile(self.root, cat, walk(self.root)[0]))

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
            files, temps = walk(self.root)
            for folder in {t.parent for t in temps} | {self.root}:
                self._clean_temps(folder)
            cat = self._write_catalogue(reconcile(self.root, None, files, corrupt=corrupt))
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
                self._write_catalogue(reconcile(self.root, None, walk(self.root)[0], corrupt="omit"))
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
            files, _ = walk(self.root)
            cat = self._read_catalogue()
            if not in_step(cat, files):
                cat = self._write_catalogue(reconcile(self.root, cat, files))
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


    # -- imports (research_lib.data.store.imports) ------------------------------------------------

    def import_file(self, path: str | os.PathLike, *, dates: Iterable[Any] | None = None,
                    progress: bool | None = None) -> ImportReport:
        """Put every clean snapshot of a chain file: :func:`~research_lib.data.store.imports.import_file`
        (parameters, result and errors are documented there)."""
        return import_file(self, path, dates=dates, progress=progress)

    def import_paths(self, paths: str | os.PathLike | Iterable[str | os.PathLike], *,
                     progress: bool | None = None, errors: str = "raise") -> ImportReport:
        """:meth:`import_file` over several files and folders:
        :func:`~research_lib.data.store.imports.import_paths` (documented there)."""
        return import_paths(self, paths, progress=progress, errors=errors)
