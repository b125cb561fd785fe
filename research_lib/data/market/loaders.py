"""The loaders of the market history: index and SPY closes, the VIX family, put/call ratios, rates as
quoted, the published GEX, and everything a decision reads in one :class:`~research_lib.core.market_view.MarketHistory`
(:func:`load_market_history`, :func:`market_view`). Each returns a date-indexed frame with
``attrs["source"]`` saying what served it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from research_lib.core.market_view import MarketHistory, MarketView
from research_lib.data.market.files import _SPECS, _not_found
from research_lib.data.market.parsing import _drop_non_sessions, _load
from research_lib.errors import MarketDataError, MarketDataNotFoundError

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
# Everything a decision reads, loaded once
# --------------------------------------------------------------------------------------------------------
#: The market file kinds a decision reads: S&P 500 and SPY closes, the VIX family, the three rate sources
#: and the published GEX.
DECISION_KINDS = ("spx", "spy", "vix", "vix9d", "vix3m", "vvix", "skew", "irx", "dgs3mo", "dff", "gex")


def load_market_history(market_dir: str | os.PathLike | None = None, *, kinds: Iterable[str] = DECISION_KINDS,
                        net_gex: pd.Series | None = None, regime_gex: pd.Series | None = None) -> MarketHistory:
    """Read the market files once into a :class:`~research_lib.core.market_view.MarketHistory`.

    Parameters
    ----------
    market_dir : path, optional
        See :func:`market_data_dirs`.
    kinds : iterable of str, default :data:`DECISION_KINDS`
    net_gex, regime_gex : Series, optional
        Our own net GEX and regime-GEX histories to carry along (date-indexed; the regime's thresholds are
        relative to the trailing ``regime_gex``).

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
    return MarketHistory(frames=frames, errors=errors, net_gex=net_gex, regime_gex=regime_gex)


def market_view(date, market_dir: str | os.PathLike | None = None, *,
                regime_gex: pd.Series | None = None) -> MarketView:
    """:meth:`MarketView.as_of` of :func:`load_market_history` ``(market_dir, regime_gex=...)`` on ``date``."""
    return MarketView.as_of(load_market_history(market_dir, regime_gex=regime_gex), date)

