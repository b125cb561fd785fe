"""The inputs of the regime classifier for one snapshot, from the market history.

:func:`regime_inputs_for` reads the S&P 500 (or SPY) closes and the VIX family up to the snapshot's date
through :mod:`research_lib.data.market`: from the files, or, given a
:class:`~research_lib.core.market_view.MarketView`, from memory with nothing after the view's date.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from research_lib.core.regime import RegimeInputs, _as_date, _cut, _last_fresh
from research_lib.data import market

#: Underlyings whose price is the S&P 500 index times a constant (XSP is SPX / 10).
_SPX_SCALE = {"SPX": 1.0, "SPXW": 1.0, "XSP": 0.1}


def regime_inputs_for(levels, *, market_dir: str | os.PathLike | None = None,
                      net_gex_history: pd.Series | None = None, max_age_days: int = 7,
                      regime_gex=None) -> RegimeInputs:
    """:class:`RegimeInputs` for a snapshot's levels, with S&P 500 closes and the VIX family loaded from
    :mod:`research_lib.market` up to ``levels.date`` (no look-ahead).

    Closes: the S&P 500 for SPX (divided by 10 for XSP), unadjusted SPY bars for SPY (days after the SPY file's
    last bar get no trend); no history for other underlyings (build
    :class:`RegimeInputs` yourself with their closes and vol index). IV rank always comes from VIX.
    A missing or malformed market file does not raise: the input is left None and ``notes`` says why, so
    the classifier reports it among its reasons.

    Parameters
    ----------
    levels : KeyLevels or GexAnalysis
    market_dir : path, optional
        See :func:`research_lib.market.market_data_dirs`.
    net_gex_history : Series, optional
        Your own history of net GEX in the same convention as ``levels`` (else the gross ratio is used).
    max_age_days : int
        A VIX / VIX9D / VIX3M close older than this (calendar days before the date) is treated as missing.
    regime_gex : RegimeGex, optional
        The regime's GEX series of the snapshot (:func:`research_lib.core.regime_gex.of`): used instead of the
        headline net GEX; ``net_gex_history`` is then that series' history.
    """
    lv = getattr(levels, "levels", levels)
    date = _as_date(lv.date, "date")
    notes: list[str] = []
    price_history = vix_history = None
    vix = vix9d = vix3m = None
    name = str(lv.underlying).upper()
    try:
        if name in _SPX_SCALE:
            price_history = market.load_index_daily("SPX", market_dir=market_dir)["close"] * _SPX_SCALE[name]
        elif name == "SPY":
            price_history = market.load_spy_daily(market_dir=market_dir)["close"]
        else:
            notes.append(f"no daily history of {name} in research_lib.market (S&P 500 and SPY only): trend "
                         f"unknown; pass price_history to RegimeInputs.from_analysis")
    except (market.MarketDataNotFoundError, market.MarketDataError) as exc:
        notes.append(f"{name} price history unavailable: {exc}")
    try:
        family = _cut(market.load_vix_family(market_dir=market_dir), date)
    except (market.MarketDataNotFoundError, market.MarketDataError) as exc:
        notes.append(f"VIX history unavailable: {exc}")
    else:
        vix_history = family["vix"].dropna()
        vix = _last_fresh(vix_history, date, max_age_days, "VIX", notes)
        if vix is not None:
            # the term-structure readings of the same day as the VIX used
            row = family.loc[vix_history.index[-1]]
            vix9d = float(row["vix9d"]) if np.isfinite(row["vix9d"]) else None
            vix3m = float(row["vix3m"]) if np.isfinite(row["vix3m"]) else None
    if name not in _SPX_SCALE and name != "SPY":
        notes.append(f"IV rank from VIX, the S&P 500's vol index, not {name}'s own")
    return RegimeInputs.from_analysis(lv, price_history=price_history, vix_history=vix_history,
                                      net_gex_history=net_gex_history, vix=vix, vix9d=vix9d, vix3m=vix3m,
                                      max_age_days=max_age_days, notes=tuple(notes), regime_gex=regime_gex)
