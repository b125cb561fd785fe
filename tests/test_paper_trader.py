"""The paper trader end to end: open on one stored day, mark on later days, close by rule and by hand — every
fill and mark checked against the archive's quotes read independently (pandas on the raw parquet), on the
synthetic archive (a fresh clone) and on the real 2026 one; the exit rules on hand-built chains; reconciliation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import EOD_ARCHIVE, shared_file

from research_lib.core.chain import ChainSnapshot
from research_lib.core.exits import ExitRules
from research_lib.errors import OrderError, PaperConfigError, PositionNotFoundError
from research_lib.formatting import to_json
from research_lib.paper.broker import SimulatedBroker
from research_lib.paper.config import PaperConfig
from research_lib.paper.monitor import monitor
from research_lib.paper.trader import POSITION_COLUMNS, PaperTrader, stats_mapping
from research_lib.records.decisions import DecisionLog
from research_lib.records.paper import LegOrder, OrderRequest
from research_lib.records.paper.ledger import PaperLedger

NY = "America/New_York"


def _strict(text: str):
    def bad(token):
        raise ValueError(f"non-strict JSON token {token}")
    return json.loads(text, parse_constant=bad)


def _raw(path) -> pd.DataFrame:
    """The archive read with pandas alone: its clean rows by (day, expiration, strike, right)."""
    raw = pd.read_parquet(path, columns=["file_date", "price_date", "expiration", "strike", "cp", "bid", "ask",
                                         "flag"])
    raw = raw[(raw["flag"] == "OK") & (raw["file_date"] == raw["price_date"])]
    raw = raw.assign(day=pd.to_datetime(raw["price_date"]).dt.date, exp=pd.to_datetime(raw["expiration"]).dt.date,
                     cp=raw["cp"].astype(str))
    return raw.set_index(["day", "exp", "strike", "cp"]).sort_index()


def _quote(raw, day, leg) -> tuple[float, float]:
    rows = raw.loc[[(day, leg.expiration, leg.strike, leg.right)]]
    assert len(rows) == 1, (day, leg)
    return float(rows["bid"].iloc[0]), float(rows["ask"].iloc[0])


def _trader(tmp_path, **knobs) -> PaperTrader:
    cfg = PaperConfig(**knobs)
    return PaperTrader(cfg, ledger=PaperLedger(tmp_path / "paper.sqlite"), log=DecisionLog(tmp_path / "dec.sqlite"))


def _check_against_raw(trader, raw, position, days):
    """Every fill is the raw mid; every mark's P&L is Σ q × (raw mid − entry mid) × 100 × contracts."""
    entry_day = position.opened_at.tz_convert(NY).date()
    for leg in position.legs:
        bid, ask = _quote(raw, entry_day, leg)
        assert (leg.entry_bid, leg.entry_ask) == (bid, ask)
        assert leg.entry_fill == pytest.approx((bid + ask) / 2, abs=1e-12)
    for day in days:
        report = trader.mark(date=day.isoformat())
        (m,) = [m for m in report.marks if m.position_id == position.position_id]
        want = sum(leg.quantity * ((sum(_quote(raw, day, leg)) / 2) - leg.entry_mid) for leg in position.legs)
        assert m.unrealized_pnl == pytest.approx(want * 100 * position.contracts, abs=1e-6), day
        assert m.dte == (position.expiration - day).days
        status = _strict(to_json(trader.status().to_dict()))
        (p,) = [p for p in status["positions"] if p["id"] == position.position_id]
        legs_pnl = sum(leg["quantity"] * (leg["mark_mid"] - leg["entry_mid"]) for leg in p["legs"])
        assert p["unrealized_pnl"] == pytest.approx(legs_pnl * 100 * p["contracts"], abs=1e-6)
        for key in ("id", "strategy", "contracts", "entry_price", "mark", "unrealized_pnl", "pnl_pct", "dte", "legs"):
            assert key in p
        for leg in p["legs"]:
            assert set(leg) >= {"expiration", "strike", "right", "quantity", "entry_mid", "mark_mid"}


# ------------------------------------------------------------------------------------------------
# the synthetic archive (runs on a fresh clone)
@pytest.fixture
def synthetic_trader(tmp_path, synthetic):
    return _trader(tmp_path, source=str(synthetic.files["eod_archive"]), cash=1_000_000.0, strategy="bull_put",
                   dte=7, dte_tolerance=5, width=25.0, exit_dte=1, profit_target=None, stop_loss=None)


def test_synthetic_open_then_marks_match_the_raw_quotes(synthetic_trader, synthetic):
    t = synthetic_trader
    result = t.open(date="2024-03-01")
    assert result.position is not None, result.proposal.why_not
    pos = result.position
    assert [leg.quantity for leg in pos.legs] == [-1, 1] and pos.strategy == "bull_put"
    raw = _raw(synthetic.files["eod_archive"])
    _check_against_raw(t, raw, pos, [dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 6)])
    assert t.ledger.check() == []
    # cash: the credit at mid less the commission, then nothing until a close
    acct = t.ledger.account(t.name)
    assert acct.cash == pytest.approx(1_000_000 + pos.entry_price * 100 * pos.contracts - 0.65 * 2 * pos.contracts)


def test_placing_the_same_proposal_twice_records_one_position(synthetic_trader):
    t = synthetic_trader
    prop = t.propose(date="2024-03-01")
    assert prop.tradeable, prop.why_not
    first = t.place(prop)
    again = t.place(prop)
    assert again.position_id == first.position_id
    assert t.open(date="2024-03-01").position.position_id == first.position_id
    assert len(t.ledger.open_positions(t.name)) == 1
    assert len(t.log.read(type="ENTRY")) == 1                         # one ENTRY decision, not three


def test_a_closed_position_by_hand_and_its_exit_decision(synthetic_trader, synthetic):
    t = synthetic_trader
    pos = t.open(date="2024-03-01").position
    trade = t.close(pos.position_id, date="2024-03-05")
    raw = _raw(synthetic.files["eod_archive"])
    exit_mid = -sum(leg.quantity * sum(_quote(raw, dt.date(2024, 3, 5), leg)) / 2 for leg in pos.legs)
    assert trade.exit_price == pytest.approx(exit_mid, abs=1e-12) and trade.exit_reason == "manual"
    assert trade.realized_pnl == pytest.approx((pos.entry_price - exit_mid) * 100 * pos.contracts
                                               - 0.65 * 2 * pos.contracts * 2)
    exits = t.log.read(type="EXIT")
    assert len(exits) == 1 and exits["decision_id"].iloc[0] == t.ledger.closed_trade(pos.position_id).exit_decision_id
    assert "Closed by hand" in exits["why"].iloc[0]
    with pytest.raises(PositionNotFoundError, match="no open position"):
        t.close(pos.position_id, date="2024-03-06")
    stats = t.statistics()
    assert list(stats["strategy"]) == ["bull_put"] and int(stats["n_trades"].iloc[0]) == 1
    assert stats_mapping(t.ledger, t.name)["bull_put_spread"].n_trades == 1
    assert t.summary().realized_pnl == pytest.approx(trade.realized_pnl)
    assert t.summary().equity == pytest.approx(1_000_000 + trade.realized_pnl)


def test_bad_fixed_options_are_refused_by_name(synthetic_trader):
    with pytest.raises(PaperConfigError, match="short_delta"):
        synthetic_trader.propose(date="2024-03-01", short_delta=1.5)
    with pytest.raises(OrderError, match="strategy 'straddle'"):
        synthetic_trader.propose(date="2024-03-01", strategy="straddle")
    prop = synthetic_trader.propose(date="2024-03-01", strategy="bull_put", dte=300)
    assert not prop.tradeable and "no expiry" in prop.why_not
    with pytest.raises(OrderError, match="not tradeable"):
        synthetic_trader.place(prop)


def test_max_open_positions_blocks_a_new_entry(tmp_path, synthetic):
    t = _trader(tmp_path, source=str(synthetic.files["eod_archive"]), cash=1_000_000.0, strategy="bull_put", dte=7,
                dte_tolerance=5, width=25.0, exit_dte=1, max_open_positions=1)
    assert t.open(date="2024-03-01").position is not None
    blocked = t.open(date="2024-03-04")
    assert blocked.position is None and "maximum is 1" in blocked.proposal.why_not


# ------------------------------------------------------------------------------------------------
# the real archive
def test_real_open_mark_close_against_the_raw_archive(tmp_path):
    path = shared_file(EOD_ARCHIVE)
    t = _trader(tmp_path, source=str(path), cash=1_000_000.0, strategy="iron_condor", width=50.0,
                profit_target=None, stop_loss=None, exit_dte=None)
    pos = t.open(date="2026-06-15").position
    assert pos is not None and len(pos.legs) == 4
    raw = _raw(path)
    _check_against_raw(t, raw, pos, [dt.date(2026, 6, 22), dt.date(2026, 7, 1), dt.date(2026, 7, 15)])
    table = t.positions_table()
    assert list(table.columns) == list(POSITION_COLUMNS) and len(table) == 1
    trade = t.close(pos.position_id, date="2026-07-17")
    exit_mid = -sum(leg.quantity * sum(_quote(raw, dt.date(2026, 7, 17), leg)) / 2 for leg in pos.legs)
    assert trade.exit_price == pytest.approx(exit_mid, abs=1e-9)
    curve = t.equity_curve()
    assert curve["equity"].iloc[-1] == pytest.approx(1_000_000 + trade.realized_pnl, abs=1e-6)
    assert t.ledger.check() == []


