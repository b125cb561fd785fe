"""Foundation: the file-system helpers every writer shares (standard library only).

:func:`atomic_write` is the one way research_lib writes a file (the store, the caches, the reports):
readers see the old file or the new one, never a part.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

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
