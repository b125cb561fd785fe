"""Order flow (pure, numpy-vectorised): trade signing, bar volume splits, per-bar delta, CVD, pressure,
aggressive-flow bars and a per-session summary.

Trade signing (:func:`sign_trades`, +1 buyer-initiated, -1 seller-initiated, 0 unsigned)
-----------------------------------------------------------------------------------------
* ``"tick"``: a trade above the last *different* earlier price is a buy, below it a sell; a zero tick keeps
  the previous sign. The session's first trade, and the zero ticks straight after it, are unsigned (0). Only
  trades of the same session are compared (the ``session`` labels; the input is in time order).
* ``"quote"``: above the prevailing mid ``(bid + ask) / 2`` a buy, below a sell; at the mid, with no
  prevailing quote (NaN) or a crossed one (``bid > ask``) unsigned.
* ``"lee_ready"`` (Lee & Ready 1991): the quote rule, and the tick rule for the trades it leaves unsigned.

The prevailing quote of a trade is the last quote *known* at the trade's time (:func:`prevailing_quote`, an
as-of join): for 1-second quote bars stamped at the second's start, the closing quote of a bar is known only
one second later, so a trade at 10:00:00.400 uses the bar of 09:59:59 (no look-ahead).

Bars without trades (:func:`bar_buy_share`, the buy share of a bar's volume)
------------------------------------------------------------------------------
* ``"bar"`` (bar direction): close > open all buy (1), close < open all sell (0); close == open ``tie="half"``
  (0.5, default) or ``tie="previous"`` (the previous bar's share in the session, 0.5 for the session's first).
* ``"clv"`` (close location): ``(close - low) / (high - low)``, 0.5 when ``high == low``.
* ``"bvc"`` (bulk volume classification, Easley, López de Prado & O'Hara 2012): ``Phi(dP / sigma)`` with
  ``dP`` the bar's close minus the previous bar's close in the session (the session's first bar: close minus
  open; the overnight gap is not flow) and ``sigma`` the sample standard deviation of ``dP`` over the last
  ``window`` bars of the session up to and including this one (the bar's own change is known at its close;
  nothing later is used). 0.5 until ``min_periods`` changes are in the window or when ``sigma == 0``.

Per bar (:func:`bar_flow` from trades, :func:`bar_flow_from_bars` from OHLCV bars)
------------------------------------------------------------------------------------
``buy_volume``, ``sell_volume``, ``unsigned_volume``, ``delta = buy - sell``; ``cvd`` (cumulative delta,
reset each session); ``pressure`` (buy share of the signed volume of the last ``pressure_window`` bars of
the session, NaN when they hold no signed volume); ``aggressive`` (+1 / -1 when ``|delta|`` exceeds ``k``
times the robust dispersion of the session's previous ``window`` deltas, see :func:`aggressive_bars`).
:func:`session_flow` sums a session.

Units: prices in dollars, volumes in shares (or the bar file's units), times ``datetime64[ns, UTC]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import ndtr

from research_lib.errors import OrderFlowInputError

__all__ = [
    "BAR_FLOW_COLUMNS",
    "BAR_RULES",
    "MAD_TO_SIGMA",
    "SESSION_FLOW_COLUMNS",
    "TRADE_RULES",
    "aggressive_bars",
    "bar_buy_share",
    "bar_flow",
    "bar_flow_from_bars",
    "cvd",
    "pressure",
    "prevailing_quote",
    "session_flow",
    "session_starts",
    "sign_trades",
]

#: Rules of :func:`sign_trades`.
TRADE_RULES = ("tick", "quote", "lee_ready")
#: Rules of :func:`bar_buy_share`.
BAR_RULES = ("bar", "clv", "bvc")
#: 1.4826: the MAD of a normal sample times this estimates its standard deviation.
MAD_TO_SIGMA = 1.482602218505602
#: Columns of :func:`bar_flow` (``trades`` only from trades; :func:`bar_flow_from_bars` has ``buy_share``).
BAR_FLOW_COLUMNS = ("ts", "session", "open", "high", "low", "close", "volume", "trades", "buy_volume",
                    "sell_volume", "unsigned_volume", "delta", "cvd", "pressure", "aggressive")
#: Columns of :func:`session_flow` (``trades`` is None for bar input).
SESSION_FLOW_COLUMNS = ("date", "bars", "trades", "open", "close", "volume", "buy_volume", "sell_volume",
                        "unsigned_volume", "delta", "cvd_close", "cvd_high", "cvd_low", "buy_share",
                        "aggressive_buy_bars", "aggressive_sell_bars")


# --------------------------------------------------------------------------------------------------------
# input checks and session boundaries
# --------------------------------------------------------------------------------------------------------
def _prices(values, name: str, *, allow_nan: bool = False) -> np.ndarray:
    """``values`` as a 1-D float64 array of positive prices (NaN allowed, meaning "none", when ``allow_nan``)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise OrderFlowInputError(f"{name} must be 1-D, got shape {arr.shape}")
    ok = np.isfinite(arr) & (arr > 0)
    if allow_nan:
        ok |= np.isnan(arr)
    if not ok.all():
        pos = int(np.flatnonzero(~ok)[0])
        what = "infinite or non-positive" if allow_nan else "non-finite or non-positive"
        raise OrderFlowInputError(f"{name}: {int((~ok).sum())} {what} values, e.g. {arr[pos]!r} at position {pos}")
    return arr


