"""The daily report pipeline (research_lib.daily, research_lib.reports, ``research-lib report daily``).

Every notebook run here is a real papermill run of ``notebooks/daily_report.ipynb`` in a real kernel; the
tests read back what the notebook recorded and compare it with the library called directly."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import os
import re
import subprocess
import sys

import nbformat
import pytest
from conftest import QUOTEDATA, ROOT, shared_file
from hypothesis import given, strategies as st

from research_lib import cli
from research_lib.pipeline.daily import ReportParameterError, build_daily, normalise_params
from research_lib.reporting import runner as reports

SECRET = "sk-test-9f8e7d6c5b4a3210-secret"
NOTEBOOK = ROOT / "notebooks" / "daily_report.ipynb"


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No network, an empty store and decision log in tmp, secrets in the environment."""
    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TRADIER_TOKEN", SECRET)
    monkeypatch.setenv("POLYGON_API_KEY", SECRET[::-1])
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


def _assert_no_secret(*paths):
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert SECRET not in text and SECRET[::-1] not in text, path


def _html_checks(html_text: str, *, failed: bool = False) -> None:
    assert not re.search(r"<script[^>]*\bsrc=", html_text), "the page must not load scripts"
    assert not re.search(r"<link[^>]*\bhref=[\"']https?:", html_text), "the page must not load stylesheets"
    if not failed:  # a failed page shows the traceback, which quotes the failing line
        assert "build_daily(" not in html_text, "code cells must be hidden"


# --------------------------------------------------------------------------------------------------------
# parameters, before any kernel


def test_notebook_declares_the_report_parameters_with_the_library_defaults():
    declared = reports.notebook_parameters(NOTEBOOK)
    defaults = normalise_params()
    assert set(declared) == set(defaults)
    for name, value in defaults.items():
        assert declared[name] == value, name


@pytest.mark.parametrize(("kwargs", "names"), [
    ({"symbol": "S P X"}, "symbol"),
    ({"symbol": ""}, "symbol"),
    ({"date": "07/03/2024"}, "date"),
    ({"date": "2024-02-30"}, "date"),
    ({"date": "2999-01-01"}, "future"),
    ({"date": "1980-01-02"}, "1990"),
    ({"source": "nowhere"}, "source"),
    ({"source": "/no/such/chain.csv"}, "source"),
    ({"convention": "gexbot"}, "convention"),
    ({"account": 0}, "account"),
    ({"account": float("nan")}, "account"),
    ({"account": "lots"}, "account"),
    ({"record_decision": "yes"}, "record_decision"),
    ({"history_days": -1}, "history_days"),
    ({"history_days": True}, "history_days"),
    ({"next_expiries": 0}, "next_expiries"),
    ({"symbol": "QQQ", "source": "modelled"}, "SPX only"),
])
def test_bad_parameters_are_named(kwargs, names):
    with pytest.raises(ReportParameterError, match=names):
        normalise_params(**kwargs)


def test_a_provider_without_its_key_is_refused(monkeypatch):
    monkeypatch.delenv("TRADIER_TOKEN", raising=False)
    with pytest.raises(ReportParameterError, match="TRADIER_TOKEN"):
        normalise_params(source="tradier")


def test_parameters_are_normalised(tmp_path):
    chain = tmp_path / "chain.csv"
    chain.write_text("x")
    p = normalise_params(symbol=" spy ", date=None, source=str(chain), account=1000, history_days=0)
    assert p["symbol"] == "SPY" and p["date"] == "latest" and p["source"] == str(chain.resolve())
    assert p["account"] == 1000.0 and isinstance(p["account"], float)
    assert normalise_params(source="AUTO")["source"] == "auto"


@given(symbol=st.text(max_size=12), date=st.one_of(st.none(), st.text(max_size=12)))
def test_any_symbol_or_date_is_accepted_or_refused_by_name(symbol, date):
    try:
        p = normalise_params(symbol=symbol, date=date, source="auto")
    except ReportParameterError as exc:
        assert re.search(r"symbol|date", str(exc))
    else:
        assert re.fullmatch(r"[A-Z][A-Z0-9.]{0,9}", p["symbol"])
        assert p["date"] == "latest" or re.fullmatch(r"\d{4}-\d{2}-\d{2}", p["date"])


def test_cli_refuses_a_bad_parameter_before_anything_runs(tmp_path, capsys):
    out_dir = tmp_path / "reports"
    code = cli.main(["report", "daily", "--date", "2024-13-01", "--reports-dir", str(out_dir)])
    assert code == cli.EXIT_USAGE
    assert "date" in capsys.readouterr().err
    assert not out_dir.exists()  # validated before the reports folder, the lock or a kernel


