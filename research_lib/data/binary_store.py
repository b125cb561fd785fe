"""Data: the YES/NO top-of-book time series of the market monitor, Parquet parts in the data folder.

Layout: ``<data>/binary/topbook/dt=YYYY-MM-DD/part-<first ts>-<random>.parquet`` (``<data>`` is
:func:`research_lib.settings.data_root`). Each :meth:`BinaryStore.append` writes one new part per UTC date of
its rows with :func:`research_lib.fs.atomic_write` (temp file, fsync, rename): a reader sees a part whole or
not at all, and a crash leaves at most a ``.tmp-*`` file, which readers skip. :meth:`BinaryStore.read` reads every
part as one table. The schema is strict (:data:`SCHEMA`): an append with a column missing, an extra column or a
value of the wrong type is refused, and so is a part file whose schema differs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from research_lib import settings
from research_lib.errors import BinaryStoreError
from research_lib.fs import TEMP_PREFIX, atomic_write

_UTC_NS = pa.timestamp("ns", tz="UTC")
_F = pa.float64()

#: The store's columns: a :class:`~research_lib.data.sources.polymarket.MarketSnapshot` and the edges
#: :func:`research_lib.core.binary.market_edges` adds, and the fee rate they were computed with.
SCHEMA = pa.schema([
    ("ts", _UTC_NS), ("received", _UTC_NS), ("market", pa.string()), ("yes_asset", pa.string()),
    ("no_asset", pa.string()),
    ("yes_bid", _F), ("yes_ask", _F), ("yes_bid_size", _F), ("yes_ask_size", _F),
    ("no_bid", _F), ("no_ask", _F), ("no_bid_size", _F), ("no_ask_size", _F),
    ("tick", _F), ("last_trade", _F), ("no_derived", pa.bool_()), ("crossed", pa.bool_()),
    ("yes_spread", _F), ("no_spread", _F), ("buy_cost", _F), ("sell_proceeds", _F),
    ("buy_edge", _F), ("sell_edge", _F), ("buy_size", _F), ("sell_size", _F),
    ("buy_arb", pa.bool_()), ("sell_arb", pa.bool_()), ("fee_rate", _F),
])
#: Columns that may hold nulls (a market whose NO token is not subscribed has no ``no_asset``).
NULLABLE = frozenset({"no_asset"})


def _utc(value) -> pd.Timestamp:
    """A time as a UTC timestamp (a naive one is taken to be UTC)."""
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def default_root() -> Path:
    """``<data>/binary/topbook``."""
    return settings.data_root() / "binary" / "topbook"


class BinaryStore:
    """Append-only Parquet parts of top-of-book snapshots, read back as one table.

    Parameters
    ----------
    root : Path, optional
        The folder (default :func:`default_root`).
    """

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else default_root()

    def _table(self, frame: pd.DataFrame) -> pa.Table:
        names = list(SCHEMA.names)
        missing = [c for c in names if c not in frame.columns]
        extra = [c for c in frame.columns if c not in names]
        if missing or extra:
            raise BinaryStoreError(f"the frame's columns are not the store's: missing {missing}, extra {extra}",
                                   path=self.root)
        arrays = []
        for field in SCHEMA:
            col = frame[field.name]
            if pa.types.is_timestamp(field.type):
                if not isinstance(col.dtype, pd.DatetimeTZDtype):
                    raise BinaryStoreError(f"column {field.name!r} must be a time zone aware timestamp (UTC), "
                                           f"not {col.dtype}", path=self.root)
                col = col.dt.tz_convert("UTC")
            try:
                arr = pa.array(col, type=field.type, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise BinaryStoreError(f"column {field.name!r} does not fit the store's type {field.type} ({exc})",
                                       path=self.root) from None
            if arr.null_count and field.name not in NULLABLE and not pa.types.is_floating(field.type):
                raise BinaryStoreError(f"column {field.name!r} has {arr.null_count} empty value(s)", path=self.root)
            arrays.append(arr)
        return pa.Table.from_arrays(arrays, schema=SCHEMA)

    def append(self, frame: pd.DataFrame) -> list[Path]:
        """Write ``frame`` as new part files (one per UTC date of ``ts``), each atomically; return their paths.

        Raises
        ------
        BinaryStoreError
            A column missing or extra, a value of the wrong type, a naive timestamp.
        """
        if frame.empty:
            return []
        table = self._table(frame)
        days = pd.Series(frame["ts"].dt.tz_convert("UTC").dt.date.to_numpy())
        written = []
        for day in sorted(days.unique()):
            part = table.filter(pa.array((days == day).to_numpy()))
            first = pd.Timestamp(part.column("ts")[0].as_py())
            path = self.root / f"dt={day.isoformat()}" / f"part-{first:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}.parquet"
            sink = pa.BufferOutputStream()
            pq.write_table(part, sink)
            atomic_write(path, sink.getvalue().to_pybytes())
            written.append(path)
        return written

    def parts(self) -> list[Path]:
        """The part files, oldest date first (temporary files of an interrupted write left out)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("dt=*/*.parquet") if not p.name.startswith((TEMP_PREFIX, ".", "_")))

    def read(self, *, start: dt.datetime | pd.Timestamp | None = None, end: dt.datetime | pd.Timestamp | None = None,
             market: str | None = None) -> pd.DataFrame:
        """Every stored snapshot (of ``market``, with ``start <= ts < end`` when given), sorted by ``ts``.

        Raises
        ------
        BinaryStoreError
            A part file that is not Parquet or whose schema is not :data:`SCHEMA`.
        """
        tables = []
        for path in self.parts():
            try:
                t = pq.read_table(path)
            except (OSError, pa.ArrowInvalid) as exc:
                raise BinaryStoreError(f"not a readable Parquet part ({exc})", path=path) from None
            if not t.schema.equals(SCHEMA, check_metadata=False):
                diff = [f"{f.name}: {f.type}" for f in t.schema if f not in SCHEMA]
                raise BinaryStoreError(f"the part's schema is not the store's (e.g. {diff[:3]})", path=path)
            tables.append(t)
        if not tables:
            return SCHEMA.empty_table().to_pandas()
        df = pa.concat_tables(tables).to_pandas()
        if market is not None:
            df = df[df["market"] == market]
        if start is not None:
            df = df[df["ts"] >= _utc(start)]
        if end is not None:
            df = df[df["ts"] < _utc(end)]
        return df.sort_values("ts", kind="stable").reset_index(drop=True)
