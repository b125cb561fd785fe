"""Crash harness for the paper ledger (an importable helper, not a test module).

:func:`kill_loop` starts a process that writes to a ledger, kills it with SIGKILL at a random moment (the moments
drawn from a seeded generator, so a run is reproducible up to the machine's timing), then opens the ledger,
reconciles it against the broker's record (``lookup``, default the simulated broker's journal in the ledger) and
asserts that nothing is left in between: :meth:`PaperLedger.check` is empty, no order is still ``submitted`` and no
order opened two positions. It returns what each round found so a test can also check that the kills landed
between an order's two phases (``applied``/``rejected`` in the reports).

Used with ``tests/paper_driver.py crash`` (a loop of submit → journal → fill → mark → close/settle on synthetic
legs) and, by the command line's tests, with ``research-lib paper open`` / ``paper mark``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from research_lib.records.paper import Execution, PaperLedger, ReconcileReport

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class KillRound:
    """One round of :func:`kill_loop`: ``delay`` seconds after start (or after the ready line) the process was
    killed (``killed``) or had already ended with ``returncode`` 0; ``report`` is what the reconciliation did."""

    index: int
    delay: float
    killed: bool
    returncode: int
    report: ReconcileReport


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the checkout first on ``PYTHONPATH`` (and ``extra``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra or {})
    return env


def _wait_ready(proc: subprocess.Popen, ready: str, timeout: float) -> threading.Thread:
    """Block until the process prints a line containing ``ready``; returns the thread that keeps draining its
    output until it ends."""
    seen = threading.Event()

    def drain() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            if ready in line:
                seen.set()
        seen.set()  # the output ended (the process died): stop waiting

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    if not seen.wait(timeout):
        proc.kill()
        raise AssertionError(f"{proc.args!r} did not print {ready!r} within {timeout:g} s")
    return reader


def kill_loop(argv_factory: Callable[[int], Sequence[str]], ledger_path: str | os.PathLike, n: int = 20,
              seed: int = 0, *, delay: tuple[float, float] = (0.0, 0.4), ready: str | None = None,
              lookup: Callable[[PaperLedger], Callable[[str], Execution | None]] | None = None,
              env: dict[str, str] | None = None, timeout: float = 60.0) -> list[KillRound]:
    """Start ``argv_factory(i)`` ``n`` times, SIGKILL each at a random moment, and check the ledger after each.

    Parameters
    ----------
    argv_factory : callable
        ``i -> argv`` of round ``i`` (0-based). The process runs with ``PYTHONPATH`` starting at the checkout.
    ledger_path : path-like
        The ledger the process writes.
    n : int
        Rounds (kills attempted).
    seed : int
        Seeds the delays (uniform in ``delay``).
    delay : (float, float)
        Seconds between start (or the ready line) and the kill.
    ready : str, optional
        A text the process prints (flushed) once it has started working: the delay counts from that line, so
        the kills land in the work and not in Python's start-up.
    lookup : callable, optional
        ``ledger -> lookup`` for :meth:`PaperLedger.reconcile`; default ``ledger.journal_lookup``.
    env : dict, optional
        Extra environment variables.
    timeout : float
        Seconds a round may take before the loop gives up.

    Returns
    -------
    list of KillRound

    Raises
    ------
    AssertionError
        A process failed by itself (non-zero exit without the kill; its stderr is in the message), or the
        ledger was left inconsistent after a round (the problems, the pending orders, the duplicates).
    """
    rng = random.Random(seed)
    rounds = []
    for i in range(n):
        wait = rng.uniform(*delay)
        with tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(list(argv_factory(i)), stdout=subprocess.PIPE if ready else subprocess.DEVNULL,
                                    stderr=err, env=child_env(env), text=True)
            started = time.monotonic()
            reader = None if ready is None else _wait_ready(proc, ready, timeout)
            killed = False
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
            code = proc.wait(timeout=max(1.0, timeout - (time.monotonic() - started)))
            if reader is not None:
                reader.join(timeout=10)
                proc.stdout.close()  # type: ignore[union-attr]
            if code != 0 and not (killed and code == -signal.SIGKILL):
                err.seek(0)
                raise AssertionError(f"round {i}: {proc.args!r} exited with {code}:\n{err.read()[-3000:]}")
            if code == -signal.SIGKILL and not killed:  # pragma: no cover - killed by someone else
                raise AssertionError(f"round {i}: the process was killed by something else")
        with PaperLedger(ledger_path) as led:
            report = led.reconcile((lookup or (lambda x: x.journal_lookup))(led))
            assert report.problems == (), f"round {i}: reconcile found {report.problems}"
            problems = led.check()
            assert problems == [], f"round {i}: the ledger is inconsistent: {problems}"
            pending = led.pending_orders()
            assert pending == [], f"round {i}: orders left submitted: {[o.client_order_id for o in pending]}"
        with contextlib.closing(sqlite3.connect(ledger_path)) as conn:  # the raw tables, independent of check()
            dup = conn.execute("SELECT open_order_id, count(*) FROM positions GROUP BY open_order_id "
                               "HAVING count(*) > 1").fetchall()
            assert not dup, f"round {i}: orders with several positions: {[tuple(r) for r in dup]}"
            n_pos = conn.execute("SELECT count(*) FROM positions").fetchone()[0]
            n_open = conn.execute("SELECT count(*) FROM orders WHERE kind = 'open' AND status = 'filled'").fetchone()[0]
            assert n_pos == n_open, f"round {i}: {n_pos} positions for {n_open} filled open orders"
        rounds.append(KillRound(i, wait, killed, code, report))
    return rounds


def python_argv(*args: str) -> list[str]:
    """``[python, *args]`` with this interpreter."""
    return [sys.executable, *args]
