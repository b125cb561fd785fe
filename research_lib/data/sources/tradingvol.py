"""TradingVolatility.net's published GEX levels, to compare with ours (optional; ``TRADINGVOL_API_KEY``).

**The response shape is unverified**: there is no recorded response in ``shared/data``, and the vendor's
documentation was not available. The shape below is what third-party client code and its saved
outputs show for ``GET https://stocks.tradingvolatility.net/api/gex/latest?ticker=SPY&username=<key>
&format=json`` (the key travels as the ``username`` query parameter)::

    {"SPY": {"collection_date": "2025-11-14 20:46:17",   # assumed UTC (see below)
             "price": "672.4",                            # numbers arrive as strings
             "gex_flip_price": "677.55",                  # the vendor's gamma flip
             "gex_per_1pct_chg": "-1017367026.884",       # net GEX, $ per 1% move (vendor's model)
             "skew_adjusted_gex": "-1017367026.884",
             "put_call_ratio_open_interest": "1.82", "implied_volatility": "0.1607", ...}}

``collection_date`` is read as UTC: in the one saved sample the price (672.40) is an intraday print,
not the 671.93 close of that Friday, which fits 15:46 New York (20:46 UTC) and not 20:46 New York.
Call and put walls are not in the reported ``latest`` shape; when a response carries ``call_wall`` /
``put_wall`` they are read, otherwise they are NaN.

The parser is strict: the ticker's object and ``collection_date``, ``price``, ``gex_flip_price`` and
``gex_per_1pct_chg`` must be present and readable, or :class:`ProviderResponseError` ("wrong schema:
missing SPY.gex_flip_price") names what is missing.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Mapping
from typing import Any

import pandas as pd

from research_lib.core.chain import NY
from research_lib.data.sources.http import HttpClient, ProviderResponseError, make_client, require_env

TRADINGVOL_BASE_URL = "https://stocks.tradingvolatility.net"
TRADINGVOL_ENDPOINT = "/api/gex/latest"
KEY_ENV = "TRADINGVOL_API_KEY"
REQUIRED_FIELDS = ("collection_date", "price", "gex_flip_price", "gex_per_1pct_chg")


@dataclasses.dataclass(frozen=True)
class ExternalGexLevels:
    """GEX levels published by an outside vendor.

    Attributes
    ----------
    ticker : str
    as_of : pandas.Timestamp
        When the vendor computed them (New York time).
    spot : float
        The underlying's price the vendor used.
    net_gex : float
        Net gamma exposure in $ per 1% move of the underlying, by the vendor's own model and sign.
    call_wall, put_wall : float
        Strikes; NaN when the vendor did not publish them.
    gamma_flip : float
        The vendor's zero-gamma level (underlying price units).
    source : str
        ``"tradingvol:SPY"``.
    raw : mapping
        The vendor's object for the ticker, read-only, as received.
    """

    ticker: str
    as_of: pd.Timestamp
    net_gex: float
    call_wall: float
    put_wall: float
    gamma_flip: float
    source: str
    raw: Mapping[str, Any]
    spot: float = math.nan


def parse_levels(payload: Any, ticker: str, *, fail) -> ExternalGexLevels:
    """Strictly parse a ``/api/gex/latest`` payload for ``ticker`` (see the module docstring)."""
    t = ticker.upper()
    if not isinstance(payload, dict):
        raise fail(f"wrong schema: the top level is a {type(payload).__name__}, not an object")
    if t not in payload and (payload.get("error") or payload.get("message")):
        raise fail(f"vendor error: {payload.get('error') or payload.get('message')}")
    if t not in payload:
        raise fail(f"wrong schema: missing {t}")
    obj = payload[t]
    if not isinstance(obj, dict):
        raise fail(f"wrong schema: {t} is a {type(obj).__name__}, not an object")
    missing = [k for k in REQUIRED_FIELDS if obj.get(k) in (None, "")]
    if missing:
        raise fail(f"wrong schema: missing {', '.join(f'{t}.{k}' for k in missing)}")

    def number(key: str, *, required: bool) -> float:
        value = obj.get(key)
        if value in (None, "") and not required:
            return math.nan
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise fail(f"wrong schema: {t}.{key} is {value!r}, not a number") from None
        if not math.isfinite(f):
            raise fail(f"wrong schema: {t}.{key} is {value!r}, not a finite number")
        return f

    try:
        as_of = pd.Timestamp(str(obj["collection_date"]))
    except (TypeError, ValueError):
        raise fail(f"wrong schema: {t}.collection_date {obj['collection_date']!r} is not a date-time") from None
    if as_of is pd.NaT:
        raise fail(f"wrong schema: {t}.collection_date is empty")
    as_of = (as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of).tz_convert(NY)
    spot = number("price", required=True)
    flip = number("gex_flip_price", required=True)
    if spot <= 0 or flip <= 0:
        raise fail(f"wrong schema: {t}.price / gex_flip_price must be positive prices")
    return ExternalGexLevels(
        ticker=t, as_of=as_of, net_gex=number("gex_per_1pct_chg", required=True),
        call_wall=number("call_wall", required=False), put_wall=number("put_wall", required=False),
        gamma_flip=flip, source=f"tradingvol:{t}", raw=types.MappingProxyType(dict(obj)), spot=spot,
    )


class TradingVolatilityProvider:
    """Published GEX levels from TradingVolatility.net (``TRADINGVOL_API_KEY``; response shape unverified).

    Parameters
    ----------
    base_url : str
        Default ``https://stocks.tradingvolatility.net``.
    client : HttpClient, optional
        A configured client (tests).
    **client_options
        Passed to :class:`~research_lib.sources.http.HttpClient`.

    Raises
    ------
    MissingCredentialsError
        ``TRADINGVOL_API_KEY`` is not set (no request is made).
    """

    name = "tradingvol"

    def __init__(self, *, base_url: str = TRADINGVOL_BASE_URL, client: HttpClient | None = None,
                 **client_options: Any):
        self._key = require_env(self.name, KEY_ENV, "your TradingVolatility.net API username/key")
        self.client = make_client(self.name, base_url, client, secrets=(self._key,), **client_options)

    def __repr__(self) -> str:
        return f"TradingVolatilityProvider({self.client!r})"

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()

    def fetch_levels(self, ticker: str) -> ExternalGexLevels:
        """The vendor's latest levels for ``ticker`` (``"SPY"``, ``"SPX"``).

        Raises
        ------
        ProviderResponseError
            "wrong schema: missing SPY.gex_flip_price" and the like; a vendor error object.
        ProviderError
            Transport failures (see :mod:`research_lib.sources.http`).
        """
        t = str(ticker).strip().upper()
        if not t or len(t) > 12 or not all(c.isalnum() or c == "." for c in t):
            raise ValueError(f"not a ticker symbol: {ticker!r}")
        payload = self.client.get_json(TRADINGVOL_ENDPOINT, {"ticker": t, "username": self._key, "format": "json"})

        def fail(message: str) -> Exception:
            return ProviderResponseError(self.name, TRADINGVOL_ENDPOINT, message)

        return parse_levels(payload, t, fail=fail)


__all__ = ["KEY_ENV", "REQUIRED_FIELDS", "TRADINGVOL_BASE_URL", "TRADINGVOL_ENDPOINT", "ExternalGexLevels",
           "TradingVolatilityProvider", "parse_levels"]
