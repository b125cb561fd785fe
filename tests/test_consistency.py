"""One chain, one answer (issue 9, item 1): every path that computes GEX levels of a chain — the CLI
``research-lib gex``, :func:`research_lib.gex.analyze` with :func:`research_lib.market.snapshot_config`,
:func:`research_lib.decide.decide`, the daily report's record, the explorer and the net GEX history cache —
prices it with the same rate and dividend yield (:func:`research_lib.market.snapshot_rates`) and gives
identical levels. The synthetic tests write their own market history, so they need no ``../shared``; the
real-chain tests repeat the check on the two chains the issue names.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json

import numpy as np
import pandas as pd
import pytest
from conftest import EOD_ARCHIVE, QUOTEDATA, shared_file

from research_lib import calendar as cal
from research_lib.cli import main
from research_lib.core import gex, regime_gex
from research_lib.core.gex import GexConfigError
from research_lib.data import market
from research_lib.data.store import ChainStore
from research_lib.pipeline import history
from research_lib.pipeline.daily import build_daily, json_safe
from research_lib.pipeline.decide import decide, model_rates
from research_lib.ui.explore import GexExplorer

#: Levels that must agree between paths, and the pricing inputs that must too.
KEYS = ("net_gex", "call_gex", "put_gex", "zero_gamma", "call_wall", "put_wall", "cumulative_flip",
        "net_vanna", "net_charm", "rate", "div_yield")
#: What the history cache keeps of them.
HISTORY_KEYS = ("net_gex", "call_gex", "put_gex", "zero_gamma", "rate", "div_yield")

#: The synthetic market: a flat 4.80% T-bill discount yield and an S&P 500 whose total-return index
#: outgrows its price index by 1.5%/yr (the implied dividend yield).
IRX_PCT = 4.80
DIV_YIELD = 0.015
DAY = "2024-03-13"  # a Wednesday session


def run(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def write_market(folder) -> None:
    """Tiny market-history files in the layouts :mod:`research_lib.market` reads."""
    folder.mkdir(parents=True, exist_ok=True)
    days = pd.bdate_range("2018-01-02", "2024-12-31")
    years = (days - days[0]).days / 365.0
    close = 2700.0 * np.exp(0.08 * years)
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "open": close, "high": close * 1.002, "low": close * 0.998,
                  "close": close, "spxtr_close": close * np.exp(DIV_YIELD * years), "source": "synthetic"}
                 ).to_csv(folder / "spx_daily_2018-01-02_2024-12-31.csv", index=False)
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "irx_13w_tbill_yield_pct": IRX_PCT}
                 ).to_csv(folder / "irx_13week_tbill_2018-01-02_2024-12-31.csv", index=False)


@pytest.fixture
def synthetic(tmp_path, monkeypatch):
    """A store holding one market-like SPX chain of :data:`DAY` and the synthetic market history, found by
    every default path (``$RESEARCH_LIB_MARKET_DATA``, ``$RESEARCH_LIB_DATA``), offline."""
    from research_lib.data.modelled import modelled_chain

    write_market(tmp_path / "market")
    monkeypatch.setenv("RESEARCH_LIB_MARKET_DATA", str(tmp_path / "market"))
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "store"))
    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    monkeypatch.setenv("RESEARCH_LIB_REPORTS", str(tmp_path / "reports"))
    # the modelled generator shapes a chain like a real one; flagged as market data here so that the
    # history (which leaves modelled chains out) prices it too
    snap = modelled_chain("SPX", date=DAY, spot=5150.0)
    snap = dataclasses.replace(snap, modelled=False, source="synthetic:spx", notes=())
    store = ChainStore(tmp_path / "store")
    store.put(snap)
    return store


def assert_same(got: dict, want: dict, keys=KEYS, where: str = "") -> None:
    for k in keys:
        if want[k] is None or (isinstance(want[k], float) and np.isnan(want[k])):
            assert got[k] is None or np.isnan(got[k]), f"{where}: {k}"
        else:
            assert got[k] == pytest.approx(want[k], rel=1e-12), f"{where}: {k} {got[k]} != {want[k]}"


def every_path(symbol: str, source: str, date: str | None, store: ChainStore, convention: str = "model") -> dict:
    """The levels of one chain from every path, as dicts."""
    args = ["--source", source, "--symbol", symbol] if source == "store" else [source]
    code, out, _ = run("gex", *args, *(["--date", date] if date else []), "--json", "--convention", convention)
    assert code == 0
    cli = json.loads(out)
    report = decide(symbol, source, date=date, record=False, store=store)
    snap = report.served.snapshot
    direct = gex.analyze(snap, market.snapshot_config(snap, convention)).levels.to_dict()
    daily = build_daily(symbol, date=date or "latest", source=source, convention=convention,
                        record_decision=False, history_days=0, store=store).to_dict()
    explorer = GexExplorer(symbol, source, date=date, convention=convention, store=store)
    regime = {"cli": cli["regime_gex"], "decide": report.regime_gex.value,
              "report": daily["decision"]["regime_gex"]["value"],
              "direct": regime_gex.of(snap, market.snapshot_config(snap, "model")).value}
    return {"snapshot": snap, "cli": cli, "analyze": direct, "decide": report.analysis.levels.to_dict(),
            "report": daily["levels"], "report_model": daily["model_levels"],
            "report_decision": daily["decision"]["levels"], "explorer": explorer.levels_dict(),
            "explorer_object": explorer, "cli_rates": cli["rates"], "regime_gex": regime}


# --------------------------------------------------------------------------------------------------
# the one default


def test_snapshot_rates_from_the_market_history(tmp_path):
    write_market(tmp_path / "m")
    snap = type("S", (), {"snapshot_date": dt.date(2024, 3, 13), "underlying": "SPX"})()
    r = market.snapshot_rates(snap, market_dir=tmp_path / "m")
    assert r.rate == pytest.approx(market.tbill_discount_to_continuous(IRX_PCT / 100), rel=1e-12)
    assert r.div_yield == pytest.approx(DIV_YIELD, rel=1e-9)
    assert r.notes == () and "13-week T-bill" in r.rate_source and "S&P 500" in r.div_yield_source
    assert f"{r.rate:.3%}" in r.describe() and f"{r.div_yield:.3%}" in r.describe()
    # decide's lookup is this one
    assert model_rates(snap, market_dir=tmp_path / "m") == (r.rate, r.div_yield, r.notes)
    cfg = market.snapshot_config(snap, market_dir=tmp_path / "m", max_dte=30)
    assert (cfg.rate, cfg.div_yield, cfg.expiries.max_dte) == (r.rate, r.div_yield, 30)
    assert json.loads(json.dumps(r.to_dict()))["date"] == "2024-03-13"


def test_snapshot_rates_conventions_overrides_and_fallbacks(tmp_path):
    write_market(tmp_path / "m")
    spx = type("S", (), {"snapshot_date": dt.date(2024, 3, 13), "underlying": "SPX"})()
    ndx = type("S", (), {"snapshot_date": dt.date(2024, 3, 13), "underlying": "NDX"})()
    # perfiliev prices with r = q = 0 by definition (not a fallback: no note)
    p = market.snapshot_rates(spx, "perfiliev", market_dir=tmp_path / "m")
    assert (p.rate, p.div_yield, p.notes) == (0.0, 0.0, ())
    assert market.snapshot_config(spx, "perfiliev", market_dir=tmp_path / "m") == gex.config_from("perfiliev")
    # explicit numbers override, for any convention
    g = market.snapshot_rates(spx, "model", rate=0.01, market_dir=tmp_path / "m")
    assert (g.rate, g.rate_source) == (0.01, "given") and g.div_yield == pytest.approx(DIV_YIELD, rel=1e-9)
    assert market.snapshot_rates(spx, "perfiliev", div_yield=0.02).div_yield == 0.02
    with pytest.raises(GexConfigError, match="rate"):
        market.snapshot_rates(spx, rate=5.0)
    with pytest.raises(GexConfigError, match="div_yield"):
        market.snapshot_rates(spx, div_yield=float("nan"))
    # another underlying: the T-bill rate, no yield, and a note saying so
    n = market.snapshot_rates(ndx, market_dir=tmp_path / "m")
    assert n.rate > 0.04 and n.div_yield == 0.0 and "NDX" in n.notes[0]
    # no history at all: 0 and 0, with a note each, never an exception
    (tmp_path / "empty").mkdir()
    e = market.snapshot_rates(spx, market_dir=tmp_path / "empty")
    assert (e.rate, e.div_yield) == (0.0, 0.0) and len(e.notes) == 2
    assert e.notes[0].startswith("rate 0") and e.notes[1].startswith("dividend yield 0")


def test_the_cli_prints_the_rates_and_the_fallback_note(synthetic, monkeypatch, tmp_path):
    code, out, _ = run("gex", "--source", "store", "--date", DAY)
    rates = market.snapshot_rates(synthetic.get("SPX", date=DAY))
    assert code == 0 and f"rate {rates.rate:.3%}, dividend yield {rates.div_yield:.3%}" in out
    assert "13-week T-bill" in out
    # without any market history: the levels are priced with 0 and the text says so
    monkeypatch.setenv("RESEARCH_LIB_MARKET_DATA", str(tmp_path / "nothing"))
    monkeypatch.setattr(market.files, "REPO_ROOT", tmp_path / "no" / "repo")
    code, out, _ = run("gex", "--source", "store", "--date", DAY)
    assert code == 0 and "rate 0.000%, dividend yield 0.000%" in out
    assert "note: rate 0: no risk-free rate for 2024-03-13" in out


# --------------------------------------------------------------------------------------------------
# every path, one chain


def test_every_path_gives_the_same_levels_synthetic(synthetic):
    paths = every_path("SPX", "store", DAY, synthetic)
    cli = paths["cli"]
    assert cli["rate"] == pytest.approx(market.tbill_discount_to_continuous(IRX_PCT / 100), rel=1e-12)
    assert cli["div_yield"] == pytest.approx(DIV_YIELD, rel=1e-9)
    for name in ("analyze", "decide", "report", "report_model", "report_decision", "explorer"):
        assert_same(paths[name], cli, where=name)
    assert paths["cli_rates"]["notes"] == []
    # the regime's series is one number on every path too (and not the headline)
    rg = paths["regime_gex"]
    for name in ("decide", "report", "direct"):
        assert rg[name] == pytest.approx(rg["cli"], rel=1e-12), name
    assert rg["cli"] != pytest.approx(cli["net_gex"], rel=1e-3)
    hist = history.net_gex_history("SPX", store=synthetic)
    assert hist.loc[pd.Timestamp(DAY), "regime_gex"] == pytest.approx(rg["cli"], rel=1e-12)
    assert_same(hist.loc[pd.Timestamp(DAY)].to_dict(), cli, keys=HISTORY_KEYS, where="history")
    again = history.net_gex_history("SPX", store=synthetic)  # from the cache: still the same
    assert again.attrs["from_cache"] == 1
    assert_same(again.loc[pd.Timestamp(DAY)].to_dict(), cli, keys=HISTORY_KEYS, where="history cache")
    # the explorer says which rates it used
    explorer = paths["explorer_object"]
    assert f"{cli['rate']:.3%}" in explorer.status.value
    assert f"{cli['rate']:.3%}" in explorer.levels_table().loc["rate", "value"]


def test_perfiliev_report_shows_both_sets_and_says_so(synthetic):
    paths = every_path("SPX", "store", DAY, synthetic, convention="perfiliev")
    cli = paths["cli"]
    assert (cli["convention"], cli["rate"], cli["div_yield"]) == ("perfiliev", 0.0, 0.0)
    for name in ("analyze", "report", "explorer"):
        assert_same(paths[name], cli, where=name)
    # the decision keeps the model levels: the same as the model CLI gives
    code, out, _ = run("gex", "--source", "store", "--date", DAY, "--json")
    model = json.loads(out)
    for name in ("decide", "report_model", "report_decision"):
        assert_same(paths[name], model, where=name)
    daily = build_daily("SPX", date=DAY, source="store", convention="perfiliev", record_decision=False,
                        history_days=0, store=synthetic)
    table = daily.levels_table()
    assert list(table.columns) == ["perfiliev", "model (regime, decision)", "unit"]
    assert table.loc["rate", "perfiliev"] == "0.000%" and table.loc["rate", "model (regime, decision)"] \
        == f"{model['rate']:.3%}"
    sentence = daily.convention_markdown()
    assert "**perfiliev**" in sentence and "regime, the decision and the alerts" in sentence and "**model**" in sentence
    for section in (daily.regime_markdown(), daily.decision_markdown(), daily.alerts_markdown()):
        assert section.startswith("*From the model convention's levels")
    assert "perfiliev (key levels, charts)" in daily.banner_html()
    one = build_daily("SPX", date=DAY, source="store", record_decision=False, history_days=0, store=synthetic)
    assert list(one.levels_table().columns) == ["value", "unit"] and "Every section" in one.convention_markdown()
    assert not one.regime_markdown().startswith("*From")


def test_records_are_strict_json(synthetic):
    daily = build_daily("SPX", date=DAY, source="store", record_decision=False, history_days=0, store=synthetic)
    json.dumps(daily.to_dict(), allow_nan=False)  # raises on NaN / inf
    report = decide("SPX", "store", date=DAY, record=False, store=synthetic)
    json.dumps(json_safe(report.to_dict()), allow_nan=False, default=str)
    assert json_safe({"a": [1.0, float("nan")], "b": (float("inf"), np.float64("nan")), "c": "x"}) == {
        "a": [1.0, None], "b": [None, None], "c": "x"}


# --------------------------------------------------------------------------------------------------
# trading dates


def test_trading_date_of_quote_times():
    def ny(text):
        return pd.Timestamp(text).tz_localize("America/New_York")

    assert cal.trading_date(ny("2024-01-07 10:52")) == dt.date(2024, 1, 5)   # Sunday → Friday
    assert cal.trading_date(ny("2026-06-19 17:36")) == dt.date(2026, 6, 18)  # Juneteenth → Thursday
    assert cal.trading_date(ny("2026-06-23 08:50")) == dt.date(2026, 6, 22)  # before the open → previous
    assert cal.trading_date(ny("2023-09-14 16:31")) == dt.date(2023, 9, 14)  # after the close → same day
    assert cal.trading_date(ny("2022-07-12 11:55")) == dt.date(2022, 7, 12)  # in the session
    assert cal.trading_date(pd.Timestamp("2024-01-07 15:52", tz="UTC")) == dt.date(2024, 1, 5)


# --------------------------------------------------------------------------------------------------
# the chains of the issue


@pytest.mark.shared_data
@pytest.mark.parametrize(("source", "date"), [(QUOTEDATA / "spx_2023-09-14.csv", None),
                                              (EOD_ARCHIVE, "2026-08-21")])
def test_every_path_gives_the_same_levels_real(source, date, tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "store"))
    monkeypatch.setenv("RESEARCH_LIB_REPORTS", str(tmp_path / "reports"))
    path = str(shared_file(source))
    store = ChainStore(tmp_path / "store")
    paths = every_path("SPX", path, date, store)
    cli = paths["cli"]
    # issue 9: gex said +16.08B (r = q = 0), the report +24.09B; on 2026-08-21 the explorer said -2.84B
    # with zero gamma above spot and the report +6.02B with zero gamma below
    assert cli["rate"] > 0.03 and cli["div_yield"] > 0.01
    assert cli["net_gex"] > 0 and cli["zero_gamma"] < cli["spot"]
    for name in ("analyze", "decide", "report", "report_decision", "explorer"):
        assert_same(paths[name], cli, where=name)
    store.put(paths["snapshot"])
    hist = history.net_gex_history("SPX", store=store)
    assert_same(hist.loc[pd.Timestamp(cli["date"])].to_dict(), cli, keys=HISTORY_KEYS, where="history")
