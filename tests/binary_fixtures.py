"""Writers of small prediction-market files in the real layouts, so a fresh clone tests the readers, the scan
and the WebSocket client without ../shared:

- :func:`write_topbook`: a top-of-book dataset folder like ``binary/polymarket_topbook_2026-07/``
  (``quotes/dt=YYYY-MM-DD.parquet`` sorted by slug then ts, ``markets.parquet``, ``labels.parquet``);
- :func:`book_message`, :func:`price_change_message` ...: market-channel events in the documented format
  (``api/polymarket/ws_book.json`` is one; prices and sizes are strings, ``timestamp`` in ms).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

QUOTE_SCHEMA = pa.schema([("ts", pa.timestamp("us")), ("slug", pa.string()), ("category", pa.string()),
                          ("bid", pa.float64()), ("ask", pa.float64()), ("mid", pa.float64()),
                          ("spread", pa.float64()), ("volume24hr", pa.float64()), ("segment", pa.int32())])


def write_topbook(folder: Path, quotes: pd.DataFrame, markets: pd.DataFrame, labels: pd.DataFrame | None = None
                  ) -> Path:
    """Write a dataset folder. ``quotes``: ts (naive UTC), slug, category, bid, ask; one file per UTC date,
    sorted by slug then ts like the real files. ``markets``: slug, question, category. ``labels``: slug, y, source."""
    folder = Path(folder)
    (folder / "quotes").mkdir(parents=True, exist_ok=True)
    q = quotes.copy()
    q["ts"] = pd.to_datetime(q["ts"])
    q["mid"] = (q["bid"] + q["ask"]) / 2
    q["spread"] = q["ask"] - q["bid"]
    q["volume24hr"] = float("nan")
    q["segment"] = 1
    for day, part in q.groupby(q["ts"].dt.date):
        part = part.sort_values(["slug", "ts"], kind="stable")[QUOTE_SCHEMA.names]
        table = pa.Table.from_pandas(part, schema=QUOTE_SCHEMA, preserve_index=False)
        pq.write_table(table, folder / "quotes" / f"dt={day.isoformat()}.parquet", row_group_size=4)
    m = markets.copy().sort_values("slug")
    m["n_snaps"] = 0
    m["first_ts"] = pd.Timestamp("2026-07-01")
    m["last_ts"] = pd.Timestamp("2026-08-01")
    m.to_parquet(folder / "markets.parquet", index=False)
    if labels is not None:
        labels.to_parquet(folder / "labels.parquet", index=False)
    return folder


# ----------------------------------------------------------------------------------------------------
# market-channel messages (the documented format: prices and sizes as strings, timestamp in ms)
# ----------------------------------------------------------------------------------------------------
def _levels(levels) -> list[dict]:
    return [{"price": str(p), "size": str(s)} for p, s in levels]


def book_message(asset: str, market: str, bids, asks, *, timestamp: int = 1_750_000_000_000) -> dict:
    """A ``book`` event: ``bids`` / ``asks`` as (price, size) pairs (any order)."""
    return {"event_type": "book", "asset_id": asset, "market": market, "bids": _levels(bids), "asks": _levels(asks),
            "timestamp": str(timestamp), "hash": "0" * 40}


def price_change_message(market: str, changes, *, timestamp: int = 1_750_000_000_000) -> dict:
    """A ``price_change`` event: ``changes`` as (asset, price, size, side) with side BUY (bid) or SELL (ask)."""
    return {"event_type": "price_change", "market": market, "timestamp": str(timestamp),
            "price_changes": [{"asset_id": a, "price": str(p), "size": str(s), "side": side, "hash": "0" * 40,
                               "best_bid": "", "best_ask": ""} for a, p, s, side in changes]}


def best_bid_ask_message(asset: str, market: str, bid, ask, *, timestamp: int = 1_750_000_000_000) -> dict:
    return {"event_type": "best_bid_ask", "asset_id": asset, "market": market, "best_bid": str(bid),
            "best_ask": str(ask), "spread": "", "timestamp": str(timestamp)}


def tick_size_message(asset: str, market: str, old: str, new: str, *, timestamp: int = 1_750_000_000_000) -> dict:
    return {"event_type": "tick_size_change", "asset_id": asset, "market": market, "old_tick_size": old,
            "new_tick_size": new, "timestamp": str(timestamp)}


def last_trade_message(asset: str, market: str, price, size, *, timestamp: int = 1_750_000_000_000) -> dict:
    return {"event_type": "last_trade_price", "asset_id": asset, "market": market, "price": str(price),
            "side": "BUY", "size": str(size), "fee_rate_bps": "0", "timestamp": str(timestamp)}


def dumps(msg) -> str:
    return json.dumps(msg)


# ----------------------------------------------------------------------------------------------------
# a loopback market-channel server (its own thread and event loop, so a test can call asyncio.run or the CLI)
# ----------------------------------------------------------------------------------------------------
class LoopbackServer:
    """``websockets.serve`` on 127.0.0.1 and a free port, replaying scripted sessions.

    ``sessions``: one (messages, then) per connection, the last repeated for any further connection; after the
    client's subscribe message the server sends ``messages`` (dicts are JSON-encoded, str and bytes sent as text and binary frames) and then
    closes the connection (``then="close"``) or holds it open (``"hold"``). ``subscribes`` records every
    subscribe message received (parsed JSON).
    """

    def __init__(self, sessions):
        import threading

        self.sessions = sessions
        self.subscribes: list = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._ready = threading.Event()
        self._loop = None
        self._stop = None
        self.port = None

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the loopback server did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        import asyncio

        asyncio.run(self._main())

    async def _main(self) -> None:
        import asyncio

        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    async def _handler(self, ws) -> None:
        self.subscribes.append(json.loads(await ws.recv()))
        messages, then = self.sessions[min(len(self.subscribes), len(self.sessions)) - 1]
        for msg in messages:
            await ws.send(msg if isinstance(msg, str | bytes) else json.dumps(msg))
        if then == "close":
            await ws.close()
        else:
            await ws.wait_closed()
