"""Command line: ``research-lib ...`` or ``python -m research_lib ...``. A thin layer over the library.

Commands
--------
``research-lib gex PATH [--date YYYY-MM-DD|all] [--convention model|perfiliev] [--days-per-year N]
[--no-zero-dte-floor] [--grid N] [--rate R] [--div-yield Q] [--max-dte N] [--exclude-0dte] [--json]``
    Key GEX levels of any supported chain file. Without ``--json``: a readable table per snapshot.
    With ``--json``: one JSON object per snapshot, one line each.
    Or, instead of PATH: ``--source auto|cboe|tradier|polygon|store|modelled [--symbol SPX]``; the
    line on stderr says which source served (live, stale store copy, or modelled data).
``research-lib scan PATH``
    The snapshots a file holds, and the days skipped with the reason.
``research-lib fetch SYMBOL [--provider auto|cboe|tradier|polygon] [--json]``
    Today's chain from a live provider, kept in the local store.
``research-lib import PATH... [--no-progress]``
    Chain files (every clean day of an archive) into the local store; idempotent; says what it skipped.
``research-lib store [--symbol SYM]``
    What the local store holds.
``research-lib report daily [--symbol SPX | --symbols SPX,SPY,QQQ] [--date latest|YYYY-MM-DD]
[--source auto|...|PATH] [--convention model|perfiliev] [--account 50000] [--no-record] [--quiet]``
    The daily GEX report notebook run with papermill, exported to static HTML, listed in
    ``reports/index.html`` (:mod:`research_lib.reports`). Safe under cron: a lock, a log file and a JSON
    run summary per run in ``reports/logs/``.
``research-lib decide [--source auto|PATH] [--symbol SPX] [--date ...] [--account 50000] [--json]``
    Regime with reasons, strategy with legs and prices, sizing, the decision's what/why/how and the
    alerts; the decision is logged in ``data/decisions.sqlite`` (``--no-log`` to skip).

Exit codes: 0 success; 2 bad usage (a bad report parameter included, found before any kernel starts);
3 bad or unknown input file / empty chain; 4 nothing to compute or no source answered; 5 a report
FAILED (its failed notebook and HTML are kept, the last good report is not touched); 6 another report
run holds the lock.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from research_lib import __version__
from research_lib.formatting import fmt_level as _fmt_level
from research_lib.formatting import fmt_money as _fmt_money

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_NO_RESULT = 4


def format_levels(levels, *, pin_risk=None, exclusions=None) -> str:
    """A readable block for one :class:`~research_lib.gex.KeyLevels`."""
    lv = levels
    lines = [
        f"{lv.underlying} {lv.date}  spot {lv.spot:,.2f}  quoted {lv.quote_time:%Y-%m-%d %H:%M %Z}  "
        f"convention {lv.convention}{'  [MODELLED DATA]' if lv.modelled else ''}",
        f"  source            {lv.source}",
        f"  net GEX           {_fmt_money(lv.net_gex)} $/1% move   (calls {_fmt_money(lv.call_gex)}, "
        f"puts {_fmt_money(lv.put_gex)})",
        f"  zero gamma        {_fmt_level(lv.zero_gamma)}"
        + (f"   (all crossings: {', '.join(f'{z:,.2f}' for z in lv.zero_gamma_crossings)})"
           if len(lv.zero_gamma_crossings) > 1 else ""),
        f"  call wall         {_fmt_level(lv.call_wall)}",
        f"  put wall          {_fmt_level(lv.put_wall)}",
        f"  cumulative flip   {_fmt_level(lv.cumulative_flip)}   (running sum of GEX by strike; not zero gamma)",
        f"  vanna exposure    {_fmt_money(lv.net_vanna)} $ delta per vol point",
        f"  charm exposure    {_fmt_money(lv.net_charm)} $ delta per day",
        f"  contracts         {lv.n_contracts} counted, {lv.n_expired} expired, {lv.n_filtered} filtered, "
        f"{lv.n_unpriced} without gamma",
    ]
    mp = list(lv.max_pain.items())[:6]
    if mp:
        lines.append("  max pain          " + ", ".join(f"{d:%m-%d} {k:,.0f}" for d, k in mp)
                     + (" ..." if len(lv.max_pain) > 6 else ""))
    if pin_risk is not None and len(pin_risk):
        lines.append("  pin risk          " + ", ".join(
            f"{d:%m-%d} {row.pin_strike:,.0f} ({row.score:.0f}/100)" for d, row in pin_risk.iterrows()))
    lines.extend(f"  WARNING: {w}" for w in lv.warnings)
    return "\n".join(lines)


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
    g.add_argument("--symbol", default="SPX", help="underlying for --source (default SPX)")
    g.add_argument("--source", default=None,
                   help="auto (live -> store -> modelled), cboe, tradier, polygon, store or modelled")
    g.add_argument("--date", default=None,
                   help="YYYY-MM-DD for a multi-day archive, or 'all' for every clean day (default: latest)")
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

    s = sub.add_parser("scan", help="list the snapshots a chain file holds")
    s.add_argument("path")

    f = sub.add_parser("fetch", help="fetch a live chain into the local store",
                       description="Fetch today's chain of SYMBOL from a live provider and keep it in the store.")
    f.add_argument("symbol")
    f.add_argument("--provider", default="auto",
                   help="cboe (no key), tradier (TRADIER_TOKEN), polygon (POLYGON_API_KEY), or auto: the first "
                        "that answers")
    f.add_argument("--json", action="store_true")

    im = sub.add_parser("import", help="import chain files (archives included) into the local store")
    im.add_argument("paths", nargs="+")
    im.add_argument("--no-progress", action="store_true")

    d = sub.add_parser("decide", help="chain + history -> regime, strategy, size, logged decision, alerts",
                       description="Turn a chain into a logged, explained trade decision (research_lib.decide).")
    d.add_argument("--source", default="auto", help="auto, cboe, tradier, polygon, store, modelled, or a file")
    d.add_argument("--symbol", default="SPX")
    d.add_argument("--date", default=None, help="YYYY-MM-DD (archives, the store); default latest")
    d.add_argument("--account", type=float, default=50_000.0, help="account value in dollars (default 50000)")
    d.add_argument("--no-log", action="store_true", help="build the decision but do not record it")
    d.add_argument("--json", action="store_true")

    st = sub.add_parser("store", help="list what the local store holds")
    st.add_argument("--symbol", default=None)

    rp = sub.add_parser("report", help="run report notebooks (papermill) and export them to HTML")
    rsub = rp.add_subparsers(dest="report_kind", required=True)
    rd = rsub.add_parser("daily", help="the daily GEX report",
                         description="Run notebooks/daily_report.ipynb for each symbol, write "
                                     "reports/daily/<date>/<SYMBOL>.ipynb and .html, update reports/index.html.")
    who = rd.add_mutually_exclusive_group()
    who.add_argument("--symbol", default=None, help="one underlying (default SPX)")
    who.add_argument("--symbols", default=None, help="comma-separated underlyings, e.g. SPX,SPY,QQQ")
    rd.add_argument("--date", default="latest", help="YYYY-MM-DD (archives, the store) or latest (default)")
    rd.add_argument("--source", default="auto",
                    help="auto (live -> store -> modelled), cboe, tradier, polygon, store, modelled, or a file")
    rd.add_argument("--convention", default="model", help="levels and charts: model (default) or perfiliev")
    rd.add_argument("--account", type=float, default=50_000.0, help="account value in dollars (default 50000)")
    rd.add_argument("--no-record", action="store_true", help="do not log the decision in data/decisions.sqlite")
    rd.add_argument("--history-days", type=int, default=365, help="history context window, days (0: none)")
    rd.add_argument("--reports-dir", default=None, help="default $RESEARCH_LIB_REPORTS or reports/")
    rd.add_argument("--notebook", default=None, help="another notebook with the same parameters")
    rd.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per notebook cell")
    rd.add_argument("--quiet", action="store_true", help="no progress lines (the log file has them)")
    rd.add_argument("--json", action="store_true", help="print the run summary as JSON on stdout")
    return parser


def _number_or_auto(value, name):
    if value is None or value == "auto":
        return value
    try:
        return float(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be a decimal number or 'auto', got {value!r}") from exc


def _config_for(args, snapshot):
    """The GEX config of one snapshot: 'auto' rates are looked up for the snapshot's own date."""
    import dataclasses

    config = _config_from_args(args)
    changes = {}
    if _number_or_auto(args.rate, "--rate") == "auto":
        from research_lib.market import risk_free_rate

        changes["rate"] = risk_free_rate(snapshot.snapshot_date)
    if _number_or_auto(args.div_yield, "--div-yield") == "auto":
        from research_lib.market import dividend_yield

        if snapshot.underlying not in ("SPX", "SPY", "XSP"):
            raise ValueError(f"--div-yield auto knows the S&P 500's yield only, not {snapshot.underlying}'s")
        changes["div_yield"] = float(dividend_yield(snapshot.snapshot_date))
    return dataclasses.replace(config, **changes) if changes else config


