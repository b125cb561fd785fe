"""Polygon.io: option chain snapshots (paginated), reference contracts, daily aggregates.

Needs ``POLYGON_API_KEY`` in the environment (``$RESEARCH_LIB_POLYGON_URL`` points the provider at a
mirror, proxy or test server instead of ``https://api.polygon.io``). The key travels as the ``apiKey`` query parameter on
every request, including each page of a paginated answer: Polygon's ``next_url`` does not carry it.
``next_url`` is only ever followed on the configured host (its path and cursor are kept, its host is
ignored), so the key never goes anywhere else; a page count limit (``max_pages``) and a repeated-cursor
check bound every pagination loop.

Shapes (from Polygon's own client-test recordings in ``shared/data/api/polygon``)::

    GET /v3/snapshot/options/AAPL?limit=250
        {"status": "OK", "request_id": "...", "next_url": "https://api.polygon.io/v3/snapshot/options/AAPL?cursor=...",
         "results": [{"details": {"ticker": "O:AAPL230616C00150000", "contract_type": "call",
                                  "expiration_date": "2023-06-16", "strike_price": 150, ...},
                      "greeks": {"delta": 0.64, "gamma": 0.0062, ...}, "implied_volatility": 0.357,
                      "last_quote": {"bid": 28.9, "ask": 29.25, "last_updated": <ns>, ...},
                      "last_trade": {"price": 29.25, ...}, "day": {"volume": 8, "close": 29, ...},
                      "open_interest": 8133,
                      "underlying_asset": {"price": 159.9606, "ticker": "AAPL", "last_updated": <ns>}}]}
    GET /v2/aggs/ticker/AAPL/range/1/day/2005-04-01/2005-04-04
        {"status": "OK", "results": [{"o": ..., "h": ..., "l": ..., "c": ..., "v": ..., "vw": ...,
                                      "t": <ms, the bar's New York midnight>, "n": ...}], ...}
    errors: {"status": "ERROR", "request_id": "...", "error": "Unknown API Key"} (HTTP 401); 429 per minute

Greeks and IV can be missing (deep in the money, or plans without them): they become NaN. A contract
without ``open_interest`` is dropped (validation requires it) with a note. For index chains pass
Polygon's index ticker (``I:SPX``, unverified against a live account); the snapshot's underlying is
then ``SPX``, and when the snapshot carries no underlying price :meth:`PolygonProvider.index_value`
supplies it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import numpy as np
import pandas as pd

from research_lib.core.chain import NY, ChainSnapshot, contracts_from_occ, parse_occ_symbols
from research_lib.data.sources.base import json_number
from research_lib.data.sources.http import (
    SECRET_PARAM_NAMES,
    ClientOwner,
    HttpClient,
    ProviderAuthError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
    base_url_from_env,
    drop_settled,
    epoch_to_ny,
    make_client,
    require_env,
)

logger = logging.getLogger("research_lib.http")

POLYGON_BASE_URL = "https://api.polygon.io"
KEY_ENV = "POLYGON_API_KEY"
#: Environment variable naming another base URL (mirror, proxy, loopback test server).
URL_ENV = "RESEARCH_LIB_POLYGON_URL"
#: Results per page asked of the snapshot endpoint (Polygon's maximum).
PAGE_LIMIT = 250
AGG_COLUMNS = ("date", "open", "high", "low", "close", "volume", "vwap")
CONTRACT_REFERENCE_COLUMNS = ("ticker", "root", "expiration", "strike", "right", "exercise_style",
                              "shares_per_contract")


def _dig(obj: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


class PolygonProvider(ClientOwner):
    """Polygon.io market data (``POLYGON_API_KEY``).

    Parameters
    ----------
    base_url : str, optional
        Default ``$RESEARCH_LIB_POLYGON_URL`` when set, else ``https://api.polygon.io``.
    client : HttpClient, optional
        A configured client (tests); the key is added to its redaction list.
    max_pages : int
        Most pages one paginated call may read (default 200: 50,000 contracts at 250 a page).
    chain_budget : float
        Seconds one paginated call may take in all, retries included (default 300); each page's
        request gets at most what is left of it.
    **client_options
        Passed to :class:`~research_lib.sources.http.HttpClient`.

    Raises
    ------
    MissingCredentialsError
        ``POLYGON_API_KEY`` is not set (no request is made).
    """

    name = "polygon"

    def __init__(self, *, base_url: str | None = None, client: HttpClient | None = None,
                 max_pages: int = 200, chain_budget: float = 300.0, **client_options: Any):
        self._key = require_env(self.name, KEY_ENV, "your Polygon.io API key")
        if not isinstance(max_pages, int) or max_pages < 1:
            raise ValueError(f"max_pages must be a positive integer, got {max_pages!r}")
        self.max_pages = max_pages
        if not (math.isfinite(chain_budget) and chain_budget > 0):
            raise ValueError(f"chain_budget must be positive seconds, got {chain_budget!r}")
        self.chain_budget = float(chain_budget)
        base_url = base_url or base_url_from_env(URL_ENV, POLYGON_BASE_URL)
        self.client = make_client(self.name, base_url, client, secrets=(self._key,), **client_options)

    def __repr__(self) -> str:
        return f"PolygonProvider(max_pages={self.max_pages}, {self.client!r})"

    # -- plumbing ------------------------------------------------------------------------------------

    @staticmethod
    def _ticker(symbol: str) -> str:
        s = str(symbol).strip().upper()
        core = s[2:] if s.startswith("I:") else s
        if not core or len(core) > 12 or not all(c.isalnum() or c in "." for c in core):
            raise ValueError(f"not a ticker symbol: {symbol!r}")
        return s

    def _get(self, path: str, params: dict[str, Any], time_budget: float | None = None) -> dict:
        payload = self.client.get_json(path, {**params, "apiKey": self._key}, time_budget=time_budget)
        if not isinstance(payload, dict):
            raise ProviderResponseError(self.name, path,
                                        f"wrong schema: the top level is a {type(payload).__name__}, not an object")
        status = str(payload.get("status", "")).upper()
        if status == "ERROR":
            message = payload.get("error") or payload.get("message") or "status ERROR"
            cls = ProviderAuthError if "key" in str(message).lower() else ProviderError
            raise cls(self.name, path, f"status ERROR: {message}")
        return payload

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[tuple[int, dict]]:
        """Each page of a paginated endpoint: ``(page number, payload)``; bounded by ``max_pages`` and
        ``chain_budget``."""
        seen: set[tuple] = set()
        page_path, page_params = path, dict(params)
        started = time.monotonic()
        for page in range(1, self.max_pages + 1):
            left = self.chain_budget - (time.monotonic() - started)
            if left <= 0:
                raise ProviderTimeoutError(self.name, path, f"pagination took longer than its {self.chain_budget:g} s "
                                           f"budget ({page - 1} pages read)")
            payload = self._get(page_path, page_params, time_budget=left)
            yield page, payload
            next_url = payload.get("next_url")
            if not next_url:
                return
            if not isinstance(next_url, str):
                raise ProviderResponseError(self.name, path, f"wrong schema: next_url is a {type(next_url).__name__}")
            parts = urlsplit(next_url)
            if parts.netloc and parts.netloc != urlsplit(self.client.base_url).netloc:
                logger.debug("%s next_url names host %s; following its path on %s", self.name, parts.netloc,
                             urlsplit(self.client.base_url).netloc)
            # Credentials in next_url (there should be none) are dropped; ours is added by _get.
            page_params = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True)
                           if k.lower() not in SECRET_PARAM_NAMES}
            page_path = parts.path or path
            if not page_path.startswith("/"):
                raise ProviderResponseError(self.name, path, "wrong schema: next_url has no path")
            key = (page_path, tuple(sorted(page_params.items())))
            if key in seen:
                raise ProviderResponseError(self.name, path, f"pagination loops: page {page + 1} repeats an "
                                            "earlier next_url")
            seen.add(key)
        raise ProviderError(self.name, path, f"pagination did not end after {self.max_pages} pages "
                            "(raise max_pages?)")

    def _results(self, payload: dict, path: str, *, required: bool) -> list:
        if "results" not in payload or payload["results"] is None:
            if required and str(payload.get("status", "")).upper() not in ("OK", "DELAYED"):
                raise ProviderResponseError(self.name, path, "wrong schema: missing results")
            return []
        results = payload["results"]
        if isinstance(results, dict):
            return [results]
        if not isinstance(results, list):
            raise ProviderResponseError(self.name, path, f"wrong schema: results is a {type(results).__name__}")
        return results

    # -- endpoints -------------------------------------------------------------------------------------

    def fetch_chain(self, symbol: str) -> ChainSnapshot:
        """Every option of ``symbol`` from the chain snapshot, following ``next_url`` page by page.

        Returns
        -------
        ChainSnapshot
            ``source`` ``"polygon:AAPL"``; ``spot`` the snapshot's ``underlying_asset.price`` (for an
            index without it, :meth:`index_value`); ``quote_time`` the latest
            ``underlying_asset.last_updated`` (else latest quote time, else the fetch time).

        Raises
        ------
        ProviderAuthError
            Unknown or missing key (HTTP 401 ``Unknown API Key``).
        ProviderRateLimitError
            429 whose wait does not fit the budget.
        ProviderResponseError
            "wrong schema: ...", "empty chain: ...", a pagination loop.
        ProviderError
            More than ``max_pages`` pages; other transport failures.
        ChainError
            Contract values that fail validation.
        """
        ticker = self._ticker(symbol)
        underlying = ticker[2:] if ticker.startswith("I:") else ticker
        path = f"/v3/snapshot/options/{quote(ticker, safe=':')}"
        results: list = []
        pages = 0
        for _, payload in self._pages(path, {"limit": PAGE_LIMIT}):
            pages += 1
            results.extend(self._results(payload, path, required=True))
        if not results:
            raise ProviderResponseError(self.name, path, f"empty chain: no contracts for {ticker}")
        notes = [f"{len(results)} results in {pages} page{'s' if pages > 1 else ''}"]
        errors = [r for r in results if isinstance(r, dict) and r.get("error")]
        rows = [r for r in results if isinstance(r, dict) and not r.get("error")]
        if len(rows) + len(errors) != len(results):
            raise ProviderResponseError(self.name, path, "wrong schema: results holds non-objects")
        if errors:
            notes.append(f"skipped {len(errors)} results carrying an error (e.g. {errors[0].get('error')})")
        tickers = pd.Series([_dig(r, "details", "ticker") for r in rows], dtype=object)
        lacking = tickers.isna() | ~tickers.map(lambda v: isinstance(v, str))
        if lacking.any():
            raise ProviderResponseError(self.name, path, f"wrong schema: {int(lacking.sum())} of {len(rows)} "
                                        "results lack details.ticker")
        oi = pd.Series([json_number(r.get("open_interest")) for r in rows], dtype=float)
        no_oi = oi.isna()
        if no_oi.all():
            raise ProviderResponseError(self.name, path, "wrong schema: no result carries open_interest")
        if no_oi.any():
            notes.append(f"dropped {int(no_oi.sum())} contracts without open_interest")
        keep = ~no_oi.to_numpy()
        rows = [r for r, k in zip(rows, keep, strict=True) if k]
        occ = parse_occ_symbols(tickers[keep].str.replace(r"^O:", "", regex=True).reset_index(drop=True),
                                where=f"polygon {path}")

        def series(*keys: str) -> pd.Series:
            return pd.Series([json_number(_dig(r, *keys)) for r in rows], dtype=float)

        last = series("last_trade", "price")
        last = last.where(last.notna(), series("day", "close"))
        contracts = contracts_from_occ(
            occ, bid=series("last_quote", "bid"), ask=series("last_quote", "ask"), last=last,
            volume=series("day", "volume"), open_interest=series("open_interest"), iv=series("implied_volatility"),
            delta=series("greeks", "delta"), gamma=series("greeks", "gamma"))
        n_no_greeks = int(contracts["gamma"].isna().sum())
        if n_no_greeks:
            notes.append(f"{n_no_greeks} contracts without a vendor gamma (deep in the money or not provided)")
        spot = next((p for p in series("underlying_asset", "price") if p > 0), math.nan)
        if not spot > 0:
            if ticker.startswith("I:"):
                spot = self.index_value(ticker)
                notes.append(f"spot from the index snapshot of {ticker}")
            else:
                raise ProviderResponseError(self.name, path, "wrong schema: no underlying_asset.price in any result")
        quote_time = (epoch_to_ny([_dig(r, "underlying_asset", "last_updated") for r in rows], "ns")
                      or epoch_to_ny([_dig(r, "last_quote", "last_updated") for r in rows], "ns"))
        if quote_time is None:
            quote_time = pd.Timestamp.now(tz=NY).floor("s")
            notes.append("no timestamps in the snapshot: quote_time is the fetch time")
        contracts, dropped = drop_settled(contracts, quote_time)
        if dropped:
            notes.append(dropped)
        if contracts.empty:
            raise ProviderResponseError(self.name, path, f"empty chain: every {ticker} contract had settled")
        return ChainSnapshot.create(underlying=underlying, spot=spot, quote_time=quote_time,
                                    source=f"polygon:{underlying}", contracts=contracts, notes=notes)

    def index_value(self, ticker: str) -> float:
        """The latest value of an index (``"I:SPX"`` or ``"SPX"``) from ``/v3/snapshot/indices``.

        Raises
        ------
        ProviderResponseError
            The ticker came back with an error entry (``NOT_FOUND``, ``NOT_ENTITLED``) or no value.
        """
        t = self._ticker(ticker)
        t = t if t.startswith("I:") else f"I:{t}"
        path = "/v3/snapshot/indices"
        payload = self._get(path, {"ticker.any_of": t})
        for r in self._results(payload, path, required=True):
            if not isinstance(r, dict) or str(r.get("ticker", "")).upper() not in (t, t[2:]):
                continue
            if r.get("error"):
                raise ProviderResponseError(self.name, path, f"{t}: {r.get('error')} ({r.get('message', '')})")
            value = json_number(r.get("value"))
            if value > 0:
                return value
            raise ProviderResponseError(self.name, path, f"wrong schema: {t} has no positive value")
        raise ProviderResponseError(self.name, path, f"{t} is not in the index snapshot")

    def list_contracts(self, underlying: str, *, expiration: dt.date | str | None = None,
                       as_of: dt.date | str | None = None) -> pd.DataFrame:
        """Reference data of the listed contracts (``/v3/reference/options/contracts``), all pages.

        Returns
        -------
        DataFrame
            Columns :data:`CONTRACT_REFERENCE_COLUMNS`: ``ticker`` (``O:...``), ``root``, ``expiration``
            (datetime64), ``strike`` (float), ``right`` (C/P), ``exercise_style``, ``shares_per_contract``.
        """
        t = self._ticker(underlying)
        path = "/v3/reference/options/contracts"
        params: dict[str, Any] = {"underlying_ticker": t, "limit": 1000}
        if expiration is not None:
            params["expiration_date"] = str(expiration)
        if as_of is not None:
            params["as_of"] = str(as_of)
        results: list = []
        for _, payload in self._pages(path, params):
            results.extend(self._results(payload, path, required=True))
        if not results:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in CONTRACT_REFERENCE_COLUMNS})
        table = pd.DataFrame.from_records([r for r in results if isinstance(r, dict)])
        if "ticker" not in table or table["ticker"].isna().any():
            raise ProviderResponseError(self.name, path, "wrong schema: results lack ticker")
        occ = parse_occ_symbols(table["ticker"].astype(str).str.replace(r"^O:", "", regex=True),
                                where=f"polygon {path}")
        return pd.DataFrame({
            "ticker": table["ticker"].astype(str), "root": occ["root"], "expiration": occ["expiration"],
            "strike": occ["strike"], "right": occ["right"],
            "exercise_style": table.get("exercise_style", pd.Series(None, index=table.index)),
            "shares_per_contract": pd.to_numeric(table.get("shares_per_contract",
                                                           pd.Series(np.nan, index=table.index)), errors="coerce"),
        })

    def daily_aggregates(self, symbol: str, start: dt.date | str, end: dt.date | str, *,
                         adjusted: bool = True) -> pd.DataFrame:
        """Daily bars of ``symbol`` (``"AAPL"``, ``"I:SPX"``) from ``start`` to ``end`` inclusive.

        Returns
        -------
        DataFrame
            Columns :data:`AGG_COLUMNS`: ``date`` (datetime64, the New York trading date), ``open, high,
            low, close, vwap`` (price units), ``volume`` (shares); ascending; empty when there are no bars.

        Raises
        ------
        ProviderResponseError
            A bar without ``t`` or ``c`` ("wrong schema: ...").
        """
        t = self._ticker(symbol)
        start_d = start if isinstance(start, dt.date) else dt.date.fromisoformat(str(start))
        end_d = end if isinstance(end, dt.date) else dt.date.fromisoformat(str(end))
        if end_d < start_d:
            raise ValueError(f"end {end_d} is before start {start_d}")
        path = f"/v2/aggs/ticker/{quote(t, safe=':')}/range/1/day/{start_d}/{end_d}"
        bars: list = []
        for _, payload in self._pages(path, {"adjusted": adjusted, "sort": "asc", "limit": 50000}):
            bars.extend(self._results(payload, path, required=False))
        if not bars:
            return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == "date" else float)
                                 for c in AGG_COLUMNS})
        if not all(isinstance(b, dict) and b.get("t") is not None and b.get("c") is not None for b in bars):
            raise ProviderResponseError(self.name, path, "wrong schema: a bar lacks 't' or 'c'")
        times = pd.to_datetime(pd.Series([b["t"] for b in bars]), unit="ms", utc=True).dt.tz_convert(NY)
        out = pd.DataFrame({"date": times.dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")})
        for col, key in (("open", "o"), ("high", "h"), ("low", "l"), ("close", "c"), ("volume", "v"),
                         ("vwap", "vw")):
            out[col] = [json_number(b.get(key)) for b in bars]
        return out.sort_values("date", kind="stable").drop_duplicates("date").reset_index(drop=True)


__all__ = ["AGG_COLUMNS", "CONTRACT_REFERENCE_COLUMNS", "KEY_ENV", "PAGE_LIMIT", "POLYGON_BASE_URL", "URL_ENV",
           "PolygonProvider"]
