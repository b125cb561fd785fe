"""Marking positions from a chain (research_lib.paper.marks) and the simulated broker's fills
(research_lib.paper.broker): every price checked against the quotes, real ones read from the raw archive."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from conftest import EOD_ARCHIVE, shared_file
from synthetic import contract_rows

from research_lib.core.chain import ChainSnapshot
from research_lib.errors import MarkError, OrderError
from research_lib.paper.broker import SimulatedBroker, paper_order_id
from research_lib.paper.marks import leg_quotes, mark_positions
from research_lib.records.paper import LegOrder, OrderRequest, Position, PositionLeg


def _position(pid, legs, *, contracts=2, opened="2024-03-01 10:00", entry_price=None):
    """legs: (root, expiration, right, strike, quantity, fill, bid, ask)."""
    pl = tuple(PositionLeg(i, r, pd.Timestamp(e).date(), "PM", k, right, q, f, b, a)
               for i, (r, e, right, k, q, f, b, a) in enumerate(legs))
    price = entry_price if entry_price is not None else -sum(leg.quantity * leg.entry_fill for leg in pl)
    return Position(position_id=pid, account="t", strategy="bull_put", contracts=contracts, entry_price=price,
                    max_loss=1000.0, opened_at=pd.Timestamp(opened, tz="America/New_York"), status="open", legs=pl,
                    open_order_id=pid, commissions=2.6)


def _chain(quotes, *, date="2024-03-04"):
    """quotes: (strike, right, bid, ask) on the SPXW 2024-03-15 expiry."""
    rows = contract_rows([(dt.date(2024, 3, 15), k, r, 100.0, 0.2) for k, r, _, _ in quotes])
    rows["bid"] = [b for _, _, b, _ in quotes]
    rows["ask"] = [a for _, _, _, a in quotes]
    return ChainSnapshot.create(underlying="SPX", spot=100.0, source="synthetic", contracts=rows,
                                quote_time=pd.Timestamp(f"{date} 15:00").tz_localize("America/New_York"))


def test_mark_by_hand_vertical():
    pos = _position(1, [("SPXW", "2024-03-15", "P", 95.0, -1, 2.00, 1.90, 2.10),
                        ("SPXW", "2024-03-15", "P", 90.0, +1, 0.80, 0.70, 0.90)])
    chain = _chain([(95.0, "P", 1.40, 1.60), (90.0, "P", 0.50, 0.60), (100.0, "C", 1.0, 1.2)])
    (m,) = mark_positions([pos], chain)
    assert pos.entry_price == pytest.approx(1.20)
    assert m.mark == pytest.approx(1.50 - 0.55)                      # short mid - long mid
    assert m.mark_natural == pytest.approx(1.60 - 0.50)              # buy the short back at the ask, sell the long at the bid
    # the formula: sum quantity x (mark_mid - entry fill) x 100 x contracts
    want = ((-1) * (1.50 - 2.00) + (+1) * (0.55 - 0.80)) * 100 * 2
    assert m.unrealized_pnl == pytest.approx(want) == pytest.approx((1.20 - 0.95) * 200)
    assert m.pnl_pct == pytest.approx(want / (1.20 * 200))
    assert m.dte == 11 and m.missing == () and m.leg_mids == pytest.approx((1.50, 0.55))
    assert m.marked_at == chain.quote_time


def test_a_missing_or_unquoted_leg_is_reported_never_marked_at_zero():
    pos = _position(1, [("SPXW", "2024-03-15", "P", 95.0, -1, 2.00, 1.90, 2.10),
                        ("SPXW", "2024-03-15", "P", 90.0, +1, 0.80, 0.70, 0.90)])
    other = _position(2, [("SPXW", "2024-03-15", "C", 100.0, -1, 1.0, 0.9, 1.1)])
    chain = _chain([(95.0, "P", 1.40, 1.60), (100.0, "C", np.nan, 1.2)])
    m1, m2 = mark_positions([pos, other], chain)
    assert m1.missing == ("+1 SPXW 2024-03-15 90P",) and math.isnan(m1.mark) and math.isnan(m1.unrealized_pnl)
    assert m2.missing == ("-1 SPXW 2024-03-15 100C",) and math.isnan(m2.mark)
    assert m1.leg_mids[0] == pytest.approx(1.5) and math.isnan(m1.leg_mids[1])


def test_a_mark_before_the_entry_is_refused():
    pos = _position(7, [("SPXW", "2024-03-15", "P", 95.0, -1, 2.0, 1.9, 2.1)], opened="2024-03-05 10:00")
    with pytest.raises(MarkError, match="position 7"):
        mark_positions([pos], _chain([(95.0, "P", 1.4, 1.6)], date="2024-03-04"))


def test_leg_quotes_absent_rows():
    chain = _chain([(95.0, "P", 1.40, 1.60)])
    q = leg_quotes(chain, ["SPXW", "SPX"], [dt.date(2024, 3, 15)] * 2, ["P", "P"], [95.0, 95.0])
    assert list(q["row"]) == [0, -1] and list(q["quoted"]) == [True, False]


def _request(kind="open", quantities=(-1, 1), quotes=((1.90, 2.10), (0.70, 0.90)), contracts=3):
    legs = tuple(LegOrder("SPXW", dt.date(2024, 3, 15), "PM", k, "P", q, b, a,
                          pd.Timestamp("2024-03-01 15:00", tz="America/New_York"), "test")
                 for k, q, (b, a) in zip((95.0, 90.0), quantities, quotes, strict=False))
    return OrderRequest(account="t", client_order_id="OPEN-x", kind=kind, strategy="bull_put", contracts=contracts,
                        legs=legs, created_at=pd.Timestamp("2024-03-01 15:00", tz="America/New_York"), max_loss=380.0)


def test_simulated_broker_fill_models_by_hand():
    req = _request()
    mid = SimulatedBroker(fill="mid", commission=0.65).submit(req)
    assert [f.price for f in mid.legs] == [2.00, 0.80]
    assert [f.commission for f in mid.legs] == pytest.approx([0.65 * 3, 0.65 * 3])
    assert mid.broker_order_id == paper_order_id("OPEN-x") and mid.model == "mid"
    nat = SimulatedBroker(fill="natural").price(req)
    assert [f.price for f in nat] == [1.90, 0.90]                    # sell at the bid, buy at the ask
    close = SimulatedBroker(fill="natural").price(_request(kind="close"))
    assert [f.price for f in close] == [2.10, 0.70]                  # buy the short back at the ask
    slip = SimulatedBroker(fill="slippage", slippage=1.0).price(req)
    assert [f.price for f in slip] == [1.90, 0.90]
    half = SimulatedBroker(fill="slippage", slippage=0.5).price(req)
    assert [f.price for f in half] == pytest.approx([1.95, 0.85])
    # the exact mid by default; the backtest's tick rounding on request (0.05 below 3.00, against the trader)
    odd = _request(quotes=((1.90, 2.00), (0.70, 0.90)))
    assert [f.price for f in SimulatedBroker().price(odd)] == pytest.approx([1.95, 0.80])
    assert [f.price for f in SimulatedBroker(round_ticks=True).price(_request(quotes=((1.90, 2.05), (0.70, 0.85))))] \
        == pytest.approx([1.95, 0.80])


def test_simulated_broker_is_idempotent_and_refuses_bad_quotes():
    b = SimulatedBroker()
    first = b.submit(_request())
    assert b.submit(_request(quotes=((5.0, 6.0), (1.0, 2.0)))) is first      # same client id: the first execution
    assert b.lookup("OPEN-x") is first and b.lookup("nope") is None
    with pytest.raises(OrderError, match="no fillable quote"):
        SimulatedBroker().price(_request(quotes=((2.2, 2.1), (0.7, 0.9))))
    with pytest.raises(OrderError, match="fill"):
        SimulatedBroker(fill="best")
    with pytest.raises(OrderError, match="commission"):
        SimulatedBroker(commission=-1)


# ------------------------------------------------------------------------------------------------
# the real archive: a position opened on one day, marked on later days, checked against the raw quotes
def test_real_marks_are_the_raw_archive_quotes():
    from research_lib.data.sources.auto import get_chain

    path = shared_file(EOD_ARCHIVE)
    day0, later = "2026-06-15", ["2026-06-22", "2026-07-01"]
    snap0 = get_chain("SPX", path, date=day0, save=False).snapshot
    c = snap0.contracts
    exp = sorted(c.loc[c["root"] == "SPXW", "expiration"].unique())
    expiry = pd.Timestamp([e for e in exp if (pd.Timestamp(e) - pd.Timestamp(day0)).days >= 30][0]).date()
    puts = c[(c["root"] == "SPXW") & (c["expiration"] == pd.Timestamp(expiry)) & (c["right"] == "P")
             & (c["bid"] > 0)].sort_values("strike")
    short = puts.iloc[(puts["strike"] - 0.95 * snap0.spot).abs().argmin()]
    long_ = puts.iloc[(puts["strike"] - 0.90 * snap0.spot).abs().argmin()]
    legs = [("SPXW", expiry, "P", float(r.strike), q, (r.bid + r.ask) / 2, float(r.bid), float(r.ask))
            for r, q in ((short, -1), (long_, +1))]
    pos = _position(1, legs, contracts=3, opened=f"{day0} 16:00")
    raw = pd.read_parquet(path, columns=["file_date", "price_date", "expiration", "strike", "cp", "bid", "ask",
                                         "flag"])
    raw = raw[(raw["flag"] == "OK") & (raw["file_date"] == raw["price_date"])]
    for day in later:
        snap = get_chain("SPX", path, date=day, save=False).snapshot
        (m,) = mark_positions([pos], snap)
        want_pnl, want_mark = 0.0, 0.0
        for leg in pos.legs:
            rows = raw[(pd.to_datetime(raw["price_date"]).dt.date == dt.date.fromisoformat(day))
                       & (pd.to_datetime(raw["expiration"]).dt.date == leg.expiration)
                       & (raw["strike"] == leg.strike) & (raw["cp"].astype(str) == leg.right)]
            assert len(rows) == 1, (day, leg)
            mid = (float(rows["bid"].iloc[0]) + float(rows["ask"].iloc[0])) / 2
            want_mark += -leg.quantity * mid
            want_pnl += leg.quantity * (mid - leg.entry_fill) * 100 * pos.contracts
        assert m.missing == ()
        assert m.mark == pytest.approx(want_mark, abs=1e-9)
        assert m.unrealized_pnl == pytest.approx(want_pnl, abs=1e-6)
        assert m.dte == (expiry - dt.date.fromisoformat(day)).days
