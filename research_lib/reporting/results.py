"""Results of report runs, and what they share: the reports folder, its lock, the times written, what a
notebook recorded.

Part of :mod:`research_lib.reporting`; :mod:`research_lib.reporting.runner` re-exports every name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import sys
from pathlib import Path

import pandas as pd

from research_lib import __version__
from research_lib.core.chain import NY
from research_lib.errors import LockBusyError, ReportLockedError
from research_lib.formatting import jsonable
from research_lib.fs import atomic_write, file_lock
from research_lib.settings import ENV_REPORTS, REPO_ROOT

ENV_ROOT = ENV_REPORTS


RECORD_TAG = "record"


EXIT_OK = 0


EXIT_USAGE = 2


EXIT_REPORT_FAILED = 5


EXIT_LOCKED = 6


OK = "OK"


FAILED = "FAILED"


#: A report's chain older than this (hours) is marked STALE on the terminal and in the index even when it
#: came from a file: no session is more than four days from the next one (a long weekend).
STALE_AFTER_HOURS = 96.0


def reports_root(root: str | os.PathLike | None = None) -> Path:
    """The reports folder: ``root``, else ``$RESEARCH_LIB_REPORTS``, else ``reports/`` in the repository."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_ROOT, "").strip()
    return Path(env) if env else REPO_ROOT / "reports"


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


def _write_text(path: Path, text: str) -> None:
    """Atomic write (:func:`research_lib.fs.atomic_write`): readers never see half a page."""
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
        """JSON-ready (:func:`research_lib.formatting.jsonable`): every field but ``record`` (paths as
        text), plus the record's ``provenance``."""
        d = dataclasses.asdict(self)
        d.pop("record")
        d["provenance"] = None if self.record is None else self.record.get("provenance")
        return jsonable(d)


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
        """JSON-ready (:func:`research_lib.formatting.jsonable`): the fields (each result by its
        :meth:`ReportResult.to_dict`, paths as text) and the host, pid, python and version."""
        return jsonable({"run_id": self.run_id, "started_at": self.started_at, "finished_at": self.finished_at,
                         "duration_s": self.duration_s, "exit_code": self.exit_code, "error": self.error,
                         "params": self.params, "results": self.results, "log": self.log,
                         "summary": self.summary, "host": os.uname().nodename, "pid": os.getpid(),
                         "python": sys.executable, "research_lib": __version__})


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
