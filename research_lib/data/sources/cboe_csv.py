"""Cboe "delayed quotes → download CSV" quote tables: the 2021+ CSV and the old (2020) ``.dat``.

Both hold one row per (expiry, strike) with the call on the left and the put on the right::

    Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,Strike,Puts,Last Sale,...

above which two lines give the underlying and the moment:

* CSV (2021 onward), optionally preceded by a blank line and with trailing commas::

      Standard & Poors 500 Index,Last: 4500.5298,Change:  23.0898
      "Date: February 5 2022, 8:09 PM EST",Bid: 4420.5,Ask: 4615.4302,Size: 1*1,Volume: 0

  The date line comes in several locales: ``June 11, 2022, 8:47 PM EDT``, ``September 14, 2023 at
  4:31 PM EDT``, ``9 June 2023, 10:18 PM EDT``.
* ``.dat`` (2020)::

      SPY (SPDR S&P 500 ETF Trust),310.68,1.98
      Jun 22 2020 @ 20:42 ET,Bid,0,Ask,0,Size,0x0,Vol,74649389

  with ``Vol`` / ``Open Int`` in the header and expiries written ``06/22/2020``.

Roots, expiries, rights and strikes come from the OCC symbols (and are cross-checked against the
``Expiration Date`` and ``Strike`` columns); SPX (AM-settled monthlies) and SPXW (PM) rows of one file
stay separate contracts. The snapshot's date is the trading date its prices belong to
(:func:`research_lib.calendar.trading_date`): the session the header's moment falls in, else the last
session before it, so a Sunday download of Friday's close (``spx_2024-01-07.csv``) is a snapshot of
2024-01-05. ``quote_time`` keeps the header's moment (2024-01-07 10:52), and the ``perfiliev`` weekday
count still starts from the header's date (:func:`research_lib.gex.weekday_count_start`). Asking for the
header's date finds the snapshot too.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
from dateutil import parser as dateparser

from research_lib.calendar import trading_date
from research_lib.core.chain import (
    NY,
    ChainError,
    ChainSnapshot,
    UnreadableFileError,
    contracts_from_occ,
    parse_occ_symbols,
)
from research_lib.data.sources.base import ChainFormat, SnapshotNotFoundError, open_text

#: Weekly / PM roots → the underlying's symbol. Other roots are their own underlying.
ROOT_TO_UNDERLYING = {
    "SPXW": "SPX", "SPXPM": "SPX", "SPXQ": "SPX",
    "NDXP": "NDX", "NDXW": "NDX",
    "RUTW": "RUT", "RUTQ": "RUT",
    "VIXW": "VIX",
    "XSPW": "XSP",
    "DJXW": "DJX",
}

_SIDE = ["symbol", "last", "net", "bid", "ask", "volume", "iv", "delta", "gamma", "open_interest"]
_HEADER = ["Expiration Date", "Calls", "Last Sale", "Net", "Bid", "Ask", "Volume", "IV", "Delta", "Gamma",
           "Open Interest", "Strike", "Puts", "Last Sale", "Net", "Bid", "Ask", "Volume", "IV", "Delta",
           "Gamma", "Open Interest"]
_HEADER_ALIASES = {"Vol": "Volume", "Open Int": "Open Interest"}
_TZ_ABBREVIATIONS = {"EST", "EDT", "ET"}


def underlying_from_roots(roots: pd.Series, *, where: str) -> str:
    """The one underlying a set of OCC roots belongs to (``SPX`` for SPX + SPXW)."""
    mapped = {ROOT_TO_UNDERLYING.get(r, r) for r in roots.unique()}
    if len(mapped) != 1:
        raise ChainError(f"the file mixes underlyings {sorted(mapped)}", column="symbol", where=where)
    return mapped.pop()


def _lines(path: Path, n: int = 6) -> list[str]:
    with open_text(path) as fh:
        return [fh.readline() for _ in range(n)]


def _header_index(lines: list[str]) -> int | None:
    for i, line in enumerate(lines):
        if line.startswith("Expiration Date,Calls,"):
            return i
    return None


def _sniff_csv(head: str, columns) -> bool:
    if columns is not None:
        return False
    lines = head.splitlines()[:6]
    idx = _header_index([ln + "\n" for ln in lines])
    return idx is not None and any("Last:" in ln for ln in lines[:idx]) and any(
        "Date:" in ln for ln in lines[:idx])


def _sniff_dat(head: str, columns) -> bool:
    if columns is not None:
        return False
    lines = head.splitlines()[:6]
    idx = _header_index([ln + "\n" for ln in lines])
    return idx is not None and idx >= 2 and " @ " in lines[idx - 1] and "Last:" not in lines[idx - 2]


def parse_cboe_timestamp(text: str, *, where: str) -> pd.Timestamp:
    """Parse a Cboe header moment in any of its locales into a New York timestamp.

    ``"February 5 2022, 8:09 PM EST"``, ``"June 11, 2022, 8:47 PM EDT"``, ``"September 14, 2023 at
    4:31 PM EDT"``, ``"9 June 2023, 10:18 PM EDT"``, ``"Jun 22 2020 @ 20:42 ET"``.
    """
    s = text.strip().strip('"')
    s = re.sub(r"^Date:\s*", "", s)
    s = s.replace(" at ", " ").replace(" @ ", " ").replace(",", " ")
    tokens = s.split()
    if tokens and tokens[-1].upper() in _TZ_ABBREVIATIONS:
        tokens = tokens[:-1]
    elif tokens and re.fullmatch(r"[A-Z]{2,5}", tokens[-1]):
        raise ChainError(f"time zone {tokens[-1]!r} is not New York time", column="Date", n_bad=1,
                         example=text.strip(), where=where)
    try:
        naive = dateparser.parse(" ".join(tokens))
    except (ValueError, OverflowError) as exc:
        raise ChainError("unreadable quote date", column="Date", n_bad=1, example=text.strip(),
                         where=where) from exc
    return pd.Timestamp(naive).tz_localize(NY, ambiguous=True, nonexistent="shift_forward")


def _parse_number(text: str, *, what: str, where: str, example: str) -> float:
    try:
        value = float(text.replace(",", "").strip())
    except ValueError as exc:
        raise ChainError(f"{what} is not a number", column=what, n_bad=1, example=example,
                         where=where) from exc
    return value


def _read_table(path: Path, header_idx: int, where: str) -> pd.DataFrame:
    header = next(csv.reader([_lines(path, header_idx + 1)[header_idx]]))
    header = [_HEADER_ALIASES.get(h.strip(), h.strip()) for h in header]
    if header[:22] != _HEADER:
        raise ChainError("unexpected quote-table header", column="header", n_bad=1,
                         example=",".join(header[:22]), where=where)
    names = ["expiration_text", *[f"c_{c}" for c in _SIDE], "strike_text", *[f"p_{c}" for c in _SIDE]]
    with open_text(path) as fh:
        text = fh.read()
    rows = text.splitlines()[header_idx + 1:]
    body = "\n".join(rows)
    if not body.strip():
        raise ChainError("the quote table has no rows", where=where)
    last = next(csv.reader([next(r for r in reversed(rows) if r.strip())]))
    if len(last) < len(_HEADER):
        # A download cut short ends inside a row: say so, rather than which value of it is missing.
        raise UnreadableFileError(f"cannot read the file: the last row is cut short ({len(last)} of "
                                  f"{len(_HEADER)} fields): a truncated file", where=str(path))
    table = pd.read_csv(io.StringIO(body), header=None, names=names, usecols=range(22), index_col=False,
                        dtype=str, keep_default_na=False, skip_blank_lines=True)
    return table


def _wide_to_long(table: pd.DataFrame, where: str) -> tuple[pd.DataFrame, list[str]]:
    notes: list[str] = []
    sides = []
    for prefix, right in (("c_", "C"), ("p_", "P")):
        part = table[["expiration_text", "strike_text", *[prefix + c for c in _SIDE]]].copy()
        part.columns = ["expiration_text", "strike_text", *_SIDE]
        part["side"] = right
        sides.append(part)
    long = pd.concat(sides, ignore_index=True)
    no_symbol = long["symbol"].str.strip() == ""
    if no_symbol.any():
        notes.append(f"dropped {int(no_symbol.sum())} half-rows with no option symbol")
        long = long[~no_symbol].reset_index(drop=True)
    if long.empty:
        raise ChainError("the quote table has no contracts", where=where)
    occ = parse_occ_symbols(long["symbol"].str.strip(), where=where)
    bad = occ["right"] != long["side"]
    if bad.any():
        raise ChainError("a symbol in the puts/calls column is of the other right", column="symbol",
                         n_bad=int(bad.sum()), example=long.loc[bad, "symbol"].iloc[0], where=where)
    exp_col = pd.to_datetime(long["expiration_text"].str.strip(), errors="coerce", format="mixed")
    bad = exp_col.isna() | (exp_col.dt.normalize() != occ["expiration"])
    if bad.any():
        raise ChainError("Expiration Date disagrees with the OCC symbol", column="Expiration Date",
                         n_bad=int(bad.sum()),
                         example=f"{long.loc[bad, 'expiration_text'].iloc[0]} vs {long.loc[bad, 'symbol'].iloc[0]}",
                         where=where)
    strike_col = pd.to_numeric(long["strike_text"].str.replace(",", ""), errors="coerce")
    bad = strike_col.isna() | ~np.isclose(strike_col, occ["strike"], rtol=0, atol=1e-6)
    if bad.any():
        raise ChainError("Strike disagrees with the OCC symbol", column="Strike", n_bad=int(bad.sum()),
                         example=f"{long.loc[bad, 'strike_text'].iloc[0]} vs {long.loc[bad, 'symbol'].iloc[0]}",
                         where=where)
    # Empty cells mean "not given"; anything else must be a number (validation names the column).
    contracts = contracts_from_occ(occ, **{c: long[c].str.strip().replace("", np.nan)
                                           for c in ("bid", "ask", "last", "volume", "open_interest", "iv", "delta",
                                                     "gamma")})
    return contracts, notes


def _load(path: Path, date: dt.date | None, *, layout: str) -> ChainSnapshot:
    where = path.name
    lines = _lines(path)
    header_idx = _header_index(lines)
    if header_idx is None or header_idx < 2:
        raise ChainError("no 'Expiration Date,Calls,...' header in the first lines", where=where)
    first = next(csv.reader([lines[header_idx - 2]]))
    second = next(csv.reader([lines[header_idx - 1]]))
    if layout == "csv":
        last_field = next((f for f in first if f.strip().startswith("Last:")), None)
        if last_field is None:
            raise ChainError("no 'Last:' spot in the header", column="Last", where=where)
        spot = _parse_number(last_field.split(":", 1)[1], what="Last", where=where, example=last_field)
        quote_time = parse_cboe_timestamp(second[0], where=where)
        name_symbol = None
    else:
        spot = _parse_number(first[1], what="Last", where=where, example=",".join(first[:3]))
        quote_time = parse_cboe_timestamp(second[0], where=where)
        name_symbol = first[0].split("(")[0].strip() or None
    contracts, notes = _wide_to_long(_read_table(path, header_idx, where), where)
    underlying = underlying_from_roots(contracts["root"], where=where)
    if name_symbol and name_symbol.upper() != underlying:
        notes.append(f"header names {name_symbol}; roots say {underlying}")
    snapshot_date = trading_date(quote_time)
    if snapshot_date != quote_time.date():
        notes.append(f"prices of the {snapshot_date} session, downloaded {quote_time:%Y-%m-%d %H:%M %Z} "
                     f"(trading date {snapshot_date}; the quote time is the header's)")
    if date is not None and date not in (snapshot_date, quote_time.date()):
        header = "" if snapshot_date == quote_time.date() else f", downloaded {quote_time.date()}"
        raise SnapshotNotFoundError(f"the file holds one snapshot, of {snapshot_date}{header}, not {date}",
                                    where=where)
    return ChainSnapshot.create(underlying=underlying, spot=spot, quote_time=quote_time,
                                source=f"cboe_{layout}:{path.name}", contracts=contracts,
                                snapshot_date=snapshot_date, notes=notes)


def _scan(path: Path, *, layout: str) -> pd.DataFrame:
    snap = _load(path, None, layout=layout)
    return pd.DataFrame({"date": [snap.snapshot_date], "status": ["ok"], "reason": [""],
                         "rows": [len(snap.contracts)]})


def load_csv(path: Path, date: dt.date | None = None) -> ChainSnapshot:
    """Read a 2021+ Cboe quote-table CSV."""
    return _load(Path(path), date, layout="csv")


def load_dat(path: Path, date: dt.date | None = None) -> ChainSnapshot:
    """Read an old (2020) Cboe ``.dat`` quote table."""
    return _load(Path(path), date, layout="dat")


FORMATS = [
    ChainFormat("cboe_csv", "Cboe delayed-quotes download CSV (2021+)", _sniff_csv,
                lambda p: _scan(p, layout="csv"), load_csv),
    ChainFormat("cboe_dat", "Cboe delayed-quotes download .dat (2020 layout)", _sniff_dat,
                lambda p: _scan(p, layout="dat"), load_dat),
]
