"""The model-priced history backtest (research_lib.backtest.history), its listing calendar and regime series.

Synthetic market files (tests/fixtures.py, written to a temporary folder) serve every test that has no real-data
point, so a fresh clone without ../shared tests the whole path; the real-data tests read the raw files of
../shared/data/market themselves (csv, not the project's loaders) and skip without them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA
from fixtures import write_market_history

from research_lib import calendar as cal, cli
from research_lib.backtest import history
from research_lib.backtest.engine import run_backtest
from research_lib.backtest.params import BacktestParams
from research_lib.backtest.settlement import intrinsic
from research_lib.core.regime import RegimeParams
from research_lib.core.regime_series import REGIME_COLUMNS, regime_series
from research_lib.core.strategy import select_strategy
from research_lib.data import modelled, modelled_history as mh
from research_lib.data.listing_calendar import listing_calendar
from research_lib.errors import BacktestInputError, ModelledChainError, RegimeInputError

MARKET = SHARED_DATA / "market"
START, END = dt.date(2015, 1, 2), dt.date(2015, 9, 30)


@pytest.fixture(scope="module")
def market_dir(tmp_path_factory):
    return write_market_history(tmp_path_factory.mktemp("history_market"))


@pytest.fixture(scope="module")
def inputs(market_dir):
    return history.history_inputs(START, END, market_dir=market_dir)


def _params(**kw) -> BacktestParams:
    base = dict(strategy="bull_put", contracts=1, rate=None)
    return BacktestParams(**(base | kw))


# --------------------------------------------------------------------------------------------------------
# the listing calendar: the fast path equals listed_expiries (the slow reference) day by day


@pytest.fixture(scope="module")
def calendar_2011_2026():
    return listing_calendar("2011-01-03", "2026-12-31", horizon_days=120)


@pytest.mark.parametrize("year", range(2011, 2027))
def test_listing_calendar_equals_listed_expiries(year, calendar_2011_2026):
    """Every listing era (research_lib.data.modelled.LISTING_ERAS), sampled every 29th session of each year."""
    days = cal.sessions(dt.date(year, 1, 1), dt.date(year, 12, 31))
    lc = calendar_2011_2026
    for d in days[year % 7:: 29]:
        ref = modelled.listed_expiries(cal.session_close(d.date()))
        ref = ref[ref["dte"] <= 120][["expiration", "root", "kind"]].reset_index(drop=True)
        got = lc.on(d)[["expiration", "root", "kind"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, ref, check_dtype=False, obj=str(d.date()))


def test_listing_calendar_lists_the_spxw_weekdays_from_their_start_dates():
    lc = listing_calendar("2016-01-04", "2022-12-30", horizon_days=30)
    e = lc.expiries
    daily = e[(e["root"] == "SPXW") & (e["kind"] == "daily")]
    first = {wd: daily.loc[daily["expiration"].dt.day_of_week == wd, "expiration"].min().date() for wd in (0, 1, 2, 3)}
    assert first[2] >= dt.date(2016, 2, 23) and first[0] >= dt.date(2016, 8, 15)
    assert first[3] >= dt.date(2022, 5, 11)
    # Tuesdays before 2022-04-18 only in place of a Monday holiday (Cboe's Monday Weeklys rule)
    early_tue = daily.loc[(daily["expiration"].dt.day_of_week == 1)
                          & (daily["expiration"] < pd.Timestamp("2022-04-18")), "expiration"]
    assert len(early_tue) and all(not cal.is_session((t - pd.Timedelta(days=1)).date()) for t in early_tue)
    # nothing is listed before its listed_from, nothing after it settles
    d = pd.Timestamp("2019-06-14")
    on = lc.on(d)
    assert (on["listed_from"] <= d).all() and (on["expiration"] > d).all() and (on["dte"] <= 30).all()


def test_listing_calendar_refuses_bad_input():
    with pytest.raises(ModelledChainError, match="after last"):
        listing_calendar("2020-02-03", "2020-01-02")
    with pytest.raises(ModelledChainError, match="horizon_days"):
        listing_calendar("2020-01-02", "2020-02-03", horizon_days=0)
    lc = listing_calendar("2020-01-02", "2020-02-03")
    with pytest.raises(ModelledChainError, match="not a session"):
        lc.on("2020-01-04")


# --------------------------------------------------------------------------------------------------------
# the regime series


def _table(n=320, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = cal.sessions(dt.date(2018, 1, 2), dt.date(2019, 12, 31))[:n]
    close = 2700 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, n)))
    vix = np.clip(15 + np.cumsum(rng.normal(0, 0.6, n)), 9, 60)
    gex = 1e9 + 3e9 * np.sin(np.arange(n) / 9) + rng.normal(0, 5e8, n)
    return pd.DataFrame({"close": close, "vix": vix, "vix9d": vix * 0.95, "vix3m": vix * 1.08, "gex": gex},
                        index=days)


def test_regime_series_has_one_row_per_day_and_the_documented_columns():
    t = _table()
    r = regime_series(t)
    assert list(r.columns) == list(REGIME_COLUMNS) and r.index.equals(t.index)
    assert set(r["regime"]) <= {"POSITIVE_GAMMA", "NEGATIVE_GAMMA", "NEUTRAL"}
    assert r["confidence"].between(0, 100).all()
    assert {"POSITIVE_GAMMA", "NEGATIVE_GAMMA"} <= set(r["regime"])   # the wave crosses both thresholds


def test_regime_series_sees_no_later_day():
    """Prefix invariance: the regime of day i is the same whether or not the table goes on after it."""
    t = _table()
    full = regime_series(t)
    for n in (80, 200, 319):
        pd.testing.assert_frame_equal(regime_series(t.iloc[:n]), full.iloc[:n])
    # changing a later GEX value changes nothing before it
    t2 = t.copy()
    t2.iloc[250, t2.columns.get_loc("gex")] = -9e9
    pd.testing.assert_frame_equal(regime_series(t2).iloc[:250], full.iloc[:250])


def test_regime_series_judges_gex_against_earlier_days_only():
    t = _table()
    r = regime_series(t, RegimeParams())
    i = 200
    hist = t["gex"].iloc[max(0, i - RegimeParams().gex_window):i]
    assert r["gex_measure"].iloc[i] == pytest.approx(t["gex"].iloc[i] / hist.abs().median(), rel=1e-9)


def test_regime_series_refuses_bad_tables():
    t = _table()
    with pytest.raises(RegimeInputError, match="'vix'"):
        regime_series(t.drop(columns="vix"))
    with pytest.raises(RegimeInputError, match="ascending"):
        regime_series(t.iloc[::-1])
    bad = t.copy()
    bad.iloc[5, bad.columns.get_loc("close")] = -1.0
    with pytest.raises(RegimeInputError, match=str(t.index[5].date())):
        regime_series(bad)


# --------------------------------------------------------------------------------------------------------
# the history backtest on synthetic market files


def test_history_inputs_cover_every_session(inputs):
    days = [d.date() for d in cal.sessions(START, END)]
    assert inputs.days == days and len(inputs.surfaces) == len(days)
    assert (inputs.valuation_ns == [cal.session_close(d).value for d in days]).all()


def test_a_history_run_is_labelled_modelled_and_uses_the_engine(inputs):
    r = history.run_history_backtest(_params(), inputs)
    assert r.source == history.SOURCE and r.assumptions["prices"]["label"] == "MODELLED PRICES"
    assert len(r.trades) >= 3 and len(r.equity) == len(inputs.days) and not r.missing_days
    assert r.equity["equity"].iloc[-1] == pytest.approx(r.initial_equity + r.trades["pnl"].sum(), abs=1e-6)
    assert set(r.trades["exit_reason"]) <= {"profit_target", "stop_loss", "exit_dte", "expiry", "end_of_data"}


def test_every_leg_price_is_the_models_quote_of_that_day(inputs):
    """Traceability: each entry and exit quote of the legs table is model_quotes of that day's inputs."""
    r = history.run_history_backtest(_params(profit_target=None, stop_loss=None, exit_dte=2), inputs)
    t = inputs.table
    for leg in r.legs.itertuples():
        for when, bid, ask in (("entry", leg.entry_bid, leg.entry_ask), ("exit", leg.exit_bid, leg.exit_ask)):
            day = getattr(leg, f"{when}_date")
            if when == "exit" and leg.exit_kind == "settlement":
                continue
            row = t.loc[pd.Timestamp(day)]
            T = (cal.settlement_times([leg.expiration], [leg.settlement])[0].value
                 - cal.session_close(day).value) / 1e9 / cal.YEAR_SECONDS
            q = mh.model_quotes(float(row["close"]), np.array([leg.strike]), np.array([T]),
                                np.array([leg.right == "C"]), float(row["rate"]), float(row["div_yield"]),
                                mh.day_surface(row["vix9d"], row["vix"], row["vix3m"]))
            assert (bid, ask) == (pytest.approx(float(q.bid[0]), abs=1e-9), pytest.approx(float(q.ask[0]), abs=1e-9))


