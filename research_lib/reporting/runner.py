"""Scheduled reports: run a parameterised notebook with papermill, export it to static HTML with nbconvert,
keep an index of every report. The CLI is ``research-lib report daily`` (see :mod:`research_lib.cli`).

Layout under the reports folder (``$RESEARCH_LIB_REPORTS``, else ``reports/`` in the repository)::

    reports/index.html                  every report: date, symbol, status, data source, convention, net GEX,
                                        regime, links; every time in New York time with its zone
    reports/index.json                  the same, as data (rebuilt from the files when missing or corrupt)
    reports/daily/<date>/<SYMBOL>.ipynb the executed notebook, outputs included
    reports/daily/<date>/<SYMBOL>.html  static HTML: code hidden, images embedded, no script from the network
    reports/daily/<date>/<SYMBOL>.FAILED.ipynb / .FAILED.html   the last failed run, showing the error
    reports/logs/<run id>.log / .json   one log file and one JSON run summary per run

``<date>`` is the trading date of the chain the report used (a stale or modelled chain keeps its own date);
for a failed run it is the requested ``--date``, or today in New York for ``latest``.

Guarantees
----------
- Parameters are checked before any kernel starts (:class:`~research_lib.daily.ReportParameterError`),
  and so is whether a source can serve them when that is knowable without the network
  (:func:`check_sources`: a symbol no source can serve offline, a date the store does not hold).
- A run writes into ``daily/.staging`` and moves its files into place only when they are complete; a
  failed run never replaces the last good report of that date and symbol.
- One run at a time per reports folder: a second run exits at once with :data:`EXIT_LOCKED`
  (:class:`ReportLockedError`), so cron and a hand-started run do not collide.
- Secrets: notebooks take no secret parameters, and every value of a credential-like environment variable
  (``TRADIER_TOKEN``, ``POLYGON_API_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``, ``*API_KEY``...) is
  replaced by ``***`` in every notebook, HTML page, log line and summary written here.
- A FAILED page starts with one readable paragraph saying what went wrong; the traceback is folded below.
- ``research-lib report prune`` (:func:`prune_reports`) removes old or FAILED rows and their files.
- The kernel is this Python interpreter (not whatever ``python3`` kernelspec is installed elsewhere), so
  the notebook sees the same ``research_lib``.

Exit codes of a run (:attr:`RunSummary.exit_code`): 0 every report OK; 5 at least one report FAILED;
6 another run holds the lock. A bad parameter is a usage error (2) raised before anything runs.
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
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from research_lib import __version__
from research_lib.core.chain import NY
from research_lib.errors import LockBusyError
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    ReportError as ReportError,
)
from research_lib.errors import (
    ReportLockedError as ReportLockedError,
)
from research_lib.formatting import fmt_money, parse_date, to_json
from research_lib.fs import atomic_write, file_lock
from research_lib.pipeline.daily import ReportParameterError, normalise_params
from research_lib.settings import ENV_REPORTS, PACKAGE_DIR, REPO_ROOT

logger = logging.getLogger("research_lib.reports")

ENV_ROOT = ENV_REPORTS
DAILY_NOTEBOOK = REPO_ROOT / "notebooks" / "daily_report.ipynb"
TEMPLATE_DIR = PACKAGE_DIR / "templates"
TEMPLATE_NAME = "report_html"
RECORD_TAG = "record"

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_REPORT_FAILED = 5
EXIT_LOCKED = 6

OK = "OK"
FAILED = "FAILED"

#: Environment variables whose values are always treated as secrets, besides the name patterns below.
SECRET_ENV_NAMES = ("TRADIER_TOKEN", "POLYGON_API_KEY")
_SECRET_NAME_RE = re.compile(r"(?i)(TOKEN|SECRET|PASSW(OR)?D|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL)")
#: Shorter values are not scrubbed (they would match ordinary text); real credentials are longer.
MIN_SECRET_LENGTH = 6
#: A report's chain older than this (hours) is marked STALE on the terminal and in the index even when it
#: came from a file: no session is more than four days from the next one (a long weekend).
STALE_AFTER_HOURS = 96.0

__all__ = [
    "DAILY_NOTEBOOK", "ENV_ROOT", "EXIT_LOCKED", "EXIT_OK", "EXIT_REPORT_FAILED", "EXIT_USAGE", "FAILED", "OK",
    "ReportError", "ReportLockedError", "ReportParameterError", "ReportResult", "RunSummary",
    "PruneResult", "check_sources", "data_tag", "export_html", "prune_reports", "read_index", "rebuild_index",
    "recorded", "reports_root", "result_line", "run_daily", "run_reports", "notebook_parameters",
    "scrub_secrets", "secret_values",
]


# --------------------------------------------------------------------------------------------------------
# paths, secrets


def reports_root(root: str | os.PathLike | None = None) -> Path:
    """The reports folder: ``root``, else ``$RESEARCH_LIB_REPORTS``, else ``reports/`` in the repository."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_ROOT, "").strip()
    return Path(env) if env else REPO_ROOT / "reports"


