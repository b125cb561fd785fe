"""Position sizing: Kelly from a trade history, fractional Kelly, confidence scaling and risk caps.

One call, :func:`size_position`, turns an account, a trade's max loss per contract and the history's
:class:`TradeStats` into a :class:`SizingResult`: how much of the account to put at risk, how many
contracts that buys, what limited it and a sentence saying so.

Units
-----
* ``account``, ``max_loss_per_contract``, ``open_risk``, ``risk_budget``, ``risk_used``: dollars.
* ``max_loss_per_contract``: what one contract (one spread, one option x 100) loses in the worst case,
  e.g. (width - credit) x 100 for a credit spread. A position of ``n`` contracts risks ``n`` x that.
* ``win_rate``: a probability in [0, 1] (0.68, not 68).
* ``avg_win`` / ``avg_loss``: the average P&L of the winning / non-winning trades as **fractions of
  the capital each trade put at risk** (its max loss), both as positive magnitudes: a credit spread
  risking $400 that kept $60 returned 0.15; one closed for a $100 loss returned -0.25 (``avg_loss``
  0.25). See :class:`TradeStats`.
* ``kelly``, ``fractional_kelly``, ``risk_fraction``, the caps: **fractions of the account put at
  risk**, i.e. dollars of max loss per dollar of account.

The Kelly formula: which quantity the 8.8% is
----------------------------------------------
The reference system sizes with::

    f = (p * W - q * L) / L          p = win rate, q = 1 - p, W = average win, L = average loss

and treats ``f`` as the fraction of the account to put **at risk** (the position's max loss). With
p = 0.68, W = 0.15, L = 0.25: f = (0.102 - 0.080) / 0.25 = 0.088. Half of it, 4.4% of a $50,000
account, is a $2,200 risk budget; at $500 max loss per contract that is 4.4 contracts, which we round
**down** to 4 (see "Rounding" below). This is the default (``formula="reference"``) and is
reproduced exactly.

What that number is. Write b = W / L for the payoff ratio. Then f = p * b - q: the expected profit
per dollar of *average loss* (the trade's "edge" in units of L). It depends only on the ratio W / L,
so W and L may be in any common unit (fractions of risk, of premium, dollars) and give the same f.

How it relates to the growth-optimal (Kelly) fraction. Suppose a trade that puts R dollars at risk
returns +W*R with probability p and -L*R with probability q. Putting a fraction x of the account A at
risk (R = x*A) multiplies the account by (1 + x*W) or (1 - x*L); the expected log growth is::

    g(x) = p * ln(1 + x*W) + q * ln(1 - x*L)
    g'(x) = p*W / (1 + x*W) - q*L / (1 - x*L) = 0
    =>  p*W*(1 - x*L) = q*L*(1 + x*W)  =>  p*W - q*L = x*W*L*(p + q)
    =>  x* = (p*W - q*L) / (W*L) = p/L - q/W                   (``formula="growth_optimal"``)

So the reference f equals x* * W: the two agree exactly when W = 1 (e.g. the textbook even-money bet
that loses its whole stake, W = L = 1, where both give p - q) and otherwise differ by the factor W. In the reference
example x* = 0.68/0.25 - 0.32/0.15 = 0.587 -- 58.7% of the account at max-loss risk -- because it
trusts that a losing trade only ever loses its *average* 25% of the risk, never the 100% a
defined-risk spread can lose. That is why the reference formula is the default: with W < 1 (the usual
case for premium selling: wins smaller than the capital at risk) it is the more conservative of the
two (f = W * x* < x*). Beware W > 1 (debit trades that win more than they risk): then the reference f
exceeds x*, and the per-trade cap is what keeps the size sane. ``growth_optimal`` needs W and L as
fractions of the capital at risk (it is not scale-free).

Steps of :func:`size_position`
------------------------------
1. **Bootstrap**: with fewer than ``min_trades_for_kelly`` trades of history (or no stats at all) a
   Kelly estimate is noise; the base risk is the fixed ``bootstrap_risk`` (1% of the account).
2. Otherwise **Kelly** (the formula above). Kelly <= 0 (no edge) -> zero size, ``capped_by =
   "negative Kelly"`` (or ``"zero Kelly"``) with the reason. Else **fractional Kelly**: Kelly x
   ``kelly_fraction`` (0.5: half Kelly -- a quarter of full Kelly's growth-rate variance for three
   quarters of its growth, and a margin for the estimation error in p, W and L).
3. **Confidence** (``scale_by_confidence``, on by default): the base risk x ``confidence / 100``;
   confidence 100 leaves it alone, 70 takes 70% of it, 0 sizes to zero. Applied *before* the caps,
   which are hard limits.
4. **Per-trade cap**: at most ``max_risk_per_trade`` (5%) of the account at risk.
5. **Open-risk cap**: the max loss of open positions (``open_risk``, dollars) plus this trade's budget
   stays within ``max_total_open_risk`` (20%) of the account.
6. **Contracts** = floor(risk budget / max loss per contract). Money is compared in cents: the budget
   is rounded *down* to the cent, forgiving float noise (2199.9999999999986 is $2,200.00, so noise
   cannot drop a contract; a cap is never exceeded by rounding up) and
   ``contracts`` is the largest count whose max loss, rounded to the cent, is within it -- so
   ``contracts * max_loss_per_contract <= risk_budget`` always holds (to within half a cent when the
   max loss per contract has fractions of a cent).

Before the spread is known
    :func:`risk_budget` runs steps 1-5 alone: the dollars the next position may lose, which the strategy
    builder fits a spread's width to (:func:`research_lib.strategy.build_strategy`, ``risk_budget=``).
    :func:`account_needed` inverts them: the smallest account whose budget buys one contract of a given
    max loss at the same caps (what a SKIP says when nothing fits).

Rounding: why down
    The reference system rounded 4.4 contracts up to 5: $2,500 at risk, 5.0% of the account, 14% over
    its own $2,200 half-Kelly budget. The budget is a ceiling on what a max loss may cost; rounding up
    breaks it by up to one contract's max loss, which matters most exactly when sizes are small
    (1.5 -> 2 contracts is +33% risk, 0.6 -> 1 is +67%). Rounding down can only under-size, by less than
    one contract, and a budget smaller than one contract gives zero contracts (``capped_by = "below one
    contract"``), not one.

Example
-------
>>> from research_lib.core.sizing import TradeStats, size_position
>>> r = size_position(50_000, 500, TradeStats(win_rate=0.68, avg_win=0.15, avg_loss=0.25, n_trades=120))
>>> round(r.kelly, 6), round(r.fractional_kelly, 6), r.risk_budget, r.contracts
(0.088, 0.044, 2200.0, 4)
>>> r.how
'Half-Kelly 4.4% of $50,000 = $2,200 at risk; $500 max loss per contract → 4 contracts ($2,000)'
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from research_lib.checks import FieldChecks
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    SizingError as SizingError,
)

#: Kelly formulas :func:`kelly` knows (see the module docstring).
FORMULAS: tuple[str, ...] = ("reference", "growth_optimal")

# capped_by labels (SizingResult.capped_by)
BOOTSTRAP = "bootstrap"
NEGATIVE_KELLY = "negative Kelly"
ZERO_KELLY = "zero Kelly"
ZERO_CONFIDENCE = "zero confidence"
PER_TRADE_CAP = "per-trade cap"
OPEN_RISK_CAP = "open-risk cap"
BELOW_ONE_CONTRACT = "below one contract"


_CHECKS = FieldChecks(lambda field, value, why: SizingError(why, argument=field, value=value))


def _real(name: str, value: Any) -> float:
    """``value`` as a finite float, or SizingError naming ``name``."""
    return _CHECKS.number(name, value)


def _fraction(name: str, value: Any, *, lo_open: bool = False) -> float:
    """``value`` as a fraction in [0, 1] (``lo_open``: (0, 1]), or SizingError naming ``name``."""
    return _CHECKS.probability(name, value, lo_open=lo_open, unit="a fraction: 0.05 for 5%")


# --------------------------------------------------------------------------------------------------
# parameters and statistics


@dataclasses.dataclass(frozen=True)
class SizingParams:
    """The knobs of :func:`size_position` (all risk figures are fractions of the account at risk).

    Attributes
    ----------
    kelly_fraction : float, default 0.5
        Multiplier on Kelly, in (0, 1]: 0.5 half Kelly, 0.25 quarter, 1 full.
    max_risk_per_trade : float, default 0.05
        Cap on one trade's max loss, fraction of the account.
    max_total_open_risk : float, default 0.20
        Cap on the max loss of all open positions plus this trade, fraction of the account.
    min_trades_for_kelly : int, default 30
        Below this many trades of history the fixed ``bootstrap_risk`` replaces Kelly.
    bootstrap_risk : float, default 0.01
        Risk per trade until the history is long enough, fraction of the account.
    scale_by_confidence : bool, default True
        Multiply the base risk (fractional Kelly or bootstrap) by ``confidence / 100`` before the caps.
    formula : {"reference", "growth_optimal"}, default "reference"
        Which Kelly (see the module docstring): ``(pW - qL)/L`` or ``p/L - q/W``.
    """

    kelly_fraction: float = 0.5
    max_risk_per_trade: float = 0.05
    max_total_open_risk: float = 0.20
    min_trades_for_kelly: int = 30
    bootstrap_risk: float = 0.01
    scale_by_confidence: bool = True
    formula: str = "reference"

    def __post_init__(self) -> None:
        check = _CHECKS
        for name in ("kelly_fraction", "max_risk_per_trade", "max_total_open_risk"):
            _fraction(name, getattr(self, name), lo_open=True)
        _fraction("bootstrap_risk", self.bootstrap_risk)
        check.require(self.bootstrap_risk <= self.max_risk_per_trade, "bootstrap_risk", self.bootstrap_risk,
                      f"exceeds max_risk_per_trade={self.max_risk_per_trade!r}")
        check.require(self.max_risk_per_trade <= self.max_total_open_risk, "max_risk_per_trade",
                      self.max_risk_per_trade, f"exceeds max_total_open_risk={self.max_total_open_risk!r}")
        check.whole("min_trades_for_kelly", self.min_trades_for_kelly, lo=0, unit="trades")
        check.flag("scale_by_confidence", self.scale_by_confidence)
        check.choice("formula", self.formula, FORMULAS)


@dataclasses.dataclass(frozen=True)
class TradeStats:
    """What a trade history says about the edge.

    Attributes
    ----------
    win_rate : float
        Fraction of trades that made money, in [0, 1].
    avg_win : float
        Mean return of the winning trades, as a positive fraction of the capital each put at risk (its
        max loss). 0 when there were no wins.
    avg_loss : float
        Mean loss of the other trades, as a positive magnitude in the same unit (0.25 = lost a quarter
        of the capital at risk; 1.0 = the full max loss). 0 when there were none.
    n_trades : int
        Number of trades behind the figures; below ``SizingParams.min_trades_for_kelly`` the sizer
        ignores Kelly and uses the bootstrap risk.

    The reference Kelly uses W and L only through W/L, so figures in percent of premium or in dollars
    give the same answer; the growth-optimal one needs fractions of the capital at risk.
    """

    win_rate: float
    avg_win: float
    avg_loss: float
    n_trades: int

    def __post_init__(self) -> None:
        _fraction("win_rate", self.win_rate)
        for name in ("avg_win", "avg_loss"):
            x = _real(name, getattr(self, name))
            _CHECKS.require(x >= 0, name, x, f"is a magnitude: pass {-x!r}, not {x!r}")
        n = _CHECKS.whole("n_trades", self.n_trades, lo=0, unit="trades")
        for name in ("win_rate", "avg_win", "avg_loss"):  # numpy scalars -> float, ints -> float
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "n_trades", int(n))

    @classmethod
    def from_returns(cls, returns: Iterable[float] | pd.Series | np.ndarray) -> TradeStats:
        """Statistics of a list of per-trade returns on risk (P&L / max loss: +0.15, -0.25, -1.0 ...).

        A trade is a win when its return is > 0. ``avg_loss`` averages the magnitude of the others,
        scratches (0) included, so ``win_rate * avg_win - (1 - win_rate) * avg_loss`` equals the mean
        return exactly. An empty history gives ``TradeStats(0, 0, 0, 0)`` (the sizer bootstraps).

        Raises
        ------
        SizingError
            A return that is not a finite number (naming its position and value).
        """
        if isinstance(returns, pd.Series):
            labels = list(returns.index)
            raw = returns.to_numpy(dtype=object)
        else:
            raw = np.asarray(list(returns), dtype=object)
            labels = list(range(len(raw)))
        values = np.empty(len(raw), dtype="float64")
        for i, (label, v) in enumerate(zip(labels, raw, strict=True)):
            try:
                values[i] = _real("return", v)
            except SizingError as exc:
                raise SizingError(f"trade {label!r} of {len(raw)}: {exc}", argument="returns",
                                  value=v) from None
        n = len(values)
        if n == 0:
            return cls(0.0, 0.0, 0.0, 0)
        wins = values[values > 0]
        rest = values[values <= 0]
        return cls(win_rate=len(wins) / n,
                   avg_win=float(wins.mean()) if len(wins) else 0.0,
                   avg_loss=float(-rest.mean()) if len(rest) else 0.0,
                   n_trades=n)

    @property
    def expectancy(self) -> float:
        """Mean return per trade on risk: ``p*W - q*L``."""
        return self.win_rate * self.avg_win - (1.0 - self.win_rate) * self.avg_loss


def kelly(win_rate: float, avg_win: float, avg_loss: float, *, formula: str = "reference") -> float:
    """Kelly fraction of the account to put at risk (see the module docstring for the derivation).

    Parameters
    ----------
    win_rate : float
        p, in [0, 1].
    avg_win, avg_loss : float
        W and L, positive magnitudes (fractions of the capital at risk).
    formula : {"reference", "growth_optimal"}
        ``(p*W - q*L) / L`` (the reference system's, default) or ``(p*W - q*L) / (W*L) = p/L - q/W``.

    Returns
    -------
    float
        Negative when the history has no edge. ``inf`` when there is an edge and no loss to divide by
        (L = 0); 0 when there is neither. ``growth_optimal`` with W = 0 and some loss gives ``-inf``.

    Raises
    ------
    SizingError
        Inputs out of range or not finite.
    """
    stats = TradeStats(win_rate, avg_win, avg_loss, 0)  # validates
    _CHECKS.choice("formula", formula, FORMULAS)
    p, w, l_ = stats.win_rate, stats.avg_win, stats.avg_loss
    edge = p * w - (1.0 - p) * l_
    if formula == "reference":
        if l_ == 0:
            return math.inf if edge > 0 else 0.0
        return edge / l_
    denom = w * l_
    if denom == 0:  # W or L is zero (or their product underflows)
        return math.inf if edge > 0 else (-math.inf if edge < 0 else 0.0)
    return edge / denom


# --------------------------------------------------------------------------------------------------
# the result


@dataclasses.dataclass(frozen=True)
class SizingResult:
    """What :func:`size_position` decided.

    Attributes
    ----------
    kelly : float
        Full Kelly fraction of the account at risk (NaN when there were no stats; may be negative or inf).
    fractional_kelly : float
        ``kelly * kelly_fraction`` (NaN without stats).
    risk_fraction : float
        The final risk budget as a fraction of the account (``risk_budget / account``).
    risk_budget : float
        Dollars the position may lose at most, after scaling and caps, rounded down to the cent.
    contracts : int
        ``floor(risk_budget / max_loss_per_contract)``; never negative.
    risk_used : float
        ``contracts * max_loss_per_contract`` rounded to the cent (<= ``risk_budget``).
    capped_by : str or None
        What limited the size: ``"bootstrap"``, ``"negative Kelly"``, ``"zero Kelly"``,
        ``"zero confidence"``, ``"per-trade cap"``, ``"open-risk cap"``, ``"below one contract"``;
        None when fractional Kelly (x confidence) went through untouched.
    reasons : tuple of str
        Sentences, in the order the steps ran.
    how : str
        One line for a decision log: ``"Half-Kelly 4.4% of $50,000 = $2,200 at risk; $500 max loss per
        contract → 4 contracts ($2,000)"``.
    account, max_loss_per_contract, confidence, open_risk : float
        The inputs, for the record.
    base : str
        ``"kelly"`` or ``"bootstrap"``: where the base risk came from.
    """

    kelly: float
    fractional_kelly: float
    risk_fraction: float
    risk_budget: float
    contracts: int
    risk_used: float
    capped_by: str | None
    reasons: tuple[str, ...]
    how: str
    account: float
    max_loss_per_contract: float
    confidence: float
    open_risk: float
    base: str

    @property
    def tradeable(self) -> bool:
        """True when the size is at least one contract."""
        return self.contracts > 0


def _money(x: float) -> str:
    """``$2,200`` for whole dollars, ``$2,199.50`` otherwise; ``-$12`` for negatives."""
    sign = "-" if x < 0 else ""
    x = abs(round(x, 2))
    return f"{sign}${x:,.0f}" if x == round(x) else f"{sign}${x:,.2f}"


def _pct(x: float) -> str:
    """``4.4%``, ``3.08%``, ``5%``: a fraction as a percent with at most two decimals."""
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    text = f"{x * 100:.2f}".rstrip("0").rstrip(".")
    return ("0" if text == "-0" else text) + "%"


def _signed_pct(x: float) -> str:
    return ("+" if x >= 0 else "") + _pct(x)


def kelly_label(kelly_fraction: float) -> str:
    """``"Half-Kelly"`` for 0.5, ``"Quarter-Kelly"`` for 0.25, ``"Full Kelly"`` for 1, else ``"0.3×Kelly"``."""
    names = {0.5: "Half-Kelly", 0.25: "Quarter-Kelly", 1.0: "Full Kelly", 1 / 3: "Third-Kelly"}
    for k, name in names.items():
        if math.isclose(kelly_fraction, k, rel_tol=1e-12):
            return name
    return f"{kelly_fraction:g}×Kelly"


def _cents_down(dollars: float) -> float:
    """Dollars rounded down to the cent, forgiving float noise: 2199.9999999999986 -> 2200.0, 0.0051 -> 0.0."""
    cents = dollars * 100.0
    return math.floor(cents + max(1e-6, abs(cents) * 1e-12)) / 100.0


def _contracts_within(budget: float, per_contract: float) -> int:
    """Largest n >= 0 whose max loss, to the cent, is within the budget: round(n * per_contract, 2) <= budget.

    Compared in cents so float noise (7 x 1.1 = 7.700000000000001) neither adds nor drops a contract.
    """
    if budget <= 0:
        return 0
    n = max(int(math.floor(budget / per_contract)), 0)
    while n > 0 and round(n * per_contract, 2) > budget:
        n -= 1
    while round((n + 1) * per_contract, 2) <= budget:
        n += 1
    return n


@dataclasses.dataclass(frozen=True)
class _Budget:
    """Steps 1-5 of :func:`size_position`: everything before the max loss per contract matters."""

    kelly: float
    fractional_kelly: float
    budget: float               # dollars, rounded down to the cent
    capped_by: str | None
    reasons: tuple[str, ...]
    how: str                    # "... = $2,200 at risk" (or the whole sentence when no_edge)
    base: str
    no_edge: bool = False       # Kelly <= 0: the sizing stops here


def _check_common(account, confidence, open_risk, stats, params) -> tuple[SizingParams, float, float, float]:
    params = SizingParams() if params is None else params
    if not isinstance(params, SizingParams):
        raise SizingError("must be a SizingParams", argument="params", value=params)
    acct = _CHECKS.number("account", account, lo=0, lo_open=True, unit="dollars")
    conf = _CHECKS.number("confidence", confidence, lo=0, hi=100, unit="percent")
    open_ = _CHECKS.number("open_risk", open_risk, lo=0, unit="dollars of max loss already open")
    if stats is not None and not isinstance(stats, TradeStats):
        raise SizingError("must be a TradeStats or None", argument="stats", value=stats)
    return params, acct, conf, open_


@dataclasses.dataclass(frozen=True)
class _BaseRisk:
    """Steps 1-2 of :func:`size_position`: Kelly from the history and the base risk it gives."""

    kelly: float                # NaN without a history
    fractional_kelly: float
    base: str                   # "kelly" or "bootstrap"
    risk: float                 # fraction of the account; NaN when Kelly <= 0 (no edge)
    capped_by: str | None
    step: str                   # the start of the ``how`` sentence
    no_edge: bool = False


def _base_risk(stats: TradeStats | None, params: SizingParams, reasons: list[str]) -> _BaseRisk:
    """Kelly (step 1), then the base risk (step 2): the fixed bootstrap risk while the history is shorter
    than ``min_trades_for_kelly``, else fractional Kelly; Kelly <= 0 means no edge (no position)."""
    label = kelly_label(params.kelly_fraction)
    k = fk = math.nan
    if stats is not None:
        k = kelly(stats.win_rate, stats.avg_win, stats.avg_loss, formula=params.formula)
        fk = k * params.kelly_fraction if k > 0 else k
        formula = ("(p·W − q·L) / L" if params.formula == "reference" else "p/L − q/W")
        reasons.append(f"Kelly {_pct(k)} from {_pct(stats.win_rate)} wins, average win {_pct(stats.avg_win)} "
                       f"and average loss {_pct(stats.avg_loss)} of the risk over {stats.n_trades} trades "
                       f"({formula}).")
    n_hist = 0 if stats is None else stats.n_trades
    if stats is None or n_hist < params.min_trades_for_kelly:
        risk = params.bootstrap_risk
        have = "no trade history" if stats is None else f"only {n_hist} trades of history"
        reasons.append(f"Bootstrap: {have} (< {params.min_trades_for_kelly}), so a fixed "
                       f"{_pct(risk)} of the account at risk instead of Kelly.")
        return _BaseRisk(k, fk, "bootstrap", risk, BOOTSTRAP, f"Bootstrap {_pct(risk)}")
    if k <= 0:
        reasons.append(f"Kelly {_pct(k)} ≤ 0: the history shows no edge (expectancy "
                       f"{_signed_pct(stats.expectancy)} of the risk per trade), so no position.")
        return _BaseRisk(k, fk, "kelly", math.nan, NEGATIVE_KELLY if k < 0 else ZERO_KELLY,
                         f"Kelly {_pct(k)} ≤ 0 (no edge) → 0 contracts", no_edge=True)
    reasons.append(f"{label} (× {params.kelly_fraction:g}): {_pct(fk)} of the account at risk.")
    return _BaseRisk(k, fk, "kelly", fk, None, f"{label} {_pct(fk)}")


def _trade_risk(b: _BaseRisk, conf: float, params: SizingParams,
                reasons: list[str]) -> tuple[float, str | None, str]:
    """Steps 3-4: the base risk scaled by confidence (when ``scale_by_confidence``), then cut to the
    per-trade cap. Returns (risk as a fraction of the account, what capped it, the ``how`` so far)."""
    risk, capped_by, step = b.risk, b.capped_by, b.step
    scaled = params.scale_by_confidence and conf < 100
    if scaled:
        risk = b.risk * conf / 100.0 if conf > 0 else 0.0  # (inf × 0 would be NaN)
        reasons.append(f"Confidence {conf:g}%: {_pct(b.risk)} × {conf:g}/100 = {_pct(risk)}.")
        step += f" × {conf:g}% confidence"
        if risk == 0:
            capped_by = ZERO_CONFIDENCE
    if risk > params.max_risk_per_trade:
        reasons.append(f"Per-trade cap: {_pct(risk)} cut to {_pct(params.max_risk_per_trade)} of the account.")
        risk = params.max_risk_per_trade
        capped_by = PER_TRADE_CAP
        step += f" capped at {_pct(risk)}"
    elif scaled:
        step += f" = {_pct(risk)}"
    return risk, capped_by, step


def _open_risk_cap(budget: float, acct: float, open_: float, params: SizingParams, reasons: list[str],
                   how: str) -> tuple[float, str, bool]:
    """Step 5: the dollar budget cut to the room left under ``max_total_open_risk`` by the risk already
    open (0 when none is left). Returns (budget, ``how``, whether the cap bound)."""
    room = params.max_total_open_risk * acct - open_
    if budget <= room:
        return budget, how, False
    cap_total = params.max_total_open_risk * acct
    if room <= 0:
        reasons.append(f"Open-risk cap: {_money(open_)} already at risk reaches the "
                       f"{_pct(params.max_total_open_risk)} cap ({_money(cap_total)}); no new risk.")
    else:
        reasons.append(f"Open-risk cap: {_money(open_)} already at risk leaves {_money(room)} of the "
                       f"{_pct(params.max_total_open_risk)} cap ({_money(cap_total)}).")
    budget = max(room, 0.0)
    return budget, how + (f", cut to {_money(_cents_down(budget))} by the {_pct(params.max_total_open_risk)} "
                          f"open-risk cap ({_money(open_)} already at risk)"), True


def _budget_steps(acct: float, stats: TradeStats | None, conf: float, open_: float,
                  params: SizingParams) -> _Budget:
    """Steps 1-5 of :func:`size_position` (Kelly, base risk, confidence, per-trade cap, open-risk cap)."""
    reasons: list[str] = []
    b = _base_risk(stats, params, reasons)
    if b.no_edge:
        return _Budget(b.kelly, b.fractional_kelly, 0.0, b.capped_by, tuple(reasons), b.step, b.base,
                       no_edge=True)
    risk, capped_by, step = _trade_risk(b, conf, params, reasons)
    budget = risk * acct
    budget, how, bound = _open_risk_cap(budget, acct, open_, params, reasons,
                                        f"{step} of {_money(acct)} = {_money(_cents_down(budget))} at risk")
    return _Budget(b.kelly, b.fractional_kelly, _cents_down(budget), OPEN_RISK_CAP if bound else capped_by,
                   tuple(reasons), how, b.base)


def risk_budget(account: float, stats: TradeStats | None = None, *, confidence: float = 100.0,
                open_risk: float = 0.0, params: SizingParams | None = None) -> float:
    """Dollars the next position may lose at most: steps 1-5 of :func:`size_position`, before any max loss
    per contract is known (what the strategy builder fits a spread's width to).

    Same arguments as :func:`size_position` without ``max_loss_per_contract``; equals
    ``size_position(...).risk_budget`` for any max loss. 0 when Kelly <= 0, the confidence is 0 or the
    open-risk cap is reached. Rounded down to the cent.

    Raises
    ------
    SizingError
        A bad argument (named in the message).
    """
    params, acct, conf, open_ = _check_common(account, confidence, open_risk, stats, params)
    return _budget_steps(acct, stats, conf, open_, params).budget


def account_needed(max_loss_per_contract: float, stats: TradeStats | None = None, *, confidence: float = 100.0,
                   open_risk: float = 0.0, params: SizingParams | None = None) -> float | None:
    """The smallest account (whole dollars) whose risk budget buys one contract of this max loss.

    The budget is ``f × account`` (``f`` the bootstrap or fractional-Kelly risk × confidence, capped at
    ``max_risk_per_trade``), and at most ``max_total_open_risk × account − open_risk``; one contract needs
    the budget >= ``max_loss_per_contract``, so the account must be at least
    ``max(L / f, (L + open_risk) / max_total_open_risk)``, rounded up to the dollar (then checked against
    :func:`size_position`, the cent rounding included).

    Returns
    -------
    float or None
        None when no account size gives a position (Kelly <= 0 or confidence 0: ``f = 0``).

    Raises
    ------
    SizingError
        A bad argument (named in the message).
    """
    per = _CHECKS.number("max_loss_per_contract", max_loss_per_contract, lo=0, lo_open=True,
                         unit="dollars lost by one contract in the worst case")
    params, _, conf, open_ = _check_common(1.0, confidence, open_risk, stats, params)
    f = _budget_steps(1e6, stats, conf, 0.0, params).budget / 1e6   # the risk fraction, per dollar of account
    if not f > 0:
        return None
    need = max(per / f, (per + open_) / params.max_total_open_risk)
    acct = float(math.ceil(need - 1e-9))
    while size_position(acct, per, stats, confidence=conf, open_risk=open_, params=params).contracts < 1:
        acct += 1.0
    return acct


def size_position(account: float, max_loss_per_contract: float, stats: TradeStats | None, *,
                  confidence: float = 100.0, open_risk: float = 0.0,
                  params: SizingParams | None = None) -> SizingResult:
    """How many contracts to trade (see the module docstring for the steps, units and formula).

    Parameters
    ----------
    account : float
        Account value, dollars (> 0).
    max_loss_per_contract : float
        Worst-case loss of one contract, dollars (> 0).
    stats : TradeStats or None
        The trade history; None (no history) bootstraps.
    confidence : float, default 100
        Signal confidence in [0, 100]; scales the base risk by ``confidence / 100`` when
        ``params.scale_by_confidence``.
    open_risk : float, default 0
        Max loss of the positions already open, dollars (>= 0).
    params : SizingParams, optional
        Defaults to ``SizingParams()``.

    Returns
    -------
    SizingResult

    Raises
    ------
    SizingError
        A bad argument (named in the message).
    """
    params, acct, conf, open_ = _check_common(account, confidence, open_risk, stats, params)
    per = _CHECKS.number("max_loss_per_contract", max_loss_per_contract, lo=0, lo_open=True,
                         unit="dollars lost by one contract in the worst case")
    steps = _budget_steps(acct, stats, conf, open_, params)
    k, fk, base = steps.kelly, steps.fractional_kelly, steps.base
    reasons, capped_by, how = list(steps.reasons), steps.capped_by, steps.how
    if steps.no_edge:
        return SizingResult(k, fk, 0.0, 0.0, 0, 0.0, capped_by, tuple(reasons), how, acct, per, conf,
                            open_, base)
    budget = steps.budget
    n = _contracts_within(budget, per)
    used = round(n * per, 2)
    if n == 0 and budget > 0:
        capped_by = BELOW_ONE_CONTRACT
        reasons.append(f"The budget {_money(budget)} is less than one contract's max loss {_money(per)}: "
                       "0 contracts (we round down, never over the budget).")
    elif budget > 0:
        exact = budget / per
        if n != exact:
            reasons.append(f"{_money(budget)} / {_money(per)} = {exact:.4g} contracts, rounded down to {n} so "
                           f"the max loss ({_money(used)}) never exceeds the budget.")
    how += (f"; {_money(per)} max loss per contract → "
            f"{n} contract{'' if n == 1 else 's'} ({_money(used)})")
    return SizingResult(k, fk, budget / acct, budget, n, used, capped_by, tuple(reasons), how, acct, per, conf,
                        open_, base)


__all__ = [
    "BELOW_ONE_CONTRACT",
    "BOOTSTRAP",
    "FORMULAS",
    "NEGATIVE_KELLY",
    "OPEN_RISK_CAP",
    "PER_TRADE_CAP",
    "ZERO_CONFIDENCE",
    "ZERO_KELLY",
    "SizingError",
    "SizingParams",
    "SizingResult",
    "TradeStats",
    "account_needed",
    "kelly",
    "kelly_label",
    "risk_budget",
    "size_position",
]
