"""From a chain to a logged, explained trade decision: :func:`decide_on` (pure) and :func:`decide` (I/O).

:func:`decide_on` makes the whole decision from in-memory inputs only — a chain snapshot, an as-of
:class:`~research_lib.core.market_view.MarketView` of the market history, the trade statistics and the
previous trading day's decision — and touches no file, network or database: a backtest day or a paper mark
calls it directly. :func:`decide` is its wrapper: get the chain, build the view, look the previous decision
up (one indexed query), call :func:`decide_on`, log the result.

The steps, each a documented function of its own module:

1. a chain from ``source`` (:func:`research_lib.sources.auto.get_chain`: a file, a provider, the store,
   or ``auto`` with the modelled fallback);
2. the rate and dividend yield of the snapshot's date (:mod:`research_lib.market`; 0 with a note when the
   history is not available);
3. exposures and key levels (:func:`research_lib.gex.analyze`, ``model`` convention);
4. the regime from the levels and the market history up to that date (:mod:`research_lib.regime`);
5. the risk budget (:func:`research_lib.sizing.risk_budget`: fractional Kelly from the trade statistics
   given, or the small bootstrap risk when there are none, × confidence, within the caps), then the
   strategy and its legs from the same chain, fitted to that budget and to the liquidity rules
   (:func:`research_lib.strategy.build_strategy`);
6. the position size (:func:`research_lib.sizing.size_position`) on the structure's max loss. When no
   structure fits the budget, the SKIP says which account would, at the same caps
   (:func:`research_lib.sizing.account_needed`), and which smaller listed relative
   (:data:`research_lib.strategy.SMALLER_UNDERLYINGS`: XSP or SPY for SPX) would fit
   (:func:`budget_advice`);
7. the alerts (:mod:`research_lib.alerts`), with the regime change measured against the decision of
   the previous trading day for the underlying (:meth:`~research_lib.decisions.DecisionLog.last_for`:
   the latest chain trading date before this chain's ``snapshot_date``, whatever order the runs were
   logged in), naming that day;
8. a :class:`~research_lib.decisions.TradeDecision` (ENTRY, or SKIP with the reason) carrying the chain's
   trading date, recorded with its alerts in the decision log
   (:class:`~research_lib.decisions.DecisionLog`), one transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from research_lib.core import (
    alerts as alerts_mod,
    gex,
    regime as regime_mod,
    regime_gex as regime_gex_mod,
    sizing as sizing_mod,
    strategy as strategy_mod,
)
from research_lib.core.alerts import Alert, AlertParams
from research_lib.core.chain import ChainSnapshot
from research_lib.core.market_view import MarketView
from research_lib.core.regime import RegimeParams, RegimeResult
from research_lib.core.sizing import SizingParams, SizingResult, TradeStats
from research_lib.core.strategy import NoValidStrategy, StrategyParams, StrategyResult
from research_lib.data import market
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    DecisionInputError as DecisionInputError,
    ResearchLibError,
)
from research_lib.formatting import format_levels, jsonable, to_json
from research_lib.pipeline.inputs import regime_inputs_for
from research_lib.records.decisions import (
    DecisionLog,
    DecisionType,
    MarketContext,
    TradeDecision,
    describe_what,
    describe_why,
)

if TYPE_CHECKING:  # type names only: the chain sources load the HTTP client, which decide_on never needs
    from research_lib.data.sources.auto import ServedChain


@dataclasses.dataclass(frozen=True, eq=False)
class DecisionReport:
    """Everything :func:`decide` produced, for printing, notebooks and tests.

    Attributes
    ----------
    served : ServedChain or None — where the chain came from (None from :func:`decide_on`, which gets a snapshot)
    analysis : GexAnalysis — exposures and key levels
    regime_gex : RegimeGex — the regime's GEX series of the day (:mod:`research_lib.core.regime_gex`)
    rate, div_yield : float — used by the pricing model (decimals)
    regime : RegimeResult
    strategy : StrategyResult or NoValidStrategy
    sizing : SizingResult or None (None when there is no valid strategy)
    alerts : tuple of Alert
    decision : TradeDecision — as recorded (with its id) or as built when ``record=False``
    notes : tuple of str — assumptions made on the way (missing rates ...)
    """

    served: ServedChain | None
    analysis: gex.GexAnalysis
    regime_gex: regime_gex_mod.RegimeGex
    rate: float
    div_yield: float
    regime: RegimeResult
    strategy: StrategyResult | NoValidStrategy
    sizing: SizingResult | None
    alerts: tuple[Alert, ...]
    decision: TradeDecision
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready summary (strict: :func:`research_lib.formatting.jsonable`): levels, regime, strategy,
        sizing, decision, alerts, provenance."""
        strat = self.strategy
        d = self.decision
        served = self.served
        snap = self.analysis.levels
        return jsonable({
            "served_by": None if served is None else served.served_by,
            "provenance": snap.source if served is None else served.describe(),
            "modelled": bool(snap.modelled) if served is None else served.modelled,
            "stale": False if served is None else served.stale,
            "rate": self.rate,
            "div_yield": self.div_yield,
            "levels": self.analysis.levels.to_dict(),
            "regime_gex": self.regime_gex.to_dict(),
            "regime": {"regime": str(self.regime.regime), "trend": str(self.regime.trend),
                       "confidence": self.regime.confidence, "action": str(self.regime.action),
                       "reasons": self.regime.reasons},
            "strategy": strat.to_dict(),
            "sizing": None if self.sizing is None else {
                "contracts": self.sizing.contracts, "risk_budget": self.sizing.risk_budget,
                "risk_used": self.sizing.risk_used, "kelly": self.sizing.kelly, "how": self.sizing.how},
            "decision": {"id": d.decision_id, "type": str(d.type), "what": d.what, "why": d.why, "how": d.how,
                         "timestamp": d.timestamp, "trading_date": d.trading_date},
            "alerts": [{"rule": str(a.rule), "severity": str(a.severity), "message": a.message}
                       for a in self.alerts],
            "notes": self.notes,
        })

    def summary(self) -> str:
        """A readable block: provenance, regime with reasons, strategy, sizing, decision, alerts."""
        r = self.regime
        head = self.analysis.levels.source if self.served is None else self.served.describe()
        lines = [head, "", format_levels(self.analysis.levels, pin_risk=self.analysis.pin_risk, regime_gex=self.regime_gex), "",
                 f"regime   {r.regime} / {r.trend}, confidence {r.confidence}/100 → {r.action}"]
        lines += [f"         - {reason}" for reason in r.reasons]
        strat = self.strategy
        if getattr(strat, "valid", False) or str(getattr(strat, "kind", "none")) != "none":
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
    """(rate, dividend yield, notes) for the snapshot's trading date: :func:`research_lib.market.snapshot_rates`
    (``model``), the one default every GEX path uses.

    The dividend yield is the S&P 500's for SPX/SPXW/SPY/XSP and 0 otherwise; missing history gives 0 and
    a note, never an exception.
    """
    rates = market.snapshot_rates(snapshot, "model", market_dir=market_dir)
    return rates.rate, rates.div_yield, rates.notes


