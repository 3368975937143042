"""Fresh planner statistics on PostgreSQL after bulk writes.

Why: PostgreSQL plans from table statistics that autovacuum refreshes at most once
a minute (``autovacuum_naptime``). Right after a bulk load into a new or small node
they are missing or far off: after the Synthea ingest the planner expected 6
Encounters and 7 date-index rows (there were 598 and 5,908), chose a nested loop
over 2.2 million pairs, and ``Encounter?date=ge2015-01-01&_count=50`` took 134 ms
p50 -- 0.2 ms once the tables were analysed.

What: after a write, at most once per ``CHECK_EVERY_S`` per process, a background
thread reads the server's own count of rows changed since the last ANALYZE of the
``resources`` table (``pg_stat_user_tables.n_mod_since_analyze``, node-wide, so the
workers' writes add up) and, once that is ``MIN_CHANGES`` and ``GROWTH`` of the rows
there were before, analyses the node's tables. Nothing is raised into a request; a
failure is logged. SQLite needs none of this (its plans here do not depend on
statistics).
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.engine import Engine

log = logging.getLogger("phrx")  # the node log (DATA/logs/phrx.log)

CHECK_EVERY_S = 1.0
MIN_CHANGES = 1000
GROWTH = 0.2

_NODE_TABLES = (
    "SELECT string_agg(quote_ident(tablename), ', ' ORDER BY tablename) "
    "FROM pg_tables WHERE schemaname = current_schema()"
)
_CHANGED = (
    "SELECT n_mod_since_analyze, n_live_tup FROM pg_stat_user_tables "
    "WHERE relid = to_regclass('resources')"
)


class PlannerStatistics:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.enabled = engine.dialect.name == "postgresql"
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._thread: threading.Thread | None = None
        self.analyses = 0  # ANALYZE runs of this process (tests, logs)

    def wrote(self) -> None:
        """Called after a unit of work committed (cheap; rate-limited)."""
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            running = self._thread is not None and self._thread.is_alive()
            if running or now - self._checked_at < CHECK_EVERY_S:
                return
            self._checked_at = now
            self._thread = threading.Thread(
                target=self._check, name="phrx-pg-statistics", daemon=True
            )
            self._thread.start()

    def wait(self, timeout: float = 30.0) -> None:
        """Until the running check (if any) is done (tests, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _check(self) -> None:
        try:
            self.analyse_if_stale()
        except Exception:  # a lost connection, a dropped schema: never a request's problem
            log.warning("could not refresh PostgreSQL planner statistics", exc_info=True)

    def analyse_if_stale(self) -> bool:
        """ANALYZE the node's tables when enough changed; True when it did."""
        with self.engine.connect() as conn:
            row = conn.exec_driver_sql(_CHANGED).first()
            if row is None:
                return False
            changed, live = row
            if changed < MIN_CHANGES or changed < GROWTH * max(live - changed, 0):
                return False
            # The node's own tables (never the whole database: other schemas may
            # share it), quoted as identifiers by the server itself.
            tables = conn.exec_driver_sql(_NODE_TABLES).scalar_one()
            conn.exec_driver_sql(f"ANALYZE {tables}")
            conn.commit()
        self.analyses += 1
        log.info("analysed the node's tables (%d rows changed since the last time)", changed)
        return True