def _config_from_args(args):
    from research_lib.gex import config_from

    rate = _number_or_auto(args.rate, "--rate")
    div_yield = _number_or_auto(args.div_yield, "--div-yield")
    return config_from(args.convention, rate=None if rate == "auto" else rate,
                       div_yield=None if div_yield == "auto" else div_yield, grid_points=args.grid,
                       days_per_year=args.days_per_year,
                       zero_dte_floor=False if args.no_zero_dte_floor else None,
                       max_dte=args.max_dte, exclude_0dte=args.exclude_0dte)


def _cmd_gex(args, out, err) -> int:
    from research_lib import gex
    from research_lib.sources import read_chain, read_chains

    config = _config_from_args(args)
    if args.path is None and args.source is None:
        raise ValueError("give a chain file PATH, or --source auto|cboe|tradier|polygon|store|modelled")
    if args.path is not None and args.source is not None:
        raise ValueError("give either a chain file PATH or --source, not both")
    if args.source is not None:
        from research_lib.sources.auto import get_chain

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
        snap_config = _config_for(args, snap) if "auto" in (args.rate, args.div_yield) else config
        analysis = gex.analyze(snap, snap_config)
        if args.json:
            record = analysis.levels.to_dict()
            record["config"] = snap_config.to_dict()
            out.write(json.dumps(record) + "\n")
        else:
            if n:
                out.write("\n")
            out.write(format_levels(analysis.levels, pin_risk=analysis.pin_risk) + "\n")
        out.flush()
        n += 1
    if n == 0:
        err.write(f"research-lib: {args.path}: no usable snapshot\n")
        return EXIT_NO_RESULT
    return EXIT_OK


