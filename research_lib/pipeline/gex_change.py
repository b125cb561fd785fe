"""What moved GEX since the previous snapshot: the I/O around :func:`research_lib.core.gex_change.attribute_change`.

Finding "the previous snapshot" depends on where a chain came from:

* a multi-day chain **file** (an archive): the previous clean day of the same file (:func:`previous_in_file`);
* the **store** (and the live providers, whose chains :func:`~research_lib.data.sources.auto.get_chain` keeps
  there): the latest stored snapshot of the same underlying, market or modelled as the chain is, with an
  earlier trading date (:func:`previous_in_store`);
* the **modelled** chain: the modelled chain of the previous session (:func:`previous_modelled`).

Each snapshot is priced with its own trading date's rate and dividend yield
(:func:`research_lib.data.market.snapshot_config`), as every other GEX path prices it, so ``net_before`` and
``net_after`` are the net GEX the daily report and ``research-lib gex`` show for those days.

:func:`change_since_previous` returns a :class:`PreviousChange` (a :class:`~research_lib.core.gex_change.GexChange`,
or None and the reason); :func:`change_history` one row per consecutive pair of a file or a list of snapshots.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from research_lib import calendar as cal
from research_lib.core.chain import ChainSnapshot
from research_lib.core.gex_change import (
    CAUSES,
    DEFAULT_EXPIRY_EDGES,
    DEFAULT_MONEYNESS_EDGES,
    GexChange,
    attribute_change,
    expiry_bucket_labels,
)
from research_lib.data import market
from research_lib.data.modelled import modelled_chain
from research_lib.data.sources import read_chain, read_chains, scan
from research_lib.data.store import ChainStore
from research_lib.errors import ResearchLibError
from research_lib.formatting import jsonable

#: Served-by values whose previous snapshot is looked up in the store (live chains are kept there).
STORE_SOURCES = ("store", "cboe", "tradier", "polygon")


@dataclasses.dataclass(frozen=True, eq=False)
class PreviousChange:
    """The change since the previous snapshot, or why there is none.

    Attributes
    ----------
    change : GexChange or None
    reason : str
        What was compared (``"against the previous clean day 2026-08-20 of spx_eod.parquet"``), or why
        nothing was (``"no earlier clean day in ..."``).
    previous : ChainSnapshot or None
        The snapshot compared against.
    """

    change: GexChange | None
    reason: str
    previous: ChainSnapshot | None = None

    def to_dict(self) -> dict:
        """Strict-JSON-ready: ``reason`` and ``change`` (:meth:`GexChange.to_dict`, or None)."""
        return jsonable({"reason": self.reason, "change": None if self.change is None else self.change.to_dict()})


# --------------------------------------------------------------------------------------------------
# the previous snapshot


def previous_in_file(path: str | os.PathLike, date: Any) -> tuple[ChainSnapshot | None, str]:
    """The clean day of the file ``path`` just before trading date ``date``, and a sentence saying so.

    Returns ``(None, reason)`` when the file holds no clean day before ``date`` (a single-snapshot file
    holds none). Raises what :func:`~research_lib.data.sources.read_chain` raises for an unreadable file.
    """
    day = pd.Timestamp(date).date()
    table = scan(path)
    ok = table[(table["status"] == "ok") & (table["date"] < day)]
    name = Path(path).name
    if ok.empty:
        return None, f"no clean day before {day} in {name}"
    prev = max(ok["date"])
    return read_chain(path, date=prev), f"against the previous clean day {prev} of {name}"


def previous_in_store(snapshot: ChainSnapshot, store: ChainStore | str | os.PathLike | None = None
                      ) -> tuple[ChainSnapshot | None, str]:
    """The latest stored snapshot of ``snapshot``'s underlying with an earlier trading date (market data
    for a market chain, modelled for a modelled one), and a sentence saying which."""
    store = store if isinstance(store, ChainStore) else ChainStore(store) if store is not None else ChainStore()
    cat = store.list(snapshot.underlying)
    cat = cat[(cat["date"] < snapshot.snapshot_date) & (cat["modelled"] == bool(snapshot.modelled))]
    kind = "modelled" if snapshot.modelled else "market"
    if cat.empty:
        return None, f"no {kind} {snapshot.underlying} snapshot before {snapshot.snapshot_date} in the store at {store.root}"
    prev = max(cat["date"])
    entry = store.find(snapshot.underlying, date=prev, modelled=bool(snapshot.modelled))
    snap = store.read(entry)
    return snap, f"against the stored {kind} snapshot of {prev} ({snap.source}, quoted {snap.quote_time:%Y-%m-%d %H:%M %Z})"


def previous_modelled(snapshot: ChainSnapshot) -> tuple[ChainSnapshot | None, str]:
    """The modelled chain of the session before ``snapshot``'s trading date (same underlying)."""
    day = pd.Timestamp(snapshot.snapshot_date)
    before = cal.sessions(day - pd.Timedelta(days=10), day - pd.Timedelta(days=1))
    if len(before) == 0:
        return None, f"no session before {snapshot.snapshot_date} in the calendar"
    prev = before[-1].date()
    try:
        snap = modelled_chain(snapshot.underlying, date=prev)
    except ResearchLibError as exc:
        return None, f"no modelled chain for {prev}: {type(exc).__name__}: {exc}"
    return snap, f"against the modelled chain of the previous session {prev} (MODELLED DATA)"


