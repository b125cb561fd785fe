"""Strategy selection and construction: a regime's action and trend in, a priced option spread out.

Two steps, each a pure function:

1. :func:`select_strategy` maps ``(action, trend)`` to a :class:`StrategyChoice` (a
   :class:`StrategyKind` and the reason):

   =================== ============ =================================================
   action              trend        strategy
   =================== ============ =================================================
   ``SELL_PREMIUM``    ``UPTREND``  bull put spread (credit)
   ``SELL_PREMIUM``    ``DOWNTREND`` bear call spread (credit)
   ``SELL_PREMIUM``    ``SIDEWAYS`` iron condor (credit)
   ``BUY_DIRECTIONAL`` ``UPTREND``  bull call spread (debit)
   ``BUY_DIRECTIONAL`` ``DOWNTREND`` bear put spread (debit)
   ``BUY_DIRECTIONAL`` ``SIDEWAYS`` none (a directional trade needs a direction)
   ``STAY_OUT``        any          none
   =================== ============ =================================================

   ``action`` and ``trend`` are plain strings or any str-enum (``research_lib.regime.Action`` /
   ``Trend``); case, spaces and hyphens do not matter. Anything else raises
   :class:`UnknownActionError` / :class:`UnknownTrendError`.

2. :func:`build_strategy` builds the chosen structure from the legs of a real
   :class:`~research_lib.chain.ChainSnapshot` and prices it. It returns a :class:`StrategyResult`, or a
   :class:`NoValidStrategy` (``valid=False``, with a ``reason`` and a ``code``) when the chain has no
   suitable expiry, strikes or quotes — that is an answer, not an error. Only bad arguments raise
   (:class:`StrategyError` and its subclasses).

How legs are chosen (:class:`StrategyParams`)
---------------------------------------------
* **Time.** ``T`` (years) is :func:`research_lib.gex.time_to_expiry` under
  ``GexConfig.model(rate=..., div_yield=...)``: calendar time from the valuation moment (the quote time
  in a session, else the last session close) to the settlement moment (16:00 ET for PM roots, the 09:30
  open for AM-settled SPX monthlies). **DTE** is whole calendar days from the valuation moment's date to
  the expiry date: a Sunday download of Friday's close counts from Friday, like ``T``.
* **Expiry.** Among expiries whose DTE lies within ``dte_tolerance`` days of ``target_dte`` and that have
  usable quotes for the rights the structure needs (at least two usable strikes per right, one of them
  with a bid), the one nearest ``target_dte``; ties go to the earlier expiry. No fallback to a farther
  expiry when leg selection then fails at the chosen one: the result says why instead.
* **Root.** All legs come from one root. When an expiry is listed under several roots (SPX AM monthlies
  beside SPXW PM weeklies on the third Friday), PM settlement is preferred (``prefer_pm=True``: SPXW over
  SPX), then the root with more usable contracts, then alphabetical. ``roots=("SPX",)`` restricts the
  chain to the roots listed, preferred in the order given.
* **Usable contract.** A live contract (``T > 0``) with a finite IV > 0 (or, with
  ``fill_iv_from_mid=True``, an IV implied from the mid when the vendor gave none), a two-sided quote
  (finite bid >= 0, ask > 0, bid <= ask) that passes the **liquidity rules**:

  - open interest at least ``min_open_interest`` [5 contracts] — a strike nobody holds is a strike
    nobody makes a market in (an ENTRY must never buy a contract with open interest 0). Index options are
    spread over many strikes: on the 2026-08-21 archive day the 45-DTE puts at 7425-7475 (|Δ| 0.26-0.30)
    hold 4-9 contracts each with markets under 1% of mid, so 10 would move the 0.30-delta short put to
    0.25; raise it for single stocks and ETFs;
  - a relative bid/ask spread ``(ask − bid) / mid`` of at most ``max_spread_pct`` [0.10, i.e. 10% of the
    mid; on the shared SPX chains 99% of the 0.05-0.60-delta contracts are within 8%];
  - a bid > 0 on every **sold** leg (a short at a zero bid sells for nothing). With a spread limit below
    200% a zero bid fails the spread rule too, so zero-bid contracts are never used.

  A contract failing several is counted under the first that applies (data problems — expired, no ask,
  crossed, no IV — then no bid, spread, open interest). :attr:`StrategyResult.liquidity` (a
  :class:`LiquidityReport`) says how many contracts each rule removed at the chosen expiry and root, and
  the summary prints it.
* **Delta.** Selection uses the model delta recomputed from each contract's IV
  (:func:`research_lib.pricing.delta` with ``S = snapshot.spot``, ``T`` as above, ``rate``, ``div_yield``),
  not the vendor's column.
* **Credit spreads** (bull put, bear call, and both sides of the iron condor): the short leg is the
  usable contract (with a bid) whose ``|delta|`` is nearest ``short_delta``; the long (wing) leg is
  strictly further out of the money: the ``|delta|`` nearest ``long_delta``, or — when ``width_points`` or
  ``width_pct`` is given — the strike nearest ``short strike ∓ width``.
* **Debit spreads** (bull call, bear put): the long leg is the usable contract whose ``|delta|`` is
  nearest ``debit_long_delta`` (default 0.50, near the money); the short leg is strictly further out of
  the money, with a bid: ``|delta|`` nearest ``short_delta``, or the strike nearest ``long strike ± width``.
* Ties between strikes equally near a delta target go to the one further out of the money.
* **Risk budget.** ``build_strategy(..., risk_budget=dollars)`` (what :func:`research_lib.sizing.risk_budget`
  allows the position to lose) fits the structure to it: when the legs above lose more than the budget per
  contract (mid price, the figure sizing divides by), the far legs are moved in toward the near legs, one
  listed strike at a time, and the **widest** structure whose max loss per contract fits is taken — its
  legs pass the same liquidity rules, its quotes the same price checks, and at the natural price it must
  still be a credit (credit spreads) or a debit below the width (debit spreads). The near legs (the
  short-delta or the at-the-money leg) do not move. The narrowest width tried is ``min_width_pct`` [0.2%]
  of spot (about 10 SPX points, 1 XSP point) and at least one listed strike. When nothing fits, a
  :class:`NoValidStrategy` with ``code="over_budget"`` gives the narrowest structure's max loss
  (``min_max_loss``) and every width tried (``candidates``), from which the SKIP says what account, or which
  smaller underlying (:data:`SMALLER_UNDERLYINGS`), would fit.

Prices and payoff (units)
-------------------------
* ``credit_mid`` / ``credit_natural``: premium **per share** (index points), positive = credit received,
  negative = debit paid. Mid prices every leg at ``(bid + ask) / 2``; natural sells at the bid and buys at
  the ask, so ``credit_natural <= credit_mid`` always. Printed as magnitudes after the word that gives
  the sign: ``"debit 41.55 mid / 42.00 natural"``, ``"credit 1.20 mid / 1.05 natural"``, and
  ``"credit 0.05 mid / debit 0.10 natural"`` when the natural price crosses zero.
* ``width``: the distance between the strikes of a vertical, in points; for an iron condor the wider of
  its two sides.
* ``max_profit``, ``max_loss``, ``expected_value``: dollars **per contract** (one spread, ×
  ``multiplier`` = 100), at the mid price; ``max_loss`` is a positive number of dollars lost. Credit
  spreads: ``max_profit = credit × 100``, ``max_loss = (width − credit) × 100``; iron condor:
  ``max_loss = (max(width_put, width_call) − credit) × 100``; debit spreads: ``max_loss = debit × 100``,
  ``max_profit = (width − debit) × 100``. The same figures at the natural price are in
  :attr:`StrategyResult.natural` (a :class:`PayoffStats`).
* ``breakevens``: the underlying prices at expiry where the position's P&L is zero (one for a vertical,
  two for an iron condor).
* ``pop`` and ``expected_value`` are computed in closed form (normal CDF; the payoff at expiry is
  piecewise linear) under a lognormal ``S_T = S exp((r − q − σ²/2) T + σ √T Z)`` — the drift is
  ``rate − div_yield`` — with a **single volatility σ for the whole position**: the expiry's ATM-forward
  IV (:attr:`StrategyResult.sigma`), interpolated linearly in strike from the out-of-the-money IVs of the
  chosen root and expiry at ``F = S e^{(r−q)T}``. One σ keeps one consistent distribution (a per-breakeven
  IV would give each breakeven a different distribution); the price of that choice is that POP and EV
  ignore the skew, so EV measures the premium's edge against a flat-volatility lognormal.
  ``pop = P(P&L at expiry > 0)``; ``expected_value = (premium + E[payoff of the legs at expiry]) × 100``,
  **undiscounted** (the premium is not compounded and the expected payoff not discounted; with the
  default ``rate = 0`` both conventions agree).
* Greeks (:class:`PositionGreeks`) are per contract at each leg's own IV: ``delta`` in share equivalents
  (dollars per 1-point move), ``gamma`` the change of that delta per point, ``vega`` dollars per vol
  point, ``theta`` dollars per calendar day.

Example
-------
>>> from research_lib.data.sources import read_chain
>>> from research_lib import strategy
>>> snap = read_chain("../shared/data/chains/cboe_quotedata/spx_2024-01-07.csv")      # doctest: +SKIP
>>> choice = strategy.select_strategy("SELL_PREMIUM", "UPTREND")                     # doctest: +SKIP
>>> result = strategy.build_strategy(choice, snap)                                    # doctest: +SKIP
>>> result.valid, result.credit_mid, result.max_loss, result.pop                      # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from research_lib.checks import FieldChecks, prefixed
from research_lib.core import gex, pricing
from research_lib.core.chain import ChainSnapshot
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    StrategyError as StrategyError,
    StrategyParamsError as StrategyParamsError,
    UnknownActionError as UnknownActionError,
    UnknownStrategyError as UnknownStrategyError,
    UnknownTrendError as UnknownTrendError,
)

__all__ = [
    "ACTIONS",
    "CANDIDATE_COLUMNS",
    "TRENDS",
    "SMALLER_UNDERLYINGS",
    "Leg",
    "LiquidityReport",
    "NoValidStrategy",
    "PayoffStats",
    "PositionGreeks",
    "StrategyChoice",
    "StrategyError",
    "StrategyKind",
    "StrategyParams",
    "StrategyParamsError",
    "StrategyResult",
    "UnknownActionError",
    "UnknownStrategyError",
    "UnknownTrendError",
    "build_strategy",
    "expiry_payoff",
    "leg_candidates",
    "payoff_stats",
    "select_strategy",
    "strategy_for",
]


# --------------------------------------------------------------------------------------------------
# errors


# --------------------------------------------------------------------------------------------------
# selection

#: The actions :func:`select_strategy` understands (normalised spelling).
ACTIONS: tuple[str, ...] = ("SELL_PREMIUM", "BUY_DIRECTIONAL", "STAY_OUT")
#: The trends :func:`select_strategy` understands (normalised spelling).
TRENDS: tuple[str, ...] = ("UPTREND", "DOWNTREND", "SIDEWAYS")


class StrategyKind(enum.StrEnum):
    """The structures :func:`build_strategy` can build (``NONE``: no position)."""

    BULL_PUT_SPREAD = "bull_put_spread"
    BEAR_CALL_SPREAD = "bear_call_spread"
    IRON_CONDOR = "iron_condor"
    BULL_CALL_SPREAD = "bull_call_spread"
    BEAR_PUT_SPREAD = "bear_put_spread"
    NONE = "none"

    @property
    def is_credit(self) -> bool:
        """True for the premium-selling structures (credit received)."""
        return self in (StrategyKind.BULL_PUT_SPREAD, StrategyKind.BEAR_CALL_SPREAD, StrategyKind.IRON_CONDOR)

    @property
    def label(self) -> str:
        """Human name: ``"bull put spread"``."""
        return self.value.replace("_", " ")


def _normalise(value: Any, allowed: Sequence[str], what: str, error: type[StrategyError]) -> str:
    if isinstance(value, enum.Enum):
        spellings = [value.value, value.name] if isinstance(value.value, str) else [value.name]
    elif isinstance(value, str):
        spellings = [value]
    else:
        raise error(f"{what} must be a string or a str-enum, got {type(value).__name__} {value!r}")
    for spelling in spellings:
        key = "_".join(spelling.strip().upper().replace("-", " ").replace("_", " ").split())
        if key in allowed:
            return key
    raise error(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


def _as_kind(value: Any) -> StrategyKind:
    if isinstance(value, StrategyKind):
        return value
    names = tuple(k.name for k in StrategyKind)
    return StrategyKind[_normalise(value, names, "strategy kind", UnknownStrategyError)]


@dataclasses.dataclass(frozen=True)
class StrategyChoice:
    """What :func:`select_strategy` decided.

    Attributes
    ----------
    kind : StrategyKind
        The structure to build (``NONE``: no position).
    reason : str
        Why, in words.
    action, trend : str or None
        The inputs, normalised (``"SELL_PREMIUM"``, ``"UPTREND"``); None when the choice was made by hand.
    """

    kind: StrategyKind
    reason: str
    action: str | None = None
    trend: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "kind", _as_kind(self.kind))


def select_strategy(action: Any, trend: Any) -> StrategyChoice:
    """The structure for a regime's ``action`` and ``trend`` (see the module docstring's table).

    Parameters
    ----------
    action : str or str-enum
        ``SELL_PREMIUM``, ``BUY_DIRECTIONAL`` or ``STAY_OUT`` (any case; ``-``/space for ``_``).
    trend : str or str-enum
        ``UPTREND``, ``DOWNTREND`` or ``SIDEWAYS``. Checked even when the action is ``STAY_OUT``.

    Raises
    ------
    UnknownActionError, UnknownTrendError
        Anything else (the message lists the accepted values).
    """
    a = _normalise(action, ACTIONS, "action", UnknownActionError)
    t = _normalise(trend, TRENDS, "trend", UnknownTrendError)
    K = StrategyKind
    if a == "STAY_OUT":
        return StrategyChoice(K.NONE, f"the regime says STAY_OUT ({t}): no position", a, t)
    if a == "SELL_PREMIUM":
        kind, why = {
            "UPTREND": (K.BULL_PUT_SPREAD, "sell premium below the market in an uptrend"),
            "DOWNTREND": (K.BEAR_CALL_SPREAD, "sell premium above the market in a downtrend"),
            "SIDEWAYS": (K.IRON_CONDOR, "sell premium on both sides in a sideways market"),
        }[t]
        return StrategyChoice(kind, f"SELL_PREMIUM + {t} → {kind.label}: {why}", a, t)
    if t == "SIDEWAYS":
        return StrategyChoice(K.NONE, "BUY_DIRECTIONAL needs a direction and the trend is SIDEWAYS: no position",
                              a, t)
    kind = K.BULL_CALL_SPREAD if t == "UPTREND" else K.BEAR_PUT_SPREAD
    return StrategyChoice(kind, f"BUY_DIRECTIONAL + {t} → {kind.label}: a debit spread in the trend's direction",
                          a, t)


# --------------------------------------------------------------------------------------------------
# parameters


def _finite_number(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool | np.bool_) \
        and math.isfinite(float(x))


_PARAM_CHECKS = FieldChecks(prefixed(StrategyParamsError, "StrategyParams"))


@dataclasses.dataclass(frozen=True)
class StrategyParams:
    """Every assumption of leg selection and pricing (see the module docstring).

    Attributes
    ----------
    target_dte : int
        Calendar days to expiry wanted (45).
    dte_tolerance : int
        Expiries further than this many days from ``target_dte`` are not considered (15).
    short_delta : float
        ``|delta|`` of the short leg (0.30); of a debit spread's short (far) leg as well.
    long_delta : float
        ``|delta|`` of a credit spread's long (wing) leg when no width is given (0.15).
    debit_long_delta : float
        ``|delta|`` of a debit spread's long (near) leg (0.50).
    width_points, width_pct : float, optional
        Choose the far leg by width instead of delta: ``width_points`` in underlying points, or
        ``width_pct`` as a decimal fraction of spot (0.01 = 1 %). At most one of the two.
    min_open_interest : float
        Liquidity rule: contracts with less open interest are not used (5; 0: all). See the module
        docstring for why not more on index options.
    max_spread_pct : float or None
        Liquidity rule: largest relative bid/ask spread ``(ask − bid) / mid`` accepted, as a decimal fraction
        of the mid (0.10 = 10 %); None: no limit (then a zero-bid contract may still be bought, never sold).
    min_width_pct : float
        Narrowest structure the risk-budget fit tries, as a decimal fraction of spot (0.002 = 0.2 %: ~10
        points on SPX at 4,700, 1 point on XSP); at least one listed strike apart in any case.
    rate, div_yield : float
        Continuously compounded risk-free rate and dividend yield (decimals) for deltas, greeks, the
        forward and the lognormal drift.
    roots : tuple of str, optional
        Use only these roots, preferred in the order given; None: every root, preferred as below.
    prefer_pm : bool
        With ``roots=None``, at an expiry listed under several roots prefer the PM-settled one (SPXW over
        the AM-settled SPX monthly).
    multiplier : float
        Contract multiplier (100).
    fill_iv_from_mid : bool
        Imply a missing IV from the mid price (with ``rate``, ``div_yield``) instead of skipping the
        contract (False).
    """

    target_dte: int = 45
    dte_tolerance: int = 15
    short_delta: float = 0.30
    long_delta: float = 0.15
    debit_long_delta: float = 0.50
    width_points: float | None = None
    width_pct: float | None = None
    min_open_interest: float = 5.0
    max_spread_pct: float | None = 0.10
    min_width_pct: float = 0.002
    rate: float = 0.0
    div_yield: float = 0.0
    roots: tuple[str, ...] | None = None
    prefer_pm: bool = True
    multiplier: float = 100.0
    fill_iv_from_mid: bool = False

    def __post_init__(self):
        check, s = _PARAM_CHECKS, object.__setattr__
        for field in ("target_dte", "dte_tolerance"):
            s(self, field, check.whole(field, getattr(self, field), lo=0, hi=20_000, unit="calendar days",
                                       integral_floats=True))
        for field in ("short_delta", "long_delta", "debit_long_delta"):
            check.number(field, getattr(self, field), lo=0, hi=1, lo_open=True, hi_open=True, unit="absolute delta")
        check.require(self.long_delta < self.short_delta, "long_delta", self.long_delta,
                      f"must be below short_delta={self.short_delta!r} (the wing is further out)")
        check.require(self.short_delta < self.debit_long_delta, "debit_long_delta", self.debit_long_delta,
                      f"must be above short_delta={self.short_delta!r} (the long leg of a debit spread is "
                      "nearer the money)")
        check.require(self.width_points is None or self.width_pct is None, "width_pct", self.width_pct,
                      "give width_points or width_pct, not both")
        check.number("width_points", self.width_points, lo=0, lo_open=True, optional=True, unit="points")
        check.number("width_pct", self.width_pct, lo=0, hi=1, lo_open=True, hi_open=True, optional=True,
                     unit="decimal fraction of spot: 0.01 = 1%")
        check.number("min_width_pct", self.min_width_pct, lo=0, hi=1, hi_open=True,
                     unit="decimal fraction of spot: 0.002 = 0.2%")
        check.number("min_open_interest", self.min_open_interest, lo=0, unit="contracts")
        check.number("max_spread_pct", self.max_spread_pct, lo=0, lo_open=True, optional=True,
                     unit="decimal fraction of the mid: 0.5 = 50%")
        for field in ("rate", "div_yield"):
            check.number(field, getattr(self, field), lo=-1, hi=1, unit="decimal rate: 0.05 = 5%")
        if self.roots is not None:
            raw = (self.roots,) if isinstance(self.roots, str) else self.roots
            check.require(isinstance(raw, Sequence) and bool(raw)
                          and all(isinstance(r, str) and r.strip() for r in raw), "roots", self.roots,
                          "must be a non-empty tuple of root symbols (strings) or None")
            s(self, "roots", tuple(r.strip().upper() for r in raw))
        for field in ("prefer_pm", "fill_iv_from_mid"):
            check.flag(field, getattr(self, field))
        check.number("multiplier", self.multiplier, lo=0, lo_open=True, unit="shares per contract")

    @property
    def config(self) -> gex.GexConfig:
        """The :class:`~research_lib.gex.GexConfig` whose day count gives ``T``."""
        return gex.GexConfig.model(rate=float(self.rate), div_yield=float(self.div_yield))

    @property
    def by_width(self) -> bool:
        """True when the far leg is chosen by width rather than delta."""
        return self.width_points is not None or self.width_pct is not None

    def width_for(self, spot: float) -> float | None:
        """The far leg's distance in points (None when chosen by delta)."""
        if self.width_points is not None:
            return float(self.width_points)
        if self.width_pct is not None:
            return float(self.width_pct) * spot
        return None

    def to_dict(self) -> dict:
        """JSON-ready: every field."""
        d = dataclasses.asdict(self)
        d["roots"] = None if self.roots is None else list(self.roots)
        return d


