"""Prediction markets: YES/NO edges by hand and against a Decimal reference, the time alignment of outcomes, the
top-of-book scan (synthetic folder in the real layout, and the real dataset when ../shared is there), the Parquet
store, and the CLOB WebSocket client against a loopback server (replayed and hand-made messages, faults)."""

from __future__ import annotations

import json
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings, strategies as st

from research_lib.cli import main
from research_lib.core.binary import (
    align_event_polls,
    edge_episodes,
    event_edges,
    floor_to_tick,
    market_edges,
    taker_fee,
)
from research_lib.data.binary_store import SCHEMA, BinaryStore
from research_lib.data.binary_topbook import read_events, scan_topbook
from research_lib.data.binary_watch import snapshot_edges, watch
from research_lib.data.sources.polymarket import ClobMarketFeed
from research_lib.errors import (
    BinaryFeedError,
    BinaryParamsError,
    BinaryQuoteError,
    BinaryStoreError,
    TopBookDatasetError,
)
from tests.binary_fixtures import (
    LoopbackServer,
    best_bid_ask_message,
    book_message,
    last_trade_message,
    price_change_message,
    tick_size_message,
    write_topbook,
)
from tests.conftest import SHARED_DATA

TOPBOOK = SHARED_DATA / "binary" / "polymarket_topbook_2026-07"
CAPTURED = SHARED_DATA / "api" / "polymarket"
needs_topbook = pytest.mark.skipif(not (TOPBOOK / "markets.parquet").is_file(),
                                   reason=f"the real top-of-book dataset is not at {TOPBOOK} (../shared/data)")


# ----------------------------------------------------------------------------------------------------
# one market: by hand
# ----------------------------------------------------------------------------------------------------
def test_no_derived_from_the_yes_book_and_said_so():
    r = market_edges(pd.DataFrame({"yes_bid": [0.45], "yes_ask": [0.47], "yes_bid_size": [10.0],
                                   "yes_ask_size": [7.0]})).iloc[0]
    assert r["no_derived"]
    assert r["no_ask"] == pytest.approx(0.55) and r["no_bid"] == pytest.approx(0.53)
    assert r["no_ask_size"] == 10.0 and r["no_bid_size"] == 7.0  # NO ask = the YES bid's size, and so on
    # derived NO: buy-both = bid - ask of YES, minus the spread, never positive
    assert r["buy_edge"] == pytest.approx(-0.02) and r["sell_edge"] == pytest.approx(-0.02)
    assert not r["buy_arb"] and not r["sell_arb"]
    assert r["yes_spread"] == pytest.approx(0.02) and r["no_spread"] == pytest.approx(0.02)


def test_both_books_buy_edge_and_shallower_size():
    r = market_edges(pd.DataFrame({"yes_bid": [0.38], "yes_ask": [0.40], "yes_bid_size": [50.0],
                                   "yes_ask_size": [12.0], "no_bid": [0.52], "no_ask": [0.55],
                                   "no_bid_size": [3.0], "no_ask_size": [30.0]})).iloc[0]
    assert not r["no_derived"]
    assert r["buy_edge"] == pytest.approx(0.05) and r["buy_arb"]
    assert r["buy_size"] == 12.0  # min(12 YES at 0.40, 30 NO at 0.55)
    assert r["sell_edge"] == pytest.approx(-0.10) and not r["sell_arb"] and r["sell_size"] == 3.0


def test_fees_then_the_floor_to_the_tick():
    q = pd.DataFrame({"yes_bid": [0.38], "yes_ask": [0.40], "no_bid": [0.52], "no_ask": [0.55]})
    r = market_edges(q, fee_rate=0.02).iloc[0]
    fee = 0.02 * 0.40 * 0.60 + 0.02 * 0.55 * 0.45  # 0.0048 + 0.00495
    assert r["buy_cost"] == pytest.approx(0.95 + fee)
    assert r["buy_edge"] == pytest.approx(0.04)  # 0.04025 floored to 0.01
    assert market_edges(q, fee_rate=0.02, tick=0.001).iloc[0]["buy_edge"] == pytest.approx(0.040)
    # a loss of a fraction of a tick is a whole tick (against us)
    r = market_edges(pd.DataFrame({"yes_bid": [0.5], "yes_ask": [0.5], "no_bid": [0.5], "no_ask": [0.5]}),
                     fee_rate=0.02).iloc[0]
    assert r["buy_edge"] == pytest.approx(-0.01) and r["sell_edge"] == pytest.approx(-0.01)


def test_binary_floating_point_does_not_cost_a_tick():
    r = market_edges(pd.DataFrame({"yes_bid": [0.0], "yes_ask": [0.01], "no_bid": [0.0], "no_ask": [0.05]})).iloc[0]
    assert (1 - (0.01 + 0.05)) / 0.01 < 94  # 93.99999999999999: a plain floor would say 0.93
    assert r["buy_edge"] == pytest.approx(0.94) and r["buy_arb"]
    assert floor_to_tick(-0.0049, 0.01) == pytest.approx(-0.01)


def test_per_row_tick_and_derived_no_rounded_against_us():
    q = pd.DataFrame({"yes_bid": [0.4567], "yes_ask": [0.4612], "tick": [0.001]})
    r = market_edges(q).iloc[0]
    assert r["no_ask"] == pytest.approx(0.544)  # 1 - 0.4567 = 0.5433 rounded up
    assert r["no_bid"] == pytest.approx(0.538)  # 1 - 0.4612 = 0.5388 rounded down


def test_missing_side_gives_nan_edge_and_no_flag():
    r = market_edges(pd.DataFrame({"yes_bid": [np.nan], "yes_ask": [0.3], "no_bid": [0.6], "no_ask": [np.nan]})).iloc[0]
    assert not r["no_derived"]  # a NO book with one side empty is not derived
    assert np.isnan(r["buy_edge"]) and not r["buy_arb"]
    assert np.isnan(r["sell_edge"])  # no YES bid


