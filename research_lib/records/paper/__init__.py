"""The paper ledger: accounts, orders, fills, positions, marks, closed trades, equity and statistics in SQLite.

The conventions (signs, units, cash) are in :mod:`.records`; the ledger itself is :mod:`.ledger`.
"""

from research_lib.records.paper.ledger import (
    CLOSED_TRADE_COLUMNS,
    EQUITY_COLUMNS,
    FILL_COLUMNS,
    MARK_COLUMNS,
    NOT_EXECUTED,
    ORDER_COLUMNS,
    STATS_COLUMNS,
    PaperLedger,
)
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
from research_lib.records.paper.schema import DB_NAME, MIGRATIONS, SCHEMA_VERSION

__all__ = ["CLOSED_TRADE_COLUMNS", "DB_NAME", "EQUITY_COLUMNS", "FILL_COLUMNS", "MARK_COLUMNS", "MIGRATIONS",
           "MULTIPLIER", "NOT_EXECUTED", "ORDER_COLUMNS", "ORDER_KINDS", "ORDER_STATUSES", "POSITION_STATUSES",
           "SCHEMA_VERSION", "STATS_COLUMNS", "Account", "ClosedTrade", "Execution", "LegFill", "LegOrder", "Mark",
           "Order", "OrderRequest", "PaperLedger", "Position", "PositionLeg", "ReconcileReport"]