def _cmd_scan(args, out, err) -> int:
    from research_lib.sources import detect_format, scan

    fmt = detect_format(args.path)
    table = scan(args.path)
    out.write(f"{args.path}: {fmt.name} ({fmt.description}), {len(table)} snapshot(s), "
              f"{int((table['status'] == 'ok').sum())} usable\n")
    out.write(table.to_string(index=False) + "\n")
    return EXIT_OK


def _cmd_fetch(args, out, err) -> int:
    from research_lib.sources.auto import get_chain

    source = args.provider
    if source not in ("auto", "cboe", "tradier", "polygon"):
        raise ValueError(f"--provider {source!r}: use auto, cboe, tradier or polygon")
    served = get_chain(args.symbol, source, allow_modelled=False, save=True, providers=None)
    if served.served_by == "store":
        err.write(f"research-lib: no live provider answered; nothing fetched. {served.describe()}\n")
        return EXIT_NO_RESULT
    snap = served.snapshot
    if args.json:
        out.write(json.dumps({"symbol": snap.underlying, "provider": served.served_by, "source": snap.source,
                              "quote_time": snap.quote_time.isoformat(), "spot": snap.spot,
                              "contracts": len(snap.contracts)}) + "\n")
    else:
        out.write(f"{served.describe()}\n{len(snap.contracts):,} contracts stored\n")
    return EXIT_OK


def _cmd_import(args, out, err) -> int:
    from research_lib.store import ChainStore

    store = ChainStore()
    report = store.import_paths(args.paths, progress=False if args.no_progress else None)
    out.write(report.summary() + "\n")
    return EXIT_OK


