"""Model prices against real chains: the validation report of the model-priced history (issue 13, section 1).

MODELLED PRICES are checked two ways on every day where a real SPX chain exists:

1. :func:`spread_errors` — the spreads the chain engine would choose **on the real chain** (the engine's own leg
   selection, :func:`research_lib.backtest.legspec.select_legs` on the engine's day arrays, exactly as
   ``engine._Engine._enter`` calls it), then the model's price of those same contracts that day
   (:func:`research_lib.data.modelled_history.model_quotes` at the chain's spot and valuation moment, with that
   day's VIX9D/VIX/VIX3M closes, T-bill rate and dividend yield). :func:`summarise_errors` gives the median and
   the 90th percentile of the absolute error, in dollars per contract and in % of the credit.
2. :func:`compare_backtests` — the same backtest on the real chains of an archive and on the modelled history
   over the same period.

What differs by construction (said in every result):

* the 2019 archive is **intraday** (quotes at ``underlying_last``, a moment of the session, not the close): the
  model is priced at that spot and that moment with the day's *closing* VIX family — part of its error is the
  VIX moving between the quote and the close; the modelled history itself prices at the close;
* the Cboe quotedata files are single snapshots (one at 11:55 on 2022-07-12, the rest after the close);
* real chains have open interest and missing quotes, so the liquidity rules (``min_open_interest``,
  ``max_spread_pct``) bind and some contracts are absent; the model lists every strike of the listing rules
  with ample open interest (:data:`research_lib.backtest.history.MODEL_OPEN_INTEREST`);
* the real archives miss some sessions (served as missing days: legs keep their last marks), the model serves
  every session;
* the model needs the VIX family: real-chain days after the VIX file ends (2026-07-22 in the shared data) are
  listed with the reason and not priced.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from research_lib import calendar as cal
from research_lib.backtest.engine import MULTIPLIER, RootCodes, SettleTimes, _Day, run_backtest
from research_lib.backtest.feed import Feed
from research_lib.backtest.history import LABEL, history_inputs, run_history_backtest
from research_lib.backtest.legspec import STRATEGY_LEGS, select_legs
from research_lib.backtest.params import BacktestParams
from research_lib.backtest.results import BacktestResult
from research_lib.core import gex, pricing
from research_lib.core.chain import ChainSnapshot
from research_lib.data import modelled_history as mh
from research_lib.data.market import dividend_yields, load_vol_index, risk_free_rates
from research_lib.data.sources import read_chains
from research_lib.errors import BacktestInputError, ResearchLibError
from research_lib.settings import REPO_ROOT

#: The real SPX chain files of ``../shared/data`` (relative to it), in date order of their days.
REAL_CHAIN_FILES = (
    "chains/spx_ivolatility_2011-01-03_2011-01-07.csv.gz",
    "chains/spx_intraday_2019-04-25_2019-07-22.parquet",
    "chains/cboe_quotedata/spx_2022-02-05.csv",
    "chains/cboe_quotedata/spx_2022-06-11.csv",
    "chains/cboe_quotedata/spx_2022-07-12.csv",
    "chains/cboe_quotedata/spx_2023-09-14.csv",
    "chains/cboe_quotedata/spx_2024-01-07.csv",
    "chains/spx_eod_2026-06-12_2026-08-21.parquet",
)
#: Environment variable naming the shared data folder (as the tests read it).
SHARED_ENV = "RESEARCH_LIB_SHARED_DATA"

#: The strategies :func:`spread_errors` prices by default: label -> parameters.
DEFAULT_STRATEGIES: dict[str, BacktestParams] = {
    "bull_put": BacktestParams(strategy="bull_put"),
    "bear_call": BacktestParams(strategy="bear_call"),
    "iron_condor": BacktestParams(strategy="iron_condor"),
    "bull_put 0.20/0.10": BacktestParams(strategy="bull_put", short_delta=0.20, long_delta=0.10),
    "bull_put 0.40/0.25": BacktestParams(strategy="bull_put", short_delta=0.40, long_delta=0.25),
}

#: The per-leg IV error columns, by (side, right) of the leg.
IV_ERROR_COLUMNS = {(-1, "P"): "iv_error_short_put", (1, "P"): "iv_error_long_put",
                    (-1, "C"): "iv_error_short_call", (1, "C"): "iv_error_long_call"}

#: The default backtest of :func:`compare_backtests`: a bull put entered every session (up to 5 open), one
#: contract each on a $1M account, so a few months of chains give trades to compare (at the BacktestParams
#: defaults — $100k, Kelly sizing — a 45-day SPX spread of 2026 is sized 0 contracts every day).
DEFAULT_COMPARISON = BacktestParams(strategy="bull_put", entry="daily", max_open=5, contracts=1,
                                    account=1_000_000.0)

#: Columns of :func:`spread_errors`.
ERROR_COLUMNS = ("date", "source", "strategy", "quote_time", "spot", "vix", "legs", "dte", "real_mid_credit",
                 "model_mid_credit", "error", "error_pct", "real_spread", "model_spread",
                 *IV_ERROR_COLUMNS.values(), "skip")

#: Columns of :func:`summarise_errors`.
SUMMARY_COLUMNS = ("by", "group", "n", "skipped", "median_abs_error", "p90_abs_error", "median_abs_error_pct",
                   "p90_abs_error_pct", "median_error", "median_real_credit")

#: What differs by construction between the real-chain and the modelled backtests (in every comparison).
BY_CONSTRUCTION = (
    "the modelled history prices at each session's close; a real archive quoted intraday (the 2019 one, at "
    "underlying_last) selects and marks at that moment",
    "real chains carry open interest and missing quotes: min_open_interest and max_spread_pct bind on them; every "
    "modelled contract is listed with ample open interest and a model bid/ask",
    "sessions missing from a real archive are missing days there (legs keep their last marks); the model serves "
    "every session",
    "the real run takes each day's rate from the T-bill history; the modelled run from the day table (the same "
    "source, carried over gaps)",
)


# ==================================================================================================
# The real chains


def shared_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The shared data folder: ``data_dir``, else ``$RESEARCH_LIB_SHARED_DATA``, else ``<repo>/../shared/data``
    (the folder need not exist)."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(SHARED_ENV, "").strip()
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "data"


def real_chain_files(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The files of :data:`REAL_CHAIN_FILES` present under :func:`shared_data_dir` (possibly none)."""
    root = shared_data_dir(data_dir)
    return [root / rel for rel in REAL_CHAIN_FILES if (root / rel).is_file()]