def test_crossed_book_flagged():
    r = market_edges(pd.DataFrame({"yes_bid": [0.6], "yes_ask": [0.5], "no_bid": [0.4], "no_ask": [0.45]})).iloc[0]
    assert r["crossed"]


@pytest.mark.parametrize("cols, column", [
    ({"yes_bid": [1.2], "yes_ask": [0.5]}, "yes_bid"),
    ({"yes_bid": [0.2], "yes_ask": [-0.1]}, "yes_ask"),
    ({"yes_bid": [0.2], "yes_ask": [0.3], "yes_ask_size": [-1.0]}, "yes_ask_size"),
    ({"yes_bid": [0.2]}, "yes_ask"),
    ({"yes_bid": ["x"], "yes_ask": [0.3]}, "yes_bid"),
])
def test_bad_quotes_named(cols, column):
    with pytest.raises(BinaryQuoteError) as e:
        market_edges(pd.DataFrame(cols))
    assert e.value.column == column and "market_edges" in str(e.value)


@pytest.mark.parametrize("kwargs", [{"fee_rate": -0.01}, {"tick": 0.0}, {"tick": 1.5}, {"fee_exponent": 0.0}])
def test_bad_costs_named(kwargs):
    with pytest.raises(BinaryParamsError):
        market_edges(pd.DataFrame({"yes_bid": [0.2], "yes_ask": [0.3]}), **kwargs)


def test_taker_fee_formula():
    np.testing.assert_allclose(taker_fee([0.0, 0.5, 0.2, np.nan], fee_rate=0.02), [0.0, 0.005, 0.0032, np.nan])
    np.testing.assert_allclose(taker_fee([0.5], fee_rate=0.02, fee_exponent=2), [0.02 * 0.0625])


# ----------------------------------------------------------------------------------------------------
# against a slow reference in Decimal
# ----------------------------------------------------------------------------------------------------
def _ref_market(yb, ya, nb, na, fee_rate, tick):
    d = Decimal
    one, t, f = d(1), d(str(tick)), d(str(fee_rate))

    def fee(p):
        return f * p * (one - p)

    def floor(x):
        return (x / t).to_integral_value(rounding=ROUND_FLOOR) * t

    if nb is None and na is None:
        na = None if yb is None else ((one - d(str(yb))) / t).to_integral_value(rounding=ROUND_CEILING) * t
        nb = None if ya is None else ((one - d(str(ya))) / t).to_integral_value(rounding=ROUND_FLOOR) * t
    else:
        na = None if na is None else d(str(na))
        nb = None if nb is None else d(str(nb))
    ya = None if ya is None else d(str(ya))
    yb = None if yb is None else d(str(yb))
    buy = None if ya is None or na is None else floor(one - (ya + fee(ya) + na + fee(na)))
    sell = None if yb is None or nb is None else floor(yb - fee(yb) + nb - fee(nb) - one)
    return buy, sell


_price = st.one_of(st.none(), st.integers(0, 100).map(lambda k: k / 100))


@settings(max_examples=300)
@given(st.lists(st.tuples(_price, _price, _price, _price), min_size=1, max_size=20),
       st.sampled_from([0.0, 0.01, 0.02]), st.sampled_from([0.01, 0.001]))
def test_market_edges_match_the_decimal_reference(rows, fee_rate, tick):
    frame = pd.DataFrame(rows, columns=["yes_bid", "yes_ask", "no_bid", "no_ask"], dtype=float)
    got = market_edges(frame, fee_rate=fee_rate, tick=tick)
    for i, (yb, ya, nb, na) in enumerate(rows):
        buy, sell = _ref_market(yb, ya, nb, na, fee_rate, tick)
        for ref, col in ((buy, "buy_edge"), (sell, "sell_edge")):
            value = got[col].iloc[i]
            if ref is None:
                assert np.isnan(value)
            else:
                # the float path may differ from exact arithmetic only when the exact edge sits within 1e-9
                # tick of a grid point: never here, the fees being multiples of 1e-6 at most
                assert value == pytest.approx(float(ref), abs=1e-12), (rows[i], col)
        if nb is None and na is None and yb is not None and ya is not None and yb <= ya:
            assert not got["buy_arb"].iloc[i]  # a derived NO never shows a buy-both edge on an uncrossed book


# ----------------------------------------------------------------------------------------------------
# multi-outcome events
# ----------------------------------------------------------------------------------------------------
def test_event_edges_by_hand():
    q = pd.DataFrame({"event": ["x", "x", "x", "y", "y"], "outcome": [1, 2, 3, 1, 2],
                      "yes_bid": [0.30, 0.30, 0.30, 0.50, 0.52], "yes_ask": [0.31, 0.32, 0.33, 0.51, 0.53],
                      "yes_bid_size": [4.0, 9.0, 1.0, 5.0, 6.0], "yes_ask_size": [5.0, 6.0, 7.0, 1.0, 2.0]})
    r = event_edges(q).set_index("event")
    assert r.loc["x", "sum_ask"] == pytest.approx(0.96) and r.loc["x", "buy_edge"] == pytest.approx(0.04)
    assert r.loc["x", "buy_arb"] and r.loc["x", "buy_size"] == 5.0
    assert r.loc["x", "sell_edge"] == pytest.approx(-0.10) and not r.loc["x", "sell_arb"]
    assert r.loc["y", "sell_edge"] == pytest.approx(0.02) and r.loc["y", "sell_arb"] and r.loc["y", "sell_size"] == 5.0
    # an outcome without a quote: incomplete, no edge
    r = event_edges(q, n_outcomes={"x": 3, "y": 3}).set_index("event")
    assert not r.loc["y", "complete"] and np.isnan(r.loc["y", "sell_edge"]) and not r.loc["y", "sell_arb"]
    assert r.loc["x", "complete"]
    # fees on every leg
    r = event_edges(q, fee_rate=0.02, tick=0.001).set_index("event")
    fee = sum(0.02 * p * (1 - p) for p in (0.31, 0.32, 0.33))
    assert r.loc["x", "buy_edge"] == pytest.approx(np.floor((0.04 - fee) * 1000 + 1e-9) / 1000)


