"""The nightly pipeline: today's chains into the store, the daily reports, a paper mark, and a summary of the run.

``research-lib nightly [--symbols SPX,SPY] [--import DIR] [--skip STEP ...] [--json]`` is :func:`run_nightly`.

Steps, in this order (:data:`STEPS`); each records a :class:`StepResult` and a failure never stops the steps
that do not depend on it:

``chains`` (one result per symbol)
    Fetch today's chain of each symbol from the config's ``market.source`` with
    :func:`research_lib.data.sources.auto.get_chain` (``save=True``: live chains go into the store). It
    fails for a symbol when no source answered, when the chain served is of another underlying (a chain file
    named as the source holds one underlying), or when ``auto`` could only serve a stale store copy or the
    modelled chain: the point of the step is a fresh chain, and a cron watcher must see that none came. A
    source chosen explicitly (``store``, ``modelled``, a file) is what was asked for and succeeds. Outside a
    session day (the New York date of ``now`` is not an NYSE session) every symbol is skipped and says so.
    With ``import_dir`` (``--import DIR``) the step is instead one import of every chain file under the
    folder into the store, as ``research-lib import`` does (:meth:`ChainStore.import_paths`, bad files
    reported, the others imported); it runs on any day and fails when a file could not be imported.
``reports`` (one result per symbol)
    The daily report of each symbol, as ``research-lib report daily`` runs it
    (:func:`research_lib.reporting.runner.run_reports`), on the chain the ``chains`` step got for it: the
    store's snapshot of that date (a fetched or stale chain), the file, or the modelled chain. A symbol whose
    chain failed is skipped (its report would show old data); after an import, or when ``chains`` is not
    run, the report reads the config's source (the store's newest snapshot after an import). Skipped with the
    chains outside a session day.
``paper_mark``
    ``research_lib.paper.trader.PaperTrader(config).mark()`` under the lock ``research-lib paper mark`` takes
    (a cron mark running at the same moment makes this step fail, naming it): marks the open positions from
    the config's source, applies the exits. Runs whatever happened before, on any day (after the close it marks
    at the closing quotes). It fails when a position could not be marked (a leg missing from the chain: the
    problems are listed), since an unmarked position's exit rules cannot fire.

Exit codes (:attr:`NightlySummary.exit_code`, the command's exit status):

== ==========================================================================================
0  every step that ran succeeded (skipped steps, e.g. outside a session day, are not failures)
1  some step failed and some succeeded
2  every step that ran failed
3  another nightly holds the lock (nothing ran; the message names the holder)
== ==========================================================================================

The command line also exits 2 on bad usage (an unknown option, a bad settings file) before anything runs.

Files, under ``out_dir`` (default :func:`research_lib.settings.data_root`): ``last_nightly_summary.json``
(the :meth:`NightlySummary.to_dict`, strict JSON, written atomically), ``nightly.log`` (one line appended per
run, refused runs included) and ``nightly.lock`` (held while a run goes; it holds the runner's pid and start).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from research_lib import calendar
from research_lib.data.sources.auto import DEFAULT_PROVIDERS, get_chain
from research_lib.data.store import ChainStore
from research_lib.errors import LockBusyError, NightlyError, PaperConfigError, ResearchLibError
from research_lib.formatting import to_json
from research_lib.fs import atomic_write, file_lock
from research_lib.paper.config import KNOBS_BY_NAME, PaperConfig, load_config
from research_lib.reporting import runner as reports
from research_lib.settings import NY, data_root

__all__ = ["EXIT_ALL_FAILED", "EXIT_LOCKED", "EXIT_OK", "EXIT_SOME_FAILED", "FAILED", "LOCK_FILE", "LOG_FILE", "OK",
           "SKIPPED", "STEPS", "SUMMARY_FILE", "NightlySummary", "StepResult", "run_nightly"]

#: The steps, in the order they run.
STEPS: tuple[str, ...] = ("chains", "reports", "paper_mark")
#: Step statuses.
OK, FAILED, SKIPPED = "ok", "failed", "skipped"
#: Exit codes (see the module docstring).
EXIT_OK, EXIT_SOME_FAILED, EXIT_ALL_FAILED, EXIT_LOCKED = 0, 1, 2, 3
#: File names under ``out_dir``.
SUMMARY_FILE = "last_nightly_summary.json"
LOG_FILE = "nightly.log"
LOCK_FILE = "nightly.lock"


@dataclasses.dataclass(frozen=True)
class StepResult:
    """What one step did (for one symbol, for ``chains`` and ``reports``).

    Attributes
    ----------
    name : str
        One of :data:`STEPS`.
    status : {"ok", "failed", "skipped"}
    seconds : float
        Wall time of the step (0 when skipped).
    detail : str
        One line: what it did, or why it was skipped.
    error : str or None
        For a failed step: the error's class and message (and where, for an error that is not the library's).
    symbol : str or None
        The symbol of a per-symbol step (None for ``paper_mark`` and an import).
    info : dict
        Machine-readable facts (the chain's source, date and contract count; the report's page; the mark's
        ``to_dict()``), JSON-ready.
    """

    name: str
    status: str
    seconds: float
    detail: str
    error: str | None = None
    symbol: str | None = None
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def label(self) -> str:
        """``chains:SPX``, ``paper_mark``."""
        return f"{self.name}:{self.symbol}" if self.symbol else self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class NightlySummary:
    """One nightly run.

    Attributes
    ----------
    started, finished : datetime
        Wall-clock start and end (UTC).
    session_date : date
        The New York date of ``now`` the run acted for.
    symbols : tuple of str
    steps : tuple of StepResult
        In the order they ran (``chains`` per symbol, ``reports`` per symbol, ``paper_mark``).
    exit_code : int
        See the module docstring.
    error : str or None
        Why nothing ran (another nightly holds the lock).
    summary_path, log_path : Path or None
        The files written (no summary is written by a run refused at the lock).
    """

    started: dt.datetime
    finished: dt.datetime
    session_date: dt.date
    symbols: tuple[str, ...]
    steps: tuple[StepResult, ...]
    exit_code: int
    error: str | None = None
    summary_path: Path | None = None
    log_path: Path | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK

    def line(self) -> str:
        """The one line appended to ``nightly.log``."""
        parts = [f"{s.label}={s.status}({s.seconds:.1f}s)" for s in self.steps]
        text = (f"{self.started.isoformat(timespec='seconds')} nightly {self.session_date} exit {self.exit_code} "
                f"{(self.finished - self.started).total_seconds():.1f}s " + " ".join(parts))
        return text + (f" refused: {self.error}" if self.error else "")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["steps"] = [s.to_dict() for s in self.steps]
        d["seconds"] = round((self.finished - self.started).total_seconds(), 3)
        return d


def exit_code_of(steps: Sequence[StepResult]) -> int:
    """:data:`EXIT_OK` when no step that ran failed, :data:`EXIT_ALL_FAILED` when all that ran failed,
    else :data:`EXIT_SOME_FAILED`. Skipped steps do not count; no step run at all is :data:`EXIT_OK`."""
    ran = [s for s in steps if s.status != SKIPPED]
    failed = sum(s.status == FAILED for s in ran)
    if not failed:
        return EXIT_OK
    return EXIT_ALL_FAILED if failed == len(ran) else EXIT_SOME_FAILED


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, ResearchLibError | OSError):   # not a failure the library names: say where it was
        frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        if frame:
            text += f" (unexpected, at {frame[0].filename}:{frame[0].lineno})"
    return text


#: What a step's work returns: (status, detail, info, error).
Outcome = tuple[str, str, dict, str | None]


def _timed(name: str, symbol: str | None, work: Callable[[], Outcome]) -> StepResult:
    """Run ``work`` and time it; an exception it raises is a failed step with the error's text."""
    t0 = time.perf_counter()
    try:
        status, detail, info, error = work()
    except Exception as exc:  # a nightly records every failure and goes on with the independent steps
        status, detail, info, error = FAILED, "failed", {}, _error_text(exc)
    return StepResult(name, status, round(time.perf_counter() - t0, 3), detail, error, symbol, info)