def previous_snapshot(snapshot: ChainSnapshot, served_by: str, *, path: str | os.PathLike | None = None,
                      store=None) -> tuple[ChainSnapshot | None, str]:
    """The previous snapshot of a served chain (see the module docstring).

    Parameters
    ----------
    snapshot : ChainSnapshot
        The chain served.
    served_by : str
        :attr:`~research_lib.data.sources.auto.ServedChain.served_by`: ``"file"`` (then ``path`` is the
        file), ``"store"`` or a live provider (the store), ``"modelled"``.
    """
    if served_by == "file":
        if path is None:
            return None, "the chain came from a file but no path was given"
        return previous_in_file(path, snapshot.snapshot_date)
    if served_by == "modelled" or (snapshot.modelled and served_by not in STORE_SOURCES):
        return previous_modelled(snapshot)
    if served_by in STORE_SOURCES:
        return previous_in_store(snapshot, store)
    return None, f"no previous snapshot is known for a chain served by {served_by!r}"


# --------------------------------------------------------------------------------------------------
# changes


def _config(snapshot: ChainSnapshot, convention: str, market_dir):
    return market.snapshot_config(snapshot, convention, market_dir=market_dir)


def change_between(before: ChainSnapshot, after: ChainSnapshot, *, convention: str = "model",
                   method: str = "sequential", market_dir: str | os.PathLike | None = None,
                   expiry_edges: Sequence[int] = DEFAULT_EXPIRY_EDGES,
                   moneyness_edges: Sequence[float] = DEFAULT_MONEYNESS_EDGES) -> GexChange:
    """:func:`attribute_change` of two snapshots, each priced with its own date's rates
    (:func:`~research_lib.data.market.snapshot_config` of ``convention``)."""
    return attribute_change(before, after, _config(before, convention, market_dir),
                            _config(after, convention, market_dir), method=method, expiry_edges=expiry_edges,
                            moneyness_edges=moneyness_edges)


def change_since_previous(snapshot: ChainSnapshot, served_by: str = "file", *, path: str | os.PathLike | None = None,
                          previous: ChainSnapshot | None = None, store=None, convention: str = "model",
                          method: str = "sequential", market_dir: str | os.PathLike | None = None
                          ) -> PreviousChange:
    """The change of net GEX since the previous snapshot of a served chain, or None and why.

    Parameters
    ----------
    snapshot : ChainSnapshot
    served_by, path, store
        Where the chain came from (:func:`previous_snapshot`).
    previous : ChainSnapshot, optional
        Compare against this snapshot instead of looking one up.
    convention : str
        ``"model"`` (``"perfiliev"`` uses the vendor's gamma, which cannot be split: ``GexConfigError``).
    method : {"sequential", "shapley"}

    Returns
    -------
    PreviousChange
        ``change`` None when there is no previous snapshot (``reason`` says why). Errors of the
        attribution itself (a different underlying, a bad config) are raised.
    """
    if previous is None:
        previous, reason = previous_snapshot(snapshot, served_by, path=path, store=store)
        if previous is None:
            return PreviousChange(None, reason)
    else:
        reason = f"against the snapshot given ({previous.source}, {previous.snapshot_date})"
    change = change_between(previous, snapshot, convention=convention, method=method, market_dir=market_dir)
    return PreviousChange(change, reason, previous)


