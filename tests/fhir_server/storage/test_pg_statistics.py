"""Planner statistics on PostgreSQL after bulk writes (fhir_server.storage.pg_statistics)."""

from __future__ import annotations

import time

from sqlalchemy import text

from fhir_server.node import Node, NodeConfig
from fhir_server.storage import pg_statistics

LAST_ANALYSED = text(
    "SELECT last_analyze FROM pg_stat_user_tables WHERE relid = to_regclass('sidx_hash')"
)


def _write_observations(store, count: int, prefix: str = "o") -> None:
    observations = [
        {
            "resourceType": "Observation",
            "id": f"{prefix}{i}",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        }
        for i in range(count)
    ]
    with store.unit_of_work(prepare=observations, hooks=False) as writer:
        for observation in observations:
            writer.create(observation, res_id=observation["id"], checked=False)


def test_a_bulk_write_gets_the_node_analysed(tmp_path, pg_url, monkeypatch):
    monkeypatch.setattr(pg_statistics, "CHECK_EVERY_S", 3600.0)  # checked here, not behind
    node = Node(NodeConfig(data_dir=tmp_path / "data", database_url=pg_url))
    try:
        store = node.store
        with store.engine.connect() as conn:
            assert conn.execute(LAST_ANALYSED).scalar() is None
        _write_observations(store, pg_statistics.MIN_CHANGES // 2)
        store.statistics.wait()
        assert not store.statistics.analyse_if_stale()  # below the threshold
        _write_observations(store, pg_statistics.MIN_CHANGES // 2 + 100, prefix="p")
        # The server publishes a backend's counts within about a second.
        deadline = time.monotonic() + 15
        while not store.statistics.analyse_if_stale() and time.monotonic() < deadline:
            time.sleep(0.2)
        with store.engine.connect() as conn:
            assert conn.execute(LAST_ANALYSED).scalar() is not None
        assert store.statistics.analyses == 1
        # Analysed just now: nothing changed since, nothing to do.
        assert not store.statistics.analyse_if_stale()
    finally:
        node.close()


def test_writes_start_at_most_one_check_per_interval(tmp_path, pg_url):
    node = Node(NodeConfig(data_dir=tmp_path / "data", database_url=pg_url))
    try:
        statistics = node.store.statistics
        statistics.wrote()
        first = statistics._thread
        statistics.wrote()  # within CHECK_EVERY_S: no new check
        assert statistics._thread is first
        statistics.wait()
    finally:
        node.close()


def test_sqlite_nodes_never_check(sqlite_node):
    statistics = sqlite_node.store.statistics
    statistics.wrote()
    assert not statistics.enabled and statistics._thread is None
