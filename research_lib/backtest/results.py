"""What a backtest returns: record tables (vectorbt style) in one frozen :class:`BacktestResult`.

Prices are per unit of the underlying (× the contract multiplier, 100 for SPX, per contract). Sign
convention: ``entry_price`` is the net premium **received** at entry (a credit positive, a debit negative);
``exit_price`` the net premium **paid** to close (positive when paying); so a trade's P&L is
``(entry_price − exit_price) × multiplier × contracts − commissions``. Leg quantities are signed contracts
(+ long, − short).

Tables (DataFrames; the CSV files :meth:`BacktestResult.write_csv` writes have the same columns):

trades — :data:`TRADE_COLUMNS`
    ``trade_id`` (int, from 1), ``entry_date``, ``exit_date`` (trading dates; exit NaT while open at the end —
    never: the last day closes everything with reason ``end_of_data``), ``strategy``, ``contracts`` (float:
    whole for the rule strategies, fractional for putwrite/buywrite), ``entry_price``, ``exit_price``,
    ``exit_reason`` (:data:`EXIT_REASONS`), ``pnl`` ($, after commissions), ``commissions`` ($), ``days_held``
    (sessions), ``regime`` (at entry, or ""), ``why`` (the decision's why, or the rule that entered), ``max_loss``
    ($ at risk at entry, the sizing's risk), ``flags`` (e.g. ``"stale_marks:2"``).
legs — :data:`LEG_COLUMNS`
    one row per leg of every trade: ``trade_id, root, expiration, settlement, strike, right, quantity,
    entry_date, entry_bid, entry_ask, entry_mid, entry_fill, exit_date, exit_bid, exit_ask, exit_value,
    exit_fill, exit_kind, settlement_price, settlement_source``. ``exit_kind``: ``quote`` (closed at that day's
    quote: ``exit_value`` its mid, ``exit_fill`` the fill), ``settlement`` (held to expiry: ``exit_value`` the
    intrinsic value at ``settlement_price``), ``last_mark`` (the leg was missing from the chain on the exit day:
    the last mark's values, flagged).
equity — :data:`EQUITY_COLUMNS`
    one row per trading day served: ``date, equity, cash, positions_value`` (open positions at mid),
    ``positions_value_natural`` (at the price closing them would get), ``drawdown`` (equity / running max − 1,
    ≤ 0), ``delta`` (shares of the underlying), ``gamma`` (shares per point), ``theta`` ($ per calendar day),
    ``vega`` ($ per vol point), ``open_positions``, ``stale_legs`` (legs marked from an earlier day).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from research_lib.formatting import jsonable
from research_lib.fs import atomic_write

TRADE_COLUMNS = ("trade_id", "entry_date", "exit_date", "strategy", "contracts", "entry_price", "exit_price",
                 "exit_reason", "pnl", "commissions", "days_held", "regime", "why", "max_loss", "flags")
LEG_COLUMNS = ("trade_id", "root", "expiration", "settlement", "strike", "right", "quantity", "entry_date",
               "entry_bid", "entry_ask", "entry_mid", "entry_fill", "exit_date", "exit_bid", "exit_ask", "exit_value",
               "exit_fill", "exit_kind", "settlement_price", "settlement_source")
EQUITY_COLUMNS = ("date", "equity", "cash", "positions_value", "positions_value_natural", "drawdown", "delta",
                  "gamma", "theta", "vega", "open_positions", "stale_legs")
EXIT_REASONS = ("profit_target", "stop_loss", "exit_dte", "max_hold", "regime_change", "expiry", "missing_legs",
                "roll", "end_of_data")


def empty_table(columns) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


@dataclasses.dataclass(frozen=True, eq=False)
class BacktestResult:
    """One backtest's records (see the module docstring for the tables' columns and sign conventions).

    Attributes
    ----------
    trades, legs, equity : DataFrame
    missing_days : tuple of datetime.date
        NYSE sessions in the range served that the data lacks (never filled in).
    assumptions : Mapping
        Fills, costs, settlement sources, sizing, the data source — every choice a reader needs, as text/numbers.
    params : Mapping
        The parameters as given (``BacktestParams.to_dict()``).
    underlying, source : str
    start, end : datetime.date
        First and last trading day served.
    initial_equity : float
    """

    trades: pd.DataFrame
    legs: pd.DataFrame
    equity: pd.DataFrame
    missing_days: tuple[dt.date, ...]
    assumptions: Mapping
    params: Mapping
    underlying: str
    source: str
    start: dt.date
    end: dt.date
    initial_equity: float

    @property
    def days(self) -> int:
        """Trading days served."""
        return len(self.equity)

    @property
    def net_pnl(self) -> float:
        """Final equity − initial equity ($)."""
        return float(self.equity["equity"].iloc[-1] - self.initial_equity) if len(self.equity) else 0.0

    def stats(self):
        """:class:`~research_lib.backtest.stats.BacktestStats` of this result."""
        # lazy: start-up time — the statistics library is heavy and only needed when asked
        from research_lib.backtest.stats import backtest_stats

        return backtest_stats(self)

    def write_csv(self, out: str | os.PathLike) -> dict[str, Path]:
        """Write ``trades.csv``, ``legs.csv``, ``equity.csv`` (atomically) under ``out``; returns their paths by
        name (``trades_path``, ``legs_path``, ``equity_path``)."""
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, table in (("trades", self.trades), ("legs", self.legs), ("equity", self.equity)):
            path = folder / f"{name}.csv"
            atomic_write(path, table.to_csv(index=False).encode())
            paths[f"{name}_path"] = path
        return paths

    def summary(self) -> dict:
        """The headline figures and the run's shape (no statistics): underlying, source, start, end, days,
        missing_days, trades, net_pnl, assumptions."""
        return jsonable({"underlying": self.underlying, "source": self.source, "start": self.start, "end": self.end,
                         "days": self.days, "missing_days": list(self.missing_days), "trades": len(self.trades),
                         "net_pnl": self.net_pnl, "initial_equity": self.initial_equity,
                         "assumptions": dict(self.assumptions), "params": dict(self.params)})


__all__ = ["BacktestResult", "EQUITY_COLUMNS", "EXIT_REASONS", "LEG_COLUMNS", "TRADE_COLUMNS", "empty_table"]
