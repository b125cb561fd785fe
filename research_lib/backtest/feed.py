"""The as-of feed of a backtest: one snapshot per trading day of one underlying, in date order.

A :class:`Feed` reads either a multi-day chain file (its clean days, :func:`research_lib.data.sources.read_chains`)
or the chain store (the latest market snapshot of each trading date; modelled chains left out), between ``start``
and ``end``. The trading date of a snapshot is the session its prices belong to
(:attr:`~research_lib.core.chain.ChainSnapshot.snapshot_date`). NYSE sessions between the first and the last day
served that have no snapshot are :attr:`Feed.missing_days` — listed, never filled in.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

from research_lib import calendar as cal
from research_lib.backtest.params import as_date
from research_lib.core.chain import ChainSnapshot
from research_lib.data.sources import read_chains, scan
from research_lib.data.store import ChainStore
from research_lib.errors import BacktestInputError


class Feed:
    """Daily snapshots of ``symbol`` from ``source`` (a multi-day chain file or ``"store"``) in ``[start, end]``.

    Parameters
    ----------
    source : path or "store"
    symbol : str
        Underlying (checked against a file's snapshots).
    start, end : date-like, optional
        Trading dates, both included.
    store : ChainStore or path, optional
        For ``source="store"`` (default :class:`~research_lib.data.store.ChainStore`).

    Iterating yields :class:`~research_lib.core.chain.ChainSnapshot` objects, one per trading date, in date order;
    :attr:`days` and :attr:`missing_days` are known before iterating (from the file's catalogue or the store's).
    """

    def __init__(self, source: str | os.PathLike, symbol: str = "SPX", *, start=None, end=None, store=None):
        self.source = str(source)
        self.symbol = str(symbol).strip().upper().lstrip("_")
        self.start = as_date(start, "start")
        self.end = as_date(end, "end")
        if self.start and self.end and self.start > self.end:
            raise BacktestInputError("start", f"{self.start} is after end {self.end}")
        if self.source == "store":
            self._store = store if isinstance(store, ChainStore) else ChainStore(store) if store is not None \
                else ChainStore()
            cat = self._store.list(self.symbol)
            cat = cat[~cat["modelled"].astype(bool)].sort_values(["date", "quote_time"], kind="stable")
            latest = cat.groupby("date", sort=True).tail(1)
            self._entries = {d: rel for d, rel in zip(latest["date"], latest["path"], strict=True)
                             if self._inside(d)}
            self.days = sorted(self._entries)
            self.path = None
        else:
            self.path = Path(self.source)
            if not self.path.exists():
                raise BacktestInputError("source", f"{self.path}: no such chain file")
            catalogue = scan(self.path)
            ok = catalogue[catalogue["status"] == "ok"]
            self.days = sorted(d for d in ok["date"] if self._inside(d))
            self.skipped = catalogue[catalogue["status"] != "ok"].reset_index(drop=True)
        if not self.days:
            where = "the store" if self.path is None else str(self.path)
            raise BacktestInputError("source", f"{where} holds no clean {self.symbol} day in "
                                               f"{self.start or '...'}..{self.end or '...'}")
        sessions = cal.sessions(self.days[0], self.days[-1])
        have = set(self.days)
        self.missing_days = [d.date() for d in sessions if d.date() not in have]

    def _inside(self, day: dt.date) -> bool:
        return (self.start is None or day >= self.start) and (self.end is None or day <= self.end)

    def __iter__(self) -> Iterator[ChainSnapshot]:
        if self.path is None:
            for day in self.days:
                yield self._store.read(self._entries[day])
            return
        for snap in read_chains(self.path, dates=self.days):
            if snap.underlying != self.symbol:
                raise BacktestInputError("symbol", f"{self.path} holds {snap.underlying}, not {self.symbol}")
            yield snap

    def describe(self) -> str:
        where = "the store" if self.path is None else self.path.name
        return (f"{self.symbol} from {where}: {len(self.days)} trading days {self.days[0]}..{self.days[-1]}, "
                f"{len(self.missing_days)} missing ({', '.join(map(str, self.missing_days)) or 'none'})")


__all__ = ["Feed"]