def _same_length(n: int, **arrays) -> None:
    for name, a in arrays.items():
        if a is not None and len(a) != n:
            raise OrderFlowInputError(f"{name} has {len(a)} values, expected {n} (one per trade / bar)")


def session_starts(n: int, session=None) -> np.ndarray:
    """Boolean array, True at the first row of each run of equal ``session`` labels (row 0 always).

    ``session`` is any 1-D sequence of labels (dates, integers, strings) in time order, or None (one session).
    """
    start = np.zeros(n, dtype=bool)
    if n == 0:
        return start
    start[0] = True
    if session is not None:
        s = session.to_numpy() if isinstance(session, pd.Series | pd.Index) else np.asarray(session)
        _same_length(n, session=s)
        start[1:] = s[1:] != s[:-1]
    return start


def _session_ids(start: np.ndarray) -> np.ndarray:
    return np.cumsum(start) - 1


def _carry(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``values`` with every row where ``keep`` is False replaced by the last earlier kept row's value
    (``keep`` must be True at row 0)."""
    idx = np.where(keep, np.arange(len(values)), 0)
    np.maximum.accumulate(idx, out=idx)
    return values[idx]


# --------------------------------------------------------------------------------------------------------
# trade signing
# --------------------------------------------------------------------------------------------------------
def sign_trades(price, rule: str = "tick", bid=None, ask=None, session=None, *, tol: float = 1e-9) -> np.ndarray:
    """Sign each trade: +1 buyer-initiated, -1 seller-initiated, 0 unsigned (see the module notes).

    Parameters
    ----------
    price : 1-D array-like of float
        Trade prices in time order (finite, > 0).
    rule : {"tick", "quote", "lee_ready"}
        The signing rule.
    bid, ask : 1-D array-like of float, optional
        The prevailing quote of each trade (:func:`prevailing_quote`); required by "quote" and "lee_ready".
        NaN means no quote prevails (the trade is then unsigned by the quote rule).
    session : 1-D array-like, optional
        Session labels, one per trade; the tick rule never compares trades of different sessions. None: one
        session.
    tol : float, default 1e-9
        Dollars: a trade within ``tol`` of the mid is "at the mid" (prices scaled from integers, such as
        ticks x 10000, leave float rounding of about 1e-14 in ``(bid + ask) / 2``).

    Returns
    -------
    ndarray of int8
        Same length as ``price``. The signs of a prefix of the trades are the prefix of the signs (no
        look-ahead).

    Raises
    ------
    OrderFlowInputError
        Unknown rule, missing quotes for a quote rule, arrays of different lengths, bad prices.
    """
    if rule not in TRADE_RULES:
        raise OrderFlowInputError(f"rule must be one of {', '.join(TRADE_RULES)}, got {rule!r}")
    p = _prices(price, "price")
    n = len(p)
    start = session_starts(n, session)
    if rule == "tick":
        return _tick(p, start)
    if bid is None or ask is None:
        raise OrderFlowInputError(f"rule {rule!r} needs bid and ask (the prevailing quote of each trade)")
    b = _prices(bid, "bid", allow_nan=True)
    a = _prices(ask, "ask", allow_nan=True)
    _same_length(n, bid=b, ask=a)
    with np.errstate(invalid="ignore"):
        mid = np.where(b <= a, 0.5 * (b + a), np.nan)  # NaN (no quote) and crossed quotes give NaN
        gap = p - mid
    q = np.where(gap > tol, 1, np.where(gap < -tol, -1, 0)).astype(np.int8)  # NaN compares False: 0
    if rule == "quote":
        return q
    return np.where(q != 0, q, _tick(p, start)).astype(np.int8)


def _tick(p: np.ndarray, start: np.ndarray) -> np.ndarray:
    n = len(p)
    d = np.zeros(n, dtype=np.int8)
    if n > 1:
        d[1:] = np.sign(p[1:] - p[:-1])
    d[start] = 0
    return _carry(d, (d != 0) | start)


def _ns(values, name: str) -> np.ndarray:
    """Times as int64 nanoseconds since the epoch (tz-aware values are read in UTC)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return values.astype(np.int64)
    try:
        idx = pd.DatetimeIndex(values)
    except (TypeError, ValueError) as exc:
        raise OrderFlowInputError(f"{name} must be datetimes or int64 nanoseconds ({exc})") from exc
    if idx.hasnans:
        raise OrderFlowInputError(f"{name}: {int(idx.isna().sum())} missing times")
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("ns").asi8


def prevailing_quote(trade_ts, quote_ts, bid, ask, *, lag: str | pd.Timedelta = "1s",
                     trade_session=None, quote_session=None) -> tuple[np.ndarray, np.ndarray]:
    """The quote prevailing at each trade: an as-of join on the time each quote became known.

    Parameters
    ----------
    trade_ts : datetimes (or int64 ns), one per trade
    quote_ts : datetimes (or int64 ns), ascending
        The quote rows' time stamps. For 1-second quote bars stamped at the second's start, the row's (closing)
        quote is known at ``quote_ts + lag`` with ``lag = 1 s`` (the default); for quotes stamped when they
        arrive use ``lag="0s"``.
    bid, ask : array-like of float, one per quote
    lag : timedelta-like, default "1s"
    trade_session, quote_session : array-like of labels, optional
        When both are given, a quote of another session never prevails (NaN instead).

    Returns
    -------
    bid, ask : ndarray of float
        The last quote with ``quote_ts + lag <= trade_ts``; NaN before the first such quote.
    """
    t = _ns(trade_ts, "trade_ts")
    q = _ns(quote_ts, "quote_ts")
    b = np.asarray(bid, dtype=np.float64)
    a = np.asarray(ask, dtype=np.float64)
    _same_length(len(q), bid=b, ask=a)
    if len(q) > 1 and (q[1:] < q[:-1]).any():
        raise OrderFlowInputError("quote_ts must be ascending (sort the quotes by time)")
    lag_ns = pd.Timedelta(lag).value
    if lag_ns < 0:
        raise OrderFlowInputError(f"lag must be >= 0, got {lag!r}")
    pos = np.searchsorted(q + lag_ns, t, side="right") - 1
    ok = pos >= 0
    if trade_session is not None and quote_session is not None:
        ts_ = np.asarray(trade_session)
        qs_ = np.asarray(quote_session)
        _same_length(len(t), trade_session=ts_)
        _same_length(len(q), quote_session=qs_)
        ok &= qs_[np.maximum(pos, 0)] == ts_
    pb = np.where(ok, b[np.maximum(pos, 0)], np.nan) if len(q) else np.full(len(t), np.nan)
    pa = np.where(ok, a[np.maximum(pos, 0)], np.nan) if len(q) else np.full(len(t), np.nan)
    return pb, pa


# --------------------------------------------------------------------------------------------------------
# bars without trades
# --------------------------------------------------------------------------------------------------------
def bar_buy_share(open_, high, low, close, rule: str = "bar", *, session=None, tie: str = "half",
                  window: int = 30, min_periods: int = 5) -> np.ndarray:
    """The buy share (0..1) of each bar's volume, by bar direction, close location or BVC (module notes).

    Parameters
    ----------
    open_, high, low, close : 1-D array-like of float
        The bars in time order (finite, > 0, ``low <= open, close <= high``).
    rule : {"bar", "clv", "bvc"}
    session : 1-D array-like, optional
        Session labels (BVC's window and ``tie="previous"`` never reach into another session).
    tie : {"half", "previous"}
        Rule "bar": the share of a bar with ``close == open``.
    window, min_periods : int
        Rule "bvc": bars in the rolling standard deviation of price changes, and the fewest changes needed.

    Returns
    -------
    ndarray of float64 in [0, 1]
    """
    if rule not in BAR_RULES:
        raise OrderFlowInputError(f"rule must be one of {', '.join(BAR_RULES)}, got {rule!r}")
    o, h, lo, c = (_prices(v, name) for v, name in ((open_, "open"), (high, "high"), (low, "low"),
                                                        (close, "close")))
    n = len(o)
    _same_length(n, high=h, low=lo, close=c)
    bad = (h < lo) | (o > h) | (o < lo) | (c > h) | (c < lo)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise OrderFlowInputError(f"{int(bad.sum())} bars with high < low or open / close outside "
                                  f"[low, high], e.g. position {pos}: O={o[pos]} H={h[pos]} L={lo[pos]} C={c[pos]}")
    start = session_starts(n, session)
    if rule == "bar":
        if tie not in ("half", "previous"):
            raise OrderFlowInputError(f"tie must be 'half' or 'previous', got {tie!r}")
        share = np.where(c > o, 1.0, np.where(c < o, 0.0, 0.5))
        if tie == "previous":
            share = _carry(share, (c != o) | start)
        return share
    if rule == "clv":
        rng = h - lo
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(rng > 0, (c - lo) / rng, 0.5)
    window, min_periods = _window(window, min_periods)
    dp = np.empty(n)
    if n:
        dp[1:] = c[1:] - c[:-1]
        dp[start] = (c - o)[start]
    sigma = _rolling_std(dp, _session_ids(start), window, min_periods)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sigma > 0, ndtr(dp / sigma), 0.5)