def test_event_edges_errors_and_time_groups():
    q = pd.DataFrame({"event": ["x", "x"], "outcome": [1, 1], "yes_bid": [0.3, 0.3], "yes_ask": [0.4, 0.4]})
    with pytest.raises(BinaryQuoteError, match="twice"):
        event_edges(q)
    with pytest.raises(BinaryQuoteError, match="not in n_outcomes"):
        event_edges(q.assign(outcome=[1, 2]), n_outcomes={"z": 2})
    t = pd.DataFrame({"event": ["x"] * 4, "ts": [1, 1, 2, 2], "outcome": [1, 2, 1, 2],
                      "yes_bid": [0.5, 0.4, 0.6, 0.45], "yes_ask": [0.55, 0.43, 0.62, 0.47]})
    r = event_edges(t, by=["event", "ts"])
    assert list(r["ts"]) == [1, 2]
    np.testing.assert_allclose(r["sell_edge"], [-0.10, 0.05])
    assert list(r["sell_arb"]) == [False, True]


# ----------------------------------------------------------------------------------------------------
# aligning outcomes in time, episodes
# ----------------------------------------------------------------------------------------------------
S = 1_000_000_000


def _align(rows, polls, staleness, **kw):
    f = pd.DataFrame(rows, columns=["outcome", "t", "bid", "ask"]).sort_values(["outcome", "t"], kind="stable")
    return align_event_polls(f["outcome"].to_numpy(), f["t"].to_numpy() * S, f["bid"].to_numpy(),
                             f["ask"].to_numpy(), event_of=np.array([0, 0, 1, 1, 1]),
                             n_outcomes=np.array([2, 3]), poll_ts=np.asarray(polls) * S,
                             staleness_ns=staleness * S, **kw)


def test_alignment_by_hand():
    rows = [(0, 0, 0.40, 0.42), (0, 240, 0.40, 0.45),  # outcome 0 misses the poll at 120
            (1, 0, 0.55, 0.56), (1, 120, 0.55, 0.57), (1, 240, 0.53, 0.54), (1, 360, 0.5, np.nan)]
    cells, incomplete = _align(rows, [0, 120, 240, 360], 150)
    assert list(cells["poll"]) == [0, 1, 2, 3]
    np.testing.assert_allclose(cells["sum_ask"][:3], [0.98, 0.99, 0.99])
    assert np.isnan(cells["sum_ask"].iloc[3])  # outcome 1 has no ask at 360
    np.testing.assert_allclose(cells["buy_edge"][:3], [0.02, 0.01, 0.01])
    assert cells["buy_arb"][:3].all() and not cells["buy_arb"].iloc[3]
    assert incomplete.empty
    # a bound shorter than the gaps: outcome 0 is stale at 120 and at 360 (quoted at 0 and 240)
    cells, incomplete = _align(rows, [0, 120, 240, 360], 100)
    assert list(cells["poll"]) == [0, 2] and incomplete.to_dict() == {0: 2}


def test_alignment_never_looks_ahead():
    rng = np.random.default_rng(7)
    polls = np.arange(0, 20) * 120
    rows = [(o, int(t), float(b), float(b + 0.02)) for o in range(5) for t, b in
            zip(np.sort(rng.choice(polls, 12, replace=False)) + rng.integers(0, 60, 12), rng.uniform(0.1, 0.4, 12), strict=True)]
    full, _ = _align(rows, polls, 300)
    for cut in (500, 1300, 2000):  # the same answer at every poll before the cut from the rows before it
        part, _ = _align([r for r in rows if r[1] <= cut], polls[polls <= cut], 300)
        pd.testing.assert_frame_equal(part, full[full["poll"] < len(polls[polls <= cut])].reset_index(drop=True))


def test_alignment_errors():
    with pytest.raises(BinaryQuoteError, match="sorted"):
        align_event_polls(np.array([1, 0]), np.array([0, 0]), np.array([0.1, 0.1]), np.array([0.2, 0.2]),
                          event_of=np.array([0, 0]), n_outcomes=np.array([2]), poll_ts=np.array([0]), staleness_ns=0)
    with pytest.raises(BinaryParamsError):
        _align([(0, 0, 0.1, 0.2)], [0], -1)


def test_episodes():
    cells = pd.DataFrame({"event": [3, 3, 3, 3, 3, 4], "poll": [1, 2, 4, 5, 6, 6],
                          "buy_edge": [0.01, 0.03, 0.02, -0.01, 0.05, 0.01], "sell_edge": [-0.1] * 6})
    cells["buy_arb"] = cells["buy_edge"] > 0
    cells["sell_arb"] = False
    e = edge_episodes(cells, n_polls=7)
    assert e[["event", "start_poll", "end_poll", "n_polls", "max_edge", "max_poll", "open_at_end"]].values.tolist() == [
        [3, 1, 3, 2, 0.03, 2, False], [3, 4, 5, 1, 0.02, 4, False], [3, 6, 7, 1, 0.05, 6, True],
        [4, 6, 7, 1, 0.01, 6, True]]
    assert set(e["side"]) == {"buy"}
    assert edge_episodes(cells.assign(buy_arb=False), n_polls=7).empty


