"""The decision log: sentences, ids, round trips, filters, alerts, crashes, concurrency, schema versions."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings, strategies as st

import research_lib
import research_lib.records.decisions.log as decisions_module  # where the patched names live
from research_lib.core.chain import NY, ResearchLibError
from research_lib.core.sizing import TradeStats, size_position
from research_lib.records.decisions import (
    ALERT_COLUMNS,
    DB_NAME,
    DECISION_COLUMNS,
    SCHEMA_VERSION,
    DecisionError,
    DecisionLog,
    DecisionLogError,
    DecisionNotFoundError,
    DecisionType,
    DuplicateDecisionError,
    MarketContext,
    SchemaVersionError,
    TradeDecision,
    describe_how,
    describe_what,
    describe_why,
    format_gex,
    make_decision_id,
    parse_decision_id,
)


@dataclasses.dataclass(frozen=True)
class Alert:
    """Shaped like research_lib.alerts.Alert (the log takes any object with these attributes)."""

    rule: str
    severity: str
    message: str
    value: float | None = None
    threshold: float | None = None
    underlying: str | None = None
    date: dt.date | None = None


CTX = MarketContext("SPY", spot=584.2, vix=14.1, regime="positive gamma", net_gex=2.45e9, zero_gamma=575.0,
                    source="cboe_csv:spy_2024-03-15.csv")
SIZING = size_position(50_000, 500, TradeStats(0.68, 0.15, 0.25, 120))
LEGS = ({"side": "SELL", "right": "P", "strike": 580.0, "expiration": "2024-04-29", "quantity": 4},
        {"side": "BUY", "right": "P", "strike": 575.0, "expiration": "2024-04-29", "quantity": 4})


def entry(ts="2024-03-15 10:30:00", underlying="SPY", type="ENTRY", source="paper", **kw) -> TradeDecision:
    ctx = dataclasses.replace(CTX, underlying=underlying)
    contracts = 0 if str(type).upper() == "SKIP" else SIZING.contracts
    fields = dict(what=describe_what("SKIP" if contracts == 0 else "SELL", contracts, underlying,
                                     "Bull Put Spread", (580, 575), 45),
                  why=describe_why(ctx, iv_rank=45), context=ctx, sizing=SIZING, timestamp=ts,
                  legs=LEGS if contracts else (), strategy="Bull Put Spread")
    fields.update(kw)
    return TradeDecision.create(type, source=source, **fields)


@pytest.fixture
def log(tmp_path) -> DecisionLog:
    return DecisionLog(tmp_path / DB_NAME)


# --------------------------------------------------------------------------------------------------
# sentences


def test_reference_sentences():
    assert describe_what("SELL", 5, "SPY", "Bull Put Spread", (580, 575), 45) == \
        "SELL 5x SPY Bull Put Spread 580/575 45DTE"
    assert describe_what("buy", 2, "spx", "Iron Condor", [5800, 5790.0, 5900, 5910.5], 0) == \
        "BUY 2x SPX Iron Condor 5800/5790/5900/5910.5 0DTE"
    assert describe_what("SKIP", 0, "QQQ", "Bull Put Spread") == "SKIP QQQ Bull Put Spread"
    assert describe_what("CLOSE", None, "SPY", strikes=582.5) == "CLOSE SPY 582.5"
    assert describe_why(CTX, iv_rank=45) == ("Positive GEX +2.45B with 45% IV rank; spot 584.20 is 1.57% above "
                                             "zero gamma 575.00; regime positive gamma; VIX 14.1.")
    neg = MarketContext("SPX", 5012.5, vix=24.0, net_gex=-8.5e8, zero_gamma=5100.0, modelled=True)
    assert describe_why(neg, reasons=["Put wall 5000 holds."]) == (
        "Negative GEX -850.00M; spot 5,012.50 is 1.75% below zero gamma 5,100.00; VIX 24.0; modelled chain; "
        "Put wall 5000 holds.")
    assert describe_why(MarketContext("SPY", 500)) == "GEX unknown; spot 500.00."
    assert describe_how(SIZING) == ("Half-Kelly 4.4% of $50,000 = $2,200 at risk; $500 max loss per contract "
                                    "→ 4 contracts ($2,000)")
    assert describe_how(SIZING, "take profit at 50%, stop at 2x credit").endswith(
        "($2,000); take profit at 50%, stop at 2x credit")
    assert describe_how() == "No position."


@pytest.mark.parametrize("value, text", [
    (2.45e9, "+2.45B"), (-8.5e8, "-850.00M"), (1.2e12, "+1.20T"), (12_300, "+12.30K"), (-5.0, "-5.00"),
    (0.0, "+0.00"), (None, "n/a"), (float("nan"), "n/a"),
])
def test_format_gex(value, text):
    assert format_gex(value) == text


@pytest.mark.parametrize("call", [
    lambda: describe_what("", 5, "SPY"),
    lambda: describe_what("SELL", -1, "SPY"),
    lambda: describe_what("SELL", 2.5, "SPY"),
    lambda: describe_what("SELL", 5, ""),
    lambda: describe_what("SELL", 5, "SPY", strikes=(580, -575)),
    lambda: describe_what("SELL", 5, "SPY", dte=-3),
    lambda: describe_why(CTX, iv_rank=145),
    lambda: describe_why({"spot": 500}),
    lambda: describe_how(object()),
])
def test_bad_sentence_inputs(call):
    with pytest.raises(DecisionError):
        call()


# --------------------------------------------------------------------------------------------------
# ids


def test_decision_id_format():
    assert make_decision_id("2024-03-15 10:30:05", 7) == "DEC-2024031510300507"
    # tz-aware input is shown in New York time
    assert make_decision_id(pd.Timestamp("2024-03-15 14:30:05", tz="UTC"), 0) == "DEC-2024031510300500"
    second, seq = parse_decision_id("DEC-2024031510300507")
    assert second == pd.Timestamp("2024-03-15 10:30:05", tz=NY) and seq == 7
    for bad in (100, -1, 1.0, True):
        with pytest.raises(DecisionError, match="seq"):
            make_decision_id("2024-03-15", bad)
    for bad in ("DEC-20240315103005", "dec-2024031510300507", "DEC-2024133110300507", 2024031510300507):
        with pytest.raises(DecisionError, match="DEC-YYYYMMDDHHMMSSNN|valid date"):
            parse_decision_id(bad)


@settings(max_examples=200, deadline=None)
@given(ts=st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2099, 12, 31)),
       seq=st.integers(0, 99))
def test_decision_id_round_trip(ts, seq):
    did = make_decision_id(ts, seq)
    assert len(did) == 20 and did.startswith("DEC-") and did[4:].isdigit()
    second, back = parse_decision_id(did)
    assert back == seq and second.strftime("%Y%m%d%H%M%S") == ts.strftime("%Y%m%d%H%M%S")


def test_ids_count_up_within_a_second_and_spill_into_the_next(tmp_path):
    log = DecisionLog(tmp_path / DB_NAME, durable=False)    # 100+ commits: skip the fsyncs
    ids = [log.record(entry(f"2024-03-15 10:30:00.{i:06d}")).decision_id for i in range(3)]
    assert ids == ["DEC-2024031510300000", "DEC-2024031510300001", "DEC-2024031510300002"]
    assert log.record(entry("2024-03-15 10:30:01")).decision_id == "DEC-2024031510300100"
    for _ in range(97):
        log.record(entry("2024-03-15 10:30:00"))
    # 100 decisions at 10:30:00 use 00..99; the next takes the next second with a free number
    assert log.record(entry("2024-03-15 10:30:00")).decision_id == "DEC-2024031510300101"
    df = log.read()
    assert df["decision_id"].is_unique and len(df) == 102
    assert (df["timestamp"].dt.floor("s") <= pd.Timestamp("2024-03-15 10:30:01", tz=NY)).all()


def test_a_decision_can_carry_its_own_id_once(log):
    d = dataclasses.replace(entry(), decision_id="DEC-2024031510300042")
    assert log.record(d).decision_id == "DEC-2024031510300042"
    with pytest.raises(DuplicateDecisionError, match="DEC-2024031510300042"):
        log.record(d)
    assert log.record(entry()).decision_id == "DEC-2024031510300043"
    assert log.count() == 2


# --------------------------------------------------------------------------------------------------
# records and round trips


def test_record_and_read_back(log):
    alerts = [Alert("gex_flip", "warning", "net GEX turned positive", 2.45e9, 0.0, "SPY", dt.date(2024, 3, 15)),
              Alert("vix_spike", "info", "VIX below 15", 14.1, 15.0)]
    stored = log.record(entry(), alerts=alerts)
    assert stored.decision_id == "DEC-2024031510300000"
    assert log.get(stored.decision_id) == stored

    df = log.read()
    assert list(df.columns) == list(DECISION_COLUMNS) and len(df) == 1
    row = df.iloc[0]
    assert row["timestamp"] == pd.Timestamp("2024-03-15 10:30", tz=NY) and str(df["timestamp"].dt.tz) == NY
    assert row["what"] == "SELL 4x SPY Bull Put Spread 580/575 45DTE"
    assert row["how"] == SIZING.how
    assert row["type"] == "ENTRY" and row["underlying"] == "SPY" and row["source"] == "paper"
    assert (row["spot"], row["vix"], row["net_gex"], row["zero_gamma"]) == (584.2, 14.1, 2.45e9, 575.0)
    assert row["regime"] == "positive gamma" and not pd.isna(row["modelled"]) and not row["modelled"]
    assert row["legs"] == list(LEGS)
    assert (row["contracts"], row["risk_budget"], row["risk_used"]) == (4, 2200.0, 2000.0)
    assert row["kelly"] == pytest.approx(0.088) and row["fractional_kelly"] == pytest.approx(0.044)
    assert pd.isna(row["capped_by"]) and row["confidence"] == 100.0
    assert df["contracts"].dtype == "int64" and df["spot"].dtype == "float64"

    al = log.read_alerts()
    assert list(al.columns) == list(ALERT_COLUMNS) and len(al) == 2
    assert (al["decision_id"] == stored.decision_id).all()
    assert (al["timestamp"] == stored.timestamp).all()
    assert al["rule"].tolist() == ["gex_flip", "vix_spike"]
    assert al.loc[0, "date"] == dt.date(2024, 3, 15) and al.loc[1, "date"] is None
    assert al.loc[0, "value"] == 2.45e9 and al.loc[1, "threshold"] == 15.0 and pd.isna(al.loc[1, "underlying"])


def test_empty_log_reads_empty_frames_with_the_columns(log):
    df, al = log.read(), log.read_alerts()
    assert df.empty and list(df.columns) == list(DECISION_COLUMNS)
    assert al.empty and list(al.columns) == list(ALERT_COLUMNS)
    assert log.count() == 0 and log.schema_version == SCHEMA_VERSION


def test_skip_and_exit_decisions(log):
    skip_sizing = size_position(50_000, 500, TradeStats(0.4, 0.15, 0.25, 200))
    skip = TradeDecision.create(DecisionType.SKIP, source="paper", context=CTX, sizing=skip_sizing,
                                what=describe_what("SKIP", 0, "SPY", "Bull Put Spread"),
                                why=describe_why(CTX, reasons=skip_sizing.reasons[-1:]),
                                timestamp="2024-03-15 10:31")
    assert skip.contracts == 0 and skip.how == "Kelly -36% ≤ 0 (no edge) → 0 contracts"
    assert skip.capped_by == "negative Kelly"
    opened = log.record(entry())
    closed = log.record(TradeDecision.create("exit", source="paper", context=CTX, contracts=4,
                                             what="BUY 4x SPY Bull Put Spread 580/575 30DTE",
                                             why="Took 50% of the credit.", how="Closed at $0.60 debit.",
                                             timestamp="2024-03-30 11:00", ref_id=opened.decision_id))
    log.record(skip)
    assert log.get(closed.decision_id).ref_id == opened.decision_id
    assert log.read()["type"].tolist() == ["ENTRY", "SKIP", "EXIT"]
    plain = TradeDecision.create("SKIP", source="scan", underlying="qqq", what="SKIP QQQ", why="No signal.")
    assert plain.how == "No position." and plain.underlying == "QQQ" and plain.context is None
    assert plain.timestamp.tz is not None and str(plain.timestamp.tz) == NY
    stored = log.record(plain)
    assert log.get(stored.decision_id) == stored and log.get(stored.decision_id).context is None
    assert pd.isna(log.read(underlying="QQQ")["modelled"].iloc[0])


def test_legs_are_normalised_to_json(log):
    Leg = collections.namedtuple("Leg", "side strike expiration")

    @dataclasses.dataclass(frozen=True)
    class DataLeg:
        side: DecisionType
        strike: np.float64
        quantity: np.int64
        expiration: dt.date
        iv: float

    d = entry(legs=[Leg("SELL", 580, dt.date(2024, 4, 29)),
                    DataLeg(DecisionType.EXIT, np.float64(575.0), np.int64(4), dt.date(2024, 4, 29), float("nan")),
                    {"greeks": {"delta": np.float32(-0.25)}, "tags": ("a", "b"),
                     "at": pd.Timestamp("2024-03-15 10:30", tz=NY)}])
    assert d.legs == (
        {"side": "SELL", "strike": 580, "expiration": "2024-04-29"},
        {"side": "EXIT", "strike": 575.0, "quantity": 4, "expiration": "2024-04-29", "iv": None},
        {"greeks": {"delta": -0.25}, "tags": ["a", "b"], "at": "2024-03-15T10:30:00-04:00"},
    )
    assert log.get(log.record(d).decision_id).legs == d.legs
    for bad in ([{"x": float("inf")}], [{1: "a"}], [{"x": object()}], [object()], {"side": "SELL"}, "legs"):
        with pytest.raises(DecisionError, match="legs"):
            entry(legs=bad)


@pytest.mark.parametrize("change, match", [
    (dict(type="BUY"), "type"),
    (dict(contracts=0), "SKIP"),
    (dict(type="SKIP", contracts=3), "SKIP trades 0"),
    (dict(contracts=-1), "contracts"),
    (dict(contracts=2.0), "contracts"),
    (dict(underlying="QQQ"), "context.underlying"),
    (dict(what=""), "what"),
    (dict(why=None), "why"),
    (dict(how="   "), "how"),
    (dict(source=""), "source"),
    (dict(timestamp="not a time"), "timestamp"),
    (dict(timestamp=None), "timestamp"),
    (dict(timestamp=pd.NaT), "timestamp"),
    (dict(decision_id="DEC-1"), "decision_id"),
    (dict(ref_id="E-1"), "ref_id"),
    (dict(risk_budget=float("inf")), "risk_budget"),
    (dict(risk_budget="2200"), "risk_budget"),
    (dict(confidence=101), "confidence"),
    (dict(context={"spot": 1}), "MarketContext"),
])
def test_bad_decisions_raise_decision_error(change, match):
    base = entry()
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(TradeDecision)}
    fields.update(change)
    with pytest.raises(DecisionError, match=match) as info:
        TradeDecision(**fields)
    assert isinstance(info.value, ResearchLibError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("kwargs, match", [
    (dict(spot=0), "spot"), (dict(spot=float("nan")), "spot"), (dict(spot=None), "spot"),
    (dict(spot=100, vix=-1), "vix"), (dict(spot=100, zero_gamma=-5), "zero_gamma"),
    (dict(spot=100, net_gex="big"), "net_gex"), (dict(spot=100, modelled="no"), "modelled"),
    (dict(spot=100, regime=""), "regime"),
])
def test_bad_market_context(kwargs, match):
    with pytest.raises(DecisionError, match=match):
        MarketContext("SPY", **kwargs)


def test_market_context_normalises():
    c = MarketContext("_spx", np.float64(5000), vix=float("nan"), net_gex=np.float32(1e9), regime=DecisionType.SKIP)
    assert c.underlying == "SPX" and c.vix is None and c.net_gex == pytest.approx(1e9) and c.regime == "SKIP"
    assert type(c.spot) is float


def test_timestamps_are_new_york_to_the_microsecond():
    d = entry(ts=pd.Timestamp("2024-03-15 14:30:00.123456789", tz="UTC"))
    assert d.timestamp == pd.Timestamp("2024-03-15 10:30:00.123456", tz=NY) and str(d.timestamp.tz) == NY
    assert entry(ts=dt.datetime(2024, 3, 15, 10, 30)).timestamp.utcoffset() == dt.timedelta(hours=-4)


# --------------------------------------------------------------------------------------------------
# filters


@pytest.fixture
def filled(log) -> DecisionLog:
    for ts, und, typ, src in [
        ("2024-03-13 10:00", "SPY", "ENTRY", "paper"),
        ("2024-03-14 09:45", "SPX", "SKIP", "paper"),
        ("2024-03-14 15:59:59.999999", "SPY", "EXIT", "paper"),
        ("2024-03-15 00:00", "QQQ", "ENTRY", "backtest:a"),
        ("2024-03-15 23:59:59", "SPY", "SKIP", "backtest:a"),
        ("2024-03-18 10:00", "SPX", "ENTRY", "paper"),
    ]:
        log.record(entry(ts, und, typ, src))
    return log


def test_read_filters(filled):
    log = filled

    def days(df):
        return [f"{t:%m-%d %H:%M}" for t in df["timestamp"]]

    assert len(log.read()) == 6
    assert days(log.read(start="2024-03-14", end="2024-03-15")) == [
        "03-14 09:45", "03-14 15:59", "03-15 00:00", "03-15 23:59"]          # whole New York days
    assert days(log.read(start=dt.date(2024, 3, 15))) == ["03-15 00:00", "03-15 23:59", "03-18 10:00"]
    assert days(log.read(end="2024-03-13")) == ["03-13 10:00"]
    # instants: both ends inclusive
    assert len(log.read(start="2024-03-14 15:59:59.999999", end="2024-03-15 00:00")) == 2
    assert len(log.read(start=pd.Timestamp("2024-03-15 04:00", tz="UTC"))) == 3  # = 00:00 New York
    assert log.read(type="ENTRY")["underlying"].tolist() == ["SPY", "QQQ", "SPX"]
    assert log.read(type=["skip", DecisionType.EXIT])["type"].tolist() == ["SKIP", "EXIT", "SKIP"]
    assert log.read(underlying="spy")["type"].tolist() == ["ENTRY", "EXIT", "SKIP"]
    assert len(log.read(underlying=["SPX", "QQQ"], type="ENTRY", start="2024-03-15")) == 2
    assert log.read(source="backtest:a")["underlying"].tolist() == ["QQQ", "SPY"]
    assert log.read(underlying="IWM").empty


@pytest.mark.parametrize("kwargs, match", [
    (dict(type="BUY"), "type"), (dict(type=[]), "empty"), (dict(underlying=""), "underlying"),
    (dict(start="2024-03-16", end="2024-03-15"), "after"), (dict(start="yesterday-ish"), "start"),
])
def test_bad_filters(log, kwargs, match):
    with pytest.raises(DecisionError, match=match):
        log.read(**kwargs)


# --------------------------------------------------------------------------------------------------
# alerts


def test_alerts_on_their_own_and_tied_to_decisions(log):
    d = log.record(entry())
    assert log.record_alerts([Alert("pin_risk", "warning", "pin at 580", 580.0, None, "spy", dt.date(2024, 3, 15))],
                             timestamp="2024-03-15 15:30") == 1
    assert log.record_alerts([Alert("late", "info", "tied", underlying="SPY")], decision_id=d.decision_id,
                             timestamp="2024-03-15 16:00") == 1
    assert log.record_alerts([]) == 0

    @dataclasses.dataclass
    class Timed:
        rule: str = "own"
        severity: str = "critical"
        message: str = "has its own time"
        timestamp: str = "2024-03-14 12:00"
        date: pd.Timestamp = pd.Timestamp("2024-03-14 23:30", tz="UTC")  # 19:30 in New York: the 14th

    log.record_alerts([Timed()])
    al = log.read_alerts()
    assert al["rule"].tolist() == ["own", "pin_risk", "late"]
    assert al.loc[0, "date"] == dt.date(2024, 3, 14) and pd.isna(al.loc[0, "decision_id"])
    assert al.loc[1, "underlying"] == "SPY" and pd.isna(al.loc[1, "threshold"])
    assert log.read_alerts(decision_id=d.decision_id)["rule"].tolist() == ["late"]
    assert log.read_alerts(start="2024-03-15", severity="warning")["rule"].tolist() == ["pin_risk"]
    assert log.read_alerts(rule=["own", "late"], underlying="spy")["rule"].tolist() == ["late"]

    with pytest.raises(DecisionError, match="not in the log"):
        log.record_alerts([Alert("x", "info", "y")], decision_id="DEC-2099010100000000")
    assert len(log.read_alerts()) == 3


@pytest.mark.parametrize("alert, match", [
    (object(), "rule, severity, message"),
    (Alert("", "info", "m"), "rule"),
    (Alert("r", "info", "m", value="high"), "value"),
    (Alert("r", "info", "m", threshold=float("inf")), "threshold"),
])
def test_bad_alerts_write_nothing(log, alert, match):
    with pytest.raises(DecisionError, match=match):
        log.record(entry(), alerts=[Alert("ok", "info", "fine"), alert])
    assert log.count() == 0 and log.read_alerts().empty


# --------------------------------------------------------------------------------------------------
# atomicity: crashes and errors mid-write

CRASHER = textwrap.dedent("""
    import os, signal, sys
    sys.path[:0] = [sys.argv[1], sys.argv[2]]
    import research_lib.decisions.log as dm
    from test_decisions import Alert, entry
    path, how = sys.argv[3], sys.argv[4]
    def crash(conn, decision_id):
        # the decision row is in, its alerts and the commit are not
        assert conn.in_transaction
        assert conn.execute("SELECT count(*) FROM decisions WHERE decision_id = ?", (decision_id,)).fetchone()[0] == 1
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(17)
    dm._after_decision_insert = crash
    dm.DecisionLog(path).record(entry("2024-03-15 11:00"), alerts=[Alert("a", "info", "lost")])
    sys.exit(0)
