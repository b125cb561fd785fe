"""Backtest statistics, plots, the ``backtest chains`` / ``report backtest`` commands, the notebook and the index.

The statistics and the plots are checked on :class:`BacktestResult` objects built here with known numbers (every
figure against a hand calculation written in the test). The command line's argument parsing is tested without
the engine; one test (``test_cli_json_keys_and_csv_columns``) replaces ONLY the engine call
(``run_backtest``) with a function returning a constructed result, to check the JSON keys and the CSV columns
the command writes. The notebook, the report and the command line end to end run the real engine on the
synthetic EOD archive (``tests/fixtures.py``) and, when ``../shared`` is present, on the real 2026 archive; they
skip with "engine not merged yet" only while ``research_lib.backtest.engine`` does not exist.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import EOD_ARCHIVE, shared_file
from matplotlib.figure import Figure

from research_lib import cli
from research_lib.backtest.results import (
    EQUITY_COLUMNS,
    LEG_COLUMNS,
    TRADE_COLUMNS,
    BacktestResult,
    empty_table,
)
from research_lib.backtest.stats import (
    SUMMARY_KEYS,
    BacktestStats,
    backtest_stats,
    numba_cache_dir,
    summary_record,
    use_project_numba_cache,
)
from research_lib.errors import BacktestInputError
from research_lib.formatting import to_json
from research_lib.reporting import index as report_index, runner as reports
from research_lib.ui import plots

ENGINE = importlib.util.find_spec("research_lib.backtest.engine") is not None \
    and importlib.util.find_spec("research_lib.backtest.params") is not None
needs_engine = pytest.mark.skipif(not ENGINE, reason="engine not merged yet")

#: The small case: daily returns +2%, -2%, +1%, +3%, -1% on 10,000 (equity to 10 decimals).
RETURNS = (0.02, -0.02, 0.01, 0.03, -0.01)
EQUITY = (10200.0, 9996.0, 10095.96, 10398.8388, 10294.850412)


def make_result(equity=EQUITY, pnls=(300.0, -150.0, 200.0), held=(2, 1, 3), open_positions=(1, 1, 0, 1, 1),
                regimes=("positive_gamma", "negative_gamma", "positive_gamma"), initial=10_000.0,
                start="2026-06-22") -> BacktestResult:
    """A result with known numbers: the equity curve and the trades are given, not simulated (the statistics
    read them as they are). Trading days from ``start`` (Mon 2026-06-22: a week without a holiday)."""
    dates = pd.bdate_range(start, periods=len(equity))
    eq = pd.DataFrame({"date": dates.date, "equity": np.asarray(equity, dtype=float)})
    for i, c in enumerate(("cash", "positions_value", "positions_value_natural", "drawdown", "delta", "gamma",
                           "theta", "vega")):
        eq[c] = np.linspace(-1.0, 1.0, len(equity)) * (i + 1)
    eq["open_positions"] = np.asarray(open_positions, dtype=int)
    eq["stale_legs"] = 0
    n = len(pnls)
    entry = [dates[min(i, len(dates) - 1)].date() for i in range(n)]
    exit_ = [dates[min(i + 1, len(dates) - 1)].date() for i in range(n)]
    trades = pd.DataFrame({"trade_id": np.arange(1, n + 1), "entry_date": entry, "exit_date": exit_,
                           "strategy": "bull_put", "contracts": 1.0, "entry_price": 2.0, "exit_price": 1.0,
                           "exit_reason": "profit_target", "pnl": np.asarray(pnls, dtype=float),
                           "commissions": 2.6, "days_held": np.asarray(held, dtype=float),
                           "regime": list(regimes[:n]), "why": "rule", "max_loss": 500.0, "flags": ""})
    legs = empty_table(LEG_COLUMNS)
    return BacktestResult(trades=trades[list(TRADE_COLUMNS)] if n else empty_table(TRADE_COLUMNS), legs=legs,
                          equity=eq[list(EQUITY_COLUMNS)], missing_days=(dt.date(2026, 6, 19),),
                          assumptions={"fills": "mid"}, params={"strategy": "bull_put"}, underlying="SPX",
                          source="synthetic", start=dates[0].date(), end=dates[-1].date(), initial_equity=initial)


# --------------------------------------------------------------------------------------------------------
# statistics against a hand calculation


def test_stats_match_a_hand_calculation():
    s = backtest_stats(make_result())
    # returns: r = +0.02, -0.02, +0.01, +0.03, -0.01 (equity / previous - 1, the first against 10,000)
    growth = 1.02 * 0.98 * 1.01 * 1.03 * 0.99                       # 1.0294850412
    assert s.total_return == pytest.approx(0.0294850412, abs=1e-12)
    assert s.total_return == pytest.approx(growth - 1, rel=1e-12)
    assert s.cagr == pytest.approx(growth ** (252 / 5) - 1, rel=1e-12)  # 3.325636719...
    assert s.cagr == pytest.approx(3.325636719291218, rel=1e-12)
    # mean 0.006; deviations .014 -.026 .004 .024 -.016; squares sum 0.00172; sample var 0.00172 / 4 = 0.00043
    std = math.sqrt(0.00043)                                          # 0.0207364413...
    assert s.volatility == pytest.approx(std * math.sqrt(252), rel=1e-12)  # 0.329180801...
    assert s.sharpe == pytest.approx(0.006 / std * math.sqrt(252), rel=1e-12)  # 4.5932204...
    # downside: min(r, 0) = 0, -.02, 0, 0, -.01; mean square (0.0004 + 0.0001) / 5 = 0.0001 -> 0.01 per day
    assert s.sortino == pytest.approx(0.006 * 252 / (0.01 * math.sqrt(252)), rel=1e-12)  # 9.5247047...
    # drawdown: peak 10,200 (day 1), trough 9,996 (day 2): -2%; recovered on day 4 (10,398.84): 3 sessions
    assert s.max_drawdown == pytest.approx(9996 / 10200 - 1, rel=1e-12) == pytest.approx(-0.02)
    assert s.max_drawdown_duration == 3 and s.max_drawdown_recovered
    assert s.calmar == pytest.approx((growth ** (252 / 5) - 1) / 0.02, rel=1e-12)
    # trades: +300, -150, +200
    assert s.trades == 3
    assert s.win_rate == pytest.approx(2 / 3)
    assert s.avg_win == 250.0 and s.avg_loss == -150.0
    assert s.profit_factor == pytest.approx(500 / 150)
    assert s.expectancy == pytest.approx(350 / 3)
    assert s.avg_days_held == 2.0                                     # (2 + 1 + 3) / 3
    assert s.exposure == 0.8                                          # 4 of 5 days with a position
    assert s.net_pnl == pytest.approx(294.850412) and s.days == 5
    assert s.start == dt.date(2026, 6, 22) and s.end == dt.date(2026, 6, 26)
    assert s.notes == ()
    assert "vectorbt" in s.library
    assert isinstance(make_result().stats(), BacktestStats)


def test_trade_figures_agree_with_vectorbt_trade_records():
    """The trade figures are sums and means of the trades' P&L; vectorbt's Trades records give the same."""
    import vectorbt as vbt
    from vectorbt.portfolio.enums import trade_dt

    pnls = (300.0, -150.0, 200.0, 0.0, -75.5)
    result = make_result(pnls=pnls, held=(1, 2, 3, 4, 5), regimes=("a",) * 5)
    s = backtest_stats(result)
    rec = np.zeros(len(pnls), dtype=trade_dt)
    rec["id"] = rec["parent_id"] = np.arange(len(pnls))
    rec["size"], rec["pnl"], rec["status"] = 1.0, pnls, 1
    rec["entry_idx"], rec["exit_idx"] = [0, 1, 2, 3, 4], [1, 2, 3, 4, 4]
    idx = pd.bdate_range("2026-06-22", periods=5)
    trades = vbt.Trades(vbt.ArrayWrapper(index=idx, columns=pd.Index(["book"]), ndim=1, freq="1D"), rec, close=None)
    assert s.win_rate == pytest.approx(float(trades.win_rate()), rel=1e-12)
    assert s.profit_factor == pytest.approx(float(trades.profit_factor()), rel=1e-12)
    assert s.expectancy == pytest.approx(float(trades.expectancy()), rel=1e-12)
    assert s.avg_loss == pytest.approx(float(trades.losing.pnl.mean()))


def _strict(stats: BacktestStats) -> dict:
    text = to_json(stats.to_dict())  # allow_nan=False: raises on NaN / inf
    return json.loads(text)


def test_zero_trades_are_named_and_none():
    s = backtest_stats(make_result(pnls=(), held=(), open_positions=(0,) * 5))
    assert s.trades == 0
    assert s.win_rate is s.avg_win is s.avg_loss is s.profit_factor is s.expectancy is s.avg_days_held is None
    assert s.exposure == 0.0
    assert any(n.startswith("trades: no trade closed") for n in s.notes)
    d = _strict(s)
    assert d["profit_factor"] is None and d["win_rate"] is None
    table = dict(s.table().itertuples(index=False))
    assert table["profit factor"] == "n/a" and table["trades"] == "0"


def test_one_day_has_no_volatility_sharpe_or_sortino():
    s = backtest_stats(make_result(equity=(10_100.0,), pnls=(100.0,), held=(1,), open_positions=(1,)))
    assert s.days == 1 and s.total_return == pytest.approx(0.01)
    assert s.cagr == pytest.approx(1.01 ** 252 - 1)
    assert s.volatility is s.sharpe is s.sortino is None
    assert sum("one trading day" in n for n in s.notes) == 3
    assert s.max_drawdown == 0.0 and s.calmar is None and "calmar: no drawdown (None)" in s.notes
    _strict(s)


def test_no_losses_give_an_infinite_profit_factor_null_in_json_na_in_text():
    eq = (10_100.0, 10_200.0, 10_300.0)
    s = backtest_stats(make_result(equity=eq, pnls=(100.0, 100.0, 100.0), held=(1, 1, 1), open_positions=(1, 1, 1)))
    assert s.profit_factor == math.inf and s.avg_loss is None and s.win_rate == 1.0
    assert any(n.startswith("profit_factor: no losing trade") for n in s.notes)
    assert s.sortino == math.inf and any(n.startswith("sortino: no losing day") for n in s.notes)
    d = _strict(s)
    assert d["profit_factor"] is None and d["sortino"] is None
    table = dict(s.table().itertuples(index=False))
    assert table["profit factor"] == "n/a" and table["Sortino"] == "n/a"
    assert "n/a" in s.describe()


def test_flat_equity_has_no_sharpe():
    s = backtest_stats(make_result(equity=(10_000.0,) * 4, pnls=(), held=(), open_positions=(0,) * 4))
    assert s.total_return == 0.0 and s.volatility == 0.0 and s.sharpe is None and s.sortino is None
    assert s.max_drawdown == 0.0 and s.calmar is None
    assert any(n.startswith("sharpe: the equity curve's returns do not vary") for n in s.notes)
    assert any(n.startswith("sortino: the equity curve's returns do not vary") for n in s.notes)
    _strict(s)


def test_a_loss_on_the_first_day_is_a_drawdown_from_the_initial_equity():
    # 10,000 -> 9,500 -> 9,800 -> 9,700: never recovered; deepest -5% from the initial equity, 3 sessions to the end
    s = backtest_stats(make_result(equity=(9_500.0, 9_800.0, 9_700.0), pnls=(-300.0,), held=(3,),
                                   open_positions=(1, 1, 1)))
    assert s.max_drawdown == pytest.approx(-0.05)
    assert s.max_drawdown_duration == 3 and not s.max_drawdown_recovered
    assert s.calmar == pytest.approx(s.cagr / 0.05)


@pytest.mark.parametrize("bad", [dict(equity=(10_000.0, 0.0)), dict(equity=(10_000.0, float("nan"))),
                                 dict(initial=0.0)])
def test_an_impossible_equity_is_refused_by_name(bad):
    kwargs = dict(pnls=(), held=(), open_positions=(0,) * len(bad.get("equity", EQUITY))) | bad
    with pytest.raises(BacktestInputError, match="result: the equity"):
        backtest_stats(make_result(**kwargs))


def test_summary_record_is_strict_json_with_the_issue_keys(tmp_path):
    result = make_result()
    paths = result.write_csv(tmp_path)
    record = summary_record(result, paths=paths, run_id="r1")
    assert list(record)[:len(SUMMARY_KEYS)] == list(SUMMARY_KEYS)
    assert record["trades"] == 3 and record["days"] == 5 and record["missing_days"] == ["2026-06-19"]
    assert record["trades_path"] == str(tmp_path / "trades.csv") and record["run_id"] == "r1"
    assert record["stats"]["max_drawdown_duration"] == 3
    json.loads(to_json(record))


def test_numba_cache_lives_in_the_project_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert numba_cache_dir() == tmp_path / "cache" / "numba"
    assert use_project_numba_cache() == tmp_path / "cache" / "numba"
    import os

    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "cache" / "numba")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))  # the user's own choice wins
    assert numba_cache_dir() == tmp_path / "mine"


# --------------------------------------------------------------------------------------------------------
# plots


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    return buf.getvalue()


def test_equity_plot_shows_the_curve_and_its_drawdown():
    result = make_result()
    fig = plots.backtest_equity(result)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax_eq, ax_dd = fig.axes
    assert ax_eq.get_ylabel() == "equity ($)" and ax_dd.get_ylabel() == "drawdown (%)"
    line = next(ln for ln in ax_eq.get_lines() if ln.get_label() == "equity")
    assert list(line.get_ydata()) == list(EQUITY)
    dd = next(ln for ln in ax_dd.get_lines() if ln.get_label() == "drawdown").get_ydata()
    assert min(dd) == pytest.approx(-2.0) and max(dd) == 0.0
    assert "SPX backtest" in ax_eq.get_title() and "bull_put" in ax_eq.get_title()
    assert _png(fig)[:4] == b"\x89PNG"


def test_trades_plot_marks_entries_and_exits_on_the_price_with_zero_gamma():
    result = make_result()
    days = pd.to_datetime(result.equity["date"])
    price = pd.Series([5000.0, 5010.0, 4990.0, 5020.0, 5030.0], index=days)
    zero_gamma = pd.Series([4950.0, np.nan, 4960.0, 4970.0, 4980.0], index=days)
    fig = plots.backtest_trades(result, price, zero_gamma=zero_gamma)
    ax = fig.axes[0]
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert labels == ["SPX price", "zero gamma"]
    entries, exits = ax.collections[:2]
    assert entries.get_offsets().shape == (3, 2) and exits.get_offsets().shape == (3, 2)
    assert list(entries.get_offsets()[:, 1]) == [5000.0, 5010.0, 4990.0]   # entry days' prices
    assert list(exits.get_offsets()[:, 1]) == [5010.0, 4990.0, 5020.0]     # exit days' prices
    assert _png(fig)
    no_zg = plots.backtest_trades(result, price)
    assert [ln.get_label() for ln in no_zg.axes[0].get_lines()] == ["SPX price"]


def test_pnl_plots_show_the_trades():
    result = make_result()
    dist = plots.pnl_distribution(result).axes[0]
    assert dist.get_xlabel().startswith("trade P&L") and sum(p.get_height() for p in dist.patches) == 3
    by_regime = plots.pnl_by_regime(result).axes[0]
    heights = {t.get_text(): p.get_height() for t, p in zip(by_regime.get_xticklabels(), by_regime.patches,
                                                            strict=True)}
    assert heights == {"negative gamma": -150.0, "positive gamma": 500.0}
    empty = make_result(pnls=(), held=())
    for fn in (plots.pnl_distribution, plots.pnl_by_regime):
        ax = fn(empty).axes[0]
        assert any(t.get_text() == "no trade" for t in ax.texts)
    assert any(t.get_text() == "no trade" for t in plots.backtest_trades(empty, pd.Series(dtype=float)).axes[0].texts)


def test_greeks_plot_has_one_panel_per_greek():
    result = make_result()
    fig = plots.book_greeks(result)
    assert len(fig.axes) == 4
    assert [a.get_ylabel().split(" ")[0] for a in fig.axes] == ["delta", "gamma", "theta", "vega"]
    assert list(fig.axes[3].get_lines()[0].get_ydata()) == list(result.equity["vega"])
    with pytest.raises(BacktestInputError, match="ax: give 4 Axes"):
        plots.book_greeks(result, ax=[fig.axes[0]])
    assert _png(fig)


# --------------------------------------------------------------------------------------------------------
# the command line: arguments (no engine), then the engine call replaced to check what the command writes


def _parse(*argv):
    return cli._build_parser().parse_args(["backtest", "chains", "--source", "x.parquet", *argv])


def test_backtest_flags_become_the_parameters_given():
    args = _parse("--strategy", "bull_put", "--dte", "30", "--short-delta", "0.2", "--width", "25", "--entry",
                  "every:5", "--max-open", "3", "--profit-target", "none", "--stop-loss", "1.5", "--exit-dte", "7",
                  "--max-hold", "20", "--fill", "slippage:0.25", "--commission", "0.65", "--account", "100000",
                  "--start", "2026-06-15", "--end", "2026-08-21")
    assert cli.backtest_param_kwargs(args) == {
        "strategy": "bull_put", "dte": 30, "short_delta": 0.2, "width": 25.0, "entry": "every:5", "max_open": 3,
        "profit_target": None, "stop_loss": 1.5, "exit_dte": 7, "max_hold": 20, "fill": "slippage:0.25",
        "commission": 0.65, "account": 100000.0, "start": "2026-06-15", "end": "2026-08-21"}
    assert cli.backtest_param_kwargs(_parse()) == {}  # nothing given: the parameters' own defaults
    assert _parse("--entry", "WHEN-FLAT").entry == "when-flat"


@pytest.mark.parametrize("argv", [
    ["--strategy", "covered_call"], ["--dte", "-1"], ["--dte", "x"], ["--short-delta", "0"], ["--short-delta", "1.5"],
    ["--long-delta", "0.1", "--width", "10"], ["--width", "-5"], ["--entry", "weekly"], ["--entry", "every:0"],
    ["--max-open", "0"], ["--profit-target", "-0.5"], ["--profit-target", "nan"], ["--stop-loss", "zero"],
    ["--exit-dte", "1.5"], ["--max-hold", "0"], ["--fill", "bid"], ["--fill", "slippage:2"], ["--fill", "slippage:x"],
    ["--commission", "-1"], ["--account", "0"], ["--start", "2026-02-30"], ["--symbol", ""],
])
def test_bad_backtest_parameters_exit_2_before_anything_runs(argv, tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_REPORTS", str(tmp_path / "reports"))
    for command in (["backtest", "chains"], ["report", "backtest"]):
        err = io.StringIO()
        code = cli.main([*command, "--source", "x.parquet", *argv], out=io.StringIO(), err=err)
        assert code == 2, (command, argv, err.getvalue())
        assert err.getvalue().strip()
    assert not (tmp_path / "reports").exists()  # nothing written


def test_start_after_end_and_a_missing_file_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_REPORTS", str(tmp_path / "reports"))
    err = io.StringIO()
    assert cli.main(["backtest", "chains", "--source", "x", "--start", "2026-08-01", "--end", "2026-07-01"],
                    out=io.StringIO(), err=err) == 2
    assert "--start 2026-08-01 is after --end 2026-07-01" in err.getvalue()
    if ENGINE:  # the parameters module checks them before the missing file is noticed
        err = io.StringIO()
        assert cli.main(["backtest", "chains", "--source", str(tmp_path / "none.parquet")], out=io.StringIO(),
                        err=err) == 2
        assert "no such chain file" in err.getvalue()
    assert not (tmp_path / "reports").exists()


@needs_engine
def test_cli_json_keys_and_csv_columns(tmp_path, monkeypatch, synthetic):
    """The engine call alone is replaced (a constructed result) to check the command's JSON and CSV files."""
    from research_lib.backtest import engine

    constructed = make_result()
    monkeypatch.setattr(engine, "run_backtest", lambda feed, params, **kw: constructed)
    out = io.StringIO()
    code = cli.main(["backtest", "chains", "--source", str(synthetic.files["eod_archive"]), "--strategy", "bull_put",
                     "--out", str(tmp_path / "run"), "--json"], out=out, err=io.StringIO())
    assert code == 0
    record = json.loads(out.getvalue())
    assert set(SUMMARY_KEYS) <= set(record)
    assert record["trades"] == 3 and record["profit_factor"] == pytest.approx(500 / 150)
    for key, columns in (("trades_path", ["trade_id", "entry_date", "exit_date", "strategy", "contracts",
                                          "entry_price", "exit_price", "exit_reason", "pnl"]),
                         ("legs_path", ["trade_id", "root", "expiration", "strike", "right", "quantity",
                                        "entry_date", "entry_mid", "exit_date", "exit_value", "exit_kind"]),
                         ("equity_path", ["date", "equity"])):
        header = pd.read_csv(record[key], nrows=0).columns
        assert set(columns) <= set(header), key
        assert record[key].startswith(str(tmp_path / "run"))


