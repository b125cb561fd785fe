"""Notebooks run end to end through papermill; the tests read back what they recorded and compare it with
the library called directly."""

from __future__ import annotations

import ast
import datetime as dt
import json
from pathlib import Path

import pytest
from conftest import EOD_ARCHIVE, QUOTEDATA, ROOT, SHARED_DATA, shared_file

from research_lib.core import gex
from research_lib.data.market import snapshot_config
from research_lib.data.sources import read_chain

papermill = pytest.importorskip("papermill")
NOTEBOOKS = ROOT / "notebooks"


def _execute(name, tmp_path, **parameters):
    out = tmp_path / f"out_{name}"
    papermill.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=parameters, cwd=str(NOTEBOOKS),
                               kernel_name="python3", progress_bar=False, execution_timeout=600)
    return json.loads(out.read_text())


def _recorded_levels(nb) -> dict:
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "application/json" in data:
                return data["application/json"]
    raise AssertionError("the notebook recorded no key levels")


def _images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))


REAL_CSV = QUOTEDATA / "spx_2024-01-07.csv"
#: the synthetic files (tests/fixtures.py) always, the real ones when present
CHAINS = ["synthetic", *(["real"] if REAL_CSV.exists() else [])]
ARCHIVES = ["synthetic", *(["real"] if EOD_ARCHIVE.exists() else [])]


@pytest.mark.notebook
@pytest.mark.parametrize("chain", CHAINS)
@pytest.mark.parametrize("convention", ["model", "perfiliev"])
def test_explore_gex_on_a_real_chain(tmp_path, convention, chain, request):
    path = shared_file(REAL_CSV) if chain == "real" else request.getfixturevalue("synthetic").files["cboe_csv"]
    nb = _execute("explore_gex.ipynb", tmp_path, source=str(path), convention=convention, rate=0.05)
    recorded = _recorded_levels(nb)
    snap = read_chain(path)
    expected = gex.analyze(snap, snapshot_config(snap, convention, rate=0.05)).levels.to_dict()
    for key in ("net_gex", "call_gex", "put_gex", "zero_gamma", "call_wall", "put_wall", "net_vanna"):
        assert recorded[key] == pytest.approx(expected[key], rel=1e-12), key
    assert recorded["max_pain"] == expected["max_pain"]
    assert recorded["convention"] == convention
    assert _images(nb) == 3  # by strike, profile, heatmap


@pytest.mark.notebook
@pytest.mark.parametrize("archive", ARCHIVES)
def test_explore_gex_on_an_archive_day(tmp_path, archive, request):
    if archive == "real":
        path, date = shared_file(EOD_ARCHIVE), "2026-07-15"
    else:
        path, date = request.getfixturevalue("synthetic").files["eod_archive"], "2024-03-06"  # the full chain
    nb = _execute("explore_gex.ipynb", tmp_path, source=str(path), date=date, max_dte=30)
    recorded = _recorded_levels(nb)
    day = read_chain(path, date=date)
    expected = gex.analyze(day, snapshot_config(day, "model", max_dte=30)).levels  # the date's rates
    assert recorded["date"] == date
    assert recorded["net_gex"] == pytest.approx(expected.net_gex, rel=1e-12)
    assert recorded["n_filtered"] == expected.n_filtered > 0


@pytest.mark.notebook
def test_explore_gex_fails_loudly_on_a_bad_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("not,a,chain\n")
    with pytest.raises(papermill.PapermillExecutionError, match="UnknownFormatError"):
        _execute("explore_gex.ipynb", tmp_path, source=str(bad))


@pytest.mark.notebook
def test_explore_gex_offline_default_is_labelled_modelled(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "store"))
    nb = _execute("explore_gex.ipynb", tmp_path, source="auto")
    recorded = _recorded_levels(nb)
    assert recorded["modelled"] is True and recorded["source"] == "modelled:SPX"
    text = "".join("".join(o["text"]) if isinstance(o.get("text"), list) else o.get("text", "")
                   for c in nb["cells"] for o in c.get("outputs", []))
    assert "MODELLED DATA" in text


@pytest.mark.notebook
@pytest.mark.parametrize("where", ["synthetic chain", *(["real chain"] if REAL_CSV.exists() else []),
                                   "modelled default"])
