"""The model-priced history: any SPX option on any day 2011-2026, priced from that day's VIX family alone.

Real SPX chains exist here for a few months (the 2011 iVolatility sample, the 2019 intraday archive, five Cboe
files 2022-2024, the 2026 EOD archive); a fifteen-year backtest needs a price on every other day. This module
ties an arbitrage-free implied-volatility surface to the three Cboe volatility indices of the day (VIX9D, VIX,
VIX3M) with a mapping calibrated on the days where real chains exist (``benchmarks/calibrate_history.py``), and
quotes a bid and ask around the model value with a spread model fitted the same way. Every number it returns is
a model value, not a market quote.

The surface (:class:`DaySurface`, built by :func:`day_surface`)
---------------------------------------------------------------
ATM level
    The at-the-money (k = ln(K/F) = 0) implied vol at 9, 30 and 93 calendar days is a linear map of VIX9D, VIX
    and VIX3M: ``σ_j = a_j + b_j · X_j / 100`` (:attr:`HistorySurfaceParams.atm_a` / ``atm_b``). A VIX index is a
    variance-swap level, above ATM vol because of the skew; the map absorbs that. The ATM total variance
    ``w(T) = σ_ATM(T)² T`` is linear in T between the three pins, flat in vol (``w = σ_9² T``) below 9 days,
    and beyond 93 days its forward variance decays from the 30-93-day forward variance ``f`` toward a long-run
    variance ``v∞ = σ∞²`` (``σ∞ = long_a + long_b · σ_93``) at speed κ:
    ``w(T) = w_93 + v∞ τ + (f - v∞)(1 - e^(-κτ))/κ``, τ = T - 93 days. Each forward variance is floored at
    ``(fwd_floor · σ)²`` (σ the pin it leads to), so ``w`` increases strictly in T: no calendar arbitrage. The
    pins hold exactly unless a floor binds (a steep inversion such as VIX9D 60 with VIX 30), where the 30- and
    93-day ATM vols are raised to the floor (``DaySurface.floored`` says so).
Skew
    SSVI (Gatheral & Jacquier 2014) in ``θ = w(T)`` with the power-law φ of :mod:`research_lib.data.modelled`:
    ``w(k, T) = θ/2 · (1 + ρφk + √((φk + ρ)² + 1 - ρ²))``, ``φ = η / (θ^γ (1+θ)^(1-γ))``. ρ and η are
    functions of the day: ``ρ = ρ0 + ρ_level·(VIX/100 - 0.2) + ρ_slope·ln(VIX3M/VIX)`` (clipped to
    [-0.95, -0.05]: always a put skew; VIX/100 and the slope clipped first to the calibrated ranges
    :attr:`HistorySurfaceParams.level_range` / ``slope_range``, so 2008- or 2020-like days use the skew of the
    calibration's most extreme day instead of an extrapolation) and ``η = η0 · exp(η_level·(VIX/100 - 0.2))``, capped at 0.999 ·
    :func:`research_lib.data.modelled.eta_max` (ρ, γ), the butterfly-arbitrage bound. With ρ and η fixed per day
    and θ increasing, the SSVI slice family has no calendar arbitrage either (GJ 2014, Theorem 4.1 holds for
    the power law with γ ≤ 1/2).

Quotes (:func:`model_quotes`)
    Theoretical value: Black-Scholes-Merton at the model IV (:mod:`research_lib.core.pricing`). Width:
    ``log(ask - bid) = c0 + c1 x + c2 x² + c3 t + c4 x t + c5 v`` with x = log(theo), t = log(T), v =
    ln(VIX/20), fitted on the 2019 and 2026 archives' two-sided quotes. Bid and ask on Cboe's tick by
    :func:`research_lib.data.modelled.quotes_around` (the modelled chain's rule).

Listings and strikes come from :func:`research_lib.data.modelled.listed_expiries` (era-aware, see
:data:`~research_lib.data.modelled.LISTING_ERAS`) and :func:`~research_lib.data.modelled.strike_grid`;
:func:`history_snapshot` puts them together into a compact modelled chain of a day.

How good it is
--------------
:data:`CALIBRATION` holds the fit's figures (ATM IV error per tenor, 25-delta skew error, spread error, in and
out of sample); :func:`describe_calibration` says them in one paragraph; every modelled backtest writes them
into its result.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from research_lib import calendar as cal
from research_lib.core import pricing
from research_lib.core.chain import ChainSnapshot
from research_lib.core.gex import GexConfig, time_to_expiry
from research_lib.core.parity import implied_forwards
from research_lib.data import modelled
from research_lib.errors import ModelledHistoryError
from research_lib.formatting import jsonable

__all__ = [
    "CALIBRATION",
    "HISTORY_SURFACE",
    "PIN_DAYS",
    "DaySurface",
    "HistoryCalibration",
    "HistorySurfaceParams",
    "ModelQuotes",
    "ModelledHistoryError",
    "VolSummary",
    "chain_expiries",
    "chain_smile_points",
    "chain_vol_summary",
    "day_surface",
    "describe_calibration",
    "history_snapshot",
    "model_quotes",
    "model_skew25",
    "model_spread",
    "skew25",
]

#: Calendar days of the three ATM pins: VIX9D, VIX, VIX3M.
PIN_DAYS = (9.0, 30.0, 93.0)
_PIN_T = tuple(d / 365.0 for d in PIN_DAYS)
MODELLED_NOTE = "MODELLED PRICES: not market quotes"
SOURCE = "modelled-history:SPX"
#: Open interest of every contract of :func:`history_snapshot` (a placeholder: the history does not model it;
#: 1 keeps every liquidity rule that asks for OI > 0 satisfied without pretending to know the real figure).
SNAPSHOT_OPEN_INTEREST = 1.0
_RHO_BOUNDS = (-0.95, -0.05)


@dataclasses.dataclass(frozen=True)
class HistorySurfaceParams:
    """The fitted coefficients of the model-priced history (see the module docstring).

    Attributes
    ----------
    atm_a, atm_b : tuple of 3 floats
        ATM vol at :data:`PIN_DAYS` = ``atm_a[j] + atm_b[j] · X_j/100`` for X = (VIX9D, VIX, VIX3M); decimal.
    long_a, long_b : float
        Long-run ATM vol ``σ∞ = long_a + long_b · σ_93`` (decimal).
    kappa : float
        Per year: how fast the forward variance beyond 93 days reaches ``σ∞²``.
    fwd_floor : float
        Forward ATM variance between pins is at least ``(fwd_floor · σ_pin)²``.
    rho0, rho_level, rho_slope : float
        ``ρ = rho0 + rho_level · (VIX/100 - 0.2) + rho_slope · ln(VIX3M/VIX)``, clipped to [-0.95, -0.05].
    eta0, eta_level : float
        ``η = eta0 · exp(eta_level · (VIX/100 - 0.2))``, capped at 0.999 · ``eta_max(ρ, γ)``.
    gamma : float
        Power of φ(θ), in (0, 0.5].
    spread_coef : tuple of 6 floats
        ``log(ask - bid) = c0 + c1 x + c2 x² + c3 t + c4 x t + c5 ln(VIX/20)``, x = log(max(theo, 0.01)),
        t = log(T), dollars and years.
    level_range, slope_range : (float, float)
        The VIX/100 level and the ln(VIX3M/VIX) slope that ρ and η see are clipped to these ranges (the
        calibration days' ranges): the skew functions are not extrapolated to VIX 80 or a deep inversion.
        The ATM map and the spread's VIX term are not clipped.
    """

    atm_a: tuple
    atm_b: tuple
    long_a: float
    long_b: float
    kappa: float
    fwd_floor: float
    rho0: float
    rho_level: float
    rho_slope: float
    eta0: float
    eta_level: float
    gamma: float
    spread_coef: tuple
    level_range: tuple = (0.0, math.inf)
    slope_range: tuple = (-math.inf, math.inf)

    def __post_init__(self):
        if len(self.atm_a) != 3 or len(self.atm_b) != 3 or len(self.spread_coef) != 6:
            raise ModelledHistoryError("HistorySurfaceParams: atm_a and atm_b need 3 values (9, 30, 93 days), "
                                       f"spread_coef 6; got {self.atm_a}, {self.atm_b}, {self.spread_coef}")
        if not (0.0 < self.gamma <= 0.5 and self.kappa > 0 and self.eta0 > 0 and 0 < self.fwd_floor < 1
                and all(b > 0 for b in self.atm_b)):
            raise ModelledHistoryError(f"impossible history surface parameters {self}")


#: Fitted 2026-12-01 by benchmarks/calibrate_history.py on 92 real chain days (5 of 2011, 56 of 2019, 5 of
#: 2022-2024, 26 of 2026 with a VIX-family close); :data:`CALIBRATION` holds the errors. ATM map by OLS per
#: tenor; shape by least squares on 145,046 OTM IVs (RMSE 0.93 vol points, 2-4 below 1 week); spreads by OLS
#: on 547,807 two-sided quotes of 2019 and 2026 (residual log-SD 0.42).
HISTORY_SURFACE = HistorySurfaceParams(
    atm_a=(-0.0254, -0.022, 0.0044),
    atm_b=(1.0367, 0.9774, 0.7869),
    long_a=0.0944,
    long_b=0.7271,
    kappa=0.8397,
    fwd_floor=0.3,
    rho0=-0.6559,
    rho_level=-0.417,
    rho_slope=0.3611,
    eta0=1.8648,
    eta_level=-4.1042,
    gamma=0.3533,
    spread_coef=(-1.3292, 0.3838, 0.0065, 0.1247, 0.0568, 0.9413),
    level_range=(0.1239, 0.2775),
    slope_range=(-0.0377, 0.2115),
)


# ==================================================================================================
# The surface of one day


@dataclasses.dataclass(frozen=True)
class DaySurface:
    """The implied-volatility surface of one day (scalars; see the module docstring).

    Attributes
    ----------
    vix9d, vix, vix3m : float
        The inputs, index points.
    atm_pins : tuple of 3 floats
        ATM vol at 9, 30 and 93 days (decimal), after the forward-variance floor.
    floored : bool
        True when a floor raised a pin above the map's value.
    sigma_inf : float
        Long-run ATM vol (decimal).
    kappa, rho, eta, gamma : float
        Term-structure speed (per year) and the day's SSVI parameters.
    """

    vix9d: float
    vix: float
    vix3m: float
    atm_pins: tuple
    floored: bool
    sigma_inf: float
    kappa: float
    rho: float
    eta: float
    gamma: float

    def atm_total_variance(self, T) -> np.ndarray:
        """ATM total implied variance ``σ_ATM(T)² · T`` at ``T`` (years, array-like); NaN where T <= 0."""
        T = np.asarray(T, dtype=float)
        T1, T2, T3 = _PIN_T
        w1, w2, w3 = (s * s * t for s, t in zip(self.atm_pins, _PIN_T, strict=True))
        v_inf = self.sigma_inf ** 2
        f3 = (w3 - w2) / (T3 - T2)
        tau = np.maximum(T - T3, 0.0)
        k = self.kappa
        far = w3 + v_inf * tau + (f3 - v_inf) * (-np.expm1(-k * tau)) / k
        w = np.where(T <= T1, w1 / T1 * T,
                     np.where(T <= T2, w1 + (w2 - w1) * (T - T1) / (T2 - T1),
                              np.where(T <= T3, w2 + (w3 - w2) * (T - T2) / (T3 - T2), far)))
        return np.where(T > 0, w, np.nan)

    def atm_vol(self, T) -> np.ndarray:
        """ATM implied vol (decimal) at ``T`` (years, array-like); NaN where T <= 0."""
        T = np.asarray(T, dtype=float)
        Tp = np.where(T > 0, T, 1.0)
        return np.where(T > 0, np.sqrt(self.atm_total_variance(Tp) / Tp), np.nan)

    def iv(self, k, T) -> np.ndarray:
        """Model implied vol (decimal) at log-moneyness ``k = ln(K/F)`` (F = S·e^((r-q)T)) and ``T`` (years).

        Broadcasts ``k`` against ``T``; NaN where ``T <= 0`` (nothing else is NaN for finite input).
        """
        k = np.asarray(k, dtype=float)
        T = np.asarray(T, dtype=float)
        ok = T > 0
        Tp = np.where(ok, T, 1.0)
        theta = self.atm_total_variance(Tp)
        w = _ssvi_total_variance(k, theta, self.rho, self.eta, self.gamma)
        return np.where(ok, np.sqrt(w / Tp), np.nan)


def _ssvi_total_variance(k, theta, rho, eta, gamma):
    phi = eta / (theta ** gamma * (1.0 + theta) ** (1.0 - gamma))
    pk = phi * k
    return 0.5 * theta * (1.0 + rho * pk + np.sqrt((pk + rho) ** 2 + 1.0 - rho * rho))


def _check_level(name: str, value) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError) as exc:
        raise ModelledHistoryError(f"{name} {value!r} is not a number") from exc
    if not (math.isfinite(x) and 3.0 <= x <= 200.0):
        raise ModelledHistoryError(f"{name} must be a volatility index level in index points within [3, 200], "
                                   f"got {value!r}")
    return x


def day_surface(vix9d, vix, vix3m, params: HistorySurfaceParams = HISTORY_SURFACE) -> DaySurface:
    """The model surface of a day from its VIX9D, VIX and VIX3M closes (index points).

    Raises
    ------
    ModelledHistoryError
        A level that is not a finite number in [3, 200].
    """
    x = (_check_level("vix9d", vix9d), _check_level("vix", vix), _check_level("vix3m", vix3m))
    raw = [max(a + b * v / 100.0, 0.01) for a, b, v in zip(params.atm_a, params.atm_b, x, strict=True)]
    pins = [raw[0]]
    w_prev, t_prev = raw[0] ** 2 * _PIN_T[0], _PIN_T[0]
    for s, t in zip(raw[1:], _PIN_T[1:], strict=True):
        w_min = w_prev + (params.fwd_floor * s) ** 2 * (t - t_prev)
        w = max(s * s * t, w_min)
        pins.append(math.sqrt(w / t))
        w_prev, t_prev = w, t
    floored = any(p > r + 1e-12 for p, r in zip(pins, raw, strict=True))
    level = min(max(x[1] / 100.0, params.level_range[0]), params.level_range[1]) - 0.2
    slope = min(max(math.log(x[2] / x[1]), params.slope_range[0]), params.slope_range[1])
    rho = params.rho0 + params.rho_level * level + params.rho_slope * slope
    rho = min(max(rho, _RHO_BOUNDS[0]), _RHO_BOUNDS[1])
    eta = min(params.eta0 * math.exp(params.eta_level * level), 0.999 * modelled.eta_max(rho, params.gamma))
    sigma_inf = max(params.long_a + params.long_b * pins[2], 0.01)
    return DaySurface(vix9d=x[0], vix=x[1], vix3m=x[2], atm_pins=tuple(pins), floored=floored,
                      sigma_inf=sigma_inf, kappa=params.kappa, rho=rho, eta=eta, gamma=params.gamma)


# ==================================================================================================
# Quotes


@dataclasses.dataclass(frozen=True)
class ModelQuotes:
    """Model quotes of a set of contracts (arrays of one broadcast shape).

    Attributes
    ----------
    theo : ndarray
        BSM value at the model IV, dollars per unit of the index (x100 per contract).
    bid, ask : ndarray
        On Cboe's tick (0.05 below 3.00, else 0.10); ``bid >= 0``, ``ask >= bid + one tick``.
    iv : ndarray
        Model implied vol, decimal.
    delta : ndarray
        BSM delta at the model IV (calls in (0, 1), puts in (-1, 0)).
    """

    theo: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    iv: np.ndarray
    delta: np.ndarray


def model_spread(theo, T, vix, params: HistorySurfaceParams = HISTORY_SURFACE) -> np.ndarray:
    """Modelled bid/ask width (dollars) at theoretical value ``theo``, tenor ``T`` (years) and VIX level(s)
    (index points); broadcasts."""
    c0, c1, c2, c3, c4, c5 = params.spread_coef
    x = np.log(np.maximum(np.asarray(theo, dtype=float), 0.01))
    t = np.log(np.asarray(T, dtype=float))
    v = np.log(np.asarray(vix, dtype=float) / 20.0)
    return np.exp(c0 + c1 * x + c2 * x * x + c3 * t + c4 * x * t + c5 * v)


def model_quotes(spot, strike, T, is_call, rate, div_yield, surface: DaySurface,
                 params: HistorySurfaceParams = HISTORY_SURFACE, *, spread_scale: float = 1.0) -> ModelQuotes:
    """Price contracts with the day's model surface: value, bid/ask, IV and delta.

    Parameters
    ----------
    spot : float or array
        Index level (points), > 0.
    strike : array-like
        Strikes (points), > 0.
    T : array-like
        Years to settlement, > 0 (an expired contract has no quote: settle it instead).
    is_call : array-like of bool (or "C"/"P")
    rate, div_yield : float or array
        Continuously compounded, decimals per year.
    surface : DaySurface
    params : HistorySurfaceParams
        Its ``spread_coef`` sets the width.
    spread_scale : float, default 1.0
        Multiplies the modelled width (a stress on fills: the 2011 sample's quotes are ~3.4x wider than the
        2019/2026 fit, see :data:`CALIBRATION`); must be > 0.

    Returns
    -------
    ModelQuotes
        Arrays broadcast over the inputs. Deterministic.

    Raises
    ------
    ModelledHistoryError
        A non-positive or non-finite spot, strike or T, or a non-finite rate/yield.
    """
    S = np.asarray(spot, dtype=float)
    K = np.asarray(strike, dtype=float)
    Tm = np.asarray(T, dtype=float)
    r = np.asarray(rate, dtype=float)
    q = np.asarray(div_yield, dtype=float)
    for name, arr in (("spot", S), ("strike", K), ("T", Tm)):
        bad = ~(np.isfinite(arr) & (arr > 0))
        if bad.any():
            raise ModelledHistoryError(f"model_quotes: {name} must be finite and > 0; {int(bad.sum())} bad "
                                       f"value(s), e.g. {arr[bad].flat[0]!r}")
    for name, arr in (("rate", r), ("div_yield", q)):
        if not np.isfinite(arr).all():
            raise ModelledHistoryError(f"model_quotes: {name} must be finite")
    if not (isinstance(spread_scale, int | float) and math.isfinite(spread_scale) and spread_scale > 0):
        raise ModelledHistoryError(f"model_quotes: spread_scale must be a finite number > 0, got {spread_scale!r}")
    call = pricing.as_is_call(is_call)
    F = S * np.exp((r - q) * Tm)
    iv = surface.iv(np.log(K / F), Tm)
    g = pricing.greeks(S, K, Tm, iv, r, q, call)
    theo = np.maximum(g.price, 0.0)
    bid, ask = modelled.quotes_around(theo, spread_scale * model_spread(theo, Tm, surface.vix, params))
    shape = np.broadcast_shapes(S.shape, K.shape, Tm.shape, np.shape(call), r.shape, q.shape)
    out = [np.broadcast_to(a, shape).copy() for a in (theo, np.round(bid, 2), np.round(ask, 2), iv, g.delta)]
    return ModelQuotes(*out)


# ==================================================================================================
# Measuring a real chain the way the model is described


@dataclasses.dataclass(frozen=True)
class VolSummary:
    """ATM implied vols and the 25-delta skew of a real chain, from its mid quotes.

    Attributes
    ----------
    day : datetime.date
        The market date the quotes describe.
    spot : float
        The chain's spot (what its quotes match).
    atm : dict
        Tenor (calendar days) -> ATM vol (decimal), ATM total variance interpolated linearly in T between the
        bracketing expiries; NaN when the expiries do not bracket the tenor.
    skew25 : float
        IV(25-delta put) - IV(25-delta call) at 30 days (decimal; forward deltas), NaN when not bracketed.
    expiries : int
        Expiries with a usable smile.
    """

    day: Any
    spot: float
    atm: dict
    skew25: float
    expiries: int


def skew25(k, iv, T) -> float:
    """IV(25-delta put) - IV(25-delta call) of one smile (decimal), with forward deltas (r = q = 0 about F).

    ``k`` (log-moneyness ln(K/F)) and ``iv`` (decimal) are one expiry's out-of-the-money points; ``T`` years.
    NaN when the smile does not reach 25 delta on both sides.
    """
    k = np.asarray(k, dtype=float)
    iv = np.asarray(iv, dtype=float)
    sd = iv * math.sqrt(T)
    d1 = -k / sd + 0.5 * sd
    put_d = ndtr(-d1)  # |delta| of the put
    call_d = ndtr(d1)
    put = (k <= 0) & (put_d > 0.02) & (put_d < 0.6)
    call = (k >= 0) & (call_d > 0.02) & (call_d < 0.6)
    if put.sum() < 2 or call.sum() < 2:
        return math.nan
    pd_, pv = put_d[put], iv[put]
    cd_, cv = call_d[call], iv[call]
    if not (pd_.min() <= 0.25 <= pd_.max() and cd_.min() <= 0.25 <= cd_.max()):
        return math.nan
    o1, o2 = np.argsort(pd_), np.argsort(cd_)
    return float(np.interp(0.25, pd_[o1], pv[o1]) - np.interp(0.25, cd_[o2], cv[o2]))


def chain_smile_points(snapshot: ChainSnapshot, *, rate: float = 0.0, min_days: float = 1.5) -> pd.DataFrame:
    """The out-of-the-money implied vols of a real chain, recomputed from its mid quotes.

    Per expiry (one root per date: :func:`research_lib.core.parity.implied_forwards` prefers PM rows), the
    forward from put-call parity near the money (mids discounted at ``rate``), and the implied vol of every
    out-of-the-money two-sided quote (``bid > 0``, ``ask > bid``) at that forward (``q`` implied by it). Vendor
    IVs are not used, so every source is measured alike.

    Returns
    -------
    DataFrame
        One row per quote: ``expiration``, ``root``, ``T`` (years, calendar time from the quote's market
        moment to settlement), ``forward``, ``strike``, ``right``, ``k`` (ln(K/F)), ``iv`` (decimal),
        ``bid``, ``ask``, ``mid``; expiries nearer than ``min_days`` are left out.
    """
    config = GexConfig.model(rate=rate, div_yield=0.0)
    fw = implied_forwards(snapshot, config)
    c = snapshot.contracts
    T = time_to_expiry(snapshot, config)
    S = float(snapshot.spot)
    parts = []
    for f in fw.itertuples(index=False):
        sel = ((c["expiration"] == f.expiration) & (c["root"] == f.root)).to_numpy() & (T > min_days / 365.0)
        if not sel.any():
            continue
        t = float(T[sel][0])
        g = c[sel]
        ok = ((g["bid"] > 0) & (g["ask"] > g["bid"])).to_numpy().copy()
        k = np.log(g["strike"].to_numpy() / f.forward)
        right = g["right"].to_numpy()
        ok &= ((right == "P") & (k < 0)) | ((right == "C") & (k >= 0))
        if ok.sum() < 4:
            continue
        g, k = g[ok], k[ok]
        mid = 0.5 * (g["bid"] + g["ask"]).to_numpy()
        q = rate - math.log(f.forward / S) / t
        res = pricing.implied_vol(mid, S, g["strike"].to_numpy(), t, rate, q, g["right"].to_numpy() == "C")
        good = np.isfinite(res.iv) & (res.iv > 0)
        parts.append(pd.DataFrame({
            "expiration": f.expiration, "root": f.root, "T": t, "forward": f.forward,
            "strike": g["strike"].to_numpy()[good], "right": g["right"].to_numpy()[good], "k": k[good],
            "iv": res.iv[good], "bid": g["bid"].to_numpy()[good], "ask": g["ask"].to_numpy()[good],
            "mid": mid[good]}))
    cols = ["expiration", "root", "T", "forward", "strike", "right", "k", "iv", "bid", "ask", "mid"]
    if not parts:
        return pd.DataFrame({col: pd.Series(dtype=float) for col in cols})
    return pd.concat(parts, ignore_index=True)[cols].sort_values(["T", "k"], kind="stable").reset_index(drop=True)


def chain_vol_summary(snapshot: ChainSnapshot, *, rate: float = 0.0, tenors_days=PIN_DAYS,
                      points: pd.DataFrame | None = None) -> VolSummary:
    """ATM vols at ``tenors_days`` and the 30-day 25-delta skew of a real chain, measured from mid quotes.

    From :func:`chain_smile_points` (or ``points``, its output for this chain): per expiry, the ATM vol
    interpolated in k at 0 and the 25-delta skew (:func:`skew25`); tenors interpolate total variance linearly
    in T between the two bracketing expiries (the skew linearly); NaN when no pair brackets a tenor.
    """
    pts = chain_smile_points(snapshot, rate=rate) if points is None else points
    rows = []
    for t, g in pts.groupby("T", sort=True):
        k, iv = g["k"].to_numpy(), g["iv"].to_numpy()
        if (k < 0).sum() < 2 or (k > 0).sum() < 2:
            continue
        rows.append((float(t), float(np.interp(0.0, k, iv)), skew25(k, iv, float(t))))
    Ts = np.array([r[0] for r in rows])

    def at(days: float, col: int) -> float:
        target = days / 365.0
        if len(Ts) == 0 or not (Ts[0] <= target <= Ts[-1]):
            return math.nan
        j = int(np.searchsorted(Ts, target))
        if Ts[j] == target:
            return rows[j][col]
        a, b = rows[j - 1], rows[j]
        wgt = (target - a[0]) / (b[0] - a[0])
        if col == 1:
            w = a[1] ** 2 * a[0] + (b[1] ** 2 * b[0] - a[1] ** 2 * a[0]) * wgt
            return math.sqrt(max(w, 0.0) / target)
        return a[col] + (b[col] - a[col]) * wgt

    day = cal.market_moment(snapshot.quote_time).date()
    return VolSummary(day=day, spot=float(snapshot.spot), atm={float(d): at(float(d), 1) for d in tenors_days},
                      skew25=at(30.0, 2), expiries=len(rows))


def chain_expiries(snapshot: ChainSnapshot, *, max_dte: int | None = None) -> pd.DataFrame:
    """The expiries a real chain lists, in the scheme of :func:`research_lib.data.modelled.listed_expiries`.

    An expiry counts when one of its contracts has open interest or a quote (bid or ask > 0) and it has not
    settled at the chain's quote time. Roots: ``SPX`` (AM) stays, every other root (``SPXW``, and 2011's
    ``SPXPM``, the PM end-of-quarter series of the iVolatility sample) is ``SPXW``; a Saturday expiration
    (OCC's dating of AM monthlies before 2015-02-15) is dated on the Friday before, its settlement day.

    Returns
    -------
    DataFrame
        ``expiration`` (datetime64, midnight), ``root``, ``dte`` (calendar days from the quote's market date),
        sorted; only ``dte <= max_dte`` when given.
    """
    c = snapshot.contracts
    live = ((c["open_interest"].fillna(0) > 0) | (c["bid"].fillna(0) > 0) | (c["ask"].fillna(0) > 0)).to_numpy()
    g = c.loc[live, ["root", "expiration", "settlement"]].drop_duplicates()
    settles = cal.settlement_times(g["expiration"].to_numpy(), g["settlement"].to_numpy())
    g = g[np.asarray(settles > snapshot.quote_time)]
    exp = g["expiration"].where(g["expiration"].dt.day_of_week != 5, g["expiration"] - pd.Timedelta(days=1))
    market_day = pd.Timestamp(cal.market_moment(snapshot.quote_time).date())
    out = pd.DataFrame({"expiration": exp.to_numpy(), "root": np.where(g["root"] == "SPX", "SPX", "SPXW")})
    out = out.drop_duplicates()
    out["dte"] = (out["expiration"] - market_day).dt.days
    if max_dte is not None:
        out = out[out["dte"] <= max_dte]
    return out.sort_values(["expiration", "root"]).reset_index(drop=True)


def model_skew25(surface: DaySurface, days: float = 30.0) -> float:
    """The model's 25-delta put minus call IV at ``days`` (decimal), measured as :func:`skew25` measures a
    real smile (on a dense k grid)."""
    T = days / 365.0
    k = np.linspace(-1.0, 0.6, 801)
    return skew25(k, surface.iv(k, T), T)


# ==================================================================================================
# Calibration figures


@dataclasses.dataclass(frozen=True)
class HistoryCalibration:
    """What the history's calibration achieved (written by ``benchmarks/calibrate_history.py``).

    Attributes
    ----------
    fit_date : str
        ISO date of the fit.
    sources : tuple of str
        The chain files used.
    days : dict
        Source label -> number of chain days used.
    atm_error : dict
        Tenor (days) -> ``(median, p90)`` absolute ATM IV error, vol points (model from the VIX family
        minus the chain's measured ATM vol), in sample.
    skew25_error : tuple
        ``(median, p90)`` absolute error of the 30-day 25-delta put-call skew, vol points.
    spread_log_sd : float
        Residual SD of log(ask - bid) of the spread model.
    spread_error : tuple
        ``(median, p90)`` absolute error of the modelled width at the real contract's mid, dollars.
    out_of_sample : dict
        Label (e.g. ``"fit 2026 -> 2011/2019/2022-24"``: map, ranges and shape refitted on the years before the
        arrow, errors measured on the years after it) -> tenor (days) -> ``(median, p90)`` absolute ATM
        error, and ``"skew25"`` -> the same for the skew; vol points.
    notes : tuple of str
    """

    fit_date: str
    sources: tuple
    days: dict
    atm_error: dict
    skew25_error: tuple
    spread_log_sd: float
    spread_error: tuple
    out_of_sample: dict
    notes: tuple = ()

    def to_dict(self) -> dict:
        """JSON-ready (every field; tuples as lists)."""
        return jsonable(dataclasses.asdict(self))


#: Written 2026-12-01 from benchmarks/calibrate_history.py's output (the fit of :data:`HISTORY_SURFACE`).
CALIBRATION = HistoryCalibration(
    fit_date="2026-12-01",
    sources=("spx_ivolatility_2011-01-03_2011-01-07.csv.gz", "spx_intraday_2019-04-25_2019-07-22.parquet",
             "spx_2022-02-05.csv", "spx_2022-06-11.csv", "spx_2022-07-12.csv", "spx_2023-09-14.csv",
             "spx_2024-01-07.csv", "spx_eod_2026-06-12_2026-08-21.parquet"),
    days={"2011": 5, "2019": 56, "2022-24": 5, "2026": 26},
    atm_error={9.0: (0.5, 1.37), 30.0: (0.56, 1.24), 93.0: (0.69, 1.17)},
    skew25_error=(0.57, 1.18),
    spread_log_sd=0.424,
    spread_error=(0.075, 0.465),
    out_of_sample={
        "fit 2026 -> 2011/2019/2022-24": {9.0: (0.86, 1.86), 30.0: (0.85, 2.15), 93.0: (1.3, 2.05),
                                          "skew25": (0.84, 1.5)},
        "fit 2011+2019 -> 2022-24/2026": {9.0: (0.65, 1.65), 30.0: (1.25, 2.02), 93.0: (2.01, 2.47),
                                          "skew25": (0.44, 1.37)},
    },
    notes=("2019 chains are intraday (quotes at underlying_last) paired with the day's VIX-family closes",
           "2011-01-03 has no VIX9D close (Cboe's file starts 2011-01-04): 30/93-day pins only that day",
           "errors are model (from the VIX family alone) minus the chain's measured ATM vol / skew",
           "spreads out of sample: 2011 log(model/real) width mean -1.21 (x3.4), 2022-24 log(model/real) width "
           "mean -0.07 (x1.1)"),
)


def describe_calibration(calibration: HistoryCalibration = CALIBRATION) -> str:
    """One paragraph for reports: what the model-priced history was calibrated on and how far off it is."""
    c = calibration
    days = ", ".join(f"{n} {k}" for k, n in c.days.items())
    atm = "; ".join(f"{d:g} days {m:.2f} / {p:.2f}" for d, (m, p) in c.atm_error.items())
    oos = "; ".join(f"{label}: ATM p90 " + ", ".join(f"{d:g}d {p:.2f}" for d, (_, p) in errs.items()
                                                    if not isinstance(d, str))
                    + (f", skew p90 {errs['skew25'][1]:.2f}" if "skew25" in errs else "")
                    for label, errs in c.out_of_sample.items())
    return (f"MODELLED PRICES: options are priced by an SSVI surface tied to the day's VIX9D, VIX and VIX3M, "
            f"calibrated on {sum(c.days.values())} days of real SPX chains ({days}; fit {c.fit_date}). "
            f"ATM IV error (median / 90th percentile, vol points): {atm}. 25-delta skew error "
            f"{c.skew25_error[0]:.2f} / {c.skew25_error[1]:.2f} vol points. Bid/ask width: residual log-SD "
            f"{c.spread_log_sd:.2f}, error {c.spread_error[0]:.2f} / {c.spread_error[1]:.2f} dollars. "
            f"Out of sample: {oos or 'not measured'}.")


# ==================================================================================================
# A compact modelled chain of a day


def history_snapshot(date, *, spot: float, vix9d: float, vix: float, vix3m: float, rate: float,
                     div_yield: float, max_dte: int = 120, delta_band=(0.02, 0.98),
                     params: HistorySurfaceParams = HISTORY_SURFACE) -> ChainSnapshot:
    """The modelled chain of ``date`` at its close: listed expiries within ``max_dte``, strikes inside a
    delta band, both rights, priced by :func:`model_quotes`.

    Parameters
    ----------
    date : date-like
        An NYSE session; the chain is quoted at its close (16:00, 13:00 on an early close).
    spot, vix9d, vix, vix3m, rate, div_yield : float
        The day's inputs (a row of :func:`research_lib.data.market.load_day_table`).
    max_dte : int, default 120
        Calendar days; expiries further out are left out.
    delta_band : (float, float), default (0.02, 0.98)
        Strikes of an expiry are kept when the call's |delta| lies inside the band for the call row and the
        put's for the put row.

    Returns
    -------
    ChainSnapshot
        ``modelled=True``, source :data:`SOURCE`, notes starting :data:`MODELLED_NOTE` and listing every
        input; ``open_interest`` is :data:`SNAPSHOT_OPEN_INTEREST` (not modelled), ``volume`` 0, ``last`` NaN,
        ``gamma`` from the model.

    Raises
    ------
    ModelledHistoryError
        A non-session date, a bad input or band, or no contract inside the band.
    """
    day = pd.Timestamp(date).normalize()
    if not cal.is_session(day):
        raise ModelledHistoryError(f"history_snapshot: {day.date()} is not an NYSE session")
    try:
        lo, hi = (float(x) for x in delta_band)
    except (TypeError, ValueError) as exc:
        raise ModelledHistoryError(f"delta_band must be two numbers, got {delta_band!r}") from exc
    if not (0.0 < lo < hi < 1.0):
        raise ModelledHistoryError(f"delta_band must satisfy 0 < low < high < 1, got {delta_band!r}")
    if isinstance(max_dte, bool) or int(max_dte) != max_dte or max_dte < 0:
        raise ModelledHistoryError(f"max_dte must be a non-negative whole number of days, got {max_dte!r}")
    S = float(spot)
    if not (math.isfinite(S) and S > 0):
        raise ModelledHistoryError(f"spot must be finite and > 0, got {spot!r}")
    surf = day_surface(vix9d, vix, vix3m, params)
    qt = cal.session_close(day)
    rules = modelled.listing_rules(day)
    expiries = modelled.listed_expiries(qt, rules=rules)
    expiries = expiries[expiries["dte"] <= max_dte]
    parts = []
    for row in expiries.itertuples(index=False):
        T = max((row.settles_at - qt).total_seconds(), 60.0) / cal.YEAR_SECONDS
        K = modelled.strike_grid(S, T, row.kind, dte=int(row.dte), month=row.expiration.month, rules=rules)
        if len(K) == 0:
            continue
        for right in ("C", "P"):
            mq = model_quotes(S, K, T, np.full(len(K), right == "C"), rate, div_yield, surf, params)
            keep = (np.abs(mq.delta) > lo) & (np.abs(mq.delta) < hi)
            if not keep.any():
                continue
            g = pricing.gamma(S, K[keep], T, mq.iv[keep], rate, div_yield)
            parts.append(pd.DataFrame({
                "root": row.root, "expiration": row.expiration, "settlement": row.settlement, "strike": K[keep],
                "right": right, "bid": mq.bid[keep], "ask": mq.ask[keep], "last": np.nan, "volume": 0.0,
                "open_interest": SNAPSHOT_OPEN_INTEREST, "iv": mq.iv[keep], "delta": mq.delta[keep],
                "gamma": np.asarray(g, dtype=float)}))
    if not parts:
        raise ModelledHistoryError(f"history_snapshot: no contract of {day.date()} within {max_dte} days "
                                   f"has |delta| in {delta_band}")
    contracts = pd.concat(parts, ignore_index=True)
    notes = [
        MODELLED_NOTE,
        f"date {day.date()}, quote_time {qt.isoformat()} (the session close)",
        f"spot {S:g}, vix9d {surf.vix9d:g}, vix {surf.vix:g}, vix3m {surf.vix3m:g}, rate {float(rate):g}, "
        f"div_yield {float(div_yield):g}",
        f"max_dte {int(max_dte)}, delta_band ({lo:g}, {hi:g})",
        "ATM vol at 9/30/93 days " + "/".join(f"{p:.4f}" for p in surf.atm_pins)
        + f", rho {surf.rho:.3f}, eta {surf.eta:.3f}" + (" (forward-variance floor bound)" if surf.floored else ""),
        f"open_interest {SNAPSHOT_OPEN_INTEREST:g} on every contract (not modelled), volume 0",
        f"calibration: {CALIBRATION.fit_date} (research_lib.data.modelled_history.CALIBRATION)",
    ]
    return ChainSnapshot.create(underlying="SPX", spot=S, quote_time=qt, source=SOURCE, contracts=contracts,
                                snapshot_date=day.date(), modelled=True, notes=notes)
