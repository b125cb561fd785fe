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

# the subpackage, one job a module (lowest first): select (kind and choice), params (StrategyParams and its
# checks), legs (candidates, liquidity, leg selection), payoff (pricing a structure), build (build_strategy
# and its results). Every public name is re-exported here: ``research_lib.strategy.X`` keeps working.
from research_lib.core.strategy.build import (
    SMALLER_UNDERLYINGS as SMALLER_UNDERLYINGS,
    NoValidStrategy as NoValidStrategy,
    StrategyResult as StrategyResult,
    build_strategy as build_strategy,
    strategy_for as strategy_for,
)
from research_lib.core.strategy.legs import (
    CANDIDATE_COLUMNS as CANDIDATE_COLUMNS,
    Leg as Leg,
    LiquidityReport as LiquidityReport,
    leg_candidates as leg_candidates,
)
from research_lib.core.strategy.params import StrategyParams as StrategyParams
from research_lib.core.strategy.payoff import (
    PayoffStats as PayoffStats,
    PositionGreeks as PositionGreeks,
    expiry_payoff as expiry_payoff,
    payoff_stats as payoff_stats,
    premium_text as premium_text,
)
from research_lib.core.strategy.select import (
    ACTIONS as ACTIONS,
    TRENDS as TRENDS,
    StrategyChoice as StrategyChoice,
    StrategyKind as StrategyKind,
    select_strategy as select_strategy,
)
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
    "premium_text",
    "select_strategy",
    "strategy_for",
]
