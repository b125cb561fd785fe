"""``research-lib paper ...``: every subcommand on the synthetic archive (strict JSON, exit codes, the calendar, the
lock), and kill -9 at random moments of ``paper open`` and ``paper mark`` leaving a consistent ledger."""

from __future__ import annotations

import io
import json
import sqlite3
import sys

import pytest

from research_lib import cli
from research_lib.errors import LockBusyError
from research_lib.paper.config import PaperConfig, save_config
from research_lib.records.paper.ledger import PaperLedger


def _strict(text: str):
    def bad(token):
        raise ValueError(f"non-strict JSON token {token}")
    return json.loads(text, parse_constant=bad)


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def data_root(tmp_path, monkeypatch, synthetic):
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path))
    save_config(PaperConfig(source=str(synthetic.files["eod_archive"]), cash=1_000_000.0, strategy="bull_put", dte=7,
                            dte_tolerance=5, width=25.0, exit_dte=1, profit_target=None, stop_loss=None),
                tmp_path / "paper.toml")
    return tmp_path


def test_open_mark_status_close_history_reset_json(data_root):
    code, out, err = run("paper", "open", "--date", "2024-03-01", "--json")
    assert code == 0, err
    opened = _strict(out)
    assert opened["position"]["strategy"] == "bull_put" and opened["proposal"]["tradeable"]
    pid = opened["position"]["id"]
    code, out, _ = run("paper", "open", "--date", "2024-03-01", "--json")       # the same order again: recorded once
    assert code == 0 and _strict(out)["position"]["id"] == pid
    code, out, _ = run("paper", "mark", "--date", "2024-03-04", "--json")
    assert code == 0
    mark = _strict(out)
    assert [m["position_id"] for m in mark["marks"]] == [pid]
    code, out, _ = run("paper", "status", "--json")
    status = _strict(out)
    (p,) = status["positions"]
    assert p["id"] == pid and p["mark"] == pytest.approx(mark["marks"][0]["mark"])
    assert p["unrealized_pnl"] == pytest.approx(sum(leg["quantity"] * (leg["mark_mid"] - leg["entry_mid"])
                                                    for leg in p["legs"]) * 100 * p["contracts"])
    assert [leg["quantity"] for leg in p["legs"]] == [-1, 1]
    code, out, _ = run("paper", "status")
    assert code == 0 and "paper account paper" in out and "bull_put" in out
    code, out, _ = run("paper", "close", str(pid), "--date", "2024-03-05", "--json")
    assert code == 0 and _strict(out)["exit_reason"] == "manual"
    code, out, _ = run("paper", "history", "--json")
    hist = _strict(out)
    assert len(hist["closed_trades"]) == 1 and hist["statistics"][0]["n_trades"] == 1 and hist["equity"]
    code, out, err = run("paper", "close", str(pid), "--date", "2024-03-05")
    assert code == 2 and "no open position" in err
    code, out, err = run("paper", "reset")
    assert code == 2 and "--yes" in err
    code, out, _ = run("paper", "reset", "--yes", "--cash", "250000", "--json")
    assert code == 0 and _strict(out)["cash"] == 250000.0
    code, out, _ = run("paper", "status", "--json")
    assert _strict(out)["positions"] == [] and _strict(out)["cash"] == 250000.0
    assert (data_root / "paper.log").read_text().count("paper mark") >= 1


def test_fixed_strategy_options_and_bad_values(data_root):
    code, out, err = run("paper", "open", "--date", "2024-03-01", "--strategy", "bear_call", "--short-delta", "0.25",
                         "--width", "20", "--json")
    assert code == 0, err
    res = _strict(out)
    assert res["proposal"]["strategy"] == "bear_call"
    assert {leg["right"] for leg in res["proposal"]["legs"]} == {"C"}
    code, _, err = run("paper", "open", "--strategy", "straddle")
    assert code == 2
    code, _, err = run("paper", "open", "--long-delta", "0.1", "--width", "5")
    assert code == 2 and "not allowed with" in err


