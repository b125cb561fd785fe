"""The Cboe PUT / BXM methodologies (research_lib.backtest.indexwrite) and the published-index loader
(research_lib.data.market.load_cboe_index): a hand-built chain sequence whose equity is known to the cent, the
roll-date rule, fills and quotes; and the real 2026 EOD archive (rolls, strikes, settlements, quotes) read
independently with pandas."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from research_lib import calendar as cal
from research_lib.backtest.feed import Feed
from research_lib.backtest.indexwrite import (
    EQUITY_EXTRA,
    LEG_EXTRA,
    compare_with_index,
    fill_price,
    monthly_expiry,
    next_monthly_expiry,
    parse_fill,
    roll_dates,
    run_index_strategy,
)
from research_lib.backtest.results import EQUITY_COLUMNS, EXIT_REASONS, LEG_COLUMNS, TRADE_COLUMNS
from research_lib.core.chain import ChainSnapshot
from research_lib.data.market import load_cboe_index, load_market_history
from research_lib.errors import BacktestInputError, MarketDataError, SettlementError
from tests.conftest import EOD_ARCHIVE, SHARED_DATA, shared_file
from tests.fixtures import write_eod_archive

D = dt.date
IRX = 5.20  # % bank discount, every day
R = -math.log(1 - IRX / 100 * 91 / 360) * 365 / 91  # its continuous actual/365 rate, by hand


# --------------------------------------------------------------------------------------------------
# the hand-built sequence
#
# 03-14 flat (before the first roll); 03-15 roll 1 (March expiry): sell the 04-19 AM 5000 put (spot 5023.40: 5025
# is above it); 03-18 mark; 03-19 the put is missing from the chain (last mark kept, flagged); 04-19 roll 2: the
# April put settles at the open 4950.25 (intrinsic 49.75), sell the 05-17 AM 4950 put (spot 4961.70); 04-22 the
# last day: the May put is bought back at that day's quote (end_of_data). SPXW (PM) rows with the same strikes and
# different quotes are decoys: only the AM SPX root is traded.

SPOTS = {D(2024, 3, 14): 5010.0, D(2024, 3, 15): 5023.4, D(2024, 3, 18): 5031.0, D(2024, 3, 19): 5040.0,
         D(2024, 4, 19): 4961.7, D(2024, 4, 22): 4990.0}
OPEN_0419 = 4950.25
#: (day) -> {(root, expiry, strike, right): (bid, ask)}
QUOTES = {
    D(2024, 3, 14): {("SPX", "2024-04-19", 5000, "P"): (62.0, 63.0), ("SPX", "2024-04-19", 5025, "P"): (74.0, 75.0)},
    D(2024, 3, 15): {("SPX", "2024-04-19", 5000, "P"): (60.0, 61.0), ("SPX", "2024-04-19", 5025, "P"): (72.0, 73.2),
                     ("SPX", "2024-04-19", 5000, "C"): (80.0, 81.0), ("SPX", "2024-04-19", 5025, "C"): (66.0, 67.0),
                     ("SPXW", "2024-04-19", 5000, "P"): (70.0, 71.0)},
    D(2024, 3, 18): {("SPX", "2024-04-19", 5000, "P"): (55.0, 56.0), ("SPX", "2024-04-19", 5025, "P"): (67.0, 68.0),
                     ("SPXW", "2024-04-19", 5000, "P"): (65.0, 66.0)},
    D(2024, 3, 19): {("SPX", "2024-04-19", 5025, "P"): (64.0, 65.0), ("SPXW", "2024-04-19", 5000, "P"): (60.0, 61.0)},
    D(2024, 4, 19): {("SPX", "2024-05-17", 4950, "P"): (80.0, 81.5), ("SPX", "2024-05-17", 4975, "P"): (93.0, 94.0),
                     ("SPXW", "2024-05-17", 4950, "P"): (90.0, 91.0)},
    D(2024, 4, 22): {("SPX", "2024-05-17", 4950, "P"): (70.0, 71.0), ("SPX", "2024-05-17", 4975, "P"): (82.0, 83.0),
                     ("SPXW", "2024-05-17", 4950, "P"): (75.0, 76.0)},
}
DAYS = sorted(SPOTS)


def _snapshot(day: dt.date) -> ChainSnapshot:
    rows = []
    for (root, exp, k, right), (bid, ask) in QUOTES[day].items():
        rows.append({"root": root, "expiration": pd.Timestamp(exp), "settlement": "AM" if root == "SPX" else "PM",
                     "strike": float(k), "right": right, "bid": bid, "ask": ask, "last": np.nan, "volume": np.nan,
                     "open_interest": 100.0, "iv": 0.15, "delta": -0.45 if right == "P" else 0.55, "gamma": 0.001})
    # a near SPXW weekly so the EOD archive's root inference sees the SPXW block start (expiry steps back)
    rows.append({"root": "SPXW", "expiration": pd.Timestamp(day) + pd.Timedelta(days=7), "settlement": "PM",
                 "strike": 5000.0, "right": "C", "bid": 30.0, "ask": 31.0, "last": np.nan, "volume": np.nan,
                 "open_interest": 100.0, "iv": 0.15, "delta": 0.5, "gamma": 0.002})
    return ChainSnapshot.create(underlying="SPX", spot=SPOTS[day], quote_time=cal.session_close(day),
                                source="synthetic:hand_built", contracts=pd.DataFrame(rows), snapshot_date=day)


def _write_market(folder, *, tr: bool = False):
    folder.mkdir(parents=True, exist_ok=True)
    days = pd.DatetimeIndex([pd.Timestamp(d) for d in cal.sessions("2024-03-01", "2024-04-30")])
    close = pd.Series(5000.0, index=days)
    for d, s in SPOTS.items():
        close[pd.Timestamp(d)] = s
    opn = close.copy()
    opn[pd.Timestamp("2024-04-19")] = OPEN_0419
    frame = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "open": opn.to_numpy(), "high": close.to_numpy() + 20,
                          "low": np.minimum(opn, close).to_numpy() - 20, "close": close.to_numpy(),
                          "spxtr_close": (close * 2.0 * np.exp(0.015 * np.arange(len(days)) / 252)).round(4)
                          .to_numpy() if tr else "", "source": "synthetic"})
    frame.to_csv(folder / "spx_daily_2024-03-01_2024-04-30.csv", index=False)
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "irx_13w_tbill_yield_pct": IRX}).to_csv(
        folder / "irx_13week_tbill_2024-03-01_2024-04-30.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    return _write_market(tmp_path_factory.mktemp("indexwrite") / "market")


@pytest.fixture(scope="module")
def snaps():
    return [_snapshot(d) for d in DAYS]


def _expected_putwrite(account=100_000.0, *, frac=0.0, fee=0.0):
    """The equity of each day, by hand."""
    def fill(bid, ask, side):
        return (bid + ask) / 2 + side * frac * (ask - bid) / 2

    def grow(cash, days):
        return cash * math.exp(R * days / 365)

    eq = {D(2024, 3, 14): account}
    n1 = account / (5000 * 100)
    p1 = fill(60.0, 61.0, -1)
    cash = account + n1 * 100 * p1 - fee * n1
    eq[D(2024, 3, 15)] = cash - n1 * 100 * 60.5
    cash = grow(cash, 3)
    eq[D(2024, 3, 18)] = cash - n1 * 100 * 55.5
    cash = grow(cash, 1)
    eq[D(2024, 3, 19)] = cash - n1 * 100 * 55.5  # stale: the 03-18 mark
    cash = grow(cash, 31)
    cash -= n1 * 100 * (5000 - OPEN_0419)  # settlement, no commission
    n2 = cash / (4950 * 100)
    p2 = fill(80.0, 81.5, -1)
    cash += n2 * 100 * p2 - fee * n2
    eq[D(2024, 4, 19)] = cash - n2 * 100 * 80.75
    cash = grow(cash, 3)
    cash -= n2 * 100 * fill(70.0, 71.0, +1) + fee * n2
    eq[D(2024, 4, 22)] = cash
    return eq, n1, n2, p1, p2


def test_monthly_expiry_rule_and_holiday_fridays():
    assert monthly_expiry(2024, 3) == D(2024, 3, 15)
    assert monthly_expiry(2024, 4) == D(2024, 4, 19)
    assert monthly_expiry(2026, 6) == D(2026, 6, 18)      # Juneteenth on Friday 06-19
    assert monthly_expiry(2025, 4) == D(2025, 4, 17)      # Good Friday 04-18
    assert monthly_expiry(2026, 7) == D(2026, 7, 17)
    assert monthly_expiry(2026, 8) == D(2026, 8, 21)
    assert roll_dates("2026-06-12", "2026-08-21") == [D(2026, 6, 18), D(2026, 7, 17), D(2026, 8, 21)]
    assert roll_dates("2026-06-19", "2026-07-16") == []
    assert next_monthly_expiry(D(2026, 6, 18)) == D(2026, 7, 17)
    assert next_monthly_expiry(D(2026, 12, 18)) == D(2027, 1, 15)
    # every monthly expiry is a session, a Friday or the session before a non-session Friday
    for y in range(2020, 2028):
        for m in range(1, 13):
            e = monthly_expiry(y, m)
            assert cal.is_session(e)
            assert e.weekday() == 4 or not cal.is_session(e + dt.timedelta(days=(4 - e.weekday()) % 7))


def test_fills():
    assert parse_fill("mid") == ("mid", 0.0)
    assert parse_fill("natural") == ("natural", 1.0)
    assert parse_fill("slippage:0.25") == ("slippage", 0.25)
    for bad in ("vwap", "slippage:x", "slippage:1.5"):
        with pytest.raises(BacktestInputError, match="fill"):
            parse_fill(bad)
    assert fill_price(60.0, 61.0, -1, 0.0) == 60.5
    assert fill_price(60.0, 61.0, -1, 1.0) == 60.0
    assert fill_price(60.0, 61.0, +1, 1.0) == 61.0
    assert fill_price(60.0, 61.0, +1, 0.5) == 60.75


def test_putwrite_hand_built_equity_to_the_cent(snaps, market):
    res = run_index_strategy(snaps, "putwrite", market_dir=market)
    eq, n1, n2, p1, p2 = _expected_putwrite()
    got = dict(zip(res.equity["date"].dt.date, res.equity["equity"], strict=True))
    assert list(got) == DAYS
    for d in DAYS:
        assert got[d] == pytest.approx(eq[d], abs=0.005), d
    # tables and their columns (results.py's contract, extra columns at the end)
    assert tuple(res.trades.columns) == TRADE_COLUMNS
    assert tuple(res.legs.columns) == LEG_COLUMNS + LEG_EXTRA
    assert tuple(res.equity.columns) == EQUITY_COLUMNS + EQUITY_EXTRA
    t = res.trades
    assert list(t["exit_reason"]) == ["expiry", "end_of_data"]
    assert set(t["exit_reason"]) <= set(EXIT_REASONS)
    assert list(t["entry_date"].dt.date) == [D(2024, 3, 15), D(2024, 4, 19)]
    assert list(t["exit_date"].dt.date) == [D(2024, 4, 19), D(2024, 4, 22)]
    # fractional contracts: N = equity / (K x 100)
    assert t["contracts"].iloc[0] == pytest.approx(0.2, abs=1e-12)
    assert t["contracts"].iloc[1] == pytest.approx(n2, rel=1e-12)
    assert 0 < n2 < 1 and n2 != round(n2, 2)
    assert t["entry_price"].tolist() == pytest.approx([60.5, 80.75])
    assert t["exit_price"].tolist() == pytest.approx([5000 - OPEN_0419, 70.5])
    assert t["pnl"].iloc[0] == pytest.approx((60.5 - 49.75) * 100 * 0.2, abs=1e-9)
    assert t["flags"].iloc[0] == "stale_marks:1"
    lg = res.legs
    assert list(lg["root"]) == ["SPX", "SPX"] and list(lg["settlement"]) == ["AM", "AM"]
    assert lg["strike"].tolist() == [5000.0, 4950.0]   # first strike at or below the spot (5025 > 5023.40)
    assert lg["quantity"].tolist() == pytest.approx([-0.2, -n2])
    assert lg["entry_bid"].tolist() == [60.0, 80.0] and lg["entry_ask"].tolist() == [61.0, 81.5]
    assert list(lg["exit_kind"]) == ["settlement", "quote"]
    assert lg["settlement_price"].iloc[0] == OPEN_0419
    assert "opening print" in lg["settlement_source"].iloc[0]
    assert lg["exit_bid"].iloc[1] == 70.0 and lg["exit_ask"].iloc[1] == 71.0
    assert "2024-04-22" in lg["exit_source"].iloc[1] and "bid 70 ask 71" in lg["exit_source"].iloc[1]
    # the missing quote: last mark kept (never zero), flagged on that day
    e = res.equity.set_index(res.equity["date"].dt.date)
    assert e.loc[D(2024, 3, 19), "stale_legs"] == 1
    assert "stale_mark" in e.loc[D(2024, 3, 19), "flags"]
    assert e.loc[D(2024, 3, 19), "positions_value"] == pytest.approx(-0.2 * 100 * 55.5)
    assert e.loc[D(2024, 3, 14), "interest"] == 0 and e.loc[D(2024, 3, 18), "interest"] > 0
    assert e.loc[D(2024, 3, 15), "delta"] == pytest.approx(0.2 * 100 * 0.45)  # short puts: long delta
    assert e.loc[D(2024, 3, 15), "gamma"] < 0 and e.loc[D(2024, 3, 15), "theta"] > 0
    assert e.loc[D(2024, 3, 15), "vega"] < 0
    assert (e["drawdown"] <= 0).all()
    assert res.assumptions["flat_days"] == ["2024-03-14"]
    assert "SOQ" in res.assumptions["settlement_note"] and "VWAP" in res.assumptions["fills"]
    assert "IRX" in res.assumptions["collateral_rate"] and "365" in res.assumptions["collateral_rate"]
    assert res.missing_days and D(2024, 3, 20) in res.missing_days  # the sessions the list of snapshots lacks


def test_putwrite_natural_fills_and_commission(snaps, market):
    res = run_index_strategy(snaps, "putwrite", market_dir=market, fill="natural", commission=1.25)
    eq, n1, n2, p1, p2 = _expected_putwrite(frac=1.0, fee=1.25)
    got = dict(zip(res.equity["date"].dt.date, res.equity["equity"], strict=True))
    for d in DAYS:
        assert got[d] == pytest.approx(eq[d], abs=0.005), d
    assert res.legs["entry_fill"].tolist() == [60.0, 80.0]   # sold at the bid
    assert res.legs["exit_fill"].iloc[1] == 71.0              # bought back at the ask
    assert res.trades["commissions"].tolist() == pytest.approx([1.25 * 0.2, 2 * 1.25 * n2])


def test_same_result_through_the_eod_archive_feed(snaps, market, tmp_path):
    path = write_eod_archive(tmp_path / "eod.parquet", {s.snapshot_date: s for s in snaps},
                             days={d: (d, "OK") for d in DAYS})
    feed = Feed(path)
    via_file = run_index_strategy(feed, "putwrite", market_dir=market)
    direct = run_index_strategy(snaps, "putwrite", market_dir=market)
    assert via_file.equity["equity"].to_numpy() == pytest.approx(direct.equity["equity"].to_numpy(), abs=1e-9)
    assert via_file.missing_days == tuple(feed.missing_days)
    pd.testing.assert_frame_equal(via_file.trades, direct.trades)


def test_buywrite_hand_built(snaps, market):
    # the 04-19 chain lists no May AM call: the roll cannot sell one, and says so before trading on
    with pytest.raises(BacktestInputError, match="no quoted SPX 2024-05-17 C strike at or above"):
        run_index_strategy(snaps, "buywrite", market_dir=market)
    # 03-15: units = 100000 / 5023.40; the first call strike at or above 5023.40 is 5025 (mid 66.5); the 03-18 and
    # 03-19 chains lack it (last mark kept); the last day 03-19 closes it at that mark and sells the index
    short = [s for s in snaps if s.snapshot_date <= D(2024, 3, 19)]
    res = run_index_strategy(short, "buywrite", market_dir=market)
    u = 100_000 / 5023.4
    cash = u * 66.5
    for days in (3, 1):
        cash *= math.exp(R * days / 365)
    expected = cash - u * 66.5 + u * 5040.0
    assert res.equity["equity"].iloc[-1] == pytest.approx(expected, abs=0.005)
    assert list(res.legs["right"]) == ["C", "U"]
    assert res.legs["strike"].iloc[0] == 5025.0
    assert res.legs["exit_kind"].tolist() == ["last_mark", "quote"]
    assert res.trades["exit_reason"].tolist() == ["end_of_data"]
    assert res.trades["entry_price"].iloc[0] == pytest.approx(66.5 - 5023.4)
    assert res.trades["pnl"].iloc[0] == pytest.approx((5040.0 - 5023.4) * u, abs=1e-6)
    assert "price only" in res.assumptions["dividends"]


def test_buywrite_dividends_from_the_total_return_index(snaps, tmp_path):
    market = _write_market(tmp_path / "m", tr=True)
    short = [s for s in snaps if s.snapshot_date <= D(2024, 3, 19)]
    res = run_index_strategy(short, "buywrite", market_dir=market)
    daily = pd.read_csv(next(market.glob("spx_daily_*.csv")), index_col="date", parse_dates=True)
    u = 100_000 / 5023.4
    d1, d2 = pd.Timestamp("2024-03-15"), pd.Timestamp("2024-03-18")
    div = u * 5023.4 * (daily.loc[d2, "spxtr_close"] / daily.loc[d1, "spxtr_close"] - 5031.0 / 5023.4)
    e = res.equity.set_index(res.equity["date"].dt.date)
    assert e.loc[D(2024, 3, 18), "dividends"] == pytest.approx(div, rel=1e-12)
    assert div > 0
    assert "total-return" in res.assumptions["dividends"]


def test_bad_inputs_raise_named_errors(snaps, market):
    for kw, arg in (({"strategy": "iron_condor"}, "strategy"), ({"account": 0}, "account"),
                    ({"commission": -1}, "commission"), ({"fill": "best"}, "fill")):
        with pytest.raises(BacktestInputError) as info:
            run_index_strategy(snaps, **{"strategy": "putwrite", **kw}, market_dir=market)
        assert info.value.argument == arg
    with pytest.raises(BacktestInputError, match="no monthly roll date"):
        run_index_strategy(snaps[:1], "putwrite", market_dir=market)
    # the first roll on the last day: nothing is opened (never on the last day), the run is flat
    flat = run_index_strategy(snaps[:2], "putwrite", market_dir=market)
    assert flat.trades.empty and (flat.equity["equity"] == 100_000.0).all()
    with pytest.raises(BacktestInputError, match="market_dir"):
        run_index_strategy(snaps, "putwrite", market_dir=market.parent / "nowhere")


def test_missing_settlement_open_raises(snaps, tmp_path):
    market = _write_market(tmp_path / "m")
    path = next(market.glob("spx_daily_*.csv"))
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[frame["date"] == "2024-04-19", "open"] = ""
    frame.to_csv(path, index=False)
    with pytest.raises(SettlementError, match="2024-04-19"):
        run_index_strategy(snaps, "putwrite", market_dir=market)


# --------------------------------------------------------------------------------------------------
# the published index: loader and comparison


def test_load_cboe_index_layouts(tmp_path):
    p = tmp_path / "PUT_History.csv"
    p.write_text("DATE,PUT\n06/17/2026,2950.12\n06/18/2026,2951.40\n06/22/2026,2949.00\n", encoding="utf-8")
    s = load_cboe_index(p)
    assert s.name == "PUT" and s.index.name == "date"
    assert list(s.index) == [pd.Timestamp("2026-06-17"), pd.Timestamp("2026-06-18"), pd.Timestamp("2026-06-22")]
    assert s.tolist() == [2950.12, 2951.40, 2949.00] and s.attrs["header_line"] == 1
    # a disclaimer preamble, a BOM, OHLC columns (the close is used), ISO dates, unsorted, blank trailing line
    q = tmp_path / "BXM_History.csv"
    q.write_text("\ufeffCboe S&P 500 BuyWrite Index (BXM)\n\"Data as of 2026\"\nDate,Open,High,Low,Close\n"
                 "2026-06-18,1,2,0.5,1501.5\n2026-06-17,1,2,0.5,1500.25\n\n", encoding="utf-8")
    b = load_cboe_index(q, symbol="bxm")
    assert b.name == "BXM" and b.tolist() == [1500.25, 1501.5] and b.attrs["column"] == "Close"
    assert b.attrs["header_line"] == 3


@pytest.mark.parametrize("body, match", [
    ("DATE,PUT\n06/17/2026,2950\n06/18/2026,abc\n", r"'abc' on line 3"),
    ("DATE,PUT\n06/17/2026,2950\n06/31/2026,2951\n", r"'06/31/2026' on line 3"),
    ("DATE,PUT\n06/17/2026,2950\n06/17/2026,2951\n", r"duplicate dates.*lines 2 and 3"),
    ("DATE,PUT\n06/17/2026,2950\n06/18/2026,\n", r"line 3"),
    ("DATE,PUT\n06/17/2026,-5\n", r"positive.*line 2"),
    ("DATE,A,B\n06/17/2026,1,2\n", r"no value column"),
    ("nothing here\n1,2\n", r"no header line"),
    ("DATE,PUT\n", r"no rows"),
])
def test_load_cboe_index_strict_values(tmp_path, body, match):
    p = tmp_path / "PUT_History.csv"
    p.write_text(body, encoding="utf-8")
    with pytest.raises(MarketDataError, match=match):
        load_cboe_index(p)


def test_compare_with_index(snaps, market):
    res = run_index_strategy(snaps, "putwrite", market_dir=market)
    eq = res.equity.set_index("date")["equity"]
    # the same curve scaled: perfect correlation, no tracking difference; starts at the first entry (03-15)
    same = compare_with_index(res, eq * 0.03)
    assert same.start == D(2024, 3, 15) and same.days == 5
    assert same.correlation == pytest.approx(1.0)
    assert same.tracking_difference == pytest.approx(0.0, abs=1e-12)
    assert same.total_return == pytest.approx(eq.iloc[-1] / eq.iloc[1] - 1)
    # another series missing one day: returns over the common days, the gap listed
    other = pd.Series([100.0, 101.0, 99.5, 102.0], index=pd.to_datetime(["2024-03-15", "2024-03-18", "2024-04-19",
                                                                        "2024-04-22"]))
    cmp_ = compare_with_index(res, other)
    assert cmp_.missing_in_index == (D(2024, 3, 19),)
    assert cmp_.index_total_return == pytest.approx(0.02)
    a = eq.loc[pd.to_datetime(["2024-03-15", "2024-03-18", "2024-04-19", "2024-04-22"])]
    ra, rb = a.pct_change().iloc[1:].to_numpy(), other.pct_change().iloc[1:].to_numpy()
    assert cmp_.correlation == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    assert cmp_.tracking_error == pytest.approx(np.std(ra - rb, ddof=1) * math.sqrt(252))
    assert cmp_.tracking_difference == pytest.approx(a.iloc[-1] / a.iloc[0] - 1 - 0.02)
    assert cmp_.to_dict()["missing_in_index"] == ["2024-03-19"]
    with pytest.raises(BacktestInputError, match="index_series"):
        compare_with_index(res, other.iloc[:2])


# --------------------------------------------------------------------------------------------------
# the real 2026 archive

ROLLS_2026 = (D(2026, 6, 18), D(2026, 7, 17))


@pytest.fixture(scope="module")
def real_putwrite():
    feed = Feed(shared_file(EOD_ARCHIVE))
    return feed, run_index_strategy(feed, "putwrite")


@pytest.fixture(scope="module")
def raw_archive():
    return pd.read_parquet(shared_file(EOD_ARCHIVE))


@pytest.fixture(scope="module")
def raw_daily():
    path = shared_file(SHARED_DATA / "market" / "spx_daily_1982-01-04_2026-08-21.csv")
    return pd.read_csv(path, index_col="date", parse_dates=True)


def _raw_am_rows(raw: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """The AM (SPX root) rows of a clean day of the raw archive: Cboe lists every SPX symbol before every SPXW one,
    so the SPX block ends where the expiry sequence first steps back."""
    rows = raw[(raw["file_date"] == pd.Timestamp(day)) & (raw["flag"] == "OK")].reset_index(drop=True)
    exp = rows["expiration"].to_numpy()
    split = int(np.flatnonzero(exp[1:] < exp[:-1])[0]) + 1
    return rows.iloc[:split]


def test_real_rolls_strikes_and_quotes(real_putwrite, raw_archive):
    feed, res = real_putwrite
    t, lg = res.trades, res.legs
    assert list(t["entry_date"].dt.date) == list(ROLLS_2026)
    assert list(t["exit_date"].dt.date) == [D(2026, 7, 17), D(2026, 8, 21)]
    assert list(t["exit_reason"]) == ["expiry", "expiry"]  # 08-21 is both the August expiry and the last day
    assert res.end == D(2026, 8, 21) and res.missing_days == (D(2026, 6, 23), D(2026, 8, 7))
    assert res.assumptions["flat_days"] == ["2026-06-12", "2026-06-15", "2026-06-16", "2026-06-17"]
    for (_, leg), roll in zip(lg.iterrows(), ROLLS_2026, strict=True):
        am = _raw_am_rows(raw_archive, roll)
        spot = float(am["spot"].iloc[0])
        expiry = pd.Timestamp(next_monthly_expiry(roll))
        puts = am[(am["expiration"] == expiry) & (am["cp"] == "P") & (am["ask"] > 0)]
        strike = float(puts.loc[puts["strike"] <= spot, "strike"].max())
        assert leg["strike"] == strike and leg["expiration"] == expiry and leg["root"] == "SPX"
        quote = puts[puts["strike"] == strike].iloc[0]
        assert leg["entry_bid"] == quote["bid"] and leg["entry_ask"] == quote["ask"]
        assert leg["entry_fill"] == pytest.approx((quote["bid"] + quote["ask"]) / 2, abs=1e-12)
    assert lg["strike"].tolist() == [7500.0, 7455.0]
    # every mark equals that day's raw mid: positions_value = -N x 100 x mid
    e = res.equity.set_index(res.equity["date"].dt.date)
    n = t["contracts"].iloc[0]
    for day in (D(2026, 6, 22), D(2026, 7, 1), D(2026, 7, 16)):
        am = _raw_am_rows(raw_archive, day)
        q = am[(am["expiration"] == pd.Timestamp("2026-07-17")) & (am["cp"] == "P") & (am["strike"] == 7500.0)]
        mid = (q["bid"].iloc[0] + q["ask"].iloc[0]) / 2
        assert e.loc[day, "positions_value"] == pytest.approx(-n * 100 * mid, abs=1e-9)
    assert (e["stale_legs"] == 0).all()


def test_real_settlements_at_the_raw_open(real_putwrite, raw_daily):
    _, res = real_putwrite
    lg = res.legs
    for i, day in enumerate((D(2026, 7, 17), D(2026, 8, 21))):
        open_ = float(raw_daily.loc[pd.Timestamp(day), "open"])
        assert lg["settlement_price"].iloc[i] == open_
        assert lg["exit_value"].iloc[i] == pytest.approx(max(lg["strike"].iloc[i] - open_, 0.0), abs=1e-12)
        assert lg["exit_kind"].iloc[i] == "settlement"
    assert lg["settlement_price"].iloc[0] == 7447.52  # 7500 put settled 52.48 in the money


def test_real_sizing_and_equity_identity(real_putwrite):
    _, res = real_putwrite
    t, e = res.trades, res.equity
    assert t["contracts"].iloc[0] == pytest.approx(100_000 / (7500 * 100), rel=1e-12)
    eq_0717 = float(e.loc[e["date"] == "2026-07-17", "equity"].iloc[0])
    assert t["contracts"].iloc[1] == pytest.approx(eq_0717 / (7455 * 100), rel=1e-12)
    assert (e["equity"] - e["cash"] - e["positions_value"]).abs().max() < 1e-6
    # the P&L of the trades plus the interest is the whole gain
    gain = res.net_pnl
    assert gain == pytest.approx(t["pnl"].sum() + e["interest"].sum(), abs=1e-6)


def test_real_buywrite(raw_archive):
    feed = Feed(shared_file(EOD_ARCHIVE))
    res = run_index_strategy(feed, "buywrite")
    calls = res.legs[res.legs["right"] == "C"]
    for (_, leg), roll in zip(calls.iterrows(), ROLLS_2026, strict=True):
        am = _raw_am_rows(raw_archive, roll)
        spot = float(am["spot"].iloc[0])
        c = am[(am["expiration"] == pd.Timestamp(next_monthly_expiry(roll))) & (am["cp"] == "C") & (am["ask"] > 0)]
        assert leg["strike"] == float(c.loc[c["strike"] >= spot, "strike"].min())
    assert calls["strike"].tolist() == [7505.0, 7460.0]
    assert "price only" in res.assumptions["dividends"]
    assert res.net_pnl == pytest.approx(res.trades["pnl"].sum() + res.equity["interest"].sum(), abs=1e-6)


def _prefix_check(full, cut, cut_day):
    """Trades closed before ``cut_day`` and the equity curve up to it are the same in both runs."""
    e_full = full.equity[full.equity["date"].dt.date <= cut_day].reset_index(drop=True)
    pd.testing.assert_series_equal(cut.equity["equity"], e_full["equity"], check_exact=False, rtol=0, atol=1e-9)
    closed = full.trades[full.trades["exit_date"].dt.date < cut_day].reset_index(drop=True)
    pd.testing.assert_frame_equal(cut.trades[cut.trades["exit_date"].dt.date < cut_day].reset_index(drop=True),
                                  closed)


def test_prefix_invariance_hand_built(snaps, market):
    full = run_index_strategy(snaps, "putwrite", market_dir=market)
    for k in range(2, len(snaps)):
        _prefix_check(full, run_index_strategy(snaps[:k], "putwrite", market_dir=market), DAYS[k - 1])


def test_prefix_invariance_real(real_putwrite):
    feed, full = real_putwrite
    for end in (D(2026, 7, 10), D(2026, 7, 17)):
        cut = run_index_strategy(Feed(feed.path, end=end), "putwrite")
        _prefix_check(full, cut, end)


def test_progress_callback(snaps, market):
    seen = []
    run_index_strategy(snaps, "putwrite", market_dir=market, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, len(snaps)) for i in range(1, len(snaps) + 1)]


def test_market_history_instead_of_a_directory(snaps, market):
    history = load_market_history(market, kinds=("spx", "irx"))
    a = run_index_strategy(snaps, "putwrite", market_history=history)
    b = run_index_strategy(snaps, "putwrite", market_dir=market)
    assert a.equity["equity"].to_numpy() == pytest.approx(b.equity["equity"].to_numpy(), abs=1e-9)
    with pytest.raises(BacktestInputError, match="market_history"):
        run_index_strategy(snaps, "putwrite", market_history={"spx": None})
