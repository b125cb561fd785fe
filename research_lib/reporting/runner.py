"""Scheduled reports: run a parameterised notebook with papermill, export it to static HTML with nbconvert,
keep an index of every report. The CLI is ``research-lib report daily`` (see :mod:`research_lib.cli`).

This module runs; the results, the folder's lock and paths (:mod:`.results`), the index and its pruning
(:mod:`.index`) and secret scrubbing (:mod:`.secrets`) have their own modules, re-exported here.

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

import dataclasses
import datetime as dt
import html
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from research_lib import __version__
from research_lib.errors import (  # the error classes live in research_lib.errors; re-exported
    ReportError as ReportError,
    ReportLockedError as ReportLockedError,
)
from research_lib.formatting import jsonable, to_json
from research_lib.pipeline.daily import ReportParameterError, normalise_params
from research_lib.reporting.index import (  # re-exported: the code lives in reporting/index.py
    PruneResult as PruneResult,
    _index_html as _index_html,
    _update_index as _update_index,
    prune_reports as prune_reports,
    read_backtests as read_backtests,
    read_index as read_index,
    rebuild_index as rebuild_index,
)
from research_lib.reporting.results import (  # re-exported: the code lives in reporting/results.py
    ENV_ROOT as ENV_ROOT,
    EXIT_LOCKED as EXIT_LOCKED,
    EXIT_OK as EXIT_OK,
    EXIT_REPORT_FAILED as EXIT_REPORT_FAILED,
    EXIT_USAGE as EXIT_USAGE,
    FAILED as FAILED,
    OK as OK,
    RECORD_TAG as RECORD_TAG,
    STALE_AFTER_HOURS as STALE_AFTER_HOURS,
    ReportResult as ReportResult,
    RunSummary as RunSummary,
    _now_ny as _now_ny,
    _run_lock as _run_lock,
    _today_ny as _today_ny,
    _write_text as _write_text,
    data_tag as data_tag,
    recorded as recorded,
    reports_root as reports_root,
    result_line as result_line,
)
from research_lib.reporting.secrets import (  # re-exported: the code lives in reporting/secrets.py
    MIN_SECRET_LENGTH as MIN_SECRET_LENGTH,
    SECRET_ENV_NAMES as SECRET_ENV_NAMES,
    _scrub_file as _scrub_file,
    scrub_secrets as scrub_secrets,
    secret_values as secret_values,
)
from research_lib.settings import PACKAGE_DIR, REPO_ROOT

logger = logging.getLogger("research_lib.reports")

DAILY_NOTEBOOK = REPO_ROOT / "notebooks" / "daily_report.ipynb"
TEMPLATE_DIR = PACKAGE_DIR / "templates"
TEMPLATE_NAME = "report_html"




__all__ = [
    "DAILY_NOTEBOOK", "ENV_ROOT", "EXIT_LOCKED", "EXIT_OK", "EXIT_REPORT_FAILED", "EXIT_USAGE", "FAILED", "OK",
    "ReportError", "ReportLockedError", "ReportParameterError", "ReportResult", "RunSummary",
    "PruneResult", "BACKTEST_NOTEBOOK", "BacktestRun", "backtest_line", "backtest_run_folder", "new_run_id",
    "read_backtests", "run_backtest_report", "check_sources", "data_tag", "export_html", "prune_reports", "read_index", "rebuild_index",
    "recorded", "reports_root", "result_line", "run_daily", "run_reports", "notebook_parameters",
    "scrub_secrets", "secret_values",
]


# --------------------------------------------------------------------------------------------------------
# paths, secrets


















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










# --------------------------------------------------------------------------------------------------------
# reading what a notebook recorded




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


















# --------------------------------------------------------------------------------------------------------
# pruning








# --------------------------------------------------------------------------------------------------------
# the lock




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


def _read_output(out_nb: Path, secrets, record, error):
    """(notebook or None, record, error) of an executed notebook: scrubbed of secrets, read back, its recorded
    JSON taken; a notebook that ran but recorded nothing is an error."""
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
    return nb, record, error


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
    nb, record, error = _read_output(out_nb, secrets, record, error)
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


# --------------------------------------------------------------------------------------------------------
# backtest reports: reports/backtests/<run id>/ (notebooks/backtest.ipynb run with papermill)

BACKTEST_NOTEBOOK = REPO_ROOT / "notebooks" / "backtest.ipynb"
#: The file a backtest run leaves in its folder: what the index lists (rebuilt from these, never edited by hand).
BACKTEST_SUMMARY = "backtest.json"


def new_run_id() -> str:
    """A run id like the daily runs' log names: ``<UTC time>-<pid>`` (``20260821T201500Z-4242``)."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}"