def real_chain_snapshots(files: Iterable[str | os.PathLike]) -> Iterable[ChainSnapshot]:
    """Every clean snapshot of ``files`` (:func:`research_lib.data.sources.read_chains`), file by file."""
    for path in files:
        yield from read_chains(path)


def source_label(snapshot: ChainSnapshot) -> str:
    """The ``source`` column of a snapshot: its reader's name (``cboe_csv``, ``ivolatility_csv``, ...), the part of
    :attr:`ChainSnapshot.source` before the colon."""
    return str(snapshot.source).split(":", 1)[0]


def market_inputs(dates, *, market_dir=None) -> pd.DataFrame:
    """The model's inputs of each market date: the VIX family's closes, the rate and the dividend yield.

    Parameters
    ----------
    dates : sequence of date-like
        Market dates (sessions).
    market_dir : path, optional
        Where the market files are (:func:`research_lib.data.market.market_data_dirs`).

    Returns
    -------
    DataFrame
        Indexed by the dates (normalised, duplicates dropped, sorted); ``vix9d``, ``vix``, ``vix3m`` (Cboe closes
        of that date, index points; NaN when the file has no row for it — never carried), ``rate``
        (:func:`~research_lib.data.market.risk_free_rates`, continuously compounded decimal; NaN when no source
        serves the date) and ``div_yield`` (:func:`~research_lib.data.market.dividend_yields`, decimal), and
        ``missing``: the names of the NaN inputs, ``;``-joined (``""`` when the model can price the day).
    """
    idx = pd.DatetimeIndex(sorted({pd.Timestamp(d).normalize() for d in dates}), name="date")
    out = pd.DataFrame(index=idx)
    for name in ("VIX9D", "VIX", "VIX3M"):
        out[name.lower()] = load_vol_index(name, market_dir=market_dir)["close"].reindex(idx).to_numpy(float)
    try:
        rates = risk_free_rates(idx, market_dir=market_dir)["rate"]
        out["rate"] = pd.to_numeric(rates, errors="coerce").to_numpy(float)
    except ResearchLibError:
        out["rate"] = np.nan
    out["div_yield"] = dividend_yields(idx, market_dir=market_dir)["value"].to_numpy(float)
    cols = ["vix9d", "vix", "vix3m", "rate", "div_yield"]
    miss = ~np.isfinite(out[cols].to_numpy(float))
    out["missing"] = [";".join(c for c, m in zip(cols, row, strict=True) if m) for row in miss]
    return out