# --------------------------------------------------------------------------------------------------
# results


@dataclasses.dataclass(frozen=True)
class Leg:
    """One option of a position.

    Attributes
    ----------
    root, expiration, settlement, strike, right
        The contract (``expiration`` a :class:`datetime.date`; ``right`` ``"C"``/``"P"``).
    side : int
        +1 long (bought), −1 short (sold).
    quantity : int
        Contracts per one unit of the position (1 for every structure here).
    bid, ask, mid : float
        Quotes per share; ``mid = (bid + ask) / 2``.
    iv : float
        The contract's implied volatility (decimal): the vendor's, or implied from the mid when
        ``fill_iv_from_mid`` filled it.
    delta, gamma : float
        Model delta (per 1 point, calls > 0, puts < 0) and gamma (per point) at ``iv``, per share, long one.
    vega : float
        Per share per vol point (0.01 of IV), long one option.
    theta : float
        Per share per calendar day, long one option.
    open_interest : float
        Contracts open.
    """

    root: str
    expiration: dt.date
    settlement: str
    strike: float
    right: str
    side: int
    quantity: int
    bid: float
    ask: float
    mid: float
    iv: float
    delta: float
    gamma: float
    vega: float
    theta: float
    open_interest: float

    @property
    def natural(self) -> float:
        """The price this leg fills at naturally: the ask when buying, the bid when selling."""
        return self.ask if self.side > 0 else self.bid

    @property
    def is_call(self) -> bool:
        return self.right == "C"

    @property
    def label(self) -> str:
        """``"-1 SPXW 2024-02-16 4600P"``."""
        return f"{self.side * self.quantity:+d} {self.root} {self.expiration:%Y-%m-%d} {self.strike:g}{self.right}"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["expiration"] = self.expiration.isoformat()
        return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in d.items()}


