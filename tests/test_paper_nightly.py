"""The nightly pipeline (research_lib.paper.nightly, ``research-lib nightly``): real steps on a temporary data root,
offline (the synthetic chain file, the store, the modelled chain); a failing step does not stop the independent
steps after it; exit codes; the strict-JSON summary and the log line; the lock; the command line."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil

import pandas as pd
import pytest

from research_lib import cli
from research_lib.data.sources import read_chain
from research_lib.data.store import ChainStore
from research_lib.errors import NightlyError, PaperConfigError
from research_lib.formatting import to_json
from research_lib.fs import file_lock
from research_lib.paper import nightly
from research_lib.paper.config import PaperConfig, save_config
from research_lib.paper.nightly import (
    EXIT_ALL_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    FAILED,
    OK,
    SKIPPED,
    StepResult,
    exit_code_of,
    run_nightly,
)
from research_lib.reporting import runner as reports

#: The synthetic chain's day (tests/fixtures.py CHAIN_DATE), evening in New York; and a Saturday.
SESSION_EVENING = "2024-03-06 17:30"
SATURDAY = "2024-03-09 17:30"


@pytest.fixture
def root(tmp_path, monkeypatch):
    """No network; an empty data root (store, decision log, paper.toml) and reports folder in tmp."""
    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("RESEARCH_LIB_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def _by_label(summary) -> dict[str, StepResult]:
    return {s.label: s for s in summary.steps}


def _saved(summary) -> dict:
    return _strict((summary.summary_path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------
# a whole night: two symbols, one failing; the other's report and the paper mark still run


@pytest.mark.notebook
def test_a_night_with_one_symbol_failing(root, synthetic):
    path = synthetic.files["cboe_csv"]
    config = PaperConfig(symbols=("SPX", "SPY"), source=str(path))
    lines: list[str] = []
    summary = run_nightly(config=config, now=SESSION_EVENING, progress=lines.append)
    steps = _by_label(summary)
    assert [s.label for s in summary.steps] == ["chains:SPX", "chains:SPY", "reports:SPX", "reports:SPY",
                                                "paper_mark"]
    # chains: the SPX chain is the file's, read independently here
    spx = steps["chains:SPX"]
    snap = read_chain(path)
    assert spx.status == OK and spx.error is None
    assert spx.info["served_by"] == "file" and spx.info["date"] == snap.snapshot_date == dt.date(2024, 3, 6)
    assert spx.info["contracts"] == len(snap.contracts) and spx.info["spot"] == snap.spot
    # the SPX file cannot serve SPY: that symbol fails, by name
    spy = steps["chains:SPY"]
    assert spy.status == FAILED and "served a SPX chain, not SPY" in spy.error
    # reports: SPX from the same file and day; SPY skipped (its chain failed)
    rep = steps["reports:SPX"]
    assert rep.status == OK, rep.error
    assert rep.info["source"] == str(path) and rep.info["requested_date"] == "2024-03-06"
    assert rep.info["html"].exists() and rep.info["date"] == "2024-03-06"
    assert [(e["date"], e["symbol"], e["status"]) for e in reports.read_index(root / "reports")] == \
        [("2024-03-06", "SPX", "OK")]
    assert steps["reports:SPY"].status == SKIPPED and "chain step failed" in steps["reports:SPY"].detail
    # the paper mark ran after them all: an empty account has nothing to mark
    assert steps["paper_mark"].status == OK and "no open position" in steps["paper_mark"].detail
    assert summary.exit_code == EXIT_SOME_FAILED
    # every step said so as it finished
    assert [ln.split(" ")[:2] for ln in lines if ln.startswith(("chains", "reports:SPY", "paper_mark"))] == \
        [["chains:SPX:", "OK"], ["chains:SPY:", "FAILED"], ["reports:SPY:", "SKIPPED"],
         ["paper_mark:", steps["paper_mark"].status.upper()]]
    # the summary file is strict JSON of the same run; one log line
    saved = _saved(summary)
    assert saved == _strict(to_json(summary.to_dict()))
    assert [s["status"] for s in saved["steps"]] == [s.status for s in summary.steps]
    assert saved["exit_code"] == 1 and saved["session_date"] == "2024-03-06"
    log = (root / "data" / "nightly.log").read_text().splitlines()
    assert len(log) == 1 and "exit 1" in log[0] and "chains:SPY=failed" in log[0]


def test_paper_mark_runs_when_the_reports_fail(root):
    """The reports folder's lock is held: each report step fails at once (no kernel); the mark still runs."""
    (root / "reports").mkdir()
    with reports._run_lock(root / "reports"):
        summary = run_nightly(["SPX"], config=PaperConfig(source="modelled"), now=SESSION_EVENING,
                              steps=["reports", "paper_mark"])
    steps = _by_label(summary)
    assert steps["chains"].status == SKIPPED and "not asked for" in steps["chains"].detail
    assert steps["reports:SPX"].status == FAILED and "locked by another run" in steps["reports:SPX"].error
    assert steps["paper_mark"].status == OK
    assert summary.exit_code == EXIT_SOME_FAILED
    assert summary.exit_code == exit_code_of(summary.steps)