# ==================================================================================================
# Spread errors


def _strategies(params_list) -> dict[str, BacktestParams]:
    if params_list is None:
        return dict(DEFAULT_STRATEGIES)
    if isinstance(params_list, BacktestParams):
        params_list = [params_list]
    items = params_list.items() if isinstance(params_list, Mapping) else [
        (f"{p.strategy} {p.short_delta:g}/{p.long_delta:g}" if isinstance(p, BacktestParams) else "", p)
        for p in params_list]
    out = {}
    for label, p in items:
        if not isinstance(p, BacktestParams):
            raise BacktestInputError("params_list", f"BacktestParams values, got {type(p).__name__}")
        if p.strategy not in STRATEGY_LEGS:
            raise BacktestInputError("params_list", f"{label}: strategy {p.strategy!r} has no fixed legs (one of "
                                                    f"{', '.join(sorted(STRATEGY_LEGS))})")
        out[str(label)] = p
    if not out:
        raise BacktestInputError("params_list", "no parameter set given")
    return out


def _leg_text(day: _Day, rows: np.ndarray, sides: np.ndarray) -> str:
    roots = [day.root_names[r] for r in day.root_of(rows)]
    return " / ".join(f"{s:+g} {root} {pd.Timestamp(day.exp[i]).date()} {'C' if day.is_call[i] else 'P'} "
                      f"{day.strike[i]:g}" for s, root, i in zip(sides.tolist(), roots, rows.tolist(), strict=True))


