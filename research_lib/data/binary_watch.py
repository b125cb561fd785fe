"""Data: the YES/NO monitor — the market-channel feed's snapshots, their edges, the Parquet series.

:func:`watch` runs a :class:`~research_lib.data.sources.polymarket.ClobMarketFeed` and a consumer side by side:
the consumer takes every snapshot waiting on the feed's queue at once, computes the edges of the batch in one
vectorised call (:func:`research_lib.core.binary.market_edges`: NO derived when not subscribed, fees, tick),
hands the rows to ``on_rows`` (the command line prints them) and appends them to a
:class:`~research_lib.data.binary_store.BinaryStore` every ``batch`` rows and when it stops (also when cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence

import pandas as pd

from research_lib.core.binary import market_edges
from research_lib.data.binary_store import SCHEMA, BinaryStore
from research_lib.data.sources.polymarket import ClobMarketFeed, MarketSnapshot


@dataclasses.dataclass(frozen=True)
class WatchResult:
    """What a :func:`watch` run did: ``rows`` snapshots with edges, ``arbs`` of them flagged (either side),
    ``parts`` the store files written, ``stats`` the feed's counters, ``seconds`` its length."""

    rows: int
    arbs: int
    parts: tuple[str, ...]
    stats: dict
    seconds: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def snapshot_edges(snaps: Sequence[MarketSnapshot], *, fee_rate: float = 0.0, fee_exponent: float = 1.0
                   ) -> pd.DataFrame:
    """Snapshots -> one row each with the edges, in the store's column order (:data:`SCHEMA`)."""
    frame = pd.DataFrame([s.to_row() for s in snaps])
    if frame.empty:
        return SCHEMA.empty_table().to_pandas()
    edges = market_edges(frame, fee_rate=fee_rate, fee_exponent=fee_exponent)
    edges["fee_rate"] = float(fee_rate)
    return edges[list(SCHEMA.names)]


async def watch(feed: ClobMarketFeed, *, duration: float | None = None, fee_rate: float = 0.0,
                fee_exponent: float = 1.0, on_rows: Callable[[pd.DataFrame], None] | None = None,
                store: BinaryStore | None = None, batch: int = 500) -> WatchResult:
    """Run ``feed`` for ``duration`` seconds (None: until cancelled), the edges of every snapshot to ``on_rows``
    and ``store``.

    Raises
    ------
    BinaryFeedError
        The feed gave up reconnecting (what was stored until then stays stored).
    """
    started = time.monotonic()
    reader = asyncio.create_task(feed.run(duration=duration))
    pending: list[pd.DataFrame] = []
    parts: list[str] = []
    rows = arbs = 0

    def flush() -> None:
        if store is not None and pending:
            parts.extend(str(p) for p in store.append(pd.concat(pending, ignore_index=True)))
        pending.clear()

    try:
        while True:
            try:
                first = await asyncio.wait_for(feed.queue.get(), timeout=0.1)
            except TimeoutError:
                if reader.done():
                    break
                continue
            snaps = [first]
            while not feed.queue.empty():
                snaps.append(feed.queue.get_nowait())
            out = snapshot_edges(snaps, fee_rate=fee_rate, fee_exponent=fee_exponent)
            rows += len(out)
            arbs += int((out["buy_arb"] | out["sell_arb"]).sum())
            if on_rows is not None:
                on_rows(out)
            pending.append(out)
            if sum(len(p) for p in pending) >= batch:
                flush()
        await reader  # re-raises the feed's error
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        flush()
    return WatchResult(rows=rows, arbs=arbs, parts=tuple(parts), stats=feed.stats.as_dict(),
                       seconds=time.monotonic() - started)