def test_a_bad_config_names_the_key_and_range(data_root):
    (data_root / "paper.toml").write_text("[exits]\nprofit_target = 0\n")
    code, _, err = run("paper", "status")
    assert code == 2 and "exits.profit_target" in err


def test_mark_outside_the_session_says_so_and_exits_0(data_root, monkeypatch):
    monkeypatch.setattr("research_lib.calendar.market_state", lambda *a, **k: (False, "2026-07-04 is not a trading day"))
    code, out, _ = run("paper", "mark")
    assert code == 0 and "market is closed" in out and "2026-07-04" in out
    code, out, _ = run("paper", "mark", "--json")
    assert code == 0 and _strict(out)["skipped"].startswith("the market is closed")
    assert "skipped" in (data_root / "paper.log").read_text()


def test_a_second_mark_while_one_runs_is_refused_by_the_lock(data_root):
    from research_lib.fs import file_lock

    assert run("paper", "open", "--date", "2024-03-01")[0] == 0
    with file_lock(data_root / "paper.mark.lock", wait=False, note="a test holding the lock"):
        code, _, err = run("paper", "mark", "--date", "2024-03-04")
    assert code == 6 and "a test holding the lock" in err
    assert run("paper", "mark", "--date", "2024-03-04")[0] == 0


def test_a_ledger_that_is_not_a_ledger_exits_8(data_root):
    (data_root / "paper.sqlite").write_bytes(b"not a database at all" * 100)
    code, _, err = run("paper", "status")
    assert code == 8 and "paper.sqlite" in err


# ------------------------------------------------------------------------------------------------
# kill -9 at random moments of the real commands
def _consistent(path):
    ledger = PaperLedger(path)
    ledger.reconcile(ledger.journal_lookup)
    assert ledger.check() == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return ledger


def test_kill_9_during_paper_open_and_paper_mark_leaves_a_consistent_ledger(data_root):
    import os
    import subprocess
    import time

    from paper_crash import kill_loop

    base = [sys.executable, "-m", "research_lib", "paper"]
    days = ["2024-03-01", "2024-03-04", "2024-03-05"]
    env = {"RESEARCH_LIB_DATA": str(data_root)}
    # one whole run first (the account and a position exist; its time scales the kills to this machine's speed)
    t0 = time.monotonic()
    subprocess.run([*base, "open", "--date", days[0]], env={**os.environ, **env}, check=True, capture_output=True)
    took = time.monotonic() - t0
    delay = (0.2 * took, 1.1 * took)  # kills in start-up, the chain read, the decision and the writes
    # opens on three days (one position each at most: the same day's order is idempotent), then marks
    rounds = kill_loop(lambda i: [*base, "open", "--date", days[i % 3]], data_root / "paper.sqlite", n=12, seed=1,
                       delay=delay, env=env, timeout=120)
    rounds += kill_loop(lambda i: [*base, "mark", "--date", days[1 + i % 2]], data_root / "paper.sqlite", n=10,
                        seed=2, delay=delay, env=env, timeout=120)
    assert len(rounds) >= 20 and sum(r.killed for r in rounds) >= 5
    ledger = _consistent(data_root / "paper.sqlite")
    positions = ledger.open_positions("paper")
    assert 1 <= len(positions) <= 3 and len({p.open_order_id for p in positions}) == len(positions)


def test_concurrent_paper_marks_never_duplicate(data_root):
    import subprocess

    assert run("paper", "open", "--date", "2024-03-01")[0] == 0
    env = {**__import__("os").environ, "RESEARCH_LIB_DATA": str(data_root)}
    procs = [subprocess.Popen([sys.executable, "-m", "research_lib", "paper", "mark", "--date", "2024-03-04"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    codes = [p.wait(timeout=120) for p in procs]
    assert set(codes) <= {0, 6} and 0 in codes                   # one marks; one held off by the lock is refused
    ledger = _consistent(data_root / "paper.sqlite")
    marks = ledger.marks("paper")
    assert len(marks) == codes.count(0)


def test_lock_busy_error_is_exit_6():
    assert cli.exit_code_for(LockBusyError("busy", path="/tmp/x", holder="pid 1")) == 6
