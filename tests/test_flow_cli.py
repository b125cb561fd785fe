"""``research-lib flow``: synthetic tick folders and bar files (fresh clone), strict JSON, exit codes, and
the real 2013 SPY ticks / 2025 SPY bars (skipped without ../shared). Every figure is checked against the
files' contents computed here independently (the fixture's truth, plain pandas on the written bars)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, shared_file
from intraday_fixtures import (
    EARLY_CLOSE_DAY,
    NORMAL_DAY,
    bars,
    tick_day,
    write_bars,
    write_tick_files,
    write_tick_folder,
)
from test_cli import run, strict_loads

from research_lib.cli import EXIT_BAD_INPUT, EXIT_NO_RESULT, EXIT_OK, EXIT_USAGE
from research_lib.errors import OrderFlowInputError
from research_lib.pipeline.flow import file_flow

TICKS = SHARED_DATA / "market" / "ticks" / "spy_2013-10-07_2013-10-11"
SPY_1MIN = SHARED_DATA / "market" / "intraday" / "spy_1min_2025-09-15_2026-03-19.csv.gz"
REQUIRED = {"date", "trades", "buy_volume", "sell_volume", "delta", "cvd_close"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow_cli")
    return root, write_tick_folder(root)


def _rth_clean(td):
    t = td.trades
    return t[(t["ms"] >= td.open_ms) & (t["ms"] < td.close_ms) & (t["suspicious"] == 0)]


def test_flow_json_per_session_on_a_tick_folder(folder):
    root, truth = folder
    code, out, err = run("flow", root, "--json")
    assert code == EXIT_OK and err == ""
    records = [strict_loads(line) for line in out.splitlines()]
    assert [r["date"] for r in records] == [NORMAL_DAY.isoformat(), EARLY_CLOSE_DAY.isoformat()]
    for r in records:
        assert REQUIRED <= set(r) and r["rule"] == "tick"
        td = truth[pd.Timestamp(r["date"]).date()]
        clean = _rth_clean(td)
        assert r["trades"] == len(clean) and r["volume"] == clean["size"].sum()
        assert r["suspicious_dropped"] == 2
        assert r["buy_volume"] + r["sell_volume"] + r["unsigned_volume"] == r["volume"]
        assert r["delta"] == r["cvd_close"] == r["buy_volume"] - r["sell_volume"]
    assert records[1]["bars"] <= 210  # the early close: 09:30-13:00


def test_flow_lee_ready_with_quotes_against_the_truth(folder):
    root, truth = folder
    code, out, _ = run("flow", root, "--quotes", root, "--date", EARLY_CLOSE_DAY, "--json")
    assert code == EXIT_OK
    (r,) = [strict_loads(line) for line in out.splitlines()]
    clean = _rth_clean(truth[EARLY_CLOSE_DAY])
    buys = clean.loc[clean["side"] > 0, "size"].sum()
    mids = clean.loc[clean["side"] == 0, "size"].sum()
    assert r["rule"] == "lee_ready"
    assert buys <= r["buy_volume"] <= buys + mids  # at the bid / ask exact; the mid trades by the tick rule
    sells = clean.loc[clean["side"] < 0, "size"].sum()
    assert sells <= r["sell_volume"] <= sells + mids


def test_flow_text_table(folder):
    root, _ = folder
    code, out, _ = run("flow", root / "tick" / f"{NORMAL_DAY:%Y%m%d}_trade.zip")
    assert code == EXIT_OK
    lines = out.splitlines()
    assert "rule tick" in lines[0] and "2 suspicious trades dropped" in lines[0]
    assert lines[1].split()[:4] == ["date", "trades", "bars", "volume"] and len(lines) == 3


def test_flow_on_a_bar_file(tmp_path):
    frame = bars()
    path = write_bars(tmp_path / "spy_1min.csv.gz", frame)
    code, out, _ = run("flow", path, "--rule", "bar", "--json")
    assert code == EXIT_OK
    records = [strict_loads(line) for line in out.splitlines()]
    t = pd.DatetimeIndex(frame["datetime"])
    for r, (day, close) in zip(records, ((NORMAL_DAY, "16:00"), (EARLY_CLOSE_DAY, "13:00")), strict=True):
        rth = frame[(t.date == day) & (t.strftime("%H:%M") >= "09:30") & (t.strftime("%H:%M") < close)]
        up = rth.loc[rth["close"] > rth["open"], "volume"].sum()
        flat = rth.loc[rth["close"] == rth["open"], "volume"].sum()
        assert r["date"] == day.isoformat() and r["bars"] == len(rth) and r["trades"] is None
        assert r["buy_volume"] == pytest.approx(up + 0.5 * flat)
        assert r["volume"] == rth["volume"].sum()
    code, out, _ = run("flow", path)
    assert code == EXIT_OK and "rule bvc" in out.splitlines()[0]


@pytest.mark.parametrize("extra,code,message", [
    (("--rule", "quote"), EXIT_USAGE, "needs quotes"),
    (("--rule", "bvc"), EXIT_USAGE, "is for bar files"),
    (("--date", "2025-11-27"), EXIT_USAGE, "no trade file for 2025-11-27"),
    (("--bar", "7min"), EXIT_USAGE, "dividing one hour"),
    (("--date", "2025-13-01"), EXIT_USAGE, "does not exist"),
])
def test_flow_usage_errors(folder, extra, code, message):
    root, _ = folder
    got, out, err = run("flow", root, *extra)
    assert got == code and out == "" and message in err


def test_flow_bad_and_empty_files(tmp_path):
    bad = tmp_path / "bars.csv"
    bad.write_text("datetime,open,high,low,close,volume\n2025-11-26 09:30:00,10,9,11,10,5\n")
    code, _, err = run("flow", bad)
    assert code == EXIT_BAD_INPUT and "IntradayFileError" in err and "line 2" in err and str(bad) in err
    code, _, err = run("flow", tmp_path / "missing.csv")
    assert code == EXIT_BAD_INPUT and "no such file" in err
    night = write_bars(tmp_path / "night.csv", bars(days=(NORMAL_DAY,), start="17:00", end="18:00"))
    code, _, err = run("flow", night)
    assert code == EXIT_NO_RESULT and "no regular-hours bars" in err
    code, _, err = run("flow", night, "--quotes", night)
    assert code == EXIT_USAGE and "quotes are for tick trade input" in err


def test_flow_holiday_tick_file_has_no_session(tmp_path):
    files = write_tick_files(tmp_path, tick_day(dt.date(2025, 11, 27)))  # Thanksgiving: no session
    code, out, err = run("flow", files["trades"], "--json")
    assert code == EXIT_NO_RESULT and out == "" and "no regular-hours trades" in err


def test_file_flow_bad_date(folder):
    with pytest.raises(OrderFlowInputError, match="date must be"):
        file_flow(folder[0], date="someday")


def test_flow_real_ticks_and_bars():
    code, out, _ = run("flow", shared_file(TICKS), "--quotes", TICKS, "--json")
    assert code == EXIT_OK
    records = [strict_loads(line) for line in out.splitlines()]
    assert [r["date"] for r in records] == [f"2013-10-{d:02d}" for d in range(7, 12)]
    for r in records:
        assert 81e6 <= r["volume"] <= 159e6 and r["bars"] == 390 and r["suspicious_dropped"] == 0
        assert 0.4 < r["buy_share"] < 0.6 and r["unsigned_trades"] <= 10
    code, out, _ = run("flow", shared_file(SPY_1MIN), "--date", "2025-12-24", "--rule", "clv", "--json")
    (r,) = [strict_loads(line) for line in out.splitlines()]
    assert code == EXIT_OK and r["bars"] == 210 and np.isfinite(r["delta"])