def secret_values(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """Values of credential-like environment variables (see the module docstring), longest first."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items()
              if (k in SECRET_ENV_NAMES or _SECRET_NAME_RE.search(k)) and v and len(v) >= MIN_SECRET_LENGTH}
    return tuple(sorted(values, key=len, reverse=True))


def scrub_secrets(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every secret replaced by ``***``, in its raw, URL-, JSON- and HTML-escaped forms."""
    # lazy for start-up time: the HTTP client, the store and the model load when a step needs them
    from research_lib.data.sources.http import redact

    secrets = secret_values() if secrets is None else tuple(secrets)
    if not secrets:
        return text
    forms: set[str] = set()
    for s in secrets:
        forms.update({s, json.dumps(s)[1:-1], html.escape(s), html.escape(json.dumps(s)[1:-1])})
    return redact(text, forms)


def _scrub_file(path: Path, secrets: tuple[str, ...]) -> None:
    if not secrets or not path.exists():
        return
    text = path.read_text(encoding="utf-8")
    clean = scrub_secrets(text, secrets)
    if clean != text:
        _write_text(path, clean)


def _write_text(path: Path, text: str) -> None:
    """Atomic write (:func:`research_lib.store.atomic_write`): readers never see half a page."""
    atomic_write(path, text.encode("utf-8"))


def _today_ny() -> str:
    return pd.Timestamp.now(tz=NY).date().isoformat()


def _now_ny() -> str:
    """Now in New York, ISO 8601 with its offset: every time in the index is New York time."""
    return pd.Timestamp.now(tz=NY).isoformat(timespec="seconds")


def _ny_text(value: str | None) -> str:
    """An ISO time shown in New York time with its zone (``2026-08-21 16:15 EDT``); '' for none."""
    if not value:
        return ""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
    return f"{ts.tz_convert(NY):%Y-%m-%d %H:%M %Z}"


# --------------------------------------------------------------------------------------------------------
# the kernel: this interpreter


#: Imported by the report kernel while it starts, in parallel with the runner's own start-up.
KERNEL_PRELOAD = ("import pandas, matplotlib", "import research_lib.daily, research_lib.plots")


def _kernel_manager_class():
    """An nbclient kernel manager that starts ``sys.executable -m ipykernel_launcher`` for any kernel name.

    A ``python3`` kernelspec in the user's Jupyter folders may point at another Python that has no
    ``research_lib``; the report must run in the environment that runs the report. The kernel imports
    :data:`KERNEL_PRELOAD` while it starts (IPython ``exec_lines``: not in the notebook's history or output).
    """
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    preload = "--IPKernelApp.exec_lines=" + json.dumps(list(KERNEL_PRELOAD))

    class ThisPythonSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name, *args, **kwargs):
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                                    "--log-level=ERROR", preload],
                              display_name=f"Python ({sys.executable})", language="python")

    class ThisPythonKernelManager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _default_specs(self):
            return ThisPythonSpecs(data_dir=self.data_dir)

    return ThisPythonKernelManager


def _start_kernel(cwd: str):
    """Start the report kernel now (it boots while the runner imports papermill); returns its manager."""
    import asyncio

    km = _kernel_manager_class()(kernel_name="python3")
    asyncio.run(km.start_kernel(cwd=cwd))
    return km


def _stop_kernel(km) -> None:
    """Stop the kernel at once: the notebook has finished and written everything it writes."""
    import asyncio

    if km is None:
        return
    try:
        asyncio.run(km.shutdown_kernel(now=True))
    except Exception as exc:  # a kernel that is already gone is not a failed report
        logger.debug("kernel shutdown: %s: %s", type(exc).__name__, exc)


# --------------------------------------------------------------------------------------------------------
# results