def spread_errors(snapshots: Iterable[ChainSnapshot], params_list=None, *, market_dir=None) -> pd.DataFrame:
    """The model's price of the spreads the chain engine would choose on each real chain, against the real mid.

    Parameters
    ----------
    snapshots : iterable of ChainSnapshot
        Real chains, one per day (e.g. :func:`real_chain_snapshots` of :func:`real_chain_files`).
    params_list : mapping label -> BacktestParams, or sequence of BacktestParams, optional
        The strategies (fixed ones: :data:`research_lib.backtest.legspec.STRATEGY_LEGS`); a sequence is labelled
        ``"<strategy> <short_delta>/<long_delta>"``. Default :data:`DEFAULT_STRATEGIES`.
    market_dir : path, optional
        Where the market files are (the VIX family, rates and dividend yields: :func:`market_inputs`).

    Returns
    -------
    DataFrame
        One row per snapshot and strategy, columns :data:`ERROR_COLUMNS`:

        ``date`` (the chain's market date), ``source`` (:func:`source_label`), ``strategy`` (the label),
        ``quote_time`` (the engine's valuation moment: the quote time inside a session, else the last close),
        ``spot``, ``vix`` (that date's close); ``legs`` (signed units, root, expiry, right, strike); ``dte``
        (calendar days to the nearest leg's expiry); ``real_mid_credit`` / ``model_mid_credit`` (index points per
        unit: Σ −side × mid; the model's mid is that of its own rounded bid/ask, what the history backtest fills
        at); ``error`` = (model − real) × 100, $ per contract; ``error_pct`` = error as % of the real credit
        (× 100 / |real credit × 100|); ``real_spread`` / ``model_spread`` (the structure's bid-ask width,
        Σ |side| × (ask − bid), index points per unit); ``iv_error_*`` (vol points: the model's IV minus the
        implied vol of the real mid at the same T, rate and dividend yield, per leg; NaN for a leg the strategy
        does not have or whose real mid has no implied vol, e.g. below intrinsic value).

        A row whose ``skip`` is not empty has no figures: the engine chose no legs that day (its reason, e.g. no
        expiry in the DTE window or a liquidity rule), or the model lacks an input (e.g. ``no vix close``).

    Raises
    ------
    BacktestInputError
        A parameter set that is not a fixed strategy's :class:`BacktestParams`.
    """
    strategies = _strategies(params_list)
    snaps = list(snapshots)
    for s in snaps:
        if not isinstance(s, ChainSnapshot):
            raise BacktestInputError("snapshots", f"ChainSnapshots, got {type(s).__name__}")
    rows: list[dict] = []
    if not snaps:
        return pd.DataFrame(columns=list(ERROR_COLUMNS))
    inputs = market_inputs([s.snapshot_date for s in snaps], market_dir=market_dir)
    settle_times = SettleTimes()
    for snap in snaps:
        mkt = inputs.loc[pd.Timestamp(snap.snapshot_date)]
        day = _Day(snap, RootCodes())
        base = {"date": snap.snapshot_date, "source": source_label(snap), "spot": float(snap.spot),
                "vix": float(mkt["vix"])}
        surface = None if mkt["missing"] else mh.day_surface(mkt["vix9d"], mkt["vix"], mkt["vix3m"])
        for label, p in strategies.items():
            row = dict.fromkeys(ERROR_COLUMNS, np.nan) | base | {"strategy": label, "legs": "", "skip": ""}
            # the engine's rate, valuation moment and selection (engine._Engine._step / _enter)
            rate = float(p.rate) if p.rate is not None else (float(mkt["rate"]) if np.isfinite(mkt["rate"])
                                                              else 0.0)
            valuation = gex.valuation_moment(snap, gex.GexConfig.model(rate=rate, div_yield=float(p.div_yield)))
            row["quote_time"] = valuation
            sel = select_legs(p.strategy, day.arrays(), float(snap.spot), valuation.value, p.strategy_params(rate),
                              rate, MULTIPLIER, settle_times=settle_times)
            if isinstance(sel, str):
                row["skip"] = f"no legs on the real chain: {sel}"
                rows.append(row)
                continue
            r, sides = sel.rows, sel.sides.astype(float)
            row["legs"] = _leg_text(day, r, sides)
            row["dte"] = int((day.exp[r].min() - day.today).astype(int))
            if surface is None:
                row["skip"] = f"no model price: {mkt['missing'].replace(';', ', ')} missing on {snap.snapshot_date}"
                rows.append(row)
                continue
            T = (settle_times(day.exp[r], day.is_am[r]) - valuation.value) / 1e9 / cal.YEAR_SECONDS
            q = mh.model_quotes(float(snap.spot), day.strike[r], T, day.is_call[r], float(mkt["rate"]),
                                float(mkt["div_yield"]), surface)
            real_mid = (day.bid[r] + day.ask[r]) / 2.0
            model_mid = (q.bid + q.ask) / 2.0
            real_credit = float(np.sum(-sides * real_mid))
            model_credit = float(np.sum(-sides * model_mid))
            row["real_mid_credit"], row["model_mid_credit"] = real_credit, model_credit
            row["error"] = (model_credit - real_credit) * MULTIPLIER
            row["error_pct"] = (model_credit - real_credit) / abs(real_credit) * 100.0 if real_credit else np.nan
            row["real_spread"] = float(np.sum(np.abs(sides) * (day.ask[r] - day.bid[r])))
            row["model_spread"] = float(np.sum(np.abs(sides) * (q.ask - q.bid)))
            real_iv = pricing.implied_vol(real_mid, float(snap.spot), day.strike[r], T, float(mkt["rate"]),
                                          float(mkt["div_yield"]), day.is_call[r]).iv
            for j in range(len(r)):
                col = IV_ERROR_COLUMNS[(int(np.sign(sides[j])), "C" if day.is_call[r[j]] else "P")]
                row[col] = (float(q.iv[j]) - float(real_iv[j])) * 100.0
            rows.append(row)
    out = pd.DataFrame(rows, columns=list(ERROR_COLUMNS))
    out.attrs["prices"] = LABEL
    out.attrs["by_construction"] = ("intraday chains (the 2019 archive, spx_2022-07-12) are priced at their quote "
                                    "moment and spot with the day's closing VIX family")
    return out