def backtest_run_folder(out: str | os.PathLike | None = None,
                        reports_dir: str | os.PathLike | None = None) -> tuple[str, Path]:
    """(run id, folder) of a backtest run: ``out`` when given, else ``<reports>/backtests/<run id>/``."""
    run_id = new_run_id()
    folder = Path(out) if out is not None else reports_root(reports_dir) / "backtests" / run_id
    return run_id, folder


@dataclasses.dataclass(frozen=True)
class BacktestRun:
    """One ``research-lib report backtest`` (or ``report sweep``) run.

    Attributes
    ----------
    run_id, status : str
        ``status`` is ``"OK"`` or ``"FAILED"``.
    folder, notebook, html : Path
        ``reports/backtests/<run id>/`` and the executed notebook and its HTML page in it.
    params : dict
        The notebook parameters.
    duration_s : float
        Wall time, seconds (kernel start, the backtest, the charts and the HTML export).
    error : str or None
    record : dict or None
        What the notebook recorded (:func:`research_lib.backtest.stats.summary_record`).
    """

    run_id: str
    status: str
    folder: Path
    notebook: Path
    html: Path
    params: dict
    duration_s: float
    error: str | None = None
    record: dict | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_REPORT_FAILED

    def to_dict(self) -> dict:
        """JSON-ready: every field (paths as text)."""
        return jsonable(dataclasses.asdict(self))


def backtest_line(run: BacktestRun) -> str:
    """The terminal line of a backtest report: status, run id, page, and the headline figures or the error."""
    line = f"{run.status:6} backtest {run.run_id} {run.html}"
    rec = run.record or {}
    if run.ok and rec:
        ret = rec.get("total_return")
        line += (f"  {rec.get('trades')} trades, net P&L {rec.get('net_pnl'):+,.2f}"
                 + (f", total return {ret * 100:.2f}%" if isinstance(ret, int | float) else ""))
    if run.error:
        line += f"  ({run.error})"
    return line


def run_backtest_report(*, source: str, symbol: str = "SPX", params: dict | None = None,
                        reports_dir: str | os.PathLike | None = None, notebook: str | os.PathLike | None = None,
                        timeout: float = 1800.0, progress: bool = True, market_dir: str | None = None,
                        zero_gamma: bool = True) -> BacktestRun:
    """Run ``notebooks/backtest.ipynb`` for one backtest into ``<reports>/backtests/<run id>/``.

    The folder gets ``backtest.ipynb`` (executed, outputs included), ``backtest.html`` (static, offline, code
    hidden), the CSV files the notebook writes (``trades.csv``, ``legs.csv``, ``equity.csv``) and
    ``backtest.json`` (this run's :class:`BacktestRun` summary, which the index lists). Under the reports folder's
    lock, like the daily reports; secrets scrubbed from every file written.

    Parameters
    ----------
    source, symbol : str
        A multi-day chain file or ``"store"``; the underlying.
    params : dict
        :class:`~research_lib.backtest.params.BacktestParams` fields (those not given keep their defaults).
    reports_dir, notebook, timeout
        As :func:`run_reports`.
    progress : bool
        A progress bar (tqdm, on stderr) over the notebook's cells.
    market_dir : str, optional
        Market history folder the notebook reads (rates, the settlement prices).
    zero_gamma : bool
        Draw each day's zero-gamma level on the trades chart (analyses every day once more).

    Raises
    ------
    ReportParameterError
        The notebook does not declare a parameter given.
    ReportLockedError
        Another report run holds the lock (nothing ran).
    """
    nb_path = Path(notebook) if notebook is not None else BACKTEST_NOTEBOOK
    run_id, folder = backtest_run_folder(None, reports_dir)
    nb_params = {"source": str(source), "symbol": symbol, **{k: v for k, v in (params or {}).items()},
                 "market_dir": market_dir, "zero_gamma": bool(zero_gamma), "out_dir": str(folder)}
    return _notebook_report(nb_path, nb_params, run_id=run_id, folder=folder, reports_dir=reports_dir,
                            stem="backtest", summary_name=BACKTEST_SUMMARY, what=f"{symbol} backtest",
                            timeout=timeout, progress=progress)


