"""Dealer gamma exposure (GEX): exposures per contract, strike and expiry, the gamma profile, zero gamma,
call and put walls, max pain and pin risk.

Units
-----
* GEX: dollars of dealer delta-hedging per **1% move** of the underlying,
  ``sign × gamma × OI × 100 × S × S × 0.01`` (``gamma`` per 1 point, 100 the contract multiplier).
* Vanna exposure: dollars of dealer delta per **1 vol point** (0.01 of IV),
  ``sign × vanna × 0.01 × OI × 100 × S``.
* Charm exposure: dollars of dealer delta per **calendar day** of time passing,
  ``sign × charm / 365 × OI × 100 × S`` (``charm`` = d delta / d t per year).
* Delta exposure (DEX): dollars of dealer delta, ``sign × delta × OI × 100 × S``.
* Time to expiry ``T`` in years.

``sign`` is the dealer-sign convention (:attr:`GexConfig.dealer_sign`): the default ``(+1, -1)``
assumes dealers are long the calls and short the puts customers hold, so call GEX counts positive and
put GEX negative.

Conventions
-----------
``model`` (default, :meth:`GexConfig.model`)
    Self-consistent: every gamma is recomputed from the contract's own IV with the given rate ``r`` and
    dividend yield ``q``; ``T`` is calendar time (seconds / 365 days) from the valuation moment to the
    settlement moment — the session close (16:00 ET, 13:00 on early closes) for PM-settled roots, the
    09:30 open for AM-settled SPX/NDX/RUT monthlies — so 0DTE is priced to the minute and an expired
    contract drops out. The valuation moment is the quote time during a session, or the last session
    close for a quote taken after hours or on a weekend (``valuation="market"``). The reported zero gamma
    is the profile crossing nearest spot, refined by Brent's method on the exact profile function.
``perfiliev`` (:meth:`GexConfig.perfiliev`)
    Reproduces the widely copied public method (S. Perfiliev, "How to Calculate Gamma Exposure and Zero
    Gamma Level"): totals from the vendor's gamma column over all expiries, calls +, puts −. The profile
    uses Black-Scholes gamma with r = q = 0 from each contract's IV, ``T = numpy.busday_count(quote
    date, expiry) / 262`` (the file header's date; no holiday calendar; same-day expiries floored at
    1/262), expired rows
    dropped, 60 levels ``linspace(0.8 S, 1.2 S)``, and the reported zero gamma is the first (lowest)
    crossing by linear interpolation.

Every assumption is a field of :class:`GexConfig`; the presets only choose values.

Levels
------
Call wall / put wall (:func:`walls`)
    The strike at or above spot where call gamma exposure most outweighs put gamma exposure (resistance),
    and the strike at or below spot where put gamma most outweighs call gamma (support), summed over the
    counted expiries — SpotGamma's "largest net call / net put gamma" with the side restriction most
    dashboards apply. Netting matters on SPX: paired call and put open interest at round strikes (7,000
    and 8,000 in 2026, mostly AM monthlies) made the largest |call GEX| and the largest |put GEX| the
    same strike on about four clean days in five of the 2026 Cboe EOD archive, and put a put wall above
    spot on more than one in four. Those older readings stay in :class:`Walls` under their own names.
Max pain (:func:`snapshot_max_pain`)
    From open interest alone, so from every contract with open interest > 0, priced or not, in every
    convention; per expiry date, settled expiries left out.
Pin risk (:func:`pin_risk`)
    Gamma-weighted, per expiry that has not settled at the valuation moment.

Example
-------
>>> from research_lib.data.sources import read_chain
>>> from research_lib import gex
>>> snap = read_chain("../shared/data/chains/cboe_quotedata/spx_2024-01-07.csv")   # doctest: +SKIP
>>> result = gex.analyze(snap)                                                     # doctest: +SKIP
>>> result.levels.zero_gamma, result.levels.call_wall                              # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from research_lib import calendar as cal
from research_lib.checks import FieldChecks, prefixed
from research_lib.core import pricing
from research_lib.core.chain import ChainSnapshot
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    GexConfigError as GexConfigError,
    NoExposureError as NoExposureError,
)
from research_lib.formatting import jsonable

CONTRACT_MULTIPLIER = 100.0
ONE_PERCENT = 0.01
SQRT_2PI = math.sqrt(2.0 * math.pi)


# --------------------------------------------------------------------------------------------------
# configuration


@dataclasses.dataclass(frozen=True)
class ExpiryFilter:
    """Which expiries count.

    Attributes
    ----------
    max_dte : int, optional
        Keep expiries at most this many calendar days after the snapshot date.
    exclude_0dte : bool
        Drop expiries on the snapshot date itself.
    dates : tuple of datetime.date, optional
        Keep only these expiries.
    """

    max_dte: int | None = None
    exclude_0dte: bool = False
    dates: tuple[dt.date, ...] | None = None

    def __post_init__(self):
        if self.max_dte is not None and (int(self.max_dte) != self.max_dte or self.max_dte < 0):
            raise GexConfigError(f"max_dte must be a non-negative integer, got {self.max_dte!r}")
        if self.dates is not None:
            object.__setattr__(self, "dates", tuple(pd.Timestamp(d).date() for d in self.dates))

    def mask(self, expiration: pd.Series, snapshot_date: dt.date) -> np.ndarray:
        """Boolean mask of the rows whose expiry passes the filter."""
        exp = pd.DatetimeIndex(expiration)
        dte = (exp - pd.Timestamp(snapshot_date)).days.to_numpy()
        keep = np.ones(len(exp), dtype=bool)
        if self.max_dte is not None:
            keep &= dte <= self.max_dte
        if self.exclude_0dte:
            keep &= dte != 0
        if self.dates is not None:
            keep &= np.isin(exp.date, np.array(self.dates, dtype=object))
        return keep


_CONFIG_CHECKS = FieldChecks(prefixed(GexConfigError, "GexConfig"))


@dataclasses.dataclass(frozen=True)
class GexConfig:
    """Every assumption of a GEX computation. Build with :meth:`model`, :meth:`perfiliev` or
    :meth:`preset`; change a field with :func:`dataclasses.replace`.

    Attributes
    ----------
    convention : str
        A label for reports (``"model"``, ``"perfiliev"``, or your own).
    gamma_source : {"model", "vendor"}
        Gamma of the per-contract exposures and totals: recomputed from IV with ``rate`` and
        ``div_yield`` (``model``), or the vendor's column (``vendor``; rows without one contribute 0 and
        are counted in :attr:`KeyLevels.n_unpriced`). The profile is always recomputed from IV.
    rate, div_yield : float
        Continuously compounded risk-free rate and dividend yield (decimals) of the BSM model.
    day_count : {"calendar", "weekdays"}
        ``calendar``: seconds from the valuation moment to the settlement moment / (``days_per_year`` ×
        86400). ``weekdays``: ``numpy.busday_count(quote date, expiry) / days_per_year`` (see
        :func:`weekday_count_start`).
    days_per_year : float
        365 for calendar time; 262 (or 252) for the weekday count.
    zero_dte_floor : bool
        Weekday count only: a same-day expiry gets ``T = 1 / days_per_year`` instead of 0.
    valuation : {"market", "quote"}
        Calendar count only: value at the quote time if it falls in a session, else at the last session
        close (``market``); or always at the quote time (``quote``).
    dealer_sign : (float, float)
        Sign of (call, put) exposure: ``(1, -1)`` dealers long calls, short puts.
    expiries : ExpiryFilter
        Which expiries count (applies to everything: totals, profile, walls).
    grid_points, grid_low, grid_high : int, float, float
        The profile grid: ``linspace(grid_low × S, grid_high × S, grid_points)``.
    zero_gamma_method : {"nearest_root", "first_linear"}
        Which crossing is reported and how: the one nearest spot, refined by Brent's method
        (``nearest_root``); or the lowest, by linear interpolation between grid points (``first_linear``).
    """

    convention: str = "model"
    gamma_source: Literal["model", "vendor"] = "model"
    rate: float = 0.0
    div_yield: float = 0.0
    day_count: Literal["calendar", "weekdays"] = "calendar"
    days_per_year: float = 365.0
    zero_dte_floor: bool = False
    valuation: Literal["market", "quote"] = "market"
    dealer_sign: tuple[float, float] = (1.0, -1.0)
    expiries: ExpiryFilter = ExpiryFilter()
    grid_points: int = 400
    grid_low: float = 0.8
    grid_high: float = 1.2
    zero_gamma_method: Literal["nearest_root", "first_linear"] = "nearest_root"

    def __post_init__(self):
        check = _CONFIG_CHECKS
        check.choice("gamma_source", self.gamma_source, ("model", "vendor"))
        check.choice("day_count", self.day_count, ("calendar", "weekdays"))
        check.choice("valuation", self.valuation, ("market", "quote"))
        check.choice("zero_gamma_method", self.zero_gamma_method, ("nearest_root", "first_linear"))
        for field in ("rate", "div_yield"):
            check.number(field, getattr(self, field), lo=-1, hi=1, unit="decimal rate: 0.05 = 5%")
        check.number("days_per_year", self.days_per_year, lo=200, hi=366)
        check.whole("grid_points", self.grid_points, lo=2, hi=100_000)
        check.require(0 < self.grid_low < 1 < self.grid_high <= 10, "grid_low", self.grid_low,
                      f"grid must satisfy 0 < low < 1 < high <= 10 (high={self.grid_high!r})")
        check.require(len(self.dealer_sign) == 2 and all(s in (-1, 1, -1.0, 1.0) for s in self.dealer_sign),
                      "dealer_sign", self.dealer_sign, "must be a (call, put) pair of +1/-1")
        check.require(isinstance(self.expiries, ExpiryFilter), "expiries", self.expiries, "must be an ExpiryFilter")

    def to_dict(self) -> dict:
        """JSON-ready (:func:`~research_lib.formatting.jsonable`): every field, the expiry filter's dates as ISO
        strings."""
        return jsonable(dataclasses.asdict(self))

    @classmethod
    def model(cls, **overrides) -> GexConfig:
        """The self-consistent default (see the module docstring)."""
        return cls(**overrides)

    @classmethod
    def perfiliev(cls, *, days_per_year: float = 262.0, zero_dte_floor: bool = True, **overrides) -> GexConfig:
        """Perfiliev's public method, exactly (see the module docstring)."""
        base = dict(convention="perfiliev", gamma_source="vendor", rate=0.0, div_yield=0.0,
                    day_count="weekdays", days_per_year=days_per_year, zero_dte_floor=zero_dte_floor,
                    grid_points=60, grid_low=0.8, grid_high=1.2, zero_gamma_method="first_linear")
        base.update(overrides)
        return cls(**base)

    @classmethod
    def preset(cls, name: str, **overrides) -> GexConfig:
        """``GexConfig.preset("model" | "perfiliev", **overrides)``."""
        if name == "model":
            return cls.model(**overrides)
        if name == "perfiliev":
            return cls.perfiliev(**overrides)
        raise GexConfigError(f"unknown convention {name!r}; use 'model' or 'perfiliev'")