def _quantiles(x: np.ndarray) -> tuple[float, float]:
    return (float(np.median(x)), float(np.quantile(x, 0.9))) if len(x) else (np.nan, np.nan)


def summarise_errors(df: pd.DataFrame) -> pd.DataFrame:
    """Median and 90th percentile of the absolute spread errors, overall, by source and by strategy.

    Parameters
    ----------
    df : DataFrame
        :func:`spread_errors` (at least ``source``, ``strategy``, ``error``, ``error_pct``, ``real_mid_credit``,
        ``skip``).

    Returns
    -------
    DataFrame
        Columns :data:`SUMMARY_COLUMNS`: ``by`` (``all`` / ``source`` / ``strategy``), ``group`` (``all``, the
        source or the strategy label), ``n`` (priced rows), ``skipped`` (rows with a ``skip`` reason),
        ``median_abs_error`` / ``p90_abs_error`` ($ per contract), ``median_abs_error_pct`` / ``p90_abs_error_pct``
        (% of the real credit; rows whose real credit is 0 are left out of these two), ``median_error`` ($, the
        signed median: the model's bias) and ``median_real_credit`` ($ per contract). Quantiles are numpy's
        linear interpolation; NaN where a group has no priced row.

    Raises
    ------
    BacktestInputError
        A column missing.
    """
    need = {"source", "strategy", "error", "error_pct", "real_mid_credit", "skip"}
    missing = need - set(df.columns)
    if missing:
        raise BacktestInputError("df", f"spread_errors columns needed, missing {sorted(missing)}")
    out = []
    groups = [("all", "all", df)]
    for by in ("source", "strategy"):
        groups += [(by, str(k), g) for k, g in df.groupby(by, sort=False)]
    for by, key, g in groups:
        priced = g[g["skip"].fillna("") == ""]
        err = priced["error"].to_numpy(float)
        pct = priced["error_pct"].to_numpy(float)
        pct = pct[np.isfinite(pct)]
        med, p90 = _quantiles(np.abs(err))
        med_pct, p90_pct = _quantiles(np.abs(pct))
        out.append({"by": by, "group": key, "n": len(priced), "skipped": len(g) - len(priced),
                    "median_abs_error": med, "p90_abs_error": p90, "median_abs_error_pct": med_pct,
                    "p90_abs_error_pct": p90_pct, "median_error": float(np.median(err)) if len(err) else np.nan,
                    "median_real_credit": float(np.median(priced["real_mid_credit"].to_numpy(float)))
                    * MULTIPLIER if len(priced) else np.nan})
    return pd.DataFrame(out, columns=list(SUMMARY_COLUMNS))


# ==================================================================================================
# The regime at entry of a history run


def with_entry_regimes(result: BacktestResult, inputs, regime=None) -> BacktestResult:
    """``result`` with each trade's empty ``regime`` set to the regime of its entry session.

    A fixed strategy's trades carry no regime (only ``auto`` and ``regime_filter`` runs read one); for the "P&L by
    regime at entry" of a history run, this reads :meth:`research_lib.backtest.history.HistoryInputs.regimes`
    (the published GEX against its own trailing distribution, as of the entry day: no look-ahead). A trade whose
    regime is already set keeps it.

    Parameters
    ----------
    result : BacktestResult
        A run over ``inputs``' sessions (:func:`research_lib.backtest.history.run_history_backtest`).
    inputs : HistoryInputs
    regime : RegimeParams, optional
        The thresholds (default ``RegimeParams()``).

    Raises
    ------
    BacktestInputError
        An entry date outside ``inputs``' sessions.
    """
    trades = result.trades
    if not len(trades):
        return result
    series = inputs.regimes(regime)["regime"]
    series.index = pd.DatetimeIndex(series.index).normalize()
    entry = pd.DatetimeIndex(pd.to_datetime(trades["entry_date"])).normalize()
    outside = ~entry.isin(series.index)
    if outside.any():
        raise BacktestInputError("result", f"trade entered {entry[outside][0].date()} is outside the inputs' "
                                           "sessions")
    given = trades["regime"].fillna("").astype(str)
    filled = np.where(given == "", series.reindex(entry).astype(str).to_numpy(), given.to_numpy())
    return dataclasses.replace(result, trades=trades.assign(regime=filled))


