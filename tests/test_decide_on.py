"""decide_on: the whole decision from in-memory inputs — no look-ahead, no I/O, and decide() is its wrapper."""

from __future__ import annotations

import builtins
import dataclasses
import io
import os
import socket
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from research_lib import calendar as cal
from research_lib.core.alerts import AlertParams
from research_lib.core.market_view import MarketHistory, MarketView
from research_lib.core.regime import Regime
from research_lib.data import market
from research_lib.data.modelled import modelled_chain
from research_lib.data.store import ChainStore
from research_lib.pipeline.decide import DecisionInputError, decide, decide_on
from research_lib.records.decisions import DecisionLog

DAY = "2024-01-05"
STAMP = pd.Timestamp("2024-01-05 15:30", tz="America/New_York")
MARKET_DIR = SHARED_DATA / "market"


def _synthetic_history(end: str = "2029-12-31") -> MarketHistory:
    """Every kind a decision reads, on NYSE sessions 2019-01-02..``end``: a trending index with a total
    return index, a VIX family, three rate sources and a published GEX, each with a tell-tale path."""
    days = cal.sessions("2019-01-02", end)
    n = len(days)
    rng = np.random.default_rng(7)
    close = 2500.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, n)))
    tr = close * np.exp(0.016 * np.arange(n) / 252.0)
    vix = np.clip(18 + np.cumsum(rng.normal(0, 0.6, n)) * 0.2, 10, 60)
    frames = {"spx": pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                                   "total_return_close": tr}, index=days.rename("date")),
              "spy": pd.DataFrame({"open": close / 10, "high": close / 10, "low": close / 10, "close": close / 10,
                                   "volume": 1e6}, index=days.rename("date")),
              "gex": pd.DataFrame({"dix": 0.45, "gex": 3e9}, index=days.rename("date"))}
    for k, level in (("vix", 1.0), ("vix9d", 0.95), ("vix3m", 1.08)):
        v = vix * level
        frames[k] = pd.DataFrame({"open": v, "high": v, "low": v, "close": v}, index=days.rename("date"))
    frames["vvix"] = pd.DataFrame({"close": 90.0}, index=days.rename("date"))
    frames["skew"] = pd.DataFrame({"close": 130.0}, index=days.rename("date"))
    for k, level in (("irx", 5.2), ("dgs3mo", 5.3), ("dff", 5.33)):
        frames[k] = pd.DataFrame({"value": level + 0.001 * np.arange(n)}, index=days.rename("date"))
    return MarketHistory(frames={k: (f, Path(f"synthetic/{k}.csv")) for k, f in frames.items()})


def _future_changed(history: MarketHistory, after: str) -> MarketHistory:
    """The same history with every row after ``after`` replaced by wild values (and years more of them)."""
    cut = pd.Timestamp(after)
    frames = {}
    for kind, (frame, path) in history.frames.items():
        f = frame.copy()
        later = f.index > cut
        num = f.select_dtypes("number").columns
        f.loc[later, num] = f.loc[later, num] * 3.0 + 1.0
        frames[kind] = (f, path)
    return MarketHistory(frames=frames, errors=history.errors, net_gex=history.net_gex)


def _cut_history(history: MarketHistory, day) -> MarketHistory:
    view = MarketView.as_of(history, day)
    return MarketHistory(frames=view.frames, errors=view.errors, net_gex=view.net_gex)


def _decision(snap, view, **kw):
    return decide_on(snap, view, timestamp=STAMP, **kw).to_dict()


@pytest.fixture(scope="module")
def snap():
    return modelled_chain("SPX", spot=4700.0, date=DAY, quote_time="2024-01-05 15:00", vix=13.0)


def _histories():
    out = [pytest.param(_synthetic_history, id="synthetic")]
    out.append(pytest.param(lambda: market.load_market_history(MARKET_DIR), id="real-market-files",
                            marks=pytest.mark.skipif(not (MARKET_DIR / "cboe_VIX_History.csv").exists(),
                                                     reason=f"real market files not found at {MARKET_DIR}")))
    return out