""")


@pytest.mark.parametrize("how", ["kill", "exit"])
def test_crash_mid_write_leaves_no_partial_row(tmp_path, how):
    path = tmp_path / DB_NAME
    log = DecisionLog(path)
    kept = log.record(entry("2024-03-15 10:00"), alerts=[Alert("kept", "info", "survives")])
    proc = subprocess.run([sys.executable, "-c", CRASHER, str(ROOT), str(Path(__file__).parent), str(path), how],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == (-signal.SIGKILL if how == "kill" else 17), proc.stderr

    reopened = DecisionLog(path)                                   # the file still opens
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert reopened.read()["decision_id"].tolist() == [kept.decision_id]   # no partial decision ...
    assert reopened.read_alerts()["rule"].tolist() == ["kept"]            # ... and no orphan alert
    later = reopened.record(entry("2024-03-15 11:00"), alerts=[Alert("after", "info", "written")])
    assert later.decision_id == "DEC-2024031511000000"             # the id the crashed write never got
    assert reopened.count() == 2 and len(reopened.read_alerts()) == 2


def test_an_error_inside_the_transaction_rolls_everything_back(log, monkeypatch):
    def fail(conn, decision_id):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(decisions_module, "_after_decision_insert", fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        log.record(entry(), alerts=[Alert("a", "info", "b")])
    monkeypatch.undo()
    assert log.count() == 0 and log.read_alerts().empty
    assert log.record(entry()).decision_id == "DEC-2024031510300000"


# --------------------------------------------------------------------------------------------------
# concurrency

WRITER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    sys.path[:0] = [sys.argv[1], sys.argv[2]]
    from research_lib.records.decisions import DecisionLog
    from test_decisions import Alert, entry
    path, wid, n, gate = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), Path(sys.argv[6])
    log = DecisionLog(path)
    (gate.parent / f"ready-{wid}").touch()
    deadline = time.time() + 60
    while not gate.exists() and time.time() < deadline:
        time.sleep(0.001)
    ids = [log.record(entry("2024-03-15 10:30:00", source=f"writer-{wid}"),
                      alerts=[Alert("w", "info", str(wid))]).decision_id for _ in range(n)]
    print(json.dumps(ids))
""")


