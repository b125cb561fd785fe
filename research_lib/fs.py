"""Foundation: the file-system helpers every writer shares (standard library only).

:func:`atomic_write` is the one way research_lib writes a file (the store, the caches, the reports):
readers see the old file or the new one, never a part. :func:`file_lock` is the one lock every writer
takes (the store, the net GEX history cache, the report runs).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from research_lib.errors import LockBusyError

#: Prefix of the temporary files :func:`atomic_write` leaves behind only when a process dies mid-write.
TEMP_PREFIX = ".tmp-"


def _after_temp_write(temp_path: Path, final_path: Path) -> None:
    """Called after a temp file is written and fsynced, just before it is renamed into place.

    Does nothing; tests replace it (in a child process) to simulate a crash at the worst moment.
    """


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def atomic_write(final: Path, data: bytes) -> None:
    """Write ``data`` to ``final`` atomically: temp file in the same folder, fsync, ``os.replace``.

    Readers see the old file or the new one, never a part; a crash leaves at most a ``.tmp-*`` file
    beside it. Used for every file research_lib writes (store, caches, reports).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}-{final.name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        _after_temp_write(tmp, final)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(final.parent)


@contextlib.contextmanager
def file_lock(path: Path, *, wait: bool = True, note: str | None = None) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``path`` (created, with its folder) for the ``with`` block.

    Parameters
    ----------
    path : Path
        The lock file. The lock is released when the block ends or the process dies.
    wait : bool, default True
        Block until the lock is free. False: raise :class:`~research_lib.errors.LockBusyError` at once
        when another process holds it, with the holder's ``note``.
    note : str, optional
        Written into the lock file while held (who holds it, since when), for the next one to read.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown process"
            raise LockBusyError(f"{path} is held by {holder}", path=path, holder=holder) from None
        if note is not None:
            os.ftruncate(fd, 0)
            os.pwrite(fd, note.encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