def _skipped(name: str, symbol: str | None, why: str) -> StepResult:
    return StepResult(name, SKIPPED, 0.0, why, None, symbol)


# --------------------------------------------------------------------------------------------------------
# the steps


def _fetch(symbol: str, source: str, now: pd.Timestamp) -> Outcome:
    served = get_chain(symbol, source, save=True, now=now)
    snap = served.snapshot
    info = {"served_by": served.served_by, "source": snap.source, "date": snap.snapshot_date,
            "quote_time": snap.quote_time, "spot": snap.spot, "contracts": len(snap.contracts),
            "stale": served.stale, "modelled": served.modelled, "stored": served.served_by in DEFAULT_PROVIDERS}
    if snap.underlying.upper().lstrip("_") != symbol:
        return (FAILED, served.describe(), info,
                f"source {source!r} served a {snap.underlying} chain, not {symbol} (a chain file holds one "
                "underlying)")
    if source == "auto" and (served.stale or served.modelled):
        return FAILED, served.describe(), info, f"no live {symbol} chain today: auto served the {served.served_by} " \
                                                 "chain instead (see detail)"
    return OK, served.describe(), info, None


def _import(folder: Path) -> Outcome:
    report = ChainStore().import_paths([folder], progress=False, errors="skip")
    detail = report.summary().splitlines()[0] if report.summary() else f"imported {folder}"
    if report.failed:
        n, total = len(report.failed), len(report.files)
        return FAILED, detail, report.to_dict(), (
            f"{n} of {total} file(s) under {folder} could not be imported (the others were): "
            + "; ".join(f"{f.file}: {f.error}" for f in report.failed))
    return OK, detail, report.to_dict(), None


