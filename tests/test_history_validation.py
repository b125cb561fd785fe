"""The validation report of the model-priced history (research_lib.backtest.validation).

Synthetic (a fresh clone): a chain whose quotes ARE the model's has zero spread error, a known shift of the quotes
gives the known error, the summary by hand. Real (skips without ../shared): the 2026 archive's error table, a row
traced to the raw parquet file, and the same backtest on real and modelled chains over the same sessions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import EOD_ARCHIVE, SHARED_DATA, shared_file
from fixtures import market_frame, write_market_history

from research_lib.backtest import validation as v
from research_lib.backtest.params import BacktestParams
from research_lib.core.chain import ChainSnapshot
from research_lib.data import modelled_history as mh
from research_lib.errors import BacktestInputError

DAY = dt.date(2024, 3, 5)
#: the model's own chain lists OI 1 and wide wings: the liquidity rules off, everything else the engine's
LOOSE = dict(min_open_interest=0.0, max_spread_pct=None)


@pytest.fixture(scope="module")
def market_dir(tmp_path_factory):
    return write_market_history(tmp_path_factory.mktemp("validation_market"))


@pytest.fixture(scope="module")
def model_chain(market_dir):
    """The modelled chain of DAY, priced with the very inputs spread_errors reads for that day."""
    row = v.market_inputs([DAY], market_dir=market_dir).iloc[0]
    spot = float(market_frame().loc[pd.Timestamp(DAY), "spx"])
    assert row["missing"] == ""
    return mh.history_snapshot(DAY, spot=spot, vix9d=row["vix9d"], vix=row["vix"], vix3m=row["vix3m"],
                               rate=row["rate"], div_yield=row["div_yield"], max_dte=80, delta_band=(0.01, 0.99))


STRATEGIES = {"bull_put": BacktestParams(strategy="bull_put", **LOOSE),
              "bear_call": BacktestParams(strategy="bear_call", **LOOSE),
              "iron_condor": BacktestParams(strategy="iron_condor", **LOOSE),
              "short_put 0.2": BacktestParams(strategy="short_put", short_delta=0.2, **LOOSE)}


def test_a_chain_quoted_by_the_model_has_no_spread_error(model_chain, market_dir):
    df = v.spread_errors([model_chain], STRATEGIES, market_dir=market_dir)
    assert list(df.columns) == list(v.ERROR_COLUMNS)
    assert len(df) == len(STRATEGIES) and (df["skip"] == "").all(), df["skip"].tolist()
    assert df["strategy"].tolist() == list(STRATEGIES)
    assert (df["date"] == DAY).all() and (df["source"] == "modelled-history").all()
    np.testing.assert_allclose(df["error"], 0.0, atol=1e-9)
    np.testing.assert_allclose(df["error_pct"], 0.0, atol=1e-9)
    np.testing.assert_allclose(df["model_mid_credit"], df["real_mid_credit"], atol=1e-12)
    np.testing.assert_allclose(df["model_spread"], df["real_spread"], atol=1e-12)
    assert (df["real_mid_credit"] > 0).all()
    # the real IV is recomputed from the (cent-rounded) mid: within a tenth of a vol point of the model's
    ivs = df[list(v.IV_ERROR_COLUMNS.values())].to_numpy(float)
    assert np.nanmax(np.abs(ivs)) < 0.1
    # each strategy has exactly its own legs' IV errors
    have = df.set_index("strategy")[list(v.IV_ERROR_COLUMNS.values())].notna()
    assert have.loc["iron_condor"].all() and have.loc["bull_put"].sum() == 2 and have.loc["short_put 0.2"].sum() == 1
    assert have.loc["bear_call", "iv_error_short_call"] and not have.loc["bear_call", "iv_error_short_put"]


def test_a_known_shift_of_the_real_quotes_gives_the_known_error(model_chain, market_dir):
    c = model_chain.contracts.copy()
    puts = c["right"] == "P"
    c.loc[puts, ["bid", "ask"]] += 0.50       # every real put 0.50 dearer: a short put's credit 0.50 larger
    shifted = ChainSnapshot.create(underlying="SPX", spot=model_chain.spot, quote_time=model_chain.quote_time,
                                   source="shifted:test", contracts=c, snapshot_date=DAY)
    df = v.spread_errors([shifted], {"sp": STRATEGIES["short_put 0.2"], "bp": STRATEGIES["bull_put"]},
                         market_dir=market_dir).set_index("strategy")
    base = v.spread_errors([model_chain], {"sp": STRATEGIES["short_put 0.2"]}, market_dir=market_dir).iloc[0]
    assert df.loc["sp", "legs"] == base["legs"]                  # the selection reads the IVs, not the quotes
    assert df.loc["sp", "error"] == pytest.approx(-50.0, abs=1e-9)      # model − real, $ per contract
    assert df.loc["sp", "error_pct"] == pytest.approx(-50.0 / (base["real_mid_credit"] * 100 + 50) * 100)
    assert df.loc["bp", "error"] == pytest.approx(0.0, abs=1e-9)        # both legs shifted: the credit is not
    assert df.loc["sp", "source"] == "shifted"


def test_days_the_model_or_the_engine_cannot_price_say_why(model_chain, market_dir):
    late = ChainSnapshot.create(underlying="SPX", spot=model_chain.spot,
                                quote_time=pd.Timestamp("2024-03-07 16:00", tz="America/New_York"),
                                source="late:test", contracts=model_chain.contracts, snapshot_date=dt.date(2024, 3, 7))
    strict = {"strict": BacktestParams(strategy="bull_put")}      # min_open_interest 5 > the model chain's 1
    df = v.spread_errors([model_chain, late], strict | {"loose": STRATEGIES["bull_put"]}, market_dir=market_dir)
    by = df.set_index(["date", "strategy"])["skip"]
    assert by[(DAY, "strict")].startswith("no legs on the real chain: ")
    assert by[(DAY, "loose")] == ""
    assert by[(dt.date(2024, 3, 7), "loose")] == "no model price: vix9d, vix, vix3m missing on 2024-03-07"
    assert df.loc[df["skip"] != "", "error"].isna().all()
    s = v.summarise_errors(df).set_index(["by", "group"])
    assert s.loc[("all", "all"), "n"] == 1 and s.loc[("all", "all"), "skipped"] == 3


def test_spread_errors_refuses_bad_parameter_sets(model_chain):
    with pytest.raises(BacktestInputError, match="no fixed legs"):
        v.spread_errors([model_chain], [BacktestParams(strategy="auto")])
    with pytest.raises(BacktestInputError, match="BacktestParams"):
        v.spread_errors([model_chain], {"x": {"strategy": "bull_put"}})
    with pytest.raises(BacktestInputError, match="ChainSnapshot"):
        v.spread_errors(["not a chain"])
    assert v.spread_errors([], market_dir=None).empty


def test_summarise_errors_by_hand():
    df = pd.DataFrame({
        "source": ["a", "a", "b", "b", "b"], "strategy": ["x", "y", "x", "y", "x"],
        "error": [10.0, -30.0, 50.0, np.nan, -20.0], "error_pct": [1.0, -3.0, 10.0, np.nan, -4.0],
        "real_mid_credit": [10.0, 10.0, 5.0, np.nan, 5.0], "skip": ["", "", "", "no legs", ""]})
    s = v.summarise_errors(df).set_index(["by", "group"])
    assert list(s.reset_index().columns) == list(v.SUMMARY_COLUMNS)
    assert s.loc[("all", "all"), ["n", "skipped"]].tolist() == [4, 1]
    # |error| 10, 30, 50, 20 -> median 25, p90 (linear) 20+... : sorted 10 20 30 50, rank 0.9*3 = 2.7 -> 30 + 0.7*20
    assert s.loc[("all", "all"), "median_abs_error"] == 25.0
    assert s.loc[("all", "all"), "p90_abs_error"] == pytest.approx(44.0)
    assert s.loc[("all", "all"), "median_abs_error_pct"] == 3.5      # 1 3 4 10
    assert s.loc[("all", "all"), "median_error"] == -5.0            # -30 -20 10 50
    assert s.loc[("all", "all"), "median_real_credit"] == 750.0      # 5 5 10 10 points -> $
    assert s.loc[("source", "a"), "median_abs_error"] == 20.0
    assert s.loc[("source", "b"), ["n", "skipped"]].tolist() == [2, 1]
    assert s.loc[("strategy", "y"), "median_abs_error"] == 30.0 and s.loc[("strategy", "y"), "n"] == 1
    assert s.loc[("strategy", "x"), "p90_abs_error"] == pytest.approx(20 + 0.8 * 30)   # 10 20 50: rank 1.8
    with pytest.raises(BacktestInputError, match="missing"):
        v.summarise_errors(df.drop(columns="skip"))


def test_real_chain_files_follow_the_shared_folder(tmp_path):
    assert v.real_chain_files(tmp_path) == []
    (tmp_path / "chains").mkdir()
    (tmp_path / "chains" / "spx_ivolatility_2011-01-03_2011-01-07.csv.gz").write_bytes(b"")
    assert v.real_chain_files(tmp_path) == [tmp_path / v.REAL_CHAIN_FILES[0]]


# --------------------------------------------------------------------------------------------------------
# real chains


JUNE = [dt.date(2026, 6, d) for d in (12, 15, 16, 17, 18, 22, 24, 25, 26, 29, 30)]


@pytest.fixture(scope="module")
def real_errors():
    from research_lib.data.sources import read_chains

    snaps = list(read_chains(shared_file(EOD_ARCHIVE), dates=JUNE + [dt.date(2026, 7, 23)]))
    return v.spread_errors(snaps)


def test_real_2026_errors_have_a_row_per_day_and_strategy(real_errors):
    df = real_errors
    assert len(df) == 12 * len(v.DEFAULT_STRATEGIES)
    assert df.groupby(["date", "strategy"]).size().eq(1).all()
    assert set(df["strategy"]) == set(v.DEFAULT_STRATEGIES) and set(df["source"]) == {"spx_eod_archive"}
    june = df[df["date"] < dt.date(2026, 7, 1)]
    assert (june["skip"] == "").all(), june["skip"].unique()
    # after the VIX file ends (2026-07-22) the model has no price, and says so
    late = df[df["date"] == dt.date(2026, 7, 23)]
    assert late["skip"].str.startswith("no model price: vix9d, vix, vix3m missing").all()
    # the stated figures are computed from this table
    s = v.summarise_errors(df).set_index(["by", "group"])
    err = june["error"].to_numpy(float)
    assert s.loc[("all", "all"), "median_abs_error"] == pytest.approx(np.median(np.abs(err)))
    assert s.loc[("all", "all"), "p90_abs_error"] == pytest.approx(np.quantile(np.abs(err), 0.9))
    assert s.loc[("all", "all"), "n"] == len(june) and s.loc[("all", "all"), "skipped"] == len(late)
    one = june[june["strategy"] == "iron_condor"]["error"].to_numpy(float)
    assert s.loc[("strategy", "iron_condor"), "median_abs_error"] == pytest.approx(np.median(np.abs(one)))
    # a model that is tied to the VIX family is within a fifth of the credit on the median day
    assert s.loc[("all", "all"), "median_abs_error_pct"] < 20.0


def test_real_2026_credit_traces_to_the_raw_file(real_errors):
    raw = pd.read_parquet(shared_file(EOD_ARCHIVE), columns=["file_date", "price_date", "flag", "strike", "cp",
                                                              "bid", "ask", "expiration"])
    row = real_errors[(real_errors["date"] == JUNE[3]) & (real_errors["strategy"] == "bull_put")].iloc[0]
    day = raw[pd.to_datetime(raw["price_date"]).dt.date == JUNE[3]]
    credit = 0.0
    for leg in row["legs"].split(" / "):
        units, _root, exp, right, strike = leg.split()
        q = day[(pd.to_datetime(day["expiration"]).dt.date == dt.date.fromisoformat(exp)) & (day["cp"] == right)
                & np.isclose(day["strike"], float(strike))]
        assert len(q), leg
        mids = ((q["bid"] + q["ask"]) / 2).to_numpy()
        credit -= float(units) * mids[0]
        assert np.allclose(mids, mids[0]), leg      # the SPX/SPXW rows of a monthly strike quote alike, or one row
    assert row["real_mid_credit"] == pytest.approx(credit, abs=1e-9)


@pytest.mark.skipif(not EOD_ARCHIVE.exists(), reason=f"real market data not found at {SHARED_DATA}")
def test_compare_backtests_runs_both_over_the_same_sessions():
    params = v.DEFAULT_COMPARISON.replace(end=dt.date(2026, 7, 2))
    c = v.compare_backtests(EOD_ARCHIVE, params)
    assert c.start == c.real.start == c.model.start == dt.date(2026, 6, 12)
    assert c.end == c.real.end == c.model.end == dt.date(2026, 7, 2)
    served = {r for r in pd.to_datetime(c.model.equity["date"]).dt.date}
    real = set(pd.to_datetime(c.real.equity["date"]).dt.date)
    assert real | set(c.real_missing_days) == served and not real & set(c.real_missing_days)
    assert c.real_missing_days == (dt.date(2026, 6, 23),)       # fetched before the open: not a clean day
    assert c.model.source == "modelled-history:SPX" and c.real.source != c.model.source
    t = c.table
    assert list(t.index) == list(v.COMPARED)
    assert t.loc["trades", "real"] == len(c.real.trades) > 0 and t.loc["trades", "model"] == len(c.model.trades) > 0
    assert t.loc["net_pnl", "real"] == pytest.approx(c.real.net_pnl)
    assert t.loc["net_pnl", "difference"] == pytest.approx(c.model.net_pnl - c.real.net_pnl)
    assert len(c.entries) and set(c.entries["entry_date"]) <= set(c.real.trades["entry_date"]) & set(
        c.model.trades["entry_date"])
    first = c.entries.iloc[0]
    assert first["difference"] == pytest.approx((first["model_entry_price"] - first["real_entry_price"]) * 100)
    rec = c.record()
    assert rec["prices"] == "MODELLED PRICES" and rec["sessions"] == {"real": c.real.days, "model": c.model.days}


# --------------------------------------------------------------------------------------------------------
# the notebook's helpers: the regime at entry, both equity curves on one chart


@pytest.fixture(scope="module")
def history_run(market_dir):
    from research_lib.backtest.history import history_inputs, run_history_backtest

    inputs = history_inputs("2023-06-01", "2023-12-29", market_dir=market_dir)
    params = BacktestParams(strategy="bull_put", contracts=1, entry="daily", max_open=3)
    return inputs, run_history_backtest(params, inputs), run_history_backtest(params.replace(short_delta=0.2), inputs)


def test_entry_regimes_are_the_regime_series_of_the_entry_day(history_run):
    inputs, result, _ = history_run
    assert len(result.trades) > 2 and (result.trades["regime"] == "").all()    # a fixed strategy reads none
    labelled = v.with_entry_regimes(result, inputs)
    series = inputs.regimes()["regime"]
    for d, regime in zip(labelled.trades["entry_date"], labelled.trades["regime"], strict=True):
        assert regime == series.loc[pd.Timestamp(d)] != ""
    pd.testing.assert_frame_equal(labelled.trades.drop(columns="regime"), result.trades.drop(columns="regime"))
    kept = dataclasses.replace(result, trades=result.trades.assign(regime="MINE"))
    assert (v.with_entry_regimes(kept, inputs).trades["regime"] == "MINE").all()
    later = dataclasses.replace(result, trades=result.trades.assign(entry_date=dt.date(2024, 2, 1)))
    with pytest.raises(BacktestInputError, match="outside"):
        v.with_entry_regimes(later, inputs)


def test_equity_comparison_draws_every_curve(history_run):
    from research_lib.ui import plots

    _, a, b = history_run
    fig = plots.equity_comparison({"real chains": a, "MODELLED PRICES": b}, title="t")
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert f"real chains (net {a.net_pnl:+,.0f})" in lines and f"MODELLED PRICES (net {b.net_pnl:+,.0f})" in lines
    np.testing.assert_array_equal(lines[f"real chains (net {a.net_pnl:+,.0f})"].get_ydata(),
                                  a.equity["equity"].to_numpy(float))
    assert ax.get_title() == "t" and ax.get_ylabel() == "equity ($)"
    with pytest.raises(BacktestInputError, match="at least one"):
        plots.equity_comparison({})