def config_from(convention: str = "model", *, rate: float | None = None, div_yield: float | None = None,
                grid_points: int | None = None, days_per_year: float | None = None,
                zero_dte_floor: bool | None = None, max_dte: int | None = None, exclude_0dte: bool = False,
                expiries: Sequence | None = None) -> GexConfig:
    """A :class:`GexConfig` from plain parameters (what the CLI and notebooks take); None keeps the
    preset's value.

    >>> config_from("perfiliev", days_per_year=252).days_per_year
    252
    """
    overrides: dict = {}
    for name, value in (("rate", rate), ("div_yield", div_yield), ("grid_points", grid_points),
                        ("days_per_year", days_per_year), ("zero_dte_floor", zero_dte_floor)):
        if value is not None:
            overrides[name] = value
    if max_dte is not None or exclude_0dte or expiries is not None:
        overrides["expiries"] = ExpiryFilter(max_dte=max_dte, exclude_0dte=exclude_0dte,
                                             dates=tuple(expiries) if expiries is not None else None)
    if convention == "model" and zero_dte_floor:
        raise GexConfigError("zero_dte_floor applies to the weekday count of the perfiliev convention only")
    return GexConfig.preset(convention, **overrides)


# --------------------------------------------------------------------------------------------------
# time to expiry


def valuation_moment(snapshot: ChainSnapshot, config: GexConfig) -> pd.Timestamp:
    """The moment exposures are computed at (see :attr:`GexConfig.valuation`)."""
    if config.valuation == "quote":
        return snapshot.quote_time
    return cal.market_moment(snapshot.quote_time)


