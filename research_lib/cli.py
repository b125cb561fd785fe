"""Command line: ``research-lib ...`` or ``python -m research_lib ...``. A thin layer over the library.

Commands
--------
``research-lib gex PATH [--date YYYY-MM-DD|all] [--convention model|perfiliev] [--days-per-year N]
[--no-zero-dte-floor] [--grid N] [--rate R] [--div-yield Q] [--max-dte N] [--exclude-0dte] [--json]``
    Key GEX levels of any supported chain file. Without ``--json``: a readable table per snapshot.
    With ``--json``: one JSON object per snapshot, one line each.
    Or, instead of PATH: ``--source auto|cboe|tradier|polygon|store|modelled [--symbol SPX]``; the
    line on stderr says which source served (live, stale store copy, or modelled data).
``research-lib gex-change [PATH] [--before PATH2] [--date YYYY-MM-DD|all] [--previous YYYY-MM-DD]
[--source auto|cboe|tradier|polygon|store|modelled] [--symbol SPX] [--method sequential|shapley] [--json]``
    Why net GEX changed between two snapshots (:mod:`research_lib.core.gex_change`): the change split by
    cause (spot, time, rates, iv, open interest, rolled off, new listings, window), by expiry bucket and by
    moneyness bucket, model convention, each snapshot priced with its own date's rates. PATH with
    ``--date D``: day D of a multi-day file against the file's previous clean day (or ``--previous D0``);
    ``--date all``: every consecutive pair of clean days (one JSON line each with ``--json``);
    ``--before PATH2``: the snapshot of PATH2 against the one of PATH; ``--source``: the served chain
    against the previous snapshot of its source (the store's previous date, the previous session's
    modelled chain). Exit 4 when there is no previous snapshot (the reason is on stderr).
``research-lib scan PATH``
    The snapshots a file holds, and the days skipped with the reason.
``research-lib fetch SYMBOL [--provider auto|cboe|tradier|polygon] [--json]``
    Today's chain from a live provider, kept in the local store. Never falls back to the store: when no
    live provider answers it says why and exits 4.
``research-lib import PATH... [--no-progress] [--json]``
    Chain files (every clean day of an archive) into the local store; idempotent; says what it skipped.
    Every readable file is imported; each bad one is reported with its reason and the exit code is 3.
``research-lib store [--symbol SYM] [--json]``
    What the local store holds.
``research-lib report daily [--symbol SPX | --symbols SPX,SPY,QQQ] [--date latest|YYYY-MM-DD]
[--source auto|...|PATH] [--convention model|perfiliev] [--account 50000] [--no-record] [--quiet]``
    The daily GEX report notebook run with papermill, exported to static HTML, listed in
    ``reports/index.html`` (:mod:`research_lib.reports`). Safe under cron: a lock, a log file and a JSON
    run summary per run in ``reports/logs/``.
``research-lib report prune [--failed] [--older-than DAYS | --before YYYY-MM-DD] [--dry-run]``
    Remove rows of the reports index and their files (:func:`research_lib.reports.prune_reports`).
``research-lib backtest chains --source PATH|store [--symbol SPX] [--start D] [--end D] [--strategy auto|putwrite|
buywrite|short_put|bull_put|bear_call|iron_condor|bull_call|bear_put|strangle] [--dte N] [--short-delta X]
[--long-delta Y | --width W] [--entry when-flat|daily|every:N|roll] [--max-open N] [--profit-target F|none]
[--stop-loss F|none] [--exit-dte N] [--max-hold N] [--fill mid|natural|slippage:F] [--commission C] [--account A]
[--out DIR] [--json]``
    A backtest over the real daily chains of a multi-day archive or the store (:mod:`research_lib.backtest`):
    the statistics table and the paths of ``trades.csv``, ``legs.csv`` and ``equity.csv`` written under ``--out``
    (default ``reports/backtests/<run id>/``); ``--json``: one strict JSON object. Bad parameters exit 2 before
    anything is read.
``research-lib backtest history [--start 2011-05-02] [--end D] [the backtest chains flags but --source/--symbol]
[--regime-filter POSITIVE_GAMMA[,NEUTRAL]] [--market-dir DIR] [--out DIR] [--json]``
    The same backtest on the model-priced SPX history (:mod:`research_lib.backtest.history`, MODELLED PRICES):
    every session since 2011-05-02, options priced by the surface tied to the day's VIX family, the regime of
    ``auto`` and ``--regime-filter`` from the published GEX; the same outputs and JSON keys as ``backtest chains``.
``research-lib report backtest [the backtest flags] [--reports-dir DIR] [--quiet] [--json]``
    ``notebooks/backtest.ipynb`` run with papermill into ``reports/backtests/<run id>/`` (notebook, offline HTML,
    the CSV files), listed in ``reports/index.html`` beside the daily reports; a progress bar on stderr.
``research-lib sweep GRID.toml [--engine chains|history] [--workers N] [--scheduler tcp://HOST:PORT] [--out DIR]
[--market-dir DIR] [--quiet] [--json]``
    A parameter sweep (:mod:`research_lib.sweep`): every combination of the grid file's ``[grid]`` run as one
    backtest (``[backtest]`` the fixed options, named like the long options with ``_`` for ``-``), on a local
    process pool (``--workers``, default the CPU count) or a Dask cluster (``--scheduler`` or
    ``$DASK_SCHEDULER_ADDRESS``); ``results.csv``, ``results.parquet``, ``equity.parquet`` and ``sweep.json``
    under ``--out`` (default ``reports/sweeps/<run id>/``; rerun with the same folder to resume), with the
    walk-forward evaluation and the deflated Sharpe ratio of the best configuration; a progress bar on stderr.
    ``--json``: one strict JSON object. A bad grid file exits 2 before anything runs.
``research-lib report sweep GRID.toml [the sweep options] [--reports-dir DIR] [--quiet] [--json]``
    ``notebooks/sweep.ipynb`` run with papermill into ``reports/sweeps/<run id>/`` (the sweep's files, the
    notebook, offline HTML: heatmaps, the top configurations, walk-forward, deflated Sharpe), listed in
    ``reports/index.html``.
``research-lib nightly [--symbols SPX,SPY] [--import DIR] [--skip chains|reports|paper_mark ...] [--json]``
    The nightly pipeline (:mod:`research_lib.paper.nightly`): today's chains into the store (or ``--import``
    a folder of chain files), the daily reports, a paper mark; each step's status and time printed, in
    ``last_nightly_summary.json`` and one line of ``nightly.log`` in the data folder. Its own exit codes:
    0 all ran steps ok, 9 some failed, 10 every one failed, 6 another nightly is running.
``research-lib profile FILE [--date D|all|latest] [--period day|all] [--row-size R] [--method range|close]
[--va-rule two-row|one-row] [--value-area F] [--preset market_profile] [--weight volume|time] [--all-hours]
[--tz ZONE] [--json]``
    Volume profiles of an intraday bar file (:mod:`research_lib.core.volume_profile`): per session (the file's
    last by default, ``--date all`` every one) or ``--period all``, one composite over every bar. Each: POC, value
    area, range, volume, HVN/LVN, single prints, opening range, initial balance, balanced target. ``--json``: one
    strict JSON object per profile (``date`` null for a composite, ``start``/``end`` always). Exit 4 when the date
    has no bars.
``research-lib decide [--source auto|PATH] [--symbol SPX] [--date ...] [--account 50000] [--json]``
    Regime with reasons, strategy with legs and prices, sizing, the decision's what/why/how and the
    alerts; the decision is logged in ``data/decisions.sqlite`` (``--no-record`` to skip; ``--no-log``
    is its old name and still works).

``research-lib paper open|mark|close ID|status|history|reset [--account-name NAME] [--cash A] [--config PATH]
[--source auto|...|PATH] [--date D] [--json]``
    Paper trading (:mod:`research_lib.paper`) on the ledger ``data/paper.sqlite`` with the settings of
    ``data/paper.toml``: ``open`` makes the day's decision (``decide``'s, sized on the paper account) or, with
    ``--strategy short_put|bull_put|bear_call|iron_condor|bull_call|bear_put|strangle [--dte N] [--short-delta X]
    [--long-delta Y | --width W]``, the backtest's fixed strategy, and places it through the simulated broker (the
    same day's order twice is recorded once); ``mark`` marks every open position from a fresh chain and closes what
    the exit rules fire — outside the trading session (without ``--date``) it says so and exits 0, a second
    ``mark`` while one runs exits 6; ``close ID`` closes by hand; ``status`` the account and its open positions
    (``--json``: one object whose ``positions`` hold their legs); ``history`` the closed trades, statistics and
    equity; ``reset --yes`` empties the account. Every run reconciles the ledger first (said on stderr).
``research-lib binary watch --assets ID,... [--url ws://...] [--duration S] [--fee-rate F] [--no-store] [--json]``
    The YES/NO monitor (:mod:`research_lib.data.binary_watch`): subscribes to the Polymarket CLOB market channel
    (default ``wss://ws-subscriptions-clob.polymarket.com/ws/market``) for the token ids (within a market the first
    listed is YES, the second NO; a market with one token gets its NO derived from the YES book, and says so),
    prints one line (``--json``: one strict JSON object) per top-of-book change with the buy-both and sell-both
    edges after fees and tick, then a summary (malformed messages, unknown assets, drops, reconnects), and appends
    the rows to ``<data>/binary/topbook/`` (Parquet parts, atomic). Exit 4 when the feed gives up reconnecting.
``research-lib binary scan DIR [--staleness 300] [--fee-rate F] [--tick 0.001] [--events all|exclusive] [--two-sided]
[--top 10] [--json]``
    The summed-YES edges of the multi-outcome events of a polled top-of-book dataset
    (:func:`research_lib.data.binary_topbook.scan_topbook`): per day and category the events seen, how often and
    how long the buy-all / sell-all edges were positive after costs, the largest episodes, and the rule used to
    align the outcomes' quotes in time (each outcome's last quote at or before each poll, within the staleness
    bound).

Options shared by every command: ``--date`` is a real calendar date ``YYYY-MM-DD`` or ``latest`` (the
default); ``all`` (every clean day of a multi-day file) is accepted by ``gex PATH`` and ``profile`` only, every other
command refuses it and says why. ``--symbol`` must be a ticker; with a chain file it must match the
file's underlying. Every ``--json`` output is strict JSON (``null``, never ``NaN``).

Exit codes (:data:`EXIT_CODES`; the error's class decides, see :func:`exit_code_for`):

== ==========================================================================================
0  success
1  an unexpected error (a bug: the traceback is printed)
2  bad usage: an unknown option, a bad value (date, symbol, number, report parameter)
3  bad or unknown input file, a chain file or archive without any usable row, a corrupt store file
4  nothing to compute, or no source answered (offline, provider down, not in the store)
5  a report FAILED (its failed notebook and HTML are kept, the last good report is not touched)
6  another run holds the lock (a report run, paper mark, the nightly run)
7  the decision log refused the decision (duplicate id, unreadable or newer log, malformed record)
8  the paper ledger refused (unreadable, not a ledger, a newer schema, a broken rule)
9  the nightly run: some step failed (the summary says which)
10 the nightly run: every step that ran failed
== ==========================================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import re
import sys
from collections.abc import Sequence

from research_lib import __version__
from research_lib.errors import (
    AlertInputError,
    AlertParamsError,
    AttributionParamsError,
    BacktestInputError,
    BinaryMarketError,
    BinaryParamsError,
    CalendarRangeError,
    ChainError,
    ChangeInputError,
    DecisionError,
    DecisionLogError,
    GexConfigError,
    HistoryArgumentError,
    IntradayFileError,
    LedgerError,
    LockBusyError,
    MarkError,
    MarketDataError,
    MarketDataNotFoundError,
    MarketStateError,
    ModelledChainError,
    NightlyError,
    NoChainAvailableError,
    NoExposureError,
    NothingToImportError,
    OrderError,
    OrderFlowInputError,
    PaperAccountError,
    PaperConfigError,
    PositionNotFoundError,
    ProfileInputError,
    ProfileParamsError,
    RegimeInputError,
    RegimeParamsError,
    ReportLockedError,
    ReportParameterError,
    ResearchLibError,
    SizingError,
    SnapshotNotStoredError,
    StoreError,
    StrategyError,
    StrategyParamsError,
    SweepInputError,
)
from research_lib.formatting import format_levels, parse_date, to_json

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_NO_RESULT = 4


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="research-lib", description="GEX research tools.")
    parser.add_argument("--version", action="version", version=f"research_lib {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("gex", help="key GEX levels of a chain file",
                       description="Compute net/call/put GEX, zero gamma, walls, max pain and pin risk of "
                                   "a chain file (any supported format).")
    g.add_argument("path", nargs="?", default=None,
                   help="a chain file (Cboe CSV/.dat/JSON, Parquet archive, iVolatility CSV); "
                        "or omit it and use --source")
    g.add_argument("--symbol", default=None, type=_symbol_type,
                   help="underlying for --source (default SPX); with a PATH it must match the file's")
    g.add_argument("--source", default=None,
                   help="auto (live -> store -> modelled), cboe, tradier, polygon, store or modelled")
    g.add_argument("--date", default=None, type=_date_arg,
                   help="YYYY-MM-DD for a multi-day archive, 'all' for every clean day of a file, or latest "
                        "(default)")
    g.add_argument("--convention", choices=["model", "perfiliev"], default="model")
    g.add_argument("--days-per-year", type=float, default=None,
                   help="perfiliev: weekday count divisor (default 262; 252 is common); model: 365")
    g.add_argument("--no-zero-dte-floor", action="store_true",
                   help="perfiliev: do not floor same-day expiries at one day")
    g.add_argument("--grid", type=int, default=None, help="profile grid points (model 400, perfiliev 60)")
    g.add_argument("--rate", default=None,
                   help="risk-free rate, decimal (0.05 = 5%%), or 'auto': the 13-week T-bill of the snapshot's "
                        "date from the market history (research_lib.market)")
    g.add_argument("--div-yield", default=None,
                   help="dividend yield, decimal, or 'auto': the S&P 500's trailing implied yield (SPX/SPY/XSP)")
    g.add_argument("--max-dte", type=int, default=None, help="only expiries up to N calendar days out")
    g.add_argument("--exclude-0dte", action="store_true", help="drop same-day expiries")
    g.add_argument("--json", action="store_true", help="one JSON object per snapshot, one per line")

    gc = sub.add_parser("gex-change", help="why net GEX changed between two snapshots, by cause, expiry and moneyness",
                        description="Split the change of net GEX between two snapshots into spot, time, rates, "
                                    "IV, open interest, rolled-off, new-listing and window effects (model "
                                    "convention; $ per 1%% move), by expiry and by moneyness bucket.")
    gc.add_argument("path", nargs="?", default=None,
                    help="a chain file (the 'after' snapshot; a multi-day archive gives the previous clean day "
                         "as 'before'); or omit it and use --source")
    gc.add_argument("--before", default=None, metavar="PATH2",
                    help="a chain file holding the 'before' snapshot (with --previous: that day of it)")
    gc.add_argument("--date", default=None, type=_date_arg,
                    help="YYYY-MM-DD of the 'after' snapshot in PATH (default latest), or 'all' for every "
                         "consecutive pair of clean days of PATH")
    gc.add_argument("--previous", default=None, type=_date_arg, metavar="YYYY-MM-DD",
                    help="the 'before' trading date (default: the previous clean day / stored date / session)")
    gc.add_argument("--source", default=None,
                    help="instead of PATH: auto, cboe, tradier, polygon, store or modelled (the previous snapshot "
                         "comes from the store, or the previous session's modelled chain)")
    gc.add_argument("--symbol", default=None, type=_symbol_type,
                    help="underlying for --source (default SPX); with a PATH it must match the file's")
    gc.add_argument("--method", choices=["sequential", "shapley"], default="sequential",
                    help="sequential: spot, time, rates, iv, open interest switched in that order (default); "
                         "shapley: each factor's effect averaged over every order")
    gc.add_argument("--json", action="store_true", help="one strict JSON object per pair, one per line")

    s = sub.add_parser("scan", help="list the snapshots a chain file holds")
    s.add_argument("path")

    f = sub.add_parser("fetch", help="fetch a live chain into the local store",
                       description="Fetch today's chain of SYMBOL from a live provider and keep it in the store.")
    f.add_argument("symbol", type=_symbol_type)
    f.add_argument("--provider", default="auto",
                   help="cboe (no key), tradier (TRADIER_TOKEN), polygon (POLYGON_API_KEY), or auto: the first "
                        "that answers")
    f.add_argument("--json", action="store_true")

    im = sub.add_parser("import", help="import chain files (archives included) into the local store")
    im.add_argument("paths", nargs="+")
    im.add_argument("--no-progress", action="store_true")
    im.add_argument("--json", action="store_true", help="what was imported, skipped and failed, as JSON")

    d = sub.add_parser("decide", help="chain + history -> regime, strategy, size, logged decision, alerts",
                       description="Turn a chain into a logged, explained trade decision (research_lib.decide).")
    d.add_argument("--source", default="auto", help="auto, cboe, tradier, polygon, store, modelled, or a file")
    d.add_argument("--symbol", default=None, type=_symbol_type,
                   help="underlying (default SPX); with a chain file as --source it must match the file's")
    d.add_argument("--date", default=None, type=_date_arg,
                   help="YYYY-MM-DD (archives, the store) or latest (default)")
    d.add_argument("--account", type=_positive_money, default=50_000.0,
                   help="account value in dollars (default 50000)")
    d.add_argument("--no-record", action="store_true", help="build the decision but do not log it")
    d.add_argument("--no-log", action="store_true", dest="no_record", help=argparse.SUPPRESS)  # old name
    d.add_argument("--json", action="store_true")

    st = sub.add_parser("store", help="list what the local store holds")
    st.add_argument("--symbol", default=None, type=_symbol_type)
    st.add_argument("--json", action="store_true", help="one JSON object per stored snapshot, one per line")

    bt = sub.add_parser("backtest", help="backtests on real option chains")
    btsub = bt.add_subparsers(dest="backtest_kind", required=True)
    bc = btsub.add_parser("chains", help="replay the daily chains of an archive or the store, trade the rules",
                          description="Backtest a strategy over the real daily chains (every fill a quote of the "
                                      "chain, no look-ahead): trades, legs and the daily equity as CSV files, "
                                      "and the statistics.")
    _add_backtest_arguments(bc)
    bc.add_argument("--out", default=None, metavar="DIR",
                    help="folder for trades.csv, legs.csv, equity.csv (default reports/backtests/<run id>/)")
    bc.add_argument("--json", action="store_true", help="one strict JSON object on stdout")
    bh = btsub.add_parser("history", help="fifteen years on modelled prices (MODELLED PRICES), 2011-05-02 on",
                          description="Backtest a strategy on the model-priced SPX history (research_lib.backtest"
                                      ".history): every session since 2011-05-02, options priced by the surface "
                                      "tied to the day's VIX9D/VIX/VIX3M, the regime from the published GEX; the "
                                      "same options and outputs as 'backtest chains'. MODELLED PRICES.")
    _add_backtest_arguments(bh, source=False)
    bh.add_argument("--market-dir", default=None, metavar="DIR",
                    help="market files (default $RESEARCH_LIB_MARKET_DATA, data/market, ../shared/data/market)")
    bh.add_argument("--out", default=None, metavar="DIR",
                    help="folder for trades.csv, legs.csv, equity.csv (default reports/backtests/<run id>/)")
    bh.add_argument("--json", action="store_true", help="one strict JSON object on stdout")

    sw = sub.add_parser("sweep", help="a parameter sweep: every combination of a grid file, one backtest each",
                        description="Run every configuration of GRID.toml as one backtest (local process pool or a "
                                    "Dask cluster), write the results table (CSV, Parquet), the equity curves and "
                                    "the walk-forward and deflated-Sharpe checks.")
    _add_sweep_arguments(sw)
    sw.add_argument("--out", default=None, metavar="DIR",
                    help="the sweep's folder (default reports/sweeps/<run id>/); the same folder resumes a run")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.add_argument("--json", action="store_true", help="one strict JSON object on stdout")

    pa = sub.add_parser("paper", help="paper trading: open, mark, close, status, history, reset (SQLite ledger)",
                        description="Paper trading on the paper ledger (data/paper.sqlite): the day's decision "
                                    "placed through the simulated broker, positions marked from fresh chains and "
                                    "closed by the exit rules, the account's performance.")
    pasub = pa.add_subparsers(dest="paper_kind", required=True)
    p_open = pasub.add_parser("open", help="make the day's decision (or a fixed strategy) and place it")
    p_mark = pasub.add_parser("mark", help="mark every open position, close what the exit rules fire (cron-safe)")
    p_close = pasub.add_parser("close", help="close one open position by hand")
    p_close.add_argument("id", type=_int_at_least(1, "position id"), help="the position id (paper status)")
    p_status = pasub.add_parser("status", help="the account and its open positions at their latest marks")
    p_hist = pasub.add_parser("history", help="closed trades, per-strategy statistics, the equity curve")
    p_reset = pasub.add_parser("reset", help="empty the account and start again with --cash (or its starting cash)")
    for sp_ in (p_open, p_mark, p_close, p_status, p_hist, p_reset):
        sp_.add_argument("--account-name", default=None, metavar="NAME",
                         help="the paper account (default the config's account.name; created when new)")
        sp_.add_argument("--cash", type=_positive_money, default=None,
                         help="starting cash of a new account, or of the account after reset")
        sp_.add_argument("--config", default=None, metavar="PATH", help="the settings file (default data/paper.toml)")
        sp_.add_argument("--json", action="store_true", help="one strict JSON object on stdout")
    for sp_ in (p_open, p_mark, p_close):
        sp_.add_argument("--source", default=None,
                         help="auto, cboe, tradier, polygon, store, modelled, or a chain file (default the config's)")
        sp_.add_argument("--date", default=None, type=_date_arg,
                         help="YYYY-MM-DD: replay a stored day or a file's day (default latest)")
    p_open.add_argument("--symbol", default=None, type=_symbol_type, help="underlying (default the config's first)")
    p_open.add_argument("--strategy", default=None, choices=("auto", *PAPER_STRATEGIES),
                        help="auto (the decision core) or a fixed strategy")
    p_open.add_argument("--dte", default=None, type=_int_at_least(1, "days to expiry"), help="target days to expiry")
    p_open.add_argument("--short-delta", default=None, type=_delta_arg, help="absolute delta of the short leg(s)")
    wing_ = p_open.add_mutually_exclusive_group()
    wing_.add_argument("--long-delta", default=None, type=_delta_arg, help="absolute delta of the long leg(s)")
    wing_.add_argument("--width", default=None, type=_width_arg, help="spread width in index points")
    p_mark.add_argument("--force", action="store_true", help="mark even outside the trading session")
    p_reset.add_argument("--yes", action="store_true", help="confirm: the account's history is deleted")

    ni = sub.add_parser("nightly", help="the nightly pipeline: chains, daily reports, paper mark, a run summary",
                        description="Fetch (or --import) today's chains into the store, run the daily reports and "
                                    "a paper mark; write last_nightly_summary.json and a nightly.log line in the "
                                    "data folder. Exit 0 all ok, 9 some step failed, 10 every step failed, 6 "
                                    "another nightly is running.")
    ni.add_argument("--symbols", default=None, help="comma-separated underlyings (default: market.symbols of "
                                                    "paper.toml)")
    ni.add_argument("--import", dest="import_dir", default=None, metavar="DIR",
                    help="import the chain files under DIR into the store instead of fetching")
    ni.add_argument("--skip", action="append", default=[], choices=("chains", "reports", "paper_mark"),
                    metavar="STEP", help="leave a step out (chains, reports, paper_mark); repeatable")
    ni.add_argument("--json", action="store_true", help="print the run summary as JSON on stdout")

    fl = sub.add_parser("flow", help="order flow per session: buy / sell volume, delta, CVD",
                        description="Sign the trades of a tick trade zip (or a folder of them) by the tick rule, "
                                    "the quote rule or Lee-Ready (with --quotes), or split the volume of an OHLCV "
                                    "bar file by bar direction, close location or BVC; one line per session. "
                                    "Regular hours only; trades flagged suspicious in the file are dropped "
                                    "and counted.")
    fl.add_argument("path", help="a tick trade zip (YYYYMMDD_trade.zip), a folder of them, or an OHLCV bar file")
    fl.add_argument("--quotes", default=None, metavar="FILE",
                    help="1-second quote zip (YYYYMMDD_quote.zip) or a folder of them, paired by date")
    fl.add_argument("--rule", default=None, choices=("tick", "quote", "lee_ready", "bar", "clv", "bvc"),
                    help="trades: tick (default), quote, lee_ready (default with --quotes); bars: bar, clv, "
                         "bvc (default)")
    fl.add_argument("--date", default=None, type=_date_arg, help="YYYY-MM-DD, or all (default)")
    fl.add_argument("--bar", default="1min", help="flow bar length for trades (default 1min; whole seconds "
                                                  "dividing an hour)")
    fl.add_argument("--json", action="store_true", help="one strict JSON object per session on stdout")

    pf = sub.add_parser("profile", help="volume profiles of an intraday bar file (POC, value area, HVN/LVN)",
                        description="The volume profile of each session of an OHLCV bar file (SPY 1-/5-minute CSV, "
                                    "generic OHLCV CSV or Parquet; regular hours): POC, value area, HVN/LVN, "
                                    "single prints, opening range and initial balance. --period all: one "
                                    "composite profile over every bar of the file.")
    pf.add_argument("path", help="an OHLCV bar file")
    pf.add_argument("--date", default=None, type=_date_arg,
                    help="YYYY-MM-DD, all (every session) or latest (the file's last session; the default)")
    pf.add_argument("--period", choices=("day", "all"), default="day",
                    help="day: one profile per session (default); all: one composite over every bar")
    pf.add_argument("--row-size", type=lambda v: _number(v, what="dollars per price row", low=0.0, low_open=True),
                    default=None, metavar="R",
                    help="dollars per price row (default: from each profile's range, at most 100 rows of "
                         "1, 2 or 5 x 10^j cents; the preset: 0.05)")
    pf.add_argument("--method", choices=("range", "close"), default=None,
                    help="range: a bar's volume spread over its low-high rows (default); close: all at its close")
    pf.add_argument("--va-rule", choices=("two-row", "one-row"), default=None,
                    help="grow the 70%% value area two rows at a time (default) or one")
    pf.add_argument("--value-area", type=lambda v: _number(v, what="a share of the volume", low=0.0, high=1.0,
                                                           low_open=True), default=0.70, metavar="F",
                    help="share of the volume in the value area (default 0.70)")
    pf.add_argument("--preset", choices=("market_profile",), default=None,
                    help="market_profile: reproduce the py-market-profile package exactly (rows from closes)")
    pf.add_argument("--weight", choices=("volume", "time"), default="volume",
                    help="what a bar puts on its rows: its volume (default) or 1 (time at price, for index bars "
                         "without volume; with the preset: the package's tpo mode)")
    pf.add_argument("--all-hours", action="store_true",
                    help="keep bars outside 09:30-16:00 New York (default: regular hours only)")
    pf.add_argument("--tz", default="America/New_York", metavar="ZONE", type=_zone_arg,
                    help="the zone of the file's naive times (default America/New_York; the GOOGL fixture is "
                         "America/Los_Angeles)")
    pf.add_argument("--json", action="store_true", help="one strict JSON object per profile, one line each")

    ms = sub.add_parser("market-state", help="each session's market state against the prior value area, LVN alerts",
                        description="Profile every session of an intraday bar file, classify each against the "
                                    "prior session's value area (trend_up, trend_down, balanced and its kind) and "
                                    "raise the alerts of the prior session's low-volume nodes; --record stores the "
                                    "alerts in the decision log beside the GEX alerts.")
    ms.add_argument("path", help="an OHLCV bar file (SPY 1-/5-minute CSV, generic OHLCV CSV or Parquet)")
    ms.add_argument("--date", default=None, type=_date_arg, help="YYYY-MM-DD, or all (default: every session)")
    ms.add_argument("--symbol", default=None, type=_symbol_type, help="named in the alerts (default from the file name)")
    ms.add_argument("--row-size", type=lambda v: _number(v, what="dollars per price row", low=0.0, low_open=True),
                    default=None, metavar="R", help="dollars per price row of the profiles (default: from each range)")
    ms.add_argument("--lvn-distance", type=lambda v: _number(v, what="% of the node", low=0.0, low_open=True),
                    default=0.10, metavar="PCT", help="alert within this %% of a prior LVN (default 0.10)")
    ms.add_argument("--record", action="store_true", help="store the alerts in data/decisions.sqlite")
    ms.add_argument("--json", action="store_true", help="one strict JSON object per session on stdout")

    bi = sub.add_parser("binary", help="prediction markets: the YES/NO monitor (watch) and the top-of-book scan")
    bisub = bi.add_subparsers(dest="binary_kind", required=True)
    bw = bisub.add_parser("watch", help="subscribe to the Polymarket CLOB market channel, print YES/NO edges",
                          description="Subscribe to the market channel for the given token ids, keep each token's "
                                      "book, print one line (or JSON object) per market top-of-book change with the "
                                      "buy-both / sell-both edges, and append them to the Parquet series in "
                                      "<data>/binary/topbook/ (--no-store to skip).")
    bw.add_argument("--assets", required=True, help="comma-separated token (asset) ids; tokens are grouped by the "
                                                    "market id the channel sends, the first listed of a market is "
                                                    "YES, the second NO")
    bw.add_argument("--url", default=None, help="the WebSocket URL (default: the Polymarket market channel)")
    bw.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds (default: "
                                                                              "until interrupted)")
    bw.add_argument("--fee-rate", type=float, default=0.0, help="taker fee rate of every leg (default 0)")
    bw.add_argument("--no-store", action="store_true", help="do not append the snapshots to <data>/binary/topbook/")
    bw.add_argument("--json", action="store_true", help="one strict JSON object per snapshot, then a summary")
    bs = bisub.add_parser("scan", help="summed-YES edges of multi-outcome events in a top-of-book dataset",
                          description="Read DIR/quotes/dt=*.parquet and DIR/markets.parquet; per day and category: "
                                      "the multi-outcome events seen, how often and for how long the buy-all and "
                                      "sell-all edges of the summed YES prices were positive after costs, and the "
                                      "largest episodes, with the rule that aligns the outcomes' quotes in time.")
    bs.add_argument("dir", help="the dataset folder (quotes/, markets.parquet, labels.parquet)")
    bs.add_argument("--staleness", type=float, default=300.0, metavar="S",
                    help="largest age of an outcome's quote used at a poll, seconds (default 300)")
    bs.add_argument("--fee-rate", type=float, default=0.0, help="taker fee rate of every leg (default 0)")
    bs.add_argument("--tick", type=float, default=0.001, help="edges are floored to this tick (default 0.001)")
    bs.add_argument("--events", choices=("all", "exclusive"), default="all",
                    help="all questions with several slugs (default), or only those the labels show exclusive")
    bs.add_argument("--two-sided", action="store_true",
                    help="count an outcome's quote toward an edge only when it has both sides, uncrossed")
    bs.add_argument("--top", type=int, default=10, help="how many of the largest episodes to list (default 10)")
    bs.add_argument("--json", action="store_true", help="one strict JSON object")

    rp = sub.add_parser("report", help="run report notebooks (papermill) and export them to HTML")
    rsub = rp.add_subparsers(dest="report_kind", required=True)
    rb = rsub.add_parser("backtest", help="the backtest notebook: statistics, charts, trades",
                         description="Run notebooks/backtest.ipynb with the backtest's parameters, write "
                                     "reports/backtests/<run id>/backtest.ipynb and .html (and the CSV files), "
                                     "update reports/index.html.")
    _add_backtest_arguments(rb)
    _add_report_run_arguments(rb, timeout=1800.0)
    rs = rsub.add_parser("sweep", help="the sweep notebook: heatmaps, top configurations, walk-forward",
                         description="Run notebooks/sweep.ipynb for a grid file: the sweep's files, sweep.ipynb and "
                                     "sweep.html in reports/sweeps/<run id>/, listed in reports/index.html.")
    _add_sweep_arguments(rs)
    _add_report_run_arguments(rs, timeout=7200.0)

    rd = rsub.add_parser("daily", help="the daily GEX report",
                         description="Run notebooks/daily_report.ipynb for each symbol, write "
                                     "reports/daily/<date>/<SYMBOL>.ipynb and .html, update reports/index.html.")
    who = rd.add_mutually_exclusive_group()
    who.add_argument("--symbol", default=None, type=_symbol_type, help="one underlying (default SPX)")
    who.add_argument("--symbols", default=None, help="comma-separated underlyings, e.g. SPX,SPY,QQQ")
    rd.add_argument("--date", default=None, type=_date_arg,
                    help="YYYY-MM-DD (archives, the store) or latest (default)")
    rd.add_argument("--source", default="auto",
                    help="auto (live -> store -> modelled), cboe, tradier, polygon, store, modelled, or a file")
    rd.add_argument("--convention", default="model", help="levels and charts: model (default) or perfiliev")
    rd.add_argument("--account", type=float, default=50_000.0, help="account value in dollars (default 50000)")
    rd.add_argument("--no-record", action="store_true", help="do not log the decision in data/decisions.sqlite")
    rd.add_argument("--no-log", action="store_true", dest="no_record", help=argparse.SUPPRESS)  # decide's old name
    rd.add_argument("--history-days", type=int, default=365, help="history context window, days (0: none)")
    rd.add_argument("--reports-dir", default=None, help="default $RESEARCH_LIB_REPORTS or reports/")
    rd.add_argument("--notebook", default=None, help="another notebook with the same parameters")
    rd.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per notebook cell")
    rd.add_argument("--quiet", action="store_true", help="no progress lines (the log file has them)")
    rd.add_argument("--json", action="store_true", help="print the run summary as JSON on stdout")
    pr = rsub.add_parser("prune", help="remove old or FAILED rows of the reports index, and their files",
                         description="Remove index rows and their files (notebooks, HTML). With no filter it "
                                     "removes nothing; filters combine (a row must match all of them).")
    pr.add_argument("--failed", action="store_true",
                    help="rows whose last run FAILED (a kept good report of the same row stays), and the "
                         "failed files of rows that have a good report")
    age = pr.add_mutually_exclusive_group()
    age.add_argument("--older-than", type=int, default=None, metavar="DAYS",
                     help="rows whose report date is more than DAYS days before today (New York)")
    age.add_argument("--before", default=None, type=_date_arg, metavar="YYYY-MM-DD",
                     help="rows whose report date is before this date")
    pr.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    pr.add_argument("--reports-dir", default=None, help="default $RESEARCH_LIB_REPORTS or reports/")
    pr.add_argument("--json", action="store_true", help="what was (or would be) removed, as JSON")
    return parser


# --------------------------------------------------------------------------------------------------------
# backtest arguments (``backtest chains`` and ``report backtest`` read them the same way)

#: ``--strategy`` values: ``auto`` is the regime-driven pipeline (``decide_on`` each day).
BACKTEST_STRATEGIES = ("auto", "putwrite", "buywrite", "short_put", "bull_put", "bear_call", "iron_condor",
                       "bull_call", "bear_put", "strangle")


def _number(value: str, *, what: str, low: float | None = None, high: float | None = None,
            low_open: bool = False, integer: bool = False):
    try:
        x = int(value) if integer else float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not {'a whole number' if integer else 'a number'}"
                                         f" ({what})") from None
    if not math.isfinite(x) or (low is not None and (x <= low if low_open else x < low)) \
            or (high is not None and x > high):
        bounds = (f"> {low:g}" if low_open else f">= {low:g}") if low is not None else ""
        bounds += (" and " if bounds and high is not None else "") + (f"<= {high:g}" if high is not None else "")
        raise argparse.ArgumentTypeError(f"{value!r}: expected {what} {bounds}".rstrip())
    return x


def _int_at_least(low: int, what: str):
    return lambda v: _number(v, what=what, low=low, integer=True)


def _delta_arg(value: str) -> float:
    return _number(value, what="an absolute delta", low=0.0, high=1.0, low_open=True)


def _width_arg(value: str) -> float:
    return _number(value, what="a spread width in index points", low=0.0, low_open=True)


def _fraction_or_none(value: str) -> float | None:
    """``F`` (a positive fraction of the entry credit or debit: 0.5 = 50%) or ``none`` (rule off)."""
    if str(value).strip().lower() == "none":
        return None
    return _number(value, what="a fraction of the entry premium (0.5 = 50%) or none", low=0.0, low_open=True)


_ENTRY = re.compile(r"when-flat|daily|roll|every:([1-9][0-9]*)")
_FILL = re.compile(r"mid|natural|slippage:(.+)")


def _entry_arg(value: str) -> str:
    text = str(value).strip().lower()
    if not _ENTRY.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{value!r}: use when-flat, daily, every:N (N sessions, N >= 1) or roll")
    return text


def _fill_arg(value: str) -> str:
    text = str(value).strip().lower()
    m = _FILL.fullmatch(text)
    if not m:
        raise argparse.ArgumentTypeError(f"{value!r}: use mid, natural or slippage:F (F the fraction of the "
                                         f"half-spread added to mid, 0..1)")
    if m.group(1) is not None:
        _number(m.group(1), what="slippage:F with F a fraction of the half-spread", low=0.0, high=1.0)
    return text


def _day_arg(value: str) -> str:
    try:
        return parse_date(str(value).strip(), name="date").isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; give YYYY-MM-DD") from None


def _regime_filter_arg(value: str) -> str:
    # lazy for start-up time: the backtest parameters load only for the backtest commands
    from research_lib.backtest.params import REGIME_NAMES

    names = [x.strip().upper().replace("-", "_") for x in str(value).split(",") if x.strip()]
    if not names or any(n not in REGIME_NAMES for n in names):
        raise argparse.ArgumentTypeError(f"{value!r}: one or more of {', '.join(REGIME_NAMES)}, comma-separated")
    return ",".join(names)


def _add_backtest_arguments(p: argparse.ArgumentParser, *, source: bool = True) -> None:
    if source:
        p.add_argument("--source", required=True, metavar="PATH|store",
                       help="a multi-day chain file (an EOD or intraday archive) or 'store' (the local chain store)")
        p.add_argument("--symbol", default="SPX", type=_symbol_type, help="underlying (default SPX)")
    p.add_argument("--start", default=argparse.SUPPRESS, type=_day_arg, help="first trading day, YYYY-MM-DD (default: the data's)")
    p.add_argument("--end", default=argparse.SUPPRESS, type=_day_arg, help="last trading day, YYYY-MM-DD (default: the data's)")
    p.add_argument("--strategy", default=argparse.SUPPRESS, choices=BACKTEST_STRATEGIES,
                   help="auto (the regime-driven pipeline), putwrite / buywrite (the Cboe PUT / BXM rules) or a "
                        "fixed strategy")
    p.add_argument("--dte", default=argparse.SUPPRESS, type=_int_at_least(0, "days to expiry"), help="target days to expiry")
    p.add_argument("--short-delta", default=argparse.SUPPRESS, type=_delta_arg, help="absolute delta of the short leg(s)")
    wing = p.add_mutually_exclusive_group()
    wing.add_argument("--long-delta", default=argparse.SUPPRESS, type=_delta_arg, help="absolute delta of the long leg(s)")
    wing.add_argument("--width", default=argparse.SUPPRESS, type=_width_arg, help="spread width in index points")
    p.add_argument("--entry", default=argparse.SUPPRESS, type=_entry_arg, help="when-flat, daily, every:N sessions or roll")
    p.add_argument("--max-open", default=argparse.SUPPRESS, type=_int_at_least(1, "open positions"),
                   help="cap on open positions")
    p.add_argument("--profit-target", default=argparse.SUPPRESS, type=_fraction_or_none, metavar="F|none",
                   help="close at this fraction of the entry credit or debit (default 0.5), or none")
    p.add_argument("--stop-loss", default=argparse.SUPPRESS, type=_fraction_or_none, metavar="F|none",
                   help="close at a loss of this fraction of the credit (default 2.0), or none")
    p.add_argument("--exit-dte", default=argparse.SUPPRESS, type=_int_at_least(0, "days to expiry"),
                   help="close at this many days to expiry (default 7)")
    p.add_argument("--max-hold", default=argparse.SUPPRESS, type=_int_at_least(1, "sessions"), help="maximum holding sessions")
    p.add_argument("--fill", default=argparse.SUPPRESS, type=_fill_arg, help="mid, natural or slippage:F")
    p.add_argument("--commission", default=argparse.SUPPRESS, type=lambda v: _number(v, what="dollars per contract and leg",
                                                                         low=0.0),
                   help="$ per contract and leg")
    p.add_argument("--account", default=argparse.SUPPRESS, type=_positive_money, help="initial account equity ($)")
    p.add_argument("--contracts", default=argparse.SUPPRESS, type=_int_at_least(1, "contracts per entry"),
                   help="trade this many contracts per entry instead of the Kelly sizing (the open-risk cap kept)")
    if not source:      # the modelled history carries a regime series (the published GEX); real chains do not yet
        p.add_argument("--regime-filter", default=argparse.SUPPRESS, type=_regime_filter_arg,
                       metavar="POSITIVE_GAMMA[,NEUTRAL]",
                       help="enter only on days of these gamma regimes (the regime series of the published GEX)")


def _add_report_run_arguments(p: argparse.ArgumentParser, *, timeout: float) -> None:
    """The options of a one-notebook report run (``report backtest``, ``report sweep``)."""
    p.add_argument("--reports-dir", default=None, help="default $RESEARCH_LIB_REPORTS or reports/")
    p.add_argument("--notebook", default=None, help="another notebook with the same parameters")
    p.add_argument("--timeout", type=float, default=timeout, help="seconds allowed per notebook cell")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the run's summary as JSON on stdout")


def _add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("grid", metavar="GRID.toml", help="the grid file: [backtest] fixed options, [grid] lists")
    p.add_argument("--engine", default=None, choices=("chains", "history"), help="overrides the file's engine")
    p.add_argument("--workers", default=None, type=_int_at_least(1, "worker processes"),
                   help="local worker processes (default: the CPU count; 1: in this process)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="a Dask scheduler to run on (default $DASK_SCHEDULER_ADDRESS; unset: local)")
    p.add_argument("--market-dir", default=None, metavar="DIR", help="market history folder")


#: Fixed strategies of ``paper open --strategy`` (the backtest's, without the index methodologies).
PAPER_STRATEGIES = ("short_put", "bull_put", "bear_call", "iron_condor", "bull_call", "bear_put", "strangle")
#: The backtest flags and the :class:`~research_lib.backtest.params.BacktestParams` field each sets.
BACKTEST_FLAGS = ("strategy", "dte", "short_delta", "long_delta", "width", "entry", "max_open", "profit_target",
                  "stop_loss", "exit_dte", "max_hold", "fill", "commission", "account", "start", "end",
                  "contracts", "regime_filter")


def backtest_param_kwargs(args) -> dict:
    """The :class:`BacktestParams` keyword arguments the command line gave: a flag not given is left out (the
    parameters' own defaults apply); ``--profit-target none`` / ``--stop-loss none`` give None (the rule off)."""
    given = {name: getattr(args, name) for name in BACKTEST_FLAGS if hasattr(args, name)}
    if given.get("start") and given.get("end") and given["start"] > given["end"]:
        raise UsageError(f"--start {given['start']} is after --end {given['end']}")
    return given


# --------------------------------------------------------------------------------------------------------
# exit codes

EXIT_INTERNAL = 1
EXIT_REPORT_FAILED = 5
EXIT_LOCKED = 6
EXIT_DECISION_LOG = 7
EXIT_LEDGER = 8
EXIT_NIGHTLY_SOME_FAILED = 9
EXIT_NIGHTLY_ALL_FAILED = 10

#: Every exit code of ``research-lib`` and what it means (the README's table).
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "an unexpected error (a bug: the traceback is printed)",
    EXIT_USAGE: "bad usage: an unknown option, a bad value (date, symbol, number, report parameter)",
    EXIT_BAD_INPUT: "bad or unknown input file, a chain file or archive without any usable row, a corrupt store file",
    EXIT_NO_RESULT: "nothing to compute, or no source answered (offline, provider down, not in the store)",
    EXIT_REPORT_FAILED: "a report FAILED (its failed notebook and HTML are kept)",
    EXIT_LOCKED: "another run holds the lock (a report run, paper mark, the nightly run)",
    EXIT_DECISION_LOG: "the decision log refused the decision (duplicate id, unreadable or newer log, malformed record)",
    EXIT_LEDGER: "the paper ledger refused (unreadable, not a ledger, a newer schema, a broken rule)",
    EXIT_NIGHTLY_SOME_FAILED: "the nightly run: some step failed (the summary says which)",
    EXIT_NIGHTLY_ALL_FAILED: "the nightly run: every step that ran failed",
}

