"""Synthetic intraday files in the real layouts (``shared/data/SOURCES.md``, "market/intraday", "market/ticks"),
so a fresh clone tests the intraday readers, the order-flow math and the ``flow`` command without ../shared.

=============================== ===================================================================
writer                          layout
=============================== ===================================================================
:func:`write_tick_folder`       AlgoSeek: ``tick/YYYYMMDD_trade.zip``, ``second/YYYYMMDD_quote.zip`` and
                                ``second/YYYYMMDD_trade.zip``, one header-less CSV each, prices x 10000
:func:`write_bars`              bar CSV (``.gz`` by suffix): ``spy`` (``datetime,open,high,low,close,volume``),
                                ``sp500`` (``Date`` M/D/YYYY H:MM, ``Open,Close,High,Low,Volume``), ``googl``
                                (``Timestamp,Close,High,Low,Open,Volume``, Pacific time)
=============================== ===================================================================

The generated truth rides along: every trade's side (+1 bought at the ask, -1 sold at the bid, 0 at the mid)
against the quote prevailing when it printed (the last quote second that had *ended*), so the signing tests
know the right answer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from research_lib import calendar as cal

#: A plain session and the day after Thanksgiving 2025 (an early close at 13:00).
NORMAL_DAY = dt.date(2025, 11, 26)
EARLY_CLOSE_DAY = dt.date(2025, 11, 28)
EXTENDED = (4 * 3_600_000, 20 * 3_600_000)  # the tick files' 04:00-20:00 ET window, ms since midnight


@dataclasses.dataclass(frozen=True)
class TickDay:
    """One synthetic session in the AlgoSeek layout, with the truth.

    ``trades``: ``ms, price (x 10000), size, exchange, condition, suspicious, side`` in file order;
    ``quotes``: the 1-second quote bars (``ms`` and the ten price / size fields, prices x 10000);
    ``seconds``: the 1-second trade bars (``ms, open, high, low, close, volume``).
    """

    day: dt.date
    trades: pd.DataFrame
    quotes: pd.DataFrame
    seconds: pd.DataFrame

    @property
    def open_ms(self) -> int:
        return _ms_of(cal.session_open(self.day))

    @property
    def close_ms(self) -> int:
        return _ms_of(cal.session_close(self.day))


def _ms_of(ts: pd.Timestamp) -> int:
    return int((ts.tz_localize(None) - ts.tz_localize(None).normalize()) / pd.Timedelta(milliseconds=1))


def tick_day(day: dt.date = NORMAL_DAY, *, n_trades: int = 4000, seed: int = 0, base: float = 167.0,
             mid_share: float = 0.1, suspicious_rth: int = 2) -> TickDay:
    """A session of trades against 1-second quotes: a random walk mid (steps of a cent), a one- or two-cent
    spread, trades at the ask (buys), the bid (sells) or the mid; times 04:00-20:00 ET with repeated
    milliseconds; ``suspicious_rth`` flagged trades inside regular hours and one outside."""
    rng = np.random.default_rng(seed)
    lo, hi = EXTENDED
    secs = np.arange(lo // 1000, hi // 1000, dtype=np.int64)
    n = len(secs)
    mid2 = np.round(base * 200) + np.cumsum(rng.choice([-1, 0, 0, 1], size=n))  # mid in half-cents
    half = rng.choice([1, 2], size=n)  # half-spread in half-cents: spread 1 or 2 cents
    bid = (mid2 - half) * 50  # x 10000 dollars (half a cent = 50)
    ask = (mid2 + half) * 50
    quotes = pd.DataFrame({"ms": secs * 1000,
                           "bid_open": bid, "bid_high": bid + 100, "bid_low": bid - 100, "bid_close": bid,
                           "bid_size": rng.integers(1, 400, n) * 100,
                           "ask_open": ask, "ask_high": ask + 100, "ask_low": ask - 100, "ask_close": ask,
                           "ask_size": rng.integers(1, 400, n) * 100})
    ms = np.sort(rng.integers(lo + 1000, hi, size=n_trades))
    ms[1::7] = ms[0::7][: len(ms[1::7])]  # repeated milliseconds (several prints at one time)
    ms = np.sort(ms)
    q = np.searchsorted(secs * 1000 + 1000, ms, side="right") - 1  # the last quote second that has ended
    side = rng.choice([1, -1], size=n_trades)
    at_mid = rng.random(n_trades) < mid_share
    price = np.where(side > 0, ask[q], bid[q])
    price = np.where(at_mid, mid2[q] * 50, price)
    side = np.where(at_mid, 0, side)
    susp = np.zeros(n_trades, dtype=np.int64)
    day_open, day_close = _ms_of(cal.session_open(day)), _ms_of(cal.session_close(day))
    rth = np.flatnonzero((ms >= day_open) & (ms < day_close))
    if suspicious_rth:
        susp[rth[np.linspace(10, len(rth) - 10, suspicious_rth).astype(int)]] = 1
    susp[0] = 1  # one flagged pre-market
    trades = pd.DataFrame({"ms": ms, "price": price.astype(np.int64), "size": rng.integers(1, 30, n_trades) * 10,
                           "exchange": rng.choice(list("QPZTK"), n_trades),
                           "condition": rng.choice(["1", "2000", "20000020", "20002020"], n_trades),
                           "suspicious": susp, "side": side})
    clean = trades[trades["suspicious"] == 0]
    g = clean.groupby(clean["ms"] // 1000 * 1000, sort=True)["price"]
    seconds = pd.DataFrame({"open": g.first(), "high": g.max(), "low": g.min(), "close": g.last(),
                            "volume": clean.groupby(clean["ms"] // 1000 * 1000)["size"].sum()})
    seconds = seconds.rename_axis("ms").reset_index()
    return TickDay(day, trades, quotes, seconds)


def _zip(path: Path, member: str, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    frame.to_csv(buf, header=False, index=False, lineterminator="\r\n")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, buf.getvalue())
    return path


def write_tick_files(root: Path, td: TickDay) -> dict[str, Path]:
    """Write one day's three zips under ``root/tick`` and ``root/second``; returns them by kind."""
    d = td.day.strftime("%Y%m%d")
    cols = ["ms", "price", "size", "exchange", "condition", "suspicious"]
    return {"trades": _zip(root / "tick" / f"{d}_trade.zip", f"{d}_spy_Trade_Tick.csv", td.trades[cols]),
            "quotes": _zip(root / "second" / f"{d}_quote.zip", f"{d}_spy_second_quote.csv", td.quotes),
            "seconds": _zip(root / "second" / f"{d}_trade.zip", f"{d}_spy_second_trade.csv", td.seconds)}


