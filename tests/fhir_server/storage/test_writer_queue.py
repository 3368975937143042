"""SQLite writers queue on an OS file lock (writer_queue.WriterQueue) before BEGIN IMMEDIATE."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest
from sqlalchemy.exc import OperationalError

from fhir_server.storage import db, writer_queue


def test_writers_of_two_threads_take_turns(tmp_path):
    queue = writer_queue.WriterQueue(str(tmp_path / "node.db"))
    inside, overlaps = [], []

    def write(n: int) -> None:
        for _ in range(20):
            with queue.turn():
                inside.append(n)
                if len(inside) > 1:
                    overlaps.append(tuple(inside))
                time.sleep(0.0005)
                inside.remove(n)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []


def _hold(queue: writer_queue.WriterQueue, ready, release) -> None:
    with queue.turn():  # the parent's queue object, inherited through fork
        ready.set()
        release.wait(10)


def test_another_process_waits_for_the_turn(tmp_path):
    path = str(tmp_path / "node.db")
    queue = writer_queue.WriterQueue(path)
    queue._handle()  # opened before the fork: the child must not share this open file
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold, args=(queue, ready, release))
    child.start()
    try:
        assert ready.wait(10)
        threading.Timer(0.3, release.set).start()
        with queue.turn():
            # it could not write while the child held the turn: only after its release
            assert release.is_set()
    finally:
        release.set()
        child.join(10)


def test_a_writer_nested_in_another_on_one_thread_fails_instead_of_hanging(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_queue, "WRITE_LOCK_TIMEOUT_S", 0.2)
    queue = writer_queue.WriterQueue(str(tmp_path / "node.db"))
    with queue.turn(), pytest.raises(OperationalError), queue.turn():
        pass


def test_file_databases_get_a_queue_and_memory_ones_do_not(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'node.db'}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        assert (tmp_path / "node.db.writers").exists()
    finally:
        engine.dispose()
    memory = db.make_engine("sqlite://")
    with memory.begin() as conn:
        conn.exec_driver_sql("SELECT 1")
    memory.dispose()