@dataclasses.dataclass(frozen=True)
class PositionGreeks:
    """Greeks of one unit of a position (every leg × its side × quantity × the multiplier).

    Attributes
    ----------
    delta : share equivalents: dollars of P&L per 1-point move of the underlying
    gamma : change of ``delta`` per 1-point move
    vega : dollars per vol point (0.01 of IV, every leg's IV moving together)
    theta : dollars per calendar day of time passing
    """

    delta: float
    gamma: float
    vega: float
    theta: float


@dataclasses.dataclass(frozen=True)
class PayoffStats:
    """The payoff of a position at one premium (see :func:`payoff_stats`).

    Attributes
    ----------
    premium : float
        Per share; positive = credit received, negative = debit paid.
    max_profit, max_loss : float
        Dollars per contract; ``max_loss`` is the (positive) amount that can be lost. ``inf`` when unbounded.
    breakevens : tuple of float
        Underlying prices at expiry where the P&L is zero, ascending.
    pop : float
        Probability that the P&L at expiry is > 0, in [0, 1].
    expected_value : float
        Expected P&L at expiry in dollars per contract (undiscounted).
    """

    premium: float
    max_profit: float
    max_loss: float
    breakevens: tuple[float, ...]
    pop: float
    expected_value: float


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


@dataclasses.dataclass(frozen=True)
class LiquidityReport:
    """What the liquidity rules removed among the contracts a structure could use.

    Counted over the rights the structure needs (puts, calls or both) at the chosen expiry and root. A
    contract failing several rules is counted once, under the first that applies (see the module
    docstring).

    Attributes
    ----------
    where : str
        ``"SPXW 2022-07-22 puts"``.
    considered : int
        Contracts of those rights at that expiry and root.
    usable : int
        Contracts that pass every rule (any leg); ``usable_to_sell`` of them have a bid > 0.
    usable_to_sell : int
    open_interest : int
        Removed by ``min_open_interest`` (open interest below it).
    spread : int
        Removed by ``max_spread_pct`` (relative spread above it).
    no_bid : int
        Removed for having no bid (zero or missing; with a spread limit a zero bid is also too wide).
    data : int
        Not usable for a data reason: expired, no ask, crossed quotes, no implied volatility.
    min_open_interest, max_spread_pct : float or None
        The rules applied.
    """

    where: str
    considered: int
    usable: int
    usable_to_sell: int
    open_interest: int
    spread: int
    no_bid: int
    data: int
    min_open_interest: float
    max_spread_pct: float | None

    def summary(self) -> str:
        """``"liquidity at SPXW 2022-07-22 puts: 181 contracts, 120 usable (118 with a bid to sell);
        removed 40 with open interest < 10, 3 with a bid/ask spread > 10% of mid, 15 without a bid; 3 with
        bad data"``."""
        removed = [f"{self.open_interest} with open interest < {self.min_open_interest:g}",
                   f"{self.spread} with a bid/ask spread > "
                   + ("(no limit)" if self.max_spread_pct is None else f"{self.max_spread_pct:.0%} of mid"),
                   f"{self.no_bid} without a bid"]
        text = (f"liquidity at {self.where}: {self.considered} contracts, {self.usable} usable "
                f"({self.usable_to_sell} with a bid to sell); removed {', '.join(removed)}")
        if self.data:
            text += f"; {self.data} with bad data (expired, no ask, crossed or no IV)"
        return text

    def to_dict(self) -> dict:
        """JSON-ready."""
        return dataclasses.asdict(self)


