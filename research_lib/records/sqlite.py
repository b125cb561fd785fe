"""What the library's SQLite files share: :class:`SQLiteFile` (connections, the one write transaction, schema
creation and migrations) under the decision log (:class:`~research_lib.records.decisions.DecisionLog`) and the
paper ledger (:class:`~research_lib.records.paper.PaperLedger`).

Every file is in WAL mode with foreign keys on, ``synchronous=FULL`` (``NORMAL`` when not durable) and a busy
timeout; each thread keeps one connection open between calls (a connection inherited through ``fork()`` is never
used or closed in the child); every state change is one ``BEGIN IMMEDIATE`` transaction (:func:`transaction`).
Schemas are versioned: ``PRAGMA user_version`` and a ``schema_version`` table with one row per version applied; a
new file is created at version 1 and migrated step by step like an old one, in one transaction; a newer or
inconsistent file is refused.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from research_lib import __version__
from research_lib.settings import data_root

__all__ = ["SCHEMA_VERSION_TABLE", "Migrations", "SQLiteFile", "transaction"]

#: The table every file's version 1 starts with: one row per schema version applied (:meth:`SQLiteFile._stamp`).
SCHEMA_VERSION_TABLE = """CREATE TABLE schema_version (
        version INTEGER PRIMARY KEY,
        applied_at TEXT NOT NULL,
        library_version TEXT NOT NULL
    )"""

#: ``migrations[v]`` takes a file from schema v to v + 1: SQL statements, or a callable given the connection
#: (inside the upgrade transaction).
Migrations = dict[int, Sequence[str] | Callable[[sqlite3.Connection], None]]

#: Connections inherited from a parent process: kept referenced so they are never closed here.
_INHERITED: list[sqlite3.Connection] = []


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """The one write transaction: ``BEGIN IMMEDIATE`` (takes SQLite's write lock at once, so concurrent writers
    queue instead of failing on upgrade), ``COMMIT`` when the block ends, ``ROLLBACK`` on any exception (a failed
    rollback is ignored; the original exception propagates).

    ``conn`` must be in autocommit mode (``isolation_level=None``), as every connection of :class:`SQLiteFile` is.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SQLiteFile:
    """Base of a versioned SQLite file of the library (subclasses: the decision log, the paper ledger).

    A subclass sets :attr:`KIND` (``"decision log"``), :attr:`DB_NAME` (the default file in the data root),
    :attr:`TABLES` (tables a file of this kind must hold), and implements :meth:`_schema`, :meth:`_file_error`,
    :meth:`_schema_error` and :meth:`_argument_error`.

    Parameters
    ----------
    path : path-like, optional
        The SQLite file; default ``<data root>/<DB_NAME>``. Created, with its folder, when missing.
    timeout : float
        Seconds a writer waits for another one before failing (SQLite's busy timeout), > 0.
    durable : bool
        ``synchronous=FULL`` (each change is on disk when the call returns) or ``NORMAL`` (as atomic and
        crash-safe, but a power cut may lose the last changes committed before it).
    """

    KIND: ClassVar[str] = "SQLite file"
    DB_NAME: ClassVar[str] = "file.sqlite"
    TABLES: ClassVar[frozenset[str]] = frozenset({"schema_version"})
    #: The connections' ``row_factory`` (None: tuples).
    ROW_FACTORY: ClassVar[Any] = None

    def __init__(self, path: str | os.PathLike | None = None, *, timeout: float = 30.0, durable: bool = True):
        if path is None:
            path = data_root() / self.DB_NAME
        self.path = Path(path).expanduser().absolute()
        if not isinstance(durable, bool):
            raise self._argument_error(f"durable must be True or False, got {durable!r}")
        ok = isinstance(timeout, numbers.Real) and not isinstance(timeout, bool)
        if not ok or not math.isfinite(float(timeout)) or float(timeout) <= 0:
            raise self._argument_error(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        self.timeout = float(timeout)
        self.durable = durable
        if self.path.is_dir():
            raise self._file_error("is a folder; give the path of the SQLite file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._open_schema()

    # -- what a subclass says ------------------------------------------------------------------------------

    def _schema(self) -> tuple[int, Sequence[str], Migrations]:
        """``(version this code writes, the statements of version 1, the migrations)``, read at each call (so
        a test can replace the module's names)."""
        raise NotImplementedError

    def _file_error(self, message: str) -> Exception:
        """The error of an unusable file (its message prefixed with the path)."""
        raise NotImplementedError

    def _schema_error(self, message: str, found: int) -> Exception:
        """The error of a schema this code cannot read (``found`` the file's version)."""
        raise NotImplementedError

    def _argument_error(self, message: str) -> Exception:
        """The error of a bad constructor argument."""
        raise NotImplementedError

    # -- life ----------------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def close(self) -> None:
        """Close this thread's connection (the next call opens a new one). Also done at ``with`` exit."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections ---------------------------------------------------------------------------------------

    def _raw_connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._file_error(f"cannot open the file ({exc})") from exc
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise self._file_error(f"not a usable SQLite database ({exc})") from exc
        conn.row_factory = self.ROW_FACTORY
        return conn

    def _thread_connection(self) -> sqlite3.Connection:
        """This thread's connection, kept open between calls (closing the last connection to a WAL database
        checkpoints it: ~3 ms a call). A connection inherited through fork() is never used or closed in the
        child (SQLite forbids both); the child opens its own."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if conn is not None:
            _INHERITED.append(conn)
        conn = self._raw_connect()
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, after checking the file is still at this code's schema version."""
        conn = self._thread_connection()
        try:
            found = conn.execute("PRAGMA user_version").fetchone()[0]
            if found != self._schema()[0]:
                raise self._version_error(found)
            yield conn
        except sqlite3.Error:
            self.close()  # start afresh next time
            raise

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error."""
        with self._connect() as conn, transaction(conn):
            yield conn

    # -- schema --------------------------------------------------------------------------------------------

    def _version_error(self, found: int) -> Exception:
        supported = self._schema()[0]
        if found > supported:
            msg = (f"{self.KIND} schema version {found} is newer than this research_lib ({__version__}) reads "
                   f"(up to {supported}): upgrade research_lib")
        else:
            msg = (f"{self.KIND} schema version {found}, expected {supported} "
                   f"(open it with {type(self).__name__} to migrate)")
        return self._schema_error(msg, found)

    def _open_schema(self) -> None:
        """Create the schema in a new file, migrate an old one, refuse a newer or foreign one."""
        conn = self._raw_connect()
        try:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                raise self._file_error(f"not a usable SQLite database ({exc})") from exc
            if str(mode).lower() != "wal":  # pragma: no cover - e.g. a file system without shared memory
                raise self._file_error(f"could not switch the journal to WAL (got {mode!r})")
            with transaction(conn):
                self._migrate(conn)
        finally:
            conn.close()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        current, first, migrations = self._schema()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > current:
            raise self._version_error(version)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version == 0:
            if tables - {"sqlite_sequence"}:
                raise self._file_error(f"is not a research_lib {self.KIND} (it holds tables "
                                       f"{', '.join(sorted(tables))} and no schema version)")
            for stmt in first:
                conn.execute(stmt)
            version = 1
            self._stamp(conn, version)
        elif not self.TABLES <= tables:
            raise self._file_error(f"is not a research_lib {self.KIND} (user_version {version} but tables "
                                   f"{', '.join(sorted(tables)) or 'none'})")
        while version < current:
            step = migrations.get(version)
            if step is None:
                raise self._schema_error(f"no migration from {self.KIND} schema {version} to {version + 1}",
                                         version)
            if callable(step):
                step(conn)
            else:
                for stmt in step:
                    conn.execute(stmt)
            version += 1
            self._stamp(conn, version)
        recorded = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        if recorded != version:
            raise self._schema_error(f"PRAGMA user_version is {version} but the schema_version table says "
                                     f"{recorded}: the file was changed by something else", version)

    @staticmethod
    def _stamp(conn: sqlite3.Connection, version: int) -> None:
        conn.execute("INSERT INTO schema_version (version, applied_at, library_version) VALUES (?, ?, ?)",
                     (version, pd.Timestamp.now(tz="UTC").isoformat(), __version__))
        conn.execute(f"PRAGMA user_version = {int(version)}")

    @property
    def schema_version(self) -> int:
        """The file's schema version (``PRAGMA user_version``)."""
        return int(self._thread_connection().execute("PRAGMA user_version").fetchone()[0])
