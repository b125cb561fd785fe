"""Daily market history (index, VIX family, rates, published GEX) and the rate / dividend-yield lookups.

A flat module of functions. Every loader returns a DataFrame indexed by a tz-naive ``date``
:class:`~pandas.DatetimeIndex` (midnight, sorted, unique) with the columns its docstring lists, and sets
``frame.attrs["source"]`` to what served it (a file path, or the offline fallback's description).

Where files come from
---------------------
Every loader takes ``market_dir``. When it is given, only that directory is searched. When it is ``None``
the search order is (:func:`market_data_dirs`):

1. ``$RESEARCH_LIB_MARKET_DATA`` (when set),
2. ``<repo>/data/market`` -- the user's own copies (repo = the directory holding the ``research_lib``
   package),
3. ``<repo>/../shared/data/market`` -- the shared development data (see ``shared/data/SOURCES.md``).

Files are matched by name pattern (``spx_daily_*.csv``, ``cboe_VIX_History.csv`` or Cboe's own download name
``VIX_History.csv``, ``fred_DFF_*.csv`` or FRED's ``DFF.csv`` ...), so a fresh download of the same public
file works. The first directory holding a match wins; within it, the lexicographically last match (the newest
date-stamped name). A missing file raises :class:`MarketDataNotFoundError` saying which patterns were
looked for, in which directories, and where to get the file.

Validation
----------
Files are parsed strictly, once, at the edge. Unparseable dates or numbers and duplicate dates raise
:class:`MarketDataError` naming the file, the column, the number of bad rows and an example (with its line
number); nothing is silently dropped. Empty cells (and the documented missing markers: FRED's ``"."``,
Yahoo's ``"null"``) are NaN: known holes stay holes. Parsed files are cached per (path, size, mtime), so
repeated lookups are cheap; every call returns a fresh copy.

Rates and dividend yield
------------------------
:func:`risk_free_rate` / :func:`risk_free_rates` give a continuously-compounded decimal rate from the
13-week T-bill (IRX), else the 3-month constant-maturity Treasury (FRED DGS3MO), else the effective fed
funds rate (FRED DFF), always the last observation at or before the date (no look-ahead). Each quote is
converted exactly from its own quoting basis (see :func:`tbill_discount_to_continuous`,
:func:`bond_equivalent_to_continuous`, :func:`money_market_to_continuous`).
:func:`dividend_yield` implies the S&P 500's continuous dividend yield from its total-return index against
its price index over a trailing window.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from research_lib import calendar as cal
from research_lib.core import gex
from research_lib.core.chain import ResearchLibError
from research_lib.core.indicators import (  # the indicators live in research_lib.core.indicators; re-exported
    iv_percentile as iv_percentile,
    iv_rank as iv_rank,
    moving_average as moving_average,
)
from research_lib.core.market_view import MarketHistory, MarketView
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    GexConfigError,
    MarketDataError as MarketDataError,
    MarketDataNotFoundError as MarketDataNotFoundError,
    MarketDataWarning as MarketDataWarning,
)
from research_lib.settings import ENV_MARKET_DATA, NY, REPO_ROOT, SP500_UNDERLYINGS

__all__ = [
    "BILL_DAYS",
    "ENV_VAR",
    "PUT_CALL_BROAD",
    "PUT_CALL_PLACEHOLDERS",
    "RATES_METHOD",
    "RATE_SOURCES",
    "SP500_UNDERLYINGS",
    "VOL_INDICES",
    "VVIX_CLEAN_START",
    "DividendYield",
    "MarketDataError",
    "MarketDataNotFoundError",
    "MarketDataWarning",
    "SnapshotRates",
    "bond_equivalent_to_continuous",
    "dividend_yield",
    "dividend_yields",
    "find_market_file",
    "iv_percentile",
    "iv_rank",
    "load_index_daily",
    "load_published_gex",
    "load_put_call_ratios",
    "load_rates",
    "load_spy_daily",
    "load_vix_family",
    "load_vol_index",
    "market_data_dirs",
    "money_market_to_continuous",
    "moving_average",
    "risk_free_rate",
    "risk_free_rates",
    "snapshot_config",
    "snapshot_rates",
    "tbill_discount_to_continuous",
]

#: Environment variable naming a directory of market history files (searched first).
ENV_VAR = ENV_MARKET_DATA


# --------------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------------------
# File registry
# --------------------------------------------------------------------------------------------------------
_CBOE_PAGE = "https://www.cboe.com/tradable_products/vix/vix_historical_data/"
_CBOE_CSV = "https://cdn.cboe.com/api/global/us_indices/daily_prices/{name}_History.csv"


@dataclasses.dataclass(frozen=True)
class _FileSpec:
    key: str
    title: str
    patterns: tuple[str, ...]
    get_it: str
    date_columns: tuple[str, ...]
    #: (output column, candidate input names (case-insensitive), required)
    columns: tuple[tuple[str, tuple[str, ...], bool], ...]
    na_values: tuple[str, ...] = ("",)
    text_columns: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: parse every other column as a number too, under its own name (the put/call file)
    keep_rest: bool = False


def _ohlc(*extra: tuple[str, tuple[str, ...], bool]) -> tuple[tuple[str, tuple[str, ...], bool], ...]:
    return (
        ("open", ("open",), False),
        ("high", ("high",), False),
        ("low", ("low",), False),
        ("close", ("close",), True),
        *extra,
    )


def _cboe_spec(name: str, columns) -> _FileSpec:
    return _FileSpec(
        key=name.lower(),
        title=f"Cboe {name} daily history",
        patterns=(f"cboe_{name}_History.csv", f"{name}_History.csv"),
        get_it=f"Cboe's historical data page {_CBOE_PAGE} ({_CBOE_CSV.format(name=name)})",
        date_columns=("date",),
        columns=columns,
    )


_SPECS: dict[str, _FileSpec] = {
    "spx": _FileSpec(
        key="spx",
        title="S&P 500 daily history (price and total-return index)",
        patterns=("spx_daily_*.csv",),
        get_it=("a daily S&P 500 history with columns date, open, high, low, close[, spxtr_close]: e.g. Yahoo "
                "Finance ^GSPC and ^SP500TR (https://finance.yahoo.com/quote/%5EGSPC/history) or LSEG .INX / "
                ".SPXTR, saved as spx_daily_<start>_<end>.csv"),
        date_columns=("date",),
        columns=_ohlc(("total_return_close", ("spxtr_close", "total_return_close"), False)),
        text_columns=(("vendor", ("source", "vendor")),),
    ),
    "spy": _FileSpec(
        key="spy",
        title="SPY daily history, unadjusted",
        patterns=("spy_daily_raw_*.csv",),
        get_it=("unadjusted SPY daily bars (date, open, high, low, close, volume), e.g. Yahoo Finance SPY history "
                "(https://finance.yahoo.com/quote/SPY/history), saved as spy_daily_raw_<start>_<end>.csv"),
        date_columns=("date",),
        columns=_ohlc(("volume", ("volume",), False)),
        na_values=("", "null"),
    ),
    "vix": _cboe_spec("VIX", _ohlc()),
    "vix9d": _cboe_spec("VIX9D", _ohlc()),
    "vix3m": _cboe_spec("VIX3M", _ohlc()),
    "vvix": _cboe_spec("VVIX", (("close", ("vvix", "close"), True),)),
    "skew": _cboe_spec("SKEW", (("close", ("skew", "close"), True),)),
    "put_call": _FileSpec(
        key="put_call",
        title="Cboe daily put/call ratios",
        patterns=("cboe_put_call_ratios_*.csv",),
        get_it=("Cboe's daily market statistics (https://www.cboe.com/us/options/market_statistics/daily/), one "
                "row per day, saved as cboe_put_call_ratios_<start>_<end>.csv"),
        date_columns=("fecha", "date"),
        columns=(),
        keep_rest=True,
    ),
    "dff": _FileSpec(
        key="dff",
        title="FRED DFF (effective federal funds rate, %, calendar-daily)",
        patterns=("fred_DFF_*.csv", "DFF.csv"),
        get_it="FRED series DFF, https://fred.stlouisfed.org/series/DFF (Download → CSV)",
        date_columns=("date", "observation_date"),
        columns=(("value", ("dff", "value"), True),),
        na_values=("", "."),
    ),
    "dgs3mo": _FileSpec(
        key="dgs3mo",
        title="FRED DGS3MO (3-month Treasury constant maturity, %, bond-equivalent)",
        patterns=("fred_DGS3MO_*.csv", "DGS3MO.csv"),
        get_it="FRED series DGS3MO, https://fred.stlouisfed.org/series/DGS3MO (Download → CSV)",
        date_columns=("date", "observation_date"),
        columns=(("value", ("dgs3mo", "value"), True),),
        na_values=("", "."),
    ),
    "irx": _FileSpec(
        key="irx",
        title="13-week T-bill yield (Cboe IRX, %, bank-discount basis)",
        patterns=("irx_13week_tbill_*.csv",),
        get_it=("the ^IRX daily history (13-week T-bill discount yield in %), e.g. Yahoo Finance "
                "https://finance.yahoo.com/quote/%5EIRX/history, saved as irx_13week_tbill_<start>_<end>.csv "
                "with columns date, irx_13w_tbill_yield_pct (a Yahoo download's Close column works too)"),
        date_columns=("date",),
        columns=(("value", ("irx_13w_tbill_yield_pct", "close", "value"), True),),
        na_values=("", "null"),
    ),
    "gex": _FileSpec(
        key="gex",
        title="SqueezeMetrics DIX and GEX (published)",
        patterns=("squeezemetrics_dix_gex_*.csv", "DIX.csv"),
        get_it="SqueezeMetrics' monitor, https://squeezemetrics.com/monitor/dix (CSV: .../monitor/static/DIX.csv)",
        date_columns=("date",),
        columns=(("price", ("price",), True), ("dix", ("dix",), True), ("gex", ("gex",), True)),
    ),
}


# --------------------------------------------------------------------------------------------------------
# Locating files
# --------------------------------------------------------------------------------------------------------
def market_data_dirs(market_dir: str | os.PathLike | None = None) -> list[Path]:
    """The directories searched for market history files, in order.

    Parameters
    ----------
    market_dir : path, optional
        When given, the only directory searched.

    Returns
    -------
    list of Path
        ``[market_dir]``, or ``$RESEARCH_LIB_MARKET_DATA`` (when set and non-empty), ``<repo>/data/market``
        and ``<repo>/../shared/data/market``. Directories need not exist.
    """
    if market_dir is not None:
        return [Path(market_dir)]
    dirs = []
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        dirs.append(Path(env))
    dirs.append(REPO_ROOT / "data" / "market")
    dirs.append(REPO_ROOT.parent / "shared" / "data" / "market")
    return dirs


def _not_found(spec: _FileSpec, dirs: list[Path], extra: str = "") -> MarketDataNotFoundError:
    where = "; ".join(f"{d}{'' if d.is_dir() else ' (missing)'}" for d in dirs)
    msg = (f"{spec.title}: no file matching {' or '.join(spec.patterns)} in {where}. "
           f"Get it from {spec.get_it}, and put it in one of those directories "
           f"(or set ${ENV_VAR}, or pass market_dir=).{extra}")
    return MarketDataNotFoundError(msg, patterns=spec.patterns, searched=dirs)


def _find(spec: _FileSpec, market_dir) -> Path | None:
    for d in market_data_dirs(market_dir):
        if not d.is_dir():
            continue
        for pattern in spec.patterns:
            matches = sorted(p for p in d.glob(pattern) if p.is_file())
            if matches:
                return matches[-1]
    return None


def find_market_file(kind: str, market_dir: str | os.PathLike | None = None) -> Path:
    """The file that would serve ``kind``.

    Parameters
    ----------
    kind : str
        One of ``spx``, ``spy``, ``vix``, ``vix9d``, ``vix3m``, ``vvix``, ``skew``, ``put_call``, ``dff``,
        ``dgs3mo``, ``irx``, ``gex``.
    market_dir : path, optional
        See :func:`market_data_dirs`.

    Raises
    ------
    MarketDataNotFoundError
        No matching file in any searched directory; the message says where to get it.
    """
    spec = _spec(kind)
    path = _find(spec, market_dir)
    if path is None:
        raise _not_found(spec, market_data_dirs(market_dir))
    return path


def _spec(kind: str) -> _FileSpec:
    try:
        return _SPECS[kind]
    except KeyError:
        raise ValueError(f"unknown market file kind {kind!r}; expected one of {sorted(_SPECS)}") from None


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


# --------------------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------------------
_INDEX_KINDS = {"SPX": "spx"}
_SP500_FALLBACK = "arch.data.sp500 (real S&P 500 history to 2018-12-31, offline fallback)"


def load_index_daily(symbol: str = "SPX", *, market_dir: str | os.PathLike | None = None,
                     sessions_only: bool = True, offline_ok: bool = False) -> pd.DataFrame:
    """Daily history of a cash index (S&P 500).

    Parameters
    ----------
    symbol : {"SPX"}
        The index. Only the S&P 500 is available (file ``spx_daily_*.csv``).
    market_dir : path, optional
        Directory holding the file; see :func:`market_data_dirs`.
    sessions_only : bool, default True
        Drop rows dated on days that are not NYSE sessions (checked 1985-2040, where the calendar
        reaches). The shared file has two such rows, both copies of the day before: 1985-09-27 (NYSE
        closed for Hurricane Gloria) and 2024-12-25 (Christmas). The dropped dates are listed in
        ``frame.attrs["dropped_non_sessions"]``.
    offline_ok : bool, default False
        When no file is found, serve ``arch.data.sp500`` instead (real S&P 500 daily bars 1999-01-04 to
        2018-12-31 from the ``arch`` package; no total-return column) rather than raise.

    Returns
    -------
    DataFrame
        Indexed by ``date`` (tz-naive, sorted, unique), index points:

        ``open``, ``high``, ``low``, ``close``
            Price index. In the shared file only ``close`` exists for every row: ``open`` starts on
            1991-08-12 and ``high``/``low`` on 1982-09-20 (NaN before). OHLC are as published, not forced
            consistent: 14 rows (1982-2008) have ``open`` or ``close`` outside [``low``, ``high``], by 0.01
            to 3.11 points (1990-08-13).
        ``total_return_close``
            S&P 500 total-return index (dividends reinvested) on the days the file carries it; NaN elsewhere
            and in the offline fallback.

        ``attrs["source"]`` is the file path or the fallback's description; ``attrs["vendors"]`` maps each
        per-row vendor tag found in the file to its first and last date.

    Raises
    ------
    MarketDataNotFoundError
        No file, and ``offline_ok`` is False.
    MarketDataError
        The file is malformed (unparseable value, duplicate date).
    """
    kind = _INDEX_KINDS.get(str(symbol).upper())
    if kind is None:
        raise ValueError(f"unknown index {symbol!r}; available: {sorted(_INDEX_KINDS)}")
    try:
        frame, _ = _load(kind, market_dir)
    except MarketDataNotFoundError as exc:
        if not offline_ok:
            raise
        frame = _arch_sp500()
        if frame is None:
            raise _not_found(_SPECS[kind], exc.searched, " The offline fallback needs the 'arch' package "
                                                         "(pip install arch).") from exc
        return frame
    if "vendor" in frame.columns:
        vendors = frame["vendor"]
        frame.attrs["vendors"] = {
            str(v): (g.index[0].strftime("%Y-%m-%d"), g.index[-1].strftime("%Y-%m-%d"))
            for v, g in vendors.groupby(vendors, sort=False)
        }
        frame = frame.drop(columns="vendor")
    if sessions_only:
        frame = _drop_non_sessions(frame)
    return frame


def _arch_sp500() -> pd.DataFrame | None:
    try:
        from arch.data import sp500
    except ImportError:
        return None
    raw = sp500.load()
    frame = pd.DataFrame({
        "open": raw["Open"].to_numpy(float),
        "high": raw["High"].to_numpy(float),
        "low": raw["Low"].to_numpy(float),
        "close": raw["Close"].to_numpy(float),
        "total_return_close": np.nan,
    }, index=pd.DatetimeIndex(raw.index).astype("datetime64[ns]").rename("date")).sort_index()
    frame.attrs = {"source": _SP500_FALLBACK}
    return frame


def load_spy_daily(*, market_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """SPY daily bars, unadjusted (raw traded prices; no split or dividend adjustment).

    Returns
    -------
    DataFrame
        Indexed by ``date``; columns ``open``, ``high``, ``low``, ``close`` ($ per share) and ``volume``
        (shares), over whatever span the file covers. ``attrs["source"]`` is the path.

    Raises
    ------
    MarketDataNotFoundError, MarketDataError
    """
    frame, _ = _load("spy", market_dir)
    return frame


#: Cboe volatility indices :func:`load_vol_index` reads.
VOL_INDICES = ("VIX", "VIX9D", "VIX3M", "VVIX", "SKEW")
#: VVIX's first clean date (Cboe's 2006 values are sparse, erratic back-fills: 15.71 on 2006-03-15).
VVIX_CLEAN_START = pd.Timestamp("2007-01-01")


def load_vol_index(name: str = "VIX", *, market_dir: str | os.PathLike | None = None, clean: bool = True,
                   sessions_only: bool = False, offline_ok: bool = False) -> pd.DataFrame:
    """Daily history of a Cboe volatility index, in index points (VIX 20 = 20% annualised vol).

    Parameters
    ----------
    name : {"VIX", "VIX9D", "VIX3M", "VVIX", "SKEW"}
        Case-insensitive.
    market_dir : path, optional
        See :func:`market_data_dirs`.
    clean : bool, default True
        VVIX only: start at 2007-01-01. Cboe's 2006 VVIX values are sparse (150 rows over 10 months) and
        erratic (15.71 on 2006-03-15, against 60-100 afterwards). No effect on the other indices.
    sessions_only : bool, default False
        Drop rows on days that are not NYSE sessions. By default they are kept: since 2022 Cboe publishes
        VIX on exchange holidays when its global-trading-hours session is open (33 such rows, e.g.
        2022-05-30), and those are real Cboe values.
    offline_ok : bool, default False
        VIX only: when no file is found, serve ``arch.data.vix`` (real VIX closes 2014-01-03 to 2019-01-03
        from the ``arch`` package; ``open``/``high``/``low`` NaN).

    Returns
    -------
    DataFrame
        Indexed by ``date``. VIX, VIX9D, VIX3M: ``open``, ``high``, ``low``, ``close``; VVIX, SKEW: ``close``.
        Values are as Cboe published them: early VIX rows (1990-1992) have O = H = L = C, 47 VIX rows in
        1992-2006 have ``open`` or ``close`` outside [``low``, ``high``] (2004-11-08 has an ``open`` of 2.58),
        VIX misses 4 sessions (1991-03-01, 1997-01-31, 1997-11-26, 1999-12-31), and SKEW has a hole from
        2000-09-20 to 2000-09-29. ``attrs["source"]`` is the path or the fallback's description.

    Raises
    ------
    MarketDataNotFoundError, MarketDataError
    """
    key = str(name).upper()
    if key not in VOL_INDICES:
        raise ValueError(f"unknown volatility index {name!r}; expected one of {VOL_INDICES}")
    kind = key.lower()
    try:
        frame, _ = _load(kind, market_dir)
    except MarketDataNotFoundError as exc:
        if not (offline_ok and key == "VIX"):
            raise
        frame = _arch_vix()
        if frame is None:
            raise _not_found(_SPECS[kind], exc.searched, " The offline fallback needs the 'arch' package "
                                                         "(pip install arch).") from exc
        return _drop_non_sessions(frame) if sessions_only else frame
    if clean and key == "VVIX":
        n = int((frame.index < VVIX_CLEAN_START).sum())
        attrs = dict(frame.attrs)
        frame = frame.loc[frame.index >= VVIX_CLEAN_START]
        attrs["cleaned"] = f"dropped {n} VVIX rows before {VVIX_CLEAN_START.date()} (2006 bad prints)"
        frame.attrs = attrs
    if sessions_only:
        frame = _drop_non_sessions(frame)
    return frame


def _arch_vix() -> pd.DataFrame | None:
    try:
        from arch.data import vix
    except ImportError:
        return None
    raw = vix.load()
    idx = pd.DatetimeIndex(raw.index).astype("datetime64[ns]").rename("date")
    close = raw["vix"].to_numpy(float)
    frame = pd.DataFrame({"open": np.nan, "high": np.nan, "low": np.nan, "close": close}, index=idx).sort_index()
    frame.attrs = {"source": (f"arch.data.vix (real VIX closes {frame.index[0].date()} to "
                              f"{frame.index[-1].date()}, offline fallback)")}
    return frame


def load_vix_family(*, market_dir: str | os.PathLike | None = None, clean: bool = True) -> pd.DataFrame:
    """Closes of VIX, VIX9D, VIX3M, VVIX and SKEW side by side.

    Returns
    -------
    DataFrame
        Indexed by ``date`` (the union of the five files' dates: an outer join, so NaN where an index had
        not started or has a hole); columns ``vix``, ``vix9d``, ``vix3m``, ``vvix``, ``skew`` (index
        points). ``clean`` is passed to :func:`load_vol_index` (VVIX from 2007). ``attrs["source"]`` lists
        the five files; ``attrs["sources"]`` maps column → file.

    Raises
    ------
    MarketDataNotFoundError
        Any of the five files is missing.
    MarketDataError
    """
    cols, sources = {}, {}
    for name in VOL_INDICES:
        f = load_vol_index(name, market_dir=market_dir, clean=clean)
        cols[name.lower()] = f["close"]
        sources[name.lower()] = f.attrs["source"]
    frame = pd.concat(cols, axis=1, join="outer", sort=True)
    frame.index.name = "date"
    frame.attrs = {"source": "; ".join(f"{k}: {v}" for k, v in sources.items()), "sources": sources}
    return frame


#: Exact values the shared put/call file prints on ordinary days in its broad ratios: placeholders, not
#: ratios (11.0 appears 42 times in the index ratio, whose median is 1.19).
PUT_CALL_PLACEHOLDERS = (11.0, 21.0, 4.22)
#: The broad, high-volume ratios that :func:`load_put_call_ratios` cleans.
PUT_CALL_BROAD = ("total", "index", "etp", "equity", "vix", "spx_spxw")


def load_put_call_ratios(*, market_dir: str | os.PathLike | None = None, clean: bool = True) -> pd.DataFrame:
    """Cboe daily put/call volume ratios (puts traded / calls traded).

    The file's date column is headed ``Fecha`` (Spanish for date); ``date`` is accepted too.

    Parameters
    ----------
    clean : bool, default True
        In the broad ratios (:data:`PUT_CALL_BROAD`), set the placeholder prints
        :data:`PUT_CALL_PLACEHOLDERS` (11.0, 21.0, 4.22 -- repeated exact values on unremarkable days) to
        NaN, and drop rows on non-sessions (2025-01-09, the national day of mourning, has zeros). The
        thin-product ratios are left alone: small-count ratios such as 11.0 or 2.0 are genuine there.
        Counts are in ``attrs["cleaned"]`` (column → rows set to NaN).

    Returns
    -------
    DataFrame
        Indexed by ``date``; one float column per ratio, named from the file's header in lower case without
        the ``_PUT_CALL_RATIO`` suffix: ``total``, ``index``, ``etp``, ``equity``, ``vix``, ``spx_spxw``,
        ``oex``, ``mrut`` ... Newer products are NaN before they list; 0.0 in a thin product usually means no
        puts traded. ``attrs["source"]`` is the path.

    Raises
    ------
    MarketDataNotFoundError, MarketDataError
    """
    frame, _ = _load("put_call", market_dir)
    attrs = dict(frame.attrs)
    frame.columns = [_pc_name(c) for c in frame.columns]
    if clean:
        cleaned = {}
        for col in PUT_CALL_BROAD:
            if col in frame.columns:
                mask = frame[col].isin(PUT_CALL_PLACEHOLDERS)
                cleaned[col] = int(mask.sum())
                frame.loc[mask, col] = np.nan
        frame.attrs = attrs
        frame = _drop_non_sessions(frame)
        frame.attrs["cleaned"] = cleaned
    else:
        frame.attrs = attrs
    return frame


def _pc_name(col: str) -> str:
    c = col.strip().lower()
    return c[: -len("_put_call_ratio")] if c.endswith("_put_call_ratio") else c


def load_rates(*, market_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Short-term US rates as quoted, in decimal (0.05 = 5%), not percent.

    Returns
    -------
    DataFrame
        Indexed by ``date`` (the union of the three files' dates, so calendar-daily where fed funds
        reaches); columns:

        ``fed_funds``
            FRED DFF, effective federal funds rate, calendar-daily (weekends carry Friday's rate),
            money-market basis (actual/360, simple).
        ``tbill_3m``
            FRED DGS3MO, 3-month Treasury constant maturity, bond-equivalent basis. NaN on bond-market
            holidays (FRED's ``"."``), on days FRED does not list and after the file's last row.
        ``tbill_13w``
            Cboe IRX, 13-week T-bill, bank-discount basis (negative for a few days in March 2020).

        These are quotes, not continuous rates: use :func:`risk_free_rate` for pricing. ``attrs["source"]``
        lists the files; ``attrs["sources"]`` maps column → file.

    Raises
    ------
    MarketDataNotFoundError
        Any of the three files is missing.
    MarketDataError
    """
    cols, sources = {}, {}
    for col, kind in (("fed_funds", "dff"), ("tbill_3m", "dgs3mo"), ("tbill_13w", "irx")):
        f, path = _load(kind, market_dir)
        cols[col] = f["value"] / 100.0
        sources[col] = str(path)
    frame = pd.concat(cols, axis=1, join="outer", sort=True)
    frame.index.name = "date"
    frame.attrs = {"source": "; ".join(f"{k}: {v}" for k, v in sources.items()), "sources": sources}
    return frame