def _liquidity_report(rows: pd.DataFrame, params: StrategyParams, where: str) -> LiquidityReport:
    problem = rows["problem"]
    return LiquidityReport(
        where=where, considered=len(rows), usable=int(rows["usable"].sum()),
        usable_to_sell=int((rows["usable"] & (rows["bid"] > 0)).sum()),
        open_interest=int((problem == "low_oi").sum()), spread=int((problem == "wide").sum()),
        no_bid=int((problem == "no_bid").sum()),
        data=int(problem.isin(["expired", "no_ask", "crossed", "no_iv"]).sum()),
        min_open_interest=float(params.min_open_interest),
        max_spread_pct=None if params.max_spread_pct is None else float(params.max_spread_pct))


def premium_text(credit_mid: float, credit_natural: float) -> str:
    """``"debit 41.55 mid / 42.00 natural"``: each premium as a magnitude after the word giving its sign
    (``credit`` received, ``debit`` paid); the word is repeated only when the natural price has the other
    sign (``"credit 0.05 mid / debit 0.10 natural"``). Per share."""
    def word(x: float) -> str:
        return "credit" if x >= 0 else "debit"

    mid_w, nat_w = word(credit_mid), word(credit_natural)
    nat = f"{abs(credit_natural):.2f} natural" if nat_w == mid_w else f"{nat_w} {abs(credit_natural):.2f} natural"
    return f"{mid_w} {abs(credit_mid):.2f} mid / {nat}"


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
        """JSON-ready (dates as ISO strings, legs as a list of dicts)."""
        return {
            "valid": True,
            "kind": str(self.kind),
            "underlying": self.underlying,
            "spot": self.spot,
            "valuation_time": self.valuation_time.isoformat(),
            "expiration": self.expiration.isoformat(),
            "dte": self.dte,
            "T": self.T,
            "legs": [leg.to_dict() for leg in self.legs],
            "credit_mid": self.credit_mid,
            "credit_natural": self.credit_natural,
            "width": self.width,
            "max_profit": self.max_profit,
            "max_loss": self.max_loss,
            "breakevens": list(self.breakevens),
            "pop": self.pop,
            "expected_value": self.expected_value,
            "sigma": self.sigma,
            "greeks": dataclasses.asdict(self.greeks),
            "natural": {**dataclasses.asdict(self.natural), "breakevens": list(self.natural.breakevens)},
            "reason": self.reason,
            "source": self.source,
            "params": self.params.to_dict(),
            "liquidity": None if self.liquidity is None else self.liquidity.to_dict(),
            "risk_budget": self.risk_budget,
            "budget_note": self.budget_note,
        }

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
        """JSON-ready."""
        return {"valid": False, "kind": str(self.kind), "underlying": self.underlying, "reason": self.reason,
                "code": self.code, "expiration": None if self.expiration is None else self.expiration.isoformat(),
                "source": self.source, "liquidity": None if self.liquidity is None else self.liquidity.to_dict(),
                "risk_budget": self.risk_budget, "min_max_loss": self.min_max_loss,
                "candidates": [list(c) for c in self.candidates]}

    def summary(self) -> str:
        text = f"no valid {self.kind.label} on {self.underlying}: {self.reason}"
        if self.liquidity is not None:
            text += f"\n  {self.liquidity.summary()}"
        return text

    def __str__(self) -> str:
        return self.summary()