def _cmd_decide(args, out, err) -> int:
    from research_lib.decide import decide, report_json

    report = decide(args.symbol, args.source, date=args.date, account=args.account, record=not args.no_log)
    err.write(f"research-lib: {report.served.describe()}\n")
    out.write((report_json(report) if args.json else report.summary()) + "\n")
    return EXIT_OK


def _cmd_store(args, out, err) -> int:
    from research_lib.store import ChainStore

    store = ChainStore()
    table = store.list(args.symbol)
    out.write(f"store {store.root}: {len(table)} snapshot(s)\n")
    if len(table):
        shown = [c for c in ("underlying", "date", "quote_time", "source", "rows", "spot", "modelled", "path")
                 if c in table.columns]
        out.write(table[shown].to_string(index=False) + "\n")
    return EXIT_OK


def _cmd_report(args, out, err) -> int:
    from research_lib import reports

    symbols = (args.symbols or args.symbol or "SPX").split(",")
    symbols = [s.strip() for s in symbols if s.strip()]

    def progress(line: str) -> None:
        err.write(f"research-lib report: {line}\n")
        err.flush()

    summary = reports.run_reports(symbols, date=args.date, source=args.source, convention=args.convention,
                                  account=args.account, record_decision=not args.no_record,
                                  history_days=args.history_days, reports_dir=args.reports_dir,
                                  notebook=args.notebook, timeout=args.timeout,
                                  progress=None if args.quiet else progress)
    if args.json:
        out.write(json.dumps(summary.to_dict()) + "\n")
    else:
        for r in summary.results:
            out.write(f"{r.status:6} {r.date} {r.symbol:6} {r.html}" + (f"  ({r.error})" if r.error else "") + "\n")
        if summary.error:
            out.write(f"NOT RUN: {summary.error}\n")
        out.write(f"index: {reports.reports_root(args.reports_dir) / 'index.html'}\n")
        if summary.summary is not None:
            out.write(f"run summary: {summary.summary}\n")
    if summary.exit_code == reports.EXIT_LOCKED and args.quiet:
        err.write(f"research-lib report: {summary.error}\n")
    return summary.exit_code


def main(argv: Sequence[str] | None = None, *, out=None, err=None) -> int:
    """Entry point of ``research-lib``. Returns the exit code (see the module docstring)."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and EXIT_USAGE
    handler = {"gex": _cmd_gex, "scan": _cmd_scan, "fetch": _cmd_fetch, "import": _cmd_import,
               "store": _cmd_store, "decide": _cmd_decide, "report": _cmd_report}[args.command]
    try:
        return handler(args, out, err)
    except BrokenPipeError:
        # The reader went away (``| head``): not an error of ours. Silence the flush at exit.
        sys.stdout = None
        return EXIT_OK
    except Exception as exc:  # mapped to an exit code below; anything unknown is re-raised
        code = _exit_code_for(exc, err)
        if code is None:
            raise
        return code


def _exit_code_for(exc: Exception, err) -> int | None:
    """The exit code and stderr line for a known error (None: not ours, let it raise).

    The library's exception classes are imported here, not at start-up, so ``research-lib report`` does
    not pay for pandas and scipy before its kernel starts.
    """
    from research_lib.chain import ChainError, ResearchLibError
    from research_lib.gex import GexConfigError, NoExposureError

    if isinstance(exc, FileNotFoundError):
        err.write(f"research-lib: {exc}\n")
        return EXIT_BAD_INPUT
    if isinstance(exc, NoExposureError):  # before ChainError: it is one
        err.write(f"research-lib: {exc}\n")
        return EXIT_NO_RESULT
    if isinstance(exc, ChainError):
        err.write(f"research-lib: {type(exc).__name__}: {exc}\n")
        return EXIT_BAD_INPUT
    if isinstance(exc, GexConfigError | ValueError):
        err.write(f"research-lib: bad option: {exc}\n")
        return EXIT_USAGE
    if isinstance(exc, ResearchLibError):  # provider, store and market-data errors, no chain available
        err.write(f"research-lib: {type(exc).__name__}: {exc}\n")
        return EXIT_NO_RESULT
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