def _report_source(chain: StepResult | None, source: str) -> tuple[str, str]:
    """(source, date) of a symbol's report: the config's source when ``chains`` did not run, the store's
    newest after an import, else the chain its ``chains`` step got (stored chains are read from the store)."""
    if chain is None:
        return source, "latest"
    if chain.symbol is None:
        return "store", "latest"
    served_by, date = chain.info["served_by"], chain.info["date"].isoformat()
    if served_by in (*DEFAULT_PROVIDERS, "store"):
        return "store", date
    return (source if served_by == "file" else served_by), date


def _report(symbol: str, source: str, date: str, config: PaperConfig, reports_dir,
            progress: Callable[[str], None] | None) -> Outcome:
    summary = reports.run_reports([symbol], date=date, source=source, account=config.cash,
                                  reports_dir=reports_dir, progress=progress)
    if summary.exit_code == reports.EXIT_LOCKED:
        return FAILED, "not run", {}, f"the reports folder is locked by another run: {summary.error}"
    (result,) = summary.results
    info = {"status": result.status, "date": result.date, "html": result.html, "notebook": result.notebook,
            "source": source, "requested_date": date, "run_summary": summary.summary}
    error = None if result.ok else f"the {symbol} report FAILED: {result.error}"
    return (OK if result.ok else FAILED), reports.result_line(result), info, error


def _paper_mark(config: PaperConfig) -> Outcome:
    # start-up: the trader (ledger, broker, monitor) loads only when the step runs
    from research_lib.paper.trader import PaperTrader

    trader = PaperTrader(config)
    # the lock of ``research-lib paper mark``: one marker at a time per ledger (cron's marks and this one)
    with file_lock(trader.mark_lock_path, wait=False,
                   note=f"nightly paper mark of {trader.name} (pid {os.getpid()})"):
        report = trader.mark()
    info = report.to_dict() | {"account": trader.name, "reconciliation": trader.reconciliation.summary()}
    if report.problems:   # a position left unmarked cannot be closed by its rules: the run must say so
        return FAILED, report.summary(), info, f"{len(report.problems)} problem(s): " + "; ".join(report.problems)
    return OK, report.summary(), info, None


# --------------------------------------------------------------------------------------------------------
# the run


def _as_of(now) -> pd.Timestamp:
    ts = pd.Timestamp.now(tz=NY) if now is None else pd.Timestamp(now)
    return ts.tz_localize(NY) if ts.tzinfo is None else ts.tz_convert(NY)