def previous_regime(log, regime, trading_date) -> tuple[RegimeResult | None, str | None]:
    """The regime of the previous trading day's decision, as a result to compare ``regime`` with.

    Parameters
    ----------
    log : DecisionLog or None
    regime : RegimeResult
        Today's result (its underlying selects the decisions).
    trading_date : datetime.date
        Today's chain trading date; the previous decision is the latest one of an earlier trading date
        (:meth:`~research_lib.decisions.DecisionLog.last_for`).

    Returns
    -------
    (RegimeResult or None, str or None)
        ``regime`` with the previous decision's regime and trading date (None when there is no earlier
        decision, or it holds no regime), and a note when the stored regime is not a
        :class:`~research_lib.regime.Regime` name (a decision logged by hand).
    """
    if log is None:
        return None, None
    return regime_of(log.last_for(regime.underlying, before=trading_date), regime)


def regime_of(before: TradeDecision | None, regime: RegimeResult) -> tuple[RegimeResult | None, str | None]:
    """``regime`` with the regime and trading date of the decision ``before`` (see :func:`previous_regime`),
    and a note when that decision's regime is not a :class:`~research_lib.core.regime.Regime` name."""
    if before is None or before.context is None or before.context.regime is None:
        return None, None
    try:
        name = regime_mod.Regime(before.context.regime)
    except ValueError:
        return None, (f"no regime-change check: the previous decision {before.decision_id} "
                      f"({before.trading_date}) holds regime {before.context.regime!r}, not one of "
                      f"{', '.join(regime_mod.Regime)}")
    return dataclasses.replace(regime, regime=name, date=before.trading_date), None


