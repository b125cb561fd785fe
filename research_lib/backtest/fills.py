"""Fill prices, tick rounding and commissions of a backtest: pure, vectorised functions.

Fill models (per leg, per unit of the underlying; ``side`` +1 buys, −1 sells):

``mid``
    ``(bid + ask) / 2``, rounded to the nearest tick (a tie goes against the trader: up when buying, down when
    selling), kept inside ``[bid, ask]``.
``natural``
    the ask when buying, the bid when selling — the quote itself, not rounded.
``slippage`` with fraction ``F`` in [0, 1]
    ``mid + side × F × (ask − bid) / 2``, rounded to the nearest tick against the trader and kept inside
    ``[bid, ask]``; F = 0 is ``mid``, F = 1 ``natural``.

Tick table (:data:`TICKS`, by underlying): SPX/SPXW options trade in 0.05 below 3.00 and 0.10 at or above
(Cboe's rule for series not in the penny program); any other underlying defaults to 0.01 (:data:`DEFAULT_TICK`).

Commissions: ``commission`` dollars per contract and leg at every fill; cash settlement at expiry pays none.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

#: Minimum price increments by underlying: tuples of (price at or above which, tick), ascending.
TICKS: dict[str, tuple[tuple[float, float], ...]] = {
    "SPX": ((0.0, 0.05), (3.0, 0.10)),
}
DEFAULT_TICK: tuple[tuple[float, float], ...] = ((0.0, 0.01),)


def tick_table(underlying: str) -> tuple[tuple[float, float], ...]:
    """The tick table of ``underlying`` (:data:`TICKS`; :data:`DEFAULT_TICK` when not listed)."""
    return TICKS.get(str(underlying).strip().upper().lstrip("_"), DEFAULT_TICK)


def tick_size(price, underlying: str = "SPX") -> np.ndarray:
    """The tick at each ``price`` (per unit) for ``underlying``."""
    p = np.asarray(price, dtype=float)
    out = np.full(p.shape, np.nan)
    for level, tick in tick_table(underlying):
        out = np.where(p >= level - 1e-12, tick, out)
    return out


def round_to_tick(price, side, underlying: str = "SPX") -> np.ndarray:
    """Round ``price`` to the nearest tick; an exact half tick goes against the trader (up for ``side`` > 0 buys,
    down for sells). Rounding uses the tick of the unrounded price."""
    p = np.asarray(price, dtype=float)
    tick = tick_size(p, underlying)
    n = p / tick
    lo = np.floor(n + 1e-9)
    frac = n - lo
    up = np.where(np.abs(frac - 0.5) < 1e-9, np.asarray(side) > 0, frac > 0.5)
    return np.round((lo + up) * tick, 10)


def fill_price(bid, ask, side, model: str = "mid", fraction: float = 0.0, underlying: str = "SPX") -> np.ndarray:
    """The fill of each leg (per unit) under ``model`` (see the module docstring).

    Parameters
    ----------
    bid, ask : array-like
        The leg's quote (per unit, ``0 <= bid <= ask``).
    side : array-like of {+1, -1}
        +1 buys, −1 sells.
    model : {"mid", "natural", "slippage"}
    fraction : float
        F of ``slippage`` (ignored otherwise).
    """
    bid = np.asarray(bid, dtype=float)
    ask = np.asarray(ask, dtype=float)
    side = np.asarray(side)
    if model == "natural":
        return np.where(side > 0, ask, bid)
    if model == "mid":
        fraction = 0.0
    elif model != "slippage":
        raise ValueError(f"unknown fill model {model!r}: mid, natural or slippage")
    mid = (bid + ask) / 2.0
    raw = mid + np.sign(side) * float(fraction) * (ask - bid) / 2.0
    return np.clip(round_to_tick(raw, side, underlying), bid, ask)


def commission_cost(quantity, commission: float) -> float:
    """Dollars of commission for legs of signed ``quantity`` contracts: ``commission × Σ|quantity|``."""
    return float(commission) * float(np.abs(np.asarray(quantity, dtype=float)).sum())


@dataclasses.dataclass(frozen=True)
class Fill:
    """One leg's fill and the quote it came from: ``price`` per unit, ``bid``/``ask``/``mid`` of ``date``."""

    price: float
    bid: float
    ask: float
    mid: float
    date: dt.date
    model: str


def fill_leg(bid: float, ask: float, side: int, date: dt.date, model: str = "mid", fraction: float = 0.0,
             underlying: str = "SPX") -> Fill:
    """:func:`fill_price` of one leg, as a :class:`Fill` naming its quote."""
    price = float(fill_price(bid, ask, side, model, fraction, underlying))
    return Fill(price=price, bid=float(bid), ask=float(ask), mid=(float(bid) + float(ask)) / 2.0, date=date,
                model=model if model != "slippage" else f"slippage:{fraction:g}")


__all__ = ["DEFAULT_TICK", "Fill", "TICKS", "commission_cost", "fill_leg", "fill_price", "round_to_tick",
           "tick_size", "tick_table"]
