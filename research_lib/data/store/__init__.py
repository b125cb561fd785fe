"""The local Parquet store of chain snapshots: :class:`ChainStore`.

One module per job: :mod:`.snapshots` (the snapshot files: paths, Parquet bytes, metadata, reading back),
:mod:`.catalogue` (the self-repairing catalogue), :mod:`.imports` (importing chain files, the
:class:`ImportReport`) and :mod:`.chainstore` (the :class:`ChainStore` that ties them together under one
lock). Every public name is importable from here (and from the short name ``research_lib.store``).

Every :class:`~research_lib.chain.ChainSnapshot` you fetch or import can be kept here and read back
exactly as it was put (same contract table, same fields). The store is a folder (``data/`` beside the
package, or ``$RESEARCH_LIB_DATA``)::

    <root>/
      chains/underlying=SPX/date=2024-01-05/160000_cboe_csv-spx_2024-01-05_1a2b3c4d.parquet
      catalogue.parquet     one row per stored snapshot (rebuildable from the files)
      .lock                 taken (fcntl.flock) by every writer

One Parquet file per snapshot, in hive-style partitions by underlying and trading date
(``snapshot_date``). The file name is the quote time (``HHMMSS``, New York), a readable slug of the
source (file extensions dropped), and the first 8 hex digits of a hash of the snapshot's identity
(underlying, full quote time, source), so different snapshots never share a name and the same
snapshot always gets the same one. The file holds
the contract table (:data:`~research_lib.chain.CONTRACT_COLUMNS`; ``expiration`` as a Parquet DATE)
and, in the Parquet schema metadata under the ``research_lib`` key, a JSON object with the format
version and the snapshot's fields: underlying, spot, quote time (ISO 8601 with its UTC offset),
source, snapshot date, modelled, notes, rows, ``sha256`` (the content key, see :func:`content_sha256`)
and ``written_at``. Other tools (DuckDB, polars, ``pyarrow.dataset``) read the folder as one dataset.

Identity and idempotency
    A snapshot is identified by (underlying, quote time, source). Putting one whose identity and
    content are already stored does nothing and returns ``created=False``; putting one with the same
    identity but different content (a reader was fixed, a file re-downloaded) replaces the stored file
    (``created=True, replaced=True``).

Safety
    Writes are atomic: the bytes go to ``.tmp-<uuid>-<name>`` in the destination folder, are fsynced,
    then ``os.replace``-d into place (and the folder fsynced). Every write happens under an exclusive
    ``fcntl.flock`` on ``<root>/.lock``, so several processes may write at once; the catalogue is
    rewritten the same atomic way under the same lock. Readers never see a half-written file and ignore
    names starting with ``.``; a temp file left by a crashed writer is removed by the next write in
    that folder (or by :meth:`ChainStore.rebuild_catalogue`). The catalogue is a cache: when it is
    missing, unreadable or out of step with the files (a crash between the file and the catalogue
    update, files copied in by hand), :meth:`ChainStore.list` notices (it compares the catalogue
    with a listing of the files, sizes and modification times) and repairs it. The lock needs a
    local file system (``flock`` on network file systems is not relied on); POSIX only.

Example
-------
>>> from research_lib.data.store import ChainStore, age
>>> store = ChainStore()                      # data/ or $RESEARCH_LIB_DATA      # doctest: +SKIP
>>> print(store.import_file("../shared/data/chains/spx_eod_2026-06-12_2026-08-21.parquet").summary())
... # doctest: +SKIP
>>> snap = store.get("SPX", date="2026-08-21")  # latest quote of that day     # doctest: +SKIP
>>> age(store.latest("SPX"))                  # how old the newest quote is     # doctest: +SKIP
"""

from __future__ import annotations

from research_lib.data.store.catalogue import (
    CATALOGUE_COLUMNS,
    CATALOGUE_NAME,
    CATALOGUE_VERSION,
    QUARANTINE_DIR,
)
from research_lib.data.store.chainstore import LOCK_NAME, ChainStore
from research_lib.data.store.imports import ALREADY_STORED, ImportFailure, ImportReport, SkippedSnapshot
from research_lib.data.store.snapshots import (
    CHAINS_DIR,
    ENV_ROOT,
    FILE_SCHEMA,
    FORMAT_VERSION,
    METADATA_KEY,
    StoreEntry,
    age,
    content_sha256,
    default_root,
    encode_snapshot,
    read_metadata,
    read_snapshot_file,
)
from research_lib.errors import NothingToImportError, SnapshotNotStoredError, StoreError

__all__ = [
    "ALREADY_STORED",
    "CATALOGUE_COLUMNS",
    "CATALOGUE_NAME",
    "CATALOGUE_VERSION",
    "CHAINS_DIR",
    "ENV_ROOT",
    "FILE_SCHEMA",
    "FORMAT_VERSION",
    "LOCK_NAME",
    "METADATA_KEY",
    "QUARANTINE_DIR",
    "ChainStore",
    "ImportFailure",
    "ImportReport",
    "NothingToImportError",
    "SkippedSnapshot",
    "SnapshotNotStoredError",
    "StoreEntry",
    "StoreError",
    "age",
    "content_sha256",
    "default_root",
    "encode_snapshot",
    "read_metadata",
    "read_snapshot_file",
]