#: The stderr label of each error exit code.
_LABELS = {EXIT_USAGE: "bad option", EXIT_BAD_INPUT: "bad input", EXIT_NO_RESULT: "nothing to compute",
           EXIT_LOCKED: "locked", EXIT_DECISION_LOG: "decision log", EXIT_LEDGER: "paper ledger"}


class UsageError(ValueError):
    """A command-line argument is invalid (exit 2). The command line's own error: raised while it reads
    its arguments and turned into an exit code by :func:`main`, never seen by library callers."""


# --------------------------------------------------------------------------------------------------------
# arguments every command reads the same way

_TICKER = re.compile(r"_?[A-Za-z][A-Za-z0-9.]{0,9}")


def parse_symbol(value: str, *, name: str = "--symbol") -> str:
    """A ticker (``SPX``, ``spy``, ``BRK.B``, Cboe's ``_SPX``) upper-cased, without Cboe's leading ``_``.

    Raises :class:`UsageError` for an empty or malformed value (``--symbol ""`` is not SPX).
    """
    text = str(value).strip()
    if not _TICKER.fullmatch(text):
        shown = "an empty value" if not text else repr(value)
        raise UsageError(f"{name}: {shown} is not a ticker (letters, digits and '.', at most 10, e.g. SPX)")
    return text.upper().lstrip("_")