def _check_arguments(symbols, steps, import_dir, config: PaperConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if symbols is None:
        syms = config.symbols
    else:
        raw = symbols.split(",") if isinstance(symbols, str) else list(symbols)
        syms = tuple(dict.fromkeys(str(s).strip().upper() for s in raw if str(s).strip()))
        if syms:
            try:  # the same rule as the settings' market.symbols
                KNOBS_BY_NAME["market.symbols"].check(list(syms))
            except PaperConfigError as exc:
                raise NightlyError(f"symbols {', '.join(syms)}: must be {exc.allowed}") from None
    if not syms:
        raise NightlyError("no symbol to run: give at least one (e.g. SPX) or set market.symbols in paper.toml")
    chosen = STEPS if steps is None else tuple(steps)
    unknown = [s for s in chosen if s not in STEPS]
    if unknown:
        raise NightlyError(f"unknown step {unknown[0]!r}: the steps are {', '.join(STEPS)}")
    if import_dir is not None and not Path(import_dir).is_dir():
        raise NightlyError(f"--import {import_dir}: not a folder of chain files")
    return syms, tuple(s for s in STEPS if s in chosen)


def run_nightly(symbols: str | Iterable[str] | None = None, *, config: PaperConfig | None = None,
                steps: Iterable[str] | None = None, now=None, out_dir: str | os.PathLike | None = None,
                import_dir: str | os.PathLike | None = None, reports_dir: str | os.PathLike | None = None,
                progress: Callable[[str], None] | None = None) -> NightlySummary:
    """Run the nightly steps (see the module docstring) under the nightly lock and record the run.

    Parameters
    ----------
    symbols : str or iterable of str, optional
        ``"SPX,SPY"`` or a list; default the config's ``market.symbols``. Each must be 1-6 capital letters
        (lower case is upper-cased; repeats are dropped).
    config : PaperConfig, optional
        Default :func:`research_lib.paper.config.load_config` (the data root's ``paper.toml``).
    steps : iterable of str, optional
        The steps to run (default all of :data:`STEPS`, always in their own order); the others are recorded
        as skipped.
    now : timestamp, optional
        The moment the run acts for (default now; naive times are New York time): the session-day check and
        the chain sources' ages.
    out_dir : path, optional
        Where the summary, the log and the lock go (default :func:`research_lib.settings.data_root`).
    import_dir : path, optional
        Import this folder's chain files instead of fetching (``--import DIR``).
    reports_dir : path, optional
        The reports folder (default ``$RESEARCH_LIB_REPORTS`` or ``reports/``).
    progress : callable, optional
        Receives one line per finished step (and the reports' progress lines).

    Returns
    -------
    NightlySummary
        ``exit_code`` 3 (nothing ran) when another nightly holds the lock.

    Raises
    ------
    NightlyError
        An unknown step, no symbol, a bad symbol or an ``import_dir`` that is not a folder; before anything ran.
    PaperConfigError
        The settings file is invalid (when ``config`` is not given).
    """
    config = load_config() if config is None else config
    syms, chosen = _check_arguments(symbols, steps, import_dir, config)
    out = Path(out_dir) if out_dir is not None else data_root()
    as_of = _as_of(now)
    session_date = as_of.date()
    started = dt.datetime.now(dt.UTC)
    say = progress or (lambda line: None)
    try:
        with file_lock(out / LOCK_FILE, wait=False, note=f"nightly pid {os.getpid()} since "
                                                           f"{started.isoformat(timespec='seconds')}"):
            results = _run_steps(syms, chosen, config, as_of, import_dir, reports_dir, say)
            summary = NightlySummary(started, dt.datetime.now(dt.UTC), session_date, syms, tuple(results),
                                     exit_code_of(results), summary_path=out / SUMMARY_FILE, log_path=out / LOG_FILE)
            atomic_write(out / SUMMARY_FILE, (to_json(summary.to_dict(), indent=1) + "\n").encode("utf-8"))
    except LockBusyError as exc:
        summary = NightlySummary(started, dt.datetime.now(dt.UTC), session_date, syms, (), EXIT_LOCKED,
                                 error=f"another nightly is running: {exc.holder}", log_path=out / LOG_FILE)
    with open(out / LOG_FILE, "a", encoding="utf-8") as log:
        log.write(summary.line() + "\n")
    return summary


def _run_steps(syms, chosen, config: PaperConfig, as_of: pd.Timestamp, import_dir, reports_dir,
               say: Callable[[str], None]) -> list[StepResult]:
    results: list[StepResult] = []

    def record(step: StepResult) -> StepResult:
        results.append(step)
        say(f"{step.label}: {step.status.upper()} {step.detail}" + (f" — {step.error}" if step.error else ""))
        return step

    session = calendar.is_session(as_of.date())
    no_session = f"{as_of.date()} is not a session day (NYSE closed): nothing new to fetch or report"
    chains: dict[str | None, StepResult] = {}
    if "chains" not in chosen:
        record(_skipped("chains", None, "not asked for (--skip chains)"))
    elif import_dir is not None:
        chains[None] = record(_timed("chains", None, lambda: _import(Path(import_dir))))
    else:
        for sym in syms:
            if not session:
                chains[sym] = record(_skipped("chains", sym, no_session))
                continue
            step = _timed("chains", sym, lambda sym=sym: _fetch(sym, config.source, as_of))
            chains[sym] = record(step)

    for sym in syms:
        chain = chains.get(sym, chains.get(None))
        if "reports" not in chosen:
            record(_skipped("reports", sym, "not asked for (--skip reports)"))
        elif chain is not None and chain.status == SKIPPED:
            record(_skipped("reports", sym, chain.detail))
        elif chain is not None and chain.symbol is not None and chain.status == FAILED:
            record(_skipped("reports", sym, "its chain step failed: the report would show old data"))
        else:
            source, date = _report_source(chain, config.source)
            record(_timed("reports", sym, lambda sym=sym, source=source, date=date:
                          _report(sym, source, date, config, reports_dir, say)))

    if "paper_mark" not in chosen:
        record(_skipped("paper_mark", None, "not asked for (--skip paper_mark)"))
    else:
        record(_timed("paper_mark", None, lambda: _paper_mark(config)))
    return results

