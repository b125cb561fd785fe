"""The fast path of the history backtest, for sweeps: one step per *trade*, not per day.

:func:`research_lib.backtest.history.run_history_backtest` runs the engine day by day (the reference, with the
book's greeks). For the parameter sets most sweeps explore — a fixed strategy (or ``auto`` on the regime series),
``entry="when-flat"`` and ``max_open=1`` (the defaults), no ``regime_exit`` — the same backtest can jump from an
entry straight to its exit: :func:`run_history_fast` selects the legs with the engine's own code (the
:class:`~research_lib.backtest.history.ModelDay` of the entry day and
:func:`~research_lib.backtest.legspec.select_legs`), prices the held legs on every later session at once
(:func:`~research_lib.data.modelled_history.model_quotes` over a stacked surface), finds the first session where an
exit rule fires (the engine's order: expiry, profit target, stop loss, exit DTE, max hold, end of data), closes with
the engine's fills, commissions and settlement, and fills the equity of the days in between from the same marks.

Its trades and legs tables and the ``equity``, ``cash``, ``positions_value``, ``positions_value_natural``,
``open_positions`` and ``stale_legs`` columns equal the engine's (``tests/test_history_fastpath.py`` checks it
configuration by configuration); the book's greeks are not computed (NaN, said in ``assumptions["greeks"]``).
:func:`supports` says why a parameter set needs the engine.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pandas as pd

from research_lib import calendar as cal
from research_lib.backtest import fills as fills_mod, history
from research_lib.backtest.engine import AUTO_STRATEGY, MULTIPLIER, RootCodes, SettleTimes
from research_lib.backtest.legspec import select_legs
from research_lib.backtest.params import BacktestParams
from research_lib.backtest.results import (
    EQUITY_COLUMNS,
    LEG_COLUMNS,
    TRADE_COLUMNS,
    BacktestResult,
    empty_table,
)
from research_lib.backtest.settlement import intrinsic, settlement_price
from research_lib.core.sizing import TradeStats, size_position
from research_lib.core.strategy import select_strategy
from research_lib.data import modelled_history as mh
from research_lib.errors import BacktestInputError

#: Model days (an entry window's priced grid) a worker keeps between configurations (~0.2 MB each).
GRID_MEMO = 3000


def supports(params: BacktestParams) -> str | None:
    """None when :func:`run_history_fast` can run ``params``, else why the engine is needed."""
    if params.strategy in ("putwrite", "buywrite"):
        return f"{params.strategy} follows an index methodology (the engine)"
    if params.entry != "when-flat":
        return f"entry {params.entry!r} (the fast path enters only when flat)"
    if params.max_open != 1:
        return f"max_open {params.max_open} (the fast path holds one position)"
    if params.regime_exit:
        return "regime_exit (a daily regime check)"
    return None


def _r(x: float) -> float:
    return float(round(float(x), 8))


@dataclasses.dataclass
class _Stacked:
    """Per-session model inputs of the served days as arrays (a DaySurface with array fields prices many
    sessions at once)."""

    dates: list
    day64: np.ndarray
    spot: np.ndarray
    rate: np.ndarray
    div_yield: np.ndarray
    valuation: np.ndarray
    pins: tuple
    sigma_inf: np.ndarray
    rho: np.ndarray
    eta: np.ndarray
    vix: np.ndarray
    kappa: float
    gamma: float

    def cut(self, a: int, b: int) -> _Stacked:
        """Sessions ``a`` .. ``b - 1``."""
        arr = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out = {k: (v[a:b] if isinstance(v, np.ndarray) else v) for k, v in arr.items()}
        out["dates"] = self.dates[a:b]
        out["pins"] = tuple(x[a:b] for x in self.pins)
        return _Stacked(**out)

    def surface(self, j: np.ndarray) -> mh.DaySurface:
        return mh.DaySurface(vix9d=np.nan, vix=self.vix[j], vix3m=np.nan, atm_pins=tuple(p[j] for p in self.pins),
                             floored=False, sigma_inf=self.sigma_inf[j], kappa=self.kappa, rho=self.rho[j],
                             eta=self.eta[j], gamma=self.gamma)


def _stack(inputs: history.HistoryInputs, rows: list[int], rates: np.ndarray) -> _Stacked:
    s = [inputs.surfaces[i] for i in rows]
    kappas = {x.kappa for x in s}
    gammas = {x.gamma for x in s}
    if len(kappas) != 1 or len(gammas) != 1:
        raise BacktestInputError("inputs", "the fast path needs one kappa and gamma across the sessions' surfaces")
    t = inputs.table.iloc[rows]
    return _Stacked(dates=[d.date() for d in pd.DatetimeIndex(t.index)],
                    day64=pd.DatetimeIndex(t.index).to_numpy().astype("datetime64[D]"),
                    spot=t["close"].to_numpy(float), rate=rates, div_yield=t["div_yield"].to_numpy(float),
                    valuation=inputs.valuation_ns[rows],
                    pins=tuple(np.array([x.atm_pins[k] for x in s]) for k in range(3)),
                    sigma_inf=np.array([x.sigma_inf for x in s]), rho=np.array([x.rho for x in s]),
                    eta=np.array([x.eta for x in s]), vix=np.array([x.vix for x in s]),
                    kappa=kappas.pop(), gamma=gammas.pop())


def run_history_fast(params: BacktestParams, inputs: history.HistoryInputs) -> BacktestResult:
    """The history backtest of ``params`` on ``inputs`` by the fast path (see the module docstring).

    Raises
    ------
    BacktestInputError
        ``params`` the fast path does not support (:func:`supports`), or the engine's own input errors.
    """
    why = supports(params)
    if why is not None:
        raise BacktestInputError("params", f"the fast path cannot run {why}: use run_history_backtest")
    if params.dte + params.dte_tolerance > inputs.horizon_days:
        raise BacktestInputError("dte", f"dte {params.dte} + dte_tolerance {params.dte_tolerance} reaches beyond the "
                                        f"history's listing horizon of {inputs.horizon_days} days")
    return _Fast(params, inputs).run()


class _Fast:
    def __init__(self, p: BacktestParams, inputs: history.HistoryInputs):
        self.p = p
        self.inputs = inputs
        feed = history.HistoryFeed(inputs, start=p.start, end=p.end)
        self.rows = feed._rows
        self.n = len(self.rows)
        self.days = feed.days
        self.day_index = {d: k for k, d in enumerate(self.days)}
        self.rates_text = (f"constant {p.rate:g} (given)" if p.rate is not None
                           else "the 13-week T-bill of each day, as the feed's day table gives it")
        self.memo = inputs.memo
        # every session of the inputs (marks are memoised independently of this run's range), and the served ones
        # (the model prices with each day's own rate; params.rate, when given, is the backtest's rate for the
        # leg deltas, as in the engine)
        stacked = inputs.memo.get(("stack",))
        if stacked is None:
            stacked = inputs.memo[("stack",)] = _stack(inputs, list(range(len(inputs.days))), inputs.columns["rate"])
        self._all = stacked
        self.st = stacked.cut(self.rows[0], self.rows[-1] + 1)
        self.rates = np.full(self.n, float(p.rate)) if p.rate is not None else self.st.rate
        # one root coding and one settlement memo per inputs (the memoised model days carry their codes)
        self.roots = self.memo.setdefault(("roots",), RootCodes())
        self.settle_times = self.memo.get(("settle",))
        if self.settle_times is None:
            self.settle_times = self.memo[("settle",)] = SettleTimes(
                inputs.days[0], inputs.days[-1] + pd.Timedelta(days=inputs.horizon_days + 7).to_pytimedelta())
        self.fill_model, self.fill_fraction = p.fill_model
        needs = p.strategy == "auto" or p.regime_filter is not None
        self.regimes = inputs.regimes(p.regime).iloc[self.rows].to_dict("records") if needs else None
        self.cash = float(p.account)
        self.trades: list[dict] = []
        self.legs: list[dict] = []
        self.skips: dict[str, int] = {}
        self.closed_returns: list[float] = []
        self.equity = np.zeros(self.n)
        self.pv = np.zeros(self.n)
        self.pvn = np.zeros(self.n)
        self.cash_at = np.zeros(self.n)
        self.open_n = np.zeros(self.n, dtype=int)
        self.daily = inputs.daily
        self.next_id = 1

    def _skip(self, why: str) -> None:
        self.skips[why] = self.skips.get(why, 0) + 1

    def _fill(self, bid, ask, side) -> np.ndarray:
        return fills_mod.fill_price(bid, ask, side, self.fill_model, self.fill_fraction, "SPX")

    # ------------------------------------------------------------------------------------------------
    def run(self) -> BacktestResult:
        i = 0
        n = self.n
        while i < n:
            pos = None if i == n - 1 else self._enter(i)
            if pos is None:
                self._book(i, 0.0, 0.0, 0)
                i += 1
                continue
            i = self._hold(i, pos)
        return self._result()

    def _book(self, i: int, pv: float, pvn: float, n_open: int) -> None:
        self.cash_at[i] = self.cash
        self.pv[i] = pv
        self.pvn[i] = pvn
        self.equity[i] = self.cash + pv
        self.open_n[i] = n_open

    # entries ----------------------------------------------------------------------------------------
    def _enter(self, i: int) -> dict | None:
        p = self.p
        row = self.regimes[i] if self.regimes is not None else None
        strategy, confidence = p.strategy, 100.0
        if p.regime_filter is not None and row["regime"] not in p.regime_filter:
            self._skip(f"regime filter: {row['regime']} not in {'/'.join(p.regime_filter)}")
            return None
        if p.strategy == "auto":
            strategy = AUTO_STRATEGY[select_strategy(row["action"], row["trend"]).kind]
            if strategy is None:
                self._skip(f"auto: {row['action']} ({row['regime']}, {row['trend']})")
                return None
            confidence = float(row["confidence"])
        st = self.st
        rate = float(self.rates[i])
        sp = p.strategy_params(rate)
        key = ("select", self.rows[i], strategy, sp)
        chosen = self.memo.get(key)
        if chosen is None:
            day = self._grid_day(i, (max(p.dte - p.dte_tolerance, 0), p.dte + p.dte_tolerance))
            sel = select_legs(strategy, day.arrays(), float(st.spot[i]), int(st.valuation[i]), sp, rate, MULTIPLIER,
                              settle_times=self.settle_times)
            if isinstance(sel, str):
                chosen = sel
            else:
                rows = sel.rows
                chosen = (sel, dict(bid=day.bid[rows], ask=day.ask[rows], exp=day.exp[rows], is_am=day.is_am[rows],
                                    strike=day.strike[rows], is_call=day.is_call[rows],
                                    root=[day.root_names[r] for r in day.root_of(rows)]))
            self.memo[key] = chosen
        if isinstance(chosen, str):
            self._skip(chosen)
            return None
        sel, legs = chosen
        equity = self.cash
        sizing = p.sizing_params
        if p.contracts is not None:
            contracts = int(p.contracts)
            if contracts * sel.max_loss > sizing.max_total_open_risk * equity + 1e-6:
                self._skip("open-risk cap")
                return None
        else:
            stats = TradeStats.from_returns(self.closed_returns) if self.closed_returns else None
            res = size_position(equity, sel.max_loss, stats, open_risk=0.0, params=sizing, confidence=confidence)
            contracts = int(res.contracts)
            if contracts <= 0:
                self._skip(f"sized 0 contracts ({res.capped_by or 'budget'})")
                return None
        sides = sel.sides
        bid, ask = legs["bid"], legs["ask"]
        fill = self._fill(bid, ask, sides)
        entry_price = float(np.sum(-sides * fill))
        commission = float(p.commission) * float(np.sum(np.abs(sides))) * contracts
        self.cash += entry_price * MULTIPLIER * contracts - commission
        exp, is_am = legs["exp"], legs["is_am"]
        regime = row["regime"] if row is not None else ""
        pos = dict(trade_id=self.next_id, strategy=strategy, i=i, contracts=float(contracts), root=legs["root"],
                   exp=exp, is_am=is_am, settle_ns=self.settle_times(exp, is_am), strike=legs["strike"],
                   is_call=legs["is_call"], side=sides.astype(float), entry_bid=bid, entry_ask=ask, entry_fill=fill,
                   entry_price=entry_price, commissions=commission, max_loss=sel.max_loss * contracts,
                   regime=regime, why=sel.why if row is None else f"{sel.why}. Regime: {row['why']}",
                   mark_key=key)
        self.next_id += 1
        return pos

    def _grid_day(self, i: int, window: tuple[int, int]) -> history.ModelDay:
        """The model day of session ``i`` with its entry-window grid priced, shared by every configuration with the
        same window (the last :data:`GRID_MEMO` of them are kept: a sweep runs the configurations of one window
        together, see :func:`research_lib.sweep.runner.batches`)."""
        grids = self.memo.setdefault(("grids",), collections.OrderedDict())
        key = (self.rows[i], window)
        day = grids.get(key)
        if day is None:
            day = history.ModelDay(self.inputs, self.rows[i], self.roots, self.settle_times, window)
            day.arrays()
            grids[key] = day
            if len(grids) > GRID_MEMO:
                grids.popitem(last=False)
        else:
            grids.move_to_end(key)
        return day

    # holding and the exit ----------------------------------------------------------------------------
    def _hold(self, i: int, pos: dict) -> int:
        p, st, n = self.p, self.st, self.n
        qty = pos["side"] * pos["contracts"]
        mid0 = (pos["entry_bid"] + pos["entry_ask"]) / 2.0
        nat0 = np.where(qty > 0, pos["entry_bid"], pos["entry_ask"])
        self._book(i, float(np.sum(qty * mid0)) * MULTIPLIER, float(np.sum(qty * nat0)) * MULTIPLIER, 1)
        min_exp = pos["exp"].min()
        # sessions after the entry up to the first on or after the nearest expiry (or the last served)
        js, bid, ask, live = self._marks(i, pos)
        mid = (bid + ask) / 2.0
        close_mid = np.sum(-pos["side"][None, :] * mid, axis=1)
        pnl_unit = pos["entry_price"] - close_mid
        basis = abs(pos["entry_price"])
        eps = 1e-9
        rules = [("expiry", (pos["exp"][None, :] <= st.day64[js][:, None]).any(axis=1))]
        if p.profit_target is not None:
            rules.append(("profit_target", pnl_unit >= p.profit_target * basis - eps))
        if p.stop_loss is not None:
            rules.append(("stop_loss", -pnl_unit >= p.stop_loss * basis - eps))
        if p.exit_dte is not None:
            rules.append(("exit_dte", (min_exp - st.day64[js]).astype(int) <= p.exit_dte))
        if p.max_hold is not None:
            rules.append(("max_hold", (js - i) >= p.max_hold))
        rules.append(("end_of_data", js == n - 1))
        fired = np.column_stack([r for _, r in rules])
        any_fired = fired.any(axis=1)
        k = int(np.flatnonzero(any_fired)[0])            # end_of_data or expiry fires by j_end at the latest
        reason = rules[int(np.flatnonzero(fired[k])[0])][0]
        if k:
            held = js[:k]
            self.cash_at[held] = self.cash
            self.pv[held] = np.sum(qty * mid[:k], axis=1) * MULTIPLIER
            self.pvn[held] = np.sum(qty * np.where(qty > 0, bid[:k], ask[:k]), axis=1) * MULTIPLIER
            self.equity[held] = self.cash + self.pv[held]
            self.open_n[held] = 1
        j_exit = int(js[k])
        self._close(pos, j_exit, bid[k], ask[k], live[k], reason)
        return j_exit

    def _marks(self, i: int, pos: dict):
        """(served days after the entry up to the exit horizon, bid, ask, quoted) of the position's legs: the model's
        quotes on each later session up to the first on or after the nearest expiry, memoised per (entry day,
        selection) in input-row space and cut at the last served day."""
        key = ("marks", self.rows[i], pos["mark_key"][2:])
        hit = self.memo.get(key)
        if hit is None:
            # computed on the inputs' own sessions (independent of where this run's range ends)
            r0 = self.rows[i]
            rows_all = np.arange(r0 + 1, len(self.inputs.days))
            dates = self._all.day64
            stop = np.flatnonzero(dates[rows_all] >= pos["exp"].min())
            r_end = int(rows_all[stop[0]]) if len(stop) else len(self.inputs.days) - 1
            rr = np.arange(r0 + 1, r_end + 1)
            m, L = len(rr), len(pos["side"])
            bid = np.empty((m, L))
            ask = np.empty((m, L))
            T = (pos["settle_ns"][None, :] - self.inputs.valuation_ns[rr][:, None]) / 1e9 / cal.YEAR_SECONDS
            live = T > 0
            if live.any():
                jj, ll = np.nonzero(live)
                a = self._all
                q = mh.model_quotes(a.spot[rr][jj], pos["strike"][ll], T[jj, ll], pos["is_call"][ll], a.rate[rr][jj],
                                    a.div_yield[rr][jj], a.surface(rr[jj]))
                bid[jj, ll] = q.bid
                ask[jj, ll] = q.ask
            # a leg without a quote (settled at that day's close or open) keeps its last mark
            last_bid, last_ask = pos["entry_bid"].copy(), pos["entry_ask"].copy()
            for r in range(m):
                bid[r] = np.where(live[r], bid[r], last_bid)
                ask[r] = np.where(live[r], ask[r], last_ask)
                last_bid, last_ask = bid[r], ask[r]
            hit = (rr, bid, ask, live)
            self.memo[key] = hit
        rr, bid, ask, live = hit
        keep = rr <= self.rows[-1]
        return rr[keep] - self.rows[0], bid[keep], ask[keep], live[keep]

    def _close(self, pos: dict, j: int, mark_bid, mark_ask, hit, reason: str) -> None:
        n = len(pos["side"])
        today = self.st.day64[j]
        expired = pos["exp"] <= today
        close_side = -pos["side"]
        fill = self._fill(mark_bid, mark_ask, close_side)
        exit_value = (mark_bid + mark_ask) / 2.0
        kind = np.where(hit, "quote", "last_mark").astype(object)
        settle_px = np.full(n, np.nan)
        settle_src = np.full(n, "", dtype=object)
        exit_date = np.full(n, self.days[j], dtype=object)
        commission_legs = np.where(expired, 0.0, 1.0)
        for leg in np.flatnonzero(expired):
            s = settlement_price(pd.Timestamp(pos["exp"][leg]), "AM" if pos["is_am"][leg] else "PM", self.daily)
            settle_px[leg] = s.price
            settle_src[leg] = s.source
            exit_value[leg] = float(intrinsic(pos["strike"][leg], "C" if pos["is_call"][leg] else "P", s.price))
            fill[leg] = exit_value[leg]
            kind[leg] = "settlement"
            exit_date[leg] = s.date
        qty = pos["side"] * pos["contracts"]
        exit_price = float(np.sum(-pos["side"] * fill))
        commission = float(self.p.commission) * float(np.sum(np.abs(qty) * commission_legs))
        self.cash -= exit_price * MULTIPLIER * pos["contracts"] + commission
        commissions = pos["commissions"] + commission
        pnl = (pos["entry_price"] - exit_price) * MULTIPLIER * pos["contracts"] - commissions
        close_date = max(exit_date)
        flags = [f"closed_at_last_mark:{int((kind == 'last_mark').sum())}"] if (kind == "last_mark").any() else []
        self.trades.append({
            "trade_id": pos["trade_id"], "entry_date": self.days[pos["i"]], "exit_date": close_date,
            "strategy": pos["strategy"], "contracts": float(pos["contracts"]), "entry_price": _r(pos["entry_price"]),
            "exit_price": _r(exit_price), "exit_reason": reason, "pnl": _r(pnl), "commissions": _r(commissions),
            "days_held": int(self.day_index.get(close_date, j) - pos["i"]),
            "regime": pos["regime"], "why": pos["why"], "max_loss": _r(pos["max_loss"]), "flags": ";".join(flags)})
        for leg in range(n):
            self.legs.append({
                "trade_id": pos["trade_id"], "root": pos["root"][leg],
                "expiration": pd.Timestamp(pos["exp"][leg]).date(),
                "settlement": "AM" if pos["is_am"][leg] else "PM", "strike": float(pos["strike"][leg]),
                "right": "C" if pos["is_call"][leg] else "P", "quantity": float(qty[leg]),
                "entry_date": self.days[pos["i"]], "entry_bid": float(pos["entry_bid"][leg]),
                "entry_ask": float(pos["entry_ask"][leg]),
                "entry_mid": (float(pos["entry_bid"][leg]) + float(pos["entry_ask"][leg])) / 2,
                "entry_fill": float(pos["entry_fill"][leg]), "exit_date": exit_date[leg],
                "exit_bid": float(mark_bid[leg]) if kind[leg] != "settlement" else np.nan,
                "exit_ask": float(mark_ask[leg]) if kind[leg] != "settlement" else np.nan,
                "exit_value": float(exit_value[leg]), "exit_fill": float(fill[leg]), "exit_kind": kind[leg],
                "settlement_price": float(settle_px[leg]), "settlement_source": settle_src[leg]})
        if pos["max_loss"] > 0:
            self.closed_returns.append(pnl / pos["max_loss"])

    # ------------------------------------------------------------------------------------------------
    def _result(self) -> BacktestResult:
        trades = pd.DataFrame(self.trades, columns=list(TRADE_COLUMNS)) if self.trades else empty_table(TRADE_COLUMNS)
        legs = pd.DataFrame(self.legs, columns=list(LEG_COLUMNS)) if self.legs else empty_table(LEG_COLUMNS)
        eq = np.array([_r(x) for x in self.equity])
        equity = pd.DataFrame({
            "date": self.days, "equity": eq, "cash": [_r(x) for x in self.cash_at],
            "positions_value": [_r(x) for x in self.pv], "positions_value_natural": [_r(x) for x in self.pvn],
            "drawdown": eq / np.maximum.accumulate(eq) - 1.0, "delta": np.nan, "gamma": np.nan, "theta": np.nan,
            "vega": np.nan, "open_positions": self.open_n, "stale_legs": 0}, columns=list(EQUITY_COLUMNS))
        assumptions = {
            "engine": "research_lib.backtest.fastpath (trade by trade; the engine's selection, fills, exits, "
                      "settlement and sizing; equal to the day-by-day engine, tests/test_history_fastpath.py)",
            "fills": f"{self.p.fill} (research_lib.backtest.fills.fill_price on the model's bid/ask)",
            "commission": f"${self.p.commission:g} per contract and leg at every fill; none at cash settlement",
            "rates": self.rates_text + f"; dividend yield {self.p.div_yield:g} for the leg deltas",
            "greeks": "not computed by the fast path (NaN): run_history_backtest gives the book's greeks",
            "missing_days": [], "entries_skipped": dict(self.skips), "entry_schedule": "when-flat; never on the last "
                                                                                        "served day",
            "prices": history.prices_note(),
        }
        return BacktestResult(trades=trades, legs=legs, equity=equity, missing_days=(), assumptions=assumptions,
                              params=self.p.to_dict(), underlying="SPX", source=history.SOURCE, start=self.days[0],
                              end=self.days[-1], initial_equity=float(self.p.account))


__all__ = ["GRID_MEMO", "run_history_fast", "supports"]