def test_decision_notebook_matches_the_library(tmp_path, monkeypatch, where, request):
    from research_lib.pipeline.decide import decide

    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "store"))
    source = {"real chain": lambda: str(shared_file(REAL_CSV)), "modelled default": lambda: "auto",
              "synthetic chain": lambda: str(request.getfixturevalue("synthetic").files["cboe_csv"])}[where]()
    nb = _execute("decision.ipynb", tmp_path, source=source, account=250000.0)
    recorded = _recorded_levels(nb)  # the first JSON output: the decision report
    assert recorded["modelled"] is (where == "modelled default")
    expected = decide("SPX", "modelled" if source == "auto" else source, date=recorded["levels"]["date"],
                      account=250000.0, record=False)
    assert recorded["regime"]["action"] == str(expected.regime.action)
    assert recorded["regime"]["confidence"] == expected.regime.confidence
    assert recorded["decision"]["what"] == expected.decision.what
    assert recorded["levels"]["net_gex"] == pytest.approx(expected.analysis.levels.net_gex, rel=1e-12)
    assert recorded["decision"]["id"] is None  # record=False: nothing written
    stderr = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", [])
                     if o.get("name") == "stderr")
    assert "not JSON compliant" not in stderr  # the record is strict JSON (no NaN)


@pytest.mark.notebook
def test_gex_validation_notebook_matches_the_library(tmp_path, gex_validation_real):
    """Real data only (the notebook validates the regime series on the two real archives); skips without it."""
    nb = _execute("gex_validation.ipynb", tmp_path, data_dir=str(SHARED_DATA))
    recorded = _recorded_levels(nb)  # the notebook's only JSON output: the validation record
    expected = json.loads(json.dumps(gex_validation_real.to_dict(), allow_nan=False))
    assert recorded["chosen"] == expected["chosen"] == "regime"
    assert recorded["points"] == expected["points"]
    got = {(r["archive"], r["variant"]): r for r in recorded["table"]}
    assert len(got) == len(expected["table"])
    for row in expected["table"]:
        mine = got[(row["archive"], row["variant"])]
        for key in ("correlation", "sign_agreement", "noise", "rv1_separation", "rv5_separation", "goals_met"):
            assert mine[key] == (None if row[key] is None else pytest.approx(row[key], rel=1e-9)), key
    assert recorded["noise_shares"]["2026"]["cause"]["spot"]["share"] == pytest.approx(
        expected["noise_shares"]["2026"]["cause"]["spot"]["share"], rel=1e-9)
    assert _images(nb) == 5  # two series charts, two attribution charts, the RV separation


def _outputs_text(nb) -> str:
    return "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/markdown", ""))
                     for c in nb["cells"] for o in c.get("outputs", []))


def _recorded_history(nb) -> dict:
    for cell in nb["cells"]:
        if "record" in cell.get("metadata", {}).get("tags", []):
            for output in cell.get("outputs", []):
                if "application/json" in output.get("data", {}):
                    return output["data"]["application/json"]
    raise AssertionError("the history notebook recorded nothing")


@pytest.mark.notebook
def test_history_notebook_matches_the_library_on_the_synthetic_history(tmp_path):
    """The synthetic market history (a fresh clone's case); no real chains: the validation section says so."""
    from fixtures import write_market_history

    from research_lib.backtest.history import history_inputs, run_history_backtest
    from research_lib.backtest.params import BacktestParams
    from research_lib.backtest.stats import summary_record

    market = write_market_history(tmp_path / "market")
    window = dict(start="2023-09-01", end="2023-12-29")
    nb = _execute("history.ipynb", tmp_path, **window, market_dir=str(market), data_dir=str(tmp_path / "absent"),
                  strategy="bull_put", contracts=1, entry="daily", max_open=3, account=1_000_000.0)
    recorded = _recorded_history(nb)
    params = BacktestParams(strategy="bull_put", contracts=1, entry="daily", max_open=3, account=1_000_000.0,
                            **window)
    result = run_history_backtest(params, history_inputs(window["start"], window["end"], market_dir=market))
    expected = json.loads(json.dumps(summary_record(result), allow_nan=False))
    assert recorded["prices"] == "MODELLED PRICES" and recorded["source"] == "modelled-history:SPX"
    assert recorded["trades"] == expected["trades"] == len(result.trades) > 0
    for key in ("net_pnl", "total_return", "sharpe", "max_drawdown", "win_rate"):
        assert recorded[key] == (None if expected[key] is None else pytest.approx(expected[key], rel=1e-12)), key
    assert recorded["stats"] == expected["stats"]
    assert recorded["validation"] is None
    text = _outputs_text(nb)
    assert "MODELLED PRICES" in text and "The real chains are absent" in text
    assert _images(nb) == 2  # equity and drawdown, P&L by regime