def _notebook_report(nb_path: Path, nb_params: dict, *, run_id: str, folder: Path, reports_dir, stem: str,
                     summary_name: str, what: str, timeout: float, progress: bool) -> BacktestRun:
    """Run one report notebook into ``folder`` (``<stem>.ipynb``, ``<stem>.html``, ``summary_name``) under the
    reports lock, secrets scrubbed, the index rebuilt: the machinery of the backtest and sweep reports."""
    _check_notebook_params(nb_path, nb_params)
    root = reports_root(reports_dir)
    root.mkdir(parents=True, exist_ok=True)
    secrets = secret_values()
    with _run_lock(root):
        folder.mkdir(parents=True, exist_ok=True)
        out_nb, out_html = folder / f"{stem}.ipynb", folder / f"{stem}.html"
        start = time.perf_counter()
        error = record = None
        traceback_text = ""
        preload = threading.Thread(target=_import_nbconvert, daemon=True)
        preload.start()
        try:
            _execute_with_bar(nb_path, out_nb, nb_params, timeout=timeout, progress=progress)
        except Exception as exc:  # any failure of the run is reported as FAILED, with its type
            import traceback

            error = _describe_error(exc)
            if getattr(exc, "ename", None) is None:
                traceback_text = "".join(traceback.format_exception(exc))
        title = f"{what} {run_id}"
        nb, record, error = _read_output(out_nb, secrets, record, error)
        paragraph = (f"The {what} {run_id} could not be completed: "
                     f"{(error or '').partition(': ')[2] or error}. The traceback is folded below.")
        if nb is not None:
            nb.metadata["title"] = title + ("" if error is None else " — FAILED")
            page = nb
            if error is not None:
                section, nb_traceback = _error_section(nb)
                traceback_text = traceback_text or nb_traceback
                page = _failed_page_notebook(nb, title + " — FAILED", paragraph)
            try:
                export_html(page, out_html)
            except Exception as exc:  # an export failure fails the report, it does not crash the run
                error = error or f"HTML export failed: {_describe_error(exc)}"
                _write_text(out_html, _error_page(title + " — FAILED", paragraph, traceback_text))
        else:
            error = error or "no output notebook"
            _write_text(out_html, _error_page(title + " — FAILED", paragraph, traceback_text))
        _scrub_file(out_html, secrets)
        if error is not None:
            error = scrub_secrets(error, secrets)
        run = BacktestRun(run_id=run_id, status=OK if error is None else FAILED, folder=folder, notebook=out_nb,
                          html=out_html, params=nb_params, duration_s=round(time.perf_counter() - start, 3),
                          error=error, record=record)
        _write_text(folder / summary_name,
                    scrub_secrets(to_json(run.to_dict() | {"finished_at": _now_ny()}, indent=1), secrets))
        rebuild_index(root)  # the daily rows from their files, the backtest and sweep rows from their folders
        logger.info("%s %s: %s in %.1f s -> %s", stem, run_id, run.status, run.duration_s, out_html)
        return run