@dataclasses.dataclass(frozen=True)
class ReportResult:
    """One report run.

    Attributes
    ----------
    symbol, date : str
        ``date`` is the folder date (see the module docstring).
    status : str
        ``"OK"`` or ``"FAILED"``.
    notebook, html : Path
        The files this run wrote (``<SYMBOL>.ipynb/.html``, or ``<SYMBOL>.FAILED.*``).
    params : dict
        The notebook parameters, normalised.
    duration_s : float
        Wall time of the run, seconds.
    error : str or None
        For a failed run: the exception type and message (secrets scrubbed).
    record : dict or None
        What the notebook recorded (:meth:`research_lib.daily.DailyReport.to_dict`), when it got that far.
    """

    symbol: str
    date: str
    status: str
    notebook: Path
    html: Path
    params: dict
    duration_s: float
    error: str | None = None
    record: dict | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["notebook"], d["html"] = str(self.notebook), str(self.html)
        d.pop("record")
        d["provenance"] = None if self.record is None else self.record.get("provenance")
        return d


def data_tag(provenance: dict | None) -> str:
    """``MODELLED``, ``STALE (1,173 days old)`` or ``""`` for a report's provenance record.

    STALE when no live source answered (a store copy), or the chain is older than
    :data:`STALE_AFTER_HOURS` whatever served it (a file from another year is not today's market).
    """
    prov = provenance or {}
    if prov.get("modelled"):
        return "MODELLED"
    hours = prov.get("age_hours")
    old = isinstance(hours, int | float) and hours > STALE_AFTER_HOURS
    if prov.get("stale") or old:
        if not isinstance(hours, int | float):
            return "STALE"
        return f"STALE ({hours / 24:,.0f} days old)" if hours >= 48 else f"STALE ({hours:,.1f} hours old)"
    return ""


def result_line(result: ReportResult) -> str:
    """The terminal line of one report: status, date, symbol, page, and what the page's banner says about
    the data (``MODELLED`` or ``STALE (N days old)``), or the error of a FAILED report."""
    tag = data_tag((result.record or {}).get("provenance")) if result.ok else ""
    line = f"{result.status:6} {result.date} {result.symbol:6} {result.html}"
    if tag:
        line += f"  {tag}"
    if result.error:
        line += f"  ({result.error})"
    return line


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """One invocation of :func:`run_reports`: what ran, how it ended, where its log and summary are."""

    run_id: str
    started_at: str
    finished_at: str
    duration_s: float
    params: dict
    results: tuple[ReportResult, ...]
    exit_code: int
    log: Path | None
    summary: Path | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "started_at": self.started_at, "finished_at": self.finished_at,
                "duration_s": self.duration_s, "exit_code": self.exit_code, "error": self.error,
                "params": self.params, "results": [r.to_dict() for r in self.results],
                "log": None if self.log is None else str(self.log),
                "summary": None if self.summary is None else str(self.summary),
                "host": os.uname().nodename, "pid": os.getpid(), "python": sys.executable,
                "research_lib": __version__}


# --------------------------------------------------------------------------------------------------------
# reading what a notebook recorded


def recorded(nb: dict, tag: str = RECORD_TAG) -> dict | None:
    """The ``application/json`` output of the cell tagged ``tag`` in an executed notebook (None if absent)."""
    for cell in nb.get("cells", []):
        if tag not in cell.get("metadata", {}).get("tags", []):
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "application/json" in data:
                return data["application/json"]
    return None


# --------------------------------------------------------------------------------------------------------
# HTML export


def export_html(notebook: str | os.PathLike | dict, destination: str | os.PathLike | None = None) -> str:
    """A static HTML page of an executed notebook; written to ``destination`` when given.

    Code cells' input and prompts are hidden, cells tagged ``record`` are left out, images are embedded
    as data URIs, CSS is inlined, and no script is fetched from the network (the ``report_html`` template
    in ``research_lib/templates``): the page opens offline. Errors in a failed notebook are shown.
    """
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    nb = notebook if isinstance(notebook, dict) else nbformat.read(str(notebook), as_version=4)
    if isinstance(nb, dict) and not isinstance(nb, nbformat.NotebookNode):
        nb = nbformat.from_dict(nb)
    config = Config()
    config.TagRemovePreprocessor.remove_cell_tags = {RECORD_TAG}
    config.TagRemovePreprocessor.enabled = True
    exporter = HTMLExporter(config=config, template_name=TEMPLATE_NAME,
                            extra_template_basedirs=[str(TEMPLATE_DIR)], exclude_input=True,
                            exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True)
    exporter.register_preprocessor(TagRemovePreprocessor(config=config), enabled=True)
    body, _ = exporter.from_notebook_node(nb)
    if destination is not None:
        _write_text(Path(destination), body)
    return body