def test_real_auto_decision_is_the_decision_core_sized_on_the_account(tmp_path):
    """``auto``: the same regime and strategy choice as ``decide`` on that chain, sized on the paper equity."""
    from research_lib.pipeline.decide import decide

    path = shared_file(EOD_ARCHIVE)
    t = _trader(tmp_path, source=str(path), cash=1_000_000.0)
    prop = t.propose(date="2026-06-15")
    ref = decide("SPX", str(path), date="2026-06-15", account=1_000_000.0, record=False)
    assert str(prop.regime) == str(ref.regime.regime)
    assert prop.decision.type == ref.decision.type
    assert (prop.decision.what == ref.decision.what) or not prop.tradeable


# ------------------------------------------------------------------------------------------------
# the exit rules through the monitor, on hand-built chains (answers known)
EXP = dt.date(2024, 3, 28)


def _chain(day: str, short=(2.0, 2.2), long_=(0.9, 1.1), *, drop_long=False, spot=100.0, time="15:00"):
    rows = []
    for k, (b, a) in ((95.0, short), (90.0, long_)):
        if k == 90.0 and drop_long:
            continue
        rows.append({"root": "SPXW", "expiration": pd.Timestamp(EXP), "settlement": "PM", "strike": k, "right": "P",
                     "bid": b, "ask": a, "last": np.nan, "volume": 1.0, "open_interest": 100.0, "iv": 0.2,
                     "delta": np.nan, "gamma": np.nan})
    return ChainSnapshot.create(underlying="SPX", spot=spot, source="hand", contracts=pd.DataFrame(rows),
                                quote_time=pd.Timestamp(f"{day} {time}").tz_localize(NY))


def _opened(tmp_path, name="t", contracts=2):
    ledger = PaperLedger(tmp_path / f"{name}.sqlite")
    ledger.ensure_account(name, 100_000.0)
    snap = _chain("2024-03-01")
    legs = tuple(LegOrder("SPXW", EXP, "PM", k, "P", q, b, a, snap.quote_time, "hand")
                 for k, q, (b, a) in ((95.0, -1, (2.0, 2.2)), (90.0, 1, (0.9, 1.1))))
    req = OrderRequest(account=name, client_order_id="OPEN-1", kind="open", strategy="bull_put", contracts=contracts,
                       legs=legs, created_at=snap.quote_time, max_loss=390.0)
    broker = SimulatedBroker(ledger)
    ledger.submit_order(req)
    pos = ledger.record_fill("OPEN-1", broker.submit(req))
    assert pos.entry_price == pytest.approx(1.10)                # 2.10 - 1.00
    return ledger, broker, pos


@pytest.mark.parametrize("rule,days,close_day", [
    # profit target 50% of 1.10 = 0.55 earned: mark <= 0.55. Marks 0.90, 0.70, 0.50 -> fires on day 3
    ("profit_target", [("2024-03-04", (1.6, 1.8), (0.7, 0.9)), ("2024-03-05", (1.4, 1.6), (0.7, 0.9)),
                       ("2024-03-06", (1.2, 1.4), (0.7, 0.9))], "2024-03-06"),
    # stop 200% of 1.10 = 2.20 lost: mark >= 3.30. Marks 2.10, 3.00, 3.40 -> day 3
    ("stop_loss", [("2024-03-04", (3.0, 3.2), (0.9, 1.1)), ("2024-03-05", (3.9, 4.1), (0.9, 1.1)),
                   ("2024-03-06", (4.3, 4.5), (0.9, 1.1))], "2024-03-06"),
    # DTE 7 before 2024-03-28: fires on 2024-03-21 (7 days), not 03-20 (8 days)
    ("exit_dte", [("2024-03-20", (2.0, 2.2), (0.9, 1.1)), ("2024-03-21", (2.0, 2.2), (0.9, 1.1))], "2024-03-21"),
])
def test_each_exit_rule_closes_on_the_known_day(tmp_path, rule, days, close_day):
    ledger, broker, pos = _opened(tmp_path)
    log = DecisionLog(tmp_path / "dec.sqlite")
    closed_on = None
    for day, short, long_ in days:
        report = monitor(ledger, "t", _chain(day, short, long_), broker=broker, rules=ExitRules(), log=log)
        if report.closed:
            (trade,) = report.closed
            closed_on = day
            break
    assert closed_on == close_day and trade.exit_reason == rule
    s_mid, l_mid = sum(days[-1][1]) / 2, sum(days[-1][2]) / 2
    assert trade.exit_price == pytest.approx(s_mid - l_mid)
    assert trade.realized_pnl == pytest.approx((1.10 - (s_mid - l_mid)) * 200 - 0.65 * 2 * 2 * 2)
    ex = log.read(type="EXIT")
    assert len(ex) == 1 and ex["decision_id"].iloc[0] == trade.exit_decision_id
    assert {"profit_target": "Profit target", "stop_loss": "Stop loss", "exit_dte": "DTE rule"}[rule] in ex["why"].iloc[0]
    stats = ledger.strategy_stats("t")
    assert int(stats["n_trades"].iloc[0]) == 1 and int(stats["wins"].iloc[0]) == (rule == "profit_target")
    assert ledger.check() == []