def _symbol_type(value: str) -> str:
    try:
        return parse_symbol(value)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--symbol: ")) from None


#: Why a command refuses ``--date all`` (the commands not listed accept it).
DATE_ALL_REFUSED = {
    "gex --source": "it means every clean day of a multi-day chain file, and --source serves one snapshot "
                    "(give the file as PATH instead)",
    "decide": "a decision is for one trading day; give --date YYYY-MM-DD or latest "
              "(every day of a file: research-lib gex FILE --date all)",
    "report daily": "a report is for one trading day; give --date YYYY-MM-DD or latest (run one report per date)",
}


def parse_date_option(value: str | None, *, allow_all: bool = False) -> str | None:
    """``--date`` as every command reads it: ``None`` for latest (``None``, ``""``, ``latest``, any case),
    ``"all"`` when ``allow_all``, else the ISO text of a real calendar date.

    Raises :class:`UsageError`: ``is not YYYY-MM-DD`` (the shape is wrong), ``does not exist`` (the shape is
    right, the day is not in the calendar: 2026-02-30), or ``all`` when not ``allow_all``.
    """
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() in ("", "latest"):
        return None
    if text.lower() == "all":
        if allow_all:
            return "all"
        raise UsageError("--date all is not accepted here; give YYYY-MM-DD or latest")
    try:
        return parse_date(text, name="--date").isoformat()
    except ValueError as exc:
        raise UsageError(f"{exc}; give YYYY-MM-DD or latest") from None


