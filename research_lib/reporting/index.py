"""The reports index (``index.json`` and ``index.html``: one row per symbol and date) and its pruning.

Part of :mod:`research_lib.reporting`; :mod:`research_lib.reporting.runner` re-exports every name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import html
import json
import logging
import math
import os
import re
import time
from pathlib import Path

import pandas as pd

from research_lib.core.chain import NY
from research_lib.formatting import fmt_money, jsonable, parse_date, to_json
from research_lib.pipeline.daily import ReportParameterError
from research_lib.reporting.results import (
    FAILED,
    OK,
    STALE_AFTER_HOURS,
    ReportResult,
    _ny_text,
    _run_lock,
    _today_ny,
    _write_text,
    data_tag,
    recorded,
    reports_root,
)

logger = logging.getLogger("research_lib.reports")


def _index_paths(root: Path) -> tuple[Path, Path]:
    return root / "index.json", root / "index.html"


def read_index(root: str | os.PathLike | None = None) -> list[dict]:
    """The index entries, newest date first (one per date and symbol); rebuilt from the files when
    ``index.json`` is missing or unreadable (the unreadable file is kept aside as ``index.json.corrupt-*``)."""
    root = reports_root(root)
    path, _ = _index_paths(root)
    if not path.exists():
        return rebuild_index(root, write=False) if (root / "daily").is_dir() else []  # (backtests: read_backtests)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["reports"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) and {"date", "symbol"} <= e.keys()
                                                    for e in entries):
            raise ValueError("'reports' is not a list of entries with a date and a symbol")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        aside = path.with_name(f"index.json.corrupt-{int(time.time())}")
        os.replace(path, aside)
        logger.warning("reports index %s is unreadable (%s); kept as %s and rebuilt from the files", path, exc,
                       aside.name)
        return rebuild_index(root, write=False)
    return _sorted(entries)


def _sorted(entries: list[dict]) -> list[dict]:
    return sorted(entries, key=lambda e: (e["date"], e["symbol"]), reverse=True)


def _good_info(root: Path, nb_path: Path, record: dict | None) -> dict:
    """What the index keeps of a good report: its files, where the data came from, and the headline
    figures (convention of the levels shown, net GEX in $ per 1% move in that convention, the regime)."""
    record = record or {}
    prov = record.get("provenance") or {}
    levels = record.get("levels") or {}
    regime = ((record.get("decision") or {}).get("regime") or {}).get("regime")
    net_gex = levels.get("net_gex")
    return {"notebook": nb_path.relative_to(root).as_posix(),
            "html": nb_path.with_suffix(".html").relative_to(root).as_posix(),
            "served_by": prov.get("served_by"), "source": prov.get("source"), "modelled": prov.get("modelled"),
            "stale": prov.get("stale"), "age_hours": prov.get("age_hours"), "quote_time": prov.get("quote_time"),
            "generated_at": prov.get("generated_at"),
            "convention": levels.get("convention") or (record.get("params") or {}).get("convention"),
            "net_gex": net_gex if isinstance(net_gex, int | float) and math.isfinite(net_gex) else None,
            "regime": regime}


def rebuild_index(root: str | os.PathLike | None = None, *, write: bool = True) -> list[dict]:
    """The index rebuilt from ``daily/<date>/<SYMBOL>[.FAILED].ipynb`` (reads each notebook's record)."""
    root = reports_root(root)
    entries: dict[tuple[str, str], dict] = {}
    for nb_path in sorted((root / "daily").glob("*/*.ipynb")):
        date = nb_path.parent.name
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
            continue
        failed = nb_path.name.endswith(f".{FAILED}.ipynb")
        symbol = nb_path.name.removesuffix(".ipynb").removesuffix(f".{FAILED}")
        e = entries.setdefault((date, symbol), {"date": date, "symbol": symbol, "status": OK, "good": None,
                                                "failed": None, "last_run_at": None, "duration_s": None})
        try:
            nb = json.loads(nb_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            nb = {}
        mtime = pd.Timestamp(nb_path.stat().st_mtime, unit="s", tz="UTC").tz_convert(NY).isoformat(timespec="seconds")
        if failed:
            e["failed"] = {"notebook": nb_path.relative_to(root).as_posix(),
                           "html": nb_path.with_suffix(".html").relative_to(root).as_posix(),
                           "error": "see the failed notebook", "at": mtime}
        else:
            e["good"] = _good_info(root, nb_path, recorded(nb))
        if e["last_run_at"] is None or pd.Timestamp(mtime) > pd.Timestamp(e["last_run_at"]):
            e["last_run_at"] = mtime
            e["status"] = FAILED if failed else OK
    result = _sorted(list(entries.values()))
    if write:
        _write_index(root, result)
    return result


def _update_index(root: Path, result: ReportResult, finished_at: str) -> list[dict]:
    entries = read_index(root)
    key = (result.date, result.symbol)
    e = next((x for x in entries if (x["date"], x["symbol"]) == key), None)
    if e is None:
        e = {"date": result.date, "symbol": result.symbol, "good": None, "failed": None}
        entries.append(e)
    e["status"] = result.status
    e["last_run_at"] = finished_at
    e["duration_s"] = round(result.duration_s, 2)
    if result.ok:
        e["good"] = _good_info(root, result.notebook, result.record)
        e["failed"] = None
    else:
        e["failed"] = {"notebook": result.notebook.relative_to(root).as_posix(),
                       "html": result.html.relative_to(root).as_posix(), "error": result.error,
                       "at": finished_at}
    entries = _sorted(entries)
    _write_index(root, entries)
    return entries


def _run_summaries(root: Path, kind: str, summary_name: str, stem: str):
    """(run_id, links, data or None, error) of each ``<root>/<kind>/<run id>/<summary_name>``: ``links`` the
    ``html`` and ``notebook`` paths (``<stem>.html``, ``<stem>.ipynb``) relative to ``root``; an unreadable file
    gives ``data`` None and the reason."""
    for path in sorted((root / kind).glob(f"*/{summary_name}")):
        folder = path.parent.relative_to(root).as_posix()
        links = {"html": f"{folder}/{stem}.html", "notebook": f"{folder}/{stem}.ipynb"}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            yield path.parent.name, links, None, f"unreadable {path.name}: {exc}"
            continue
        yield path.parent.name, links, data, None


def read_backtests(root: str | os.PathLike | None = None) -> list[dict]:
    """The backtest runs under ``<root>/backtests/<run id>/``, newest first, each from its ``backtest.json``
    (written by :func:`research_lib.reporting.runner.run_backtest_report`; an unreadable one is listed as
    FAILED with the reason): run_id, status, symbol, strategy, start, end, trades, net_pnl, total_return,
    sharpe, max_drawdown, duration_s, finished_at, html and notebook (relative to ``root``), error."""
    root = reports_root(root)
    rows = []
    for run_id, links, data, unreadable in _run_summaries(root, "backtests", "backtest.json", "backtest"):
        if data is None:
            rows.append({"run_id": run_id, "status": FAILED, "error": unreadable, **links})
            continue
        rec = data.get("record") or {}
        params = data.get("params") or {}
        rows.append({"run_id": run_id, "status": data.get("status", FAILED), "symbol": params.get("symbol"),
                     "source": params.get("source"), "strategy": (rec.get("params") or {}).get("strategy")
                     or params.get("strategy"), "start": rec.get("start") or params.get("start"),
                     "end": rec.get("end") or params.get("end"), "trades": rec.get("trades"),
                     "net_pnl": rec.get("net_pnl"), "total_return": rec.get("total_return"),
                     "sharpe": rec.get("sharpe"), "max_drawdown": rec.get("max_drawdown"),
                     "duration_s": data.get("duration_s"), "finished_at": data.get("finished_at"), **links,
                     "error": data.get("error")})
    return sorted(rows, key=lambda r: r["run_id"], reverse=True)


def read_sweeps(root: str | os.PathLike | None = None) -> list[dict]:
    """The sweep report runs under ``<root>/sweeps/<run id>/``, newest first, each from its ``report.json``
    (written by :func:`research_lib.reporting.runner.run_sweep_report`; an unreadable one is listed as FAILED with
    the reason): run_id, status, grid, engine, configs, failed, best (config id), sharpe (the best's), dsr (its
    deflated Sharpe ratio), oos_sharpe (the walk-forward's stitched out-of-sample Sharpe), duration_s,
    finished_at, html and notebook (relative to ``root``), error. A sweep run from the command line alone (no
    ``report.json``) is not a report and is not listed."""
    root = reports_root(root)
    rows = []
    for run_id, links, data, unreadable in _run_summaries(root, "sweeps", "report.json", "sweep"):
        if data is None:
            rows.append({"run_id": run_id, "status": FAILED, "error": unreadable, **links})
            continue
        rec = data.get("record") or {}
        params = data.get("params") or {}
        best = rec.get("best") or {}
        rows.append({"run_id": run_id, "status": data.get("status", FAILED),
                     "grid": Path(str(params.get("grid") or "")).name, "engine": rec.get("engine"),
                     "configs": rec.get("configs"), "failed": rec.get("failed"), "best": best.get("config_id"),
                     "sharpe": (best.get("stats") or {}).get("sharpe"),
                     "dsr": (rec.get("deflated_sharpe") or {}).get("dsr"),
                     "oos_sharpe": (rec.get("walk_forward") or {}).get("oos_statistic"),
                     "duration_s": data.get("duration_s"), "finished_at": data.get("finished_at"), **links,
                     "error": data.get("error")})
    return sorted(rows, key=lambda r: r["run_id"], reverse=True)


def _run_cells(b: dict) -> tuple[str, str, str]:
    """(status cell, report links, error note) of a backtest or sweep row of the index page."""
    status = "<td class='ok'>OK</td>" if b.get("status") == OK else "<td class='failed'>FAILED</td>"
    links = " · ".join(f"<a href='{html.escape(str(b[k]))}'>{label}</a>" for k, label in
                       (("html", "HTML"), ("notebook", "notebook")) if b.get(k))
    error = f"<br><small>{html.escape(str(b.get('error'))[:300])}</small>" if b.get("error") else ""
    return status, links, error


def _ratio(x) -> str:
    return f"{x:.2f}" if isinstance(x, int | float) and math.isfinite(x) else ""


def _sweeps_html(sweeps: list[dict]) -> str:
    """The sweep runs' table of the index page (empty text when there is none)."""
    if not sweeps:
        return ""
    rows = []
    for b in sweeps:
        status, links, error = _run_cells(b)
        dsr = b.get("dsr")
        rows.append(f"<tr><td>{html.escape(str(b.get('run_id')))}</td>{status}"
                    f"<td>{html.escape(str(b.get('grid') or ''))}</td><td>{html.escape(str(b.get('engine') or ''))}</td>"
                    f"<td class='num'>{'' if b.get('configs') is None else int(b['configs'])}</td>"
                    f"<td class='num'>{'' if b.get('failed') is None else int(b['failed'])}</td>"
                    f"<td>{html.escape(str(b.get('best') or ''))}</td><td class='num'>{_ratio(b.get('sharpe'))}</td>"
                    f"<td class='num'>{f'{dsr:.3f}' if isinstance(dsr, int | float) else ''}</td>"
                    f"<td class='num'>{_ratio(b.get('oos_sharpe'))}</td>"
                    f"<td>{html.escape(_ny_text(b.get('finished_at')))}</td><td>{links}{error}</td></tr>")
    return f"""<h2>Sweeps</h2>
<p>{len(sweeps)} sweep run(s), newest first (<code>research-lib report sweep</code>); each folder also holds the
results table (CSV, Parquet) and the equity curves. Sharpe: the in-sample best's; deflated: the probability its
true Sharpe ratio beats the expected maximum of that many trials; out of sample: the walk-forward's.</p>
<table><thead><tr><th>run</th><th>status</th><th>grid</th><th>engine</th><th>configurations</th><th>failed</th>
<th>best</th><th>Sharpe</th><th>deflated Sharpe</th><th>out-of-sample Sharpe</th><th>finished</th>
<th>report</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
"""


def _write_index(root: Path, entries: list[dict]) -> None:
    """Both index files, each written atomically (a reader never sees half of one). The backtest runs are read
    from their folders each time (:func:`read_backtests`), so every writer of the index keeps them listed."""
    json_path, html_path = _index_paths(root)
    backtests = read_backtests(root)
    sweeps = read_sweeps(root)
    _write_text(json_path, to_json({"version": 1, "timezone": "America/New_York", "reports": entries,
                                    "backtests": backtests, "sweeps": sweeps}, indent=1))
    _write_text(html_path, _index_html(entries, backtests, sweeps))


def _pct(x) -> str:
    return f"{x * 100:,.2f}%" if isinstance(x, int | float) and math.isfinite(x) else ""


def _backtests_html(backtests: list[dict]) -> str:
    """The backtest runs' table of the index page (empty text when there is none)."""
    if not backtests:
        return ""
    rows = []
    for b in backtests:
        status, links, error = _run_cells(b)
        sharpe = b.get("sharpe")
        pnl = b.get("net_pnl")
        period = f"{b.get('start') or ''} – {b.get('end') or ''}" if b.get("start") or b.get("end") else ""
        rows.append(f"<tr><td>{html.escape(str(b.get('run_id')))}</td>{status}"
                    f"<td>{html.escape(str(b.get('symbol') or ''))}</td>"
                    f"<td>{html.escape(str(b.get('strategy') or 'default'))}</td><td>{html.escape(period)}</td>"
                    f"<td>{html.escape(str(b.get('source') or ''))}</td>"
                    f"<td class='num'>{'' if b.get('trades') is None else int(b['trades'])}</td>"
                    f"<td class='num'>{html.escape(fmt_money(pnl)) if isinstance(pnl, int | float) else ''}</td>"
                    f"<td class='num'>{_pct(b.get('total_return'))}</td>"
                    f"<td class='num'>{f'{sharpe:.2f}' if isinstance(sharpe, int | float) else ''}</td>"
                    f"<td class='num'>{_pct(b.get('max_drawdown'))}</td>"
                    f"<td>{html.escape(_ny_text(b.get('finished_at')))}</td><td>{links}{error}</td></tr>")
    return f"""<h2>Backtests</h2>
<p>{len(backtests)} backtest run(s), newest first (<code>research-lib report backtest</code>); each folder also holds
its trades, legs and equity as CSV files. Net P&amp;L in $, total return and max drawdown of the equity curve.</p>
<table><thead><tr><th>run</th><th>status</th><th>symbol</th><th>strategy</th><th>period</th><th>data</th>
<th>trades</th><th>net P&amp;L</th><th>total return</th><th>Sharpe</th><th>max drawdown</th><th>finished</th>
<th>report</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
"""


def _index_html(entries: list[dict], backtests: list[dict] | tuple = (), sweeps: list[dict] | tuple = ()) -> str:
    def link(path: str | None, label: str) -> str:
        return "" if not path else f"<a href='{html.escape(path)}'>{label}</a>"

    rows = []
    for e in entries:
        good, failed = e.get("good"), e.get("failed")
        status = e.get("status", OK)
        if status == FAILED:
            text = "FAILED — last good report kept" if good else "FAILED"
            status_html = f"<td class='failed'>{html.escape(text)}</td>"
        else:
            status_html = "<td class='ok'>OK</td>"
        data = convention = net_gex = regime = ""
        if good:
            tag = data_tag(good)
            tags = f" <b>{html.escape(tag)}</b>" if tag else ""
            data = f"{html.escape(str(good.get('served_by') or ''))}: {html.escape(str(good.get('source') or ''))}{tags}"
            convention = html.escape(str(good.get("convention") or ""))
            net_gex = html.escape(fmt_money(good.get("net_gex")) if good.get("net_gex") is not None else "")
            regime = html.escape(str(good.get("regime") or ""))
        quote = html.escape(_ny_text((good or {}).get("quote_time")))
        report_links = " · ".join(x for x in (link((good or {}).get("html"), "HTML"),
                                               link((good or {}).get("notebook"), "notebook")) if x)
        failed_links = ""
        if failed:
            failed_links = " · ".join(x for x in (link(failed.get("html"), "HTML"),
                                                  link(failed.get("notebook"), "notebook")) if x)
            failed_links += f"<br><small>{html.escape(str(failed.get('error') or '')[:300])}</small>"
        rows.append(f"<tr><td>{html.escape(e['date'])}</td><td>{html.escape(e['symbol'])}</td>{status_html}"
                    f"<td>{data}</td><td>{convention}</td><td class='num'>{net_gex}</td><td>{regime}</td>"
                    f"<td>{quote}</td><td>{html.escape(_ny_text(e.get('last_run_at')))}</td>"
                    f"<td>{report_links}</td><td>{failed_links}</td></tr>")
    generated = pd.Timestamp.now(tz=NY).strftime("%Y-%m-%d %H:%M %Z")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>research_lib reports</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }}
