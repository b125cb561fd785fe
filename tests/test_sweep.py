"""Parameter sweeps: the grid file and every error it can hold, the expansion's order and ids, sweeps on a
synthetic archive (always) and on the real 2026 archive (when present) — serial, local pool and a real Dask
cluster giving the same table, resuming without recomputing, a failing configuration recorded — the walk-forward
and the deflated Sharpe ratio against hand computations and the paper's numbers, and the command line."""

from __future__ import annotations

import datetime as dt
import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import EOD_ARCHIVE, shared_file

from research_lib import cli
from research_lib.backtest.engine import run_backtest
from research_lib.backtest.params import BacktestParams
from research_lib.backtest.stats import backtest_stats, summary_record
from research_lib.core.regime import RegimeParams
from research_lib.errors import SweepInputError, SweepStatisticError
from research_lib.sweep import deflated, walkforward
from research_lib.sweep.engines import STAT_KEYS, prepare, run_one
from research_lib.sweep.grid import expand, load_grid
from research_lib.sweep.runner import run_sweep
from research_lib.sweep.store import RESULT_COLUMNS, read_results

#: The fixed options of the synthetic sweeps: one contract per entry (the Kelly bootstrap sizes a $1M account's
#: spreads to 0 contracts otherwise), the synthetic chain's wide quotes allowed.
FIXED = """\
[backtest]
engine = "chains"
source = "arch.parquet"
strategy = "bull_put"
dte = 30
dte_tolerance = 10
contracts = 1
rate = 0.05
max_spread_pct = 0.5
min_open_interest = 0
account = 1000000
entry = "daily"
max_open = 3
"""
GRID = FIXED + """\
[grid]
short_delta = [0.25, 0.35]
width = [25, 50]
profit_target = [0.3, "none"]
[walk_forward]
train_days = 20
test_days = 10
"""


def write(path, text):
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A synthetic EOD archive of 63 sessions (2023-10-02..2023-12-29), each day's chain priced exactly from a
    known surface (tests/synthetic.py) at the synthetic history's close, weekly Friday expiries to 70 days; and the
    synthetic market history (for the settlements). Returns the folder."""
    from fixtures import market_frame, write_eod_archive, write_market_history
    from synthetic import priced_chain

    folder = tmp_path_factory.mktemp("sweep_archive")
    mf = market_frame()
    days = [d.date() for d in mf.index[(mf.index >= "2023-10-02") & (mf.index <= "2023-12-29")]]
    fridays = [d.date() for d in pd.date_range("2023-10-06", "2024-03-08", freq="W-FRI")]
    snaps = {}
    for d in days:
        expiries = tuple((e - d).days for e in fridays if 1 <= (e - d).days <= 70)
        snaps[d] = priced_chain(spot=float(mf.loc[pd.Timestamp(d), "spx"]), date=d.isoformat(),
                                expiry_days=expiries, rate=0.05, div_yield=0.013, step=5.0, width=1.5)
    write_eod_archive(folder / "arch.parquet", snaps, days={d: (d, "OK") for d in days})
    write_market_history(folder / "market")
    return folder


@pytest.fixture(scope="module")
def grid_file(archive):
    return write(archive / "grid.toml", GRID)


@pytest.fixture(scope="module")
def serial(grid_file, archive, tmp_path_factory):
    """The synthetic grid run in this process (the reference every other way of running it must equal)."""
    return run_sweep(load_grid(grid_file), workers=1, out=tmp_path_factory.mktemp("serial"),
                     market_dir=archive / "market")


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    """A results table without its wall times (the only column that depends on where it ran)."""
    return table.drop(columns=["seconds"]).reset_index(drop=True)


# ------------------------------------------------------------------------------------------------
# the grid file
def test_load_grid_reads_both_tables_and_builds_regime_params(tmp_path):
    path = write(tmp_path / "g.toml", """
