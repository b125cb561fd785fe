"""Core: YES/NO edges of binary prediction markets, per market and per multi-outcome event (pure, vectorised).

A binary market has a YES and a NO token; one YES plus one NO is always worth exactly $1 (the venue splits
$1 into the pair and merges the pair back into $1). Two edges follow:

- **buy both**: ``1 − (ask_YES + ask_NO)`` — buy one of each at the asks, merge for $1;
- **sell both**: ``bid_YES + bid_NO − 1`` — split $1 into the pair, sell each at the bids.

In a multi-outcome (neg-risk) event, one YES per outcome and exactly one outcome resolves YES, so the same
edges hold on the sums of the outcomes' YES prices: ``1 − Σ ask_YES`` and ``Σ bid_YES − 1``.

Conventions (every function of this module)
-------------------------------------------
- Prices are dollars per share of a $1 payoff (probabilities, in [0, 1]); sizes are shares; NaN is "no order
  resting on that side", never a zero.
- **Fees** are the taker fee per share of each leg at its price ``p``:
  ``fee_rate × (p × (1 − p)) ** fee_exponent`` — the venue's platform fee formula (Polymarket, "Trading fees":
  ``fee = C × feeRate × (p(1 − p))^exponent`` for ``C`` shares); ``fee_rate = 0`` (the default, most markets)
  charges nothing. A buy leg costs ``ask + fee(ask)``, a sell leg brings ``bid − fee(bid)``.
- **Ticks**, against us: a net edge is *floored* to a whole number of ticks (an edge of 0.7 tick counts as 0, a
  loss of 0.2 tick as −1 tick), and a NO price derived from the YES book is rounded to the tick away from us
  (a NO ask up, a NO bid down). A tiny tolerance (1e-9 tick) keeps binary floating point from costing a tick
  (``(1 − (0.01 + 0.05)) / 0.01`` is 93.99999999999999 in binary floating point: 94 ticks, not 93).
- An edge is **positive after costs** when it is at least one tick after the fees and the floor; the ``*_arb``
  flags say so. An edge is NaN when a price it needs is missing (no ask on a leg), and its flag is False.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from research_lib.errors import BinaryParamsError, BinaryQuoteError

#: Tolerance, in ticks, of :func:`floor_to_tick` and :func:`ceil_to_tick` against binary floating point.
TICK_TOLERANCE = 1e-9

#: The columns :func:`market_edges` adds (the input's columns are kept in front of them).
MARKET_EDGE_COLUMNS = ("no_bid", "no_ask", "no_bid_size", "no_ask_size", "no_derived", "crossed", "yes_spread",
                       "no_spread", "buy_cost", "sell_proceeds", "buy_edge", "sell_edge", "buy_size", "sell_size",
                       "buy_arb", "sell_arb")

#: The columns :func:`event_edges` returns after the group keys.
EVENT_EDGE_COLUMNS = ("n_quoted", "n_outcomes", "complete", "sum_ask", "sum_bid", "buy_cost", "sell_proceeds",
                      "buy_edge", "sell_edge", "buy_size", "sell_size", "buy_arb", "sell_arb")


# ----------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------
def check_costs(*, fee_rate: float, fee_exponent: float, tick) -> None:
    """Raise :class:`BinaryParamsError` unless ``fee_rate >= 0``, ``fee_exponent > 0`` and every tick is in (0, 1).

    ``tick`` may be a number or an array (one tick per row).
    """
    if not np.isfinite(fee_rate) or fee_rate < 0:
        raise BinaryParamsError("the fee rate must be a finite number >= 0", where="binary edges",
                                example=fee_rate)
    if not np.isfinite(fee_exponent) or fee_exponent <= 0:
        raise BinaryParamsError("the fee exponent must be a finite number > 0", where="binary edges",
                                example=fee_exponent)
    t = np.asarray(tick, dtype=float)
    bad = ~((t > 0) & (t < 1))
    if bad.any():
        raise BinaryParamsError("a tick must be in (0, 1)", where="binary edges", column="tick",
                                n_bad=int(bad.sum()), example=float(t[bad].flat[0]))


def taker_fee(price, *, fee_rate: float = 0.0, fee_exponent: float = 1.0) -> np.ndarray:
    """Taker fee per share, dollars, of a fill at ``price``: ``fee_rate × (p (1 − p)) ** fee_exponent``.

    Parameters
    ----------
    price : array-like of float
        Prices in [0, 1]; NaN gives NaN (no fill, no fee).
    fee_rate : float, default 0
        The market's fee rate (0.02 is the venue's 2%); 0 charges nothing.
    fee_exponent : float, default 1
        The formula's exponent (the venue publishes it per market; 1 for most).

    Returns
    -------
    numpy.ndarray
        Fee per share, largest at p = 0.5 (``fee_rate / 4`` with exponent 1), zero at 0 and 1.
    """
    p = np.asarray(price, dtype=float)
    if fee_rate == 0:
        return np.where(np.isnan(p), np.nan, 0.0)
    return fee_rate * (p * (1.0 - p)) ** fee_exponent


def floor_to_tick(x, tick) -> np.ndarray:
    """``x`` rounded down to a whole number of ticks (toward −inf), within :data:`TICK_TOLERANCE` of a tick.

    Parameters
    ----------
    x : array-like of float
        Dollar amounts (an edge); NaN stays NaN.
    tick : float or array-like of float
        The tick, dollars, broadcast against ``x``.
    """
    x = np.asarray(x, dtype=float)
    tick = np.asarray(tick, dtype=float)
    return np.floor(x / tick + TICK_TOLERANCE) * tick


def ceil_to_tick(x, tick) -> np.ndarray:
    """``x`` rounded up to a whole number of ticks (toward +inf), within :data:`TICK_TOLERANCE` of a tick."""
    x = np.asarray(x, dtype=float)
    tick = np.asarray(tick, dtype=float)
    return np.ceil(x / tick - TICK_TOLERANCE) * tick


def net_edges(buy_cost, sell_proceeds, tick) -> tuple[np.ndarray, np.ndarray]:
    """The buy-all and sell-all edges from the fee-inclusive totals, floored to the tick.

    Parameters
    ----------
    buy_cost : array-like of float
        Σ (ask + fee(ask)) over the legs that together pay $1 (YES and NO, or every outcome's YES).
    sell_proceeds : array-like of float
        Σ (bid − fee(bid)) over the same legs.
    tick : float or array-like of float
        The tick the edges are floored to.

    Returns
    -------
    (buy_edge, sell_edge) : tuple of numpy.ndarray
        ``floor_tick(1 − buy_cost)`` and ``floor_tick(sell_proceeds − 1)``, dollars per set of legs.
    """
    return (floor_to_tick(1.0 - np.asarray(buy_cost, dtype=float), tick),
            floor_to_tick(np.asarray(sell_proceeds, dtype=float) - 1.0, tick))


def _edge_flags(edge: np.ndarray, tick) -> np.ndarray:
    """True where an (already floored) edge is at least one tick; NaN is False."""
    with np.errstate(invalid="ignore"):
        return np.asarray(edge >= np.asarray(tick, dtype=float) * (1 - TICK_TOLERANCE))


def _float_column(frame: pd.DataFrame, name: str, *, where: str, required: bool) -> np.ndarray:
    if name not in frame.columns:
        if required:
            raise BinaryQuoteError("a required column is missing", where=where, column=name,
                                   example=list(frame.columns)[:8])
        return np.full(len(frame), np.nan)
    try:
        values = pd.to_numeric(frame[name], errors="raise").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise BinaryQuoteError(f"the column is not numeric ({exc})", where=where, column=name) from None
    return values


def _check_prices(values: np.ndarray, name: str, where: str) -> None:
    with np.errstate(invalid="ignore"):
        bad = ~np.isnan(values) & ~((values >= 0) & (values <= 1))
    if bad.any():
        raise BinaryQuoteError("a price is outside [0, 1] (or infinite)", where=where, column=name,
                               n_bad=int(bad.sum()), example=float(values[bad][0]))


def _check_sizes(values: np.ndarray, name: str, where: str) -> None:
    with np.errstate(invalid="ignore"):
        bad = ~np.isnan(values) & ~((values >= 0) & np.isfinite(values))
    if bad.any():
        raise BinaryQuoteError("a size is negative or infinite", where=where, column=name,
                               n_bad=int(bad.sum()), example=float(values[bad][0]))


def _tick_values(frame: pd.DataFrame, tick: float, where: str) -> np.ndarray | float:
    """The ``tick`` column when the frame has one (a row's NaN takes the scalar), else the scalar."""
    if "tick" not in frame.columns:
        return tick
    col = _float_column(frame, "tick", where=where, required=True)
    return np.where(np.isnan(col), tick, col)


# ----------------------------------------------------------------------------------------------------
# One binary market
# ----------------------------------------------------------------------------------------------------
def market_edges(quotes: pd.DataFrame, *, fee_rate: float = 0.0, fee_exponent: float = 1.0,
                 tick: float = 0.01) -> pd.DataFrame:
    """YES/NO best prices, spreads and the buy-both / sell-both edges of binary markets, one row per quote.

    Parameters
    ----------
    quotes : pandas.DataFrame
        One row per market and time. Required: ``yes_bid``, ``yes_ask`` (the YES token's best prices, NaN for
        an empty side). Optional: ``yes_bid_size``, ``yes_ask_size`` (shares at those prices), ``no_bid``,
        ``no_ask``, ``no_bid_size``, ``no_ask_size`` (the NO token's own book) and ``tick`` (the market's tick,
        NaN takes ``tick``). Any other column (``market``, ``ts`` ...) is kept as it is.
    fee_rate, fee_exponent : float
        The taker fee of every leg (module docstring); 0 by default.
    tick : float, default 0.01
        The tick when the frame has no ``tick`` column.

    Returns
    -------
    pandas.DataFrame
        The input's columns, then :data:`MARKET_EDGE_COLUMNS`:

        - ``no_bid``, ``no_ask`` (+ sizes): the NO token's book, or, on a row with neither NO price (the NO
          token not subscribed), derived from the YES book: NO ask = 1 − YES bid (size: the YES bid's),
          NO bid = 1 − YES ask (size: the YES ask's), rounded to the tick against us; ``no_derived`` is True
          on those rows. A derived NO makes the buy-both edge ``bid_YES − ask_YES`` (minus the YES spread),
          never positive on an uncrossed book, as it must be.
        - ``crossed``: a token's bid above its ask (two sides read at different moments); the edges are still
          computed, so a reader can filter.
        - ``yes_spread``, ``no_spread``: ask − bid.
        - ``buy_cost`` = ask_YES + ask_NO + their fees, ``sell_proceeds`` = bid_YES + bid_NO − their fees.
        - ``buy_edge`` = floor_tick(1 − buy_cost), ``sell_edge`` = floor_tick(sell_proceeds − 1), dollars per
          pair; NaN when a needed side is empty.
        - ``buy_size`` = min(ask sizes), ``sell_size`` = min(bid sizes): the pairs available at those prices
          (the shallower side); NaN when a size is unknown.
        - ``buy_arb``, ``sell_arb``: the edge is at least one tick after costs.

    Raises
    ------
    BinaryQuoteError
        A required column is missing or not numeric, a price is outside [0, 1], a size negative.
    BinaryParamsError
        A fee parameter or tick is impossible.
    """
    where = "market_edges"
    check_costs(fee_rate=fee_rate, fee_exponent=fee_exponent, tick=tick)
    cols = {name: _float_column(quotes, name, where=where, required=name in ("yes_bid", "yes_ask"))
            for name in ("yes_bid", "yes_ask", "yes_bid_size", "yes_ask_size", "no_bid", "no_ask", "no_bid_size",
                         "no_ask_size")}
    for name, values in cols.items():
        (_check_sizes if name.endswith("_size") else _check_prices)(values, name, where)
    tk = _tick_values(quotes, tick, where)
    check_costs(fee_rate=fee_rate, fee_exponent=fee_exponent, tick=tk)

    derived = np.isnan(cols["no_bid"]) & np.isnan(cols["no_ask"])
    no_ask = np.where(derived, ceil_to_tick(1.0 - cols["yes_bid"], tk), cols["no_ask"])
    no_bid = np.where(derived, floor_to_tick(1.0 - cols["yes_ask"], tk), cols["no_bid"])
    no_ask_size = np.where(derived, cols["yes_bid_size"], cols["no_ask_size"])
    no_bid_size = np.where(derived, cols["yes_ask_size"], cols["no_bid_size"])
    yes_bid, yes_ask = cols["yes_bid"], cols["yes_ask"]

    fee = {"fee_rate": fee_rate, "fee_exponent": fee_exponent}
    buy_cost = yes_ask + taker_fee(yes_ask, **fee) + no_ask + taker_fee(no_ask, **fee)
    sell_proceeds = yes_bid - taker_fee(yes_bid, **fee) + no_bid - taker_fee(no_bid, **fee)
    buy_edge, sell_edge = net_edges(buy_cost, sell_proceeds, tk)
    with np.errstate(invalid="ignore"):
        crossed = (yes_bid > yes_ask) | (no_bid > no_ask)

    out = quotes.copy()
    out["no_bid"], out["no_ask"] = no_bid, no_ask
    out["no_bid_size"], out["no_ask_size"] = no_bid_size, no_ask_size
    out["no_derived"] = derived
    out["crossed"] = crossed
    out["yes_spread"] = yes_ask - yes_bid
    out["no_spread"] = no_ask - no_bid
    out["buy_cost"], out["sell_proceeds"] = buy_cost, sell_proceeds
    out["buy_edge"], out["sell_edge"] = buy_edge, sell_edge
    out["buy_size"] = np.minimum(cols["yes_ask_size"], no_ask_size)  # NaN unless both legs' sizes are known
    out["sell_size"] = np.minimum(cols["yes_bid_size"], no_bid_size)
    out["buy_arb"] = _edge_flags(buy_edge, tk)
    out["sell_arb"] = _edge_flags(sell_edge, tk)
    return out


# ----------------------------------------------------------------------------------------------------
# Multi-outcome events
# ----------------------------------------------------------------------------------------------------
def event_edges(quotes: pd.DataFrame, *, by: str | list[str] = "event", n_outcomes: Mapping | pd.Series | None = None,
                fee_rate: float = 0.0, fee_exponent: float = 1.0, tick: float = 0.01) -> pd.DataFrame:
    """The buy-all and sell-all edges of multi-outcome events on the sums of their outcomes' YES prices.

    Parameters
    ----------
    quotes : pandas.DataFrame
        One row per outcome (its YES token) and group: the ``by`` columns (the event, and a time when the frame
        holds several), ``yes_bid``, ``yes_ask``; optional ``yes_bid_size``, ``yes_ask_size``, ``tick`` and
        ``outcome`` (when present, an outcome twice in one group is an error).
    by : str or list of str, default "event"
        The group keys; the first is the event (the key of ``n_outcomes``).
    n_outcomes : mapping or Series, optional
        Event -> how many outcomes it has. A group with fewer rows is incomplete: its edges are NaN and
        ``complete`` False (an outcome without a quote could be the winner, so no edge is known). Without it,
        the rows present are taken to be every outcome.
    fee_rate, fee_exponent, tick : float
        As in :func:`market_edges`; a group's tick is the largest of its outcomes' (the coarser grid, against us).

    Returns
    -------
    pandas.DataFrame
        One row per group, sorted by the keys: the ``by`` columns, then :data:`EVENT_EDGE_COLUMNS`:
        ``n_quoted`` (rows), ``n_outcomes``, ``complete``, ``sum_ask`` / ``sum_bid`` (Σ YES asks / bids, NaN when
        an outcome lacks that side), ``buy_cost`` = Σ(ask + fee), ``sell_proceeds`` = Σ(bid − fee),
        ``buy_edge`` = floor_tick(1 − buy_cost), ``sell_edge`` = floor_tick(sell_proceeds − 1) (dollars per set of
        one share of every outcome), ``buy_size`` / ``sell_size`` (the smallest size over the outcomes: the sets
        available at those prices; NaN when one is unknown), ``buy_arb`` / ``sell_arb`` (at least one tick).

    Raises
    ------
    BinaryQuoteError
        A missing column, a price outside [0, 1], a negative size, an outcome twice in a group.
    """
    where = "event_edges"
    keys = [by] if isinstance(by, str) else list(by)
    check_costs(fee_rate=fee_rate, fee_exponent=fee_exponent, tick=tick)
    for k in keys:
        if k not in quotes.columns:
            raise BinaryQuoteError("a group column is missing", where=where, column=k, example=list(quotes.columns)[:8])
    if "outcome" in quotes.columns:
        dup = quotes.duplicated(keys + ["outcome"], keep=False)
        if dup.any():
            raise BinaryQuoteError("an outcome is listed twice in one event and time", where=where, column="outcome",
                                   n_bad=int(dup.sum()), example=quotes.loc[dup, "outcome"].iloc[0])
    bid = _float_column(quotes, "yes_bid", where=where, required=True)
    ask = _float_column(quotes, "yes_ask", where=where, required=True)
    bid_size = _float_column(quotes, "yes_bid_size", where=where, required=False)
    ask_size = _float_column(quotes, "yes_ask_size", where=where, required=False)
    for name, values in (("yes_bid", bid), ("yes_ask", ask)):
        _check_prices(values, name, where)
    for name, values in (("yes_bid_size", bid_size), ("yes_ask_size", ask_size)):
        _check_sizes(values, name, where)
    tk = np.broadcast_to(np.asarray(_tick_values(quotes, tick, where), dtype=float), (len(quotes),))
    check_costs(fee_rate=fee_rate, fee_exponent=fee_exponent, tick=tk)

    fee = {"fee_rate": fee_rate, "fee_exponent": fee_exponent}
    work = quotes[keys].copy()
    work["_ask"], work["_bid"] = ask, bid
    work["_cost"] = ask + taker_fee(ask, **fee)
    work["_proceeds"] = bid - taker_fee(bid, **fee)
    work["_ask_size"], work["_bid_size"] = ask_size, bid_size
    work["_tick"] = tk
    g = work.groupby(keys, sort=True, dropna=False)
    n_quoted = g.size()
    counts = g[["_ask", "_bid", "_ask_size", "_bid_size"]].count()
    sums = g[["_ask", "_bid", "_cost", "_proceeds"]].sum()
    mins = g[["_ask_size", "_bid_size"]].min()
    tick_g = g["_tick"].max().to_numpy()

    out = n_quoted.rename("n_quoted").reset_index()
    if n_quoted.empty:
        for c in EVENT_EDGE_COLUMNS[1:]:
            out[c] = pd.Series(dtype=bool if c in ("complete", "buy_arb", "sell_arb") else float)
        return out
    nq = n_quoted.to_numpy()
    if n_outcomes is None:
        expected = nq.astype(float)
    else:
        mapping = pd.Series(n_outcomes) if not isinstance(n_outcomes, pd.Series) else n_outcomes
        expected = out[keys[0]].map(mapping).to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(expected)
        if missing.any():
            raise BinaryQuoteError("an event is not in n_outcomes", where=where, column=keys[0],
                                   n_bad=int(missing.sum()), example=out.loc[missing, keys[0]].iloc[0])
    complete = nq == expected
    has_ask = counts["_ask"].to_numpy() == nq
    has_bid = counts["_bid"].to_numpy() == nq
    sum_ask = np.where(complete & has_ask, sums["_ask"].to_numpy(), np.nan)
    sum_bid = np.where(complete & has_bid, sums["_bid"].to_numpy(), np.nan)
    buy_cost = np.where(complete & has_ask, sums["_cost"].to_numpy(), np.nan)
    sell_proceeds = np.where(complete & has_bid, sums["_proceeds"].to_numpy(), np.nan)
    buy_edge, sell_edge = net_edges(buy_cost, sell_proceeds, tick_g)
    buy_size = np.where(~np.isnan(buy_cost) & (counts["_ask_size"].to_numpy() == nq), mins["_ask_size"], np.nan)
    sell_size = np.where(~np.isnan(sell_proceeds) & (counts["_bid_size"].to_numpy() == nq), mins["_bid_size"],
                         np.nan)
    out["n_outcomes"] = expected.astype(int)
    out["complete"] = complete
    out["sum_ask"], out["sum_bid"] = sum_ask, sum_bid
    out["buy_cost"], out["sell_proceeds"] = buy_cost, sell_proceeds
    out["buy_edge"], out["sell_edge"] = buy_edge, sell_edge
    out["buy_size"], out["sell_size"] = buy_size, sell_size
    out["buy_arb"] = _edge_flags(buy_edge, tick_g)
    out["sell_arb"] = _edge_flags(sell_edge, tick_g)
    return out


# ----------------------------------------------------------------------------------------------------
# Aligning polled outcome quotes in time, and the episodes of a positive edge
# ----------------------------------------------------------------------------------------------------
#: The rule :func:`align_event_polls` applies, in words (the scan reports it).
ALIGNMENT_RULE = ("at each polling time T (every distinct quote time of the dataset), each outcome's last quote at "
                  "or before T is used when it is at most the staleness bound old (no look-ahead: a quote after T is "
                  "never used; a row with an empty side means that side was empty); an event is evaluated at T only "
                  "when every one of its outcomes has such a quote (an unquoted outcome could be the winner), and "
                  "its edges need every outcome's ask (buy-all) or bid (sell-all)")


def align_event_polls(outcome, ts, bid, ask, *, event_of, n_outcomes, poll_ts, staleness_ns: int,
                      fee_rate: float = 0.0, fee_exponent: float = 1.0, tick: float = 0.001) -> tuple[pd.DataFrame, pd.Series]:
    """The summed-YES edges of multi-outcome events at every polling time (:data:`ALIGNMENT_RULE`).

    Parameters
    ----------
    outcome : numpy.ndarray of int
        The outcome (market) code of each quote row, in [0, len(event_of)); rows sorted by (outcome, ts).
    ts : numpy.ndarray of int64
        Quote times, nanoseconds since the epoch (UTC).
    bid, ask : numpy.ndarray of float
        The outcome's YES best bid and ask at that time, NaN for an empty side.
    event_of : numpy.ndarray of int
        Outcome code -> event code (in [0, len(n_outcomes))).
    n_outcomes : numpy.ndarray of int
        Event code -> its number of outcomes (an event is complete at T when that many are fresh).
    poll_ts : numpy.ndarray of int64
        The polling times, nanoseconds, strictly increasing. Rows before the first one (carried from an earlier
        file) count only toward the polls their staleness bound reaches.
    staleness_ns : int
        The largest age, nanoseconds, of a quote used at a poll (>= 0).
    fee_rate, fee_exponent, tick : float
        Costs as in :func:`event_edges` (one tick for every event).

    Returns
    -------
    (cells, incomplete) : tuple of (pandas.DataFrame, pandas.Series)
        ``cells``: one row per (event, poll) at which the event is complete, sorted by event then poll, with
        columns ``event`` (code), ``poll`` (index into ``poll_ts``), ``sum_ask``, ``sum_bid`` (NaN when an outcome
        lacks that side), ``buy_edge``, ``sell_edge`` (after fees, floored to the tick), ``buy_arb``, ``sell_arb``.
        ``incomplete``: per event code (the index; events without any left out), the polls at which some but
        not all of its outcomes were fresh.

    Memory is about 40 bytes per (event quoted, poll) pair: call it on one day's polls at a time.

    Raises
    ------
    BinaryQuoteError
        The rows are not sorted by (outcome, ts), or a code is out of range.
    BinaryParamsError
        A negative staleness bound, an impossible cost.
    """
    where = "align_event_polls"
    check_costs(fee_rate=fee_rate, fee_exponent=fee_exponent, tick=tick)
    if staleness_ns < 0:
        raise BinaryParamsError("the staleness bound must be >= 0", where=where, example=staleness_ns)
    outcome = np.asarray(outcome)
    ts = np.asarray(ts, dtype=np.int64)
    poll_ts = np.asarray(poll_ts, dtype=np.int64)
    event_of = np.asarray(event_of)
    n_outcomes = np.asarray(n_outcomes)
    empty = pd.DataFrame({"event": np.empty(0, np.int64), "poll": np.empty(0, np.int64),
                          **{c: np.empty(0) for c in ("sum_ask", "sum_bid", "buy_edge", "sell_edge")},
                          "buy_arb": np.empty(0, bool), "sell_arb": np.empty(0, bool)})
    no_incomplete = pd.Series(np.empty(0, np.int64), index=pd.Index(np.empty(0, np.int64), name="event"),
                              name="incomplete")
    n = len(outcome)
    if n == 0 or len(poll_ts) == 0:
        return empty, no_incomplete
    if (outcome.min() < 0) or (outcome.max() >= len(event_of)):
        raise BinaryQuoteError("an outcome code is out of range", where=where, column="outcome",
                               example=int(outcome.max()))
    same_next = np.zeros(n, bool)
    same_next[:-1] = outcome[1:] == outcome[:-1]
    order_bad = (outcome[1:] < outcome[:-1]) | (same_next[:-1] & (ts[1:] < ts[:-1]))
    if order_bad.any():
        raise BinaryQuoteError("the rows are not sorted by (outcome, ts)", where=where, column="ts",
                               n_bad=int(order_bad.sum()), example=int(np.flatnonzero(order_bad)[0]) + 1)
    big = np.iinfo(np.int64).max
    p0 = np.searchsorted(poll_ts, ts, side="left")
    # the first poll that sees the row's successor (its own p0): that poll no longer uses this row
    p_next = np.full(n, len(poll_ts), dtype=p0.dtype)
    p_next[:-1] = np.where(same_next[:-1], p0[1:], len(poll_ts))
    # the first poll more than the staleness bound after the row; looked up per poll for the rows stamped
    # with a poll time (all of them in a polled dataset), searched for the others
    stale_of_poll = np.searchsorted(poll_ts, np.minimum(poll_ts, big - staleness_ns) + staleness_ns, side="right")
    on_grid = poll_ts[np.minimum(p0, len(poll_ts) - 1)] == ts
    p_stale = stale_of_poll[np.minimum(p0, len(poll_ts) - 1)]
    off = np.flatnonzero(~on_grid)
    if len(off):
        p_stale[off] = np.searchsorted(poll_ts, np.minimum(ts[off], big - staleness_ns) + staleness_ns, side="right")
    cnt = np.maximum(np.minimum(p_next, p_stale) - p0, 0)
    total = int(cnt.sum())
    if total == 0:
        return empty, no_incomplete
    ev = event_of[outcome]
    if ev.min() < 0 or ev.max() >= len(n_outcomes):
        raise BinaryQuoteError("an outcome's event code is out of range (single markets must be left out)",
                               where=where, column="event_of", example=int(ev.min()))
    if total == n and (cnt == 1).all():  # every row serves exactly one poll (a polled dataset): no copy
        poll, ev_r, ask_r, bid_r = p0, ev, ask, bid
    else:  # one cell per (row, poll it serves): the rows serving one poll as they are, the others repeated
        one = cnt == 1
        multi = np.flatnonzero(cnt > 1)
        reps = cnt[multi]
        row_m = np.repeat(multi, reps)
        poll_m = p0[row_m] + (np.arange(len(row_m)) - np.repeat(np.cumsum(reps) - reps, reps))
        poll = np.concatenate([p0[one], poll_m])
        ev_r = np.concatenate([ev[one], ev[row_m]])
        ask_r = np.concatenate([ask[one], ask[row_m]])
        bid_r = np.concatenate([bid[one], bid[row_m]])
    used = np.zeros(len(n_outcomes), bool)
    used[ev_r] = True
    local_of = np.cumsum(used) - 1
    events_used = np.flatnonzero(used)
    pmin, pmax = int(poll.min()), int(poll.max())
    width = pmax - pmin + 1
    key = local_of[ev_r] * width + (poll - pmin)
    size = len(events_used) * width
    n_fresh = np.bincount(key, minlength=size)
    fee = {"fee_rate": fee_rate, "fee_exponent": fee_exponent}
    sum_ask = np.bincount(key, weights=ask_r, minlength=size)
    sum_bid = np.bincount(key, weights=bid_r, minlength=size)
    if fee_rate > 0:
        cost = np.bincount(key, weights=ask_r + taker_fee(ask_r, **fee), minlength=size)
        proceeds = np.bincount(key, weights=bid_r - taker_fee(bid_r, **fee), minlength=size)
    else:
        cost, proceeds = sum_ask, sum_bid
    expected = np.repeat(n_outcomes[events_used], width)
    complete = n_fresh == expected
    inc = np.bincount(np.flatnonzero((n_fresh > 0) & ~complete) // width, minlength=len(events_used))
    incomplete = pd.Series(inc[inc > 0], index=pd.Index(events_used[inc > 0], name="event"), name="incomplete")
    cells = np.flatnonzero(complete)
    buy_edge, sell_edge = net_edges(cost[cells], proceeds[cells], tick)
    out = pd.DataFrame({"event": events_used[cells // width].astype(np.int64),
                        "poll": (cells % width + pmin).astype(np.int64),
                        "sum_ask": sum_ask[cells], "sum_bid": sum_bid[cells],
                        "buy_edge": buy_edge, "sell_edge": sell_edge,
                        "buy_arb": _edge_flags(buy_edge, tick), "sell_arb": _edge_flags(sell_edge, tick)})
    return out, incomplete


#: The columns of :func:`edge_episodes`.
EPISODE_COLUMNS = ("event", "side", "start_poll", "end_poll", "n_polls", "max_edge", "max_poll", "open_at_end")


def edge_episodes(cells: pd.DataFrame, *, n_polls: int) -> pd.DataFrame:
    """Runs of consecutive polls at which an event's edge stays positive after costs, per event and side.

    Parameters
    ----------
    cells : pandas.DataFrame
        :func:`align_event_polls` output (``event``, ``poll``, ``buy_edge``, ``sell_edge``, ``buy_arb``,
        ``sell_arb``), ``poll`` a global index into one grid of ``n_polls`` polling times.
    n_polls : int
        The length of that grid.

    Returns
    -------
    pandas.DataFrame
        One row per episode (:data:`EPISODE_COLUMNS`): ``side`` ("buy" / "sell"), ``start_poll`` (the first poll
        with the edge), ``end_poll`` (the first poll after the run: the edge gone, or the event not evaluable
        there), ``n_polls``, ``max_edge`` and the poll it was seen at, ``open_at_end`` (the run reaches the
        grid's last poll: its end is not seen). A poll at which the event is not complete ends a run.
    """
    parts = []
    for side in ("buy", "sell"):
        hit = cells.loc[cells[f"{side}_arb"].to_numpy(), ["event", "poll", f"{side}_edge"]]
        if hit.empty:
            continue
        hit = hit.sort_values(["event", "poll"], kind="stable")
        ev = hit["event"].to_numpy()
        pl = hit["poll"].to_numpy()
        edge = hit[f"{side}_edge"].to_numpy()
        new = np.ones(len(hit), bool)
        new[1:] = (ev[1:] != ev[:-1]) | (pl[1:] != pl[:-1] + 1)
        run = np.cumsum(new) - 1
        first = np.flatnonzero(new)
        last = np.r_[first[1:], len(hit)] - 1
        # the poll of each run's largest edge: sort by (run, -edge) and take each run's first row
        order = np.lexsort((-edge, run))
        best = order[np.r_[0, np.flatnonzero(np.diff(run[order])) + 1]]
        parts.append(pd.DataFrame({"event": ev[first], "side": side, "start_poll": pl[first],
                                   "end_poll": pl[last] + 1, "n_polls": last - first + 1,
                                   "max_edge": edge[best], "max_poll": pl[best],
                                   "open_at_end": pl[last] + 1 >= n_polls}))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            EPISODE_COLUMNS, ("int64", "object", "int64", "int64", "int64", "float64", "int64", "bool"), strict=True)})
    return pd.concat(parts, ignore_index=True)
