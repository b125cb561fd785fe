"""The paper trader: the day's decision from the pure core, placed through the broker into the ledger, marked and
closed by the monitor. What the command line (``research-lib paper ...``), the nightly pipeline and the widget
panel of ``notebooks/paper_trading.ipynb`` all call.

:class:`PaperTrader` holds one account of the ledger (``data/paper.sqlite``), the simulated broker, the decision log
and the bot's settings (:mod:`research_lib.paper.config`, ``data/paper.toml``). On start it reconciles the ledger
(:meth:`PaperLedger.reconcile <research_lib.records.paper.ledger.PaperLedger.reconcile>`: orders left between
their two phases by a crash are completed from the broker's journal or rejected) and logs the EXIT decision of any
trade closed without one.

Entries (:meth:`PaperTrader.propose`, then :meth:`PaperTrader.place`)
    ``auto``: :func:`research_lib.pipeline.decide.decide_on` on the chain with the market history as of its date,
    the account's equity (cash less the cost to close the open positions at their latest marks), its open risk,
    each strategy's own statistics from the ledger's closed trades (Kelly once there are enough, the bootstrap risk
    before), the previous decision of the log — the decision ``research-lib decide`` would make, sized against the
    paper account. A fixed strategy (``short_put``, ``bull_put`` … with ``dte``, ``short_delta``, ``long_delta`` or
    ``width``) takes the backtest's leg selection on the same chain
    (:func:`research_lib.backtest.engine.select_for_snapshot`) and the same sizing. A proposal is tradeable when it
    has legs, at least one contract and a free slot (``max_open_positions``); its client order id is
    ``OPEN-<account>-<trading date>-<strategy>-<legs hash>``, so placing it twice records one position.

Prices: every fill is the simulated broker's fill model on the quote of the chain the proposal was made from
(:mod:`research_lib.paper.broker`); every mark the chain's mid (:mod:`research_lib.paper.marks`); settlements the
documented settlement values (:mod:`research_lib.paper.monitor`). Times are the chain's quote time, so replaying a
stored day (``date=``) writes the ledger as if it were that day, and nothing is marked before its entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from research_lib.backtest.engine import AUTO_STRATEGY, select_for_snapshot
from research_lib.backtest.legspec import STRATEGY_LEGS
from research_lib.backtest.params import BacktestParams
from research_lib.core.chain import ChainSnapshot
from research_lib.core.exits import rule_distances
from research_lib.core.sizing import size_position
from research_lib.data import market
from research_lib.errors import (
    MarketDataError,
    MarketDataNotFoundError,
    OrderError,
    PaperError,
    PositionNotFoundError,
)
from research_lib.formatting import jsonable
from research_lib.paper.broker import SimulatedBroker
from research_lib.paper.monitor import MarkReport, close_through, log_exit, monitor, underlying_of
from research_lib.pipeline.decide import DecisionReport, decide_on, model_rates, regime_gex_history
from research_lib.records.decisions import (
    DecisionLog,
    DecisionType,
    TradeDecision,
    describe_what,
    describe_why,
)
from research_lib.records.paper import MULTIPLIER, Account, ClosedTrade, LegOrder, OrderRequest, Position
from research_lib.records.paper.ledger import PaperLedger
from research_lib.settings import data_root

__all__ = ["POSITION_COLUMNS", "AccountSummary", "OpenResult", "PaperStatus", "PaperTrader", "Proposal", "log_line",
           "stats_mapping"]

#: Columns of :meth:`PaperTrader.positions_table`.
POSITION_COLUMNS = ("id", "strategy", "contracts", "opened", "expiration", "entry_price", "mark", "unrealized_pnl",
                    "pnl_pct", "dte", "to_profit_target", "to_stop_loss", "to_exit_dte", "marked_at", "missing")

#: Names of the strategies, as the ledger keeps them (the backtest's fixed strategies; ``auto`` picks one of the
#: verticals or the iron condor by the regime, :data:`research_lib.backtest.engine.AUTO_STRATEGY`).
STRATEGIES = tuple(STRATEGY_LEGS)


@dataclasses.dataclass(frozen=True)
class AccountSummary:
    """An account at its latest marks (dollars; ``return_pct`` a fraction of the starting cash)."""

    account: str
    starting_cash: float
    cash: float
    equity: float
    open_risk: float
    realized_pnl: float
    unrealized_pnl: float
    return_pct: float
    n_open: int
    n_closed: int
    as_of: pd.Timestamp | None

    def to_dict(self) -> dict:
        return jsonable(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class Proposal:
    """Today's trade as the decision core sees it, ready to place.

    Attributes
    ----------
    tradeable : bool
        True when it has legs, ≥ 1 contract and a free position slot.
    strategy : str
        The ledger's name of the strategy (``bull_put``, ``iron_condor`` ...; ``""`` when there is none).
    regime : str
        The day's regime (``POSITIVE_GAMMA`` ...), with ``reasons`` the classifier's reasons.
    why_not : str or None
        Why it is not tradeable.
    legs : tuple of LegOrder
        The legs with the chain's quotes (quantities signed per unit).
    contracts : int
    entry_price : float
        At mid, per unit, credit positive (``−Σ quantity × mid``).
    max_loss : float
        Dollars per contract (nan when there are no legs).
    client_order_id : str
    snapshot_date, quote_time, source
        The chain's trading date, quote time and source.
    decision : TradeDecision
        ENTRY or SKIP, as it goes to the decision log when placed (an ENTRY) or logged (a SKIP).
    report : DecisionReport
        The full decision of the day (levels, regime, strategy, sizing, alerts).
    """

    tradeable: bool
    strategy: str
    regime: str
    reasons: tuple[str, ...]
    why_not: str | None
    legs: tuple[LegOrder, ...]
    contracts: int
    entry_price: float
    max_loss: float
    client_order_id: str
    snapshot_date: Any
    quote_time: pd.Timestamp
    source: str
    decision: TradeDecision
    report: DecisionReport | None = None

    def legs_frame(self) -> pd.DataFrame:
        """One row per leg: ``root, expiration, settlement, strike, right, quantity, bid, ask, mid``."""
        cols = ["root", "expiration", "settlement", "strike", "right", "quantity", "bid", "ask", "mid"]
        return pd.DataFrame([{**{c: getattr(leg, c) for c in cols[:-1]}, "mid": leg.mid} for leg in self.legs],
                            columns=cols)

    def to_dict(self) -> dict:
        return jsonable({"tradeable": self.tradeable, "strategy": self.strategy, "regime": self.regime,
                         "reasons": list(self.reasons), "why_not": self.why_not,
                         "legs": self.legs_frame().to_dict(orient="records"), "contracts": self.contracts,
                         "entry_price": self.entry_price, "max_loss": self.max_loss,
                         "client_order_id": self.client_order_id, "snapshot_date": self.snapshot_date,
                         "quote_time": self.quote_time, "source": self.source,
                         "decision": {"type": str(self.decision.type), "what": self.decision.what,
                                      "why": self.decision.why, "how": self.decision.how}})


@dataclasses.dataclass(frozen=True)
class OpenResult:
    """:meth:`PaperTrader.open`: the proposal, and the position when it was placed."""

    proposal: Proposal
    position: Position | None

    def to_dict(self) -> dict:
        return jsonable({"proposal": self.proposal.to_dict(),
                         "position": None if self.position is None else _position_dict(self.position)})


@dataclasses.dataclass(frozen=True)
class PaperStatus:
    """:meth:`PaperTrader.status`: the summary and each open position with its legs and latest marks."""

    summary: AccountSummary
    positions: tuple[dict, ...]

    def to_dict(self) -> dict:
        return jsonable({**self.summary.to_dict(), "positions": list(self.positions)})


def _position_dict(p: Position) -> dict:
    return jsonable({"id": p.position_id, "strategy": p.strategy, "contracts": p.contracts,
                     "entry_price": p.entry_price, "opened_at": p.opened_at, "max_loss": p.max_loss,
                     "legs": [{"root": leg.root, "expiration": leg.expiration, "settlement": leg.settlement,
                               "strike": leg.strike, "right": leg.right, "quantity": leg.quantity,
                               "entry_fill": leg.entry_fill, "entry_mid": leg.entry_mid} for leg in p.legs]})


def _legs_hash(legs) -> str:
    text = "|".join(f"{leg.root},{leg.expiration},{leg.right},{leg.strike:g},{leg.quantity}" for leg in legs)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


class PaperTrader:
    """One paper account: propose, place, mark, close, report (module docstring).

    Parameters
    ----------
    config : PaperConfig, optional
        The bot's settings (default :func:`research_lib.paper.config.load_config`: ``data/paper.toml`` or the
        defaults).
    ledger : PaperLedger, optional
        Default ``data/paper.sqlite``.
    broker : Broker, optional
        Default the simulated broker with the config's fill model and commission, journaling in the ledger.
    log : DecisionLog, optional
        Default ``data/decisions.sqlite``.
    store : ChainStore, optional
        Where ``store``/``auto`` chains come from (default the data directory's).
    market_dir : path, optional
        The market history directory (rates, VIX, SPX daily for the regime and the settlements).
    reconcile_after : float
        Seconds an order must have waited before the reconciliation on start settles it [30]: an order another
        process (the notebook, a cron job) submitted a moment ago is left to that process, not rejected under
        its feet. 0 settles every pending order.
    """

    def __init__(self, config=None, *, ledger: PaperLedger | None = None, broker=None, log: DecisionLog | None = None,
                 store=None, market_dir=None, reconcile_after: float = 30.0):
        if config is None:
            # lazy: start-up time — the config module reads TOML; a caller passing a config never needs it
            from research_lib.paper.config import load_config
            config = load_config()
        self.config = config
        self.ledger = ledger if ledger is not None else PaperLedger()
        self.broker = broker if broker is not None else SimulatedBroker(
            self.ledger, fill=config.fill_model, slippage=config.slippage, commission=config.commission)
        self.log = log if log is not None else DecisionLog()
        self.store = store
        self.market_dir = market_dir
        self._daily: pd.DataFrame | None = None
        self.account: Account = self.ledger.ensure_account(config.account, float(config.cash))
        self.reconcile_after = float(reconcile_after)
        self.reconciliation = self.reconcile()

    def __repr__(self) -> str:
        return f"PaperTrader(account={self.account.name!r}, ledger={str(self.ledger.path)!r})"

    # ------------------------------------------------------------------------------------------ accounts
    @property
    def name(self) -> str:
        return self.account.name

    @property
    def mark_lock_path(self) -> Path:
        """The lock file that keeps two markers of this ledger apart (``paper mark``, the nightly run):
        ``paper.mark.lock`` beside the ledger."""
        return self.ledger.path.with_suffix(".mark.lock")

    def switch_account(self, name: str, cash: float | None = None) -> Account:
        """Use the account ``name``, created with ``cash`` (default the config's) when it does not exist."""
        start = float(cash if cash is not None else self.config.cash)
        self.account = self.ledger.ensure_account(name, start)
        return self.account

    def reset(self, cash: float | None = None) -> Account:
        """Empty the account (orders, positions, marks, trades, statistics) and start again with ``cash`` (default
        its starting cash)."""
        self.account = self.ledger.reset_account(self.account.name, cash)
        return self.account

    def reconcile(self):
        """Complete or reject the orders a crash left between their phases, and log the EXIT decision of closed
        trades that lack one; returns the ledger's :class:`~research_lib.records.paper.ReconcileReport` (with the
        EXIT repairs added to ``repaired``)."""
        report = self.ledger.reconcile(self.broker.lookup, min_age=self.reconcile_after)
        repaired = []
        for trade in self.ledger.closed_without_decision():
            pos = self.ledger.position(trade.position_id)
            trade = log_exit(self.ledger, self.log, pos, trade, spot=None, source=None, note="logged on reconciliation")
            repaired.append(f"position {pos.position_id}: EXIT decision {trade.exit_decision_id} logged")
        if repaired:
            report = dataclasses.replace(report, repaired=report.repaired + tuple(repaired))
        return report

    # ------------------------------------------------------------------------------------------ chains
    def _chain(self, symbol: str | None, source, date) -> tuple[ChainSnapshot, str]:
        # lazy: start-up time — the chain sources import the HTTP client, needed only when a chain is fetched
        from research_lib.data.sources.auto import get_chain

        symbol = (symbol or self.config.symbols[0]).upper()
        source = source or self.config.source
        served = get_chain(symbol, source, date=date, store=self.store)
        return served.snapshot, served.describe()

    def _daily_history(self) -> pd.DataFrame | None:
        if self._daily is None:
            try:
                self._daily = market.load_index_daily("SPX", market_dir=self.market_dir)
            except (MarketDataError, MarketDataNotFoundError, OSError):
                return None
        return self._daily

    # ------------------------------------------------------------------------------------------ entries
    def equity(self) -> float:
        """Cash less the cost to close the open positions at their latest marks (entry price if never marked)."""
        return self.summary().equity

    def propose(self, *, source=None, date=None, symbol=None, strategy: str | None = None,
                **fixed: Any) -> Proposal:
        """Today's proposal (module docstring).

        Parameters
        ----------
        source, date, symbol
            The chain (default the config's source and first symbol; ``date`` a stored day or a file's day).
        strategy : str, optional
            ``auto`` or a fixed strategy (default the config's ``strategy.name``).
        **fixed
            Overrides of the config's strategy knobs for a fixed strategy: ``dte``, ``short_delta``,
            ``long_delta``, ``width``.
        """
        snap, _ = self._chain(symbol, source, date)
        return self.propose_on(snap, strategy=strategy, **fixed)

    def propose_on(self, snap: ChainSnapshot, *, strategy: str | None = None, **fixed: Any) -> Proposal:
        """:meth:`propose` on a chain already in memory."""
        unknown = set(fixed) - {"dte", "short_delta", "long_delta", "width"}
        if unknown:
            raise OrderError(f"unknown strategy option(s) {sorted(unknown)}: dte, short_delta, long_delta, width")
        # the fixed-strategy options are validated as the config's knobs are (a bad one names its key and range)
        cfg = self.config.replace(**{k: v for k, v in fixed.items() if v is not None})
        name = str(strategy or cfg.strategy).strip().lower().replace("-", "_")
        if name != "auto" and name not in STRATEGY_LEGS:
            raise OrderError(f"strategy {name!r}: auto or one of {', '.join(STRATEGIES)}")
        sizing_params = cfg.sizing_params()
        acct = self.account.name
        summary = self.summary()
        equity = max(summary.equity, 1.0)
        open_risk = summary.open_risk
        rate, q, _ = model_rates(snap, market_dir=self.market_dir)
        view = market.market_view(snap.snapshot_date, self.market_dir,
                                  regime_gex=regime_gex_history(snap, store=self.store, market_dir=self.market_dir))
        stats_by = stats_mapping(self.ledger, acct)
        sp = cfg.strategy_params(rate=rate, div_yield=q)
        previous = self.log.last_for(snap.underlying, before=snap.snapshot_date)
        report = decide_on(snap, view, account=equity, stats=stats_by, open_risk=open_risk, previous=previous,
                           decided_by="paper", strategy_params=sp, sizing_params=sizing_params,
                           timestamp=snap.quote_time)
        regime = str(report.regime.regime)
        reasons = tuple(report.regime.reasons)
        fixed_contracts = int(cfg.contracts or 0)
        if name == "auto":
            strat = report.strategy
            legs: tuple[LegOrder, ...] = ()
            contracts, max_loss, label = 0, float("nan"), ""
            decision = report.decision
            why_not = None if decision.type is DecisionType.ENTRY else decision.why.split("No trade: ", 1)[-1]
            if getattr(strat, "valid", False):
                label = AUTO_STRATEGY.get(strat.kind) or str(strat.kind.value)
                legs = tuple(LegOrder(root=leg.root, expiration=leg.expiration, settlement=leg.settlement,
                                      strike=float(leg.strike), right=leg.right, quantity=int(leg.side * leg.quantity),
                                      bid=float(leg.bid), ask=float(leg.ask), quote_time=snap.quote_time,
                                      source=snap.source) for leg in strat.legs)
                max_loss = float(strat.max_loss)
                contracts = int(report.sizing.contracts) if report.sizing is not None else 0
                if fixed_contracts and decision.type is DecisionType.ENTRY:
                    contracts = fixed_contracts
        else:
            label = name
            bp = BacktestParams(strategy=name, dte=cfg.dte, dte_tolerance=cfg.dte_tolerance,
                                short_delta=cfg.short_delta, long_delta=cfg.long_delta,
                                width=cfg.width if cfg.width > 0 else None,
                                min_open_interest=float(cfg.min_open_interest), max_spread_pct=cfg.max_spread_pct,
                                debit_long_delta=sp.debit_long_delta, div_yield=q)
            sel = select_for_snapshot(snap, bp, rate)
            c = snap.contracts
            if isinstance(sel, str):
                legs, contracts, max_loss, why_not, sizing = (), 0, float("nan"), sel, None
            else:
                rows = c.iloc[sel.rows]
                legs = tuple(LegOrder(root=str(r.root), expiration=pd.Timestamp(r.expiration).date(),
                                      settlement=str(r.settlement), strike=float(r.strike), right=str(r.right),
                                      quantity=int(s), bid=float(r.bid), ask=float(r.ask), quote_time=snap.quote_time,
                                      source=snap.source)
                             for r, s in zip(rows.itertuples(index=False), sel.sides, strict=True))
                max_loss = float(sel.max_loss)
                if fixed_contracts:
                    contracts, sizing = fixed_contracts, None
                    why_not = None
                    if open_risk + contracts * max_loss > sizing_params.max_total_open_risk * equity + 1e-6:
                        why_not = (f"{contracts} contract(s) of {max_loss:,.2f} max loss would take the open risk "
                                   f"over {sizing_params.max_total_open_risk:.0%} of the equity {equity:,.2f}")
                else:
                    sizing = size_position(equity, max_loss, self.ledger.trade_stats(acct, name),
                                           open_risk=open_risk, params=sizing_params)
                    contracts = int(sizing.contracts)
                    why_not = None if contracts > 0 else f"sized 0 contracts ({sizing.capped_by or 'budget'})"
            ctx = report.decision.context
            # the market sentence of the day's decision; the regime's own verdict is quoted as such, since the fixed
            # strategy trades whatever it says
            context_why = describe_why(ctx, iv_rank=report.regime.scores.iv_rank) + (
                f" (The regime alone: {report.regime.reasons[-1]})" if report.regime.reasons else "")
            if legs and not why_not:
                side = "SELL" if -sum(leg.quantity * leg.mid for leg in legs) > 0 else "BUY"
                dte = int((pd.Timestamp(min(leg.expiration for leg in legs)) - pd.Timestamp(snap.snapshot_date)).days)
                decision = TradeDecision.create(
                    DecisionType.ENTRY, source="paper", what=describe_what(side, contracts, snap.underlying, name,
                                                                           [leg.strike for leg in legs], dte),
                    why=f"{context_why} Fixed strategy {name}: {sel.why}.",
                    how=(sizing.how if sizing is not None else f"Fixed size: {contracts} contract(s)."),
                    context=ctx, legs=[dataclasses.asdict(leg) for leg in legs], sizing=sizing, strategy=name,
                    contracts=contracts, trading_date=snap.snapshot_date, timestamp=snap.quote_time)
            else:
                decision = TradeDecision.create(
                    DecisionType.SKIP, source="paper", what=describe_what("SKIP", None, snap.underlying, name),
                    why=f"{context_why} No trade: {why_not}", context=ctx, sizing=sizing, strategy=name,
                    trading_date=snap.snapshot_date, timestamp=snap.quote_time)
        n_open = summary.n_open
        max_open = int(cfg.max_open_positions)
        if why_not is None and n_open >= max_open:
            why_not = f"{n_open} position(s) open: the maximum is {max_open} (sizing.max_open_positions)"
        if why_not is None and (not legs or contracts <= 0):
            why_not = "no legs or 0 contracts"
        entry = float(-sum(leg.quantity * leg.mid for leg in legs)) if legs else float("nan")
        coid = (f"OPEN-{acct}-{snap.snapshot_date:%Y%m%d}-{label or 'none'}-{_legs_hash(legs)}" if legs
                else f"OPEN-{acct}-{snap.snapshot_date:%Y%m%d}-none")
        return Proposal(tradeable=why_not is None, strategy=label, regime=regime, reasons=reasons, why_not=why_not,
                        legs=legs, contracts=contracts, entry_price=entry, max_loss=max_loss, client_order_id=coid,
                        snapshot_date=snap.snapshot_date, quote_time=snap.quote_time, source=snap.source,
                        decision=decision, report=report)

    def place(self, proposal: Proposal) -> Position:
        """Place a tradeable proposal: log its ENTRY decision, record the order, fill it at the broker, record the
        fill (two ledger transactions). Placing the same proposal again returns the position it opened.

        Raises
        ------
        OrderError
            The proposal is not tradeable (``why_not``), or its order was rejected earlier.
        """
        if not proposal.tradeable:
            raise OrderError(f"proposal {proposal.client_order_id} is not tradeable: {proposal.why_not}")
        existing = self._order_or_none(proposal.client_order_id)
        if existing is not None and existing.status == "filled" and existing.position_id is not None:
            return self.ledger.position(existing.position_id)
        if existing is not None and existing.status == "rejected":
            raise OrderError(f"order {proposal.client_order_id} was rejected: {existing.reason}")
        decision_id = existing.decision_id if existing is not None else None
        if decision_id is None:
            decision_id = self.log.record(proposal.decision).decision_id
        request = OrderRequest(account=self.account.name, client_order_id=proposal.client_order_id, kind="open",
                               strategy=proposal.strategy, contracts=proposal.contracts, legs=proposal.legs,
                               created_at=proposal.quote_time, max_loss=proposal.max_loss, decision_id=decision_id,
                               reason=proposal.decision.what)
        order = self.ledger.submit_order(request)
        if order.status == "filled" and order.position_id is not None:
            return self.ledger.position(order.position_id)
        result = self.ledger.record_fill(request.client_order_id, self.broker.submit(request))
        return result

    def open(self, *, source=None, date=None, symbol=None, strategy=None, **fixed) -> OpenResult:
        """:meth:`propose` and, when tradeable, :meth:`place`; a SKIP is logged in the decision log."""
        proposal = self.propose(source=source, date=date, symbol=symbol, strategy=strategy, **fixed)
        if not proposal.tradeable:
            if proposal.decision.type is DecisionType.SKIP:
                self.log.record(proposal.decision, proposal.report.alerts if proposal.report else ())
            return OpenResult(proposal, None)
        return OpenResult(proposal, self.place(proposal))

    def _order_or_none(self, client_order_id: str):
        try:
            return self.ledger.order(client_order_id)
        except (PaperError, LookupError):
            return None

    # ------------------------------------------------------------------------------------------ marks, exits
    def mark(self, *, source=None, date=None) -> MarkReport:
        """Mark every open position of the account from a fresh chain of its underlying, apply the exit rules, close
        what fires, log each EXIT (:func:`research_lib.paper.monitor.monitor`)."""
        positions = self.ledger.open_positions(self.account.name)
        if not positions:
            return MarkReport(skipped=f"account {self.account.name}: no open position to mark")
        report = MarkReport()
        for under in sorted({underlying_of(p.legs[0].root) for p in positions}):
            snap, described = self._chain(under, source, date)
            part = self.mark_on(snap)
            report = report.merge(dataclasses.replace(part, served=(described,)))
        return report

    def mark_on(self, snap: ChainSnapshot) -> MarkReport:
        """:meth:`mark` from a chain already in memory."""
        return monitor(self.ledger, self.account.name, snap, broker=self.broker, rules=self.config.exit_rules(),
                       log=self.log, daily=self._daily_history)

    def close(self, position_id: int, *, source=None, date=None, reason: str = "manual") -> ClosedTrade:
        """Close one open position by hand at the broker's fill on a fresh chain; logs the EXIT decision.

        Raises
        ------
        PositionNotFoundError
            No open position ``position_id`` in this account.
        MarkError
            A leg has no usable quote in the chain.
        """
        pos = self._open_position(position_id)
        snap, _ = self._chain(underlying_of(pos.legs[0].root), source, date)
        return self.close_on(pos.position_id, snap, reason=reason)

    def close_on(self, position_id: int, snap: ChainSnapshot, *, reason: str = "manual") -> ClosedTrade:
        """:meth:`close` from a chain already in memory."""
        pos = self._open_position(position_id)
        trade = close_through(self.ledger, self.broker, pos, snap, reason)
        return log_exit(self.ledger, self.log, pos, trade, spot=snap.spot, source=snap.source,
                        note=f"{self.broker.name} broker, by hand")

    def _open_position(self, position_id: int) -> Position:
        for p in self.ledger.open_positions(self.account.name):
            if p.position_id == int(position_id):
                return p
        ids = [p.position_id for p in self.ledger.open_positions(self.account.name)]
        raise PositionNotFoundError(f"account {self.account.name}: no open position {position_id} "
                                    f"(open: {ids or 'none'})")

    # ------------------------------------------------------------------------------------------ reports
    def summary(self) -> AccountSummary:
        acct = self.ledger.account(self.account.name)
        positions = self.ledger.open_positions(acct.name)
        marks = self.ledger.latest_marks(acct.name)
        value = unreal = 0.0
        for p in positions:
            m = marks.get(p.position_id)
            price = m.mark if m is not None and np.isfinite(m.mark) else p.entry_price
            value += price * MULTIPLIER * p.contracts
            unreal += (p.entry_price - price) * MULTIPLIER * p.contracts
        closed = self.ledger.closed_trades(acct.name)
        realized = float(closed["realized_pnl"].sum()) if len(closed) else 0.0
        equity = acct.cash - value
        times = [m.marked_at for m in marks.values()]
        return AccountSummary(account=acct.name, starting_cash=acct.starting_cash, cash=acct.cash,
                              equity=float(equity), open_risk=float(self.ledger.open_risk(acct.name)),
                              realized_pnl=realized, unrealized_pnl=float(unreal),
                              return_pct=float(equity / acct.starting_cash - 1.0), n_open=len(positions),
                              n_closed=int(len(closed)), as_of=max(times) if times else None)

    def positions_table(self) -> pd.DataFrame:
        """The open positions at their latest marks, with how far each exit rule is.

        Columns :data:`POSITION_COLUMNS`: ``entry_price`` and ``mark`` per unit (credit convention),
        ``unrealized_pnl`` dollars, ``pnl_pct`` a fraction of the entry credit, ``dte`` calendar days (from the
        latest mark's date), ``to_profit_target`` / ``to_stop_loss`` how far the mark may move before each rule
        fires (per unit), ``to_exit_dte`` days before the DTE rule, ``missing`` the legs the latest chain lacked.
        """
        positions = self.ledger.open_positions(self.account.name)
        if not positions:
            return pd.DataFrame(columns=list(POSITION_COLUMNS))
        marks = self.ledger.latest_marks(self.account.name)
        rows = []
        for p in positions:
            m = marks.get(p.position_id)
            mark = m.mark if m is not None else float("nan")
            today = pd.Timestamp(m.marked_at).tz_convert("America/New_York").date() if m is not None else \
                pd.Timestamp(p.opened_at).tz_convert("America/New_York").date()
            dte = int((pd.Timestamp(p.expiration) - pd.Timestamp(today)).days)
            rows.append({"id": p.position_id, "strategy": p.strategy, "contracts": p.contracts,
                         "opened": p.opened_at, "expiration": p.expiration, "entry_price": p.entry_price,
                         "mark": mark, "unrealized_pnl": m.unrealized_pnl if m is not None else float("nan"),
                         "pnl_pct": m.pnl_pct if m is not None else float("nan"), "dte": dte,
                         "marked_at": m.marked_at if m is not None else None,
                         "missing": ", ".join(m.missing) if m is not None else ""})
        frame = pd.DataFrame(rows)
        dist = rule_distances(frame["entry_price"], frame["mark"], frame["dte"], self.config.exit_rules())
        frame["to_profit_target"] = dist["to_profit_target"].to_numpy()
        frame["to_stop_loss"] = dist["to_stop_loss"].to_numpy()
        frame["to_exit_dte"] = dist["to_exit_dte"].to_numpy()
        return frame[list(POSITION_COLUMNS)]

    def status(self) -> PaperStatus:
        """The summary and each open position with its legs at their latest marks: ``legs`` hold ``expiration``,
        ``strike``, ``right``, ``quantity`` (signed per unit), ``entry_mid``, ``entry_fill``, ``mark_mid``."""
        marks = self.ledger.latest_marks(self.account.name)
        table = self.positions_table().set_index("id")
        out = []
        for p in self.ledger.open_positions(self.account.name):
            m = marks.get(p.position_id)
            row = table.loc[p.position_id]
            legs = []
            for i, leg in enumerate(p.legs):
                legs.append({"root": leg.root, "expiration": leg.expiration, "settlement": leg.settlement,
                             "strike": leg.strike, "right": leg.right, "quantity": leg.quantity,
                             "entry_mid": leg.entry_mid, "entry_fill": leg.entry_fill,
                             "mark_mid": m.leg_mids[i] if m is not None else None})
            out.append(jsonable({"id": p.position_id, "strategy": p.strategy, "contracts": p.contracts,
                                 "opened_at": p.opened_at, "entry_price": p.entry_price,
                                 "mark": None if m is None else m.mark,
                                 "unrealized_pnl": None if m is None else m.unrealized_pnl,
                                 "pnl_pct": None if m is None else m.pnl_pct, "dte": int(row["dte"]),
                                 "max_loss": p.max_loss, "marked_at": None if m is None else m.marked_at,
                                 "missing": [] if m is None else list(m.missing),
                                 "to_profit_target": row["to_profit_target"], "to_stop_loss": row["to_stop_loss"],
                                 "to_exit_dte": row["to_exit_dte"], "legs": legs}))
        return PaperStatus(summary=self.summary(), positions=tuple(out))

    def closed_trades(self) -> pd.DataFrame:
        """The account's closed trades (:meth:`PaperLedger.closed_trades`)."""
        return self.ledger.closed_trades(self.account.name)

    def statistics(self) -> pd.DataFrame:
        """Per-strategy statistics (:meth:`PaperLedger.strategy_stats`)."""
        return self.ledger.strategy_stats(self.account.name)

    def equity_curve(self) -> pd.DataFrame:
        """The equity snapshots (:meth:`PaperLedger.equity_curve`)."""
        return self.ledger.equity_curve(self.account.name)

    def history(self) -> dict[str, pd.DataFrame]:
        """``{"closed_trades", "statistics", "equity"}`` frames."""
        return {"closed_trades": self.closed_trades(), "statistics": self.statistics(),
                "equity": self.equity_curve()}


def log_line(message: str, *, path=None) -> None:
    """Append one time-stamped line to ``data/paper.log`` (the run log of the paper commands and cron)."""
    target = Path(path) if path is not None else data_root() / "paper.log"
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = pd.Timestamp.now(tz="America/New_York").strftime("%Y-%m-%d %H:%M:%S %Z")
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(f"{stamp} pid {os.getpid()} {message}\n")


def stats_mapping(ledger: PaperLedger, account: str) -> Mapping[str, Any]:
    """Each auto strategy's statistics keyed by :class:`~research_lib.core.strategy.StrategyKind` value, as
    :func:`research_lib.pipeline.decide.decide_on` takes them."""
    return {kind.value: ledger.trade_stats(account, name) for kind, name in AUTO_STRATEGY.items() if name is not None}
