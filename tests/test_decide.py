"""decide(): a chain and market history in, a logged and explained decision out — end to end."""

from __future__ import annotations

import json

import pytest
from conftest import QUOTEDATA, SHARED_DATA, shared_file

from research_lib import gex
from research_lib.cli import main
from research_lib.decide import decide
from research_lib.decisions import DecisionLog


@pytest.fixture
def log(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path))
    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    return DecisionLog(tmp_path / "decisions.sqlite")


def test_decide_on_a_real_chain_logs_what_it_decided(log):
    shared_file(SHARED_DATA / "market" / "cboe_VIX_History.csv")
    path = shared_file(QUOTEDATA / "spx_2024-01-07.csv")
    report = decide("SPX", str(path), log=log)
    # the pieces agree with the library called directly
    expected = gex.analyze(report.served.snapshot, gex.GexConfig.model(rate=report.rate, div_yield=report.div_yield))
    assert report.analysis.levels.net_gex == pytest.approx(expected.levels.net_gex, rel=1e-12)
    assert 0.05 < report.rate < 0.056  # the 13-week bill on 2024-01-05
    assert report.regime.action in ("SELL_PREMIUM", "BUY_DIRECTIONAL", "STAY_OUT")
    assert report.regime.reasons
    # the decision is in the log with its alerts, one row
    table = log.read(underlying="SPX")
    assert len(table) == 1 and table["decision_id"].iloc[0] == report.decision.decision_id
    assert report.decision.decision_id.startswith("DEC-")
    assert report.decision.type in ("ENTRY", "SKIP")
    if report.decision.type == "ENTRY":
        s = report.strategy
        assert report.sizing.contracts * s.max_loss <= report.sizing.risk_budget + 1e-6
        assert str(report.sizing.contracts) in report.decision.what
    else:
        assert "No trade" in report.decision.why
    assert len(log.read_alerts(underlying="SPX")) == len(report.alerts)
    text = report.summary()
    assert "regime" in text and "decision DEC-" in text
    json.loads(json.dumps(report.to_dict(), default=str))


def test_second_decision_compares_against_the_previous_regime(log):
    shared_file(SHARED_DATA / "market" / "cboe_VIX_History.csv")
    first = decide("SPX", str(shared_file(QUOTEDATA / "spx_2023-09-14.csv")), log=log)
    second = decide("SPX", str(shared_file(QUOTEDATA / "spx_2024-01-07.csv")), log=log)
    assert len(log.read()) == 2
    changed = str(first.regime.regime) != str(second.regime.regime)
    rules = {str(a.rule) for a in second.alerts}
    assert ("regime_change" in rules) == changed


def test_decide_offline_on_the_modelled_chain(log):
    report = decide("SPX", "auto", log=log)
    assert report.served.served_by == "modelled" and report.decision.decision_id
    assert report.to_dict()["modelled"] is True


def test_decide_cli_json(log, capsys):
    import io

    out, err = io.StringIO(), io.StringIO()
    code = main(["decide", "--source", "modelled", "--json", "--account", "100000"], out=out, err=err)
    assert code == 0, err.getvalue()
    record = json.loads(out.getvalue())
    assert record["decision"]["id"].startswith("DEC-") and record["modelled"] is True
    assert {"levels", "regime", "strategy", "sizing", "alerts"} <= set(record)
    assert "MODELLED DATA" in err.getvalue()
