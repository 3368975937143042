"""Checkpoint SQLite's write-ahead log in the background. Flask-free.

SQLite copies the WAL back into the database file ("checkpoint") from inside the
COMMIT that takes the log past ``wal_autocheckpoint`` pages: that one commit then
also copies a thousand pages and syncs the file twice -- while it still holds the
write lock every other writer of the node waits on (reads too: each writes its
AuditEvent). Measured on a single read: ~0.1 ms on average, and the slow tail.

So each process runs one daemon thread that checkpoints every registered database
file a few times a second, on a connection of its own: PASSIVE-ly first (it never
waits for, nor blocks, readers or writers), which copies the bulk. A passive
checkpoint alone never lets the log start over, though -- a writer rewinds it only
when every frame was copied, and under steady traffic some always wait -- and a
long log slows every read (SQLite looks pages up in it). So once the log holds
:data:`RESTART_FRAMES`, the thread takes the writers' turn (``writer_queue.WriterQueue``'s
file lock: no writer is mid-transaction then) and runs a RESTART checkpoint: the
few frames left are copied and the next writer starts the log from the top. The
connections' automatic checkpoint stays on at :data:`SAFETY_PAGES` as a safety
net, should the thread ever fall behind.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from collections import Counter
from pathlib import Path
from urllib.parse import quote

from fhir_server.storage.writer_queue import WriterQueue

log = logging.getLogger("phrx")

INTERVAL_S = 0.2
RESTART_FRAMES = 1000  # log length (pages) at which it is rewound (SQLite's own default)
SAFETY_PAGES = 16_000  # ~64 MB of log before a commit checkpoints by itself


class Checkpointer:
    """Registered database files, checkpointed by one thread per process."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._paths: Counter[str] = Counter()  # path -> engines registered on it
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self.copied: Counter[str] = Counter()  # path -> frames reported copied, summed (tests)
        self.restarts: Counter[str] = Counter()  # path -> RESTART checkpoints

    def register(self, engine) -> None:
        """Checkpoint ``engine``'s file until the engine is disposed or collected."""
        path = engine.url.database
        if not path or path == ":memory:":
            return
        path = str(Path(path).resolve())
        with self._lock:
            self._paths[path] += 1
            self._ensure_thread()
        done = threading.Event()

        def unregister(*_args) -> None:
            if not done.is_set():
                done.set()
                self._unregister(path)

        from sqlalchemy import event

        event.listen(engine, "engine_disposed", unregister)
        weakref.finalize(engine, unregister)

    def registered(self) -> set[str]:
        with self._lock:
            return set(self._paths)

    def _unregister(self, path: str) -> None:
        with self._lock:
            self._paths[path] -= 1
            if self._paths[path] <= 0:
                del self._paths[path]

    def _ensure_thread(self) -> None:
        # A forked child has the registry but not the thread: start its own.
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="phrx-wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connections: dict[str, sqlite3.Connection] = {}
        while not self._stop.wait(self.interval_s):
            wanted = self.registered()
            for path in set(connections) - wanted:
                connections.pop(path).close()
            for path in wanted:
                self._checkpoint(path, connections)

    def _checkpoint(self, path: str, connections: dict) -> None:
        try:
            conn = connections.get(path)
            if conn is None:
                # mode=rw: a database deleted meanwhile is not created again.
                uri = f"file:{quote(path)}?mode=rw"
                conn = connections[path] = sqlite3.connect(
                    uri, uri=True, timeout=0, isolation_level=None, check_same_thread=False
                )
            _busy, logged, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if logged >= RESTART_FRAMES:
                _busy, logged, copied = self._restart(path, conn)
            if copied > 0:
                self.copied[path] += copied
        except sqlite3.Error as exc:  # busy, or gone: the safety net still holds
            stale = connections.pop(path, None)
            if stale is not None:
                stale.close()
            if not os.path.exists(path):  # deleted with its engine still alive: stop
                with self._lock:
                    self._paths.pop(path, None)
            log.debug("WAL checkpoint of %s skipped: %s", path, exc)

    def _restart(self, path: str, conn: sqlite3.Connection) -> tuple[int, int, int]:

        queue = WriterQueue(path)  # a file of its own: queues behind this process's writers too
        try:
            with queue.turn():  # after the writer in progress, before the next
                # No busy wait: a reader still on an old snapshot only delays the
                # rewind to a later round, never the writers queued behind this turn.
                found = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        finally:
            queue.close()
        self.restarts[path] += 1
        return found


CHECKPOINTER = Checkpointer()


def _after_fork_in_child() -> None:
    # gunicorn forks its workers from a master whose checkpoint thread may hold the
    # registry's lock at that instant; the child must not inherit it held.
    CHECKPOINTER._lock = threading.Lock()
    CHECKPOINTER._thread = None


os.register_at_fork(after_in_child=_after_fork_in_child)