def test_two_processes_writing_at_once_get_unique_ids(tmp_path):
    path, gate, workers, n = tmp_path / DB_NAME, tmp_path / "go", 2, 30
    DecisionLog(path)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(Path(__file__).parent), str(path),
                               str(w), str(n), str(gate)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(workers)]
    deadline = time.time() + 60
    while len(list(tmp_path.glob("ready-*"))) < workers and time.time() < deadline:
        time.sleep(0.01)
    gate.touch()                                                   # both start writing together
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids.extend(json.loads(out))
    expected = {f"DEC-20240315103000{k:02d}" for k in range(workers * n)}
    assert len(ids) == workers * n and set(ids) == expected        # every id once, none lost
    log = DecisionLog(path)
    df = log.read()
    assert set(df["decision_id"]) == expected and df["source"].value_counts().tolist() == [n, n]
    al = log.read_alerts()
    assert len(al) == workers * n and set(al["decision_id"]) == expected
    # each alert belongs to the decision its writer recorded
    merged = al.merge(df[["decision_id", "source"]], on="decision_id")
    assert (merged["source"] == "writer-" + merged["message"]).all()


def test_threads_share_a_log_object(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    log = DecisionLog(tmp_path / DB_NAME, durable=False)
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda i: log.record(entry()).decision_id, range(40)))
    assert sorted(ids) == [f"DEC-20240315103000{k:02d}" for k in range(40)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_connection(tmp_path):
    with DecisionLog(tmp_path / DB_NAME) as log:
        log.record(entry())                                        # the parent's connection is open
        pid = os.fork()
        if pid == 0:                                               # pragma: no cover - runs in the child
            try:
                log.record(entry())
            finally:
                os._exit(0 if log.count() == 2 else 1)
        assert os.waitpid(pid, 0)[1] == 0
        assert log.record(entry()).decision_id == "DEC-2024031510300002"
        assert log.count() == 3


# --------------------------------------------------------------------------------------------------
# the file: location, WAL, schema versions


def test_default_location_is_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "root"))
    log = DecisionLog()
    assert log.path == tmp_path / "root" / "decisions.sqlite" and log.path.exists()
    with sqlite3.connect(log.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        # a new log is created at version 1 and migrated: every step is stamped
        assert conn.execute("SELECT version, library_version FROM schema_version ORDER BY version").fetchall() == [
            (v, research_lib.__version__) for v in range(1, SCHEMA_VERSION + 1)]


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / DB_NAME
    DecisionLog(path).record(entry())
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaVersionError, match="newer than this research_lib") as info:
        DecisionLog(path)
    assert info.value.found == SCHEMA_VERSION + 1 and info.value.supported == SCHEMA_VERSION
    assert isinstance(info.value, DecisionLogError) and isinstance(info.value, ResearchLibError)