# ----------------------------------------------------------------------------------------------------
# the scan: a synthetic folder in the real layout
# ----------------------------------------------------------------------------------------------------
def _synthetic_topbook(tmp_path):
    """Two days of 2-minute polls; event E (3 outcomes, exclusive by its labels) with a buy-all edge on 4 polls
    across midnight; event F (2 outcomes, labelled with 2 winners) with a sell-all edge; a single market."""
    polls = pd.date_range("2026-07-12 23:50:00", periods=10, freq="120s")  # 23:50 .. 00:08
    rows = []
    for i, t in enumerate(polls):
        edge = 3 <= i <= 6  # 23:56 .. 00:02
        for slug, ask in (("e-a", 0.30), ("e-b", 0.33), ("e-c", 0.38 if not edge else 0.33)):
            rows.append((t, slug, "sports", ask - 0.01, ask))
        rows.append((t, "f-a", "politics", 0.55, 0.57))
        if i != 8:  # f-b misses a poll: carried (staleness 300 s)
            rows.append((t, "f-b", "politics", 0.50, 0.52))
        rows.append((t, "solo", "sports", 0.2, 0.3))
    quotes = pd.DataFrame(rows, columns=["ts", "slug", "category", "bid", "ask"])
    markets = pd.DataFrame({"slug": ["e-a", "e-b", "e-c", "f-a", "f-b", "solo", "g-a", "g-b"],
                            "question": ["E?"] * 3 + ["F?"] * 2 + ["Solo?"] + ["G?"] * 2,
                            "category": ["sports"] * 3 + ["politics"] * 2 + ["sports"] * 3})
    labels = pd.DataFrame({"slug": ["e-a", "e-b", "e-c", "f-a", "f-b"], "y": [0, 1, 0, 1, 1], "source": ["api"] * 5})
    return write_topbook(tmp_path / "tb", quotes, markets, labels), polls


def test_scan_synthetic(tmp_path):
    folder, polls = _synthetic_topbook(tmp_path)
    ev = read_events(folder)
    assert list(ev.events["question"]) == ["E?", "F?", "G?"] and list(ev.events["n_outcomes"]) == [3, 2, 2]
    assert ev.events["exclusive"].tolist() == [True, False, pd.NA]
    r = scan_topbook(folder, staleness_s=300)
    assert r.totals["rows"] == 10 * 5 + 9 and r.totals["polls"] == 10 and r.totals["events"] == 3
    d = r.daily.set_index(["date", "category"])
    import datetime as dt
    d12, d13 = dt.date(2026, 7, 12), dt.date(2026, 7, 13)
    assert d.loc[(d12, "sports"), "events_evaluated"] == 1 and d.loc[(d12, "sports"), "event_polls"] == 5
    assert d.loc[(d12, "sports"), "buy_positive_polls"] == 2 and d.loc[(d13, "sports"), "buy_positive_polls"] == 2
    # one buy-all episode across midnight: 23:56 to 00:04 (the first poll without the edge), 8 minutes
    assert d.loc[(d12, "sports"), "buy_episodes"] == 1 and d.loc[(d13, "sports"), "buy_episodes"] == 0
    assert d.loc[(d12, "sports"), "buy_max_minutes"] == pytest.approx(8.0)
    assert d.loc[(d12, "sports"), "buy_max_edge"] == pytest.approx(0.04)
    assert d.loc[(d12, "sports"), "events_exclusive"] == 1
    # F: 0.55 + 0.50 - 1 = 0.05 at every poll, the missed poll carried: one sell episode open at the end
    assert d.loc[(d12, "politics"), "sell_episodes"] == 1
    assert d.loc[(d13, "politics"), "incomplete_polls"] == 0
    big = r.largest
    assert list(big["side"]) == ["sell", "buy"]
    assert big.iloc[0]["question"] == "F?" and big.iloc[0]["open_at_end"] and not big.iloc[0]["exclusive"]
    assert big.iloc[1]["sum_ask"] == pytest.approx(0.96) and big.iloc[1]["exclusive"]
    assert r.totals["buy_episodes_exclusive"] == 1 and r.totals["sell_episodes_not_exclusive"] == 1
    # a shorter bound leaves F incomplete at the missed poll: two sell episodes, one incomplete pair
    r2 = scan_topbook(folder, staleness_s=60)
    assert r2.totals["sell_episodes"] == 2
    assert int(r2.daily["incomplete_polls"].sum()) == 1
    # only the events the labels show exclusive
    r3 = scan_topbook(folder, events="exclusive")
    assert r3.totals["sell_episodes"] == 0 and r3.totals["buy_episodes"] == 1
    # one-sided or crossed quotes: fresh, but no edge from them with two_sided
    day = sorted((folder / "quotes").glob("*.parquet"))[1]
    q = pd.read_parquet(day)
    q.loc[q["slug"] == "e-a", "bid"] = np.nan  # e-a one-sided on the 13th: E's buy edge there needs only asks
    q.loc[q["slug"] == "f-a", ["bid", "ask"]] = [0.6, 0.5]  # f-a crossed on the 13th
    q.to_parquet(day)
    loose, strict = scan_topbook(folder), scan_topbook(folder, two_sided=True)
    assert loose.totals["buy_episodes"] == 1 and loose.daily["buy_positive_polls"].sum() == 4
    assert strict.daily["buy_positive_polls"].sum() == 2 and strict.totals["sell_episodes"] == 1
    assert strict.daily["event_polls"].sum() == loose.daily["event_polls"].sum()  # still evaluated (no edge)
    assert strict.daily["sell_positive_polls"].sum() == 5 < loose.daily["sell_positive_polls"].sum()
    # fees large enough to eat the 0.04 edge (4 x 0.25 x 0.2 ... per leg)
    assert scan_topbook(folder, fee_rate=0.2).totals["buy_episodes"] == 0