def _window(window: int, min_periods: int) -> tuple[int, int]:
    for name, v in (("window", window), ("min_periods", min_periods)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise OrderFlowInputError(f"{name} must be a positive integer, got {v!r}")
    if min_periods > window:
        raise OrderFlowInputError(f"min_periods ({min_periods}) must not exceed window ({window})")
    return int(window), int(min_periods)


def _session_windows(x: np.ndarray, ids: np.ndarray, window: int, *, include_current: bool) -> np.ndarray:
    """Row t: the ``window`` values of ``x`` ending at t (or at t-1 when not ``include_current``) that belong
    to t's session, NaN elsewhere; shape (n, window)."""
    n = len(x)
    pad = np.concatenate([np.full(window, np.nan), x.astype(np.float64)])
    pid = np.concatenate([np.full(window, -1), ids])
    lo = 1 if include_current else 0
    w = sliding_window_view(pad, window)[lo:lo + n]
    wid = sliding_window_view(pid, window)[lo:lo + n]
    return np.where(wid == ids[:, None], w, np.nan)


def _rolling_std(x: np.ndarray, ids: np.ndarray, window: int, min_periods: int) -> np.ndarray:
    if len(x) == 0:
        return x.copy()
    w = _session_windows(x, ids, window, include_current=True)
    count = np.sum(~np.isnan(w), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(w, axis=1) / count
        var = np.nansum((w - mean[:, None]) ** 2, axis=1) / (count - 1)
    return np.where((count >= max(min_periods, 2)), np.sqrt(var), np.nan)


# --------------------------------------------------------------------------------------------------------
# per-bar statistics
# --------------------------------------------------------------------------------------------------------
def cvd(delta, session=None) -> np.ndarray:
    """Cumulative delta, restarting at each session's first bar (float64, same length as ``delta``)."""
    d = np.asarray(delta, dtype=np.float64)
    start = session_starts(len(d), session)
    cs = np.cumsum(d)
    base = (cs - d)[start]  # the running total just before each session
    return cs - base[_session_ids(start)] if len(d) else cs


def pressure(buy_volume, sell_volume, session=None, *, window: int = 5) -> np.ndarray:
    """Buy pressure: ``sum(buy) / (sum(buy) + sum(sell))`` over the last ``window`` bars of the session
    (fewer at its start); NaN where those bars hold no signed volume. In [0, 1]."""
    window, _ = _window(window, 1)
    b = np.asarray(buy_volume, dtype=np.float64)
    s = np.asarray(sell_volume, dtype=np.float64)
    _same_length(len(b), sell_volume=s)
    ids = _session_ids(session_starts(len(b), session))
    sb = pd.Series(b).groupby(ids).rolling(window, min_periods=1).sum().to_numpy()
    ss = pd.Series(s).groupby(ids).rolling(window, min_periods=1).sum().to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sb + ss > 0, sb / (sb + ss), np.nan)


def aggressive_bars(delta, session=None, *, k: float = 3.0, window: int = 30, min_periods: int = 10) -> np.ndarray:
    """Aggressive-flow bars: +1 where ``delta > k * scale``, -1 where ``delta < -k * scale``, else 0.

    ``scale = 1.4826 * MAD`` of the session's previous ``window`` deltas (the bar itself excluded, nothing
    later used): a robust standard deviation, MAD the median absolute deviation from their median. A bar
    with fewer than ``min_periods`` previous bars in its session, or a zero scale, is never aggressive.

    Returns
    -------
    ndarray of int8
    """
    window, min_periods = _window(window, min_periods)
    if not np.isfinite(k) or k <= 0:
        raise OrderFlowInputError(f"k must be a positive number, got {k!r}")
    d = np.asarray(delta, dtype=np.float64)
    if not np.isfinite(d).all():
        raise OrderFlowInputError(f"delta: {int((~np.isfinite(d)).sum())} non-finite values")
    out = np.zeros(len(d), dtype=np.int8)
    if len(d) == 0:
        return out
    ids = _session_ids(session_starts(len(d), session))
    w = _session_windows(d, ids, window, include_current=False)
    count = np.sum(~np.isnan(w), axis=1)
    enough = count >= min_periods
    if not enough.any():
        return out
    we = w[enough]
    med = np.nanmedian(we, axis=1)
    scale = MAD_TO_SIGMA * np.nanmedian(np.abs(we - med[:, None]), axis=1)
    de = d[enough]
    flag = np.where((scale > 0) & (de > k * scale), 1, np.where((scale > 0) & (de < -k * scale), -1, 0))
    out[enough] = flag
    return out


def _bin_ns(bar: str | pd.Timedelta) -> int:
    try:
        step = pd.Timedelta(bar)
    except (TypeError, ValueError) as exc:
        raise OrderFlowInputError(f"bar must be a duration such as '1min' or '5s', got {bar!r}") from exc
    ns = step.value
    if ns <= 0 or ns % 1_000_000_000 or 3_600_000_000_000 % ns:
        raise OrderFlowInputError(f"bar must be a whole number of seconds dividing one hour (1s ... 60min), got {bar!r}")
    return ns


def _finish_flow(frame: pd.DataFrame, *, pressure_window: int, k: float, window: int,
                 min_periods: int) -> pd.DataFrame:
    sess = frame["session"].to_numpy()
    frame["delta"] = frame["buy_volume"] - frame["sell_volume"]
    frame["cvd"] = cvd(frame["delta"].to_numpy(), sess)
    frame["pressure"] = pressure(frame["buy_volume"].to_numpy(), frame["sell_volume"].to_numpy(), sess,
                                 window=pressure_window)
    frame["aggressive"] = aggressive_bars(frame["delta"].to_numpy(), sess, k=k, window=window,
                                          min_periods=min_periods)
    return frame


def bar_flow(trades: pd.DataFrame, signs, bar: str = "1min", *, pressure_window: int = 5, k: float = 3.0,
             window: int = 30, min_periods: int = 10) -> pd.DataFrame:
    """Aggregate signed trades to time bars.

    Parameters
    ----------
    trades : DataFrame
        ``ts`` (tz-aware or UTC datetimes), ``session``, ``price``, ``size`` in time order (as
        :func:`research_lib.data.market.intraday.read_trades` returns).
    signs : 1-D array-like of int
        +1 / -1 / 0 per trade (:func:`sign_trades`).
    bar : str, default "1min"
        Bar length: whole seconds dividing one hour; bars start on multiples of it (09:30, 09:31 ...).
    pressure_window, k, window, min_periods
        See :func:`pressure` and :func:`aggressive_bars`.

    Returns
    -------
    DataFrame
        One row per bar holding trades (bars without trades are absent), columns :data:`BAR_FLOW_COLUMNS`:
        ``ts`` (bar start, UTC), ``session``, ``open, high, low, close`` (trade prices), ``volume``,
        ``trades`` (count), ``buy_volume``, ``sell_volume``, ``unsigned_volume``, ``delta``, ``cvd``,
        ``pressure``, ``aggressive`` (int8).
    """
    missing = [c for c in ("ts", "session", "price", "size") if c not in trades.columns]
    if missing:
        raise OrderFlowInputError(f"trades lacks columns {missing}")
    s = np.asarray(signs)
    _same_length(len(trades), signs=s)
    if len(s) and not np.isin(s, (-1, 0, 1)).all():
        raise OrderFlowInputError("signs must be -1, 0 or +1")
    step = _bin_ns(bar)
    t = _ns(trades["ts"], "trades.ts")
    if len(t) > 1 and (t[1:] < t[:-1]).any():
        raise OrderFlowInputError("trades must be in time order (sort by ts)")
    price = _prices(trades["price"], "price")
    size = np.asarray(trades["size"], dtype=np.float64)
    if not (np.isfinite(size) & (size >= 0)).all():
        raise OrderFlowInputError(f"size: {int((~(size >= 0)).sum())} negative or non-finite values")
    cols = list(BAR_FLOW_COLUMNS)
    if len(t) == 0:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols})
    b = t // step * step
    first = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    last = np.r_[first[1:] - 1, len(b) - 1]
    sess = np.asarray(trades["session"])
    red = np.add.reduceat
    frame = pd.DataFrame({
        "ts": pd.to_datetime(b[first], utc=True), "session": sess[first],
        "open": price[first], "high": np.maximum.reduceat(price, first), "low": np.minimum.reduceat(price, first),
        "close": price[last], "volume": red(size, first), "trades": np.diff(np.r_[first, len(b)]),
        "buy_volume": red(np.where(s > 0, size, 0.0), first), "sell_volume": red(np.where(s < 0, size, 0.0), first),
        "unsigned_volume": red(np.where(s == 0, size, 0.0), first)})
    return _finish_flow(frame, pressure_window=pressure_window, k=k, window=window,
                        min_periods=min_periods)[cols]