def time_to_expiry(snapshot: ChainSnapshot, config: GexConfig) -> np.ndarray:
    """Years from the valuation moment to each contract's settlement, per :attr:`GexConfig.day_count`.

    Expired contracts get ``T <= 0`` (calendar) or a negative count (weekdays).
    """
    c = snapshot.contracts
    if config.day_count == "calendar":
        settle = cal.settlement_times(c["expiration"].to_numpy(), c["settlement"].to_numpy())
        start = valuation_moment(snapshot, config)
        secs = (settle.asi8 - start.value) / 1e9
        return secs / (config.days_per_year * 86400.0)
    exp_days = c["expiration"].to_numpy().astype("datetime64[D]")
    start = weekday_count_start(snapshot)
    n = np.busday_count(start, exp_days).astype(float)
    if config.zero_dte_floor:
        # Same-day expiries, and any live expiry with no weekday before it (a Saturday snapshot of a
        # Monday expiry), count as one day, as in the published method.
        n = np.where((n == 0) & (exp_days >= start), 1.0, n)
    return n / config.days_per_year


def weekday_count_start(snapshot: ChainSnapshot) -> np.datetime64:
    """The day the ``weekdays`` count (perfiliev) starts from: the quote time's New York date.

    That is the date in the file header, as the published method counts, even when the prices are an
    earlier session's (a Sunday download of Friday's close counts from Sunday; its ``snapshot_date`` is
    the Friday). Expiries before it are expired under that count.
    """
    return np.datetime64(snapshot.quote_time.tz_convert("America/New_York").date(), "D")


# --------------------------------------------------------------------------------------------------
# per-contract exposures

#: Columns of :attr:`GexAnalysis.contracts`.
EXPOSURE_COLUMNS = ("root", "expiration", "settlement", "strike", "right", "open_interest", "iv", "T",
                    "gamma", "gex", "vanna_exposure", "charm_exposure", "delta_exposure")


@dataclasses.dataclass(frozen=True)
class Exclusions:
    """Contracts left out of the exposures, by reason (counts of contracts and of their open interest)."""

    expired: int = 0
    filtered: int = 0
    unpriced: int = 0
    unpriced_open_interest: float = 0.0


def exposures(snapshot: ChainSnapshot, config: GexConfig | None = None, *,
              T: np.ndarray | None = None) -> tuple[pd.DataFrame, Exclusions]:
    """Per-contract exposures.

    ``T`` may pass :func:`time_to_expiry`'s result when the caller already has it.

    Returns
    -------
    contracts : DataFrame
        One row per contract that counts, columns :data:`EXPOSURE_COLUMNS`: ``T`` in years, ``gamma``
        per point (model or vendor, per the config), ``gex`` $ per 1% move, ``vanna_exposure`` $ delta
        per vol point, ``charm_exposure`` $ delta per calendar day, ``delta_exposure`` $ delta; all
        signed by the dealer convention. Contracts with zero open interest are kept (exposure 0).
    exclusions : Exclusions
        How many contracts expired, were filtered out, or could not be priced (no IV for the model, no
        vendor gamma for ``gamma_source="vendor"``) — those count 0, and are reported, not hidden.
        Vanna, charm and delta always come from the BSM model at the contract's IV; with
        ``gamma_source="vendor"`` a contract that has a vendor gamma but no IV counts 0 in those three.
    """
    config = config or GexConfig()
    c = snapshot.contracts
    S = snapshot.spot
    T = time_to_expiry(snapshot, config) if T is None else T
    exp_dates = c["expiration"].to_numpy().astype("datetime64[D]")
    today = weekday_count_start(snapshot)
    if config.day_count == "weekdays":
        expired = exp_dates < today
        T_ok = T > 0
    else:
        expired = T <= 0
        T_ok = ~expired
    passes = config.expiries.mask(c["expiration"], snapshot.snapshot_date)
    # Vendor gamma needs no T: every live expiry counts (the published method sums the whole file).
    keep = ~expired & passes & (T_ok | (config.gamma_source == "vendor"))
    is_call = (c["right"] == "C").to_numpy()
    sign = np.where(is_call, config.dealer_sign[0], config.dealer_sign[1])
    iv = c["iv"].to_numpy()
    K = c["strike"].to_numpy()
    oi = c["open_interest"].to_numpy()
    r, q = config.rate, config.div_yield

    with np.errstate(all="ignore"):
        g = pricing.greeks(S, K, np.where(keep, T, np.nan), iv, r, q, is_call)
    model_gamma = g.gamma
    gamma = model_gamma if config.gamma_source == "model" else c["gamma"].to_numpy()
    priced = keep & np.isfinite(gamma)
    unpriced = keep & ~priced
    excl = Exclusions(expired=int(expired.sum()), filtered=int((~expired & ~passes).sum()),
                      unpriced=int(unpriced.sum()), unpriced_open_interest=float(oi[unpriced].sum()))

    sel = priced
    notional = sign[sel] * oi[sel] * CONTRACT_MULTIPLIER
    vanna = np.nan_to_num(g.vanna[sel]) if config.gamma_source == "vendor" else g.vanna[sel]
    charm = np.nan_to_num(g.charm[sel]) if config.gamma_source == "vendor" else g.charm[sel]
    delta = np.nan_to_num(g.delta[sel]) if config.gamma_source == "vendor" else g.delta[sel]
    out = pd.DataFrame({
        "root": c["root"].to_numpy()[sel],
        "expiration": c["expiration"].to_numpy()[sel],
        "settlement": c["settlement"].to_numpy()[sel],
        "strike": K[sel],
        "right": c["right"].to_numpy()[sel],
        "open_interest": oi[sel],
        "iv": iv[sel],
        "T": T[sel],
        "gamma": gamma[sel],
        "gex": notional * gamma[sel] * S * S * ONE_PERCENT,
        "vanna_exposure": notional * vanna * ONE_PERCENT * S,
        "charm_exposure": notional * charm / 365.0 * S,
        "delta_exposure": notional * delta * S,
    })
    return out, excl


def _summed_by(contracts: pd.DataFrame, key: str, *, split_oi: bool) -> pd.DataFrame:
    calls = contracts["right"] == "C"
    columns = {
        key: contracts[key],
        "call_gex": contracts["gex"].where(calls, 0.0),
        "put_gex": contracts["gex"].where(~calls, 0.0),
        "net_gex": contracts["gex"],
        "vanna_exposure": contracts["vanna_exposure"],
        "charm_exposure": contracts["charm_exposure"],
    }
    if split_oi:
        columns["call_oi"] = contracts["open_interest"].where(calls, 0.0)
        columns["put_oi"] = contracts["open_interest"].where(~calls, 0.0)
    else:
        columns["open_interest"] = contracts["open_interest"]
    return pd.DataFrame(columns).groupby(key, sort=True).sum()


def by_strike(contracts: pd.DataFrame) -> pd.DataFrame:
    """Exposures summed by strike across expiries.

    Returns a DataFrame indexed by ``strike`` (ascending) with ``call_gex, put_gex, net_gex,
    vanna_exposure, charm_exposure, call_oi, put_oi`` ($ per 1% move; $ per vol point; $ per day).
    """
    return _summed_by(contracts, "strike", split_oi=True)


