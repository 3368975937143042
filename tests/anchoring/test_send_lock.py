"""Processes sending from one account take turns (SendPolicy.send_lock): else two
workers of a node read the same pending nonce and one transaction fails."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from web3 import Web3

from anchoring.chain import ChainClient, Deployment, SendPolicy


def _race(w3: Web3, key: str, deployment: Deployment, lock: Path | None) -> list[BaseException]:
    """Two clients on one account (two processes' worth of nonce counters and thread
    locks), four anchors each at once, with the nonce read made slow."""
    read = w3.eth.get_transaction_count

    def slow_read(*args, **kwargs):
        found = read(*args, **kwargs)
        time.sleep(0.02)  # another sender reads the same value meanwhile
        return found

    w3.eth.get_transaction_count = slow_read
    policy = SendPolicy(send_lock=lock)
    senders = [ChainClient(w3, key, deployment=deployment, policy=policy) for _ in range(2)]
    errors: list[BaseException] = []

    def run(client: ChainClient, root: bytes) -> None:
        try:
            client.anchor(root, 1, b"\0" * 32)
        except BaseException as exc:  # collected and asserted by the tests
            errors.append(exc)

    base = 0x10 if lock is None else 0x20
    threads = [
        threading.Thread(target=run, args=(senders[k % 2], bytes([base + k]) * 32))
        for k in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    w3.eth.get_transaction_count = read
    return errors


def test_senders_sharing_the_lock_file_never_collide(
    w3: Web3, keys: list[str], deployment: Deployment, tmp_path: Path
) -> None:
    assert _race(w3, keys[0], deployment, tmp_path / "send.lock") == []
    client = ChainClient(w3, keys[0], deployment=deployment)
    assert all(client.lookup(bytes([0x20 + k]) * 32) for k in range(8))


def test_without_it_the_race_is_real(w3: Web3, keys: list[str], deployment: Deployment) -> None:
    """The control: the same race without the file lock loses transactions."""
    errors = _race(w3, keys[0], deployment, None)
    assert errors, "expected nonce collisions without the shared lock"
