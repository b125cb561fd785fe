"""Chain sources: every reader returns a :class:`~research_lib.chain.ChainSnapshot`.

File formats are detected by content, not by name (:func:`detect_format`):

============================ ================================================================ ==========
format                       what it is                                                       snapshots
============================ ================================================================ ==========
``cboe_csv``                 Cboe "delayed quotes → download CSV" quote table (2021 onward)   one
``cboe_dat``                 Cboe's old (2020) ``.dat`` quote table                           one
``spx_eod_archive``          daily Cboe JSON archive in Parquet (``file_date, price_date ...``) many
``cboe_intraday_archive``    daily intraday scrape in Parquet (``optionroot, quotedate ...``)  many
``ivolatility_csv``          iVolatility "EOD Raw IV" CSV (optionally gzipped)                many
``cboe_json``                a saved Cboe delayed-quotes JSON response (optionally gzipped)   one
============================ ================================================================ ==========

Live providers (:mod:`~research_lib.sources.cboe_json`, :mod:`~research_lib.sources.tradier`,
:mod:`~research_lib.sources.polygon`) return the same snapshot shape; :func:`research_lib.sources.auto.get_chain`
picks a source (live → local store → modelled) and says which one served.

Use :func:`read_chain` for one snapshot, :func:`read_chains` to iterate over every usable day of an
archive, and :func:`scan` to see which days a file holds and which are skipped, with the reason.

Example
-------
>>> from research_lib.data.sources import read_chain
>>> snap = read_chain("../shared/data/chains/cboe_quotedata/spx_2024-01-07.csv")  # doctest: +SKIP
>>> snap.spot, snap.quote_time                                                     # doctest: +SKIP
(4697.2402, Timestamp('2024-01-07 10:52:00-0500', tz='America/New_York'))
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gzip
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from research_lib.core.chain import ChainSnapshot, UnreadableFileError
from research_lib.data.sources.base import ChainFormat, SnapshotNotFoundError, UnknownFormatError


def _read_failures() -> tuple[type[BaseException], ...]:
    """The low-level exception types a damaged or truncated file raises from the readers' libraries."""
    import pyarrow as pa

    return (OSError, EOFError, zlib.error, csv.Error, UnicodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError, pa.ArrowException)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn a low-level read failure inside the block into :class:`UnreadableFileError` naming ``path``.

    Named library errors (:class:`~research_lib.chain.ChainError` and its kin) and a missing file
    (``FileNotFoundError``) pass unchanged; the original error stays chained as ``__cause__``.
    """
    try:
        yield
    except FileNotFoundError:
        raise
    except _read_failures() as exc:
        if isinstance(exc, PermissionError):
            what = "permission denied"
        elif isinstance(exc, EOFError | zlib.error) or (isinstance(exc, OSError) and "gzip" in str(exc).lower()):
            what = f"truncated or damaged compressed data ({type(exc).__name__}: {_one_line(exc)})"
        elif isinstance(exc, pd.errors.ParserError | pd.errors.EmptyDataError | csv.Error):
            what = f"damaged or truncated table, a row cut short ({type(exc).__name__}: {_one_line(exc)})"
        else:
            what = f"damaged or truncated file ({type(exc).__name__}: {_one_line(exc)})"
        raise UnreadableFileError(f"cannot read the file: {what}", where=str(path)) from exc


def _check_path(p: Path) -> None:
    if p.is_dir():
        raise UnreadableFileError("is a directory; give a chain file", where=str(p))
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")


def _formats() -> list[ChainFormat]:
    # lazy for start-up time: the readers load on first use (Cboe JSON brings the HTTP client)
    from research_lib.data.sources import archives, cboe_csv, cboe_json

    return [*cboe_csv.FORMATS, *archives.FORMATS, *cboe_json.FORMATS]


def _head(path: Path) -> tuple[str, tuple[str, ...] | None]:
    """The first ~8 kB of text of a file (gunzipped when needed), or the column names of a Parquet file."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"PAR1":
        import pyarrow.parquet as pq

        try:
            names = tuple(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises several types for a corrupt footer
            raise UnknownFormatError(f"corrupt Parquet file ({type(exc).__name__}: {exc})",
                                     where=str(path)) from exc
        return "", names
    opener = gzip.open if magic[:2] == b"\x1f\x8b" else open
    with _reading(path), opener(path, "rb") as fh:
        raw = fh.read(8192)
    if b"\x00" in raw:
        raise UnknownFormatError("binary file, not a chain", where=str(path))
    return raw.decode("utf-8", errors="replace").lstrip("\ufeff"), None


def detect_format(path: str | os.PathLike) -> ChainFormat:
    """The :class:`ChainFormat` of ``path``, decided from its content.

    Raises
    ------
    FileNotFoundError
        No such file.
    UnreadableFileError
        ``path`` is a directory, or its first bytes cannot be read (a truncated gzip ...).
    UnknownFormatError
        The content matches no known format (the message lists the formats tried).
    """
    p = Path(path)
    _check_path(p)
    with _reading(p):
        if p.stat().st_size == 0:
            raise UnknownFormatError("empty file", where=str(p))
        head, columns = _head(p)
    for fmt in _formats():
        if fmt.sniff(head, columns):
            return fmt
    names = ", ".join(f.name for f in _formats())
    raise UnknownFormatError(f"not a chain format research_lib reads (tried {names})", where=str(p))


def scan(path: str | os.PathLike) -> pd.DataFrame:
    """The snapshots ``path`` holds: columns ``date, status, reason, rows`` (one row per snapshot).

    Raises the errors of :func:`read_chain`.
    """
    p = Path(path)
    fmt = detect_format(p)
    with _reading(p):
        return fmt.scan(p)


def _as_date(date) -> dt.date | None:
    if date is None:
        return None
    if isinstance(date, dt.datetime):
        return date.date()
    if isinstance(date, dt.date):
        return date
    if isinstance(date, pd.Timestamp):
        return date.date()
    try:
        return dt.date.fromisoformat(str(date).strip())
    except ValueError as exc:
        raise ValueError(f"date {date!r} is not YYYY-MM-DD") from exc


def read_chain(path: str | os.PathLike, *, date=None) -> ChainSnapshot:
    """Read one snapshot from any supported file.

    Parameters
    ----------
    path : path-like
        A chain file in any format of this package (see the module docstring).
    date : str or date, optional
        For multi-day files, the trading date wanted (``"2026-08-21"``). ``None`` picks the latest
        clean day. For single-snapshot files it must be ``None`` or the snapshot's own date.

    Raises
    ------
    FileNotFoundError
        No such file.
    UnreadableFileError
        A directory, or a file whose bytes cannot be read: damaged Parquet pages ("ZSTD decompression
        failed", "Corrupt snappy compressed data"), a truncated gzip, a CSV row cut short. The
        message names the file and the low-level error (kept as ``__cause__``).
    UnknownFormatError, SnapshotNotFoundError, ChainError
        Not a chain format; no such date; a malformed or implausible chain
        (:class:`~research_lib.chain.ImplausibleChainError`).
    """
    p = Path(path)
    fmt = detect_format(p)
    day = _as_date(date)
    with _reading(p):
        return fmt.load(p, day)


def read_chains(path: str | os.PathLike, *, dates=None) -> Iterator[ChainSnapshot]:
    """Every usable snapshot of ``path`` in date order (or those of ``dates``).

    Days the file marks unclean are skipped; :func:`scan` lists them with the reason. Raises the
    errors of :func:`read_chain` (a damaged page met halfway through: after the days before it).
    """
    p = Path(path)
    fmt = detect_format(p)
    wanted = None if dates is None else {_as_date(d) for d in dates}
    with _reading(p):
        catalogue = fmt.scan(p)
        days = [row.date for row in catalogue.itertuples(index=False)
                if row.status == "ok" and (wanted is None or row.date in wanted)]
        if fmt.load_many is not None and len(days) > 1:
            yield from fmt.load_many(p, days)
            return
        for day in days:
            yield fmt.load(p, day)


__all__ = [
    "ChainFormat",
    "SnapshotNotFoundError",
    "UnknownFormatError",
    "UnreadableFileError",
    "detect_format",
    "read_chain",
    "read_chains",
    "scan",
]
