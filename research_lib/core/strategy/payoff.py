"""Pricing of a structure: payoff at expiry, max profit and loss, breakevens, probability of profit and
expected value at a premium (mid or natural), the premium's wording, the lognormal's volatility (see
"Prices and payoff" in :mod:`research_lib.core.strategy`). Pure."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from research_lib.core import pricing
from research_lib.core.strategy.params import _finite_number
from research_lib.errors import StrategyError

__all__ = ["PayoffStats", "PositionGreeks", "expiry_payoff", "payoff_stats", "premium_text"]


@dataclasses.dataclass(frozen=True)
class PositionGreeks:
    """Greeks of one unit of a position (every leg × its side × quantity × the multiplier).

    Attributes
    ----------
    delta : share equivalents: dollars of P&L per 1-point move of the underlying
    gamma : change of ``delta`` per 1-point move
    vega : dollars per vol point (0.01 of IV, every leg's IV moving together)
    theta : dollars per calendar day of time passing
    """

    delta: float
    gamma: float
    vega: float
    theta: float


@dataclasses.dataclass(frozen=True)
class PayoffStats:
    """The payoff of a position at one premium (see :func:`payoff_stats`).

    Attributes
    ----------
    premium : float
        Per share; positive = credit received, negative = debit paid.
    max_profit, max_loss : float
        Dollars per contract; ``max_loss`` is the (positive) amount that can be lost. ``inf`` when unbounded.
    breakevens : tuple of float
        Underlying prices at expiry where the P&L is zero, ascending.
    pop : float
        Probability that the P&L at expiry is > 0, in [0, 1].
    expected_value : float
        Expected P&L at expiry in dollars per contract (undiscounted).
    """

    premium: float
    max_profit: float
    max_loss: float
    breakevens: tuple[float, ...]
    pop: float
    expected_value: float


def premium_text(credit_mid: float, credit_natural: float) -> str:
    """``"debit 41.55 mid / 42.00 natural"``: each premium as a magnitude after the word giving its sign
    (``credit`` received, ``debit`` paid); the word is repeated only when the natural price has the other
    sign (``"credit 0.05 mid / debit 0.10 natural"``). Per share."""
    def word(x: float) -> str:
        return "credit" if x >= 0 else "debit"

    mid_w, nat_w = word(credit_mid), word(credit_natural)
    nat = f"{abs(credit_natural):.2f} natural" if nat_w == mid_w else f"{nat_w} {abs(credit_natural):.2f} natural"
    return f"{mid_w} {abs(credit_mid):.2f} mid / {nat}"


def _leg_arrays(legs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not legs:
        raise StrategyError("a position needs at least one leg")
    try:
        K = np.array([float(leg.strike) for leg in legs])
        is_call = np.array([str(leg.right).upper() == "C" for leg in legs])
        w = np.array([float(leg.side) * float(leg.quantity) for leg in legs])
    except AttributeError as exc:
        raise StrategyError(f"legs need strike, right, side and quantity ({exc})") from exc
    if not (np.isfinite(K).all() and (K > 0).all() and np.isfinite(w).all()):
        raise StrategyError("legs need positive finite strikes and finite sides/quantities")
    return K, is_call, w


def expiry_payoff(legs: Sequence[Any], prices: Any, premium: float) -> np.ndarray:
    """P&L per share at expiry when the underlying settles at ``prices``.

    ``premium + Σ side × quantity × intrinsic(leg, price)`` (premium positive = credit received).
    ``legs`` are :class:`Leg` objects or anything with ``strike``, ``right``, ``side`` and ``quantity``.
    Vectorised over ``prices`` (returns an array of its shape).
    """
    K, is_call, w = _leg_arrays(legs)
    x = np.asarray(prices, dtype=float)[..., None]
    intrinsic = np.where(is_call, np.maximum(x - K, 0.0), np.maximum(K - x, 0.0))
    return premium + (intrinsic * w).sum(axis=-1)


def payoff_stats(legs: Sequence[Any], premium: float, *, spot: float, T: float, sigma: float,
                 rate: float = 0.0, div_yield: float = 0.0, multiplier: float = 100.0) -> PayoffStats:
    """Max profit and loss, breakevens, probability of profit and expected value at expiry, in closed form.

    The P&L at expiry (:func:`expiry_payoff`) is piecewise linear in the settlement price with kinks at
    the strikes, so its extremes are at ``0``, the strikes or infinity, its zeros are found exactly
    segment by segment, and ``P(P&L > 0)`` is a sum of lognormal interval probabilities
    ``N(z(b)) − N(z(a))`` with ``z(x) = (ln(x / S) − (r − q − σ²/2) T) / (σ √T)``. The expected payoff
    of each leg is its undiscounted Black-Scholes value ``price × e^{rT}`` at ``sigma``.

    Parameters
    ----------
    legs : sequence of Leg (or objects with strike, right, side, quantity)
    premium : float
        Per share, positive = credit received.
    spot, T, sigma : float
        Spot, years to expiry and the lognormal's volatility (all > 0).
    rate, div_yield : float
        The drift is ``rate − div_yield``.
    multiplier : float
        Dollars per point per contract.

    Returns
    -------
    PayoffStats
        Dollar figures per contract; ``expected_value`` undiscounted (see :mod:`research_lib.core.strategy`).

    Raises
    ------
    StrategyError
        Non-finite or non-positive ``spot``, ``T``, ``sigma``; no legs; a non-finite premium.
    """
    for name, v in (("spot", spot), ("T", T), ("sigma", sigma), ("multiplier", multiplier)):
        if not _finite_number(v) or v <= 0:
            raise StrategyError(f"payoff_stats: {name} must be a positive finite number, got {v!r}")
    for name, v in (("premium", premium), ("rate", rate), ("div_yield", div_yield)):
        if not _finite_number(v):
            raise StrategyError(f"payoff_stats: {name} must be a finite number, got {v!r}")
    K, is_call, w = _leg_arrays(legs)
    nodes = np.concatenate([[0.0], np.unique(K)])
    values = expiry_payoff(legs, nodes, premium)
    slope = float(w[is_call].sum())  # beyond the highest strike
    last_x, last_v = float(nodes[-1]), float(values[-1])

    max_profit = math.inf if slope > 0 else float(values.max())
    max_loss = math.inf if slope < 0 else -float(values.min())

    # zeros: the nodes, plus a far point on the tail, scanned for sign changes
    far = last_x + (abs(last_v) / abs(slope) + 1.0 if slope else 1.0)
    xs = np.append(nodes, far)
    vs = np.append(values, last_v + slope * (far - last_x))
    breakevens: list[float] = []
    prev = None  # index of the last non-zero value
    for i, v in enumerate(vs):
        if v == 0:
            continue
        if prev is not None and (vs[prev] > 0) != (v > 0):
            if i == prev + 1:
                a, b, va = xs[prev], xs[i], vs[prev]
                breakevens.append(float(a + (b - a) * va / (va - v)))
            else:  # the P&L touches zero at a node (or along a flat stretch): take the first zero node
                breakevens.append(float(xs[prev + 1]))
        prev = i

    r, q = float(rate), float(div_yield)
    drift = (r - q - 0.5 * sigma * sigma) * T
    vol = sigma * math.sqrt(T)

    def cdf(x: float) -> float:
        if x <= 0:
            return 0.0
        if math.isinf(x):
            return 1.0
        return float(ndtr((math.log(x / spot) - drift) / vol))

    pop = 0.0
    for a, b, va, vb in zip(nodes[:-1], nodes[1:], values[:-1], values[1:], strict=True):
        if va > 0 and vb > 0:
            pop += cdf(b) - cdf(a)
        elif va > 0 or vb > 0:
            root = a + (b - a) * va / (va - vb)
            pop += cdf(root) - cdf(a) if va > 0 else cdf(b) - cdf(root)
    if last_v > 0:
        pop += 1.0 - cdf(last_x) if slope >= 0 else cdf(last_x + last_v / -slope) - cdf(last_x)
    elif slope > 0:
        pop += 1.0 - cdf(last_x - last_v / slope)
    pop = min(max(pop, 0.0), 1.0)

    undiscounted = pricing.price(spot, K, T, sigma, r, q, is_call) * math.exp(r * T)
    expected = premium + float((w * undiscounted).sum())
    return PayoffStats(premium=float(premium), max_profit=max_profit * multiplier,
                       max_loss=max_loss * multiplier, breakevens=tuple(sorted(breakevens)), pop=float(pop),
                       expected_value=expected * multiplier)


def _atm_iv(rows: pd.DataFrame, forward: float) -> float:
    """ATM-forward IV: linear in strike through the out-of-the-money IVs of one expiry and root."""
    have = rows[np.isfinite(rows["iv"]) & (rows["iv"] > 0) & (rows["T"] > 0)]
    otm = have[((have["right"] == "P") & (have["strike"] <= forward))
               | ((have["right"] == "C") & (have["strike"] >= forward))]
    use = otm if len(otm) else have
    smile = use.groupby("strike")["iv"].mean().sort_index()
    return float(np.interp(forward, smile.index.to_numpy(), smile.to_numpy()))
