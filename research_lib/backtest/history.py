"""Fifteen years of backtests on modelled prices: the chain backtest's engine on a model-priced SPX history.

MODELLED PRICES. Nothing here is a market quote: every option price is the model of
:mod:`research_lib.data.modelled_history` (an SSVI surface whose at-the-money level and skew are tied to that day's
VIX9D, VIX and VIX3M closes, BSM at the day's T-bill rate and dividend yield, bid/ask from a spread model on Cboe's
tick), calibrated on the days where real Cboe chains exist; the calibration's errors are written into every result
(``assumptions["prices"]``).

How a day is served
-------------------
:func:`history_inputs` builds, once, everything that does not depend on a strategy's parameters — the day table
(:func:`research_lib.data.market.load_day_table`: SPX open/close, VIX family, rate, dividend yield, published GEX),
each day's model surface and the listing calendar (:func:`research_lib.data.listing_calendar.listing_calendar`: the
real SPX/SPXW expiries of each session, with the years each kind of expiry began) — into a picklable
:class:`HistoryInputs` (what a sweep scatters to its workers). :class:`HistoryFeed` then serves one
:class:`ModelDay` per session to :func:`research_lib.backtest.engine.run_backtest`, which runs exactly as on real
chains (marks, exits, entries, sizing, settlement, the equity rows, the results and statistics). A model day is
lazy: it prices only what the engine asks for — every listed strike (:func:`research_lib.data.modelled.strike_grid`)
of the expiries inside the entry window when an entry is tried, and the held legs when they are marked — so a
fifteen-year run prices a few hundred thousand contracts rather than tens of millions.

Settlement: PM expiries at the day table's SPX close, AM (SPX monthlies) at its open (the opening print, no SOQ
history), as in the chain backtest. The regime of ``auto`` and of ``regime_filter`` is
:func:`research_lib.core.regime_series.regime_series` of the day table (published GEX against its own trailing
distribution, VIX IV rank, the trend), computed once per set of regime thresholds. No day reads anything dated
after it: the model day of D uses D's closes only; the regime of D uses closes up to D and GEX before D.

Open interest: the model has none, so ``min_open_interest`` cannot bind; each modelled contract carries
:data:`MODEL_OPEN_INTEREST` (said in the assumptions). The spread rule (``max_spread_pct``) applies to the modelled
bid/ask as to real ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from research_lib import calendar as cal
from research_lib.backtest.engine import contract_keys, run_backtest
from research_lib.backtest.params import INDEX_STRATEGIES, BacktestParams, as_date
from research_lib.backtest.results import BacktestResult
from research_lib.core.chain import NY, ChainSnapshot
from research_lib.core.regime import RegimeParams
from research_lib.core.regime_series import regime_series
from research_lib.data import modelled, modelled_history as mh
from research_lib.data.listing_calendar import ListingCalendar, listing_calendar
from research_lib.data.market import load_day_table, load_index_daily, load_published_gex, load_vol_index
from research_lib.errors import BacktestInputError

SOURCE = "modelled-history:SPX"
LABEL = "MODELLED PRICES"
#: Open interest given to every modelled contract (the model has none; ``min_open_interest`` cannot bind).
MODEL_OPEN_INTEREST = 1.0e6
#: Calendar days of expiries a history run can reach (the largest ``dte + dte_tolerance`` it accepts).
DEFAULT_HORIZON_DAYS = 400
#: Calendar days of market history read before the first served session for the regime's trailing windows
#: (IV rank over 252 sessions, the GEX distribution over 252, MA50): more than a year of sessions.
REGIME_WARMUP_DAYS = 550

_STRIKE_SCALE = 1000
_STRIKE_BITS = 2 ** 35


@dataclasses.dataclass(frozen=True)
class HistoryInputs:
    """What every history backtest of a period shares (build with :func:`history_inputs`; picklable).

    Attributes
    ----------
    table : DataFrame
        The day table (:func:`research_lib.data.market.load_day_table`), one row per session.
    surfaces : tuple of DaySurface
        The model surface of each row (:func:`research_lib.data.modelled_history.day_surface`).
    listing : ListingCalendar
        The listed expiries of every session.
    valuation_ns : ndarray of int64
        Each session's close (the valuation moment), ns since the epoch.
    horizon_days : int
    regime_table : DataFrame
        What the regime reads: ``close``, ``vix``, ``vix9d``, ``vix3m``, ``gex`` of every session from
        :data:`REGIME_WARMUP_DAYS` calendar days before the first served session (NaN where a series has not
        started: the published GEX begins 2011-05-02), so the regime of a day does not depend on where a run
        starts.
    """

    table: pd.DataFrame
    surfaces: tuple
    listing: ListingCalendar
    valuation_ns: np.ndarray
    horizon_days: int
    regime_table: pd.DataFrame
    market_dir: str | None = None
    _regimes: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)
    #: per-process memo of the fast path (research_lib.backtest.fastpath): leg selections and the model marks of
    #: the legs chosen, shared by every configuration of a sweep that asks for the same ones (pure functions of
    #: the inputs, so a memo never changes a result)
    memo: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self):
        # what a sweep scatters: the inputs, not a worker's memo
        state = dict(self.__dict__)
        state["_regimes"], state["memo"] = {}, {}
        for name in ("days", "columns"):
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    @functools.cached_property
    def days(self) -> list[dt.date]:
        return [d.date() for d in pd.DatetimeIndex(self.table.index)]

    @functools.cached_property
    def columns(self) -> dict[str, np.ndarray]:
        """The table's ``close``, ``rate`` and ``div_yield`` and the listing's columns as numpy arrays (what each
        model day reads; built once)."""
        t, e = self.table, self.listing.expiries
        exp = e["expiration"].to_numpy().astype("datetime64[D]")
        return {"close": t["close"].to_numpy(float), "rate": t["rate"].to_numpy(float),
                "div_yield": t["div_yield"].to_numpy(float), "exp": exp,
                "listed_from": e["listed_from"].to_numpy().astype("datetime64[D]"),
                "listed_until": e["listed_until"].to_numpy().astype("datetime64[D]"),
                "settles_ns": e["settles_ns"].to_numpy(np.int64), "kind": e["kind"].to_numpy(object),
                "root": e["root"].to_numpy(object), "month": pd.DatetimeIndex(exp).month.to_numpy()}

    @property
    def daily(self) -> pd.DataFrame:
        """``open`` and ``close`` by date: the settlement prices."""
        return self.table[["open", "close"]]

    def regimes(self, params: RegimeParams | None = None) -> pd.DataFrame:
        """:func:`~research_lib.core.regime_series.regime_series` of the table for ``params`` (memoised)."""
        key = params or RegimeParams()
        if key not in self._regimes:
            self._regimes[key] = regime_series(self.regime_table, key).reindex(pd.DatetimeIndex(self.table.index))
        return self._regimes[key]

    def describe(self) -> str:
        d = self.days
        return (f"SPX {LABEL} from the day table: {len(d)} sessions {d[0]}..{d[-1]} "
                f"(model: {mh.describe_calibration()})")


def history_inputs(start=None, end=None, *, market_dir=None,
                   horizon_days: int = DEFAULT_HORIZON_DAYS) -> HistoryInputs:
    """Build the shared inputs of history backtests over ``start``..``end`` (defaults: the day table's).

    Parameters
    ----------
    start, end : date-like, optional
        Sessions served (default 2011-05-02, the first published GEX, .. the last day with every input).
    market_dir : path, optional
        Where the market files are (see :func:`research_lib.data.market.load_day_table`).
    horizon_days : int
        The furthest expiry (calendar days ahead) an entry may reach.

    Raises
    ------
    BacktestInputError
        ``start`` after ``end``. Errors of the day table (a missing input, named with its date) pass through.
    """
    start, end = as_date(start, "start"), as_date(end, "end")
    if start and end and start > end:
        raise BacktestInputError("start", f"{start} is after end {end}")
    table = load_day_table(start, end, market_dir=market_dir)
    if not len(table):
        raise BacktestInputError("start", f"the day table holds no session in {start or '...'}..{end or '...'}")
    idx = pd.DatetimeIndex(table.index)
    surfaces = tuple(mh.day_surface(a, b, c) for a, b, c in zip(
        table["vix9d"].to_numpy(float), table["vix"].to_numpy(float), table["vix3m"].to_numpy(float), strict=True))
    listing = listing_calendar(idx[0], idx[-1], horizon_days=int(horizon_days))
    valuation = np.array([cal.session_close(d.date()).value for d in idx], dtype=np.int64)
    return HistoryInputs(table=table, surfaces=surfaces, listing=listing, valuation_ns=valuation,
                         horizon_days=int(horizon_days), regime_table=_regime_table(table, market_dir),
                         market_dir=None if market_dir is None else str(market_dir))


def _regime_table(table: pd.DataFrame, market_dir) -> pd.DataFrame:
    """The regime's inputs from :data:`REGIME_WARMUP_DAYS` before the table's first session to its last (the
    served rows are the day table's own values)."""
    idx = pd.DatetimeIndex(table.index)
    wide = cal.sessions(idx[0] - pd.Timedelta(days=REGIME_WARMUP_DAYS), idx[-1])
    before = wide[wide < idx[0]]
    spx = load_index_daily("SPX", market_dir=market_dir)["close"]
    earlier = {"close": spx}
    for name in ("VIX9D", "VIX", "VIX3M"):
        earlier[name.lower()] = load_vol_index(name, market_dir=market_dir)["close"]
    earlier["gex"] = load_published_gex(market_dir=market_dir)["gex"]
    warm = pd.DataFrame({k: v.reindex(before) for k, v in earlier.items()}, index=before)
    served = table[["close", "vix9d", "vix", "vix3m", "gex"]]
    out = pd.concat([warm[served.columns], served])
    # a session of the warm-up without a close or a VIX is left out (the trailing windows count observations)
    keep = out["close"].notna() & out["vix"].notna()
    keep.loc[idx] = True
    out = out[keep.to_numpy()]
    out.index = pd.DatetimeIndex(out.index, name="date")
    return out


class ModelDay:
    """One modelled session in the engine's day interface (what :class:`~research_lib.backtest.engine._Day` gives
    for a real chain): contract arrays, a key lookup, the arrays of a leg selection — priced lazily by the model.

    Rows are added as they are asked for and never change: :meth:`lookup` prices the keys it has not seen (any
    listed, unexpired contract: a listed strike stays listed to its expiry), :meth:`arrays` the whole listed strike
    grid of every expiry inside the entry window.
    """

    def __init__(self, inputs: HistoryInputs, i: int, roots, settle_times, window: tuple[int, int]):
        cols = inputs.columns
        self.date = inputs.days[i]
        self.today = np.datetime64(self.date, "D")
        self.spot = float(cols["close"][i])
        self.rate = float(cols["rate"][i])
        self.div_yield = float(cols["div_yield"][i])
        self.surface = inputs.surfaces[i]
        self.valuation_ns = int(inputs.valuation_ns[i])
        self._inputs = inputs
        self._roots = roots
        self._settle_times = settle_times
        self._window = window
        self.root_names = roots.names
        self._cols: dict[str, list] = {k: [] for k in ("root", "exp", "is_am", "strike", "is_call", "bid", "ask",
                                                       "iv", "oi")}
        self._arrays: dict[str, np.ndarray] | None = None
        self._seen: dict[int, int] = {}
        self._n = 0
        self.priced = 0

    # -- the table ---------------------------------------------------------------------------------
    def _col(self, name: str) -> np.ndarray:
        if self._arrays is None:
            dtypes = {"root": np.int64, "exp": "datetime64[D]", "is_am": bool, "strike": float, "is_call": bool,
                      "bid": float, "ask": float, "iv": float, "oi": float}
            self._arrays = {k: (np.concatenate(v).astype(dtypes[k]) if v else np.zeros(0, dtype=dtypes[k]))
                            for k, v in self._cols.items()}
        return self._arrays[name]

    rows = property(lambda self: self._n)
    exp = property(lambda self: self._col("exp"))
    is_am = property(lambda self: self._col("is_am"))
    strike = property(lambda self: self._col("strike"))
    is_call = property(lambda self: self._col("is_call"))
    bid = property(lambda self: self._col("bid"))
    ask = property(lambda self: self._col("ask"))
    iv = property(lambda self: self._col("iv"))
    oi = property(lambda self: self._col("oi"))

    @property
    def exp_days(self) -> np.ndarray:
        return self.exp.astype(np.int64)

    def root_of(self, idx: np.ndarray) -> np.ndarray:
        return self._col("root")[np.asarray(idx, dtype=np.int64)]

    def keys_of(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        return contract_keys(self.root_of(idx), self.exp_days[idx], self.is_call[idx], self.strike[idx])

    def _add(self, root_code, exp, is_am, strike, is_call) -> np.ndarray:
        """Price new contracts (arrays) and append them; returns their rows."""
        n = len(strike)
        if not n:
            return np.zeros(0, dtype=np.int64)
        settle_ns = self._settle_times(exp, is_am)
        T = (settle_ns - self.valuation_ns) / 1e9 / cal.YEAR_SECONDS
        q = mh.model_quotes(self.spot, strike, T, is_call, self.rate, self.div_yield, self.surface)
        rows = np.arange(self._n, self._n + n)
        for name, v in (("root", root_code), ("exp", exp), ("is_am", is_am), ("strike", strike),
                        ("is_call", is_call), ("bid", q.bid), ("ask", q.ask), ("iv", q.iv),
                        ("oi", np.full(n, MODEL_OPEN_INTEREST))):
            self._cols[name].append(np.asarray(v))
        self._arrays = None
        keys = contract_keys(root_code, np.asarray(exp).astype("datetime64[D]").astype(np.int64), is_call, strike)
        self._seen.update(zip(keys.tolist(), rows.tolist(), strict=True))
        self._n += n
        self.priced += n
        return rows

    # -- the engine's interface ---------------------------------------------------------------------
    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key, priced on first sight; −1 for a contract that has settled (or settles at this close)."""
        keys = np.asarray(keys, dtype=np.int64)
        out = np.array([self._seen.get(k, -1) for k in keys.tolist()], dtype=np.int64)
        new = np.flatnonzero(out < 0)
        if len(new):
            k = np.unique(keys[new])
            strike = (k % _STRIKE_BITS) / _STRIKE_SCALE
            rest = k // _STRIKE_BITS
            is_call = (rest % 2).astype(bool)
            exp_days = (rest // 2) % 65536
            root_code = rest // 2 // 65536
            exp = exp_days.astype("datetime64[D]")
            is_am = np.array([self.root_names[c] == "SPX" for c in root_code.tolist()], dtype=bool)
            settle_ns = self._settle_times(exp, is_am)
            live = settle_ns > self.valuation_ns
            if live.any():
                self._add(root_code[live], exp[live], is_am[live], strike[live], is_call[live])
            out = np.array([self._seen.get(x, -1) for x in keys.tolist()], dtype=np.int64)
        return out

    def arrays(self) -> dict:
        """The leg-selection arrays (:func:`research_lib.backtest.legspec.select_legs`): every listed strike of the
        expiries inside the entry window, both rights, priced (once per day)."""
        if not getattr(self, "_grid_done", False):
            self._grid_done = True
            lo, hi = self._window
            c = self._inputs.columns
            dte = (c["exp"] - self.today).astype(np.int64)
            m = ((c["listed_from"] <= self.today) & (c["listed_until"] > self.today)
                 & (c["settles_ns"] > self.valuation_ns) & (dte >= lo) & (dte <= hi))
            rules = modelled.listing_rules(self.date)
            parts = []
            for j in np.flatnonzero(m):
                T = (int(c["settles_ns"][j]) - self.valuation_ns) / 1e9 / cal.YEAR_SECONDS
                K = modelled.strike_grid(self.spot, T, c["kind"][j], dte=int(dte[j]), month=int(c["month"][j]),
                                         rules=rules)
                if len(K):
                    parts.append((j, K))
            if parts:
                codes = self._roots.encode([c["root"][j] for j, _ in parts])
                strikes = np.concatenate([np.concatenate([K, K]) for _, K in parts])
                calls = np.concatenate([np.r_[np.ones(len(K), bool), np.zeros(len(K), bool)] for _, K in parts])
                reps = [2 * len(K) for _, K in parts]
                code = np.repeat(codes, reps)
                exp = np.repeat(np.array([c["exp"][j] for j, _ in parts]), reps)
                is_am = np.repeat(np.array([c["root"][j] == "SPX" for j, _ in parts]), reps)
                keys = contract_keys(code, exp.astype(np.int64), calls, strikes)
                fresh = np.array([k not in self._seen for k in keys.tolist()], dtype=bool)
                self._add(code[fresh], exp[fresh], is_am[fresh], strikes[fresh], calls[fresh])
                self._grid_rows = np.array([self._seen[k] for k in keys.tolist()], dtype=np.int64)
            else:
                self._grid_rows = np.zeros(0, dtype=np.int64)
        # only today's listed grid is offered: a held leg priced by lookup() off today's grid (a strike listed
        # when spot was elsewhere) is not a candidate, so the choice never depends on what was held before
        on_grid = np.zeros(self._n, dtype=bool)
        on_grid[self._grid_rows] = True
        bid = np.where(on_grid, self.bid, np.nan)
        ask = np.where(on_grid, self.ask, np.nan)
        return {"root_of": self.root_of, "root_names": self.root_names, "exp": self.exp, "is_am": self.is_am,
                "strike": self.strike, "is_call": self.is_call, "bid": bid, "ask": ask, "iv": self.iv,
                "oi": self.oi, "today": self.today}


@dataclasses.dataclass(frozen=True)
class HistoryDay:
    """A session as the engine's feed item: its date, spot and close, and :meth:`engine_day`."""

    inputs: HistoryInputs
    i: int

    @property
    def snapshot_date(self) -> dt.date:
        return pd.Timestamp(self.inputs.table.index[self.i]).date()

    @property
    def spot(self) -> float:
        return float(self.inputs.table["close"].iat[self.i])

    @property
    def valuation(self) -> pd.Timestamp:
        """The session's close (New York time): the moment the model prices."""
        return pd.Timestamp(int(self.inputs.valuation_ns[self.i]), tz="UTC").tz_convert(NY)

    quote_time = valuation

    def engine_day(self, roots, settle_times, params: BacktestParams) -> ModelDay:
        lo = max(int(params.dte) - int(params.dte_tolerance), 0)
        hi = int(params.dte) + int(params.dte_tolerance)
        return ModelDay(self.inputs, self.i, roots, settle_times, (lo, hi))


class HistoryFeed:
    """The sessions of :class:`HistoryInputs` in ``[start, end]`` as an engine feed (every session is served:
    ``missing_days`` is empty by construction — the day table has one row per session or raises)."""

    def __init__(self, inputs: HistoryInputs, *, start=None, end=None):
        self.inputs = inputs
        start, end = as_date(start, "start"), as_date(end, "end")
        days = inputs.days
        self._rows = [i for i, d in enumerate(days) if (start is None or d >= start) and (end is None or d <= end)]
        if not self._rows:
            raise BacktestInputError("start", f"no modelled session in {start or '...'}..{end or '...'} (the day "
                                              f"table covers {days[0]}..{days[-1]})")
        self.days = [days[i] for i in self._rows]
        self.missing_days: list[dt.date] = []
        self.symbol = "SPX"
        self.source = SOURCE
        rates = inputs.columns["rate"]
        self.rates = {days[i]: float(rates[i]) for i in self._rows}

    def __iter__(self) -> Iterator[HistoryDay]:
        for i in self._rows:
            yield HistoryDay(self.inputs, i)

    def describe(self) -> str:
        return f"SPX {LABEL}: {len(self.days)} sessions {self.days[0]}..{self.days[-1]}, none missing"


class IndexFeed:
    """The sessions of a :class:`HistoryFeed` as compact modelled :class:`~research_lib.core.chain.ChainSnapshot`
    objects for the Cboe PUT/BXM methodologies (:mod:`research_lib.backtest.indexwrite`): each session's AM SPX
    monthlies within :data:`INDEX_MAX_DTE` days, their listed strikes within :data:`INDEX_MONEYNESS` of spot, both
    rights, priced by the model at the close (labelled MODELLED PRICES in the snapshot's notes)."""

    def __init__(self, feed: HistoryFeed):
        self.feed = feed
        self.days = feed.days
        self.missing_days = feed.missing_days
        self.symbol = feed.symbol
        self.source = feed.source

    def __iter__(self) -> Iterator[ChainSnapshot]:
        inputs = self.feed.inputs
        c = inputs.columns
        for i in self.feed._rows:
            yield index_snapshot(inputs, i, c)


#: Calendar days of AM monthlies an index snapshot lists (the next monthly is at most ~35 days out).
INDEX_MAX_DTE = 40
#: Strikes listed in an index snapshot: within this fraction of spot (wide, so a held strike stays quoted through
#: a crash such as March 2020).
INDEX_MONEYNESS = 0.50


def index_snapshot(inputs: HistoryInputs, i: int, columns: dict | None = None) -> ChainSnapshot:
    """The compact modelled chain of session ``i`` for the index methodologies (see :class:`IndexFeed`)."""
    c = columns or inputs.columns
    day = inputs.days[i]
    today = np.datetime64(day, "D")
    valuation = int(inputs.valuation_ns[i])
    spot = float(c["close"][i])
    dte = (c["exp"] - today).astype(np.int64)
    m = ((c["listed_from"] <= today) & (c["listed_until"] > today) & (c["settles_ns"] > valuation)
         & (c["root"] == "SPX") & (dte <= INDEX_MAX_DTE))
    parts = []
    for j in np.flatnonzero(m):
        T = (int(c["settles_ns"][j]) - valuation) / 1e9 / cal.YEAR_SECONDS
        # a strike listed stays listed to its expiry: the union of the grids of the sessions it has been listed
        # (at most INDEX_MAX_DTE days back), each at that session's spot, so a strike sold at a roll is still
        # quoted after a crash moved spot into a coarser band
        K = _listed_since(inputs, c, i, j)
        K = K[np.abs(K / spot - 1.0) <= INDEX_MONEYNESS]
        if not len(K):
            continue
        strikes = np.concatenate([K, K])
        calls = np.r_[np.ones(len(K), bool), np.zeros(len(K), bool)]
        q = mh.model_quotes(spot, strikes, np.full(len(strikes), T), calls, float(c["rate"][i]),
                            float(c["div_yield"][i]), inputs.surfaces[i])
        parts.append(pd.DataFrame({
            "root": "SPX", "expiration": pd.Timestamp(c["exp"][j]), "settlement": "AM", "strike": strikes,
            "right": np.where(calls, "C", "P"), "bid": q.bid, "ask": q.ask, "last": np.nan, "volume": 0.0,
            "open_interest": MODEL_OPEN_INTEREST, "iv": q.iv, "delta": q.delta, "gamma": np.nan}))
    if not parts:
        raise BacktestInputError("strategy", f"no AM SPX monthly listed within {INDEX_MAX_DTE} days on {day}")
    notes = (mh.MODELLED_NOTE, f"the index methodologies' compact chain of {day}: AM SPX monthlies within "
                               f"{INDEX_MAX_DTE} days, strikes within {INDEX_MONEYNESS:.0%} of spot")
    return ChainSnapshot.create(underlying="SPX", spot=spot, quote_time=pd.Timestamp(valuation, tz="UTC").tz_convert(NY),
                                source=SOURCE, contracts=pd.concat(parts, ignore_index=True), snapshot_date=day,
                                modelled=True, notes=notes)


def _listed_since(inputs: HistoryInputs, c: dict, i: int, j: int) -> np.ndarray:
    """Every strike of listing row ``j`` listed on some session from INDEX_MAX_DTE calendar days before session
    ``i`` up to ``i`` (memoised per (row, session))."""
    key = ("listed_since", i, j)
    hit = inputs.memo.get(key)
    if hit is not None:
        return hit
    exp, kind, month = c["exp"][j], c["kind"][j], int(c["month"][j])
    start = max(np.datetime64(inputs.days[i], "D") - np.timedelta64(INDEX_MAX_DTE, "D"), c["listed_from"][j])
    strikes = []
    for d in range(i, -1, -1):
        day = np.datetime64(inputs.days[d], "D")
        if day < start:
            break
        T = (int(c["settles_ns"][j]) - int(inputs.valuation_ns[d])) / 1e9 / cal.YEAR_SECONDS
        strikes.append(modelled.strike_grid(float(c["close"][d]), T, kind, dte=int((exp - day).astype(int)),
                                            month=month, rules=modelled.listing_rules(inputs.days[d])))
    out = np.unique(np.concatenate(strikes)) if strikes else np.zeros(0)
    inputs.memo[key] = out
    return out


def prices_note() -> dict:
    """The ``assumptions["prices"]`` of a history run: the label, the model and its calibration errors."""
    return {"label": LABEL, "model": mh.describe_calibration(), "calibration": dataclasses.asdict(mh.CALIBRATION)
            if dataclasses.is_dataclass(mh.CALIBRATION) else dict(mh.CALIBRATION),
            "open_interest": f"none modelled: every contract carries {MODEL_OPEN_INTEREST:g}, so min_open_interest "
                             "cannot bind"}


def run_history_backtest(params: BacktestParams | None = None, inputs: HistoryInputs | None = None, *,
                         start=None, end=None, market_dir=None,
                         progress: Callable[[int, int, dt.date], None] | None = None) -> BacktestResult:
    """Backtest ``params`` on the model-priced history (MODELLED PRICES; see the module docstring).

    Parameters
    ----------
    params : BacktestParams, optional
        As for real chains (``params.start``/``end`` choose the sessions inside ``inputs``).
    inputs : HistoryInputs, optional
        Shared inputs (default :func:`history_inputs` of ``start``..``end``, or of params' dates).
    start, end, market_dir
        Used only to build ``inputs`` when not given.
    progress : callable, optional
        ``progress(i, n, date)`` after each day.

    Returns
    -------
    BacktestResult
        ``source`` :data:`SOURCE`; ``assumptions["prices"]`` names the model and its calibration errors.
    """
    params = params if params is not None else BacktestParams()
    if inputs is None:
        inputs = history_inputs(start if start is not None else params.start,
                                end if end is not None else params.end, market_dir=market_dir)
    if params.dte + params.dte_tolerance > inputs.horizon_days:
        raise BacktestInputError("dte", f"dte {params.dte} + dte_tolerance {params.dte_tolerance} reaches beyond the "
                                        f"history's listing horizon of {inputs.horizon_days} days")
    feed = HistoryFeed(inputs, start=params.start, end=params.end)
    if params.strategy in INDEX_STRATEGIES:
        result = run_backtest(IndexFeed(feed), params, market_dir=inputs.market_dir,
                              progress=progress)
        assumptions = dict(result.assumptions)
        assumptions["prices"] = prices_note()
        return dataclasses.replace(result, assumptions=assumptions, source=SOURCE)
    needs_regime = params.strategy == "auto" or params.regime_filter is not None
    regimes = inputs.regimes(params.regime) if needs_regime else None
    result = run_backtest(feed, params, daily=inputs.daily, regime_series=regimes, progress=progress)
    assumptions = dict(result.assumptions)
    assumptions["prices"] = prices_note()
    if regimes is not None:
        assumptions["regime"] = ("research_lib.core.regime_series.regime_series of the day table: SqueezeMetrics' "
                                 "published GEX against its own trailing distribution (earlier days), VIX IV rank, "
                                 "the trend of the SPX closes; no zero-gamma level")
    return dataclasses.replace(result, assumptions=assumptions, source=SOURCE)


__all__ = ["DEFAULT_HORIZON_DAYS", "REGIME_WARMUP_DAYS", "HistoryDay", "HistoryFeed", "HistoryInputs", "LABEL", "MODEL_OPEN_INTEREST",
           "INDEX_MAX_DTE", "INDEX_MONEYNESS", "IndexFeed", "ModelDay", "SOURCE", "index_snapshot", "history_inputs", "prices_note", "run_history_backtest"]