[backtest]
engine = "history"
strategy = "auto"
start = 2015-01-02
end = "2016-12-30"
roots = ["SPX"]
"sizing.kelly_fraction" = 0.25
[grid]
short_delta = [0.20, 0.30]
"regime.iv_rank_sell" = [30, 50]
profit_target = [0.5, "none"]
""")
    spec = load_grid(path)
    assert spec.engine == "history" and spec.source is None and spec.symbol == "SPX"
    assert spec.keys == ("short_delta", "regime.iv_rank_sell", "profit_target")
    assert spec.walk_forward == {"train_days": 504, "test_days": 252, "statistic": "sharpe"}
    configs = expand(spec)
    assert len(configs) == 8
    p = configs[-1].backtest_params()
    assert p.regime == RegimeParams(iv_rank_sell=50) and p.sizing.kelly_fraction == 0.25
    assert p.start == dt.date(2015, 1, 2) and p.end == dt.date(2016, 12, 30) and p.roots == ("SPX",)
    assert p.profit_target is None and configs[-1].values == {"short_delta": 0.3, "regime.iv_rank_sell": 50,
                                                              "profit_target": None}


BAD_GRIDS = [
    ("[grid]\nshort_deltas = [0.2]\n", "grid", "short_deltas", "not a backtest parameter"),
    ("[backtest]\nfoo = 1\n[grid]\ndte = [30]\n", "backtest", "foo", "not a backtest parameter"),
    ("[grid]\nshort_delta = 0.2\n", "grid", "short_delta", "a non-empty list"),
    ("[grid]\nshort_delta = []\n", "grid", "short_delta", "a non-empty list"),
    ("[grid]\nshort_delta = [0.2, 0.2]\n", "grid", "short_delta", "listed twice"),
    ("[backtest]\ndte = 30\n[grid]\ndte = [20, 30]\n", "grid", "dte", "also fixed"),
    ("[grid]\nshort_delta = [0.2, 1.5]\n", "grid", "short_delta", "strictly between 0 and 1"),
    ("[backtest]\nfill = \"best\"\n[grid]\ndte = [30]\n", "backtest", "fill", "one of mid, natural"),
    ("[grid]\nshort_delta = [0.2]\nlong_delta = [0.1, 0.3]\n", "grid", "long_delta", "must be below short_delta"),
    ("[grid]\n\"regime.iv_rank_sell\" = [40, 140]\n", "grid", "regime.iv_rank_sell", "iv_rank_sell"),
    ("[grid]\n\"regime.nope\" = [1]\n", "grid", "regime.nope", "not a parameter"),
    ("[grid]\nsource = [\"a\", \"b\"]\n", "grid", "source", "set it in [backtest]"),
    ("[backtest]\nengine = \"gpu\"\n[grid]\ndte = [30]\n", "backtest", "engine", "one of chains, history"),
    ("[backtest]\nengine = \"chains\"\n[grid]\ndte = [30]\n", "backtest", "source", "needs a source"),
    ("[sweep]\nx = 1\n[grid]\ndte = [30]\n", "sweep", "", "unknown table"),
    ("[backtest]\ndte = 30\n", "grid", "", "nothing to sweep"),
    ("[grid]\ndte = [30]\n[walk_forward]\ntrain_days = 1\n", "walk_forward", "train_days", ">= 2"),
    ("[grid]\ndte = [30]\n[walk_forward]\nstatistic = \"calmar\"\n", "walk_forward", "statistic", "one of"),
    ("[grid\ndte = [30]\n", "file", "", "not TOML"),
]


@pytest.mark.parametrize("text, table, key, words", BAD_GRIDS)
def test_every_grid_error_names_the_file_the_table_and_the_key(tmp_path, text, table, key, words):
    if "engine" not in text:   # a history sweep needs no source: each case has only its own fault
        text = (text.replace("[backtest]\n", '[backtest]\nengine = "history"\n', 1) if text.startswith("[backtest]")
                else '[backtest]\nengine = "history"\n' + text)
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(SweepInputError) as info:
        load_grid(path)
    err = info.value
    assert (err.path, err.table, err.key) == (str(path), table, key)
    assert str(path) in str(err) and f"[{table}]" in str(err) and key in str(err) and words in str(err)


def test_the_example_grid_is_valid():
    from conftest import ROOT

    spec = load_grid(ROOT / "notebooks" / "sweep_grid.toml")
    assert spec.engine == "chains" and spec.source.endswith("spx_eod_2026-06-12_2026-08-21.parquet")
    assert len(expand(spec)) == 8 and spec.walk_forward["train_days"] == 20


def test_a_missing_grid_file_is_a_sweep_input_error(tmp_path):
    with pytest.raises(SweepInputError, match="cannot read the grid file"):
        load_grid(tmp_path / "none.toml")


def test_expansion_order_and_stable_ids(grid_file, tmp_path):
    spec = load_grid(grid_file)
    configs = expand(spec)
    got = [(c.values["short_delta"], c.values["width"], c.values["profit_target"]) for c in configs]
    assert got == [(0.25, 25.0, 0.3), (0.25, 25.0, None), (0.25, 50.0, 0.3), (0.25, 50.0, None),
                   (0.35, 25.0, 0.3), (0.35, 25.0, None), (0.35, 50.0, 0.3), (0.35, 50.0, None)]
    assert [c.index for c in configs] == list(range(8))
    ids = [c.config_id for c in configs]
    assert len(set(ids)) == 8 and all(len(i) == 12 and int(i, 16) >= 0 for i in ids)
    assert ids == [c.config_id for c in expand(load_grid(grid_file))]  # deterministic
    # the id is the parameters', not the position's: the same configuration in another grid (other order,
    # other spelling of the same values, the fixed value moved into the grid) has the same id
    other = write(tmp_path / "other.toml", GRID.replace("dte = 30\n", "").replace(
        "[grid]\n", "[grid]\ndte = [30, 45]\n").replace("profit_target = [0.3, \"none\"]",
                                                       "profit_target = [\"none\", \"0.30\"]")
        .replace("source = \"arch.parquet\"", f"source = \"{grid_file.parent / 'arch.parquet'}\""))
    other_ids = {c.config_id: c for c in expand(load_grid(other))}
    assert set(ids) < set(other_ids)
    assert other_ids[ids[0]].values == {"dte": 30, "short_delta": 0.25, "width": 25.0, "profit_target": 0.3}


def test_engine_override_is_revalidated(grid_file):
    spec = load_grid(grid_file)
    assert spec.with_engine("history").engine == "history"
    assert spec.with_engine(None) is spec
    assert spec.with_engine("history").spec_hash() != spec.spec_hash()


# ------------------------------------------------------------------------------------------------
# sweeps on the synthetic archive
def test_each_row_is_the_backtest_of_its_configuration(serial, archive):
    table = serial.table
    assert list(table.columns) == ["config_id", "short_delta", "width", "profit_target", *RESULT_COLUMNS[1:]]
    assert serial.configs == serial.done == 8 and serial.skipped == 0 and serial.failed == 0
    assert (table["trades"] > 0).all() and table["error"].isna().all()
    # one configuration run directly through the engine gives the row's statistics and equity
    config = expand(serial.spec)[5]
    from research_lib.backtest.feed import Feed
    from research_lib.data.market import load_index_daily

    result = run_backtest(Feed(archive / "arch.parquet"), config.backtest_params(),
                          daily=load_index_daily(market_dir=archive / "market"))
    record = summary_record(result, backtest_stats(result))
    row = table.iloc[5]
    assert row["config_id"] == config.config_id
    for key in STAT_KEYS:
        want = record[key]
        assert (pd.isna(row[key]) if want is None else row[key] == pytest.approx(want, rel=1e-12)), key
    np.testing.assert_allclose(serial.equity[config.config_id].to_numpy(), result.equity["equity"].to_numpy())
    # the files
    csv = pd.read_csv(serial.paths["results_path"])
    assert list(csv["config_id"]) == list(table["config_id"])
    pd.testing.assert_frame_equal(pd.read_parquet(serial.paths["parquet_path"]), table, check_dtype=False)
    eq = pd.read_parquet(serial.paths["equity_path"])
    assert list(eq.columns) == list(table["config_id"]) and len(eq) == 63
    summary = json.loads(serial.paths["summary_path"].read_text())
    assert summary["configs"] == 8 and summary["best"]["config_id"] == serial.best["config_id"]
    assert serial.best["stats"]["sharpe"] == pytest.approx(table["sharpe"].max())


def test_the_local_pool_equals_serial(serial, grid_file, archive, tmp_path):
    calls = []
    pool = run_sweep(load_grid(grid_file), workers=2, out=tmp_path / "pool", market_dir=archive / "market",
                     progress=lambda done, total, cid: calls.append((done, total, cid)))
    assert pool.mode == "pool" and pool.workers == 2
    pd.testing.assert_frame_equal(comparable(pool.table), comparable(serial.table))
    pd.testing.assert_frame_equal(pool.equity, serial.equity)
    pd.testing.assert_frame_equal(pool.walk_forward, serial.walk_forward)
    assert pool.deflated_sharpe == serial.deflated_sharpe
    assert [c[0] for c in calls] == list(range(1, 9)) and {c[1] for c in calls} == {8}
    assert sorted(c[2] for c in calls) == sorted(serial.table["config_id"])


def test_an_interrupted_sweep_resumes_without_recomputing(serial, grid_file, archive, tmp_path):
    spec = load_grid(grid_file)
    out = tmp_path / "resume"

    def stop_after_three(done, total, config_id):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, workers=1, out=out, market_dir=archive / "market", progress=stop_after_three)
    parts = {p.stem: p.stat().st_mtime_ns for p in (out / "parts").glob("*.parquet")}
    assert len(parts) == 3 and not (out / "results.csv").exists()
    seen = []
    again = run_sweep(spec, workers=1, out=out, market_dir=archive / "market",
                      progress=lambda done, total, cid: seen.append(cid))
    assert (again.skipped, again.done, again.configs) == (3, 5, 8)
    assert {p.stem: p.stat().st_mtime_ns for p in (out / "parts").glob("*.parquet") if p.stem in parts} == parts
    assert not set(seen) & set(parts)   # the finished ones were not run again
    pd.testing.assert_frame_equal(comparable(again.table), comparable(serial.table))
    pd.testing.assert_frame_equal(again.equity, serial.equity)
    # once more: everything is done, nothing is read or run
    done = run_sweep(spec, workers=1, out=out, market_dir=archive / "market")
    assert (done.skipped, done.done, done.prepare_seconds) == (8, 0, 0.0)
    pd.testing.assert_frame_equal(done.table, again.table)
    table, equity, summary = read_results(out)
    pd.testing.assert_frame_equal(table, again.table, check_dtype=False)
    assert summary["skipped"] == 8


def test_another_grid_in_the_same_folder_is_refused(serial, archive):
    other = write(archive / "other_grid.toml", GRID.replace("[0.25, 0.35]", "[0.25, 0.30]"))
    with pytest.raises(SweepInputError, match="another grid's sweep"):
        run_sweep(load_grid(other), workers=1, out=serial.folder, market_dir=archive / "market")


def test_a_failing_configuration_is_recorded_and_the_sweep_goes_on(archive, tmp_path):
    path = write(archive / "failing.toml", FIXED + '[grid]\nend = ["2023-12-29", "2023-09-29"]\n')
    res = run_sweep(load_grid(path), workers=1, out=tmp_path / "fail", market_dir=archive / "market")
    assert res.failed == 1 and res.done == 2
    bad = res.table[res.table["error"].notna()].iloc[0]
    assert bad["end"] == "2023-09-29" and bad["error"].startswith("BacktestInputError: feed: no snapshot")
    assert bad[list(STAT_KEYS)].isna().all()
    assert list(res.equity.columns) == [res.table["config_id"].iloc[0]]
    assert pd.read_csv(res.paths["results_path"])["error"].notna().sum() == 1


def test_run_one_on_prepared_inputs_matches_the_table(serial, archive):
    spec = serial.spec
    shared = prepare(spec, market_dir=archive / "market")
    assert shared.engine == "chains" and len(shared.data) == 63 and "63 trading days" in shared.description
    config = expand(spec)[2]
    outcome = run_one(config, shared)
    row = serial.table.set_index("config_id").loc[config.config_id]
    assert outcome.error is None and outcome.stats["trades"] == row["trades"]
    assert outcome.stats["sharpe"] == pytest.approx(row["sharpe"], rel=1e-12)


def test_a_real_dask_cluster_gives_the_pools_table(serial, grid_file, archive, tmp_path):
    """A real LocalCluster (scheduler and two worker processes on 127.0.0.1): the shared inputs scattered once,
    the configurations mapped, every result stored; the same table as the local pool and serial runs."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        res = run_sweep(load_grid(grid_file), scheduler=cluster.scheduler_address, out=tmp_path / "dask",
                        market_dir=archive / "market")
        with distributed.Client(cluster.scheduler_address) as client:
            caches = client.run(lambda: __import__("os").environ.get("NUMBA_CACHE_DIR"))
    assert res.mode == "dask" and res.workers == 2 and res.done == 8
    pd.testing.assert_frame_equal(comparable(res.table), comparable(serial.table))
    pd.testing.assert_frame_equal(res.equity, serial.equity)
    from research_lib.backtest.stats import numba_cache_dir

    assert set(caches.values()) == {str(numba_cache_dir())}   # every worker on the project's numba cache


