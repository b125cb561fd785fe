"""The position monitor: mark every open position of an account from a chain, apply the exit rules, close what
fires, log each EXIT with what, why and how.

:func:`monitor` is one pass over one chain snapshot:

1. the account's open positions on the chain's underlying are marked (:func:`research_lib.paper.marks.mark_positions`)
   and the marks recorded with an equity snapshot (one ledger transaction);
2. :func:`research_lib.core.exits.exit_reasons` gives each position's exit, first that fires wins: ``expiry``
   (cash settlement at intrinsic value against the documented settlement price, no commission), ``profit_target``,
   ``stop_loss``, ``exit_dte``;
3. each exit but ``expiry`` closes through the broker at its fill model on the chain's quotes, in the two phases of
   the ledger (order recorded, then its fill); the client order id is ``CLOSE-<position id>``, so a second monitor
   (cron and the notebook at once) or a rerun after a crash closes a position once;
4. an EXIT :class:`~research_lib.records.decisions.TradeDecision` goes to the decision log and its id to the closed
   trade; the ledger updated the strategy's statistics in the close's transaction.

A position opened after the chain's trading date (a replayed earlier day) is left alone and reported. A position
with a leg the chain lacks is reported (``problems``), never marked at zero; it can still close by the
DTE rule only if every leg has a quote to fill at — otherwise it is reported and left open. A position needing a
settlement price that the daily history does not have yet is reported and left open.

Settlement prices (:func:`research_lib.backtest.settlement.settlement_price`): PM expiries settle at the expiry
session's close, AM expiries at its opening print, both from the daily history of the index (no SOQ history is
available; said in the note). For a PM expiry whose session the history does not reach, a chain quoted at or after
that session's close gives its spot as the close (said in the note of the closed trade).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from research_lib import calendar as cal
from research_lib.backtest.settlement import intrinsic, settlement_price
from research_lib.core.chain import ChainSnapshot
from research_lib.core.exits import ExitRules, exit_reasons
from research_lib.errors import MarkError, ResearchLibError, SettlementError
from research_lib.formatting import jsonable
from research_lib.paper.broker import Broker
from research_lib.paper.marks import leg_quotes, mark_positions
from research_lib.records.decisions import (
    DecisionLog,
    DecisionType,
    MarketContext,
    TradeDecision,
    describe_what,
)
from research_lib.records.paper import ClosedTrade, LegOrder, Mark, OrderRequest, Position

__all__ = ["MarkReport", "close_order", "close_through", "exit_decision", "log_exit", "monitor", "underlying_of"]

#: Roots whose underlying is another symbol (the weeklies of SPX are SPXW, of NDX NDXP, of RUT RUTW).
ROOT_UNDERLYING = {"SPXW": "SPX", "NDXP": "NDX", "RUTW": "RUT", "VIXW": "VIX"}


def underlying_of(root: str) -> str:
    """The underlying a root is an option on (``SPXW`` → ``SPX``; a root is its own underlying otherwise)."""
    r = str(root).upper()
    return ROOT_UNDERLYING.get(r, r)


@dataclasses.dataclass(frozen=True)
class MarkReport:
    """What one monitor pass did.

    Attributes
    ----------
    marks : tuple of Mark
        One per open position marked (NaN prices where a leg was missing).
    closed : tuple of ClosedTrade
        The positions closed by a rule, in the order closed.
    problems : tuple of str
        Sentences naming the position and the leg or value that was missing.
    at : pandas.Timestamp or None
        The chain's quote time (None when nothing was marked).
    served : tuple of str
        One line per chain used (:meth:`research_lib.sources.auto.ServedChain.describe` or the snapshot's source).
    skipped : str or None
        Why nothing was done at all (outside the session, no open position), else None.
    """

    marks: tuple[Mark, ...] = ()
    closed: tuple[ClosedTrade, ...] = ()
    problems: tuple[str, ...] = ()
    at: pd.Timestamp | None = None
    served: tuple[str, ...] = ()
    skipped: str | None = None

    def merge(self, other: MarkReport) -> MarkReport:
        at = max((t for t in (self.at, other.at) if t is not None), default=None)
        return MarkReport(self.marks + other.marks, self.closed + other.closed, self.problems + other.problems,
                          at, self.served + other.served, self.skipped if other.skipped is None else other.skipped)

    def summary(self) -> str:
        if self.skipped and not self.marks:
            return self.skipped
        parts = [f"marked {len(self.marks)} position{'s' if len(self.marks) != 1 else ''}"
                 + (f" at {self.at:%Y-%m-%d %H:%M %Z}" if self.at is not None else "")]
        for t in self.closed:
            parts.append(f"closed #{t.position_id} ({t.exit_reason}) P&L {t.realized_pnl:+,.2f}")
        parts.extend(self.problems)
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return jsonable({"marks": [dataclasses.asdict(m) for m in self.marks],
                         "closed": [dataclasses.asdict(t) for t in self.closed], "problems": list(self.problems),
                         "at": self.at, "served": list(self.served), "skipped": self.skipped,
                         "summary": self.summary()})


def close_order(position: Position, snapshot: ChainSnapshot, reason: str, *, at=None,
                decision_id: str | None = None) -> OrderRequest:
    """The closing order of ``position`` priced from ``snapshot`` (client order id ``CLOSE-<id>``).

    Raises
    ------
    MarkError
        A leg has no usable quote in the chain (a close is never priced at zero).
    """
    legs = position.legs
    q = leg_quotes(snapshot, [leg.root for leg in legs], [leg.expiration for leg in legs],
                   [leg.right for leg in legs], [leg.strike for leg in legs])
    bad = [leg.label for leg, ok in zip(legs, q["quoted"], strict=True) if not ok]
    if bad:
        raise MarkError(f"position {position.position_id}: cannot close ({reason}): the chain of "
                        f"{snapshot.snapshot_date} ({snapshot.source}) has no usable quote for {', '.join(bad)}")
    order_legs = tuple(LegOrder(root=leg.root, expiration=leg.expiration, settlement=leg.settlement,
                                strike=leg.strike, right=leg.right, quantity=leg.quantity, bid=float(b), ask=float(a),
                                quote_time=snapshot.quote_time, source=snapshot.source)
                       for leg, b, a in zip(legs, q["bid"], q["ask"], strict=True))
    return OrderRequest(account=position.account, client_order_id=f"CLOSE-{position.position_id}", kind="close",
                        strategy=position.strategy, contracts=position.contracts, legs=order_legs,
                        created_at=pd.Timestamp(at if at is not None else snapshot.quote_time),
                        position_id=position.position_id, decision_id=decision_id, reason=reason)


def exit_decision(position: Position, trade: ClosedTrade, *, spot: float | None, source: str | None,
                  mark: Mark | None = None, note: str | None = None, decided_by: str = "paper") -> TradeDecision:
    """The EXIT decision of a closed trade: what ("BUY TO CLOSE 2x SPX bull_put 6300/6250"), why (the rule and the
    figures that fired it), how (the fill model or the settlement value)."""
    underlying = underlying_of(position.legs[0].root)
    action = "BUY TO CLOSE" if position.entry_price > 0 else "SELL TO CLOSE"
    what = describe_what(action, position.contracts, underlying, position.strategy,
                         [leg.strike for leg in position.legs])
    basis = abs(position.entry_price)
    moved = position.entry_price - trade.exit_price
    why = {"profit_target": f"Profit target: earned {moved:.2f} of the {basis:.2f} entry "
                            f"({moved / basis:.0%} of it)" if basis else "Profit target",
           "stop_loss": f"Stop loss: lost {-moved:.2f} on the {basis:.2f} entry ({-moved / basis:.0%} of it)"
                        if basis else "Stop loss",
           "exit_dte": f"DTE rule: {mark.dte if mark is not None else '?'} calendar days to "
                       f"{position.expiration:%Y-%m-%d}",
           "expiry": f"Expired {position.expiration:%Y-%m-%d}: cash-settled at intrinsic value",
           "manual": "Closed by hand"}.get(trade.exit_reason, trade.exit_reason)
    why += f"; realized P&L {trade.realized_pnl:+,.2f} after {trade.commissions:,.2f} commissions."
    how = (f"Exit price {trade.exit_price:.2f} per unit ({trade.exit_kind}"
           + (f": {note}" if note else "") + f"), {position.contracts} contract(s)")
    context = MarketContext(underlying=underlying, spot=spot, source=source) if spot and spot > 0 else None
    return TradeDecision.create(DecisionType.EXIT, source=decided_by, what=what, why=why, how=how, context=context,
                                underlying=underlying, legs=[dataclasses.asdict(leg) for leg in position.legs],
                                strategy=position.strategy, contracts=position.contracts,
                                timestamp=trade.closed_at, trading_date=cal.trading_date(trade.closed_at),
                                ref_id=position.decision_id)


def _settlement_values(position: Position, snapshot: ChainSnapshot,
                       daily: Callable[[], pd.DataFrame | None]) -> tuple[np.ndarray, str]:
    """Each leg's intrinsic value at its expiry's settlement price, and the note saying where the price came from."""
    values, notes = [], []
    for leg in position.legs:
        try:
            hist = daily()
            if hist is None:
                raise SettlementError("no daily history of the index is available")
            s = settlement_price(leg.expiration, leg.settlement, hist)
            price, note = s.price, f"{leg.settlement} settlement {s.price:.2f} ({s.source})"
        except SettlementError as exc:
            closed = cal.session_close(leg.expiration) if cal.is_session(leg.expiration) else None
            if (leg.settlement == "PM" and closed is not None and snapshot.snapshot_date == leg.expiration
                    and snapshot.quote_time >= closed):
                price, note = float(snapshot.spot), f"PM settlement {snapshot.spot:.2f} (the chain's spot at the close)"
            else:
                raise SettlementError(f"position {position.position_id}, leg {leg.label}: {exc}") from None
        values.append(float(intrinsic(leg.strike, leg.right, price)))
        notes.append(note)
    return np.array(values), "; ".join(dict.fromkeys(notes))


def monitor(ledger, account: str, snapshot: ChainSnapshot, *, broker: Broker, rules: ExitRules | None = None,
            log: DecisionLog | None = None, daily: Callable[[], pd.DataFrame | None] | None = None,
            positions: Sequence[Position] | None = None, decided_by: str = "paper") -> MarkReport:
    """Mark, apply the exit rules, close and log (module docstring) for one account and one chain.

    Parameters
    ----------
    ledger : PaperLedger
    account : str
    snapshot : ChainSnapshot
        The chain the positions are marked and closed from.
    broker : Broker
        Fills the closes (:class:`research_lib.paper.broker.SimulatedBroker`).
    rules : ExitRules, optional
        Default ``ExitRules()`` (50% profit, 200% loss, 7 DTE).
    log : DecisionLog, optional
        Where the EXIT decisions go (None: not logged; the closed trades keep no decision id).
    daily : callable, optional
        Returns the index's daily history (date-indexed ``open``/``close``) for settlements, or None.
    positions : sequence of Position, optional
        The positions to consider (default: the account's open positions on the chain's underlying).

    Returns
    -------
    MarkReport
    """
    rules = rules or ExitRules()
    under = snapshot.underlying.upper()
    if positions is None:
        positions = [p for p in ledger.open_positions(account)
                     if all(underlying_of(leg.root) == under for leg in p.legs)]
    served = (f"{snapshot.underlying} {snapshot.source} quoted {snapshot.quote_time:%Y-%m-%d %H:%M %Z}",)
    # a replayed day before a position's entry cannot mark it (nothing sees the past from after it)
    day = snapshot.snapshot_date
    later = [p for p in positions if pd.Timestamp(p.opened_at).tz_convert("America/New_York").date() > day]
    positions = [p for p in positions if p not in later]
    problems = [f"position {p.position_id}: opened {p.opened_at:%Y-%m-%d}, after the chain's trading date {day}: "
                f"not marked" for p in later]
    if not positions:
        return MarkReport(at=snapshot.quote_time, served=served, problems=tuple(problems),
                          skipped=f"no open {under} position to mark on {day}")
    marks = mark_positions(positions, snapshot)
    ledger.record_marks(account, marks, at=snapshot.quote_time)
    problems += [f"position {m.position_id}: no usable quote for {', '.join(m.missing)} in the chain of "
                 f"{snapshot.snapshot_date}: not marked (kept at its last mark)" for m in marks if m.missing]
    reasons = exit_reasons([p.entry_price for p in positions], [m.mark for m in marks], [m.dte for m in marks],
                           rules)
    closed = []
    daily = daily or (lambda: None)
    for pos, mark, reason in zip(positions, marks, reasons, strict=True):
        if reason is None:
            continue
        try:
            if reason == "expiry":
                values, note = _settlement_values(pos, snapshot, daily)
                trade = ledger.settle_position(pos.position_id, settled_at=snapshot.quote_time,
                                               leg_values=[float(v) for v in values], note=note)
            else:
                note = broker_note(broker)
                trade = close_through(ledger, broker, pos, snapshot, str(reason))
        except ResearchLibError as exc:
            problems.append(f"position {pos.position_id}: {reason} fired but it was not closed: {exc}")
            continue
        if log is not None:
            trade = log_exit(ledger, log, pos, trade, spot=snapshot.spot, source=snapshot.source, mark=mark,
                             note=note, decided_by=decided_by)
        closed.append(trade)
    return MarkReport(marks=marks, closed=tuple(closed), problems=tuple(problems), at=snapshot.quote_time,
                      served=served)


def close_through(ledger, broker: Broker, position: Position, snapshot: ChainSnapshot, reason: str) -> ClosedTrade:
    """Close ``position`` at the broker on ``snapshot``'s quotes, in the ledger's two phases (order recorded, then
    its fill; the client id ``CLOSE-<id>`` makes a second close of the same position a no-op)."""
    request = close_order(position, snapshot, reason)
    ledger.submit_order(request)
    return ledger.record_fill(request.client_order_id, broker.submit(request))


def log_exit(ledger, log: DecisionLog, position: Position, trade: ClosedTrade, **decision) -> ClosedTrade:
    """Log the EXIT decision of ``trade`` (keywords of :func:`exit_decision`) unless it has one, and tie its id to
    the closed trade; returns the trade with its ``exit_decision_id``."""
    if trade.exit_decision_id is not None:
        return trade
    recorded = log.record(exit_decision(position, trade, **decision))
    ledger.set_exit_decision(position.position_id, recorded.decision_id)
    return dataclasses.replace(trade, exit_decision_id=recorded.decision_id)


def broker_note(broker: Broker) -> str:
    """``"simulated broker, mid fill"``: how a close was filled, for the EXIT decision's *how*."""
    model = getattr(broker, "model", None)
    return f"{broker.name} broker" + (f", {model} fill" if model else "")