def test_scan_cli_json_and_errors(tmp_path, capsys):
    import io
    folder, _ = _synthetic_topbook(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert main(["binary", "scan", str(folder), "--json"], out=out, err=err) == 0
    doc = json.loads(out.getvalue(), parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert set(doc) == {"rule", "params", "totals", "daily", "largest"}
    assert "no look-ahead" in doc["rule"] and doc["params"]["staleness_s"] == 300
    assert doc["largest"][0]["start"].endswith("+00:00")
    out = io.StringIO()
    assert main(["binary", "scan", str(folder)], out=out, err=err) == 0
    assert "largest episodes" in out.getvalue() and "alignment:" in out.getvalue()
    err = io.StringIO()
    assert main(["binary", "scan", str(tmp_path / "nowhere")], out=io.StringIO(), err=err) == 3
    assert "quotes/" in err.getvalue()
    assert main(["binary", "scan", str(folder), "--staleness", "-1"], out=io.StringIO(), err=io.StringIO()) == 2
    assert main(["binary", "scan", str(folder), "--tick", "2"], out=io.StringIO(), err=io.StringIO()) == 2


def test_scan_bad_files_named(tmp_path):
    folder, _ = _synthetic_topbook(tmp_path)
    (folder / "markets.parquet").unlink()
    with pytest.raises(TopBookDatasetError, match="markets.parquet"):
        scan_topbook(folder)
    folder, _ = _synthetic_topbook(tmp_path / "b")
    day = sorted((folder / "quotes").glob("*.parquet"))[0]
    pd.read_parquet(day).drop(columns="ask").to_parquet(day)
    with pytest.raises(TopBookDatasetError) as e:
        scan_topbook(folder)
    assert e.value.column == "ask" and day.name in str(e.value)
    folder, _ = _synthetic_topbook(tmp_path / "c")
    day = sorted((folder / "quotes").glob("*.parquet"))[0]
    pd.read_parquet(day).assign(bid=1.5).to_parquet(day)
    with pytest.raises(TopBookDatasetError, match=r"outside \[0, 1\]"):
        scan_topbook(folder)


# ----------------------------------------------------------------------------------------------------
# the scan on the real dataset
# ----------------------------------------------------------------------------------------------------
@pytest.mark.shared_data
@needs_topbook
def test_scan_real_dataset():
    r = scan_topbook(TOPBOOK)
    assert r.totals["files"] == 4 and r.totals["rows"] == 21_990_874 and r.totals["unknown_slug_rows"] == 0
    assert r.totals["events"] == 25_339  # questions with several slugs in markets.parquet
    d = r.daily
    assert set(d["date"].astype(str)) == {"2026-07-12", "2026-07-13", "2026-07-14", "2026-07-15"}
    assert (d["events_evaluated"] <= d["events_quoted"]).all()
    assert (d["buy_positive_polls"] <= d["event_polls"]).all() and (d["events_exclusive"] <= d["events_evaluated"]).all()
    assert d["event_polls"].sum() > 100_000
    json.loads(json.dumps(r.to_dict(), default=str, allow_nan=True))
    assert (r.largest["max_edge"].diff().dropna() <= 0).all()


@pytest.mark.shared_data
@needs_topbook
def test_alignment_on_real_quotes_matches_merge_asof():
    """A handful of real events on one day: the numpy alignment against pandas' merge_asof, one outcome at a time."""
    day = TOPBOOK / "quotes" / "dt=2026-07-13.parquet"
    ev = read_events(TOPBOOK)
    q = pd.read_parquet(day, columns=["ts", "slug", "bid", "ask"])
    code = ev.slugs.get_indexer(q["slug"])
    q["outcome"], q["event"] = code, ev.event_of[code]
    polls = np.sort(q["ts"].unique())
    quoted = q.loc[q["event"] >= 0, "event"].value_counts()
    chosen = quoted.index[:: max(1, len(quoted) // 8)][:8]
    sub = q[q["event"].isin(chosen)].sort_values(["outcome", "ts"], kind="stable")
    ts_ns = sub["ts"].to_numpy().astype("datetime64[ns]").view(np.int64)
    cells, _ = align_event_polls(sub["outcome"].to_numpy(), ts_ns, sub["bid"].to_numpy(), sub["ask"].to_numpy(),
                                 event_of=ev.event_of, n_outcomes=ev.events["n_outcomes"].to_numpy(),
                                 poll_ts=polls.astype("datetime64[ns]").view(np.int64), staleness_ns=300 * S)
    grid = pd.DataFrame({"poll_ts": pd.to_datetime(polls), "poll": np.arange(len(polls))})
    checked = 0
    for event in chosen:
        outs = np.flatnonzero(ev.event_of == event)
        sums, fresh = np.zeros(len(polls)), np.zeros(len(polls), int)
        for o in outs:
            rows = sub[sub["outcome"] == o][["ts", "ask"]].rename(columns={"ts": "qts"})
            m = pd.merge_asof(grid, rows, left_on="poll_ts", right_on="qts", direction="backward")
            ok = (m["poll_ts"] - m["qts"]) <= pd.Timedelta(seconds=300)
            fresh += ok.to_numpy()
            sums += np.where(ok, m["ask"], 0.0)
        complete = np.flatnonzero(fresh == len(outs))
        got = cells[cells["event"] == event]
        assert list(got["poll"]) == list(complete)
        np.testing.assert_allclose(got["sum_ask"].to_numpy(), sums[complete])  # NaN where an ask is missing
        checked += len(complete)
    assert checked > 0


# ----------------------------------------------------------------------------------------------------
# the market-channel client against a loopback server
# ----------------------------------------------------------------------------------------------------
def _run(feed: ClobMarketFeed, until, *, timeout: float = 20.0):
    """Run the feed until ``until(feed)`` holds (checked every 10 ms), then stop it; raise after ``timeout``."""
    import asyncio

    async def main():
        task = asyncio.create_task(feed.run())
        async with asyncio.timeout(timeout):
            while not until(feed):
                if task.done():
                    return task.result()
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return feed.stats

    return asyncio.run(main())


def _drain(feed: ClobMarketFeed) -> list:
    out = []
    while not feed.queue.empty():
        out.append(feed.queue.get_nowait())
    return out


M1, M2 = "0xmarket1", "0xmarket2"


def _hand_made_session():
    """YES y1 / NO n1 in market 1 (both books), y2 alone in market 2 (NO derived); every documented event."""
    return [book_message("y1", M1, bids=[("0.38", "50"), ("0.37", "10")], asks=[("0.40", "12"), ("0.41", "99")]),
            book_message("n1", M1, bids=[("0.52", "3")], asks=[("0.56", "30"), ("0.55", "30")]),
            book_message("y2", M2, bids=[("0.2", "5")], asks=[("0.25", "7")]),
            price_change_message(M1, [("n1", "0.55", "0", "SELL")]),          # the 0.55 NO ask is gone
            price_change_message(M1, [("n1", "0.54", "8", "SELL")]),          # a better one: 8 at 0.54
            best_bid_ask_message("y1", M1, "0.38", "0.40"),                   # agrees with the book
            best_bid_ask_message("y1", M1, "0.30", "0.40"),                   # does not: counted, the book wins
            last_trade_message("y1", M1, "0.39", "5"),
            tick_size_message("y2", M2, "0.01", "0.001"),
            {"event_type": "new_market", "market": "0xnew"}]


def test_client_hand_made_messages_books_and_snapshots():
    with LoopbackServer([(_hand_made_session(), "hold")]) as srv:
        feed = ClobMarketFeed(["y1", "n1", "y2"], url=srv.url)
        stats = _run(feed, lambda f: f.stats.messages >= 10)
        assert srv.subscribes == [{"assets_ids": ["y1", "n1", "y2"], "type": "market"}]
    assert stats.books == 3 and stats.price_changes == 2 and stats.best_bid_asks == 2 and stats.last_trades == 1
    assert stats.tick_changes == 1 and stats.other_events == 1 and stats.top_mismatch == 1 and stats.malformed == 0
    snaps = _drain(feed)
    last = {s.market: s for s in snaps}
    m1 = last[M1]
    assert (m1.yes_asset, m1.no_asset) == ("y1", "n1")
    assert (m1.yes_bid, m1.yes_ask, m1.yes_ask_size) == (0.38, 0.40, 12.0)
    assert (m1.no_bid, m1.no_ask, m1.no_ask_size) == (0.52, 0.54, 8.0)
    assert m1.ts == pd.Timestamp(1_750_000_000_000, unit="ms", tz="UTC")
    assert last[M2].no_asset is None and last[M2].tick == 0.001
    # the exact book: Decimal levels, the removed one gone
    from decimal import Decimal
    assert feed.books["n1"].asks == {Decimal("0.56"): Decimal("30"), Decimal("0.54"): Decimal("8")}
    assert feed.books["y1"].last_trade == Decimal("0.39")
    rows = snapshot_edges(snaps).drop_duplicates("market", keep="last").set_index("market")
    assert rows.loc[M1, "buy_edge"] == pytest.approx(0.06) and rows.loc[M1, "buy_arb"]  # 1 - (0.40 + 0.54)
    assert rows.loc[M1, "buy_size"] == 8.0 and not rows.loc[M1, "no_derived"]
    assert rows.loc[M2, "no_derived"] and rows.loc[M2, "no_ask"] == pytest.approx(0.8)
    assert rows.loc[M2, "buy_edge"] == pytest.approx(-0.05) and not rows.loc[M2, "buy_arb"]


@pytest.mark.shared_data
@pytest.mark.skipif(not (CAPTURED / "ws_book.json").is_file(), reason=f"no captured messages at {CAPTURED}")
def test_client_replays_the_captured_messages():
    book = json.loads((CAPTURED / "ws_book.json").read_text())
    trade = json.loads((CAPTURED / "ws_last_trade.json").read_text())
    rest = json.loads((CAPTURED / "captured_rest_book_fed_leg0.json").read_text())
    rest_as_event = {"event_type": "book", **rest}  # the REST /book shape is the event's, asks best-last
    with LoopbackServer([([book, trade, rest_as_event], "hold")]) as srv:
        feed = ClobMarketFeed([book["asset_id"], rest["asset_id"]], url=srv.url)
        stats = _run(feed, lambda f: f.stats.messages >= 3)
    assert stats.malformed == 0 and stats.books == 2 and stats.last_trades == 1
    last = {s.market: s for s in _drain(feed)}
    s1 = last[book["market"]]
    assert (s1.yes_bid, s1.yes_bid_size, s1.yes_ask, s1.yes_ask_size) == (0.02, 3100.0, 0.97, 178.73)
    assert s1.last_trade == 0.12 and s1.no_asset is None
    s2 = last[rest["market"]]
    asks = [float(a["price"]) for a in rest["asks"]]
    bids = [float(b["price"]) for b in rest["bids"]]
    assert s2.yes_ask == min(asks) and s2.yes_bid == max(bids)  # the best level, wherever the list puts it
    rows = snapshot_edges([s1, s2])
    assert rows["no_derived"].all() and (rows["buy_edge"] <= 0).all()


def test_client_faults_malformed_unknown_asset_and_reconnect():
    bad = ["not json at all", json.dumps({"event_type": "book", "market": M1}),            # no asset_id
           json.dumps(book_message("y1", M1, bids=[("abc", "1")], asks=[])),                # a price not a number
           json.dumps([1, 2]),                                                               # events not objects
           json.dumps(price_change_message(M1, [("y1", "1.5", "1", "BUY")])),              # a price above 1
           json.dumps({"no_event_type": 1}), "PONG", b"\xff\xfe"]
    first = [book_message("y1", M1, bids=[("0.30", "1")], asks=[("0.35", "1")]), *bad,
             book_message("zzz", M1, bids=[("0.5", "1")], asks=[]),                          # not subscribed
             {"event_type": "something_new"}]
    second = [book_message("y1", M1, bids=[("0.31", "2")], asks=[("0.33", "4")])]
    with LoopbackServer([(first, "close"), (second, "hold")]) as srv:
        feed = ClobMarketFeed(["y1"], url=srv.url, backoff_base=0.01, backoff_cap=0.05)
        stats = _run(feed, lambda f: f.stats.connects >= 2 and f.stats.books >= 3)
        assert len(srv.subscribes) == 2 and srv.subscribes[0] == srv.subscribes[1] == {
            "assets_ids": ["y1"], "type": "market"}  # resubscribed on the second connection
    assert stats.malformed == 8 and stats.unknown_asset == 1 and stats.unknown_events == 1
    assert stats.reconnects == 1 and stats.subscribes == 2
    snaps = _drain(feed)
    assert snaps[-1].yes_bid == 0.31 and snaps[-1].yes_ask == 0.33  # the book after the reconnect
    assert 0.005 <= feed.delays[0] <= 0.01  # base x U(0.5, 1)


def test_client_slow_consumer_bounded_queue_counts_drops():
    changes = [price_change_message(M1, [("y1", f"0.{10 + i:02d}", "1", "BUY")]) for i in range(50)]
    with LoopbackServer([([book_message("y1", M1, bids=[], asks=[("0.9", "1")]), *changes], "hold")]) as srv:
        feed = ClobMarketFeed(["y1"], url=srv.url, queue_size=5)
        stats = _run(feed, lambda f: f.stats.messages >= 51)  # nobody reads the queue meanwhile
    assert feed.queue.qsize() == 5 and stats.snapshots == 51 and stats.dropped == 46
    kept = _drain(feed)
    assert [s.yes_bid for s in kept] == [0.55, 0.56, 0.57, 0.58, 0.59]  # drop-oldest: the newest remain


def test_client_gives_up_after_bounded_retries_with_seeded_jitter():
    import socket
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    feeds = [ClobMarketFeed(["y1"], url=f"ws://127.0.0.1:{port}", backoff_base=0.01, backoff_cap=0.04,
                            max_retries=3, seed=5) for _ in range(2)]
    for feed in feeds:
        with pytest.raises(BinaryFeedError, match="4 failed connection attempts"):
            _run(feed, lambda f: False)
    assert feeds[0].delays == feeds[1].delays and len(feeds[0].delays) == 3
    assert all(0.5 * c <= d <= c for d, c in zip(feeds[0].delays, (0.01, 0.02, 0.04), strict=True))


@pytest.mark.parametrize("kwargs, error", [({"assets": []}, BinaryParamsError), ({"assets": ["a", "a"]}, BinaryParamsError),
                                           ({"assets": ["a"], "url": "http://x"}, BinaryFeedError),
                                           ({"assets": ["a"], "queue_size": 0}, BinaryParamsError)])
def test_client_bad_parameters(kwargs, error):
    assets = kwargs.pop("assets")
    with pytest.raises(error):
        ClobMarketFeed(assets, **kwargs)


# ----------------------------------------------------------------------------------------------------
# the Parquet series, and watch end to end
# ----------------------------------------------------------------------------------------------------
def _rows(n: int, start: str = "2026-07-12 23:59:58") -> pd.DataFrame:
    from research_lib.data.sources.polymarket import MarketSnapshot

    ts = pd.date_range(start, periods=n, freq="1s", tz="UTC")
    snaps = [MarketSnapshot(ts=t, received=t, market=f"m{i % 2}", yes_asset="y", no_asset=None if i % 2 else "n",
                            yes_bid=0.4, yes_ask=0.45, yes_bid_size=1.0, yes_ask_size=2.0,
                            no_bid=np.nan if i % 2 else 0.5, no_ask=np.nan if i % 2 else 0.52,
                            no_bid_size=np.nan if i % 2 else 3.0, no_ask_size=np.nan if i % 2 else 4.0,
                            tick=0.01, last_trade=np.nan) for i, t in enumerate(ts)]
    return snapshot_edges(snaps)


def test_store_round_trip_and_atomic_append(tmp_path, monkeypatch):
    store = BinaryStore(tmp_path / "binary" / "topbook")
    frame = _rows(4)  # 23:59:58 .. 00:00:01: two UTC dates, two parts
    parts = store.append(frame)
    assert [p.parent.name for p in parts] == ["dt=2026-07-12", "dt=2026-07-13"]
    back = store.read()
    pd.testing.assert_frame_equal(back, frame.reset_index(drop=True), check_dtype=False)
    assert str(back["ts"].dtype) == "datetime64[ns, UTC]" and back["no_asset"].isna().sum() == 2
    store.append(_rows(3, "2026-07-13 10:00:00"))
    assert len(store.read()) == 7 and len(store.read(market="m0")) == 4
    assert len(store.read(start="2026-07-13", end="2026-07-13 10:00:01")) == 3
    # a crash mid-write leaves only a temp file, which readers skip; the old parts stay whole
    from research_lib import fs

    def crash(tmp, final):
        raise KeyboardInterrupt("killed mid-write")
    monkeypatch.setattr(fs, "_after_temp_write", crash)
    with pytest.raises(KeyboardInterrupt):
        store.append(_rows(2, "2026-07-14 00:00:00"))
    monkeypatch.undo()
    assert len(store.read()) == 7
    # the default root is <data>/binary/topbook
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "d"))
    assert BinaryStore().root == tmp_path / "d" / "binary" / "topbook"


def test_store_strict_schema(tmp_path):
    store = BinaryStore(tmp_path)
    with pytest.raises(BinaryStoreError, match="missing"):
        store.append(_rows(2).drop(columns="buy_edge"))
    with pytest.raises(BinaryStoreError, match="extra"):
        store.append(_rows(2).assign(note="x"))
    with pytest.raises(BinaryStoreError, match="time zone"):
        store.append(_rows(2).assign(ts=pd.Timestamp("2026-07-12")))
    with pytest.raises(BinaryStoreError, match="yes_bid"):
        store.append(_rows(2).assign(yes_bid="high"))
    with pytest.raises(BinaryStoreError, match="market"):
        store.append(_rows(2).assign(market=None))
    (tmp_path / "dt=2026-07-12").mkdir()
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "dt=2026-07-12" / "part-foreign.parquet")
    with pytest.raises(BinaryStoreError, match="schema"):
        store.read()
    assert list(SCHEMA.names)[:3] == ["ts", "received", "market"]


def test_watch_end_to_end_and_cli(tmp_path, monkeypatch):
    import asyncio
    import io
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "data"))
    with LoopbackServer([(_hand_made_session(), "hold")]) as srv:
        store = BinaryStore(tmp_path / "s")
        seen = []
        feed = ClobMarketFeed(["y1", "n1", "y2"], url=srv.url)
        result = asyncio.run(watch(feed, duration=1.0, on_rows=seen.append, store=store, batch=2))
        assert result.rows == sum(len(f) for f in seen) == len(store.read()) > 0
        assert result.arbs >= 1 and result.stats["malformed"] == 0
        out, err = io.StringIO(), io.StringIO()
        code = main(["binary", "watch", "--assets", "y1,n1,y2", "--url", srv.url, "--duration", "1", "--json"],
                    out=out, err=err)
        assert code == 0, err.getvalue()
        lines = [json.loads(x, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
                 for x in out.getvalue().splitlines()]
        assert "summary" in lines[-1] and lines[-1]["summary"]["rows"] == len(lines) - 1
        assert any(x["buy_arb"] for x in lines[:-1]) and all(x["no_derived"] for x in lines[:-1] if x["market"] == M2)
        assert BinaryStore().parts()  # stored under <data>/binary/topbook
        out = io.StringIO()
        assert main(["binary", "watch", "--assets", "y1", "--url", srv.url, "--duration", "0.5", "--no-store"],
                    out=out, err=err) == 0
        assert "NO(derived)" in out.getvalue() and "snapshot(s)" in out.getvalue()
    assert main(["binary", "watch", "--assets", "y1", "--url", "http://nope"], out=io.StringIO(), err=err) == 4
    assert main(["binary", "watch", "--assets", ",", "--url", "ws://127.0.0.1:1"], out=io.StringIO(),
                err=io.StringIO()) == 2


def test_scan_same_answer_from_unsorted_and_empty_day_files(tmp_path):
    folder, _ = _synthetic_topbook(tmp_path / "a")
    before = scan_topbook(folder)
    day = sorted((folder / "quotes").glob("*.parquet"))[0]
    pd.read_parquet(day).sample(frac=1.0, random_state=3).to_parquet(day)  # not in (slug, ts) order
    pd.read_parquet(day).iloc[:0].to_parquet(folder / "quotes" / "dt=2026-07-11.parquet")  # an empty day first
    after = scan_topbook(folder)
    pd.testing.assert_frame_equal(before.daily, after.daily)
    pd.testing.assert_frame_equal(before.largest, after.largest)
    assert after.totals["files"] == 3
    shifted = pd.read_parquet(day).assign(ts=lambda f: f["ts"] + pd.Timedelta(minutes=1))
    shifted.to_parquet(folder / "quotes" / "dt=2026-07-11.parquet")  # the 11th's file overlaps the 12th's in time
    with pytest.raises(TopBookDatasetError, match="overlap"):
        scan_topbook(folder)


_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, width=32),
                       st.sampled_from(["0.5", "abc", "", "1e9", "-0.1", "y1", "book", "price_change", "BUY", "NaN"]))
