"""Types shared by the chain readers: the format record and the reader errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import io
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from research_lib.core.chain import ChainSnapshot
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    SnapshotNotFoundError as SnapshotNotFoundError,
    UnknownFormatError as UnknownFormatError,
)


@dataclasses.dataclass(frozen=True)
class ChainFormat:
    """One readable file format.

    Attributes
    ----------
    name : str
        Short identifier (``cboe_csv``).
    description : str
        One line for humans.
    sniff : callable(head_text: str, columns: tuple[str, ...] | None) -> bool
        True when a file's first lines (text files) or column names (Parquet) belong to this format.
    scan : callable(path) -> DataFrame
        The catalogue: one row per snapshot, columns ``date`` (datetime.date), ``status`` (``ok`` or
        ``skipped``), ``reason`` (empty when ok), ``rows``.
    load : callable(path, date or None) -> ChainSnapshot
        One snapshot (``None``: the only / the latest usable one).
    load_many : callable(path, list of dates) -> iterator of ChainSnapshot, optional
        Several snapshots from one read of the file (multi-day archives); :func:`load` per date
        otherwise.
    """

    name: str
    description: str
    sniff: Callable[[str, tuple[str, ...] | None], bool]
    scan: Callable[[Path], pd.DataFrame]
    load: Callable[[Path, dt.date | None], ChainSnapshot]
    load_many: Callable[[Path, list[dt.date]], Iterator[ChainSnapshot]] | None = None


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file for reading, gunzipping it when its content is gzip (whatever its name says)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="replace")
    return open(path, encoding="utf-8-sig", errors="replace")


def file_key(path: Path) -> tuple[str, int, int]:
    """(resolved path, size, mtime in ns): a cache key that changes whenever the file does."""
    st = Path(path).stat()
    return str(Path(path).resolve()), st.st_size, st.st_mtime_ns


def json_number(value: Any) -> float:
    """A number field of a provider's JSON response as a float; NaN when it is absent or not a number.

    Parameters
    ----------
    value : Any
        The decoded JSON value (a number, a numeric string, None, ...).

    Returns
    -------
    float
        ``float(value)`` when that is finite; NaN for None, a boolean, a non-numeric string or object,
        NaN and +-infinity. The NaN marks a missing quote field for the chain validation downstream,
        which reports it; it is never a number invented here.
    """
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        f = float(value)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan
