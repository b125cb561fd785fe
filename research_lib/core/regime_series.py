"""The regime of every day of a daily table, as of each day: :func:`regime_series`.

A long backtest on modelled prices has no chain to analyse, so its regime comes from series: a daily GEX series
(SqueezeMetrics' published GEX, in its own units, or our own net GEX of stored chains), VIX with VIX9D and VIX3M
(IV rank, term structure) and the index closes (the trend). Each day is classified by
:func:`research_lib.core.regime.classify_regime` — the same rules and :class:`~research_lib.core.regime.RegimeParams`
as the daily decision — with inputs cut at that day: the VIX and price histories end with the day's close, and the
GEX is judged against its trailing distribution of the *earlier* days only (``net_gex / median(|gex|)`` over the
last ``gex_window`` days, as :func:`research_lib.pipeline.decide.decide_on` does). There is no zero-gamma level in
a series, so the GEX measure alone sets the gamma regime. Pure: no file is read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from research_lib.core.regime import RegimeInputs, RegimeParams, classify_regime
from research_lib.errors import RegimeInputError

#: Columns of :func:`regime_series`.
REGIME_COLUMNS = ("regime", "trend", "action", "confidence", "iv_rank", "gex_measure", "why")


def regime_series(table: pd.DataFrame, params: RegimeParams | None = None, *, gex_column: str = "gex",
                  gex_label: str = "published GEX", underlying: str = "SPX") -> pd.DataFrame:
    """Classify every row of ``table`` as of its own date.

    Parameters
    ----------
    table : DataFrame
        Date-indexed (ascending, unique), with ``close`` (index points), ``vix`` and optionally ``vix9d``,
        ``vix3m`` (index points) and ``gex_column`` (any consistent unit; NaN: missing that day), e.g.
        :func:`research_lib.data.market.load_day_table`.
    params : RegimeParams, optional
        The classifier's thresholds (default ``RegimeParams()``).
    gex_column, gex_label : str
        The GEX column and how the reasons name it.
    underlying : str

    Returns
    -------
    DataFrame
        Indexed like ``table``, columns :data:`REGIME_COLUMNS`: ``regime`` (``POSITIVE_GAMMA`` /
        ``NEGATIVE_GAMMA`` / ``NEUTRAL``), ``trend``, ``action``, ``confidence`` (0-100), ``iv_rank`` (0-100 or
        NaN), ``gex_measure`` (the unit-free measure the thresholds apply to, NaN when there was none) and ``why``
        (the regime's reasons joined by spaces).

    Raises
    ------
    RegimeInputError
        The table is not date-ordered, lacks ``close``/``vix``, or holds a bad value (named with its date).
    """
    for col in ("close", "vix"):
        if col not in table.columns:
            raise RegimeInputError(col, f"the table has no {col!r} column (columns: {', '.join(table.columns)})")
    index = pd.DatetimeIndex(table.index)
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise RegimeInputError("date", "the table's dates must be ascending and unique")
    close = pd.Series(table["close"].to_numpy(dtype=float), index=index)
    vix = pd.Series(table["vix"].to_numpy(dtype=float), index=index)
    gex = (pd.Series(table[gex_column].to_numpy(dtype=float), index=index) if gex_column in table.columns
           else pd.Series(np.nan, index=index))
    vix9d = table["vix9d"].to_numpy(dtype=float) if "vix9d" in table.columns else np.full(len(index), np.nan)
    vix3m = table["vix3m"].to_numpy(dtype=float) if "vix3m" in table.columns else np.full(len(index), np.nan)
    p = params or RegimeParams()
    # only the trailing windows the classifier reads are passed (it never looks further back)
    keep_price = 60
    keep_vix = int(p.iv_window) + 5
    keep_gex = int(p.gex_window) + 5
    gex_ok = gex.dropna()
    gex_pos = np.searchsorted(gex_ok.index.values, index.values, side="left")   # earlier days: [.. pos)
    out = {c: [] for c in REGIME_COLUMNS}

    def num(x: float) -> float | None:
        return float(x) if np.isfinite(x) else None

    for i, day in enumerate(index):
        try:
            hist = gex_ok.iloc[max(0, gex_pos[i] - keep_gex):gex_pos[i]]
            inputs = RegimeInputs(
                spot=num(close.iat[i]), net_gex=num(gex.iat[i]), vix=num(vix.iat[i]), vix9d=num(vix9d[i]),
                vix3m=num(vix3m[i]), vix_history=vix.iloc[max(0, i + 1 - keep_vix):i + 1].dropna(),
                price_history=close.iloc[max(0, i + 1 - keep_price):i + 1].dropna(),
                net_gex_history=hist if len(hist) else None, date=day.date(), underlying=underlying,
                gex_label=gex_label)
        except RegimeInputError as exc:
            raise RegimeInputError(exc.field, f"{day.date()}: {exc}") from exc
        r = classify_regime(inputs, p)
        out["regime"].append(str(r.regime))
        out["trend"].append(str(r.trend))
        out["action"].append(str(r.action))
        out["confidence"].append(int(r.confidence))
        iv_rank = r.scores.iv_rank
        out["iv_rank"].append(float(iv_rank) if iv_rank is not None else np.nan)
        measure = getattr(r.scores, "gex_measure", None)
        out["gex_measure"].append(float(measure) if measure is not None else np.nan)
        out["why"].append(" ".join(r.reasons))
    return pd.DataFrame(out, index=index)


__all__ = ["REGIME_COLUMNS", "regime_series"]
