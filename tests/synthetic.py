"""Hand-built chains for tests whose answer is known by construction."""

from __future__ import annotations

import pandas as pd

from research_lib.core.chain import ChainSnapshot


def contract_rows(rows, *, root="SPXW", settlement="PM") -> pd.DataFrame:
    """``rows``: iterable of (expiration, strike, right, open_interest, iv) → a full contract table."""
    out = []
    for exp, strike, right, oi, iv in rows:
        out.append({"root": root, "expiration": pd.Timestamp(exp), "settlement": settlement, "strike": strike,
                    "right": right, "bid": 1.0, "ask": 1.1, "last": 1.05, "volume": 10.0, "open_interest": oi,
                    "iv": iv, "delta": 0.5 if right == "C" else -0.5, "gamma": 0.001})
    return pd.DataFrame(out)


def snapshot(rows, *, spot=100.0, quote_time="2024-03-01 12:00", underlying="SPX", **kw) -> ChainSnapshot:
    return ChainSnapshot.create(underlying=underlying, spot=spot,
                                quote_time=pd.Timestamp(quote_time).tz_localize("America/New_York"),
                                source="synthetic", contracts=contract_rows(rows, **kw))
