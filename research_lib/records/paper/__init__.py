"""The paper ledger: accounts, orders, fills, positions, marks, closed trades, equity and statistics in SQLite.

The conventions (signs, units, cash) are in :mod:`.records`; the ledger itself is :mod:`.ledger`.
"""

from research_lib.records.paper.records import (
    MULTIPLIER,
    ORDER_KINDS,
    ORDER_STATUSES,
    POSITION_STATUSES,
    Account,
    ClosedTrade,
    Execution,
    LegFill,
    LegOrder,
    Mark,
    Order,
    OrderRequest,
    Position,
    PositionLeg,
    ReconcileReport,
)

__all__ = ["MULTIPLIER", "ORDER_KINDS", "ORDER_STATUSES", "POSITION_STATUSES", "Account", "ClosedTrade", "Execution",
           "LegFill", "LegOrder", "Mark", "Order", "OrderRequest", "Position", "PositionLeg", "ReconcileReport"]