def budget_advice(strat, budget: float, *, stats=None, confidence: float = 100.0, open_risk: float = 0.0,
                  sizing_params=None) -> str:
    """What would fit when no structure fits the risk budget: the account, and the smaller relatives.

    Parameters
    ----------
    strat : NoValidStrategy
        With ``code="over_budget"``: ``min_max_loss`` (dollars per contract) and ``candidates`` (width,
        max loss) of every structure tried.
    budget : float
        The risk budget it had to fit, dollars.
    stats, confidence, open_risk, sizing_params
        As given to the sizer (the account needed is at the same caps).

    Returns
    -------
    str
        ``"one contract of the narrowest needs an account of at least $60,107 at these caps; XSP (Mini-SPX,
        1/10 of SPX, cash-settled) would fit: the same spread 4 points wide (the 40-point one × 0.1) ≈
        $209.50 max loss per contract"``. Every figure computed: the account by
        :func:`research_lib.sizing.account_needed`, a relative's loss as ``scale`` × the loss of the widest
        structure tried whose scaled loss fits and whose scaled width is a whole number of the relative's
        strike steps (``≈``: the relative's own quotes were not read).
    """
    loss = float(strat.min_max_loss)
    need = sizing_mod.account_needed(loss, stats, confidence=confidence, open_risk=open_risk, params=sizing_params)
    if need is None:
        parts = ["no account size fits at these caps (the risk fraction is 0)"]
    else:
        parts = [f"one contract of the narrowest needs an account of at least ${need:,.0f} at these caps"]
    for symbol, scale, step, what in strategy_mod.SMALLER_UNDERLYINGS.get(strat.underlying.upper(), ()):
        # the structures tried, at the relative's scale, that it lists (a whole number of its strike steps)
        listed = [(w, x * scale) for w, x in strat.candidates
                  if abs(w * scale / step - round(w * scale / step)) < 1e-9 and round(w * scale / step) >= 1]
        fits = [(w, x) for w, x in listed if x <= budget]
        if fits:
            w, x = fits[0]
            parts.append(f"{symbol} ({what}) would fit: the same spread {w * scale:g} points wide (the {w:g}-point "
                         f"one × {scale:g}) ≈ ${x:,.2f} max loss per contract")
        elif listed:
            small = min(x for _, x in listed)
            acct = sizing_mod.account_needed(small, stats, confidence=confidence, open_risk=open_risk,
                                             params=sizing_params)
            more = f", needs an account of ${acct:,.0f}" if acct is not None else ""
            parts.append(f"{symbol} ({what}) would not fit either: ≈ ${small:,.2f} per contract at its narrowest"
                         f"{more}")
    return "; ".join(parts)