def bar_flow_from_bars(bars: pd.DataFrame, rule: str = "bar", *, tie: str = "half", bvc_window: int = 30,
                       bvc_min_periods: int = 5, pressure_window: int = 5, k: float = 3.0, window: int = 30,
                       min_periods: int = 10) -> pd.DataFrame:
    """Split OHLCV bars' volume into buy and sell by :func:`bar_buy_share` and add the flow columns.

    Parameters
    ----------
    bars : DataFrame
        ``ts, session, open, high, low, close, volume`` in time order (as
        :func:`research_lib.data.market.intraday.read_bars` returns).
    rule, tie, bvc_window, bvc_min_periods
        See :func:`bar_buy_share` (``window`` / ``min_periods`` there).
    pressure_window, k, window, min_periods
        See :func:`pressure` and :func:`aggressive_bars`.

    Returns
    -------
    DataFrame
        :data:`BAR_FLOW_COLUMNS` without ``trades``, plus ``buy_share``; ``unsigned_volume`` is 0.
    """
    missing = [c for c in ("ts", "session", "open", "high", "low", "close", "volume") if c not in bars.columns]
    if missing:
        raise OrderFlowInputError(f"bars lacks columns {missing}")
    vol = np.asarray(bars["volume"], dtype=np.float64)
    if not (np.isfinite(vol) & (vol >= 0)).all():
        raise OrderFlowInputError(f"volume: {int((~(vol >= 0)).sum())} negative or non-finite values")
    sess = bars["session"].to_numpy()
    share = bar_buy_share(bars["open"], bars["high"], bars["low"], bars["close"], rule, session=sess, tie=tie,
                          window=bvc_window, min_periods=bvc_min_periods)
    frame = bars[["ts", "session", "open", "high", "low", "close", "volume"]].reset_index(drop=True).copy()
    frame["buy_share"] = share
    frame["buy_volume"] = share * vol
    frame["sell_volume"] = vol - frame["buy_volume"].to_numpy()
    frame["unsigned_volume"] = 0.0
    frame = _finish_flow(frame, pressure_window=pressure_window, k=k, window=window, min_periods=min_periods)
    return frame[[c for c in BAR_FLOW_COLUMNS if c != "trades"] + ["buy_share"]]