# ==================================================================================================
# The same backtest on real and on modelled chains


#: Rows of :attr:`BacktestComparison.table`.
COMPARED = ("trades", "net_pnl", "total_return", "win_rate", "sharpe", "max_drawdown", "mean_entry_credit")


@dataclasses.dataclass(frozen=True)
class BacktestComparison:
    """One backtest on the real chains of an archive and on the modelled history over the same period.

    Attributes
    ----------
    archive : str
        The archive file.
    start, end : datetime.date
        First and last session both runs serve (the archive's clean days inside the day table).
    real, model : BacktestResult
        The two runs (the model's source ``modelled-history:SPX``, MODELLED PRICES).
    table : DataFrame
        Indexed by :data:`COMPARED` (``trades``; ``net_pnl`` $; ``total_return``, ``win_rate``, ``max_drawdown``
        fractions; ``sharpe`` annualised; ``mean_entry_credit`` points per unit), columns ``real``, ``model``,
        ``difference`` (model − real). A statistic a run cannot define (e.g. the win rate of no trade) is None
        there and NaN in the difference.
    entries : DataFrame
        The trades both runs entered on the same date (the first of each run that day): ``entry_date``,
        ``real_legs``, ``model_legs``, ``real_entry_price``, ``model_entry_price`` (points per unit, credit +),
        ``difference`` (model − real, $ per contract), ``real_exit_reason``, ``model_exit_reason``,
        ``real_pnl_per_contract``, ``model_pnl_per_contract`` ($).
    real_missing_days : tuple of date
        Sessions in ``start..end`` the archive lacks (served by the model, missing days for the real run).
    notes : tuple of str
        What differs by construction (:data:`BY_CONSTRUCTION`).
    """

    archive: str
    start: dt.date
    end: dt.date
    real: BacktestResult
    model: BacktestResult
    table: pd.DataFrame
    entries: pd.DataFrame
    real_missing_days: tuple
    notes: tuple

    def record(self) -> dict:
        """Strict-JSON-ready summary: the archive, the sessions, the table and the matched entries."""
        # lazy: start-up time — formatting is only needed when a record is asked for
        from research_lib.formatting import jsonable

        return jsonable({"archive": self.archive, "start": self.start, "end": self.end, "prices": LABEL,
                         "sessions": {"real": self.real.days, "model": self.model.days},
                         "real_missing_days": list(self.real_missing_days),
                         "table": {k: self.table.loc[k].to_dict() for k in self.table.index},
                         "entries": self.entries.to_dict("records"), "notes": list(self.notes)})


def _legs_by_trade(result: BacktestResult) -> dict:
    legs = result.legs
    return {tid: " / ".join(f"{q:+g} {root} {exp} {right} {k:g}" for q, root, exp, right, k in zip(
        g["quantity"] / g["quantity"].abs().min(), g["root"], g["expiration"], g["right"], g["strike"], strict=True))
        for tid, g in legs.groupby("trade_id", sort=False)}


def _num(x):
    return np.nan if x is None else float(x)


