"""Synthetic paper orders for the ledger's tests, the crash driver and the concurrency workers.

A bull put spread on SPXW 2026-08-21: short 6300P (bid 12.00, ask 12.40, mid 12.20), long 6250P (bid 9.80,
ask 10.20, mid 10.00); at mid it opens for a 2.20 credit, its max loss is (50 − 2.20) × 100 = 4,780 dollars per
contract. Commission 0.65 per contract per leg.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from research_lib.records.paper import Execution, LegFill, LegOrder, OrderRequest

EXPIRY = dt.date(2026, 8, 21)
T0 = pd.Timestamp("2026-07-01 10:00", tz="America/New_York")
T_CLOSE = T0 + pd.Timedelta(days=5)
COMMISSION = 0.65
MAX_LOSS = 4780.0
ACCOUNT = "paper"


def legs(short_bid: float = 12.0, short_ask: float = 12.4, long_bid: float = 9.8, long_ask: float = 10.2,
         at: pd.Timestamp = T0, expiry: dt.date = EXPIRY) -> tuple[LegOrder, ...]:
    return (LegOrder("SPXW", expiry, "PM", 6300.0, "P", -1, short_bid, short_ask, at, "synthetic"),
            LegOrder("SPXW", expiry, "PM", 6250.0, "P", 1, long_bid, long_ask, at, "synthetic"))


def open_request(cid: str, contracts: int = 2, *, account: str = ACCOUNT, at: pd.Timestamp = T0,
                 strategy: str = "bull_put", max_loss: float | None = MAX_LOSS, **quotes) -> OrderRequest:
    return OrderRequest(account=account, client_order_id=cid, kind="open", strategy=strategy, contracts=contracts,
                        legs=legs(at=at, **quotes), created_at=at, max_loss=max_loss, decision_id=None,
                        reason="test entry")


def close_request(cid: str, position_id: int, contracts: int = 2, *, account: str = ACCOUNT,
                  at: pd.Timestamp = T_CLOSE, reason: str = "profit_target",
                  strategy: str = "bull_put", **quotes) -> OrderRequest:
    q = {"short_bid": 5.8, "short_ask": 6.2, "long_bid": 4.7, "long_ask": 5.1} | quotes
    return OrderRequest(account=account, client_order_id=cid, kind="close", strategy=strategy,
                        contracts=contracts, legs=legs(at=at, **q), created_at=at, position_id=position_id,
                        reason=reason)


def execution(request: OrderRequest, *, broker_id: str | None = None, commission: float = COMMISSION) -> Execution:
    """A fill of every leg at its mid, ``commission`` per contract per leg."""
    return Execution(broker_order_id=broker_id or f"PAPER-{request.client_order_id}",
                     legs=tuple(LegFill(leg.mid, commission * request.contracts) for leg in request.legs),
                     filled_at=request.created_at + pd.Timedelta(seconds=1), model="mid")