def _error_page(title: str, paragraph: str, traceback_text: str = "") -> str:
    """A page for a run without a notebook to export: the readable paragraph, the traceback folded."""
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"</head><body>{_failure_block(title, paragraph, traceback_text)}</body></html>")


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _failure_block(title: str, paragraph: str, traceback_text: str = "") -> str:
    """The head of a FAILED page: a title, one readable paragraph, the traceback folded below it."""
    folded = ""
    if traceback_text.strip():
        folded = ("<details style='margin-top:0.6em'><summary>Traceback (for whoever fixes it)</summary>"
                  f"<pre style='white-space:pre-wrap'>{html.escape(_ANSI.sub('', traceback_text))}</pre></details>")
    return (f"<div class='report-failed' style='border:3px solid #b00020;padding:0.6em 1em;border-radius:6px'>"
            f"<h2 style='margin-top:0;color:#b00020'>{html.escape(title)}</h2>"
            f"<p>{html.escape(paragraph)}</p>{folded}</div>")


def failure_paragraph(symbol: str, date: str, error: str, *, section: str | None = None,
                      good_kept: bool = False) -> str:
    """One paragraph a person reads first on a FAILED page: what could not be done, why (the error's own
    message), where (the report section), and what was kept."""
    kind, _, message = error.partition(": ")
    if not message:
        kind, message = "", error
    where = f" in the section \u201c{section}\u201d" if section else ""
    kept = ("The last good report of this date and symbol is kept and still listed in the index."
            if good_kept else "There is no good report of this date and symbol yet.")
    return (f"The {symbol} daily report for {date} could not be built: {message.rstrip('.')}. "
            f"({kind or 'Error'}{where}.) {kept} The traceback is folded below.")


def _failed_page_notebook(nb, title: str, paragraph: str):
    """A copy of a failed notebook for its HTML page: the failure block first, each traceback folded."""
    import copy

    import nbformat

    page = copy.deepcopy(nb)
    for cell in page.cells:
        outputs = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                text = "\n".join(out.get("traceback") or [f"{out.get('ename')}: {out.get('evalue')}"])
                head = html.escape(f"{out.get('ename')}: {out.get('evalue')}")
                out = nbformat.v4.new_output("display_data", data={"text/html": (
                    f"<p style='color:#b00020'><b>{head}</b></p><details><summary>Traceback</summary>"
                    f"<pre style='white-space:pre-wrap'>{html.escape(_ANSI.sub('', text))}</pre></details>")})
            outputs.append(out)
        if cell.cell_type == "code":
            cell.outputs = outputs
    head = nbformat.v4.new_code_cell("")
    head.outputs = [nbformat.v4.new_output("display_data", data={"text/html": _failure_block(title, paragraph)})]
    page.cells.insert(0, head)
    return page


def _error_section(nb) -> tuple[str | None, str]:
    """The section title of the first cell with an error output, and that output's traceback."""
    section = None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    section = line.lstrip("#").strip()
                    break
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return section, _ANSI.sub("", "\n".join(out.get("traceback") or []))
    return None, ""


# --------------------------------------------------------------------------------------------------------
# the index


def _index_paths(root: Path) -> tuple[Path, Path]:
    return root / "index.json", root / "index.html"


def read_index(root: str | os.PathLike | None = None) -> list[dict]:
    """The index entries, newest date first (one per date and symbol); rebuilt from the files when
    ``index.json`` is missing or unreadable (the unreadable file is kept aside as ``index.json.corrupt-*``)."""
    root = reports_root(root)
    path, _ = _index_paths(root)
    if not path.exists():
        return rebuild_index(root, write=False) if (root / "daily").is_dir() else []
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


def _write_index(root: Path, entries: list[dict]) -> None:
    """Both index files, each written atomically (a reader never sees half of one)."""
    json_path, html_path = _index_paths(root)
    _write_text(json_path, to_json({"version": 1, "timezone": "America/New_York", "reports": entries}, indent=1))
    _write_text(html_path, _index_html(entries))