# ------------------------------------------------------------------------------------------------
# the real 2026 archive
@pytest.mark.shared_data
def test_a_small_sweep_on_the_real_archive(tmp_path):
    path = shared_file(EOD_ARCHIVE)
    grid = write(tmp_path / "real.toml", f"""
[backtest]
source = "{path}"
strategy = "bull_put"
dte = 30
contracts = 1
rate = 0.04
[grid]
short_delta = [0.20, 0.30]
""")
    res = run_sweep(load_grid(grid), workers=1, out=tmp_path / "out")
    assert res.failed == 0 and (res.table["trades"] > 0).all()
    direct = run_backtest(__import__("research_lib.backtest.feed", fromlist=["Feed"]).Feed(path),
                          BacktestParams(strategy="bull_put", dte=30, contracts=1, rate=0.04, short_delta=0.3))
    assert res.table["net_pnl"].iloc[1] == pytest.approx(direct.net_pnl, abs=1e-6)
    assert len(res.equity) == len(direct.equity)


# ------------------------------------------------------------------------------------------------
# walk-forward
def _equity(returns: dict, start="2024-01-02") -> pd.DataFrame:
    n = len(next(iter(returns.values())))
    idx = pd.bdate_range(start, periods=n + 1)
    return pd.DataFrame({k: 100.0 * np.cumprod(1.0 + np.r_[0.0, v]) for k, v in returns.items()}, index=idx)


