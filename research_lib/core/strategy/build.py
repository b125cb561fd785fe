"""Building a structure: :func:`build_strategy` (legs from the chain, priced, fitted to a risk budget) and its
results, :class:`StrategyResult` or :class:`NoValidStrategy` (see :mod:`research_lib.core.strategy`). Pure."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from research_lib.core.chain import ChainSnapshot
from research_lib.core.strategy.legs import (
    _RIGHT_WORD,
    _RIGHTS_NEEDED,
    Leg,
    LiquidityReport,
    _check_snapshot,
    _choose_expiry,
    _Fail,
    _leg,
    _liquidity_report,
    _pick_vertical,
    _valuation,
    leg_candidates,
)
from research_lib.core.strategy.params import StrategyParams, _check_params, _finite_number
from research_lib.core.strategy.payoff import PayoffStats, PositionGreeks, _atm_iv, payoff_stats, premium_text
from research_lib.core.strategy.select import StrategyChoice, StrategyKind, _as_kind, select_strategy
from research_lib.errors import StrategyError
from research_lib.formatting import jsonable

__all__ = ["SMALLER_UNDERLYINGS", "NoValidStrategy", "StrategyResult", "build_strategy", "strategy_for"]


#: Smaller listed relatives of an underlying a SKIP may suggest when a spread does not fit the budget:
#: ``{underlying: ((symbol, scale, strike step, description), ...)}``. ``scale`` is the relative's price
#: per unit of the underlying's, so the same spread on it (strikes × scale) loses about ``scale`` × as
#: much: exact for XSP (the Mini-SPX index is SPX / 10 by definition), approximate for SPY (the ETF trades
#: near SPX / 10, less its accumulated dividend and fee drift). ``strike step``: the relative's listed
#: strike spacing near the money, in its own points (a spread there is a whole number of steps wide).
SMALLER_UNDERLYINGS: dict[str, tuple[tuple[str, float, float, str], ...]] = {
    "SPX": (("XSP", 0.1, 1.0, "Mini-SPX, 1/10 of SPX, cash-settled"),
            ("SPY", 0.1, 1.0, "the S&P 500 ETF, about 1/10 of SPX, physically settled")),
}


@dataclasses.dataclass(frozen=True, eq=False)
class StrategyResult:
    """A structure built from a chain and priced (``valid`` is always True; see :class:`NoValidStrategy`).

    Attributes
    ----------
    kind : StrategyKind
    underlying : str
    spot : float
        The snapshot's spot.
    valuation_time : pandas.Timestamp
        The moment ``T`` and DTE count from (tz-aware, New York).
    expiration : datetime.date
    dte : int
        Calendar days from the valuation moment's date to ``expiration``.
    T : float
        Years to the settlement moment.
    legs : tuple of Leg
        Puts before calls, ascending strike.
    credit_mid, credit_natural : float
        Premium per share at mid and at the natural price; positive = credit received, negative = debit.
    width : float
        Points between the strikes of a vertical; the wider side of an iron condor.
    max_profit, max_loss : float
        Dollars per contract at the mid price (``max_loss`` positive).
    breakevens : tuple of float
        At the mid price.
    pop : float
        Probability of profit at expiry at the mid price, in [0, 1].
    expected_value : float
        Dollars per contract at the mid price (undiscounted).
    sigma : float
        The volatility of the lognormal used for ``pop`` and ``expected_value`` (the expiry's ATM-forward IV).
    greeks : PositionGreeks
        Per contract.
    natural : PayoffStats
        Premium, max profit/loss, breakevens, POP and EV at the natural price.
    reason : str
        How the structure and its legs were chosen.
    source : str
        The snapshot's source.
    params : StrategyParams
    liquidity : LiquidityReport or None
        What the liquidity rules removed at the chosen expiry and root.
    risk_budget : float or None
        The budget (dollars) the structure was fitted to; None when none was given.
    budget_note : str
        How the budget changed the structure (``""`` when it did not).
    """

    kind: StrategyKind
    underlying: str
    spot: float
    valuation_time: pd.Timestamp
    expiration: dt.date
    dte: int
    T: float
    legs: tuple[Leg, ...]
    credit_mid: float
    credit_natural: float
    width: float
    max_profit: float
    max_loss: float
    breakevens: tuple[float, ...]
    pop: float
    expected_value: float
    sigma: float
    greeks: PositionGreeks
    natural: PayoffStats
    reason: str
    source: str
    params: StrategyParams
    liquidity: LiquidityReport | None = None
    risk_budget: float | None = None
    budget_note: str = ""

    @property
    def valid(self) -> bool:
        """Always True (a :class:`NoValidStrategy` says False)."""
        return True

    @property
    def is_credit(self) -> bool:
        return self.kind.is_credit

    @property
    def mid(self) -> PayoffStats:
        """The mid-price figures as a :class:`PayoffStats`."""
        return PayoffStats(self.credit_mid, self.max_profit, self.max_loss, self.breakevens, self.pop,
                           self.expected_value)

    def legs_frame(self) -> pd.DataFrame:
        """The legs as a DataFrame, one row per leg, columns the :class:`Leg` fields."""
        return pd.DataFrame([dataclasses.asdict(leg) for leg in self.legs])

    def to_dict(self) -> dict:
        """JSON-ready (:func:`~research_lib.formatting.jsonable`; dates as ISO strings, legs as a list of dicts)."""
        return jsonable({
            "valid": True,
            "kind": str(self.kind),
            "underlying": self.underlying,
            "spot": self.spot,
            "valuation_time": self.valuation_time,
            "expiration": self.expiration,
            "dte": self.dte,
            "T": self.T,
            "legs": self.legs,
            "credit_mid": self.credit_mid,
            "credit_natural": self.credit_natural,
            "width": self.width,
            "max_profit": self.max_profit,
            "max_loss": self.max_loss,
            "breakevens": self.breakevens,
            "pop": self.pop,
            "expected_value": self.expected_value,
            "sigma": self.sigma,
            "greeks": self.greeks,
            "natural": self.natural,
            "reason": self.reason,
            "source": self.source,
            "params": self.params,
            "liquidity": self.liquidity,
            "risk_budget": self.risk_budget,
            "budget_note": self.budget_note,
        })

    def summary(self) -> str:
        """A few lines for a notebook or a log."""
        legs = ", ".join(leg.label for leg in self.legs)
        text = (f"{self.kind.label} on {self.underlying} ({self.spot:g}), {self.expiration} ({self.dte} DTE): {legs}\n"
                f"  {premium_text(self.credit_mid, self.credit_natural)} per share; "
                f"max profit ${self.max_profit:,.0f}, max loss ${self.max_loss:,.0f} per contract; "
                f"breakevens {', '.join(f'{b:.2f}' for b in self.breakevens)}; "
                f"POP {self.pop:.1%}, EV ${self.expected_value:,.0f} (σ {self.sigma:.1%})")
        if self.budget_note:
            text += f"\n  {self.budget_note}"
        if self.liquidity is not None:
            text += f"\n  {self.liquidity.summary()}"
        return text

    def __str__(self) -> str:
        return self.summary()


@dataclasses.dataclass(frozen=True)
class NoValidStrategy:
    """No position: the choice was ``NONE``, or the chain had no suitable expiry, strikes or quotes.

    Attributes
    ----------
    kind : StrategyKind
        The structure that was asked for (``NONE`` for a no-trade choice).
    underlying : str
    reason : str
        Why, in words (what was missing, where).
    code : str
        Machine-readable: ``"no_trade"`` (the choice was NONE), ``"no_expiry"`` (no live expiry near the
        target DTE), ``"no_quotes"`` (no expiry near the target has usable quotes for the rights needed),
        ``"no_short_leg"``, ``"no_long_leg"`` (no contract qualifies for that leg at the chosen expiry),
        ``"bad_prices"`` (the quotes give an impossible premium, e.g. a credit above the width),
        ``"overlap"`` (an iron condor's put side reaches its call side), ``"over_budget"`` (no width down
        to the minimum loses at most ``risk_budget`` per contract).
    expiration : datetime.date, optional
        The expiry chosen before the failure, if any.
    source : str
    liquidity : LiquidityReport or None
        What the liquidity rules removed at the chosen expiry and root (None before one was chosen).
    risk_budget : float or None
        The budget the structure had to fit (dollars), when one was given.
    min_max_loss : float or None
        ``over_budget``: the smallest max loss per contract (dollars, mid) of any structure tried.
    candidates : tuple of (width, max_loss)
        ``over_budget``: every structure tried, widest first: its width (points) and max loss per contract
        (dollars, mid). Only those whose legs and quotes pass the checks.
    """

    kind: StrategyKind
    underlying: str
    reason: str
    code: str
    expiration: dt.date | None = None
    source: str = ""
    liquidity: LiquidityReport | None = None
    risk_budget: float | None = None
    min_max_loss: float | None = None
    candidates: tuple[tuple[float, float], ...] = ()

    @property
    def valid(self) -> bool:
        """Always False."""
        return False

    def to_dict(self) -> dict:
        """JSON-ready (:func:`~research_lib.formatting.jsonable`)."""
        return jsonable({"valid": False, "kind": str(self.kind), "underlying": self.underlying, "reason": self.reason,
                         "code": self.code, "expiration": self.expiration, "source": self.source,
                         "liquidity": self.liquidity, "risk_budget": self.risk_budget,
                         "min_max_loss": self.min_max_loss, "candidates": self.candidates})

    def summary(self) -> str:
        text = f"no valid {self.kind.label} on {self.underlying}: {self.reason}"
        if self.liquidity is not None:
            text += f"\n  {self.liquidity.summary()}"
        return text

    def __str__(self) -> str:
        return self.summary()


def build_strategy(choice: Any, snapshot: ChainSnapshot, params: StrategyParams | None = None, *,
                   risk_budget: float | None = None) -> StrategyResult | NoValidStrategy:
    """Build and price the chosen structure from ``snapshot``'s contracts.

    Parameters
    ----------
    choice : StrategyChoice, StrategyKind or str
        What to build (a :class:`StrategyChoice` from :func:`select_strategy`, or a kind such as
        ``"iron_condor"``).
    snapshot : ChainSnapshot
    params : StrategyParams, optional
        Leg selection and pricing assumptions (defaults: 45 DTE, short |Δ| 0.30, wing |Δ| 0.15).
    risk_budget : float, optional
        Dollars the position may lose (:func:`research_lib.sizing.risk_budget`). When given, the
        structure is narrowed until one contract's max loss fits (:mod:`research_lib.core.strategy`, "Risk budget"), or a
        :class:`NoValidStrategy` with ``code="over_budget"`` says what the narrowest would lose. None: no
        fitting.

    Returns
    -------
    StrategyResult or NoValidStrategy
        A :class:`NoValidStrategy` (``valid=False``) when the choice is ``NONE`` or the chain has no
        suitable expiry, strikes or quotes; its ``reason`` says what was missing.

    Raises
    ------
    UnknownStrategyError
        ``choice`` is not a strategy kind.
    StrategyError
        ``snapshot`` is not a ChainSnapshot, ``params`` not a StrategyParams, ``risk_budget`` not a
        positive finite number of dollars.
    """
    if risk_budget is not None and (not _finite_number(risk_budget) or risk_budget <= 0):
        raise StrategyError(f"risk_budget must be a positive finite number of dollars or None, got {risk_budget!r}")
    if isinstance(choice, StrategyChoice):
        kind, why = choice.kind, choice.reason
    else:
        kind = _as_kind(choice)
        why = f"{kind.label} requested"
    params = _check_params(params)
    _check_snapshot(snapshot)
    if kind is StrategyKind.NONE:
        return NoValidStrategy(kind, snapshot.underlying, why or "no strategy chosen", "no_trade",
                               source=snapshot.source)
    try:
        return _build(kind, why, snapshot, params, risk_budget)
    except _Fail as fail:
        return NoValidStrategy(kind, snapshot.underlying, fail.reason, fail.code,
                               expiration=fail.expiration, source=snapshot.source, liquidity=fail.liquidity,
                               risk_budget=None if risk_budget is None else float(risk_budget), **fail.extra)


def _assemble(kind: StrategyKind, pairs: Sequence[tuple[pd.Series, pd.Series]], where: str,
              ) -> tuple[list[Leg], float, float, float]:
    """(legs, width, credit_mid, credit_natural) of the (near row, far row) verticals, checked."""
    debit = not kind.is_credit
    legs: list[Leg] = []
    widths: list[float] = []
    for near, far in pairs:
        near_side, far_side = (1, -1) if debit else (-1, 1)
        legs += [_leg(near, near_side), _leg(far, far_side)]
        widths.append(abs(float(near["strike"]) - float(far["strike"])))
    legs.sort(key=lambda leg: (leg.right != "P", leg.strike))
    if kind is StrategyKind.IRON_CONDOR:
        short_put = next(leg for leg in legs if leg.right == "P" and leg.side < 0)
        short_call = next(leg for leg in legs if leg.right == "C" and leg.side < 0)
        if not short_put.strike < short_call.strike:
            raise _Fail("overlap", f"the short put {short_put.strike:g} is not below the short call "
                                   f"{short_call.strike:g} at {where}")
    width = max(widths)
    credit_mid = float(sum(-leg.side * leg.quantity * leg.mid for leg in legs))
    credit_natural = float(sum(-leg.side * leg.quantity * leg.natural for leg in legs))
    if kind.is_credit and not 0 < credit_mid < width:
        raise _Fail("bad_prices", f"the mid credit {credit_mid:.4g} is not between 0 and the width {width:g} at "
                                  f"{where} ({', '.join(leg.label for leg in legs)}): inconsistent quotes")
    if not kind.is_credit and not 0 < -credit_mid < width:
        raise _Fail("bad_prices", f"the mid debit {-credit_mid:.4g} is not between 0 and the width {width:g} at "
                                  f"{where} ({', '.join(leg.label for leg in legs)}): inconsistent quotes")
    return legs, width, credit_mid, credit_natural


def _max_loss(kind: StrategyKind, width: float, credit: float, multiplier: float) -> float:
    """Dollars per contract at ``credit`` (per share, + received): the closed form of :mod:`research_lib.core.strategy`."""
    return (width - credit) * multiplier if kind.is_credit else -credit * multiplier


def _fit_budget(kind: StrategyKind, sides: list[tuple[pd.Series, pd.Series, pd.DataFrame]], where: str,
                params: StrategyParams, spot: float, budget: float, full_loss: float, full_width: float,
                ) -> tuple[list[tuple[pd.Series, pd.Series]], str]:
    """The widest (near, far) pairs whose max loss per contract fits ``budget`` (:mod:`research_lib.core.strategy`)."""
    m = float(params.multiplier)
    min_w = float(params.min_width_pct) * spot
    eps = 1e-9 * max(spot, 1.0)
    pools = []
    for near, far, pool in sides:
        k0 = float(near["strike"])
        dist = (pool["strike"] - k0).abs()
        keep = (dist <= abs(float(far["strike"]) - k0) + eps) & (dist >= min_w - eps)
        pools.append((near, pool.loc[keep].assign(_dist=dist[keep])))
    widths = sorted({float(w) for _, p in pools for w in p["_dist"]}, reverse=True)
    tried: list[tuple[float, float]] = []
    best: tuple[float, float, str] | None = None      # (max loss, width, legs) of the cheapest tried
    for w in widths:
        pairs = []
        for near, pool in pools:
            fit = pool[pool["_dist"] <= w + eps]
            if fit.empty:
                break
            pairs.append((near, fit.loc[fit["_dist"].idxmax()]))
        else:
            try:
                legs, width, credit_mid, credit_natural = _assemble(kind, pairs, where)
            except _Fail:
                continue
            if (credit_natural <= 0) if kind.is_credit else (-credit_natural >= width):
                continue                                # not tradeable at the natural price
            if tried and tried[-1][0] == width:
                continue                                # the same structure as the previous width
            loss = _max_loss(kind, width, credit_mid, m)
            tried.append((width, loss))
            if best is None or loss < best[0]:
                best = (loss, width, ", ".join(leg.label for leg in legs))
            if loss <= budget:
                note = (f"width {width:g} points instead of {full_width:g} to fit the ${budget:,.2f} risk budget: max "
                        f"loss ${loss:,.2f} per contract instead of ${full_loss:,.2f}")
                return pairs, note
    floor = f"the minimum width {min_w:.4g} points ({params.min_width_pct:.2%} of spot)"
    if best is None:
        raise _Fail("over_budget", f"the {kind.label} loses ${full_loss:,.2f} per contract, more than the "
                                   f"${budget:,.2f} risk budget, and no narrower one down to {floor} passes the "
                                   f"liquidity and price checks at {where}",
                    min_max_loss=float(full_loss), candidates=((float(full_width), float(full_loss)),))
    raise _Fail("over_budget", f"the narrowest {kind.label} down to {floor} that passes the liquidity and price "
                               f"checks at {where} ({best[2]}, {best[1]:g} points) loses ${best[0]:,.2f} per "
                               f"contract, more than the ${budget:,.2f} risk budget",
                min_max_loss=float(best[0]), candidates=tuple(tried))


def _build(kind: StrategyKind, why: str, snapshot: ChainSnapshot, params: StrategyParams,
           risk_budget: float | None = None) -> StrategyResult:
    moment = _valuation(snapshot, params)
    cands = leg_candidates(snapshot, params)
    rights = _RIGHTS_NEEDED[kind]
    exp, root, root_note = _choose_expiry(cands, snapshot, params, rights, moment)
    rows = cands[(cands["expiration"] == exp) & (cands["root"] == root)]
    exp_date = pd.Timestamp(exp).date()
    where = f"{root} {exp_date}"
    liquidity = _liquidity_report(rows[rows["right"].isin(rights)], params,
                                  f"{where} {' and '.join(_RIGHT_WORD[r] for r in rights)}")
    budget_note = ""
    try:
        spot = snapshot.spot
        debit = not kind.is_credit
        descs: list[str] = []
        sides = []
        for right in rights:
            near, far, desc, pool = _pick_vertical(rows, right, params, spot, debit=debit, where=where)
            descs.append(desc)
            sides.append((near, far, pool))
        pairs = [(near, far) for near, far, _ in sides]
        legs, width, credit_mid, credit_natural = _assemble(kind, pairs, where)
        if risk_budget is not None:
            full_loss = _max_loss(kind, width, credit_mid, float(params.multiplier))
            if full_loss > risk_budget:
                pairs, budget_note = _fit_budget(kind, sides, where, params, spot, float(risk_budget), full_loss,
                                                 width)
                legs, width, credit_mid, credit_natural = _assemble(kind, pairs, where)
        T = float(rows["T"].iloc[0])
        r, q = float(params.rate), float(params.div_yield)
        forward = spot * math.exp((r - q) * T)
        sigma = _atm_iv(rows, forward)
        if not (math.isfinite(sigma) and sigma > 0):
            raise _Fail("no_quotes", f"no implied volatility at {where} to price the lognormal")
        stats = dict(spot=spot, T=T, sigma=sigma, rate=r, div_yield=q, multiplier=float(params.multiplier))
        mid_stats = payoff_stats(legs, credit_mid, **stats)
        nat_stats = payoff_stats(legs, credit_natural, **stats)
        m = float(params.multiplier)
        greeks = PositionGreeks(
            delta=float(sum(leg.side * leg.quantity * leg.delta for leg in legs) * m),
            gamma=float(sum(leg.side * leg.quantity * leg.gamma for leg in legs) * m),
            vega=float(sum(leg.side * leg.quantity * leg.vega for leg in legs) * m),
            theta=float(sum(leg.side * leg.quantity * leg.theta for leg in legs) * m),
        )
    except _Fail as fail:
        fail.expiration = exp_date
        fail.liquidity = liquidity
        raise
    dte = int((pd.Timestamp(exp) - pd.Timestamp(moment.date())).days)
    reason = (f"{why}; expiry {exp_date} ({dte} DTE, nearest the {params.target_dte}-DTE target with usable quotes"
              f"{root_note}); " + "; ".join(descs)
              + (f"; {budget_note}" if budget_note else "")
              + f"; POP/EV under a lognormal at the ATM-forward IV {sigma:.2%}; {liquidity.summary()}")
    return StrategyResult(
        kind=kind, underlying=snapshot.underlying, spot=float(spot), valuation_time=moment, expiration=exp_date,
        dte=dte, T=T, legs=tuple(legs), credit_mid=credit_mid, credit_natural=credit_natural, width=width,
        max_profit=mid_stats.max_profit, max_loss=mid_stats.max_loss, breakevens=mid_stats.breakevens,
        pop=mid_stats.pop, expected_value=mid_stats.expected_value, sigma=sigma, greeks=greeks,
        natural=nat_stats, reason=reason, source=snapshot.source, params=params, liquidity=liquidity,
        risk_budget=None if risk_budget is None else float(risk_budget), budget_note=budget_note,
    )


def strategy_for(action: Any, trend: Any, snapshot: ChainSnapshot, params: StrategyParams | None = None, *,
                 risk_budget: float | None = None) -> StrategyResult | NoValidStrategy:
    """``build_strategy(select_strategy(action, trend), snapshot, params, risk_budget=risk_budget)``."""
    return build_strategy(select_strategy(action, trend), snapshot, params, risk_budget=risk_budget)
