"""Settlement prices of expiring index options.

PM-settled roots (SPXW, XSP, ...) settle at the expiry session's official close; AM-settled monthlies (SPX, NDX,
RUT: the roots the chain marks ``settlement == "AM"``) at the Special Opening Quotation (SOQ) of the expiry
day. No SOQ history is available here, so the AM price is the index's **opening print** from the daily history
(``open`` of :func:`research_lib.data.market.load_index_daily`), said in every result's assumptions; the SOQ is
computed from each component's first trade and usually differs from the opening print by a few points.

Values are in index points; the intrinsic value of a leg is ``max(S - K, 0)`` for calls and ``max(K - S, 0)``
for puts, per unit (× 100 per contract for SPX).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

from research_lib.errors import SettlementError

#: What each settlement style reads from the daily history, and how the result names it.
SOURCES = {"PM": ("close", "the expiry session's close (daily history)"),
           "AM": ("open", "the expiry session's opening print (daily history; no SOQ history is available)")}


@dataclasses.dataclass(frozen=True)
class Settlement:
    """A settlement price: ``price`` (index points) of ``date`` for a ``style`` (AM/PM) expiry, and ``source``."""

    date: dt.date
    style: str
    price: float
    source: str


def settlement_price(expiration, style: str, daily: pd.DataFrame) -> Settlement:
    """The settlement price of an expiry.

    Parameters
    ----------
    expiration : date-like
        The expiry session.
    style : {"AM", "PM"}
        The leg's ``settlement`` column.
    daily : DataFrame
        The underlying's daily history, date-indexed, with ``open`` and ``close`` (index points).

    Raises
    ------
    SettlementError
        The session is not in the history, or its value is missing (early SPX history has no opens).
    """
    if style not in SOURCES:
        raise SettlementError(f"unknown settlement style {style!r}: AM or PM")
    column, source = SOURCES[style]
    day = pd.Timestamp(expiration).normalize()
    index = pd.DatetimeIndex(daily.index).normalize()
    hit = np.flatnonzero(index == day)
    if not len(hit):
        raise SettlementError(f"no {column} of {day.date()} in the daily history (it ends "
                              f"{index.max().date() if len(index) else 'nowhere'}): cannot settle that expiry")
    value = float(daily[column].iloc[hit[-1]])
    if not np.isfinite(value) or value <= 0:
        raise SettlementError(f"the daily history's {column} of {day.date()} is missing ({value!r})")
    return Settlement(date=day.date(), style=style, price=value, source=source)


def intrinsic(strike, right, price) -> np.ndarray:
    """Intrinsic value per unit: ``max(S - K, 0)`` for calls (``right == "C"``), ``max(K - S, 0)`` for puts."""
    K = np.asarray(strike, dtype=float)
    is_call = np.asarray(right) == "C"
    S = np.asarray(price, dtype=float)
    return np.where(is_call, np.maximum(S - K, 0.0), np.maximum(K - S, 0.0))


__all__ = ["SOURCES", "Settlement", "intrinsic", "settlement_price"]