def _date_arg(value: str) -> str | None:
    """argparse ``type`` of every ``--date``: the shape and the calendar are checked here; a command that
    cannot take ``all`` refuses it with :func:`_refuse_all`."""
    try:
        return parse_date_option(value, allow_all=True)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--date ")) from None


def _refuse_all(date: str | None, command: str) -> None:
    if date == "all":
        raise UsageError(f"--date all is not accepted by {command}: {DATE_ALL_REFUSED[command]}")


def _zone_arg(value: str) -> str:
    """argparse ``type`` of ``--tz``: an IANA time zone name (``America/Los_Angeles``)."""
    import zoneinfo  # start-up: only the commands that take --tz need it

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"{value!r} is not a time zone name (e.g. America/New_York)") from None
    return value


def _positive_money(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of dollars") from None
    if not math.isfinite(x) or x <= 0:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a positive, finite number of dollars")
    return x


def _provider_order() -> tuple[str, ...]:
    """The live providers' order; a bad ``RESEARCH_LIB_PROVIDERS`` is a usage error (exit 2)."""
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.data.sources.auto import provider_order

    try:
        return provider_order()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _check_args(args) -> None:
    """What every command checks the same way before it reads a chain.

    ``--date all`` where the command cannot take it (:data:`DATE_ALL_REFUSED`), with the reason; and
    ``--symbol`` against the chain file: with a PATH (or ``--source FILE``) and an explicit ``--symbol``,
    the file's underlying must be that symbol (``gex SPXFILE --symbol QQQ`` is an error, not SPX). Without
    a file, a missing ``--symbol`` means SPX.
    """
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.data.sources.auto import NAMED_SOURCES

    command = "gex --source" if args.command == "gex" and args.source is not None else args.command
    if command in DATE_ALL_REFUSED:
        _refuse_all(getattr(args, "date", None), command)
    if getattr(args, "source", None) == "auto":
        _provider_order()

    path = getattr(args, "path", None)
    if path is None and getattr(args, "source", None) not in (None, *NAMED_SOURCES):
        path = args.source
    if args.symbol is None:  # not given: SPX for a named source; a file says its own underlying
        args.symbol = "SPX"
        return
    if path is None:
        return
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.data.sources import read_chain

    date = getattr(args, "date", None)
    snap = read_chain(path, date=None if date in (None, "all") else date)
    held = snap.underlying.upper().lstrip("_")
    if held != args.symbol:
        raise UsageError(f"--symbol {args.symbol} does not match {path}: that file holds {held} options "
                         f"(drop --symbol, or give a {args.symbol} chain)")


def _number_or_auto(value, name):
    if value is None or value == "auto":
        return value
    try:
        return float(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be a decimal number or 'auto', got {value!r}") from exc


def _config_for(args, snapshot):
    """(GexConfig, SnapshotRates) of one snapshot: the rate and dividend yield of the snapshot's trading
    date (:func:`research_lib.market.snapshot_rates`, the one default of every path; ``auto`` is the
    same lookup), unless ``--rate`` / ``--div-yield`` give numbers."""
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.data.market import snapshot_rates

    rate = _number_or_auto(args.rate, "--rate")
    div_yield = _number_or_auto(args.div_yield, "--div-yield")
    if div_yield == "auto" and args.convention == "model" and snapshot.underlying not in ("SPX", "SPXW", "SPY",
                                                                                            "XSP"):
        raise ValueError(f"--div-yield auto knows the S&P 500's yield only, not {snapshot.underlying}'s")
    rates = snapshot_rates(snapshot, args.convention, rate=None if rate == "auto" else rate,
                           div_yield=None if div_yield == "auto" else div_yield)
    if "auto" in (rate, div_yield) and args.convention != "model":
        # an explicit 'auto' asks for the market history even under a convention that defaults to 0
        looked = snapshot_rates(snapshot, "model")
        rates = dataclasses.replace(
            rates, rate=looked.rate if rate == "auto" else rates.rate,
            rate_source=looked.rate_source if rate == "auto" else rates.rate_source,
            div_yield=looked.div_yield if div_yield == "auto" else rates.div_yield,
            div_yield_source=looked.div_yield_source if div_yield == "auto" else rates.div_yield_source,
            notes=looked.notes)
    return _config_from_args(args, rates), rates


def _config_from_args(args, rates=None):
    """The GexConfig of the options; ``rates`` (SnapshotRates) supplies the rate and dividend yield, else
    only explicit numbers are used (the preset's otherwise)."""
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.core.gex import config_from

    rate = _number_or_auto(args.rate, "--rate")
    div_yield = _number_or_auto(args.div_yield, "--div-yield")
    if rates is not None:
        rate, div_yield = rates.rate, rates.div_yield
    return config_from(args.convention, rate=None if rate == "auto" else rate,
                       div_yield=None if div_yield == "auto" else div_yield, grid_points=args.grid,
                       days_per_year=args.days_per_year,
                       zero_dte_floor=False if args.no_zero_dte_floor else None,
                       max_dte=args.max_dte, exclude_0dte=args.exclude_0dte)


def _cmd_gex(args, out, err) -> int:
    _check_args(args)
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.core import gex, regime_gex
    from research_lib.data.sources import read_chain, read_chains

    _config_from_args(args)  # bad options fail before any chain is read
    if args.path is None and args.source is None:
        raise ValueError("give a chain file PATH, or --source auto|cboe|tradier|polygon|store|modelled")
    if args.path is not None and args.source is not None:
        raise ValueError("give either a chain file PATH or --source, not both")
    if args.source is not None:
        # lazy for start-up time: each command loads only the layers it runs
        from research_lib.data.sources.auto import get_chain

        if args.date == "all":
            raise ValueError("--date all needs a multi-day chain file")
        served = get_chain(args.symbol, args.source, date=args.date)
        err.write(f"research-lib: {served.describe()}\n")
        snapshots = iter([served.snapshot])
    elif args.date == "all":
        snapshots = read_chains(args.path)
    else:
        snapshots = iter([read_chain(args.path, date=args.date)])
    n = 0
    for snap in snapshots:
        snap_config, rates = _config_for(args, snap)
        analysis = gex.analyze(snap, snap_config)
        rgex = regime_gex.of(analysis)
        if args.json:
            record = analysis.levels.to_dict()
            record["regime_gex"] = rgex.value
            record["regime_gex_detail"] = rgex.to_dict()
            record["config"] = snap_config.to_dict()
            record["rates"] = rates.to_dict()
            out.write(to_json(record) + "\n")
        else:
            if n:
                out.write("\n")
            out.write(format_levels(analysis.levels, pin_risk=analysis.pin_risk, rates=rates, regime_gex=rgex)
                      + "\n")
        out.flush()
        n += 1
    if n == 0:
        err.write(f"research-lib: {args.path}: no usable snapshot\n")
        return EXIT_NO_RESULT
    return EXIT_OK


def _gex_change_pairs(args, err):
    """(before, after, reason) pairs of ``gex-change``'s arguments; None for the 'before' when there is none."""
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.data.sources import read_chain, read_chains
    from research_lib.pipeline import gex_change as gc

    if (args.path is None) == (args.source is None):
        raise ValueError("give a chain file PATH or --source auto|cboe|tradier|polygon|store|modelled (one of them)")
    if args.date == "all":
        if args.source is not None or args.before is not None or args.previous is not None:
            raise UsageError("--date all pairs every consecutive clean day of PATH; it takes no --source, "
                             "--before or --previous")
        prev = None
        for snap in read_chains(args.path):
            if prev is not None:
                yield prev, snap, f"consecutive clean days {prev.snapshot_date} and {snap.snapshot_date} of {args.path}"
            prev = snap
        return
    if args.previous == "all":
        raise UsageError("--previous takes YYYY-MM-DD (the 'before' day), not all")
    if args.source is not None:
        # lazy for start-up time: each command loads only the layers it runs
        from research_lib.data.sources.auto import DEFAULT_PROVIDERS, get_chain

        if args.before is not None:
            raise UsageError("--before is a chain file for PATH; with --source use --previous YYYY-MM-DD")
        served = get_chain(args.symbol, args.source, date=args.date)
        err.write(f"research-lib: {served.describe()}\n")
        if args.previous is not None:
            kind = "store" if args.source in ("auto", *DEFAULT_PROVIDERS) and not served.modelled else args.source
            before = get_chain(args.symbol, "modelled" if served.modelled else kind, date=args.previous).snapshot
            yield before, served.snapshot, f"against {before.source} of {before.snapshot_date}"
            return
        before, reason = gc.previous_snapshot(served.snapshot, served.served_by)
        yield before, served.snapshot, reason
        return
    after = read_chain(args.path, date=args.date)
    if args.before is not None:
        before = read_chain(args.before, date=args.previous)
        yield before, after, f"{args.before} against {args.path}"
    elif args.previous is not None:
        before = read_chain(args.path, date=args.previous)
        yield before, after, f"against {args.previous} of {args.path}"
    else:
        before, reason = gc.previous_in_file(args.path, after.snapshot_date)
        yield before, after, reason


def _cmd_gex_change(args, out, err) -> int:
    _check_args(args)
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.core.gex_change import attribute_change
    from research_lib.data.market import snapshot_config

    n = 0
    configs: dict = {}

    def config(snap):
        key = (snap.underlying, snap.snapshot_date, snap.quote_time)
        if key not in configs:
            configs[key] = snapshot_config(snap, "model")
        return configs[key]

    for before, after, reason in _gex_change_pairs(args, err):
        if before is None:
            err.write(f"research-lib: nothing to compare: {reason}\n")
            return EXIT_NO_RESULT
        ch = attribute_change(before, after, config(before), config(after), method=args.method)
        if args.json:
            out.write(to_json({"reason": reason, **ch.to_dict()}) + "\n")
        else:
            if n:
                out.write("\n")
            out.write(ch.describe() + f"\n  compared: {reason}\n")
        out.flush()
        n += 1
    if n == 0:
        err.write(f"research-lib: nothing to compare: {args.path} holds fewer than two clean days\n")
        return EXIT_NO_RESULT
    return EXIT_OK


def _cmd_scan(args, out, err) -> int:
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.data.sources import detect_format, scan

    fmt = detect_format(args.path)
    table = scan(args.path)
    out.write(f"{args.path}: {fmt.name} ({fmt.description}), {len(table)} snapshot(s), "
              f"{int((table['status'] == 'ok').sum())} usable\n")
    out.write(table.to_string(index=False) + "\n")
    return EXIT_OK


def _cmd_fetch(args, out, err) -> int:
    """Live providers only: no store fallback (``fetch`` is how the store is filled, not read)."""
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.core.chain import ResearchLibError
    from research_lib.data.sources.auto import (
        DEFAULT_PROVIDERS,
        PROVIDER_KEYS,
        NoChainAvailableError,
        get_chain,
        offline,
    )

    source = args.provider
    if source not in ("auto", *DEFAULT_PROVIDERS):
        raise UsageError(f"--provider {source!r}: use auto, cboe, tradier or polygon")
    names = _provider_order() if source == "auto" else (source,)
    nothing = f"no live provider answered for {args.symbol}; nothing was fetched or stored"
    if offline():
        raise NoChainAvailableError(f"{nothing}: RESEARCH_LIB_OFFLINE is set, so no network connection was "
                                    f"tried ({', '.join(names)}); unset it to fetch")
    tried: list[str] = []
    served = None
    for name in names:
        key = PROVIDER_KEYS.get(name)
        if key and not os.environ.get(key):
            tried.append(f"{name}: not tried, {key} is not set")
            continue
        try:
            served = get_chain(args.symbol, name, save=True)
            break
        except (ResearchLibError, OSError) as exc:
            tried.append(f"{name}: {type(exc).__name__}: {exc}")
    if served is None:
        raise NoChainAvailableError(f"{nothing}: " + "; ".join(tried))
    snap = served.snapshot
    if tried:
        err.write("research-lib: tried first: " + "; ".join(tried) + "\n")
    if args.json:
        out.write(to_json({"symbol": snap.underlying, "provider": served.served_by, "source": snap.source,
                           "quote_time": snap.quote_time, "date": snap.snapshot_date, "spot": snap.spot,
                           "contracts": len(snap.contracts)}) + "\n")
    else:
        out.write(f"{served.describe()}\n{len(snap.contracts):,} contracts stored\n")
    return EXIT_OK


def _cmd_import(args, out, err) -> int:
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.data.store import ChainStore

    store = ChainStore()
    report = store.import_paths(args.paths, progress=False if args.no_progress else None, errors="skip")
    if args.json:
        out.write(to_json(report.to_dict()) + "\n")
    else:
        out.write(report.summary() + "\n")
    if report.failed:
        n, total = len(report.failed), len(report.files)
        rest = "; every other one was imported" if n < total else ""
        err.write(f"research-lib: bad input: {n} of {total} path{'s' if total != 1 else ''} could not be "
                  f"imported{rest}: " + "; ".join(f"{f.file}: {f.error}" for f in report.failed) + "\n")
        return EXIT_BAD_INPUT
    return EXIT_OK


def _cmd_decide(args, out, err) -> int:
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.pipeline.decide import decide, report_json

    _check_args(args)
    report = decide(args.symbol, args.source, date=args.date, account=args.account, record=not args.no_record)
    err.write(f"research-lib: {report.served.describe()}\n")
    out.write((report_json(report) if args.json else report.summary()) + "\n")
    return EXIT_OK


def _cmd_store(args, out, err) -> int:
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.data.store import ChainStore

    store = ChainStore()
    table = store.list(args.symbol)
    if args.json:
        for row in table.to_dict(orient="records"):
            out.write(to_json(row) + "\n")
        return EXIT_OK
    out.write(f"store {store.root}: {len(table)} snapshot(s)\n")
    if len(table):
        shown = [c for c in ("underlying", "date", "quote_time", "source", "rows", "spot", "modelled", "path")
                 if c in table.columns]
        out.write(table[shown].to_string(index=False) + "\n")
    return EXIT_OK


def _backtest_setup(args):
    """(params, feed) of the backtest flags: every check runs here, before a chain row is read."""
    kwargs = backtest_param_kwargs(args)
    # lazy for start-up time: the backtest engine and its data layers load only for the backtest commands
    from research_lib.backtest.feed import Feed
    from research_lib.backtest.params import BacktestParams

    params = BacktestParams(**kwargs)  # BacktestInputError (exit 2) names a bad or inconsistent parameter
    if args.source != "store" and not os.path.exists(args.source):
        raise UsageError(f"--source {args.source}: no such chain file (give an archive path or 'store')")
    feed = Feed(args.source, args.symbol, start=kwargs.get("start"), end=kwargs.get("end"))
    return params, feed


def _history_setup(args):
    """(params, run) of ``backtest history``: the parameters checked, then the shared inputs built."""
    kwargs = backtest_param_kwargs(args)
    # lazy for start-up time: the backtest engine and its data layers load only for the backtest commands
    from research_lib.backtest import history
    from research_lib.backtest.params import BacktestParams

    params = BacktestParams(**kwargs)  # BacktestInputError (exit 2) names a bad or inconsistent parameter
    inputs = history.history_inputs(params.start, params.end, market_dir=args.market_dir)
    feed = history.HistoryFeed(inputs, start=params.start, end=params.end)

    def run(progress=None):
        return history.run_history_backtest(params, inputs, progress=progress)

    return params, feed, run


def _cmd_backtest(args, out, err) -> int:
    if args.backtest_kind == "history":
        params, feed, run = _history_setup(args)
    else:
        params, feed = _backtest_setup(args)
        # lazy for start-up time: the backtest engine and its data layers load only for the backtest commands
        from research_lib.backtest.engine import run_backtest

        def run(progress=None):
            return run_backtest(feed, params, progress=progress)
    # lazy for start-up time: the backtest engine and its data layers load only for the backtest commands
    from research_lib.backtest.stats import summary_record
    from research_lib.reporting.runner import backtest_run_folder

    run_id, folder = backtest_run_folder(args.out)
    err.write(f"research-lib: {feed.describe()}\n")
    if args.json:
        result = run()
    else:
        # lazy for start-up time: the progress bar only for the text output
        from tqdm import tqdm

        with tqdm(total=len(feed.days), unit="day", file=err, desc="backtest", leave=False) as bar:
            def advance(i, n, day):
                bar.set_postfix_str(str(day), refresh=False)
                bar.update(1)

            result = run(progress=advance)
    stats = result.stats()
    paths = result.write_csv(folder)
    if args.json:
        extra = {"prices": "MODELLED PRICES"} if args.backtest_kind == "history" else {"prices": "market quotes"}
        out.write(to_json(summary_record(result, stats, paths, run_id=run_id, out=folder, **extra)) + "\n")
        return EXIT_OK
    if args.backtest_kind == "history":
        out.write("MODELLED PRICES: every option price is the model's (research_lib.data.modelled_history), "
                  "not a market quote\n")
    out.write(stats.describe() + "\n")
    if result.missing_days:
        out.write(f"missing days (not filled in): {', '.join(map(str, result.missing_days))}\n")
    for name, path in paths.items():
        out.write(f"{name.removesuffix('_path')}: {path}\n")
    return EXIT_OK


def _cmd_report_backtest(args, out, err) -> int:
    params, feed = _backtest_setup(args)  # bad parameters: exit 2 before a kernel starts
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.reporting import runner as reports

    run = reports.run_backtest_report(
        source=args.source, symbol=args.symbol, params=backtest_param_kwargs(args), reports_dir=args.reports_dir,
        notebook=args.notebook, timeout=args.timeout, progress=not args.quiet)
    if args.json:
        out.write(to_json(run.to_dict()) + "\n")
    else:
        out.write(reports.backtest_line(run) + "\n")
        out.write(f"index: {reports.reports_root(args.reports_dir) / 'index.html'}\n")
    return run.exit_code


def _sweep_spec(args):
    """The grid file's spec with ``--engine``: every check runs here, before a backtest does."""
    # lazy for start-up time: the sweep package loads the backtest engine
    from research_lib.sweep.grid import load_grid

    return load_grid(args.grid).with_engine(args.engine)  # SweepInputError (exit 2) names file, table and key


def _sweep_line(summary: dict) -> str:
    best = summary.get("best") or {}
    stats = best.get("stats") or {}
    text = (f"{summary['configs']} configurations: {summary['done']} run, {summary['skipped']} already done, "
            f"{summary['failed']} failed, {summary['seconds']:.1f} s ({summary['mode']}, {summary['workers']} "
            f"worker(s))")
    if best:
        text += f"\nbest (Sharpe): {best['config_id']} {best['values']} Sharpe {stats.get('sharpe')}"
    dsr = summary.get("deflated_sharpe")
    if dsr:
        text += (f"\ndeflated Sharpe: {dsr['dsr']:.3f} (SR {dsr['sr_annual']:.2f} vs the expected maximum "
                 f"{dsr['sr0_annual']:.2f} of {dsr['n_trials']} trials)")
    elif summary.get("deflated_note"):
        text += f"\ndeflated Sharpe: n/a ({summary['deflated_note']})"
    wf = summary.get("walk_forward") or {}
    text += (f"\nwalk-forward: {wf.get('windows', 0)} window(s) of {wf.get('train_days')}+{wf.get('test_days')} "
             f"sessions, out-of-sample {wf.get('statistic')} {wf.get('oos_statistic')}")
    return text


def _cmd_sweep(args, out, err) -> int:
    spec = _sweep_spec(args)
    # lazy for start-up time: the sweep package loads the backtest engine
    from research_lib.sweep.runner import run_sweep

    if args.quiet:
        result = run_sweep(spec, workers=args.workers, scheduler=args.scheduler, out=args.out,
                           market_dir=args.market_dir)
    else:
        # lazy for start-up time: the progress bar only when shown
        from tqdm import tqdm

        with tqdm(total=None, unit="config", file=err, desc="sweep", leave=False) as bar:
            def advance(done, total, config_id):
                bar.total = total
                bar.n = done
                bar.set_postfix_str(config_id, refresh=False)
                bar.refresh()

            result = run_sweep(spec, workers=args.workers, scheduler=args.scheduler, out=args.out,
                               market_dir=args.market_dir, progress=advance)
    summary = result.summary()
    if args.json:
        out.write(to_json(summary) + "\n")
        return EXIT_OK
    shown = ["config_id", *spec.keys, "trades", "net_pnl", "sharpe", "max_drawdown", "error"]
    out.write(result.table.sort_values("sharpe", ascending=False, na_position="last")[shown].head(10)
              .to_string(index=False) + "\n")
    out.write(_sweep_line(summary) + "\n")
    for name in ("results_path", "parquet_path", "equity_path", "summary_path"):
        out.write(f"{name.removesuffix('_path')}: {summary[name]}\n")
    return EXIT_OK


def _cmd_report_sweep(args, out, err) -> int:
    spec = _sweep_spec(args)  # a bad grid: exit 2 before a kernel starts
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.reporting import runner as reports

    run = reports.run_sweep_report(grid=spec.path, engine=args.engine, workers=args.workers,
                                   scheduler=args.scheduler, market_dir=args.market_dir,
                                   reports_dir=args.reports_dir, notebook=args.notebook, timeout=args.timeout,
                                   progress=not args.quiet)
    if args.json:
        out.write(to_json(run.to_dict()) + "\n")
    else:
        out.write(reports.sweep_line(run) + "\n")
        out.write(f"index: {reports.reports_root(args.reports_dir) / 'index.html'}\n")
    return run.exit_code


def _cmd_report(args, out, err) -> int:
    if args.report_kind == "prune":
        return _cmd_report_prune(args, out, err)
    if args.report_kind == "backtest":
        return _cmd_report_backtest(args, out, err)
    if args.report_kind == "sweep":
        return _cmd_report_sweep(args, out, err)
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.reporting import runner as reports

    _refuse_all(args.date, "report daily")
    symbols = (args.symbols or args.symbol or "SPX").split(",")
    symbols = [s.strip() for s in symbols if s.strip()]

    def progress(line: str) -> None:
        err.write(f"research-lib report: {line}\n")
        err.flush()

    summary = reports.run_reports(symbols, date=args.date or "latest", source=args.source,
                                  convention=args.convention, account=args.account,
                                  record_decision=not args.no_record, history_days=args.history_days,
                                  reports_dir=args.reports_dir, notebook=args.notebook, timeout=args.timeout,
                                  progress=None if args.quiet else progress)
    if args.json:
        out.write(to_json(summary.to_dict()) + "\n")
    else:
        for r in summary.results:
            out.write(reports.result_line(r) + "\n")
        if summary.error:
            out.write(f"NOT RUN: {summary.error}\n")
        out.write(f"index: {reports.reports_root(args.reports_dir) / 'index.html'}\n")
        if summary.summary is not None:
            out.write(f"run summary: {summary.summary}\n")
    if summary.exit_code == reports.EXIT_LOCKED and args.quiet:
        err.write(f"research-lib report: {summary.error}\n")
    return summary.exit_code


def _cmd_binary(args, out, err) -> int:
    if args.binary_kind == "watch":
        return _cmd_binary_watch(args, out, err)
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.data.binary_topbook import scan_topbook

    result = scan_topbook(args.dir, staleness_s=args.staleness, fee_rate=args.fee_rate, tick=args.tick,
                          events=args.events, two_sided=args.two_sided, top=args.top)
    out.write((to_json(result.to_dict()) if args.json else result.to_text()) + "\n")
    return EXIT_OK


def _watch_line(row) -> str:
    no = "NO(derived)" if row["no_derived"] else "NO"
    flags = " ".join(f for f, on in (("BUY-BOTH", row["buy_arb"]), ("SELL-BOTH", row["sell_arb"])) if on)
    return (f"{row['ts'].isoformat()} {row['market'][:12]} YES {row['yes_bid']:.4g}/{row['yes_ask']:.4g} "
            f"{no} {row['no_bid']:.4g}/{row['no_ask']:.4g} buy-both {row['buy_edge']:+.4g} "
            f"sell-both {row['sell_edge']:+.4g}" + (f" {flags}" if flags else ""))


def _cmd_binary_watch(args, out, err) -> int:
    # lazy for start-up time: each command loads only the layers it runs
    import asyncio

    from research_lib.data.binary_store import BinaryStore
    from research_lib.data.binary_watch import watch
    from research_lib.data.sources.polymarket import DEFAULT_URL, ClobMarketFeed

    assets = [a.strip() for a in args.assets.split(",") if a.strip()]
    if args.duration is not None and args.duration < 0:
        raise UsageError(f"--duration {args.duration:g}: must be >= 0 seconds")
    feed = ClobMarketFeed(assets, url=args.url or DEFAULT_URL)
    store = None if args.no_store else BinaryStore()

    def on_rows(frame) -> None:
        for row in frame.to_dict(orient="records"):
            out.write((to_json(row) if args.json else _watch_line(row)) + "\n")
        out.flush()

    try:
        result = asyncio.run(watch(feed, duration=args.duration, fee_rate=args.fee_rate, on_rows=on_rows,
                                   store=store))
    except KeyboardInterrupt:  # how a watch without --duration ends: what was read is stored (watch flushes)
        err.write(f"research-lib: binary watch interrupted; {feed.stats.snapshots} snapshot(s) read"
                  + ("" if store is None else f", stored under {store.root}") + "\n")
        return EXIT_OK
    if args.json:
        out.write(to_json({"summary": result.to_dict()}) + "\n")
    else:
        s = result.stats
        out.write(f"{result.rows} snapshot(s), {result.arbs} with an edge after costs, in {result.seconds:.1f} s; "
                  f"{s['malformed']} malformed message(s), {s['unknown_asset']} for unknown assets, {s['dropped']} "
                  f"dropped, {s['reconnects']} reconnect(s); {len(result.parts)} part file(s) stored\n")
    return EXIT_OK


def _cmd_nightly(args, out, err) -> int:
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.paper import nightly

    def progress(line: str) -> None:
        err.write(f"research-lib nightly: {line}\n")
        err.flush()

    summary = nightly.run_nightly(args.symbols, steps=[s for s in nightly.STEPS if s not in args.skip],
                                  import_dir=args.import_dir, progress=None if args.json else progress)
    if args.json:
        out.write(to_json(summary.to_dict()) + "\n")
    else:
        out.write(summary.line() + "\n")
        if summary.summary_path is not None:
            out.write(f"run summary: {summary.summary_path}\n")
    if summary.error:
        err.write(f"research-lib nightly: {summary.error}\n")
    return summary.exit_code


def _cmd_report_prune(args, out, err) -> int:
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.reporting import runner as reports

    if args.older_than is not None and args.older_than < 0:
        raise UsageError(f"--older-than {args.older_than}: expected a whole number of days >= 0")
    if args.before == "all":
        raise UsageError("--before all: give a date YYYY-MM-DD")
    if not (args.failed or args.older_than is not None or args.before is not None):
        raise UsageError("report prune needs a filter: --failed, --older-than DAYS or --before YYYY-MM-DD "
                         "(add --dry-run to see what would go)")
    result = reports.prune_reports(args.reports_dir, failed=args.failed, older_than_days=args.older_than,
                                   before=args.before, dry_run=args.dry_run)
    if args.json:
        out.write(to_json(result.to_dict()) + "\n")
    else:
        out.write(result.summary() + "\n")
    return EXIT_OK


def _paper_trader(args):
    """The :class:`~research_lib.paper.trader.PaperTrader` of the paper flags (its reconciliation already run)."""
    # lazy for start-up time: the paper layers load only for the paper commands
    from research_lib.paper.config import load_config
    from research_lib.paper.trader import PaperTrader

    config = load_config(args.config)
    if args.account_name:
        config = config.replace(account=args.account_name)
    if args.cash is not None and args.paper_kind != "reset":
        config = config.replace(cash=args.cash)
    return PaperTrader(config)


def _cmd_paper(args, out, err) -> int:
    # lazy for start-up time: the paper layers load only for the paper commands
    from research_lib import calendar as cal
    from research_lib.fs import file_lock
    from research_lib.paper import describe as paper_text
    from research_lib.paper.trader import log_line

    kind = args.paper_kind
    if kind == "mark" and args.date is None and not args.force:
        ok, why = cal.market_state()
        if not ok:
            log_line(f"paper mark: skipped, the market is closed ({why})")
            if args.json:
                out.write(to_json({"skipped": f"the market is closed: {why}", "marks": [], "closed": []}) + "\n")
            else:
                out.write(f"paper mark: the market is closed ({why}); nothing marked (use --date D to replay a "
                          "stored day, --force to mark anyway)\n")
            return EXIT_OK
    if kind == "reset" and not args.yes:
        raise UsageError("paper reset deletes the account's orders, positions and trades: add --yes to confirm")
    trader = _paper_trader(args)
    if not trader.reconciliation.clean:
        err.write(f"research-lib: reconciliation: {trader.reconciliation.summary()}\n")
    if kind == "open":
        fixed = {k: getattr(args, k) for k in ("dte", "short_delta", "long_delta", "width")}
        result = trader.open(source=args.source, date=args.date, symbol=args.symbol, strategy=args.strategy, **fixed)
        out.write((to_json(result.to_dict()) if args.json else paper_text.describe_open(result)) + "\n")
    elif kind == "mark":
        # one marker at a time per ledger (cron every few minutes and a hand run never overlap)
        with file_lock(trader.mark_lock_path, wait=False,
                       note=f"paper mark of {trader.name}"):
            report = trader.mark(source=args.source, date=args.date)
        log_line(f"paper mark {trader.name}: {report.summary()}")
        out.write((to_json(report.to_dict()) if args.json else report.summary()) + "\n")
    elif kind == "close":
        trade = trader.close(args.id, source=args.source, date=args.date)
        log_line(f"paper close {trader.name} #{trade.position_id}: P&L {trade.realized_pnl:+.2f}")
        out.write((to_json(dataclasses.asdict(trade)) if args.json else paper_text.describe_closed(trade)) + "\n")
    elif kind == "status":
        status = trader.status()
        out.write((to_json(status.to_dict()) if args.json else paper_text.describe_status(status, trader)) + "\n")
    elif kind == "history":
        hist = trader.history()
        if args.json:
            out.write(to_json({k: v.to_dict(orient="records") for k, v in hist.items()}) + "\n")
        else:
            out.write(paper_text.describe_history(hist) + "\n")
    else:
        account = trader.reset(args.cash)
        if args.json:
            out.write(to_json(dataclasses.asdict(account)) + "\n")
        else:
            out.write(f"paper account {account.name} reset: cash {account.cash:,.2f}\n")
    return EXIT_OK


_FLOW_TEXT_COLUMNS = ("date", "trades", "bars", "volume", "buy_volume", "sell_volume", "delta", "cvd_close",
                      "buy_share", "aggressive_buy_bars", "aggressive_sell_bars")


def _cmd_flow(args, out, err) -> int:
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.pipeline.flow import file_flow

    run = file_flow(args.path, quotes=args.quotes, rule=args.rule, date=args.date, bar=args.bar)
    if run.sessions.empty:
        err.write(f"research-lib: no regular-hours {run.input_kind} in {args.path}\n")
        return EXIT_NO_RESULT
    if args.json:
        for record in run.records():
            out.write(to_json(record) + "\n")
        return EXIT_OK
    table = run.sessions[list(_FLOW_TEXT_COLUMNS)].astype({"trades": object}).fillna({"trades": "-"}).rename(columns={"aggressive_buy_bars": "aggr_buy",
                                                                     "aggressive_sell_bars": "aggr_sell"})
    out.write(f"order flow of {args.path} (rule {run.rule}, regular hours"
              + (f", {int(run.sessions['suspicious_dropped'].sum())} suspicious trades dropped"
                 if run.input_kind == "trades" else "") + ")\n")
    out.write(table.to_string(index=False, float_format=lambda x: f"{x:,.3f}" if abs(x) < 10 else f"{x:,.0f}") + "\n")
    return EXIT_OK


def _cmd_profile(args, out, err) -> int:
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.core import volume_profile as vp
    from research_lib.data.market.intraday import read_bars

    options = {"row_size": args.row_size, "method": args.method, "value_area": args.value_area,
               "va_rule": None if args.va_rule is None else args.va_rule.replace("-", "_"), "preset": args.preset,
               "weight": args.weight}
    vp.ProfileParams(**options)  # bad combinations fail before the file is read
    if args.period == "all" and args.date not in (None, "all"):
        raise UsageError("--period all is one composite over every bar of the file; it takes no --date D")
    bars = read_bars(args.path, regular_hours=not args.all_hours, tz=args.tz)
    if len(bars) == 0:
        err.write(f"research-lib: {args.path}: no bars{'' if args.all_hours else ' in regular hours'}\n")
        return EXIT_NO_RESULT
    if args.period == "all":
        profiles = [vp.volume_profile(bars, **options)]
    else:
        sessions = bars["session"]
        if args.date is None:
            bars = bars[sessions == sessions.iloc[-1]]
        elif args.date != "all":
            day = parse_date(args.date, name="--date")
            if not (sessions == day).any():
                err.write(f"research-lib: {args.path}: no bars on {day} (the file holds {sessions.iloc[0]} .. "
                          f"{sessions.iloc[-1]}, {sessions.nunique()} sessions)\n")
                return EXIT_NO_RESULT
            bars = bars[sessions == day]
        profiles = vp.session_profiles(bars, **options)
    for p in profiles:
        out.write((to_json({"file": str(args.path), **p.to_dict()}) if args.json else p.describe()) + "\n")
    out.flush()
    return EXIT_OK


def _cmd_market_state(args, out, err) -> int:
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.core.market_state import MarketStateParams
    from research_lib.pipeline.sessions import file_states, record_alerts

    kw = {} if args.row_size is None else {"row_size": args.row_size}
    if args.date == "all":
        args.date = None
    states = file_states(args.path, underlying=args.symbol, date=args.date,
                         params=MarketStateParams(lvn_distance_pct=args.lvn_distance), **kw)
    if args.date is not None:  # the session asked for, not the one before it (its baseline)
        states = dataclasses.replace(states, states=tuple(s for s in states.states if str(s.session) == args.date),
                                     alerts=tuple(a for a in states.alerts if str(a.date) == args.date))
    if not states.states:
        err.write(f"research-lib: {args.path}: no session with a session before it to classify against\n")
        return EXIT_NO_RESULT
    if args.record:
        n = record_alerts(states)
        err.write(f"research-lib: {n} LVN alert(s) recorded in the decision log\n")
    if args.json:
        for record in states.records():
            out.write(to_json(record) + "\n")
        return EXIT_OK
    table = states.table.drop(columns=["prior_lvn"])
    out.write(f"market state of {args.path} ({states.underlying}): {len(table)} session(s), "
              f"{len(states.alerts)} LVN alert(s)\n")
    out.write(table.to_string(index=False, float_format=lambda x: f"{x:.2f}") + "\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None, *, out=None, err=None) -> int:
    """Entry point of ``research-lib``. Returns the exit code (:data:`EXIT_CODES`, :func:`exit_code_for`)."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = _build_parser()
    try:  # argparse writes its usage errors and --help to sys.stderr/stdout: send them to err/out
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and EXIT_USAGE
    handler = {"gex": _cmd_gex, "gex-change": _cmd_gex_change, "scan": _cmd_scan, "fetch": _cmd_fetch, "import": _cmd_import,
               "store": _cmd_store, "decide": _cmd_decide, "report": _cmd_report,
               "backtest": _cmd_backtest, "sweep": _cmd_sweep, "paper": _cmd_paper,
               "nightly": _cmd_nightly, "flow": _cmd_flow, "profile": _cmd_profile,
               "market-state": _cmd_market_state, "binary": _cmd_binary}[args.command]
    try:
        return handler(args, out, err)
    except BrokenPipeError:
        # The reader went away (``| head``): not an error of ours. Silence the flush at exit.
        sys.stdout = None
        return EXIT_OK
    except Exception as exc:  # mapped to an exit code below; anything unknown is re-raised
        code = exit_code_for(exc)
        if code is None:
            raise
        err.write(f"research-lib: {_error_line(exc, code)}\n")
        return code


def _error_classes() -> list[tuple[type, int]]:
    """(exception class, exit code) in dispatch order: the first class an error is an instance of decides.

    The library's classes come first and the most specific before their bases (most of them are also
    ``ValueError``s, so a plain ``ValueError`` rule must never see them). They come from
    :mod:`research_lib.errors` (standard library only, so importing them costs no start-up time), except
    the providers' errors, imported here so that only a failing command loads the HTTP client.
    """
    # lazy for start-up time: the providers' errors live beside the HTTP client
    from research_lib.data.sources.http import ProviderError

    return [
        (UsageError, EXIT_USAGE),
        (ReportLockedError, EXIT_LOCKED),
        (LockBusyError, EXIT_LOCKED),
        # paper trading: a bad setting, account, position id or order is what the user typed; the ledger refusing
        (PaperConfigError, EXIT_USAGE), (PaperAccountError, EXIT_USAGE), (PositionNotFoundError, EXIT_USAGE),
        (OrderError, EXIT_USAGE), (LedgerError, EXIT_LEDGER), (MarkError, EXIT_NO_RESULT),
        # bad parameters: what the user typed
        (ReportParameterError, EXIT_USAGE), (GexConfigError, EXIT_USAGE), (RegimeParamsError, EXIT_USAGE),
        (StrategyParamsError, EXIT_USAGE), (AlertParamsError, EXIT_USAGE), (HistoryArgumentError, EXIT_USAGE),
        (SizingError, EXIT_USAGE), (AttributionParamsError, EXIT_USAGE), (BacktestInputError, EXIT_USAGE),
        (SweepInputError, EXIT_USAGE), (NightlyError, EXIT_USAGE), (OrderFlowInputError, EXIT_USAGE),
        (ProfileParamsError, EXIT_USAGE), (MarketStateError, EXIT_USAGE),
        (BinaryParamsError, EXIT_USAGE),
        # the decision log
        (DecisionLogError, EXIT_DECISION_LOG), (DecisionError, EXIT_DECISION_LOG),
        # nothing to compute, no source answered (before their bases ChainError, StoreError, FileNotFoundError)
        (NoExposureError, EXIT_NO_RESULT), (SnapshotNotStoredError, EXIT_NO_RESULT),
        (MarketDataNotFoundError, EXIT_NO_RESULT),
        # bad or unknown input files
        (ProfileInputError, EXIT_BAD_INPUT),
        (BinaryMarketError, EXIT_BAD_INPUT),
        (NothingToImportError, EXIT_BAD_INPUT), (ChainError, EXIT_BAD_INPUT), (ChangeInputError, EXIT_BAD_INPUT), (StoreError, EXIT_BAD_INPUT),
        (CalendarRangeError, EXIT_BAD_INPUT), (IntradayFileError, EXIT_BAD_INPUT), (FileNotFoundError, EXIT_BAD_INPUT),
        (IsADirectoryError, EXIT_BAD_INPUT), (NotADirectoryError, EXIT_BAD_INPUT),
        (PermissionError, EXIT_BAD_INPUT),
        # nothing to compute: no source answered, or an input the computation needs is missing or impossible
        (NoChainAvailableError, EXIT_NO_RESULT), (ProviderError, EXIT_NO_RESULT),
        (MarketDataError, EXIT_NO_RESULT), (ModelledChainError, EXIT_NO_RESULT),
        (RegimeInputError, EXIT_NO_RESULT), (AlertInputError, EXIT_NO_RESULT), (StrategyError, EXIT_NO_RESULT),
        # any other error of the library (a class added later): no result
        (ResearchLibError, EXIT_NO_RESULT),
    ]


def exit_code_for(exc: BaseException) -> int | None:
    """The exit code of an error reaching :func:`main` (None: not one of ours, let it raise: exit 1).

    The library's own classes decide first (:func:`_error_classes`). A plain ``ValueError`` gives 2 only
    when the command line raised it while reading its arguments (in this module); a plain ``ValueError``
    from deeper down is a bug or an unnamed bad input and is not passed off as a bad option.
    """
    for cls, code in _error_classes():
        if isinstance(exc, cls):
            return code
    if type(exc) is ValueError and _raised_here(exc):
        return EXIT_USAGE
    return None


def _raised_here(exc: BaseException) -> bool:
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename == __file__


def _error_line(exc: BaseException, code: int) -> str:
    """One stderr line: what kind of failure (the exit code's label), the error's class, its message."""
    label = _LABELS.get(code, "error")
    if isinstance(exc, UsageError) or type(exc) is ValueError:
        return f"{label}: {exc}"
    # lazy for start-up time: each command loads only the layers it runs
    from research_lib.data.sources.auto import NoChainAvailableError
    from research_lib.data.sources.http import ProviderError

    if isinstance(exc, NoChainAvailableError | ProviderError):
        label = "no source answered"
    elif type(exc) in (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        return f"{label}: {exc}"  # the OS's own message names the path
    return f"{label}: {type(exc).__name__}: {exc}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
