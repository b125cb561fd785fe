"""decide(): a chain and market history in, a logged and explained decision out — end to end."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from conftest import QUOTEDATA, SHARED_DATA, shared_file

from research_lib.cli import main
from research_lib.core import gex, regime_gex
from research_lib.core.regime import RegimeParams, classify_regime
from research_lib.core.sizing import account_needed
from research_lib.core.strategy import select_strategy
from research_lib.pipeline.decide import decide
from research_lib.pipeline.inputs import regime_inputs_for
from research_lib.records.decisions import DecisionLog, MarketContext, TradeDecision


@pytest.fixture
def log(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path))
    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    return DecisionLog(tmp_path / "decisions.sqlite")


@pytest.mark.parametrize("name", ["synthetic", *(["real"] if (QUOTEDATA / "spx_2024-01-07.csv").exists() else [])])
def test_decide_on_a_real_chain_logs_what_it_decided(log, name, request, monkeypatch):
    if name == "real":
        shared_file(SHARED_DATA / "market" / "cboe_VIX_History.csv")
        path, day, rates = shared_file(QUOTEDATA / "spx_2024-01-07.csv"), dt.date(2024, 1, 5), (0.05, 0.056)
    else:  # the synthetic chain and market history (its 13-week bill: 4.95% discount on 2024-03-06)
        syn = request.getfixturevalue("synthetic")
        monkeypatch.setenv("RESEARCH_LIB_MARKET_DATA", str(syn.market_dir))
        path, day, rates = syn.files["cboe_csv"], dt.date(2024, 3, 6), (0.049, 0.052)
    report = decide("SPX", str(path), log=log)
    # the pieces agree with the library called directly
    expected = gex.analyze(report.served.snapshot, gex.GexConfig.model(rate=report.rate, div_yield=report.div_yield))
    assert report.analysis.levels.net_gex == pytest.approx(expected.levels.net_gex, rel=1e-12)
    assert rates[0] < report.rate < rates[1]  # the 13-week bill on the trading day (real: 2024-01-05)
    # the regime is the classifier's on the same levels, regime GEX and history, the strategy the selector's for it
    rgex = regime_gex.of(expected)
    assert report.regime_gex.value == pytest.approx(rgex.value, rel=1e-12)
    assert report.regime_gex.value != pytest.approx(expected.levels.net_gex, rel=1e-3)  # a different series
    regime = classify_regime(regime_inputs_for(expected.levels, regime_gex=rgex))
    assert "regime GEX" in report.regime.reasons[0]
    assert (report.regime.regime, report.regime.trend, report.regime.action, report.regime.confidence) == (
        regime.regime, regime.trend, regime.action, regime.confidence)
    assert report.regime.reasons == regime.reasons
    assert report.strategy.kind == select_strategy(regime.action, regime.trend).kind
    # the decision is in the log with its alerts, one row, dated by the chain's trading day
    table = log.read(underlying="SPX")
    assert len(table) == 1 and table["decision_id"].iloc[0] == report.decision.decision_id
    assert table["trading_date"].iloc[0] == report.served.snapshot.snapshot_date == day  # real: the Friday
    assert report.decision.decision_id.startswith("DEC-")
    # ENTRY exactly when the sizer gives at least one contract
    traded = report.sizing is not None and report.sizing.contracts > 0
    assert report.decision.type == ("ENTRY" if traded else "SKIP")
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
    assert str(first.regime.regime) != str(second.regime.regime)     # NEUTRAL, then NEGATIVE_GAMMA
    change = [a for a in second.alerts if str(a.rule) == "regime_change"]
    assert len(change) == 1
    assert f"changed from {first.regime.regime} on 2023-09-14 to {second.regime.regime}" in change[0].message


def test_regime_change_is_against_the_previous_trading_day_not_the_last_run(log):
    """issue 9: a run on an old chain was compared with whatever was logged last by wall-clock time."""
    shared_file(SHARED_DATA / "market" / "cboe_VIX_History.csv")
    later = decide("SPX", str(shared_file(QUOTEDATA / "spx_2024-01-07.csv")), log=log)
    # logged after the 2024 run, but its chain is from 2023-09-14: nothing came before it
    earlier = decide("SPX", str(shared_file(QUOTEDATA / "spx_2023-09-14.csv")), log=log)
    assert str(later.regime.regime) != str(earlier.regime.regime)
    assert "regime_change" not in {str(a.rule) for a in earlier.alerts}
    assert log.last_for("SPX", before=later.served.snapshot.snapshot_date).decision_id == earlier.decision.decision_id


def _record(log, day, regime, ts, underlying="SPX"):
    ctx = MarketContext(underlying, spot=7600.0, regime=regime)
    return log.record(TradeDecision.create("SKIP", source="test", what=f"SKIP {underlying}", why="test",
                                           context=ctx, timestamp=ts, trading_date=day))


def test_regime_change_names_the_previous_trading_day_offline(log):
    probe = decide("SPX", "auto", record=False)                 # the modelled chain, offline
    today, regime = probe.served.snapshot.snapshot_date, str(probe.regime.regime)
    other = next(r for r in ("POSITIVE_GAMMA", "NEGATIVE_GAMMA", "NEUTRAL") if r != regime)
    day_before = today - dt.timedelta(days=1)
    # the previous trading day had the same regime; a run on a LATER chain, with another regime, was
    # logged last by the wall clock, and one on an older day with another regime before it
    _record(log, today - dt.timedelta(days=30), other, "2026-01-01 10:00")
    _record(log, day_before, regime, "2026-01-02 10:00")
    _record(log, today + dt.timedelta(days=10), other, "2026-01-03 10:00")
    _record(log, day_before, other, "2026-01-01 09:00", underlying="NDX")
    report = decide("SPX", "auto", log=log)
    assert "regime_change" not in {str(a.rule) for a in report.alerts}
    assert log.get(report.decision.decision_id).trading_date == today
    # the previous trading day had another regime: the alert says which day
    log2 = DecisionLog(log.path.with_name("other.sqlite"))
    _record(log2, day_before, other, "2026-01-02 10:00")
    _record(log2, today + dt.timedelta(days=10), regime, "2026-01-03 10:00")
    report = decide("SPX", "auto", log=log2)
    change = [a for a in report.alerts if str(a.rule) == "regime_change"]
    assert len(change) == 1 and f"changed from {other} on {day_before} to {regime}" in change[0].message
    # a hand-written regime the classifier does not know: no comparison, and a note says why
    log3 = DecisionLog(log.path.with_name("third.sqlite"))
    _record(log3, day_before, "long gamma", "2026-01-02 10:00")
    report = decide("SPX", "auto", log=log3)
    assert "regime_change" not in {str(a.rule) for a in report.alerts}
    assert any("'long gamma'" in n for n in report.notes)


def test_a_skip_without_a_strategy_says_what_was_skipped_and_why(log):
    # thresholds no two-sided book reaches: NEUTRAL, so STAY_OUT whatever market history is at hand
    never = RegimeParams(gex_ratio_positive=0.999, gex_ratio_negative=-0.999, zero_gamma_buffer_pct=1e6)
    report = decide("SPX", "auto", log=log, regime_params=never)
    assert report.strategy.kind == "none" and report.decision.type == "SKIP"
    assert str(report.regime.action) == "STAY_OUT"
    r = report.regime
    assert report.decision.what == f"SKIP SPX no position ({r.action}: {r.regime}, {r.trend})"
    assert "SKIP SPX none" not in report.summary()
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["decision"]["trading_date"] == report.served.snapshot.snapshot_date.isoformat()
    assert d["strategy"] == {**report.strategy.to_dict(), "expiration": None}


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


@pytest.mark.parametrize("account, trades", [(25_000, False), (250_000, True)])
def test_the_budget_is_fitted_or_the_skip_says_what_would_fit(log, account, trades):
    """issue 9: $250,000 got $2,350 of risk against a $4,155 spread and skipped."""
    shared_file(SHARED_DATA / "market" / "cboe_VIX_History.csv")
    report = decide("SPX", str(shared_file(QUOTEDATA / "spx_2024-01-07.csv")), account=account, log=log)
    conf = report.regime.confidence
    budget = 0.01 * conf / 100 * account                    # the bootstrap risk × confidence
    assert report.sizing.risk_budget == pytest.approx(budget, abs=0.01)
    if trades:
        assert report.decision.type == "ENTRY" and report.sizing.contracts >= 1
        assert report.strategy.max_loss <= budget and report.strategy.risk_budget == report.sizing.risk_budget
        assert "to fit the" in report.strategy.budget_note
        assert report.decision.how == f"{report.sizing.how}; {report.strategy.budget_note}"
    else:
        s = report.strategy
        assert report.decision.type == "SKIP" and s.code == "over_budget" and s.min_max_loss > budget
        need = account_needed(s.min_max_loss, confidence=conf)
        assert need > account
        why = report.decision.why
        assert f"needs an account of at least ${need:,.0f} at these caps" in why
        fits = [(w, x / 10) for w, x in s.candidates if x / 10 <= budget and (w / 10) == round(w / 10)]
        w, x = fits[0]
        assert f"XSP (Mini-SPX, 1/10 of SPX, cash-settled) would fit: the same spread {w / 10:g} points wide" in why
        assert f"≈ ${x:,.2f} max loss per contract" in why
        assert report.decision.what == "SKIP SPX bull call spread (over budget)"
        assert report.sizing.contracts == 0 and report.decision.how == report.sizing.how
