"""Cboe delayed quotes as JSON: the live provider (no key) and a reader for saved responses.

``GET https://cdn.cboe.com/api/global/delayed_quotes/options/{SYMBOL}.json`` answers::

    {"timestamp": "2025-06-08 12:49:38",
     "data": {"options": [{"option": "SPY250609C00400000", "bid": 197.99, "ask": 200.1, "iv": 0.0,
                           "open_interest": 0.0, "volume": 2.0, "delta": 1.0, "gamma": 0.0, ...}, ...],
              "symbol": "SPY", "security_type": "stock", "current_price": 599.14,
              "last_trade_time": "2025-06-06T16:00:00", "iv30": 13.76, ...},
     "symbol": "SPY"}

Facts the parser relies on (checked on the recorded responses in ``shared/data/api/cboe``):

* Indices take a leading underscore in the URL and the top-level ``symbol`` (``_SPX``, ``_RUT``;
  ``data.symbol`` is ``^RUT``); ETFs and stocks none. :data:`INDEX_SYMBOLS` lists the roots the provider
  prefixes; a symbol passed with its underscore is used as is.
* ``timestamp`` is the feed's fetch moment in **UTC** without a zone (``"2025-06-05 03:44:39"`` is
  2025-06-04 23:44:39 New York, hours after the 06-04 close the file reflects; the SPX EOD archive's
  ``feed_timestamp`` column, taken from the same field, is documented as UTC). ``quote_time`` is that
  moment in New York. ``data.last_trade_time`` (the underlying's last trade, New York wall time) names
  the session the prices belong to and becomes ``snapshot_date`` (a Sunday download of Friday's close
  gets Friday); without it ``snapshot_date`` is ``quote_time``'s date.
* Contracts are read by key, never by position (the 2023 files order ``theta, rho, vega``, the 2025
  files ``vega, theta, rho``). Root, expiry, right and strike come from the OCC ``option`` symbol; the
  settlement style from the root (RUT monthlies AM, RUTW weeklies PM; SPX/SPXW alike).
* Greeks and IV are rounded to 4 decimals: about 12% of SPY gammas are exactly 0. The vendor column is
  kept as given (validation turns 0 into NaN) and the snapshot's notes say how many were 0; the GEX
  engine recomputes gamma from IV anyway. ``last_trade_price`` is 0 exactly when ``last_trade_time`` is
  null (no trade): ``last`` is NaN there.
* Files fetched after a close still list that day's expiry (the 2025-06-05 RUT file lists 06-04):
  contracts whose settlement moment is at or before ``quote_time`` are dropped, with a note.

Recorded responses: SPY 9,072 contracts / 32 expiries (none expired); QQQ 8,096; IWM 4,314; RUT
2025-06-05 7,882 listed of which 276 (06-04) expired; RUT 2023-09-21 6,680 listed, 338 (09-20) expired.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from research_lib.core.chain import NY, ChainError, ChainSnapshot, contracts_from_occ, parse_occ_symbols
from research_lib.data.sources.base import ChainFormat, SnapshotNotFoundError, open_text
from research_lib.data.sources.http import (
    ClientOwner,
    HttpClient,
    ProviderResponseError,
    drop_settled,
    json_truncated,
    make_client,
)

CBOE_BASE_URL = "https://cdn.cboe.com"
#: Path of one underlying's delayed quotes; ``{}`` is the Cboe symbol (``_SPX``, ``SPY``).
CBOE_ENDPOINT = "/api/global/delayed_quotes/options/{}.json"

#: Index underlyings: Cboe's URL and payload spell them with a leading underscore (``_SPX``).
INDEX_SYMBOLS = frozenset({
    "SPX", "XSP", "NDX", "XND", "RUT", "MRUT", "VIX", "DJX", "OEX", "XEO", "MXEA", "MXEF",
})

#: Weekly / PM roots → underlying, used only when a payload names no symbol.
_ROOT_TO_UNDERLYING = {"SPXW": "SPX", "NDXP": "NDX", "RUTW": "RUT", "VIXW": "VIX", "XSPW": "XSP", "DJXW": "DJX"}
_SYMBOL_RE = re.compile(r"^_?[A-Z][A-Z0-9.]{0,9}$")
_NUMERIC = ("bid", "ask", "volume", "open_interest", "iv", "delta", "gamma")
#: How many days before the fetch the underlying's last trade may be and still name the session.
_MAX_SESSION_LAG_DAYS = 5


def cboe_symbol(symbol: str) -> str:
    """The symbol as Cboe spells it in the URL: ``"SPX"`` → ``"_SPX"``, ``"SPY"`` → ``"SPY"``.

    A leading underscore given by the caller is kept. Raises ``ValueError`` for anything that is not
    a plausible ticker (which would otherwise become part of a URL path).
    """
    s = str(symbol).strip().upper()
    if not _SYMBOL_RE.match(s):
        raise ValueError(f"not a ticker symbol: {symbol!r}")
    if s.startswith("_"):
        return s
    return f"_{s}" if s in INDEX_SYMBOLS else s


def parse_cboe_timestamp_utc(value: Any, *, fail: Callable[[str], Exception]) -> pd.Timestamp:
    """Cboe's top-level ``timestamp`` (UTC wall time, ``"2025-06-08 12:49:38"``) in New York time."""
    if not isinstance(value, str) or not value.strip():
        raise fail(f"wrong schema: timestamp is {value!r}, not a date-time string")
    try:
        ts = pd.Timestamp(value.strip())
    except (ValueError, TypeError):
        raise fail(f"unreadable timestamp {value!r}") from None
    if ts is pd.NaT:
        raise fail(f"unreadable timestamp {value!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
    return ts.tz_convert(NY)


def _session_date(data: dict, quote_time: pd.Timestamp) -> tuple[dt.date, str | None]:
    """The trading date the prices belong to, from ``data.last_trade_time`` (New York wall time)."""
    raw = data.get("last_trade_time")
    try:
        last = pd.Timestamp(raw) if isinstance(raw, str) and raw.strip() else None
    except (ValueError, TypeError):
        last = None
    if last is None or last is pd.NaT:
        return quote_time.date(), None
    if last.tzinfo is not None:
        last = last.tz_convert(NY).tz_localize(None)
    lag = (quote_time.date() - last.date()).days
    if 0 <= lag <= _MAX_SESSION_LAG_DAYS:
        if lag == 0:
            return last.date(), None
        return last.date(), (f"prices of the {last.date()} session (underlying's last trade {last:%Y-%m-%d %H:%M} "
                             f"ET), fetched {quote_time:%Y-%m-%d %H:%M %Z}")
    return quote_time.date(), f"underlying's last trade {raw!r} ignored ({lag} days from the fetch)"


def parse_cboe_chain(payload: Any, *, source: str, where: str | None = None,
                     fail: Callable[[str], Exception] | None = None,
                     expect_underlying: str | None = None) -> ChainSnapshot:
    """Turn a Cboe delayed-quotes JSON payload into a validated :class:`ChainSnapshot`.

    Parameters
    ----------
    payload : object
        The decoded JSON (see the module docstring for its shape).
    source : str
        The snapshot's source name (``"cboe:SPX"``, ``"cboe_json:2025-06-08_SPY_options.json.gz"``).
    where : str, optional
        Label for error messages (defaults to ``source``).
    fail : callable(message) -> Exception, optional
        Builds the exception for a structural problem (missing key, wrong type, empty chain). The
        default raises :class:`ChainError`; the provider raises :class:`ProviderResponseError`.
    expect_underlying : str, optional
        The symbol asked for (without underscore); a payload for another underlying is an error.

    Returns
    -------
    ChainSnapshot
        Contracts settled at or before ``quote_time`` removed; vendor gamma 0 → NaN (validation).

    Raises
    ------
    ChainError
        Bad contract values (the column, count and an example), or ``fail``'s exception type for the
        payload's structure: "wrong schema: missing data.options", "empty chain: ...".
    """
    where = where or source
    if fail is None:
        def fail(message: str) -> Exception:
            return ChainError(message, where=where)

    if not isinstance(payload, dict):
        raise fail(f"wrong schema: the top level is a {type(payload).__name__}, not an object")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise fail("wrong schema: missing data" if data is None
                   else f"wrong schema: data is a {type(data).__name__}, not an object")
    if "options" not in data:
        raise fail("wrong schema: missing data.options")
    options = data["options"]
    if not isinstance(options, list):
        raise fail(f"wrong schema: data.options is a {type(options).__name__}, not a list")
    if not options:
        raise fail("empty chain: data.options is an empty list")
    bad = next((i for i, o in enumerate(options) if not isinstance(o, dict)), None)
    if bad is not None:
        raise fail(f"wrong schema: data.options[{bad}] is a {type(options[bad]).__name__}, not an object")

    if "timestamp" not in payload:
        raise fail("wrong schema: missing timestamp")
    quote_time = parse_cboe_timestamp_utc(payload["timestamp"], fail=fail)
    if "current_price" not in data:
        raise fail("wrong schema: missing data.current_price")
    spot = data["current_price"]
    if isinstance(spot, bool) or not isinstance(spot, int | float) or not math.isfinite(spot) or spot <= 0:
        raise fail(f"bad data.current_price {spot!r}: not a positive price")

    table = pd.DataFrame.from_records(options)
    for key in ("option", "open_interest"):
        missing = table[key].isna() if key in table else pd.Series(True, index=table.index)
        if missing.any():
            first = int(np.flatnonzero(missing.to_numpy())[0])
            raise fail(f"wrong schema: {int(missing.sum())} of {len(table)} options lack {key!r} "
                       f"(first: data.options[{first}])")
    not_text = ~table["option"].map(lambda v: isinstance(v, str))
    if not_text.any():
        raise fail(f"wrong schema: {int(not_text.sum())} option symbols are not strings "
                   f"(e.g. {table.loc[not_text, 'option'].iloc[0]!r})")
    occ = parse_occ_symbols(table["option"], where=where)
    columns = {c: (table[c] if c in table else pd.Series(np.nan, index=table.index)) for c in _NUMERIC}
    # Cboe writes last_trade_price 0 (and last_trade_time null) for "no trade".
    last = table["last_trade_price"] if "last_trade_price" in table else pd.Series(np.nan, index=table.index)
    last_num = pd.to_numeric(last, errors="coerce")
    no_trade = last_num.fillna(0) == 0
    if "last_trade_time" in table:
        no_trade |= table["last_trade_time"].isna()
    last = last.where(~no_trade, np.nan)

    contracts = contracts_from_occ(occ, bid=columns["bid"], ask=columns["ask"], last=last, volume=columns["volume"],
                                   open_interest=columns["open_interest"], iv=columns["iv"], delta=columns["delta"],
                                   gamma=columns["gamma"])

    symbol = payload.get("symbol") or data.get("symbol")
    if isinstance(symbol, str) and symbol.strip():
        underlying = symbol.strip().upper().lstrip("_^")
    else:
        roots = {_ROOT_TO_UNDERLYING.get(r, r) for r in occ["root"].unique()}
        if len(roots) != 1:
            raise fail(f"wrong schema: no symbol and the roots name several underlyings {sorted(roots)}")
        underlying = roots.pop()
    if expect_underlying is not None and underlying != expect_underlying.upper().lstrip("_^"):
        raise fail(f"asked for {expect_underlying}, the response is for {underlying}")

    notes: list[str] = []
    listed = len(contracts)
    contracts, dropped = drop_settled(contracts, quote_time)
    if dropped:
        notes.append(dropped)
    if contracts.empty:
        raise fail(f"empty chain: all {listed} contracts had settled before {quote_time:%Y-%m-%d %H:%M %Z}")
    gamma = pd.to_numeric(contracts["gamma"], errors="coerce")
    n_zero = int((gamma == 0).sum())
    if n_zero:
        notes.append(f"vendor gamma is 0 on {n_zero} of {len(contracts)} contracts (Cboe rounds greeks to "
                     f"4 decimals): read as missing; recompute gamma from IV")
    snapshot_date, session_note = _session_date(data, quote_time)
    if session_note:
        notes.append(session_note)
    return ChainSnapshot.create(underlying=underlying, spot=float(spot), quote_time=quote_time, source=source,
                                contracts=contracts, snapshot_date=snapshot_date, notes=notes)


# --------------------------------------------------------------------------------------------------
# the live provider


class CboeProvider(ClientOwner):
    """Cboe's free delayed quotes (about 15 minutes delayed; no key, no documented rate limit).

    Parameters
    ----------
    base_url : str
        Default ``https://cdn.cboe.com``.
    client : HttpClient, optional
        A configured client (tests inject one pointing at a loopback server).
    **client_options
        Passed to :class:`~research_lib.sources.http.HttpClient` when ``client`` is not given
        (``timeout``, ``max_retries``, ``time_budget``, ``cache_ttl`` ...).

    Examples
    --------
    >>> snap = CboeProvider().fetch_chain("SPX")      # doctest: +SKIP
    >>> snap.source, snap.underlying                   # doctest: +SKIP
    ('cboe:SPX', 'SPX')
    """

    name = "cboe"

    def __init__(self, base_url: str = CBOE_BASE_URL, client: HttpClient | None = None, **client_options: Any):
        self.client = make_client(self.name, base_url, client, **client_options)

    def __repr__(self) -> str:
        return f"CboeProvider({self.client!r})"

    def fetch_chain(self, symbol: str) -> ChainSnapshot:
        """The whole delayed-quotes chain of ``symbol`` (``"SPX"``, ``"SPY"``, ``"_RUT"``).

        Returns
        -------
        ChainSnapshot
            ``source`` ``"cboe:SPX"``; ``underlying`` without underscore; ``quote_time`` the feed's
            timestamp in New York; notes on dropped settled contracts and zero vendor gammas.

        Raises
        ------
        ProviderError
            Transport failures and unusable bodies (see :mod:`research_lib.sources.http`);
            :class:`ProviderResponseError` for "wrong schema: ...", "empty chain: ..." or a payload for
            another underlying.
        ChainError
            Contract values that fail validation.
        ValueError
            ``symbol`` is not a ticker.
        """
        cs = cboe_symbol(symbol)
        path = CBOE_ENDPOINT.format(cs)
        payload = self.client.get_json(path)
        plain = cs.lstrip("_")

        def fail(message: str) -> Exception:
            return ProviderResponseError(self.name, path, message)

        return parse_cboe_chain(payload, source=f"cboe:{plain}", where=f"cboe {path}", fail=fail,
                                expect_underlying=plain)


# --------------------------------------------------------------------------------------------------
# saved responses


def _read_payload(path: Path) -> Any:
    where = path.name
    try:
        with open_text(path) as fh:
            text = fh.read()
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ChainError(f"cannot read the file (truncated or corrupt gzip? {exc})", where=where) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if json_truncated(text, exc):
            raise ChainError(f"truncated JSON: the text ends after {len(text)} characters ({exc.msg})",
                             where=where) from exc
        raise ChainError(f"not JSON ({exc.msg} at character {exc.pos})", where=where) from exc


def load_cboe_json(path: str | Path, date: dt.date | None = None) -> ChainSnapshot:
    """Read a saved Cboe delayed-quotes JSON response (``.json`` or ``.json.gz``).

    Parameters
    ----------
    path : path-like
        The saved body of ``GET .../delayed_quotes/options/{SYMBOL}.json``; gzip is detected by content.
    date : datetime.date, optional
        Must be ``None``, the snapshot's session date, or the date of its fetch (New York).

    Returns
    -------
    ChainSnapshot
        ``source`` ``"cboe_json:<file name>"``; otherwise as :meth:`CboeProvider.fetch_chain`.

    Raises
    ------
    ChainError
        Unreadable, truncated or non-JSON file; wrong structure; bad contract values.
    SnapshotNotFoundError
        ``date`` is neither of the file's dates.
    """
    p = Path(path)
    snap = parse_cboe_chain(_read_payload(p), source=f"cboe_json:{p.name}", where=p.name)
    if date is not None and date not in (snap.snapshot_date, snap.quote_time.date()):
        raise SnapshotNotFoundError(f"the file holds one snapshot, of {snap.snapshot_date}, not {date}",
                                    where=p.name)
    return snap


def _sniff(head: str, columns: tuple[str, ...] | None) -> bool:
    if columns is not None:
        return False
    text = head.lstrip()
    return text.startswith("{") and '"data"' in text and '"options"' in text


def _scan(path: Path) -> pd.DataFrame:
    snap = load_cboe_json(path)
    return pd.DataFrame({"date": [snap.snapshot_date], "status": ["ok"], "reason": [""],
                         "rows": [len(snap.contracts)]})


FORMATS = [
    ChainFormat("cboe_json", "Cboe delayed-quotes JSON response (optionally gzipped)", _sniff, _scan,
                load_cboe_json),
]

__all__ = [
    "CBOE_BASE_URL",
    "CBOE_ENDPOINT",
    "FORMATS",
    "INDEX_SYMBOLS",
    "CboeProvider",
    "cboe_symbol",
    "load_cboe_json",
    "parse_cboe_chain",
    "parse_cboe_timestamp_utc",
]
