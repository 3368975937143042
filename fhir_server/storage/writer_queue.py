"""The order in which this host's processes take SQLite's write lock (an OS file lock)."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import OperationalError


class WriterQueue:
    """The order in which this host's processes take SQLite's write lock.

    SQLite lets a blocked writer sleep and retry (1, 2, 5 … 100 ms apart), so a
    worker waiting for the lock often sleeps on long after it was released: with
    two workers ingesting, that was a fifth of the machine's time idle. Writers
    here first queue on an OS file lock next to the database, which hands over
    the moment it is released; BEGIN IMMEDIATE then finds the database free.
    A thread lock orders the threads of one process (flock is per open file, and
    the file is opened per process, never shared across fork)."""

    def __init__(self, database_path: str) -> None:
        self.path = database_path + ".writers"
        self._thread_lock = threading.Lock()
        self._file = None
        self._pid = None

    @contextmanager
    def turn(self) -> Iterator[None]:
        # A writer nested in another on the same thread would wait forever here;
        # on the database it would fail after the busy timeout, so do the same.
        if not self._thread_lock.acquire(timeout=WRITE_LOCK_TIMEOUT_S):
            raise OperationalError("BEGIN IMMEDIATE", None, TimeoutError("write queue"))
        try:
            handle = self._handle()
            fcntl.flock(handle, fcntl.LOCK_EX)  # releases the GIL while it waits
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        """Close this process's lock file (the engine was disposed)."""
        with self._thread_lock:
            if self._file is not None and self._pid == os.getpid():
                self._file.close()
            self._file = self._pid = None

    def _handle(self):
        if self._pid != os.getpid():  # first use, or a forked child: its own file
            self._file = open(self.path, "a+b")  # noqa: SIM115 (kept open for the process)
            self._pid = os.getpid()
        return self._file


WRITE_LOCK_TIMEOUT_S = 30