#: Columns of :func:`change_history` before the cause and expiry-bucket columns.
HISTORY_COLUMNS = ("date", "date_before", "spot_before", "spot_after", "net_before", "net_after", "change")


def iter_changes(snapshots: Iterable[ChainSnapshot], *, convention: str = "model", method: str = "sequential",
                 market_dir: str | os.PathLike | None = None, expiry_edges: Sequence[int] = DEFAULT_EXPIRY_EDGES,
                 moneyness_edges: Sequence[float] = DEFAULT_MONEYNESS_EDGES) -> Iterable[GexChange]:
    """:class:`GexChange` of every consecutive pair of ``snapshots`` (in the order given), each snapshot's
    config looked up once."""
    prev = prev_config = None
    for snap in snapshots:
        config = _config(snap, convention, market_dir)
        if prev is not None:
            yield attribute_change(prev, snap, prev_config, config, method=method, expiry_edges=expiry_edges,
                                   moneyness_edges=moneyness_edges)
        prev, prev_config = snap, config


def change_history(path_or_snapshots: str | os.PathLike | Iterable[ChainSnapshot], *, convention: str = "model",
                   method: str = "sequential", market_dir: str | os.PathLike | None = None,
                   expiry_edges: Sequence[int] = DEFAULT_EXPIRY_EDGES,
                   moneyness_edges: Sequence[float] = DEFAULT_MONEYNESS_EDGES) -> pd.DataFrame:
    """One row per consecutive pair of snapshots: the change of net GEX and its split.

    Parameters
    ----------
    path_or_snapshots : path or iterable of ChainSnapshot
        A multi-day chain file (its clean days, in date order) or snapshots in quote-time order.
    convention, method, market_dir, expiry_edges, moneyness_edges
        As :func:`change_between`.

    Returns
    -------
    DataFrame
        Columns :data:`HISTORY_COLUMNS` (``date`` is the later snapshot's trading date, ``date_before`` the
        earlier's, datetime.date; spots in points; GEX in $ per 1% move), then one column per cause
        (:data:`~research_lib.core.gex_change.CAUSES`) and one per expiry bucket named ``expiry <label>``
        (``expiry 0–1`` ...). The cause columns, and the bucket columns, each sum to ``change`` per row.
        Empty (same columns) for fewer than two snapshots.
    """
    if isinstance(path_or_snapshots, str | os.PathLike):
        snapshots: Iterable[ChainSnapshot] = read_chains(path_or_snapshots)
    else:
        snapshots = path_or_snapshots
    rows, bucket_cols = [], None
    for ch in iter_changes(snapshots, convention=convention, method=method, market_dir=market_dir,
                           expiry_edges=expiry_edges, moneyness_edges=moneyness_edges):
        bucket_cols = [f"expiry {b}" for b in ch.expiry_labels]
        rows.append({"date": ch.date_after, "date_before": ch.date_before, "spot_before": ch.spot_before,
                     "spot_after": ch.spot_after, "net_before": ch.net_before, "net_after": ch.net_after,
                     "change": ch.change, **ch.by_cause.to_dict(),
                     **dict(zip(bucket_cols, ch.by_expiry["total"].to_numpy(), strict=True))})
    if bucket_cols is None:
        bucket_cols = [f"expiry {b}" for b in expiry_bucket_labels(expiry_edges)]
    return pd.DataFrame(rows, columns=[*HISTORY_COLUMNS, *CAUSES, *bucket_cols])


