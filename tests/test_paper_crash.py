"""The paper ledger under SIGKILL and under concurrent processes.

* kill -9 at random moments of a loop of submit → journal → fill → mark → close/settle (tests/paper_driver.py),
  20 rounds through tests/paper_crash.kill_loop: after each, reconcile + check() leave nothing in between, no
  duplicate position, and the cash equals the one computed by hand from the orders' quotes;
* kills at chosen moments (between the phases, inside a transaction): the reconciliation's two answers;
* three processes opening, filling and closing the same and different client ids at once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from paper_crash import ROOT, child_env, kill_loop, python_argv
from paper_driver import CASH, close_of, trade_request
from paper_orders import ACCOUNT, COMMISSION, execution, open_request

from research_lib.records.paper import DB_NAME, NOT_EXECUTED, PaperLedger

TESTS = Path(__file__).resolve().parent
DRIVER = str(TESTS / "paper_driver.py")


def _mid_price(req) -> float:
    return -sum(leg.quantity * leg.mid for leg in req.legs)


def test_kill_loop_leaves_a_consistent_ledger(tmp_path):
    path = tmp_path / DB_NAME
    rounds = kill_loop(lambda i: python_argv(DRIVER, "crash", str(path), "0.01"), path, n=20, seed=14,
                       delay=(0.0, 0.35), ready="ready")
    assert len(rounds) == 20 and all(r.killed for r in rounds)
    between = sum(len(r.report.applied) + len(r.report.rejected) for r in rounds)
    assert between >= 3, [r.report for r in rounds]           # the kills did land between the two phases
    assert any(r.report.applied for r in rounds) and any(r.report.rejected for r in rounds)
    for r in rounds:
        assert all(t.endswith(NOT_EXECUTED) for t in r.report.rejected)

    led = PaperLedger(path)
    orders = led.orders(ACCOUNT)
    opens = orders[orders["kind"] == "open"]
    filled = opens[opens["status"] == "filled"]
    assert len(filled) >= 3
    assert set(opens["status"]) <= {"filled", "rejected"} and led.pending_orders() == []
    # every trade j: at most one position, with the driver's contracts and mid entry price
    cash = CASH
    for cid, pid in zip(filled["client_order_id"], filled["position_id"], strict=True):
        j = int(cid.split("-")[1])
        req = trade_request(j)
        pos = led.position(int(pid))
        assert pos.contracts == req.contracts and pos.entry_price == pytest.approx(_mid_price(req), abs=1e-9)
        cash += _mid_price(req) * 100 * req.contracts - 2 * COMMISSION * req.contracts
        if pos.status == "closed":
            trade = led.closed_trade(pos.position_id)
            if trade.exit_kind == "settlement":                # legs worth 3.00 and 0: exit price 3.00
                assert j % 3 == 2 and trade.exit_price == pytest.approx(3.0)
                cash -= 3.0 * 100 * req.contracts
            else:
                closes = orders[(orders["kind"] == "close") & (orders["position_id"] == pos.position_id)]
                win = closes[closes["status"] == "filled"]["client_order_id"].tolist()
                assert len(win) == 1 and set(closes["status"]) <= {"filled", "rejected"}
                creq = close_of(j, int(win[0].split("-")[2]), pos.position_id, pos.contracts)
                assert trade.exit_price == pytest.approx(_mid_price(creq), abs=1e-9)
                cash -= _mid_price(creq) * 100 * req.contracts + 2 * COMMISSION * req.contracts
    assert len(led.open_positions(ACCOUNT)) <= 1                # only the trade in flight at the last kill
    assert led.account(ACCOUNT).cash == pytest.approx(cash, abs=1e-6)
    assert led.check() == []


CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path[:0] = [sys.argv[1], sys.argv[2]]
    from paper_orders import ACCOUNT, execution, open_request
    from research_lib.records.paper import PaperLedger
    import research_lib.records.paper.ledger as lm
    path, when = sys.argv[3], sys.argv[4]
    led = PaperLedger(path)
    led.ensure_account(ACCOUNT, 100000)
    req = open_request("o1")
    led.submit_order(req)
    if when == "after-submit":
        os.kill(os.getpid(), signal.SIGKILL)
    led.journal_execution("o1", execution(req))
    if when == "after-journal":
        os.kill(os.getpid(), signal.SIGKILL)
    def die(*args, **kwargs):              # inside record_fill's transaction: the position and fills are written
        assert led._thread_connection().in_transaction
        os.kill(os.getpid(), signal.SIGKILL)
    lm.PaperLedger._snapshot = die
    led.record_fill("o1", execution(req))
""")


@pytest.mark.parametrize("when, outcome", [("after-submit", "rejected"), ("after-journal", "filled"),
                                           ("inside-fill", "filled")])
def test_a_kill_at_each_moment_of_an_order(tmp_path, when, outcome):
    path = tmp_path / DB_NAME
    proc = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(TESTS), str(path), when],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    led = PaperLedger(path)
    assert [o.client_order_id for o in led.pending_orders()] == ["o1"]
    assert led.open_positions(ACCOUNT) == [] and led.fills(ACCOUNT).empty      # nothing half-written
    assert led.account(ACCOUNT).cash == 100_000 and led.check() == []
    report = led.reconcile(led.journal_lookup)
    assert led.order("o1").status == outcome and report.problems == ()
    if outcome == "filled":
        assert len(report.applied) == 1 and len(led.open_positions(ACCOUNT)) == 1
        assert led.account(ACCOUNT).cash == pytest.approx(100_000 + 437.4)
        req = open_request("o1")                                # the caller's retry is now a no-op
        assert led.record_fill("o1", execution(req)).position_id == led.open_positions(ACCOUNT)[0].position_id
    else:
        assert report.rejected == (f"o1: {NOT_EXECUTED}",) and led.open_positions(ACCOUNT) == []
    assert led.check() == [] and led.reconcile(led.journal_lookup).clean


def test_processes_racing_on_the_same_and_different_ids(tmp_path):
    path, gate, workers, n = tmp_path / DB_NAME, tmp_path / "go", 3, 8
    PaperLedger(path).ensure_account(ACCOUNT, CASH)
    procs = [subprocess.Popen([sys.executable, DRIVER, "worker", str(path), str(w), str(n), str(gate)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=child_env()) for w in range(workers)]
    deadline = time.time() + 60
    while len(list(tmp_path.glob("ready-*"))) < workers and time.time() < deadline:
        time.sleep(0.01)
    gate.touch()                                               # all start at once
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    winners = sorted(k for r in results for k in r["won"])
    assert winners == list(range(n))                           # each contested position closed exactly once
    for r in results:
        assert all("still waiting" in e or "already closed" in e for e in r["lost"]), r["lost"]
    led = PaperLedger(path)
    orders = led.orders(ACCOUNT)
    # s-k, t-k, sc-k once; w{w}-k, wc{w}-k per worker; one race close per k
    assert len(orders) == 3 * n + 2 * workers * n + n and orders["client_order_id"].is_unique
    assert (orders["status"] == "filled").all()
    positions = orders[orders["kind"] == "open"]["position_id"]
    assert len(positions) == 2 * n + workers * n and positions.is_unique
    assert led.open_positions(ACCOUNT) == [] and len(led.closed_trades(ACCOUNT)) == len(positions)
    # every position: 2.20 credit at mid, closed for 1.10 (close_request's quotes), 4 legs of commissions
    contracts = sum(1 + k % 2 for k in range(n)) * (2 + workers)
    assert led.account(ACCOUNT).cash == pytest.approx(CASH + contracts * (110.0 - 4 * COMMISSION), abs=1e-6)
    assert led.check() == []