_json_value = st.recursive(_json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["event_type", "asset_id", "market", "bids", "asks", "price", "size", "side",
                                     "price_changes", "changes", "timestamp", "best_bid", "best_ask",
                                     "new_tick_size"]), inner, max_size=6)), max_leaves=20)


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=80), _json_value.map(json.dumps), st.binary(max_size=40)))
@example('{"event_type": []}')  # found by the fuzzer: an event_type that is not text
def test_client_never_crashes_on_any_message(message):
    feed = ClobMarketFeed(["y1", "n1"], url="ws://127.0.0.1:1")
    snaps = feed.handle_text(message)
    assert feed.stats.messages == 1 and isinstance(snaps, list)
    for s in snaps:  # whatever got through is a valid top of book
        for p in (s.yes_bid, s.yes_ask, s.no_bid, s.no_ask):
            assert np.isnan(p) or 0 <= p <= 1
    # a good message afterwards still works
    good = feed.handle_text(json.dumps(book_message("y1", M1, bids=[("0.4", "1")], asks=[("0.5", "2")])))
    assert good and good[-1].yes_bid == 0.4 and good[-1].yes_ask == 0.5


def test_watch_cancelled_still_stores_what_it_read(tmp_path):
    import asyncio
    with LoopbackServer([(_hand_made_session(), "hold")]) as srv:
        store = BinaryStore(tmp_path / "s")
        feed = ClobMarketFeed(["y1", "n1", "y2"], url=srv.url)
        seen = []

        async def main():
            task = asyncio.create_task(watch(feed, on_rows=seen.append, store=store, batch=10_000))
            async with asyncio.timeout(20):
                while sum(len(f) for f in seen) < 5:
                    await asyncio.sleep(0.01)
            task.cancel()  # what Ctrl-C does to a watch without --duration
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
    assert len(store.read()) == sum(len(f) for f in seen) >= 5  # flushed on the way out
