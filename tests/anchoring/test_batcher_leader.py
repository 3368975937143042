"""One process of a node anchors: the holder of DATA/anchoring.lock (anchoring.leader)."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from anchoring import journal
from anchoring.leader import FileLeader
from anchoring.node_chain import LEADER_FILE


def test_one_holder_at_a_time(tmp_path: Path) -> None:
    first, second = FileLeader(tmp_path / "a.lock"), FileLeader(tmp_path / "a.lock")
    assert first.leads()
    assert first.leads()  # kept, not retaken
    assert not second.leads()
    first.release()
    assert second.leads()
    assert not first.leads()
    second.release()


def _hold_then_exit(path: str, ready, release) -> None:
    leader = FileLeader(Path(path))
    assert leader.leads()
    ready.set()
    release.wait(10)
    os._exit(0)  # no release(): the kernel drops the lock with the process


def test_a_dead_leaders_lock_passes_on(tmp_path: Path) -> None:
    path = tmp_path / "anchoring.lock"
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_then_exit, args=(str(path), ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        mine = FileLeader(path)
        assert not mine.leads()
        release.set()
        holder.join(10)
        assert mine.leads()
        mine.release()
    finally:
        holder.kill()


def test_only_the_leading_process_anchors_in_the_background(tmp_path: Path) -> None:
    from fhir_server.node import Node, NodeConfig

    data = tmp_path / "data"
    node = Node(
        NodeConfig(data_dir=data, chain="memory", anchor_worker=False, anchor_interval=0.05)
    )
    other = FileLeader(data / LEADER_FILE)  # another worker of the node took the lock first
    try:
        assert other.leads()
        body = {"resourceType": "Patient", "id": "led", "active": True}
        with node.store.unit_of_work(prepare=[body]) as w:
            w.create(body, res_id="led")
        time.sleep(0.06)
        batcher = node.anchoring.batcher
        assert batcher.step() == []  # not the leader: idles
        assert journal.counts(node.engine)["anchored"] == 0
        assert len(batcher.flush()) == 1  # an explicit $anchor runs wherever asked
        other.release()
        body = {"resourceType": "Patient", "id": "led2", "active": True}
        with node.store.unit_of_work(prepare=[body]) as w:
            w.create(body, res_id="led2")
        time.sleep(0.06)
        assert len(batcher.step()) == 1  # the lock is free: this process leads now
        assert journal.counts(node.engine)["anchored"] == 2
    finally:
        node.close()
