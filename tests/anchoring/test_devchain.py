"""Integration with a real anvil process (skipped visibly without node_modules/.bin/anvil)."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from anchoring.chain import ANVIL_DEV_KEY, ChainClient, ChainError, SendPolicy
from anchoring.devchain import DevChain, DevChainError, anvil_available, free_port, rpc_ready

needs_anvil = pytest.mark.skipif(
    not anvil_available(), reason="node_modules/.bin/anvil missing (run `npm ci`)"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # DevChain.stop() waits for (reaps) the child, so a stopped anvil leaves no zombie.
    return True


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[DevChain]:
    dev = DevChain(tmp_path / "chain")
    dev.start()
    try:
        yield dev
    finally:
        dev.stop()  # never leave anvil behind, whatever the test did


def _mine(url: str) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=5).read()


def test_missing_binary_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DevChainError, match="anvil not found"):
        DevChain(tmp_path, binary=tmp_path / "nope").start()
    assert not rpc_ready(f"http://127.0.0.1:{free_port()}")


@needs_anvil
def test_start_stop_leaves_no_process(tmp_path: Path) -> None:
    with DevChain(tmp_path) as dev:
        pid = dev.pid
        assert pid is not None and _alive(pid) and rpc_ready(dev.url)
        with pytest.raises(DevChainError, match="already running"):
            dev.start()
    assert dev.pid is None and not _alive(pid)
    assert not rpc_ready(dev.url)


@needs_anvil
def test_deploy_anchor_lookup_and_survive_restart(tmp_path: Path) -> None:
    data = tmp_path / "chain"
    root = os.urandom(32)
    with DevChain(data) as dev:
        client = ChainClient.from_url(dev.url, ANVIL_DEV_KEY)
        deployment = client.deploy_contracts("DE", "https://de", "{}", b"k")
        receipt = client.anchor(root, 12, b"\x07" * 32)
        assert receipt.fresh
    assert (data / "anvil-state.json").is_file()
    with DevChain(data) as dev:
        client = ChainClient.from_url(dev.url, ANVIL_DEV_KEY, deployment=deployment)
        found = client.lookup(root)
        assert found is not None
        assert (found.leaf_count, found.batch_id, found.country) == (12, b"\x07" * 32, "DE")
        assert found.block_number == receipt.block_number
        # Nonces continue from the restored chain, not from zero.
        assert client.anchor(os.urandom(32), 1, b"\0" * 32).fresh


@needs_anvil
def test_concurrent_anchors_on_anvil(chain: DevChain) -> None:
    client = ChainClient.from_url(chain.url, ANVIL_DEV_KEY)
    client.deploy_contracts("DE", "u", "{}", b"")
    roots = [os.urandom(32) for _ in range(12)]
    errors: list[BaseException] = []

    def run(root: bytes) -> None:
        try:
            client.anchor(root, 1, b"\0" * 32)
        except BaseException as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in roots]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert all(client.lookup(r) for r in roots)


@needs_anvil
def test_waits_for_confirmations(chain: DevChain) -> None:
    deployer = ChainClient.from_url(chain.url, ANVIL_DEV_KEY)
    deployment = deployer.deploy_contracts("DE", "u", "{}", b"")
    policy = SendPolicy(confirmations=3, receipt_timeout=20, poll_interval=0.05)
    client = ChainClient.from_url(chain.url, ANVIL_DEV_KEY, deployment=deployment, policy=policy)
    stop = threading.Event()

    def miner() -> None:
        while not stop.is_set():
            _mine(chain.url)
            time.sleep(0.1)

    thread = threading.Thread(target=miner)
    thread.start()
    try:
        receipt = client.anchor(os.urandom(32), 1, b"\0" * 32)
    finally:
        stop.set()
        thread.join(10)
    assert client.w3.eth.block_number >= receipt.block_number + 2


@needs_anvil
def test_anvil_errors_are_named(chain: DevChain) -> None:
    client = ChainClient.from_url(chain.url, ANVIL_DEV_KEY)
    client.deploy_contracts("DE", "u", "{}", b"")
    with pytest.raises(ChainError, match="EmptyRoot"):
        client.anchor(b"\0" * 32, 1, b"\0" * 32)