def test_a_log_upgraded_behind_an_open_handle_is_refused(tmp_path):
    path = tmp_path / DB_NAME
    log = DecisionLog(path)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaVersionError):
        log.record(entry())
    with pytest.raises(SchemaVersionError):
        log.read()


def test_version_table_and_pragma_must_agree(tmp_path):
    path = tmp_path / DB_NAME
    DecisionLog(path)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM schema_version")
    with pytest.raises(SchemaVersionError, match="schema_version table"):
        DecisionLog(path)


def test_migration_to_a_future_schema(tmp_path, monkeypatch):
    path = tmp_path / DB_NAME
    old = DecisionLog(path).record(entry())
    now, future = SCHEMA_VERSION, SCHEMA_VERSION + 1

    # a research_lib with the next schema but no way to get there refuses, and changes nothing
    monkeypatch.setattr(decisions_module, "SCHEMA_VERSION", future)
    steps = dict(decisions_module.MIGRATIONS)
    monkeypatch.setattr(decisions_module, "MIGRATIONS", steps)
    with pytest.raises(SchemaVersionError, match=f"no migration from decision log schema {now} to {future}"):
        DecisionLog(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == now

    # with a migration step, the file is upgraded in place and its rows kept
    steps[now] = ["ALTER TABLE decisions ADD COLUMN note TEXT"]
    upgraded = DecisionLog(path)
    assert upgraded.schema_version == future
    assert upgraded.get(old.decision_id) == old
    upgraded.record(entry("2024-03-16 10:00"))
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")] == list(
            range(1, future + 1))
        assert "note" in [r[1] for r in conn.execute("PRAGMA table_info(decisions)")]
    # a new log runs every migration from version 1
    fresh = DecisionLog(tmp_path / "fresh.sqlite")
    assert fresh.schema_version == future

    # and this research_lib now refuses the upgraded file
    monkeypatch.undo()
    with pytest.raises(SchemaVersionError, match=f"schema version {future} is newer"):
        DecisionLog(path)