# --------------------------------------------------------------------------------------------------------
# the real engine: command line, notebook (papermill), report and index


def _cli_json(argv) -> dict:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out=out, err=err)
    assert code == 0, err.getvalue()
    return json.loads(out.getvalue())


@needs_engine
@pytest.mark.parametrize("archive", ["synthetic", "real"])
def test_backtest_chains_end_to_end(archive, tmp_path, request):
    path = shared_file(EOD_ARCHIVE) if archive == "real" else request.getfixturevalue("synthetic").files["eod_archive"]
    record = _cli_json(["backtest", "chains", "--source", str(path), "--strategy", "bull_put", "--entry", "daily",
                        "--out", str(tmp_path), "--json"])
    trades = pd.read_csv(record["trades_path"])
    equity = pd.read_csv(record["equity_path"])
    assert record["trades"] == len(trades) and record["days"] == len(equity)
    assert record["net_pnl"] == pytest.approx(equity["equity"].iloc[-1] - record["initial_equity"], abs=1e-6)
    if len(trades):
        assert record["win_rate"] == pytest.approx((trades["pnl"] > 0).mean())
    if archive == "real":
        assert record["missing_days"] == ["2026-06-23", "2026-08-07"]
    text = io.StringIO()
    assert cli.main(["backtest", "chains", "--source", str(path), "--strategy", "bull_put", "--out",
                     str(tmp_path / "text")], out=text, err=io.StringIO()) == 0
    assert "max drawdown" in text.getvalue() and "trades: " in text.getvalue()