def test_walk_forward_chooses_in_sample_and_reports_out_of_sample():
    rng = np.random.default_rng(3)
    a = np.r_[rng.normal(0.002, 0.01, 10), rng.normal(-0.002, 0.01, 10)]   # good then bad
    b = np.r_[rng.normal(-0.001, 0.01, 10), rng.normal(0.001, 0.01, 10)]
    c = rng.normal(0.0, 0.01, 20)
    eq = _equity({"a": a, "b": b, "c": c})
    wf = walkforward.walk_forward(eq, train_days=10, test_days=5, statistic="sharpe")
    assert list(wf.columns) == list(walkforward.WINDOW_COLUMNS) and len(wf) == 2

    def sharpe(x):
        return x.mean() / x.std(ddof=1) * math.sqrt(252)

    first = wf.iloc[0]
    ins = {k: sharpe(v[:10]) for k, v in {"a": a, "b": b, "c": c}.items()}
    chosen = max(ins, key=ins.get)
    assert first["config_id"] == chosen and first["in_sample"] == pytest.approx(ins[chosen], rel=1e-12)
    oos = {k: sharpe(v[10:15]) for k, v in {"a": a, "b": b, "c": c}.items()}
    assert first["out_of_sample"] == pytest.approx(oos[chosen], rel=1e-12)
    assert first["oos_median"] == pytest.approx(np.median(list(oos.values())), rel=1e-12)
    assert first["train_start"] == eq.index[1] and first["train_end"] == eq.index[10]
    assert first["test_start"] == eq.index[11] and first["test_end"] == eq.index[15]
    stitched = walkforward.stitched_returns(eq, wf)
    assert len(stitched) == 10 and stitched.index.is_monotonic_increasing
    s = walkforward.summarize(eq, wf, statistic="sharpe", train_days=10, test_days=5)
    assert s.windows == 2 and s.oos_days == 10
    assert s.oos_statistic == pytest.approx(sharpe(stitched.to_numpy()), rel=1e-12)
    tr = walkforward.walk_forward(eq, train_days=10, test_days=5, statistic="total_return")
    assert tr.iloc[0]["in_sample"] == pytest.approx(np.prod(1 + {"a": a, "b": b, "c": c}[tr.iloc[0]["config_id"]][:10])
                                                    - 1, rel=1e-12)