def test_paper_mark_marks_the_open_positions(root, synthetic):
    """A bull put opened at mid on the synthetic chain, marked by the nightly from the same chain: the mark is the
    entry (P&L 0), each leg at the file's mid; with the cron marker's lock held the step fails naming it."""
    from research_lib.paper.trader import PaperTrader

    path = synthetic.files["cboe_csv"]
    config = PaperConfig(source=str(path), strategy="bull_put", cash=1_000_000.0, width=25.0)
    opened = PaperTrader(config).open()
    assert opened.position is not None, opened.proposal.why_not
    pos = opened.position
    summary = run_nightly(["SPX"], config=config, now=SESSION_EVENING, steps=["paper_mark"])
    mark = _by_label(summary)["paper_mark"]
    assert mark.status == OK, mark.error
    assert mark.info["account"] == "paper" and mark.info["problems"] == [] and mark.info["closed"] == []
    (m,) = mark.info["marks"]
    assert m["position_id"] == pos.position_id and m["unrealized_pnl"] == pytest.approx(0.0, abs=1e-9)
    quotes = read_chain(path).contracts
    for leg in pos.legs:
        row = quotes[(quotes["root"] == leg.root) & (pd.to_datetime(quotes["expiration"]).dt.date == leg.expiration)
                     & (quotes["strike"] == leg.strike) & (quotes["right"] == leg.right)]
        assert len(row) == 1, leg
        assert (leg.entry_bid, leg.entry_ask) == (row["bid"].iloc[0], row["ask"].iloc[0])
    assert "marked 1 position" in mark.detail and summary.exit_code == EXIT_OK
    assert _saved(summary)["steps"][-1]["info"]["marks"][0]["position_id"] == pos.position_id
    ledger = PaperTrader(config).ledger
    with file_lock(ledger.path.with_suffix(".mark.lock"), wait=False, note="paper mark of paper"):
        summary = run_nightly(["SPX"], config=config, now=SESSION_EVENING, steps=["paper_mark"])
    mark = _by_label(summary)["paper_mark"]
    assert mark.status == FAILED and "LockBusyError" in mark.error and "paper mark of paper" in mark.error
    assert summary.exit_code == EXIT_ALL_FAILED


# --------------------------------------------------------------------------------------------------
# the chains step


def test_auto_that_serves_only_the_modelled_or_a_stale_chain_fails(root, synthetic):
    config = PaperConfig()  # source auto, offline
    s = run_nightly(["SPX"], config=config, now=SESSION_EVENING, steps=["chains"])
    step = _by_label(s)["chains:SPX"]
    assert step.status == FAILED and "no live SPX chain today" in step.error and step.info["modelled"] is True
    assert s.exit_code == EXIT_ALL_FAILED
    ChainStore().import_paths([synthetic.files["cboe_csv"]], progress=False)
    s = run_nightly(["SPX"], config=config, now=SESSION_EVENING, steps=["chains"])
    step = _by_label(s)["chains:SPX"]
    assert step.status == FAILED and step.info["served_by"] == "store" and step.info["stale"] is True
    # asked for explicitly, the store copy is what was wanted
    s = run_nightly(["SPX"], config=config.replace(source="store"), now=SESSION_EVENING, steps=["chains"])
    step = _by_label(s)["chains:SPX"]
    assert step.status == OK and step.info["served_by"] == "store" and s.exit_code == EXIT_OK
    assert nightly._report_source(step, "store") == ("store", "2024-03-06")