def test_a_notebook_without_the_parameters_is_refused(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("symbol = 'SPX'",
                                                                    metadata={"tags": ["parameters"]})])
    path = tmp_path / "other.ipynb"
    nbformat.write(nb, str(path))
    with pytest.raises(ReportParameterError, match="declares no parameter"):
        reports.run_reports(["SPX"], notebook=path, reports_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------------------------------------
# end to end, modelled default


def _recorded(path):
    return reports.recorded(json.loads(path.read_text(encoding="utf-8")))


def _compare_with_library(record, expected):
    lv, ex = record["levels"], expected.levels
    for key in ("net_gex", "call_gex", "put_gex", "zero_gamma", "call_wall", "put_wall", "net_vanna", "net_charm"):
        assert lv[key] == pytest.approx(getattr(ex, key), rel=1e-12), key
    assert lv["zero_gamma_crossings"] == pytest.approx(list(ex.zero_gamma_crossings), rel=1e-12)
    assert lv["convention"] == ex.convention
    dec, exd = record["decision"], expected.decision
    assert dec["regime"]["regime"] == str(exd.regime.regime)
    assert dec["regime"]["action"] == str(exd.regime.action)
    assert dec["regime"]["confidence"] == exd.regime.confidence
    assert dec["regime"]["reasons"] == list(exd.regime.reasons)
    assert dec["decision"]["type"] == str(exd.decision.type)
    assert dec["decision"]["what"] == exd.decision.what
    assert [a["rule"] for a in dec["alerts"]] == [str(a.rule) for a in exd.alerts]
    rows = expected.expiries_table()
    assert [r["expiration"] for r in record["expiries"]] == [d.date().isoformat() for d in rows.index]
    assert [r["score"] for r in record["expiries"]] == pytest.approx(list(rows["score"]), rel=1e-12)
    if expected.history is not None:
        assert record["history"] == json.loads(json.dumps(expected.history.to_dict()))
    change = record["change"]
    assert change["reason"] == expected.change_reason
    if expected.change is None:
        assert change["change"] is None
    else:
        for key in ("net_before", "net_after", "change"):
            assert change["change"][key] == pytest.approx(getattr(expected.change, key), rel=1e-12), key


@pytest.mark.notebook
def test_daily_report_on_the_modelled_default(offline):
    root = offline / "reports"
    summary = reports.run_reports(["SPX"], reports_dir=root)
    assert summary.exit_code == reports.EXIT_OK, summary.to_dict()
    (result,) = summary.results
    assert result.ok, result.error
    assert result.notebook == root / "daily" / result.date / "SPX.ipynb"
    assert result.html == root / "daily" / result.date / "SPX.html"

    record = _recorded(result.notebook)
    prov = record["provenance"]
    assert prov["served_by"] == "modelled" and prov["modelled"] is True and prov["date"] == result.date
    # the library, called directly with the same parameters, gives the same report
    expected = build_daily("SPX", date=result.date, source="modelled", record_decision=False)
    _compare_with_library(record, expected)
    assert record["decision"]["decision"]["id"]  # record_decision=True by default: logged
    log = json.loads(json.dumps(record))["decision"]["decision"]["id"]
    from research_lib.records.decisions import DecisionLog

    assert log in set(DecisionLog(offline / "data" / "decisions.sqlite").read()["decision_id"])

    html_text = result.html.read_text(encoding="utf-8")
    _html_checks(html_text)
    assert "MODELLED DATA" in html_text
    # 3 charts + what moved GEX (against the previous session's modelled chain) + history
    assert len(re.findall(r"<img[^>]*src=\"data:image/png;base64,", html_text)) == 5
    assert '"daily report"' not in html_text and "provenance" not in html_text  # the record cell is left out
    for title in ("Key levels", "GEX by strike", "Gamma profile", "heatmap", "Regime", "decision", "Alerts",
                  "What moved GEX since yesterday", "History context"):
        assert title in html_text, title

    index = reports.read_index(root)
    assert [(e["date"], e["symbol"], e["status"]) for e in index] == [(result.date, "SPX", "OK")]
    assert index[0]["good"]["modelled"] is True
    index_html = (root / "index.html").read_text(encoding="utf-8")
    assert "SPX" in index_html and "MODELLED" in index_html and f"daily/{result.date}/SPX.html" in index_html

    saved = json.loads(summary.summary.read_text())
    assert saved["exit_code"] == 0 and saved["results"][0]["status"] == "OK"
    assert "cell" in summary.log.read_text()  # progress per section went to the log
    _assert_no_secret(result.notebook, result.html, summary.log, summary.summary, root / "index.html")


def _modelled_day_before():
    """A day the modelled chain can be built for (the offline history's second-to-last session)."""
    from research_lib.data.modelled import offline_spot_history

    return offline_spot_history().index[-2].date().isoformat()


@pytest.mark.notebook
def test_failed_run_keeps_the_last_good_report(offline):
    root = offline / "reports"
    day = _modelled_day_before()
    good = reports.run_daily("SPX", source="modelled", date=day, reports_dir=root, history_days=0)
    assert good.ok
    before = (good.notebook.read_bytes(), good.html.read_bytes())

    bad = offline / "bad.csv"
    bad.write_text("not,a,chain\n1,2,3\n")
    failed = reports.run_daily("SPX", source=str(bad), date=day, reports_dir=root, history_days=0)
    assert failed.status == "FAILED" and failed.date == day
    assert "UnknownFormatError" in failed.error
    assert (good.notebook.read_bytes(), good.html.read_bytes()) == before  # untouched
    assert failed.notebook.name == "SPX.FAILED.ipynb" and failed.html.name == "SPX.FAILED.html"
    nb = json.loads(failed.notebook.read_text())
    assert any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", []))
    page = failed.html.read_text(encoding="utf-8")
    assert "UnknownFormatError" in page and "FAILED" in page
    _html_checks(page, failed=True)
    body = page[page.index("<body"):]
    assert body.index(f"The SPX daily report for {day} could not be built: ") < body.index("<details")
    assert "The last good report of this date and symbol is kept" in body
    assert body.index("<details") < body.index("Traceback")  # folded below the paragraph

    (entry,) = reports.read_index(root)
    assert entry["status"] == "FAILED" and entry["good"]["html"] == f"daily/{day}/SPX.html"
    assert "UnknownFormatError" in entry["failed"]["error"]
    assert "FAILED — last good report kept" in (root / "index.html").read_text(encoding="utf-8")

    # the index survives corruption: rebuilt from the files
    (root / "index.json").write_text("{not json")
    (entry,) = reports.read_index(root)
    assert entry["good"]["served_by"] == "modelled" and entry["failed"]["notebook"].endswith("SPX.FAILED.ipynb")
    assert list(root.glob("index.json.corrupt-*"))

    # a later good run supersedes the failed one
    again = reports.run_daily("SPX", source="modelled", date=day, reports_dir=root, history_days=0)
    assert again.ok and not failed.notebook.exists() and not failed.html.exists()
    (entry,) = reports.read_index(root)
    assert entry["status"] == "OK" and entry["failed"] is None


@pytest.mark.notebook
def test_cron_run_of_several_symbols_from_the_command_line(offline):
    """`research-lib report daily --symbols SPX,QQQ` as cron runs it: SPX served by the store, QQQ's
    notebook fails in a cell -> a FAILED report, exit code 5, a log and a JSON summary.

    (A QQQ that no source can serve offline is refused before anything runs: see
    test_an_unservable_symbol_is_refused_before_anything_runs.)"""
    from research_lib.data.modelled import modelled_chain
    from research_lib.data.store import ChainStore

    root = offline / "reports"
    day = _modelled_day_before()
    for symbol in ("SPX", "QQQ"):  # a stored QQQ chain: the up-front check lets it through
        snap = modelled_chain("SPX", date=day)
        ChainStore().put(dataclasses.replace(snap, underlying=symbol, source=f"test:{symbol}"))
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    setup = next(i for i, c in enumerate(nb.cells) if "build_daily(" in c.source)
    nb.cells.insert(setup, nbformat.v4.new_code_cell(
        "if symbol == 'QQQ':\n    raise RuntimeError('QQQ cell failed on purpose')"))
    notebook = offline / "cron.ipynb"
    nbformat.write(nb, str(notebook))
    env = {k: v for k, v in os.environ.items()}
    proc = subprocess.run([sys.executable, "-m", "research_lib", "report", "daily", "--symbols", "SPX,QQQ",
                           "--source", "store", "--notebook", str(notebook), "--reports-dir", str(root),
                           "--history-days", "0", "--no-record", "--json"],
                          capture_output=True, text=True, env=env, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == reports.EXIT_REPORT_FAILED, proc.stderr
    summary = json.loads(proc.stdout, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert [(r["symbol"], r["status"]) for r in summary["results"]] == [("SPX", "OK"), ("QQQ", "FAILED")]
    assert "RuntimeError: QQQ cell failed on purpose" in summary["results"][1]["error"]
    assert "SPX: cell" in proc.stderr and "[2/2] QQQ" in proc.stderr  # progress while it runs
    assert os.path.exists(summary["log"]) and os.path.exists(summary["summary"])
    assert json.loads(open(summary["summary"]).read())["exit_code"] == reports.EXIT_REPORT_FAILED
    statuses = {(e["symbol"], e["status"]) for e in reports.read_index(root)}
    assert statuses == {("SPX", "OK"), ("QQQ", "FAILED")}
    assert SECRET not in proc.stdout + proc.stderr


def test_a_second_run_is_refused_while_one_holds_the_lock(offline, capsys):
    root = offline / "reports"
    root.mkdir()
    with open(root / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 1 since test")
        held.flush()
        summary = reports.run_reports(["SPX"], reports_dir=root, source="modelled")
        assert summary.exit_code == reports.EXIT_LOCKED and summary.results == ()
        assert "holds" in summary.error
        assert cli.main(["report", "daily", "--reports-dir", str(root), "--quiet"]) == reports.EXIT_LOCKED
        assert "another report run" in capsys.readouterr().err
        with pytest.raises(reports.ReportLockedError):
            reports.run_daily("SPX", reports_dir=root)
    assert not (root / "daily").exists()
    assert json.loads(summary.summary.read_text())["exit_code"] == reports.EXIT_LOCKED


@pytest.mark.notebook
def test_a_secret_printed_by_a_notebook_never_reaches_the_report(offline):
    """Even a notebook that prints a key from the environment cannot leak it: every file is scrubbed."""
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    leak = nbformat.v4.new_code_cell(
        "import os\n"
        "print('token', os.environ['TRADIER_TOKEN'])\n"
        "raise RuntimeError('failed with ' + os.environ['POLYGON_API_KEY'])")
    setup = next(i for i, c in enumerate(nb.cells) if "build_daily(" in c.source)
    nb.cells.insert(setup + 1, leak)
    path = offline / "leaky.ipynb"
    nbformat.write(nb, str(path))
    summary = reports.run_reports(["SPX"], source="modelled", notebook=path, reports_dir=offline / "r",
                                  history_days=0, record_decision=False)
    (result,) = summary.results
    assert result.status == "FAILED" and "RuntimeError" in result.error
    assert "***" in result.notebook.read_text() and "***" in result.error
    _assert_no_secret(result.notebook, result.html, summary.log, summary.summary, offline / "r" / "index.json",
                      offline / "r" / "index.html")


# --------------------------------------------------------------------------------------------------------
# a real snapshot


@pytest.mark.notebook
@pytest.mark.parametrize("chain", ["synthetic", *(["real"] if (QUOTEDATA / "spx_2024-01-07.csv").exists() else [])])
def test_daily_report_on_a_real_chain(offline, chain, request):
    if chain == "real":
        path, date = shared_file(QUOTEDATA / "spx_2024-01-07.csv"), "2024-01-05"
    else:
        path, date = request.getfixturevalue("synthetic").files["cboe_csv"], "2024-03-06"
    root = offline / "reports"
    result = reports.run_daily("SPX", source=str(path), convention="perfiliev", account=250_000.0,
                               record_decision=False, reports_dir=root)
    assert result.ok, result.error
    assert result.date == date or result.date == result.record["provenance"]["date"]
    record = _recorded(result.notebook)
    assert record["provenance"]["served_by"] == "file" and record["provenance"]["modelled"] is False
    expected = build_daily("SPX", source=str(path), convention="perfiliev", account=250_000.0,
                           record_decision=False)
    _compare_with_library(record, expected)
    assert record["levels"]["convention"] == "perfiliev"
    assert record["decision"]["levels"]["convention"] == "model"  # the decision always uses the model
    hist = record["history"]
    assert hist is not None and hist["series"]["published_gex"]["count"] > 200
    assert hist["series"]["vix"]["count"] > 200 and hist["last_date"] == record["provenance"]["date"]
    html_text = result.html.read_text(encoding="utf-8")
    _html_checks(html_text)
    assert "market quotes" in html_text and "MODELLED DATA" not in html_text


# --------------------------------------------------------------------------------------------------------
# pieces


def test_scrub_secrets_covers_escaped_forms():
    import html

    secret = 'ab"c/d&e+f'
    text = f"{secret} {json.dumps(secret)} {html.escape(secret)} {html.escape(json.dumps(secret))}"
    clean = reports.scrub_secrets(text, [secret])
    assert "ab" not in clean and clean.count("***") == 4


def test_secret_values_come_from_credential_like_names():
    env = {"TRADIER_TOKEN": "abcdefgh", "MY_API_KEY": "12345678", "HOME": "/root/longpath", "DB_PASSWORD": "x"}
    assert set(reports.secret_values(env)) == {"abcdefgh", "12345678"}  # too short to be scrubbed: "x"


def test_export_html_embeds_images_and_shows_errors(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print('hidden code')", outputs=[
            nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}),
            nbformat.v4.new_output("error", ename="ValueError", evalue="bad thing", traceback=["ValueError: bad"]),
        ]),
        nbformat.v4.new_code_cell("x", metadata={"tags": ["record"]}, outputs=[
            nbformat.v4.new_output("display_data", data={"application/json": {"secret_record": 1},
                                                         "text/plain": "<JSON>"})]),
    ])
    page = reports.export_html(nb, tmp_path / "x.html")
    assert (tmp_path / "x.html").read_text(encoding="utf-8") == page
    assert "data:image/png;base64,iVBORw0KGgo=" in page and "ValueError: bad" in page
    assert "hidden code" not in page and "secret_record" not in page
    _html_checks(page)


