"""Signing and sending transactions from one account, safely across threads and restarts.

The node's *pending* nonce is the source of truth (survives our restarts and counts
transactions still in the pool); a local counter under a lock lets several threads
send back-to-back before the node has seen the previous transaction. Processes
sharing the account (the workers of one node: one anchors in the background while
another runs a ``$anchor``) also take a file lock (``SendPolicy.send_lock``) across
reading the nonce and sending, or both would sign the same nonce and one fail.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.exceptions import TimeExhausted

DEFAULT_GAS_MARGIN = 1.25


class ChainError(RuntimeError):
    """A transaction was rejected, reverted or not confirmed in time."""


@dataclass(frozen=True)
class SendPolicy:
    confirmations: int = 1  # 1 = included in a block; QBFT blocks are final immediately
    receipt_timeout: float = 120.0
    poll_interval: float = 0.1
    gas_margin: float = DEFAULT_GAS_MARGIN
    send_lock: Path | None = None  # file every process sending from this account locks

    def __post_init__(self) -> None:
        if self.confirmations < 1 or self.gas_margin < 1.0 or self.receipt_timeout <= 0:
            raise ValueError("confirmations >= 1, gas_margin >= 1.0, receipt_timeout > 0")


class SendLock:
    """This process's threads in turn, then (with a path) the other processes'."""

    def __init__(self, path: Path | None) -> None:
        self._threads = threading.Lock()
        self._path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._threads:
            if self._path is None:
                yield
                return
            with open(self._path, "a+b") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)


class NonceManager:
    def __init__(self, w3: Web3, address: str, send_lock: Path | None = None) -> None:
        self._w3, self._address = w3, address
        self._next: int | None = None
        self.lock = SendLock(send_lock)  # held by the caller across reserve + send

    def reserve(self) -> int:
        pending = self._w3.eth.get_transaction_count(self._address, "pending")
        nonce = pending if self._next is None else max(self._next, pending)
        self._next = nonce + 1
        return nonce

    def reset(self) -> None:
        # After a failed send the reserved nonce was never used: re-read it from the node.
        self._next = None


class TransactionSender:
    def __init__(self, w3: Web3, private_key: str, policy: SendPolicy, errors: dict[str, str]):
        self.w3 = w3
        self.policy = policy
        self._account = Account.from_key(private_key)
        self._nonces = NonceManager(w3, self._account.address, policy.send_lock)
        self._chain_id = w3.eth.chain_id
        self._errors = errors  # 4-byte selector hex -> custom error name, for messages

    @property
    def address(self) -> str:
        return self._account.address

    def transact(self, fn: Any) -> Any:
        """Estimate, sign, send a contract call or constructor; return its confirmed receipt."""
        tx_hash = self.send(fn)
        return self.wait(tx_hash)

    def send(self, fn: Any) -> bytes:
        try:
            gas = int(fn.estimate_gas({"from": self.address}) * self.policy.gas_margin)
        except Exception as exc:  # revert, or node error: either way nothing was sent
            raise ChainError(f"gas estimation failed: {self._describe(exc)}") from exc
        with self._nonces.lock.held():
            tx = fn.build_transaction(
                {
                    "from": self.address,
                    "nonce": self._nonces.reserve(),
                    "gas": gas,
                    "gasPrice": self.w3.eth.gas_price,
                    "chainId": self._chain_id,
                }
            )
            signed = self._account.sign_transaction(tx)
            try:
                return self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Exception:
                self._nonces.reset()
                raise

    def wait(self, tx_hash: bytes) -> Any:
        policy = self.policy
        deadline = time.monotonic() + policy.receipt_timeout
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=policy.receipt_timeout, poll_latency=policy.poll_interval
            )
        except TimeExhausted as exc:
            raise ChainError(f"no receipt for {tx_hash.hex()} in time") from exc
        if receipt["status"] != 1:
            raise ChainError(f"transaction {tx_hash.hex()} reverted")
        while self.w3.eth.block_number - receipt["blockNumber"] + 1 < policy.confirmations:
            if time.monotonic() > deadline:
                raise ChainError(f"{tx_hash.hex()} not {policy.confirmations}x confirmed in time")
            time.sleep(policy.poll_interval)
        # A reorg during the wait would drop or move the receipt: re-read it.
        return self.w3.eth.get_transaction_receipt(tx_hash)

    def _describe(self, exc: Exception) -> str:
        """Name the contract's custom error if the revert data carries its selector."""
        data = getattr(exc, "data", None)
        if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
            return self._errors.get(data[2:10].lower(), data)
        text = str(exc)
        # eth-tester only puts repr(revert bytes) into its message.
        for selector, name in self._errors.items():
            if repr(bytes.fromhex(selector)) in text:
                return name
        return text
