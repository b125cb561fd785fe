"""The day table: one row per NYSE session with everything the model-priced history reads that day.

:func:`load_day_table` joins the market files already served by :mod:`research_lib.data.market` (the SPX daily
history, the Cboe VIX9D / VIX / VIX3M closes, the risk-free rate of :func:`~.rates.risk_free_rates`, the implied
dividend yield of :func:`~.rates.dividend_yields` and SqueezeMetrics' published GEX and DIX) onto the exchange
calendar (:func:`research_lib.calendar.sessions`), with one strict rule for missing values (see
:func:`load_day_table`). No value is invented: a hole is either carried forward from an earlier *session* for
a bounded number of sessions, and then named in the ``filled`` column, or it is an error.

Gaps in the shared files (``../shared/data/market``, checked 2026-12-01 over 2011-05-02..2026-07-22):
``open``, ``close``, ``vix9d``, ``vix``, ``vix3m``, ``gex``, ``dix`` have no missing session. The 13-week
T-bill (IRX) misses 11 sessions (2016-11-11 Veterans Day, when the bond market is shut, and 10 sessions in
June-July 2026: 06-08, 06-16, 06-18, 06-22..06-25, 06-29..07-01; at most 4 in a row), each carried forward.
The S&P 500 total-return index ends 2025-05-13, so the dividend yield is carried forward after it.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from research_lib import calendar
from research_lib.data.market.files import find_market_file
from research_lib.data.market.loaders import load_index_daily, load_published_gex, load_vol_index
from research_lib.data.market.rates import _RATE_KIND, dividend_yields, risk_free_rates
from research_lib.errors import DayTableError

#: The day table's columns, in order.
DAY_TABLE_COLUMNS = ("open", "close", "vix9d", "vix", "vix3m", "rate", "div_yield", "gex", "dix", "filled")
#: Inputs a session cannot do without: missing on a session -> :class:`DayTableError`.
REQUIRED_COLUMNS = ("open", "close", "vix")
#: Inputs that may be carried forward from an earlier session (at most ``max_carry`` sessions).
CARRIED_COLUMNS = ("vix9d", "vix3m", "rate", "gex", "dix")
#: Default of ``max_carry``: sessions a carried input may be stale.
MAX_CARRY_SESSIONS = 5
# calendar days of history read before ``start`` so that a hole at the start can be carried from before it
_LOOKBACK_DAYS = 21


def load_day_table(start=None, end=None, *, market_dir: str | os.PathLike | None = None,
                   max_carry: int = MAX_CARRY_SESSIONS) -> pd.DataFrame:
    """One row per NYSE session from ``start`` to ``end``: SPX, the VIX family, rate, dividend yield, GEX.

    Parameters
    ----------
    start, end : date-like, optional
        Inclusive. Default ``start``: the first date of the published GEX file (2011-05-02 in the shared
        data). Default ``end``: the last session on which ``close``, ``vix`` and the 13-week T-bill rate all
        have a value of their own (2026-07-22 in the shared data, VIX's last row).
    market_dir : path, optional
        Where the files are; see :func:`research_lib.data.market.market_data_dirs` (``market_dir``, then
        ``$RESEARCH_LIB_MARKET_DATA``, ``<repo>/data/market``, ``<repo>/../shared/data/market``).
    max_carry : int, default 5
        How many sessions in a row a carried input (:data:`CARRIED_COLUMNS`) may be missing.

    Returns
    -------
    DataFrame
        Indexed by ``date`` (tz-naive midnight, the sessions of :func:`research_lib.calendar.sessions`);
        columns :data:`DAY_TABLE_COLUMNS`:

        ``open``, ``close``
            S&P 500 open and close, index points (:func:`load_index_daily`).
        ``vix9d``, ``vix``, ``vix3m``
            Cboe closes, index points (VIX 20 = 20% annualised).
        ``rate``
            Continuously-compounded risk-free rate, decimal per year (:func:`risk_free_rates`,
            ``source="auto"``: the 13-week T-bill, else DGS3MO, else fed funds, each exactly converted).
        ``div_yield``
            S&P 500 implied continuous dividend yield, decimal per year (:func:`dividend_yields`: trailing
            365-day total-return vs price, median of 5). After the total-return index ends (2025-05-13 in
            the shared data) its last estimate is carried forward: such rows list ``div_yield`` in
            ``filled`` and are exempt from ``max_carry`` (``attrs["div_yield_as_of"]`` gives the date of
            the last estimate).
        ``gex``, ``dix``
            SqueezeMetrics' published GEX ($ in their units, their sign convention) and DIX (a fraction).
        ``filled``
            ``;``-joined names of the inputs carried forward from an earlier session on that row, in
            column order, ``""`` when none.

        ``attrs["sources"]``: the file names used (one per input, sorted); ``attrs["carried"]``: column ->
        number of rows carried.

    Raises
    ------
    DayTableError
        ``open``, ``close`` or ``vix`` missing on a session in the range; a carried input missing for more
        than ``max_carry`` sessions in a row (or with no earlier session to carry from); ``start`` after
        ``end`` or no session in the range. The message names the first bad date and the column.
    MarketDataNotFoundError, MarketDataError
        A file is missing or malformed (from the loaders).
    """
    if isinstance(max_carry, bool) or int(max_carry) != max_carry or max_carry < 0:
        raise ValueError(f"max_carry must be a non-negative integer, got {max_carry!r}")
    spx = load_index_daily("SPX", market_dir=market_dir)
    vols = {name.lower(): load_vol_index(name, market_dir=market_dir) for name in ("VIX9D", "VIX", "VIX3M")}
    pub = load_published_gex(market_dir=market_dir)
    start = pub.index[0] if start is None else pd.Timestamp(start).normalize()
    if end is None:
        end = _default_end(spx, vols["vix"], market_dir)
    else:
        end = pd.Timestamp(end).normalize()
    days = calendar.sessions(start, end)
    if len(days) == 0:
        raise DayTableError(f"no NYSE session from {pd.Timestamp(start).date()} to {pd.Timestamp(end).date()}",
                            date=pd.Timestamp(start).date(), column="date")
    wide = calendar.sessions(days[0] - pd.Timedelta(days=_LOOKBACK_DAYS), days[-1])
    raw = {"open": spx["open"], "close": spx["close"], "vix9d": vols["vix9d"]["close"],
           "vix": vols["vix"]["close"], "vix3m": vols["vix3m"]["close"], "gex": pub["gex"], "dix": pub["dix"]}
    paths = {"open": spx.attrs["source"], "close": spx.attrs["source"], "gex": pub.attrs["source"],
             "dix": pub.attrs["source"], **{k: f.attrs["source"] for k, f in vols.items()}}
    table = pd.DataFrame({k: v.reindex(wide) for k, v in raw.items()}, index=wide)
    # the rate: the last observation at or before each session; carried when it is dated an earlier session
    rates = risk_free_rates(days, market_dir=market_dir, max_staleness_days=None)
    paths["rate"] = "; ".join(str(find_market_file(_RATE_KIND[src], market_dir))
                              for src in sorted(set(rates["source"])))
    dy = dividend_yields(days, market_dir=market_dir)
    paths["div_yield"] = dy.attrs["source"]

    table = table.loc[days[0]:]
    filled = {c: np.zeros(len(days), dtype=bool) for c in DAY_TABLE_COLUMNS}
    for col in REQUIRED_COLUMNS:
        miss = table[col].isna().to_numpy()
        if miss.any():
            first = days[miss][0].date()
            raise DayTableError(f"day table: {col} missing on {int(miss.sum())} session(s) from {days[0].date()} "
                                f"to {days[-1].date()}, first {first}; {col} is never carried forward",
                                date=first, column=col, path=paths[col], n_bad=int(miss.sum()))
    full = pd.DataFrame({k: v.reindex(wide) for k, v in raw.items() if k in CARRIED_COLUMNS}, index=wide)
    for col in CARRIED_COLUMNS:
        if col == "rate":
            continue
        values, carried = _carry(full[col], int(max_carry), col, paths[col], check_from=days[0])
        table[col] = values.loc[days[0]:].to_numpy()
        filled[col] = carried.loc[days[0]:].to_numpy()
    as_of = pd.DatetimeIndex(rates["as_of"])
    all_sessions = calendar.sessions(as_of.min(), days[-1])
    stale = (np.searchsorted(all_sessions, days, side="right")
             - np.searchsorted(all_sessions, as_of, side="right"))  # sessions after the observation, up to the day
    too_old = stale > max_carry
    if too_old.any():
        i = int(np.flatnonzero(too_old)[0])
        raise DayTableError(f"day table: rate missing for more than {max_carry} sessions in a row on "
                            f"{days[i].date()} (last observation {as_of[i].date()}; at most {max_carry} sessions "
                            "are carried forward)", date=days[i].date(), column="rate", path=paths["rate"],
                            n_bad=int(too_old.sum()))
    table["rate"] = rates["rate"].to_numpy()
    filled["rate"] = stale > 0
    table["div_yield"] = dy["value"].to_numpy()
    filled["div_yield"] = dy["carried_forward"].to_numpy(bool)

    names = np.array([c for c in DAY_TABLE_COLUMNS if c != "filled"])
    mask = np.column_stack([filled[c] for c in names])
    table["filled"] = [";".join(names[row]) for row in mask]
    table = table[list(DAY_TABLE_COLUMNS)]
    table.index = pd.DatetimeIndex(days, name="date").astype("datetime64[ns]")
    table.attrs = {
        "sources": sorted({os.path.basename(p) for v in paths.values() for p in str(v).split("; ")}),
        "carried": {str(c): int(filled[c].sum()) for c in names if filled[c].any()},
        "max_carry": int(max_carry),
    }
    if filled["div_yield"].any():
        table.attrs["div_yield_as_of"] = str(pd.Timestamp(dy["as_of"].iloc[-1]).date())
    return table


def _carry(series: pd.Series, max_carry: int, col: str, path: str,
           check_from: pd.Timestamp) -> tuple[pd.Series, pd.Series]:
    """Carry ``series`` (indexed by consecutive sessions) forward over holes of at most ``max_carry``
    sessions; a longer hole on or after ``check_from``, or one with nothing before it, raises for the hole's
    first session (which may be before ``check_from``: the lookback rows only serve as earlier sessions)."""
    miss = series.isna().to_numpy()
    run = np.zeros(len(series), dtype=int)
    seen = np.zeros(len(series), dtype=bool)
    count, any_before = 0, False
    for i, m in enumerate(miss):
        count = count + 1 if m else 0
        any_before = any_before or not m
        run[i] = count
        seen[i] = any_before
    bad = miss & ((run > max_carry) | ~seen) & (series.index >= check_from)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        first = series.index[i - run[i] + 1].date()
        why = (f"missing for more than {max_carry} sessions in a row from {first}" if seen[i]
               else f"missing on {first} with no earlier session to carry from")
        raise DayTableError(f"day table: {col} {why} (at most {max_carry} sessions are carried forward)",
                            date=first, column=col, path=path, n_bad=int(bad.sum()))
    return series.ffill(), pd.Series(miss, index=series.index)


def _default_end(spx: pd.DataFrame, vix: pd.DataFrame, market_dir) -> pd.Timestamp:
    """The last session with a close, a VIX close and a rate observation of its own."""
    last = min(spx["close"].dropna().index[-1], vix["close"].dropna().index[-1])
    days = calendar.sessions(last - pd.Timedelta(days=60), last)
    both = spx["close"].reindex(days).notna() & vix["close"].reindex(days).notna()
    rates = risk_free_rates(days, market_dir=market_dir, max_staleness_days=None)
    ok = both.to_numpy() & (rates["as_of"].to_numpy() == days.to_numpy())
    if not ok.any():
        raise DayTableError(f"day table: no session in the 60 days to {last.date()} has a close, a VIX and a rate",
                            date=last.date(), column="close")
    return days[ok][-1]
