"""Synthetic data files written at test time, so a fresh clone (no ``../shared``) tests every reader.

The chain is the modelled SPX chain (:func:`research_lib.modelled.modelled_chain`: known spot, date and
contracts), written out in each file format research_lib reads, in that format's real layout (see
``../shared/data/SOURCES.md`` and ``research_lib/sources/*.py``):

=========================== ======================================================================
writer                      layout
=========================== ======================================================================
:func:`write_cboe_csv`      Cboe "download CSV" quote table (2021+), header variants selectable
:func:`write_cboe_dat`      Cboe's old (2020) ``.dat`` quote table (``Vol``/``Open Int``, MM/DD/YYYY)
:func:`write_cboe_json`     a saved Cboe delayed-quotes JSON response (optionally gzipped)
:func:`write_eod_archive`   the multi-day EOD Parquet archive (``file_date, price_date ... flag``)
:func:`write_intraday_archive` the intraday scrape Parquet archive (``optionroot, quotedate ...``)
:func:`write_ivolatility`   the iVolatility "EOD Raw IV" CSV (optionally gzipped)
:func:`write_market_history` SPX daily, VIX/VIX9D/VIX3M/VVIX/SKEW, DFF, DGS3MO, IRX, SqueezeMetrics GEX
=========================== ======================================================================

Every value written is one of the snapshot's (rounded as the vendor rounds), so a test can assert that
reading the file back gives the snapshot's contracts. Only the public import paths are used.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from research_lib.core.chain import NY, ChainSnapshot
from research_lib.data.modelled import modelled_chain

#: The fixture chain's trading date, a plain Wednesday (no 0DTE AM monthly, no holiday near it).
CHAIN_DATE = dt.date(2024, 3, 6)
#: The last day of the synthetic market history (= the chain's date: the chain is "today").
HISTORY_END = CHAIN_DATE
#: Sessions in the synthetic market history (2007-06..2024-03: as long as a real download, more than a
#: 252-day IV rank and a 365-day dividend window need). The series are defined backwards from the end.
HISTORY_SESSIONS = 4200
#: Inputs of the fixture chain (spot is the synthetic history's close on CHAIN_DATE).
CHAIN_VIX = 15.0
CHAIN_RATE = 0.05
CHAIN_DIV_YIELD = 0.013
#: Expiries kept in the CHAIN_DATE chain (None: all 50, 0DTE+1 to LEAPS, ~15k contracts); the other days'
#: chains keep their nearest 6 (a full chain for each would make the tests slow for nothing).
MAX_EXPIRIES = None

#: Archive days: file_date -> (price_date, flag). 03-02 is a weekend duplicate of 03-01 (skipped),
#: 03-04..03-06 three consecutive clean sessions. The spot of each day is the synthetic history's close.
EOD_DAYS = {
    dt.date(2024, 3, 1): (dt.date(2024, 3, 1), "OK"),
    dt.date(2024, 3, 2): (dt.date(2024, 3, 1), "DROP_WEEKEND"),
    dt.date(2024, 3, 4): (dt.date(2024, 3, 4), "OK"),
    dt.date(2024, 3, 5): (dt.date(2024, 3, 5), "OK"),
    dt.date(2024, 3, 6): (dt.date(2024, 3, 6), "OK"),
}
#: Intraday archive quote dates: 2024-02-19 is Presidents' Day (a holiday repeat of 02-16: skipped).
INTRADAY_DAYS = (dt.date(2024, 2, 16), dt.date(2024, 2, 19), dt.date(2024, 3, 5))
#: iVolatility days.
IVOL_DAYS = (dt.date(2024, 3, 1), dt.date(2024, 3, 5))


# --------------------------------------------------------------------------------------------------
# the market history


@functools.lru_cache(maxsize=8)
def sessions(end: dt.date = HISTORY_END, n: int = HISTORY_SESSIONS) -> pd.DatetimeIndex:
    """The last ``n`` NYSE sessions up to ``end`` (tz-naive midnight dates)."""
    import exchange_calendars as xcals

    cal = xcals.get_calendar("XNYS", start="2000-01-01", end="2026-12-31")
    days = cal.sessions_in_range("2000-01-03", pd.Timestamp(end))
    return pd.DatetimeIndex(days[-n:]).tz_localize(None).rename("date")


def market_frame(end: dt.date = HISTORY_END, n: int = HISTORY_SESSIONS) -> pd.DataFrame:
    """The synthetic daily history every market file is cut from (a fresh copy; see :func:`_market_frame`)."""
    return _market_frame(end, n).copy()


@functools.lru_cache(maxsize=8)
def _market_frame(end: dt.date, n: int) -> pd.DataFrame:
    """Deterministic, smooth, plausible daily history ending on ``end`` (``n`` sessions).

    Columns: ``spx`` (close; rising ~10%/yr with a ±2% wave: 5,153 at the end), ``spxtr`` (total return
    at 1.3%/yr dividends), ``vix``, ``vix9d``, ``vix3m``, ``vvix``, ``skew``, ``dff`` (%), ``dgs3mo`` (%),
    ``irx`` (%, bank discount), ``sm_gex`` ($), ``dix``.
    """
    days = sessions(end, n)
    i = np.arange(n, dtype=float) - (n - 600)  # 0 on the 600th session before the end
    spx = 4100.0 * np.exp(0.0004 * i + 0.02 * np.sin(i / 9.0))
    spx = np.round(spx, 2)
    years = (days - days[0]).days.to_numpy() / 365.25
    spxtr = np.round(9000.0 * spx / spx[0] * np.exp(0.013 * years), 2)
    vix = np.round(15.0 + 3.0 * np.sin(i / 13.0) + 2.0 * np.cos(i / 37.0), 2)
    vix[-1] = CHAIN_VIX
    return pd.DataFrame({
        "spx": spx, "spxtr": spxtr, "vix": vix,
        "vix9d": np.round(vix - 0.8, 2), "vix3m": np.round(vix + 1.6, 2),
        "vvix": np.round(85.0 + 5.0 * np.sin(i / 11.0), 2), "skew": np.round(135.0 + 4.0 * np.cos(i / 17.0), 2),
        "dff": np.round(5.33 - 0.0005 * i, 2), "dgs3mo": np.round(5.45 - 0.0004 * i, 2),
        "irx": np.round(5.25 - 0.0005 * i, 3),
        "sm_gex": np.round(3e9 + 2e9 * np.sin(i / 7.0), 0), "dix": np.round(0.44 + 0.02 * np.sin(i / 5.0), 4),
    }, index=days)


def write_market_history(folder: Path, frame: pd.DataFrame | None = None) -> Path:
    """Write the market history files into ``folder`` in the real files' layouts (names and columns as
    in ``../shared/data/market``), so :mod:`research_lib.market` finds them by its name patterns."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    f = market_frame() if frame is None else frame
    iso = f.index.strftime("%Y-%m-%d")
    us = f.index.strftime("%m/%d/%Y")
    start, end = iso[0], iso[-1]
    spx = f["spx"].to_numpy()
    pd.DataFrame({"date": iso, "open": np.round(spx * 0.998, 2), "high": np.round(spx * 1.004, 2),
                  "low": np.round(spx * 0.994, 2), "close": spx, "spxtr_close": f["spxtr"].to_numpy(),
                  "source": "synthetic"}).to_csv(folder / f"spx_daily_{start}_{end}.csv", index=False)
    for name in ("VIX", "VIX9D", "VIX3M"):
        c = f[name.lower()].to_numpy()
        pd.DataFrame({"DATE": us, "OPEN": np.round(c * 1.01, 2), "HIGH": np.round(c * 1.05, 2),
                      "LOW": np.round(c * 0.96, 2), "CLOSE": c}).to_csv(folder / f"cboe_{name}_History.csv",
                                                                       index=False)
    pd.DataFrame({"DATE": us, "VVIX": f["vvix"].to_numpy()}).to_csv(folder / "cboe_VVIX_History.csv", index=False)
    pd.DataFrame({"DATE": us, "SKEW": f["skew"].to_numpy()}).to_csv(folder / "cboe_SKEW_History.csv", index=False)
    # FRED DFF is calendar-daily; DGS3MO writes "." on holidays (here: every Monday that is a session
    # is given, and one row is ".", as FRED does)
    cal_days = pd.date_range(f.index[0], f.index[-1], freq="D")
    dff = f["dff"].reindex(cal_days).ffill()
    pd.DataFrame({"date": cal_days.strftime("%Y-%m-%d"), "value": dff.to_numpy()}).to_csv(
        folder / f"fred_DFF_{start}_{end}.csv", index=False)
    dgs = f["dgs3mo"].map(lambda v: f"{v:.2f}").to_numpy().copy()
    dgs[len(dgs) // 2] = "."
    pd.DataFrame({"DATE": iso, "DGS3MO": dgs}).to_csv(folder / f"fred_DGS3MO_{start}_{end}.csv", index=False)
    pd.DataFrame({"date": iso, "irx_13w_tbill_yield_pct": f["irx"].to_numpy()}).to_csv(
        folder / f"irx_13week_tbill_{start}_{end}.csv", index=False)
    pd.DataFrame({"date": iso, "price": spx, "dix": f["dix"].to_numpy(), "gex": f["sm_gex"].to_numpy()}).to_csv(
        folder / f"squeezemetrics_dix_gex_{start}_{end}.csv", index=False)
    return folder


# --------------------------------------------------------------------------------------------------
# the chain


def fixture_chain(date: dt.date = CHAIN_DATE, *, spot: float | None = None, seed: int = 0,
                  max_expiries: int | None = MAX_EXPIRIES) -> ChainSnapshot:
    """The modelled SPX chain of ``date`` (spot: the synthetic history's close), cut to its nearest
    ``max_expiries`` expiries, quoted at the close. Inputs: :data:`CHAIN_VIX`, :data:`CHAIN_RATE`,
    :data:`CHAIN_DIV_YIELD`."""
    if spot is None:
        spot = float(market_frame()["spx"].get(pd.Timestamp(date), market_frame()["spx"].iloc[-1]))
    snap = modelled_chain("SPX", spot=spot, date=date.isoformat(), vix=CHAIN_VIX, rate=CHAIN_RATE,
                          div_yield=CHAIN_DIV_YIELD, seed=seed)
    if max_expiries is None:
        return snap
    c = snap.contracts
    keep = sorted(c["expiration"].unique())[:max_expiries]
    return snap.replace(contracts=c[c["expiration"].isin(keep)].reset_index(drop=True))


def occ_symbols(c: pd.DataFrame) -> pd.Series:
    """OCC symbols (root + YYMMDD + C/P + strike x 1000 in 8 digits) of a contract table."""
    strikes = np.round(c["strike"].to_numpy() * 1000).astype(np.int64)
    return pd.Series([f"{r}{e:%y%m%d}{k}{s:08d}" for r, e, k, s in
                      zip(c["root"], c["expiration"], c["right"], strikes, strict=True)], index=c.index)


def _cell(v, fmt: str = "{:g}", *, missing: str = "0") -> str:
    """A number as the Cboe table writes it; NaN (a value the vendor rounded to 0 or did not give) → ``missing``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return missing
    return fmt.format(v)


def _pairs(c: pd.DataFrame) -> pd.DataFrame:
    """One row per (root, expiry, strike) with the call's and the put's columns side by side."""
    key = ["root", "expiration", "strike"]
    calls = c[c["right"] == "C"].set_index(key)
    puts = c[c["right"] == "P"].set_index(key)
    both = calls.merge(puts, left_index=True, right_index=True, suffixes=("_c", "_p"), how="inner")
    if len(both) != len(calls) or len(both) != len(puts):
        raise ValueError("the chain does not list a call and a put at every (root, expiry, strike)")
    return both.reset_index().sort_values(["expiration", "root", "strike"], kind="stable")


def _side(row, s: str, sym: str) -> list[str]:
    g = lambda k: getattr(row, f"{k}_{s}")  # noqa: E731
    return [sym, _cell(g("last"), missing=""), "0", _cell(g("bid")), _cell(g("ask")), _cell(g("volume"), "{:.0f}"),
            _cell(g("iv")), _cell(g("delta")), _cell(g("gamma")), _cell(g("open_interest"), "{:.0f}")]


def _table_rows(snap: ChainSnapshot, expiry_fmt: str, strike_fmt: str) -> list[str]:
    both = _pairs(snap.contracts)
    rows = []
    for row in both.itertuples(index=False):
        k = int(round(row.strike * 1000))
        stem = f"{row.root}{row.expiration:%y%m%d}"
        call, put = f"{stem}C{k:08d}", f"{stem}P{k:08d}"
        rows.append(",".join([row.expiration.strftime(expiry_fmt), *_side(row, "c", call),
                              strike_fmt.format(row.strike), *_side(row, "p", put)]))
    return rows


CSV_HEADER = ("Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,Strike,Puts,"
              "Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest")
DAT_HEADER = ("Expiration Date,Calls,Last Sale,Net,Bid,Ask,Vol,IV,Delta,Gamma,Open Int,Strike,Puts,Last Sale,"
              "Net,Bid,Ask,Vol,IV,Delta,Gamma,Open Int")

#: Cboe's date-line locales (SOURCES.md), by name; ``{t}`` is the quote moment.
DATE_LINES = {
    "us_at": lambda t: f"{t:%B} {t.day}, {t:%Y} at {t.hour % 12 or 12}:{t:%M} {t:%p} {t.tzname()}",
    "us_comma": lambda t: f"{t:%B} {t.day}, {t:%Y}, {t.hour % 12 or 12}:{t:%M} {t:%p} {t.tzname()}",
    "us_plain": lambda t: f"{t:%B} {t.day} {t:%Y}, {t.hour % 12 or 12}:{t:%M} {t:%p} {t.tzname()}",
    "eu": lambda t: f"{t.day} {t:%B} {t:%Y}, {t.hour % 12 or 12}:{t:%M} {t:%p} {t.tzname()}",
}


def write_cboe_csv(path: Path, snap: ChainSnapshot, *, date_line: str = "us_at", leading_blank: bool = True,
                   trailing_commas: bool = False, gzipped: bool = False) -> Path:
    """``snap`` as a Cboe "delayed quotes → download CSV" file (2021+ layout).

    ``date_line`` picks the header's locale (:data:`DATE_LINES`); ``leading_blank`` the first blank line
    (missing in some files); ``trailing_commas`` the trailing commas some files have; ``gzipped`` writes
    it gzip-compressed (detected by content)."""
    t = snap.quote_time
    head = [f"S&P 500 INDEX,Last: {snap.spot:.4f},Change:  12.5",
            f'"Date: {DATE_LINES[date_line](t)}",Bid: {snap.spot - 50:.2f},Ask: {snap.spot + 50:.2f},Size: 1*1,'
            f"Volume: 0",
            CSV_HEADER]
    if leading_blank:
        head.insert(0, "")
    lines = head + _table_rows(snap, "%a %b %d %Y", "{:.2f}")
    if trailing_commas:
        lines = [ln + ",," if ln else ln for ln in lines]
    return _write_text(path, "\n".join(lines) + "\n", gzipped)


def write_cboe_dat(path: Path, snap: ChainSnapshot) -> Path:
    """``snap`` as Cboe's old (2020) ``.dat`` quote table."""
    t = snap.quote_time
    lines = [f"SPX (S&P 500 INDEX),{snap.spot:.2f},12.5",
             f"{t:%b} {t.day} {t:%Y} @ {t:%H:%M} ET,Bid,0,Ask,0,Size,0x0,Vol,0",
             DAT_HEADER, *_table_rows(snap, "%m/%d/%Y", "{:.3f}")]
    return _write_text(path, "\n".join(lines) + "\n", False)


def cboe_json_payload(snap: ChainSnapshot) -> dict:
    """A Cboe delayed-quotes JSON payload holding ``snap``: the fetch moment (UTC) is the quote time,
    ``last_trade_time`` the session's close (New York wall time)."""
    c = snap.contracts
    close = snap.quote_time.tz_convert(NY).strftime("%Y-%m-%dT%H:%M:%S")
    options = []
    for sym, row in zip(occ_symbols(c), c.itertuples(index=False), strict=True):
        nan0 = lambda v: 0.0 if v != v else float(v)  # noqa: E731  Cboe writes 0 for "no value"
        options.append({"option": sym, "bid": nan0(row.bid), "ask": nan0(row.ask), "iv": nan0(row.iv),
                        "open_interest": nan0(row.open_interest), "volume": nan0(row.volume),
                        "delta": nan0(row.delta), "gamma": nan0(row.gamma), "theta": 0.0, "rho": 0.0,
                        "vega": 0.0, "theo": 0.0, "last_trade_price": nan0(row.last),
                        "last_trade_time": None if row.last != row.last else close})
    stamp = snap.quote_time.tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S")
    return {"timestamp": stamp,
            "data": {"options": options, "symbol": f"_{snap.underlying}", "security_type": "index",
                     "current_price": snap.spot, "last_trade_time": close, "iv30": CHAIN_VIX},
            "symbol": f"_{snap.underlying}"}


def write_cboe_json(path: Path, snap: ChainSnapshot, *, gzipped: bool = False) -> Path:
    """``snap`` as a saved Cboe delayed-quotes JSON response (``data`` and ``options`` keys first, as the
    format sniffer reads the first 8 kB)."""
    return _write_text(path, json.dumps(cboe_json_payload(snap)), gzipped)


def eod_day_frame(snap: ChainSnapshot, file_date: dt.date, price_date: dt.date, flag: str) -> pd.DataFrame:
    """One file day of the EOD archive: contracts with OI > 0 in Cboe's symbol order (every SPX row
    before every SPXW one), no root column, gamma/iv 0 where the vendor gives none."""
    c = snap.contracts[snap.contracts["open_interest"] > 0]
    c = c.sort_values(["root", "expiration", "strike", "right"], kind="stable").reset_index(drop=True)
    fd = pd.Timestamp(file_date)
    return pd.DataFrame({
        "file_date": fd, "price_date": pd.Timestamp(price_date),
        "feed_timestamp": (pd.Timestamp(file_date) + pd.Timedelta(hours=21)).strftime("%Y-%m-%d %H:%M:%S"),
        "spot": snap.spot, "strike": c["strike"].to_numpy(),
        "dte": (c["expiration"] - fd).dt.days.to_numpy(), "cp": c["right"].to_numpy(),
        "oi": c["open_interest"].to_numpy().astype(np.int64), "gamma": c["gamma"].fillna(0.0).to_numpy(),
        "delta": c["delta"].fillna(0.0).to_numpy(), "iv": c["iv"].fillna(0.0).to_numpy(),
        "bid": c["bid"].to_numpy(), "ask": c["ask"].to_numpy(), "expiration": c["expiration"].to_numpy(),
        "flag": flag})


def write_eod_archive(path: Path, snaps: dict[dt.date, ChainSnapshot], days=None) -> Path:
    """The multi-day EOD archive: ``days`` maps file_date → (price_date, flag) (default :data:`EOD_DAYS`);
    each file day holds the snapshot of its price date (``snaps[price_date]``)."""
    days = EOD_DAYS if days is None else days
    frames = [eod_day_frame(snaps[price], file_date, price, flag) for file_date, (price, flag) in days.items()]
    table = pd.concat(frames, ignore_index=True)
    for col in ("feed_timestamp", "cp", "flag"):
        table[col] = table[col].astype("category")
    table.to_parquet(path, index=False)
    return Path(path)


def write_intraday_archive(path: Path, snaps: dict[dt.date, ChainSnapshot]) -> Path:
    """The intraday scrape archive: one block per quote date (``snaps`` keys; a non-session key is a
    holiday repeat of the day before and holds that day's rows)."""
    frames = []
    for quotedate, snap in snaps.items():
        c = snap.contracts
        frames.append(pd.DataFrame({
            "underlying": "SPX", "underlying_last": snap.spot, "exchange": "CBOE", "optionroot": occ_symbols(c),
            "type": c["right"].map({"C": "call", "P": "put"}), "expiration": c["expiration"],
            "quotedate": pd.Timestamp(quotedate), "strike": c["strike"], "last": c["last"],
            "net": 0.0, "bid": c["bid"], "ask": c["ask"], "volume": c["volume"].fillna(0).astype(np.int64),
            "openinterest": c["open_interest"].astype(np.int64), "impliedvol": c["iv"].fillna(0.0),
            "delta": c["delta"].fillna(0.0), "gamma": c["gamma"].fillna(0.0),
            "source_file": f"SPX_{quotedate:%Y%m%d}.csv"}))
    pd.concat(frames, ignore_index=True).to_parquet(path, index=False)
    return Path(path)


def write_ivolatility(path: Path, snaps: dict[dt.date, ChainSnapshot], *, gzipped: bool = True) -> Path:
    """The iVolatility "EOD Raw IV" CSV: one block per date; OCC symbols padded to a 6-character root
    (``SPXW  240308C05000000``), ``iv = -1`` where no IV was computed."""
    frames = []
    for day, snap in snaps.items():
        c = snap.contracts
        padded = [f"{r:<6}{s[len(r):]}" for r, s in zip(c["root"], occ_symbols(c), strict=True)]
        frames.append(pd.DataFrame({
            "symbol": "SPX", "exchange": "CBOE", "company_name": "S&P 500 Index (SPX)",
            "date": f"{day:%m/%d/%Y}", "stock_price_close": snap.spot, "option_symbol": padded,
            "option_expiration": c["expiration"].dt.strftime("%m/%d/%Y"), "strike": c["strike"],
            "call/put": c["right"], "style": "E", "ask": c["ask"], "bid": c["bid"],
            "mean_price": (c["ask"] + c["bid"]) / 2, "settlement": 0.0, "iv": c["iv"].fillna(-1.0),
            "volume": c["volume"].fillna(0).astype(np.int64), "open_interest": c["open_interest"].astype(np.int64),
            "stock_price_for_iv": snap.spot, "forward_price": snap.spot, "isinterpolated": "*",
            "delta": c["delta"].fillna(0.0), "vega": 0.0, "gamma": c["gamma"].fillna(0.0), "theta": 0.0,
            "rho": 0.0}))
    text = pd.concat(frames, ignore_index=True).to_csv(index=False)
    return _write_text(path, text, gzipped)


def _write_text(path: Path, text: str, gzipped: bool) -> Path:
    path = Path(path)
    path.write_bytes(gzip.compress(text.encode(), mtime=0) if gzipped else text.encode())
    return path


# --------------------------------------------------------------------------------------------------
# everything at once


@dataclasses.dataclass(frozen=True)
class SyntheticData:
    """The files of :func:`write_all` and the snapshots they hold."""

    root: Path
    market_dir: Path
    chain: ChainSnapshot                 #: the CHAIN_DATE snapshot every single-snapshot file holds
    files: dict[str, Path]               #: name → file (see :func:`write_all`)
    eod_snaps: dict[dt.date, ChainSnapshot]
    intraday_snaps: dict[dt.date, ChainSnapshot]
    ivol_snaps: dict[dt.date, ChainSnapshot]

    #: name → the format detect_format must report
    FORMATS = {"cboe_csv": "cboe_csv", "cboe_csv_no_blank": "cboe_csv", "cboe_csv_trailing": "cboe_csv",
               "cboe_csv_eu_date": "cboe_csv", "cboe_csv_comma_date": "cboe_csv", "cboe_csv_plain_date": "cboe_csv",
               "cboe_csv_gz": "cboe_csv", "cboe_dat": "cboe_dat", "cboe_json": "cboe_json",
               "cboe_json_gz": "cboe_json", "eod_archive": "spx_eod_archive",
               "intraday_archive": "cboe_intraday_archive", "ivolatility": "ivolatility_csv",
               "ivolatility_plain": "ivolatility_csv"}


def write_all(root: Path) -> SyntheticData:
    """Write every synthetic file under ``root`` (``root/market`` for the history)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    market = write_market_history(root / "market")
    chain = fixture_chain()
    files = {
        "cboe_csv": write_cboe_csv(root / "spx_synthetic.csv", chain),
        "cboe_csv_no_blank": write_cboe_csv(root / "spx_no_blank.csv", chain, leading_blank=False),
        "cboe_csv_trailing": write_cboe_csv(root / "spx_trailing.csv", chain, trailing_commas=True),
        "cboe_csv_eu_date": write_cboe_csv(root / "spx_eu.csv", chain, date_line="eu"),
        "cboe_csv_comma_date": write_cboe_csv(root / "spx_comma.csv", chain, date_line="us_comma"),
        "cboe_csv_plain_date": write_cboe_csv(root / "spx_plain.csv", chain, date_line="us_plain"),
        "cboe_csv_gz": write_cboe_csv(root / "spx_synthetic.csv.gz", chain, gzipped=True),
        "cboe_dat": write_cboe_dat(root / "spx_synthetic.dat", chain),
        "cboe_json": write_cboe_json(root / "spx_synthetic.json", chain),
        "cboe_json_gz": write_cboe_json(root / "spx_synthetic.json.gz", chain, gzipped=True),
    }
    # other days: smaller chains (modelled_chain takes a second or so each)
    days = {d: fixture_chain(d, max_expiries=6) for d in sorted({p for p, _ in EOD_DAYS.values()} | {
        *INTRADAY_DAYS, *IVOL_DAYS}) if d != CHAIN_DATE and pd.Timestamp(d) in sessions()}
    days[CHAIN_DATE] = chain
    eod_snaps = {p: days[p] for p in sorted({p for p, _ in EOD_DAYS.values()})}
    files["eod_archive"] = write_eod_archive(root / "spx_eod_synthetic.parquet", eod_snaps)
    intraday, sessions_ = {}, []
    for d in INTRADAY_DAYS:
        if d in days:
            prev = days[d]
            sessions_.append(d)
        intraday[d] = prev  # a non-session day repeats the day before, as the real archive does
    files["intraday_archive"] = write_intraday_archive(root / "spx_intraday_synthetic.parquet", intraday)
    ivol = {d: days[d] for d in IVOL_DAYS}
    files["ivolatility"] = write_ivolatility(root / "spx_ivolatility_synthetic.csv.gz", ivol)
    files["ivolatility_plain"] = write_ivolatility(root / "spx_ivolatility_synthetic.csv", ivol, gzipped=False)
    return SyntheticData(root=root, market_dir=market, chain=chain, files=files, eod_snaps=eod_snaps,
                         intraday_snaps={d: s for d, s in intraday.items() if d in sessions_}, ivol_snaps=ivol)
