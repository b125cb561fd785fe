"""The broker interface, and the simulated broker that fills paper orders from the quotes they carry.

A broker takes an :class:`~research_lib.records.paper.OrderRequest` (its legs carry the bid and ask of the chain
they were priced from) and answers with an :class:`~research_lib.records.paper.Execution`: one fill price and
commission per leg, the broker's order id and time. It also answers :meth:`Broker.lookup`: "did you execute client
order X?" — what the ledger's reconciliation asks after a crash between sending an order and recording its fill.

:class:`SimulatedBroker` is the paper broker. Fill models (per leg; the same rules and tick table as the
backtests, :mod:`research_lib.backtest.fills`):

``mid`` [default]
    ``(bid + ask) / 2``, exactly (the paper trader's "fill at mid": a position's P&L at mid marks is then
    ``Σ quantity × (mark mid − entry mid) × 100 × contracts``);
``natural``
    the ask when buying, the bid when selling;
``slippage`` with fraction F
    ``mid ± F × half spread`` against the trader, inside the quote.

``round_ticks=True`` rounds ``mid`` and ``slippage`` fills to the exchange tick against the trader, as the
backtests do (:func:`research_lib.backtest.fills.fill_price`, 0.05 below 3.00 and 0.10 above for SPX).

Commission: ``commission`` dollars per contract and leg. Paper order ids are ``PAPER-`` and 12 hex digits of the
SHA-256 of the client order id, so a resubmission after a crash gets the same id. The simulated broker keeps its
executions in its own journal table of the ledger file (:meth:`PaperLedger.journal_execution
<research_lib.records.paper.ledger.PaperLedger.journal_execution>`): the broker's side of the books, as a live
broker keeps its own. No live orders are sent from this module: a live broker implements :class:`Broker`.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from research_lib.backtest import fills as fills_mod
from research_lib.checks import FieldChecks
from research_lib.errors import OrderError
from research_lib.records.paper import Execution, LegFill, OrderRequest

__all__ = ["FILL_MODELS", "Broker", "SimulatedBroker", "paper_order_id"]

FILL_MODELS = ("mid", "natural", "slippage")
_CHECKS = FieldChecks(lambda field, value, why: OrderError(f"SimulatedBroker.{field}={value!r}: {why}"))


@runtime_checkable
class Broker(Protocol):
    """What the paper trader needs of a broker (a live one would implement the same two calls)."""

    name: str

    def submit(self, request: OrderRequest) -> Execution:
        """Send the order and return its execution (all legs filled), or raise an
        :class:`~research_lib.errors.OrderError` saying why it was refused."""

    def lookup(self, client_order_id: str) -> Execution | None:
        """The execution of an order sent earlier under ``client_order_id``, or None if the broker never had it."""


def paper_order_id(client_order_id: str) -> str:
    """``PAPER-`` + 12 hex digits of SHA-256 of the client order id (deterministic: a resent order keeps it)."""
    return "PAPER-" + hashlib.sha256(client_order_id.encode()).hexdigest()[:12].upper()


def _underlying_of(root: str) -> str:
    """The tick table's key of a root (SPXW trades on SPX's ticks)."""
    return "SPX" if root.upper() in ("SPX", "SPXW") else root.upper()


class SimulatedBroker:
    """Fills at mid (or natural, or mid plus slippage) with commissions, from the quotes on the order.

    Parameters
    ----------
    journal : PaperLedger, optional
        Where the executions are kept (the ledger file's journal table); None keeps them in memory only (a test
        or a dry run: :meth:`lookup` then forgets them when the process ends).
    fill : {"mid", "natural", "slippage"}
    slippage : float
        F in [0, 1] of the ``slippage`` model (the fraction of the half spread paid).
    commission : float
        Dollars per contract and leg, ≥ 0.
    round_ticks : bool
        Round ``mid``/``slippage`` fills to the tick as the backtests do [False: the exact mid].
    """

    name = "simulated"

    def __init__(self, journal=None, *, fill: str = "mid", slippage: float = 0.25, commission: float = 0.65,
                 round_ticks: bool = False):
        self.fill = _CHECKS.choice("fill", fill, FILL_MODELS, normalise=lambda v: str(v).strip().lower())
        self.slippage = _CHECKS.probability("slippage", slippage)
        self.commission = _CHECKS.number("commission", commission, lo=0.0, hi=50.0, unit="dollars per contract")
        self.round_ticks = _CHECKS.flag("round_ticks", round_ticks)
        self.journal = journal
        self._memory: dict[str, Execution] = {}

    @property
    def model(self) -> str:
        """``"mid"``, ``"natural"`` or ``"slippage:F"``."""
        return f"slippage:{self.slippage:g}" if self.fill == "slippage" else self.fill

    def __repr__(self) -> str:
        return f"SimulatedBroker(fill={self.model!r}, commission={self.commission:g})"

    def price(self, request: OrderRequest) -> tuple[LegFill, ...]:
        """The fill of each leg of ``request`` (no journal write): the fill model on the leg's quote.

        An opening order buys the legs of quantity +1 and sells those of −1; a closing order the reverse.

        Raises
        ------
        OrderError
            A leg whose quote cannot fill (bid or ask not finite, negative, or bid above ask), naming the leg.
        """
        legs = request.legs
        if not legs:
            raise OrderError(f"order {request.client_order_id}: no legs to fill")
        bid = np.array([leg.bid for leg in legs], dtype=float)
        ask = np.array([leg.ask for leg in legs], dtype=float)
        bad = ~(np.isfinite(bid) & np.isfinite(ask) & (bid >= 0) & (ask >= bid))
        if bad.any():
            leg = legs[int(np.flatnonzero(bad)[0])]
            raise OrderError(f"order {request.client_order_id}: leg {leg.label} has no fillable quote "
                             f"(bid {leg.bid!r}, ask {leg.ask!r})")
        side = np.array([leg.quantity for leg in legs], dtype=int)
        side = side if request.kind == "open" else -side
        if self.round_ticks or self.fill == "natural":
            fill = fills_mod.fill_price(bid, ask, side, self.fill, self.slippage, _underlying_of(legs[0].root))
        else:
            frac = self.slippage if self.fill == "slippage" else 0.0
            fill = np.clip((bid + ask) / 2.0 + np.sign(side) * frac * (ask - bid) / 2.0, bid, ask)
        per_leg = self.commission * np.abs(side) * int(request.contracts)
        return tuple(LegFill(price=float(p), commission=float(c)) for p, c in zip(fill, per_leg, strict=True))

    def submit(self, request: OrderRequest) -> Execution:
        """Fill ``request`` at once; the same client order id again returns the first execution."""
        done = self.lookup(request.client_order_id)
        if done is not None:
            return done
        execution = Execution(broker_order_id=paper_order_id(request.client_order_id), legs=self.price(request),
                              filled_at=pd.Timestamp(request.created_at), model=self.model)
        if self.journal is not None:
            self.journal.journal_execution(request.client_order_id, execution)
        else:
            self._memory[request.client_order_id] = execution
        return execution

    def lookup(self, client_order_id: str) -> Execution | None:
        if self.journal is not None:
            return self.journal.journal_lookup(client_order_id)
        return self._memory.get(client_order_id)
