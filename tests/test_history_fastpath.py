"""The fast path of the history backtest equals the day-by-day engine (its slow reference), configuration by
configuration: trades, legs and the equity columns it computes, to the cent and the flag."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import SHARED_DATA
from fixtures import write_market_history
from hypothesis import HealthCheck, given, settings, strategies as st

from research_lib.backtest import fastpath, history
from research_lib.backtest.params import BacktestParams
from research_lib.core.regime import RegimeParams
from research_lib.errors import BacktestInputError

EQUITY = ["date", "equity", "cash", "positions_value", "positions_value_natural", "drawdown", "open_positions",
          "stale_legs"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = write_market_history(tmp_path_factory.mktemp("fastpath_market"))
    return history.history_inputs(dt.date(2015, 1, 2), dt.date(2015, 10, 30), market_dir=folder)


def _same(params: BacktestParams, inputs) -> tuple:
    ref = history.run_history_backtest(params, inputs)
    fast = fastpath.run_history_fast(params, inputs)
    pd.testing.assert_frame_equal(fast.trades, ref.trades, check_exact=True)
    pd.testing.assert_frame_equal(fast.legs, ref.legs, check_exact=True)
    pd.testing.assert_frame_equal(fast.equity[EQUITY], ref.equity[EQUITY], check_exact=True)
    assert fast.assumptions["entries_skipped"] == ref.assumptions["entries_skipped"]
    assert fast.stats().to_dict() == ref.stats().to_dict()
    return ref, fast


CASES = [
    dict(strategy="bull_put", contracts=1),
    dict(strategy="bull_put"),                                         # Kelly sizing: every entry sized 0 here
    dict(strategy="bull_put", account=2_000_000.0, dte=30),            # Kelly sizing that trades
    dict(strategy="iron_condor", contracts=2, fill="slippage:0.3"),
    dict(strategy="bear_call", contracts=1, profit_target=None, stop_loss=1.0, exit_dte=None, max_hold=10),
    dict(strategy="short_put", contracts=1, fill="natural", profit_target=0.75, account=5_000_000.0),
    dict(strategy="bull_call", contracts=1, width=50.0),
    dict(strategy="bear_put", contracts=3, commission=1.25, dte=21, dte_tolerance=7),
    dict(strategy="strangle", contracts=1, regime_filter="POSITIVE_GAMMA", account=5_000_000.0),
    dict(strategy="auto", contracts=1, regime=RegimeParams(iv_rank_sell=10.0)),
    dict(strategy="bull_put", contracts=1, profit_target=None, stop_loss=None, exit_dte=None),   # to expiry
    dict(strategy="bull_put", contracts=1, rate=0.02, start="2015-03-02", end="2015-08-31"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['strategy']}-{i}" for i, c in enumerate(CASES)])
def test_the_fast_path_equals_the_engine(case, inputs):
    ref, _ = _same(BacktestParams(**case), inputs)
    if case.get("contracts") or case.get("account", 0) > 1e6:
        assert len(ref.trades) or case["strategy"] in ("auto", "strangle")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(short=st.sampled_from([0.2, 0.25, 0.3, 0.35]), wing=st.sampled_from([0.05, 0.1, 0.15]),
       dte=st.sampled_from([14, 30, 45, 60]), pt=st.sampled_from([None, 0.25, 0.5, 0.9]),
       sl=st.sampled_from([None, 0.5, 1.0, 3.0]), exit_dte=st.sampled_from([None, 0, 5, 21]),
       fill=st.sampled_from(["mid", "natural", "slippage:0.5"]))
def test_the_fast_path_equals_the_engine_on_any_grid_point(inputs, short, wing, dte, pt, sl, exit_dte, fill):
    _same(BacktestParams(strategy="bull_put", contracts=1, short_delta=short, long_delta=wing, dte=dte,
                         profit_target=pt, stop_loss=sl, exit_dte=exit_dte, fill=fill), inputs)


def test_a_memoised_selection_never_changes_a_result(inputs):
    p = BacktestParams(strategy="iron_condor", contracts=1)
    first = fastpath.run_history_fast(p, inputs)
    assert inputs.memo                                  # the run filled the memo ...
    again = fastpath.run_history_fast(p, inputs)       # ... and the second run reads it
    pd.testing.assert_frame_equal(first.trades, again.trades)
    pd.testing.assert_frame_equal(first.equity, again.equity)
    import pickle
    assert pickle.loads(pickle.dumps(inputs)).memo == {}   # what a sweep scatters carries no memo


@pytest.mark.parametrize("case, why", [(dict(entry="daily"), "entry"), (dict(max_open=2), "max_open"),
                                       (dict(strategy="putwrite"), "index"),
                                       (dict(strategy="auto", regime_exit=True), "regime_exit")])
def test_the_fast_path_says_what_it_cannot_run(case, why, inputs):
    p = BacktestParams(**case)
    assert why in fastpath.supports(p)
    with pytest.raises(BacktestInputError, match="fast path cannot run"):
        fastpath.run_history_fast(p, inputs)
    assert fastpath.supports(BacktestParams()) is None


def test_the_fast_path_equals_the_engine_on_the_real_history():
    """Fifteen years (every listing era, 2018's and 2020's stops, 2022's losses) and 2020 with sizing."""
    if not (SHARED_DATA / "market" / "cboe_VIX_History.csv").exists():
        pytest.skip("../shared/data absent: the real market history")
    full = history.history_inputs()
    for case in (dict(strategy="bull_put", contracts=1), dict(strategy="iron_condor", contracts=1, stop_loss=1.0,
                                                              dte=30)):
        ref, _ = _same(BacktestParams(**case), full)
        assert len(ref.trades) > 150
    covid = history.history_inputs("2020-01-02", "2020-12-31")
    ref, _ = _same(BacktestParams(strategy="bull_put", account=3_000_000.0, regime_filter="POSITIVE_GAMMA"), covid)
    assert len(ref.trades)
