"""Processes that write a paper ledger, for tests/test_paper_crash.py (run as a script, not a test module).

``python tests/paper_driver.py crash LEDGER [LATENCY]``
    Prints ``ready`` once the ledger is open, then loops for ever over trades j = 0, 1, 2 ...: submit the open
    order ``open-j`` → the simulated broker journals its execution (after ``LATENCY`` seconds, default 0.01) →
    record the fill → mark the position → close it (``close-j-a``, same two phases) or, for every third trade,
    settle it. On start it resumes at the last trade it had begun (every step is idempotent, so repeating it
    is harmless) and retries a close the reconciliation rejected under the next attempt number ``a``.

``python tests/paper_driver.py worker LEDGER WORKER N GATE``
    Waits for the file GATE, then, as worker WORKER of several racing on the same ledger: opens and fills the
    shared orders ``s-k`` (every worker the same) and its own ``wW-k`` (k < N), closes them (``sc-k``, ``wcW-k``),
    and tries to close each of the shared positions ``t-k`` under its own id ``raceW-k`` (one worker per k can
    win). Prints a JSON summary: the race ids it won and the OrderErrors of the ones it lost.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import pandas as pd
from paper_orders import ACCOUNT, T0, close_request, execution, open_request

from research_lib.errors import OrderError
from research_lib.records.paper import Mark, OrderRequest, PaperLedger

CASH = 1_000_000.0


def trade_request(j: int) -> OrderRequest:
    """Trade j of the crash driver: 1-3 contracts, quotes moving with j (deterministic, so a retry is equal)."""
    at = T0 + pd.Timedelta(minutes=10 * j)
    step = 0.05 * (j % 7)
    return open_request(f"open-{j}", contracts=1 + j % 3, at=at, short_bid=12.0 + step, short_ask=12.4 + step)


def close_of(j: int, attempt: int, position_id: int, contracts: int) -> OrderRequest:
    at = T0 + pd.Timedelta(minutes=10 * j + 5)
    return close_request(f"close-{j}-{attempt}", position_id, contracts, at=at, short_bid=5.0 + 0.1 * (j % 5))


def two_phases(led: PaperLedger, req: OrderRequest, latency: float):
    """Submit, let the simulated broker journal it, record the fill; every step idempotent."""
    order = led.submit_order(req)
    if order.status == "submitted":
        time.sleep(latency)                                                 # the broker at work
        ex = led.journal_lookup(req.client_order_id) or execution(req)
        led.journal_execution(req.client_order_id, ex)
        time.sleep(latency)
        led.record_fill(req.client_order_id, ex)
    return led.order(req.client_order_id)


def crash(path: str, latency: float) -> None:
    led = PaperLedger(path)
    led.ensure_account(ACCOUNT, CASH)
    print("ready", flush=True)
    start = max(0, len(led.orders(ACCOUNT).query("kind == 'open'")) - 1)
    for j in itertools.count(start):
        order = two_phases(led, trade_request(j), latency)
        if order.status != "filled":                                        # rejected by a reconciliation
            continue
        pos = led.position(order.position_id)
        if pos.status != "open":
            continue
        at = T0 + pd.Timedelta(minutes=10 * j + 2)
        m = 1.5 + 0.01 * j
        led.record_marks(ACCOUNT, [Mark(pos.position_id, at, "driver", m, m + 0.4,
                                        (pos.entry_price - m) * 100 * pos.contracts, 0.0, 40, (7.0, 5.5))], at=at)
        if j % 3 == 2:
            led.settle_position(pos.position_id, settled_at=at + pd.Timedelta(minutes=1), leg_values=[3.0, 0.0],
                                note="driver settlement")
            continue
        for attempt in itertools.count():
            done = two_phases(led, close_of(j, attempt, pos.position_id, pos.contracts), latency)
            if done.status == "filled":
                break


def worker(path: str, wid: int, n: int, gate: Path) -> None:
    led = PaperLedger(path)
    led.ensure_account(ACCOUNT, CASH)
    (gate.parent / f"ready-{wid}").touch()
    deadline = time.time() + 60
    while not gate.exists() and time.time() < deadline:
        time.sleep(0.001)
    won, lost = [], []
    for k in range(n):
        for cid in (f"s-{k}", f"w{wid}-{k}", f"t-{k}"):
            req = open_request(cid, contracts=1 + k % 2)
            order = two_phases(led, req, 0.0)
            assert order.status == "filled", order
        for cid, close_id in ((f"s-{k}", f"sc-{k}"), (f"w{wid}-{k}", f"wc{wid}-{k}")):
            pos = led.position(led.order(cid).position_id)
            assert two_phases(led, close_request(close_id, pos.position_id, pos.contracts), 0.0).status == "filled"
        race = led.position(led.order(f"t-{k}").position_id)
        try:
            two_phases(led, close_request(f"race{wid}-{k}", race.position_id, race.contracts), 0.0)
            won.append(k)
        except OrderError as exc:
            lost.append(str(exc))
    print(json.dumps({"won": won, "lost": lost}))


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "crash":
        crash(args[0], float(args[1]) if len(args) > 1 else 0.01)
    elif mode == "worker":
        worker(args[0], int(args[1]), int(args[2]), Path(args[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}: crash or worker")