# --------------------------------------------------------------------------------------------------
# payoff at expiry


def _leg_arrays(legs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not legs:
        raise StrategyError("a position needs at least one leg")
    try:
        K = np.array([float(leg.strike) for leg in legs])
        is_call = np.array([str(leg.right).upper() == "C" for leg in legs])
        w = np.array([float(leg.side) * float(leg.quantity) for leg in legs])
    except AttributeError as exc:
        raise StrategyError(f"legs need strike, right, side and quantity ({exc})") from exc
    if not (np.isfinite(K).all() and (K > 0).all() and np.isfinite(w).all()):
        raise StrategyError("legs need positive finite strikes and finite sides/quantities")
    return K, is_call, w


def expiry_payoff(legs: Sequence[Any], prices: Any, premium: float) -> np.ndarray:
    """P&L per share at expiry when the underlying settles at ``prices``.

    ``premium + Σ side × quantity × intrinsic(leg, price)`` (premium positive = credit received).
    ``legs`` are :class:`Leg` objects or anything with ``strike``, ``right``, ``side`` and ``quantity``.
    Vectorised over ``prices`` (returns an array of its shape).
    """
    K, is_call, w = _leg_arrays(legs)
    x = np.asarray(prices, dtype=float)[..., None]
    intrinsic = np.where(is_call, np.maximum(x - K, 0.0), np.maximum(K - x, 0.0))
    return premium + (intrinsic * w).sum(axis=-1)


def payoff_stats(legs: Sequence[Any], premium: float, *, spot: float, T: float, sigma: float,
                 rate: float = 0.0, div_yield: float = 0.0, multiplier: float = 100.0) -> PayoffStats:
    """Max profit and loss, breakevens, probability of profit and expected value at expiry, in closed form.

    The P&L at expiry (:func:`expiry_payoff`) is piecewise linear in the settlement price with kinks at
    the strikes, so its extremes are at ``0``, the strikes or infinity, its zeros are found exactly
    segment by segment, and ``P(P&L > 0)`` is a sum of lognormal interval probabilities
    ``N(z(b)) − N(z(a))`` with ``z(x) = (ln(x / S) − (r − q − σ²/2) T) / (σ √T)``. The expected payoff
    of each leg is its undiscounted Black-Scholes value ``price × e^{rT}`` at ``sigma``.

    Parameters
    ----------
    legs : sequence of Leg (or objects with strike, right, side, quantity)
    premium : float
        Per share, positive = credit received.
    spot, T, sigma : float
        Spot, years to expiry and the lognormal's volatility (all > 0).
    rate, div_yield : float
        The drift is ``rate − div_yield``.
    multiplier : float
        Dollars per point per contract.

    Returns
    -------
    PayoffStats
        Dollar figures per contract; ``expected_value`` undiscounted (see the module docstring).

    Raises
    ------
    StrategyError
        Non-finite or non-positive ``spot``, ``T``, ``sigma``; no legs; a non-finite premium.
    """
    for name, v in (("spot", spot), ("T", T), ("sigma", sigma), ("multiplier", multiplier)):
        if not _finite_number(v) or v <= 0:
            raise StrategyError(f"payoff_stats: {name} must be a positive finite number, got {v!r}")
    for name, v in (("premium", premium), ("rate", rate), ("div_yield", div_yield)):
        if not _finite_number(v):
            raise StrategyError(f"payoff_stats: {name} must be a finite number, got {v!r}")
    K, is_call, w = _leg_arrays(legs)
    nodes = np.concatenate([[0.0], np.unique(K)])
    values = expiry_payoff(legs, nodes, premium)
    slope = float(w[is_call].sum())  # beyond the highest strike
    last_x, last_v = float(nodes[-1]), float(values[-1])

    max_profit = math.inf if slope > 0 else float(values.max())
    max_loss = math.inf if slope < 0 else -float(values.min())

    # zeros: the nodes, plus a far point on the tail, scanned for sign changes
    far = last_x + (abs(last_v) / abs(slope) + 1.0 if slope else 1.0)
    xs = np.append(nodes, far)
    vs = np.append(values, last_v + slope * (far - last_x))
    breakevens: list[float] = []
    prev = None  # index of the last non-zero value
    for i, v in enumerate(vs):
        if v == 0:
            continue
        if prev is not None and (vs[prev] > 0) != (v > 0):
            if i == prev + 1:
                a, b, va = xs[prev], xs[i], vs[prev]
                breakevens.append(float(a + (b - a) * va / (va - v)))
            else:  # the P&L touches zero at a node (or along a flat stretch): take the first zero node
                breakevens.append(float(xs[prev + 1]))
        prev = i

    r, q = float(rate), float(div_yield)
    drift = (r - q - 0.5 * sigma * sigma) * T
    vol = sigma * math.sqrt(T)

    def cdf(x: float) -> float:
        if x <= 0:
            return 0.0
        if math.isinf(x):
            return 1.0
        return float(ndtr((math.log(x / spot) - drift) / vol))

    pop = 0.0
    for a, b, va, vb in zip(nodes[:-1], nodes[1:], values[:-1], values[1:], strict=True):
        if va > 0 and vb > 0:
            pop += cdf(b) - cdf(a)
        elif va > 0 or vb > 0:
            root = a + (b - a) * va / (va - vb)
            pop += cdf(root) - cdf(a) if va > 0 else cdf(b) - cdf(root)
    if last_v > 0:
        pop += 1.0 - cdf(last_x) if slope >= 0 else cdf(last_x + last_v / -slope) - cdf(last_x)
    elif slope > 0:
        pop += 1.0 - cdf(last_x - last_v / slope)
    pop = min(max(pop, 0.0), 1.0)

    undiscounted = pricing.price(spot, K, T, sigma, r, q, is_call) * math.exp(r * T)
    expected = premium + float((w * undiscounted).sum())
    return PayoffStats(premium=float(premium), max_profit=max_profit * multiplier,
                       max_loss=max_loss * multiplier, breakevens=tuple(sorted(breakevens)), pop=float(pop),
                       expected_value=expected * multiplier)


# --------------------------------------------------------------------------------------------------
# candidates

#: Columns of :func:`leg_candidates`.
CANDIDATE_COLUMNS = ("root", "expiration", "settlement", "strike", "right", "bid", "ask", "mid", "iv",
                     "iv_source", "open_interest", "dte", "T", "delta", "gamma", "vega", "theta", "usable",
                     "problem")

_PROBLEM_WORDS = {
    "expired": "expired",
    "no_ask": "without an ask",
    "no_bid": "without a bid",
    "crossed": "with crossed quotes (bid > ask)",
    "no_iv": "without an implied volatility",
    "wide": "with a bid/ask spread above the max_spread_pct limit",
    "low_oi": "with open interest below min_open_interest",
}


def _valuation(snapshot: ChainSnapshot, params: StrategyParams) -> pd.Timestamp:
    return gex.valuation_moment(snapshot, params.config)


def leg_candidates(snapshot: ChainSnapshot, params: StrategyParams | None = None, *,
                   expiration: Any = None) -> pd.DataFrame:
    """The contracts leg selection looks at, with model greeks and why any is unusable.

    Parameters
    ----------
    snapshot : ChainSnapshot
    params : StrategyParams, optional
    expiration : date-like, optional
        Only this expiry; default: every expiry whose DTE lies within ``dte_tolerance`` of ``target_dte``.

    Returns
    -------
    DataFrame
        Columns :data:`CANDIDATE_COLUMNS`: the contract fields (only the roots of ``params.roots`` when
        given), ``mid`` per share, ``iv`` (vendor, or implied from the mid when ``fill_iv_from_mid``) and
        ``iv_source`` (``"vendor"``, ``"mid"`` or ``""``), ``dte`` (calendar days), ``T`` (years), model
        ``delta`` and ``gamma`` per point, ``vega`` per vol point and ``theta`` per calendar day (per share,
        long one option; NaN without IV), ``usable`` (bool) and ``problem`` (``""`` when usable, else one
        of ``expired, no_ask, no_bid, crossed, no_iv, wide, low_oi``, the first that applies).
    """
    params = _check_params(params)
    _check_snapshot(snapshot)
    moment = _valuation(snapshot, params)
    today = pd.Timestamp(moment.date())
    c = snapshot.contracts
    dte_all = (c["expiration"] - today).dt.days.to_numpy()
    if expiration is not None:
        try:
            wanted = pd.Timestamp(expiration).normalize()
        except (TypeError, ValueError) as exc:
            raise StrategyError(f"expiration {expiration!r} is not a date") from exc
        keep = (c["expiration"] == wanted).to_numpy()
    else:
        keep = np.abs(dte_all - params.target_dte) <= params.dte_tolerance
    if params.roots is not None:
        keep &= c["root"].isin(params.roots).to_numpy()
    sub = c.loc[keep].reset_index(drop=True)
    out = sub[["root", "expiration", "settlement", "strike", "right", "bid", "ask", "iv", "open_interest"]].copy()
    out["dte"] = dte_all[keep].astype(int)
    if len(sub):
        T = gex.time_to_expiry(dataclasses.replace(snapshot, contracts=sub), params.config)
    else:
        T = np.zeros(0)
    out["T"] = np.asarray(T, dtype=float)
    bid = out["bid"].to_numpy()
    ask = out["ask"].to_numpy()
    with np.errstate(all="ignore"):
        mid = (bid + ask) / 2.0
    out["mid"] = mid
    S, r, q = snapshot.spot, float(params.rate), float(params.div_yield)
    K = out["strike"].to_numpy()
    is_call = (out["right"] == "C").to_numpy()
    live = out["T"].to_numpy() > 0
    quoted = np.isfinite(bid) & np.isfinite(ask) & (ask > 0) & (bid >= 0) & (bid <= ask)
    iv = out["iv"].to_numpy().copy()
    source = np.where(np.isfinite(iv) & (iv > 0), "vendor", "")
    if params.fill_iv_from_mid:
        fill = live & quoted & (source == "")
        if fill.any():
            res = pricing.implied_vol(mid[fill], S, K[fill], out["T"].to_numpy()[fill], r, q, is_call[fill])
            got = np.asarray(res.iv, dtype=float)
            idx = np.flatnonzero(fill)
            ok = np.isfinite(got) & (got > 0)
            iv[idx[ok]] = got[ok]
            source[idx[ok]] = "mid"
    out["iv"] = iv
    out["iv_source"] = source
    has_iv = source != ""
    Tm = np.where(live & has_iv, out["T"].to_numpy(), np.nan)
    g = pricing.greeks(S, K, Tm, iv, r, q, is_call) if len(out) else None
    for name, scale in (("delta", 1.0), ("gamma", 1.0), ("vega", 0.01), ("theta", 1.0 / 365.0)):
        out[name] = np.asarray(getattr(g, name), dtype=float) * scale if g is not None else np.zeros(0)

    with np.errstate(all="ignore"):
        spread = (ask - bid) / mid
    too_wide = np.zeros(len(out), dtype=bool) if params.max_spread_pct is None else ~(spread <= params.max_spread_pct)
    no_bid = ~np.isfinite(bid) | ((bid == 0) & too_wide)
    problem = np.full(len(out), "", dtype=object)
    checks = (
        ("expired", ~live),
        ("no_ask", ~np.isfinite(ask) | ~(ask > 0)),
        ("no_bid", no_bid),
        ("crossed", bid > ask),
        ("no_iv", ~has_iv | ~np.isfinite(out["delta"].to_numpy())),
        ("wide", too_wide),
        ("low_oi", out["open_interest"].to_numpy() < params.min_open_interest),
    )
    for name, mask in checks:
        problem[(problem == "") & mask] = name
    out["problem"] = problem
    out["usable"] = problem == ""
    return out[list(CANDIDATE_COLUMNS)]


# --------------------------------------------------------------------------------------------------
# building


def _check_params(params: Any) -> StrategyParams:
    if params is None:
        return StrategyParams()
    if not isinstance(params, StrategyParams):
        raise StrategyParamsError(f"params must be a StrategyParams, got {type(params).__name__}")
    return params


def _check_snapshot(snapshot: Any) -> None:
    if not isinstance(snapshot, ChainSnapshot):
        raise StrategyError(f"snapshot must be a ChainSnapshot, got {type(snapshot).__name__}")


_RIGHTS_NEEDED = {
    StrategyKind.BULL_PUT_SPREAD: ("P",),
    StrategyKind.BEAR_PUT_SPREAD: ("P",),
    StrategyKind.BEAR_CALL_SPREAD: ("C",),
    StrategyKind.BULL_CALL_SPREAD: ("C",),
    StrategyKind.IRON_CONDOR: ("P", "C"),
}
_RIGHT_WORD = {"P": "puts", "C": "calls"}


class _Fail(Exception):
    """Internal: leg selection failed (becomes a NoValidStrategy)."""

    def __init__(self, code: str, reason: str, **extra: Any):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.expiration: dt.date | None = None
        self.liquidity: LiquidityReport | None = None
        self.extra = extra


def _problem_summary(rows: pd.DataFrame, params: StrategyParams) -> str:
    counts = rows.loc[~rows["usable"], "problem"].value_counts()
    parts = []
    for name, n in counts.items():
        word = _PROBLEM_WORDS[name]
        if name == "wide":
            word = f"with a bid/ask spread above {params.max_spread_pct:.0%} of mid"
        elif name == "low_oi":
            word = f"with open interest below {params.min_open_interest:g}"
        parts.append(f"{n} {word}")
    return "; ".join(parts) if parts else "none unusable"


def _root_order(rows: pd.DataFrame, params: StrategyParams) -> list[str]:
    """Roots present in ``rows`` (one expiry), most preferred first."""
    roots = rows.groupby("root").agg(settlement=("settlement", "first"), n=("usable", "sum"))
    if params.roots is not None:
        return sorted(roots.index, key=lambda r: params.roots.index(r))
    return sorted(roots.index, key=lambda r: ((roots.at[r, "settlement"] != "PM") if params.prefer_pm else False,
                                              -int(roots.at[r, "n"]), r))


def _choose_expiry(cands: pd.DataFrame, snapshot: ChainSnapshot, params: StrategyParams,
                   rights: tuple[str, ...], moment: pd.Timestamp) -> tuple[pd.Timestamp, str, str]:
    """(expiration, root, note) of the expiry nearest the target with usable quotes for ``rights``."""
    window = f"{max(params.target_dte - params.dte_tolerance, 0)}..{params.target_dte + params.dte_tolerance} DTE"
    if cands.empty or not (cands["T"] > 0).any():
        dte = (snapshot.contracts["expiration"] - pd.Timestamp(moment.date())).dt.days
        live = snapshot.contracts.loc[dte >= 0, "expiration"]
        if params.roots is not None:
            live = live[snapshot.contracts.loc[dte >= 0, "root"].isin(params.roots)]
        if live.empty:
            nearest = "the chain has no live expiry" + (f" for roots {list(params.roots)}" if params.roots else "")
        else:
            exps = pd.Series(sorted(live.unique()))
            dtes = (exps - pd.Timestamp(moment.date())).dt.days
            i = int((dtes - params.target_dte).abs().to_numpy().argmin())
            nearest = f"the nearest is {exps[i]:%Y-%m-%d} ({dtes[i]} DTE)"
        raise _Fail("no_expiry", f"no live expiry within {params.dte_tolerance} days of the {params.target_dte}-DTE "
                                 f"target ({window}, counted from {moment:%Y-%m-%d}); {nearest}")
    need = cands[cands["right"].isin(rights)]
    ok_pairs = []
    for (exp, root), rows in need.groupby(["expiration", "root"], sort=True):
        good = True
        for right in rights:
            r_rows = rows[(rows["right"] == right) & rows["usable"]]
            if len(r_rows) < 2 or not (r_rows["bid"] > 0).any():
                good = False
        if good:
            ok_pairs.append((exp, root))
    if not ok_pairs:
        what = " and ".join(_RIGHT_WORD[r] for r in rights)
        n_exp = need["expiration"].nunique()
        raise _Fail("no_quotes", f"no expiry within {window} has usable {what} (two or more usable strikes, one with "
                                 f"a bid, in one root): of {len(need)} {what} at {n_exp} "
                                 f"expir{'y' if n_exp == 1 else 'ies'}, {int(need['usable'].sum())} usable; "
                                 f"{_problem_summary(need, params)}")
    exps = sorted({exp for exp, _ in ok_pairs}, key=lambda e: (abs((e - pd.Timestamp(moment.date())).days
                                                                   - params.target_dte), e))
    exp = exps[0]
    at_exp = cands[cands["expiration"] == exp]
    ok_roots = {root for e, root in ok_pairs if e == exp}
    order = [r for r in _root_order(at_exp, params) if r in ok_roots]
    root = order[0]
    others = sorted(set(at_exp["root"]) - {root})
    note = ""
    if others:
        why = ("roots order given" if params.roots is not None
               else "PM settlement preferred" if params.prefer_pm and at_exp.loc[at_exp["root"] == root,
                                                                                  "settlement"].iloc[0] == "PM"
               else "more usable quotes")
        note = f"; {root} rather than {', '.join(others)} ({why})"
    return exp, root, note


def _nearest(rows: pd.DataFrame, value: np.ndarray, target: float) -> pd.Series:
    """The row whose ``value`` is nearest ``target``; ties go to the row listed first."""
    i = int(np.argmin(np.abs(value - target)))
    return rows.iloc[i]


def _otm_sorted(rows: pd.DataFrame, right: str) -> pd.DataFrame:
    """Rows ordered from the furthest out of the money (puts: ascending strike; calls: descending)."""
    return rows.sort_values("strike", ascending=(right == "P"), kind="stable")


def _beyond(rows: pd.DataFrame, right: str, strike: float) -> pd.DataFrame:
    """Rows strictly further out of the money than ``strike``."""
    return rows[rows["strike"] < strike] if right == "P" else rows[rows["strike"] > strike]


def _pick_vertical(rows: pd.DataFrame, right: str, params: StrategyParams, spot: float, *,
                   debit: bool, where: str) -> tuple[pd.Series, pd.Series, str, pd.DataFrame]:
    """(near leg row, far leg row, description, far-leg pool) of one vertical of ``right`` from usable
    ``rows``; the pool holds every contract that could be the far leg (beyond the near leg)."""
    rows = _otm_sorted(rows[(rows["right"] == right) & rows["usable"]], right)
    word = _RIGHT_WORD[right]
    width = params.width_for(spot)
    if debit:
        near_target, near_role = params.debit_long_delta, "long"
        near_pool = rows
    else:
        near_target, near_role = params.short_delta, "short"
        near_pool = rows[rows["bid"] > 0]
    if near_pool.empty:
        code = "no_long_leg" if debit else "no_short_leg"
        raise _Fail(code, f"no usable {word} {'with a bid ' if not debit else ''}for the {near_role} leg at {where}")
    near = _nearest(near_pool, near_pool["delta"].abs().to_numpy(), near_target)
    far_role = "short" if debit else "long"
    far_pool = _beyond(rows, right, near["strike"])
    if debit:
        far_pool = far_pool[far_pool["bid"] > 0]
    if far_pool.empty:
        raise _Fail("no_short_leg" if debit else "no_long_leg",
                    f"no usable {word}{' with a bid' if debit else ''} beyond the {near_role} {near['strike']:g}"
                    f"{right} for the {far_role} leg at {where}")
    if width is not None:
        target_k = near["strike"] - width if right == "P" else near["strike"] + width
        # ties go to the narrower spread: order the pool from the near leg outward
        pool = far_pool.sort_values("strike", ascending=(right == "C"), kind="stable")
        far = _nearest(pool, pool["strike"].to_numpy(), target_k)
        far_how = f"nearest {width:g} points beyond the {near_role} leg"
    else:
        far_target = params.short_delta if debit else params.long_delta
        far = _nearest(far_pool, far_pool["delta"].abs().to_numpy(), far_target)
        far_how = f"|Δ| target {far_target:.2f}"
    desc = (f"{near_role} {near['strike']:g}{right} Δ{near['delta']:+.3f} (|Δ| target {near_target:.2f}), "
            f"{far_role} {far['strike']:g}{right} Δ{far['delta']:+.3f} ({far_how})")
    return near, far, desc, far_pool


def _leg(row: pd.Series, side: int) -> Leg:
    return Leg(root=str(row["root"]), expiration=pd.Timestamp(row["expiration"]).date(),
               settlement=str(row["settlement"]), strike=float(row["strike"]), right=str(row["right"]), side=side,
               quantity=1, bid=float(row["bid"]), ask=float(row["ask"]), mid=float(row["mid"]),
               iv=float(row["iv"]), delta=float(row["delta"]), gamma=float(row["gamma"]),
               vega=float(row["vega"]), theta=float(row["theta"]), open_interest=float(row["open_interest"]))


def _atm_iv(rows: pd.DataFrame, forward: float) -> float:
    """ATM-forward IV: linear in strike through the out-of-the-money IVs of one expiry and root."""
    have = rows[np.isfinite(rows["iv"]) & (rows["iv"] > 0) & (rows["T"] > 0)]
    otm = have[((have["right"] == "P") & (have["strike"] <= forward))
               | ((have["right"] == "C") & (have["strike"] >= forward))]
    use = otm if len(otm) else have
    smile = use.groupby("strike")["iv"].mean().sort_index()
    return float(np.interp(forward, smile.index.to_numpy(), smile.to_numpy()))


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
        structure is narrowed until one contract's max loss fits (module docstring, "Risk budget"), or a
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
    """Dollars per contract at ``credit`` (per share, + received): the closed form of the module docstring."""
    return (width - credit) * multiplier if kind.is_credit else -credit * multiplier


def _fit_budget(kind: StrategyKind, sides: list[tuple[pd.Series, pd.Series, pd.DataFrame]], where: str,
                params: StrategyParams, spot: float, budget: float, full_loss: float, full_width: float,
                ) -> tuple[list[tuple[pd.Series, pd.Series]], str]:
    """The widest (near, far) pairs whose max loss per contract fits ``budget`` (module docstring)."""
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
