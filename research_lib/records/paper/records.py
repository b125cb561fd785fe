"""The paper ledger's records: frozen dataclasses for what goes in and what comes out.

Conventions (all the ledger's tables follow them)
-------------------------------------------------
* **Quantities** are signed per one unit of the strategy: −1 for a sold leg, +1 for a bought one (a vertical is
  −1 and +1, an iron condor −1, +1, −1, +1). A position holds ``contracts`` units.
* **Leg prices** are per share (the chain's quote units), always ≥ 0.
* **A position's price** is per unit, per share, in credit terms: ``price = −Σ quantity × leg price`` (a bull put
  opened for a 1.20 credit has ``entry_price = +1.20``; a debit spread has a negative price). Its dollar value is
  ``price × 100 × contracts`` (the multiplier of every index and equity option here).
* **P&L** of a position is ``(entry_price − mark) × 100 × contracts`` (``mark`` the price now, same convention),
  which equals ``Σ quantity × (leg mark − leg entry) × 100 × contracts``; realised P&L subtracts the commissions.
* **Cash** moves at fills only: an open adds ``entry_price × 100 × contracts − commission``; a close pays
  ``exit_price × 100 × contracts + commission``; a cash settlement pays ``exit_price × 100 × contracts`` (no
  commission). ``equity = cash − Σ open mark × 100 × contracts``.
* **Times** are tz-aware :class:`pandas.Timestamp` in America/New_York; dates are :class:`datetime.date`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd

MULTIPLIER = 100.0

#: Order kinds and statuses. ``submitted``: recorded, sent (or about to be sent) to the broker, outcome not yet
#: recorded; ``filled`` and ``rejected`` are final.
ORDER_KINDS = ("open", "close")
ORDER_STATUSES = ("submitted", "filled", "rejected")
#: Position statuses.
POSITION_STATUSES = ("open", "closed")


@dataclasses.dataclass(frozen=True)
class LegOrder:
    """One leg of an order, with the quote it is priced from.

    Attributes
    ----------
    root, expiration, settlement, strike, right
        The contract (``settlement`` ``"AM"``/``"PM"``; ``right`` ``"C"``/``"P"``).
    quantity : int
        Signed per unit of the strategy (−1 sold, +1 bought).
    bid, ask : float
        The quote the order is priced from, per share.
    quote_time : pandas.Timestamp
        When that quote was taken (the chain snapshot's ``quote_time``).
    source : str
        Where the quote came from (the chain's ``source``, e.g. ``"cboe"``, a file name, ``"store"``).
    """

    root: str
    expiration: dt.date
    settlement: str
    strike: float
    right: str
    quantity: int
    bid: float
    ask: float
    quote_time: pd.Timestamp
    source: str

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0

    @property
    def label(self) -> str:
        """``"-1 SPXW 2026-08-21 6300P"``."""
        return f"{self.quantity:+d} {self.root} {self.expiration:%Y-%m-%d} {self.strike:g}{self.right}"


@dataclasses.dataclass(frozen=True)
class OrderRequest:
    """An order to record before it goes to the broker (:meth:`PaperLedger.submit_order`).

    Attributes
    ----------
    account : str
        The account's name.
    client_order_id : str
        The caller's id, unique in the ledger: submitting the same request twice records it once (the second call
        returns the first order); the same id with a different order raises :class:`~research_lib.errors.OrderError`.
    kind : str
        ``"open"`` (opens a new position) or ``"close"`` (closes ``position_id``).
    strategy : str
        The strategy's label (``"Bull Put Spread"``, ``"bull_put"`` ...): the statistics are kept per strategy.
    contracts : int
        Units, > 0.
    legs : tuple of LegOrder
        The legs (a close lists the position's legs with the closing quotes; quantities as in the position).
    position_id : int, optional
        ``close`` only: the position closed.
    max_loss : float, optional
        ``open`` only: dollars at risk per contract (the structure's max loss); the open risk and the return on
        risk of the closed trade use it.
    decision_id : str, optional
        The decision log's ENTRY (open) or EXIT (close) decision.
    reason : str, optional
        ``close``: the exit reason (:data:`research_lib.core.exits.EXIT_REASONS`); ``open``: free text.
    created_at : pandas.Timestamp
        The order's time (the mark's or the chain's moment when replaying stored days).
    """

    account: str
    client_order_id: str
    kind: str
    strategy: str
    contracts: int
    legs: tuple[LegOrder, ...]
    created_at: pd.Timestamp
    position_id: int | None = None
    max_loss: float | None = None
    decision_id: str | None = None
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class LegFill:
    """The broker's fill of one leg: ``price`` per share (≥ 0) and ``commission`` in dollars for all its
    contracts."""

    price: float
    commission: float


@dataclasses.dataclass(frozen=True)
class Execution:
    """What the broker did with an order (:meth:`research_lib.paper.broker.Broker.submit`).

    Attributes
    ----------
    broker_order_id : str
        The broker's id (the simulated broker's ``PAPER-…``).
    legs : tuple of LegFill
        One per leg of the request, in its order.
    filled_at : pandas.Timestamp
    model : str
        How the price was made (``"mid"``, ``"natural"``, ``"slippage:0.25"``, ``"settlement"``).
    """

    broker_order_id: str
    legs: tuple[LegFill, ...]
    filled_at: pd.Timestamp
    model: str

    @property
    def commission(self) -> float:
        return float(sum(leg.commission for leg in self.legs))


@dataclasses.dataclass(frozen=True)
class Order:
    """An order as the ledger holds it (``status`` one of :data:`ORDER_STATUSES`)."""

    order_id: int
    account: str
    client_order_id: str
    kind: str
    strategy: str
    contracts: int
    status: str
    legs: tuple[LegOrder, ...]
    created_at: pd.Timestamp
    updated_at: pd.Timestamp
    position_id: int | None = None
    broker_order_id: str | None = None
    max_loss: float | None = None
    decision_id: str | None = None
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class PositionLeg:
    """One leg of a position: the contract, its signed quantity per unit, and its entry fill and quote."""

    leg_index: int
    root: str
    expiration: dt.date
    settlement: str
    strike: float
    right: str
    quantity: int
    entry_fill: float
    entry_bid: float
    entry_ask: float

    @property
    def entry_mid(self) -> float:
        return (self.entry_bid + self.entry_ask) / 2.0

    @property
    def label(self) -> str:
        return f"{self.quantity:+d} {self.root} {self.expiration:%Y-%m-%d} {self.strike:g}{self.right}"


@dataclasses.dataclass(frozen=True)
class Position:
    """A position (open or closed) with its legs.

    ``entry_price`` is the filled price per unit (credit positive, module docstring); ``max_loss`` dollars per
    contract; ``commissions`` the dollars paid so far (entry, plus exit once closed).
    """

    position_id: int
    account: str
    strategy: str
    contracts: int
    entry_price: float
    max_loss: float | None
    opened_at: pd.Timestamp
    status: str
    legs: tuple[PositionLeg, ...]
    open_order_id: int
    commissions: float
    decision_id: str | None = None

    @property
    def entry_mid_price(self) -> float:
        """The entry price at the legs' mid quotes: ``−Σ quantity × entry mid``."""
        return -sum(leg.quantity * leg.entry_mid for leg in self.legs)

    @property
    def entry_value(self) -> float:
        """Dollars received (+) or paid (−) at entry: ``entry_price × 100 × contracts``."""
        return self.entry_price * MULTIPLIER * self.contracts

    @property
    def risk(self) -> float:
        """Dollars at risk: ``max_loss × contracts`` (0 when unknown)."""
        return (self.max_loss or 0.0) * self.contracts

    @property
    def expiration(self) -> dt.date:
        """The nearest expiry of its legs."""
        return min(leg.expiration for leg in self.legs)


@dataclasses.dataclass(frozen=True)
class Mark:
    """One position marked from one chain (:meth:`PaperLedger.record_marks`).

    Attributes
    ----------
    position_id : int
    marked_at : pandas.Timestamp
        The chain's quote time.
    source : str
        The chain's source.
    mark : float
        The position's price at mid quotes, per unit (credit convention); NaN when a leg is missing.
    mark_natural : float
        At the prices closing would get (buy back a short at the ask, sell a long at the bid); NaN as above.
    unrealized_pnl : float
        ``(entry_price − mark) × 100 × contracts`` dollars; NaN when a leg is missing.
    pnl_pct : float
        ``unrealized_pnl / |entry_value|`` (a fraction: 0.5 = half the credit earned).
    dte : int
        Calendar days from the chain's trading date to the nearest expiry.
    leg_mids : tuple of float
        Each leg's mid, in leg order (NaN for a missing leg).
    missing : tuple of str
        Labels of the legs the chain lacked (never marked at zero).
    """

    position_id: int
    marked_at: pd.Timestamp
    source: str
    mark: float
    mark_natural: float
    unrealized_pnl: float
    pnl_pct: float
    dte: int
    leg_mids: tuple[float, ...]
    missing: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ClosedTrade:
    """A closed position: ``exit_reason`` (:data:`research_lib.core.exits.EXIT_REASONS`), ``exit_price`` per unit,
    ``realized_pnl`` dollars net of all commissions, ``return_on_risk`` = realized P&L / (max loss × contracts)
    (NaN when the max loss is unknown), ``exit_kind`` ``"fill"`` or ``"settlement"``."""

    position_id: int
    account: str
    strategy: str
    contracts: int
    opened_at: pd.Timestamp
    closed_at: pd.Timestamp
    entry_price: float
    exit_price: float
    exit_reason: str
    exit_kind: str
    realized_pnl: float
    commissions: float
    return_on_risk: float
    exit_decision_id: str | None = None


@dataclasses.dataclass(frozen=True)
class Account:
    """A named paper account: ``starting_cash`` and ``cash`` in dollars."""

    name: str
    starting_cash: float
    cash: float
    created_at: pd.Timestamp


@dataclasses.dataclass(frozen=True)
class ReconcileReport:
    """What :meth:`PaperLedger.reconcile` found and did.

    ``applied``: orders left ``submitted`` whose execution the broker had (the fill recorded now); ``rejected``:
    those it did not have (never sent: rejected, nothing opened); ``repaired``: other repairs (statistics
    recomputed, ...); ``problems``: inconsistencies it could not repair (each a sentence naming the rows).
    """

    applied: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    repaired: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        """Nothing was left in between and nothing is wrong."""
        return not (self.applied or self.rejected or self.repaired or self.problems)

    def summary(self) -> str:
        if self.clean:
            return "ledger consistent: nothing to reconcile"
        parts = [f"{len(v)} {k}: " + "; ".join(v) for k, v in
                 (("applied", self.applied), ("rejected", self.rejected), ("repaired", self.repaired),
                  ("problems", self.problems)) if v]
        return " | ".join(parts)