@pytest.mark.parametrize("load", _histories())
def test_no_look_ahead_the_day_is_the_same_whatever_follows_it(snap, load):
    full = load()
    assert max(f.index.max() for f, _ in full.frames.values()) > pd.Timestamp(DAY) + pd.Timedelta(days=300)
    ending_that_day = _decision(snap, MarketView.as_of(_cut_history(full, DAY), DAY))
    years_beyond = _decision(snap, MarketView.as_of(full, DAY))
    future_rewritten = _decision(snap, MarketView.as_of(_future_changed(full, DAY), DAY))
    assert ending_that_day == years_beyond == future_rewritten
    # and the view's rows stop at the day, for every kind
    view = MarketView.as_of(full, DAY)
    assert all(f.index.max() <= pd.Timestamp(DAY) for f, _ in view.frames.values())
    # the history did reach the decision: a rewritten past changes it
    past_changed = _decision(snap, MarketView.as_of(_future_changed(full, "2023-06-30"), DAY))
    assert past_changed != ending_that_day


def test_decide_on_does_no_io(snap, monkeypatch):
    view = MarketView.as_of(_synthetic_history(), DAY)
    expected = _decision(snap, view)  # warms the process-wide exchange calendar (reference data, read once)

    def refuse(*a, **k):
        raise AssertionError(f"decide_on did I/O: {a[:1]}")

    for target, name in ((builtins, "open"), (io, "open"), (os, "open"), (os, "stat"), (os, "scandir"),
                         (os, "listdir"), (socket, "socket"), (socket, "create_connection"), (sqlite3, "connect")):
        monkeypatch.setattr(target, name, refuse)
    assert _decision(snap, view) == expected


def test_decide_is_decide_on_plus_the_log(snap, tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_LIB_OFFLINE", "1")
    hist = _synthetic_history()
    monkeypatch.setattr(market.loaders, "load_market_history", lambda market_dir=None, **k: hist)
    store = ChainStore(tmp_path / "store")
    store.put(snap)
    log = DecisionLog(tmp_path / "decisions.sqlite")
    first = decide("SPX", "store", date=DAY, store=store, log=log)
    on = decide_on(snap, MarketView.as_of(hist, DAY), timestamp=first.decision.timestamp).to_dict()
    got = first.to_dict()
    for key in ("served_by", "provenance", "stale", "decision"):
        got.pop(key), on.pop(key)
    assert got == on
    assert log.last_for("SPX", before="2024-01-08").decision_id == first.decision.decision_id


def test_decide_on_refuses_a_view_of_another_day_and_a_later_previous_decision(snap):
    hist = _synthetic_history()
    with pytest.raises(DecisionInputError, match="as of 2024-01-08"):
        decide_on(snap, MarketView.as_of(hist, "2024-01-08"))
    with pytest.raises(DecisionInputError, match="MarketView"):
        decide_on(snap, MARKET_DIR)
    same_day = decide_on(snap, MarketView.as_of(hist, DAY)).decision
    with pytest.raises(DecisionInputError, match="not before 2024-01-05"):
        decide_on(snap, MarketView.as_of(hist, DAY), previous=same_day)


def test_the_previous_decision_drives_the_regime_change_alert(snap):
    hist = _synthetic_history()
    params = AlertParams(regime_change_min_confidence=0)
    yesterday_snap = modelled_chain("SPX", spot=4690.0, date="2024-01-04", quote_time="2024-01-04 15:00", vix=13.0)
    yesterday = decide_on(yesterday_snap, MarketView.as_of(hist, "2024-01-04"), timestamp=STAMP).decision
    today = decide_on(snap, MarketView.as_of(hist, DAY), alert_params=params)
    other = next(r for r in Regime if r != today.regime.regime)
    for prev_regime, alerted in ((today.regime.regime, False), (other, True)):
        prev = dataclasses.replace(yesterday, context=dataclasses.replace(yesterday.context, regime=str(prev_regime)))
        got = decide_on(snap, MarketView.as_of(hist, DAY), previous=prev, alert_params=params)
        assert any(str(a.rule) == "regime_change" for a in got.alerts) is alerted
    assert not any(str(a.rule) == "regime_change" for a in today.alerts)
