"""The Cboe S&P 500 PutWrite (PUT) and BuyWrite (BXM) methodologies on real end-of-day chains.

``putwrite`` (Cboe PUT)
    On each roll date — the standard monthly SPX expiry: the third Friday, or the session before it when that
    Friday is not a session (:func:`monthly_expiry`; 2026-06-18 for June 2026, Juneteenth) — the expiring put
    settles at its intrinsic value against the AM settlement price, then a new AM-settled one-month SPX put
    (root ``SPX``, settlement ``AM``, the next monthly expiry) is sold at the first listed strike at or below
    the spot (:func:`pick_strike`). The number of puts is ``N = E / (K × 100)`` with ``E`` the whole equity at the
    roll after the settlement, so the collateral fully secures the puts (``N × K × 100 = E``); ``N`` is
    fractional. The premium received is added to the cash. The cash earns the 3-month T-bill rate: the 13-week
    bill (IRX, a bank-discount yield) converted to a continuously compounded actual/365 rate
    (:func:`~research_lib.data.market.tbill_discount_to_continuous`), the rate as of the start of each
    accrual period, accrued over calendar days: ``cash × (exp(r × days / 365) − 1)``. Between rolls the put is
    marked at that day's mid; equity = cash − N × 100 × mark.
``buywrite`` (Cboe BXM)
    On each roll date the whole equity is invested in the index at the close (``U = E / S`` index units), and
    ``U`` one-month AM SPX calls (``U / 100`` contracts) are sold at the first listed strike at or above the
    spot; the premium goes to the cash (T-bill interest as above) until the next roll, when the expiring call
    settles at the AM settlement and everything is reinvested. Dividends: when the daily history carries the
    S&P 500 total-return index on every day of the run, each day's dividend
    ``U × S_{t−1} × (TR_t / TR_{t−1} − S_t / S_{t−1})`` is paid into the cash; otherwise the index is held at
    its price only (said in the assumptions).

Differences from Cboe's published indices (also in every result's ``assumptions``): the premium is the fill
model's price from the end-of-day quote (Cboe: a VWAP of 11:30–12:00 ET trades or quotes); the strike is chosen
against the chain's spot at the close (Cboe: the index's last value before 11:00 ET); the AM settlement is the
opening print of the daily SPX history (Cboe: the Special Opening Quotation, SOQ, not available here); the
collateral is one T-bill rate (Cboe: 1- and 3-month bills); ``N = E / K`` counts the equity before the premium.

The backtest starts at the first roll date in the feed: the days before it are flat (equity = the account, no
interest) and listed in the assumptions. No new position is opened on the last day of the data; a position still
open on the last day is closed at that day's quotes (``end_of_data``). A roll date the feed lacks is done on the
next day served (the expiry still settles at its own settlement price; the trade is flagged ``late_roll``).

Tables follow :mod:`research_lib.backtest.results`, with columns added at the end: legs ``entry_source``,
``exit_source`` (the quote or the settlement each price came from); equity ``interest`` ($ accrued that day),
``dividends`` ($ paid that day), ``flags``. The buywrite index leg has ``root`` ``SPX``, ``right`` ``"U"``
(the underlying), no expiry or strike, a quantity in hundreds of index units (the option multiplier, so the
trade's P&L formula holds) and the chain's spot (the official close) as its price.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from research_lib import calendar as cal
from research_lib.backtest.params import parse_fill
from research_lib.backtest.results import (
    EQUITY_COLUMNS,
    LEG_COLUMNS,
    TRADE_COLUMNS,
    BacktestResult,
)
from research_lib.backtest.settlement import intrinsic, settlement_price
from research_lib.calendar import (  # the roll dates live in the calendar; re-exported
    monthly_expiry as monthly_expiry,
    next_monthly_expiry as next_monthly_expiry,
    roll_dates as roll_dates,
    third_friday as third_friday,
)
from research_lib.core import pricing
from research_lib.core.chain import ChainSnapshot
from research_lib.core.market_view import MarketHistory, MarketView
from research_lib.data.market import load_index_daily, risk_free_rates
from research_lib.errors import BacktestInputError, MarketDataError, MarketDataNotFoundError
from research_lib.formatting import jsonable

#: The strategies of this module.
STRATEGIES = ("putwrite", "buywrite")
#: SPX contract multiplier ($ per index point per contract).
MULTIPLIER = 100.0
#: Root and settlement of the options the methodologies trade.
ROOT, SETTLEMENT = "SPX", "AM"
#: Columns added at the end of the results' tables.
LEG_EXTRA = ("entry_source", "exit_source")
EQUITY_EXTRA = ("interest", "dividends", "flags")
#: What the T-bill accrual uses.
RATE_METHOD = ("the 13-week T-bill (IRX, bank-discount yield) as a continuously compounded actual/365 rate "
               "(tbill_discount_to_continuous, 91 days), the last observation at or before the start of each "
               "accrual period (at most 14 days old), accrued over calendar days: cash × (exp(r × days/365) − 1)")


# --------------------------------------------------------------------------------------------------
# roll dates and strikes


def pick_strike(contracts: pd.DataFrame, expiration, right: str, spot: float) -> pd.Series:
    """The contract row the methodology trades: root ``SPX``, AM-settled, ``expiration``, ``right``; for a put the
    first listed strike at or below ``spot`` (the highest ≤ spot), for a call the first at or above (the lowest
    ≥ spot). "Listed" means a row of the chain with a usable quote (``ask > 0``, ``0 <= bid <= ask``).

    Raises
    ------
    BacktestInputError
        No such contract in the chain (the expiry is not listed, or no strike on that side of the spot).
    """
    exp = pd.Timestamp(expiration)
    c = contracts
    sel = c[(c["root"] == ROOT) & (c["settlement"] == SETTLEMENT) & (c["expiration"] == exp)
            & (c["right"] == right) & (c["ask"] > 0) & (c["bid"] >= 0) & (c["bid"] <= c["ask"])]
    side = sel[sel["strike"] <= spot] if right == "P" else sel[sel["strike"] >= spot]
    if side.empty:
        where = "at or below" if right == "P" else "at or above"
        raise BacktestInputError("feed", f"no quoted {ROOT} {exp.date()} {right} strike {where} the spot {spot:g} "
                                         f"({len(sel)} quoted strikes of that expiry)")
    row = side.loc[side["strike"].idxmax() if right == "P" else side["strike"].idxmin()]
    return row


# --------------------------------------------------------------------------------------------------
# fills


def fill_price(bid: float, ask: float, side: int, frac: float) -> float:
    """Price of a fill per unit: the mid moved by ``frac`` of the half-spread against the trader (``side`` +1
    buys, −1 sells). Unlike :func:`research_lib.backtest.fills.fill_price` it is not rounded to the tick: the
    Cboe indices price at VWAPs, not at tick prices."""
    mid = 0.5 * (bid + ask)
    return float(mid + side * frac * 0.5 * (ask - bid))


# --------------------------------------------------------------------------------------------------
# the run


@dataclasses.dataclass
class _Position:
    trade_id: int
    expiration: dt.date
    strike: float
    right: str
    contracts: float            # option contracts (short)
    units: float                # index units held (buywrite), 0 for putwrite
    entry_date: dt.date
    entry_bid: float
    entry_ask: float
    entry_mid: float
    entry_fill: float
    entry_spot: float
    commissions: float
    why: str
    flags: list
    mark: float = math.nan
    mark_bid: float = math.nan
    mark_ask: float = math.nan
    mark_date: dt.date | None = None
    delta: float = 0.0
    gamma: float = 0.0
    theta: float = 0.0
    vega: float = 0.0
    stale: int = 0


def _quote(contracts: pd.DataFrame, pos: _Position):
    c = contracts
    hit = c[(c["root"] == ROOT) & (c["settlement"] == SETTLEMENT) & (c["expiration"] == pd.Timestamp(pos.expiration))
            & (c["strike"] == pos.strike) & (c["right"] == pos.right)]
    if hit.empty:
        return None
    row = hit.iloc[0]
    bid, ask = float(row["bid"]), float(row["ask"])
    if not (np.isfinite(bid) and np.isfinite(ask) and ask > 0 and 0 <= bid <= ask):
        return None
    return row


def _greeks(row, snap: ChainSnapshot, rate: float) -> tuple[float, float, float, float]:
    """Per unit: delta, gamma (the chain's), theta ($/calendar day) and vega ($/vol point) by Black-Scholes at the
    chain's IV, q = 0, time to the AM settlement."""
    settle = cal.settlement_times([row["expiration"]], [SETTLEMENT])[0]
    years = (settle - snap.quote_time).total_seconds() / (365.0 * 86400.0)
    iv = float(row["iv"])
    is_call = row["right"] == "C"
    th = float(pricing.theta(snap.spot, float(row["strike"]), years, iv, rate, 0.0, is_call)) / 365.0
    ve = float(pricing.vega(snap.spot, float(row["strike"]), years, iv, rate, 0.0, is_call)) / 100.0
    return float(row["delta"]), float(row["gamma"]), th, ve


def _history(market_dir, market_history, last_day: dt.date):
    """(daily SPX frame, the ``market_dir`` to read rates with)."""
    if market_history is not None:
        if not isinstance(market_history, (MarketHistory, MarketView)):
            raise BacktestInputError("market_history", f"a MarketHistory, not {type(market_history).__name__}")
        view = market_history if isinstance(market_history, MarketView) else MarketView.as_of(market_history,
                                                                                             last_day)
        where = view
    else:
        where = market_dir
    try:
        daily = load_index_daily("SPX", market_dir=where)
    except (MarketDataNotFoundError, MarketDataError) as exc:
        raise BacktestInputError("market_dir", f"no daily SPX history for the settlements: {exc}") from exc
    return daily, where


def _feed_parts(feed) -> tuple[list[dt.date], list[dt.date], str, str, Iterable[ChainSnapshot]]:
    days = getattr(feed, "days", None)
    if days is None:  # a plain sequence of snapshots (tests, notebooks)
        snaps = sorted(list(feed), key=lambda s: s.snapshot_date)
        if not snaps:
            raise BacktestInputError("feed", "no snapshot")
        days = [s.snapshot_date for s in snaps]
        if len(set(days)) != len(days):
            raise BacktestInputError("feed", "two snapshots of one trading date")
        missing = [d.date() for d in cal.sessions(days[0], days[-1]) if d.date() not in set(days)]
        return days, missing, snaps[0].underlying, snaps[0].source, snaps
    return list(days), list(feed.missing_days), feed.symbol, feed.source, feed


def run_index_strategy(feed, strategy: str = "putwrite", *, account: float = 100_000.0, fill: str = "mid",
                       commission: float = 0.0, market_dir: str | os.PathLike | None = None,
                       market_history: MarketHistory | None = None,
                       progress: Callable[[int, int], None] | None = None) -> BacktestResult:
    """Backtest the Cboe PUT (``putwrite``) or BXM (``buywrite``) methodology over a feed (see the module text).

    Parameters
    ----------
    feed : Feed or iterable of ChainSnapshot
        One SPX snapshot per trading day (:class:`~research_lib.backtest.feed.Feed`, whose ``missing_days`` are
        reported), or snapshots in any order (missing days: the NYSE sessions between the first and last
        without a snapshot).
    strategy : {"putwrite", "buywrite"}
    account : float, default 100,000
        Initial equity ($, > 0).
    fill : {"mid", "natural", "slippage:F"}
        Premium and closing fills (:func:`fill_price`); marks are always at mid.
    commission : float, default 0
        $ per contract (fractional contracts pay pro rata) on every sale and buy-back; none on a settlement.
    market_dir : path, optional
        The daily SPX history (settlement opens, dividends) and the IRX file
        (:func:`~research_lib.data.market.market_data_dirs`).
    market_history : MarketHistory, optional
        Read instead of ``market_dir`` (cut at the feed's last day).
    progress : callable(done, total), optional
        Called after each day.

    Returns
    -------
    BacktestResult
        One trade per roll (``exit_reason`` ``expiry``, or ``end_of_data`` for the position open on the last
        day, closed at that day's quotes with ``exit_kind`` ``quote``).

    Raises
    ------
    BacktestInputError
        Bad argument; no roll date among the feed's days; the contract to sell is not in the chain; no daily
        history or rates.
    SettlementError
        The daily history lacks an expiry's open.
    """
    if strategy not in STRATEGIES:
        raise BacktestInputError("strategy", f"{strategy!r}: expected one of {', '.join(STRATEGIES)}")
    try:
        account = float(account)
        commission = float(commission)
    except (TypeError, ValueError) as exc:
        raise BacktestInputError("account", f"account and commission must be numbers ({exc})") from exc
    if not (math.isfinite(account) and account > 0):
        raise BacktestInputError("account", f"{account!r}: a positive amount of $")
    if not (math.isfinite(commission) and commission >= 0):
        raise BacktestInputError("commission", f"{commission!r}: $ per contract, >= 0")
    fill_kind, frac = parse_fill(fill)
    days, missing, symbol, source, snapshots = _feed_parts(feed)
    if symbol != "SPX":
        raise BacktestInputError("feed", f"{strategy} trades SPX options; the feed is {symbol}")
    rolls = roll_dates(days[0], days[-1])
    first_roll = next((r for r in rolls if r >= days[0]), None)
    start_day = next((d for d in days if first_roll is not None and d >= first_roll), None)
    if start_day is None:
        raise BacktestInputError("feed", f"no monthly roll date (third Friday, or the session before) in the days "
                                         f"served {days[0]}..{days[-1]}: nothing to trade")
    daily, where = _history(market_dir, market_history, days[-1])
    try:
        rates = risk_free_rates(days, source="irx", market_dir=where)
    except (MarketDataNotFoundError, MarketDataError) as exc:
        raise BacktestInputError("market_dir", f"no 13-week T-bill rate (IRX) for the collateral: {exc}") from exc
    rate_of = dict(zip(days, rates["rate"].to_numpy(float), strict=True))
    rate_as_of = dict(zip(days, rates["as_of"], strict=True))
    tr = daily["total_return_close"] if "total_return_close" in daily else None
    use_tr = (strategy == "buywrite" and tr is not None
              and bool(tr.reindex(pd.DatetimeIndex(pd.to_datetime(days))).notna().all()))

    pending = [r for r in rolls if r >= first_roll]
    cash = account
    pos: _Position | None = None
    trades, legs, equity = [], [], []
    prev_day: dt.date | None = None
    prev_spot = math.nan
    started = False
    flat_days: list[dt.date] = []
    settle_sources: set[str] = set()
    n_days = len(days)

    for i, snap in enumerate(snapshots):
        day = snap.snapshot_date
        c = snap.contracts
        spot = float(snap.spot)
        flags: list[str] = []
        interest = dividends = 0.0
        if started and prev_day is not None:
            r = rate_of[prev_day]
            interest = cash * math.expm1(r * (day - prev_day).days / 365.0)
            cash += interest
            if strategy == "buywrite" and pos is not None and pos.units:
                if use_tr:
                    g_tr = float(tr.loc[pd.Timestamp(day)] / tr.loc[pd.Timestamp(prev_day)])
                    dividends = pos.units * prev_spot * (g_tr - spot / prev_spot)
                    cash += dividends
        # the expiring option settles (AM: the open of its expiry day)
        if pos is not None and pos.expiration <= day:
            st = settlement_price(pos.expiration, SETTLEMENT, daily)
            settle_sources.add(st.source)
            value = float(intrinsic(pos.strike, pos.right, st.price))
            cash -= pos.contracts * MULTIPLIER * value
            exit_spot = spot
            if strategy == "buywrite":
                cash += pos.units * spot  # the index sold at the close, to be reinvested below
            _close(trades, legs, pos, strategy, exit_date=pos.expiration if pos.expiration in set(days) else day,
                   exit_reason="expiry", exit_price_opt=value, exit_kind="settlement", exit_spot=exit_spot,
                   exit_bid=math.nan, exit_ask=math.nan, exit_value=value, exit_fill=value,
                   settlement=st, exit_source=f"settlement: {st.source}, {st.date} = {st.price:g}",
                   days=days, commission=0.0)
            pos = None
        # roll: open the next position (never on the last day of the data)
        due = [r for r in pending if r <= day]
        if due and pos is None and i < n_days - 1:
            roll = due[-1]
            pending = [r for r in pending if r > day]
            if not started:
                started = True
            expiry = next_monthly_expiry(roll)
            right = "P" if strategy == "putwrite" else "C"
            row = pick_strike(c, expiry, right, spot)
            K = float(row["strike"])
            bid, ask = float(row["bid"]), float(row["ask"])
            premium = fill_price(bid, ask, -1, frac)
            E = cash  # flat: the whole equity is cash
            if strategy == "putwrite":
                n = E / (K * MULTIPLIER)
                units = 0.0
                why = (f"Cboe PUT roll {roll}: spot {spot:g}, first listed {ROOT} {expiry} put strike at or below: "
                       f"{K:g}; N = equity {E:.2f} / (K × 100) = {n:.6f}")
            else:
                units = E / spot
                n = units / MULTIPLIER
                cash -= units * spot
                why = (f"Cboe BXM roll {roll}: spot {spot:g}, {units:.6f} index units bought at the close; first "
                       f"listed {ROOT} {expiry} call strike at or above: {K:g}")
            fee = commission * n
            cash += n * MULTIPLIER * premium - fee
            pos = _Position(trade_id=len(trades) + 1, expiration=expiry, strike=K, right=right, contracts=n,
                            units=units, entry_date=day, entry_bid=bid, entry_ask=ask, entry_mid=0.5 * (bid + ask),
                            entry_fill=premium, entry_spot=spot, commissions=fee, why=why,
                            flags=[f"late_roll:{roll}"] if roll != day else [])
        elif due and pos is None and i == n_days - 1:
            pending = [r for r in pending if r > day]
        if not started:
            flat_days.append(day)
        # marks
        if pos is not None:
            row = _quote(c, pos)
            if row is None:
                if pos.mark_date is None:
                    raise BacktestInputError("feed", f"{day}: the contract just sold has no quote")
                pos.stale += 1
                flags.append(f"stale_mark:{ROOT} {pos.expiration} {pos.right} {pos.strike:g} from {pos.mark_date}")
            else:
                pos.mark_bid, pos.mark_ask = float(row["bid"]), float(row["ask"])
                pos.mark = 0.5 * (pos.mark_bid + pos.mark_ask)
                pos.mark_date = day
                pos.delta, pos.gamma, pos.theta, pos.vega = _greeks(row, snap, rate_of[day])
        # the last day: close what is open at that day's quotes
        if pos is not None and i == n_days - 1:
            stale = pos.mark_date != day
            bid, ask = pos.mark_bid, pos.mark_ask
            price = fill_price(bid, ask, +1, frac)
            fee = commission * pos.contracts
            cash -= pos.contracts * MULTIPLIER * price + fee
            if strategy == "buywrite":
                cash += pos.units * spot
            src = (f"last mark {pos.mark_date} (missing from the {day} chain)" if stale else
                   f"quote {day} {ROOT} {pos.expiration} {pos.right} {pos.strike:g} bid {bid:g} ask {ask:g}")
            _close(trades, legs, pos, strategy, exit_date=day, exit_reason="end_of_data", exit_price_opt=price,
                   exit_kind="last_mark" if stale else "quote", exit_spot=spot, exit_bid=bid, exit_ask=ask,
                   exit_value=pos.mark, exit_fill=price, settlement=None, exit_source=src, days=days,
                   commission=fee)
            last_greeks = (0.0, 0.0, 0.0, 0.0)
            pos_value = pos_nat = 0.0
            open_n, stale_n = 0, int(stale)
            pos = None
        elif pos is not None:
            n = pos.contracts
            pos_value = pos.units * spot - n * MULTIPLIER * pos.mark
            pos_nat = pos.units * spot - n * MULTIPLIER * fill_price(pos.mark_bid, pos.mark_ask, +1, 1.0)
            last_greeks = (pos.units - n * MULTIPLIER * pos.delta, -n * MULTIPLIER * pos.gamma,
                           -n * MULTIPLIER * pos.theta, -n * MULTIPLIER * pos.vega)
            open_n, stale_n = 1, int(pos.mark_date != day)
            if not all(math.isfinite(g) for g in last_greeks):
                flags.append("greeks_unavailable:the chain's IV or delta of the leg is missing")
                last_greeks = tuple(g if math.isfinite(g) else 0.0 for g in last_greeks)
        else:
            pos_value = pos_nat = 0.0
            last_greeks = (0.0, 0.0, 0.0, 0.0)
            open_n = stale_n = 0
        eq = cash + pos_value
        equity.append({"date": day, "equity": eq, "cash": cash, "positions_value": pos_value,
                       "positions_value_natural": pos_nat, "drawdown": 0.0, "delta": last_greeks[0],
                       "gamma": last_greeks[1], "theta": last_greeks[2], "vega": last_greeks[3],
                       "open_positions": open_n, "stale_legs": stale_n, "interest": interest,
                       "dividends": dividends, "flags": ";".join(flags)})
        prev_day, prev_spot = day, spot
        if progress is not None:
            progress(i + 1, n_days)

    eq_table = _typed(pd.DataFrame(equity, columns=list(EQUITY_COLUMNS) + list(EQUITY_EXTRA)),
                      ints=("open_positions", "stale_legs"), dates=("date",), text=("flags",))
    eq_table["drawdown"] = eq_table["equity"] / eq_table["equity"].cummax() - 1.0
    tr_table = _typed(pd.DataFrame(trades, columns=list(TRADE_COLUMNS)), ints=("trade_id", "days_held"),
                      dates=("entry_date", "exit_date"),
                      text=("strategy", "exit_reason", "regime", "why", "flags"))
    lg_table = _typed(pd.DataFrame(legs, columns=list(LEG_COLUMNS) + list(LEG_EXTRA)), ints=("trade_id",),
                      dates=("expiration", "entry_date", "exit_date"),
                      text=("root", "settlement", "right", "exit_kind", "settlement_source") + LEG_EXTRA)
    rate_obs = sorted({str(pd.Timestamp(v).date()) for v in rate_as_of.values()})
    assumptions = {
        "methodology": ("Cboe S&P 500 PutWrite (PUT)" if strategy == "putwrite" else "Cboe S&P 500 BuyWrite (BXM)"),
        "roll_dates": [str(r) for r in rolls],
        "first_roll": str(start_day),
        "flat_days": [str(d) for d in flat_days],
        "flat_days_rule": "the backtest starts at the first roll date in the feed; days before it are flat "
                          "(equity = the account, no interest)",
        "option": f"root {ROOT}, {SETTLEMENT}-settled, the next monthly expiry after the roll date; strike: the "
                  + ("first listed strike at or below the spot (chain spot = the official close)"
                     if strategy == "putwrite" else "first listed strike at or above the spot"),
        "sizing": ("N = equity at the roll (after the settlement, before the premium) / (strike × 100) puts, "
                   "fractional: fully collateralised" if strategy == "putwrite" else
                   "U = equity at the roll / index close units of the index, U / 100 calls (fractional)"),
        "fills": f"{fill_kind} (fraction of the half-spread beyond the mid: {frac:g}) of the end-of-day quote; "
                 "Cboe uses a VWAP of 11:30-12:00 ET trades or quotes, not available here; not rounded to the tick",
        "marks": "mid of that day's quote; a missing quote keeps the last mark and is flagged (stale_legs, flags)",
        "costs": f"${commission:g} per contract (pro rata for fractional contracts) on each sale or buy-back; "
                 "none on a cash settlement",
        "settlement": sorted(settle_sources) or ["no expiry settled in the run"],
        "settlement_note": "AM settlement at the opening print of the daily SPX history; no Special Opening "
                           "Quotation (SOQ) history is available, Cboe's indices settle at the SOQ",
        "collateral_rate": RATE_METHOD,
        "collateral_rate_observations": f"IRX observations dated {rate_obs[0]} to {rate_obs[-1]}",
        "dividends": ("not applicable (cash collateral)" if strategy == "putwrite" else
                      "S&P 500 total-return index: each day's dividend paid into the cash" if use_tr else
                      "price only: the daily history has no total-return index over the run (the shared file's "
                      "total-return column ends 2025-05-13), so the index leg earns no dividends"),
        "last_day": "no new position on the last day; the open position is closed at that day's quotes "
                    "(end_of_data)",
        "greeks": "delta and gamma: the chain's; theta ($/calendar day) and vega ($/vol point): Black-Scholes at "
                  "the chain's IV, q = 0, time to the 09:30 settlement; the index leg adds its units to delta",
        "missing_days": [str(d) for d in missing],
        "daily_history": str(daily.attrs.get("source", "")),
    }
    params = {"strategy": strategy, "account": account, "fill": fill, "commission": commission,
              "market_dir": None if market_dir is None else str(market_dir)}
    return BacktestResult(trades=tr_table, legs=lg_table, equity=eq_table, missing_days=tuple(missing),
                          assumptions=jsonable(assumptions), params=jsonable(params), underlying=symbol,
                          source=source, start=days[0], end=days[-1], initial_equity=account)


def _typed(frame: pd.DataFrame, *, ints=(), dates=(), text=()) -> pd.DataFrame:
    """The same dtypes whether the table has rows or not: ints, datetimes, text (object); the rest float."""
    for col in frame.columns:
        if col in ints:
            frame[col] = frame[col].astype("int64")
        elif col in dates:
            frame[col] = pd.to_datetime(frame[col])
        elif col in text:
            frame[col] = frame[col].astype(object)
        else:
            frame[col] = frame[col].astype(float)
    return frame


def _close(trades: list, legs: list, pos: _Position, strategy: str, *, exit_date, exit_reason, exit_price_opt,
           exit_kind, exit_spot, exit_bid, exit_ask, exit_value, exit_fill, settlement, exit_source, days,
           commission) -> None:
    n = pos.contracts
    fees = pos.commissions + commission
    if strategy == "putwrite":
        entry_price, exit_price = pos.entry_fill, exit_price_opt
    else:  # the covered call as one trade: buy the index (debit), sell the call
        entry_price = pos.entry_fill - pos.entry_spot
        exit_price = exit_price_opt - exit_spot
    pnl = (entry_price - exit_price) * MULTIPLIER * n - fees
    held = sum(1 for d in days if pos.entry_date < d <= exit_date)
    flags = list(pos.flags) + ([f"stale_marks:{pos.stale}"] if pos.stale else [])
    trades.append({"trade_id": pos.trade_id, "entry_date": pos.entry_date, "exit_date": exit_date,
                   "strategy": strategy, "contracts": n, "entry_price": entry_price, "exit_price": exit_price,
                   "exit_reason": exit_reason, "pnl": pnl, "commissions": fees, "days_held": held, "regime": "",
                   "why": pos.why, "max_loss": n * MULTIPLIER * (pos.strike if strategy == "putwrite"
                                                                 else pos.entry_spot - pos.entry_fill),
                   "flags": ";".join(flags)})
    entry_src = (f"quote {pos.entry_date} {ROOT} {pos.expiration} {pos.right} {pos.strike:g} "
                 f"bid {pos.entry_bid:g} ask {pos.entry_ask:g}")
    legs.append({"trade_id": pos.trade_id, "root": ROOT, "expiration": pos.expiration, "settlement": SETTLEMENT,
                 "strike": pos.strike, "right": pos.right, "quantity": -n, "entry_date": pos.entry_date,
                 "entry_bid": pos.entry_bid, "entry_ask": pos.entry_ask, "entry_mid": pos.entry_mid,
                 "entry_fill": pos.entry_fill, "exit_date": exit_date, "exit_bid": exit_bid, "exit_ask": exit_ask,
                 "exit_value": exit_value, "exit_fill": exit_fill, "exit_kind": exit_kind,
                 "settlement_price": settlement.price if settlement is not None else math.nan,
                 "settlement_source": settlement.source if settlement is not None else "",
                 "entry_source": entry_src, "exit_source": exit_source})
    if strategy == "buywrite":
        legs.append({"trade_id": pos.trade_id, "root": ROOT, "expiration": pd.NaT, "settlement": "",
                     "strike": math.nan, "right": "U", "quantity": pos.units / MULTIPLIER,
                     "entry_date": pos.entry_date, "entry_bid": pos.entry_spot, "entry_ask": pos.entry_spot,
                     "entry_mid": pos.entry_spot, "entry_fill": pos.entry_spot, "exit_date": exit_date,
                     "exit_bid": exit_spot, "exit_ask": exit_spot, "exit_value": exit_spot, "exit_fill": exit_spot,
                     "exit_kind": "quote", "settlement_price": math.nan, "settlement_source": "",
                     "entry_source": f"chain spot {pos.entry_date} (the index close)",
                     "exit_source": f"chain spot {exit_date} (the index close)"})


# --------------------------------------------------------------------------------------------------
# comparison with the published index


@dataclasses.dataclass(frozen=True, eq=False)
class IndexComparison:
    """A backtest's equity curve beside a published index over the same days.

    Attributes
    ----------
    start, end : datetime.date
        First and last common day (from the first trade's entry).
    days : int
        Common days.
    correlation : float
        Pearson correlation of the daily returns (between consecutive common days).
    total_return, index_total_return : float
        Over ``start..end`` (decimal).
    tracking_difference : float
        ``total_return − index_total_return``.
    tracking_error : float
        Annualised standard deviation of the daily return differences (× √252).
    missing_in_index : tuple of date
        Equity days the index lacks (left out; the returns span them).
    table : DataFrame
        ``date, equity, index, return, index_return`` on the common days (first returns NaN: no prior day).
    """

    start: dt.date
    end: dt.date
    days: int
    correlation: float
    total_return: float
    index_total_return: float
    tracking_difference: float
    tracking_error: float
    missing_in_index: tuple
    table: pd.DataFrame

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "table"}
        return jsonable(d)


