"""regime_gex (the regime's GEX series), the signal measures, and the validation that chose the default."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import CHAINS

from research_lib.core import gex, gex_signal, pricing, regime_gex
from research_lib.errors import GexConfigError, NothingToComputeError

HEADLINE = regime_gex.VARIANTS["headline"]


@pytest.fixture(scope="module")
def chain(synthetic):
    from research_lib.data.sources import read_chain

    return read_chain(synthetic.files["cboe_csv"])


@pytest.fixture(scope="module")
def config(chain):
    return gex.GexConfig.model(rate=0.045, div_yield=0.015)


def test_the_headline_variant_is_the_headline_net_gex(chain, config):
    analysis = gex.analyze(chain, config)
    r = regime_gex.of(analysis, spec=HEADLINE)
    assert r.value == pytest.approx(analysis.levels.net_gex, rel=1e-12)
    assert r.call_gex == pytest.approx(analysis.levels.call_gex, rel=1e-12)
    assert r.put_gex == pytest.approx(analysis.levels.put_gex, rel=1e-12)
    assert r.share_of_gross == pytest.approx(1.0) and r.move == 0 and r.atm_iv is None


def test_a_window_sums_exactly_its_contracts_exposures(chain, config):
    spec = regime_gex.RegimeGexSpec("w", min_dte=7, moneyness=0.10, move_average=False)
    contracts = gex.exposures(chain, config)[0]
    dte = (pd.DatetimeIndex(contracts["expiration"]) - pd.Timestamp(chain.snapshot_date)).days
    inside = (dte >= 7) & (np.abs(contracts["strike"] / chain.spot - 1) <= 0.10)
    expected = contracts.loc[np.asarray(inside), "gex"].sum()
    r = regime_gex.of(chain, config, spec)
    assert r.value == pytest.approx(expected, rel=1e-12)
    assert 0 < r.share_of_gross < 1 and r.n_contracts == int(np.asarray(inside & (contracts["iv"] > 0)).sum())
    assert r.value != pytest.approx(gex.analyze(chain, config).levels.net_gex, rel=1e-3)


def test_the_move_average_equals_a_slow_loop_over_shifted_spots(chain, config):
    """Reference: re-run the headline exposures of the window at each quadrature spot, contract by contract."""
    spec = regime_gex.DEFAULT
    r = regime_gex.of(chain, config, spec)
    assert r.atm_iv is not None and 0.05 < r.atm_iv < 1.0
    assert r.move == pytest.approx(r.atm_iv / math.sqrt(252))
    c = chain.contracts
    T = gex.time_to_expiry(chain, config)
    dte = (pd.DatetimeIndex(c["expiration"]) - pd.Timestamp(chain.snapshot_date)).days.to_numpy()
    nodes, weights = np.polynomial.hermite_e.hermegauss(spec.move_points)
    weights = weights / weights.sum()
    total = 0.0
    for row, t, d in zip(c.itertuples(index=False), T, dte, strict=True):
        if not (t > 0 and d >= 7 and abs(row.strike / chain.spot - 1) <= 0.10 and row.iv > 0):
            continue
        sign = 1.0 if row.right == "C" else -1.0
        for x, w in zip(nodes, weights, strict=True):
            s = chain.spot * math.exp(r.move * x)
            g = float(pricing.gamma(s, row.strike, t, row.iv, config.rate, config.div_yield))
            total += w * sign * row.open_interest * 100 * g * s * s * 0.01
    assert r.value == pytest.approx(total, rel=1e-9)
    # averaging over a move is not the value at spot
    at_spot = regime_gex.of(chain, config, regime_gex.RegimeGexSpec("s", move_average=False)).value
    assert r.value != pytest.approx(at_spot, rel=1e-4)


def test_a_vendor_gamma_config_is_evaluated_with_the_model_at_its_rates(chain):
    perf = gex.GexConfig.perfiliev()
    r = regime_gex.of(chain, perf)
    again = regime_gex.of(chain, gex.GexConfig.model(rate=0.0, div_yield=0.0))
    assert r.value == pytest.approx(again.value, rel=1e-12)


@pytest.mark.parametrize("kwargs, field", [
    ({"moneyness": 0.0}, "moneyness"), ({"move_points": 4}, "move_points"), ({"min_dte": 10, "max_dte": 5}, "max_dte"),
    ({"spot": "mid"}, "spot"), ({"iv": "vendor"}, "iv"), ({"smoothing_span": 1}, "smoothing_span"),
    ({"min_dte": -1}, "min_dte"),
])
def test_bad_specs_are_named_errors(kwargs, field):
    with pytest.raises(GexConfigError, match=field):
        regime_gex.RegimeGexSpec(**kwargs)


def test_an_empty_window_is_no_exposure(chain, config):
    with pytest.raises(gex.NoExposureError, match="regime window"):
        regime_gex.of(chain, config, regime_gex.RegimeGexSpec("far", min_dte=9000))


def test_to_dict_is_strict_json(chain, config):
    d = regime_gex.of(chain, config).to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["definition"].startswith("expiries ≥ 7 d")


def test_smoothing_is_an_ema_over_the_observations():
    s = pd.Series([1.0, 2.0, 4.0, 8.0], index=pd.date_range("2026-01-05", periods=4))
    spec = regime_gex.RegimeGexSpec("e", smoothing_span=3)
    out = regime_gex.smooth(s, spec)
    alpha = 0.5
    w = [(1 - alpha) ** k for k in range(4)]
    assert out.iloc[-1] == pytest.approx(sum(wk * v for wk, v in zip(w, [8, 4, 2, 1], strict=True)) / sum(w))
    assert out.iloc[0] == 1.0
    assert regime_gex.smooth(s, regime_gex.DEFAULT) is s


# --------------------------------------------------------------------------------------------------
# signal measures


def test_forward_realised_vol_by_hand():
    close = pd.Series([100.0, 101.0, 99.0, 100.0], index=pd.date_range("2026-01-05", periods=4))
    rv1 = gex_signal.forward_realised_vol(close, 1)
    assert rv1.iloc[0] == pytest.approx(100 * math.sqrt(252) * abs(math.log(1.01)))
    assert math.isnan(rv1.iloc[-1])
    rv2 = gex_signal.forward_realised_vol(close, 2)
    assert rv2.iloc[0] == pytest.approx(100 * math.sqrt(252 / 2 * (math.log(1.01) ** 2 + math.log(99 / 101) ** 2)))
    assert rv2.iloc[-2:].isna().all()
    with pytest.raises(ValueError, match="horizon"):
        gex_signal.forward_realised_vol(close, 0)


def test_rv_separation_counts_and_signs():
    idx = pd.date_range("2026-01-05", periods=6, freq="B")
    close = pd.Series([100, 103, 103.1, 99, 99.1, 99.2], index=idx)  # big move after day 0 and day 2
    series = pd.Series([-1.0, 1.0, -2.0, 3.0, 4.0, -5.0], index=idx)
    sep = gex_signal.rv_separation(series, close, 1, min_days=1)
    assert (sep.n_negative, sep.n_positive) == (2, 3)  # the last day has no future
    rv = gex_signal.forward_realised_vol(close, 1)
    assert sep.negative == pytest.approx(rv.iloc[[0, 2]].mean())
    assert sep.positive == pytest.approx(rv.iloc[[1, 3, 4]].mean())
    assert sep.separation == pytest.approx(sep.negative - sep.positive) and sep.separation > 0
    # with the default minimum of 5 days a side, two negative days cannot measure a separation
    short = gex_signal.rv_separation(series, close, 1)
    assert math.isnan(short.separation) and short.negative == pytest.approx(sep.negative)
    one_sided = gex_signal.rv_separation(series.abs(), close, 1, min_days=1)
    assert one_sided.n_negative == 0 and math.isnan(one_sided.separation)


def test_agreement_and_noise():
    idx = pd.date_range("2026-01-05", periods=5)
    a = pd.Series([1.0, -1.0, 2.0, 2.0, -3.0], index=idx)
    b = pd.Series([2.0, 1.0, 4.0, np.nan, -6.0], index=idx)
    assert gex_signal.sign_agreement(a, b) == pytest.approx(3 / 4)
    assert gex_signal.correlation(a, a * 3) == pytest.approx(1.0)
    assert gex_signal.relative_noise(a) == pytest.approx(a.diff().std() / a.abs().mean())
    with pytest.raises(NothingToComputeError):
        gex_signal.relative_noise(a.iloc[:2])
    with pytest.raises(NothingToComputeError):
        gex_signal.sign_agreement(a.iloc[:2], b.iloc[:2])


def test_measures_table_and_choice_on_synthetic_series():
    from research_lib.pipeline import gex_validation as gv

    idx = pd.bdate_range("2026-01-05", periods=40)
    rng = np.random.default_rng(0)
    published = pd.Series(np.sin(np.arange(40) / 5) + 0.3, index=idx)
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 45))), index=pd.bdate_range("2026-01-05", periods=45))
    good = published * 5 + rng.normal(0, 0.05, 40)
    noisy = published * 5 + rng.normal(0, 3, 40)
    frame = pd.DataFrame({"spot": 1.0, "headline": noisy, "regime": good}, index=idx)
    table = gv.measures_table({"2026": frame}, published, close)
    assert list(table["variant"]) == ["published", "headline", "regime"]
    row = table.set_index("variant").loc["regime"]
    assert row["correlation"] > 0.99 and row["goal_correlation"] and row["goal_sign"]
    assert table.set_index("variant").loc["headline", "goals_met"] < row["goals_met"]
    specs = {"headline": HEADLINE, "regime": regime_gex.DEFAULT}
    assert gv.choose(table, specs) == "regime"


# --------------------------------------------------------------------------------------------------
# real archives


def test_the_rule_picks_the_default_on_the_real_archives(gex_validation_real):
    validation = gex_validation_real
    assert validation.chosen == regime_gex.DEFAULT.name
    t = validation.table.set_index(["archive", "variant"])
    # the figures of the headline series (correlation 0.737 / 0.856, sign 34 of 46 / 45 of 56)
    assert t.loc[("2026", "headline"), "correlation"] == pytest.approx(0.74, abs=0.01)
    assert t.loc[("2019", "headline"), "correlation"] == pytest.approx(0.855, abs=0.01)
    assert t.loc[("2019", "headline"), "sign_agreement"] == pytest.approx(45 / 56, abs=0.02)
    # the regime series is less noisy than the headline and agrees in sign more often, on both archives
    for label in ("2019", "2026"):
        assert t.loc[(label, "regime"), "noise"] < t.loc[(label, "headline"), "noise"]
        assert t.loc[(label, "regime"), "sign_agreement"] >= 0.85
    assert len(validation.table) == 2 * (len(regime_gex.VARIANTS) + 1)


def test_the_published_column_is_the_raw_file(gex_validation_real):
    validation = gex_validation_real
    raw = pd.read_csv(CHAINS.parent / "market" / "squeezemetrics_dix_gex_2011-05-02_2026-08-21.csv")
    raw["date"] = pd.to_datetime(raw["date"])
    frame = validation.series["2026"]
    day = frame.index[10]
    assert frame.loc[day, "published"] == pytest.approx(float(raw.loc[raw["date"] == day, "gex"].iloc[0]))
    # the realised vol is the raw SPX closes' (the day after `day`)
    spx = pd.read_csv(next((CHAINS.parent / "market").glob("spx_daily_*.csv")), parse_dates=["date"]).set_index("date")
    nxt = spx.index[spx.index > day][0]
    expected = 100 * math.sqrt(252) * abs(math.log(spx.loc[nxt, "close"] / spx.loc[day, "close"]))
    assert gex_signal.forward_realised_vol(validation.close, 1).loc[day] == pytest.approx(expected, rel=1e-9)