def test_walk_forward_edge_cases():
    eq = _equity({"a": np.full(12, 0.0), "b": np.full(12, 0.0)})     # no trade: flat equity
    wf = walkforward.walk_forward(eq, train_days=10, test_days=5)
    assert len(wf) == 1 and wf.iloc[0]["config_id"] is None and wf.iloc[0]["configs"] == 0  # Sharpe undefined
    assert math.isnan(wf.iloc[0]["in_sample"]) and math.isnan(wf.iloc[0]["oos_median"])
    assert walkforward.summarize(eq, wf, train_days=10, test_days=5).oos_statistic is None
    eq["b"] = 100.0 * np.cumprod(1.0 + np.r_[0.0, np.tile([0.01, -0.005], 6)])
    assert walkforward.walk_forward(eq, train_days=10, test_days=5).iloc[0]["config_id"] == "b"
    assert len(walkforward.walk_forward(eq, train_days=10, test_days=6)) == 0     # 1 test return < 6 // 2
    with pytest.raises(SweepStatisticError, match="train_days"):
        walkforward.walk_forward(eq, train_days=1)
    with pytest.raises(SweepStatisticError, match="statistic"):
        walkforward.walk_forward(eq, statistic="calmar")
    with pytest.raises(SweepStatisticError, match="positive and finite"):
        walkforward.walk_forward(eq.assign(a=-1.0), train_days=2, test_days=2)
    with pytest.raises(SweepStatisticError, match="ascending"):
        walkforward.walk_forward(eq.iloc[::-1], train_days=2, test_days=2)


