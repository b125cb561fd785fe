"""Multi-day chain archives: one snapshot per trading day.

``spx_eod_archive`` — Parquet of daily Cboe JSON chains saved after the close
    Columns ``file_date, price_date, feed_timestamp, spot, strike, dte, cp, oi, gamma, delta, iv, bid, ask,
    expiration, flag``. A snapshot's date is the session its prices belong to (``price_date``). A file
    with ``flag == "OK"`` and ``price_date == file_date`` serves its day. A file whose prices are of another
    session is served as that session when it is the only copy of that close and its flag does not mark
    it as a duplicate or a stale fetch (``DROP``/``STALE``): the 2026 archive's file labelled 08-07 holds
    the 08-06 close (flag ``MISLABELED``) and is the 08-06 snapshot. The other unclean files repeat a
    session another file already serves (the weekend duplicate 06-13 of 06-12, the holiday files 06-19
    and 07-03 with the 06-18 and 07-02 closes, the pre-open fetch 06-23 of 06-22): they are skipped and
    :func:`scan` says why, quoting the file's own flag. The catalogue keeps the file's label in a
    ``file_date`` column (skipped rows are listed under it). There is no root column:
    SPX (AM-settled monthlies) and SPXW (PM) share (strike, expiry, right) on monthly expiries. The rows
    come in Cboe's symbol order — every ``SPX…`` symbol before every ``SPXW…`` one — so the SPXW block
    starts where the expiry sequence first steps back; rows before it get root ``SPX`` (AM), rows from
    it on ``SPXW`` (PM). Both rows are kept: they are different contracts and their exposures add. The
    split is checked: the SPX block may only hold the monthly (third-Friday, or holiday-shifted) and
    LEAPS expiries, and the result must have no duplicated contract. The quote time is the session close
    of ``price_date`` (the spot is the official close).

``cboe_intraday_archive`` — Parquet of daily intraday Cboe scrapes
    Columns ``underlying, underlying_last, exchange, optionroot, type, expiration, quotedate, strike, last,
    net, bid, ask, volume, openinterest, impliedvol, delta, gamma, source_file``. Roots from the OCC
    symbol. Quote dates that are not NYSE sessions are repeats of the previous day and are skipped. The
    scrape time is unknown: :data:`INTRADAY_ASSUMED_TIME` (12:45 ET, mid-session) is used and said in
    the snapshot's notes. The spot is ``underlying_last`` (the quotes match it; it is not the close).

``ivolatility_csv`` — iVolatility "EOD Raw IV" CSV (gzipped or not)
    Roots SPX (AM), SPXPM and SPXW (PM) from the padded OCC symbol; quote time is the session close.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from research_lib.calendar import is_session, session_close
from research_lib.core.chain import (
    NY,
    ChainError,
    ChainSnapshot,
    contracts_from_occ,
    parse_occ_symbols,
    settlement_for_root,
)
from research_lib.data.sources.base import ChainFormat, SnapshotNotFoundError, file_key, open_text
from research_lib.data.sources.cboe_csv import underlying_from_roots

EOD_COLUMNS = ("file_date", "price_date", "spot", "strike", "dte", "cp", "oi", "gamma", "delta", "iv",
               "bid", "ask", "expiration", "flag")
INTRADAY_COLUMNS = ("underlying", "underlying_last", "optionroot", "type", "expiration", "quotedate",
                    "strike", "bid", "ask", "volume", "openinterest", "impliedvol", "delta", "gamma")
IVOL_COLUMNS = ("symbol", "date", "stock_price_close", "option_symbol", "option_expiration", "strike",
                "call/put", "ask", "bid", "iv", "volume", "open_interest", "delta", "gamma")
#: Time of day assumed for the intraday archive, whose scrape time is not recorded.
INTRADAY_ASSUMED_TIME = dt.time(12, 45)


def _has(columns, required) -> bool:
    return columns is not None and set(required) <= set(columns)


def _pick_date(catalogue: pd.DataFrame, date: dt.date | None, where: str) -> dt.date:
    ok = catalogue[catalogue["status"] == "ok"]
    if ok.empty:
        raise SnapshotNotFoundError("the file holds no usable day", where=where)
    if date is None:
        return ok["date"].max()
    row = catalogue[catalogue["date"] == date]
    if row.empty:
        first, last = catalogue["date"].min(), catalogue["date"].max()
        raise SnapshotNotFoundError(f"no snapshot for {date} (the file covers {first}..{last})", where=where)
    if row["status"].iloc[0] != "ok":
        raise SnapshotNotFoundError(f"{date} is skipped: {row['reason'].iloc[0]}", where=where)
    return date


# --------------------------------------------------------------------------------------------------
# spx_eod_archive


def _scan_eod(path: Path) -> pd.DataFrame:
    return _scan_eod_cached(file_key(path)).copy()


@functools.lru_cache(maxsize=16)
def _scan_eod_cached(key: tuple[str, int, int]) -> pd.DataFrame:
    meta = pd.read_parquet(key[0], columns=["file_date", "price_date", "flag"])
    g = meta.groupby("file_date", observed=True, sort=True)
    cat = g.agg(price_date=("price_date", "first"), flag=("flag", "first"), rows=("flag", "size"))
    nflags = g["flag"].nunique()
    nprices = g["price_date"].nunique()
    clean = {pd.Timestamp(p).date() for f, p, flag in zip(cat.index, cat["price_date"], cat["flag"], strict=True)
             if str(flag) == "OK" and p == f}
    served: set[dt.date] = set()
    dates, status, reason = [], [], []
    for file_date, row in cat.iterrows():
        label = file_date.date()
        price = pd.Timestamp(row["price_date"]).date()
        flag = str(row["flag"])
        date, ok, why = label, False, ""
        if nflags.loc[file_date] != 1 or nprices.loc[file_date] != 1:
            why = "mixed flags or price dates within the day"
        elif flag == "OK" and price == label:
            ok = True
        elif price == label:
            why = f"flag {flag}"
        elif price in clean or price in served:
            why = f"flag {flag}; its prices are of {price}, a session served by its own file"
        elif not is_session(price) or flag.upper().startswith(("DROP", "STALE")):
            why = f"flag {flag}; prices are of {price}, not of the file date"
        else:
            # the only copy of that session's close, under another label: serve it as its trading date
            date, ok = price, True
            served.add(price)
        dates.append(date)
        status.append("ok" if ok else "skipped")
        reason.append(why)
    return pd.DataFrame({"date": dates, "status": status, "reason": reason, "rows": cat["rows"].to_numpy(),
                         "file_date": [d.date() for d in cat.index]})


def _is_monthly_or_leaps(exp: pd.Series) -> pd.Series:
    """Third-Friday expiries, or the Thursday before when that Friday is a holiday."""
    third_friday = (exp.dt.day_of_week == 4) & exp.dt.day.between(15, 21)
    holiday_thursday = (exp.dt.day_of_week == 3) & exp.dt.day.between(14, 20)
    return third_friday | holiday_thursday


def split_spx_spxw(day: pd.DataFrame, *, where: str) -> np.ndarray:
    """Roots for one day of the EOD archive, inferred from Cboe's symbol order (see module docstring).

    Returns an array of ``"SPX"`` / ``"SPXW"``. Raises :class:`ChainError` when the order does not
    have the expected shape.
    """
    exp = day["expiration"].to_numpy()
    steps_back = np.flatnonzero(exp[1:] < exp[:-1])
    roots = np.full(len(day), "SPXW", dtype=object)
    if len(steps_back) == 0:
        return roots
    split = int(steps_back[0]) + 1
    head = day["expiration"].iloc[:split]
    if not _is_monthly_or_leaps(head).all():
        bad = head[~_is_monthly_or_leaps(head)]
        raise ChainError("cannot tell SPX from SPXW rows: the leading (SPX) block holds a non-monthly "
                         "expiry", column="expiration", n_bad=len(bad), example=str(bad.iloc[0].date()),
                         where=where)
    roots[:split] = "SPX"
    return roots


def _file_dates(catalogue: pd.DataFrame) -> dict[dt.date, dt.date]:
    """Trading date → the file date holding its prices, for the usable days."""
    ok = catalogue[catalogue["status"] == "ok"]
    return dict(zip(ok["date"], ok["file_date"], strict=True))


def _load_eod(path: Path, date: dt.date | None) -> ChainSnapshot:
    catalogue = _scan_eod(path)
    if date is not None and not (catalogue["date"] == date).any():
        relabelled = catalogue[(catalogue["file_date"] == date) & (catalogue["status"] == "ok")]
        if len(relabelled):
            raise SnapshotNotFoundError(
                f"no snapshot for {date}: the file labelled {date} holds the close of "
                f"{relabelled['date'].iloc[0]} and is served as that date; the {date} close is missing",
                where=path.name)
    date = _pick_date(catalogue, date, path.name)
    file_date = _file_dates(catalogue)[date]
    day = pd.read_parquet(path, filters=[("file_date", "==", pd.Timestamp(file_date))])
    return _eod_snapshot(day.reset_index(drop=True), date, path, file_date=file_date)


def _load_eod_many(path: Path, dates: list[dt.date]) -> Iterator[ChainSnapshot]:
    files = _file_dates(_scan_eod(path))
    table = pd.read_parquet(path)
    wanted = pd.DatetimeIndex([pd.Timestamp(files[d]) for d in dates])
    table = table[table["file_date"].isin(wanted)]
    groups = dict(iter(table.groupby("file_date", sort=True)))
    for d in sorted(dates):
        yield _eod_snapshot(groups[pd.Timestamp(files[d])].reset_index(drop=True), d, path, file_date=files[d])


def _eod_snapshot(day: pd.DataFrame, date: dt.date, path: Path, *, file_date: dt.date | None = None
                  ) -> ChainSnapshot:
    where = path.name
    roots = split_spx_spxw(day, where=where)
    spot = day["spot"].unique()
    if len(spot) != 1:
        raise ChainError("several spot values in one day", column="spot", n_bad=len(spot),
                         example=float(spot[0]), where=where)
    contracts = pd.DataFrame({
        "root": roots,
        "expiration": day["expiration"],
        "settlement": [settlement_for_root(r) for r in roots],
        "strike": day["strike"],
        "right": day["cp"].astype(str),
        "bid": day["bid"], "ask": day["ask"], "last": np.nan, "volume": np.nan,
        "open_interest": day["oi"], "iv": day["iv"], "delta": day["delta"], "gamma": day["gamma"],
    })
    n_spx = int((roots == "SPX").sum())
    feed = str(day["feed_timestamp"].iloc[0]) if "feed_timestamp" in day else "unknown"
    notes = [f"roots inferred from Cboe symbol order: {n_spx} SPX (AM) rows, {len(day) - n_spx} SPXW (PM)",
             f"fetched {feed}; quote time set to the session close of {date}"]
    if file_date is not None and file_date != date:
        flag = str(day["flag"].iloc[0]) if "flag" in day else "?"
        notes.append(f"from the file labelled {file_date} (flag {flag!r}): its prices are the {date} close, "
                     f"served as {date}")
    return ChainSnapshot.create(underlying="SPX", spot=float(spot[0]), quote_time=session_close(date),
                                source=f"spx_eod_archive:{path.name}", contracts=contracts,
                                snapshot_date=date, notes=notes)


# --------------------------------------------------------------------------------------------------
# cboe_intraday_archive


def _scan_intraday(path: Path) -> pd.DataFrame:
    meta = pd.read_parquet(path, columns=["quotedate"])
    counts = meta.groupby("quotedate").size().sort_index()
    status, reason = [], []
    for qd in counts.index:
        if is_session(qd):
            status.append("ok")
            reason.append("")
        else:
            status.append("skipped")
            reason.append(f"{qd:%Y-%m-%d} is not an NYSE session (holiday/weekend repeat of an earlier day)")
    return pd.DataFrame({"date": [d.date() for d in counts.index], "status": status, "reason": reason,
                         "rows": counts.to_numpy()})


def _load_intraday(path: Path, date: dt.date | None) -> ChainSnapshot:
    where = path.name
    date = _pick_date(_scan_intraday(path), date, where)
    day = pd.read_parquet(path, filters=[("quotedate", "==", pd.Timestamp(date))]).reset_index(drop=True)
    occ = parse_occ_symbols(day["optionroot"], where=where)
    right = day["type"].str.lower().map({"call": "C", "put": "P"})
    if right.isna().any():
        bad = right.isna()
        raise ChainError("type must be call/put", column="type", n_bad=int(bad.sum()),
                         example=str(day.loc[bad, "type"].iloc[0]), where=where)
    mismatch = (occ["right"] != right) | (occ["expiration"] != day["expiration"].astype("datetime64[ns]"))
    if mismatch.any():
        raise ChainError("optionroot disagrees with type/expiration", column="optionroot",
                         n_bad=int(mismatch.sum()), example=str(day.loc[mismatch, "optionroot"].iloc[0]),
                         where=where)
    spot = day["underlying_last"].unique()
    if len(spot) != 1:
        raise ChainError("several underlying_last values in one day", column="underlying_last",
                         n_bad=len(spot), example=float(spot[0]), where=where)
    contracts = contracts_from_occ(
        occ, bid=day["bid"], ask=day["ask"], last=day["last"] if "last" in day else np.nan,
        volume=day["volume"], open_interest=day["openinterest"], iv=day["impliedvol"], delta=day["delta"],
        gamma=day["gamma"])
    quote_time = pd.Timestamp(dt.datetime.combine(date, INTRADAY_ASSUMED_TIME)).tz_localize(NY)
    notes = [f"scrape time unknown: {INTRADAY_ASSUMED_TIME:%H:%M} ET assumed",
             "spot is underlying_last (what the quotes match), not the close"]
    return ChainSnapshot.create(underlying=underlying_from_roots(occ["root"], where=where), spot=float(spot[0]),
                                quote_time=quote_time, source=f"cboe_intraday_archive:{path.name}",
                                contracts=contracts, snapshot_date=date, notes=notes)


# --------------------------------------------------------------------------------------------------
# ivolatility_csv


def _sniff_ivol(head: str, columns) -> bool:
    if columns is not None:
        return False
    first = head.splitlines()[0] if head else ""
    names = {c.strip() for c in first.split(",")}
    return set(IVOL_COLUMNS) <= names


def _read_ivol(path: Path) -> pd.DataFrame:
    with open_text(path) as fh:
        df = pd.read_csv(fh, dtype={"option_symbol": str, "call/put": str, "date": str, "option_expiration": str})
    df["date"] = pd.to_datetime(df["date"], format="%m/%d/%Y", errors="coerce")
    if df["date"].isna().any():
        bad = df["date"].isna()
        raise ChainError("date is not MM/DD/YYYY", column="date", n_bad=int(bad.sum()), where=path.name)
    return df


def _scan_ivol(path: Path) -> pd.DataFrame:
    df = _read_ivol(path)
    counts = df.groupby("date").size().sort_index()
    return pd.DataFrame({"date": [d.date() for d in counts.index], "status": "ok", "reason": "",
                         "rows": counts.to_numpy()})


def _load_ivol(path: Path, date: dt.date | None) -> ChainSnapshot:
    where = path.name
    df = _read_ivol(path)
    counts = df.groupby("date").size()
    catalogue = pd.DataFrame({"date": [d.date() for d in counts.index], "status": "ok", "reason": ""})
    date = _pick_date(catalogue, date, where)
    day = df[df["date"] == pd.Timestamp(date)].reset_index(drop=True)
    occ = parse_occ_symbols(day["option_symbol"].str.replace(r"\s+", "", regex=True), where=where)
    right = day["call/put"].str.strip().str.upper()
    if (occ["right"] != right).any():
        bad = occ["right"] != right
        raise ChainError("option_symbol disagrees with call/put", column="call/put", n_bad=int(bad.sum()),
                         example=str(day.loc[bad, "option_symbol"].iloc[0]), where=where)
    spot = day["stock_price_close"].unique()
    if len(spot) != 1:
        raise ChainError("several stock_price_close values in one day", column="stock_price_close",
                         n_bad=len(spot), example=float(spot[0]), where=where)
    # iVolatility writes -1 for "no IV computed": missing, not a negative volatility.
    no_iv = day["iv"] == -1
    iv = day["iv"].mask(no_iv)
    contracts = contracts_from_occ(occ, bid=day["bid"], ask=day["ask"], volume=day["volume"],
                                   open_interest=day["open_interest"], iv=iv, delta=day["delta"], gamma=day["gamma"])
    return ChainSnapshot.create(underlying=underlying_from_roots(occ["root"], where=where), spot=float(spot[0]),
                                quote_time=session_close(date), source=f"ivolatility_csv:{path.name}",
                                contracts=contracts, snapshot_date=date,
                                notes=["end-of-day file: quote time set to the session close",
                                       f"{int(no_iv.sum())} rows with iv = -1 (iVolatility's 'no value') read as missing"])


FORMATS = [
    ChainFormat("spx_eod_archive", "daily SPX Cboe-JSON chains after the close (Parquet)",
                lambda head, cols: _has(cols, EOD_COLUMNS), _scan_eod, _load_eod, _load_eod_many),
    ChainFormat("cboe_intraday_archive", "daily intraday Cboe scrapes (Parquet)",
                lambda head, cols: _has(cols, INTRADAY_COLUMNS), _scan_intraday, _load_intraday),
    ChainFormat("ivolatility_csv", "iVolatility EOD Raw IV CSV", _sniff_ivol, _scan_ivol, _load_ivol),
]
