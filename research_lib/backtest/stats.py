"""Statistics of a backtest: returns, risk and trade figures of a :class:`~research_lib.backtest.results.BacktestResult`.

:func:`backtest_stats` computes the return and drawdown figures with vectorbt's returns accessor and drawdown
records (a well-kept library the project depends on, not hand-written formulas), and the trade figures as plain
sums and means of the trades table's P&L (vectorbt's trade-record reductions compile uncached numba closures,
~4 s in *every* process even with a warm cache — measured — for a sum and a mean; ``tests/test_backtest_report.py``
checks them against vectorbt's ``Trades.win_rate/profit_factor/expectancy``). Every figure is cross-checked
against a hand calculation on a small case in that test file:

- from the **daily equity curve** (one row per trading day served): the daily returns
  ``r_t = equity_t / equity_{t-1} - 1`` with ``equity_{-1}`` the initial equity, so a backtest of N days has N
  returns; total return, CAGR (``(1 + total) ** (252 / N) - 1``), annualised volatility (sample standard
  deviation, ``ddof=1``, × √252), Sharpe (mean / std × √252, risk-free rate 0: a putwrite's T-bill interest is
  part of its return), Sortino (mean × 252 / downside deviation below 0 × √252), the maximum drawdown of the
  equity (the initial equity counts as the first peak) and its duration in sessions (from the peak to the
  recovery, or to the last day when it has not recovered), Calmar (CAGR / |max drawdown|); exposure: the share of
  days with at least one open position;
- from the **trades table** (closed trades; P&L after commissions): number of trades, win rate (P&L > 0),
  average win and average loss ($, the loss negative), profit factor (gross wins / |gross losses|), expectancy
  ($ per trade), average days held (the engine's ``days_held``, sessions).

Annualisation counts 252 trading days a year and one return per trading day *served*: a missing session (listed
in ``result.missing_days``, never filled in) makes the next return span two sessions.

Edge cases (each named in :attr:`BacktestStats.notes`): zero trades (the trade figures are None); one day (no
volatility, Sharpe or Sortino: they need two returns); no losing trade (profit factor infinite: ``inf`` here,
``null`` in JSON, ``n/a`` in the table); no losing day (Sortino infinite, likewise); a flat equity curve (no
volatility: Sharpe and Sortino undefined, None); no drawdown (Calmar undefined, None). A statistic is never NaN.

Start-up cost (measured on the 2026 archive's backtest, 2 shared cores): the first :func:`backtest_stats` call
of a process takes ~10 s with an empty numba cache (vectorbt's import, ~3-4 s, and the compilation of its
kernels) and ~3 s with a warm one (the import, and the kernels loaded from disk); later calls ~6 ms. The compiled
kernels are cached on disk in :func:`numba_cache_dir` (``<research_lib cache>/numba``,
see :func:`research_lib.calendar.cache_dir`, unless ``NUMBA_CACHE_DIR`` is already set), so notebooks, reports
and sweep workers compile once per machine; this module sets ``NUMBA_CACHE_DIR`` before vectorbt (and numba) is
imported, and points an already-imported numba at the same folder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from research_lib.calendar import cache_dir
from research_lib.errors import BacktestInputError
from research_lib.formatting import jsonable

#: Trading days a year (annualisation).
SESSIONS_PER_YEAR = 252

#: The statistics in :meth:`BacktestStats.table` order, with their labels and kinds (pct, money, ratio, int, days).
FIELDS = (
    ("total_return", "total return", "pct"), ("cagr", "CAGR", "pct"), ("volatility", "volatility (annualised)", "pct"),
    ("sharpe", "Sharpe", "ratio"), ("sortino", "Sortino", "ratio"), ("max_drawdown", "max drawdown", "pct"),
    ("max_drawdown_duration", "max drawdown duration (sessions)", "int"), ("calmar", "Calmar", "ratio"),
    ("trades", "trades", "int"), ("win_rate", "win rate", "pct"), ("avg_win", "average win", "money"),
    ("avg_loss", "average loss", "money"), ("profit_factor", "profit factor", "ratio"),
    ("expectancy", "expectancy (per trade)", "money"), ("avg_days_held", "average days held (sessions)", "days"),
    ("exposure", "exposure (days with a position)", "pct"), ("net_pnl", "net P&L", "money"),
)


def numba_cache_dir() -> Path:
    """Where numba caches compiled kernels: ``$NUMBA_CACHE_DIR`` when set, else ``<cache_dir()>/numba``."""
    env = os.environ.get("NUMBA_CACHE_DIR", "").strip()
    return Path(env) if env else cache_dir() / "numba"


def use_project_numba_cache() -> Path:
    """Point numba's on-disk cache at :func:`numba_cache_dir` (set ``NUMBA_CACHE_DIR`` for this process and its
    children — report kernels, sweep workers — and, when numba is already imported, its config); returns it."""
    import sys

    path = numba_cache_dir()
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    numba = sys.modules.get("numba")
    if numba is not None and not getattr(numba.config, "CACHE_DIR", ""):
        numba.config.CACHE_DIR = str(path)
    return path


def _vectorbt():
    use_project_numba_cache()
    # lazy: start-up time — vectorbt takes ~4.5 s to import; only the statistics need it
    import vectorbt as vbt

    return vbt


@dataclasses.dataclass(frozen=True)
class BacktestStats:
    """The statistics of one backtest (see the module docstring for each definition).

    Attributes
    ----------
    start, end : datetime.date
        First and last trading day served.
    days : int
        Trading days served (daily returns).
    initial_equity, final_equity, net_pnl : float
        $.
    total_return, cagr, volatility, max_drawdown : float or None
        Fractions (0.05 = 5%); ``max_drawdown`` ≤ 0.
    sharpe, sortino, calmar : float or None
        Annualised ratios; ``sortino`` may be ``inf`` (no losing day).
    max_drawdown_duration : int
        Sessions from the peak of the deepest drawdown to its recovery (or to the last day).
    max_drawdown_recovered : bool
    trades : int
    win_rate : float or None
        Fraction of trades with P&L > 0.
    avg_win, avg_loss, expectancy : float or None
        $ per trade (``avg_loss`` negative).
    profit_factor : float or None
        Gross wins / |gross losses|; ``inf`` when no trade lost.
    avg_days_held : float or None
        Sessions.
    exposure : float
        Fraction of days with at least one open position.
    notes : tuple of str
        Each statistic that is None or infinite, and why.
    library : str
        What computed the figures.
    """

    start: dt.date
    end: dt.date
    days: int
    initial_equity: float
    final_equity: float
    net_pnl: float
    total_return: float | None
    cagr: float | None
    volatility: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float | None
    max_drawdown_duration: int
    max_drawdown_recovered: bool
    calmar: float | None
    trades: int
    win_rate: float | None
    avg_win: float | None
    avg_loss: float | None
    profit_factor: float | None
    expectancy: float | None
    avg_days_held: float | None
    exposure: float
    notes: tuple[str, ...] = ()
    library: str = ""

    def to_dict(self) -> dict:
        """Strict-JSON-ready (:func:`research_lib.formatting.jsonable`): ``inf`` and None become ``null``."""
        return jsonable(dataclasses.asdict(self))

    def table(self) -> pd.DataFrame:
        """A readable table: one row per statistic (``statistic``, ``value`` as text: ``n/a`` for None or inf)."""
        rows = [(label, _text(getattr(self, name), kind)) for name, label, kind in FIELDS]
        return pd.DataFrame(rows, columns=["statistic", "value"])

    def describe(self) -> str:
        """The table as text, the period on top and the notes below."""
        head = f"{self.start} .. {self.end}: {self.days} trading days, initial equity {self.initial_equity:,.2f}"
        body = self.table().to_string(index=False)
        notes = "".join(f"\n  note: {n}" for n in self.notes)
        return f"{head}\n{body}{notes}"


def _text(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if kind == "pct":
        return f"{value * 100:,.2f}%"
    if kind == "money":
        return f"{value:+,.2f}"
    if kind == "int":
        return f"{int(value):,d}"
    if kind == "days":
        return f"{value:,.1f}"
    return f"{value:,.3f}"


def _finite_or_none(value, name: str, why_nan: str, notes: list[str], *, why_inf: str | None = None):
    """A float statistic: finite as is; NaN -> None (noted); inf -> inf (noted) or None when ``why_inf`` is None."""
    x = float(value)
    if math.isnan(x):
        notes.append(f"{name}: {why_nan} (None)")
        return None
    if math.isinf(x):
        if why_inf is None:
            notes.append(f"{name}: {why_nan} (None)")
            return None
        notes.append(f"{name}: {why_inf} (infinite; null in JSON, n/a in the table)")
        return x
    return x


def backtest_stats(result, *, sessions_per_year: int = SESSIONS_PER_YEAR) -> BacktestStats:
    """The statistics of a backtest result (see the module docstring for the definitions and edge cases).

    Parameters
    ----------
    result : BacktestResult
        Needs ``equity`` (``date``, ``equity``, ``open_positions``), ``trades`` (``pnl``, ``days_held``) and
        ``initial_equity``.
    sessions_per_year : int
        Annualisation factor (default 252).

    Raises
    ------
    BacktestInputError
        No trading day in the equity curve, a non-positive or non-finite equity, or a trade without a P&L.
    """
    equity = result.equity
    if equity is None or len(equity) == 0:
        raise BacktestInputError("result", "the equity curve has no trading day: nothing to measure")
    value = pd.Series(np.asarray(equity["equity"], dtype=float),
                      index=pd.DatetimeIndex(pd.to_datetime(equity["date"])), name="equity")
    init = float(result.initial_equity)
    if not math.isfinite(init) or init <= 0 or not np.isfinite(value.to_numpy()).all() or (value <= 0).any():
        raise BacktestInputError("result", f"the equity (initial {init!r}, min {value.min()!r}) must be positive and "
                                           f"finite on every day to have returns")
    pnl = np.asarray(result.trades["pnl"], dtype=float) if len(result.trades) else np.empty(0)
    if not np.isfinite(pnl).all():
        raise BacktestInputError("result", f"{int((~np.isfinite(pnl)).sum())} trade(s) have no P&L")
    vbt = _vectorbt()
    notes: list[str] = []
    n = len(value)
    year = f"{sessions_per_year}D"
    # lazy: start-up time (vectorbt, imported by _vectorbt above)
    from vectorbt.returns.accessors import ReturnsSRAccessor

    rets = ReturnsSRAccessor.from_value(value, init_value=init, freq="1D", year_freq=year)
    total = float(rets.total())
    cagr = float(rets.annualized())
    one_day = "one trading day: needs at least two daily returns"
    if n < 2:
        vol = sharpe = sortino = None
        notes += [f"{k}: {one_day} (None)" for k in ("volatility", "sharpe", "sortino")]
    else:
        flat = float(np.std(rets.obj.to_numpy(), ddof=1)) == 0.0
        vol = _finite_or_none(rets.annualized_volatility(), "volatility", one_day, notes)
        if flat:  # 0 / 0: undefined, not infinite
            sharpe = sortino = None
            notes += [f"{k}: the equity curve's returns do not vary (volatility 0) (None)" for k in ("sharpe", "sortino")]
        else:
            sharpe = _finite_or_none(rets.sharpe_ratio(), "sharpe", one_day, notes)
            sortino = _finite_or_none(rets.sortino_ratio(), "sortino", one_day, notes,
                                      why_inf="no losing day (downside deviation 0)")
    # drawdowns of the equity with the initial equity as the first point (a loss on day 1 is a drawdown)
    with_init = pd.concat([pd.Series([init], index=[value.index[0] - pd.Timedelta(days=1)]), value])
    dds = vbt.Drawdowns.from_ts(with_init, freq="1D")
    records = dds.records
    if len(records):
        depth = (records["valley_val"] / records["peak_val"] - 1.0).to_numpy()
        worst = records.iloc[int(np.argmin(depth))]
        max_dd = float(depth.min())
        dd_duration = int(worst["end_idx"] - worst["peak_idx"])
        recovered = bool(worst["status"] == 1)
    else:
        max_dd, dd_duration, recovered = 0.0, 0, True
    if max_dd == 0.0:
        calmar = None
        notes.append("calmar: no drawdown (None)")
    else:
        calmar = cagr / abs(max_dd)

    n_trades = len(pnl)
    if n_trades == 0:
        win_rate = avg_win = avg_loss = profit_factor = expectancy = avg_days = None
        notes.append("trades: no trade closed: win rate, average win and loss, profit factor, expectancy and "
                     "average days held are None")
    else:
        wins, losses = pnl[pnl > 0], pnl[pnl < 0]
        win_rate = len(wins) / n_trades
        avg_win = float(wins.mean()) if len(wins) else None
        avg_loss = float(losses.mean()) if len(losses) else None
        if avg_win is None:
            notes.append("avg_win: no winning trade (None)")
        if avg_loss is None:
            notes.append("avg_loss: no losing trade (None)")
        if not len(wins) and not len(losses):
            profit_factor = None
            notes.append("profit_factor: every trade broke even (None)")
        elif not len(losses):
            profit_factor = math.inf
            notes.append("profit_factor: no losing trade (gross loss 0) (infinite; null in JSON, n/a in the table)")
        else:
            profit_factor = float(wins.sum() / abs(losses.sum()))
        expectancy = float(pnl.mean())
        held = np.asarray(result.trades["days_held"], dtype=float)
        avg_days = float(held.mean()) if np.isfinite(held).all() else None
        if avg_days is None:
            notes.append("avg_days_held: a trade has no days_held (None)")
    open_pos = np.asarray(equity["open_positions"], dtype=float) if "open_positions" in equity else None
    if open_pos is None or not np.isfinite(open_pos).all():
        raise BacktestInputError("result", "the equity curve needs open_positions on every day for the exposure")
    exposure = float((open_pos > 0).mean())
    return BacktestStats(
        start=value.index[0].date(), end=value.index[-1].date(), days=n, initial_equity=init,
        final_equity=float(value.iloc[-1]), net_pnl=float(value.iloc[-1] - init), total_return=total, cagr=cagr,
        volatility=vol, sharpe=sharpe, sortino=sortino, max_drawdown=max_dd, max_drawdown_duration=dd_duration,
        max_drawdown_recovered=recovered, calmar=calmar, trades=n_trades, win_rate=win_rate, avg_win=avg_win,
        avg_loss=avg_loss, profit_factor=profit_factor, expectancy=expectancy, avg_days_held=avg_days,
        exposure=exposure, notes=tuple(notes),
        library=f"vectorbt {vbt.__version__} (returns accessor, drawdown records); trade figures from the trades table")


def daily_levels(feed, *, zero_gamma: bool = True, market_dir=None) -> pd.DataFrame:
    """The underlying's spot and (optionally) the zero-gamma level of each day of a feed, for the trades chart.

    Parameters
    ----------
    feed : Feed
        The backtest's feed (:class:`research_lib.backtest.feed.Feed`); iterated once more (the chains are read
        again).
    zero_gamma : bool
        Also analyse each day's levels (:func:`research_lib.core.gex.analyze`, model convention, the day's rates):
        ~0.1-0.3 s a day.
    market_dir : path, optional
        Market history folder for the rates.

    Returns
    -------
    DataFrame
        Indexed by trading date (Timestamp): ``spot`` (index points) and ``zero_gamma`` (index points; NaN where
        the profile has no crossing, or when ``zero_gamma`` is False).
    """
    # lazy: start-up time — the GEX analysis and the rates load only when the chart asks for them
    from research_lib.core import gex
    from research_lib.data.market import snapshot_config

    rows = []
    for snap in feed:
        level = math.nan
        if zero_gamma:
            zg = gex.analyze(snap, snapshot_config(snap, "model", market_dir=market_dir)).levels.zero_gamma
            level = math.nan if zg is None else float(zg)
        rows.append((pd.Timestamp(snap.snapshot_date), float(snap.spot), level))
    return pd.DataFrame(rows, columns=["date", "spot", "zero_gamma"]).set_index("date")


#: The headline keys of :func:`summary_record` (``research-lib backtest chains --json``), in order.
SUMMARY_KEYS = ("start", "end", "days", "missing_days", "trades", "net_pnl", "total_return", "cagr", "sharpe",
                "sortino", "max_drawdown", "win_rate", "profit_factor", "expectancy", "trades_path", "legs_path",
                "equity_path", "assumptions")


def summary_record(result, stats: BacktestStats | None = None, paths=None, **extra) -> dict:
    """One strict-JSON-ready record of a backtest: :data:`SUMMARY_KEYS` first (``trades`` the number of trades,
    the ``*_path`` keys the CSV files of :meth:`BacktestResult.write_csv`, None when not written), then
    ``underlying``, ``source``, ``initial_equity``, ``params``, ``stats`` (every statistic,
    :meth:`BacktestStats.to_dict`) and ``extra`` (e.g. ``run_id``)."""
    stats = stats if stats is not None else backtest_stats(result)
    paths = dict(paths or {})
    s = stats.to_dict()
    record = {"start": result.start, "end": result.end, "days": result.days, "missing_days": list(result.missing_days),
              "trades": len(result.trades), "net_pnl": result.net_pnl, "total_return": s["total_return"],
              "cagr": s["cagr"], "sharpe": s["sharpe"], "sortino": s["sortino"], "max_drawdown": s["max_drawdown"],
              "win_rate": s["win_rate"], "profit_factor": s["profit_factor"], "expectancy": s["expectancy"],
              "trades_path": paths.get("trades_path"), "legs_path": paths.get("legs_path"),
              "equity_path": paths.get("equity_path"), "assumptions": dict(result.assumptions),
              "underlying": result.underlying, "source": result.source, "initial_equity": result.initial_equity,
              "params": dict(result.params), "stats": s, **extra}
    return jsonable(record)


__all__ = ["BacktestStats", "FIELDS", "SESSIONS_PER_YEAR", "SUMMARY_KEYS", "backtest_stats", "daily_levels", "numba_cache_dir",
           "summary_record", "use_project_numba_cache"]
