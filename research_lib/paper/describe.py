"""Plain-text views of the paper trader's results, for the command line (``research-lib paper ...``).

Pure formatting: each function takes the trader's result objects and returns a string.
"""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["describe_closed", "describe_history", "describe_open", "describe_status"]


def _money(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:+,.2f}"


def describe_open(result) -> str:
    """The proposal (regime, reasons, legs, size) and the position placed, or why nothing was."""
    p = result.proposal
    lines = [f"{p.snapshot_date} {p.source}: regime {p.regime}", *[f"  - {r}" for r in p.reasons[-3:]],
             f"decision: {p.decision.what}"]
    if p.legs:
        lines.append(p.legs_frame().to_string(index=False))
        lines.append(f"entry {p.entry_price:+.2f} per unit at mid, max loss {p.max_loss:,.2f} per contract, "
                     f"{p.contracts} contract(s)")
    if result.position is None:
        lines.append(f"not placed: {p.why_not}")
    else:
        pos = result.position
        lines.append(f"placed: position #{pos.position_id} {pos.strategy} x{pos.contracts} filled at "
                     f"{pos.entry_price:+.2f} ({pos.entry_value:+,.2f} dollars, commissions {pos.commissions:,.2f})")
    return "\n".join(lines)


def describe_closed(trade) -> str:
    return (f"closed position #{trade.position_id} {trade.strategy} x{trade.contracts} ({trade.exit_reason}, "
            f"{trade.exit_kind}) at {trade.exit_price:+.2f}: realized P&L {_money(trade.realized_pnl)} after "
            f"{trade.commissions:,.2f} commissions")


def describe_status(status, trader=None) -> str:
    s = status.summary
    lines = [f"paper account {s.account}: equity {s.equity:,.2f} (cash {s.cash:,.2f}, start {s.starting_cash:,.2f}, "
             f"return {s.return_pct:+.2%}); open risk {s.open_risk:,.2f}; realized {_money(s.realized_pnl)}, "
             f"unrealized {_money(s.unrealized_pnl)}; {s.n_open} open, {s.n_closed} closed"
             + (f"; marked {s.as_of:%Y-%m-%d %H:%M %Z}" if s.as_of is not None else "")]
    if trader is not None and s.n_open:
        table = trader.positions_table()
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            lines.append(table.drop(columns=["opened", "marked_at"]).to_string(index=False))
    return "\n".join(lines)


def describe_history(history: dict) -> str:
    parts = []
    for name in ("closed_trades", "statistics", "equity"):
        frame = history[name]
        parts.append(f"{name.replace('_', ' ')}: {len(frame)} row(s)")
        if len(frame):
            with pd.option_context("display.width", 200, "display.max_columns", 20):
                parts.append((frame.tail(20) if name == "equity" else frame).to_string(index=False))
    return "\n".join(parts)