def test_held_to_expiry_a_trade_settles_at_intrinsic_value_of_the_day_tables_print(inputs):
    r = history.run_history_backtest(_params(profit_target=None, stop_loss=None, exit_dte=None, dte=30), inputs)
    settled = r.legs[r.legs["exit_kind"] == "settlement"]
    assert len(settled)
    for leg in settled.itertuples():
        col = "open" if leg.settlement == "AM" else "close"
        px = float(inputs.table.loc[pd.Timestamp(leg.expiration), col])
        assert leg.settlement_price == px
        assert leg.exit_value == pytest.approx(float(intrinsic(leg.strike, leg.right, px)))
    t = r.trades.iloc[0]
    legs = r.legs[r.legs["trade_id"] == t["trade_id"]]
    # the hand calculation of one trade: credit at mid fills, settled at intrinsic, $0.65 per contract and leg
    credit = float(np.sum(-legs["quantity"] * legs["entry_fill"]))
    assert t["entry_price"] == pytest.approx(credit, abs=1e-9)
    exit_price = float(np.sum(-legs["quantity"] * legs["exit_fill"]))
    commissions = 0.65 * 2 * (1 + (legs["exit_kind"] != "settlement").sum() / 2)
    assert t["pnl"] == pytest.approx((credit - exit_price) * 100 - commissions, abs=1e-6)


