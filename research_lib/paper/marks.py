"""Marking open positions from one chain snapshot: each leg looked up in the chain, never marked at zero.

:func:`mark_positions` joins every leg of every position to the snapshot's contracts by (root, expiration, right,
strike) in one vectorised lookup (a hash index of the chain built once per call; 50 positions of a full SPX chain
take a few milliseconds, ``benchmarks/paper.py``), and returns one
:class:`~research_lib.records.paper.Mark` per position:

* ``mark = −Σ quantity × leg mid`` per unit (credit convention of :mod:`research_lib.records.paper.records`), and
  ``mark_natural`` at the prices closing would get (a short leg bought back at its ask, a long sold at its bid);
* ``unrealized_pnl = (entry_price − mark) × 100 × contracts`` = ``Σ quantity × (leg mid − entry fill) × 100 ×
  contracts``, and ``pnl_pct`` = that over ``|entry_price| × 100 × contracts`` (the P&L as a fraction of the credit);
* ``dte``: calendar days from the chain's trading date to the nearest expiry of the position.

A leg the chain lacks — or holds without a usable two-sided quote (bid or ask missing, negative, or crossed) — is
listed in ``missing`` and its position's mark, natural mark and P&L are NaN: the monitor reports it and fires no
price rule on it (:mod:`research_lib.core.exits`). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from research_lib.core.chain import ChainSnapshot
from research_lib.errors import MarkError
from research_lib.records.paper import MULTIPLIER, Mark, Position

__all__ = ["leg_quotes", "mark_positions"]

_STRIKE_SCALE = 1000  # strikes compared in thousandths of a point


def _keys(root, expiration, right, strike) -> pd.MultiIndex:
    exp = pd.to_datetime(pd.Series(expiration)).dt.normalize().to_numpy(dtype="datetime64[D]").astype(np.int64)
    k = np.round(np.asarray(strike, dtype=float) * _STRIKE_SCALE).astype(np.int64)
    return pd.MultiIndex.from_arrays([np.asarray(root, dtype=object), exp, np.asarray(right, dtype=object), k])


def leg_quotes(snapshot: ChainSnapshot, root, expiration, right, strike) -> pd.DataFrame:
    """The chain's quote of each contract asked for.

    Parameters
    ----------
    snapshot : ChainSnapshot
    root, expiration, right, strike : array-like
        The contracts, one element each (``expiration`` dates or timestamps; ``right`` ``"C"``/``"P"``).

    Returns
    -------
    pandas.DataFrame
        One row per contract asked, in order: ``row`` (its row in ``snapshot.contracts``, −1 when absent),
        ``bid``, ``ask``, ``mid`` (NaN when absent or without a usable two-sided quote), ``iv``, ``quoted``
        (True when the quote is usable: finite, bid ≥ 0, ask ≥ bid).
    """
    c = snapshot.contracts
    index = _keys(c["root"].to_numpy(dtype=object), c["expiration"], c["right"].to_numpy(dtype=object),
                  c["strike"].to_numpy(dtype=float))
    if not index.is_unique:  # a validated chain has one row per contract; keep the first of any duplicate
        keep = ~index.duplicated()
        rows_all = np.flatnonzero(keep)
        index = index[keep]
    else:
        rows_all = np.arange(len(c))
    where = index.get_indexer(_keys(root, expiration, right, strike))
    rows = np.where(where >= 0, rows_all[np.maximum(where, 0)], -1)
    found = rows >= 0
    bid = np.full(len(rows), np.nan)
    ask = np.full(len(rows), np.nan)
    iv = np.full(len(rows), np.nan)
    bid[found] = c["bid"].to_numpy(dtype=float)[rows[found]]
    ask[found] = c["ask"].to_numpy(dtype=float)[rows[found]]
    iv[found] = c["iv"].to_numpy(dtype=float)[rows[found]]
    quoted = found & np.isfinite(bid) & np.isfinite(ask) & (bid >= 0) & (ask >= bid)
    mid = np.where(quoted, (bid + ask) / 2.0, np.nan)
    return pd.DataFrame({"row": rows, "bid": bid, "ask": ask, "mid": mid, "iv": iv, "quoted": quoted})


def mark_positions(positions: Sequence[Position], snapshot: ChainSnapshot) -> tuple[Mark, ...]:
    """One :class:`~research_lib.records.paper.Mark` per position, from ``snapshot`` (module docstring).

    Raises
    ------
    MarkError
        ``snapshot`` is of a trading date before a position's entry (marking the past would look back in time),
        naming the position.
    """
    if not positions:
        return ()
    day = snapshot.snapshot_date
    for p in positions:
        if pd.Timestamp(p.opened_at).tz_convert("America/New_York").date() > day:
            raise MarkError(f"position {p.position_id} was opened {p.opened_at:%Y-%m-%d} after the chain's trading "
                            f"date {day}: a mark cannot come before the entry")
    legs = [(p, leg) for p in positions for leg in p.legs]
    q = leg_quotes(snapshot, [leg.root for _, leg in legs], [leg.expiration for _, leg in legs],
                   [leg.right for _, leg in legs], [leg.strike for _, leg in legs])
    qty = np.array([leg.quantity for _, leg in legs], dtype=float)
    mid = q["mid"].to_numpy()
    natural = np.where(qty < 0, q["ask"].to_numpy(), q["bid"].to_numpy())
    natural = np.where(q["quoted"].to_numpy(), natural, np.nan)
    owner = np.repeat(np.arange(len(positions)), [len(p.legs) for p in positions])
    n = len(positions)
    value = np.zeros(n)
    value_nat = np.zeros(n)
    np.add.at(value, owner, -qty * mid)          # NaN propagates: a missing leg leaves its position unpriced
    np.add.at(value_nat, owner, -qty * natural)
    out = []
    start = 0
    for i, p in enumerate(positions):
        k = len(p.legs)
        quoted = q["quoted"].to_numpy()[start:start + k]
        missing = tuple(leg.label for leg, ok in zip(p.legs, quoted, strict=True) if not ok)
        mark = float(value[i]) if not missing else float("nan")
        mark_nat = float(value_nat[i]) if not missing else float("nan")
        pnl = (p.entry_price - mark) * MULTIPLIER * p.contracts
        basis = abs(p.entry_price) * MULTIPLIER * p.contracts
        out.append(Mark(position_id=p.position_id, marked_at=snapshot.quote_time, source=snapshot.source, mark=mark,
                        mark_natural=mark_nat, unrealized_pnl=float(pnl),
                        pnl_pct=float(pnl / basis) if basis > 0 else float("nan"),
                        dte=int((pd.Timestamp(p.expiration) - pd.Timestamp(day)).days),
                        leg_mids=tuple(float(x) for x in mid[start:start + k]), missing=missing))
        start += k
    return tuple(out)