def compare_backtests(archive_path, params: BacktestParams | None = None, *, market_dir=None,
                      progress=None) -> BacktestComparison:
    """Run ``params`` on the real chains of ``archive_path`` and on the modelled history over the same period.

    Parameters
    ----------
    archive_path : path
        A multi-day chain archive (:class:`~research_lib.backtest.feed.Feed`).
    params : BacktestParams, optional
        A fixed strategy (default :data:`DEFAULT_COMPARISON`); its ``start``/``end`` narrow the period further.
    market_dir : path, optional
        The market files (settlements, rates, the day table).
    progress : callable, optional
        Passed to both runs.

    Returns
    -------
    BacktestComparison
        Both runs serve ``start``..``end``: the archive's clean days that lie inside the day table (the model
        needs every day's VIX family), bounded by ``params.start``/``end``.

    Raises
    ------
    BacktestInputError
        The archive and the day table share no session; the errors of the two runs pass through.
    """
    params = params if params is not None else DEFAULT_COMPARISON
    feed = Feed(archive_path, start=params.start, end=params.end)
    # the days the model can price: every input of the day table present (the VIX file ends before the archive)
    have = market_inputs(feed.days, market_dir=market_dir)
    priced = [d.date() for d, m in zip(have.index, have["missing"], strict=True) if not m]
    if not priced:
        raise BacktestInputError("archive_path", f"{archive_path}: no day of {feed.days[0]}..{feed.days[-1]} has "
                                                 "the VIX family, rate and dividend yield the model needs")
    inputs = history_inputs(priced[0], priced[-1], market_dir=market_dir)
    days = [d for d in feed.days if priced[0] <= d <= priced[-1]]
    run = params.replace(start=days[0], end=days[-1])
    real = run_backtest(Feed(archive_path, start=days[0], end=days[-1]), run, market_dir=market_dir,
                        progress=progress)
    model = run_history_backtest(run, inputs, progress=progress)
    rs, ms = real.stats(), model.stats()
    rows = {}
    for name in COMPARED:
        if name == "mean_entry_credit":
            a = float(real.trades["entry_price"].mean()) if len(real.trades) else None
            b = float(model.trades["entry_price"].mean()) if len(model.trades) else None
        else:
            a, b = getattr(rs, name), getattr(ms, name)
        rows[name] = {"real": a, "model": b, "difference": _num(b) - _num(a)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    entries = _matched_entries(real, model)
    return BacktestComparison(archive=str(archive_path), start=days[0], end=days[-1], real=real, model=model,
                              table=table, entries=entries, real_missing_days=tuple(real.missing_days),
                              notes=BY_CONSTRUCTION)


def _matched_entries(real: BacktestResult, model: BacktestResult) -> pd.DataFrame:
    cols = ["entry_date", "real_legs", "model_legs", "real_entry_price", "model_entry_price", "difference",
            "real_exit_reason", "model_exit_reason", "real_pnl_per_contract", "model_pnl_per_contract"]
    if not len(real.trades) or not len(model.trades):
        return pd.DataFrame(columns=cols)
    a = real.trades.drop_duplicates("entry_date").set_index("entry_date")
    b = model.trades.drop_duplicates("entry_date").set_index("entry_date")
    both = sorted(d for d in a.index if d in b.index)
    la, lb = _legs_by_trade(real), _legs_by_trade(model)
    out = []
    for d in both:
        x, y = a.loc[d], b.loc[d]
        out.append({"entry_date": d, "real_legs": la.get(x["trade_id"], ""), "model_legs": lb.get(y["trade_id"], ""),
                    "real_entry_price": float(x["entry_price"]), "model_entry_price": float(y["entry_price"]),
                    "difference": (float(y["entry_price"]) - float(x["entry_price"])) * MULTIPLIER,
                    "real_exit_reason": x["exit_reason"], "model_exit_reason": y["exit_reason"],
                    "real_pnl_per_contract": float(x["pnl"]) / float(x["contracts"]),
                    "model_pnl_per_contract": float(y["pnl"]) / float(y["contracts"])})
    return pd.DataFrame(out, columns=cols)


__all__ = ["BY_CONSTRUCTION", "BacktestComparison", "COMPARED", "DEFAULT_COMPARISON", "DEFAULT_STRATEGIES", "ERROR_COLUMNS",
           "IV_ERROR_COLUMNS", "REAL_CHAIN_FILES", "SUMMARY_COLUMNS", "compare_backtests", "market_inputs",
           "real_chain_files", "real_chain_snapshots", "shared_data_dir", "source_label", "spread_errors",
           "summarise_errors", "with_entry_regimes"]
