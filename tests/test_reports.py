"""The daily report pipeline (research_lib.daily, research_lib.reports, ``research-lib report daily``).

Every notebook run here is a real papermill run of ``notebooks/daily_report.ipynb`` in a real kernel; the
tests read back what the notebook recorded and compare it with the library called directly."""

from __future__ import annotations

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
from hypothesis import given
from hypothesis import strategies as st

from research_lib import cli, reports
from research_lib.daily import ReportParameterError, build_daily, normalise_params

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
    from research_lib.decisions import DecisionLog

    assert log in set(DecisionLog(offline / "data" / "decisions.sqlite").read()["decision_id"])

    html_text = result.html.read_text(encoding="utf-8")
    _html_checks(html_text)
    assert "MODELLED DATA" in html_text
    assert len(re.findall(r"<img[^>]*src=\"data:image/png;base64,", html_text)) == 4  # 3 charts + history
    assert '"daily report"' not in html_text and "provenance" not in html_text  # the record cell is left out
    for title in ("Key levels", "GEX by strike", "Gamma profile", "heatmap", "Regime", "decision", "Alerts",
                  "History context"):
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
    from research_lib.modelled import offline_spot_history

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
    """`research-lib report daily --symbols SPX,QQQ` as cron runs it: SPX served by the modelled chain,
    QQQ has no source (its source raises) -> a FAILED report, exit code 5, a log and a JSON summary."""
    root = offline / "reports"
    env = {k: v for k, v in os.environ.items()}
    proc = subprocess.run([sys.executable, "-m", "research_lib", "report", "daily", "--symbols", "SPX,QQQ",
                           "--reports-dir", str(root), "--history-days", "0", "--no-record", "--json"],
                          capture_output=True, text=True, env=env, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == reports.EXIT_REPORT_FAILED, proc.stderr
    summary = json.loads(proc.stdout)
    assert [(r["symbol"], r["status"]) for r in summary["results"]] == [("SPX", "OK"), ("QQQ", "FAILED")]
    assert "NoChainAvailableError" in summary["results"][1]["error"]
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
@pytest.mark.shared_data
def test_daily_report_on_a_real_chain(offline):
    path = shared_file(QUOTEDATA / "spx_2024-01-07.csv")
    root = offline / "reports"
    result = reports.run_daily("SPX", source=str(path), convention="perfiliev", account=250_000.0,
                               record_decision=False, reports_dir=root)
    assert result.ok, result.error
    assert result.date == "2024-01-05" or result.date == result.record["provenance"]["date"]
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