# --------------------------------------------------------------------------------------------------------
# sweep reports: reports/sweeps/<run id>/ (notebooks/sweep.ipynb run with papermill, the sweep's files beside it)

SWEEP_NOTEBOOK = REPO_ROOT / "notebooks" / "sweep.ipynb"
#: The report run's summary in a sweep folder (``sweep.json`` is the sweep's own, written by the store).
SWEEP_SUMMARY = "report.json"


def run_sweep_report(*, grid: str | os.PathLike, engine: str | None = None, workers: int | None = None,
                     scheduler: str | None = None, market_dir: str | None = None,
                     reports_dir: str | os.PathLike | None = None, notebook: str | os.PathLike | None = None,
                     timeout: float = 7200.0, progress: bool = True) -> BacktestRun:
    """Run ``notebooks/sweep.ipynb`` for a grid file into ``<reports>/sweeps/<run id>/``.

    The folder gets the sweep's own files (``results.csv``, ``results.parquet``, ``equity.parquet``,
    ``sweep.json``, ``parts/``: :mod:`research_lib.sweep.store`), ``sweep.ipynb`` (executed), ``sweep.html``
    (static, offline, code hidden: heatmaps, the top configurations, the walk-forward table, the deflated Sharpe
    ratio beside the in-sample best) and ``report.json`` (this run's :class:`BacktestRun` summary, which the
    index lists). Under the reports folder's lock, secrets scrubbed, like the backtest reports.

    Parameters
    ----------
    grid : path
        The grid file (:func:`research_lib.sweep.grid.load_grid`).
    engine, workers, scheduler, market_dir
        As ``research-lib sweep``.
    reports_dir, notebook, timeout, progress
        As :func:`run_backtest_report`.
    """
    nb_path = Path(notebook) if notebook is not None else SWEEP_NOTEBOOK
    run_id = new_run_id()
    folder = reports_root(reports_dir) / "sweeps" / run_id
    nb_params = {"grid": str(Path(grid).resolve()), "engine": engine, "workers": workers, "scheduler": scheduler,
                 "market_dir": market_dir, "sweep_dir": str(folder)}
    return _notebook_report(nb_path, nb_params, run_id=run_id, folder=folder, reports_dir=reports_dir,
                            stem="sweep", summary_name=SWEEP_SUMMARY, what=f"sweep {Path(grid).name}",
                            timeout=timeout, progress=progress)


def sweep_line(run: BacktestRun) -> str:
    """The terminal line of a sweep report: status, run id, page, and the headline figures or the error."""
    line = f"{run.status:6} sweep {run.run_id} {run.html}"
    rec = run.record or {}
    if run.ok and rec:
        best = rec.get("best") or {}
        sharpe = (best.get("stats") or {}).get("sharpe")
        dsr = (rec.get("deflated_sharpe") or {}).get("dsr")
        line += f"  {rec.get('configs')} configurations, {rec.get('failed')} failed"
        if isinstance(sharpe, int | float):
            line += f", best Sharpe {sharpe:.2f}"
        if isinstance(dsr, int | float):
            line += f" (deflated: {dsr:.3f})"
    if run.error:
        line += f"  ({run.error})"
    return line


def _execute_with_bar(notebook: Path, output: Path, params: dict, *, timeout: float, progress: bool) -> None:
    """papermill in this interpreter's kernel (:func:`_start_kernel`), with papermill's own tqdm progress bar."""
    # lazy for start-up time: only a backtest report needs the backtest package
    from research_lib.backtest.stats import use_project_numba_cache

    use_project_numba_cache()  # the kernel inherits NUMBA_CACHE_DIR: it compiles vectorbt's kernels once per machine
    cwd = os.getcwd()
    km = _start_kernel(cwd)
    try:
        import papermill

        papermill.execute_notebook(str(notebook), str(output), parameters=params, progress_bar=progress,
                                   log_output=False, cwd=cwd, execution_timeout=timeout, km=km)
    finally:
        _stop_kernel(km)
