"""The paper ledger: accounts, the two-phase order life, cash by hand, marks, settlements, statistics against
TradeStats, the broker journal, reconcile and check, reset, schema versions and the migration from version 1.

Crashes and concurrent processes: tests/test_paper_crash.py. Orders: tests/paper_orders.py (a bull put spread
opened for 2.20 at mid, max loss 4,780 dollars per contract, 0.65 commission per contract per leg).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from paper_orders import ACCOUNT, MAX_LOSS, T0, T_CLOSE, close_request, execution, legs, open_request

import research_lib.records.paper.schema as schema  # the migrations a test replaces
from research_lib.core.sizing import TradeStats
from research_lib.errors import (
    LedgerError,
    LedgerSchemaError,
    MarkError,
    OrderError,
    PaperAccountError,
    PaperError,
    PositionNotFoundError,
)
from research_lib.records.decisions import DecisionLog
from research_lib.records.paper import (
    CLOSED_TRADE_COLUMNS,
    DB_NAME,
    EQUITY_COLUMNS,
    FILL_COLUMNS,
    MARK_COLUMNS,
    NOT_EXECUTED,
    ORDER_COLUMNS,
    SCHEMA_VERSION,
    STATS_COLUMNS,
    ClosedTrade,
    LegFill,
    Mark,
    PaperLedger,
    Position,
)
from research_lib.records.paper.schema import SCHEMA_V1

CASH = 100_000.0
DAY1 = T0 + pd.Timedelta(days=1)


@pytest.fixture
def ledger(tmp_path):
    led = PaperLedger(tmp_path / DB_NAME, durable=False)
    led.ensure_account(ACCOUNT, CASH)
    yield led
    led.close()


def opened(ledger, cid="o1", **kw) -> Position:
    req = open_request(cid, **kw)
    ledger.submit_order(req)
    return ledger.record_fill(cid, execution(req))


def closed(ledger, pos, cid="c1", **kw) -> ClosedTrade:
    req = close_request(cid, pos.position_id, pos.contracts, **kw)
    ledger.submit_order(req)
    return ledger.record_fill(cid, execution(req))


def mark(pos, price, at=DAY1, mids=(9.0, 7.5)) -> Mark:
    pnl = (pos.entry_price - price) * 100 * pos.contracts
    return Mark(pos.position_id, at, "synthetic", price, price + 0.4, pnl, pnl / abs(pos.entry_value), 50, mids)


# --------------------------------------------------------------------------------------------------------------
# the file


def test_a_new_ledger_is_at_the_current_schema_in_wal(tmp_path):
    path = tmp_path / "sub" / "dir" / DB_NAME
    with PaperLedger(path) as led:
        assert led.schema_version == SCHEMA_VERSION == 2
        assert led.path == path and repr(led) == f"PaperLedger({str(path)!r})"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 2]
    assert PaperLedger(path).schema_version == 2                       # opens again, nothing to migrate


def test_the_default_file_is_in_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "data"))
    assert PaperLedger().path == (tmp_path / "data" / "paper.sqlite").absolute()


def test_files_that_are_not_a_ledger_are_refused_naming_the_file(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all, just some text" * 40)
    with pytest.raises(LedgerError, match="junk.sqlite.*not a usable SQLite"):
        PaperLedger(junk)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE prices (x REAL)")
    with pytest.raises(LedgerError, match=r"other.sqlite.*not a research_lib paper ledger.*prices"):
        PaperLedger(other)
    log = tmp_path / "decisions.sqlite"
    DecisionLog(log).close()
    with pytest.raises(LedgerError, match="decisions.sqlite.*not a research_lib paper ledger"):
        PaperLedger(log)
    with pytest.raises(LedgerError, match="is a folder"):
        PaperLedger(tmp_path)
    with pytest.raises(LedgerError, match="timeout"):
        PaperLedger(tmp_path / "x.sqlite", timeout=-1)


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / DB_NAME
    PaperLedger(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 3")
    with pytest.raises(LedgerSchemaError, match="version 3 is newer.*upgrade research_lib") as info:
        PaperLedger(path)
    assert info.value.found == 3 and info.value.supported == SCHEMA_VERSION and info.value.path == path
    assert isinstance(info.value, LedgerError)


def test_a_version_that_disagrees_with_its_table_is_refused(tmp_path):
    path = tmp_path / DB_NAME
    PaperLedger(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM schema_version WHERE version = 2")
    with pytest.raises(LedgerSchemaError, match="schema_version table says 1"):
        PaperLedger(path)


def test_a_file_changed_under_an_open_ledger_is_refused_at_the_next_call(ledger):
    with sqlite3.connect(ledger.path) as conn:
        conn.execute("PRAGMA user_version = 7")
    with pytest.raises(LedgerSchemaError, match="version 7"):
        ledger.accounts()


# --------------------------------------------------------------------------------------------------------------
# accounts


def test_accounts_are_created_once(ledger):
    again = ledger.ensure_account(ACCOUNT, 5.0)                        # exists: returned as it is
    assert (again.name, again.starting_cash, again.cash) == (ACCOUNT, CASH, CASH)
    other = ledger.ensure_account("  second ", 2500)
    assert other.name == "second" and ledger.account("second") == other
    assert [a.name for a in ledger.accounts()] == ["paper", "second"]
    assert other.created_at.tz is not None and str(other.created_at.tz) == "America/New_York"


@pytest.mark.parametrize("name, cash, match", [
    ("", 1.0, "account=''"), ("   ", 1.0, "non-empty"), (None, 1.0, "account=None"), ("x" * 65, 1.0, "64"),
    ("ok", 0.0, "cash=0.0.*> 0"), ("ok", -5, "cash=-5"), ("ok", math.nan, "cash=nan"), ("ok", math.inf, "finite"),
    ("ok", True, "cash=True"), ("ok", "100", "cash='100'"),
])
def test_bad_account_arguments(ledger, name, cash, match):
    with pytest.raises(PaperAccountError, match=match):
        ledger.ensure_account(name, cash)


def test_an_unknown_account_lists_the_known_ones(ledger):
    with pytest.raises(PaperAccountError, match="no paper account 'nope'; known: paper"):
        ledger.account("nope")
    with pytest.raises(PaperAccountError, match="nope"):
        ledger.submit_order(open_request("x", account="nope"))


# --------------------------------------------------------------------------------------------------------------
# orders: phase 1


def test_submitting_the_same_order_twice_records_it_once(ledger):
    req = open_request("o1")
    first = ledger.submit_order(req)
    assert first.status == "submitted" and first.kind == "open" and first.position_id is None
    assert first.legs == req.legs and first.created_at == T0 and first.max_loss == MAX_LOSS
    assert ledger.submit_order(req) == first
    later = dataclasses.replace(req, created_at=T0 + pd.Timedelta(minutes=3))   # a retry made later
    assert ledger.submit_order(later) == first
    assert len(ledger.orders(ACCOUNT)) == 1 and ledger.pending_orders() == [first]
    assert ledger.order("o1") == first


def test_a_client_id_reused_for_another_order_is_refused_naming_what_differs(ledger):
    ledger.submit_order(open_request("o1"))
    with pytest.raises(OrderError, match=r"'o1' is already used.*contracts 2 \(recorded\) vs 3"):
        ledger.submit_order(open_request("o1", contracts=3))
    with pytest.raises(OrderError, match=r"legs\[0\]\.bid 12\.0 \(recorded\) vs 11\.9"):
        ledger.submit_order(open_request("o1", short_bid=11.9))
    with pytest.raises(OrderError, match="strategy 'bull_put' .recorded. vs 'iron_condor'"):
        ledger.submit_order(open_request("o1", strategy="iron_condor"))
    assert len(ledger.orders(ACCOUNT)) == 1


def _bad(field, value, **kw):
    req = open_request("bad", **kw)
    if field.startswith("legs."):
        leg = dataclasses.replace(req.legs[0], **{field[5:]: value})
        return dataclasses.replace(req, legs=(leg, *req.legs[1:]))
    return dataclasses.replace(req, **{field: value})


@pytest.mark.parametrize("field, value, match", [
    ("client_order_id", "", "client_order_id=''"), ("client_order_id", 17, "client_order_id=17"),
    ("kind", "buy", "kind='buy'"), ("strategy", "", "strategy=''"), ("contracts", 0, "contracts=0"),
    ("contracts", 1.5, "contracts=1.5"), ("contracts", True, "contracts=True"), ("legs", (), "legs=()"),
    ("max_loss", -1.0, "max_loss=-1.0"), ("max_loss", math.nan, "max_loss=nan"), ("position_id", 3, "position_id=3"),
    ("created_at", "not a time", "created_at"), ("created_at", None, "created_at"),
    ("legs.quantity", 0, r"legs\[0\]\.quantity=0"), ("legs.bid", -0.1, r"legs\[0\]\.bid=-0\.1"),
    ("legs.ask", math.inf, r"legs\[0\]\.ask=inf"), ("legs.ask", 11.0, "ask 11.0 is below bid 12.0"),
    ("legs.right", "X", r"legs\[0\]\.right='X'"), ("legs.settlement", "EOD", "settlement='EOD'"),
    ("legs.strike", 0.0, r"strike=0\.0"), ("legs.expiration", "2026-08-21", "expiration='2026-08-21'"),
    ("legs.root", " ", "root"), ("legs.source", None, "source=None"), ("legs.quote_time", None, "quote_time"),
])
def test_bad_order_fields_are_refused_naming_the_field(ledger, field, value, match):
    with pytest.raises(OrderError, match=match):
        ledger.submit_order(_bad(field, value))
    assert ledger.orders(ACCOUNT).empty


def test_not_a_request(ledger):
    with pytest.raises(OrderError, match="must be an OrderRequest, got dict"):
        ledger.submit_order({"client_order_id": "x"})


@settings(max_examples=60)
@given(field=st.sampled_from(["contracts", "max_loss", "legs.bid", "legs.ask", "legs.strike", "legs.quantity"]),
       value=st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
                       st.text(max_size=3)))
def test_fuzzed_order_fields_are_accepted_or_refused_with_order_error(tmp_path_factory, field, value):
    led = PaperLedger(tmp_path_factory.mktemp("fuzz") / DB_NAME, durable=False)
    led.ensure_account(ACCOUNT, CASH)
    try:
        order = led.submit_order(_bad(field, value))
    except OrderError:
        assert led.orders(ACCOUNT).empty
    else:
        assert order.status == "submitted" and len(led.orders(ACCOUNT)) == 1
    led.close()


# --------------------------------------------------------------------------------------------------------------
# orders: phase 2, and the cash by hand


def test_an_open_fill_makes_the_position_and_moves_the_cash(ledger):
    req = open_request("o1")
    ledger.submit_order(req)
    pos = ledger.record_fill("o1", execution(req))
    assert isinstance(pos, Position) and pos.status == "open" and pos.contracts == 2
    assert pos.entry_price == pytest.approx(2.20, abs=1e-12)           # -(-1 x 12.20 + 1 x 10.00)
    assert pos.entry_mid_price == pytest.approx(2.20) and pos.commissions == pytest.approx(2.60)
    assert [(leg.strike, leg.quantity, leg.entry_fill) for leg in pos.legs] == [(6300, -1, 12.2), (6250, 1, 10.0)]
    assert pos.risk == 9560.0 and pos.opened_at == T0 + pd.Timedelta(seconds=1)
    # 2.20 x 100 x 2 - 4 x 0.65 = 440 - 2.60
    assert ledger.account(ACCOUNT).cash == pytest.approx(CASH + 437.40, abs=1e-9)
    order = ledger.order("o1")
    assert order.status == "filled" and order.broker_order_id == "PAPER-o1" and order.position_id == pos.position_id
    fills = ledger.fills(ACCOUNT)
    assert list(fills.columns) == list(FILL_COLUMNS) and len(fills) == 2
    assert fills["cash_flow"].tolist() == pytest.approx([2438.7, -2001.3])   # +12.20 x 200 - 1.30, -10 x 200 - 1.30
    assert fills["leg"].tolist() == ["-1 SPXW 2026-08-21 6300P", "+1 SPXW 2026-08-21 6250P"]
    assert fills["bid"].tolist() == [12.0, 9.8] and (fills["quote_time"] == T0).all()
    eq = ledger.equity_curve(ACCOUNT)
    assert list(eq.columns) == list(EQUITY_COLUMNS) and len(eq) == 1
    assert eq.iloc[0][["cash", "positions_value", "equity", "open_risk", "realized_pnl", "unrealized_pnl"]].tolist() \
        == pytest.approx([CASH + 437.4, 440.0, CASH - 2.6, 9560.0, 0.0, 0.0])
    assert ledger.open_risk(ACCOUNT) == 9560.0 and ledger.open_positions(ACCOUNT) == [pos]
    assert ledger.position(pos.position_id) == pos


def test_filling_twice_makes_one_position(ledger):
    req = open_request("o1")
    ledger.submit_order(req)
    first = ledger.record_fill("o1", execution(req))
    assert ledger.record_fill("o1", execution(req)) == first
    assert len(ledger.open_positions(ACCOUNT)) == 1 and len(ledger.fills(ACCOUNT)) == 2
    assert ledger.account(ACCOUNT).cash == pytest.approx(CASH + 437.4)
    with pytest.raises(LedgerError, match="already filled by broker order 'PAPER-o1', not 'OTHER'"):
        ledger.record_fill("o1", execution(req, broker_id="OTHER"))


def test_fills_of_unknown_rejected_or_mismatched_orders(ledger):
    req = open_request("o1")
    with pytest.raises(LedgerError, match="no order with client order id 'o1' to fill"):
        ledger.record_fill("o1", execution(req))
    ledger.submit_order(req)
    ex = execution(req)
    with pytest.raises(OrderError, match="execution has 1 legs, the order 2"):
        ledger.record_fill("o1", dataclasses.replace(ex, legs=ex.legs[:1]))
    with pytest.raises(OrderError, match=r"legs\[1\]\.price=-1"):
        ledger.record_fill("o1", dataclasses.replace(ex, legs=(ex.legs[0], LegFill(-1.0, 0.0))))
    with pytest.raises(OrderError, match=r"legs\[0\]\.commission=nan"):
        ledger.record_fill("o1", dataclasses.replace(ex, legs=(LegFill(1.0, math.nan), ex.legs[1])))
    with pytest.raises(OrderError, match="broker_order_id"):
        ledger.record_fill("o1", dataclasses.replace(ex, broker_order_id=""))
    with pytest.raises(OrderError, match="must be an Execution"):
        ledger.record_fill("o1", "filled")
    assert ledger.order("o1").status == "submitted" and ledger.fills(ACCOUNT).empty
    rejected = ledger.reject_order("o1", "no liquidity")
    assert rejected.status == "rejected" and ledger.reject_order("o1", "again") == rejected   # idempotent
    with pytest.raises(LedgerError, match=r"'o1' was rejected \(no liquidity\)"):
        ledger.record_fill("o1", ex)
    assert ledger.orders(ACCOUNT, "rejected")["reject_reason"].tolist() == ["no liquidity"]
    assert ledger.pending_orders() == [] and ledger.account(ACCOUNT).cash == CASH


def test_a_filled_order_cannot_be_rejected(ledger):
    opened(ledger)
    with pytest.raises(LedgerError, match="already filled"):
        ledger.reject_order("o1", "late")
    with pytest.raises(OrderError, match="reason"):
        ledger.reject_order("o1", " ")
    with pytest.raises(LedgerError, match="no order"):
        ledger.reject_order("ghost", "never")


def test_a_close_fill_makes_the_closed_trade_by_hand(ledger):
    pos = opened(ledger)
    trade = closed(ledger, pos)
    assert isinstance(trade, ClosedTrade)
    assert trade.exit_price == pytest.approx(1.10) and trade.exit_reason == "profit_target"
    assert trade.exit_kind == "fill" and trade.commissions == pytest.approx(5.20)
    # (2.20 - 1.10) x 100 x 2 - 5.20 commissions = 214.80; on 2 x 4,780 at risk
    assert trade.realized_pnl == pytest.approx(214.80, abs=1e-9)
    assert trade.return_on_risk == pytest.approx(214.80 / 9560.0)
    # 100,000 + 437.40 - (1.10 x 200 + 2.60)
    assert ledger.account(ACCOUNT).cash == pytest.approx(CASH + 214.80, abs=1e-9)
    assert ledger.position(pos.position_id).status == "closed" and ledger.open_positions(ACCOUNT) == []
    assert ledger.open_risk(ACCOUNT) == 0.0 and ledger.closed_trade(pos.position_id) == trade
    assert ledger.record_fill("c1", execution(close_request("c1", pos.position_id))) == trade   # idempotent
    ct = ledger.closed_trades(ACCOUNT)
    assert list(ct.columns) == list(CLOSED_TRADE_COLUMNS) and len(ct) == 1
    assert ct.iloc[0]["realized_pnl"] == pytest.approx(214.8) and ct.iloc[0]["max_loss"] == MAX_LOSS
    last = ledger.equity_curve(ACCOUNT).iloc[-1]
    assert (last["cash"], last["positions_value"], last["equity"], last["realized_pnl"], last["open_risk"]) \
        == pytest.approx((CASH + 214.8, 0.0, CASH + 214.8, 214.8, 0.0))
    assert ledger.check() == []


_price = st.floats(0.05, 60.0).map(lambda x: round(x, 2))


@settings(max_examples=25)
@given(trades=st.lists(st.tuples(st.integers(1, 9), _price, _price, _price, _price, st.sampled_from([0.0, 0.65, 1.0]),
                                 st.booleans()), min_size=1, max_size=6))
def test_cash_and_pnl_follow_the_conventions_for_any_prices(tmp_path_factory, trades):
    """Opens and closes (or settlements) at arbitrary leg prices: the cash, each realised P&L and the statistics
    equal the figures computed here from the conventions (records.py), independently of the ledger."""
    led = PaperLedger(tmp_path_factory.mktemp("cash") / DB_NAME, durable=False)
    led.ensure_account(ACCOUNT, CASH)
    cash, pnls = CASH, []
    for k, (n, s_in, l_in, s_out, l_out, fee, settle) in enumerate(trades):
        t_in, t_out = T0 + pd.Timedelta(days=k), T0 + pd.Timedelta(days=k, hours=1)   # one trade after another
        req = dataclasses.replace(open_request(f"o{k}", contracts=n, at=t_in), legs=legs(s_in, s_in, l_in, l_in))
        led.submit_order(req)
        pos = led.record_fill(req.client_order_id, execution(req, commission=fee))
        entry = s_in - l_in                                   # -(-1 x short + 1 x long)
        cash += entry * 100 * n - 2 * fee * n
        if settle:
            trade = led.settle_position(pos.position_id, settled_at=t_out, leg_values=[s_out, l_out], note="")
            exit_fee = 0.0
        else:
            creq = dataclasses.replace(close_request(f"c{k}", pos.position_id, n, at=t_out),
                                       legs=legs(s_out, s_out, l_out, l_out, at=t_out))
            led.submit_order(creq)
            trade = led.record_fill(creq.client_order_id, execution(creq, commission=fee))
            exit_fee = 2 * fee * n
        exit_price = s_out - l_out
        cash -= exit_price * 100 * n + exit_fee
        pnl = (entry - exit_price) * 100 * n - 2 * fee * n - exit_fee
        assert trade.realized_pnl == pytest.approx(pnl, abs=1e-9)
        assert trade.return_on_risk == pytest.approx(pnl / (MAX_LOSS * n))
        pnls.append(pnl / (MAX_LOSS * n))
    assert led.account(ACCOUNT).cash == pytest.approx(cash, abs=1e-6)
    assert led.equity_curve(ACCOUNT)["equity"].iloc[-1] == pytest.approx(cash, abs=1e-6)
    want = TradeStats.from_returns(pnls)
    got = led.trade_stats(ACCOUNT)
    assert (got.n_trades, got.win_rate) == (want.n_trades, want.win_rate)
    assert (got.avg_win, got.avg_loss) == pytest.approx((want.avg_win, want.avg_loss), rel=1e-12, abs=1e-15)
    assert led.check() == []
    led.close()


def test_close_orders_must_match_their_position(ledger):
    pos = opened(ledger)
    pid = pos.position_id
    with pytest.raises(OrderError, match="contracts=1: the position holds 2"):
        ledger.submit_order(close_request("c", pid, contracts=1))
    wrong = dataclasses.replace(close_request("c", pid), legs=legs(expiry=dt.date(2026, 9, 18)))
    with pytest.raises(OrderError, match="not the position's legs"):
        ledger.submit_order(wrong)
    with pytest.raises(PositionNotFoundError, match="no position 99.*open positions: 1"):
        ledger.submit_order(close_request("c", 99))
    ledger.ensure_account("other", CASH)
    with pytest.raises(OrderError, match="belongs to account 'paper', not 'other'"):
        ledger.submit_order(close_request("c", pid, account="other"))
    with pytest.raises(OrderError, match="reason='sold'"):
        ledger.submit_order(close_request("c", pid, reason="sold"))
    with pytest.raises(OrderError, match="max_loss"):
        ledger.submit_order(dataclasses.replace(close_request("c", pid), max_loss=10.0))
    with pytest.raises(OrderError, match="position_id=None"):
        ledger.submit_order(dataclasses.replace(close_request("c", pid), position_id=None))
    ledger.submit_order(close_request("c1", pid))
    with pytest.raises(OrderError, match="close order 'c1' of position 1 is still waiting"):
        ledger.submit_order(close_request("c2", pid))
    ledger.reject_order("c1", "broker down")
    trade = closed(ledger, pos, cid="c2")
    with pytest.raises(OrderError, match="position 1 is already closed"):
        ledger.submit_order(close_request("c3", pid))
    assert trade.exit_reason == "profit_target" and ledger.check() == []


def test_a_close_without_reason_is_manual(ledger):
    pos = opened(ledger)
    req = dataclasses.replace(close_request("c1", pos.position_id), reason=None)
    ledger.submit_order(req)
    assert ledger.record_fill("c1", execution(req)).exit_reason == "manual"


# --------------------------------------------------------------------------------------------------------------
# settlement and decisions


def test_settlement_worthless_and_at_max_loss(ledger):
    a = opened(ledger, "o1")
    b = opened(ledger, "o2", contracts=1)
    at = pd.Timestamp("2026-08-21 16:00", tz="America/New_York")
    worthless = ledger.settle_position(a.position_id, settled_at=at, leg_values=[0.0, 0.0], note="SPX 6400")
    assert worthless.exit_kind == "settlement" and worthless.exit_reason == "expiry" and worthless.exit_price == 0
    assert worthless.realized_pnl == pytest.approx(437.40) and worthless.commissions == pytest.approx(2.60)
    # settled at 6240: the short put is worth 60, the long 10, exit price -(-60 + 10) = 50 per unit
    full = ledger.settle_position(b.position_id, settled_at=at, leg_values=[60.0, 10.0], note="SPX 6240")
    assert full.exit_price == pytest.approx(50.0)
    assert full.realized_pnl == pytest.approx((2.2 - 50.0) * 100 - 1.30)   # -4,780 - one contract's commissions
    assert full.return_on_risk == pytest.approx(full.realized_pnl / MAX_LOSS)
    # 100,000 + 437.40 + 218.70 (opens) - 5,000 (settled value of b), no commission at settlement
    assert ledger.account(ACCOUNT).cash == pytest.approx(CASH + 437.4 + 218.7 - 5000.0)
    fills = ledger.fills(ACCOUNT)
    settled = fills[fills["kind"] == "settlement"]
    assert len(settled) == 4 and (settled["commission"] == 0).all() and settled["order_id"].isna().all()
    assert settled["source"].eq("settlement").all() and settled["quote_time"].isna().all()
    assert ledger.closed_trades(ACCOUNT)["note"].tolist() == ["SPX 6400", "SPX 6240"]
    with pytest.raises(LedgerError, match="already closed"):
        ledger.settle_position(a.position_id, settled_at=at, leg_values=[0, 0], note="")
    assert ledger.check() == []


def test_settlement_arguments(ledger):
    pos = opened(ledger)
    at = pd.Timestamp("2026-08-21 16:00", tz="America/New_York")
    with pytest.raises(OrderError, match="2 legs"):
        ledger.settle_position(pos.position_id, settled_at=at, leg_values=[1.0], note="")
    with pytest.raises(OrderError, match=r"leg_values\[1\]=nan"):
        ledger.settle_position(pos.position_id, settled_at=at, leg_values=[1.0, math.nan], note="")
    with pytest.raises(OrderError, match="settled_at"):
        ledger.settle_position(pos.position_id, settled_at="soon", leg_values=[1.0, 0.0], note="")
    with pytest.raises(PositionNotFoundError):
        ledger.settle_position(42, settled_at=at, leg_values=[1.0, 0.0], note="")
    ledger.submit_order(close_request("c1", pos.position_id))
    with pytest.raises(LedgerError, match="close order 'c1' is waiting"):
        ledger.settle_position(pos.position_id, settled_at=at, leg_values=[0.0, 0.0], note="")
    assert ledger.position(pos.position_id).status == "open"


def test_decisions_are_tied_to_entries_and_exits(ledger):
    pos = opened(ledger)
    ledger.set_entry_decision(pos.position_id, "DEC-2026070110000000")
    assert ledger.position(pos.position_id).decision_id == "DEC-2026070110000000"
    with pytest.raises(LedgerError, match="is open"):
        ledger.set_exit_decision(pos.position_id, "DEC-2026070610000000")
    closed(ledger, pos)
    assert [t.position_id for t in ledger.closed_without_decision()] == [pos.position_id]
    assert [t.position_id for t in ledger.closed_without_decision(ACCOUNT)] == [pos.position_id]
    ledger.set_exit_decision(pos.position_id, "DEC-2026070610000000")
    assert ledger.closed_trade(pos.position_id).exit_decision_id == "DEC-2026070610000000"
    assert ledger.closed_without_decision() == []
    with pytest.raises(PositionNotFoundError):
        ledger.set_entry_decision(77, "DEC-2026070110000000")
    with pytest.raises(OrderError, match="decision_id"):
        ledger.set_exit_decision(pos.position_id, "")


def test_an_order_decision_id_is_kept(ledger):
    req = dataclasses.replace(open_request("o1"), decision_id="DEC-2026070110000000")
    ledger.submit_order(req)
    assert ledger.record_fill("o1", execution(req)).decision_id == "DEC-2026070110000000"
    pos = ledger.open_positions(ACCOUNT)[0]
    creq = dataclasses.replace(close_request("c1", pos.position_id), decision_id="DEC-2026070610000000")
    ledger.submit_order(creq)
    assert ledger.record_fill("c1", execution(creq)).exit_decision_id == "DEC-2026070610000000"


# --------------------------------------------------------------------------------------------------------------
# marks


def test_marks_and_the_equity_snapshot(ledger):
    a = opened(ledger, "o1")
    b = opened(ledger, "o2", contracts=1)
    ledger.record_marks(ACCOUNT, [mark(a, 1.50), mark(b, 3.00)], at=DAY1)
    snap = ledger.equity_curve(ACCOUNT).iloc[-1]
    cash = CASH + 437.4 + 218.7
    # positions at their marks: 1.50 x 200 + 3.00 x 100; unrealized (2.2-1.5) x 200 + (2.2-3.0) x 100
    assert (snap["cash"], snap["positions_value"], snap["equity"], snap["unrealized_pnl"], snap["open_risk"]) \
        == pytest.approx((cash, 600.0, cash - 600.0, 60.0, 3 * MAX_LOSS))
    # a later mark of b only, and a NaN mark of a (a leg missing): a keeps 1.50
    day2 = DAY1 + pd.Timedelta(days=1)
    lost = dataclasses.replace(mark(a, math.nan, at=day2, mids=(math.nan, 7.0)), unrealized_pnl=math.nan,
                               pnl_pct=math.nan, mark_natural=math.nan, missing=("-1 SPXW 2026-08-21 6300P",))
    ledger.record_marks(ACCOUNT, [lost, mark(b, 2.00, at=day2)], at=day2)
    snap = ledger.equity_curve(ACCOUNT).iloc[-1]
    assert snap["at"] == day2 and snap["positions_value"] == pytest.approx(1.5 * 200 + 2.0 * 100)
    ledger.record_marks(ACCOUNT, [], at=day2 + pd.Timedelta(hours=1))       # nothing marked: same values
    assert ledger.equity_curve(ACCOUNT).iloc[-1]["positions_value"] == pytest.approx(500.0)
    marks = ledger.marks(ACCOUNT)
    assert list(marks.columns) == list(MARK_COLUMNS) and len(marks) == 4
    assert math.isnan(marks.iloc[2]["mark"]) and marks.iloc[2]["missing"] == ["-1 SPXW 2026-08-21 6300P"]
    assert math.isnan(marks.iloc[2]["leg_mids"][0]) and marks.iloc[2]["leg_mids"][1] == 7.0
    assert len(ledger.marks(ACCOUNT, position_id=b.position_id)) == 2
    latest = ledger.latest_marks(ACCOUNT)
    assert set(latest) == {a.position_id, b.position_id} and math.isnan(latest[a.position_id].mark)
    assert latest[b.position_id] == mark(b, 2.00, at=day2)
    closed(ledger, a)
    assert set(ledger.latest_marks(ACCOUNT)) == {b.position_id}             # closed positions drop out
    assert ledger.check() == []


def test_bad_marks_are_refused_and_write_nothing(ledger):
    pos = opened(ledger)
    good = mark(pos, 1.5)
    for bad, match in [
        (dataclasses.replace(good, position_id=9), "position 9 is not an open position of account 'paper'"),
        (dataclasses.replace(good, leg_mids=(1.0,)), "has 2 legs"),
        (dataclasses.replace(good, mark=math.inf), r"\.mark=inf"),
        (dataclasses.replace(good, dte=1.5), r"\.dte=1\.5"),
        (dataclasses.replace(good, source=""), r"\.source"),
        (dataclasses.replace(good, marked_at=None), "marked_at"),
        (dataclasses.replace(good, missing="leg"), "missing"),
    ]:
        with pytest.raises(MarkError, match=match):
            ledger.record_marks(ACCOUNT, [bad], at=DAY1)
    with pytest.raises(MarkError, match="marked twice"):
        ledger.record_marks(ACCOUNT, [good, good], at=DAY1)
    with pytest.raises(MarkError, match="sequence of Mark"):
        ledger.record_marks(ACCOUNT, good, at=DAY1)
    closed(ledger, pos)
    with pytest.raises(MarkError, match="not an open position"):
        ledger.record_marks(ACCOUNT, [good], at=DAY1)
    assert ledger.marks(ACCOUNT).empty


# --------------------------------------------------------------------------------------------------------------
# statistics


def test_statistics_agree_with_trade_stats(ledger):
    exits = [1.10, 0.40, 3.50, 2.20, 6.00]                                 # win, win, loss, scratch-ish, loss
    for k, price in enumerate(exits):
        pos = opened(ledger, f"o{k}", strategy="bull_put" if k < 4 else "bear_call")
        ledger.submit_order(req := dataclasses.replace(close_request(f"c{k}", pos.position_id,
                                                                     strategy=pos.strategy),
                                                       legs=legs(price + 1.0, price + 1.0, 1.0, 1.0, at=T_CLOSE)))
        ledger.record_fill(f"c{k}", execution(req))
    unrated = opened(ledger, "u", max_loss=None)
    closed(ledger, unrated, cid="cu")
    ct = ledger.closed_trades(ACCOUNT)
    rated = ct.dropna(subset=["return_on_risk"])
    assert len(rated) == 5 and math.isnan(ct.iloc[-1]["return_on_risk"])
    want = TradeStats.from_returns(rated["return_on_risk"].tolist())
    assert ledger.trade_stats(ACCOUNT) == want
    bull = TradeStats.from_returns(rated[rated["strategy"] == "bull_put"]["return_on_risk"].tolist())
    assert ledger.trade_stats(ACCOUNT, "bull_put") == bull and bull.n_trades == 4
    assert ledger.trade_stats(ACCOUNT, "iron_condor") is None
    stats = ledger.strategy_stats(ACCOUNT).set_index("strategy")
    assert list(stats.reset_index().columns) == list(STATS_COLUMNS)
    row = stats.loc["bull_put"]
    assert (row["n_trades"], row["n_rated"]) == (5, 4)                      # the unrated trade counts only here
    assert (row["win_rate"], row["avg_win"], row["avg_loss"]) == pytest.approx((bull.win_rate, bull.avg_win,
                                                                                bull.avg_loss), rel=1e-12)
    assert row["expectancy"] == pytest.approx(bull.win_rate * bull.avg_win - (1 - bull.win_rate) * bull.avg_loss)
    assert row["total_pnl"] == pytest.approx(ct[ct["strategy"] == "bull_put"]["realized_pnl"].sum())
    assert stats.loc["bear_call", "wins"] == 0 and stats.loc["bear_call", "win_rate"] == 0.0
    assert ledger.check() == []


def test_no_trade_no_statistics(ledger):
    assert ledger.trade_stats(ACCOUNT) is None
    stats = ledger.strategy_stats(ACCOUNT)
    assert stats.empty and list(stats.columns) == list(STATS_COLUMNS)


def test_empty_frames_keep_their_columns(ledger):
    for frame, cols in [(ledger.orders(ACCOUNT), ORDER_COLUMNS), (ledger.fills(ACCOUNT), FILL_COLUMNS),
                        (ledger.marks(ACCOUNT), MARK_COLUMNS), (ledger.closed_trades(ACCOUNT), CLOSED_TRADE_COLUMNS),
                        (ledger.equity_curve(ACCOUNT), EQUITY_COLUMNS)]:
        assert frame.empty and list(frame.columns) == list(cols)
    assert str(ledger.equity_curve(ACCOUNT)["at"].dtype).startswith("datetime64")
    assert ledger.latest_marks(ACCOUNT) == {} and ledger.open_positions(ACCOUNT) == []
    with pytest.raises(OrderError, match="status='open'"):
        ledger.orders(ACCOUNT, "open")


# --------------------------------------------------------------------------------------------------------------
# the broker journal, reconcile, check


def test_the_journal_is_idempotent_and_refuses_rejected_orders(ledger):
    req = open_request("o1")
    ex = execution(req)
    assert ledger.journal_lookup("o1") is None
    ledger.journal_execution("o1", ex)
    ledger.journal_execution("o1", ex)
    assert ledger.journal_lookup("o1") == ex
    with pytest.raises(LedgerError, match="another execution of order 'o1' .differs in broker_order_id"):
        ledger.journal_execution("o1", dataclasses.replace(ex, broker_order_id="X"))
    ledger.submit_order(open_request("o2"))
    ledger.reject_order("o2", "gave up")
    with pytest.raises(LedgerError, match="'o2' was rejected .gave up.: the broker must not execute it"):
        ledger.journal_execution("o2", execution(open_request("o2")))


def test_reconcile_applies_what_the_broker_did_and_rejects_the_rest(ledger):
    a, b = open_request("a"), open_request("b", contracts=1)
    for req in (a, b):
        ledger.submit_order(req)
    ledger.journal_execution("a", execution(a))                             # the broker had a, never b
    pos = opened(ledger, "o3")
    ledger.submit_order(close_request("c3", pos.position_id))               # a close left in between too
    ledger.journal_execution("c3", execution(close_request("c3", pos.position_id)))
    report = ledger.reconcile(ledger.journal_lookup)
    assert len(report.applied) == 2 and report.applied[0].startswith("a: broker order PAPER-a recorded")
    assert "closed" in report.applied[1]
    assert report.rejected == (f"b: {NOT_EXECUTED}",) and report.problems == () and not report.clean
    assert ledger.order("b").status == "rejected" and ledger.order("a").status == "filled"
    assert ledger.account(ACCOUNT).cash == pytest.approx(CASH + 437.4 + 214.8)
    again = ledger.reconcile(ledger.journal_lookup)
    assert again.clean and again.summary() == "ledger consistent: nothing to reconcile"


def test_reconcile_leaves_young_orders_alone_when_asked(ledger):
    ledger.submit_order(open_request("young"))
    report = ledger.reconcile(lambda cid: None, min_age=3600)
    assert report.clean and [o.client_order_id for o in ledger.pending_orders()] == ["young"]
    assert ledger.reconcile(lambda cid: None).rejected == (f"young: {NOT_EXECUTED}",)
    with pytest.raises(LedgerError, match="min_age=-1"):
        ledger.reconcile(lambda cid: None, min_age=-1)


def test_reconcile_repairs_the_statistics(ledger):
    closed(ledger, opened(ledger))
    with sqlite3.connect(ledger.path) as conn:
        conn.execute("UPDATE strategy_stats SET wins = 0, sum_win = 0")
    assert ledger.check() == ["statistics of account 'paper' / 'bull_put' are (1, 1, 0, 0.0, 0.0, 214.79999999999995), "
                              "the closed trades give (1, 1, 1, 0.02246861924686192, 0.0, 214.79999999999995)"]
    report = ledger.reconcile(lambda cid: None)
    assert len(report.repaired) == 1 and "recomputed" in report.repaired[0] and report.problems == ()
    assert ledger.check() == [] and ledger.strategy_stats(ACCOUNT)["wins"].tolist() == [1]


def test_check_finds_broken_invariants(ledger):
    pos = opened(ledger)
    closed(ledger, opened(ledger, "o2"), cid="c2")
    assert ledger.check() == []
    with sqlite3.connect(ledger.path) as conn:
        conn.execute("UPDATE accounts SET cash = cash + 1")
        conn.execute("DELETE FROM position_legs WHERE position_id = ?", (pos.position_id,))
        conn.execute("UPDATE positions SET status = 'open' WHERE position_id = 2")
        conn.execute("INSERT INTO marks (position_id, marked_us, marked_at, source, dte, leg_mids, missing, "
                     "recorded_at) VALUES (99, 0, 'x', 's', 1, '[]', '[]', 'x')")   # FKs off in this connection
    problems = ledger.check()
    text = " | ".join(problems)
    assert "open positions without legs: 1" in text
    assert "opening fills do not cover their legs: 1" in text
    assert "closed trades of positions still open: 2" in text
    assert "marks rows of missing positions [99]" in text and "rows of marks refer to a missing row" in text
    assert "account 'paper': cash" in text
    assert ledger.reconcile(ledger.journal_lookup).problems == tuple(problems)


# --------------------------------------------------------------------------------------------------------------
# reset


def test_reset_clears_one_account(ledger):
    pos = opened(ledger)
    ledger.record_marks(ACCOUNT, [mark(pos, 1.5)], at=DAY1)
    closed(ledger, pos)
    opened(ledger, "o2")
    ledger.journal_execution("o2", execution(open_request("o2")))
    ledger.ensure_account("other", 500.0)
    other_req = open_request("x1", account="other", contracts=1)
    ledger.submit_order(other_req)
    ledger.record_fill("x1", execution(other_req))
    fresh = ledger.reset_account(ACCOUNT, 50_000)
    assert (fresh.starting_cash, fresh.cash) == (50_000.0, 50_000.0)
    for frame in (ledger.orders(ACCOUNT), ledger.fills(ACCOUNT), ledger.marks(ACCOUNT),
                  ledger.closed_trades(ACCOUNT), ledger.equity_curve(ACCOUNT), ledger.strategy_stats(ACCOUNT)):
        assert frame.empty
    assert ledger.journal_lookup("o2") is None and ledger.open_positions(ACCOUNT) == []
    assert len(ledger.open_positions("other")) == 1 and ledger.account("other").cash == pytest.approx(718.7)
    assert ledger.reset_account(ACCOUNT).starting_cash == 50_000.0          # None: the old starting cash
    opened(ledger, "o1")                                                    # the ids can be used again
    assert ledger.check() == []
    with pytest.raises(PaperAccountError):
        ledger.reset_account("nope")
    with pytest.raises(PaperAccountError, match="cash=0"):
        ledger.reset_account(ACCOUNT, 0)


# --------------------------------------------------------------------------------------------------------------
# threads


def test_threads_share_a_ledger(ledger):
    def work(k):
        req = open_request(f"t{k % 5}")                                     # five ids, each opened by 4 threads
        ledger.submit_order(req)
        return ledger.record_fill(req.client_order_id, execution(req)).position_id

    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(work, range(20)))
    assert len(set(ids)) == 5 and len(ledger.open_positions(ACCOUNT)) == 5
    assert ledger.account(ACCOUNT).cash == pytest.approx(CASH + 5 * 437.4) and ledger.check() == []


# --------------------------------------------------------------------------------------------------------------
# schema version 1 and its migration

US = 1_782_914_400_000_000          # 2026-07-01 10:00 New York, UTC microseconds
DAY_US = 86_400_000_000


def _v1_file(path):
    """A version-1 ledger written by hand: one position opened and closed, one still open, three snapshots."""
    legs_json = json.dumps([{"root": "SPXW", "expiration": "2026-08-21", "settlement": "PM", "strike": k,
                             "right": "P", "quantity": q, "bid": b, "ask": a, "quote_us": US, "source": "v1"}
                            for k, q, b, a in [(6300.0, -1, 12.0, 12.4), (6250.0, 1, 9.8, 10.2)]])
    conn = sqlite3.connect(path, isolation_level=None)
    for stmt in SCHEMA_V1:
        conn.execute(stmt)
    conn.execute("INSERT INTO schema_version VALUES (1, '2026-06-30T00:00:00+00:00', '0.1.0')")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO accounts VALUES (1, 'paper', 100000, ?, ?, 'x')", (CASH + 214.8 + 218.7, US - DAY_US))
    conn.execute("PRAGMA defer_foreign_keys = ON")
    orders = [(1, "open-1", "open", 2, "filled", 1, 4780.0, None, "PAPER-1", US),
              (2, "close-1", "close", 2, "filled", 1, None, "profit_target", "PAPER-2", US + 5 * DAY_US),
              (3, "open-2", "open", 1, "filled", 2, 4780.0, None, "PAPER-3", US + DAY_US)]
    for oid, cid, kind, n, status, pid, ml, reason, broker, us in orders:
        conn.execute("INSERT INTO orders (order_id, account_id, client_order_id, kind, strategy, contracts, status, "
                     "legs, position_id, max_loss, reason, broker_order_id, created_us, created_at, updated_us, "
                     "updated_at, recorded_at) VALUES (?, 1, ?, ?, 'bull_put', ?, ?, ?, ?, ?, ?, ?, ?, 'x', ?, 'x', "
                     "'x')", (oid, cid, kind, n, status, legs_json, pid, ml, reason, broker, us, us))
    for pid, n, oid, status, comm, us in [(1, 2, 1, "closed", 5.2, US), (2, 1, 3, "open", 1.3, US + DAY_US)]:
        conn.execute("INSERT INTO positions VALUES (?, 1, 'bull_put', ?, 2.2, 4780.0, ?, 'x', ?, ?, ?, NULL)",
                     (pid, n, us, status, oid, comm))
        for i, (k, q, p, b, a) in enumerate([(6300.0, -1, 12.2, 12.0, 12.4), (6250.0, 1, 10.0, 9.8, 10.2)]):
            conn.execute("INSERT INTO position_legs VALUES (?, ?, 'SPXW', '2026-08-21', 'PM', ?, 'P', ?, ?, ?, ?)",
                         (pid, i, k, q, p, b, a))
            c = 0.65 * n
            conn.execute("INSERT INTO fills (position_id, order_id, kind, leg_index, quantity, contracts, price, "
                         "commission, cash_flow, bid, ask, quote_us, source, filled_us, filled_at, broker_order_id, "
                         "model) VALUES (?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, 'v1', ?, 'x', 'B', 'mid')",
                         (pid, oid, i, q, n, p, c, -q * p * 100 * n - c, b, a, US, us))
    for i, (q, p) in enumerate([(-1, 6.0), (1, 4.9)]):
        conn.execute("INSERT INTO fills (position_id, order_id, kind, leg_index, quantity, contracts, price, "
                     "commission, cash_flow, source, filled_us, filled_at, broker_order_id, model) "
                     "VALUES (1, 2, 'close', ?, ?, 2, ?, 1.3, ?, 'v1', ?, 'x', 'B', 'mid')",
                     (i, q, p, q * p * 200 - 1.3, US + 5 * DAY_US))
    conn.execute("INSERT INTO closed_trades VALUES (1, 2, ?, 'x', 1.1, 'profit_target', 'fill', 214.8, 5.2, ?, "
                 "NULL, NULL)", (US + 5 * DAY_US, 214.8 / 9560))
    conn.execute("INSERT INTO marks (position_id, marked_us, marked_at, source, mark, mark_natural, unrealized_pnl, "
                 "pnl_pct, dte, leg_mids, missing, recorded_at) VALUES (2, ?, 'x', 'v1', 1.5, 1.9, 70, 0.318, 45, "
                 "'[9.0,7.5]', '[]', 'x')", (US + 2 * DAY_US,))
    # snapshots: after the first open; day 2 (both open, #2 marked 1.50, #1 unmarked at 2.20); after the close
    snaps = [(US, CASH + 437.4, 440.0), (US + 2 * DAY_US, CASH + 437.4 + 218.7, 440.0 + 150.0),
             (US + 5 * DAY_US, CASH + 214.8 + 218.7, 150.0)]
    for at, cash, value in snaps:
        conn.execute("INSERT INTO equity (account_id, at_us, at, cash, positions_value, equity) "
                     "VALUES (1, ?, 'x', ?, ?, ?)", (at, cash, value, cash - value))
    conn.execute("COMMIT")
    conn.close()


def test_a_version_1_ledger_is_migrated_keeping_its_rows(tmp_path):
    path = tmp_path / DB_NAME
    _v1_file(path)
    led = PaperLedger(path)
    assert led.schema_version == 2
    assert led.account(ACCOUNT).cash == pytest.approx(CASH + 214.8 + 218.7)
    assert len(led.orders(ACCOUNT)) == 3 and len(led.fills(ACCOUNT)) == 6 and len(led.marks(ACCOUNT)) == 1
    assert [p.position_id for p in led.open_positions(ACCOUNT)] == [2]
    assert led.closed_trade(1).realized_pnl == pytest.approx(214.8)
    eq = led.equity_curve(ACCOUNT)
    assert eq["cash"].tolist() == pytest.approx([CASH + 437.4, CASH + 656.1, CASH + 433.5])
    assert eq["realized_pnl"].tolist() == pytest.approx([0.0, 0.0, 214.8])
    assert eq["open_risk"].tolist() == pytest.approx([9560.0, 9560.0 + 4780.0, 4780.0])
    # unrealized: day 2 = (2.2 - 2.2) x 200 + (2.2 - 1.5) x 100; after the close (2.2 - 1.5) x 100
    assert eq["unrealized_pnl"].tolist() == pytest.approx([0.0, 70.0, 70.0], abs=1e-9)
    stats = led.strategy_stats(ACCOUNT)
    assert stats[["n_trades", "wins"]].values.tolist() == [[1, 1]] and stats["total_pnl"].tolist() == [
        pytest.approx(214.8)]
    assert led.trade_stats(ACCOUNT) == TradeStats.from_returns([214.8 / 9560])
    assert led.journal_lookup("open-2") is None
    assert led.check() == []
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 2]
    # and it works on: close the open position
    trade = closed(led, led.position(2), cid="close-2")
    assert trade.realized_pnl == pytest.approx((2.2 - 1.1) * 100 - 2.6) and led.check() == []


def test_the_migration_is_all_or_nothing(tmp_path, monkeypatch):
    path = tmp_path / DB_NAME
    _v1_file(path)

    def broken(conn):
        conn.execute("CREATE TABLE broker_journal (x)")
        raise sqlite3.OperationalError("disk on fire")

    monkeypatch.setitem(schema.MIGRATIONS, 1, broken)
    with pytest.raises(sqlite3.OperationalError, match="disk on fire"):
        PaperLedger(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert "broker_journal" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    monkeypatch.undo()
    assert PaperLedger(path).schema_version == 2


def test_errors_are_paper_errors():
    for cls in (LedgerError, LedgerSchemaError, MarkError, OrderError, PaperAccountError, PositionNotFoundError):
        assert issubclass(cls, PaperError)