def test_index_html_escapes_what_it_shows(tmp_path):
    entries = [{"date": "2026-01-02", "symbol": "SPX", "status": "FAILED", "good": None, "last_run_at": "t",
                "failed": {"notebook": "daily/2026-01-02/SPX.FAILED.ipynb", "html": "daily/2026-01-02/SPX.FAILED.html",
                           "error": "<script>alert(1)</script>", "at": "t"}}]
    page = reports._index_html(entries)
    assert "<script>alert" not in page and "&lt;script&gt;" in page


def test_daily_report_tables_without_a_kernel(offline):
    daily = build_daily("SPX", source="modelled", record_decision=False, history_days=0)
    table = daily.levels_table()
    assert table.loc["spot", "value"] == f"{daily.levels.spot:,.2f}"
    exp = daily.expiries_table(3)
    assert len(exp) == 3 and list(exp.columns) == ["net_gex", "max_pain", "pin_strike", "distance_pct",
                                                   "expected_move", "score"]
    assert exp["max_pain"].iloc[0] == daily.levels.max_pain[exp.index[0].date()]
    assert all(math.isfinite(x) for x in exp["net_gex"])
    assert "MODELLED DATA" in daily.banner_html()
    assert daily.history_markdown().startswith("History context left out")
    record = json.loads(json.dumps(daily.to_dict()))  # JSON-ready
    assert record["history"] is None and record["params"]["history_days"] == 0
    # the modelled chain is compared with the previous session's modelled chain
    ch = daily.change
    assert ch is not None and ch.modelled and ch.date_before < ch.date_after == daily.levels.date
    assert ch.net_after == daily.model_levels.net_gex
    assert record["change"]["change"]["change"] == pytest.approx(ch.change, rel=1e-12)
    assert "previous session" in daily.change_reason and "Net GEX went from" in daily.change_markdown()


