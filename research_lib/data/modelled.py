"""The modelled SPX chain: the offline default when there is no market data at all.

:func:`modelled_chain` builds a :class:`~research_lib.chain.ChainSnapshot` that is shaped like a real Cboe
SPX chain — the same listings, strike ladders, smile, open-interest profile and quote widths — from a handful
of inputs (spot, date, VIX, r, q, seed). Every number in it comes from a model whose parameters were fitted
to real SPX chains by ``benchmarks/calibrate_modelled.py``; nothing in it is a market quote. The snapshot is
flagged ``modelled=True``, its source is ``"modelled:SPX"`` and its notes start with
``"MODELLED DATA: not market quotes"`` followed by every input used.

The model
---------
Listings (:func:`listed_expiries`, :func:`strike_grid`)
    NYSE calendar (:mod:`research_lib.calendar`). SPXW PM-settled dailies for the next
    :data:`LISTING.daily_sessions` sessions (the 0DTE expiry while the quote is before its close), SPXW
    Friday weeklies to :data:`LISTING.weekly_days` days, SPXW end-of-month expiries (monthly to
    ``eom_monthly_days``, quarter ends to ``eom_quarterly_days``), SPXW PM expiries on the monthly dates to
    ``pm_monthly_days``, SPX AM-settled monthlies (third Friday, the Thursday before when that Friday is a
    holiday) for 13 months, then March/June/September/December quarterlies, June/December, and December
    LEAPS to six years. SPXW Friday weeklies start in 2005, Monday/Wednesday expiries in 2016 and
    Tuesday/Thursday in 2022 (:data:`SPXW_WEEKDAY_SINCE`); how far out each kind is listed changes by era
    (:data:`LISTING_ERAS`, :func:`listing_rules`: the 2011 sample's one-week weeklies and no end-of-month,
    PM monthlies from 2011-02-28, end-of-month from 2014-07-07, the 2019 and 2022 ladders), and a Monday
    holiday moves that Monday's expiry to the Tuesday. Coarser strikes at low index levels are not modelled:
    the number of strikes grows with the index level (5-point spacing near spot).
    Strikes: bands of 5/10/25/100/200-point spacing, the finest near spot, each coarser one reaching further
    in log-moneyness (further on the put side); the band set depends on the kind (narrow for dailies and
    weeklies, wide for AM monthlies, near PM monthlies and quarter ends); the finest spacing coarsens with
    tenor (5 under 3 months, then 10, 25 beyond 6 months, 50 beyond 13, 100 beyond 19) and for dailies
    listed more than 10 / 24 days out; the range widens with tenor on the call side. Counts per expiry and
    per day match the real files within about 10-20% (``benchmarks/calibrate_modelled.py`` prints them).
Implied volatility (:func:`implied_vol_surface`)
    SSVI (Gatheral & Jacquier 2014) with a power-law φ(θ) = η / (θ^γ (1+θ)^(1-γ)), in log-moneyness
    k = ln(K/F), F = S·e^((r-q)T). The ATM variance term structure is
    v(T) = v∞ + (v0 - v∞)(1 - e^(-κT))/(κT), pinned to the 30-day ATM vol σ30 = c0 + c1·VIX/100, with
    σ∞ = a + b·σ30. η is bounded by :func:`eta_max` (Gatheral & Jacquier, Theorem 4.2), so the surface has
    no butterfly arbitrage; total ATM variance increases with T, so no calendar arbitrage either.
Open interest (:data:`OPEN_INTEREST`)
    Per expiry, a total from a quasi-Poisson regression of the expiry's OI on its kind (piecewise linear in
    days to expiry), quarter-end and December flags; a call share by kind. Across strikes, per kind and
    right, a four-component Gaussian mixture in log-moneyness ln(K/F) whose components are measured in
    expected moves ``σ30·√(T + τ_j)`` with their own memory τ_j (days for positions traded near expiry,
    years for legacy ones), integrated over each strike's cell; then round strikes (multiples of 1000 > 500,
    100 > 50 > 25 > 10 > 5, per kind) take OI from their plain neighbours within 500-point blocks that keep
    the smooth profile's mass; lognormal noise from ``seed``; whole contracts. Puts sit mostly below spot,
    calls above, monthlies carry most of it: total ~22 M contracts on a 2026-like day.
Quotes and greeks
    Theoretical value: BSM at the model IV with ``rate``/``div_yield``. Bid/ask: around it, with a width
    fitted as a quadratic in log(price) and log(T), on Cboe's tick (0.05 below 3.00, else 0.10). Volume:
    the expiry's OI × a turnover fitted per kind and days to expiry on the csv days' session volumes (high
    for 0DTE, low for LEAPS), spread over strikes by OI × a near-the-money weight, Poisson-sampled. ``iv``, ``delta`` and ``gamma`` are filled from the model and rounded to 4 decimals
    like Cboe's (a gamma that rounds to 0 becomes NaN at validation, as Cboe's do), so both the ``model``
    and the vendor-gamma (``perfiliev``) GEX conventions work.

How close it is
---------------
``benchmarks/calibrate_modelled.py`` rebuilds each clean day of the Cboe EOD archive (with a VIX close) with the
real spot, quote time and VIX (seed 0) and compares (model / real): contracts 1.09 (0.95-1.17; the archive
keeps only contracts with OI > 0), expiries 0.96 (0.93-0.98), total OI 0.98 (0.71-1.02; the low end is a
day whose archive still lists the just-settled AM monthly), call GEX 0.97 (0.84-1.14), put GEX 0.90
(0.59-1.25); 30-day ATM IV -0.2 vol points on average (at most 0.7 off), 25-delta skew +0.1 (at most 2.1).
Net GEX is 13..86 $bn against a real -61..108 (medians 36 and 16) and zero gamma 0.970-0.997 of spot against
0.969-1.017: the model shows typical, mildly long-gamma positioning; days after a sell-off, when real
dealers are short gamma above spot, are not reproduced (the seed moves net GEX by tens of $bn either way).
Generating a chain takes about 0.3 s.

Defaults (documented in the snapshot's notes)
---------------------------------------------
* ``date`` None → the last date of the offline S&P 500 history (:func:`offline_spot_history`: the
  ``spx_daily_*.csv`` file that :func:`research_lib.market.load_index_daily` finds in
  ``$RESEARCH_LIB_MARKET_DATA``, ``data/market`` or ``../shared/data/market``; on a fresh clone with no data
  the real S&P 500 closes 1999-01-04..2018-12-31 bundled with the ``arch`` package).
* ``quote_time`` None → the close of ``date``'s session (16:00 ET, 13:00 on an early close).
* ``spot`` None → the last close in that history at or before the quote time (so an intraday quote uses
  the previous close: no look-ahead). A date after the history's end raises :class:`ModelledChainError`
  asking for ``spot``.
* ``vix`` None → :data:`DEFAULT_VIX` (17.0, a typical level: the median VIX close 1990–2026 is 17.6). It is
  not looked up for the date: pass the day's VIX for a like-for-like chain.

Example
-------
>>> from research_lib.data.modelled import modelled_chain
>>> snap = modelled_chain(spot=5000.0, date="2024-03-08", vix=14.0)   # doctest: +SKIP
>>> snap.modelled, snap.source                                         # doctest: +SKIP
(True, 'modelled:SPX')
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from research_lib import calendar as cal
from research_lib.core import pricing
from research_lib.core.chain import NY, QUOTE_TIME_RANGE, ChainSnapshot
from research_lib.data.market import MarketDataNotFoundError, load_index_daily
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    ModelledChainError as ModelledChainError,
)

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_VIX",
    "EXPIRY_KINDS",
    "LISTING",
    "LISTING_ERAS",
    "OPEN_INTEREST",
    "QUOTES",
    "SURFACE",
    "ListingRules",
    "ModelParams",
    "ModelledChainError",
    "OpenInterestParams",
    "QuoteParams",
    "SmileSummary",
    "SurfaceParams",
    "atm_vol",
    "classify_expiries",
    "eta_max",
    "implied_vol_surface",
    "listed_expiries",
    "listing_rules",
    "modelled_chain",
    "offline_spot_history",
    "quotes_around",
    "round_class",
    "smile_summary",
    "strike_grid",
]

MODELLED_NOTE = "MODELLED DATA: not market quotes"
SOURCE = "modelled:SPX"
#: VIX used when none is given: a typical level (median VIX close 1990-2026: 17.6; June-July 2026: 16.7).
DEFAULT_VIX = 17.0
SUPPORTED_UNDERLYINGS = ("SPX",)


# ==================================================================================================
# Fitted parameters
#
# All fitted by benchmarks/calibrate_modelled.py on 2026-11-22 against ../shared/data/chains (the script's
# docstring names the files): every clean day of the Cboe EOD archive (contracts with OI > 0) that has a
# VIX close in ../shared/data/market/cboe_VIX_History.csv, and the five Cboe quotedata snapshots.
# Re-run that script to refit; it prints these blocks and the fit errors quoted below.
# ==================================================================================================


def eta_max(rho: float, gamma: float) -> float:
    """Largest SSVI η free of butterfly arbitrage for the power-law φ(θ) = η θ^-γ (1+θ)^(γ-1).

    Gatheral & Jacquier (2014), Theorem 4.2: no butterfly arbitrage when θφ(θ)(1+|ρ|) < 4 and
    θφ(θ)²(1+|ρ|) ≤ 4 for every θ > 0. Here sup θφ = η and sup θφ² = η² (1-2γ)^(1-2γ) (2-2γ)^(2γ-2)
    (reached at θ = 1-2γ), for 0 < γ ≤ 1/2.
    """
    a = 1.0 - 2.0 * gamma
    c = (a ** a if a > 0 else 1.0) * (2.0 - 2.0 * gamma) ** (2.0 * gamma - 2.0)
    return min(4.0 / (1.0 + abs(rho)), math.sqrt(4.0 / ((1.0 + abs(rho)) * c)))


@dataclasses.dataclass(frozen=True)
class SurfaceParams:
    """Implied-volatility surface (see the module docstring).

    Attributes
    ----------
    vix_c0, vix_c1 : float
        30-day ATM vol from the VIX: ``σ30 = vix_c0 + vix_c1 · VIX/100`` (decimal; floored at 1%).
    long_a, long_b : float
        Long-run ATM vol ``σ∞ = long_a + long_b · σ30``.
    kappa : float
        Speed of the ATM variance term structure, per year.
    rho : float
        SSVI correlation (skew direction and size), in (-1, 1).
    eta : float
        SSVI η; at most :func:`eta_max` ``(rho, gamma)`` (checked), so no butterfly arbitrage.
    gamma : float
        Power of φ(θ), in (0, 0.5].
    v0_floor : float
        The instantaneous ATM variance is floored at ``(v0_floor · σ30)²`` (binds only at very low VIX, where
        the 30-day pin is then slightly exceeded); it also keeps total ATM variance increasing in T (no
        calendar arbitrage).
    """

    vix_c0: float
    vix_c1: float
    long_a: float
    long_b: float
    kappa: float
    rho: float
    eta: float
    gamma: float
    v0_floor: float = 0.5

    def __post_init__(self):
        if not (-1.0 < self.rho < 1.0 and 0.0 < self.gamma <= 0.5 and self.kappa > 0 and self.eta > 0):
            raise ModelledChainError(f"impossible surface parameters {self}")
        if self.eta > eta_max(self.rho, self.gamma):
            raise ModelledChainError(f"SurfaceParams.eta={self.eta} exceeds {eta_max(self.rho, self.gamma):.4f}, "
                                     "the butterfly-arbitrage bound for this rho and gamma")


#: Fitted 2026-11-22 (see the block comment above). Least squares on 398,965 out-of-the-money IVs (|delta| >
#: 0.05, T > 1.5 days) of 2,889 expiries, recomputed from mid quotes at each expiry's put-call-parity forward,
#: each expiry weighted equally, given each day's own 30-day ATM vol; η kept within :func:`eta_max`.
#: Fit RMSE 0.82 vol points (mean error +0.09): 0.72 on the 2026 archive, 1.1-2.1 on the csv days; by tenor
#: 3.0 (<= 3 days), 1.6 (3-7), 1.0 (1-2 weeks), 0.7 (2 weeks-2 months), 0.75 (2-4.5 months), 0.65 beyond.
#: VIX -> σ30: RMSE 0.40 vol points over the 31 days with a VIX close (σ30 / VIX ranges 0.79-0.92).
SURFACE = SurfaceParams(
    vix_c0=-0.029,
    vix_c1=0.9833,
    long_a=0.14,
    long_b=0.3041,
    kappa=6.7816,
    rho=-0.5846,
    eta=1.5507,
    gamma=0.4156,
    v0_floor=0.5,
)

#: Expiry kinds of :func:`listed_expiries` / :func:`classify_expiries`, in the order the OI model indexes them.
EXPIRY_KINDS = ("daily", "weekly", "end_of_month", "monthly_pm", "monthly_am")


@dataclasses.dataclass(frozen=True)
class OpenInterestParams:
    """Open-interest model (see the module docstring). Kinds are indexed as :data:`EXPIRY_KINDS`.

    Attributes
    ----------
    total_nodes : dict
        Per kind ``(dte_nodes, log_totals)``: log of the expiry's total OI (contracts) at those calendar days to
        expiry, linearly interpolated in between and held flat beyond the ends.
    quarter_end : dict
        Added to ``log(total)`` for March/June/September/December expiries, per kind.
    december_am : float
        Added for December AM expiries (on top of ``quarter_end``).
    call_share : dict
        Calls' share of an expiry's OI, per kind.
    mixture : dict
        Per kind, per right (``"C"``, ``"P"``): ``(weights, means, sds, tau_days)`` of a Gaussian mixture in
        log-moneyness m = ln(K/F) where component j has mean ``means[j]·a_j`` and SD ``sds[j]·a_j``,
        ``a_j = σ30·√(T + tau_days[j]/365)``: each population of open interest is measured in expected moves
        over the tenor plus its own memory (short for positions traded near expiry, years for legacy ones).
    round_multiplier : dict
        Per kind, the OI multiplier of a strike by its roundness class (:func:`round_class`), relative to
        plain (5/10-point) strikes; applied within 500-point blocks that keep the smooth profile's mass.
    noise_sd : float
        SD of the lognormal noise on each contract's OI (renormalised so each expiry keeps its total).
    turnover, turnover_slope : dict, float
        Volume / OI of an expiry ``= exp(turnover[kind] + turnover_slope·log(1 + dte))``.
    """

    total_nodes: dict
    quarter_end: dict
    december_am: float
    call_share: dict
    mixture: dict
    round_multiplier: dict
    noise_sd: float
    turnover: dict
    turnover_slope: float


#: Fitted 2026-11-22 (see the block comment above) on the archive days: expiry totals by a quasi-Poisson
#: GLM on 2,686 (day, expiry) totals (log residual SD 0.81; summed totals match: 22.4 M a day); call shares
#: per kind; mixtures by maximum likelihood on 40,000 OI-weighted contracts per kind and right; round-strike
#: multipliers as OI at the strike / mean OI of the plain strikes within ±60 points (within 6% of spot); the
#: noise as the robust SD of log(OI / that local mean) for plain strikes (0.99; plain SD 1.17). Volume
#: turnover on the 4 csv days with a session's volume (203 expiries, residual SD 0.93).
OPEN_INTEREST = OpenInterestParams(
    total_nodes={
        "daily": ((1, 3, 7, 14, 21, 30, 45), (11.954, 11.98, 11.264, 10.491, 9.971, 8.976, 6.189)),
        "weekly": ((1, 7, 14, 30, 60), (13.3, 12.836, 12.578, 12.436, 9.97)),
        "end_of_month": ((1, 14, 30, 60, 120, 250, 400), (13.201, 12.89, 13.251, 11.276, 11.952, 11.027, 5.483)),
        "monthly_pm": ((1, 14, 30, 60, 120, 180), (13.233, 12.767, 12.562, 11.326, 9.699, 6.014)),
        "monthly_am": (
            (1, 14, 30, 60, 120, 250, 400, 800, 1400, 2200),
            (14.763, 14.875, 14.56, 14.348, 13.102, 12.716, 11.692, 10.744, 10.038, 8.965),
        ),
    },
    quarter_end={"daily": 0.0, "weekly": 0.0, "end_of_month": 1.245, "monthly_pm": 0.294, "monthly_am": 0.895},
    december_am=1.193,
    call_share={
        "daily": 0.361,
        "weekly": 0.222,
        "end_of_month": 0.575,
        "monthly_pm": 0.273,
        "monthly_am": 0.429,
    },
    mixture={
        "daily": {
            "C": (
                (0.6363, 0.3076, 0.0557, 0.0004),
                (0.3221, 0.346, 0.3808, -3.5577),
                (0.6789, 0.2347, 0.8643, 2.1249),
                (20.6, 45.0, 151.9, 508.2),
            ),
            "P": (
                (0.3334, 0.2943, 0.2408, 0.1314),
                (-0.1661, -1.3853, -3.7196, -6.5987),
                (0.2164, 0.9024, 1.4536, 3.093),
                (120.9, 17.1, 30.6, 38.9),
            ),
        },
        "weekly": {
            "C": (
                (0.5398, 0.2886, 0.1118, 0.0599),
                (0.7456, 0.6809, 1.2769, -0.5071),
                (1.5059, 0.5605, 0.2732, 0.5665),
                (5.1, 5.3, 148.3, 1331.6),
            ),
            "P": (
                (0.4849, 0.2264, 0.2128, 0.0759),
                (-0.7504, -0.9905, -3.7287, -1.1648),
                (0.1306, 0.9707, 1.2584, 0.6249),
                (1825.0, 6.2, 7.3, 1504.5),
            ),
        },
        "end_of_month": {
            "C": (
                (0.4841, 0.2901, 0.1771, 0.0487),
                (0.1605, 0.5135, 0.215, -1.1083),
                (0.2332, 0.1357, 0.0235, 1.1597),
                (1825.0, 38.9, 1679.3, 423.2),
            ),
            "P": (
                (0.4308, 0.223, 0.1984, 0.1478),
                (-1.6099, -0.4523, -4.2196, -1.0479),
                (0.6003, 0.5657, 2.2506, 0.3142),
                (204.6, 20.7, 225.8, 75.0),
            ),
        },
        "monthly_pm": {
            "C": (
                (0.562, 0.251, 0.1819, 0.0051),
                (0.3155, 0.3957, 0.0434, -5.9652),
                (0.4553, 1.6511, 0.4784, 5.5135),
                (59.1, 10.4, 1825.0, 62.5),
            ),
            "P": (
                (0.5134, 0.1957, 0.1466, 0.1444),
                (-0.6727, -0.4348, -2.0348, -0.983),
                (0.1547, 0.4517, 1.3941, 0.3213),
                (1825.0, 25.2, 1825.0, 98.6),
            ),
        },
        "monthly_am": {
            "C": (
                (0.6778, 0.2829, 0.0269, 0.0124),
                (0.0363, -1.1433, -0.9264, -5.5659),
                (1.0444, 1.7999, 0.1786, 3.8078),
                (104.1, 196.7, 5.8, 1825.0),
            ),
            "P": (
                (0.4794, 0.3072, 0.136, 0.0774),
                (-0.7249, -1.9876, -2.343, -6.0727),
                (0.7915, 1.0425, 1.0585, 2.7456),
                (99.3, 255.4, 1825.0, 1825.0),
            ),
        },
    },
    round_multiplier={
        "daily": {1000: 7.26, 500: 6.55, 100: 5.49, 50: 4.24, 25: 2.77, 10: 1.18, 5: 0.76},
        "weekly": {1000: 17.94, 500: 6.25, 100: 8.9, 50: 6.07, 25: 2.65, 10: 1.25, 5: 0.62},
        "end_of_month": {1000: 9.32, 500: 14.37, 100: 11.32, 50: 5.87, 25: 1.81, 10: 1.41, 5: 0.46},
        "monthly_pm": {1000: 12.35, 500: 5.17, 100: 8.82, 50: 5.78, 25: 2.35, 10: 1.15, 5: 0.83},
        "monthly_am": {1000: 461.89, 500: 23.85, 100: 26.05, 50: 12.44, 25: 3.83, 10: 1.11, 5: 0.87},
    },
    noise_sd=0.987,
    turnover={"daily": 0.628, "weekly": 0.691, "end_of_month": -0.646, "monthly_pm": -0.007, "monthly_am": -1.059},
    turnover_slope=-0.435,
)


@dataclasses.dataclass(frozen=True)
class QuoteParams:
    """Bid/ask width: ``log(ask - bid) = c0 + c1·x + c2·x² + c3·t + c4·x·t``, x = log(theo), t = log(T)."""

    spread_coef: tuple


#: Fitted 2026-11-22 on the archive days: OLS of log(ask - bid) over 963,072 two-sided quotes, residual SD
#: 0.78 (a factor 2.2).
QUOTES = QuoteParams(
    spread_coef=(-1.3473, -0.0034, 0.0672, 0.1713, -0.0469),
)


@dataclasses.dataclass(frozen=True)
class ListingRules:
    """How far out each kind of expiry is listed (calendar days unless said) and the strike bands.

    Read off the real chains (2022-2026 Cboe files): e.g. 2026-08-21 lists dailies to 2026-10-05, end-of-month
    to 2027-01-29 then quarter ends to 2027-06-30, AM monthlies to 2027-09-17, quarterlies to 2027-12-17,
    June 2028, and Decembers to 2031-12-19.
    """

    daily_sessions: int = 26
    weekly_days: int = 50
    #: no SPXW Friday weekly on a monthly (third-Friday) date: the rule before PM monthlies existed (2011).
    weekly_skip_monthly: bool = False
    #: Tuesday/Thursday dailies only within the next this many sessions (None: ``daily_sessions``).
    tue_thu_sessions: int | None = None
    eom_monthly_days: int = 165
    eom_quarterly_days: int = 366
    pm_monthly_days: int = 150
    am_monthly_days: int = 395
    am_quarterly_days: int = 548
    am_june_december_days: int = 730
    leaps_days: int = 2192
    #: spacing used for the finest band from each tenor on: (years, points) steps, 5 below the first.
    base_spacing: tuple = ((0.25, 10.0), (0.5, 25.0), (1.05, 50.0), (1.6, 100.0))
    #: strike bands per listing class: (spacing, down, up) with down/up the band's reach in log-moneyness
    #: below/above spot; a band's spacing is raised to the base spacing; the last band reaches the range.
    bands_short: tuple = ((5.0, 0.035, 0.02), (10.0, 0.06, 0.035), (25.0, 0.10, 0.06), (100.0, 0.25, 0.12),
                          (200.0, math.inf, math.inf))
    bands_eom: tuple = ((5.0, 0.06, 0.04), (10.0, 0.12, 0.07), (25.0, 0.25, 0.12), (100.0, 0.45, 0.25),
                        (200.0, math.inf, math.inf))
    bands_monthly: tuple = ((5.0, 0.12, 0.07), (10.0, 0.22, 0.10), (25.0, 0.40, 0.22), (100.0, 0.70, 0.40),
                            (200.0, math.inf, math.inf))
    bands_long: tuple = ((25.0, 0.25, 0.15), (100.0, 0.60, 0.35), (200.0, math.inf, math.inf))
    #: tenor (years) from which every kind uses ``bands_long``.
    long_from_years: float = 0.5
    #: SPXW PM monthlies further out than this use ``bands_eom`` (nearer: ``bands_monthly``, like SPX).
    pm_monthly_narrow_after_days: int = 35
    #: dailies and weeklies listed further out than these many days start one / two spacings coarser.
    short_coarse_after_days: tuple = (10, 24)
    #: outermost log-moneyness listed: (down, up at T = 0, up per sqrt(year), up cap).
    range_short: tuple = (0.75, 0.20, 0.30, 0.50)
    range_pm: tuple = (1.35, 0.28, 0.30, 0.70)
    range_am: tuple = (3.2, 0.35, 0.35, 0.70)


LISTING = ListingRules()

#: The listing rules of each era: ``(first date, rules)``, in date order; :func:`listing_rules` picks the era of
#: a date. Which weekdays have SPXW expiries is :data:`SPXW_WEEKDAY_SINCE` (all eras). Eras, and what is known
#: about each (the real chains here are the 2011-01 iVolatility sample, the 2019-04..07 Cboe archive, five Cboe
#: files 2022-2024 and the 2026 archive; nothing between 2011-01 and 2019-04):
#:
#: * before 2011-02-28 -- read off the 2011 sample: SPX AM monthlies (the next four months, then Jun/Sep/Dec,
#:   Jun/Dec and Decembers to ~3 years), SPXW PM Friday weeklies listed one week ahead (on the Thursday for the
#:   Friday of the next week, none on a monthly Friday), PM end-of-quarter expiries (iVolatility root SPXPM,
#:   Cboe's SPXQ, mapped to SPXW) for four quarters; no end-of-month, no PM monthly, no dailies.
#: * 2011-02-28 -- Cboe's SPXpm (PM-settled third-Friday monthlies, on C2; root SPXPM, later SPXW) launch:
#:   PM monthlies added (horizon as in 2019). Not checkable here (no chain of 2011-03..2019-03).
#: * 2014-07-07 -- Cboe's end-of-month (EOM) SPXW launch (and SPXQ -> SPXW); the weekly horizon of the 2019
#:   archive is ASSUMED from here on (when Cboe lengthened the Friday weekly ladder between 2011 and 2019 is
#:   not in these data).
#: * 2016-02-23 / 2016-08-15 -- Wednesday / Monday SPXW (via :data:`SPXW_WEEKDAY_SINCE`; a Monday holiday
#:   moves that expiry to the Tuesday, as Cboe's Monday Weeklys rule says); horizons fitted on the 2019 archive
#:   (benchmarks/calibrate_history.py: the best match of the Monday/Wednesday ladder is the next 20 sessions
#:   until 2019-05-27 and 25 from 2019-05-28, when the archive's ladder lengthens; the era before 2019-05-28 is
#:   assumed back to 2014-07-07).
#: * 2022-01-01 (ASSUMED: between the 2019 archive and the first 2022 file, 2022-02-04, there is no chain) --
#:   the three 2022 Cboe files: Monday/Wednesday dailies to ~20 sessions, Friday weeklies to ~50 days, and from
#:   2022-04-18 / 2022-05-11 Tuesday / Thursday SPXW (:data:`SPXW_WEEKDAY_SINCE`) to ~12 sessions.
#: * 2023-01-01 (ASSUMED: the 2022 files end 2022-07-12, the next is 2023-09-14) -- :data:`LISTING`, fitted on
#:   the 2022-2026 files (dailies for the next 26 sessions).
#:
#: Years before 2011 get the first era's rules (SPX quarterlies began in 2007 and Friday weeklies in 2005: not
#: modelled before those dates). Before 2015-02-15 OCC dated AM monthlies on the Saturday after the third Friday (the 2011 sample does): the
#: model dates them on the Friday, their last trading and settlement day.
_EARLY = ListingRules(daily_sessions=0, weekly_days=8, weekly_skip_monthly=True, eom_monthly_days=0,
                      eom_quarterly_days=366, pm_monthly_days=0, am_monthly_days=105, am_quarterly_days=366,
                      am_june_december_days=730, leaps_days=1100)
_MWF = ListingRules(daily_sessions=20, weekly_days=71, eom_monthly_days=120, eom_quarterly_days=372,
                    pm_monthly_days=179, am_monthly_days=180, am_quarterly_days=366, am_june_december_days=730,
                    leaps_days=1100)
LISTING_ERAS = (
    (dt.date(1990, 1, 1), _EARLY),
    (dt.date(2011, 2, 28), dataclasses.replace(_EARLY, pm_monthly_days=_MWF.pm_monthly_days,
                                               weekly_skip_monthly=False)),
    (dt.date(2014, 7, 7), _MWF),
    (dt.date(2019, 5, 28), dataclasses.replace(_MWF, daily_sessions=25)),
    (dt.date(2022, 1, 1), dataclasses.replace(LISTING, daily_sessions=20, tue_thu_sessions=12)),
    (dt.date(2023, 1, 1), LISTING),
)


def listing_rules(day) -> ListingRules:
    """The :class:`ListingRules` of the era of ``day`` (date-like; see :data:`LISTING_ERAS`)."""
    d = pd.Timestamp(day).date()
    rules = LISTING_ERAS[0][1]
    for since, era in LISTING_ERAS:
        if d >= since:
            rules = era
    return rules


@dataclasses.dataclass(frozen=True)
class ModelParams:
    """Every parameter of the modelled chain, bundled; :data:`DEFAULT_MODEL` holds the fitted ones.

    Pass another to :func:`modelled_chain` (``model=``) to try a refit or a what-if, e.g.
    ``dataclasses.replace(DEFAULT_MODEL, surface=dataclasses.replace(SURFACE, rho=-0.7))``.
    """

    surface: SurfaceParams = SURFACE
    open_interest: OpenInterestParams = OPEN_INTEREST
    quotes: QuoteParams = QUOTES
    #: None: the era's rules of the chain's date (:func:`listing_rules`).
    listing: ListingRules | None = None


DEFAULT_MODEL = ModelParams()

#: First date each SPXW weekday expiry existed (Mon=0 .. Fri=4). Fridays: the 2005 SPX weeklys.
SPXW_WEEKDAY_SINCE = {4: dt.date(2005, 10, 28), 2: dt.date(2016, 2, 23), 0: dt.date(2016, 8, 15),
                      1: dt.date(2022, 4, 18), 3: dt.date(2022, 5, 11)}


# ==================================================================================================
# Offline history


def offline_spot_history() -> pd.Series:
    """Daily S&P 500 closes available without a network, as a Series indexed by date (tz-naive).

    Served by :func:`research_lib.market.load_index_daily` ``("SPX", offline_ok=True)``: the
    ``spx_daily_*.csv`` history when one is found (``$RESEARCH_LIB_MARKET_DATA``, ``data/market``,
    ``../shared/data/market``), else the real S&P 500 closes 1999-01-04..2018-12-31 bundled with the
    ``arch`` package. When ``research_lib.market`` is not importable, ``arch.data.sp500`` is read directly.
    ``series.attrs["source"]`` says which.

    Raises
    ------
    ModelledChainError
        Neither source is available (install ``arch``).
    research_lib.market.MarketDataError
        A history file was found but is malformed (loud, not silently replaced by the fallback).
    """
    try:
        frame = load_index_daily("SPX", offline_ok=True)  # the file, else arch's bundled S&P 500 history
    except MarketDataNotFoundError as exc:
        raise ModelledChainError("no offline S&P 500 history: install the 'arch' package (pip install arch) "
                                 "or pass spot= and date=") from exc
    close = frame["close"].dropna().astype(float)
    close.attrs["source"] = str(frame.attrs.get("source", "research_lib.market.load_index_daily('SPX')"))
    return close


# ==================================================================================================
# Listings


_CALENDAR_LAST = pd.Timestamp(cal.CALENDAR_END).date()


def _month_iter(start: dt.date, n: int):
    y, m = start.year, start.month
    for _ in range(n):
        yield y, m
        m += 1
        if m == 13:
            y, m = y + 1, 1


def classify_expiries(expirations, roots) -> np.ndarray:
    """The kind (:data:`EXPIRY_KINDS`) of each expiry, from its date and root.

    ``monthly_am``: root SPX (AM-settled); for SPXW, by priority: ``monthly_pm`` (the month's third Friday, or
    the Thursday before when that Friday is a holiday), ``end_of_month`` (the month's last session),
    ``weekly`` (a Friday, or the Thursday before a Friday holiday), else ``daily``. Used both to model and to
    calibrate, so real and modelled chains are cut the same way.
    """
    exp = pd.DatetimeIndex(pd.to_datetime(np.asarray(expirations))).normalize()
    roots = np.asarray(roots).astype(str)
    uniq = np.unique(exp)
    kinds: dict[pd.Timestamp, str] = {}
    for ts in pd.DatetimeIndex(uniq):
        d = ts.date()
        if d == cal.monthly_expiry(d.year, d.month):
            kinds[ts] = "monthly_pm"
            continue
        month_sessions = cal.sessions(dt.date(d.year, d.month, 1),
                                      (pd.Timestamp(d) + pd.offsets.MonthEnd(0)).date())
        if len(month_sessions) and d == month_sessions[-1].date():
            kinds[ts] = "end_of_month"
        elif d.weekday() == 4 or (d.weekday() == 3 and not cal.is_session(d + dt.timedelta(days=1))):
            kinds[ts] = "weekly"
        else:
            kinds[ts] = "daily"
    out = np.array([kinds[ts] for ts in exp], dtype=object)
    out[roots == "SPX"] = "monthly_am"
    return out


def listed_expiries(quote_time, *, rules: ListingRules | None = None) -> pd.DataFrame:
    """The SPX/SPXW expiries listed at ``quote_time`` that have not settled yet.

    Parameters
    ----------
    quote_time : timestamp-like
        tz-aware (or naive, read as New York time).
    rules : ListingRules, optional
        Default: the era's rules, :func:`listing_rules` of the quote's date (see :data:`LISTING_ERAS`).

    Returns
    -------
    DataFrame
        One row per (expiration, root), sorted: ``expiration`` (datetime64, midnight), ``root`` (``SPX`` /
        ``SPXW``), ``settlement`` (``AM`` / ``PM``), ``kind`` (:data:`EXPIRY_KINDS`), ``settles_at`` (tz-aware
        settlement moment), ``dte`` (calendar days from the quote's market date). Expiries settling at or
        before ``quote_time`` are left out (the 0DTE is listed only before the close; an AM monthly only
        before the open of its expiry day).
    """
    qt = _as_quote_time(quote_time)
    today = qt.tz_localize(None).normalize().date()
    market_day = cal.market_moment(qt).date()
    if rules is None:
        rules = listing_rules(market_day)
    horizon = today + dt.timedelta(days=rules.leaps_days + 7)
    sess = [d.date() for d in cal.sessions(today, horizon)]
    rows: list[tuple[dt.date, str]] = []

    def spxw_ok(d: dt.date) -> bool:
        since = SPXW_WEEKDAY_SINCE.get(d.weekday())
        return since is not None and today >= since

    # Dailies: the next `daily_sessions` sessions after the market day, plus today's when it is a session.
    upcoming = [d for d in sess if d > market_day][: rules.daily_sessions]
    if rules.daily_sessions and cal.is_session(today) and today not in upcoming:
        upcoming.insert(0, today)
    tue_thu = rules.daily_sessions if rules.tue_thu_sessions is None else rules.tue_thu_sessions
    near = set(upcoming[: tue_thu + (1 if upcoming and upcoming[0] == today else 0)])
    rows += [(d, "SPXW") for d in upcoming if spxw_ok(d) and (d.weekday() not in (1, 3) or d in near)]
    # A Monday expiry on a holiday moves to the Tuesday (Cboe's Monday Weeklys rule), in the eras without
    # Tuesday expiries.
    if rules.daily_sessions:
        horizon_day = upcoming[-1] if upcoming else today
        d = today - dt.timedelta(days=1)
        while d <= horizon_day:
            if d.weekday() == 0 and spxw_ok(d) and not cal.is_session(d) and d <= _CALENDAR_LAST:
                rows.append((d + dt.timedelta(days=1), "SPXW"))
            d += dt.timedelta(days=1)
    # Friday weeklies (the Thursday before a Friday holiday).
    d = today
    while (d - today).days <= rules.weekly_days:
        if rules.weekly_skip_monthly and d.weekday() == 4 and (
                d == cal.monthly_expiry(d.year, d.month) or d - dt.timedelta(days=1) == cal.monthly_expiry(
                    d.year, d.month)):
            d += dt.timedelta(days=1)
            continue
        if d.weekday() == 4 and spxw_ok(d):
            e = d
            while e <= _CALENDAR_LAST and not cal.is_session(e):
                e -= dt.timedelta(days=1)
            rows.append((e, "SPXW"))
        d += dt.timedelta(days=1)
    # End of month: monthly, then quarter ends.
    for y, m in _month_iter(today, 14):
        ms = cal.sessions(dt.date(y, m, 1), (pd.Timestamp(y, m, 1) + pd.offsets.MonthEnd(0)).date())
        if not len(ms):
            continue
        e = ms[-1].date()
        days = (e - today).days
        if days <= rules.eom_monthly_days or (m % 3 == 0 and days <= rules.eom_quarterly_days):
            rows.append((e, "SPXW"))
    # Monthly dates: SPXW PM near, SPX AM out to LEAPS.
    for y, m in _month_iter(today, 12 * 7):
        e = cal.monthly_expiry(y, m)
        days = (e - today).days
        if days < 0:
            continue
        if days <= rules.pm_monthly_days:
            rows.append((e, "SPXW"))
        if (days <= rules.am_monthly_days or (m % 3 == 0 and days <= rules.am_quarterly_days)
                or (m in (6, 12) and days <= rules.am_june_december_days)
                or (m == 12 and days <= rules.leaps_days)):
            rows.append((e, "SPX"))
    out = pd.DataFrame(rows, columns=["expiration", "root"]).drop_duplicates()
    out["expiration"] = pd.to_datetime(out["expiration"]).astype("datetime64[ns]")
    out["settlement"] = np.where(out["root"] == "SPX", "AM", "PM")
    out["settles_at"] = cal.settlement_times(out["expiration"].to_numpy(), out["settlement"].to_numpy())
    out = out[out["settles_at"] > qt]
    out["kind"] = classify_expiries(out["expiration"], out["root"])
    out["dte"] = (out["expiration"] - pd.Timestamp(market_day)).dt.days
    out = out.sort_values(["expiration", "root"]).reset_index(drop=True)
    return out[["expiration", "root", "settlement", "kind", "settles_at", "dte"]]


def strike_grid(spot: float, T: float, kind: str, *, dte: int | None = None, month: int | None = None,
                rules: ListingRules = LISTING) -> np.ndarray:
    """The listed strikes of one expiry (ascending, points).

    Parameters
    ----------
    spot : float
        Index level.
    T : float
        Years to settlement.
    kind : str
        One of :data:`EXPIRY_KINDS`: AM monthlies, near PM monthlies and quarter-end expiries get the widest
        bands, other end-of-month and far PM monthlies narrower ones, dailies and weeklies the narrowest,
        one spacing coarser after ``short_coarse_after_days[0]`` days and two after ``[1]``; every kind uses
        ``bands_long`` beyond ``long_from_years``.
    dte : int, optional
        Calendar days to expiry (defaults to ``round(T·365)``).
    month : int, optional
        The expiry's month: March/June/September/December end-of-month expiries are quarter ends.

    Returns
    -------
    ndarray of float
        Multiples of 5, 10, 25, 50, 100 or 200 points: 5-point steps near spot for short tenors, coarser
        with distance from spot and with tenor.
    """
    if kind not in EXPIRY_KINDS:
        raise ModelledChainError(f"unknown expiry kind {kind!r}; expected one of {EXPIRY_KINDS}")
    dte = round(T * 365) if dte is None else dte
    base = 5.0
    for years, step in rules.base_spacing:
        if T > years:
            base = step
    quarter_end = month is not None and month % 3 == 0
    if kind in ("daily", "weekly"):
        bands, rng = rules.bands_short, rules.range_short
        first, second = rules.short_coarse_after_days
        if dte > second:
            base = max(base, 25.0)
        elif dte > first:
            base = max(base, 10.0)
    elif kind == "monthly_am":
        bands, rng = rules.bands_monthly, rules.range_am
    elif (kind == "end_of_month" and quarter_end) or (
            kind == "monthly_pm" and dte <= rules.pm_monthly_narrow_after_days):
        bands, rng = rules.bands_monthly, rules.range_pm
    else:
        bands, rng = rules.bands_eom, rules.range_pm
    if T > rules.long_from_years:
        bands = rules.bands_long
    lo_m = -rng[0]
    hi_m = min(rng[1] + rng[2] * math.sqrt(max(T, 0.0)), rng[3])
    pieces = []
    for step, down, up in bands:
        step = max(step, base)
        k_lo = math.ceil(spot * math.exp(max(-down, lo_m)) / step) * step
        k_hi = math.floor(spot * math.exp(min(up, hi_m)) / step) * step
        if k_hi >= k_lo:
            pieces.append(np.arange(k_lo, k_hi + step / 2, step))
    strikes = np.unique(np.concatenate(pieces)) if pieces else np.array([])
    return strikes[strikes >= 5.0].astype(float)


def round_class(strikes) -> np.ndarray:
    """The roundness class of each strike: 1000, 500, 100, 50, 25, 10 or 5 (the largest of those that
    divides it; anything else, e.g. 7.5 or 2.5, counts as 5)."""
    k = np.rint(np.asarray(strikes, dtype=float) * 100).astype(np.int64)  # hundredths of a point
    out = np.full(k.shape, 5, dtype=np.int64)
    for c in (10, 25, 50, 100, 500, 1000):
        out[k % (c * 100) == 0] = c
    return out


# ==================================================================================================
# Implied volatility


def atm_vol(T, vix: float, params: SurfaceParams = SURFACE) -> np.ndarray:
    """ATM (k = 0) implied vol at tenor ``T`` (years) for a VIX level (index points), decimal."""
    T = np.maximum(np.asarray(T, dtype=float), 1e-8)
    return np.sqrt(_atm_variance(T, _sigma30(vix, params), params))


def _sigma30(vix: float, params: SurfaceParams) -> float:
    return max(params.vix_c0 + params.vix_c1 * vix / 100.0, 0.01)


def _atm_variance(T: np.ndarray, s30: float, params: SurfaceParams) -> np.ndarray:
    kap = params.kappa
    f = lambda t: -np.expm1(-kap * t) / (kap * t)  # noqa: E731
    s_inf = params.long_a + params.long_b * s30
    v_inf = s_inf * s_inf
    v0 = v_inf + (s30 * s30 - v_inf) / f(30.0 / 365.0)
    v0 = max(v0, (params.v0_floor * s30) ** 2)
    return v_inf + (v0 - v_inf) * f(T)


def implied_vol_surface(k, T, vix: float, params: SurfaceParams = SURFACE) -> np.ndarray:
    """Model implied vol (decimal) at log-moneyness ``k = ln(K/F)`` and tenor ``T`` (years) for a VIX level.

    SSVI with the fitted power-law φ; broadcasts over ``k`` and ``T``; ``T <= 0`` gives NaN.
    """
    k = np.asarray(k, dtype=float)
    T = np.asarray(T, dtype=float)
    ok = T > 0
    Tp = np.where(ok, T, 1.0)
    s30 = _sigma30(vix, params)
    theta = _atm_variance(Tp, s30, params) * Tp
    g = params.gamma
    phi = params.eta / (theta ** g * (1.0 + theta) ** (1.0 - g))
    rho = params.rho
    pk = phi * k
    w = 0.5 * theta * (1.0 + rho * pk + np.sqrt((pk + rho) ** 2 + 1.0 - rho * rho))
    return np.where(ok, np.sqrt(w / Tp), np.nan)


# ==================================================================================================
# Open interest, quotes


def _expiry_total(kind: str, dte: int, month: int, params: OpenInterestParams) -> float:
    """Expected total open interest (contracts, calls + puts) of one expiry."""
    nodes, values = params.total_nodes[kind]
    x = float(np.interp(max(dte, 0), nodes, values))
    if month % 3 == 0:
        x += params.quarter_end[kind]
    if kind == "monthly_am" and month == 12:
        x += params.december_am
    return math.exp(x)


def _mixture_cdf(m: np.ndarray, T: float, s30: float, kind: str, right: str,
                 params: OpenInterestParams) -> np.ndarray:
    """CDF of the open-interest profile of one kind and right at log-moneyness ``m``."""
    weights, means, sds, taus = params.mixture[kind][right]
    out = np.zeros_like(m)
    for w, mu, sd, tau in zip(weights, means, sds, taus, strict=True):
        a = s30 * math.sqrt(T + tau / 365.0)
        out += w * ndtr((m / a - mu) / sd)
    return out


def _with_round_strikes(strikes: np.ndarray, mass: np.ndarray, kind: str, params: OpenInterestParams,
                        block: float = 500.0) -> np.ndarray:
    """``mass`` (the smooth profile integrated over each strike's cell) concentrated on round strikes.

    Each strike's mass is multiplied by its class multiplier (:attr:`OpenInterestParams.round_multiplier`
    for the kind), then rescaled within blocks of ``block`` points centred on the multiples of ``block`` so
    each block keeps the smooth profile's mass: round strikes gain at the expense of their plain neighbours.
    """
    table = params.round_multiplier[kind]
    mult = np.array([table[c] for c in round_class(strikes)], dtype=float)
    blocks = np.floor(strikes / block + 0.5).astype(np.int64)
    weighted = mass * mult
    _, inverse = np.unique(blocks, return_inverse=True)
    smooth_sum = np.bincount(inverse, weights=mass)
    weighted_sum = np.bincount(inverse, weights=weighted)
    factor = np.divide(smooth_sum, weighted_sum, out=np.ones_like(smooth_sum), where=weighted_sum > 0)
    return weighted * factor[inverse]


def _cell_bounds(strikes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mid = 0.5 * (strikes[1:] + strikes[:-1])
    first = strikes[0] - (mid[0] - strikes[0]) if len(mid) else strikes[0] * 0.99
    last = strikes[-1] + (strikes[-1] - mid[-1]) if len(mid) else strikes[0] * 1.01
    return np.r_[max(first, 1e-6), mid], np.r_[mid, last]


def _tick_floor(x: np.ndarray) -> np.ndarray:
    tick = np.where(x >= 3.0, 0.10, 0.05)
    return np.floor(x / tick + 1e-9) * tick


def _tick_ceil(x: np.ndarray) -> np.ndarray:
    tick = np.where(x >= 3.0, 0.10, 0.05)
    return np.ceil(x / tick - 1e-9) * tick


def quotes_around(theo, spread) -> tuple[np.ndarray, np.ndarray]:
    """Bid and ask on Cboe's SPX tick (0.05 below 3.00, else 0.10) around theoretical values.

    ``bid = max(floor_to_tick(theo - spread/2), 0)``, ``ask = max(ceil_to_tick(theo + spread/2), bid + one
    tick)`` (the tick of the bid's level), so the ask is always at least one tick above the bid. Elementwise,
    any broadcastable shapes; dollars per share of the index option (x100 per contract).
    """
    theo = np.asarray(theo, dtype=float)
    half = 0.5 * np.asarray(spread, dtype=float)
    bid = np.maximum(_tick_floor(theo - half), 0.0)
    ask = np.maximum(_tick_ceil(theo + half), bid + np.where(bid >= 3.0, 0.10, 0.05))
    return bid, ask


# ==================================================================================================
# The chain


def _as_quote_time(value) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ModelledChainError(f"quote_time {value!r} is not a timestamp") from exc
    if ts is pd.NaT or pd.isna(ts):
        raise ModelledChainError("quote_time is missing")
    ts = ts.tz_localize(NY) if ts.tzinfo is None else ts.tz_convert(NY)
    _check_in_range(ts.date())
    return ts


def _check_in_range(day: dt.date) -> None:
    lo, hi = (t.date() for t in QUOTE_TIME_RANGE)
    if not lo <= day <= hi:
        raise ModelledChainError(f"{day} is outside {lo}..{hi}, the range the exchange calendar covers")


def _resolve_inputs(spot, date, quote_time, vix) -> tuple[float, pd.Timestamp, float, list[str]]:
    notes: list[str] = []
    history = None
    if date is not None:
        try:
            day = pd.Timestamp(date).date()
        except (TypeError, ValueError) as exc:
            raise ModelledChainError(f"date {date!r} is not a date (YYYY-MM-DD)") from exc
        _check_in_range(day)
    else:
        day = None
    if quote_time is not None:
        qt = _as_quote_time(quote_time)
        if day is not None and qt.date() != day:
            raise ModelledChainError(f"quote_time {qt} is not on date {day}")
        if day is None:
            day = qt.date()
        notes.append(f"quote_time {qt.isoformat()} (given)")
    else:
        if day is None:
            history = offline_spot_history()
            day = history.index[-1].date()
            notes.append(f"date {day} = the last date of the offline history ({history.attrs.get('source')})")
        if not cal.is_session(day):
            raise ModelledChainError(f"date {day} is not an NYSE session; pass a session date, or a quote_time "
                                     "(a weekend quote_time describes the previous close)")
        qt = cal.session_close(day)
        notes.append(f"quote_time {qt.isoformat()} = the session close of {day}")
    if spot is None:
        history = offline_spot_history() if history is None else history
        moment = cal.market_moment(qt)
        last_close = cal.last_close_at_or_before(moment)
        upto = history.loc[: pd.Timestamp(last_close.date())]
        if upto.empty or (pd.Timestamp(last_close.date()) - upto.index[-1]).days > 7:
            first, last = history.index[0].date(), history.index[-1].date()
            raise ModelledChainError(f"no offline close for {last_close.date()} (the offline history covers "
                                     f"{first}..{last}: {history.attrs.get('source')}); pass spot=")
        spot_f = float(upto.iloc[-1])
        notes.append(f"spot {spot_f:g} = the S&P 500 close of {upto.index[-1].date()} from "
                     f"{history.attrs.get('source')}")
    else:
        try:
            spot_f = float(spot)
        except (TypeError, ValueError) as exc:
            raise ModelledChainError(f"spot {spot!r} is not a number") from exc
        notes.append(f"spot {spot_f:g} (given)")
    if not (math.isfinite(spot_f) and 50.0 <= spot_f <= 1e6):
        raise ModelledChainError(f"spot must be a finite S&P 500 level in [50, 1e6], got {spot!r}")
    if vix is None:
        vix_f = DEFAULT_VIX
        notes.append(f"vix {vix_f:g} = DEFAULT_VIX (none given)")
    else:
        try:
            vix_f = float(vix)
        except (TypeError, ValueError) as exc:
            raise ModelledChainError(f"vix {vix!r} is not a number") from exc
        if not (math.isfinite(vix_f) and 5.0 <= vix_f <= 150.0):
            raise ModelledChainError(f"vix must be in index points within [5, 150], got {vix!r}")
        notes.append(f"vix {vix_f:g} (given)")
    return spot_f, qt, vix_f, notes


def modelled_chain(underlying: str = "SPX", *, spot: float | None = None, date: Any = None,
                   quote_time: Any = None, vix: float | None = None, rate: float = 0.0,
                   div_yield: float = 0.0, seed: int = 0, model: ModelParams = DEFAULT_MODEL) -> ChainSnapshot:
    """A modelled SPX option chain (not market data), shaped like a real Cboe SPX chain.

    Parameters
    ----------
    underlying : {"SPX"}
        Only SPX is modelled (``"_SPX"`` and lower case accepted).
    spot : float, optional
        Index level. None → the offline history's last close at or before the quote time.
    date : str or date, optional
        Trading date (YYYY-MM-DD). None → the quote time's date, or the last date of the offline history.
    quote_time : timestamp-like, optional
        When the chain is "quoted" (naive = New York time). None → the close of ``date``'s session.
        A quote before the close lists that day's 0DTE expiry; at or after it, not.
    vix : float, optional
        VIX level in index points; sets the whole surface (30-day ATM vol ``vix_c0 + vix_c1 · VIX/100``).
        None → :data:`DEFAULT_VIX`.
    rate, div_yield : float
        Continuously compounded rate and dividend yield (decimals) for forwards, prices and greeks.
    seed : int
        Seed of the open-interest and volume noise. Listings, IVs and the theoretical values do not depend
        on it.
    model : ModelParams
        The parameters (default: the fitted :data:`DEFAULT_MODEL`).

    Returns
    -------
    ChainSnapshot
        ``modelled=True``, ``source="modelled:SPX"``, notes beginning with ``"MODELLED DATA: not market
        quotes"`` and listing every input used and where defaults came from; ``snapshot_date`` is the market
        date the quote describes (the previous session for a weekend quote). Deterministic for given inputs.

    Raises
    ------
    ModelledChainError
        An unsupported underlying, an impossible input, a non-session ``date``, or no offline spot for the date.
    """
    und = str(underlying).strip().upper().lstrip("_")
    if und not in SUPPORTED_UNDERLYINGS:
        raise ModelledChainError(f"only {SUPPORTED_UNDERLYINGS} can be modelled, got {underlying!r}")
    for name, v in (("rate", rate), ("div_yield", div_yield)):
        if isinstance(v, bool) or not (isinstance(v, int | float) and math.isfinite(v) and abs(v) <= 0.5):
            raise ModelledChainError(f"{name} must be a finite decimal in [-0.5, 0.5] (0.05 = 5%), got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ModelledChainError(f"seed must be a non-negative integer, got {seed!r}")
    S, qt, vix_f, input_notes = _resolve_inputs(spot, date, quote_time, vix)
    r, q = float(rate), float(div_yield)
    surf, oi_p, quotes = model.surface, model.open_interest, model.quotes
    rng = np.random.default_rng(int(seed))
    valuation = cal.market_moment(qt)
    listing = model.listing if model.listing is not None else listing_rules(valuation.date())
    expiries = listed_expiries(qt, rules=listing)
    s30 = _sigma30(vix_f, surf)

    parts = []
    for row in expiries.itertuples(index=False):
        T = max((row.settles_at - valuation).total_seconds(), 60.0) / cal.YEAR_SECONDS
        K = strike_grid(S, T, row.kind, dte=int(row.dte), month=row.expiration.month, rules=listing)
        if len(K) == 0:
            continue
        F = S * math.exp((r - q) * T)
        lo, hi = _cell_bounds(K)
        m_lo, m_hi = np.log(lo / F), np.log(hi / F)
        total = _expiry_total(row.kind, int(row.dte), row.expiration.month, oi_p)
        share_c = oi_p.call_share[row.kind]
        # Volume: the expiry's turnover, spread over strikes by OI x a near-the-money weight (normalised).
        k_exp = np.log(K / F)
        z_atm = k_exp / (s30 * math.sqrt(T + 2.0 / 365.0))
        near = 0.2 + 2.0 * np.exp(-0.5 * z_atm * z_atm)
        turnover = math.exp(oi_p.turnover[row.kind] + oi_p.turnover_slope * math.log1p(max(int(row.dte), 0)))
        masses = {}
        for right, share in (("C", share_c), ("P", 1.0 - share_c)):
            smooth = (_mixture_cdf(m_hi, T, s30, row.kind, right, oi_p)
                      - _mixture_cdf(m_lo, T, s30, row.kind, right, oi_p))
            mass = _with_round_strikes(K, smooth, row.kind, oi_p)
            masses[right] = total * share * mass / mass.sum() if mass.sum() > 0 else mass
        both = masses["C"] + masses["P"]
        vol_scale = turnover * both.sum() / max(float((both * near).sum()), 1e-12)
        for right in ("C", "P"):
            parts.append(pd.DataFrame({
                "root": row.root, "expiration": row.expiration, "settlement": row.settlement,
                "strike": K, "right": right, "T": T, "k": k_exp, "oi_mean": masses[right],
                "vol_mean": masses[right] * near * vol_scale,
            }))
    if not parts:
        raise ModelledChainError(f"no expiry listed after {qt}")
    c = pd.concat(parts, ignore_index=True)
    n = len(c)
    T = c["T"].to_numpy()
    K = c["strike"].to_numpy()
    is_call = (c["right"] == "C").to_numpy()
    iv = implied_vol_surface(c["k"].to_numpy(), T, vix_f, surf)

    # Lognormal noise per contract, renormalised within each (expiry, root, right) so that its total stays the
    # model's: the seed moves open interest between strikes, not in or out of an expiry.
    sd = oi_p.noise_sd
    noise = np.exp(sd * rng.standard_normal(n))
    group = c.groupby(["expiration", "root", "right"], sort=False).ngroup().to_numpy()
    mean = c["oi_mean"].to_numpy()
    rescale = np.bincount(group, weights=mean) / np.maximum(np.bincount(group, weights=mean * noise), 1e-300)
    noise *= rescale[group]
    oi = np.floor(mean * noise + rng.random(n))  # randomised rounding: unbiased
    volume = rng.poisson(np.minimum(c["vol_mean"].to_numpy() * noise, 1e8)).astype(float)

    g = pricing.greeks(S, K, T, iv, r, q, is_call)
    theo = np.maximum(g.price, 0.0)
    c0, c1, c2, c3, c4 = quotes.spread_coef
    x = np.log(np.maximum(theo, 0.01))
    t = np.log(T)
    spread = np.exp(c0 + c1 * x + c2 * x * x + c3 * t + c4 * x * t)
    bid, ask = quotes_around(theo, spread)
    last = np.where(volume > 0, _tick_floor(np.maximum(theo, 0.05)), np.nan)

    contracts = pd.DataFrame({
        "root": c["root"], "expiration": c["expiration"], "settlement": c["settlement"], "strike": K,
        "right": c["right"], "bid": np.round(bid, 2), "ask": np.round(ask, 2), "last": np.round(last, 2),
        "volume": volume, "open_interest": oi, "iv": np.round(iv, 4), "delta": np.round(g.delta, 4),
        "gamma": np.round(g.gamma, 4),
    })
    kinds = expiries["kind"].value_counts().reindex(EXPIRY_KINDS, fill_value=0)
    notes = [
        MODELLED_NOTE,
        *input_notes,
        f"rate {r:g}, div_yield {q:g}, seed {int(seed)}",
        f"30-day ATM vol {s30:.4f} = {surf.vix_c0:g} + {surf.vix_c1:g} x VIX/100",
        "expiries: " + ", ".join(f"{n_} {kd}" for kd, n_ in kinds.items()),
        "model: SSVI surface, mixture open-interest profile, BSM quotes; parameters fitted to real Cboe SPX "
        "chains by benchmarks/calibrate_modelled.py (see research_lib.modelled)",
    ]
    return ChainSnapshot.create(underlying=und, spot=S, quote_time=qt, source=SOURCE, contracts=contracts,
                                snapshot_date=valuation.date(), modelled=True, notes=notes)


# ==================================================================================================
# Smile summary (to compare modelled and real chains the same way)


@dataclasses.dataclass(frozen=True)
class SmileSummary:
    """ATM level and 25-delta skew of a chain at one tenor, from its own ``iv`` and ``delta`` columns.

    Attributes
    ----------
    tenor_days : float
        The tenor asked for (calendar days).
    atm_iv : float
        IV at the money (K = spot), decimal.
    put25_iv, call25_iv : float
        IV of the 25-delta put and call.
    skew25 : float
        ``put25_iv - call25_iv`` (decimal; positive for the usual equity put skew).
    expiries : tuple of datetime.date
        The two expiries bracketing the tenor (total variance interpolated linearly in T between them).
    """

    tenor_days: float
    atm_iv: float
    put25_iv: float
    call25_iv: float
    skew25: float
    expiries: tuple


def _expiry_smile(g: pd.DataFrame, spot: float) -> tuple[float, float, float] | None:
    g = g[np.isfinite(g["iv"]) & np.isfinite(g["delta"]) & (g["iv"] > 0)]
    puts = g[(g["right"] == "P") & (g["strike"] <= spot)].sort_values("strike")
    calls = g[(g["right"] == "C") & (g["strike"] >= spot)].sort_values("strike")
    otm = pd.concat([puts, calls]).drop_duplicates("strike").sort_values("strike")
    if len(puts) < 3 or len(calls) < 3:
        return None
    atm = float(np.interp(spot, otm["strike"], otm["iv"]))
    pd_ = puts[(puts["delta"] < -0.02) & (puts["delta"] > -0.6)].sort_values("delta")
    cd_ = calls[(calls["delta"] > 0.02) & (calls["delta"] < 0.6)].sort_values("delta")
    if len(pd_) < 2 or len(cd_) < 2 or not (pd_["delta"].min() <= -0.25 <= pd_["delta"].max()) \
            or not (cd_["delta"].min() <= 0.25 <= cd_["delta"].max()):
        return None
    p25 = float(np.interp(-0.25, pd_["delta"], pd_["iv"]))
    c25 = float(np.interp(0.25, cd_["delta"], cd_["iv"]))
    return atm, p25, c25


def smile_summary(snapshot: ChainSnapshot, tenor_days: float = 30.0) -> SmileSummary:
    """ATM IV and 25-delta put/call IVs of ``snapshot`` at ``tenor_days``, for comparing chains.

    Each expiry's smile is read from its out-of-the-money contracts (puts at or below spot, calls at or
    above; one row per strike, so SPX and SPXW rows of a monthly date count once); the 25-delta IVs by
    linear interpolation in the chain's own delta column. The two expiries bracketing the tenor (calendar
    time to settlement from the market moment of the quote) are interpolated in total variance.

    Raises
    ------
    ModelledChainError
        No pair of usable expiries brackets the tenor.
    """
    c = snapshot.contracts
    valuation = cal.market_moment(snapshot.quote_time)
    settle = cal.settlement_times(c["expiration"].to_numpy(), c["settlement"].to_numpy())
    T = (settle.asi8 - valuation.value) / 1e9 / cal.YEAR_SECONDS
    target = tenor_days / 365.0
    smiles = []
    for exp in np.unique(c["expiration"].to_numpy()):
        sel = (c["expiration"].to_numpy() == exp) & (T > 0)
        if not sel.any():
            continue
        g = c[sel]
        # Prefer the PM (SPXW) rows of a shared date: more strikes near spot; else whatever is listed.
        if g["root"].nunique() > 1:
            g = g[g["settlement"] == "PM"]
        s = _expiry_smile(g, snapshot.spot)
        if s is not None:
            smiles.append((float(T[sel].max()), pd.Timestamp(exp).date(), *s))
    smiles.sort()
    below = [s for s in smiles if s[0] <= target]
    above = [s for s in smiles if s[0] >= target]
    if not below or not above:
        raise ModelledChainError(f"{snapshot.source}: no usable expiries bracket {tenor_days:g} days")
    a, b = below[-1], above[0]
    if b[0] == a[0]:
        return SmileSummary(tenor_days, a[2], a[3], a[4], a[3] - a[4], (a[1], b[1]))
    wgt = (target - a[0]) / (b[0] - a[0])

    def interp(i: int) -> float:
        var = (1 - wgt) * a[i] ** 2 * a[0] + wgt * b[i] ** 2 * b[0]
        return math.sqrt(var / target)

    atm, p25, c25 = interp(2), interp(3), interp(4)
    return SmileSummary(tenor_days, atm, p25, c25, p25 - c25, (a[1], b[1]))