@pytest.mark.notebook
def test_history_notebook_compares_with_the_real_chains(tmp_path):
    """Real data only: the validation section's backtest comparison equals compare_backtests run here."""
    from research_lib.backtest import validation

    archive = shared_file(EOD_ARCHIVE)
    nb = _execute("history.ipynb", tmp_path, data_dir=str(SHARED_DATA))
    recorded = _recorded_history(nb)["validation"]
    expected = json.loads(json.dumps(validation.compare_backtests(archive).record(), allow_nan=False))
    assert recorded["comparison"]["table"] == expected["table"]
    assert recorded["comparison"]["sessions"] == expected["sessions"]
    assert recorded["comparison"]["entries"] == expected["entries"]
    summary = {(r["by"], r["group"]): r for r in recorded["summary"]}
    assert set(summary) >= {("all", "all"), ("source", "spx_eod_archive"), ("strategy", "iron_condor")}
    assert summary[("all", "all")]["n"] == sum(r["n"] for k, r in summary.items() if k[0] == "source")
    assert _images(nb) == 3  # equity and drawdown, P&L by regime, real vs modelled equity


def _marked_notebook(fn: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Attribute) and d.attr == "notebook" for d in fn.decorator_list)


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _notebooks_executed(fn: ast.FunctionDef, helpers: dict[str, ast.FunctionDef],
                        seen: frozenset[str] = frozenset()) -> set[str]:
    """Names of the notebooks in notebooks/ that the test function ``fn`` runs through papermill.

    Recognised: ``_execute("name.ipynb", ...)`` (this file), ``papermill.execute_notebook(...)`` with the
    name in its first argument, ``reports.run_reports``/``run_daily`` without ``notebook=`` and the command line
    ``report daily`` (both run :data:`research_lib.reports.DAILY_NOTEBOOK`), directly or through a
    function of the same module (``helpers``) that the test calls.
    """
    from research_lib.reporting import runner as reports

    found: set[str] = set()
    for node in ast.walk(fn):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if isinstance(node.func, ast.Name) and name in helpers and name not in seen and name != "_execute":
            found |= _notebooks_executed(helpers[name], helpers, seen | {fn.name})
        if name in ("_execute", "execute_notebook") and node.args:
            found.update(Path(v).name for v in _strings(node.args[0]) if v.endswith(".ipynb"))
        elif name in ("run_reports", "run_daily") and not any(k.arg == "notebook" for k in node.keywords):
            found.add(reports.DAILY_NOTEBOOK.name)
        elif name == "run_backtest_report" and not any(k.arg == "notebook" for k in node.keywords):
            found.add(reports.BACKTEST_NOTEBOOK.name)
        elif name == "run_sweep_report" and not any(k.arg == "notebook" for k in node.keywords):
            found.add(reports.SWEEP_NOTEBOOK.name)
        else:
            words = [w for a in node.args for w in _strings(a)]
            pairs = list(zip(words, words[1:], strict=False))
            if ("report", "daily") in pairs:
                found.add(reports.DAILY_NOTEBOOK.name)
            if ("report", "backtest") in pairs:
                found.add(reports.BACKTEST_NOTEBOOK.name)
            if ("report", "sweep") in pairs:
                found.add(reports.SWEEP_NOTEBOOK.name)
    return found


