"""Durability of the anchoring journal against a real anvil process.

* kill -9 of a ``phrx anchor-worker`` subprocess at every step of a batch (claimed, tx
  sent, tx hash stored, mined): after a restart every leaf is anchored exactly once;
* chain down: writes go on, the journal grows, retries back off, and it drains when
  anvil comes back from its persisted state.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select
from web3 import Web3

from anchoring import journal
from anchoring.batcher import ANCHORED_TOPIC, PAUSE_ENV
from anchoring.chain import ChainClient
from anchoring.devchain import anvil_available, free_port, rpc_ready
from anchoring.node_chain import NodeChain, as_deployment, load_deployment, start_dev_chain
from anchoring.proof import verify_inclusion
from anchoring.verification import ChainReader

pytestmark = pytest.mark.skipif(
    not anvil_available(), reason="node_modules/.bin/anvil missing (run `npm ci`)"
)
PHRX = [sys.executable, "-c", "from fhir_server.cli import main; main()"]


def _node(data: Path, **kw):
    from fhir_server.node import Node, NodeConfig

    return Node(NodeConfig(data_dir=data, **kw))


def _write(node, n: int) -> None:
    for i in range(n):
        body = {"resourceType": "Patient", "name": [{"family": f"Durable{i}"}], "active": True}
        body["id"] = os.urandom(8).hex()
        with node.store.unit_of_work(prepare=[body]) as w:
            w.create(body, res_id=body["id"])


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _drained(engine) -> bool:
    c = journal.counts(engine)
    return c["waiting"] == 0 and c["claimed"] == 0 and c["sent"] == 0


def assert_each_leaf_anchored_once(engine, chain_url: str, data: Path) -> int:
    """Every journal leaf: in exactly one anchored batch, its proof verifies against the
    root read from the chain, and every batch root was anchored by exactly one event."""
    deployment = as_deployment(load_deployment(data))
    reader = ChainReader.from_url(chain_url, deployment)
    w3 = reader.client.w3
    logs = w3.eth.get_logs(
        {
            "address": deployment.anchor_registry,
            "fromBlock": 0,
            "toBlock": "latest",
            "topics": ["0x" + ANCHORED_TOPIC.hex()],
        }
    )
    events = Counter(bytes(log["topics"][1]) for log in logs)
    with engine.connect() as conn:
        rows = conn.execute(select(journal.journal)).all()
        batch_rows = conn.execute(select(journal.batches)).all()
    assert rows, "nothing was journaled"
    assert all(b.state == journal.ANCHORED for b in batch_rows)
    # one Anchored event per batch root, and no event for a root we do not know
    assert events == Counter({bytes(b.root): 1 for b in batch_rows})
    per_batch = Counter(r.batch_id for r in rows)
    for b in batch_rows:
        assert per_batch[b.batch_id] == b.leaf_count
    for r in rows:
        anchor = journal.version_anchor(engine, r.res_type, r.res_id, r.version_id)
        assert anchor is not None and anchor.anchored
        record = reader.lookup(anchor.root)
        assert record is not None and record.leaf_count == anchor.leaf_count
        assert verify_inclusion(anchor.leaf, anchor.proof, anchor.root, record.leaf_count)
    contract = w3.eth.contract(
        address=deployment.anchor_registry,
        abi=reader.client.contract_abi("AnchorRegistry"),
    )
    assert contract.functions.anchorCount().call() == len(batch_rows)
    return len(rows)


@pytest.fixture
def anvil(tmp_path: Path):
    dev = start_dev_chain(tmp_path / "anvil")
    try:
        yield dev
    finally:
        dev.stop()


def _start_worker(data: Path, url: str, pause: str | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != PAUSE_ENV}
    if pause:
        env[PAUSE_ENV] = pause
    argv = [*PHRX, "anchor-worker", "--data-dir", str(data), "--chain", url]
    argv += ["--anchor-interval", "0.1", "--anchor-batch", "4"]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_line(proc: subprocess.Popen, prefix: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if line.startswith(prefix):
            return line
    proc.kill()
    raise AssertionError(f"worker never printed {prefix!r}; output:\n{''.join(seen)}")


def test_kill_9_worker_at_every_step_anchors_each_leaf_once(tmp_path: Path, anvil) -> None:
    data = tmp_path / "data"
    NodeChain(data, anvil.url).open().close()  # deploy, fund, write deployment.json
    node = _node(data)  # the writer side: no chain of its own
    procs: list[subprocess.Popen] = []
    try:
        for point in ("after-claim", "after-send", "after-mark-sent", "after-mined"):
            _write(node, 6)
            proc = _start_worker(data, anvil.url, pause=point)
            procs.append(proc)
            line = _wait_line(proc, "PAUSED")
            assert point in line
            os.kill(proc.pid, signal.SIGKILL)  # kill -9 mid-batch
            proc.wait(10)
            counts = journal.counts(node.engine)
            assert counts["claimed"] + counts["sent"] > 0  # a batch was left half-done
        _write(node, 5)
        proc = _start_worker(data, anvil.url, pause=None)
        procs.append(proc)
        _wait_line(proc, "anchor-worker running")
        _wait(lambda: _drained(node.engine), 30, "the journal to drain")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert assert_each_leaf_anchored_once(node.engine, anvil.url, data) == 4 * 6 + 5
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        node.close()


def test_chain_down_writes_continue_and_journal_drains(tmp_path: Path) -> None:
    data, chain_dir, port = tmp_path / "data", tmp_path / "anvil", free_port()
    dev = start_dev_chain(chain_dir, port)
    node = None
    try:
        url = dev.url
        node = _node(data, chain=url, anchor_interval=0.1, anchor_batch=8)
        node.anchoring.batcher.backoff_max = 1.0
        _write(node, 5)
        _wait(lambda: _drained(node.engine), 20, "first leaves anchored")
        dev.stop()  # SIGTERM: anvil writes its state file
        _write(node, 20)  # writes do not depend on the chain: they succeed without it
        assert not rpc_ready(url)  # the chain was down throughout
        _wait(lambda: node.anchoring.batcher.failures >= 2, 10, "retries to fail")
        counts = journal.counts(node.engine)
        assert counts["anchored"] == 5
        assert counts["waiting"] + counts["claimed"] + counts["sent"] == 20  # journal grew
        assert node.anchoring.batcher.last_error
        dev = start_dev_chain(chain_dir, port)  # same port, state restored
        _wait(lambda: _drained(node.engine), 30, "the journal to drain")
        assert journal.counts(node.engine)["anchored"] == 25
        assert assert_each_leaf_anchored_once(node.engine, url, data) == 25
        client = ChainClient.from_url(url, "0x" + "11" * 32)
        assert Web3.is_address(client.address)
    finally:
        if node is not None:
            node.close()
        dev.stop()