th {{ background: #f0f0f0; }}
td.ok {{ color: #1b7f3b; font-weight: bold; }}
td.failed {{ color: #b00020; font-weight: bold; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
</style></head>
<body><h1>research_lib reports</h1>
<p>{len(entries)} report(s), newest first. Updated {html.escape(generated)}. Every time is New York time
(America/New_York). Data marked MODELLED is not market quotes; STALE is a chain more than
{STALE_AFTER_HOURS / 24:.0f} days old, or the newest stored chain when no live source answered. Net GEX is in $
per 1% move, in the convention shown; the regime is the decision's. Old or FAILED rows:
<code>research-lib report prune</code>.</p>
<table><thead><tr><th>date</th><th>symbol</th><th>status</th><th>data source</th><th>convention</th>
<th>net GEX</th><th>regime</th><th>quote time</th><th>last run</th><th>report</th><th>failed run</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
{_backtests_html(list(backtests))}{_sweeps_html(list(sweeps))}</body></html>
"""


_SAFE_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9._-]{0,19}")


@dataclasses.dataclass(frozen=True)
class PruneResult:
    """What :func:`prune_reports` removed (or, with ``dry_run``, would remove).

    Attributes
    ----------
    removed_rows : tuple of (date, symbol)
        Index rows removed entirely.
    cleared_failed : tuple of (date, symbol)
        Rows kept (they have a good report) whose failed run was removed.
    files : tuple of Path
        Files deleted (notebooks and pages), absolute.
    kept : int
        Rows left in the index.
    dry_run : bool
    """

    removed_rows: tuple[tuple[str, str], ...]
    cleared_failed: tuple[tuple[str, str], ...]
    files: tuple[Path, ...]
    kept: int
    dry_run: bool

    def to_dict(self) -> dict:
        """JSON-ready (:func:`research_lib.formatting.jsonable`): the rows as ``{date, symbol}``, the files
        as text."""
        return jsonable({"removed_rows": [{"date": d, "symbol": s} for d, s in self.removed_rows],
                         "cleared_failed": [{"date": d, "symbol": s} for d, s in self.cleared_failed],
                         "files": self.files, "kept": self.kept, "dry_run": self.dry_run})

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        lines = [f"{verb} {len(self.removed_rows)} row(s) and {len(self.files)} file(s); "
                 f"{'would clear' if self.dry_run else 'cleared'} the failed run of {len(self.cleared_failed)} "
                 f"row(s) that keep their good report; {self.kept} row(s) kept"]
        lines += [f"  row     {d} {s}" for d, s in self.removed_rows]
        lines += [f"  failed  {d} {s} (good report kept)" for d, s in self.cleared_failed]
        return "\n".join(lines)


def prune_reports(root: str | os.PathLike | None = None, *, failed: bool = False,
                  older_than_days: int | None = None, before: str | dt.date | None = None,
                  dry_run: bool = False, today: str | dt.date | None = None) -> PruneResult:
    """Remove rows of the reports index and their files, under the reports lock.

    Parameters
    ----------
    root : path, optional
        The reports folder (:func:`reports_root`).
    failed : bool
        Only FAILED runs: a row whose last run failed and that has no good report goes with its files; a
        row with a good report keeps it (and becomes OK) and loses its failed files.
    older_than_days : int, optional
        Rows whose report date is more than this many days before ``today``.
    before : str or date, optional
        Rows whose report date is before this date. Not with ``older_than_days``.
    dry_run : bool
        Say what would go; change nothing.
    today : date, optional
        Default: today in New York.

    Filters combine (a row must match every one given); with none, nothing is removed. Only the files a
    row owns are deleted (``daily/<date>/<SYMBOL>[.FAILED].ipynb|.html``, names checked), the index is
    rewritten atomically first (a crash leaves stray files, which :func:`rebuild_index` would list again,
    never an index pointing at deleted pages), and an emptied date folder is removed.

    Raises
    ------
    ReportParameterError
        A negative ``older_than_days``, both age filters, or a ``before`` that is not a date.
    ReportLockedError
        A report run holds the lock.
    """
    if older_than_days is not None and before is not None:
        raise ReportParameterError("prune: give --older-than or --before, not both")
    if older_than_days is not None and (isinstance(older_than_days, bool) or not isinstance(older_than_days, int)
                                        or older_than_days < 0):
        raise ReportParameterError(f"prune: older_than_days={older_than_days!r}: expected a whole number >= 0")
    try:
        now = parse_date(today or _today_ny(), name="today")
        cutoff = (parse_date(before, name="before") if before is not None
                  else now - dt.timedelta(days=older_than_days) if older_than_days is not None else None)
    except ValueError as exc:
        raise ReportParameterError(f"prune: {exc}") from None
    root = reports_root(root)
    if not failed and cutoff is None:
        return PruneResult((), (), (), len(read_index(root)) if root.is_dir() else 0, dry_run)
    lock = contextlib.nullcontext() if dry_run or not root.is_dir() else _run_lock(root)
    with lock:
        entries = read_index(root) if root.is_dir() else []
        keep, removed, cleared, files = [], [], [], []
        for e in entries:
            date, symbol = str(e.get("date")), str(e.get("symbol"))
            safe = re.fullmatch(r"\d{4}-\d{2}-\d{2}", date) and _SAFE_SYMBOL.fullmatch(symbol)
            old = cutoff is None or (safe and dt.date.fromisoformat(date) < cutoff)
            if not safe or not old:
                keep.append(e)
                continue
            folder = root / "daily" / date
            failed_files = [folder / f"{symbol}.{FAILED}.ipynb", folder / f"{symbol}.{FAILED}.html"]
            good_files = [folder / f"{symbol}.ipynb", folder / f"{symbol}.html"]
            if not failed:
                removed.append((date, symbol))
                files += [f for f in good_files + failed_files if f.exists()]
            elif e.get("good"):
                if e.get("failed") or any(f.exists() for f in failed_files):
                    cleared.append((date, symbol))
                    files += [f for f in failed_files if f.exists()]
                    e = {**e, "failed": None, "status": OK}
                keep.append(e)
            elif e.get("status") == FAILED or e.get("failed"):
                removed.append((date, symbol))
                files += [f for f in failed_files if f.exists()]
            else:
                keep.append(e)
        result = PruneResult(tuple(removed), tuple(cleared), tuple(files), len(keep), dry_run)
        if dry_run or not (removed or cleared):
            return result
        _write_index(root, _sorted(keep))
        for f in files:
            f.unlink(missing_ok=True)
        for folder in {f.parent for f in files}:
            with contextlib.suppress(OSError):  # only when empty
                folder.rmdir()
        logger.info("pruned %d row(s), cleared %d failed run(s), %d file(s) removed", len(removed), len(cleared),
                    len(files))
        return result
