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


def smile_vol(k, T):
    """A smooth, skewed smile (decimal vol) in log-moneyness ``k = ln(K/F)`` and years ``T``, for
    :func:`priced_chain`: 15% at the money, steeper at short tenors."""
    import numpy as np

    w = 0.15 * np.sqrt(T) + 0.02
    z = np.asarray(k) / w
    return 0.15 + 0.03 * np.sqrt(T) - 0.035 * z + 0.006 * z * z


def priced_chain(*, spot=5000.0, print_spot=None, date="2024-03-06", expiry_days=(1, 2, 7, 14, 30, 60),
                 rate=0.05, div_yield=0.013, vol=smile_vol, step=5.0, width=4.0, noise=0.0, seed=0,
                 half_spread=None, zero_bid_below=0.0) -> ChainSnapshot:
    """An SPXW chain whose quotes are priced exactly from a known surface at a known spot.

    Parameters
    ----------
    spot : float
        The spot the quotes are priced at (BSM with ``rate`` and ``div_yield`` at ``vol(k, T)``).
    print_spot : float, optional
        The snapshot's own spot (default ``spot``): a different one mimics quotes taken after the print.
    date : str
        The trading date; the quote time is its 16:00 close, expiries are ``date + expiry_days``
        (moved to the next session when not one); ``T`` is the model's (:func:`gex.time_to_expiry`).
    vol : callable
        ``vol(k, T)``, decimal, ``k = ln(K/F)``; the ``iv`` column holds it (the truth).
    step, width : float
        Strike spacing, and the strike range ``F·exp(±width·0.2·√T)`` (at least ±3%).
    noise : float
        Each mid moves by ``noise × half-spread × U(-1, 1)`` (seeded by ``seed``); 0 gives exact mids.
    half_spread : callable, optional
        ``half_spread(price)``; default ``max(0.025, 0.03 × price)``.
    zero_bid_below : float
        Quotes whose theoretical price is below this get ``bid = 0``.

    Returns
    -------
    ChainSnapshot
        Calls and puts at every strike; ``open_interest`` ``1000·exp(-(k - 0.02)²/0.02) + 10`` for calls,
        ``1500·exp(-(k + 0.03)²/0.02) + 10`` for puts (more puts, below the money: net GEX is not 0).
    """
    import numpy as np

    from research_lib import calendar as cal
    from research_lib.core import gex, pricing

    day = pd.Timestamp(date)
    sessions_ = cal.sessions(day, day + pd.Timedelta(days=max(expiry_days) + 10))
    rows = []
    for d in expiry_days:
        exp = sessions_[sessions_.searchsorted(day + pd.Timedelta(days=d))]
        T0 = (exp - day).days / 365.0
        F0 = spot * np.exp((rate - div_yield) * T0)
        span = max(width * 0.2 * np.sqrt(T0), 0.03)
        lo, hi = np.floor(F0 * np.exp(-span) / step) * step, np.ceil(F0 * np.exp(span) / step) * step
        for K in np.arange(lo, hi + step / 2, step):
            for right in ("C", "P"):
                rows.append({"root": "SPXW", "expiration": exp, "settlement": "PM", "strike": float(K),
                             "right": right, "bid": 1.0, "ask": 1.1, "last": np.nan, "volume": np.nan,
                             "open_interest": 1.0, "iv": 0.2, "delta": np.nan, "gamma": np.nan})
    table = pd.DataFrame(rows)
    quote_time = cal.session_close(day.date())
    snap = ChainSnapshot.create(underlying="SPX", spot=print_spot or spot, quote_time=quote_time,
                                source="synthetic:priced", contracts=table)
    c = snap.contracts.copy()
    T = gex.time_to_expiry(snap, gex.GexConfig(rate=rate, div_yield=div_yield))
    K = c["strike"].to_numpy()
    k = np.log(K / spot) - (rate - div_yield) * T
    sigma = vol(k, T)
    is_call = (c["right"] == "C").to_numpy()
    p = pricing.price(spot, K, T, sigma, rate, div_yield, is_call)
    h = np.maximum(0.025, 0.03 * p) if half_spread is None else half_spread(p)
    rng = np.random.default_rng(seed)
    mid = p + noise * h * rng.uniform(-1.0, 1.0, len(p))
    c["bid"] = np.where(p < zero_bid_below, 0.0, np.maximum(mid - h, 0.0))
    c["ask"] = mid + h
    c["iv"] = sigma
    c["open_interest"] = np.round(np.where(is_call, 1000.0 * np.exp(-(k - 0.02) ** 2 / 0.02),
                                           1500.0 * np.exp(-(k + 0.03) ** 2 / 0.02)) + 10.0)
    return snap.replace(contracts=c)


def bars(rows, *, session="2024-03-06", start="09:30", minutes=1) -> pd.DataFrame:
    """Hand-made intraday bars in the layout of ``read_bars``: ``rows`` is an iterable of
    ``(low, high, close, volume)`` (open = close), one bar every ``minutes`` from ``start`` New York time on
    ``session``; ``ts`` in UTC."""
    import datetime as dt

    import numpy as np

    rows = list(rows)
    t0 = pd.Timestamp(f"{session} {start}").tz_localize("America/New_York")
    ts = pd.DatetimeIndex([t0 + pd.Timedelta(minutes=minutes * i) for i in range(len(rows))]).tz_convert("UTC")
    ts = ts.as_unit("ns")
    a = np.array(rows, dtype=float).reshape(-1, 4)
    return pd.DataFrame({"ts": ts, "session": dt.date.fromisoformat(session), "open": a[:, 2], "high": a[:, 1],
                         "low": a[:, 0], "close": a[:, 2], "volume": a[:, 3]})


def random_bars(*, sessions=("2024-03-04", "2024-03-05", "2024-03-06"), n=390, minutes=1, price=500.0,
                tick=0.01, seed=0) -> pd.DataFrame:
    """Random-walk regular-hours bars (``n`` a session from 09:30 New York, ``minutes`` apart) on the
    ``tick`` grid, with a U-shaped volume, in the layout of ``read_bars``. Known by construction only in
    their invariants (lows <= opens, closes <= highs; whole-share volumes); for properties and speed."""
    import numpy as np

    rng = np.random.default_rng(seed)
    frames = []
    for day in sessions:
        steps = rng.normal(0.0, 0.08 * np.sqrt(minutes), n)
        close = np.round((price + np.cumsum(steps)) / tick) * tick
        open_ = np.concatenate(([close[0]], close[:-1]))
        wick = np.round(np.abs(rng.normal(0.0, 0.04 * np.sqrt(minutes), (2, n))) / tick) * tick
        high = np.maximum(open_, close) + wick[0]
        low = np.minimum(open_, close) - wick[1]
        u = np.linspace(-1.0, 1.0, n)
        volume = np.round(rng.gamma(2.0, 1.0, n) * (20_000 + 60_000 * u * u))
        f = bars(zip(low, high, close, volume, strict=True), session=day, minutes=minutes)
        f["open"] = open_
        frames.append(f)
        price = float(close[-1])
    return pd.concat(frames, ignore_index=True)