# ------------------------------------------------------------------------------------------------
# the probabilistic and deflated Sharpe ratio
def test_deflated_sharpe_reproduces_the_papers_numerical_example():
    """Bailey & López de Prado (2014), "A numerical example": SR 2.5 a year after N = 100 trials of annualised
    SR variance 0.5, T = 1250 daily returns (250 a year), skewness -3, kurtosis 10: SR0 = 0.1132 a day,
    DSR = 0.9004."""
    sr0 = deflated.expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = deflated.probabilistic_sharpe_ratio(2.5 / math.sqrt(250), sr0, 1250, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-4)


def test_probabilistic_sharpe_by_hand():
    from statistics import NormalDist

    r = np.array([0.01, -0.004, 0.007, 0.002, -0.011, 0.006, 0.003, 0.009, -0.002, 0.004])
    m, s = r.mean(), r.std(ddof=1)
    sr = m / s
    c = r - m
    skew = (c ** 3).mean() / (c ** 2).mean() ** 1.5
    kurt = (c ** 4).mean() / (c ** 2).mean() ** 2
    z = sr * math.sqrt(len(r) - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr * sr)
    out = deflated.deflated_sharpe_ratio(r, [sr * math.sqrt(252)])     # one trial: SR0 = 0, DSR = PSR(0)
    assert out.n_trials == 1 and out.sr0_per_period == 0.0
    assert out.dsr == out.psr_zero == pytest.approx(NormalDist().cdf(z), rel=1e-12)
    assert out.skew == pytest.approx(skew, rel=1e-12) and out.kurtosis == pytest.approx(kurt, rel=1e-12)
    assert out.sr_annual == pytest.approx(sr * math.sqrt(252), rel=1e-12)
    trials = [0.5, 1.0, 1.5, 2.0]
    many = deflated.deflated_sharpe_ratio(r, trials)
    e_max = math.sqrt(np.var(trials, ddof=1) / 252) * (
        (1 - deflated.EULER_GAMMA) * NormalDist().inv_cdf(1 - 1 / 4)
        + deflated.EULER_GAMMA * NormalDist().inv_cdf(1 - 1 / (4 * math.e)))
    assert many.sr0_per_period == pytest.approx(e_max, rel=1e-12)
    assert many.dsr < out.dsr       # more trials: deflated