def decide_on(snapshot: ChainSnapshot, market_view: MarketView, *, account: float = 50_000.0,
              stats: TradeStats | Mapping[str, TradeStats | None] | None = None, open_risk: float = 0.0,
              previous: TradeDecision | None = None,
              decided_by: str = "research-lib", strategy_params: StrategyParams | None = None,
              sizing_params: SizingParams | None = None, regime_params: RegimeParams | None = None,
              alert_params: AlertParams | None = None, timestamp=None) -> DecisionReport:
    """The whole decision of one trading day from in-memory inputs: no file, network or database.

    Steps 2-8 of the module docstring: rates, levels, regime, strategy with legs, sizing, alerts and the
    :class:`~research_lib.records.decisions.TradeDecision` (not recorded: ``decision_id`` is None).

    Parameters
    ----------
    snapshot : ChainSnapshot
        The chain; its ``snapshot_date`` is the trading day decided.
    market_view : MarketView
        The market history as of that day (:meth:`MarketView.as_of
        <research_lib.core.market_view.MarketView.as_of>`); its ``date`` must be the snapshot's trading
        date, so nothing later can be read.
    account, stats, open_risk, decided_by, strategy_params, sizing_params, regime_params, alert_params
        As :func:`decide`; ``stats`` may also be a mapping from :class:`~research_lib.core.strategy.StrategyKind`
        values (``"bull_put_spread"`` ...) to each strategy's own statistics (the paper ledger's per-strategy
        figures): the structure the regime chooses is sized with its own (None or absent: the bootstrap risk).
    previous : TradeDecision, optional
        The decision of the previous trading day for the underlying (``DecisionLog.last_for(underlying,
        before=date)``): the regime-change alert compares against its regime. None: no comparison.
    timestamp : datetime-like, optional
        The decision's timestamp (default now; a backtest passes the simulated moment).

    Returns
    -------
    DecisionReport
        ``served`` is None (the caller knows where the chain came from).

    Raises
    ------
    DecisionInputError
        ``market_view`` is not dated the snapshot's trading date, or ``previous`` is dated on or after it.
    """
    day = snapshot.snapshot_date
    if not isinstance(market_view, MarketView):
        raise DecisionInputError(f"market_view must be a MarketView (MarketView.as_of(history, date)), "
                                 f"got {type(market_view).__name__}")
    if market_view.date != day:
        raise DecisionInputError(f"the market view is as of {market_view.date} but the chain is of trading date "
                                 f"{day}: build the view with MarketView.as_of(history, {day})")
    if previous is not None and previous.trading_date is not None and previous.trading_date >= day:
        raise DecisionInputError(f"the previous decision {previous.decision_id} is of {previous.trading_date}, "
                                 f"not before {day}")
    snap = snapshot
    rate, q, notes = model_rates(snap, market_dir=market_view)
    analysis = gex.analyze(snap, gex.GexConfig.model(rate=rate, div_yield=q))
    levels = analysis.levels
    rgex = regime_gex_mod.of(analysis)
    history = market_view.regime_gex
    if history is not None:
        # the trailing distribution: earlier days only (today's value is the one judged against it)
        history = history[pd.DatetimeIndex(history.index).normalize() < pd.Timestamp(day)]

    inputs = regime_inputs_for(levels, market_dir=market_view, regime_gex=rgex,
                               net_gex_history=history if history is not None and len(history) else None)
    regime = regime_mod.classify_regime(inputs, regime_params)

    choice = strategy_mod.select_strategy(regime.action, regime.trend)
    if isinstance(stats, Mapping):  # statistics per strategy: the chosen structure's own history sizes it
        stats = stats.get(choice.kind.value)
    sp = strategy_params or strategy_mod.StrategyParams(rate=rate, div_yield=q)
    size_kw = dict(confidence=regime.confidence, open_risk=open_risk, params=sizing_params)
    budget = sizing_mod.risk_budget(account, stats, **size_kw)
    # a zero budget (no edge, no confidence, the open-risk cap reached) has nothing to fit: the sizer says why
    strat = strategy_mod.build_strategy(choice, snap, sp, risk_budget=budget if budget > 0 else None)

    sizing = None
    advice = None
    if getattr(strat, "valid", False):
        sizing = sizing_mod.size_position(account, strat.max_loss, stats, **size_kw)
    elif getattr(strat, "code", None) == "over_budget":
        sizing = sizing_mod.size_position(account, strat.min_max_loss, stats, **size_kw)
        advice = budget_advice(strat, budget, stats=stats, confidence=regime.confidence, open_risk=open_risk,
                               sizing_params=sizing_params)

    prev_result, prev_note = regime_of(previous, regime)
    if prev_note is not None:
        notes = (*notes, prev_note)
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
        how = sizing.how + (f"; {strat.budget_note}" if strat.budget_note else "")
        decision = TradeDecision.create(DecisionType.ENTRY, source=decided_by, what=what, why=why, how=how,
                                        context=context, legs=[dataclasses.asdict(leg) for leg in strat.legs],
                                        sizing=sizing, strategy=strat.kind.label,
                                        trading_date=snap.snapshot_date, timestamp=timestamp)
    else:
        if getattr(strat, "valid", False):
            reason = f"size is 0 contracts ({sizing.capped_by or 'budget below one max loss'})"
            what = describe_what("SKIP", None, snap.underlying, strat.kind.label,
                                 [leg.strike for leg in strat.legs], strat.dte)
        elif choice.kind is strategy_mod.StrategyKind.NONE:
            reason = strat.reason
            what = describe_what("SKIP", None, snap.underlying,
                                 f"no position ({regime.action}: {regime.regime}, {regime.trend})")
        else:
            reason = strat.reason + (f"; {advice}" if advice else "")
            what = describe_what("SKIP", None, snap.underlying, f"{strat.kind.label} ({strat.code.replace('_', ' ')})")
        decision = TradeDecision.create(DecisionType.SKIP, source=decided_by, what=what,
                                        why=f"{why} No trade: {reason}", context=context, sizing=sizing,
                                        how=(sizing.how if sizing is not None else "No position."),
                                        strategy=None if choice.kind is strategy_mod.StrategyKind.NONE
                                        else choice.kind.label,
                                        trading_date=snap.snapshot_date, timestamp=timestamp)
    return DecisionReport(served=None, analysis=analysis, regime_gex=rgex, rate=rate, div_yield=q, regime=regime,
                          strategy=strat,
                          sizing=sizing, alerts=alerts, decision=decision, notes=notes)