def test_expiry_settles_at_intrinsic_against_the_daily_close(tmp_path):
    ledger, broker, pos = _opened(tmp_path)
    daily = pd.DataFrame({"open": [93.0], "close": [92.0]}, index=pd.DatetimeIndex([pd.Timestamp(EXP)]))
    report = monitor(ledger, "t", _chain("2024-03-28", time="16:30", spot=92.5), broker=broker,
                     rules=ExitRules(exit_dte=None), daily=lambda: daily)
    (trade,) = report.closed
    # PM settlement at the close 92: the 95 put is worth 3, the 90 put 0 -> exit price 3.00, no commission
    assert trade.exit_reason == "expiry" and trade.exit_kind == "settlement"
    assert trade.exit_price == pytest.approx(3.0)
    assert trade.realized_pnl == pytest.approx((1.10 - 3.0) * 200 - 0.65 * 2 * 2)


def test_expiry_without_a_settlement_value_is_reported_and_left_open(tmp_path):
    ledger, broker, pos = _opened(tmp_path)
    report = monitor(ledger, "t", _chain("2024-03-29"), broker=broker, rules=ExitRules(exit_dte=None),
                     daily=lambda: None)
    assert report.closed == () and any("expiry fired but it was not closed" in p for p in report.problems)
    assert len(ledger.open_positions("t")) == 1


def test_a_missing_leg_is_reported_not_marked_and_not_closed(tmp_path):
    ledger, broker, pos = _opened(tmp_path)
    report = monitor(ledger, "t", _chain("2024-03-22", drop_long=True), broker=broker, rules=ExitRules())
    (m,) = report.marks
    assert math.isnan(m.mark) and m.missing == ("+1 SPXW 2024-03-28 90P",)
    assert any("no usable quote" in p for p in report.problems)
    assert any("exit_dte fired but it was not closed" in p for p in report.problems)
    assert report.closed == () and len(ledger.open_positions("t")) == 1
    # a second monitor (cron and the notebook at once) closes a position once
    fine = _chain("2024-03-22")
    first = monitor(ledger, "t", fine, broker=broker, rules=ExitRules())
    second = monitor(ledger, "t", fine, broker=broker, rules=ExitRules())
    assert len(first.closed) == 1 and second.closed == () and ledger.check() == []


def test_reconciliation_on_start_completes_or_rejects_what_a_crash_left(tmp_path, synthetic):
    t = _trader(tmp_path, source=str(synthetic.files["eod_archive"]), cash=1_000_000.0, strategy="bull_put", dte=7,
                dte_tolerance=5, width=25.0, exit_dte=1)
    prop = t.propose(date="2024-03-01")
    req = OrderRequest(account=t.name, client_order_id=prop.client_order_id, kind="open", strategy=prop.strategy,
                       contracts=prop.contracts, legs=prop.legs, created_at=prop.quote_time, max_loss=prop.max_loss)
    # crash 1: the order recorded and executed by the broker, the process killed before recording the fill
    t.ledger.submit_order(req)
    t.broker.submit(req)
    # crash 2: an order recorded, never sent
    other = dataclasses.replace(req, client_order_id="OPEN-never-sent")
    t.ledger.submit_order(other)
    again = PaperTrader(t.config, ledger=PaperLedger(t.ledger.path), log=t.log)
    rec = again.reconciliation
    assert len(rec.applied) == 1 and prop.client_order_id in rec.applied[0]
    assert len(rec.rejected) == 1 and "OPEN-never-sent" in rec.rejected[0]
    assert len(again.ledger.open_positions(again.name)) == 1 and again.ledger.check() == []
    assert PaperTrader(t.config, ledger=PaperLedger(t.ledger.path), log=t.log).reconciliation.clean


def test_replaying_a_day_before_an_entry_leaves_that_position_alone(synthetic_trader):
    t = synthetic_trader
    late = t.open(date="2024-03-05").position
    report = t.mark(date="2024-03-04")
    assert report.marks == () and any(f"position {late.position_id}: opened 2024-03-05" in p for p in report.problems)
    assert t.ledger.marks(t.name).empty
