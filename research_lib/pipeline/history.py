"""History context for the daily GEX report: our own net GEX over the stored snapshots, beside the published
(SqueezeMetrics) GEX, VIX and VIX's IV rank.

A flat module of two functions and one result type:

:func:`net_gex_history`
    Our net GEX for every stored **market** snapshot (modelled chains left out) of one underlying, one row
    per trading date (its latest quote), each priced exactly as every other path prices that snapshot:
    :func:`research_lib.market.snapshot_config` of the convention (``model``: the rate and dividend yield of
    the snapshot's trading date; ``perfiliev``: 0 and 0).
:func:`history_context`
    A :class:`HistoryContext` for a report's :class:`~research_lib.gex.KeyLevels`: the four daily series
    over the trailing window up to the snapshot's date (never past it), with a note for every series that
    is missing and why.

The cache
---------
Pricing one archive day costs ~0.4 s, so :func:`net_gex_history` keeps its results in
``<store root>/cache/net_gex_<convention>.parquet``: one row per analysed snapshot (all underlyings in one
file), keyed by the snapshot's catalogue ``path`` and content ``sha256``. The file's schema metadata holds
:data:`CACHE_VERSION`, the library version, a hash of the convention's :class:`~research_lib.gex.GexConfig`
(rate and dividend yield excluded: those are per row) and of the rates method
(:data:`research_lib.market.RATES_METHOD`); when any of them differs the whole file is rebuilt (so a cache
written when this path priced with r = q = 0 is recomputed).
A snapshot whose content changed (same path, new ``sha256``) or that left the store is recomputed or
pruned. Rows priced with a fallback 0 rate or dividend yield (market history missing at the time) are
provisional: the next call asks :func:`~research_lib.market.snapshot_rates` again and reprices them when
the rates now differ. Snapshots that could not be analysed are cached too (with their error) so a rerun does
not retry them; snapshots that could not be *read* are not cached. Writes take an ``fcntl.flock`` on
``<root>/cache/.lock``, merge with the file as it is then, and replace it atomically (temp file, fsync,
``os.replace``). An unreadable cache file is rebuilt with a :class:`HistoryCacheWarning`, never an
exception; a store root that cannot be written gives the same warning and uncached results. The cache
assumes one market history: a ``market_dir`` that prices a date differently only matters for provisional
rows.

Example
-------
>>> from research_lib import decide, history, plots                              # doctest: +SKIP
>>> report = decide.decide("SPX", "store", record=False)                         # doctest: +SKIP
>>> ctx = history.history_context(report.analysis)                               # doctest: +SKIP
>>> print(ctx.summary()); plots.history_context(ctx)                             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from research_lib import __version__
from research_lib.core import gex, regime_gex
from research_lib.core.chain import NY, ResearchLibError
from research_lib.data import market
from research_lib.data.store import ChainStore
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    HistoryArgumentError as HistoryArgumentError,
    HistoryCacheWarning as HistoryCacheWarning,
)
from research_lib.formatting import jsonable
from research_lib.fs import atomic_write, file_lock
from research_lib.settings import SP500_UNDERLYINGS

log = logging.getLogger(__name__)

__all__ = [
    "CACHE_VERSION",
    "CONTEXT_COLUMNS",
    "CONVENTIONS",
    "HISTORY_COLUMNS",
    "HistoryArgumentError",
    "HistoryCacheWarning",
    "HistoryContext",
    "cache_path",
    "history_context",
    "net_gex_history",
]

#: Version of the cache's layout and method; bump it when either changes (invalidates every cache file).
CACHE_VERSION = 3
#: Folder under the store root holding the cache files.
CACHE_DIR = "cache"
#: Conventions :func:`net_gex_history` can reproduce.
CONVENTIONS = ("model", "perfiliev")
#: Underlyings whose published GEX (the S&P 500's) is meaningful.
#: A series whose last value is older than this many calendar days before the date gets a note.
STALE_DAYS = 7
#: Columns of :func:`net_gex_history`, in order.
HISTORY_COLUMNS = ("net_gex", "call_gex", "put_gex", "regime_gex", "regime_call_gex", "regime_put_gex",
                   "zero_gamma", "spot", "quote_time", "source", "rate", "div_yield")
#: Columns of :attr:`HistoryContext.frame`, in order.
CONTEXT_COLUMNS = ("net_gex", "published_gex", "vix", "iv_rank")

_META_KEY = b"research_lib_history"
_CACHE_SCHEMA = pa.schema([
    ("underlying", pa.string()),
    ("date", pa.date32()),
    ("quote_time", pa.timestamp("ns", tz=NY)),
    ("path", pa.string()),
    ("sha256", pa.string()),
    ("source", pa.string()),
    ("net_gex", pa.float64()),
    ("call_gex", pa.float64()),
    ("put_gex", pa.float64()),
    ("regime_gex", pa.float64()),
    ("regime_call_gex", pa.float64()),
    ("regime_put_gex", pa.float64()),
    ("zero_gamma", pa.float64()),
    ("spot", pa.float64()),
    ("rate", pa.float64()),
    ("div_yield", pa.float64()),
    ("rate_notes", pa.string()),   # "" when the rates came from market history
    ("error", pa.string()),        # null when analysed
])
_NUMBERS = ("net_gex", "call_gex", "put_gex", "regime_gex", "regime_call_gex", "regime_put_gex", "zero_gamma", "spot",
            "rate", "div_yield")


# --------------------------------------------------------------------------------------------------
# errors


# --------------------------------------------------------------------------------------------------
# argument helpers


def _as_store(store):
    if store is None:
        return ChainStore()
    if isinstance(store, ChainStore):
        return store
    if isinstance(store, str | os.PathLike):
        return ChainStore(store)
    raise HistoryArgumentError("store", f"expected a ChainStore, a path or None, got {type(store).__name__}")


def _as_day(value: Any, argument: str) -> dt.date:
    if isinstance(value, dt.datetime | pd.Timestamp):
        ts = pd.Timestamp(value)
        return (ts.tz_convert(NY) if ts.tzinfo is not None else ts).date()
    if isinstance(value, dt.date):
        return value
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise HistoryArgumentError(argument, f"{value!r} is not a date") from exc
    if pd.isna(ts):
        raise HistoryArgumentError(argument, f"{value!r} is not a date")
    return (ts.tz_convert(NY) if ts.tzinfo is not None else ts).date()


def _check_int(value: Any, argument: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise HistoryArgumentError(argument, f"must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_convention(convention: Any) -> str:
    if convention not in CONVENTIONS:
        raise HistoryArgumentError("convention", f"{convention!r} is not one of {CONVENTIONS}")
    return str(convention)


def _check_symbol(symbol: Any) -> str:
    if not isinstance(symbol, str) or not symbol.strip():
        raise HistoryArgumentError("symbol", f"must be a non-empty string, got {symbol!r}")
    return symbol.strip().upper().lstrip("_")


def _config_key(convention: str) -> str:
    fields = gex.config_from(convention).to_dict()
    fields.pop("rate")
    fields.pop("div_yield")
    blob = json.dumps({"cache_version": CACHE_VERSION, "library_version": __version__,
                       "convention": convention, "config": fields, "rates": market.RATES_METHOD,
                       "regime_gex": regime_gex.DEFAULT.to_dict()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_path(store=None, convention: str = "model") -> Path:
    """Where :func:`net_gex_history` caches ``convention``: ``<store root>/cache/net_gex_<convention>.parquet``."""
    return _as_store(store).root / CACHE_DIR / f"net_gex_{_check_convention(convention)}.parquet"


# --------------------------------------------------------------------------------------------------
# the cache file


def _empty_cache() -> pd.DataFrame:
    return _cache_frame([])


def _cache_frame(records: list[dict]) -> pd.DataFrame:
    cols = _CACHE_SCHEMA.names
    df = pd.DataFrame.from_records(records, columns=cols) if records else pd.DataFrame(columns=cols)
    for c in _NUMBERS:
        df[c] = df[c].astype("float64")
    df["quote_time"] = pd.to_datetime(df["quote_time"]).dt.tz_convert(NY) if len(df) else \
        pd.Series(pd.DatetimeIndex([], tz=NY), dtype=f"datetime64[ns, {NY}]")
    return df


def _read_cache(path: Path, key: str, *, warn: bool = True) -> pd.DataFrame:
    """The cache rows, or an empty frame when there is no usable file (a warning when it is unreadable)."""
    if not path.exists():
        return _empty_cache()
    try:
        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {})[_META_KEY])
        missing = set(_CACHE_SCHEMA.names) - set(table.schema.names)
        if missing:
            raise ValueError(f"columns {sorted(missing)} missing")
        df = table.select(_CACHE_SCHEMA.names).cast(_CACHE_SCHEMA).to_pandas()
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        if warn:
            warnings.warn(f"net GEX cache {path} is unreadable ({type(exc).__name__}: {exc}); rebuilding it",
                          HistoryCacheWarning, stacklevel=3)
        return _empty_cache()
    if meta.get("config_key") != key:
        log.info("net GEX cache %s was written by another method/version (%s); rebuilding it", path,
                 meta.get("config_key"))
        return _empty_cache()
    df["error"] = df["error"].astype(object).where(df["error"].notna(), None)
    df["rate_notes"] = df["rate_notes"].fillna("").astype(str)
    return df


@contextlib.contextmanager
def _cache_lock(folder: Path) -> Iterator[None]:
    with file_lock(folder / ".lock"):
        yield


def _write_cache(path: Path, key: str, convention: str, underlying: str, keep: set[tuple[str, str]],
                 new: list[dict]) -> None:
    """Merge under the lock: the file's rows of other underlyings, its rows of ``underlying`` still in the
    store (``keep``: (path, sha256)) and not recomputed, then ``new``."""
    try:
        with _cache_lock(path.parent):
            current = _read_cache(path, key, warn=False)
            fresh = {(r["path"], r["sha256"]) for r in new}
            pairs = list(zip(current["path"], current["sha256"], strict=True))
            mine = (current["underlying"] == underlying).to_numpy()
            valid = np.array([(p in keep) and (p not in fresh) for p in pairs], dtype=bool)
            old = current[~mine | valid]
            merged = pd.concat([df for df in (old, _cache_frame(new)) if len(df)], ignore_index=True) \
                if len(old) or new else _empty_cache()
            merged = merged.sort_values(["underlying", "quote_time", "path"], kind="stable")
            table = pa.Table.from_pandas(merged[list(_CACHE_SCHEMA.names)], schema=_CACHE_SCHEMA,
                                         preserve_index=False)
            meta = {"cache_version": CACHE_VERSION, "library_version": __version__, "config_key": key,
                    "convention": convention, "written_at": pd.Timestamp.now(tz="UTC").isoformat()}
            table = table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
            buf = io.BytesIO()
            pq.write_table(table, buf)
            atomic_write(path, buf.getvalue())
    except OSError as exc:
        warnings.warn(f"cannot write the net GEX cache {path} ({exc}); results are not cached",
                      HistoryCacheWarning, stacklevel=3)


# --------------------------------------------------------------------------------------------------
# net GEX history


@dataclasses.dataclass(frozen=True)
class _RateKey:
    """What :func:`research_lib.market.snapshot_rates` reads of a snapshot (to re-ask without reading it)."""

    snapshot_date: dt.date
    underlying: str


def _record(entry, **values) -> dict:
    rec = {"underlying": entry.underlying, "date": entry.date, "quote_time": entry.quote_time,
           "path": entry.path, "sha256": entry.sha256, "source": entry.source, "spot": float(entry.spot),
           "net_gex": math.nan, "call_gex": math.nan, "put_gex": math.nan, "regime_gex": math.nan,
           "regime_call_gex": math.nan, "regime_put_gex": math.nan, "zero_gamma": math.nan,
           "rate": 0.0, "div_yield": 0.0, "rate_notes": "", "error": None}
    rec.update(values)
    return rec


def _compute(store, entry, convention: str, market_dir) -> tuple[dict, bool]:
    """(record, cacheable) for one catalogue row: read, price as ``decide`` would, analyse."""
    try:
        snap = store.read(entry.path)
    except (ResearchLibError, OSError) as exc:
        return _record(entry, error=f"unreadable: {type(exc).__name__}: {exc}"), False
    rates = market.snapshot_rates(snap, convention, market_dir=market_dir)
    rate, q, rate_notes = rates.rate, rates.div_yield, rates.notes
    try:
        analysis = gex.analyze(snap, rates.config())
        lv = analysis.levels
        rg = regime_gex.of(analysis)
    except ResearchLibError as exc:
        return _record(entry, rate=rate, div_yield=q, rate_notes="; ".join(rate_notes),
                       error=f"{type(exc).__name__}: {exc}"), True
    return _record(entry, spot=float(lv.spot), net_gex=float(lv.net_gex), call_gex=float(lv.call_gex),
                   put_gex=float(lv.put_gex), regime_gex=rg.value, regime_call_gex=rg.call_gex,
                   regime_put_gex=rg.put_gex,
                   zero_gamma=math.nan if lv.zero_gamma is None else float(lv.zero_gamma),
                   rate=rate, div_yield=q, rate_notes="; ".join(rate_notes)), True


def _empty_history() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype="float64") for c in HISTORY_COLUMNS},
                      index=pd.DatetimeIndex([], name="date"))
    df["quote_time"] = pd.Series(pd.DatetimeIndex([], tz=NY), index=df.index)
    df["source"] = pd.Series([], index=df.index, dtype=object)
    return df


def net_gex_history(symbol: str = "SPX", *, end: Any = None, days: int | None = 365, store=None,
                    convention: str = "model", market_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Our net GEX for every stored market snapshot of ``symbol`` in a window of trading dates.

    Each snapshot is priced as every other path prices it (``research-lib gex``, :func:`research_lib.decide.decide`,
    the report, the explorer): :func:`research_lib.market.snapshot_config` of the convention, with the rate
    and dividend yield of its trading date (``model``) or 0 and 0 (``perfiliev``). Results are cached
    under the store root (see the module docstring): a rerun reads no snapshot and analyses nothing.

    Parameters
    ----------
    symbol : str
        Underlying as the store holds it (``"spx"`` and ``"_SPX"`` are ``SPX``).
    end : date-like, optional
        Last trading date included. None: no upper bound (the window then ends at the latest stored date).
    days : int or None, default 365
        Calendar days before ``end``: the window is ``[end - days, end]``, both ends included. None: no
        lower bound.
    store : ChainStore or path, optional
        Default :class:`~research_lib.store.ChainStore` (``$RESEARCH_LIB_DATA`` or ``data/``).
    convention : {"model", "perfiliev"}
    market_dir : path, optional
        Passed to :func:`~research_lib.market.snapshot_rates` (``model`` only).

    Returns
    -------
    DataFrame
        Indexed by ``date`` (tz-naive midnight :class:`~pandas.DatetimeIndex`, sorted, unique): one row
        per trading date, from the date's latest analysable market snapshot (modelled chains are left
        out). Columns :data:`HISTORY_COLUMNS`: ``net_gex``, ``call_gex``, ``put_gex`` ($ of dealer hedging
        per 1% move), ``regime_gex``, ``regime_call_gex``, ``regime_put_gex`` (the regime's series,
        :func:`research_lib.core.regime_gex.of` with its default definition, same units), ``zero_gamma``
        (points, NaN when the profile has no crossing), ``spot``, ``quote_time`` (New York), ``source``, ``rate``, ``div_yield`` (decimals used). Empty (same
        columns) when the store holds nothing in the window. ``attrs``: ``symbol``, ``convention``,
        ``start``/``end`` (ISO or None), ``skipped`` (list of dicts ``date, quote_time, path, error``:
        snapshots that could not be read or analysed; an earlier quote of the same date is used instead
        when there is one), ``notes`` (list of str: skipped snapshots, modelled ones left out, rates that
        fell back to 0), ``cache`` (the file), ``computed`` and ``from_cache`` (snapshots).

    Raises
    ------
    HistoryArgumentError
        A bad ``symbol``, ``end``, ``days``, ``store`` or ``convention``.
    StoreError
        The store's catalogue cannot be rebuilt (an unreadable file in it).
    """
    und = _check_symbol(symbol)
    convention = _check_convention(convention)
    days = None if days is None else _check_int(days, "days", 0)
    end_day = None if end is None else _as_day(end, "end")
    store = _as_store(store)
    path = cache_path(store, convention)
    key = _config_key(convention)

    cat = store.list(und)
    observed = cat[~cat["modelled"].astype(bool)]
    n_modelled = len(cat) - len(observed)
    hi = end_day if end_day is not None else (max(observed["date"]) if len(observed) else None)
    lo = None if days is None or hi is None else hi - dt.timedelta(days=days)
    sel = observed
    if hi is not None:
        sel = sel[sel["date"] <= hi]
    if lo is not None:
        sel = sel[sel["date"] >= lo]

    notes: list[str] = []
    if n_modelled:
        notes.append(f"{n_modelled} modelled {und} snapshot{'s' * (n_modelled != 1)} left out (market data only)")
    span = f"{lo or '...'}..{hi or '...'}"
    if sel.empty:
        notes.append(f"no stored market snapshot of {und} dated {span} in the store at {store.root}")
        out = _empty_history()
        out.attrs = {"symbol": und, "convention": convention, "start": None if lo is None else lo.isoformat(),
                     "end": None if hi is None else hi.isoformat(), "skipped": [], "notes": notes,
                     "cache": str(path), "computed": 0, "from_cache": 0}
        return out

    cached = _read_cache(path, key)
    cached = cached[cached["underlying"] == und]
    by_key = {(r["path"], r["sha256"]): r for r in cached.to_dict("records")}
    in_store = set(zip(observed["path"], observed["sha256"], strict=True))
    stale = any(k not in in_store for k in by_key)

    rows: list[dict] = []
    skipped: list[dict] = []
    new: list[dict] = []
    n_computed = n_cached = 0
    rechecked: dict[dt.date, tuple[float, float]] = {}
    ordered = sel.sort_values(["date", "quote_time", "written_at"], kind="stable")
    for _, group in ordered.groupby("date", sort=True):
        for entry in reversed(list(group.itertuples(index=False))):
            rec = by_key.get((entry.path, entry.sha256))
            if rec is not None and convention == "model" and rec["rate_notes"]:
                # provisional: priced with a fallback 0 rate; reprice when the market history now differs
                if entry.date not in rechecked:
                    again = market.snapshot_rates(_RateKey(entry.date, entry.underlying), convention,
                                                  market_dir=market_dir)
                    rechecked[entry.date] = (again.rate, again.div_yield)
                rate, q = rechecked[entry.date]
                if (rate, q) != (rec["rate"], rec["div_yield"]):
                    rec = None
            if rec is None:
                rec, cacheable = _compute(store, entry, convention, market_dir)
                n_computed += 1
                if cacheable:
                    new.append(rec)
            else:
                n_cached += 1
            if rec["error"] is not None:
                skipped.append({"date": entry.date.isoformat(), "quote_time": entry.quote_time.isoformat(),
                                "path": entry.path, "error": rec["error"]})
                continue
            rows.append(rec)
            break

    if new or stale:
        _write_cache(path, key, convention, und, in_store, new)

    for s in skipped:
        notes.append(f"skipped {und} snapshot {s['path']} ({s['date']}): {s['error']}")
    with_notes = [r for r in rows if r["rate_notes"]]
    if with_notes:
        notes.append(f"{len(with_notes)} of {len(rows)} snapshots priced with a 0 rate or dividend yield "
                     f"(market history missing), e.g. {with_notes[0]['date']}: {with_notes[0]['rate_notes']}")

    if rows:
        out = pd.DataFrame.from_records(rows)
        out.index = pd.DatetimeIndex(pd.to_datetime(out["date"].astype(str)), name="date")
        out["quote_time"] = pd.to_datetime(out["quote_time"]).dt.tz_convert(NY)
        out["source"] = out["source"].astype(object)
        out = out[list(HISTORY_COLUMNS)].sort_index()
    else:
        out = _empty_history()
    out.attrs = {"symbol": und, "convention": convention, "start": None if lo is None else lo.isoformat(),
                 "end": None if hi is None else hi.isoformat(), "skipped": skipped, "notes": notes,
                 "cache": str(path), "computed": n_computed, "from_cache": n_cached}
    return out


