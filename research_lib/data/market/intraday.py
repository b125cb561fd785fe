"""Intraday files in: OHLCV bars, tick-by-tick trades and 1-second quote / trade bars (strict, vectorised).

Every reader returns a DataFrame whose ``ts`` column is ``datetime64[ns, UTC]`` (shown in New York time with
``ts.dt.tz_convert("America/New_York")``) and whose ``session`` column is the New York trading date
(:class:`datetime.date`). Rows are sorted by ``ts`` (a stable sort: the file's order is kept among equal
times). ``frame.attrs`` records the source file and what was dropped (``rows_read``, ``outside_hours``,
``suspicious_dropped`` for trades).

Formats (see ``shared/data/SOURCES.md``, "market/intraday" and "market/ticks")
------------------------------------------------------------------------------
* **Bars** (:func:`read_bars`): a CSV (optionally ``.gz``) or Parquet file with a datetime column (``ts``,
  ``datetime``, ``timestamp``, ``date`` or ``time``, any case) and ``open, high, low, close, volume`` (any case,
  any order: the S&P 500 1-minute file lists ``Open, Close, High, Low``). Naive times are wall-clock times in
  ``tz`` (default New York); times with an offset, or a tz-aware Parquet column, are converted. Datetime formats
  read: ``YYYY-MM-DD HH:MM[:SS]``, ``M/D/YYYY H:MM[:SS]`` and ISO 8601. A bar's time is its **start**.
* **Tick trades** (:func:`read_trades`): AlgoSeek/LEAN ``YYYYMMDD_trade.zip`` holding one header-less CSV:
  ``ms since midnight ET, price x 10000, size, exchange, sale condition, suspicious (0/1)``.
* **1-second quote bars** (:func:`read_quote_bars`): ``YYYYMMDD_quote.zip``: ``ms, bid open, high, low, close,
  bid size, ask open, high, low, close, ask size`` (prices x 10000); a row is the second starting at ``ms``.
* **1-second trade bars** (:func:`read_second_trades`): ``YYYYMMDD_trade.zip`` in ``second/``: ``ms, open,
  high, low, close, volume`` (prices x 10000).

The session date of a tick or second file comes from the first ``YYYYMMDD`` in its file name (else in the
CSV's name inside the zip), or from ``date=``. Milliseconds count New York wall-clock time from that midnight.

Regular hours
-------------
``regular_hours=True`` keeps rows whose time ``t`` satisfies ``open <= t < close`` of an NYSE session
(09:30 to 16:00 New York time, 13:00 on early closes, from :mod:`research_lib.calendar`); rows on days
that are not sessions are dropped too. A trade stamped exactly at the close or later (the closing-cross
prints at 16:00:00.05) is outside. A file whose times are not New York times is read with its own ``tz``
(the GOOGL fixture is Pacific time: ``tz="America/Los_Angeles"``), or "as given" with
``regular_hours=False``.

Validation
----------
Parsing is strict and happens once, here: a line with the wrong number of fields, an empty or non-numeric
value, a non-positive price, a negative size or volume, ``high < low``, an open or close outside
``[low, high]``, a suspicious flag other than 0/1, a duplicate bar time, or an unreadable / empty file raises
:class:`~research_lib.errors.IntradayFileError` naming the file, the column, the number of bad rows and an
example with its line number. Nothing is silently dropped except what the documented filters drop (and
count in ``attrs``).
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import os
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from research_lib import calendar as cal
from research_lib.errors import IntradayFileError
from research_lib.settings import NY

__all__ = [
    "BAR_COLUMNS",
    "PRICE_SCALE",
    "QUOTE_COLUMNS",
    "TRADE_COLUMNS",
    "IntradayFileError",
    "file_date",
    "quote_files",
    "read_bars",
    "read_quote_bars",
    "read_second_trades",
    "read_trades",
    "regular_hours_mask",
    "tick_files",
]

#: Columns of :func:`read_bars` and :func:`read_second_trades`.
BAR_COLUMNS = ("ts", "session", "open", "high", "low", "close", "volume")
#: Columns of :func:`read_trades`.
TRADE_COLUMNS = ("ts", "session", "price", "size", "exchange", "condition", "suspicious")
#: Columns of :func:`read_quote_bars`.
QUOTE_COLUMNS = ("ts", "session", "bid", "ask", "bid_size", "ask_size")
#: Prices in the tick and second files are dollars x this.
PRICE_SCALE = 10_000

_TRADE_FIELDS = ("ms", "price", "size", "exchange", "condition", "suspicious")
_QUOTE_FIELDS = ("ms", "bid_open", "bid_high", "bid_low", "bid_close", "bid_size",
                 "ask_open", "ask_high", "ask_low", "ask_close", "ask_size")
_SECOND_FIELDS = ("ms", "open", "high", "low", "close", "volume")
_TIME_COLUMNS = ("ts", "datetime", "timestamp", "date", "time")
_OHLCV = ("open", "high", "low", "close", "volume")
_BAR_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S",
                "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M")
_OFFSET = re.compile(r"(Z|[+-]\d\d:?\d\d)$")
_DAY = re.compile(r"(?<!\d)(\d{8})(?!\d)")
_MS_PER_DAY = 86_400_000


# --------------------------------------------------------------------------------------------------------
# Sessions and regular hours
# --------------------------------------------------------------------------------------------------------
def regular_hours_mask(ts: pd.Series | pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """The New York trading date of each time and whether it falls in that session's regular hours.

    Parameters
    ----------
    ts : tz-aware datetime Series or DatetimeIndex
        Any time zone (read in New York time).

    Returns
    -------
    session : ndarray of object
        :class:`datetime.date` of each time's New York calendar day.
    regular : ndarray of bool
        ``open <= t < close`` of that day's NYSE session (09:30 to 16:00, 13:00 on early closes); False on
        days that are not sessions.
    """
    local = pd.DatetimeIndex(ts).as_unit("ns").tz_convert(NY)
    naive = local.tz_localize(None)
    days = naive.normalize()
    uniq = days.unique()
    is_sess = np.array([cal.is_session(d) for d in uniq], dtype=bool)
    opens = pd.DatetimeIndex([cal.session_open(d).tz_localize(None) for d in uniq]).astype("datetime64[ns]")
    closes = pd.DatetimeIndex([cal.session_close(d).tz_localize(None) for d in uniq]).astype("datetime64[ns]")
    pos = uniq.get_indexer(days)
    t = naive.asi8
    regular = is_sess[pos] & (t >= opens.asi8[pos]) & (t < closes.asi8[pos])
    dates = np.array([d.date() for d in uniq], dtype=object)
    return dates[pos], regular


def _finish(frame: pd.DataFrame, path: Path, regular_hours: bool, columns: Sequence[str]) -> pd.DataFrame:
    """Add ``session``, cut to regular hours, stable-sort by ``ts``, order the columns, set ``attrs``."""
    session, regular = regular_hours_mask(frame["ts"])
    frame.insert(1, "session", session)
    rows = len(frame)
    if regular_hours:
        frame = frame.loc[regular]
    ts = pd.DatetimeIndex(frame["ts"]).asi8  # int64 ns (to_numpy() of a tz-aware column is slow objects)
    if len(ts) > 1 and (ts[1:] < ts[:-1]).any():
        frame = frame.iloc[np.argsort(ts, kind="stable")]
    frame = frame.reset_index(drop=True)[list(columns)]
    frame.attrs = {"source": str(path), "rows_read": rows, "outside_hours": int(rows - int(regular.sum()))
                   if regular_hours else 0}
    return frame


# --------------------------------------------------------------------------------------------------------
# Raw text: one CSV, plain, gzipped or the only member of a zip
# --------------------------------------------------------------------------------------------------------
def _open_text(path: Path) -> tuple[io.BytesIO, str]:
    """The bytes of the one CSV in ``path`` (a zip's only member, a .gz, or plain) and that CSV's name."""
    if not path.exists():
        raise IntradayFileError("no such file", path=path)
    if path.is_dir():
        raise IntradayFileError("is a folder, not a file", path=path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise IntradayFileError(f"a zip must hold exactly one CSV, this one holds {len(members)} "
                                            f"({', '.join(m.filename for m in members[:3])})", path=path)
                return io.BytesIO(zf.read(members[0])), members[0].filename
        raw = path.read_bytes()
        if raw[:4] == b"PK\x03\x04":  # a zip's signature, but zipfile found no readable archive
            raise IntradayFileError("unreadable: a damaged or truncated zip", path=path)
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return io.BytesIO(raw), path.name
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise IntradayFileError(f"unreadable ({type(exc).__name__}: {exc})", path=path) from exc


def _diagnose(data: io.BytesIO, path: Path, names: Sequence[str], numeric: Sequence[str],
              header: bool) -> None:
    """Find the first bad rows of a file the fast parser refused, and raise naming them (slow, errors only)."""
    text = data.getvalue().decode("utf-8", errors="replace")
    lines = pd.Series(text.splitlines())
    offset = 1
    if header:
        lines, offset = lines.iloc[1:], 2
    lines = lines.reset_index(drop=True)
    blank = lines.str.strip() == ""
    fields = lines.str.count(",") + 1
    bad = (fields != len(names)) & ~blank
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise IntradayFileError(f"malformed lines (expected {len(names)} comma-separated fields)", path=path,
                                n_bad=int(bad.sum()), line=pos + offset,
                                example=f"{lines.iloc[pos]!r} on line {pos + offset} ({fields.iloc[pos]} fields)")
    keep = ~blank.to_numpy()
    table = lines[keep].str.split(",", expand=True)
    table.columns = list(names)
    where = np.flatnonzero(keep)
    for col in numeric:
        _numbers(table[col], path, col, where + offset)


def _numbers(values: pd.Series, path: Path, column: str, lines: np.ndarray) -> np.ndarray:
    """``values`` as float64, or :class:`IntradayFileError` naming the empty / non-numeric / infinite ones."""
    s = values.astype(str).str.strip()
    num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(num)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise IntradayFileError("empty or non-numeric values", path=path, column=column, n_bad=int(bad.sum()),
                                line=int(lines[pos]), example=f"{s.iloc[pos]!r} on line {int(lines[pos])}")
    return num


def _read_headerless(path: Path, names: Sequence[str], dtypes: dict) -> tuple[pd.DataFrame, str]:
    """Parse a header-less CSV with the fast C parser; any refusal or empty field is diagnosed and named."""
    data, member = _open_text(path)
    numeric = [c for c, t in dtypes.items() if t != "str"]
    try:  # no NA parsing: an empty numeric field fails the int64 cast; "nan" stays text in a text field
        frame = pd.read_csv(data, header=None, names=list(names), dtype=dtypes, engine="c", na_filter=False,
                            skip_blank_lines=True)
    except pd.errors.EmptyDataError as exc:
        raise IntradayFileError("empty file (no rows)", path=path) from exc
    except (ValueError, pd.errors.ParserError, OverflowError):
        _diagnose(data, path, names, numeric, header=False)
        raise IntradayFileError("unparseable file (the fast CSV parser refused it and no bad row was found)",
                                path=path) from None
    if len(frame) == 0:
        raise IntradayFileError("empty file (no rows)", path=path)
    for col in (c for c, t in dtypes.items() if t == "str"):
        empty = (frame[col] == "").to_numpy()
        if empty.any():
            _diagnose(data, path, names, numeric, header=False)  # a short line shows up as empty fields
            pos = int(np.flatnonzero(empty)[0])
            raise IntradayFileError("empty values", path=path, column=col, n_bad=int(empty.sum()), line=pos + 1,
                                    example=f"line {pos + 1}")
    return frame, member


def _check(bad: np.ndarray, path: Path, column: str, message: str, values, lines_offset: int = 1) -> None:
    """Raise when any ``bad``: names the column, the count and the first bad value with its line."""
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        line = pos + lines_offset
        raise IntradayFileError(message, path=path, column=column, n_bad=int(bad.sum()), line=line,
                                example=f"{values[pos]!r} on line {line}")


# --------------------------------------------------------------------------------------------------------
# Tick and second files (AlgoSeek layout)
# --------------------------------------------------------------------------------------------------------
def file_date(path: str | os.PathLike, member: str | None = None) -> dt.date:
    """The session date of a tick / second file: the first ``YYYYMMDD`` in its name, else in ``member``.

    Raises :class:`IntradayFileError` when neither name holds a valid date.
    """
    path = Path(path)
    for name in (path.name, member or ""):
        for m in _DAY.finditer(name):
            try:
                return dt.datetime.strptime(m.group(1), "%Y%m%d").date()
            except ValueError:
                continue
    raise IntradayFileError("no YYYYMMDD date in the file name (pass date=)", path=path)


def _ms_to_ts(ms: np.ndarray, day: dt.date, path: Path) -> pd.Series:
    bad = (ms < 0) | (ms >= _MS_PER_DAY)
    _check(bad, path, "ms", "milliseconds since midnight outside [0, 86,400,000)", ms)
    naive = pd.Timestamp(day).asm8.astype("datetime64[ms]") + ms.astype("timedelta64[ms]")
    try:
        local = pd.DatetimeIndex(naive.astype("datetime64[ns]")).tz_localize(NY, ambiguous="raise",
                                                                             nonexistent="raise")
    except (ValueError, OverflowError) as exc:  # pytz/zoneinfo errors on the DST change hours
        raise IntradayFileError(f"times that do not exist or are ambiguous in New York ({exc})",
                                path=path, column="ms") from exc
    return pd.Series(local.tz_convert("UTC"))


def _prices(raw: np.ndarray, path: Path, column: str) -> np.ndarray:
    _check(raw <= 0, path, column, "non-positive prices", raw)
    return raw / PRICE_SCALE


def read_trades(path: str | os.PathLike, *, regular_hours: bool = True, drop_suspicious: bool = True,
                date: dt.date | str | None = None) -> pd.DataFrame:
    """Read one tick-by-tick trade file (``YYYYMMDD_trade.zip``, AlgoSeek layout).

    Parameters
    ----------
    path : path-like
        The zip (one header-less CSV: ms since midnight ET, price x 10000, size, exchange, sale condition,
        suspicious 0/1), or that CSV itself (plain or gzipped).
    regular_hours : bool, default True
        Keep only trades with ``open <= t < close`` of the session (see the module notes).
    drop_suspicious : bool, default True
        Drop the trades the vendor flagged suspicious; their number is ``attrs["suspicious_dropped"]``
        (counted after the regular-hours cut).
    date : date or "YYYY-MM-DD", optional
        The session date, when the file name does not hold it.

    Returns
    -------
    DataFrame
        ``ts`` (UTC, millisecond precision), ``session`` (date), ``price`` (dollars, float64), ``size``
        (shares, float64), ``exchange`` (str), ``condition`` (str, the vendor's sale-condition code),
        ``suspicious`` (bool); the file's order among equal times. ``attrs``: ``source``, ``date``,
        ``rows_read``, ``outside_hours``, ``suspicious_dropped``.

    Raises
    ------
    IntradayFileError
        Malformed lines, non-numeric values, non-positive prices, negative sizes, a suspicious flag not
        0/1, no date.
    """
    path = Path(path)
    raw, member = _read_headerless(path, _TRADE_FIELDS, {"ms": "int64", "price": "int64", "size": "int64",
                                                         "exchange": "str", "condition": "str",
                                                         "suspicious": "int64"})
    day = _as_date(date, path) if date is not None else file_date(path, member)
    price = _prices(raw["price"].to_numpy(), path, "price")
    size = raw["size"].to_numpy()
    _check(size < 0, path, "size", "negative sizes", size)
    susp = raw["suspicious"].to_numpy()
    _check((susp != 0) & (susp != 1), path, "suspicious", "suspicious flags other than 0 / 1", susp)
    frame = pd.DataFrame({"ts": _ms_to_ts(raw["ms"].to_numpy(), day, path), "price": price,
                          "size": size.astype(np.float64), "exchange": raw["exchange"].astype(str),
                          "condition": raw["condition"].astype(str), "suspicious": susp.astype(bool)})
    out = _finish(frame, path, regular_hours, TRADE_COLUMNS)
    attrs = dict(out.attrs)
    flagged = out["suspicious"].to_numpy()
    attrs["suspicious_dropped"] = int(flagged.sum()) if drop_suspicious else 0
    if drop_suspicious and flagged.any():
        out = out.loc[~flagged].reset_index(drop=True)
    attrs["date"] = day.isoformat()
    out.attrs = attrs
    return out


def read_quote_bars(path: str | os.PathLike, *, regular_hours: bool = True,
                    date: dt.date | str | None = None, ohlc: bool = False) -> pd.DataFrame:
    """Read one 1-second quote bar file (``YYYYMMDD_quote.zip``, AlgoSeek layout).

    Parameters
    ----------
    path : path-like
        The zip (header-less CSV: ms, bid open, high, low, close, bid size, ask open, high, low, close, ask
        size; prices x 10000) or that CSV.
    regular_hours : bool, default True
        Keep only seconds starting at ``open <= t < close``.
    date : date or "YYYY-MM-DD", optional
        The session date, when the file name does not hold it.
    ohlc : bool, default False
        Also return each side's open, high and low (``bid_open, bid_high, bid_low, ask_open, ask_high,
        ask_low``, dollars) after the six standard columns.

    Returns
    -------
    DataFrame
        ``ts`` (UTC, the second's start), ``session``, ``bid``, ``ask`` (the second's closing quote, dollars),
        ``bid_size``, ``ask_size`` (float64, shares, of the closing quote). The quote in a row is known only
        at the second's end, ``ts + 1 s``: an as-of join for trades must use that (see
        :func:`research_lib.core.order_flow.prevailing_quote`).

    Raises
    ------
    IntradayFileError
        Malformed lines, non-numeric values, non-positive prices, negative sizes, a side's high below its low
        or its open / close outside its range.
    """
    path = Path(path)
    dtypes = dict.fromkeys(_QUOTE_FIELDS, "int64")
    raw, member = _read_headerless(path, _QUOTE_FIELDS, dtypes)
    day = _as_date(date, path) if date is not None else file_date(path, member)
    out = {"ts": _ms_to_ts(raw["ms"].to_numpy(), day, path)}
    for side in ("bid", "ask"):
        o, h, lo, c = (raw[f"{side}_{k}"].to_numpy() for k in ("open", "high", "low", "close"))
        _ohlc_checks(o, h, lo, c, path, side + "_", scaled=True)
        out[side] = c / PRICE_SCALE
    for side in ("bid", "ask"):
        size = raw[f"{side}_size"].to_numpy()
        _check(size < 0, path, f"{side}_size", "negative sizes", size)
        out[f"{side}_size"] = size.astype(np.float64)
    columns = QUOTE_COLUMNS
    if ohlc:
        for side in ("bid", "ask"):
            for k in ("open", "high", "low"):
                out[f"{side}_{k}"] = raw[f"{side}_{k}"].to_numpy() / PRICE_SCALE
        columns = QUOTE_COLUMNS + tuple(f"{side}_{k}" for side in ("bid", "ask") for k in ("open", "high", "low"))
    frame = _finish(pd.DataFrame(out), path, regular_hours, columns)
    frame.attrs["date"] = day.isoformat()
    return frame


def read_second_trades(path: str | os.PathLike, *, regular_hours: bool = True,
                       date: dt.date | str | None = None) -> pd.DataFrame:
    """Read one 1-second trade bar file (``second/YYYYMMDD_trade.zip``: ms, open, high, low, close, volume;
    prices x 10000). Only seconds with trades are listed.

    Returns
    -------
    DataFrame
        The columns of :func:`read_bars` (``ts`` = the second's start, UTC; prices in dollars).

    Raises
    ------
    IntradayFileError
        As :func:`read_bars`.
    """
    path = Path(path)
    raw, member = _read_headerless(path, _SECOND_FIELDS, dict.fromkeys(_SECOND_FIELDS, "int64"))
    day = _as_date(date, path) if date is not None else file_date(path, member)
    o, h, lo, c = (raw[k].to_numpy() for k in ("open", "high", "low", "close"))
    _ohlc_checks(o, h, lo, c, path, "", scaled=True)
    vol = raw["volume"].to_numpy()
    _check(vol < 0, path, "volume", "negative volumes", vol)
    frame = pd.DataFrame({"ts": _ms_to_ts(raw["ms"].to_numpy(), day, path), "open": o / PRICE_SCALE,
                          "high": h / PRICE_SCALE, "low": lo / PRICE_SCALE, "close": c / PRICE_SCALE,
                          "volume": vol.astype(np.float64)})
    _check(frame["ts"].duplicated().to_numpy(), path, "ms", "duplicate bar times", raw["ms"].to_numpy())
    frame = _finish(frame, path, regular_hours, BAR_COLUMNS)
    frame.attrs["date"] = day.isoformat()
    return frame


def _as_date(value, path: Path) -> dt.date:
    try:
        return pd.Timestamp(value).date()
    except (TypeError, ValueError) as exc:
        raise IntradayFileError(f"date={value!r} is not a date", path=path) from exc


def _ohlc_checks(o, h, lo, c, path: Path, prefix: str, *, scaled: bool, lines_offset: int = 1) -> None:
    for name, v in (("open", o), ("high", h), ("low", lo), ("close", c)):
        _check(v <= 0, path, prefix + name, "non-positive prices", v, lines_offset)
    _check(h < lo, path, prefix + "high", f"{prefix}high below {prefix}low", h, lines_offset)
    for name, v in (("open", o), ("close", c)):
        _check((v > h) | (v < lo), path, prefix + name, f"{prefix}{name} outside [{prefix}low, {prefix}high]",
               v, lines_offset)


# --------------------------------------------------------------------------------------------------------
# OHLCV bar files
# --------------------------------------------------------------------------------------------------------
def read_bars(path: str | os.PathLike, *, regular_hours: bool = True, tz: str = NY) -> pd.DataFrame:
    """Read any OHLCV bar file: the SPY 1-/5-minute CSVs, the S&P 500 1-minute CSV, the GOOGL 30-minute
    fixture, a generic CSV(.gz) or Parquet with a datetime column.

    Parameters
    ----------
    path : path-like
        ``.csv``, ``.csv.gz``, ``.txt`` or ``.parquet`` (see the module notes for the columns read).
    regular_hours : bool, default True
        Keep only bars starting at ``open <= start < close`` of an NYSE session (13:00 on early closes); the
        number dropped is ``attrs["outside_hours"]``.
    tz : str, default "America/New_York"
        The zone of naive times in the file (ignored for times that carry an offset).

    Returns
    -------
    DataFrame
        ``ts`` (datetime64[ns, UTC], the bar's start), ``session`` (New York date), ``open``, ``high``,
        ``low``, ``close``, ``volume`` (float64; an index's bars may have volume 0); sorted by ``ts``, unique.

    Raises
    ------
    IntradayFileError
        No datetime or OHLCV column, unparseable times or numbers (including empty cells), a negative volume,
        ``high < low``, an open or close outside ``[low, high]``, a duplicate bar time, an unreadable file.
    """
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        raw, header = _read_parquet(path), False
    else:
        data, _ = _open_text(path)
        try:
            raw = pd.read_csv(data, dtype=str, keep_default_na=False, encoding="utf-8-sig", engine="c")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise IntradayFileError(f"not a readable CSV ({str(exc).strip()})", path=path) from exc
        header = True
    if len(raw) == 0:
        raise IntradayFileError("no rows", path=path)
    lower = {str(c).strip().lower(): c for c in raw.columns}
    tcol = next((lower[c] for c in _TIME_COLUMNS if c in lower), None)
    if tcol is None:
        raise IntradayFileError(f"no datetime column (looked for {' / '.join(_TIME_COLUMNS)}; columns are "
                                f"{[str(c) for c in raw.columns]})", path=path)
    missing = [c for c in _OHLCV if c not in lower]
    if missing:
        raise IntradayFileError(f"missing columns {missing} (columns are {[str(c) for c in raw.columns]})",
                                path=path)
    off = 2 if header else 1
    lines = np.arange(len(raw)) + off
    ts = _bar_times(raw[tcol], path, str(tcol), tz, lines)
    vals = {k: (_numbers(raw[lower[k]], path, str(lower[k]), lines) if raw[lower[k]].dtype.kind not in "iuf"
                else _finite(raw[lower[k]].to_numpy(dtype=float), path, str(lower[k]), lines))
            for k in _OHLCV}
    _ohlc_checks(vals["open"], vals["high"], vals["low"], vals["close"], path, "", scaled=False, lines_offset=off)
    _check(vals["volume"] < 0, path, str(lower["volume"]), "negative volumes", vals["volume"], off)
    dup = ts.duplicated(keep=False).to_numpy()
    if dup.any():
        pos = np.flatnonzero(dup)
        first = pos[ts.to_numpy()[pos] == ts.iloc[pos[0]]][:3]
        raise IntradayFileError("duplicate bar times", path=path, column=str(tcol), n_bad=int(dup.sum()),
                                line=int(lines[first[0]]),
                                example=f"{raw[tcol].iloc[first[0]]!r} on lines "
                                        + " and ".join(str(int(lines[p])) for p in first))
    frame = pd.DataFrame({"ts": ts, **vals})
    return _finish(frame, path, regular_hours, BAR_COLUMNS)


def _finite(values: np.ndarray, path: Path, column: str, lines: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(values)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise IntradayFileError("empty or non-finite values", path=path, column=column, n_bad=int(bad.sum()),
                                line=int(lines[pos]), example=f"{values[pos]!r} on line {int(lines[pos])}")
    return values.astype(np.float64)


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise IntradayFileError("no such file", path=path)
    try:
        raw = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise IntradayFileError(f"unreadable Parquet ({type(exc).__name__}: {exc})", path=path) from exc
    if isinstance(raw.index, pd.DatetimeIndex):
        raw = raw.reset_index(names=raw.index.name or "ts")
    return raw


def _bar_times(values: pd.Series, path: Path, column: str, tz: str, lines: np.ndarray) -> pd.Series:
    """Bar start times as UTC: naive values are wall-clock times in ``tz``, offsets are honoured."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = pd.Series(pd.DatetimeIndex(values).tz_convert("UTC"))
    elif values.dtype.kind == "M":
        parsed = _localize(pd.DatetimeIndex(values), tz, path, column)
    else:
        s = values.astype(str).str.strip()
        first = s.iloc[0]
        if _OFFSET.search(first):
            idx = pd.to_datetime(s, format="ISO8601", utc=True, errors="coerce")
            bad = idx.isna().to_numpy()
            parsed = None if bad.any() else pd.Series(pd.DatetimeIndex(idx))
        else:
            fmt = next((f for f in _BAR_FORMATS
                        if not pd.isna(pd.to_datetime(first, format=f, errors="coerce"))), "ISO8601")
            idx = pd.to_datetime(s, format=fmt, errors="coerce")
            bad = pd.isna(idx).to_numpy() if hasattr(idx, "to_numpy") else np.asarray(pd.isna(idx))
            parsed = None if bad.any() else _localize(pd.DatetimeIndex(idx), tz, path, column)
        if parsed is None:
            pos = int(np.flatnonzero(bad)[0])
            raise IntradayFileError("unparseable date-times", path=path, column=column, n_bad=int(bad.sum()),
                                    line=int(lines[pos]), example=f"{s.iloc[pos]!r} on line {int(lines[pos])}")
    return parsed.astype("datetime64[ns, UTC]").reset_index(drop=True)


def _localize(idx: pd.DatetimeIndex, tz: str, path: Path, column: str) -> pd.Series:
    try:
        return pd.Series(idx.tz_localize(tz, ambiguous="raise", nonexistent="raise").tz_convert("UTC"))
    except (ValueError, OverflowError) as exc:
        raise IntradayFileError(f"times that do not exist or are ambiguous in {tz} ({exc})", path=path,
                                column=column) from exc


# --------------------------------------------------------------------------------------------------------
# Folders of daily files
# --------------------------------------------------------------------------------------------------------
def _daily_files(path: Path, sub: str, suffix: str) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise IntradayFileError("no such file or folder", path=path)
    folder = path / sub if (path / sub).is_dir() else path
    files = sorted(p for p in folder.glob(f"*{suffix}") if p.is_file())
    if not files:
        raise IntradayFileError(f"no *{suffix} files in the folder", path=folder)
    return files


def tick_files(path: str | os.PathLike) -> list[Path]:
    """The tick trade files ``path`` names: itself when a file; else the ``*_trade.zip`` files of its
    ``tick/`` sub-folder (the AlgoSeek layout), or of the folder itself, sorted by name (= date)."""
    return _daily_files(Path(path), "tick", "_trade.zip")


def quote_files(path: str | os.PathLike) -> list[Path]:
    """The 1-second quote files ``path`` names: itself, or the ``*_quote.zip`` of ``second/`` or the folder."""
    return _daily_files(Path(path), "second", "_quote.zip")
