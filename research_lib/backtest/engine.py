"""The daily loop of a backtest: marks, exits, entries, sizing, the equity row — one snapshot per day, in order.

:func:`run_backtest` walks the feed one trading day at a time and reads nothing dated after the day:

a. **Marks.** Every open leg is looked up in today's chain (one sorted index of the day's contracts by (root,
   expiration, right, strike); a join, not a loop over contracts) and marked at mid and at natural (the price
   closing it would get: the bid of a long, the ask of a short). A leg missing today keeps its last mark and is
   flagged (``stale_legs`` in the equity row, ``stale_marks:N`` in the trade's flags); it is never marked at zero.
b. **Exits**, first that fires wins: ``expiry`` (a leg expired today, or on a session the data lacks: cash
   settlement at intrinsic value against :func:`research_lib.backtest.settlement.settlement_price` — PM the
   session close, AM the opening print of the daily history, no SOQ), ``profit_target`` (P&L at mid marks ≥
   ``profit_target`` × |entry price|), ``stop_loss`` (loss at mid marks ≥ ``stop_loss`` × |entry price|),
   ``exit_dte`` (calendar days to the nearest expiry ≤ N), ``max_hold`` (sessions held ≥ N), ``regime_change``
   (``auto`` with ``regime_exit``), ``missing_legs`` (a leg missing more than ``missing_leg_days`` served days in a
   row: closed at its last quotes), ``end_of_data`` (the last day served). Closes fill at the fill model on
   today's quotes (the last quotes of a missing leg, ``exit_kind = last_mark``).
c. **Entries** on the schedule (``when-flat``, ``daily``, ``every:N``, ``roll``) below ``max_open``, never on the
   last day: a fixed strategy's legs from today's chain (:func:`research_lib.backtest.legspec.select_legs`, the
   rules of :mod:`research_lib.core.strategy`), or for ``auto`` the legs and size of
   :func:`research_lib.pipeline.decide.decide_on` on today's snapshot with the market history as of today, the
   running equity, the backtest's own closed-trade statistics, its open risk and the previous day's decision.
d. **Sizing** of fixed strategies: :func:`research_lib.core.sizing.size_position` on the running equity with the
   max loss per contract at the mid credit, Kelly from the closed trades' returns on risk (the bootstrap risk
   below ``min_trades_for_kelly``), the per-trade and open-risk caps; or ``contracts`` fixed (open-risk cap kept).
e. **Equity row**: cash, positions at mid and natural, equity, the book's greeks (model greeks of each open leg at
   its IV of the day, × signed contracts × 100).

Accounting: cash starts at ``account``; an entry adds ``entry_price × 100 × contracts`` and pays the commission;
a close pays ``exit_price × 100 × contracts`` and its commission (settlement pays none); ``equity = cash + Σ
signed contracts × 100 × mid mark``. Each trade's ``pnl`` is ``(entry_price − exit_price) × 100 × contracts −
commissions``, so the final equity equals ``account + Σ pnl``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from research_lib import calendar as cal
from research_lib.backtest import fills as fills_mod
from research_lib.backtest.legspec import select_legs
from research_lib.backtest.params import INDEX_STRATEGIES, BacktestParams
from research_lib.backtest.results import (
    EQUITY_COLUMNS,
    LEG_COLUMNS,
    TRADE_COLUMNS,
    BacktestResult,
    empty_table,
)
from research_lib.backtest.settlement import SOURCES as SETTLEMENT_SOURCES, intrinsic, settlement_price
from research_lib.core import gex, pricing
from research_lib.core.chain import ChainSnapshot
from research_lib.core.market_view import MarketView
from research_lib.core.sizing import TradeStats, size_position
from research_lib.core.strategy import StrategyKind, select_strategy
from research_lib.errors import BacktestInputError, ResearchLibError

MULTIPLIER = 100.0
_STRIKE_SCALE = 1000          # strikes keyed in thousandths of a point
_STRIKE_BITS = 2 ** 35


class RootCodes:
    """Root symbols ↔ small integer codes, shared by every day of a run."""

    def __init__(self):
        self.codes: dict[str, int] = {}
        self.names: list[str] = []

    def encode(self, values) -> np.ndarray:
        codes, uniques = pd.factorize(values if isinstance(values, pd.Series) else np.asarray(values, dtype=object))
        mapping = np.empty(len(uniques), dtype=np.int64)
        for i, name in enumerate(uniques):
            if name not in self.codes:
                self.codes[name] = len(self.names)
                self.names.append(name)
            mapping[i] = self.codes[name]
        return mapping[codes]


def contract_keys(root_code, exp_days, is_call, strike) -> np.ndarray:
    """One int64 key per contract: (root code, expiry day since the epoch, right, strike in thousandths of a point),
    so a day's lookup is a sorted join; decoded by :class:`research_lib.backtest.history.ModelDay`."""
    k = np.round(np.asarray(strike, dtype=float) * _STRIKE_SCALE).astype(np.int64)
    return ((np.asarray(root_code, np.int64) * 65536 + np.asarray(exp_days, np.int64)) * 2
            + np.asarray(is_call, np.int64)) * _STRIKE_BITS + k