def _v1_log(path, monkeypatch) -> None:
    """A decision log exactly as the schema-1 research_lib wrote it, holding one decision."""
    with monkeypatch.context() as m:
        m.setattr(decisions_module, "SCHEMA_VERSION", 1)
        m.setattr(decisions_module, "MIGRATIONS", {})
        DecisionLog(path).close()
    with sqlite3.connect(path) as conn:
        assert "trading_date" not in [r[1] for r in conn.execute("PRAGMA table_info(decisions)")]
        conn.execute(
            "INSERT INTO decisions (decision_id, ts_utc_us, timestamp, source, type, underlying, what, why, how, "
            "spot, regime, legs, contracts, recorded_at) VALUES ('DEC-2026071510300000', 1784125800000000, "
            "'2026-07-15T10:30:00-04:00', 'research-lib', 'SKIP', 'SPX', 'SKIP SPX bull call spread', 'why', "
            "'No position.', 6250.0, 'POSITIVE_GAMMA', '[]', 0, '2026-07-15T14:30:00+00:00')")


def test_a_schema_1_log_is_migrated_in_place(tmp_path, monkeypatch):
    path = tmp_path / DB_NAME
    _v1_log(path, monkeypatch)
    log = DecisionLog(path)
    assert log.schema_version == SCHEMA_VERSION == 2
    # the old row is kept, with an unknown trading date
    old = log.get("DEC-2026071510300000")
    assert old.trading_date is None and old.context.regime == "POSITIVE_GAMMA" and old.type == "SKIP"
    assert log.read()["trading_date"].tolist() == [None]
    # ... which last_for never returns (its wall-clock time says nothing about the chain's day)
    assert log.last_for("SPX") is None and log.last_for("SPX", before="2026-08-21") is None
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 2]
        assert "trading_date" in [r[1] for r in conn.execute("PRAGMA table_info(decisions)")]
        assert conn.execute("SELECT sql FROM sqlite_master WHERE name = 'decisions_by_underlying_day'").fetchone()[0] \
            == "CREATE INDEX decisions_by_underlying_day ON decisions (underlying, trading_date)"
    # new decisions carry theirs
    log.record(entry(trading_date="2026-08-20", underlying="SPX"))
    assert log.last_for("SPX", before="2026-08-21").trading_date == dt.date(2026, 8, 20)


