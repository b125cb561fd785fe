"""A published Cboe benchmark index history (PUT, BXM, BXMD, CNDR ...) from the user's own download.

Cboe publishes each strategy index's daily values as a CSV
(``https://cdn.cboe.com/api/global/us_indices/daily_prices/PUT_History.csv``, ``BXM_History.csv`` ...). The
repository carries none of them: the user downloads the file and passes its path. Layouts seen in Cboe's
downloads, all accepted:

- ``DATE,PUT`` (one value column named by the index), dates ``MM/DD/YYYY``;
- ``DATE,OPEN,HIGH,LOW,CLOSE`` (the close is used);
- a few disclaimer / title lines before the header (skipped up to the first line whose first cell is a date
  header: ``DATE``, ``Date``, ``Trade Date``);
- ISO dates (``YYYY-MM-DD``) or ``YYYYMMDD``; a UTF-8 byte-order mark; blank trailing lines.

Header names are matched liberally (case, spaces); values strictly: a date that does not parse, a duplicate
date, a value that is empty, not a number, not finite or not positive raises
:class:`~research_lib.errors.MarketDataError` naming the file, the column and the line (1-based, counting
every line of the file). Nothing is dropped or filled in.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from research_lib.errors import MarketDataError

#: First-cell names of a header line.
DATE_HEADERS = ("date", "trade date", "trade_date", "tradedate")
#: Value columns tried in order after the index's own symbol.
VALUE_HEADERS = ("close", "index value", "value", "last", "price")
_DATE_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "%Y%m%d", "%m/%d/%y")
_HEADER_SEARCH_LINES = 50


def _norm(text: str) -> str:
    return " ".join(str(text).strip().strip('"').lower().split())


def load_cboe_index(path: str | os.PathLike, symbol: str | None = None) -> pd.Series:
    """Read a Cboe daily index history CSV.

    Parameters
    ----------
    path : path
        The downloaded file (e.g. ``PUT_History.csv``).
    symbol : str, optional
        The index (``"PUT"``, ``"BXM"``); its column is preferred when the header has one. Without it: a
        ``CLOSE`` (or ``Index Value``, ``Value``) column, else the only value column.

    Returns
    -------
    Series
        Index points (float), indexed by a tz-naive midnight ``date`` :class:`~pandas.DatetimeIndex`, sorted,
        unique. ``name`` is ``symbol`` (upper case) or the value column's header; ``attrs`` has ``source``
        (the path), ``column`` (the header used) and ``header_line`` (its 1-based line number).

    Raises
    ------
    MarketDataError
        Unreadable file; no header line within the first 50 lines; no value column; a bad date or value
        (named by its line); duplicate dates; no data rows.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise MarketDataError("no such file", path=p) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise MarketDataError(f"not a readable text file ({exc})", path=p) from exc
    rows = list(csv.reader(io.StringIO(text)))
    header_at = next((i for i, r in enumerate(rows[:_HEADER_SEARCH_LINES]) if r and _norm(r[0]) in DATE_HEADERS),
                     None)
    if header_at is None:
        raise MarketDataError(f"no header line (a first cell named {' / '.join(DATE_HEADERS)}) in the first "
                              f"{_HEADER_SEARCH_LINES} lines", path=p)
    header = [_norm(c) for c in rows[header_at]]
    wanted = ([_norm(symbol)] if symbol else []) + list(VALUE_HEADERS)
    col = next((header.index(w) for w in wanted if w in header), None)
    if col is None:
        others = [i for i, h in enumerate(header) if i > 0 and h]
        if len(others) != 1:
            raise MarketDataError(f"no value column: looked for {' / '.join(wanted)} (or a single value column); "
                                  f"header on line {header_at + 1} is {rows[header_at]}", path=p)
        col = others[0]
    column = rows[header_at][col].strip()
    lines, dates_raw, values_raw = [], [], []
    for i, r in enumerate(rows[header_at + 1:], start=header_at + 2):
        if not r or all(not c.strip() for c in r):
            continue
        if len(r) <= col:
            raise MarketDataError(f"line {i} has {len(r)} fields, the header {len(header)}", path=p, column=column,
                                  example=f"{','.join(r)!r} on line {i}")
        lines.append(i)
        dates_raw.append(r[0].strip())
        values_raw.append(r[col].strip())
    if not lines:
        raise MarketDataError("the file has a header but no rows", path=p)
    dates = _dates(dates_raw, lines, p, rows[header_at][0].strip())
    values = _values(values_raw, lines, p, column)
    idx = pd.DatetimeIndex(dates).astype("datetime64[ns]").rename("date")
    dup = idx.duplicated(keep=False)
    if dup.any():
        where = np.flatnonzero(idx == idx[dup][0])
        raise MarketDataError("duplicate dates", path=p, column=rows[header_at][0].strip(), n_bad=int(dup.sum()),
                              example=f"{dates_raw[where[0]]!r} on lines "
                                      f"{' and '.join(str(lines[w]) for w in where[:3])}")
    out = pd.Series(values, index=idx, name=(symbol.strip().upper() if symbol else column.upper()),
                    dtype=float).sort_index(kind="stable")
    out.attrs = {"source": str(p), "column": column, "header_line": header_at + 1}
    return out


def _dates(raw: list[str], lines: list[int], path: Path, column: str) -> pd.DatetimeIndex:
    s = pd.Series(raw, dtype=object)
    fmt = next((f for f in _DATE_FORMATS if not pd.isna(pd.to_datetime(raw[0], format=f, errors="coerce"))), None)
    parsed = (pd.to_datetime(s, format=fmt, errors="coerce") if fmt is not None
              else pd.Series(pd.NaT, index=s.index))
    bad = parsed.isna().to_numpy()
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise MarketDataError("unparseable dates", path=path, column=column, n_bad=int(bad.sum()),
                              example=f"{raw[k]!r} on line {lines[k]}")
    return pd.DatetimeIndex(parsed.to_numpy())


def _values(raw: list[str], lines: list[int], path: Path, column: str) -> np.ndarray:
    num = pd.to_numeric(pd.Series([v.replace(",", "") for v in raw], dtype=object), errors="coerce"
                        ).to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(num) | (num <= 0)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise MarketDataError("index values must be positive finite numbers", path=path, column=column,
                              n_bad=int(bad.sum()), example=f"{raw[k]!r} on line {lines[k]}")
    return num


__all__ = ["DATE_HEADERS", "VALUE_HEADERS", "load_cboe_index"]
