"""Data: an asyncio client of the Polymarket CLOB market channel (WebSocket), one book per token, top-of-book
snapshots per market.

The channel (``wss://ws-subscriptions-clob.polymarket.com/ws/market``) takes one subscribe message,
``{"assets_ids": [...], "type": "market"}``, and sends JSON events (one object, or a list of them):

==================== ==================================================================================
``book``             a token's full book: ``asset_id``, ``market``, ``bids`` / ``asks`` as ``{price, size}``
                     strings, ``timestamp`` (ms); replaces the token's book
``price_change``     ``price_changes[{asset_id, price, size, side, ...}]``: one level set (``side`` BUY is a bid,
                     SELL an ask; size 0 removes the level); the older ``asset_id`` + ``changes[]`` form too
``best_bid_ask``     the top as the venue sees it; used when the token has no book yet, else checked against
                     the book (a difference is counted, the book wins)
``last_trade_price`` the last trade's price: kept per token and shown in the snapshots
``tick_size_change`` the token's new tick (``new_tick_size``)
==================== ==================================================================================

Design
------
- **Exact books.** Prices and sizes are :class:`decimal.Decimal` parsed from the strings the venue sends; a float
  appears only in a snapshot, at the edge. A level of size 0 is removed.
- **Markets and sides.** A market is the channel's ``market`` id. The first of its tokens in ``assets`` is YES, the
  second NO; a market with one subscribed token gets its NO side derived from the YES book downstream
  (:func:`research_lib.core.binary.market_edges`, flag ``no_derived``).
- **Snapshots.** After each event that changes a token's best bid, best ask, their sizes, its tick or its last
  trade price, one :class:`MarketSnapshot` of its market goes to :attr:`ClobMarketFeed.queue` (a market's first
  book always gives one).
- **A bounded queue, drop-oldest.** ``queue`` holds at most ``queue_size`` snapshots; when the consumer is slower
  than the feed the oldest waiting snapshot is dropped (``stats.dropped`` counts them) so the reader never blocks
  (a blocked reader would miss the server's pings and lose the connection) and memory stays bounded. Every
  snapshot is a full state of its market, so the newest one supersedes those dropped.
- **Faults never crash the reader.** A message that is not JSON, not an object or list, lacks a field or has a
  price that is not a number is counted (``stats.malformed``) and skipped with a log line; an event for a token
  not subscribed is counted (``stats.unknown_asset``) and ignored; an unknown ``event_type`` is counted.
- **Reconnects.** A dropped connection is reopened after an exponential backoff (``backoff_base × 2^k``, at most
  ``backoff_cap`` seconds, times a jitter factor in [0.5, 1] drawn from a seeded ``random.Random``); the books are
  cleared (the server sends fresh ones on subscribe) and the subscribe message is sent again. After
  ``max_retries`` failures in a row without a message received, :class:`BinaryFeedError`.
- **Pings.** websockets' own keepalive (``ping_interval``, ``ping_timeout``); the venue's text ``PONG`` replies are
  ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation

import pandas as pd

from research_lib.errors import BinaryFeedError, BinaryParamsError

logger = logging.getLogger("research_lib.polymarket")

#: The Polymarket CLOB market channel.
DEFAULT_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/market"

#: The tick a token has until a ``tick_size_change`` says otherwise (the venue's default).
DEFAULT_TICK = Decimal("0.01")

#: Event types the channel documents but a top-of-book monitor has no use for (counted as ``other``).
IGNORED_EVENTS = frozenset({"new_market", "market_resolved"})


class MalformedMessage(ValueError):
    """A message (or one event in it) cannot be read; the text says which field."""


@dataclasses.dataclass
class TokenBook:
    """One token's book: price -> size, exact (Decimal); the market it belongs to, its tick, its last trade."""

    asset: str
    market: str
    bids: dict[Decimal, Decimal] = dataclasses.field(default_factory=dict)
    asks: dict[Decimal, Decimal] = dataclasses.field(default_factory=dict)
    tick: Decimal = DEFAULT_TICK
    last_trade: Decimal | None = None
    timestamp_ms: int | None = None
    reported_top: tuple[Decimal | None, Decimal | None] | None = None  # best_bid_ask before any book
    booked: bool = False  # a full book has arrived since the (re)connect

    def best(self) -> tuple[Decimal | None, Decimal | None, Decimal | None, Decimal | None]:
        """(best bid, its size, best ask, its size); None for an empty side (the reported top when no book)."""
        if not self.booked and not self.bids and not self.asks and self.reported_top is not None:
            return self.reported_top[0], None, self.reported_top[1], None
        bid = max(self.bids) if self.bids else None
        ask = min(self.asks) if self.asks else None
        return bid, (self.bids[bid] if bid is not None else None), ask, (self.asks[ask] if ask is not None else None)