def compare_with_index(result: BacktestResult, index_series: pd.Series) -> IndexComparison:
    """Align ``result``'s equity with ``index_series`` (e.g. :func:`~research_lib.data.market.load_cboe_index`)
    from the first trade's entry date to the end, on the days both have.

    Raises
    ------
    BacktestInputError
        No trade, or fewer than 3 common days (two returns).
    """
    if not len(result.trades):
        raise BacktestInputError("result", "the backtest has no trade: nothing to compare")
    start = pd.Timestamp(result.trades["entry_date"].min()).normalize()
    eq = result.equity.set_index(pd.to_datetime(result.equity["date"]).dt.normalize())["equity"]
    eq = eq[eq.index >= start]
    idx = pd.Series(index_series, dtype=float)
    idx.index = pd.DatetimeIndex(pd.to_datetime(idx.index)).normalize()
    common = eq.index.intersection(idx.index).sort_values()
    if len(common) < 3:
        raise BacktestInputError("index_series", f"only {len(common)} days in common with the equity curve "
                                                 f"{eq.index.min().date()}..{eq.index.max().date()}: need 3")
    a, b = eq.reindex(common), idx.reindex(common)
    ra, rb = a.pct_change(), b.pct_change()
    diff = (ra - rb).iloc[1:]
    corr = float(np.corrcoef(ra.iloc[1:], rb.iloc[1:])[0, 1])
    table = pd.DataFrame({"date": common, "equity": a.to_numpy(), "index": b.to_numpy(), "return": ra.to_numpy(),
                          "index_return": rb.to_numpy()})
    tot_a, tot_b = float(a.iloc[-1] / a.iloc[0] - 1), float(b.iloc[-1] / b.iloc[0] - 1)
    return IndexComparison(start=common[0].date(), end=common[-1].date(), days=len(common), correlation=corr,
                           total_return=tot_a, index_total_return=tot_b, tracking_difference=tot_a - tot_b,
                           tracking_error=float(diff.std(ddof=1) * math.sqrt(252)),
                           missing_in_index=tuple(d.date() for d in eq.index.difference(idx.index)), table=table)


__all__ = ["EQUITY_EXTRA", "LEG_EXTRA", "MULTIPLIER", "RATE_METHOD", "STRATEGIES", "IndexComparison",
           "compare_with_index", "fill_price", "monthly_expiry", "next_monthly_expiry", "parse_fill",
           "pick_strike", "roll_dates", "run_index_strategy", "third_friday"]