def load_published_gex(*, market_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """SqueezeMetrics' published DIX and GEX, as they publish them.

    These are SqueezeMetrics' own numbers from their own dealer-positioning model, not research_lib's GEX:
    their GEX is in their dollar units with their sign and expiry conventions. Compare its sign and shape
    with :mod:`research_lib.gex` results, not its level.

    Returns
    -------
    DataFrame
        Indexed by ``date``; columns ``price`` (S&P 500 close, index points), ``dix`` (dark-pool index: the
        dollar-weighted short-volume share of off-exchange S&P 500 component trading, a fraction) and ``gex``
        (SqueezeMetrics GEX, $ as published; negative means dealers short gamma in their model), over whatever
        span the file covers. ``attrs["source"]`` is the path.

    Raises
    ------
    MarketDataNotFoundError, MarketDataError
    """
    frame, _ = _load("gex", market_dir)
    return frame


# --------------------------------------------------------------------------------------------------------
# Rates
# --------------------------------------------------------------------------------------------------------
#: Preference order of :func:`risk_free_rate` with ``source="auto"``.
RATE_SOURCES = ("irx", "dgs3mo", "fed_funds")
_RATE_KIND = {"irx": "irx", "dgs3mo": "dgs3mo", "fed_funds": "dff"}
#: Days to maturity of a 13-week / 3-month bill, used by the conversions.
BILL_DAYS = 91


def tbill_discount_to_continuous(discount_yield, days: int = BILL_DAYS):
    """Bank-discount T-bill yield → continuously-compounded rate (both decimal, per year).

    The bill's price per 1 of face is ``P = 1 - d * days / 360``; the continuous rate over ``days`` of an
    actual/365 year is ``r = -ln(P) * 365 / days``. For d = 5.295% on a 91-day bill, r = 5.405%.
    Prices <= 0 (d >= 360 / days, impossible in practice) give NaN. Works elementwise on arrays.
    """
    d = np.asarray(discount_yield, dtype=float)
    price = 1.0 - d * days / 360.0
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(price > 0, -np.log(np.where(price > 0, price, 1.0)) * 365.0 / days, np.nan)
    return r if r.ndim else float(r)


def bond_equivalent_to_continuous(bey, days: int = BILL_DAYS):
    """Bond-equivalent (simple actual/365) bill yield → continuously-compounded rate (decimal, per year).

    ``r = ln(1 + y * days / 365) * 365 / days``; FRED's constant-maturity bill yields (DGS3MO) are quoted on
    this basis. Yields <= -365 / days give NaN.
    """
    y = np.asarray(bey, dtype=float)
    g = y * days / 365.0
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(g > -1, np.log1p(np.where(g > -1, g, 0.0)) * 365.0 / days, np.nan)
    return r if r.ndim else float(r)


def money_market_to_continuous(rate, days: int = 1):
    """Money-market (simple actual/360) rate → continuously-compounded rate (decimal, per year).

    ``r = ln(1 + f * days / 360) * 365 / days`` with ``days = 1`` for an overnight rate such as the
    effective fed funds rate: 5.33% → 5.404%.
    """
    f = np.asarray(rate, dtype=float)
    g = f * days / 360.0
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(g > -1, np.log1p(np.where(g > -1, g, 0.0)) * 365.0 / days, np.nan)
    return r if r.ndim else float(r)


_CONVERT = {
    "irx": tbill_discount_to_continuous,
    "dgs3mo": bond_equivalent_to_continuous,
    "fed_funds": money_market_to_continuous,
}


def _as_dates(dates) -> pd.DatetimeIndex:
    """Dates as a tz-naive midnight DatetimeIndex; tz-aware values are taken as New York calendar dates."""
    if isinstance(dates, (str, pd.Timestamp)) or not isinstance(dates, Iterable):
        dates = [dates]
    items = list(dates)
    out = []
    for d in items:
        ts = pd.Timestamp(d)
        if pd.isna(ts):
            raise ValueError(f"not a date: {d!r}")
        if ts.tz is not None:
            ts = ts.tz_convert(NY).tz_localize(None)
        out.append(ts.normalize())
    return pd.DatetimeIndex(out, name="date").astype("datetime64[ns]")


def _rate_series(source: str, market_dir) -> tuple[pd.Series, str]:
    frame, path = _load(_RATE_KIND[source], market_dir)
    s = frame["value"].dropna() / 100.0
    return s, str(path)


def risk_free_rates(dates, *, source: str = "auto", market_dir: str | os.PathLike | None = None,
                    max_staleness_days: int | None = 14) -> pd.DataFrame:
    """Continuously-compounded risk-free rates for many dates (vectorised :func:`risk_free_rate`).

    Parameters
    ----------
    dates : date-like or sequence of date-likes
        Calendar dates (str, date, Timestamp). Tz-aware timestamps are taken as their New York date.
    source : {"auto", "irx", "dgs3mo", "fed_funds"}
        ``auto`` prefers the 13-week T-bill (IRX), then the 3-month constant-maturity Treasury (DGS3MO),
        then the effective fed funds rate (DFF), per date. A source whose file is missing is skipped with a
        :class:`MarketDataWarning`.
    market_dir : path, optional
        See :func:`market_data_dirs`.
    max_staleness_days : int or None, default 14
        A source serves a date only when its last observation at or before the date is at most this many
        calendar days old (``auto`` otherwise falls through to the next source). ``None``: no limit.

    Returns
    -------
    DataFrame
        Indexed by the input dates (in input order, duplicates kept); columns ``rate`` (continuously
        compounded, decimal per year, actual/365), ``source`` (``irx``/``dgs3mo``/``fed_funds``),
        ``as_of`` (the observation's date, never after the input date) and ``quoted`` (the quote, decimal,
        on its own basis). An observation dated the same day as the input counts as available.

        Conversions: IRX is a bank-discount yield (:func:`tbill_discount_to_continuous`, 91 days), DGS3MO a
        bond-equivalent yield (:func:`bond_equivalent_to_continuous`, 91 days), DFF an overnight
        money-market rate (:func:`money_market_to_continuous`, 1 day).

    Raises
    ------
    MarketDataError
        A date is before every source's first observation, or no source has an observation within
        ``max_staleness_days`` of it.
    MarketDataNotFoundError
        No file for the requested source (for ``auto``: for any source).
    """
    if source == "auto":
        order = RATE_SOURCES
    elif source in RATE_SOURCES:
        order = (source,)
    else:
        raise ValueError(f"unknown rate source {source!r}; expected 'auto' or one of {RATE_SOURCES}")
    idx = _as_dates(dates)
    n = len(idx)
    rate = np.full(n, np.nan)
    quoted = np.full(n, np.nan)
    src = np.full(n, None, dtype=object)
    as_of = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    missing: list[MarketDataNotFoundError] = []
    first_obs: list[tuple[pd.Timestamp, str]] = []
    used_any = False
    for name in order:
        try:
            series, _ = _rate_series(name, market_dir)
        except MarketDataNotFoundError as exc:
            if source != "auto":
                raise
            missing.append(exc)
            continue
        used_any = True
        if series.empty:
            continue
        first_obs.append((series.index[0], name))
        obs = series.index.to_numpy()
        pos = np.searchsorted(obs, idx.to_numpy(), side="right") - 1
        ok = (pos >= 0) & np.isnan(rate)
        safe = np.clip(pos, 0, None)
        if max_staleness_days is not None:
            age = (idx.to_numpy() - obs[safe]).astype("timedelta64[D]").astype(np.int64)
            ok &= age <= max_staleness_days
        if ok.any():
            q = series.to_numpy()[safe[ok]]
            quoted[ok] = q
            rate[ok] = _CONVERT[name](q)
            src[ok] = name
            as_of[ok] = obs[safe[ok]]
    if not used_any:
        msgs = " | ".join(str(e) for e in missing)
        raise MarketDataNotFoundError(f"no rate file found for any of {RATE_SOURCES}: {msgs}",
                                      patterns=sum((e.patterns for e in missing), ()),
                                      searched=missing[0].searched if missing else ())
    if missing:
        warnings.warn(
            "risk_free_rates(source='auto'): "
            + "; ".join(f"{e.patterns[0]} not found" for e in missing)
            + " -- rates come from the remaining sources (see the 'source' column)",
            MarketDataWarning, stacklevel=2)
    bad = np.isnan(rate)
    if bad.any():
        example = idx[bad][0]
        start, start_src = min(first_obs) if first_obs else (None, None)
        if start is not None and example < start:
            why = f"before the rate data starts ({start.date()}, {start_src})"
        else:
            limit = "" if max_staleness_days is None else f" within {max_staleness_days} days"
            why = f"no observation{limit} at or before the date from {', '.join(order)}"
        raise MarketDataError(f"no risk-free rate: {why}", n_bad=int(bad.sum()), example=str(example.date()))
    return pd.DataFrame({"rate": rate, "source": src, "as_of": pd.DatetimeIndex(as_of), "quoted": quoted},
                        index=idx)


def risk_free_rate(date, *, source: str = "auto", market_dir: str | os.PathLike | None = None,
                   max_staleness_days: int | None = 14) -> float:
    """Continuously-compounded risk-free rate (decimal per year, actual/365) for ``date``.

    The last observation at or before ``date`` (never a later one) of the 13-week T-bill (IRX), else the
    3-month Treasury (DGS3MO), else effective fed funds (DFF), converted from its quoting basis; see
    :func:`risk_free_rates` for the parameters, conversions and errors, and for the source and observation
    date behind each value. E.g. 2023-09-14: IRX 5.295% (discount) → 0.05405.

    Raises
    ------
    MarketDataError
        ``date`` is before the data starts, or every source is staler than ``max_staleness_days``.
    """
    return float(risk_free_rates([date], source=source, market_dir=market_dir,
                                 max_staleness_days=max_staleness_days)["rate"].iloc[0])


# --------------------------------------------------------------------------------------------------------
# Dividend yield
# --------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DividendYield:
    """An implied continuous dividend yield.

    Attributes
    ----------
    value : float
        Continuous dividend yield, decimal per year (0.015 = 1.5%/yr): the ``q`` of Black-Scholes-Merton.
    as_of : pandas.Timestamp
        The last index observation the estimate uses (end of the trailing window); at or before the date asked.
    method : str
        How it was computed.
    note : str
        Anything the caller should know (e.g. carried forward past the end of the total-return data).
    carried_forward : bool
        True when the date is after the total-return data ends and the last estimate is reused.
    """

    value: float
    as_of: pd.Timestamp
    method: str
    note: str
    carried_forward: bool = False

    def __float__(self) -> float:
        return float(self.value)


def _spx_log_tr_ratio(market_dir) -> tuple[pd.Series, str]:
    """``ln(TR / P)`` on every day with both indices: the dividends reinvested so far, in log terms."""
    spx = load_index_daily("SPX", market_dir=market_dir)
    both = spx[["close", "total_return_close"]].dropna()
    if both.empty:
        raise MarketDataError("no rows with both close and total_return_close: cannot imply a dividend yield",
                              path=spx.attrs.get("source"), column="total_return_close")
    bad = (both <= 0).any(axis=1)
    if bad.any():
        raise MarketDataError("non-positive index level", path=spx.attrs.get("source"),
                              column="total_return_close", n_bad=int(bad.sum()),
                              example=str(both.index[bad.to_numpy()][0].date()))
    return np.log(both["total_return_close"] / both["close"]), spx.attrs["source"]


def dividend_yields(dates, *, window_days: int = 365, median_of: int = 5,
                    market_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Implied S&P 500 continuous dividend yields for many dates (vectorised :func:`dividend_yield`).

    Returns
    -------
    DataFrame
        Indexed by the input dates; columns ``value`` (decimal per year), ``as_of`` (the last observation
        used, at or before the date) and ``carried_forward`` (bool). ``attrs["method"]`` describes the
        estimator, ``attrs["source"]`` the file.

    Raises
    ------
    MarketDataError
        A date too early for a full window: the first estimate needs ``median_of`` observations whose
        windows all start on or after the first total-return observation, i.e. ``window_days`` calendar days
        plus ``median_of - 1`` observations into the series.
    """
    if isinstance(window_days, bool) or int(window_days) != window_days or window_days < 1:
        raise ValueError(f"window_days must be a positive integer, got {window_days!r}")
    if isinstance(median_of, bool) or int(median_of) != median_of or median_of < 1:
        raise ValueError(f"median_of must be a positive integer, got {median_of!r}")
    window_days, k = int(window_days), int(median_of)
    lr, path = _spx_log_tr_ratio(market_dir)
    idx = _as_dates(dates)
    obs = lr.index.to_numpy()
    vals = lr.to_numpy()
    last = len(obs) - 1
    carried = idx.to_numpy() > obs[last]
    pos_t = np.minimum(np.searchsorted(obs, idx.to_numpy(), side="right") - 1, last)
    # window j ends on the j-th observation before t (j = 0 .. k-1) and starts on the last observation at or
    # before that end minus window_days
    ends = pos_t[:, None] - np.arange(k)[None, :]
    safe_end = np.clip(ends, 0, None)
    starts = np.searchsorted(obs, obs[safe_end] - np.timedelta64(window_days, "D"), side="right") - 1
    ok = (ends.min(axis=1) >= 0) & (starts.min(axis=1) >= 0)
    safe_start = np.clip(starts, 0, None)
    years = (obs[safe_end] - obs[safe_start]).astype("timedelta64[D]").astype(float) / 365.0
    with np.errstate(invalid="ignore", divide="ignore"):
        estimates = (vals[safe_end] - vals[safe_start]) / years
    value = np.median(estimates, axis=1)
    ok &= np.isfinite(value)
    if not ok.all():
        first = int(np.searchsorted(obs, obs[0] + np.timedelta64(window_days, "D"), side="left")) + k - 1
        earliest = pd.Timestamp(obs[first]).date() if first <= last else None
        raise MarketDataError(
            f"no dividend-yield estimate: the date is before the total-return history allows {k} "
            f"{window_days}-day windows (earliest date: {earliest})", path=path, column="total_return_close",
            n_bad=int((~ok).sum()), example=str(idx[~ok][0].date()))
    out = pd.DataFrame({"value": value, "as_of": pd.DatetimeIndex(obs[pos_t]), "carried_forward": carried},
                       index=idx)
    out.attrs = {"method": _dy_method(window_days, k), "source": path}
    return out


def _dy_method(window_days: int, k: int) -> str:
    base = (f"S&P 500 total-return vs price index over a trailing {window_days}-day window: "
            f"q = [ln(TR_t/TR_t0) - ln(P_t/P_t0)] / ((t - t0) / 365 days)")
    if k == 1:
        return base
    return (f"{base}; median of the {k} estimates whose windows end on each of the last {k} observations "
            "(robust to one-day index misprints such as the total-return index on 1990-01-24)")


def dividend_yield(date, *, window_days: int = 365, median_of: int = 5,
                   market_dir: str | os.PathLike | None = None) -> DividendYield:
    """Implied continuous dividend yield of the S&P 500 for ``date``.

    ``q = [ln(TR_t / TR_t0) - ln(P_t / P_t0)] / years(t0, t)``, with ``TR`` the total-return index, ``P``
    the price index, ``t`` an observation at or before ``date`` and ``t0`` the last observation at or
    before ``t - window_days``; years are actual days / 365. Total return minus price return is the
    reinvested dividend, so ``q`` is the continuous dividend yield Black-Scholes-Merton wants.

    The value is the median of ``median_of`` such estimates, with ``t`` each of the last ``median_of``
    observations at or before ``date`` (no look-ahead). A one-day misprint in either index at an end of the
    window then moves at most one of them: the total-return index is 1.8% too low on 1990-01-24, which
    puts the plain two-point estimate for 1991-01-24 at 5.5% instead of 3.6%. ``median_of=1`` is the plain
    formula.

    Parameters
    ----------
    date : date-like
        Tz-aware moments are taken as their New York date.
    window_days : int, default 365
        Trailing window, calendar days.
    median_of : int, default 5
        Number of one-observation-apart windows whose median is reported.
    market_dir : path, optional
        See :func:`market_data_dirs`.

    Returns
    -------
    DividendYield
        ``as_of`` is the last observation used. After the total-return series ends the estimate as of its last
        day is carried forward: ``carried_forward`` is True and ``note``
        says so. Shared-data values range from about 1.1%/yr (2000-2001) to 3.7%/yr (1989-1991), and stay
        within 1.3-2.75%/yr since 2002 (the 2.6-2.75% peak is 2009).

    Raises
    ------
    MarketDataError
        ``date`` too early for full windows (see :func:`dividend_yields`).
    MarketDataNotFoundError
        No S&P 500 file (the offline fallback has no total-return index and is not used).
    """
    frame = dividend_yields([date], window_days=window_days, median_of=median_of, market_dir=market_dir)
    row = frame.iloc[0]
    asked = frame.index[0]
    as_of = pd.Timestamp(row["as_of"])
    carried = bool(row["carried_forward"])
    if carried:
        note = (f"the total-return index ends {as_of.date()}: its last estimate is carried forward "
                f"{(asked - as_of).days} days to {asked.date()}")
    else:
        note = f"estimated from data up to {as_of.date()} (source: {frame.attrs['source']})"
    return DividendYield(value=float(row["value"]), as_of=as_of, method=frame.attrs["method"], note=note,
                         carried_forward=carried)


# --------------------------------------------------------------------------------------------------------
# The rate and dividend yield every GEX computation of a snapshot uses
# --------------------------------------------------------------------------------------------------------
#: How :func:`snapshot_rates` looks the rates up. Part of every cache key that depends on it (the net GEX
#: history cache): change it whenever the lookup changes.
RATES_METHOD = ("rates v2: model = risk_free_rate(snapshot_date, source='auto', max_staleness_days=14) and, "
                "for S&P 500 underlyings, dividend_yield(snapshot_date, window_days=365, median_of=5); "
                "0 with a note when the history is missing; perfiliev = 0 and 0 (the published method); "
                "explicit numbers override")


@dataclasses.dataclass(frozen=True)
class SnapshotRates:
    """The risk-free rate and dividend yield one snapshot is priced with, and where they came from.

    Build it with :func:`snapshot_rates`; :meth:`config` turns it into the snapshot's
    :class:`~research_lib.gex.GexConfig`.

    Attributes
    ----------
    rate, div_yield : float
        Continuously compounded, decimals per year (0.054 = 5.4%).
    date : datetime.date
        The trading date they are for (the snapshot's ``snapshot_date``).
    underlying : str
    convention : str
        ``"model"`` or ``"perfiliev"`` (or the label of a custom convention).
    rate_source, div_yield_source : str
        One phrase each: ``"13-week T-bill (irx) of 2023-09-14"``, ``"given"``, ``"perfiliev convention"``,
        ``"no rate history: 0"``...
    notes : tuple of str
        Fallbacks to 0 (market history missing); empty when both values are what the method asks for.
    """

    rate: float
    div_yield: float
    date: Any
    underlying: str
    convention: str = "model"
    rate_source: str = ""
    div_yield_source: str = ""
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for every text output and panel: ``rate 5.405% (13-week T-bill ...), dividend yield ...``."""
        return (f"rate {self.rate:.3%} ({self.rate_source}), dividend yield {self.div_yield:.3%} "
                f"({self.div_yield_source})")

    def config(self, **options):
        """The :class:`~research_lib.gex.GexConfig` of this convention with these rates.

        ``options`` are :func:`research_lib.gex.config_from`'s other parameters (``grid_points``,
        ``days_per_year``, ``zero_dte_floor``, ``max_dte``, ``exclude_0dte``, ``expiries``).
        """
        return gex.config_from(self.convention, rate=self.rate, div_yield=self.div_yield, **options)

    def to_dict(self) -> dict:
        """JSON-ready: every field (the date as ISO text)."""
        d = dataclasses.asdict(self)
        d["date"] = None if self.date is None else pd.Timestamp(self.date).date().isoformat()
        d["notes"] = list(self.notes)
        return d


_RATE_NAMES = {"irx": "13-week T-bill", "dgs3mo": "3-month Treasury", "fed_funds": "effective fed funds"}


def _given(value, name: str) -> float:
    """An explicit rate or yield, checked as :class:`~research_lib.gex.GexConfig` checks it."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer) \
            or not np.isfinite(value) or abs(value) > 1:
        raise GexConfigError(f"{name}={value!r}: must be a finite decimal rate in [-1, 1] (0.05 = 5%)")
    return float(value)


def snapshot_rates(snapshot, convention: str = "model", *, rate: float | None = None,
                   div_yield: float | None = None, market_dir: str | os.PathLike | None = None) -> SnapshotRates:
    """The rate and dividend yield of one snapshot: the one default of every GEX path.

    ``research-lib gex``, :func:`research_lib.decide.decide`, the daily report, the explorer and the net
    GEX history all call this (directly or through :func:`snapshot_config`), so one chain gives the same
    levels everywhere.

    Parameters
    ----------
    snapshot : ChainSnapshot or any object with ``snapshot_date`` and ``underlying``
        The chain; only its trading date and underlying are read (no I/O on the chain).
    convention : {"model", "perfiliev"}, default "model"
        ``model``: the 13-week T-bill of the snapshot's trading date (:func:`risk_free_rate`, ``auto``
        source, at most 14 days stale) and, for :data:`SP500_UNDERLYINGS`, the S&P 500's implied dividend
        yield (:func:`dividend_yield`); other underlyings get a 0 yield with a note. A missing or too
        short market history gives 0 with a note, never an exception. ``perfiliev``: 0 and 0, as the
        published method prices (no note: that is the convention, not a fallback).
    rate, div_yield : float, optional
        Explicit values (decimals) override the lookup, for any convention.
    market_dir : path, optional
        See :func:`market_data_dirs`.

    Returns
    -------
    SnapshotRates

    Raises
    ------
    GexConfigError
        ``rate`` or ``div_yield`` given but not a finite decimal in [-1, 1].
    """
    date = pd.Timestamp(snapshot.snapshot_date).date()
    underlying = str(snapshot.underlying).upper().lstrip("_")
    notes: list[str] = []
    looked_up = convention == "model"
    if rate is not None:
        r, r_src = _given(rate, "rate"), "given"
    elif not looked_up:
        r, r_src = 0.0, f"{convention} convention: r = 0"
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MarketDataWarning)
                row = risk_free_rates([date], market_dir=market_dir).iloc[0]
            r = float(row["rate"])
            r_src = (f"{_RATE_NAMES.get(row['source'], row['source'])} ({row['source']}) of "
                     f"{pd.Timestamp(row['as_of']).date()}")
        except ResearchLibError as exc:
            r, r_src = 0.0, "no rate history: 0"
            notes.append(f"rate 0: no risk-free rate for {date} ({type(exc).__name__}: {exc})")
    if div_yield is not None:
        q, q_src = _given(div_yield, "div_yield"), "given"
    elif not looked_up:
        q, q_src = 0.0, f"{convention} convention: q = 0"
    elif underlying not in SP500_UNDERLYINGS:
        q, q_src = 0.0, f"no yield known for {underlying}: 0"
        notes.append(f"dividend yield 0: the library knows the S&P 500's yield only, not {underlying}'s")
    else:
        try:
            dy = dividend_yield(date, market_dir=market_dir)
            q = float(dy.value)
            q_src = f"S&P 500 implied, as of {dy.as_of.date()}" + (" (carried forward)" if dy.carried_forward else "")
        except ResearchLibError as exc:
            q, q_src = 0.0, "no total-return history: 0"
            notes.append(f"dividend yield 0: no S&P 500 total-return history for {date} "
                         f"({type(exc).__name__}: {exc})")
    return SnapshotRates(rate=r, div_yield=q, date=date, underlying=underlying, convention=convention,
                         rate_source=r_src, div_yield_source=q_src, notes=tuple(notes))


def snapshot_config(snapshot, convention: str = "model", *, rate: float | None = None,
                    div_yield: float | None = None, market_dir: str | os.PathLike | None = None, **options):
    """The :class:`~research_lib.gex.GexConfig` of a snapshot for a convention, rates from
    :func:`snapshot_rates` (see there); ``options`` as :meth:`SnapshotRates.config`.

    >>> cfg = snapshot_config(read_chain("spx_2023-09-14.csv"))          # doctest: +SKIP
    >>> cfg.rate, cfg.div_yield                                          # doctest: +SKIP
    (0.05404793352528693, 0.016961365432853537)
    """
    return snapshot_rates(snapshot, convention, rate=rate, div_yield=div_yield,
                          market_dir=market_dir).config(**options)


# --------------------------------------------------------------------------------------------------------
# Everything a decision reads, loaded once
# --------------------------------------------------------------------------------------------------------
#: The market file kinds a decision reads: S&P 500 and SPY closes, the VIX family, the three rate sources
#: and the published GEX.
DECISION_KINDS = ("spx", "spy", "vix", "vix9d", "vix3m", "vvix", "skew", "irx", "dgs3mo", "dff", "gex")


def load_market_history(market_dir: str | os.PathLike | None = None, *, kinds: Iterable[str] = DECISION_KINDS,
                        net_gex: pd.Series | None = None) -> MarketHistory:
    """Read the market files once into a :class:`~research_lib.core.market_view.MarketHistory`.

    Parameters
    ----------
    market_dir : path, optional
        See :func:`market_data_dirs`.
    kinds : iterable of str, default :data:`DECISION_KINDS`
    net_gex : Series, optional
        Our own net GEX history to carry along (date-indexed).

    Returns
    -------
    MarketHistory
        A kind whose file is missing or malformed is kept with its error (a view raises it again where the
        file would have raised), so a decision made from the history says what a file-based one says.
    """
    frames: dict[str, tuple[pd.DataFrame, Path]] = {}
    errors: dict[str, Exception] = {}
    for kind in kinds:
        try:
            frames[kind] = _load(kind, market_dir)
        except (MarketDataNotFoundError, MarketDataError) as exc:
            errors[kind] = exc
    return MarketHistory(frames=frames, errors=errors, net_gex=net_gex)


def market_view(date, market_dir: str | os.PathLike | None = None) -> MarketView:
    """:meth:`MarketView.as_of` of :func:`load_market_history` ``(market_dir)`` on ``date``."""
    return MarketView.as_of(load_market_history(market_dir), date)