class _Day:
    """One snapshot's contracts as numpy arrays, indexed once by (root, expiration, right, strike)."""

    def __init__(self, snap: ChainSnapshot, roots: RootCodes):
        c = snap.contracts
        self.snap = snap
        self.date = snap.snapshot_date
        self.today = np.datetime64(self.date, "D")
        self._roots = roots
        self._root_series = c["root"]
        self.exp = c["expiration"].to_numpy().astype("datetime64[D]")
        self.is_call = (c["right"] == "C").to_numpy(dtype=bool)
        self.is_am = (c["settlement"] == "AM").to_numpy(dtype=bool)
        block = c[["strike", "bid", "ask", "iv", "open_interest"]].to_numpy(dtype=float)
        self.strike, self.bid, self.ask, self.iv, self.oi = (np.ascontiguousarray(block[:, j]) for j in range(5))
        self.exp_days = self.exp.astype(np.int64)
        self.rows = len(c)
        self.root_names = roots.names

    def root_of(self, idx: np.ndarray) -> np.ndarray:
        """Root codes of rows ``idx`` (encoded on demand: only the rows a lookup or a selection reads)."""
        return self._roots.encode(self._root_series.iloc[idx])

    def keys_of(self, idx: np.ndarray) -> np.ndarray:
        return contract_keys(self.root_of(idx), self.exp_days[idx], self.is_call[idx], self.strike[idx])

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key in today's chain, −1 where absent: a sorted join over the rows of the keys' expiries
        (the only ones that can match), so the day's whole chain is never sorted."""
        if not len(keys):
            return np.zeros(0, dtype=np.int64)
        key_exp = (keys // _STRIKE_BITS // 2) % 65536
        cand = np.flatnonzero(np.isin(self.exp_days, np.unique(key_exp)))
        if not len(cand):
            return np.full(len(keys), -1, dtype=np.int64)
        ck = self.keys_of(cand)
        order = np.argsort(ck, kind="stable")
        sk = ck[order]
        pos = np.minimum(np.searchsorted(sk, keys), len(sk) - 1)
        return np.where(sk[pos] == keys, cand[order[pos]], -1)

    def arrays(self) -> dict:
        return {"root_of": self.root_of, "root_names": self.root_names, "exp": self.exp, "is_am": self.is_am,
                "strike": self.strike, "is_call": self.is_call, "bid": self.bid, "ask": self.ask, "iv": self.iv,
                "oi": self.oi, "today": self.today}


@dataclasses.dataclass
class _Position:
    trade_id: int
    strategy: str
    entry_date: dt.date
    contracts: float
    keys: np.ndarray
    root: list
    exp: np.ndarray              # datetime64[D]
    settlement: np.ndarray       # "AM"/"PM"
    strike: np.ndarray
    is_call: np.ndarray
    side: np.ndarray             # +1 / -1 per unit
    settle_ns: np.ndarray
    entry_bid: np.ndarray
    entry_ask: np.ndarray
    entry_fill: np.ndarray
    entry_price: float
    commissions: float
    max_loss: float              # dollars for the whole position
    regime: str
    why: str
    mark_bid: np.ndarray
    mark_ask: np.ndarray
    mark_iv: np.ndarray
    missing_run: np.ndarray      # consecutive served days missing
    stale_count: int = 0
    hit: np.ndarray | None = None    # legs found in the latest day's chain

    @property
    def qty(self) -> np.ndarray:
        return self.side * self.contracts

    def mark_mid(self) -> np.ndarray:
        return (self.mark_bid + self.mark_ask) / 2.0


class SettleTimes:
    """Settlement moments (ns since the epoch, :func:`research_lib.calendar.settlement_times`) memoised by
    (expiry day, AM/PM) over a run."""

    def __init__(self, first: dt.date | None = None, last: dt.date | None = None):
        self.memo: dict[tuple[int, bool], int] = {}
        if first is not None and last is not None:
            # one calendar call for every expiry day a run can meet (calendar facts, not data: no look-ahead)
            days = pd.date_range(first, last, freq="D").to_numpy().astype("datetime64[D]")
            both = np.concatenate([days, days])
            am = np.r_[np.ones(len(days), bool), np.zeros(len(days), bool)]
            ns = cal.settlement_times(both, np.where(am, "AM", "PM")).asi8
            self.memo.update(zip(zip(both.astype(np.int64).tolist(), am.tolist(), strict=True), ns.tolist(),
                                 strict=True))

    def __call__(self, exp: np.ndarray, is_am: np.ndarray) -> np.ndarray:
        days = exp.astype("datetime64[D]").astype(np.int64)
        pairs = list(zip(days.tolist(), np.asarray(is_am, dtype=bool).tolist(), strict=True))
        memo = self.memo
        new = sorted({k for k in pairs if k not in memo})      # (not set - memo.keys(): that copies the memo)
        if new:
            ns = cal.settlement_times(np.array([d for d, _ in new], dtype="datetime64[D]"),
                                      np.array(["AM" if am else "PM" for _, am in new])).asi8
            self.memo.update(zip(new, ns.tolist(), strict=True))
        return np.array([self.memo[k] for k in pairs], dtype=np.int64)


def select_for_snapshot(snapshot: ChainSnapshot, params: BacktestParams, rate: float = 0.0):
    """The legs a fixed strategy (``params.strategy``, not ``auto``) would enter on one chain snapshot: the
    backtest's own selection (:func:`research_lib.backtest.legspec.select_legs`, valued at the snapshot's moment).

    Returns
    -------
    Selection or str
        ``rows`` are positions in ``snapshot.contracts``; a string says why nothing could be selected.
    """
    if params.strategy == "auto" or params.strategy in INDEX_STRATEGIES:
        raise BacktestInputError("strategy", f"{params.strategy!r}: select_for_snapshot selects a fixed strategy's "
                                             f"legs, not {params.strategy!r}")
    day = _Day(snapshot, RootCodes())
    valuation = gex.valuation_moment(snapshot, gex.GexConfig.model(rate=rate, div_yield=float(params.div_yield)))
    return select_legs(params.strategy, day.arrays(), float(snapshot.spot), valuation.value,
                       params.strategy_params(rate), rate, MULTIPLIER)


def _snapshots(feed, params: BacktestParams) -> tuple[list, list, list[dt.date], str, str]:
    """(days, an iterator source, missing days, underlying, source name) of ``feed`` within params' range."""
    if hasattr(feed, "days") and hasattr(feed, "missing_days"):
        days = [d for d in feed.days if (params.start is None or d >= params.start)
                and (params.end is None or d <= params.end)]
        missing = [d for d in feed.missing_days if days and days[0] <= d <= days[-1]]
        return days, feed, missing, getattr(feed, "symbol", ""), getattr(feed, "source", "")
    snaps = list(feed)
    for s in snaps:
        if not isinstance(s, ChainSnapshot):
            raise BacktestInputError("feed", f"a Feed or ChainSnapshots, got {type(s).__name__}")
    snaps = [s for s in snaps if (params.start is None or s.snapshot_date >= params.start)
             and (params.end is None or s.snapshot_date <= params.end)]
    if not snaps:
        raise BacktestInputError("feed", "no snapshot in the range asked")
    dates = [s.snapshot_date for s in snaps]
    if any(b <= a for a, b in zip(dates, dates[1:], strict=False)):
        raise BacktestInputError("feed", "snapshots must be one per trading day, in date order")
    have = set(dates)
    missing = [d.date() for d in cal.sessions(dates[0], dates[-1]) if d.date() not in have]
    return dates, snaps, missing, snaps[0].underlying, snaps[0].source


#: ``auto`` on a regime series: the structure of :func:`select_strategy`, built by the fixed-strategy rules.
AUTO_STRATEGY = {StrategyKind.BULL_PUT_SPREAD: "bull_put", StrategyKind.BEAR_CALL_SPREAD: "bear_call",
                  StrategyKind.IRON_CONDOR: "iron_condor", StrategyKind.BULL_CALL_SPREAD: "bull_call",
                  StrategyKind.BEAR_PUT_SPREAD: "bear_put", StrategyKind.NONE: None}


def _regime_rows(series: pd.DataFrame | None, days, params: BacktestParams) -> dict | None:
    """The regime series as {date: row dict} over ``days``; checks it covers every day asked."""
    if series is None:
        if params.regime_filter is not None:
            raise BacktestInputError("regime_filter", "a regime filter needs a regime series (run_backtest(..., "
                                                      "regime_series=...); the history backtest builds one)")
        return None
    need = {"regime", "trend", "action", "confidence", "why"}
    if not isinstance(series, pd.DataFrame) or not need <= set(series.columns):
        raise BacktestInputError("regime_series", f"a DataFrame with columns {sorted(need)}")
    idx = pd.DatetimeIndex(series.index).normalize()
    rows = {d.date(): r for d, r in zip(idx, series[sorted(need)].to_dict("records"), strict=True)}
    lacking = [d for d in days if d not in rows]
    if lacking:
        raise BacktestInputError("regime_series", f"no regime for {len(lacking)} served day(s), first {lacking[0]}")
    return rows


def _rates(days, params: BacktestParams, market_dir, feed=None) -> tuple[dict, str]:
    if params.rate is not None:
        return {d: float(params.rate) for d in days}, f"constant {params.rate:g} (given)"
    given = getattr(feed, "rates", None)
    if isinstance(given, dict) and all(d in given for d in days):
        # a feed that carries its own rates (the modelled history: the day table's 13-week T-bill)
        return {d: float(given[d]) for d in days}, "the 13-week T-bill of each day, as the feed's day table gives it"
    # lazy: start-up time — the market loaders read files; imported only when a run asks for the T-bill
    from research_lib.data.market import risk_free_rates

    try:
        table = risk_free_rates(list(days), market_dir=market_dir)
    except (ResearchLibError, OSError) as exc:
        return {d: 0.0 for d in days}, f"0 (the 13-week T-bill history could not be read: {exc})"
    col = "rate" if "rate" in table.columns else table.columns[0]
    vals = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
    out = {d: (float(v) if np.isfinite(v) else 0.0) for d, v in zip(days, vals, strict=True)}
    n_missing = int((~np.isfinite(vals)).sum())
    text = "the 13-week T-bill of each day (research_lib.data.market.risk_free_rates, auto source)"
    if n_missing:
        text += f"; 0 on {n_missing} day(s) it does not cover"
    return out, text


def run_backtest(feed, params: BacktestParams | None = None, *, market_history=None, market_dir=None,
                 daily: pd.DataFrame | None = None, progress: Callable[[int, int, dt.date], None] | None = None,
                 regime_series: pd.DataFrame | None = None) -> BacktestResult:
    """Backtest ``params`` over ``feed``'s days (see the module docstring for the loop and the accounting).

    Parameters
    ----------
    feed : Feed or iterable of ChainSnapshot
        One snapshot per trading day in date order (a :class:`~research_lib.backtest.feed.Feed`, or snapshots:
        their missing sessions are computed from the NYSE calendar).
    params : BacktestParams, optional
        Defaults: ``BacktestParams()``.
    market_history : MarketHistory, optional
        For ``auto`` (:func:`research_lib.data.market.load_market_history` of ``market_dir`` when None).
    market_dir : path, optional
        Where the market files are (daily SPX history for settlements, the T-bill, the decision's inputs).
    daily : DataFrame, optional
        The underlying's daily history (``open``, ``close``, date-indexed) for settlements; default
        :func:`research_lib.data.market.load_index_daily` of ``market_dir``, read when a leg first expires.
    progress : callable, optional
        ``progress(i, n, date)`` after each day.
    regime_series : DataFrame, optional
        The regime of each day (:func:`research_lib.core.regime_series.regime_series`: ``regime``, ``trend``,
        ``action``, ``confidence``, ``why``; date-indexed, each row as of its own date). With it, ``auto`` takes
        its structure from the day's row (:func:`research_lib.core.strategy.select_strategy` of the action and the
        trend; legs by the fixed-strategy rules; size by ``size_position`` at the row's confidence) instead of
        running ``decide_on`` on the chain, and ``regime_filter`` reads it. Needed for ``regime_filter`` and for
        ``auto`` on feeds without chains (the modelled history).

    Returns
    -------
    BacktestResult

    Raises
    ------
    BacktestInputError
        Bad parameters or feed (before any day runs).
    SettlementError
        A leg expires on a session the daily history lacks.
    """
    if params is None:
        params = BacktestParams()
    if not isinstance(params, BacktestParams):
        raise BacktestInputError("params", f"a BacktestParams, got {type(params).__name__}")
    if params.strategy in INDEX_STRATEGIES:
        # lazy: start-up time — the index methodologies (putwrite/buywrite) load only when asked for
        from research_lib.backtest.indexwrite import run_index_strategy

        days = feed
        if params.start is not None or params.end is not None:
            days = [s for s in feed if (params.start is None or s.snapshot_date >= params.start)
                    and (params.end is None or s.snapshot_date <= params.end)]
        tick = None if progress is None else (lambda done, total: progress(done, total, None))
        result = run_index_strategy(days, params.strategy, account=params.account, fill=params.fill,
                                    commission=params.commission, market_dir=market_dir,
                                    market_history=market_history, progress=tick)
        return dataclasses.replace(result, params=params.to_dict())
    return _Engine(feed, params, market_history=market_history, market_dir=market_dir, daily=daily,
                   progress=progress, regime_series=regime_series).run()


class _Engine:
    def __init__(self, feed, params: BacktestParams, *, market_history, market_dir, daily, progress,
                 regime_series=None):
        self.p = params
        self.days, self.source_iter, self.missing, self.underlying, self.source = _snapshots(feed, params)
        if not self.days:
            raise BacktestInputError("feed", "no trading day in the range asked")
        self.market_dir = market_dir
        self.daily = daily
        self.progress = progress
        self.rates, self.rates_text = _rates(self.days, params, market_dir, feed)
        self.regimes = _regime_rows(regime_series, self.days, params)
        self.session_no = {d.date(): i for i, d in enumerate(cal.sessions(self.days[0], self.days[-1]))}
        self.fill_model, self.fill_fraction = params.fill_model
        self.entry_kind, self.entry_n = params.entry_kind
        self.history = None
        if params.strategy == "auto" and self.regimes is None:
            if market_history is None:
                # lazy: start-up time — only the regime-driven run reads the market files
                from research_lib.data.market import load_market_history

                market_history = load_market_history(market_dir)
            self.history = market_history
        self.roots = RootCodes()
        self.settle_times = SettleTimes(self.days[0], self.days[-1] + dt.timedelta(
            days=params.dte + params.dte_tolerance + 400))
        self.open: list[_Position] = []
        self.trades: list[dict] = []
        self.legs: list[dict] = []
        self.equity: list[dict] = []
        self.cash = float(params.account)
        self.next_id = 1
        self.skips: dict[str, int] = {}
        self.closed_returns: list[float] = []
        self.previous_decision = None
        self.own_regime_gex: dict = {}
        self.regime_today = ""
        self.rows_seen = 0

    # ------------------------------------------------------------------------------------------------
    def _daily(self) -> pd.DataFrame:
        if self.daily is None:
            # lazy: start-up time — the daily history is read only when a leg first expires
            from research_lib.data.market import load_index_daily

            self.daily = load_index_daily("SPX" if self.underlying in ("SPX", "SPXW", "") else self.underlying,
                                          market_dir=self.market_dir)
        return self.daily

    def _fill(self, bid, ask, side_close_or_open) -> np.ndarray:
        return fills_mod.fill_price(bid, ask, side_close_or_open, self.fill_model, self.fill_fraction,
                                    self.underlying or "SPX")

    def run(self) -> BacktestResult:
        n = len(self.days)
        last = self.days[-1]
        wanted = set(self.days)
        i = 0
        for snap in self.source_iter:
            if snap.snapshot_date not in wanted:
                continue
            self._step(snap, i, snap.snapshot_date == last)
            i += 1
            if self.progress is not None:
                self.progress(i, n, snap.snapshot_date)
        return self._result()

    def _step(self, snap, i: int, is_last: bool) -> None:
        if isinstance(snap, ChainSnapshot):
            day = _Day(snap, self.roots)
            rate = self.rates.get(day.date, 0.0)
            valuation = gex.valuation_moment(snap, gex.GexConfig.model(rate=rate, div_yield=float(self.p.div_yield)))
        else:
            # a modelled session (research_lib.backtest.history.HistoryDay): the same interface, priced lazily
            day = snap.engine_day(self.roots, self.settle_times, self.p)
            rate = self.rates.get(day.date, 0.0)
            valuation = snap.valuation
        # (a) marks
        stale_today = self._mark(day)
        report = None
        regime_row = self.regimes.get(day.date) if self.regimes is not None else None
        if regime_row is not None:
            self.regime_today = regime_row["regime"]
        elif self.p.strategy == "auto":
            # the day's decision sees today's marks (equity, open risk) and the trades closed before today
            report = self._decide(snap, rate)
            self.regime_today = str(report.regime.regime)
        # (b) exits
        for pos in list(self.open):
            reason = self._exit_reason(pos, day, is_last)
            if reason is not None:
                self._close(pos, day, reason)
        # (c) entries
        if not is_last and self._entry_due(i, day.date):
            if len(self.open) < self.p.max_open:
                self._enter(day, snap, valuation, rate, report, regime_row)
        # (e) the equity row
        self._equity_row(day, valuation, rate, snap.spot, stale_today)
        self.rows_seen += day.rows

    # (a) --------------------------------------------------------------------------------------------
    def _mark(self, day: _Day) -> int:
        if not self.open:
            return 0
        keys = np.concatenate([p.keys for p in self.open])
        rows = day.lookup(keys)
        stale = 0
        at = 0
        for pos in self.open:
            r = rows[at:at + len(pos.keys)]
            at += len(pos.keys)
            hit = r >= 0
            if hit.any():       # (a modelled day holds no row at all when every leg asked for has settled)
                take = np.maximum(r, 0)
                pos.mark_bid = np.where(hit, day.bid[take], pos.mark_bid)
                pos.mark_ask = np.where(hit, day.ask[take], pos.mark_ask)
                iv_today = day.iv[take]
                pos.mark_iv = np.where(hit & np.isfinite(iv_today) & (iv_today > 0), iv_today, pos.mark_iv)
            live = pos.exp > day.today
            miss = ~hit & live            # an expired leg is settled, not missing
            pos.missing_run = np.where(miss, pos.missing_run + 1, 0)
            n_miss = int(miss.sum())
            pos.stale_count += n_miss
            stale += n_miss
            pos.hit = hit
        return stale

    # (b) --------------------------------------------------------------------------------------------
    def _exit_reason(self, pos: _Position, day: _Day, is_last: bool) -> str | None:
        p = self.p
        if (pos.exp <= day.today).any():
            return "expiry"
        close_mid = float(np.sum(-pos.side * pos.mark_mid()))
        pnl_unit = pos.entry_price - close_mid
        basis = abs(pos.entry_price)
        eps = 1e-9
        if p.profit_target is not None and pnl_unit >= p.profit_target * basis - eps:
            return "profit_target"
        if p.stop_loss is not None and -pnl_unit >= p.stop_loss * basis - eps:
            return "stop_loss"
        dte = int((pos.exp.min() - day.today).astype(int))
        if p.exit_dte is not None and dte <= p.exit_dte:
            return "exit_dte"
        held = self.session_no.get(day.date, 0) - self.session_no.get(pos.entry_date, 0)
        if p.max_hold is not None and held >= p.max_hold:
            return "max_hold"
        if p.regime_exit and self.regime_today and pos.regime and self.regime_today != pos.regime:
            return "regime_change"
        if (pos.missing_run > p.missing_leg_days).any():
            return "missing_legs"
        if is_last:
            return "end_of_data"
        return None

    def _close(self, pos: _Position, day: _Day, reason: str) -> None:
        n = len(pos.keys)
        hit = pos.hit if pos.hit is not None else np.ones(n, dtype=bool)
        expired = pos.exp <= day.today
        close_side = -pos.side
        fill = self._fill(pos.mark_bid, pos.mark_ask, close_side)
        exit_value = pos.mark_mid().copy()
        kind = np.where(hit, "quote", "last_mark").astype(object)
        settle_px = np.full(n, np.nan)
        settle_src = np.full(n, "", dtype=object)
        exit_date = np.full(n, day.date, dtype=object)
        commission_legs = np.where(expired, 0.0, 1.0)
        if expired.any():
            hist = self._daily()
            for j in np.flatnonzero(expired):
                s = settlement_price(pd.Timestamp(pos.exp[j]), str(pos.settlement[j]), hist)
                settle_px[j] = s.price
                settle_src[j] = s.source
                exit_value[j] = float(intrinsic(pos.strike[j], "C" if pos.is_call[j] else "P", s.price))
                fill[j] = exit_value[j]
                kind[j] = "settlement"
                exit_date[j] = s.date
        exit_price = float(np.sum(-pos.side * fill))
        commission = float(self.p.commission) * float(np.sum(np.abs(pos.qty) * commission_legs))
        self.cash -= exit_price * MULTIPLIER * pos.contracts + commission
        commissions = pos.commissions + commission
        pnl = (pos.entry_price - exit_price) * MULTIPLIER * pos.contracts - commissions
        close_date = max(exit_date) if n else day.date
        flags = []
        if pos.stale_count:
            flags.append(f"stale_marks:{pos.stale_count}")
        if (kind == "last_mark").any():
            flags.append(f"closed_at_last_mark:{int((kind == 'last_mark').sum())}")
        held = self.session_no.get(close_date, self.session_no.get(day.date, 0)) - self.session_no.get(pos.entry_date,
                                                                                                      0)
        self.trades.append({
            "trade_id": pos.trade_id, "entry_date": pos.entry_date, "exit_date": close_date,
            "strategy": pos.strategy, "contracts": float(pos.contracts), "entry_price": _r(pos.entry_price),
            "exit_price": _r(exit_price), "exit_reason": reason, "pnl": _r(pnl), "commissions": _r(commissions),
            "days_held": int(held), "regime": pos.regime, "why": pos.why, "max_loss": _r(pos.max_loss),
            "flags": ";".join(flags)})
        for j in range(n):
            self.legs.append({
                "trade_id": pos.trade_id, "root": pos.root[j], "expiration": pd.Timestamp(pos.exp[j]).date(),
                "settlement": str(pos.settlement[j]), "strike": float(pos.strike[j]),
                "right": "C" if pos.is_call[j] else "P", "quantity": float(pos.qty[j]),
                "entry_date": pos.entry_date, "entry_bid": float(pos.entry_bid[j]),
                "entry_ask": float(pos.entry_ask[j]), "entry_mid": (float(pos.entry_bid[j]) + float(pos.entry_ask[j])) / 2,
                "entry_fill": float(pos.entry_fill[j]), "exit_date": exit_date[j],
                "exit_bid": float(pos.mark_bid[j]) if kind[j] != "settlement" else np.nan,
                "exit_ask": float(pos.mark_ask[j]) if kind[j] != "settlement" else np.nan,
                "exit_value": float(exit_value[j]), "exit_fill": float(fill[j]), "exit_kind": kind[j],
                "settlement_price": float(settle_px[j]), "settlement_source": settle_src[j]})
        self.open.remove(pos)
        if pos.max_loss > 0:
            self.closed_returns.append(pnl / pos.max_loss)

    # (c) --------------------------------------------------------------------------------------------
    def _entry_due(self, i: int, day: dt.date) -> bool:
        k = self.entry_kind
        if k == "when-flat":
            return not self.open
        if k == "daily":
            return True
        if k == "every":
            return i % self.entry_n == 0
        return day == cal.monthly_expiry(day.year, day.month)

    def _skip(self, why: str) -> None:
        self.skips[why] = self.skips.get(why, 0) + 1

    def _stats(self) -> TradeStats | None:
        return TradeStats.from_returns(self.closed_returns) if self.closed_returns else None

    def _open_risk(self) -> float:
        return float(sum(p.max_loss for p in self.open))

    def _equity_now(self, day: _Day) -> float:
        return self.cash + float(sum(np.sum(p.qty * p.mark_mid()) for p in self.open)) * MULTIPLIER

    def _enter(self, day: _Day, snap: ChainSnapshot, valuation: pd.Timestamp, rate: float, report,
               regime_row: dict | None = None) -> None:
        p = self.p
        strategy = p.strategy
        confidence = 100.0
        if p.regime_filter is not None and (regime_row is None or regime_row["regime"] not in p.regime_filter):
            self._skip(f"regime filter: {regime_row['regime'] if regime_row else 'no regime'} not in "
                       f"{'/'.join(p.regime_filter)}")
            return
        if p.strategy == "auto" and regime_row is not None:
            strategy = AUTO_STRATEGY[select_strategy(regime_row["action"], regime_row["trend"]).kind]
            if strategy is None:
                self._skip(f"auto: {regime_row['action']} ({regime_row['regime']}, {regime_row['trend']})")
                return
            confidence = float(regime_row["confidence"])
        if p.strategy == "auto" and regime_row is None:
            strat, sizing = report.strategy, report.sizing
            if not getattr(strat, "valid", False) or sizing is None or sizing.contracts <= 0:
                self._skip("auto: " + (getattr(strat, "code", None) or ("size 0" if getattr(strat, "valid", False)
                                                                       else "no trade")))
                return
            leg_keys = contract_keys(self.roots.encode([leg.root for leg in strat.legs]),
                             np.array([np.datetime64(leg.expiration, "D").astype(np.int64) for leg in strat.legs]),
                             np.array([leg.right == "C" for leg in strat.legs]),
                             np.array([leg.strike for leg in strat.legs]))
            rows = day.lookup(leg_keys)
            if (rows < 0).any():
                self._skip("auto: a leg is not in the day's chain")
                return
            sides = np.array([leg.side * leg.quantity for leg in strat.legs])
            contracts = int(sizing.contracts)
            max_loss_per = float(strat.max_loss)
            name = strat.kind.value
            regime = self.regime_today
            why = str(report.decision.why)
        else:
            sp = p.strategy_params(rate)
            sel = select_legs(strategy, day.arrays(), float(snap.spot), valuation.value, sp, rate, MULTIPLIER,
                              settle_times=self.settle_times)
            if isinstance(sel, str):
                self._skip(sel)
                return
            rows, sides = sel.rows, sel.sides
            max_loss_per = sel.max_loss
            equity = self._equity_now(day)
            sizing_params = p.sizing_params
            if p.contracts is not None:
                contracts = int(p.contracts)
                cap = sizing_params.max_total_open_risk * equity
                if self._open_risk() + contracts * max_loss_per > cap + 1e-6:
                    self._skip("open-risk cap")
                    return
            else:
                res = size_position(equity, max_loss_per, self._stats(), open_risk=self._open_risk(),
                                    params=sizing_params, confidence=confidence)
                contracts = int(res.contracts)
                if contracts <= 0:
                    self._skip(f"sized 0 contracts ({res.capped_by or 'budget'})")
                    return
            name = strategy
            regime = regime_row["regime"] if regime_row is not None else ""
            why = sel.why if regime_row is None else f"{sel.why}. Regime: {regime_row['why']}"
        bid, ask = day.bid[rows], day.ask[rows]
        fill = self._fill(bid, ask, sides)
        entry_price = float(np.sum(-sides * fill))
        commission = float(p.commission) * float(np.sum(np.abs(sides))) * contracts
        self.cash += entry_price * MULTIPLIER * contracts - commission
        exp = day.exp[rows]
        settle = np.where(day.is_am[rows], "AM", "PM").astype(object)
        settle_ns = self.settle_times(exp, day.is_am[rows])
        pos = _Position(
            trade_id=self.next_id, strategy=name, entry_date=day.date, contracts=float(contracts),
            keys=day.keys_of(rows), root=[day.root_names[r] for r in day.root_of(rows)], exp=exp, settlement=settle,
            strike=day.strike[rows], is_call=day.is_call[rows], side=sides.astype(float), settle_ns=settle_ns,
            entry_bid=bid, entry_ask=ask, entry_fill=fill, entry_price=entry_price, commissions=commission,
            max_loss=max_loss_per * contracts, regime=regime, why=why, mark_bid=bid.copy(), mark_ask=ask.copy(),
            mark_iv=day.iv[rows].copy(), missing_run=np.zeros(len(rows), dtype=int))
        pos.hit = np.ones(len(rows), dtype=bool)
        self.next_id += 1
        self.open.append(pos)

    def _decide(self, snap: ChainSnapshot, rate: float):
        # lazy: start-up time — the pipeline (regime, alerts, decision records) is needed only for ``auto``
        from research_lib.pipeline.decide import decide_on

        view = MarketView.as_of(self.history, snap.snapshot_date)
        if view.regime_gex is None and self.own_regime_gex:
            # the backtest's own trailing regime GEX of the days before (decide_on keeps only earlier days)
            series = pd.Series(self.own_regime_gex, dtype=float)
            series.index = pd.DatetimeIndex(series.index)
            view = dataclasses.replace(view, regime_gex=series)
        equity = self.cash + float(sum(np.sum(p.qty * p.mark_mid()) for p in self.open)) * MULTIPLIER
        report = decide_on(snap, view, account=max(equity, 1.0), stats=self._stats(), open_risk=self._open_risk(),
                           previous=self.previous_decision, decided_by="backtest", timestamp=snap.quote_time,
                           sizing_params=self.p.sizing, regime_params=self.p.regime,
                           strategy_params=self.p.strategy_params(rate))
        value = getattr(report.regime_gex, "value", float("nan"))
        if value is not None and math.isfinite(value):
            self.own_regime_gex[pd.Timestamp(snap.snapshot_date)] = float(value)
        self.previous_decision = report.decision
        return report

    # (e) --------------------------------------------------------------------------------------------
    def _equity_row(self, day: _Day, valuation: pd.Timestamp, rate: float, spot: float, stale: int) -> None:
        pv = pvn = 0.0
        greeks = dict(delta=0.0, gamma=0.0, theta=0.0, vega=0.0)
        if self.open:
            qty = np.concatenate([p.qty for p in self.open])
            mid = np.concatenate([p.mark_mid() for p in self.open])
            bid = np.concatenate([p.mark_bid for p in self.open])
            ask = np.concatenate([p.mark_ask for p in self.open])
            pv = float(np.sum(qty * mid)) * MULTIPLIER
            pvn = float(np.sum(qty * np.where(qty > 0, bid, ask))) * MULTIPLIER
            K = np.concatenate([p.strike for p in self.open])
            is_call = np.concatenate([p.is_call for p in self.open])
            iv = np.concatenate([p.mark_iv for p in self.open])
            T = (np.concatenate([p.settle_ns for p in self.open]) - valuation.value) / 1e9 / (365.0 * 86400.0)
            ok = (T > 0) & np.isfinite(iv) & (iv > 0)
            if ok.any():
                g = pricing.greeks(float(spot), K[ok], T[ok], iv[ok], rate, float(self.p.div_yield), is_call[ok])
                w = qty[ok] * MULTIPLIER
                greeks = dict(delta=float(np.sum(w * g.delta)), gamma=float(np.sum(w * g.gamma)),
                              theta=float(np.sum(w * g.theta)) / 365.0, vega=float(np.sum(w * g.vega)) * 0.01)
        self.equity.append({"date": day.date, "equity": _r(self.cash + pv), "cash": _r(self.cash),
                            "positions_value": _r(pv), "positions_value_natural": _r(pvn), "drawdown": 0.0,
                            **greeks, "open_positions": len(self.open), "stale_legs": int(stale)})

    # ------------------------------------------------------------------------------------------------
    def _result(self) -> BacktestResult:
        trades = pd.DataFrame(self.trades, columns=list(TRADE_COLUMNS)) if self.trades else empty_table(TRADE_COLUMNS)
        legs = pd.DataFrame(self.legs, columns=list(LEG_COLUMNS)) if self.legs else empty_table(LEG_COLUMNS)
        equity = pd.DataFrame(self.equity, columns=list(EQUITY_COLUMNS))
        if len(equity):
            eq = equity["equity"].astype(float)
            equity["drawdown"] = (eq / eq.cummax() - 1.0).to_numpy()
        p = self.p
        model = self.fill_model if self.fill_model != "slippage" else f"slippage:{self.fill_fraction:g}"
        assumptions = {
            "fills": {"mid": "each leg at (bid+ask)/2 rounded to the tick (ties against the trader)",
                      "natural": "buy at the ask, sell at the bid (the quote itself)",
                      "slippage": f"each leg at mid ± {self.fill_fraction:g} × half spread against the trader, "
                                  "rounded to the tick"}[self.fill_model] + f" [{model}]; exits and marks from the "
                                                                             "same day's chain; profit target and "
                                                                             "stop at mid marks",
            "commission": f"${p.commission:g} per contract and leg at every fill; none at cash settlement",
            "ticks": {k: [list(t) for t in v] for k, v in fills_mod.TICKS.items()} | {
                "default": [list(t) for t in fills_mod.DEFAULT_TICK]},
            "settlement": {style: text for style, (_, text) in SETTLEMENT_SOURCES.items()}
            | {"note": "AM-settled monthlies settle at the daily history's opening print, not the Special "
                       "Opening Quotation (no SOQ history here); intrinsic value per unit × 100"},
            "sizing": ("fixed " + f"{p.contracts} contracts per entry (open-risk cap "
                                  f"{p.sizing_params.max_total_open_risk:g} of equity kept)" if p.contracts
                       else "core.sizing.size_position on the running equity: Kelly "
                            f"×{p.sizing_params.kelly_fraction:g} from the backtest's own closed trades (returns "
                            f"on max loss), the bootstrap risk {p.sizing_params.bootstrap_risk:g} below "
                            f"{p.sizing_params.min_trades_for_kelly} trades, caps {p.sizing_params.max_risk_per_trade:g}"
                            f" per trade and {p.sizing_params.max_total_open_risk:g} open") if p.strategy != "auto"
            else "decide_on's sizing (Kelly from the backtest's closed trades, caps) on the running equity",
            "max_loss": "credit spreads: (width − credit) × 100; debit spreads: debit × 100; short put: (strike − "
                        "credit) × 100; strangle: the put side to zero (the call side is unbounded)",
            "rates": self.rates_text + f"; dividend yield {p.div_yield:g}",
            "greeks": "model greeks (core.pricing) of each open leg at its IV of the day (the last known IV of a "
                      "missing leg), × signed contracts × 100; theta per calendar day, vega per vol point",
            "missing_days": [d.isoformat() for d in self.missing],
            "missing_legs": f"a leg missing from a day's chain keeps its last quotes (flagged); after more than "
                            f"{p.missing_leg_days} served days in a row the position closes (missing_legs)",
            "entries_skipped": dict(self.skips),
            "entry_schedule": p.entry + "; never on the last served day",
            "chain_rows": int(self.rows_seen),
        }
        return BacktestResult(trades=trades, legs=legs, equity=equity, missing_days=tuple(self.missing),
                              assumptions=assumptions, params=p.to_dict(), underlying=self.underlying,
                              source=self.source, start=self.days[0], end=self.days[-1],
                              initial_equity=float(p.account))


def _r(x: float) -> float:
    """Cents-exact rounding of money and prices (floating sums of quotes)."""
    return float(round(float(x), 8))


def chain_rows(snapshots: Iterable[ChainSnapshot]) -> int:
    """Rows of every snapshot's contract table (the benchmark's unit)."""
    return int(sum(len(s.contracts) for s in snapshots))


__all__ = ["AUTO_STRATEGY", "MULTIPLIER", "RootCodes", "SettleTimes", "chain_rows", "contract_keys", "run_backtest"]