def session_flow(flow: pd.DataFrame) -> pd.DataFrame:
    """One row per session of a :func:`bar_flow` / :func:`bar_flow_from_bars` table.

    Returns
    -------
    DataFrame
        Columns :data:`SESSION_FLOW_COLUMNS`: ``date`` (the session), ``bars``, ``trades`` (None for bar
        input), ``open`` / ``close`` (first bar's open, last bar's close), ``volume``, ``buy_volume``,
        ``sell_volume``, ``unsigned_volume``, ``delta``, ``cvd_close`` (= the session's delta), ``cvd_high`` /
        ``cvd_low`` (extremes of the bar-close CVD), ``buy_share`` (buy / (buy + sell), NaN when nothing is
        signed), ``aggressive_buy_bars`` / ``aggressive_sell_bars``.
    """
    if len(flow) == 0:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in SESSION_FLOW_COLUMNS})
    g = flow.groupby("session", sort=False)
    out = pd.DataFrame({
        "date": g["ts"].size().index.to_numpy(),
        "bars": g["ts"].size().to_numpy(),
        "trades": g["trades"].sum().to_numpy() if "trades" in flow.columns else None,
        "open": g["open"].first().to_numpy(), "close": g["close"].last().to_numpy(),
        "volume": g["volume"].sum().to_numpy(), "buy_volume": g["buy_volume"].sum().to_numpy(),
        "sell_volume": g["sell_volume"].sum().to_numpy(), "unsigned_volume": g["unsigned_volume"].sum().to_numpy(),
        "delta": g["delta"].sum().to_numpy(), "cvd_close": g["cvd"].last().to_numpy(),
        "cvd_high": g["cvd"].max().to_numpy(), "cvd_low": g["cvd"].min().to_numpy(),
        "aggressive_buy_bars": (flow["aggressive"] > 0).groupby(flow["session"], sort=False).sum().to_numpy(),
        "aggressive_sell_bars": (flow["aggressive"] < 0).groupby(flow["session"], sort=False).sum().to_numpy(),
    })
    signed = out["buy_volume"] + out["sell_volume"]
    out["buy_share"] = np.where(signed > 0, out["buy_volume"] / signed.where(signed > 0, 1.0), np.nan)
    return out[list(SESSION_FLOW_COLUMNS)]