def test_no_source_for_a_symbol_is_every_step_failed(root):
    s = run_nightly("SPY", config=PaperConfig(), now=SESSION_EVENING, steps=["chains", "reports"])
    steps = _by_label(s)
    assert steps["chains:SPY"].status == FAILED and "NoChainAvailableError" in steps["chains:SPY"].error
    assert steps["reports:SPY"].status == SKIPPED
    assert s.exit_code == EXIT_ALL_FAILED


def test_outside_a_session_day_chains_and_reports_say_so(root, synthetic):
    s = run_nightly(["SPX", "SPY"], config=PaperConfig(source=str(synthetic.files["cboe_csv"])), now=SATURDAY,
                    steps=["chains", "reports"])
    assert {st.status for st in s.steps if st.name != "paper_mark"} == {SKIPPED}
    assert all("2024-03-09 is not a session day" in st.detail for st in s.steps if st.name != "paper_mark")
    assert s.exit_code == EXIT_OK and s.session_date == dt.date(2024, 3, 9)
    assert not (root / "reports").exists()   # no report ran


def test_import_a_folder(root, synthetic, tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    shutil.copy(synthetic.files["cboe_csv"], folder / "spx.csv")
    (folder / "broken.csv").write_text("not,a,chain\n1,2,3\n")
    s = run_nightly(["SPX"], config=PaperConfig(), import_dir=folder, now=SATURDAY, steps=["chains"])
    step = _by_label(s)["chains"]
    assert step.symbol is None and step.status == FAILED and "broken.csv" in step.error
    assert "1 of 2 file(s)" in step.error
    entry = ChainStore().latest("SPX")   # the good file went in all the same
    assert entry is not None and entry.snapshot_date == dt.date(2024, 3, 6)
    assert entry.rows == len(read_chain(synthetic.files["cboe_csv"]).contracts)
    (folder / "broken.csv").unlink()
    s = run_nightly(["SPX"], config=PaperConfig(), import_dir=folder, now=SATURDAY, steps=["chains"])
    step = _by_label(s)["chains"]
    assert step.status == OK and s.exit_code == EXIT_OK and "imported 0 snapshots" in step.detail
    assert nightly._report_source(step, "auto") == ("store", "latest")


# --------------------------------------------------------------------------------------------------
# exit codes, arguments, the lock


@pytest.mark.parametrize("statuses, code", [
    ((), EXIT_OK), ((SKIPPED,), EXIT_OK), ((OK, SKIPPED), EXIT_OK), ((OK, FAILED), EXIT_SOME_FAILED),
    ((FAILED, SKIPPED, FAILED), EXIT_ALL_FAILED), ((FAILED,), EXIT_ALL_FAILED), ((OK, OK, FAILED, SKIPPED), 1),
])
def test_exit_codes(statuses, code):
    assert exit_code_of([StepResult("chains", s, 0.0, "") for s in statuses]) == code


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": ["chains", "fetch"]}, "unknown step 'fetch': the steps are chains, reports, paper_mark"),
    ({"symbols": " , "}, "no symbol"),
    ({"symbols": ["SPX", "TOOLONG"]}, "1 to 6 capital letters"),
    ({"symbols": "SPX,S1"}, "symbols SPX, S1"),
    ({"import_dir": "/nonexistent/folder"}, "not a folder"),
])
def test_bad_arguments_are_refused_before_anything_runs(root, kwargs, match):
    with pytest.raises(NightlyError, match=match):
        run_nightly(config=PaperConfig(), now=SESSION_EVENING, **kwargs)
    assert not (root / "data").exists()