def test_a_failed_migration_leaves_the_schema_1_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / DB_NAME
    _v1_log(path, monkeypatch)
    broken = {1: (*decisions_module.MIGRATIONS[1], "CREATE INDEX broken ON no_such_table (x)")}
    monkeypatch.setattr(decisions_module, "MIGRATIONS", broken)
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        DecisionLog(path)
    with sqlite3.connect(path) as conn:     # one transaction: the column added before the failure is gone too
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert "trading_date" not in [r[1] for r in conn.execute("PRAGMA table_info(decisions)")]
        assert [r[0] for r in conn.execute("SELECT version FROM schema_version")] == [1]
        assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == 1
    monkeypatch.undo()
    assert DecisionLog(path).schema_version == 2


def test_last_for_is_the_previous_trading_day_not_the_last_logged(log):
    spx = dict(underlying="SPX")
    # logged in wall-clock order 08-21's chain first, then a re-run of 07-15's, then 08-20's
    d0821 = log.record(entry("2026-08-21 16:30", trading_date="2026-08-21", **spx))
    d0715 = log.record(entry("2026-08-22 09:00", trading_date=dt.date(2026, 7, 15), **spx))
    d0820a = log.record(entry("2026-08-22 10:00", trading_date="2026-08-20", **spx))
    d0820b = log.record(entry("2026-08-22 11:00", trading_date="2026-08-20", type="SKIP", **spx))
    log.record(entry("2026-08-22 12:00", trading_date="2026-08-21", underlying="QQQ"))
    log.record(entry("2026-08-22 12:30", **spx))                         # no trading date: never returned
    assert log.last_for("SPX", before="2026-08-21") == d0820b            # that day's last decision
    assert log.last_for("spx", before=dt.date(2026, 8, 20)) == d0715
    assert log.last_for("SPX", before="2026-07-15") is None
    assert log.last_for("SPX", before="2026-08-22") == d0821
    assert log.last_for("SPX") == d0821
    assert log.last_for("SPX", before=pd.Timestamp("2026-08-21 09:30", tz=NY)) == d0820b
    assert log.last_for("SPX", before="2026-08-21", source="backtest:x") is None
    assert d0820a.trading_date == dt.date(2026, 8, 20)
    assert log.read(underlying="SPX")["trading_date"].tolist()[:2] == [dt.date(2026, 8, 21), dt.date(2026, 7, 15)]
    with log._connect() as conn:            # one indexed lookup, not a scan of the log
        plan = " ".join(r[-1] for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM decisions WHERE underlying = ? AND trading_date < ? "
            "ORDER BY trading_date DESC, ts_utc_us DESC, decision_id DESC LIMIT 1", ("SPX", "2026-08-21")))
    assert "decisions_by_underlying_day" in plan
    with pytest.raises(DecisionError, match="before"):
        log.last_for("SPX", before="2026-02-30")
    with pytest.raises(DecisionError, match="trading_date"):
        entry(trading_date="yesterday")


