"""Reading a market history file: strict parsing at the edge (bad dates, numbers or duplicate dates raise
:class:`~research_lib.errors.MarketDataError` naming the file, column and an example row), once per (path,
size, mtime), and the cut to exchange sessions."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from research_lib import calendar as cal
from research_lib.core.market_view import MarketView
from research_lib.data.market.files import (
    _SPECS,
    _FileSpec,
    find_market_file,
)
from research_lib.errors import MarketDataError

# --------------------------------------------------------------------------------------------------------
# Parsing (strict, once, cached)
# --------------------------------------------------------------------------------------------------------
_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y%m%d")


def _line(pos: int) -> int:
    return int(pos) + 2  # 1-based, after the header line


def _parse_dates(values: pd.Series, path: Path, column: str) -> pd.DatetimeIndex:
    s = values.astype(str).str.strip()
    first = s[s != ""]
    fmt = None
    if len(first):
        for f in _DATE_FORMATS:
            if not pd.isna(pd.to_datetime(first.iloc[0], format=f, errors="coerce")):
                fmt = f
                break
    if fmt is None:
        parsed = pd.Series(pd.NaT, index=s.index)
    else:
        parsed = pd.Series(pd.to_datetime(s, format=fmt, errors="coerce"), index=s.index)
    bad = parsed.isna().to_numpy()
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise MarketDataError("unparseable dates", path=path, column=column, n_bad=int(bad.sum()),
                              example=f"{s.iloc[pos]!r} on line {_line(pos)}")
    idx = pd.DatetimeIndex(parsed.to_numpy()).astype("datetime64[ns]")
    dup = idx.duplicated(keep=False)
    if dup.any():
        pos = np.flatnonzero(idx == idx[dup][0])
        lines = " and ".join(str(_line(p)) for p in pos[:3])
        raise MarketDataError("duplicate dates", path=path, column=column, n_bad=int(dup.sum()),
                              example=f"{s.iloc[pos[0]]!r} on lines {lines}")
    return idx.rename("date")


def _parse_numbers(values: pd.Series, path: Path, column: str, na_values: tuple[str, ...]) -> np.ndarray:
    s = values.astype(str).str.strip()
    missing = s.isin(na_values).to_numpy()
    num = pd.to_numeric(s.where(~missing, None), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = (np.isnan(num) & ~missing) | np.isinf(num)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise MarketDataError("unparseable numbers", path=path, column=column, n_bad=int(bad.sum()),
                              example=f"{s.iloc[pos]!r} on line {_line(pos)}")
    return num


def _parse_file(path: Path, spec: _FileSpec) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MarketDataError(f"not a readable CSV ({exc})", path=path) from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    lower = {c.lower(): c for c in raw.columns}
    if len(raw) == 0:
        raise MarketDataError("the file has a header but no rows", path=path)

    def pick(candidates: tuple[str, ...]) -> str | None:
        for c in candidates:
            if c.lower() in lower:
                return lower[c.lower()]
        return None

    date_col = pick(spec.date_columns)
    if date_col is None:
        raise MarketDataError(f"no date column (looked for {' / '.join(spec.date_columns)}; "
                              f"header is {list(raw.columns)})", path=path)
    index = _parse_dates(raw[date_col], path, date_col)
    out: dict[str, Any] = {}
    used = {date_col}
    for name, candidates, required in spec.columns:
        col = pick(candidates)
        if col is None:
            if required:
                raise MarketDataError(f"missing column {name!r} (looked for {' / '.join(candidates)}; "
                                      f"header is {list(raw.columns)})", path=path)
            out[name] = np.full(len(raw), np.nan)
            continue
        used.add(col)
        out[name] = _parse_numbers(raw[col], path, col, spec.na_values)
    text: dict[str, np.ndarray] = {}
    for name, candidates in spec.text_columns:
        col = pick(candidates)
        if col is not None:
            used.add(col)
            text[name] = raw[col].astype(str).str.strip().to_numpy(dtype=object)
    if spec.keep_rest:
        for col in raw.columns:
            if col not in used:
                out[col] = _parse_numbers(raw[col], path, col, spec.na_values)
    frame = pd.DataFrame(out, index=index)
    for name, values in text.items():
        frame[name] = values
    if not frame.index.is_monotonic_increasing:
        frame = frame.sort_index(kind="stable")
    return frame


@functools.lru_cache(maxsize=64)
def _parse_cached(path_str: str, kind: str, size: int, mtime_ns: int) -> pd.DataFrame:
    return _parse_file(Path(path_str), _SPECS[kind])


def _load(kind: str, market_dir) -> tuple[pd.DataFrame, Path]:
    if isinstance(market_dir, MarketView):  # in memory, cut at the view's date: no file is read
        return market_dir.frame(kind)
    path = find_market_file(kind, market_dir)
    st = path.stat()
    frame = _parse_cached(str(path.resolve()), kind, st.st_size, st.st_mtime_ns).copy()
    frame.attrs = {"source": str(path)}
    return frame, path


def _non_session_dates(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Dates of ``index`` inside the exchange calendar's range that are not NYSE sessions."""
    lo, hi = pd.Timestamp(cal.CALENDAR_START), pd.Timestamp(cal.CALENDAR_END)
    inside = index[(index >= lo) & (index <= hi)]
    if len(inside) == 0:
        return inside
    return inside.difference(cal.sessions(inside[0], inside[-1]))


def _drop_non_sessions(frame: pd.DataFrame) -> pd.DataFrame:
    bad = _non_session_dates(frame.index)
    attrs = dict(frame.attrs)
    frame = frame.drop(index=bad)
    attrs["dropped_non_sessions"] = [d.strftime("%Y-%m-%d") for d in bad]
    frame.attrs = attrs
    return frame