def test_no_look_ahead_prefix_invariance(inputs):
    """A run stopped at day k trades exactly like the full run up to k (then closes at end of data)."""
    p = _params()
    full = history.run_history_backtest(p, inputs)
    cut = inputs.days[100]
    part = history.run_history_backtest(p.replace(end=cut), inputs)
    done = full.trades[pd.to_datetime(full.trades["exit_date"]) < pd.Timestamp(cut)]
    pd.testing.assert_frame_equal(part.trades.iloc[:len(done)].reset_index(drop=True), done.reset_index(drop=True))
    pd.testing.assert_frame_equal(part.equity.iloc[:-1].drop(columns="drawdown"),
                                  full.equity.iloc[:len(part.equity) - 1].drop(columns="drawdown"))


def test_a_regime_filter_enters_only_on_the_regimes_asked(inputs):
    r = history.run_history_backtest(_params(regime_filter="POSITIVE_GAMMA"), inputs)
    regimes = inputs.regimes()
    entry_regimes = regimes.loc[pd.to_datetime(r.trades["entry_date"]), "regime"]
    assert len(r.trades) and (entry_regimes == "POSITIVE_GAMMA").all()
    assert (r.trades["regime"] == "POSITIVE_GAMMA").all()


def test_auto_on_the_history_trades_the_structure_of_each_days_regime(inputs):
    regime = RegimeParams(iv_rank_sell=0.0)            # sell premium whenever gamma is positive
    r = history.run_history_backtest(_params(strategy="auto", regime=regime), inputs)
    rows = inputs.regimes(regime)
    assert len(r.trades)
    names = {"bull_put_spread": "bull_put", "bear_call_spread": "bear_call", "iron_condor": "iron_condor",
             "bull_call_spread": "bull_call", "bear_put_spread": "bear_put"}
    for t in r.trades.itertuples():
        row = rows.loc[pd.Timestamp(t.entry_date)]
        assert t.strategy == names[select_strategy(row["action"], row["trend"]).kind.value]
        assert t.regime == row["regime"]


