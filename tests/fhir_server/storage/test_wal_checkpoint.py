"""SQLite's WAL is checkpointed by a background thread, not in a writer's COMMIT."""

from __future__ import annotations

import gc
import time
from pathlib import Path

from sqlalchemy import insert, text

from fhir_server.storage import wal_checkpoint
from fhir_server.storage.db import make_engine, node_settings
from fhir_server.storage.schema import create_schema


def _wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_writes_are_checkpointed_in_the_background(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'node.db'}")
    path = str((tmp_path / "node.db").resolve())
    try:
        create_schema(engine)
        with engine.connect() as conn:
            # the connections' own checkpoint is only the safety net
            limit = conn.execute(text("PRAGMA wal_autocheckpoint")).scalar()
        assert limit == wal_checkpoint.SAFETY_PAGES
        before = wal_checkpoint.CHECKPOINTER.copied[path]
        for n in range(20):
            with engine.begin() as conn:
                conn.execute(insert(node_settings).values(name=f"k{n}", value="x" * 100))
        assert _wait_for(lambda: wal_checkpoint.CHECKPOINTER.copied[path] > before)
    finally:
        engine.dispose()
    assert path not in wal_checkpoint.CHECKPOINTER.registered()


def test_an_engine_dropped_without_dispose_is_forgotten(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'dropped.db'}")
    path = str((tmp_path / "dropped.db").resolve())
    assert path in wal_checkpoint.CHECKPOINTER.registered()
    del engine
    gc.collect()
    assert path not in wal_checkpoint.CHECKPOINTER.registered()


def test_a_deleted_database_is_not_created_again(tmp_path):
    checkpointer = wal_checkpoint.Checkpointer(interval_s=0.02)
    engine = make_engine(f"sqlite:///{tmp_path / 'gone.db'}")
    try:
        checkpointer.register(engine)
        path = Path(tmp_path / "gone.db").resolve()
        assert not path.exists()  # nothing connected yet: no file
        assert _wait_for(lambda: str(path) not in checkpointer.registered())
        assert not path.exists()
    finally:
        engine.dispose()


def test_memory_databases_are_not_registered():
    checkpointer = wal_checkpoint.Checkpointer()
    engine = make_engine("sqlite://")
    try:
        checkpointer.register(engine)
        assert checkpointer.registered() == set()
    finally:
        engine.dispose()


def test_a_long_log_is_rewound_under_steady_writes(tmp_path, monkeypatch):
    """A passive checkpoint never rewinds the log while writes keep coming; the
    RESTART (under the writers' turn) does, so it stays short."""
    monkeypatch.setattr(wal_checkpoint, "RESTART_FRAMES", 40)
    checkpointer = wal_checkpoint.Checkpointer(interval_s=0.01)
    engine = make_engine(f"sqlite:///{tmp_path / 'busy.db'}")
    path = str((tmp_path / "busy.db").resolve())
    try:
        create_schema(engine)
        checkpointer.register(engine)
        for n in range(400):
            with engine.begin() as conn:
                conn.execute(insert(node_settings).values(name=f"k{n}", value="x" * 500))
        assert checkpointer.restarts[path] > 0
        with engine.connect() as conn:
            assert _frames(conn) < 400  # 400 commits of >= 1 page each were not all kept
    finally:
        engine.dispose()


def _frames(conn) -> int:
    """Frames in the log now (a PASSIVE checkpoint reports them and copies what it can)."""
    return conn.execute(text("PRAGMA wal_checkpoint(PASSIVE)")).fetchone()[1]


def test_a_forked_child_checkpoints_with_its_own_thread(tmp_path):
    """gunicorn's workers are forked: each must get a fresh lock and its own thread."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    result = ctx.Queue()
    wal_checkpoint.CHECKPOINTER._lock.acquire()  # as if the fork hit the thread mid-round
    try:
        child = ctx.Process(target=_child_writes, args=(str(tmp_path / "child.db"), result))
        child.start()
    finally:
        wal_checkpoint.CHECKPOINTER._lock.release()
    child.join(30)
    if child.is_alive():  # deadlocked on the inherited lock
        child.kill()
    assert result.get(timeout=5) is True


def _child_writes(path: str, result) -> None:
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    resolved = str(Path(path).resolve())
    for n in range(20):
        with engine.begin() as conn:
            conn.execute(insert(node_settings).values(name=f"c{n}", value="x" * 100))
    result.put(_wait_for(lambda: wal_checkpoint.CHECKPOINTER.copied[resolved] > 0))
    engine.dispose()