@needs_engine
@pytest.mark.notebook
def test_report_backtest_runs_the_notebook_and_lists_it_in_the_index(tmp_path, monkeypatch, synthetic, capsys):
    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    root = tmp_path / "reports"
    path = synthetic.files["eod_archive"]
    code = cli.main(["report", "backtest", "--source", str(path), "--strategy", "bull_put", "--entry", "daily",
                     "--reports-dir", str(root), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    run = json.loads(captured.out)
    folder = root / "backtests" / run["run_id"]
    assert run["status"] == "OK" and (folder / "backtest.ipynb").exists() and (folder / "backtest.html").exists()
    assert {"trades.csv", "legs.csv", "equity.csv", "backtest.json"} <= {p.name for p in folder.iterdir()}
    # the notebook's record is the library's numbers
    from research_lib.backtest import engine, feed, params

    direct = engine.run_backtest(feed.Feed(str(path), "SPX"), params.BacktestParams(strategy="bull_put", entry="daily"))
    expected = summary_record(direct)
    for key in ("start", "end", "days", "trades", "net_pnl", "total_return", "sharpe", "max_drawdown"):
        assert run["record"][key] == (pytest.approx(expected[key], rel=1e-9) if isinstance(expected[key], float)
                                      else expected[key]), key
    nb = json.loads((folder / "backtest.ipynb").read_text())
    images = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    assert images == 5
    page = (folder / "backtest.html").read_text()
    assert "<script src=" not in page and "run_backtest(" not in page
    index = (root / "index.html").read_text()
    assert "Backtests" in index and run["run_id"] in index and f"backtests/{run['run_id']}/backtest.html" in index
    listed = json.loads((root / "index.json").read_text())["backtests"]
    assert listed[0]["run_id"] == run["run_id"] and listed[0]["trades"] == run["record"]["trades"]


@pytest.mark.notebook
def test_report_backtest_of_putwrite_on_the_real_archive(tmp_path, monkeypatch, capsys):
    """The README's figure: putwrite on the 2026 archive, through `report backtest` (papermill), equals the engine
    called directly, and its two rolls settle as the methodology says."""
    path = shared_file(EOD_ARCHIVE)
    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    root = tmp_path / "reports"
    code = cli.main(["report", "backtest", "--source", str(path), "--strategy", "putwrite", "--commission", "0",
                     "--reports-dir", str(root), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    run = json.loads(captured.out)
    from research_lib.backtest import engine, feed, params

    direct = engine.run_backtest(feed.Feed(str(path), "SPX"), params.BacktestParams(strategy="putwrite", commission=0))
    assert run["record"]["trades"] == len(direct.trades) == 2
    assert run["record"]["net_pnl"] == pytest.approx(direct.net_pnl, rel=1e-9)
    assert run["record"]["total_return"] == pytest.approx(0.0305, abs=0.0005)  # the README's +3.05%
    assert list(direct.trades["entry_date"].astype(str)) == ["2026-06-18", "2026-07-17"]
    assert run["record"]["missing_days"] == ["2026-06-23", "2026-08-07"]


# --------------------------------------------------------------------------------------------------------
# the index without a kernel


def test_index_lists_backtests_beside_the_daily_reports(tmp_path):
    root = tmp_path
    good = root / "backtests" / "20260821T201500Z-1"
    good.mkdir(parents=True)
    (good / "backtest.json").write_text(json.dumps({
        "status": "OK", "duration_s": 12.5, "finished_at": "2026-08-21T16:15:00-04:00",
        "params": {"symbol": "SPX", "source": "archive.parquet", "strategy": "putwrite"},
        "record": {"start": "2026-06-12", "end": "2026-08-21", "trades": 3, "net_pnl": 1234.5,
                   "total_return": 0.0123, "sharpe": 1.5, "max_drawdown": -0.02, "params": {"strategy": "putwrite"}}}))
    broken = root / "backtests" / "20260822T201500Z-2"
    broken.mkdir(parents=True)
    (broken / "backtest.json").write_text("{not json")
    rows = report_index.read_backtests(root)
    assert [r["run_id"] for r in rows] == ["20260822T201500Z-2", "20260821T201500Z-1"]
    assert rows[0]["status"] == "FAILED" and "unreadable backtest.json" in rows[0]["error"]
    assert rows[1]["strategy"] == "putwrite" and rows[1]["trades"] == 3
    reports.rebuild_index(root)  # what every index writer calls: daily rows and backtest rows
    page = (root / "index.html").read_text()
    assert "backtests/20260821T201500Z-1/backtest.html" in page and "1.23%" in page and "+1.23K" in page
    assert json.loads((root / "index.json").read_text())["backtests"][1]["sharpe"] == 1.5


def test_backtest_run_folder_defaults_under_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_REPORTS", str(tmp_path))
    run_id, folder = reports.backtest_run_folder()
    assert folder == tmp_path / "backtests" / run_id
    assert reports.backtest_run_folder(tmp_path / "mine")[1] == tmp_path / "mine"
    import re

    assert re.fullmatch(r"\d{8}T\d{6}Z-\d+", run_id)
