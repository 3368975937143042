"""The anchoring batcher: journal leaves -> Merkle batches -> one transaction per batch.

Runs in a thread of the server (``phrx serve``) or in its own process
(``phrx anchor-worker``). A batch is claimed when ``batch_size`` leaves wait or the oldest
waiting leaf is ``interval`` seconds old; ``flush()`` claims at once (``POST $anchor``).
Chain failures back off exponentially (``backoff_min`` .. ``backoff_max``) while writes go
on filling the journal; unfinished batches are always finished first, so the journal
drains in order once the chain is back. See :mod:`anchoring.journal` for why a batcher
killed at any point neither loses a leaf nor anchors one twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from eth_utils import keccak
from sqlalchemy.engine import Engine
from web3 import Web3
from web3.exceptions import TransactionNotFound

from anchoring import defaults as anchor_defaults
from anchoring import journal
from anchoring.chain import ChainClient, ChainError, OnChainAnchor

log = logging.getLogger("phrx.anchoring")

ANCHORED_TOPIC = keccak(text="Anchored(bytes32,address,bytes2,uint32,bytes32)")
# Fault injection for the crash tests: the worker stops dead at the named point
# (prints a marker line, then sleeps until it is killed). Never set in production.
PAUSE_ENV = "PHRX_ANCHOR_PAUSE_AT"


@dataclass(frozen=True)
class BatchResult:
    batch_id: str
    root: bytes
    leaf_count: int
    tx_hash: bytes
    block_number: int
    block_time: int
    country: str
    authority: str

    def to_dict(self) -> dict:
        return {
            "batch": self.batch_id,
            "root": self.root.hex(),
            "leafCount": self.leaf_count,
            "txHash": "0x" + self.tx_hash.hex(),
            "blockNumber": self.block_number,
            "blockTime": self.block_time,
            "country": self.country,
            "authority": self.authority,
        }


def _pause_point(name: str, batch_id: str) -> None:
    if os.environ.get(PAUSE_ENV) == name:
        print(f"PAUSED {name} {batch_id}", flush=True)
        sys.stdout.flush()
        while True:
            time.sleep(3600)


def find_anchor_tx(client: ChainClient, record: OnChainAnchor) -> bytes:
    """The transaction that created ``record`` (its Anchored event, in its block)."""
    assert client.deployment is not None
    logs = client.w3.eth.get_logs(
        {
            "address": Web3.to_checksum_address(client.deployment.anchor_registry),
            "fromBlock": record.block_number,
            "toBlock": record.block_number,
            "topics": ["0x" + ANCHORED_TOPIC.hex(), "0x" + record.root.hex()],
        }
    )
    if not logs:
        raise ChainError(f"no Anchored event for root {record.root.hex()}")
    return bytes(logs[0]["transactionHash"])


class Batcher:
    def __init__(
        self,
        engine: Engine,
        chain: Callable[[], ChainClient],
        *,
        interval: float = anchor_defaults.INTERVAL_S,
        batch_size: int = anchor_defaults.BATCH_LEAVES,
        lease_s: float = 300.0,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
        poll: float = 0.1,
        owner: str | None = None,
        reset: Callable[[], None] | None = None,
        leads: Callable[[], bool] | None = None,
    ) -> None:
        if interval <= 0 or batch_size < 1:
            raise ValueError("interval > 0 and batch_size >= 1")
        self.engine = engine
        self._chain = chain
        self._reset = reset  # called after a failure so the next attempt reconnects
        # Whether this process is the node's anchoring process (anchoring.leader):
        # the background rounds run only there; flush() runs wherever it is asked.
        self._leads = leads
        self.interval = interval
        self.batch_size = batch_size
        self.lease_s = lease_s
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.poll = min(poll, interval)
        self.owner = owner or journal.new_owner()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = 0.0
        self._retry_at = 0.0
        self.last_error: str | None = None
        self.failures = 0

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> Batcher:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="phrx-batcher", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        try:
            journal.release(self.engine, self.owner)
        except Exception:  # the database may already be gone at shutdown
            log.warning("could not release anchoring leases", exc_info=True)

    def run(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.poll)

    # ---- work ------------------------------------------------------------------------
    def step(self) -> list[BatchResult]:
        """One scheduling round; never raises (failures back off)."""
        if time.monotonic() < self._retry_at:
            return []
        if self._leads is not None and not self._leads():
            return []  # another process of this node anchors
        try:
            with self._lock:
                return self._work(force=False)
        except Exception as exc:  # chain down, node error, database hiccup
            self._failed(exc)
            return []

    def flush(self) -> list[BatchResult]:
        """Anchor everything waiting now (raises if the chain is unavailable)."""
        with self._lock:
            try:
                return self._work(force=True)
            except Exception as exc:
                self._failed(exc)
                raise

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        if self._reset is not None:
            self._reset()
        self._backoff = min(self.backoff_max, max(self.backoff_min, self._backoff * 2))
        self._retry_at = time.monotonic() + self._backoff
        first_line = str(exc).splitlines()[0][:300] if str(exc) else ""
        self.last_error = f"{type(exc).__name__}: {first_line}"
        log.warning("anchoring failed (retry in %.1fs): %s", self._backoff, self.last_error)

    def _due(self, force: bool) -> bool:
        waiting = journal.pending(self.engine)
        if waiting.count == 0:
            return False
        if force or waiting.count >= self.batch_size:
            return True
        age = journal.now_us() - (waiting.oldest_us or 0)
        return age >= self.interval * 1e6

    def _work(self, force: bool) -> list[BatchResult]:
        done: list[BatchResult] = []
        unfinished = journal.unfinished(self.engine, self.owner, self.lease_s)
        if not unfinished and not self._due(force):
            return done
        client = self._chain()
        for batch in unfinished:
            done.append(self._anchor(client, batch))
        while self._due(force) and not (self._stop.is_set() and not force):
            batch = journal.claim_batch(self.engine, self.owner, self.batch_size, self.lease_s)
            if batch is None:
                break
            _pause_point("after-claim", batch.batch_id)
            done.append(self._anchor(client, batch))
        self._backoff = 0.0
        self.last_error = None
        return done

    def _anchor(self, client: ChainClient, batch: journal.Batch) -> BatchResult:
        """Bring one claimed batch on chain (idempotent) and store its proofs."""
        try:
            record = client.lookup(batch.root)
            if record is None and batch.tx_hash is not None:
                record = self._await_earlier(client, batch)
            if record is None:
                record = self._send(client, batch)
        except Exception as exc:
            journal.record_failure(self.engine, batch.batch_id, f"{type(exc).__name__}: {exc}")
            raise
        if record.leaf_count != batch.leaf_count:
            # Same root anchored with another size: impossible for a SHA-256 Merkle root.
            raise ChainError(f"root {batch.root.hex()} is anchored with another leaf count")
        tx_hash = find_anchor_tx(client, record)
        _pause_point("after-mined", batch.batch_id)
        deployment = client.deployment
        assert deployment is not None
        info = journal.AnchorInfo(
            tx_hash=tx_hash,
            block_number=record.block_number,
            block_time=record.timestamp,
            chain_id=deployment.chain_id,
            contract=deployment.anchor_registry,
            authority_registry=deployment.authority_registry,
            authority=record.authority,
            country=record.country,
        )
        journal.complete(self.engine, batch, info)
        log.info(
            "anchored batch %s: %d leaves, block %d",
            batch.batch_id,
            batch.leaf_count,
            record.block_number,
        )
        return BatchResult(
            batch.batch_id,
            batch.root,
            batch.leaf_count,
            tx_hash,
            record.block_number,
            record.timestamp,
            record.country,
            record.authority,
        )

    def _await_earlier(self, client: ChainClient, batch: journal.Batch) -> OnChainAnchor | None:
        """A previous attempt sent ``batch.tx_hash``: wait for it if the chain still has it."""
        assert batch.tx_hash is not None
        try:
            client.w3.eth.get_transaction(batch.tx_hash)
        except TransactionNotFound:
            return None  # dropped (or never reached the pool): send again
        with contextlib.suppress(ChainError):  # reverted or not mined: the lookup decides
            client.sender.wait(batch.tx_hash)
        return client.lookup(batch.root)

    def _send(self, client: ChainClient, batch: journal.Batch) -> OnChainAnchor:
        fn = client.anchor_call(batch.root, batch.leaf_count, batch.batch_bytes)
        sender = client.sender
        tx_hash = bytes(sender.send(fn))
        _pause_point("after-send", batch.batch_id)
        journal.mark_sent(self.engine, batch.batch_id, self.owner, tx_hash)
        _pause_point("after-mark-sent", batch.batch_id)
        sender.wait(tx_hash)
        record = client.lookup(batch.root)
        if record is None:
            raise ChainError(f"transaction {tx_hash.hex()} mined but root not anchored")
        return record