def test_files_that_are_not_decision_logs(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database, just some text that is long enough" * 20)
    with pytest.raises(DecisionLogError, match="not a usable SQLite database"):
        DecisionLog(junk)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE prices (x REAL)")
    with pytest.raises(DecisionLogError, match="not a research_lib decision log"):
        DecisionLog(other)
    with pytest.raises(DecisionLogError, match="is a folder"):
        DecisionLog(tmp_path)


def test_durable_is_a_switch(tmp_path):
    fast = DecisionLog(tmp_path / DB_NAME, durable=False)
    assert fast.record(entry()).decision_id == "DEC-2024031510300000"
    assert DecisionLog(tmp_path / DB_NAME).count() == 1
    with pytest.raises(DecisionError, match="durable"):
        DecisionLog(tmp_path / DB_NAME, durable="yes")


def test_get_unknown_id(log):
    with pytest.raises(DecisionNotFoundError, match="DEC-2024031510300000"):
        log.get("DEC-2024031510300000")
    with pytest.raises(DecisionError):
        log.get("nope")


# --------------------------------------------------------------------------------------------------
# fuzzed round trip: whatever text and numbers go in come back out

_text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() and "\x00" not in s)
_num = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(what=_text, why=_text, how=_text, source=_text, regime=st.one_of(st.none(), _text), net_gex=_num,
       budget=_num, leg_value=st.one_of(_text, _num, st.integers(-2**53, 2**53), st.booleans()),
       ts=st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2090, 1, 1)))