# --------------------------------------------------------------------------------------------------------
# refused before anything starts: a symbol or a store date no source can serve


def _no_kernel(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(reports, "_start_kernel", boom)


def test_an_unservable_symbol_is_refused_before_anything_runs(offline, monkeypatch, capsys):
    """Before: `report daily --symbol FOO` started a kernel, failed, and left a FAILED row for ever."""
    _no_kernel(monkeypatch)
    root = offline / "reports"
    with pytest.raises(ReportParameterError, match=r"symbol='FOO'.*modelled chain exists for SPX only"):
        reports.run_reports(["FOO"], reports_dir=root)
    code = cli.main(["report", "daily", "--symbols", "SPX,FOO", "--reports-dir", str(root), "--quiet"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and "FOO" in err and "RESEARCH_LIB_OFFLINE is set" in err
    assert not root.exists()  # no index row, no log, no folder


def test_a_date_the_store_does_not_hold_is_refused_before_anything_runs(offline, monkeypatch, capsys):
    """Before: `--source store --date 2026-06-13` started a kernel and left a FAILED row."""
    from research_lib.data.modelled import modelled_chain
    from research_lib.data.store import ChainStore

    _no_kernel(monkeypatch)
    root = offline / "reports"
    day = _modelled_day_before()
    ChainStore().put(modelled_chain("SPX", date=day))
    code = cli.main(["report", "daily", "--source", "store", "--date", "2026-06-13", "--reports-dir", str(root)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and "date='2026-06-13'" in err and f"dated {day}" in err
    assert not root.exists()
    # what the store holds, and what auto can serve offline, passes the check (nothing is read)
    for source, date in (("store", day), ("store", "latest"), ("auto", day), ("modelled", day), ("auto", "latest")):
        reports.check_sources(normalise_params("SPX", date, source))
    with pytest.raises(ReportParameterError, match="not an NYSE session"):  # neither store nor modelled
        reports.check_sources(normalise_params("SPX", "2026-06-13", "auto"))
    with pytest.raises(ReportParameterError, match="RESEARCH_LIB_OFFLINE"):
        reports.check_sources(normalise_params("SPY", "latest", "cboe"))


def test_online_auto_leaves_the_symbol_to_the_live_provider(offline, monkeypatch):
    monkeypatch.delenv("RESEARCH_LIB_OFFLINE")
    reports.check_sources(normalise_params("QQQ", "latest", "auto"))  # only a live provider can answer
    monkeypatch.setenv("RESEARCH_LIB_PROVIDERS", "cboe,nasdaq")
    with pytest.raises(ReportParameterError, match="unknown providers"):
        reports.check_sources(normalise_params("QQQ", "latest", "auto"))
    monkeypatch.delenv("RESEARCH_LIB_PROVIDERS")
    with pytest.raises(ReportParameterError, match="serves today's chain only"):
        reports.check_sources(normalise_params("SPY", "2024-01-05", "cboe"))


# --------------------------------------------------------------------------------------------------------
# what the terminal says


def _result(tmp_path, *, status="OK", provenance=None, error=None):
    return reports.ReportResult(symbol="SPX", date="2023-09-14", status=status,
                                notebook=tmp_path / "SPX.ipynb", html=tmp_path / "SPX.html", params={},
                                duration_s=1.0, error=error,
                                record=None if provenance is None else {"provenance": provenance})


def test_the_terminal_line_says_stale_or_modelled_as_the_page_does(tmp_path):
    """Before: `OK 2023-09-14 SPX .../SPX.html` for a chain 1,173 days old."""
    old = _result(tmp_path, provenance={"modelled": False, "stale": False, "age_hours": 1173.4 * 24})
    assert reports.result_line(old).startswith("OK     2023-09-14 SPX    ")
    assert reports.result_line(old).endswith("STALE (1,173 days old)")
    store = _result(tmp_path, provenance={"modelled": False, "stale": True, "age_hours": 20.0})
    assert reports.result_line(store).endswith("STALE (20.0 hours old)")
    modelled = _result(tmp_path, provenance={"modelled": True, "stale": False, "age_hours": None})
    assert reports.result_line(modelled).endswith("MODELLED")
    live = _result(tmp_path, provenance={"modelled": False, "stale": False, "age_hours": 0.3})
    assert reports.result_line(live).endswith("SPX.html")
    failed = _result(tmp_path, status="FAILED", error="NoChainAvailableError: none")
    assert reports.result_line(failed).endswith("(NoChainAvailableError: none)")


# --------------------------------------------------------------------------------------------------------
# the FAILED page


def test_a_failed_page_starts_with_a_readable_paragraph_and_folds_the_traceback(tmp_path):
    tb = ["\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
          "\x1b[0;31mNoChainAvailableError\x1b[0m    Traceback (most recent call last)",
          "Cell In[3], line 1", "NoChainAvailableError: no QQQ chain from source 'store'"]
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Data and provenance"),
        nbformat.v4.new_code_cell("daily = build_daily(...)", outputs=[
            nbformat.v4.new_output("error", ename="NoChainAvailableError",
                                   evalue="no QQQ chain from source 'store'", traceback=tb)]),
    ])
    section, text = reports._error_section(nb)
    assert section == "Data and provenance" and "Traceback (most recent call last)" in text and "\x1b" not in text
    paragraph = reports.failure_paragraph("QQQ", "2026-08-21", "NoChainAvailableError: no QQQ chain from source "
                                          "'store'", section=section)
    assert paragraph.startswith("The QQQ daily report for 2026-08-21 could not be built: no QQQ chain from "
                                "source 'store'.")
    assert "Data and provenance" in paragraph and "no good report" in paragraph
    page = reports.export_html(reports._failed_page_notebook(nb, "QQQ daily GEX report 2026-08-21 — FAILED",
                                                             paragraph))
    body = page[page.index("<body"):]
    first = body.index("could not be built")
    assert first < body.index("<details") < body.index("Traceback (most recent call last)")
    assert "\x1b[" not in page and nb.cells[1].outputs[0].output_type == "error"  # the notebook is not changed
    _html_checks(page, failed=True)
    standalone = reports._error_page("t", paragraph, "Traceback (most recent call last):\n  boom")
    assert standalone.index("could not be built") < standalone.index("<details") < standalone.index("boom")


# --------------------------------------------------------------------------------------------------------
# the index: convention, net GEX, regime, New York time


def _record(convention="perfiliev", net_gex=2.41e10, regime="POSITIVE_GAMMA", age_hours=2.0):
    return {"params": {"convention": convention},
            "provenance": {"served_by": "store", "source": "cboe:SPX", "modelled": False, "stale": True,
                           "age_hours": age_hours, "quote_time": "2026-08-21T16:15:00-04:00",
                           "generated_at": "2026-08-21T17:00:00-04:00", "date": "2026-08-21"},
            "levels": {"convention": convention, "net_gex": net_gex},
            "decision": {"regime": {"regime": regime}}}


def _fake_report(root, date, symbol, *, status="OK", record=None, finished_at="2026-08-21T21:00:00+00:00"):
    folder = root / "daily" / date
    folder.mkdir(parents=True, exist_ok=True)
    stem = symbol if status == "OK" else f"{symbol}.FAILED"
    nb, page = folder / f"{stem}.ipynb", folder / f"{stem}.html"
    nb.write_text(json.dumps(nbformat.v4.new_notebook()))
    page.write_text("<html></html>")
    result = reports.ReportResult(symbol=symbol, date=date, status=status, notebook=nb, html=page, params={},
                                  duration_s=1.0, error=None if status == "OK" else "ChainError: bad",
                                  record=record)
    reports._update_index(root, result, finished_at)
    return nb, page


def test_index_shows_convention_net_gex_regime_in_new_york_time(tmp_path):
    root = tmp_path / "reports"
    _fake_report(root, "2026-08-21", "SPX", record=_record())
    (entry,) = reports.read_index(root)
    assert entry["good"]["convention"] == "perfiliev" and entry["good"]["net_gex"] == 2.41e10
    assert entry["good"]["regime"] == "POSITIVE_GAMMA"
    data = json.loads((root / "index.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert data["timezone"] == "America/New_York"
    page = (root / "index.html").read_text(encoding="utf-8")
    for column in ("<th>convention</th>", "<th>net GEX</th>", "<th>regime</th>", "<th>last run</th>"):
        assert column in page, column
    assert "perfiliev" in page and "+24.10B" in page and "POSITIVE_GAMMA" in page
    assert "2026-08-21 16:15 EDT" in page  # the quote time
    assert "2026-08-21 17:00 EDT" in page  # the run, given in UTC (21:00Z), shown in New York time
    assert "UTC" not in page and "+00:00" not in page
    assert "STALE" in page
    # a NaN net GEX is stored as null, never NaN
    _fake_report(root, "2026-08-20", "SPX", record=_record(net_gex=float("nan")))
    assert "NaN" not in (root / "index.json").read_text()
    assert reports._now_ny().endswith(("-04:00", "-05:00"))


# --------------------------------------------------------------------------------------------------------
# prune


def _prune_tree(root):
    _fake_report(root, "2026-08-21", "SPX", record=_record())
    _fake_report(root, "2026-08-21", "SPX", status="FAILED")  # a failed rerun: the good one is kept
    _fake_report(root, "2026-08-21", "FOO", status="FAILED")
    _fake_report(root, "2026-06-12", "SPX", record=_record())
    _fake_report(root, "2026-06-12", "QQQ", status="FAILED")
    return root


def test_prune_failed_rows(tmp_path, capsys):
    """`report prune --failed`: FAILED rows without a good report go with their files; a row with a good
    report keeps it and loses its failed run."""
    root = _prune_tree(tmp_path / "reports")
    dry = reports.prune_reports(root, failed=True, dry_run=True)
    assert set(dry.removed_rows) == {("2026-08-21", "FOO"), ("2026-06-12", "QQQ")}
    assert dry.cleared_failed == (("2026-08-21", "SPX"),)
    assert (root / "daily" / "2026-08-21" / "FOO.FAILED.html").exists()  # a dry run changes nothing
    assert len(reports.read_index(root)) == 4

    assert cli.main(["report", "prune", "--failed", "--reports-dir", str(root)]) == cli.EXIT_OK
    assert "removed 2 row(s) and 6 file(s)" in capsys.readouterr().out  # FOO's, QQQ's and SPX's failed run
    index = reports.read_index(root)
    assert [(e["date"], e["symbol"], e["status"]) for e in index] == [("2026-08-21", "SPX", "OK"),
                                                                    ("2026-06-12", "SPX", "OK")]
    assert index[0]["failed"] is None and index[0]["good"]["html"] == "daily/2026-08-21/SPX.html"
    assert sorted(p.name for p in (root / "daily").rglob("*.*")) == ["SPX.html", "SPX.html", "SPX.ipynb",
                                                                    "SPX.ipynb"]
    assert {(e["date"], e["symbol"]) for e in reports.rebuild_index(root, write=False)} == {  # files agree
        ("2026-08-21", "SPX"), ("2026-06-12", "SPX")}


def test_prune_old_rows(tmp_path, capsys):
    root = _prune_tree(tmp_path / "reports")
    result = reports.prune_reports(root, older_than_days=30, today="2026-08-25")
    assert set(result.removed_rows) == {("2026-06-12", "SPX"), ("2026-06-12", "QQQ")}
    assert not (root / "daily" / "2026-06-12").exists()  # the emptied date folder goes too
    assert {e["date"] for e in reports.read_index(root)} == {"2026-08-21"}
    root2 = _prune_tree(tmp_path / "reports2")
    code = cli.main(["report", "prune", "--before", "2026-08-21", "--failed", "--reports-dir", str(root2),
                     "--json"])
    out = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(c))
    assert code == cli.EXIT_OK and out["removed_rows"] == [{"date": "2026-06-12", "symbol": "QQQ"}]
    assert {(e["date"], e["symbol"]) for e in reports.read_index(root2)} == {
        ("2026-08-21", "SPX"), ("2026-08-21", "FOO"), ("2026-06-12", "SPX")}


def test_prune_refuses_bad_filters_and_a_held_lock(tmp_path, capsys):
    root = _prune_tree(tmp_path / "reports")
    assert cli.main(["report", "prune", "--reports-dir", str(root)]) == cli.EXIT_USAGE
    assert cli.main(["report", "prune", "--older-than", "-1", "--reports-dir", str(root)]) == cli.EXIT_USAGE
    assert cli.main(["report", "prune", "--before", "2026-02-30", "--reports-dir", str(root)]) == cli.EXIT_USAGE
    with pytest.raises(ReportParameterError):
        reports.prune_reports(root, older_than_days=1, before="2026-01-01")
    with open(root / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert cli.main(["report", "prune", "--failed", "--reports-dir", str(root)]) == cli.EXIT_LOCKED
    assert len(reports.read_index(root)) == 4
    # a tampered index cannot make prune delete outside the reports folder
    outside = tmp_path / "keep.txt"
    outside.write_text("x")
    data = json.loads((root / "index.json").read_text())
    data["reports"].append({"date": "../..", "symbol": "../keep.txt", "status": "FAILED", "good": None,
                            "failed": {}})
    (root / "index.json").write_text(json.dumps(data))
    reports.prune_reports(root, failed=True)
    assert outside.exists()


@pytest.mark.parametrize("name", ["daily_report.ipynb", "decision.ipynb", "explore_gex.ipynb"])
def test_every_notebook_says_latest_the_same_way(name):
    """Before: daily_report said date = "latest", decision and explore_gex date = None."""
    assert reports.notebook_parameters(ROOT / "notebooks" / name)["date"] == "latest"


def test_run_summary_to_dict_is_strict_json(tmp_path):
    """ReportResult / RunSummary.to_dict go through the one JSON helper: paths as text, NaN as None."""
    from research_lib.reporting.results import ReportResult, RunSummary

    result = ReportResult("SPX", "2024-03-13", "FAILED", tmp_path / "SPX.ipynb", tmp_path / "SPX.html",
                          {"account": float("inf")}, float("nan"), error="boom",
                          record={"provenance": {"age_hours": float("nan")}})
    summary = RunSummary("run-1", "t0", "t1", float("nan"), {}, (result,), 1, tmp_path / "run.log", None)
    d = summary.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    r = d["results"][0]
    assert r["notebook"] == str(tmp_path / "SPX.ipynb") and r["duration_s"] is None
    assert r["params"] == {"account": None} and r["provenance"] == {"age_hours": None} and "record" not in r
    assert d["log"] == str(tmp_path / "run.log") and d["summary"] is None and d["duration_s"] is None
