"""The backtest engine: hand-built chains whose P&L is known to the cent for every exit rule, fills and
commissions, missing legs and days, parameter errors, prefix invariance, and on the real 2026 archive every leg
price traced to the raw parquet and every settlement to the daily history."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import EOD_ARCHIVE, SHARED_DATA, shared_file

from research_lib.backtest import fills
from research_lib.backtest.engine import RootCodes, _Day, run_backtest
from research_lib.backtest.legspec import select_legs
from research_lib.backtest.params import BacktestParams, parse_entry, parse_fill
from research_lib.backtest.results import EQUITY_COLUMNS, LEG_COLUMNS, TRADE_COLUMNS
from research_lib.core import gex, strategy as core
from research_lib.core.chain import ChainSnapshot
from research_lib.errors import BacktestInputError, SettlementError

D = [dt.date(2026, 6, 1), dt.date(2026, 6, 2), dt.date(2026, 6, 3), dt.date(2026, 6, 4), dt.date(2026, 6, 5)]
FAR = dt.date(2026, 7, 1)            # 30 DTE from D[0]
SPOT = 5000.0


def snap(day: dt.date, quotes: dict, spot: float = SPOT) -> ChainSnapshot:
    """A hand-built SPX chain: ``quotes`` maps (root, expiration, strike, right) → (bid, ask); IV 20%, OI 100."""
    rows = []
    for (root, exp, k, right), (bid, ask) in quotes.items():
        rows.append({"root": root, "expiration": pd.Timestamp(exp), "settlement": "AM" if root == "SPX" else "PM",
                     "strike": float(k), "right": right, "bid": bid, "ask": ask, "last": np.nan, "volume": 0.0,
                     "open_interest": 100.0, "iv": 0.20, "delta": np.nan, "gamma": np.nan})
    return ChainSnapshot.create(underlying="SPX", spot=spot, quote_time=pd.Timestamp(f"{day} 16:00",
                                                                                    tz="America/New_York"),
                                source="hand", contracts=pd.DataFrame(rows), snapshot_date=day)


def put_quotes(exp=FAR, root="SPXW", p4850=(20.0, 20.4), p4800=(12.0, 12.4), extra=True) -> dict:
    """The put strikes of the hand-built chain: 4850 (|Δ| ≈ 0.29 at 30 DTE) and 4800 are the traded ones."""
    q = {}
    if extra:
        q[(root, exp, 4950, "P")] = (45.0, 45.6)
        q[(root, exp, 4900, "P")] = (31.0, 31.6)
    if p4850 is not None:
        q[(root, exp, 4850, "P")] = p4850
    if p4800 is not None:
        q[(root, exp, 4800, "P")] = p4800
    return q


def daily(opens: dict | None = None, closes: dict | None = None) -> pd.DataFrame:
    idx = pd.DatetimeIndex([pd.Timestamp(d) for d in D])
    o = pd.Series(SPOT, index=idx, dtype=float)
    c = pd.Series(SPOT, index=idx, dtype=float)
    for d, v in (opens or {}).items():
        o[pd.Timestamp(d)] = v
    for d, v in (closes or {}).items():
        c[pd.Timestamp(d)] = v
    return pd.DataFrame({"open": o, "high": np.maximum(o, c), "low": np.minimum(o, c), "close": c})


BASE = dict(strategy="bull_put", dte=30, dte_tolerance=10, short_delta=0.29, width=50, contracts=1, fill="mid",
            commission=0.65, rate=0.0, profit_target=None, stop_loss=None, exit_dte=None, entry="when-flat",
            account=1_000_000.0)


def run(snaps, hist=None, **kw):
    return run_backtest(snaps, BacktestParams(**(BASE | kw)), daily=daily() if hist is None else hist)


def only_trade(res):
    assert len(res.trades) >= 1
    return res.trades.iloc[0]


# ------------------------------------------------------------------------------------------------
# entries and each exit rule, to the cent
def test_entry_picks_the_delta_and_width_and_fills_at_mid():
    res = run([snap(D[0], put_quotes()), snap(D[1], put_quotes())])
    t = only_trade(res)
    legs = res.legs[res.legs["trade_id"] == t["trade_id"]].sort_values("strike")
    assert list(legs["strike"]) == [4800.0, 4850.0]
    assert list(legs["quantity"]) == [1.0, -1.0]
    assert list(legs["entry_fill"]) == [12.2, 20.2]
    assert t["entry_price"] == pytest.approx(8.00, abs=1e-9)
    assert t["exit_reason"] == "end_of_data"
    assert tuple(res.trades.columns[:len(TRADE_COLUMNS)]) == TRADE_COLUMNS
    assert tuple(res.legs.columns[:len(LEG_COLUMNS)]) == LEG_COLUMNS
    assert tuple(res.equity.columns[:len(EQUITY_COLUMNS)]) == EQUITY_COLUMNS


def test_profit_target_to_the_cent():
    res = run([snap(D[0], put_quotes()), snap(D[1], put_quotes(p4850=(14.0, 14.4), p4800=(10.0, 10.4))),
               snap(D[2], put_quotes())], profit_target=0.5)
    t = only_trade(res)
    assert t["exit_reason"] == "profit_target" and t["exit_date"] == D[1]
    assert t["exit_price"] == pytest.approx(4.00, abs=1e-9)
    assert t["pnl"] == pytest.approx((8.0 - 4.0) * 100 - 4 * 0.65, abs=0.005)        # 397.40
    assert t["commissions"] == pytest.approx(2.60, abs=1e-9)


def test_profit_target_not_reached_does_not_fire():
    res = run([snap(D[0], put_quotes()), snap(D[1], put_quotes(p4850=(14.2, 14.6), p4800=(10.0, 10.4))),
               snap(D[2], put_quotes())], profit_target=0.5)
    assert only_trade(res)["exit_reason"] == "end_of_data"         # captured 3.80 of 8.00 < 50%


def test_stop_loss_to_the_cent():
    res = run([snap(D[0], put_quotes()), snap(D[1], put_quotes(p4850=(40.0, 40.4), p4800=(16.0, 16.4))),
               snap(D[2], put_quotes())], stop_loss=2.0)
    t = only_trade(res)
    assert t["exit_reason"] == "stop_loss" and t["exit_date"] == D[1]
    assert t["exit_price"] == pytest.approx(24.00, abs=1e-9)
    assert t["pnl"] == pytest.approx(-1602.60, abs=0.005)


def test_exit_dte_to_the_cent():
    q2 = put_quotes(p4850=(17.0, 17.4), p4800=(11.0, 11.4))
    res = run([snap(D[0], put_quotes()), snap(D[1], put_quotes()), snap(D[2], q2), snap(D[3], put_quotes())],
              exit_dte=28)                                            # 2026-07-01 is 28 days after D[2]
    t = only_trade(res)
    assert t["exit_reason"] == "exit_dte" and t["exit_date"] == D[2]
    assert t["exit_price"] == pytest.approx(6.00, abs=1e-9)
    assert t["pnl"] == pytest.approx(200 - 2.60, abs=0.005)


def test_max_hold_to_the_cent():
    q = [put_quotes(), put_quotes(p4850=(19.0, 19.4)), put_quotes(p4850=(18.0, 18.4)), put_quotes()]
    res = run([snap(d, x) for d, x in zip(D, q, strict=False)], max_hold=2)
    t = only_trade(res)
    assert t["exit_reason"] == "max_hold" and t["exit_date"] == D[2] and t["days_held"] == 2
    assert t["exit_price"] == pytest.approx(18.2 - 12.2, abs=1e-9)
    assert t["pnl"] == pytest.approx(200 - 2.60, abs=0.005)


def test_end_of_data_closes_at_the_last_days_quotes():
    res = run([snap(D[0], put_quotes()), snap(D[1], put_quotes(p4850=(21.0, 21.4), p4800=(12.5, 12.9)))])
    t = only_trade(res)
    assert t["exit_reason"] == "end_of_data" and t["exit_date"] == D[1]
    assert t["exit_price"] == pytest.approx(21.2 - 12.7, abs=1e-9)
    assert t["pnl"] == pytest.approx(-50 - 2.60, abs=0.005)
    assert res.equity["equity"].iloc[-1] == pytest.approx(1_000_000 + t["pnl"], abs=0.005)


def test_expiry_pm_settles_at_the_session_close():
    exp = D[2]
    q = lambda **kw: put_quotes(exp=exp, extra=False, **kw)        # noqa: E731
    res = run([snap(D[0], q()), snap(D[1], q()), snap(D[2], q()), snap(D[3], put_quotes())],
              hist=daily(closes={D[2]: 4830.0}, opens={D[2]: 4700.0}), dte=2, dte_tolerance=2)
    t = only_trade(res)
    assert t["exit_reason"] == "expiry" and t["exit_date"] == D[2]
    legs = res.legs.sort_values("strike")
    assert list(legs["exit_kind"]) == ["settlement", "settlement"]
    assert list(legs["settlement_price"]) == [4830.0, 4830.0]
    assert list(legs["exit_value"]) == [0.0, 20.0]                   # 4800P, 4850P at 4830
    assert t["exit_price"] == pytest.approx(20.0, abs=1e-9)
    assert t["pnl"] == pytest.approx((8 - 20) * 100 - 1.30, abs=0.005)  # no commission at settlement


def test_expiry_am_settles_at_the_opening_print():
    exp = D[2]
    q = lambda **kw: put_quotes(exp=exp, root="SPX", extra=False, **kw)        # noqa: E731
    res = run([snap(D[0], q()), snap(D[1], q()), snap(D[2], q()), snap(D[3], put_quotes())],
              hist=daily(closes={D[2]: 4830.0}, opens={D[2]: 4790.0}), dte=2, dte_tolerance=2)
    t = only_trade(res)
    assert t["exit_reason"] == "expiry"
    legs = res.legs.sort_values("strike")
    assert list(legs["settlement"]) == ["AM", "AM"]
    assert list(legs["settlement_price"]) == [4790.0, 4790.0]
    assert list(legs["exit_value"]) == [10.0, 60.0]
    assert "opening print" in legs["settlement_source"].iloc[0]
    assert t["pnl"] == pytest.approx((8 - 50) * 100 - 1.30, abs=0.005)
    assert "no SOQ" in res.assumptions["settlement"]["AM"] or "SOQ" in res.assumptions["settlement"]["note"]


def test_expiry_on_a_missing_day_settles_from_the_daily_history():
    exp = D[2]
    q = lambda: put_quotes(exp=exp, extra=False)        # noqa: E731
    res = run([snap(D[0], q()), snap(D[1], q()), snap(D[3], put_quotes())],
              hist=daily(closes={D[2]: 4860.0}), dte=2, dte_tolerance=2)
    assert res.missing_days == (D[2],)
    t = only_trade(res)
    assert t["exit_reason"] == "expiry" and t["exit_date"] == D[2]
    assert t["exit_price"] == pytest.approx(0.0, abs=1e-12)
    assert t["pnl"] == pytest.approx(800 - 1.30, abs=0.005)


def test_expiry_without_a_history_row_is_a_settlement_error():
    exp = D[2]
    hist = daily().drop(index=pd.Timestamp(D[2]))
    with pytest.raises(SettlementError):
        run([snap(D[0], put_quotes(exp=exp)), snap(D[2], put_quotes(exp=exp))], hist=hist, dte=2, dte_tolerance=2)


# ------------------------------------------------------------------------------------------------
# missing legs and days
def test_a_missing_leg_keeps_its_last_mark_and_is_flagged_then_closes():
    gone = put_quotes(p4800=None)
    res = run([snap(D[0], put_quotes()), snap(D[1], gone), snap(D[2], gone), snap(D[3], gone), snap(D[4], gone)],
              missing_leg_days=2)
    eq = res.equity.set_index("date")
    assert list(eq["stale_legs"]) == [0, 1, 1, 1, 0]       # stale on D[3] too, the day it closes
    # day 1: 4850P at its mid 20.20 today, 4800P at its last mark 12.20 (never zero): value −(20.2 − 12.2) × 100
    assert eq.loc[D[1], "positions_value"] == pytest.approx(-800.0, abs=1e-9)
    t = only_trade(res)
    assert t["exit_reason"] == "missing_legs" and t["exit_date"] == D[3]
    assert "stale_marks:3" in t["flags"] and "closed_at_last_mark:1" in t["flags"]
    legs = res.legs.set_index("strike")
    assert legs.loc[4800.0, "exit_kind"] == "last_mark" and legs.loc[4800.0, "exit_value"] == 12.2
    assert legs.loc[4850.0, "exit_kind"] == "quote"
    assert t["pnl"] == pytest.approx(-2.60, abs=0.005)


def test_missing_days_are_listed_never_filled():
    seen = []
    res = run_backtest([snap(D[0], put_quotes()), snap(D[2], put_quotes()), snap(D[4], put_quotes())],
                       BacktestParams(**BASE), daily=daily(), progress=lambda i, n, d: seen.append((i, n, d)))
    assert seen == [(1, 3, D[0]), (2, 3, D[2]), (3, 3, D[4])]
    assert res.missing_days == (D[1], D[3])
    assert list(res.equity["date"]) == [D[0], D[2], D[4]]
    assert res.assumptions["missing_days"] == [D[1].isoformat(), D[3].isoformat()]


# ------------------------------------------------------------------------------------------------
# fills and commissions
@pytest.mark.parametrize("fill, credit", [("mid", 8.00), ("natural", 20.0 - 12.4), ("slippage:0.5", 20.1 - 12.3),
                                          ("slippage:1", 7.60), ("slippage:0", 8.00)])
def test_fill_models_to_the_cent(fill, credit):
    res = run([snap(D[0], put_quotes()), snap(D[1], put_quotes())], fill=fill, contracts=3)
    t = only_trade(res)
    assert t["entry_price"] == pytest.approx(credit, abs=1e-9)
    # the same model closes: natural pays the ask of the short, gets the bid of the long
    close = {"mid": 8.00, "natural": 20.4 - 12.0, "slippage:0.5": 20.3 - 12.1, "slippage:1": 8.40,
             "slippage:0": 8.00}[fill]
    assert t["exit_price"] == pytest.approx(close, abs=1e-9)
    assert t["commissions"] == pytest.approx(2 * 2 * 3 * 0.65, abs=1e-9)            # 7.80
    assert t["pnl"] == pytest.approx((credit - close) * 300 - 7.80, abs=0.005)


def test_tick_rounding_and_fill_functions():
    assert fills.tick_size([0.5, 2.95, 3.0, 12.0]).tolist() == [0.05, 0.05, 0.10, 0.10]
    assert fills.tick_size([0.5], "XYZ").tolist() == [0.01]
    # 1.075 is a tie between 1.05 and 1.10: against the trader
    assert fills.fill_price(1.00, 1.15, +1).item() == pytest.approx(1.10)
    assert fills.fill_price(1.00, 1.15, -1).item() == pytest.approx(1.05)
    assert fills.fill_price(10.0, 10.3, +1).item() == pytest.approx(10.2)     # 10.15 → 10.20 buying
    assert fills.fill_price(10.0, 10.3, -1).item() == pytest.approx(10.1)
    assert fills.fill_price(1.00, 1.15, +1, "natural").item() == 1.15
    assert fills.fill_price(1.00, 1.15, -1, "slippage", 1.0).item() == 1.00
    f = fills.fill_leg(20.0, 20.4, -1, D[0], "slippage", 0.5)
    assert (f.price, f.bid, f.ask, f.mid, f.date, f.model) == (20.1, 20.0, 20.4, 20.2, D[0], "slippage:0.5")
    assert fills.commission_cost([1, -1, -1, 1], 0.65) == pytest.approx(2.60)


# ------------------------------------------------------------------------------------------------
# parameters
@pytest.mark.parametrize("kw, field", [
    ({"strategy": "butterfly"}, "strategy"), ({"fill": "slippage:1.5"}, "fill"), ({"fill": "best"}, "fill"),
    ({"entry": "every:0"}, "entry"), ({"entry": "weekly"}, "entry"), ({"dte": -1}, "dte"),
    ({"max_open": 0}, "max_open"), ({"profit_target": 0}, "profit_target"), ({"stop_loss": -1}, "stop_loss"),
    ({"commission": -0.1}, "commission"), ({"account": 0}, "account"), ({"short_delta": 1.2}, "short_delta"),
    ({"long_delta": 0.4}, "long_delta"), ({"width": -5}, "width"), ({"missing_leg_days": -1}, "missing_leg_days"),
    ({"start": "not a date"}, "start"), ({"start": "2026-07-01", "end": "2026-06-01"}, "start"),
    ({"regime_exit": True}, "regime_exit"), ({"contracts": 0}, "contracts"), ({"rate": 3.0}, "rate"),
])
def test_bad_params_name_the_field(kw, field):
    with pytest.raises(BacktestInputError) as err:
        BacktestParams(**kw)
    assert err.value.argument == field


def test_bad_inputs_fail_before_anything_runs():
    with pytest.raises(BacktestInputError) as err:
        run_backtest([snap(D[1], put_quotes()), snap(D[0], put_quotes())], BacktestParams(), daily=daily())
    assert err.value.argument == "feed"
    with pytest.raises(BacktestInputError):
        run_backtest(["not a snapshot"], BacktestParams())
    with pytest.raises(BacktestInputError) as err:
        run_backtest([snap(D[0], put_quotes())], {"strategy": "bull_put"})
    assert err.value.argument == "params"


def test_parsers_and_to_dict():
    assert parse_entry("every:5") == ("every", 5) and parse_entry("roll") == ("roll", 1)
    assert parse_fill("slippage:0.25") == ("slippage", 0.25) and parse_fill("natural") == ("natural", 1.0)
    d = BacktestParams(strategy="putwrite").to_dict()
    assert d["strategy"] == "putwrite" and d["fill"] == "mid" and isinstance(d["sizing"], dict)


# ------------------------------------------------------------------------------------------------
# sizing and schedules on the hand-built chain
def test_kelly_bootstrap_sizing_on_the_running_equity():
    # bootstrap risk 1% of $100,000 = $1,000; max loss per contract (50 − 8) × 100 = $4,200 → 0 contracts;
    # with a $1,000,000 account: $10,000 → 2 contracts
    small = run_backtest([snap(D[0], put_quotes()), snap(D[1], put_quotes())],
                         BacktestParams(**(BASE | {"contracts": None, "account": 100_000.0})), daily=daily())
    assert small.trades.empty and sum(small.assumptions["entries_skipped"].values()) == 1
    big = run_backtest([snap(D[0], put_quotes()), snap(D[1], put_quotes())],
                       BacktestParams(**(BASE | {"contracts": None})), daily=daily())
    t = only_trade(big)
    assert t["contracts"] == 2 and t["max_loss"] == pytest.approx(8400.0)


def test_daily_entries_respect_max_open_and_skip_the_last_day():
    snaps = [snap(d, put_quotes()) for d in D]
    res = run(snaps, entry="daily", max_open=3)
    assert list(res.trades["entry_date"]) == [D[0], D[1], D[2]]
    assert list(res.equity["open_positions"]) == [1, 2, 3, 3, 0]
    every = run(snaps, entry="every:2", max_open=5)
    assert list(every.trades["entry_date"]) == [D[0], D[2]]


def test_short_put_and_strangle_legs():
    q = put_quotes() | {("SPXW", FAR, 5150, "C"): (18.0, 18.4), ("SPXW", FAR, 5200, "C"): (9.0, 9.4),
                        ("SPXW", FAR, 5250, "C"): (4.0, 4.2)}
    # a short put risks (strike − credit) × 100 ≈ $483,000: an account whose 20% open-risk cap holds one
    res = run([snap(D[0], q), snap(D[1], q)], strategy="short_put", width=None, long_delta=0.1, account=1e7)
    legs = res.legs
    assert list(zip(legs["strike"], legs["right"], legs["quantity"], strict=True)) == [(4850.0, "P", -1.0)]
    assert res.trades["max_loss"].iloc[0] == pytest.approx((4850 - 20.2) * 100)
    res = run([snap(D[0], q), snap(D[1], q)], strategy="strangle", width=None, long_delta=0.1, short_delta=0.25,
              account=1e7)
    got = sorted(zip(res.legs["right"], res.legs["quantity"], strict=True))
    assert got == [("C", -1.0), ("P", -1.0)]


# ------------------------------------------------------------------------------------------------
# no look-ahead: prefix invariance
def _prefix_check(snaps, params, cut, **kw):
    full = run_backtest(snaps, params, **kw)
    part = run_backtest([s for s in snaps if s.snapshot_date <= cut] if isinstance(snaps, list) else snaps,
                        params.replace(end=cut), **kw)
    closed = full.trades[pd.to_datetime(full.trades["exit_date"]) < pd.Timestamp(cut)]
    closed_p = part.trades[pd.to_datetime(part.trades["exit_date"]) < pd.Timestamp(cut)]
    pd.testing.assert_frame_equal(closed.reset_index(drop=True), closed_p.reset_index(drop=True))
    ef = full.equity[pd.to_datetime(full.equity["date"]) < pd.Timestamp(cut)].reset_index(drop=True)
    ep = part.equity[pd.to_datetime(part.equity["date"]) < pd.Timestamp(cut)].reset_index(drop=True)
    pd.testing.assert_frame_equal(ef, ep)
    return full, part, len(closed)


def test_prefix_invariance_synthetic():
    from fixtures import fixture_chain

    days = [d.date() for d in pd.bdate_range("2026-03-02", periods=12)]
    spots = 5000 * np.exp(np.cumsum(np.r_[0, np.random.default_rng(7).normal(0, 0.01, len(days) - 1)]))
    snaps = [fixture_chain(d, spot=float(s), seed=i) for i, (d, s) in enumerate(zip(days, spots, strict=True))]
    hist = pd.DataFrame({"open": spots, "close": spots}, index=pd.DatetimeIndex(days))
    params = BacktestParams(strategy="iron_condor", dte=10, dte_tolerance=10, width=25, entry="daily", max_open=4,
                            contracts=1, account=1_000_000.0, exit_dte=2, profit_target=0.3, stop_loss=1.0,
                            rate=0.0, max_spread_pct=0.5, min_open_interest=0)
    full, _, n = _prefix_check(snaps, params, days[8], daily=hist)
    assert len(full.trades) >= 3 and n >= 1
    # the equity identity: final equity = account + Σ pnl
    assert full.equity["equity"].iloc[-1] == pytest.approx(1_000_000 + full.trades["pnl"].sum(), abs=0.01)


# ------------------------------------------------------------------------------------------------
# the real 2026 archive
@pytest.fixture(scope="module")
def archive_snaps():
    from research_lib.backtest.feed import Feed

    feed = Feed(shared_file(EOD_ARCHIVE))
    return feed, list(feed)


@pytest.fixture(scope="module")
def raw_archive():
    raw = pd.read_parquet(shared_file(EOD_ARCHIVE),
                          columns=["file_date", "price_date", "strike", "cp", "bid", "ask", "expiration", "flag"])
    raw = raw[(raw["flag"] == "OK") & (raw["file_date"] == raw["price_date"])]
    raw = raw.assign(day=pd.to_datetime(raw["price_date"]).dt.date, exp=pd.to_datetime(raw["expiration"]).dt.date,
                     cp=raw["cp"].astype(str))
    return raw.set_index(["day", "exp", "strike", "cp"]).sort_index()


@pytest.fixture(scope="module")
def spx_daily():
    from research_lib.data.market import load_index_daily

    return load_index_daily("SPX", market_dir=SHARED_DATA / "market")


def _quote_matches(raw, day, exp, strike, right, bid, ask) -> bool:
    rows = raw.loc[(day, exp, strike, right)]
    rows = rows if isinstance(rows, pd.DataFrame) else rows.to_frame().T
    return bool(((rows["bid"].astype(float) == bid) & (rows["ask"].astype(float) == ask)).any())


def test_real_archive_every_leg_price_is_a_raw_quote(archive_snaps, raw_archive, spx_daily):
    feed, snaps = archive_snaps
    params = BacktestParams(strategy="iron_condor", entry="daily", max_open=6, width=50, contracts=1,
                            account=2_000_000.0, fill="natural", rate=0.04)
    res = run_backtest(snaps, params, daily=spx_daily)
    assert res.missing_days == (dt.date(2026, 6, 23), dt.date(2026, 8, 7))
    assert len(res.trades) >= 10 and set(res.trades["exit_reason"]) >= {"profit_target", "end_of_data"}
    legs = res.legs
    for row in legs.itertuples():
        assert _quote_matches(raw_archive, row.entry_date, row.expiration, row.strike, row.right, row.entry_bid,
                              row.entry_ask), row
        assert row.entry_fill == (row.entry_ask if row.quantity > 0 else row.entry_bid)
        if row.exit_kind == "quote":
            assert _quote_matches(raw_archive, row.exit_date, row.expiration, row.strike, row.right, row.exit_bid,
                                  row.exit_ask), row
            assert row.exit_fill == (row.exit_bid if row.quantity > 0 else row.exit_ask)
    # the trade prices are the signed sums of the leg fills
    for tid, g in legs.groupby("trade_id"):
        t = res.trades.set_index("trade_id").loc[tid]
        assert t["entry_price"] == pytest.approx(float((-np.sign(g["quantity"]) * g["entry_fill"]).sum()), abs=1e-9)
        assert t["exit_price"] == pytest.approx(float((-np.sign(g["quantity"]) * g["exit_fill"]).sum()), abs=1e-9)
    assert res.equity["equity"].iloc[-1] == pytest.approx(2_000_000 + res.trades["pnl"].sum(), abs=0.01)


def test_real_archive_settlements_are_intrinsic_at_the_daily_history(archive_snaps, spx_daily):
    feed, snaps = archive_snaps
    common = dict(strategy="bull_put", entry="daily", max_open=8, width=50, contracts=1, account=5_000_000.0,
                  profit_target=None, stop_loss=None, exit_dte=None, rate=0.04, dte=10, dte_tolerance=8)
    pm = run_backtest(snaps, BacktestParams(**common), daily=spx_daily)
    am = run_backtest(snaps, BacktestParams(**(common | {"roots": ("SPX",), "dte": 25})), daily=spx_daily)
    seen = set()
    for res in (pm, am):
        settled = res.legs[res.legs["exit_kind"] == "settlement"]
        assert len(settled)
        for row in settled.itertuples():
            day = pd.Timestamp(row.expiration)
            price = spx_daily.loc[day, "open" if row.settlement == "AM" else "close"]
            assert row.settlement_price == price
            want = max(price - row.strike, 0) if row.right == "C" else max(row.strike - price, 0)
            assert row.exit_value == pytest.approx(want, abs=1e-9)
            seen.add(row.settlement)
    assert seen == {"AM", "PM"}


def test_real_archive_prefix_invariance(archive_snaps, spx_daily):
    feed, snaps = archive_snaps
    params = BacktestParams(strategy="bull_put", entry="daily", max_open=5, width=50, account=1_000_000.0,
                            rate=0.04, sizing=None)
    _, _, n = _prefix_check(snaps, params, dt.date(2026, 7, 22), daily=spx_daily)
    assert n >= 3


def test_real_archive_selection_matches_core_build_strategy(archive_snaps):
    feed, snaps = archive_snaps
    for kind, ours in (("bull_put_spread", "bull_put"), ("iron_condor", "iron_condor"),
                       ("bear_call_spread", "bear_call"), ("bull_call_spread", "bull_call")):
        for s in snaps[::15]:
            sp = BacktestParams(strategy=ours, rate=0.04).strategy_params()
            core_res = core.build_strategy(kind, s, sp)
            day = _Day(s, RootCodes())
            sel = select_legs(ours, day.arrays(), s.spot, gex.valuation_moment(s, sp.config).value, sp, 0.04)
            assert core_res.valid and not isinstance(sel, str), (kind, s.snapshot_date)
            got = sorted((day.root_names[day.root_of(np.array([r]))[0]], float(day.strike[r]),
                          "C" if day.is_call[r] else "P", int(sd)) for r, sd in zip(sel.rows, sel.sides, strict=True))
            want = sorted((leg.root, leg.strike, leg.right, leg.side) for leg in core_res.legs)
            assert got == want, (kind, s.snapshot_date)
            assert sel.max_loss == pytest.approx(core_res.max_loss, abs=1e-6)


# ------------------------------------------------------------------------------------------------
# the regime-driven run (decide_on each day)
AUTO_REGIME = dict(iv_rank_sell=0.0, zero_gamma_buffer_pct=0.0001)


@pytest.fixture(scope="module")
def synthetic_auto(tmp_path_factory):
    from fixtures import fixture_chain, market_frame, sessions, write_market_history

    from research_lib.data.market import load_market_history

    folder = tmp_path_factory.mktemp("auto_market")
    write_market_history(folder)
    days = [d.date() for d in sessions()[-8:]]
    snaps = [fixture_chain(d, seed=i, max_expiries=14) for i, d in enumerate(days)]
    spx = market_frame()["spx"]
    hist = pd.DataFrame({"open": spx, "close": spx})
    return snaps, load_market_history(folder), folder, hist


def test_auto_enters_decide_ons_legs_and_is_prefix_invariant(synthetic_auto):
    from research_lib.core.regime import RegimeParams

    snaps, history, folder, hist = synthetic_auto
    params = BacktestParams(strategy="auto", entry="daily", max_open=3, regime=RegimeParams(**AUTO_REGIME),
                            account=1e6, rate=0.05, dte=20, regime_exit=True)
    full, _, _ = _prefix_check(snaps, params, snaps[6].snapshot_date, market_history=history, market_dir=folder,
                               daily=hist)
    assert len(full.trades) >= 1
    assert set(full.trades["strategy"]) <= {k.value for k in core.StrategyKind}
    assert (full.trades["regime"] != "").all() and (full.trades["why"].str.len() > 20).all()
    by_day = {s.snapshot_date: s.contracts.set_index(["root", "expiration", "strike", "right"]) for s in snaps}
    for row in full.legs.itertuples():
        q = by_day[row.entry_date].loc[(row.root, pd.Timestamp(row.expiration), row.strike, row.right)]
        assert (q["bid"], q["ask"]) == (row.entry_bid, row.entry_ask)
    assert full.equity["equity"].iloc[-1] == pytest.approx(1e6 + full.trades["pnl"].sum(), abs=0.01)


def test_auto_on_the_real_archive_trades_the_chains_quotes(archive_snaps, raw_archive, spx_daily):
    from research_lib.core.regime import RegimeParams
    from research_lib.data.market import load_market_history

    feed, snaps = archive_snaps
    params = BacktestParams(strategy="auto", entry="daily", max_open=3, regime=RegimeParams(iv_rank_sell=0.0),
                            account=1e6, fill="natural", end=dt.date(2026, 6, 26), regime_exit=True)
    market = SHARED_DATA / "market"
    res = run_backtest(snaps, params, market_history=load_market_history(market), market_dir=market,
                       daily=spx_daily)
    assert len(res.trades) >= 2 and res.missing_days == (dt.date(2026, 6, 23),)
    for row in res.legs.itertuples():
        assert _quote_matches(raw_archive, row.entry_date, row.expiration, row.strike, row.right, row.entry_bid,
                              row.entry_ask), row
        if row.exit_kind == "quote":
            assert _quote_matches(raw_archive, row.exit_date, row.expiration, row.strike, row.right, row.exit_bid,
                                  row.exit_ask), row


def test_a_feed_over_a_synthetic_archive_file(synthetic):
    from research_lib.backtest.feed import Feed

    feed = Feed(synthetic.files["eod_archive"])
    spx = pd.Series({pd.Timestamp(d): s.spot for d, s in synthetic.eod_snaps.items()})
    hist = pd.DataFrame({"open": spx, "close": spx})
    params = BacktestParams(strategy="bull_put", dte=20, width=25, entry="daily", max_open=3, contracts=1,
                            account=1e6, rate=0.05, max_spread_pct=0.5, min_open_interest=0,
                            start=dt.date(2024, 3, 4))
    res = run_backtest(feed, params, daily=hist)
    assert list(res.equity["date"]) == [dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 6)]
    assert res.missing_days == () and len(res.trades) == 2
    by_day = {d: s.contracts.set_index(["root", "expiration", "strike", "right"]) for d, s in
              synthetic.eod_snaps.items()}
    for row in res.legs.itertuples():
        q = by_day[row.entry_date].loc[(row.root, pd.Timestamp(row.expiration), row.strike, row.right)]
        assert (q["bid"], q["ask"]) == (row.entry_bid, row.entry_ask)
        assert row.entry_fill == fills.fill_price(row.entry_bid, row.entry_ask, np.sign(row.quantity)).item()


def test_from_cli_strings():
    p = BacktestParams.from_cli(strategy="iron_condor", dte="30", width="25", profit_target="none", stop_loss="1.5",
                                exit_dte="None", fill="slippage:0.3", entry="every:5", max_open="2", account="5e4",
                                short_delta=None)
    assert (p.dte, p.width, p.profit_target, p.stop_loss, p.exit_dte, p.max_open, p.account, p.short_delta) == \
        (30, 25.0, None, 1.5, None, 2, 50_000.0, 0.30)
    assert p.fill_model == ("slippage", 0.3) and p.entry_kind == ("every", 5)
    with pytest.raises(BacktestInputError) as err:
        BacktestParams.from_cli(dte="soon")
    assert err.value.argument == "dte"
    with pytest.raises(BacktestInputError) as err:
        BacktestParams.from_cli(colour="red")
    assert err.value.argument == "colour"


def test_roll_entries_on_the_monthly_expiry_or_the_session_before():
    # June 2026: the third Friday 06-19 is Juneteenth (closed): the roll date is Thursday 06-18
    days = [dt.date(2026, 6, 17), dt.date(2026, 6, 18), dt.date(2026, 6, 22), dt.date(2026, 7, 17),
            dt.date(2026, 7, 20)]
    exp = dt.date(2026, 8, 18)
    wings = {("SPXW", exp, k, "P"): (b, b + 0.4) for k, b in ((4750, 8.0), (4700, 5.0), (4650, 3.0))}
    snaps = [snap(d, put_quotes(exp=exp) | wings) for d in days]
    res = run(snaps, entry="roll", max_open=5, dte=50, dte_tolerance=20,
              hist=pd.DataFrame({"open": SPOT, "close": SPOT}, index=pd.DatetimeIndex(days)))
    assert list(res.trades["entry_date"]) == [dt.date(2026, 6, 18), dt.date(2026, 7, 17)]


def test_book_greeks_are_the_legs_model_greeks_times_signed_contracts():
    from math import erf, exp, log, pi, sqrt

    res = run([snap(D[0], put_quotes()), snap(D[1], put_quotes())], contracts=2)
    row = res.equity.iloc[0]
    T = 30 / 365                      # 2026-06-01 16:00 → 2026-07-01 16:00 ET, calendar days / 365

    def put(k):                       # Black-Scholes with r = q = 0, σ = 20%, by hand
        d1 = (log(SPOT / k) + 0.5 * 0.04 * T) / (0.2 * sqrt(T))
        pdf = exp(-d1 * d1 / 2) / sqrt(2 * pi)
        return 0.5 * (1 + erf(d1 / sqrt(2))) - 1, pdf / (SPOT * 0.2 * sqrt(T)), SPOT * pdf * sqrt(T)

    (d_s, g_s, v_s), (d_l, g_l, v_l) = put(4850), put(4800)
    assert row["delta"] == pytest.approx(200 * (d_l - d_s), rel=1e-9)
    assert row["gamma"] == pytest.approx(200 * (g_l - g_s), rel=1e-9)
    assert row["vega"] == pytest.approx(200 * (v_l - v_s) * 0.01, rel=1e-9)
    assert row["delta"] > 0 and row["theta"] > 0          # a bull put spread: long delta, earns time decay


def test_putwrite_through_the_engine_is_the_index_methodology():
    """run_backtest dispatches putwrite to indexwrite.run_index_strategy with the params mapped (range, account,
    fill, commission); the result carries the run's params."""
    from research_lib.backtest.feed import Feed
    from research_lib.backtest.indexwrite import run_index_strategy

    market = SHARED_DATA / "market"
    feed = Feed(shared_file(EOD_ARCHIVE), start="2026-06-15", end="2026-07-31")
    params = BacktestParams(strategy="putwrite", account=250_000.0, fill="natural", commission=0.5)
    via_engine = run_backtest(feed, params, market_dir=market)
    direct = run_index_strategy(feed, "putwrite", account=250_000.0, fill="natural", commission=0.5, market_dir=market)
    pd.testing.assert_frame_equal(via_engine.trades, direct.trades)
    pd.testing.assert_frame_equal(via_engine.equity, direct.equity)
    assert via_engine.params["strategy"] == "putwrite" and via_engine.params["fill"] == "natural"
    assert via_engine.start >= dt.date(2026, 6, 15) and via_engine.end <= dt.date(2026, 7, 31)
