"""The quotes of an EOD archive read with pandas alone (not research_lib's reader), for the paper panel's tests:
every mark the ledger holds is checked against the file's own bid and ask."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd


def raw_quotes(path: Path) -> pd.DataFrame:
    """The archive's clean rows (flag OK, file date = price date) indexed by (day, expiration, strike, right), in
    the file's order (Cboe's symbol order: every SPX row before every SPXW one)."""
    raw = pd.read_parquet(path, columns=["file_date", "price_date", "expiration", "strike", "cp", "bid", "ask",
                                         "flag"])
    raw = raw[(raw["flag"] == "OK") & (raw["file_date"] == raw["price_date"])]
    raw = raw.assign(day=pd.to_datetime(raw["price_date"]).dt.date, exp=pd.to_datetime(raw["expiration"]).dt.date,
                     cp=raw["cp"].astype(str))
    return raw.set_index(["day", "exp", "strike", "cp"]).sort_index(kind="stable")  # keeps the file's order


def mid_mark(path: Path, day: dt.date, position) -> float:
    """The position's price at the file's mid quotes of ``day``, per unit in credit terms:
    −Σ quantity × (bid + ask) / 2 over its legs."""
    raw = raw_quotes(path)
    total = 0.0
    for leg in position.legs:
        rows = raw.loc[[(day, leg.expiration, leg.strike, leg.right)]]
        if len(rows) == 2:  # a monthly expiry holds SPX (AM) and SPXW (PM): no root column, SPX rows come first
            rows = rows.iloc[[0]] if leg.root == "SPX" else rows.iloc[[1]]
        assert len(rows) == 1, (day, leg)
        total -= leg.quantity * float((rows["bid"].iloc[0] + rows["ask"].iloc[0]) / 2)
    return total