def test_the_regime_filter_needs_a_regime_series():
    snaps = [modelled.modelled_chain(spot=4000.0, date="2024-03-06", vix=15.0)]
    with pytest.raises(BacktestInputError, match="regime_filter"):
        run_backtest(snaps, _params(regime_filter="NEUTRAL", rate=0.0))
    with pytest.raises(BacktestInputError, match="regime_filter"):
        BacktestParams(regime_filter="LONG_GAMMA")


def test_history_inputs_refuse_bad_ranges(market_dir, inputs):
    with pytest.raises(BacktestInputError, match="after end"):
        history.history_inputs("2015-02-01", "2015-01-01", market_dir=market_dir)
    with pytest.raises(BacktestInputError, match="no modelled session"):
        history.HistoryFeed(inputs, start="2016-01-04")
    with pytest.raises(BacktestInputError, match="horizon"):
        history.run_history_backtest(_params(dte=400), inputs)


# --------------------------------------------------------------------------------------------------------
# the command line


def test_backtest_history_json_has_the_chain_backtests_keys(market_dir, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["backtest", "history", "--start", "2015-01-02", "--end", "2015-04-30", "--contracts", "1",
                     "--market-dir", str(market_dir), "--out", str(tmp_path / "run"), "--json"], out=out, err=err)
    assert code == 0, err.getvalue()
    record = json.loads(out.getvalue(), parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    for key in ("start", "end", "days", "trades", "net_pnl", "total_return", "sharpe", "max_drawdown",
                "trades_path", "legs_path", "equity_path", "assumptions", "params", "stats"):
        assert key in record
    assert record["prices"] == "MODELLED PRICES" and record["source"] == history.SOURCE
    equity = pd.read_csv(record["equity_path"])
    assert len(equity) == record["days"] and equity["date"].iloc[0] == "2015-01-02"
    assert "MODELLED PRICES" in err.getvalue() or "MODELLED PRICES" in json.dumps(record["assumptions"])


def test_backtest_history_text_output_says_modelled_prices(market_dir, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["backtest", "history", "--start", "2015-01-02", "--end", "2015-02-27", "--contracts", "1",
                     "--market-dir", str(market_dir), "--out", str(tmp_path / "run")], out=out, err=err)
    assert code == 0, err.getvalue()
    assert out.getvalue().startswith("MODELLED PRICES")


@pytest.mark.parametrize("argv", [["--strategy", "wheel"], ["--regime-filter", "LONG"], ["--contracts", "0"],
                                  ["--start", "2015-02-30"], ["--source", "x.parquet"]])
def test_backtest_history_bad_flags_exit_2(argv, market_dir):
    err = io.StringIO()
    assert cli.main(["backtest", "history", "--market-dir", str(market_dir), *argv], out=io.StringIO(),
                    err=err) == 2, err.getvalue()


# --------------------------------------------------------------------------------------------------------
# real files: the day's model price from the raw CSVs, read here with csv (not the project's loaders)


def _raw_close(name: str, day: dt.date) -> float:
    path = MARKET / name
    if not path.exists():
        pytest.skip(f"../shared/data absent: missing {name}")
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            key = row.get("DATE") or row.get("date")
            try:
                d = dt.datetime.strptime(key, "%m/%d/%Y").date() if "/" in key else dt.date.fromisoformat(key)
            except ValueError:
                continue
            if d == day:
                return float(row.get("CLOSE") or row.get("close"))
    raise AssertionError(f"{day} not in {name}")


@pytest.fixture(scope="module")
def real_inputs():
    if not (MARKET / "cboe_VIX_History.csv").exists():
        pytest.skip("../shared/data absent: the real market history")
    return history.history_inputs("2018-01-02", "2018-12-31")


def test_real_history_prices_trace_to_the_raw_files(real_inputs):
    r = history.run_history_backtest(_params(), real_inputs)
    assert len(r.trades) > 5
    leg = r.legs.iloc[0]
    day = leg["entry_date"]
    spx = next(p for p in MARKET.glob("spx_daily_*.csv"))
    spot = _raw_close(spx.name, day)
    vix = [_raw_close(f"cboe_{n}_History.csv", day) for n in ("VIX9D", "VIX", "VIX3M")]
    row = real_inputs.table.loc[pd.Timestamp(day)]
    assert (row["close"], row["vix9d"], row["vix"], row["vix3m"]) == (spot, *vix)
    T = (cal.settlement_times([leg["expiration"]], [leg["settlement"]])[0].value
         - cal.session_close(day).value) / 1e9 / cal.YEAR_SECONDS
    q = mh.model_quotes(spot, np.array([leg["strike"]]), np.array([T]), np.array([leg["right"] == "C"]),
                        float(row["rate"]), float(row["div_yield"]), mh.day_surface(*vix))
    assert (leg["entry_bid"], leg["entry_ask"]) == (float(q.bid[0]), float(q.ask[0]))
    # the 13-week T-bill: the day table's rate is the raw yield's continuously compounded equivalent, a few %
    assert 0.0 <= row["rate"] < 0.03 and math.isfinite(row["div_yield"])


def test_real_history_every_settlement_is_the_raw_spx_print(real_inputs):
    r = history.run_history_backtest(_params(profit_target=None, stop_loss=None, exit_dte=None), real_inputs)
    spx = next(p for p in MARKET.glob("spx_daily_*.csv"))
    raw = pd.read_csv(spx, usecols=["date", "open", "close"]).set_index("date")
    settled = r.legs[r.legs["exit_kind"] == "settlement"]
    assert len(settled)
    for leg in settled.itertuples():
        col = "open" if leg.settlement == "AM" else "close"
        assert leg.settlement_price == float(raw.loc[str(leg.expiration), col])


def test_the_regime_of_a_day_does_not_depend_on_where_the_run_starts(market_dir, inputs):
    later = history.history_inputs(dt.date(2015, 6, 1), END, market_dir=market_dir)
    a = inputs.regimes().loc["2015-06-01":]
    pd.testing.assert_frame_equal(later.regimes(), a)
    assert inputs.regimes()["iv_rank"].notna().all()        # the warm-up gives IV rank from the first day


@pytest.mark.parametrize("strategy, right", [("putwrite", "P"), ("buywrite", "C")])
def test_the_index_methodologies_run_on_the_modelled_history(strategy, right, market_dir, inputs):
    """PUT/BXM as on real chains: sold on each roll date, the first listed strike at/below (put) or at/above
    (call) the close, the premium the model's quote, settled at the AM open."""
    r = history.run_history_backtest(BacktestParams(strategy=strategy, start="2015-01-02", end="2015-06-30"), inputs)
    assert r.source == history.SOURCE and r.assumptions["prices"]["label"] == "MODELLED PRICES"
    rolls = [cal.monthly_expiry(2015, m) for m in range(1, 7)]
    assert list(pd.to_datetime(r.trades["entry_date"]).dt.date) == [d for d in rolls if d < dt.date(2015, 6, 30)]
    opts = r.legs[r.legs["right"] == right]
    for leg in opts.itertuples():
        entry = pd.Timestamp(leg.entry_date)
        spot = float(inputs.table.loc[entry, "close"])
        snap = history.index_snapshot(inputs, inputs.days.index(entry.date()))
        c = snap.contracts
        listed = np.sort(c.loc[(c["right"] == right) & (c["expiration"] == pd.Timestamp(leg.expiration)),
                               "strike"].unique())
        want = listed[listed <= spot].max() if right == "P" else listed[listed >= spot].min()
        assert leg.strike == want and leg.settlement == "AM"
        quote = c[(c["right"] == right) & (c["strike"] == leg.strike)
                  & (c["expiration"] == pd.Timestamp(leg.expiration))].iloc[0]
        assert (leg.entry_bid, leg.entry_ask) == (quote["bid"], quote["ask"])
        if leg.exit_kind == "settlement":
            assert leg.settlement_price == float(inputs.table.loc[pd.Timestamp(leg.expiration), "open"])


def test_the_regime_filter_is_a_history_option():
    """Real chains have no regime series yet: ``backtest chains`` does not offer the flag (exit 2, unknown)."""
    err = io.StringIO()
    assert cli.main(["backtest", "chains", "--source", "x.parquet", "--regime-filter", "POSITIVE_GAMMA"],
                    out=io.StringIO(), err=err) == 2
    assert "--regime-filter" in err.getvalue()
