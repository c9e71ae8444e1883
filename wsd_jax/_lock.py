"""One writer per checkpoint folder: an exclusive lock that dies with its holder.

Two managers writing one folder delete each other's steps (retention) and in-flight saves (the
temporary-folder cleanup a writer runs on start). The lock is ``fcntl.flock`` on a file in the
folder: the kernel drops it when the holding process exits in any way, SIGKILL included, so a lock
left by a crashed job is free to take over and never needs a human to delete it. The file records
who holds it, for the error message.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import socket
from pathlib import Path
from typing import IO

_log = logging.getLogger(__name__)
LOCK_NAME = ".wsd-writer.lock"

try:
    import fcntl
except ImportError:  # Windows: no flock; one writer is then not enforced (documented)
    fcntl = None  # type: ignore[assignment]


class WriterLockError(RuntimeError):
    """Another live process (or another manager in this one) is already writing this folder."""


class WriterLock:
    """Holds the writer lock of ``directory`` from construction until ``release``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / LOCK_NAME
        self._file: IO[str] | None = None
        if fcntl is None:
            _log.warning("no fcntl on this platform: one writer per folder is not enforced")
            return
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise WriterLockError(
                f"{directory} is already being written by another checkpoint manager ({holder}). "
                "One writer per folder: open it for reading with read_only=True (restore, branching), "
                "or close the other manager first. A lock left by a process that died is released "
                "by the operating system and taken over automatically."
            ) from None
        handle.seek(0)
        previous = handle.read().strip()
        if previous:
            _log.info("taking over the writer lock of %s, left by %s (no longer held)", directory, previous)
        handle.seek(0)
        handle.truncate()
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": now}))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()  # an empty file: released cleanly (a crashed holder leaves its name)
            self._file.close()  # closing the descriptor drops the flock
            self._file = None