@dataclasses.dataclass(frozen=True)
class MarketSnapshot:
    """A market's top of book after an event: YES (and NO when subscribed) best prices and sizes, floats.

    ``ts`` is the venue's event time (UTC), ``received`` the local wall-clock time; a side without an order is
    NaN; ``no_*`` are NaN when the market's NO token is not subscribed (derive them with
    :func:`research_lib.core.binary.market_edges`). ``tick`` is the coarser of the two tokens' ticks.
    """

    ts: pd.Timestamp
    received: pd.Timestamp
    market: str
    yes_asset: str
    no_asset: str | None
    yes_bid: float
    yes_ask: float
    yes_bid_size: float
    yes_ask_size: float
    no_bid: float
    no_ask: float
    no_bid_size: float
    no_ask_size: float
    tick: float
    last_trade: float

    def to_row(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class FeedStats:
    """Counters of a feed (read them any time; :meth:`as_dict` for a report)."""

    messages: int = 0
    events: int = 0
    books: int = 0
    price_changes: int = 0
    best_bid_asks: int = 0
    last_trades: int = 0
    tick_changes: int = 0
    other_events: int = 0
    unknown_events: int = 0
    malformed: int = 0
    unknown_asset: int = 0
    top_mismatch: int = 0
    snapshots: int = 0
    dropped: int = 0
    connects: int = 0
    reconnects: int = 0
    subscribes: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _dec(value, field: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        raise MalformedMessage(f"{field} is not a number: {value!r}") from None
    if not d.is_finite():
        raise MalformedMessage(f"{field} is not finite: {value!r}")
    return d


def _price(value, field: str) -> Decimal:
    p = _dec(value, field)
    if not Decimal(0) <= p <= Decimal(1):
        raise MalformedMessage(f"{field} is outside [0, 1]: {value!r}")
    return p


def _size(value, field: str) -> Decimal:
    s = _dec(value, field)
    if s < 0:
        raise MalformedMessage(f"{field} is negative: {value!r}")
    return s


def _field(event: dict, name: str):
    if name not in event:
        raise MalformedMessage(f"no {name!r} field")
    return event[name]


def _levels(raw, side: str) -> dict[Decimal, Decimal]:
    if not isinstance(raw, list):
        raise MalformedMessage(f"{side} is not a list")
    out: dict[Decimal, Decimal] = {}
    for i, level in enumerate(raw):
        if not isinstance(level, dict):
            raise MalformedMessage(f"{side}[{i}] is not an object")
        size = _size(_field(level, "size"), f"{side}[{i}].size")
        if size:
            out[_price(_field(level, "price"), f"{side}[{i}].price")] = size
    return out


def _timestamp_ms(event: dict) -> int | None:
    raw = event.get("timestamp")
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise MalformedMessage(f"timestamp is not a whole number of ms: {raw!r}") from None


def _f(d: Decimal | None) -> float:
    return math.nan if d is None else float(d)


class ClobMarketFeed:
    """The market channel for a set of tokens: books kept exact, snapshots per market on a bounded queue.

    Parameters
    ----------
    assets : sequence of str
        Token (asset) ids; within one market the first listed is YES, the second NO (module docstring).
    url : str
        The WebSocket URL (``ws://`` or ``wss://``), default :data:`DEFAULT_URL`.
    queue_size : int, default 1000
        The most snapshots waiting for the consumer (drop-oldest beyond).
    ping_interval, ping_timeout : float
        websockets' keepalive, seconds.
    backoff_base, backoff_cap : float
        Reconnect delays, seconds: ``min(cap, base × 2^k) × U(0.5, 1)``, k the failures in a row.
    max_retries : int or None
        Failures in a row (connect or connection lost before any message) before :class:`BinaryFeedError`;
        None retries for ever.
    seed : int
        Seed of the jitter's ``random.Random`` (reproducible delays).
    open_timeout : float
        Seconds allowed for the opening handshake.
    clock : callable, optional
        The wall clock for ``received`` (``time.time``).
    """

    def __init__(self, assets: Sequence[str], *, url: str = DEFAULT_URL, queue_size: int = 1000,
                 ping_interval: float = 10.0, ping_timeout: float = 20.0, backoff_base: float = 0.5,
                 backoff_cap: float = 30.0, max_retries: int | None = 10, seed: int = 0,
                 open_timeout: float = 10.0, clock: Callable[[], float] = time.time):
        assets = [str(a).strip() for a in assets]
        if not assets or any(not a for a in assets):
            raise BinaryParamsError("give at least one asset id, none empty", where="ClobMarketFeed", example=assets)
        if len(set(assets)) != len(assets):
            raise BinaryParamsError("an asset id is listed twice", where="ClobMarketFeed", example=assets)
        if not url.startswith(("ws://", "wss://")):
            raise BinaryFeedError(f"{url!r} is not a WebSocket URL (ws:// or wss://)")
        if queue_size < 1 or backoff_base <= 0 or backoff_cap < backoff_base or (max_retries is not None
                                                                                 and max_retries < 0):
            raise BinaryParamsError("queue_size >= 1, 0 < backoff_base <= backoff_cap, max_retries >= 0",
                                    where="ClobMarketFeed",
                                    example=(queue_size, backoff_base, backoff_cap, max_retries))
        self.assets = assets
        self._order = {a: i for i, a in enumerate(assets)}
        self.url = url
        self.queue_size = queue_size
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retries = max_retries
        self.open_timeout = open_timeout
        self._rng = random.Random(seed)
        self._clock = clock
        self.books: dict[str, TokenBook] = {}
        self.markets: dict[str, list[str]] = {}  # market id -> its subscribed assets in subscription order
        self.stats = FeedStats()
        self.queue: asyncio.Queue[MarketSnapshot] = asyncio.Queue(maxsize=queue_size)
        self.delays: list[float] = []  # every backoff slept, seconds (for the reader and the tests)

    # ------------------------------------------------------------------------------------------------
    # messages -> books -> snapshots (no I/O: tests call it directly too)
    # ------------------------------------------------------------------------------------------------
    def subscribe_message(self) -> str:
        return json.dumps({"assets_ids": self.assets, "type": "market"})

    def handle_text(self, text: str | bytes) -> list[MarketSnapshot]:
        """Apply one message to the books; return the snapshots of the markets whose top changed.

        Never raises on bad input: a malformed message or event is counted and logged, and skipped.
        """
        self.stats.messages += 1
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError:
                self._malformed("not UTF-8 text", text[:120])
                return []
        if text.strip().upper() in ("PONG", "PING"):
            return []
        try:
            payload = json.loads(text)
        except ValueError as exc:
            self._malformed(f"not JSON ({exc})", text[:120])
            return []
        events = payload if isinstance(payload, list) else [payload]
        changed: dict[str, None] = {}
        for event in events:
            if not isinstance(event, dict):
                self._malformed("an event is not a JSON object", str(event)[:120])
                continue
            self.stats.events += 1
            try:
                for market in self._apply(event):
                    changed[market] = None
            except MalformedMessage as exc:
                self._malformed(str(exc), json.dumps(event)[:120])
        snaps = [self._snapshot(m) for m in changed]
        self.stats.snapshots += len(snaps)
        return snaps

    def _malformed(self, why: str, excerpt) -> None:
        self.stats.malformed += 1
        logger.warning("polymarket feed %s: malformed message skipped: %s: %r", self.url, why, excerpt)

    def _book(self, asset: str, market: str | None) -> TokenBook | None:
        if asset not in self._order:
            self.stats.unknown_asset += 1
            logger.info("polymarket feed %s: event for asset %s, not subscribed: ignored", self.url, asset[:20])
            return None
        book = self.books.get(asset)
        if book is None:
            if not market:
                raise MalformedMessage("no 'market' field on a token's first event")
            book = self.books[asset] = TokenBook(asset=asset, market=str(market))
            members = self.markets.setdefault(book.market, [])
            members.append(asset)
            members.sort(key=self._order.__getitem__)
        return book

    def _apply(self, event: dict) -> list[str]:
        """The markets whose top changed (empty when none did)."""
        kind = event.get("event_type")
        if kind is not None and not isinstance(kind, str):
            raise MalformedMessage(f"event_type is not text: {kind!r}")
        if kind == "book":
            self.stats.books += 1
            asset = str(_field(event, "asset_id"))
            bids = _levels(_field(event, "bids"), "bids")
            asks = _levels(_field(event, "asks"), "asks")
            ts = _timestamp_ms(event)
            book = self._book(asset, event.get("market"))
            if book is None:
                return []
            before = (book.best(), book.tick)
            first = not book.booked
            book.bids, book.asks, book.reported_top, book.booked = bids, asks, None, True
            book.timestamp_ms = ts if ts is not None else book.timestamp_ms
            return [book.market] if first or (book.best(), book.tick) != before else []
        if kind == "price_change":
            self.stats.price_changes += 1
            if "price_changes" in event:
                changes = _field(event, "price_changes")
                items = [(c.get("asset_id") if isinstance(c, dict) else None, c) for c in changes] \
                    if isinstance(changes, list) else None
            else:  # the older form: one asset, a list of changes
                changes = _field(event, "changes")
                items = [(event.get("asset_id"), c) for c in changes] if isinstance(changes, list) else None
            if items is None:
                raise MalformedMessage("price changes are not a list")
            ts = _timestamp_ms(event)
            parsed = []
            for i, (asset, c) in enumerate(items):  # parse all before applying any: a bad message changes nothing
                if not isinstance(c, dict) or asset is None:
                    raise MalformedMessage(f"price change {i} is not an object with an asset_id")
                side = str(_field(c, "side")).upper()
                if side not in ("BUY", "SELL"):
                    raise MalformedMessage(f"price change {i}: side {side!r} is not BUY or SELL")
                parsed.append((str(asset), _price(_field(c, "price"), f"price change {i} price"),
                               _size(_field(c, "size"), f"price change {i} size"), side))
            changed = []
            for asset, price, size, side in parsed:
                book = self._book(asset, event.get("market"))
                if book is None:
                    continue
                before = (book.best(), book.tick)
                levels = book.bids if side == "BUY" else book.asks
                if size:
                    levels[price] = size
                else:
                    levels.pop(price, None)
                book.reported_top = None
                book.timestamp_ms = ts if ts is not None else book.timestamp_ms
                if (book.best(), book.tick) != before and book.market not in changed:
                    changed.append(book.market)
            return changed
        if kind == "best_bid_ask":
            self.stats.best_bid_asks += 1
            asset = str(_field(event, "asset_id"))
            raw_bid, raw_ask = event.get("best_bid"), event.get("best_ask")
            bid = None if raw_bid in (None, "") else _price(raw_bid, "best_bid")
            ask = None if raw_ask in (None, "") else _price(raw_ask, "best_ask")
            book = self._book(asset, event.get("market"))
            if book is None:
                return []
            if book.booked:
                b, _, a, _ = book.best()
                if (b, a) != (bid, ask):
                    self.stats.top_mismatch += 1
                return []
            book.reported_top = (bid, ask)
            book.timestamp_ms = _timestamp_ms(event) or book.timestamp_ms
            return [book.market]
        if kind == "last_trade_price":
            self.stats.last_trades += 1
            asset = str(_field(event, "asset_id"))
            price = _price(_field(event, "price"), "price")
            book = self._book(asset, event.get("market"))
            if book is None or book.last_trade == price:
                return []
            book.last_trade = price
            return [book.market]
        if kind == "tick_size_change":
            self.stats.tick_changes += 1
            asset = str(_field(event, "asset_id"))
            tick = _price(_field(event, "new_tick_size"), "new_tick_size")
            if not Decimal(0) < tick < Decimal(1):
                raise MalformedMessage(f"new_tick_size is not in (0, 1): {tick}")
            book = self._book(asset, event.get("market"))
            if book is None or book.tick == tick:
                return []
            book.tick = tick
            return [book.market]
        if kind in IGNORED_EVENTS:
            self.stats.other_events += 1
            return []
        if kind is None:
            raise MalformedMessage("no 'event_type' field")
        self.stats.unknown_events += 1
        logger.info("polymarket feed %s: unknown event_type %r skipped", self.url, kind)
        return []

    def _snapshot(self, market: str) -> MarketSnapshot:
        members = self.markets[market]
        yes = self.books[members[0]]
        no = self.books[members[1]] if len(members) > 1 else None
        yb, ybs, ya, yas = yes.best()
        nb, nbs, na, nas = no.best() if no is not None else (None,) * 4
        stamps = [b.timestamp_ms for b in (yes, no) if b is not None and b.timestamp_ms is not None]
        now = self._clock()
        ts = pd.Timestamp(max(stamps), unit="ms", tz="UTC") if stamps else pd.Timestamp(now, unit="s", tz="UTC")
        tick = max(yes.tick, no.tick) if no is not None else yes.tick
        return MarketSnapshot(ts=ts, received=pd.Timestamp(now, unit="s", tz="UTC"), market=market,
                              yes_asset=yes.asset, no_asset=None if no is None else no.asset,
                              yes_bid=_f(yb), yes_ask=_f(ya), yes_bid_size=_f(ybs), yes_ask_size=_f(yas),
                              no_bid=_f(nb), no_ask=_f(na), no_bid_size=_f(nbs), no_ask_size=_f(nas),
                              tick=float(tick), last_trade=_f(yes.last_trade))

    def _offer(self, snap: MarketSnapshot) -> None:
        """Put a snapshot on the queue without waiting: drop the oldest waiting one when it is full."""
        while True:
            try:
                self.queue.put_nowait(snap)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.queue.get_nowait()
                    self.stats.dropped += 1

    # ------------------------------------------------------------------------------------------------
    # the connection
    # ------------------------------------------------------------------------------------------------
    def _next_delay(self, failures: int) -> float:
        return min(self.backoff_cap, self.backoff_base * 2 ** (failures - 1)) * self._rng.uniform(0.5, 1.0)

    async def run(self, *, duration: float | None = None) -> FeedStats:
        """Connect, subscribe and read until ``duration`` seconds have passed (None: until cancelled),
        reconnecting on failures; snapshots go to :attr:`queue`. Returns :attr:`stats`.

        Raises
        ------
        BinaryFeedError
            ``max_retries`` failures in a row.
        """
        if duration is not None and duration < 0:
            raise BinaryParamsError("the duration must be >= 0 seconds", where="ClobMarketFeed.run", example=duration)
        try:
            async with asyncio.timeout(duration):
                await self._loop()
        except TimeoutError:
            pass
        return self.stats

    async def _loop(self) -> None:
        # the WebSocket library: loaded by the feed only (start-up time of the command line)
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidURI, WebSocketException

        failures = 0
        last_error: BaseException | None = None
        while True:
            received_any = False
            try:
                async with connect(self.url, ping_interval=self.ping_interval, ping_timeout=self.ping_timeout,
                                   open_timeout=self.open_timeout, max_size=2 ** 24) as ws:
                    self.stats.connects += 1
                    if self.stats.connects > 1:
                        self.stats.reconnects += 1
                    self.books.clear()
                    self.markets.clear()
                    await ws.send(self.subscribe_message())
                    self.stats.subscribes += 1
                    async for message in ws:
                        received_any = True
                        failures = 0
                        for snap in self.handle_text(message):
                            self._offer(snap)
                    last_error = ConnectionError("the server closed the connection")
            except InvalidURI as exc:
                raise BinaryFeedError(f"{self.url}: not a WebSocket URL ({exc})") from None
            except (OSError, TimeoutError, InvalidHandshake, WebSocketException) as exc:
                last_error = exc
            if not received_any:
                failures += 1
            if self.max_retries is not None and failures > self.max_retries:
                raise BinaryFeedError(f"{self.url}: {failures} failed connection attempts in a row; the last: "
                                      f"{type(last_error).__name__}: {last_error}")
            delay = self._next_delay(max(failures, 1))
            self.delays.append(delay)
            logger.warning("polymarket feed %s: connection lost (%s); reconnecting in %.2f s", self.url,
                           last_error, delay)
            await asyncio.sleep(delay)