def test_every_notebook_is_executed_by_the_tests():
    """Each notebook in notebooks/ (the folder decides, not a list typed here) is run end to end by at
    least one test marked ``notebook``: a new notebook needs such a test before it lands."""
    from research_lib.reporting import runner as reports

    executed: dict[str, list[str]] = {}
    for module in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(module.read_text(), filename=str(module))
        functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
        for fn in functions.values():
            if fn.name.startswith("test_") and _marked_notebook(fn):
                for name in _notebooks_executed(fn, functions):
                    executed.setdefault(name, []).append(f"{module.name}::{fn.name}")
    notebooks = {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    assert notebooks, f"no notebook found in {NOTEBOOKS}"
    assert reports.DAILY_NOTEBOOK.parent == NOTEBOOKS
    untested = sorted(notebooks - set(executed))
    assert not untested, f"notebooks no test executes: {untested}"
    missing = sorted(set(executed) - notebooks)
    assert not missing, f"tests execute notebooks that are not in {NOTEBOOKS}: {missing} ({executed})"


@pytest.mark.notebook
def test_paper_trading_notebook_renders_the_ledger(tmp_path, monkeypatch):
    """A papermill run (interactive=False) on a data root holding one position opened and marked by the library:
    the static tables show that position and the account's figures, the equity chart is drawn."""
    import datetime as dt

    from fixtures import fixture_chain, write_eod_archive

    from research_lib.formatting import fmt_money
    from research_lib.paper.config import PaperConfig, save_config
    from research_lib.paper.trader import PaperTrader
    from research_lib.records.decisions import DecisionLog
    from research_lib.records.paper.ledger import PaperLedger

    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    days = {d: (d, "OK") for d in (dt.date(2024, 3, 5), dt.date(2024, 3, 6))}
    chain = write_eod_archive(tmp_path / "spx_eod_two_days.parquet", {d: fixture_chain(d) for d in days}, days=days)
    root = tmp_path / "data"
    config = PaperConfig(source=str(chain), strategy="bull_put", contracts=1, width=25.0)
    trader = PaperTrader(config, ledger=PaperLedger(root / "paper.sqlite"), log=DecisionLog(root / "decisions.sqlite"))
    position = trader.place(trader.propose(date="2024-03-05"))
    trader.mark(date="2024-03-06")
    summary = trader.summary()
    save_config(config, root / "paper.toml")
    nb = _execute("paper_trading.ipynb", tmp_path, data_dir=str(root), date="2024-03-06", interactive=False)
    html = "".join("".join(o.get("data", {}).get("text/html", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "<h3>Open positions</h3>" in html and "bull_put" in html
    assert f"<td>{position.position_id}</td>" in html
    assert fmt_money(summary.equity, symbol="$", small_decimals=2) in html
    assert "application/vnd.jupyter.widget-view+json" not in str(nb)  # not interactive: no widget shown
    assert _images(nb) == 1  # the equity chart


SPY_1MIN = SHARED_DATA / "market" / "intraday" / "spy_1min_2025-09-15_2026-03-19.csv.gz"


@pytest.mark.notebook
@pytest.mark.parametrize("where", ["synthetic", *(["real"] if SPY_1MIN.exists() else [])])
def test_volume_profile_notebook_matches_the_library(tmp_path, where):
    """The session's profile, state and flow the notebook recorded equal the library's on the same bars; the
    profile chart and the order-flow chart are drawn; with tick trades the flow is the trades' own."""
    from intraday_fixtures import NORMAL_DAY, bars, write_bars, write_tick_folder

    from research_lib.core import order_flow, volume_profile as vp
    from research_lib.core.market_state import classify_session
    from research_lib.data.market.intraday import read_bars

    if where == "real":
        path, params = SPY_1MIN, {"date": "2026-03-18"}
    else:
        path = write_bars(tmp_path / "spy_1min_synthetic.csv", bars(days=(dt.date(2025, 11, 25), NORMAL_DAY)))
        write_tick_folder(tmp_path / "ticks", days=(NORMAL_DAY,))
        params = {"date": NORMAL_DAY.isoformat(), "trades_path": str(tmp_path / "ticks" / "tick")}
    nb = _execute("volume_profile.ipynb", tmp_path, bars_path=str(path), **params)
    rec = _recorded_levels(nb)
    day = dt.date.fromisoformat(rec["session"])
    b = read_bars(path)
    days = sorted(set(b["session"]))
    today, prior = b[b["session"] == day], b[b["session"] == days[days.index(day) - 1]]
    want = vp.volume_profile(today)
    assert rec["profile"]["poc"] == want.poc and rec["profile"]["val"] == want.val and rec["profile"]["vah"] == want.vah
    assert rec["profile"]["lvn"] == list(want.lvn)
    p = vp.volume_profile(prior)
    assert rec["state"]["state"] == classify_session(today, p.val, p.vah).state
    if where == "synthetic":
        assert rec["flow_rule"] != "bvc" and rec["flow"][0]["trades"] > 0      # the tick trades' own flow
    else:
        assert rec["flow"][0]["delta"] == pytest.approx(
            float(order_flow.bar_flow_from_bars(today, rule="bvc")["delta"].sum()))
    assert _images(nb) >= 2
