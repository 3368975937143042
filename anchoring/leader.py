"""Which process of a node runs its anchoring batcher: the one holding a file lock.

Every gunicorn worker of ``phrx serve`` starts a batcher thread, but a node needs
one: two would poll the journal twice, send transactions from the same account
with racing nonces, and take the database's write lock for claims in turn. Each
batcher asks :meth:`FileLeader.leads` before a round; the first process to take
the non-blocking exclusive lock on ``DATA/anchoring.lock`` keeps it for its life,
the others idle. When the leader exits (or is killed) the kernel drops its lock
and another worker's batcher takes over at its next round -- the journal's leases
(:mod:`anchoring.journal`) make that hand-over safe at any point.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path


class FileLeader:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def leads(self) -> bool:
        """True when this process holds (or now takes) the lock."""
        with self._lock:
            if self._file is not None and self._pid == os.getpid():
                return True
            # First call, or a forked child: the parent's lock is not ours.
            handle = open(self.path, "a+b")  # noqa: SIM115 (held open while leading)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            self._file, self._pid = handle, os.getpid()
            return True

    def release(self) -> None:
        with self._lock:
            if self._file is not None and self._pid == os.getpid():
                fcntl.flock(self._file, fcntl.LOCK_UN)
                self._file.close()
            self._file = self._pid = None