_load_net_gex_history = net_gex_history  # history_context's argument of the same name shadows it


# --------------------------------------------------------------------------------------------------
# the report's history context


def _empty_series(name: str) -> pd.Series:
    return pd.Series([], index=pd.DatetimeIndex([], name="date"), dtype="float64", name=name)


def _daily(series: pd.Series, name: str) -> pd.Series:
    """``series`` as floats on a tz-naive midnight ``date`` index, missing values dropped."""
    idx = pd.DatetimeIndex(series.index)
    if idx.tz is not None:
        idx = idx.tz_convert(NY).tz_localize(None)
    out = pd.Series(pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64"),
                    index=idx.normalize().rename("date"), name=name)
    out = out[np.isfinite(out.to_numpy())]
    return out[~out.index.duplicated(keep="last")].sort_index()


def _window(series: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    return series[(series.index >= start) & (series.index <= end)]


def _given_history(value: Any, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    if isinstance(value, pd.DataFrame):
        if "net_gex" not in value.columns:
            raise HistoryArgumentError("net_gex_history", f"a DataFrame needs a 'net_gex' column, has "
                                                          f"{list(value.columns)}")
        value = value["net_gex"]
    if not isinstance(value, pd.Series):
        raise HistoryArgumentError("net_gex_history", f"expected a Series or DataFrame indexed by date, got "
                                                      f"{type(value).__name__}")
    try:
        series = _daily(value, "net_gex")
    except (TypeError, ValueError) as exc:
        raise HistoryArgumentError("net_gex_history", f"index is not dates ({exc})") from exc
    return _window(series, start, end)


@dataclasses.dataclass(frozen=True, eq=False)
class HistoryContext:
    """History around one report snapshot, as :func:`history_context` builds it.

    Attributes
    ----------
    underlying : str
    date : datetime.date
        The report snapshot's trading date: the window's last day (nothing after it is included).
    convention : str
        The report's GEX convention (the history's when it is one :func:`net_gex_history` reproduces).
    frame : DataFrame
        Indexed by ``date`` (tz-naive midnight, sorted) over ``[date - days, date]``: every date on which
        any series has a value. Columns :data:`CONTEXT_COLUMNS`:

        ``net_gex``
            Ours, $ of dealer hedging per 1% move (:mod:`research_lib.gex`): the stored market snapshots'
            history plus the report snapshot's own value on its date (which replaces a stored one).
        ``published_gex``
            SqueezeMetrics' published GEX in **their** units ($ as they publish it, their own model, sign
            and expiry conventions, for the whole S&P 500): compare its sign and shape with ours, not its
            level. S&P 500 underlyings (:data:`SP500_UNDERLYINGS`) only.
        ``vix``
            Cboe VIX close, index points.
        ``iv_rank``
            VIX's IV rank, 0-100, over the trailing ``iv_rank_window`` published VIX closes (computed on
            the whole VIX history, so the window's first days have a rank too).

        NaN where a series has no value on that date; an absent series is an all-NaN column.
    notes : tuple of str
        Every series that is missing, partial or stale, and why (file not found, empty store ...).
    sources : dict
        Series name → where it came from (file path, store root and cache).
    days : int
    iv_rank_window : int
    modelled : bool
        The report snapshot is a modelled chain.
    """

    underlying: str
    date: dt.date
    convention: str
    frame: pd.DataFrame
    notes: tuple[str, ...] = ()
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    days: int = 365
    iv_rank_window: int = 252
    modelled: bool = False

    @property
    def start(self) -> dt.date:
        """The window's first day, ``date - days``."""
        return self.date - dt.timedelta(days=self.days)

    def sign_agreement(self) -> dict:
        """On the days both our net GEX and the published GEX exist: ``n`` (days), ``agree`` (days with the
        same sign, zero counting as its own sign) and ``share`` (agree / n, None when n is 0)."""
        both = self.frame[["net_gex", "published_gex"]].dropna()
        n = len(both)
        agree = int((np.sign(both["net_gex"]) == np.sign(both["published_gex"])).sum())
        return {"n": n, "agree": agree, "share": agree / n if n else None}

    def to_dict(self) -> dict:
        """JSON-ready (:func:`research_lib.formatting.jsonable`): the window, per series its count, first/last
        date and last value, the sign agreement of ours against the published GEX, notes and sources."""
        series = {}
        for col in CONTEXT_COLUMNS:
            s = self.frame[col].dropna()
            series[col] = {"count": len(s),
                           "first_date": s.index[0].date() if len(s) else None,
                           "last_date": s.index[-1].date() if len(s) else None,
                           "last_value": s.iloc[-1] if len(s) else None}
        idx = self.frame.index
        return jsonable({"underlying": self.underlying, "date": self.date, "convention": self.convention,
                         "modelled": self.modelled, "days": self.days, "iv_rank_window": self.iv_rank_window,
                         "start": self.start,
                         "first_date": idx[0].date() if len(idx) else None,
                         "last_date": idx[-1].date() if len(idx) else None,
                         "series": series, "sign_agreement": self.sign_agreement(),
                         "notes": self.notes, "sources": self.sources})

    def summary(self) -> str:
        """A few readable lines: the window, each series' count and last value, the sign agreement, notes."""
        d = self.to_dict()
        pricing = ("r = q = 0, the published method" if self.convention == "perfiliev"
                   else "each date's own rate and dividend yield")
        lines = [f"{self.underlying} history context {d['start']}..{d['date']} ({self.days} days, "
                 f"{self.convention} convention, priced with {pricing})"
                 f"{'  [MODELLED DATA]' if self.modelled else ''}"]
        fmt = {"net_gex": ("net GEX (ours)", lambda v: f"${v / 1e9:,.2f}bn per 1%"),
               "published_gex": ("published GEX", lambda v: f"{v / 1e9:,.2f}bn (SqueezeMetrics units)"),
               "vix": ("VIX", lambda v: f"{v:.2f}"),
               "iv_rank": ("IV rank (VIX)", lambda v: f"{v:.0f}/100 over {self.iv_rank_window} sessions")}
        for col, (label, f) in fmt.items():
            s = d["series"][col]
            if s["count"]:
                lines.append(f"  {label:<15} {s['count']:>4} days, last {s['last_date']}: {f(s['last_value'])}")
            else:
                lines.append(f"  {label:<15}    - none")
        sa = d["sign_agreement"]
        if sa["n"]:
            lines.append(f"  sign agreement ours vs published: {sa['agree']}/{sa['n']} days ({sa['share']:.0%})")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def history_context(levels, *, days: int = 365, store=None, market_dir: str | os.PathLike | None = None,
                    iv_rank_window: int = 252, net_gex_history: pd.Series | pd.DataFrame | None = None
                    ) -> HistoryContext:
    """Our net GEX, the published GEX, VIX and VIX's IV rank over the ``days`` before a report's snapshot.

    Parameters
    ----------
    levels : KeyLevels or GexAnalysis
        The report snapshot's levels: its underlying, trading date (the window's end: nothing later is
        included), convention and own net GEX (added on its date, replacing a stored value).
    days : int, default 365
        Calendar days in the window ``[date - days, date]``.
    store : ChainStore or path, optional
        Where :func:`net_gex_history` finds the stored snapshots (default store when None).
    market_dir : path, optional
        See :func:`research_lib.market.market_data_dirs`; also passed to the rate lookup.
    iv_rank_window : int, default 252
        VIX closes (published days) in the IV-rank window.
    net_gex_history : Series or DataFrame, optional
        Our net GEX history indexed by date (a DataFrame needs a ``net_gex`` column), e.g. a
        :func:`net_gex_history` result you already have; None computes it from ``store`` (in the report's
        convention when it is ``model`` or ``perfiliev``, else ``model`` with a note).

    Returns
    -------
    HistoryContext
        A missing market file, an empty store or an unreadable catalogue never raises: that series is
        all-NaN and :attr:`HistoryContext.notes` says why. The published GEX is left out for underlyings
        other than the S&P 500's (with a note); VIX and its rank are the S&P 500's for every underlying.

    Raises
    ------
    HistoryArgumentError
        ``levels`` is not a KeyLevels / GexAnalysis, or ``days``, ``iv_rank_window`` or ``net_gex_history``
        is impossible.
    """
    lv = getattr(levels, "levels", levels)
    if not all(hasattr(lv, a) for a in ("underlying", "date", "net_gex", "convention")):
        raise HistoryArgumentError("levels", f"expected a KeyLevels or GexAnalysis, got {type(levels).__name__}")
    days = _check_int(days, "days", 1)
    iv_rank_window = _check_int(iv_rank_window, "iv_rank_window", 2)
    und = str(lv.underlying).upper()
    date = _as_day(lv.date, "levels.date")
    end = pd.Timestamp(date)
    start = end - pd.Timedelta(days=days)
    notes: list[str] = []
    sources: dict[str, str] = {}
    report_convention = str(getattr(lv, "convention", "model"))

    # -- ours
    if net_gex_history is not None:
        ours = _given_history(net_gex_history, start, end)
        sources["net_gex"] = "net GEX history given by the caller"
    else:
        conv = report_convention if report_convention in CONVENTIONS else "model"
        if conv != report_convention:
            notes.append(f"the report's convention {report_convention!r} cannot be recomputed over the store: "
                         "history in the 'model' convention")
        try:
            hist = _load_net_gex_history(und, end=date, days=days, store=store, convention=conv,
                                         market_dir=market_dir)
        except (ResearchLibError, OSError) as exc:
            ours = _empty_series("net_gex")
            notes.append(f"net GEX history unavailable: {type(exc).__name__}: {exc}")
            sources["net_gex"] = f"store at {_as_store(store).root} (unreadable)"
        else:
            ours = _daily(hist["net_gex"], "net_gex")
            notes.extend(hist.attrs.get("notes", []))
            sources["net_gex"] = (f"research_lib net GEX ({conv} convention) of the market snapshots in the store "
                                  f"at {_as_store(store).root}, cached in {hist.attrs.get('cache')}")
    if lv.net_gex is not None and math.isfinite(float(lv.net_gex)):
        ours = ours.drop(index=end, errors="ignore")
        ours = pd.concat([ours, pd.Series([float(lv.net_gex)], index=pd.DatetimeIndex([end], name="date"))])
        ours = ours.sort_index().rename("net_gex")
        sources["net_gex"] += f"; {date} from the report's own levels ({getattr(lv, 'source', 'report')})"
        if getattr(lv, "modelled", False):
            notes.append(f"the report's own net GEX on {date} comes from a MODELLED chain")

    # -- published
    published = _empty_series("published_gex")
    if und in SP500_UNDERLYINGS:
        try:
            frame = market.load_published_gex(market_dir=market_dir)
        except (market.MarketDataNotFoundError, market.MarketDataError) as exc:
            notes.append(f"published GEX unavailable: {exc}")
        else:
            published = _window(_daily(frame["gex"], "published_gex"), start, end)
            sources["published_gex"] = frame.attrs.get("source", "research_lib.market.load_published_gex")
    else:
        notes.append(f"published GEX left out: SqueezeMetrics publishes the S&P 500's, not {und}'s")

    # -- VIX and its rank
    vix = rank = _empty_series("vix")
    try:
        vframe = market.load_vol_index("VIX", market_dir=market_dir)
    except (market.MarketDataNotFoundError, market.MarketDataError) as exc:
        notes.append(f"VIX and IV rank unavailable: {exc}")
    else:
        full = _daily(vframe["close"], "vix")
        rank_full = market.iv_rank(full, window=iv_rank_window) * 100.0
        vix = _window(full, start, end)
        rank = _window(rank_full.dropna().rename("iv_rank"), start, end)
        where = vframe.attrs.get("source", "research_lib.market.load_vol_index('VIX')")
        sources["vix"] = where
        sources["iv_rank"] = f"IV rank of VIX closes over {iv_rank_window} sessions ({where})"
        if len(vix) and not len(rank):
            notes.append(f"IV rank unavailable: fewer than {iv_rank_window} VIX closes before the window's days")
    if not len(ours):
        notes.append(f"no net GEX of {und} in {start.date()}..{date}")
    for name, s in (("published GEX", published), ("VIX", vix)):
        if len(s) and (end - s.index[-1]).days > STALE_DAYS:
            notes.append(f"{name} ends {s.index[-1].date()}, {(end - s.index[-1]).days} days before {date}")
        elif not len(s) and name == "VIX" and "vix" in sources:
            notes.append(f"no VIX close in {start.date()}..{date} in {sources['vix']}")
        elif not len(s) and name == "published GEX" and "published_gex" in sources:
            notes.append(f"no published GEX in {start.date()}..{date} in {sources['published_gex']}")

    cols = {"net_gex": ours, "published_gex": published, "vix": vix, "iv_rank": rank}
    index = pd.DatetimeIndex(sorted(set().union(*(s.index for s in cols.values()))), name="date")
    frame = pd.DataFrame({k: s.reindex(index).astype("float64") for k, s in cols.items()}, index=index)
    return HistoryContext(underlying=und, date=date, convention=report_convention, frame=frame,
                          notes=tuple(notes), sources=sources, days=days, iv_rank_window=iv_rank_window,
                          modelled=bool(getattr(lv, "modelled", False)))
