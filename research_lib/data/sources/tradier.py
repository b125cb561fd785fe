"""Tradier market data: option chains with ORATS greeks, quotes, expirations, daily history.

Needs a Tradier API token in the environment variable ``TRADIER_TOKEN`` (read when the provider is
built; never a parameter, never printed). ``sandbox=True`` uses ``https://sandbox.tradier.com``
(sandbox tokens, delayed data); otherwise ``https://api.tradier.com``; ``$RESEARCH_LIB_TRADIER_URL``
points the provider at a mirror, proxy or test server instead.

Response shapes (checked on the recorded exchange in ``shared/data/api/tradier``)::

    GET /v1/markets/options/expirations?symbol=PLTR&includeAllRoots=true
        {"expirations": {"date": ["2024-06-28", "2024-07-05", ...]}}
    GET /v1/markets/options/chains?symbol=PLTR&expiration=2026-06-18&greeks=true
        {"options": {"option": [{"symbol": "PLTR260618P00013000", "root_symbol": "PLTR", "strike": 13.0,
                                  "option_type": "put", "bid": 0.0, "ask": 1.41, "last": 1.31,
                                  "volume": 1, "open_interest": 10,
                                  "greeks": {"delta": -0.096, "gamma": 0.0074, "mid_iv": 0.5907,
                                             "smv_vol": 0.57, "updated_at": "2024-06-28 14:58:59", ...}},
                                 ...]}}
    GET /v1/markets/quotes?symbols=PLTR
        {"quotes": {"quote": {"symbol": "PLTR", "last": 25.5, "bid": 25.49, "ask": 25.5,
                              "trade_date": 1719589861696, "bid_date": ..., "ask_date": ..., ...}}}
    GET /v1/markets/history?symbol=AAPL&interval=daily&start=...&end=...
        {"history": {"day": [{"date": "2012-05-25", "open": ..., "high": ..., "low": ..., "close": ...,
                              "volume": ...}, ...]}}

Tradier collapses a one-element list into the bare object (``{"option": {...}}``) and writes "no
result" as ``null`` (``{"options": null}``); both are normalised here. Rate limits come in the
``X-Ratelimit-Allowed/Used/Available/Expiry`` headers, which :class:`~research_lib.sources.http.HttpClient`
honours on HTTP 429. Epoch fields (``trade_date``, ``bid_date``) are UTC milliseconds; ORATS'
``greeks.updated_at`` is UTC wall time.

Implied volatility: ``greeks.mid_iv`` (ORATS' IV of the mid price). Where it is missing or 0 (no
two-sided quote), ``greeks.smv_vol`` (ORATS' smoothed surface volatility) is used instead and the
snapshot's notes say how many contracts took it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from research_lib.core.chain import NY, ChainSnapshot, contracts_from_occ, parse_occ_symbols
from research_lib.data.sources.base import json_number
from research_lib.data.sources.http import (
    ClientOwner,
    HttpClient,
    ProviderResponseError,
    ProviderTimeoutError,
    base_url_from_env,
    drop_settled,
    epoch_to_ny,
    make_client,
    require_env,
)

TRADIER_BASE_URL = "https://api.tradier.com"
TRADIER_SANDBOX_URL = "https://sandbox.tradier.com"
TOKEN_ENV = "TRADIER_TOKEN"
#: Environment variable naming another base URL (mirror, proxy, loopback test server).
URL_ENV = "RESEARCH_LIB_TRADIER_URL"
#: Index symbols whose chains also list other roots (SPX → SPXW, NDX → NDXP, RUT → RUTW ...).
INDEX_SYMBOLS = frozenset({"SPX", "NDX", "RUT", "VIX", "XSP", "DJX", "OEX", "XEO", "XND", "MRUT"})
HISTORY_COLUMNS = ("date", "open", "high", "low", "close", "volume")


@dataclasses.dataclass(frozen=True)
class Quote:
    """One underlying quote.

    Attributes
    ----------
    symbol : str
    last, bid, ask, prevclose : float
        Prices in the underlying's currency; NaN when absent.
    time : pandas.Timestamp or None
        The latest of the trade, bid and ask times (New York), None when Tradier gave none.
    description : str
    """

    symbol: str
    last: float
    bid: float
    ask: float
    prevclose: float
    time: pd.Timestamp | None
    description: str = ""

    @property
    def price(self) -> float:
        """``last`` when positive, else the bid/ask mid, else ``prevclose`` (NaN when none is usable)."""
        if self.last > 0:
            return self.last
        if self.bid > 0 and self.ask >= self.bid:
            return (self.bid + self.ask) / 2
        return self.prevclose if self.prevclose > 0 else math.nan


class TradierProvider(ClientOwner):
    """Tradier brokerage market data (``TRADIER_TOKEN``).

    Parameters
    ----------
    sandbox : bool
        Use ``https://sandbox.tradier.com`` (default False: ``https://api.tradier.com``).
    base_url : str, optional
        Override the host; default ``$RESEARCH_LIB_TRADIER_URL`` when set, else the sandbox or live host.
    client : HttpClient, optional
        A configured client; the token is added to its redaction list and sent per request.
    max_expirations : int
        At most this many expiries are fetched by :meth:`fetch_chain` (nearest first; default 120).
    chain_budget : float
        Seconds :meth:`fetch_chain` may take in all, its requests and their retries included (default
        300); each request gets at most what is left of it.
    **client_options
        Passed to :class:`~research_lib.sources.http.HttpClient`.

    Raises
    ------
    MissingCredentialsError
        ``TRADIER_TOKEN`` is not set (no request is made).
    """

    name = "tradier"

    def __init__(self, *, sandbox: bool = False, base_url: str | None = None, client: HttpClient | None = None,
                 max_expirations: int = 120, chain_budget: float = 300.0, **client_options: Any):
        token = require_env(self.name, TOKEN_ENV, "a Tradier API access token; sandbox tokens need sandbox=True")
        self._auth = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        url = base_url or base_url_from_env(URL_ENV, TRADIER_SANDBOX_URL if sandbox else TRADIER_BASE_URL)
        self.sandbox = sandbox
        self.max_expirations = int(max_expirations)
        if not (math.isfinite(chain_budget) and chain_budget > 0):
            raise ValueError(f"chain_budget must be positive seconds, got {chain_budget!r}")
        self.chain_budget = float(chain_budget)
        self.client = make_client(self.name, url, client, secrets=(token,),
                                  headers=self._auth if client is None else None, **client_options)
        self._per_request = None if client is None else self._auth

    def __repr__(self) -> str:
        return f"TradierProvider(sandbox={self.sandbox}, {self.client!r})"

    # -- plumbing ------------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any], time_budget: float | None = None) -> dict:
        payload = self.client.get_json(path, params, headers=self._per_request, time_budget=time_budget)
        if not isinstance(payload, dict):
            raise ProviderResponseError(self.name, path,
                                        f"wrong schema: the top level is a {type(payload).__name__}, not an object")
        return payload

    def _items(self, payload: dict, outer: str, inner: str, path: str) -> list:
        """``payload[outer][inner]`` as a list: ``null`` → [], a bare object → [object]."""
        if outer not in payload:
            raise ProviderResponseError(self.name, path, f"wrong schema: missing {outer}")
        node = payload[outer]
        if node is None or node == "null":
            return []
        if not isinstance(node, dict):
            raise ProviderResponseError(self.name, path,
                                        f"wrong schema: {outer} is a {type(node).__name__}, not an object")
        items = node.get(inner)
        if items is None:
            return []
        if isinstance(items, dict | str):
            return [items]
        if not isinstance(items, list):
            raise ProviderResponseError(self.name, path, f"wrong schema: {outer}.{inner} is a "
                                        f"{type(items).__name__}, not a list")
        return items

    @staticmethod
    def _symbol(symbol: str) -> str:
        s = str(symbol).strip().upper().lstrip("_^$")
        if not s or not all(c.isalnum() or c in "./" for c in s) or len(s) > 12:
            raise ValueError(f"not a ticker symbol: {symbol!r}")
        return s

    # -- endpoints -------------------------------------------------------------------------------------

    def expirations(self, symbol: str) -> list[dt.date]:
        """The listed expiry dates of ``symbol`` (all roots), ascending.

        Raises
        ------
        ProviderError
            Transport failures, bad bodies, "wrong schema: ..." naming the missing key.
        """
        sym = self._symbol(symbol)
        path = "/v1/markets/options/expirations"
        payload = self._get(path, {"symbol": sym, "includeAllRoots": True, "strikes": False})
        dates = self._items(payload, "expirations", "date", path)
        try:
            out = sorted({dt.date.fromisoformat(str(d)) for d in dates})
        except ValueError:
            raise ProviderResponseError(self.name, path, f"wrong schema: expirations.date holds a non-date "
                                        f"({next(d for d in dates if not _is_iso(d))!r})") from None
        return out

    def quote(self, symbol: str) -> Quote:
        """The current quote of ``symbol``.

        Raises
        ------
        ProviderResponseError
            Unknown symbol (Tradier's ``unmatched_symbols``) or a body without ``quotes.quote``.
        """
        sym = self._symbol(symbol)
        path = "/v1/markets/quotes"
        payload = self._get(path, {"symbols": sym, "greeks": False})
        node = payload.get("quotes")
        if isinstance(node, dict) and node.get("unmatched_symbols") and not node.get("quote"):
            raise ProviderResponseError(self.name, path, f"unknown symbol {sym}")
        quotes = self._items(payload, "quotes", "quote", path)
        match = [q for q in quotes if isinstance(q, dict) and str(q.get("symbol", "")).upper() == sym]
        if not match:
            raise ProviderResponseError(self.name, path, f"wrong schema: no quote for {sym} in quotes.quote")
        q = match[0]
        when = epoch_to_ny([q.get("trade_date"), q.get("bid_date"), q.get("ask_date")], "ms")
        return Quote(symbol=sym, last=json_number(q.get("last")), bid=json_number(q.get("bid")), ask=json_number(q.get("ask")),
                     prevclose=json_number(q.get("prevclose")), time=when, description=str(q.get("description") or ""))

    def fetch_chain(self, symbol: str, expirations: Iterable[dt.date | str] | None = None) -> ChainSnapshot:
        """The option chain of ``symbol`` with ORATS greeks, one request per expiry.

        Parameters
        ----------
        symbol : str
            Underlying (``"SPX"``, ``"SPY"``). For index symbols every root is included (SPX + SPXW).
        expirations : iterable of date or ``YYYY-MM-DD``, optional
            The expiries to fetch; default every listed one (at most ``max_expirations``, nearest first).

        Returns
        -------
        ChainSnapshot
            ``source`` ``"tradier:SPX"``; ``spot`` the quote's last (else mid, else previous close);
            ``quote_time`` the quote's latest trade/bid/ask time (the fetch time when absent);
            ``iv`` from ``greeks.mid_iv`` (``smv_vol`` where that is missing, with a note).

        Raises
        ------
        ProviderError
            Any failed request; "empty chain: ..." when no expiry returned a contract.
        ChainError
            Contract values that fail validation.
        """
        sym = self._symbol(symbol)
        path = "/v1/markets/options/chains"
        notes: list[str] = []
        if expirations is None:
            exps = self.expirations(sym)
        else:
            exps = sorted({d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)) for d in expirations})
        if not exps:
            raise ProviderResponseError(self.name, "/v1/markets/options/expirations",
                                        f"empty chain: no expirations listed for {sym}")
        if len(exps) > self.max_expirations:
            notes.append(f"fetched the nearest {self.max_expirations} of {len(exps)} expiries")
            exps = exps[: self.max_expirations]
        started = time.monotonic()
        quote = self.quote(sym)
        rows: list[dict] = []
        empty: list[str] = []
        for i, exp in enumerate(exps):  # bounded: one request per expiry, all within chain_budget
            left = self.chain_budget - (time.monotonic() - started)
            if left <= 0:
                raise ProviderTimeoutError(self.name, path, f"the chain took longer than its {self.chain_budget:g} s "
                                           f"budget ({i} of {len(exps)} expiries fetched)")
            params = {"symbol": sym, "expiration": exp.isoformat(), "greeks": True}
            if sym in INDEX_SYMBOLS:
                params["includeAllRoots"] = True
            payload = self._get(path, params, time_budget=left)
            items = self._items(payload, "options", "option", path)
            bad = next((o for o in items if not isinstance(o, dict)), None)
            if bad is not None:
                raise ProviderResponseError(self.name, path,
                                            f"wrong schema: options.option holds a {type(bad).__name__}")
            if not items:
                empty.append(exp.isoformat())
            rows.extend(items)
        if empty:
            notes.append(f"{len(empty)} expir{'ies' if len(empty) > 1 else 'y'} returned no contracts "
                         f"({', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''})")
        if not rows:
            raise ProviderResponseError(self.name, path, f"empty chain: no contracts for {sym} in "
                                        f"{len(exps)} expir{'ies' if len(exps) > 1 else 'y'}")
        contracts, more_notes, greeks_time = self._contracts(rows, path)
        notes.extend(more_notes)
        spot = quote.price
        if not (spot > 0):
            raise ProviderResponseError(self.name, "/v1/markets/quotes",
                                        f"no usable price for {sym} (last, bid/ask and prevclose all missing)")
        quote_time = quote.time
        if quote_time is None:
            quote_time = pd.Timestamp.now(tz=NY).floor("s")
            notes.append("the quote carried no time: quote_time is the fetch time")
        if greeks_time is not None:
            notes.append(f"ORATS greeks updated {greeks_time:%Y-%m-%d %H:%M %Z}")
        contracts, dropped = drop_settled(contracts, quote_time)
        if dropped:
            notes.append(dropped)
        if contracts.empty:
            raise ProviderResponseError(self.name, path, f"empty chain: every {sym} contract had settled")
        return ChainSnapshot.create(underlying=sym, spot=spot, quote_time=quote_time, source=f"tradier:{sym}",
                                    contracts=contracts, notes=notes)

    def _contracts(self, rows: Sequence[dict], path: str) -> tuple[pd.DataFrame, list[str], pd.Timestamp | None]:
        table = pd.DataFrame.from_records(list(rows))
        for key in ("symbol", "open_interest"):
            if key not in table or table[key].isna().any():
                n = len(table) if key not in table else int(table[key].isna().sum())
                raise ProviderResponseError(self.name, path, f"wrong schema: {n} of {len(table)} options lack {key!r}")
        occ = parse_occ_symbols(table["symbol"].astype(str), where=f"tradier {path}")
        greeks = [g if isinstance(g, dict) else {} for g in
                  (table["greeks"] if "greeks" in table else [None] * len(table))]

        def greek(name: str) -> pd.Series:
            return pd.Series([json_number(g.get(name)) for g in greeks], index=table.index, dtype=float)

        iv = greek("mid_iv")
        smv = greek("smv_vol")
        use_smv = (iv.isna() | (iv <= 0)) & (smv > 0)
        iv = iv.where(~use_smv, smv)
        notes = []
        n_no_greeks = sum(1 for g in greeks if not g)
        if n_no_greeks:
            notes.append(f"{n_no_greeks} of {len(table)} contracts came without greeks")
        if use_smv.any():
            notes.append(f"iv is ORATS smv_vol on {int(use_smv.sum())} contracts without a mid_iv")
        updated = [g.get("updated_at") for g in greeks if g.get("updated_at")]
        greeks_time = None
        if updated:
            ts = pd.to_datetime(pd.Series(updated), errors="coerce").dropna()
            if not ts.empty:
                greeks_time = ts.max().tz_localize("UTC").tz_convert(NY)

        def col(name: str) -> pd.Series:
            return table[name] if name in table else pd.Series(np.nan, index=table.index)

        contracts = contracts_from_occ(occ, bid=col("bid"), ask=col("ask"), last=col("last"), volume=col("volume"),
                                       open_interest=table["open_interest"], iv=iv, delta=greek("delta"),
                                       gamma=greek("gamma"))
        dup = contracts.duplicated(["root", "expiration", "strike", "right"])
        if dup.any():  # the same expiry asked twice (or a vendor repeat): keep the first
            notes.append(f"dropped {int(dup.sum())} repeated contracts")
            contracts = contracts[~dup]
        return contracts.reset_index(drop=True), notes, greeks_time

    def daily_history(self, symbol: str, start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
        """Daily bars of ``symbol`` from ``start`` to ``end`` (inclusive).

        Returns
        -------
        DataFrame
            Columns ``date`` (datetime64, midnight), ``open, high, low, close`` (price units) and
            ``volume`` (shares/contracts), ascending by date; empty (same columns) when Tradier has no
            bars (``{"history": null}``).

        Raises
        ------
        ProviderResponseError
            A bar without a date or close ("wrong schema: ..."), or a non-numeric field.
        """
        sym = self._symbol(symbol)
        path = "/v1/markets/history"
        start_d = start if isinstance(start, dt.date) else dt.date.fromisoformat(str(start))
        end_d = end if isinstance(end, dt.date) else dt.date.fromisoformat(str(end))
        if end_d < start_d:
            raise ValueError(f"end {end_d} is before start {start_d}")
        payload = self._get(path, {"symbol": sym, "interval": "daily", "start": start_d, "end": end_d})
        days = self._items(payload, "history", "day", path)
        if not days:
            return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == "date" else float)
                                 for c in HISTORY_COLUMNS})
        table = pd.DataFrame.from_records([d for d in days if isinstance(d, dict)])
        if len(table) != len(days):
            raise ProviderResponseError(self.name, path, "wrong schema: history.day holds non-objects")
        for key in ("date", "close"):
            if key not in table or table[key].isna().any():
                raise ProviderResponseError(self.name, path, f"wrong schema: history.day entries lack {key!r}")
        out = pd.DataFrame({"date": pd.to_datetime(table["date"], format="%Y-%m-%d", errors="coerce")})
        if out["date"].isna().any():
            raise ProviderResponseError(self.name, path, "wrong schema: history.day has a date not YYYY-MM-DD")
        for c in HISTORY_COLUMNS[1:]:
            raw = table[c] if c in table else pd.Series(np.nan, index=table.index)
            num = pd.to_numeric(raw, errors="coerce")
            if (num.isna() & raw.notna()).any():
                raise ProviderResponseError(self.name, path, f"history.day {c!r} holds a non-number")
            out[c] = num.astype(float)
        out["date"] = out["date"].astype("datetime64[ns]")
        return out.sort_values("date", kind="stable").drop_duplicates("date").reset_index(drop=True)


def _is_iso(value: Any) -> bool:
    try:
        dt.date.fromisoformat(str(value))
    except ValueError:
        return False
    return True


__all__ = ["HISTORY_COLUMNS", "INDEX_SYMBOLS", "TOKEN_ENV", "TRADIER_BASE_URL", "URL_ENV", "TRADIER_SANDBOX_URL", "Quote",
           "TradierProvider"]