def regime_gex_history(snapshot: ChainSnapshot, *, store=None, market_dir=None, days: int = 400) -> pd.Series | None:
    """The regime GEX of the stored market snapshots of ``snapshot``'s underlying dated before it, over ``days``
    calendar days (:func:`research_lib.pipeline.history.net_gex_history`, cached under the store): the trailing
    distribution the regime's thresholds are relative to. None when the store holds none or cannot be read
    (the regime then scales by gross GEX and says so)."""
    # lazy: start-up time — the history cache needs pyarrow, loaded only when a decision is made
    from research_lib.pipeline.history import net_gex_history

    end = snapshot.snapshot_date - dt.timedelta(days=1)
    try:
        hist = net_gex_history(snapshot.underlying, end=end, days=days, store=store, market_dir=market_dir)
    except (ResearchLibError, OSError):
        return None
    series = hist["regime_gex"].dropna()
    return series if len(series) else None


def decide(symbol: str = "SPX", source: str = "auto", *, date=None, account: float = 50_000.0,
           stats=None, open_risk: float = 0.0, log=None, record: bool = True, decided_by: str = "research-lib",
           strategy_params=None, sizing_params=None, regime_params=None, alert_params=None,
           market_dir=None, store=None) -> DecisionReport:
    """Turn a chain and market history into a logged trade decision: the I/O around :func:`decide_on`.

    Gets the chain (:func:`research_lib.sources.auto.get_chain`), reads the market history once and cuts it
    at the chain's trading date (:func:`research_lib.data.market.market_view`), looks up the previous
    trading day's decision (``log.last_for(underlying, before=date)``: one indexed query), calls
    :func:`decide_on` and records the decision with its alerts.

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
    # lazy: start-up time — the chain sources import the HTTP client, needed only when a chain is fetched
    from research_lib.data.sources.auto import get_chain

    served = get_chain(symbol, source, date=date, store=store)
    snap = served.snapshot
    view = market.market_view(snap.snapshot_date, market_dir,
                              regime_gex=regime_gex_history(snap, store=store, market_dir=market_dir))
    if log is None and record:
        log = DecisionLog()
    previous = None if log is None else log.last_for(snap.underlying, before=snap.snapshot_date)
    report = decide_on(snap, view, account=account, stats=stats, open_risk=open_risk, previous=previous,
                       decided_by=decided_by, strategy_params=strategy_params, sizing_params=sizing_params,
                       regime_params=regime_params, alert_params=alert_params)
    decision = log.record(report.decision, report.alerts) if record else report.decision
    return dataclasses.replace(report, served=served, decision=decision)


def report_json(report: DecisionReport) -> str:
    """:meth:`DecisionReport.to_dict` as one JSON line."""
    return to_json(report.to_dict())