def test_symbols_are_normalised_and_default_to_the_config(root):
    s = run_nightly(" spx, SPX ,qqq", config=PaperConfig(), now=SATURDAY, steps=[])
    assert s.symbols == ("SPX", "QQQ")
    s = run_nightly(config=PaperConfig(symbols=("SPY", "IWM")), now=SATURDAY, steps=[])
    assert s.symbols == ("SPY", "IWM") and s.exit_code == EXIT_OK
    assert all(st.status == SKIPPED for st in s.steps)


def test_a_second_nightly_is_refused_while_one_runs(root):
    lock = root / "data" / "nightly.lock"
    with file_lock(lock, wait=False, note="nightly pid 4242 since 2024-03-06T22:30:00+00:00"):
        s = run_nightly(["SPX"], config=PaperConfig(), now=SATURDAY, steps=["chains"])
        assert s.exit_code == EXIT_LOCKED and s.steps == ()
        assert "pid 4242" in s.error and s.summary_path is None
        assert not (root / "data" / "last_nightly_summary.json").exists()
        out, err = io.StringIO(), io.StringIO()
        assert cli.main(["nightly", "--skip", "reports", "--skip", "paper_mark"], out=out, err=err) == EXIT_LOCKED
        assert "another nightly is running: nightly pid 4242" in err.getvalue()
    log = (root / "data" / "nightly.log").read_text().splitlines()
    assert len(log) == 2 and all("refused: another nightly is running" in ln for ln in log)
    s = run_nightly(["SPX"], config=PaperConfig(), now=SATURDAY, steps=["chains"])   # released: runs
    assert s.exit_code == EXIT_OK and _saved(s)["exit_code"] == 0


# --------------------------------------------------------------------------------------------------
# the command line


def test_cli_reads_the_settings_and_prints_strict_json(root, synthetic, monkeypatch):
    save_config(PaperConfig(symbols=("SPX",), source=str(synthetic.files["cboe_csv"])))
    monkeypatch.setattr(nightly, "_as_of", lambda now: nightly.pd.Timestamp(SESSION_EVENING, tz="America/New_York"))
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["nightly", "--skip", "reports", "--skip", "paper_mark", "--json"], out=out, err=err)
    assert code == EXIT_OK, err.getvalue()
    d = _strict(out.getvalue())
    assert [(s["name"], s["symbol"], s["status"]) for s in d["steps"]] == [
        ("chains", "SPX", "ok"), ("reports", "SPX", "skipped"), ("paper_mark", None, "skipped")]
    assert d["steps"][0]["info"]["date"] == "2024-03-06" and d["exit_code"] == 0
    assert _strict((root / "data" / "last_nightly_summary.json").read_text()) == d
    out, err = io.StringIO(), io.StringIO()   # without --json: the log line and where the summary is
    assert cli.main(["nightly", "--symbols", "spy", "--skip", "paper_mark"], out=out, err=err) == EXIT_ALL_FAILED
    assert "chains:SPY=failed" in out.getvalue() and "run summary:" in out.getvalue()
    assert "research-lib nightly: chains:SPY: FAILED" in err.getvalue()


def test_cli_usage_errors(root, tmp_path):
    err = io.StringIO()
    assert cli.main(["nightly", "--skip", "fetch"], out=io.StringIO(), err=err) == cli.EXIT_USAGE
    assert "invalid choice: 'fetch'" in err.getvalue()
    err = io.StringIO()
    assert cli.main(["nightly", "--import", str(tmp_path / "none")], out=io.StringIO(), err=err) == cli.EXIT_USAGE
    assert "not a folder" in err.getvalue()
    (root / "data").mkdir()
    (root / "data" / "paper.toml").write_text("[exits]\nprofit_target = 0\n")
    err = io.StringIO()
    assert cli.main(["nightly"], out=io.StringIO(), err=err) == cli.EXIT_USAGE
    assert "`exits.profit_target` = 0: must be in (0, 10] or false" in err.getvalue()
    with pytest.raises(PaperConfigError):
        run_nightly()
