"""Vectorised Black-Scholes-Merton pricing, greeks and implied volatility.

European options on an underlying with a continuous dividend yield ``q``, discounted at a
continuously compounded risk-free rate ``r``. Every function is a pure numpy function that
broadcasts over its arguments (numpy arrays, pandas Series or scalars); there are no Python
loops over contracts.

Units
-----
Inputs (the same for every function):

=========== ===============================================================================
``S``       spot price of the underlying, in currency units (> 0)
``K``       strike, in the same currency units as ``S`` (> 0)
``T``       time to expiry in YEARS (> 0), e.g. ``calendar_days / 365``
``sigma``   annualised volatility as a decimal (0.20 = 20 %) (> 0)
``r``       continuously compounded risk-free rate, annual decimal (0.05 = 5 %)
``q``       continuous dividend yield, annual decimal (0.015 = 1.5 %)
``is_call`` boolean (True = call, False = put); 'C' / 'P' strings are accepted as well
=========== ===============================================================================

Outputs:

=========== ===============================================================================
``price``   option value in currency units (per 1 unit of underlying, no contract multiplier)
``delta``   dV/dS per 1.00 move of the underlying; calls in [0, e^{-qT}], puts in [-e^{-qT}, 0]
``gamma``   d2V/dS2: change in delta per 1.00 move of the underlying (same for calls and puts)
``vega``    dV/dsigma per 1.00 of vol (= 100 vol points); divide by 100 for "per vol point"
``theta``   dV/dt per YEAR of calendar time passing (= -dV/dT); divide by 365 for per day
``rho``     dV/dr per 1.00 of rate; divide by 100 for "per 1 % rate move"
``vanna``   d2V/dS dsigma = d(delta)/d(sigma), per 1.00 of vol
``charm``   d(delta)/dt per YEAR of calendar time passing (= -d(delta)/dT); / 365 for per day
``iv``      implied volatility, annualised decimal, like ``sigma``
=========== ===============================================================================

Invalid elements
----------------
Nothing raises and no numpy ``RuntimeWarning`` is emitted for bad individual elements. An element
is invalid when ``T <= 0``, ``sigma <= 0``, ``S <= 0``, ``K <= 0`` or any of its inputs is NaN or
infinite; its result is NaN. Results that overflow double precision (absurd inputs such as
``q * T = -1000``) are NaN as well, so every output is either finite or NaN, never infinite.

Return types
------------
If every argument is a scalar the functions return a numpy float64 (a ``float`` subclass);
otherwise an ``ndarray`` of the broadcast shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import erf, ndtr, ndtri

__all__ = [
    "Greeks",
    "ImpliedVolResult",
    "IV_REASONS",
    "as_is_call",
    "charm",
    "d1_d2",
    "delta",
    "gamma",
    "greeks",
    "implied_vol",
    "price",
    "rho",
    "theta",
    "vanna",
    "vega",
]

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
_INV_SQRT2 = 1.0 / np.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
_EPS = np.finfo(np.float64).eps

#: Every value ``ImpliedVolResult.reason`` can take.
IV_REASONS = (
    "ok",
    "bad_input",
    "expired",
    "no_price",
    "above_upper_bound",
    "below_intrinsic",
    "no_time_value",
    "no_convergence",
)

_CALL_TOKENS = frozenset({"C", "CALL"})
_PUT_TOKENS = frozenset({"P", "PUT"})


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def as_is_call(right: Any) -> np.ndarray:
    """Convert option rights to a boolean array (True = call).

    Parameters
    ----------
    right : array_like of bool or str
        Booleans (returned unchanged) or strings ``'C'`` / ``'P'`` (also ``'CALL'`` / ``'PUT'``;
        case-insensitive, surrounding whitespace ignored). Object arrays (e.g. a pandas Series)
        may mix Python booleans and such strings.

    Returns
    -------
    numpy.ndarray of bool
        Same shape as ``right`` (0-d for a scalar).

    Raises
    ------
    ValueError
        If any element is not a recognised right; the message names the offending value.
    """
    arr = np.asarray(right)
    kind = arr.dtype.kind
    if kind == "b":
        return arr
    if kind not in "USO":
        bad = arr.ravel()[0] if arr.size else arr.dtype
        raise ValueError(
            f"invalid option right {bad!r} (dtype {arr.dtype}): expected booleans or 'C'/'P' strings"
        )
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=bool)
    tokens = np.char.upper(np.char.strip(arr.astype(str)))
    uniq, inverse = np.unique(tokens.ravel(), return_inverse=True)
    allowed_bool = kind == "O"  # Python True/False inside object arrays become 'TRUE'/'FALSE'
    mapped = np.empty(uniq.size, dtype=bool)
    for i, tok in enumerate(uniq.tolist()):  # loop over distinct values only (at most a handful)
        if tok in _CALL_TOKENS or (allowed_bool and tok == "TRUE"):
            mapped[i] = True
        elif tok in _PUT_TOKENS or (allowed_bool and tok == "FALSE"):
            mapped[i] = False
        else:
            original = arr.ravel()[np.flatnonzero(inverse == i)[0]]
            raise ValueError(
                f"invalid option right {original!r}: expected 'C'/'P' (or 'CALL'/'PUT') or booleans"
            )
    return mapped[inverse].reshape(arr.shape)


def _f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _valid_mask(S, K, T, sigma, r, q) -> np.ndarray:
    """True where every input is finite and S, K, T, sigma are strictly positive (broadcast)."""
    masks = [np.isfinite(a) & (a > 0) for a in (S, K, T, sigma)]
    masks += [np.isfinite(a) for a in (r, q)]
    masks.sort(key=np.size)  # combine the small (broadcast) masks first
    mask = masks[0]
    for m in masks[1:]:
        mask = mask & m
    return mask


# Block size (elements) of the cache-friendly evaluation of large inputs, see ``_evaluate``.
_BLOCK = 16384


def _evaluate(kernel, n_out: int, S, K, T, sigma, r, q, is_call=None):
    """Broadcast the inputs, run ``kernel`` and return ``n_out`` cleaned-up outputs.

    ``kernel(S, K, T, sigma, r, q, w)`` receives float64 arrays (and ``w = +1.0`` for calls,
    ``-1.0`` for puts, or None) that broadcast together and returns a tuple of ``n_out``
    arrays. Elements that are invalid (see :func:`_valid_mask`) or not finite become NaN.

    Large inputs are processed in blocks of about ``_BLOCK`` elements along the first axis:
    the arithmetic is memory-bound, and keeping the temporaries in cache makes e.g. a
    22,000 x 400 gamma grid about twice as fast. Operands are sliced, never expanded, so an
    ``(n, 1)`` spot against ``(1, m)`` strikes stays cheap. This loops over blocks of
    elements, never over individual contracts.
    """
    arrays = [_f64(a) for a in (S, K, T, sigma, r, q)]
    w = None
    if is_call is not None:
        w = np.where(as_is_call(is_call), 1.0, -1.0)
        arrays.append(w)
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    scalar = all(a.ndim == 0 for a in arrays)
    if w is None:
        arrays.append(None)

    def run(parts):
        res = kernel(*parts)
        valid = _valid_mask(*parts[:6])
        return [np.where(valid & np.isfinite(x), x, np.nan) for x in res]

    with np.errstate(all="ignore"):
        size = int(np.prod(shape))
        inner = int(np.prod(shape[1:])) if shape else 1
        if not shape or size <= 2 * _BLOCK or shape[0] == 1:
            outs = [x if x.shape == shape else np.array(np.broadcast_to(x, shape)) for x in run(arrays)]
        else:
            outs = [np.empty(shape) for _ in range(n_out)]
            rows = max(1, _BLOCK // max(inner, 1))
            nd = len(shape)
            for start in range(0, shape[0], rows):
                sl = slice(start, start + rows)
                parts = [a[sl] if a is not None and a.ndim == nd and a.shape[0] != 1 else a for a in arrays]
                for out, x in zip(outs, run(parts), strict=True):
                    out[sl] = x
    if scalar:
        return [o[()] for o in outs]
    return outs


def _std_d1(S, K, T, sigma, r, q):
    sqrt_t = np.sqrt(T)
    std = sigma * sqrt_t
    d1 = (np.log(S / K) + (r - q) * T) / std + std * 0.5
    return sqrt_t, std, d1


def _pdf_disc_q(d1, q, T):
    """``e^{-qT} phi(d1)`` in a single exponential (no ``inf * 0``)."""
    return np.exp((d1 * d1) * -0.5 + (-q * T - _LOG_SQRT_2PI))


def _k_d1d2(S, K, T, sigma, r, q, w):
    _, std, d1 = _std_d1(S, K, T, sigma, r, q)
    return d1, d1 - std


def _k_price(S, K, T, sigma, r, q, w):
    _, std, d1 = _std_d1(S, K, T, sigma, r, q)
    return (w * (S * np.exp(-q * T) * ndtr(w * d1) - K * np.exp(-r * T) * ndtr(w * (d1 - std))),)


def _k_delta(S, K, T, sigma, r, q, w):
    _, _, d1 = _std_d1(S, K, T, sigma, r, q)
    return (w * np.exp(-q * T) * ndtr(w * d1),)


def _k_gamma(S, K, T, sigma, r, q, w):
    _, std, d1 = _std_d1(S, K, T, sigma, r, q)
    return (_pdf_disc_q(d1, q, T) / (S * std),)


def _k_vega(S, K, T, sigma, r, q, w):
    sqrt_t, _, d1 = _std_d1(S, K, T, sigma, r, q)
    return (S * _pdf_disc_q(d1, q, T) * sqrt_t,)


def _k_theta(S, K, T, sigma, r, q, w):
    sqrt_t, std, d1 = _std_d1(S, K, T, sigma, r, q)
    decay = -S * _pdf_disc_q(d1, q, T) * sigma / (2.0 * sqrt_t)
    carry = q * S * np.exp(-q * T) * ndtr(w * d1) - r * K * np.exp(-r * T) * ndtr(w * (d1 - std))
    return (decay + w * carry,)


def _k_rho(S, K, T, sigma, r, q, w):
    _, std, d1 = _std_d1(S, K, T, sigma, r, q)
    return (w * K * T * np.exp(-r * T) * ndtr(w * (d1 - std)),)


def _k_vanna(S, K, T, sigma, r, q, w):
    _, std, d1 = _std_d1(S, K, T, sigma, r, q)
    return (-_pdf_disc_q(d1, q, T) * (d1 - std) / sigma,)


def _k_charm(S, K, T, sigma, r, q, w):
    _, std, d1 = _std_d1(S, K, T, sigma, r, q)
    g = _pdf_disc_q(d1, q, T) * ((r - q) / std - (d1 - std) / (2.0 * T))
    return (w * q * np.exp(-q * T) * ndtr(w * d1) - g,)


def _k_greeks(S, K, T, sigma, r, q, w):
    sqrt_t, std, d1 = _std_d1(S, K, T, sigma, r, q)
    d2 = d1 - std
    disc_q = np.exp(-q * T)
    pdf_q = _pdf_disc_q(d1, q, T)
    n1 = ndtr(w * d1)
    n2 = ndtr(w * d2)
    s_dq = S * disc_q
    k_dr = K * np.exp(-r * T)
    value = w * (s_dq * n1 - k_dr * n2)
    dlt = w * disc_q * n1
    gam = pdf_q / (S * std)
    veg = S * pdf_q * sqrt_t
    tht = -S * pdf_q * sigma / (2.0 * sqrt_t) + w * (q * s_dq * n1 - r * k_dr * n2)
    van = -pdf_q * d2 / sigma
    chm = w * q * disc_q * n1 - pdf_q * ((r - q) / std - d2 / (2.0 * T))
    return value, dlt, gam, veg, tht, van, chm


# --------------------------------------------------------------------------------------------
# d1 / d2, price and greeks
# --------------------------------------------------------------------------------------------
def d1_d2(S, K, T, sigma, r=0.0, q=0.0):
    """Black-Scholes-Merton ``d1`` and ``d2``.

    Parameters
    ----------
    S, K : array_like
        Spot and strike (currency units, > 0).
    T : array_like
        Time to expiry in years (> 0).
    sigma : array_like
        Annualised volatility, decimal (> 0).
    r, q : array_like, default 0.0
        Continuously compounded risk-free rate and dividend yield, decimal.

    Returns
    -------
    d1, d2 : ndarray or float
        ``d1 = (ln(S/K) + (r - q + sigma^2/2) T) / (sigma sqrt(T))`` and
        ``d2 = d1 - sigma sqrt(T)``; dimensionless. NaN for invalid elements.
    """
    d1, d2 = _evaluate(_k_d1d2, 2, S, K, T, sigma, r, q)
    return d1, d2


def price(S, K, T, sigma, r, q, is_call):
    """Black-Scholes-Merton value of a European option.

    Parameters
    ----------
    S, K : array_like
        Spot and strike (currency units, > 0).
    T : array_like
        Time to expiry in years (> 0).
    sigma : array_like
        Annualised volatility, decimal (> 0).
    r, q : array_like
        Continuously compounded risk-free rate and dividend yield, decimal.
    is_call : array_like of bool (or 'C'/'P')
        True for calls, False for puts.

    Returns
    -------
    ndarray or float
        Option value in currency units, ``S e^{-qT} N(d1) - K e^{-rT} N(d2)`` for calls and
        ``K e^{-rT} N(-d2) - S e^{-qT} N(-d1)`` for puts. NaN for invalid elements.
    """
    return _evaluate(_k_price, 1, S, K, T, sigma, r, q, is_call)[0]


def delta(S, K, T, sigma, r, q, is_call):
    """Delta, dV/dS: change in option value per 1.00 move of the underlying.

    Parameters are as in :func:`price`.

    Returns
    -------
    ndarray or float
        ``e^{-qT} N(d1)`` for calls (in [0, 1]), ``-e^{-qT} N(-d1)`` for puts (in [-1, 0]).
        NaN for invalid elements.
    """
    return _evaluate(_k_delta, 1, S, K, T, sigma, r, q, is_call)[0]


def gamma(S, K, T, sigma, r=0.0, q=0.0, is_call=None):
    """Gamma, d2V/dS2: change in delta per 1.00 move of the underlying.

    Identical for calls and puts. ``is_call`` is accepted only so that all greeks share a
    signature; it does not change the value (it does take part in broadcasting).

    Parameters
    ----------
    S, K, T, sigma, r, q
        As in :func:`price` (years, decimals, currency units).
    is_call : array_like of bool, optional
        Ignored except for broadcasting.

    Returns
    -------
    ndarray or float
        ``e^{-qT} phi(d1) / (S sigma sqrt(T))``, in 1/currency units. NaN for invalid elements.
        The change in dollar delta for a 1 % move of the underlying is ``gamma * S**2 / 100``
        (per unit of underlying; multiply by the contract multiplier for one contract).
    """
    return _evaluate(_k_gamma, 1, S, K, T, sigma, r, q, is_call)[0]


def vega(S, K, T, sigma, r=0.0, q=0.0, is_call=None):
    """Vega, dV/dsigma per 1.00 of volatility (i.e. per 100 vol points).

    Divide by 100 to get the value change per 1 vol point (e.g. 20 % -> 21 %). Identical for
    calls and puts; ``is_call`` only takes part in broadcasting.

    Parameters
    ----------
    S, K, T, sigma, r, q
        As in :func:`price`.
    is_call : array_like of bool, optional
        Ignored except for broadcasting.

    Returns
    -------
    ndarray or float
        ``S e^{-qT} phi(d1) sqrt(T)``, currency units per 1.00 vol. NaN for invalid elements.
    """
    return _evaluate(_k_vega, 1, S, K, T, sigma, r, q, is_call)[0]


def theta(S, K, T, sigma, r, q, is_call):
    """Theta, dV/dt per YEAR of calendar time passing (``= -dV/dT``).

    Usually negative for a long vanilla option. Divide by 365 for the decay per calendar day.
    Same convention as QuantLib's ``AnalyticEuropeanEngine`` ``theta()``.

    Parameters are as in :func:`price`.

    Returns
    -------
    ndarray or float
        Calls: ``-S e^{-qT} phi(d1) sigma / (2 sqrt T) - r K e^{-rT} N(d2) + q S e^{-qT} N(d1)``;
        puts: ``-S e^{-qT} phi(d1) sigma / (2 sqrt T) + r K e^{-rT} N(-d2) - q S e^{-qT} N(-d1)``.
        Currency units per year. NaN for invalid elements.
    """
    return _evaluate(_k_theta, 1, S, K, T, sigma, r, q, is_call)[0]


def rho(S, K, T, sigma, r, q, is_call):
    """Rho, dV/dr per 1.00 of interest rate (divide by 100 for a 1 % move).

    Parameters are as in :func:`price`.

    Returns
    -------
    ndarray or float
        ``K T e^{-rT} N(d2)`` for calls, ``-K T e^{-rT} N(-d2)`` for puts (currency units per
        1.00 of rate). NaN for invalid elements.
    """
    return _evaluate(_k_rho, 1, S, K, T, sigma, r, q, is_call)[0]


def vanna(S, K, T, sigma, r=0.0, q=0.0, is_call=None):
    """Vanna, d2V/dS dsigma = d(delta)/d(sigma), per 1.00 of volatility.

    Divide by 100 for the delta change per vol point. Identical for calls and puts;
    ``is_call`` only takes part in broadcasting.

    Parameters
    ----------
    S, K, T, sigma, r, q
        As in :func:`price`.
    is_call : array_like of bool, optional
        Ignored except for broadcasting.

    Returns
    -------
    ndarray or float
        ``-e^{-qT} phi(d1) d2 / sigma`` (delta units per 1.00 vol). NaN for invalid elements.
    """
    return _evaluate(_k_vanna, 1, S, K, T, sigma, r, q, is_call)[0]


def charm(S, K, T, sigma, r, q, is_call):
    """Charm (delta decay), d(delta)/dt per YEAR of calendar time passing.

    Sign convention: ``charm = -d(delta)/dT``, i.e. the change in delta as one year of
    calendar time passes with everything else fixed (positive charm = delta rises as expiry
    approaches). Divide by 365 for the delta change per calendar day.

    Parameters are as in :func:`price`.

    Returns
    -------
    ndarray or float
        With ``g = e^{-qT} phi(d1) (2 (r - q) T - d2 sigma sqrt T) / (2 T sigma sqrt T)``:
        calls ``q e^{-qT} N(d1) - g``, puts ``-q e^{-qT} N(-d1) - g``. Delta units per year.
        NaN for invalid elements.
    """
    return _evaluate(_k_charm, 1, S, K, T, sigma, r, q, is_call)[0]


@dataclass(frozen=True)
class Greeks:
    """Value and greeks of European options, see the module docstring for units.

    Attributes
    ----------
    price : option value (currency units)
    delta : dV/dS
    gamma : d2V/dS2 per 1.00 of underlying
    vega : dV/dsigma per 1.00 of vol
    theta : dV/dt per year of time passing
    vanna : d(delta)/d(sigma) per 1.00 of vol
    charm : d(delta)/dt per year of time passing
    """

    price: np.ndarray | float
    delta: np.ndarray | float
    gamma: np.ndarray | float
    vega: np.ndarray | float
    theta: np.ndarray | float
    vanna: np.ndarray | float
    charm: np.ndarray | float


def greeks(S, K, T, sigma, r, q, is_call) -> Greeks:
    """Price and all greeks in one pass (``d1``, ``d2``, the pdf and the CDFs are shared).

    Parameters are as in :func:`price`. Each field equals the corresponding single function
    (:func:`price`, :func:`delta`, :func:`gamma`, :func:`vega`, :func:`theta`, :func:`vanna`,
    :func:`charm`), with the same units and NaN rules.
    """
    return Greeks(*_evaluate(_k_greeks, 7, S, K, T, sigma, r, q, is_call))


# --------------------------------------------------------------------------------------------
# implied volatility
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImpliedVolResult:
    """Result of :func:`implied_vol`.

    Attributes
    ----------
    iv : ndarray or float
        Implied volatility (annualised decimal); NaN wherever ``reason != "ok"``.
    reason : ndarray of str or str
        One short code per element, see :data:`IV_REASONS` and :func:`implied_vol`.
    """

    iv: np.ndarray | float
    reason: np.ndarray | str

    @property
    def ok(self) -> np.ndarray | bool:
        """Boolean mask of the elements with a valid implied volatility."""
        return np.asarray(self.reason) == "ok" if np.ndim(self.reason) else self.reason == "ok"


_V_MAX = 100.0  # bracket for the total standard deviation sigma * sqrt(T)
_V_MIN = 1e-300


def _otm_value(y, v, left, e_pos, e_neg, sinh_half):
    """Normalised OTM price (``left``) or its distance to the upper bound (not ``left``).

    Works in the forward measure, normalised by ``sqrt(F K)``, with ``y = -|ln(F/K)| <= 0`` so
    that the out-of-the-money option is always the "call" with log-moneyness ``y``:
    ``b(v) = e^{y/2} N(d1) - e^{-y/2} N(d2)`` with ``d1,2 = y/v +- v/2``, upper bound
    ``e^{y/2}``, and ``e^{y/2} - b(v) = e^{y/2} N(-d1) + e^{-y/2} N(d2)`` (no cancellation).
    Near the centre (``d1 > -1``) ``b`` is evaluated as
    ``sinh(y/2) + (e^{y/2} erf(d1/sqrt2) - e^{-y/2} erf(d2/sqrt2)) / 2``, which avoids the
    cancellation of ``N(d1) - N(d2)`` for a small total standard deviation near the money.
    ``e_pos``, ``e_neg``, ``sinh_half`` are ``e^{y/2}``, ``e^{-y/2}`` and ``sinh(y/2)``.
    Returns ``(value, db/dv, d1)``.
    """
    a = y / v
    h = 0.5 * v
    d1 = a + h
    d2 = a - h
    val = np.empty_like(d1)
    centre = left & (d1 > -1.0)
    tail = ~centre
    if centre.any():
        c = centre
        val[c] = sinh_half[c] + 0.5 * (
            e_pos[c] * erf(d1[c] * _INV_SQRT2) - e_neg[c] * erf(d2[c] * _INV_SQRT2)
        )
    if tail.any():
        lt = left[tail]
        n1 = ndtr(np.where(lt, d1[tail], -d1[tail]))
        n2 = ndtr(d2[tail])
        val[tail] = e_pos[tail] * n1 + np.where(lt, -e_neg[tail], e_neg[tail]) * n2
    dv = np.exp(0.5 * y - 0.5 * d1 * d1) * _INV_SQRT_2PI
    return val, dv, d1


def implied_vol(price, S, K, T, r, q, is_call, *, tol=1e-10, max_iter=100) -> ImpliedVolResult:
    """Black-Scholes-Merton implied volatility, vectorised, with a reason code per element.

    Parameters
    ----------
    price : array_like
        Option prices in currency units (same units as ``S`` and ``K``).
    S, K : array_like
        Spot and strike (> 0).
    T : array_like
        Time to expiry in years.
    r, q : array_like
        Continuously compounded risk-free rate and dividend yield, decimal.
    is_call : array_like of bool (or 'C'/'P')
        True for calls.
    tol : float, default 1e-10
        Relative tolerance on sigma: iteration stops once the last update (or the bracket
        width) is below ``tol * sigma``. Close to the root the Newton iteration converges
        quadratically, so the result is usually accurate to a few ulp of the price.
    max_iter : int, default 100
        Maximum number of iterations (the bracketed fall-back bisection alone needs < 60).

    Returns
    -------
    ImpliedVolResult
        ``iv`` (annualised decimal vol, NaN where not ``"ok"``) and ``reason``, one of
        (checked in this order):

        ``"bad_input"``
            ``S`` or ``K`` non-positive, or any of ``S``, ``K``, ``T``, ``r``, ``q`` NaN or
            infinite (or the forward / discount factors overflow).
        ``"expired"``
            ``T <= 0`` (finite).
        ``"no_price"``
            price NaN or ``<= 0``.
        ``"above_upper_bound"``
            call price ``>= S e^{-qT}``, put price ``>= K e^{-rT}`` (an infinite vol would be
            needed), including prices within rounding of that bound.
        ``"below_intrinsic"``
            price below the discounted intrinsic lower bound ``max(S e^{-qT} - K e^{-rT}, 0)``
            (calls) / ``max(K e^{-rT} - S e^{-qT}, 0)`` (puts) by more than a few ulp.
        ``"no_time_value"``
            an in-the-money price equal to that lower bound within a few ulp: the vol is not
            identifiable.
        ``"no_convergence"``
            the solver did not meet ``tol`` within ``max_iter`` iterations (with the default
            settings this only happens for absurd magnitudes, e.g. a price of 1e-320 on a
            spot of 1e300, where the normalised price underflows).
        ``"ok"``
            success.

    Notes
    -----
    Algorithm (fully vectorised; each iteration only touches the still-unconverged subset):

    1. In-the-money options are replaced by their out-of-the-money counterpart through
       put-call parity (same implied vol, better conditioned): the time value
       ``price - lower_bound`` is the OTM price. Everything is then expressed in forward terms
       normalised by ``sqrt(F K)`` with ``y = -|ln(F/K)|``, so the problem is to find the total
       standard deviation ``v = sigma sqrt(T)`` with ``b(v) = beta``.
    2. The target is solved on a log scale: for small targets (``beta`` below the value at the
       inflection point ``v = sqrt(2|y|)``, or below half the upper bound) on
       ``ln b(v) - ln beta``, otherwise on ``ln(u - beta) - ln(u - b(v))`` where
       ``u - b(v)`` is evaluated without cancellation. Both are close to linear in ``v`` in
       their regime (deep OTM / near expiry, and very high vol respectively).
    3. Starting point: an asymptotic deep-OTM inversion (``b ~ phi(y/v) v^3 / y^2``) for small
       targets, the exact at-the-money inversion adjusted for moneyness otherwise.
       Below the inflection point both candidates are evaluated and the better one is kept.
    4. Safeguarded Halley / Newton iteration (the second derivative is free:
       ``b'' = b' d1 d2 / v``): a bracket ``[lo, hi]`` is kept from the sign of the objective;
       a Halley step leaving the bracket falls back to Newton, and a Newton step leaving it (or
       not finite) to bisection (geometric when the bracket spans orders of magnitude).
       Typically 2-4 iterations; converged elements drop out of the working set.
    5. ``iv = v / sqrt(T)``.

    Accuracy is limited by the information in the price: for deep in-the-money options the
    time value is a tiny difference of large numbers, so the recovered vol can be far from
    the vol that generated the price even though it reprices it to within rounding.

    Speed: about 25-30 ms for 25,000 options on one core (dominated by ``scipy.special.ndtr``).
    """
    P, S, K, T, r, q = (_f64(a) for a in (price, S, K, T, r, q))
    call = as_is_call(is_call)
    arrays = (P, S, K, T, r, q, call)
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    scalar = all(a.ndim == 0 for a in arrays)
    P, S, K, T, r, q, call = (np.broadcast_to(a, shape).ravel() for a in arrays)
    n = P.size
    reason = np.full(n, "ok", dtype="<U17")
    iv = np.full(n, np.nan)

    with np.errstate(all="ignore"):
        disc_r = np.exp(-r * T)
        disc_q = np.exp(-q * T)
        s_dq = S * disc_q
        k_dr = K * disc_r
        x = (np.log(S) - np.log(K)) + (r - q) * T  # ln(F / K)

        bad = ~(np.isfinite(S) & (S > 0) & np.isfinite(K) & (K > 0))
        bad |= ~(np.isfinite(T) & np.isfinite(r) & np.isfinite(q))
        expired = ~bad & (T <= 0)
        live = ~bad & ~expired
        bad |= live & ~(np.isfinite(x) & (s_dq > 0) & (k_dr > 0) & np.isfinite(s_dq) & np.isfinite(k_dr))
        reason[bad] = "bad_input"
        reason[expired] = "expired"
        todo = reason == "ok"

        no_price = todo & ~(P > 0)  # NaN or <= 0
        reason[no_price] = "no_price"
        todo &= ~no_price

        upper = np.where(call, s_dq, k_dr)
        above = todo & (P >= upper)
        reason[above] = "above_upper_bound"
        todo &= ~above

        fwd_intrinsic = np.where(call, s_dq - k_dr, k_dr - s_dq)
        itm = fwd_intrinsic > 0
        lower = np.where(itm, fwd_intrinsic, 0.0)
        tv = P - lower  # = the OTM counterpart's price, by put-call parity
        tv_tol = np.where(itm, 4.0 * _EPS * (s_dq + k_dr + P), 0.0)
        below = todo & (tv < -tv_tol)
        reason[below] = "below_intrinsic"
        todo &= ~below
        no_tv = todo & (tv <= tv_tol)
        reason[no_tv] = "no_time_value"
        todo &= ~no_tv

        idx = np.flatnonzero(todo)
        if idx.size:
            y = -np.abs(x[idx])
            # normalise by sqrt(F K) = sqrt(S e^{-qT} K e^{-rT}) / e^{-rT}  (discounted units)
            beta = tv[idx] / (np.sqrt(s_dq[idx]) * np.sqrt(k_dr[idx]))
            v, status, _ = _solve_total_std(y, beta, tol, max_iter)
            sig = v / np.sqrt(T[idx])
            good = (status == 0) & np.isfinite(sig) & (sig > 0)
            iv[idx[good]] = sig[good]
            reason[idx[status == 2]] = "above_upper_bound"
            reason[idx[(status != 2) & ~good]] = "no_convergence"

    iv = iv.reshape(shape)
    reason = reason.reshape(shape)
    if scalar:
        return ImpliedVolResult(iv=iv[()], reason=str(reason[()]))
    return ImpliedVolResult(iv=iv, reason=reason)


def _solve_total_std(y, beta, tol, max_iter):
    """Solve ``b(v) = beta`` for the normalised OTM price (see :func:`_otm_value`).

    Returns ``(v, status, n_iter)``: ``status`` 0 converged, 1 not converged, 2 target at or
    above the upper bound ``e^{y/2}`` (after rounding); ``n_iter`` iterations per element
    (diagnostics, used by the tests).
    """
    n = y.size
    v_out = np.full(n, np.nan)
    n_iter = np.zeros(n, dtype=np.int32)
    status = np.ones(n, dtype=np.int8)

    abs_y = -y
    v_c = np.sqrt(2.0 * abs_y)  # inflection point of b(v)
    e_pos, e_neg, sinh_half = np.exp(0.5 * y), np.exp(-0.5 * y), np.sinh(0.5 * y)
    u = e_pos  # upper bound of the normalised OTM price
    b_c = np.where(v_c > 0, 0.5 * e_pos - e_neg * ndtr(-v_c), 0.0)  # d1 = 0, d2 = -v_c there
    comp_target = u - beta
    status[~(comp_target > 0)] = 2
    solvable = (status == 1) & (beta > 0)  # beta can underflow for absurd inputs

    below_c = beta <= b_c
    left = below_c | (beta <= 0.5 * u)  # objective on ln b(v), else on ln(u - b(v))

    # initial guesses -------------------------------------------------------------------------
    # deep OTM: ln b ~ -y^2/(2v^2) + 3 ln v - 2 ln|y| - ln sqrt(2 pi) - v^2/8, fixed point in v
    ln_beta = np.log(beta)
    v_otm = abs_y / np.sqrt(np.maximum(-2.0 * ln_beta, 1e-300))
    for _ in range(2):
        rhs = -ln_beta + 3.0 * np.log(v_otm) - 2.0 * np.log(np.where(abs_y > 0, abs_y, 1.0))
        rhs += -0.5 * np.log(2.0 * np.pi) - 0.125 * v_otm * v_otm
        v_otm = np.where(rhs > 0, abs_y / np.sqrt(np.maximum(2.0 * rhs, 1e-300)), v_otm)
    # high vol / near the money: u - b ~ 2 cosh(y/2) N(-v/2), exact at y = 0; for tiny targets
    # (where 1 - beta rounds) its small-v limit b ~ v / sqrt(2 pi)
    v_atm = np.where(beta > 1e-7, -2.0 * ndtri(comp_target / (e_pos + e_neg)), np.sqrt(2.0 * np.pi) * beta)

    lo = np.where(below_c, abs_y / np.sqrt(1500.0), v_c)  # b(lo) underflows to 0 < beta
    hi = np.where(below_c, v_c, _V_MAX)
    floor = np.maximum(lo, _V_MIN)
    v_otm = np.clip(np.where(np.isnan(v_otm), hi, v_otm), floor, hi)
    v_atm = np.clip(np.where(np.isnan(v_atm), floor, v_atm), floor, hi)
    target = np.where(left, ln_beta, np.log(comp_target))
    sign = np.where(left, 1.0, -1.0)
    v = np.where(below_c, v_otm, v_atm)

    # below the inflection point neither guess is uniformly good (deep OTM vs. nearly ATM):
    # evaluate both, keep the better one and narrow the bracket with both.
    both = np.flatnonzero(below_c & solvable)
    if both.size:
        yy = np.concatenate([y[both], y[both]])
        vv = np.concatenate([v_otm[both], v_atm[both]])
        ep, en, sh = (np.tile(a[both], 2) for a in (e_pos, e_neg, sinh_half))
        val, _, _ = _otm_value(yy, vv, np.ones(yy.size, dtype=bool), ep, en, sh)
        g = (np.log(val) - np.concatenate([target[both], target[both]])).reshape(2, -1)
        vv = vv.reshape(2, -1)
        g = np.where(np.isnan(g), -np.inf, g)
        for k in range(2):
            lo[both] = np.where(g[k] < 0, np.maximum(lo[both], vv[k]), lo[both])
            hi[both] = np.where(g[k] > 0, np.minimum(hi[both], vv[k]), hi[both])
        v[both] = np.where(np.abs(g[1]) < np.abs(g[0]), vv[1], vv[0])

    act = np.flatnonzero(solvable)
    state = (y, v, lo, hi, target, sign, left, e_pos, e_neg, sinh_half)
    y, v, lo, hi, target, sign, left, e_pos, e_neg, sinh_half = (a[act] for a in state)
    for it in range(1, max_iter + 1):
        if act.size == 0:
            break
        val, dv, d1 = _otm_value(y, v, left, e_pos, e_neg, sinh_half)
        g = sign * (np.log(val) - target)  # increasing in v
        lo = np.where(g < 0, v, lo)
        hi = np.where(g > 0, v, hi)
        g1 = dv / val  # dg/dv
        g2 = dv * d1 * (d1 - v) / (v * val) - sign * g1 * g1  # d2g/dv2 (b'' = b' d1 d2 / v)
        step = -g / g1
        halley = -2.0 * g * g1 / (2.0 * g1 * g1 - g * g2)
        h_ok = np.isfinite(halley) & (v + halley >= lo) & (v + halley <= hi)
        step = np.where(h_ok, halley, step)
        v_newton = v + step
        newton_ok = np.isfinite(v_newton) & (v_newton >= lo) & (v_newton <= hi)
        mid = np.where(hi > 4.0 * lo, np.sqrt(np.maximum(lo, _V_MIN) * hi), 0.5 * (lo + hi))
        v_new = np.where(newton_ok, v_newton, mid)
        done = (g == 0) | (newton_ok & (np.abs(step) <= tol * v)) | (hi - lo <= tol * v_new)
        v_new = np.where(g == 0, v, v_new)
        if done.any():
            fin = act[done]
            v_out[fin] = v_new[done]
            status[fin] = 0
            n_iter[fin] = it
            keep = ~done
            act = act[keep]
            state = (y, v_new, lo, hi, target, sign, left, e_pos, e_neg, sinh_half)
            y, v_new, lo, hi, target, sign, left, e_pos, e_neg, sinh_half = (a[keep] for a in state)
        v = v_new
    n_iter[act] = max_iter
    return v_out, status, n_iter