def test_deflated_sharpe_errors():
    with pytest.raises(SweepStatisticError, match="at least 3"):
        deflated.deflated_sharpe_ratio([0.01, 0.02], [1.0])
    with pytest.raises(SweepStatisticError, match="do not vary"):
        deflated.deflated_sharpe_ratio([0.01] * 5, [1.0])
    with pytest.raises(SweepStatisticError, match="non-finite"):
        deflated.deflated_sharpe_ratio([0.01, np.nan, 0.0], [1.0])
    with pytest.raises(SweepStatisticError, match="no trial"):
        deflated.deflated_sharpe_ratio([0.01, 0.0, 0.02], [])
    with pytest.raises(SweepStatisticError, match="n_trials"):
        deflated.expected_max_sharpe(0, 1.0)
    with pytest.raises(SweepStatisticError, match="n_obs"):
        deflated.probabilistic_sharpe_ratio(0.1, 0.0, 1, 0.0, 3.0)


def test_the_sweeps_deflated_sharpe_is_its_best_configurations(serial):
    rets = walkforward.daily_returns(serial.equity)
    best = serial.best["config_id"]
    trials = walkforward.statistic_of(rets, "sharpe")
    want = deflated.deflated_sharpe_ratio(rets[best].to_numpy(), trials.to_numpy())
    assert serial.deflated_sharpe == want and want.n_trials == 8
    assert serial.walk_forward_summary.windows == len(serial.walk_forward) == 4


# ------------------------------------------------------------------------------------------------
# the command line
def _strict(text: str) -> dict:
    def refuse(name):
        raise AssertionError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_cli_json_is_strict_and_has_the_keys(grid_file, archive, tmp_path, serial):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["sweep", str(grid_file), "--workers", "1", "--out", str(tmp_path / "cli"), "--json",
                     "--market-dir", str(archive / "market")], out=out, err=err)
    assert code == 0, err.getvalue()
    rec = _strict(out.getvalue())
    for key in ("configs", "results_path", "parquet_path", "equity_path", "seconds", "done", "skipped", "failed",
                "best", "walk_forward", "deflated_sharpe"):
        assert key in rec, key
    assert rec["configs"] == rec["done"] == 8 and rec["failed"] == 0
    assert rec["best"]["config_id"] == serial.best["config_id"]
    csv = pd.read_csv(rec["results_path"])
    assert list(csv.columns[:4]) == ["config_id", "short_delta", "width", "profit_target"]
    assert rec["deflated_sharpe"]["n_trials"] == 8
    # the text output: the top table and the paths; resumes into the same folder
    out = io.StringIO()
    assert cli.main(["sweep", str(grid_file), "--out", str(tmp_path / "cli"), "--quiet",
                     "--market-dir", str(archive / "market")], out=out, err=io.StringIO()) == 0
    assert "8 configurations: 0 run, 8 already done" in out.getvalue() and "results: " in out.getvalue()