def write_tick_folder(root: Path, days=(NORMAL_DAY, EARLY_CLOSE_DAY), **kw) -> dict[dt.date, TickDay]:
    """Write :func:`tick_day` for each day into ``root`` (the AlgoSeek folder layout); returns the truth."""
    out = {}
    for i, day in enumerate(days):
        td = tick_day(day, seed=i, **kw)
        write_tick_files(root, td)
        out[day] = td
    return out


def bars(days=(NORMAL_DAY, EARLY_CLOSE_DAY), *, freq: str = "1min", start: str = "04:00", end: str = "20:00",
         seed: int = 0, base: float = 660.0, volume: bool = True) -> pd.DataFrame:
    """OHLCV bars on ``days`` from ``start`` to ``end`` (New York wall clock, naive ``datetime`` = bar start):
    a random walk close, open = previous close, high/low around them, integer volumes (zero when not
    ``volume``, as in an index file)."""
    rng = np.random.default_rng(seed)
    times = pd.DatetimeIndex(np.concatenate([
        pd.date_range(f"{d} {start}", f"{d} {end}", freq=freq, inclusive="left").to_numpy() for d in days]))
    n = len(times)
    close = np.round(base + np.cumsum(rng.normal(0, 0.05, n)), 2)
    open_ = np.round(np.r_[base, close[:-1]], 2)
    high = np.round(np.maximum(open_, close) + rng.uniform(0, 0.05, n), 2)
    low = np.round(np.minimum(open_, close) - rng.uniform(0, 0.05, n), 2)
    vol = rng.integers(100, 50_000, n) if volume else np.zeros(n, dtype=np.int64)
    return pd.DataFrame({"datetime": times, "open": open_, "high": high, "low": low, "close": close, "volume": vol})


def write_bars(path: Path, frame: pd.DataFrame, *, layout: str = "spy") -> Path:
    """Write ``frame`` (from :func:`bars`) in a real bar file's layout; gzipped when ``path`` ends ``.gz``."""
    t = pd.DatetimeIndex(frame["datetime"])
    if layout == "spy":
        out = frame.assign(datetime=t.strftime("%Y-%m-%d %H:%M:%S"))
    elif layout == "sp500":
        stamp = [f"{x.month}/{x.day}/{x.year} {x.hour}:{x.minute:02d}" for x in t]
        out = pd.DataFrame({"Date": stamp, "Open": frame["open"], "Close": frame["close"], "High": frame["high"],
                            "Low": frame["low"], "Volume": 0})
    elif layout == "googl":
        pacific = t.tz_localize("America/New_York").tz_convert("America/Los_Angeles").tz_localize(None)
        out = pd.DataFrame({"Timestamp": pacific.strftime("%Y-%m-%d %H:%M:%S"), "Close": frame["close"],
                            "High": frame["high"], "Low": frame["low"], "Open": frame["open"],
                            "Volume": frame["volume"]})
    else:
        raise ValueError(f"unknown layout {layout!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False, compression="gzip" if path.suffix == ".gz" else None)
    return path