def _index_html(entries: list[dict]) -> str:
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
</tbody></table></body></html>
"""


# --------------------------------------------------------------------------------------------------------
# pruning


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
        return {"removed_rows": [{"date": d, "symbol": s} for d, s in self.removed_rows],
                "cleared_failed": [{"date": d, "symbol": s} for d, s in self.cleared_failed],
                "files": [str(f) for f in self.files], "kept": self.kept, "dry_run": self.dry_run}

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


# --------------------------------------------------------------------------------------------------------
# the lock


@contextlib.contextmanager
def _run_lock(root: Path):
    path = root / ".lock"
    held = contextlib.ExitStack()
    try:
        held.enter_context(file_lock(path, wait=False,
                                     note=f"pid {os.getpid()} since {dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}"))
    except LockBusyError as exc:
        raise ReportLockedError(f"another report run holds {path} ({exc.holder}); not starting") from None
    with held:
        yield


# --------------------------------------------------------------------------------------------------------
# running


class _PapermillProgress(logging.Handler):
    """Turns papermill's log into progress lines ("SPX: cell 9/24 GEX by strike") and debug lines, with
    secrets scrubbed."""

    def __init__(self, symbol: str, titles: list[str], secrets: tuple[str, ...]):
        super().__init__(logging.DEBUG)
        self.symbol, self.titles, self.secrets = symbol, titles, secrets
        self.shown: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = scrub_secrets(record.getMessage(), self.secrets)
        except Exception:  # a logging handler must never raise into papermill
            return
        m = re.match(r"Executing Cell (\d+)", message)
        if m:  # one progress line per section, the rest in the log file
            i = int(m.group(1))
            title = self.titles[i - 1] if 0 < i <= len(self.titles) else ""
            level = logging.INFO if title != self.shown else logging.DEBUG
            self.shown = title
            logger.log(level, "%s: cell %d/%d %s", self.symbol, i, len(self.titles), title)
        else:
            logger.debug("papermill: %s", message.rstrip())


def _execute(notebook: Path, output: Path, params: dict, *, symbol: str, timeout: float,
             secrets: tuple[str, ...]) -> None:
    cwd = os.getcwd()
    km = _start_kernel(cwd)
    try:
        import nbformat
        import papermill

        cells = nbformat.read(str(notebook), as_version=4).cells
        pm_logger = logging.getLogger("papermill")
        handler = _PapermillProgress(symbol, _section_titles(cells), secrets)
        old_level = pm_logger.level
        pm_logger.addHandler(handler)
        pm_logger.setLevel(logging.INFO)
        try:
            papermill.execute_notebook(str(notebook), str(output), parameters=params, progress_bar=False,
                                       log_output=True, cwd=cwd, execution_timeout=timeout, km=km)
        finally:
            pm_logger.removeHandler(handler)
            pm_logger.setLevel(old_level)
    finally:
        _stop_kernel(km)


def _section_titles(cells) -> list[str]:
    """For each cell of the executed notebook (papermill adds one after ``parameters``), the title of the
    section it belongs to: the last Markdown heading above it."""
    titles, current = [], ""
    for cell in cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    current = line.lstrip("#").strip()
                    break
        titles.append(current)
        if "parameters" in cell.metadata.get("tags", []):
            titles.append("parameters")
    return titles


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, Any]:
    """The names and default values of a notebook's ``parameters`` cell (literal assignments only).

    Read with :mod:`ast`, without a kernel. Raises :class:`ReportParameterError` when the notebook has no
    ``parameters``-tagged cell or the cell is not plain assignments of literals.
    """
    import ast

    path = Path(notebook)
    if not path.is_file():
        raise ReportParameterError(f"report notebook {path} does not exist")
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            found = {}
            for node in ast.parse(source).body:
                if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                        and isinstance(node.targets[0], ast.Name)):
                    raise ReportParameterError(f"{path.name}: the parameters cell may hold only assignments "
                                               f"of literals (line {node.lineno})")
                try:
                    found[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    raise ReportParameterError(f"{path.name}: parameter {node.targets[0].id} is not a literal "
                                               f"(line {node.lineno})") from None
            return found
    raise ReportParameterError(f"{path.name} has no code cell tagged 'parameters'")


def check_sources(params: dict, *, store=None) -> None:
    """Refuse, before any kernel starts, a report no source can serve, when that is knowable without the
    network: the same order as :func:`research_lib.sources.auto.get_chain`, asking nothing live.

    - ``source="store"``: the store must hold the symbol (on ``date``, when one is given);
    - ``source="auto"`` when the live providers will not be asked (``RESEARCH_LIB_OFFLINE`` is set, or a
      past ``date``): the store must hold it, or it must be SPX (the modelled chain, a session date);
    - ``source="modelled"`` with a date: the modelled chain must exist for that date;
    - a provider name: refused offline, and with a past date (a live provider serves today's chain only).

    When a live provider will be asked (``auto`` online, latest), the answer is the provider's and comes
    from the run. A chain file is read by the run (its errors are the file's).

    Raises
    ------
    ReportParameterError
        Naming the symbol or date, and what each source said.
    """
    # lazy for start-up time: the HTTP client, the store and the model load when a step needs them
    from research_lib.data.sources.auto import DEFAULT_PROVIDERS, NAMED_SOURCES, offline

    src, symbol, date = params["source"], params["symbol"], params["date"]
    day = None if date in (None, "latest") else date
    if src not in NAMED_SOURCES:
        return
    if src in DEFAULT_PROVIDERS:
        if offline():
            raise ReportParameterError(f"report parameter source={src!r}: RESEARCH_LIB_OFFLINE is set, so the "
                                       f"live provider {src} cannot be asked (use source='store' or 'auto')")
        if day is not None:
            raise ReportParameterError(f"report parameter date={day!r}: the live provider {src} serves today's "
                                       f"chain only (use source='store' or a chain file for a past date)")
        return
    if src == "auto" and day is None and not offline():
        # lazy for start-up time: the HTTP client, the store and the model load when a step needs them
        from research_lib.data.sources.auto import provider_order

        try:
            provider_order()
        except ValueError as exc:
            raise ReportParameterError(f"report parameter source='auto': {exc}") from None
        return  # a live provider will be asked: only it can say whether it serves the symbol
    said: list[str] = []
    if src == "auto":
        said.append("live providers: not asked (" + ("RESEARCH_LIB_OFFLINE is set" if offline()
                                                     else f"a past date ({day}) was asked") + ")")
    if src in ("auto", "store"):
        # lazy for start-up time: the HTTP client, the store and the model load when a step needs them
        from research_lib.data.store import ChainStore, SnapshotNotStoredError, StoreError

        try:
            (store or ChainStore()).require(symbol, date=day)
            return
        except SnapshotNotStoredError as exc:
            said.append(f"store: {exc}")
        except StoreError as exc:  # a damaged store: the run's fallback may still serve
            said.append(f"store: {type(exc).__name__}: {exc}")
    if src in ("auto", "modelled"):
        if symbol != "SPX":
            said.append(f"modelled: the modelled chain exists for SPX only, not {symbol}")
        elif day is None:
            return
        else:
            # lazy for start-up time: the HTTP client, the store and the model load when a step needs them
            from research_lib.data.modelled import ModelledChainError, modelled_chain

            try:
                modelled_chain("SPX", date=day)
                return
            except ModelledChainError as exc:
                said.append(f"modelled: {exc}")
    name, value = ("date", day) if day is not None and symbol == "SPX" else ("symbol", symbol)
    raise ReportParameterError(f"report parameter {name}={value!r}: no source can serve a {symbol} chain"
                               + (f" of {day}" if day else "") + f" with source={src!r}; " + "; ".join(said))


def _check_notebook_params(notebook: Path, params: dict) -> None:
    declared = notebook_parameters(notebook)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ReportParameterError(f"report notebook {notebook.name} declares no parameter {unknown} "
                                   f"(it declares {sorted(declared)})")


def _run_one(root: Path, notebook: Path, params: dict, *, timeout: float, secrets: tuple[str, ...]) -> ReportResult:
    symbol = params["symbol"]
    staging = root / "daily" / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    stem = f"{symbol}-{uuid.uuid4().hex[:10]}"
    out_nb, out_html = staging / f"{stem}.ipynb", staging / f"{stem}.html"
    start = time.perf_counter()
    error = record = None
    traceback_text = ""
    logger.info("%s: running %s (source %s, date %s)", symbol, notebook.name, params["source"], params["date"])
    # nbconvert takes a second to import: do it while the kernel works on the other core
    preload = threading.Thread(target=_import_nbconvert, daemon=True)
    preload.start()
    try:
        _execute(notebook, out_nb, params, symbol=symbol, timeout=timeout, secrets=secrets)
    except Exception as exc:  # any failure of the run is reported as FAILED, with its type
        import traceback

        error = _describe_error(exc)
        if getattr(exc, "ename", None) is None:  # not the notebook's own error: the runner's traceback
            traceback_text = "".join(traceback.format_exception(exc))
        logger.error("%s: notebook failed: %s", symbol, scrub_secrets(error, secrets))
    import nbformat  # imported by papermill by now

    nb = None
    if out_nb.exists():
        _scrub_file(out_nb, secrets)
        try:
            nb = nbformat.read(str(out_nb), as_version=4)
            record = recorded(nb)
        except (OSError, ValueError) as exc:
            error = error or f"unreadable output notebook: {exc}"
    if error is None and record is None:
        error = "the notebook ran but recorded nothing (its 'record' cell produced no JSON)"
    date = (record or {}).get("provenance", {}).get("date") if error is None else None
    if date is None:
        date = params["date"] if params["date"] != "latest" else _today_ny()
    logger.info("%s: exporting HTML", symbol)
    title = f"{symbol} daily GEX report {date} — FAILED"
    good_kept = (root / "daily" / date / f"{symbol}.ipynb").exists()
    if nb is not None:
        nb.metadata["title"] = f"{symbol} daily GEX report {date}" + ("" if error is None else " — FAILED")
        page = nb
        if error is not None:
            section, nb_traceback = _error_section(nb)
            traceback_text = traceback_text or nb_traceback
            page = _failed_page_notebook(nb, title, failure_paragraph(symbol, date, error, section=section,
                                                                      good_kept=good_kept))
        try:
            export_html(page, out_html)
        except Exception as exc:  # an export failure fails the report, it does not crash the run
            import traceback

            error = error or f"HTML export failed: {_describe_error(exc)}"
            _write_text(out_html, _error_page(title, failure_paragraph(symbol, date, error, good_kept=good_kept),
                                              traceback_text or "".join(traceback.format_exception(exc))))
    else:
        error = error or "no output notebook"
        _write_text(out_html, _error_page(title, failure_paragraph(symbol, date, error, good_kept=good_kept),
                                          traceback_text))
    _scrub_file(out_html, secrets)
    if error is not None:
        error = scrub_secrets(error, secrets)

    final_dir = root / "daily" / date
    final_dir.mkdir(parents=True, exist_ok=True)
    stem_final = symbol if error is None else f"{symbol}.{FAILED}"
    nb_final, html_final = final_dir / f"{stem_final}.ipynb", final_dir / f"{stem_final}.html"
    if out_nb.exists():
        os.replace(out_nb, nb_final)
    else:
        _write_text(nb_final, json.dumps(_placeholder_notebook(error or "")))
    os.replace(out_html, html_final)
    if error is None:  # a good report supersedes the failed run of the same date and symbol
        for suffix in (".ipynb", ".html"):
            (final_dir / f"{symbol}.{FAILED}{suffix}").unlink(missing_ok=True)
    duration = time.perf_counter() - start
    result = ReportResult(symbol=symbol, date=date, status=OK if error is None else FAILED, notebook=nb_final,
                          html=html_final, params=params, duration_s=duration, error=error, record=record)
    _update_index(root, result, _now_ny())
    logger.info("%s: %s in %.1f s -> %s", symbol, result.status, duration, html_final)
    return result


def _import_nbconvert() -> None:
    import nbconvert  # noqa: F401


def _placeholder_notebook(error: str) -> dict:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# Report FAILED\n\n```\n{error}\n```")])
    return json.loads(nbformat.writes(nb))


def _describe_error(exc: BaseException) -> str:
    ename = getattr(exc, "ename", None)  # PapermillExecutionError: the notebook's own exception
    evalue = getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    return f"{type(exc).__name__}: {exc}"


def run_reports(symbols: Sequence[str] = ("SPX",), *, date: str | None = "latest", source: str = "auto",
                convention: str = "model", account: float = 50_000.0, record_decision: bool = True,
                history_days: int = 365, next_expiries: int = 5, reports_dir: str | os.PathLike | None = None,
                notebook: str | os.PathLike | None = None, timeout: float = 900.0,
                progress: Callable[[str], None] | None = None, write_log: bool = True) -> RunSummary:
    """Run the daily report for each symbol, one after another, under the reports folder's lock.

    Parameters
    ----------
    symbols : sequence of str
        Underlyings, e.g. ``["SPX", "SPY", "QQQ"]``; each gets its own notebook, HTML page and index row.
    date, source, convention, account, record_decision, history_days, next_expiries
        The notebook parameters (:func:`research_lib.daily.build_daily`), the same for every symbol.
    reports_dir : path, optional
        See :func:`reports_root`.
    notebook : path, optional
        The notebook to run (default ``notebooks/daily_report.ipynb``); it must declare these parameters.
    timeout : float
        Seconds allowed per cell.
    progress : callable, optional
        Receives one line per step (and per cell) while it runs.
    write_log : bool
        Write ``logs/<run id>.log`` and ``logs/<run id>.json``.

    Returns
    -------
    RunSummary
        ``exit_code`` 0 when every report is OK, :data:`EXIT_REPORT_FAILED` when one failed,
        :data:`EXIT_LOCKED` when another run holds the lock (nothing ran).

    Raises
    ------
    ReportParameterError
        A bad parameter, before any kernel starts and before anything is written.
    """
    if isinstance(symbols, str):
        symbols = [s for s in symbols.split(",") if s.strip()]
    if not symbols:
        raise ReportParameterError("report parameter symbols=[]: give at least one symbol")
    all_params = [normalise_params(s, date, source, convention, account, record_decision, history_days,
                                   next_expiries) for s in symbols]
    dupes = sorted({p["symbol"] for p in all_params if sum(q["symbol"] == p["symbol"] for q in all_params) > 1})
    if dupes:
        raise ReportParameterError(f"report parameter symbols: {dupes} given more than once")
    nb_path = Path(notebook) if notebook is not None else DAILY_NOTEBOOK
    for p in all_params[:1]:
        _check_notebook_params(nb_path, p)
    for p in all_params:
        check_sources(p)

    root = reports_root(reports_dir)
    root.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{os.getpid()}"
    secrets = secret_values()
    log_path = root / "logs" / f"{run_id}.log" if write_log else None
    summary_path = log_path.with_suffix(".json") if log_path is not None else None
    handlers = _attach_handlers(log_path, progress, secrets)
    results: list[ReportResult] = []
    error = None
    t0 = time.perf_counter()
    try:
        logger.info("run %s: %d report(s) %s into %s (research_lib %s)", run_id, len(all_params),
                    ",".join(p["symbol"] for p in all_params), root, __version__)
        try:
            with _run_lock(root):
                staging = root / "daily" / ".staging"
                if staging.is_dir():  # left over by a killed run; we hold the lock, nobody else writes here
                    shutil.rmtree(staging)
                for i, params in enumerate(all_params, 1):
                    logger.info("[%d/%d] %s", i, len(all_params), params["symbol"])
                    results.append(_run_one(root, nb_path, params, timeout=timeout, secrets=secrets))
        except ReportLockedError as exc:
            error = str(exc)
            logger.error("%s", exc)
        if error is not None:
            code = EXIT_LOCKED
        else:
            code = EXIT_OK if all(r.ok for r in results) else EXIT_REPORT_FAILED
        n_ok = sum(r.ok for r in results)
        logger.info("run %s finished: %d OK, %d FAILED, exit %d, %.1f s; index %s", run_id, n_ok,
                    len(results) - n_ok, code, time.perf_counter() - t0, root / "index.html")
        summary = RunSummary(run_id=run_id, started_at=started.isoformat(timespec="seconds"),
                             finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                             duration_s=round(time.perf_counter() - t0, 3),
                             params={k: v for k, v in all_params[0].items() if k != "symbol"}
                             | {"symbols": [p["symbol"] for p in all_params], "notebook": str(nb_path)},
                             results=tuple(results), exit_code=code, log=log_path, summary=summary_path,
                             error=error)
        if summary_path is not None:
            _write_text(summary_path, scrub_secrets(to_json(summary.to_dict(), indent=1), secrets))
        return summary
    finally:
        for h in handlers:
            logger.removeHandler(h)
            h.close()


class _ScrubbingFormatter(logging.Formatter):
    def __init__(self, fmt: str, secrets: tuple[str, ...]):
        super().__init__(fmt)
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return scrub_secrets(super().format(record), self.secrets)


class _CallbackHandler(logging.Handler):
    def __init__(self, callback: Callable[[str], None], secrets: tuple[str, ...]):
        super().__init__(logging.INFO)
        self.callback = callback
        self.setFormatter(_ScrubbingFormatter("%(message)s", secrets))

    def emit(self, record: logging.LogRecord) -> None:
        self.callback(self.format(record))


def _attach_handlers(log_path: Path | None, progress, secrets) -> list[logging.Handler]:
    handlers: list[logging.Handler] = []
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_path, encoding="utf-8")
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(_ScrubbingFormatter("%(asctime)s %(levelname)s %(message)s", secrets))
        handlers.append(fh)
    if progress is not None:
        handlers.append(_CallbackHandler(progress, secrets))
    for h in handlers:
        logger.addHandler(h)
    if handlers:
        logger.setLevel(logging.DEBUG)
    return handlers


def run_daily(symbol: str = "SPX", **kwargs: Any) -> ReportResult:
    """One daily report: :func:`run_reports` for one symbol, returning its :class:`ReportResult`.

    Raises :class:`ReportLockedError` when another run holds the lock (nothing ran).
    """
    summary = run_reports([symbol], **kwargs)
    if summary.exit_code == EXIT_LOCKED:
        raise ReportLockedError(summary.error)
    return summary.results[0]
