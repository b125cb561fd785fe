"""From a chain to a logged, explained trade decision in one call: :func:`decide`.

The steps, each a documented function of its own module:

1. a chain from ``source`` (:func:`research_lib.sources.auto.get_chain`: a file, a provider, the store,
   or ``auto`` with the modelled fallback);
2. the rate and dividend yield of the snapshot's date (:mod:`research_lib.market`; 0 with a note when the
   history is not available);
3. exposures and key levels (:func:`research_lib.gex.analyze`, ``model`` convention);
4. the regime from the levels and the market history up to that date (:mod:`research_lib.regime`);
5. the strategy and its legs from the same chain (:mod:`research_lib.strategy`);
6. the position size (:mod:`research_lib.sizing`): fractional Kelly from the trade statistics given, or
   the small bootstrap risk when there are none;
7. the alerts (:mod:`research_lib.alerts`), with the regime change measured against the previous
   decision logged for the underlying;
8. a :class:`~research_lib.decisions.TradeDecision` (ENTRY, or SKIP with the reason) recorded with its
   alerts in the decision log (:class:`~research_lib.decisions.DecisionLog`), one transaction.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from research_lib import gex
from research_lib.chain import ResearchLibError


@dataclasses.dataclass(frozen=True, eq=False)
class DecisionReport:
    """Everything :func:`decide` produced, for printing, notebooks and tests.

    Attributes
    ----------
    served : ServedChain — where the chain came from
    analysis : GexAnalysis — exposures and key levels
    rate, div_yield : float — used by the pricing model (decimals)
    regime : RegimeResult
    strategy : StrategyResult or NoValidStrategy
    sizing : SizingResult or None (None when there is no valid strategy)
    alerts : tuple of Alert
    decision : TradeDecision — as recorded (with its id) or as built when ``record=False``
    notes : tuple of str — assumptions made on the way (missing rates ...)
    """

    served: Any
    analysis: gex.GexAnalysis
    rate: float
    div_yield: float
    regime: Any
    strategy: Any
    sizing: Any
    alerts: tuple
    decision: Any
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready summary: levels, regime, strategy, sizing, decision, alerts, provenance."""
        strat = self.strategy
        d = self.decision
        return {
            "served_by": self.served.served_by,
            "provenance": self.served.describe(),
            "modelled": self.served.modelled,
            "stale": self.served.stale,
            "rate": self.rate,
            "div_yield": self.div_yield,
            "levels": self.analysis.levels.to_dict(),
            "regime": {"regime": str(self.regime.regime), "trend": str(self.regime.trend),
                       "confidence": self.regime.confidence, "action": str(self.regime.action),
                       "reasons": list(self.regime.reasons)},
            "strategy": strat.to_dict() if getattr(strat, "valid", False) else
            {"valid": False, "reason": getattr(strat, "reason", None), "code": getattr(strat, "code", None)},
            "sizing": None if self.sizing is None else {
                "contracts": self.sizing.contracts, "risk_budget": self.sizing.risk_budget,
                "risk_used": self.sizing.risk_used, "kelly": self.sizing.kelly, "how": self.sizing.how},
            "decision": {"id": d.decision_id, "type": str(d.type), "what": d.what, "why": d.why, "how": d.how,
                         "timestamp": d.timestamp.isoformat()},
            "alerts": [{"rule": str(a.rule), "severity": str(a.severity), "message": a.message}
                       for a in self.alerts],
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        """A readable block: provenance, regime with reasons, strategy, sizing, decision, alerts."""
        from research_lib.cli import format_levels

        r = self.regime
        lines = [self.served.describe(), "", format_levels(self.analysis.levels, pin_risk=self.analysis.pin_risk), "",
                 f"regime   {r.regime} / {r.trend}, confidence {r.confidence}/100 → {r.action}"]
        lines += [f"         - {reason}" for reason in r.reasons]
        strat = self.strategy
        if getattr(strat, "valid", False):
            lines.append(f"strategy {strat.summary()}")
        else:
            lines.append(f"strategy none: {strat.reason}")
        d = self.decision
        lines += ["", f"decision {d.decision_id or '(not recorded)'} {d.type}", f"  what: {d.what}",
                  f"  why:  {d.why}", f"  how:  {d.how}"]
        if self.alerts:
            lines.append("alerts")
            lines += [f"  [{a.severity}] {a.rule}: {a.message}" for a in self.alerts]
        else:
            lines.append("alerts   none")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def model_rates(snapshot, *, market_dir=None) -> tuple[float, float, tuple[str, ...]]:
    """(rate, dividend yield, notes) for the snapshot's date from :mod:`research_lib.market`.

    The dividend yield is the S&P 500's for SPX/SPY/XSP and 0 otherwise; missing history gives 0 and a
    note, never an exception.
    """
    from research_lib import market

    notes: list[str] = []
    try:
        rate = float(market.risk_free_rate(snapshot.snapshot_date, market_dir=market_dir))
    except ResearchLibError as exc:
        rate = 0.0
        notes.append(f"rate 0: no rate history for {snapshot.snapshot_date} ({type(exc).__name__})")
    q = 0.0
    if snapshot.underlying in ("SPX", "SPY", "XSP"):
        try:
            q = float(market.dividend_yield(snapshot.snapshot_date, market_dir=market_dir))
        except ResearchLibError as exc:
            notes.append(f"dividend yield 0: no total-return history ({type(exc).__name__})")
    return rate, q, tuple(notes)


def _previous_regime(log, underlying: str):
    """The regime name of the last decision logged for ``underlying`` (None when there is none)."""
    table = log.read(underlying=underlying)
    if table.empty or "regime" not in table.columns:
        return None
    value = table.sort_values("timestamp")["regime"].iloc[-1]
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def decide(symbol: str = "SPX", source: str = "auto", *, date=None, account: float = 50_000.0,
           stats=None, open_risk: float = 0.0, log=None, record: bool = True, decided_by: str = "research-lib",
           strategy_params=None, sizing_params=None, regime_params=None, alert_params=None,
           market_dir=None, store=None) -> DecisionReport:
    """Turn a chain and market history into a logged trade decision (see the module docstring).

    Parameters
    ----------
    symbol, source, date
        As :func:`research_lib.sources.auto.get_chain` (``source`` may be a file path).
    account : float
        Account value in dollars.
    stats : TradeStats, optional
        Win rate and average win/loss for Kelly; None sizes with the bootstrap risk.
    open_risk : float
        Dollars already at risk in open positions (for the total-open-risk cap).
    log : DecisionLog, optional
        Defaults to ``data/decisions.sqlite``.
    record : bool
        Write the decision and alerts to the log (False: build them only).
    decided_by : str
        The decision's ``source`` field (``"research-lib"``, ``"paper"``, ``"backtest:<name>"``).
    """
    from research_lib import alerts as alerts_mod
    from research_lib import regime as regime_mod
    from research_lib import sizing as sizing_mod
    from research_lib import strategy as strategy_mod
    from research_lib.decisions import (
        DecisionLog,
        DecisionType,
        MarketContext,
        TradeDecision,
        describe_what,
        describe_why,
    )
    from research_lib.sources.auto import get_chain

    served = get_chain(symbol, source, date=date, store=store)
    snap = served.snapshot
    rate, q, notes = model_rates(snap, market_dir=market_dir)
    analysis = gex.analyze(snap, gex.GexConfig.model(rate=rate, div_yield=q))
    levels = analysis.levels

    inputs = regime_mod.regime_inputs_for(levels, market_dir=market_dir)
    regime = regime_mod.classify_regime(inputs, regime_params)

    choice = strategy_mod.select_strategy(regime.action, regime.trend)
    sp = strategy_params or strategy_mod.StrategyParams(rate=rate, div_yield=q)
    strat = strategy_mod.build_strategy(choice, snap, sp)

    sizing = None
    if getattr(strat, "valid", False):
        sizing = sizing_mod.size_position(account, strat.max_loss, stats, confidence=regime.confidence,
                                          open_risk=open_risk, params=sizing_params)

    if log is None and record:
        log = DecisionLog()
    previous = _previous_regime(log, snap.underlying) if log is not None else None
    prev_result = None
    if previous is not None and previous != str(regime.regime):
        prev_result = dataclasses.replace(regime, regime=regime_mod.Regime(previous))
    alerts = tuple(alerts_mod.alerts_for(analysis, regime, prev_result, alert_params))

    vix = inputs.vix
    context = MarketContext(underlying=snap.underlying, spot=snap.spot, vix=vix, regime=str(regime.regime),
                            net_gex=levels.net_gex, zero_gamma=levels.zero_gamma, source=snap.source,
                            modelled=snap.modelled)
    iv_rank = regime.scores.iv_rank
    # The context sentence, then the regime's action sentence (its last reason); the full reasons stay
    # on the regime result.
    why = describe_why(context, iv_rank=iv_rank, reasons=regime.reasons[-1:])
    if getattr(strat, "valid", False) and sizing is not None and sizing.contracts > 0:
        side = "SELL" if strat.kind.is_credit else "BUY"
        what = describe_what(side, sizing.contracts, snap.underlying, strat.kind.label,
                             [leg.strike for leg in strat.legs], strat.dte)
        decision = TradeDecision.create(DecisionType.ENTRY, source=decided_by, what=what, why=why,
                                        context=context, legs=[dataclasses.asdict(leg) for leg in strat.legs],
                                        sizing=sizing, strategy=strat.kind.label)
    else:
        reason = (strat.reason if not getattr(strat, "valid", False)
                  else f"size is 0 contracts ({sizing.capped_by or 'budget below one max loss'})")
        label = strat.kind.label if getattr(strat, "valid", False) else str(choice.kind)
        what = describe_what("SKIP", None, snap.underlying, label)
        decision = TradeDecision.create(DecisionType.SKIP, source=decided_by, what=what,
                                        why=f"{why} No trade: {reason}", context=context, sizing=sizing,
                                        how=(sizing.how if sizing is not None else "No position."))
    if record:
        decision = log.record(decision, alerts)
    return DecisionReport(served=served, analysis=analysis, rate=rate, div_yield=q, regime=regime, strategy=strat,
                          sizing=sizing, alerts=alerts, decision=decision, notes=notes)


def report_json(report: DecisionReport) -> str:
    """:meth:`DecisionReport.to_dict` as one JSON line."""
    from research_lib.formatting import to_json

    return to_json(report.to_dict())