def by_expiry(contracts: pd.DataFrame) -> pd.DataFrame:
    """Exposures summed by expiry: index ``expiration``; ``call_gex, put_gex, net_gex,
    vanna_exposure, charm_exposure, open_interest``."""
    return _summed_by(contracts, "expiration", split_oi=False)


def strike_expiry_table(contracts: pd.DataFrame, value: str = "gex") -> pd.DataFrame:
    """A strike × expiry table of ``value`` (any exposure column) for heatmaps; 0 where nothing is listed.

    Index: strike ascending; columns: expiration ascending.
    """
    if value not in contracts.columns:
        raise KeyError(f"{value!r} is not an exposure column; use one of {list(EXPOSURE_COLUMNS[8:])}")
    return contracts.pivot_table(index="strike", columns="expiration", values=value, aggfunc="sum",
                                 fill_value=0.0).sort_index()


# --------------------------------------------------------------------------------------------------
# the gamma profile


@dataclasses.dataclass(frozen=True, eq=False)
class _ProfileKernel:
    """Net GEX as a function of a hypothetical spot ``x`` with IV and T held per contract:

    ``GEX(x) = x · Σ_i w_i · exp(-½ (a_i ln x + b_i)²)``, with ``a = 1/(σ√T)``,
    ``b = (-ln K + (r - q + σ²/2) T)/(σ√T)``, ``w = sign · OI · 100 · 0.01 · e^{-qT}/(σ√T √(2π))``.

    This is ``Σ sign · OI · 100 · x² · 0.01 · BSM gamma(x)`` rewritten so one grid pass costs one ``exp``
    per (contract, level) element.
    """

    a: np.ndarray
    b: np.ndarray
    w: np.ndarray  # shape (n, 2): call weights, put weights

    @classmethod
    def build(cls, K, T, sigma, oi, is_call, sign, r, q) -> _ProfileKernel:
        ok = np.isfinite(sigma) & (sigma > 0) & np.isfinite(T) & (T > 0) & (oi > 0)
        K, T, sigma, oi, is_call, sign = (x[ok] for x in (K, T, sigma, oi, is_call, sign))
        sst = sigma * np.sqrt(T)
        a = 1.0 / sst
        b = (-np.log(K) + (r - q + 0.5 * sigma * sigma) * T) / sst
        w = sign * oi * CONTRACT_MULTIPLIER * ONE_PERCENT * np.exp(-q * T) / (sst * SQRT_2PI)
        W = np.zeros((len(w), 2))
        W[is_call, 0] = w[is_call]
        W[~is_call, 1] = w[~is_call]
        return cls(a=a, b=b, w=W)

    def evaluate(self, levels: np.ndarray, chunk_elements: int = 1 << 19) -> np.ndarray:
        """(call, put) GEX at each level: array of shape (len(levels), 2)."""
        levels = np.asarray(levels, dtype=float)
        out = np.empty((len(levels), 2))
        n = max(len(self.a), 1)
        step = max(1, chunk_elements // n)
        log_levels = np.log(levels)
        for start in range(0, len(levels), step):
            x = log_levels[start:start + step]
            d = np.multiply.outer(x, self.a)
            d += self.b
            np.square(d, out=d)
            d *= -0.5
            np.exp(d, out=d)
            out[start:start + step] = d @ self.w
        return out * levels[:, None]

    def net(self, level: float) -> float:
        return float(self.evaluate(np.array([level])).sum())


@dataclasses.dataclass(frozen=True, eq=False)
class GammaProfile:
    """Net GEX re-priced over a grid of hypothetical spot levels (IV and T held per contract).

    Attributes
    ----------
    levels : ndarray
        Hypothetical spot levels, ascending.
    call_gex, put_gex, net_gex : ndarray
        Exposure at each level, $ per 1% move.
    spot : float
        The snapshot's spot.
    """

    levels: np.ndarray
    call_gex: np.ndarray
    put_gex: np.ndarray
    net_gex: np.ndarray
    spot: float
    _kernel: _ProfileKernel = dataclasses.field(repr=False)

    def at(self, level: float) -> float:
        """Net GEX at any level (exact, not interpolated)."""
        return self._kernel.net(level)

    def to_frame(self) -> pd.DataFrame:
        """Columns ``level, call_gex, put_gex, net_gex``."""
        return pd.DataFrame({"level": self.levels, "call_gex": self.call_gex, "put_gex": self.put_gex,
                             "net_gex": self.net_gex})


def _profile_inputs(snapshot: ChainSnapshot, config: GexConfig, T: np.ndarray | None):
    c = snapshot.contracts
    T = time_to_expiry(snapshot, config) if T is None else T
    exp_dates = c["expiration"].to_numpy().astype("datetime64[D]")
    live = exp_dates >= weekday_count_start(snapshot) if config.day_count == "weekdays" else T > 0
    keep = live & config.expiries.mask(c["expiration"], snapshot.snapshot_date)
    is_call = (c["right"] == "C").to_numpy()
    sign = np.where(is_call, config.dealer_sign[0], config.dealer_sign[1])
    return (c["strike"].to_numpy()[keep], T[keep], c["iv"].to_numpy()[keep],
            c["open_interest"].to_numpy()[keep], is_call[keep], sign[keep])


def gamma_profile(snapshot: ChainSnapshot, config: GexConfig | None = None,
                  levels: Sequence[float] | np.ndarray | None = None, *,
                  T: np.ndarray | None = None) -> GammaProfile:
    """Net GEX at each hypothetical spot level, gamma recomputed from each contract's IV.

    Parameters
    ----------
    snapshot : ChainSnapshot
    config : GexConfig
        ``rate``, ``div_yield``, the day count, the expiry filter and the grid come from here.
    levels : array-like, optional
        Spot levels to use instead of the config's grid.
    T : ndarray, optional
        :func:`time_to_expiry`'s result, when the caller already has it.

    Notes
    -----
    Contracts without IV contribute 0 (they are reported by :func:`exposures`). At ``level == spot``
    with ``gamma_source="model"`` the profile equals the total net GEX of :func:`exposures`.
    """
    config = config or GexConfig()
    K, T, iv, oi, is_call, sign = _profile_inputs(snapshot, config, T)
    kernel = _ProfileKernel.build(K, T, iv, oi, is_call, sign, config.rate, config.div_yield)
    if levels is None:
        levels = np.linspace(config.grid_low * snapshot.spot, config.grid_high * snapshot.spot, config.grid_points)
    levels = np.asarray(levels, dtype=float)
    if levels.ndim != 1 or len(levels) < 2 or not np.all(np.isfinite(levels)) or np.any(levels <= 0):
        raise GexConfigError("profile levels must be at least two positive finite numbers")
    if np.any(np.diff(levels) <= 0):
        raise GexConfigError("profile levels must be strictly ascending")
    vals = kernel.evaluate(levels)
    return GammaProfile(levels=levels, call_gex=vals[:, 0], put_gex=vals[:, 1], net_gex=vals.sum(axis=1),
                        spot=snapshot.spot, _kernel=kernel)


@dataclasses.dataclass(frozen=True)
class ZeroGamma:
    """Where the gamma profile changes sign.

    Attributes
    ----------
    crossings : tuple of float
        Every sign change inside the grid, ascending, each refined by Brent's method on the exact
        profile (``root``) — or by linear interpolation between the grid points (``linear``).
    nearest : float or None
        The crossing nearest spot.
    first : float or None
        The lowest crossing.
    method : str
        ``"root"`` or ``"linear"``.
    """

    crossings: tuple[float, ...]
    nearest: float | None
    first: float | None
    method: str


def zero_gamma(profile: GammaProfile, *, method: Literal["root", "linear"] = "root",
               xtol: float = 1e-9) -> ZeroGamma:
    """Every zero crossing of the profile (see :class:`ZeroGamma`).

    ``xtol`` is the root's tolerance relative to spot (1e-9: a few millionths of an SPX point). A grid
    point where the profile is exactly 0 counts as a crossing when the sign differs on its two sides. No crossing → ``crossings == ()`` and ``nearest``/``first`` None (never NaN).
    """
    y = profile.net_gex
    x = profile.levels
    s = np.sign(y)
    crossings: list[float] = []
    # Exact zeros at grid points with a sign change across them.
    for i in np.flatnonzero(s == 0):
        left = s[:i][s[:i] != 0]
        right = s[i + 1:][s[i + 1:] != 0]
        if len(left) and len(right) and left[-1] != right[0]:
            crossings.append(float(x[i]))
    for i in np.flatnonzero(s[:-1] * s[1:] < 0):
        x0, x1, y0, y1 = x[i], x[i + 1], y[i], y[i + 1]
        if method == "linear":
            # Perfiliev: posStrike - (posStrike - negStrike) * posGamma / (posGamma - negGamma)
            crossings.append(float(x1 - (x1 - x0) * y1 / (y1 - y0)))
            continue
        # The exact function sums in another order than the grid pass; when a grid value sits within
        # rounding of zero the two can disagree in sign. Then the root is that grid point, to rounding.
        f0, f1 = profile.at(x0), profile.at(x1)
        if f0 == 0 or f1 == 0 or np.sign(f0) == np.sign(f1):
            crossings.append(float(x0 if abs(f0) <= abs(f1) else x1))
        else:
            crossings.append(float(brentq(profile.at, x0, x1, xtol=xtol * profile.spot, rtol=1e-12)))
    crossings.sort()
    if not crossings:
        return ZeroGamma((), None, None, method)
    nearest = min(crossings, key=lambda z: abs(z - profile.spot))
    return ZeroGamma(tuple(crossings), nearest, crossings[0], method)


def cumulative_gex_flip(strikes: pd.DataFrame, spot: float, *, low: float = 0.0,
                        high: float = math.inf) -> float | None:
    """The strike nearest spot where the running sum of net GEX by strike (low → high) changes sign,
    linearly interpolated between strikes, among sign changes inside ``[low, high]`` (:func:`analyze`
    uses the profile grid's range).

    This is NOT zero gamma (which re-prices the whole chain at each hypothetical spot); it is the
    "cumulative GEX flip" some dashboards plot, offered under its own name. ``strikes`` is
    :func:`by_strike`'s output. None when the running sum never changes sign.
    """
    cum = strikes["net_gex"].cumsum().to_numpy()
    k = strikes.index.to_numpy(dtype=float)
    idx = np.flatnonzero(np.sign(cum[:-1]) * np.sign(cum[1:]) < 0)
    if len(idx) == 0:
        return None
    flips = k[idx] + (k[idx + 1] - k[idx]) * (-cum[idx]) / (cum[idx + 1] - cum[idx])
    flips = flips[(flips >= low) & (flips <= high)]
    if len(flips) == 0:
        return None
    return float(flips[np.argmin(np.abs(flips - spot))])


# --------------------------------------------------------------------------------------------------
# walls, max pain, pin risk


@dataclasses.dataclass(frozen=True)
class Walls:
    """Wall-like strikes of one snapshot, from :func:`by_strike`'s table (every counted expiry summed).

    All in underlying points; a level that does not exist is None, never NaN. ``d(K) = |call GEX(K)| −
    |put GEX(K)|`` is the strike's net call gamma exposure ($ per 1% move): calls and puts of one (strike,
    expiry) have the same BSM gamma, so ``d`` is ``gamma × (call OI − put OI)`` summed over expiries, and
    positions holding both sides in equal size (box spreads, conversions, collars' legs) cancel in it.

    Attributes
    ----------
    call_wall : float or None
        **The call wall** (:attr:`KeyLevels.call_wall`): among strikes at or above spot, the one with the
        largest positive ``d`` — where call gamma most outweighs put gamma (resistance). None when no
        strike at or above spot is call-dominated.
    put_wall : float or None
        **The put wall** (:attr:`KeyLevels.put_wall`): among strikes at or below spot, the one with the
        largest positive ``−d`` — where put gamma most outweighs call gamma (support). None when no
        strike at or below spot is put-dominated.
    net_gex_max_strike, net_gex_min_strike : float or None
        The strikes of the largest and the smallest net GEX (``net_gex`` of :func:`by_strike`, dealer
        signs applied), on either side of spot; None when no strike's net GEX is > 0 (< 0). With the
        default signs this is the published "largest net call / put gamma" reading without the side
        restriction: when spot has run through the wall, ``net_gex_max_strike < spot`` says so.
    call_gex_max_strike, put_gex_max_strike : float or None
        The strikes of the largest |call GEX| and |put GEX|, each side alone (what ``call_wall`` /
        ``put_wall`` meant up to 0.1.0). At round strikes with large paired call and put open interest both
        land on the same strike, even far in the money; kept to measure concentration, not as
        support/resistance.
    """

    call_wall: float | None
    put_wall: float | None
    net_gex_max_strike: float | None
    net_gex_min_strike: float | None
    call_gex_max_strike: float | None
    put_gex_max_strike: float | None

    def to_dict(self) -> dict:
        """JSON-ready (:func:`~research_lib.formatting.jsonable`): every field, floats or None."""
        return jsonable(dataclasses.asdict(self))


def _argmax_strike(values: pd.Series) -> float | None:
    """The strike (index) of the largest positive value (the lowest strike among ties); None if none > 0."""
    if values.empty:
        return None
    best = values.to_numpy(dtype=float)
    if not np.nanmax(best, initial=-math.inf) > 0:
        return None
    return float(values.index[int(np.nanargmax(best))])


def walls(strikes: pd.DataFrame, spot: float) -> Walls:
    """The call wall, the put wall and the related strikes (see :class:`Walls` for each definition).

    Parameters
    ----------
    strikes : DataFrame
        :func:`by_strike`'s output (index ``strike`` ascending; ``call_gex``, ``put_gex``, ``net_gex`` in
        $ per 1% move).
    spot : float
        The underlying's price, points: the call wall is sought at or above it, the put wall at or below.

    Returns
    -------
    Walls
        None for a level with no qualifying strike (an empty table, no call-dominated strike above spot...).

    Notes
    -----
    SpotGamma defines the Call Wall as the strike with the largest net call gamma and the Put Wall as the
    one with the largest net put gamma; the open-source dashboards that compute them mostly take the
    largest positive net GEX at or above spot and the most negative at or below it. This function takes
    that net quantity with the side restriction, so a wall is always on the side a trader reads it from
    and the two can never be the same strike; :attr:`Walls.net_gex_max_strike` /
    :attr:`Walls.net_gex_min_strike` keep the unrestricted reading.
    """
    if not (isinstance(spot, int | float) and math.isfinite(spot) and spot > 0):
        raise GexConfigError(f"walls: spot must be a positive finite price, got {spot!r}")
    call = strikes["call_gex"].abs()
    put = strikes["put_gex"].abs()
    dominance = call - put
    k = strikes.index.to_numpy(dtype=float)
    return Walls(
        call_wall=_argmax_strike(dominance[k >= spot]),
        put_wall=_argmax_strike(-dominance[k <= spot]),
        net_gex_max_strike=_argmax_strike(strikes["net_gex"]),
        net_gex_min_strike=_argmax_strike(-strikes["net_gex"]),
        call_gex_max_strike=_argmax_strike(call),
        put_gex_max_strike=_argmax_strike(put),
    )


def settled(contracts: pd.DataFrame, as_of: pd.Timestamp) -> np.ndarray:
    """Boolean mask of the contracts whose settlement moment is at or before ``as_of``.

    ``contracts`` has ``expiration`` and ``settlement`` (``"AM"``/``"PM"``); the settlement moment is the
    expiry date's 09:30 open (AM) or its session close (PM, 13:00 on an early close), as in
    :func:`time_to_expiry`. ``as_of`` is tz-aware (usually :func:`valuation_moment`).
    """
    if len(contracts) == 0:
        return np.zeros(0, dtype=bool)
    settle = cal.settlement_times(contracts["expiration"].to_numpy(), contracts["settlement"].to_numpy())
    return settle.asi8 <= pd.Timestamp(as_of).value


def max_pain(contracts: pd.DataFrame, spot: float | None = None) -> pd.DataFrame:
    """Max pain per expiry: the settlement price (among the expiry's strikes) that minimises the total
    intrinsic value paid to option holders, ``Σ_calls OI·max(P-K, 0) + Σ_puts OI·max(K-P, 0)`` × 100.

    This is the bare computation over whatever rows it is given; :func:`snapshot_max_pain` chooses the
    rows of a snapshot (every live contract with open interest, whatever its IV or gamma).

    Parameters
    ----------
    contracts : DataFrame
        Any table with ``expiration, strike, right, open_interest``. Every row counts: all roots of one
        expiry date together (SPX AM and SPXW PM), and two rows of the same (strike, expiry, right) add.
    spot : float, optional
        Breaks ties: among equal minima the strike nearest spot (else the lowest).

    Returns
    -------
    DataFrame indexed by ``expiration`` with ``max_pain`` (strike), ``payout`` ($ paid at that
    settlement), ``open_interest``. Expiries with no open interest are left out.
    """
    rows = []
    exp_all = contracts["expiration"].to_numpy()
    k_all = contracts["strike"].to_numpy(dtype=float)
    oi_all = contracts["open_interest"].to_numpy(dtype=float)
    call_all = (contracts["right"] == "C").to_numpy()
    order = np.lexsort((k_all, exp_all))
    exp_all, k_all, oi_all, call_all = exp_all[order], k_all[order], oi_all[order], call_all[order]
    bounds = np.flatnonzero(np.r_[True, exp_all[1:] != exp_all[:-1], True])
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        k, oi, is_call = k_all[lo:hi], oi_all[lo:hi], call_all[lo:hi]
        oi_total = float(oi.sum())
        if oi_total <= 0:
            continue
        candidates = np.unique(k)
        # Calls pay Σ_{K<P} OI·(P−K); puts pay Σ_{K>P} OI·(K−P): prefix sums over strikes sorted ascending.
        kc, oc = k[is_call], oi[is_call]
        kp, op = k[~is_call], oi[~is_call]
        n_c = np.searchsorted(kc, candidates, side="left")
        cum_oc = np.r_[0.0, np.cumsum(oc)]
        cum_koc = np.r_[0.0, np.cumsum(kc * oc)]
        calls = candidates * cum_oc[n_c] - cum_koc[n_c]
        n_p = np.searchsorted(kp, candidates, side="right")
        cum_op = np.r_[0.0, np.cumsum(op)]
        cum_kop = np.r_[0.0, np.cumsum(kp * op)]
        puts = (cum_kop[-1] - cum_kop[n_p]) - candidates * (cum_op[-1] - cum_op[n_p])
        total = (calls + puts) * CONTRACT_MULTIPLIER
        best = np.flatnonzero(total <= total.min() * (1 + 1e-12) + 1e-9)
        pick = best[np.argmin(np.abs(candidates[best] - spot))] if spot is not None else best[0]
        rows.append((exp_all[lo], float(candidates[pick]), float(total[pick]), oi_total))
    out = pd.DataFrame(rows, columns=["expiration", "max_pain", "payout", "open_interest"])
    return out.set_index("expiration")


def snapshot_max_pain(snapshot: ChainSnapshot, config: GexConfig | None = None, *,
                      as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """:func:`max_pain` of a snapshot from its raw contract table.

    Max pain needs only open interest, so it is independent of pricing and of the convention: every
    contract with open interest > 0 counts, with or without an IV or a vendor gamma (the exposures leave
    those out; max pain does not), SPX and SPXW rows of one expiry date together. Two rules choose the
    expiries:

    * an expiry that has settled (settlement moment at or before ``as_of``, see :func:`settled`) is
      left out — it is no longer an upcoming max-pain date. On a monthly expiry date after 09:30 the
      AM-settled SPX contracts have settled and only the PM-settled SPXW ones count;
    * ``config.expiries`` (:class:`ExpiryFilter`: ``max_dte``, ``exclude_0dte``, ``dates``) restricts
      which expiries are listed, as it does for every other level; the presets filter nothing.

    Parameters
    ----------
    snapshot : ChainSnapshot
    config : GexConfig, optional
        Only its expiry filter and, when ``as_of`` is None, its valuation moment are used.
    as_of : Timestamp, optional
        Tz-aware; default :func:`valuation_moment` of ``config`` (the quote time in a session, else the
        last session close).

    Returns
    -------
    DataFrame indexed by ``expiration``: ``max_pain``, ``payout``, ``open_interest`` (see :func:`max_pain`);
    ties go to the strike nearest spot.
    """
    config = config or GexConfig()
    as_of = valuation_moment(snapshot, config) if as_of is None else as_of
    c = snapshot.contracts
    keep = ((c["open_interest"] > 0).to_numpy() & ~settled(c, as_of)
            & config.expiries.mask(c["expiration"], snapshot.snapshot_date))
    return max_pain(c.loc[keep, ["expiration", "strike", "right", "open_interest"]], spot=snapshot.spot)


def pin_risk(contracts: pd.DataFrame, snapshot: ChainSnapshot, *, next_n: int = 5,
             window_pct: float = 5.0, max_pain_table: pd.DataFrame | None = None,
             as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """A pin-risk score for each of the next ``next_n`` expiries that have not settled.

    Pinning comes from dealers' gamma hedging concentrated at a strike near spot, so the components are
    gamma-weighted. For each expiry, among strikes within ``window_pct`` % of spot:

    * ``pin_strike`` — the strike with the largest |GEX| of the expiry (calls + puts in magnitude);
    * ``distance_pct`` — ``(pin_strike − spot) / spot × 100``;
    * ``expected_move`` — ``spot × σ_atm × √T`` in points to settlement, σ_atm the OI-weighted IV of
      the listed strikes either side of spot;
    * ``z`` — ``|pin_strike − spot| / expected_move`` (distance in expected moves);
    * ``concentration`` — |GEX| at the pin strike / |GEX| of all strikes in the window (0–1);
    * ``pin_open_interest`` — contracts open at the pin strike (calls + puts);
    * ``gamma_share`` — the expiry's share of the live contracts' gross |GEX| (0–1);
    * ``max_pain`` — the expiry's max-pain strike;
    * ``score`` — ``100 × exp(−z²/2) × concentration``: 100 means all the expiry's nearby gamma sits on
      one strike exactly at spot; a strike one expected move away scores at most 61, two at most 14.

    A contract whose settlement moment is at or before ``as_of`` (:func:`settled`) has no pin risk and
    is left out, in every convention — the ``perfiliev`` preset keeps a same-day expiry in its totals
    (floored at one weekday) after it has settled, but nothing is left to pin. An expiry none of whose
    contracts is live is not listed.

    ``contracts`` is :func:`exposures`' table; ``max_pain_table`` is :func:`max_pain`'s (by default
    :func:`snapshot_max_pain` of the snapshot at ``as_of``); ``as_of`` is tz-aware, by default the
    snapshot's market moment (:func:`research_lib.calendar.market_moment` of its quote time; :func:`analyze`
    passes :func:`valuation_moment`). Returns a DataFrame indexed by ``expiration``; an expiry with no
    exposure in the window is left out.
    """
    S = snapshot.spot
    as_of = cal.market_moment(snapshot.quote_time) if as_of is None else as_of
    contracts = contracts[~settled(contracts, as_of)]
    gross = contracts["gex"].abs().sum()
    mp = snapshot_max_pain(snapshot, as_of=as_of) if max_pain_table is None else max_pain_table
    rows = []
    for exp in sorted(contracts["expiration"].unique())[:next_n]:
        grp = contracts[contracts["expiration"] == exp]
        near = grp[(grp["strike"] - S).abs() <= window_pct / 100.0 * S]
        g_by_k = near["gex"].abs().groupby(near["strike"]).sum()
        if g_by_k.empty or g_by_k.sum() <= 0:
            continue
        pin_k = float(g_by_k.idxmax())
        conc = float(g_by_k.max() / g_by_k.sum())
        T = float(grp["T"].max())
        ks = np.sort(grp["strike"].unique())
        lo = ks[ks <= S].max() if (ks <= S).any() else ks.min()
        hi = ks[ks >= S].min() if (ks >= S).any() else ks.max()
        atm = grp[grp["strike"].isin([lo, hi]) & np.isfinite(grp["iv"])]
        sigma = float(np.average(atm["iv"], weights=atm["open_interest"] + 1.0)) if len(atm) else math.nan
        em = S * sigma * math.sqrt(max(T, 0.0))
        z = abs(pin_k - S) / em if math.isfinite(em) and em > 0 else math.inf
        rows.append({
            "expiration": exp, "pin_strike": pin_k, "distance_pct": (pin_k - S) / S * 100.0,
            "expected_move": em, "z": z, "concentration": conc,
            "pin_open_interest": float(grp.loc[grp["strike"] == pin_k, "open_interest"].sum()),
            "gamma_share": float(grp["gex"].abs().sum() / gross) if gross > 0 else 0.0,
            "max_pain": float(mp.at[exp, "max_pain"]) if exp in mp.index else None,
            "score": 100.0 * math.exp(-0.5 * z * z) * conc if math.isfinite(z) else 0.0,
        })
    cols = ["pin_strike", "distance_pct", "expected_move", "z", "concentration", "pin_open_interest",
            "gamma_share", "max_pain", "score"]
    return pd.DataFrame(rows, columns=["expiration", *cols]).set_index("expiration")


# --------------------------------------------------------------------------------------------------
# the summary


@dataclasses.dataclass(frozen=True)
class KeyLevels:
    """Every key level of one snapshot under one convention.

    GEX figures are $ per 1% move; vanna $ delta per vol point; charm $ delta per calendar day; delta
    $ delta. Levels are in underlying points; a level that does not exist is None, never NaN.

    ``call_wall`` / ``put_wall`` are :attr:`Walls.call_wall` / :attr:`Walls.put_wall`: the strike at or
    above spot where call gamma exposure most outweighs put gamma exposure, and the strike at or below
    spot where put gamma most outweighs call gamma (the other wall-like strikes are in
    :attr:`GexAnalysis.walls`). ``max_pain`` maps each expiry that has not settled at the valuation
    moment to its max-pain strike, computed from every contract with open interest whatever the
    convention (:func:`snapshot_max_pain`).
    """

    underlying: str
    date: dt.date
    quote_time: pd.Timestamp
    spot: float
    convention: str
    net_gex: float
    call_gex: float
    put_gex: float
    zero_gamma: float | None
    zero_gamma_crossings: tuple[float, ...]
    cumulative_flip: float | None
    call_wall: float | None
    put_wall: float | None
    max_pain: Mapping[dt.date, float]
    net_vanna: float
    net_charm: float
    net_delta: float
    n_contracts: int
    n_expired: int
    n_filtered: int
    n_unpriced: int
    source: str
    modelled: bool
    rate: float = 0.0
    div_yield: float = 0.0
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready (:func:`~research_lib.formatting.jsonable`): dates as ISO strings, numbers as floats, NaN
        as None."""
        return jsonable({
            "underlying": self.underlying,
            "date": self.date,
            "quote_time": self.quote_time,
            "spot": self.spot,
            "convention": self.convention,
            "net_gex": self.net_gex,
            "call_gex": self.call_gex,
            "put_gex": self.put_gex,
            "zero_gamma": self.zero_gamma,
            "zero_gamma_crossings": self.zero_gamma_crossings,
            "cumulative_flip": self.cumulative_flip,
            "call_wall": self.call_wall,
            "put_wall": self.put_wall,
            "max_pain": self.max_pain,
            "net_vanna": self.net_vanna,
            "net_charm": self.net_charm,
            "net_delta": self.net_delta,
            "n_contracts": self.n_contracts,
            "n_expired": self.n_expired,
            "n_filtered": self.n_filtered,
            "n_unpriced": self.n_unpriced,
            "source": self.source,
            "modelled": self.modelled,
            "rate": self.rate,
            "div_yield": self.div_yield,
            "warnings": self.warnings,
        })


@dataclasses.dataclass(frozen=True, eq=False)
class GexAnalysis:
    """Everything :func:`analyze` computes for one snapshot.

    Attributes
    ----------
    snapshot, config
    contracts : DataFrame — :func:`exposures`
    strikes : DataFrame — :func:`by_strike`
    expiries : DataFrame — :func:`by_expiry`
    profile : GammaProfile
    zero : ZeroGamma
    walls : Walls — :func:`walls` (the call and put walls, and the related strikes)
    max_pain : DataFrame — :func:`snapshot_max_pain` (live expiries, every contract with open interest)
    pin_risk : DataFrame — :func:`pin_risk` (expiries that have not settled)
    levels : KeyLevels
    """

    snapshot: ChainSnapshot
    config: GexConfig
    contracts: pd.DataFrame
    exclusions: Exclusions
    strikes: pd.DataFrame
    expiries: pd.DataFrame
    profile: GammaProfile
    zero: ZeroGamma
    walls: Walls
    max_pain: pd.DataFrame
    pin_risk: pd.DataFrame
    levels: KeyLevels

    def heatmap_table(self, value: str = "gex") -> pd.DataFrame:
        """:func:`strike_expiry_table` of this analysis."""
        return strike_expiry_table(self.contracts, value)


def analyze(snapshot: ChainSnapshot, config: GexConfig | None = None) -> GexAnalysis:
    """Exposures, profile, zero gamma, walls, max pain, pin risk and the :class:`KeyLevels` summary.

    Raises
    ------
    NoExposureError
        Every contract expired, was filtered out, or could not be priced; or every contract left has
        open interest 0 (no exposure: the levels would all be empty).
    """
    config = config or GexConfig()
    T = time_to_expiry(snapshot, config)
    contracts, excl = exposures(snapshot, config, T=T)
    if contracts.empty:
        raise NoExposureError(
            f"{snapshot.source}: no contract left to compute exposures from "
            f"({excl.expired} expired, {excl.filtered} filtered out, {excl.unpriced} without "
            f"{'IV' if config.gamma_source == 'model' else 'vendor gamma'})")
    if not (contracts["open_interest"] > 0).any():
        raise NoExposureError(f"{snapshot.source}: nothing to compute: all {len(contracts)} contracts left have "
                              f"open interest 0")
    strikes = by_strike(contracts)
    expiries = by_expiry(contracts)
    profile = gamma_profile(snapshot, config, T=T)
    zero = zero_gamma(profile, method="linear" if config.zero_gamma_method == "first_linear" else "root")
    reported = zero.first if config.zero_gamma_method == "first_linear" else zero.nearest
    wall_levels = walls(strikes, snapshot.spot)
    as_of = valuation_moment(snapshot, config)
    mp = snapshot_max_pain(snapshot, config, as_of=as_of)
    pins = pin_risk(contracts, snapshot, max_pain_table=mp, as_of=as_of)
    is_call = contracts["right"] == "C"
    levels = KeyLevels(
        underlying=snapshot.underlying,
        date=snapshot.snapshot_date,
        quote_time=snapshot.quote_time,
        spot=snapshot.spot,
        convention=config.convention,
        net_gex=float(contracts["gex"].sum()),
        call_gex=float(contracts.loc[is_call, "gex"].sum()),
        put_gex=float(contracts.loc[~is_call, "gex"].sum()),
        zero_gamma=reported,
        zero_gamma_crossings=zero.crossings,
        cumulative_flip=cumulative_gex_flip(strikes, snapshot.spot, low=config.grid_low * snapshot.spot,
                                            high=config.grid_high * snapshot.spot),
        call_wall=wall_levels.call_wall,
        put_wall=wall_levels.put_wall,
        max_pain={pd.Timestamp(d).date(): float(k) for d, k in mp["max_pain"].items()},
        net_vanna=float(contracts["vanna_exposure"].sum()),
        net_charm=float(contracts["charm_exposure"].sum()),
        net_delta=float(contracts["delta_exposure"].sum()),
        n_contracts=len(contracts),
        n_expired=excl.expired,
        n_filtered=excl.filtered,
        n_unpriced=excl.unpriced,
        source=snapshot.source,
        modelled=snapshot.modelled,
        rate=config.rate,
        div_yield=config.div_yield,
        warnings=snapshot.warnings,
    )
    return GexAnalysis(snapshot=snapshot, config=config, contracts=contracts, exclusions=excl, strikes=strikes,
                       expiries=expiries, profile=profile, zero=zero, walls=wall_levels, max_pain=mp, pin_risk=pins,
                       levels=levels)