def test_fuzzed_decisions_round_trip(what, why, how, source, regime, net_gex, budget, leg_value, ts):
    ctx = MarketContext("SPY", 500.0, regime=regime, net_gex=net_gex)
    d = TradeDecision(timestamp=ts, source=source, type="ENTRY", underlying="SPY", what=what, why=why, how=how,
                      context=ctx, legs=[{"k": leg_value, "'; DROP TABLE decisions; --": 1}], contracts=1,
                      risk_budget=budget)
    with tempfile.TemporaryDirectory() as tmp:
        log = DecisionLog(Path(tmp) / DB_NAME, durable=False)
        stored = log.record(d)
        assert log.get(stored.decision_id) == stored
        row = log.read().iloc[0]
        assert (row["what"], row["why"], row["how"], row["source"]) == (d.what, d.why, d.how, d.source)
        assert row["timestamp"] == d.timestamp


@pytest.mark.parametrize("naive", ["2052-11-03 01:00:00", "2024-11-03 01:30:00", "2024-03-10 02:30:00"])
def test_decision_ids_across_daylight_saving_changes(naive):
    """Found by hypothesis in CI: a naive time in the repeated autumn hour could not be localised."""
    did = make_decision_id(naive, 3)
    second, seq = parse_decision_id(did)
    assert seq == 3 and second.tzinfo is not None
