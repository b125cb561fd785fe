"""Rates and dividend yield: the risk-free rate of a date from the T-bill / Treasury / fed funds quotes
(each converted exactly from its quoting basis), the S&P 500's implied dividend yield, and the one
default of every GEX path, :func:`snapshot_rates` / :func:`snapshot_config` (:class:`SnapshotRates`)."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from research_lib.core import gex
from research_lib.core.chain import ResearchLibError
from research_lib.data.market.loaders import load_index_daily
from research_lib.data.market.parsing import _load
from research_lib.errors import GexConfigError, MarketDataError, MarketDataNotFoundError, MarketDataWarning
from research_lib.formatting import jsonable
from research_lib.settings import NY, SP500_UNDERLYINGS

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
        """JSON-ready (:func:`research_lib.formatting.jsonable`): every field, the date as ISO text
        (``YYYY-MM-DD`` whatever date-like it was given as)."""
        date = None if self.date is None else pd.Timestamp(self.date).date()
        return jsonable({**dataclasses.asdict(self), "date": date})


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