def test_cli_bad_grid_exits_2_with_the_message(tmp_path):
    path = write(tmp_path / "bad.toml", "[backtest]\nengine = \"history\"\n[grid]\nshort_delta = [0.2, 1.5]\n")
    err = io.StringIO()
    assert cli.main(["sweep", str(path), "--json"], out=io.StringIO(), err=err) == 2
    assert "SweepInputError" in err.getvalue() and "[grid] short_delta" in err.getvalue()
    err = io.StringIO()
    assert cli.main(["sweep", str(path), "--workers", "0"], out=io.StringIO(), err=err) == 2


# ------------------------------------------------------------------------------------------------
# the report notebook
@pytest.mark.notebook
def test_report_sweep_runs_the_notebook_and_lists_the_sweep(serial, grid_file, archive, tmp_path):
    pytest.importorskip("papermill")
    reports_dir = tmp_path / "reports"
    out = io.StringIO()
    code = cli.main(["report", "sweep", str(grid_file), "--workers", "1", "--market-dir", str(archive / "market"),
                     "--reports-dir", str(reports_dir), "--quiet", "--json"], out=out, err=io.StringIO())
    run = _strict(out.getvalue())
    assert code == 0 and run["status"] == "OK", run.get("error")
    rec = run["record"]
    assert rec["best"] == serial.summary()["best"] and rec["configs"] == 8
    assert rec["deflated_sharpe"] == pytest.approx(serial.summary()["deflated_sharpe"], rel=1e-12)
    folder = reports_dir / "sweeps" / run["run_id"]
    table, _, _ = read_results(folder)
    pd.testing.assert_frame_equal(comparable(table), comparable(serial.table), check_dtype=False)
    page = (folder / "sweep.html").read_text()
    assert page.count("<img") == 2 and "walk-forward" in page.lower()
    index = json.loads((reports_dir / "index.json").read_text())
    assert [s["run_id"] for s in index["sweeps"]] == [run["run_id"]]
    assert index["sweeps"][0]["best"] == serial.best["config_id"]
    assert "<h2>Sweeps</h2>" in (reports_dir / "index.html").read_text()


# ------------------------------------------------------------------------------------------------
# the history engine (research_lib.backtest.history: skipped until it exists)
def test_a_history_sweep_serial_equals_the_pool(tmp_path):
    history = pytest.importorskip("research_lib.backtest.history",
                                  reason="research_lib.backtest.history (the model-priced engine) is not merged yet")
    grid = write(tmp_path / "history.toml", """
[backtest]
engine = "history"
strategy = "bull_put"
start = "2019-01-02"
end = "2019-06-28"
contracts = 1
[grid]
short_delta = [0.20, 0.30]
[walk_forward]
train_days = 40
test_days = 20
""")
    spec = load_grid(grid)
    one = run_sweep(spec, workers=1, out=tmp_path / "serial")
    pool = run_sweep(spec, workers=2, out=tmp_path / "pool")
    assert one.failed == 0 and one.configs == 2
    pd.testing.assert_frame_equal(comparable(pool.table), comparable(one.table))
    # a row is the history backtest of its configuration on the inputs built once
    inputs = history.history_inputs("2019-01-02", "2019-06-28")
    config = expand(spec)[1]
    direct = history.run_history_backtest(config.backtest_params(), inputs)
    assert one.table["net_pnl"].iloc[1] == pytest.approx(direct.net_pnl, abs=1e-6)