def daily_snapshots(source: str | os.PathLike = "store", symbol: str = "SPX", *, store=None) -> Iterator[ChainSnapshot]:
    """One snapshot per trading date, in date order, for :func:`change_history`.

    ``source``: a multi-day chain file (its clean days), or ``"store"``: for each trading date the latest
    stored market snapshot of ``symbol`` (modelled chains left out).
    """
    if str(source) != "store":
        yield from read_chains(source)
        return
    store = store if isinstance(store, ChainStore) else ChainStore(store) if store is not None else ChainStore()
    cat = store.list(symbol)
    cat = cat[~cat["modelled"].astype(bool)].sort_values(["date", "quote_time"], kind="stable")
    for rel in cat.groupby("date", sort=True).tail(1)["path"]:
        yield store.read(rel)


def variance_shares(history: pd.DataFrame) -> pd.DataFrame:
    """What drives the noise of the daily change: for each cause and expiry bucket column of a
    :func:`change_history` frame, ``sd`` (of its daily contribution, $ per 1% move) and ``share`` of the
    variance of the daily change, ``cov(part, change) / var(change)``.

    Returns a DataFrame indexed by (``group``, ``part``) — group ``"cause"`` (rows :data:`CAUSES`) and
    ``"expiry"`` (the buckets) — columns ``sd``, ``share``. Each group's shares sum to 1 (the parts sum to the
    change). NaN shares when there are fewer than two pairs or the change never varies, said in ``attrs["note"]``.
    """
    buckets = [c for c in history.columns if c.startswith("expiry ")]
    var = history["change"].var()
    rows = []
    for group, cols in (("cause", list(CAUSES)), ("expiry", buckets)):
        for c in cols:
            cov = history[c].cov(history["change"]) if len(history) > 1 else float("nan")
            rows.append((group, c.removeprefix("expiry "), float(history[c].std()), cov / var if var > 0 else float("nan")))
    out = pd.DataFrame(rows, columns=["group", "part", "sd", "share"]).set_index(["group", "part"])
    out.attrs["note"] = (f"{len(history)} pairs" if len(history) > 1 and var > 0
                         else "fewer than two pairs, or a change that never varies: no shares")
    return out


def change_at_latest(source: str | os.PathLike = "store", symbol: str = "SPX", *, store=None,
                     method: str = "sequential", market_dir: str | os.PathLike | None = None) -> PreviousChange:
    """:func:`change_since_previous` of the latest snapshot of ``source``: the last clean day of a multi-day
    chain file against the one before, or (``"store"``) the latest stored market snapshot of ``symbol``
    against the stored one of the previous date. ``change`` None (and why) when there is no pair."""
    if str(source) != "store":
        return change_since_previous(read_chain(source), "file", path=source, method=method, market_dir=market_dir)
    store = store if isinstance(store, ChainStore) else ChainStore(store) if store is not None else ChainStore()
    entry = store.find(symbol, modelled=False)
    if entry is None:
        return PreviousChange(None, f"no market {symbol} snapshot in the store at {store.root}")
    return change_since_previous(store.read(entry), "store", store=store, method=method, market_dir=market_dir)


def history_to_dict(history: pd.DataFrame) -> dict:
    """A :func:`change_history` frame as strict-JSON-ready data: ``pairs``, ``dates`` and ``dates_before``
    (ISO), ``change`` and one list per cause and expiry bucket column ($ per 1% move), and ``shares``
    (:func:`variance_shares`: {group: {part: {sd, share}}})."""
    shares = variance_shares(history)
    return jsonable({
        "pairs": len(history), "dates": list(history["date"]), "dates_before": list(history["date_before"]),
        "columns": {c: history[c].tolist() for c in history.columns if c not in ("date", "date_before")},
        "shares": {g: {part: {"sd": row["sd"], "share": row["share"]} for (gg, part), row in shares.iterrows()
                       if gg == g} for g in ("cause", "expiry")},
        "note": shares.attrs["note"],
    })
