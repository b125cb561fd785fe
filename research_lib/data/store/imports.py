"""Importing chain files into the store: :func:`import_file`, :func:`import_paths` (a batch of files and
folders) and what they report (:class:`ImportReport`). ``ChainStore.import_file`` and
``ChainStore.import_paths`` call these."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from research_lib.core.chain import ChainSnapshot, ResearchLibError
from research_lib.data.sources import read_chain, read_chains, scan
from research_lib.data.store.snapshots import (
    StoreEntry,
    _as_date,
    _s,
    _span,
)
from research_lib.errors import NothingToImportError
from research_lib.formatting import jsonable


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
        """The report as strict-JSON-ready data (:func:`research_lib.formatting.jsonable`: paths as text, dates
        and quote times ISO 8601)."""
        return jsonable({
            "snapshots_imported": self.snapshots_imported, "rows_imported": self.rows_imported,
            "snapshots_skipped": self.snapshots_skipped, "files": self.files,
            "imported": [{"file": src, "underlying": e.underlying, "date": e.snapshot_date,
                          "quote_time": e.quote_time, "source": e.source, "rows": e.rows,
                          "replaced": e.replaced, "path": e.path}
                         for e, src in zip(self.imported, self.imported_from, strict=True)],
            "skipped": [{"file": x.file, "date": x.date, "reason": x.reason, "already_stored": x.stored}
                        for x in self.skipped],
            "failed": [{"file": x.file, "error": x.error} for x in self.failed],
            "seconds": round(self.seconds, 3),
        })

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


def import_file(store, path: str | os.PathLike, *, dates: Iterable[Any] | None = None,
                progress: bool | None = None) -> ImportReport:
    """Put every clean snapshot of a chain file into ``store`` (a :class:`~research_lib.data.store.ChainStore`) (any format :mod:`research_lib.sources` reads).

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
            entry = store.put(snap)
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


def import_paths(store, paths: str | os.PathLike | Iterable[str | os.PathLike], *,
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
            report = report + import_file(store, f, progress=progress)
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


def _progress_bar(progress: bool | None, *, total: int, desc: str):
    if progress is None:
        progress = sys.stderr is not None and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="snapshot")

