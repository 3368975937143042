"""Per-scope data keys wrapped by the node master key.

Key hierarchy::

    master key (32 B, from a MasterKeySource)
      ├─ HKDF "phrx/vault/v1/kek"           -> wraps data keys (AES-256-GCM, AAD = scope)
      ├─ HKDF "phrx/vault/v1/blind-index"   -> BlindIndex key
      └─ HKDF "phrx/vault/v1/version-chain" -> VersionChain key (rollback detection)
    data key per scope ("patient:<id>" or "node")
      └─ HKDF per record (see vault.envelope)

Crypto-shredding a patient = deleting the wrapped data key of its scope.
"""

from __future__ import annotations

import os
import threading
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault._encoding import length_prefixed
from vault.blind import BlindIndex
from vault.errors import IntegrityError, KeyDestroyed, VaultError
from vault.version_chain import VersionChain

NODE_SCOPE = "node"
DATA_KEY_LEN = 32
_WRAP_VERSION = 1
_NONCE_LEN = 12
_WRAPPED_LEN = 1 + _NONCE_LEN + DATA_KEY_LEN + 16


def _subkey(master_key: bytes, label: bytes) -> bytes:
    # Separate sub-keys per purpose: the KEK and the blind-index key must not
    # be the same bytes, or a digest could be related to a wrapping operation.
    return HKDF(hashes.SHA256(), 32, None, label).derive(master_key)


@runtime_checkable
class DataKeyStore(Protocol):
    """Persistence for wrapped data keys (e.g. a DB table keyed by scope).

    ``put`` should be insert-if-absent (first writer wins) so several worker
    processes that create a scope's key at once converge on one key;
    :meth:`KeyRing.data_key` re-reads after ``put`` and uses what was stored.
    """

    def get(self, scope: str) -> bytes | None: ...

    def put(self, scope: str, wrapped: bytes) -> None: ...

    def delete(self, scope: str) -> bool: ...


@runtime_checkable
class GenerationalDataKeyStore(DataKeyStore, Protocol):
    """A store shared by several processes that marks every key destruction.

    ``generation()`` is an opaque value that changes whenever ``delete`` runs (in
    the same transaction as the deletion); :meth:`KeyRing.refresh` compares it to
    drop keys another process destroyed. It must be cheap: called once per request.
    ``conn``: the store's handle of a transaction the caller holds, to read it in.
    """

    def generation(self, conn=None) -> str: ...


class MemoryDataKeyStore:
    """Dict-backed store for tests (insert-if-absent, like a DB unique key)."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._deletions = 0

    def get(self, scope: str) -> bytes | None:
        return self._data.get(scope)

    def put(self, scope: str, wrapped: bytes) -> None:
        with self._lock:
            self._data.setdefault(scope, bytes(wrapped))

    def delete(self, scope: str) -> bool:
        with self._lock:
            self._deletions += 1
            return self._data.pop(scope, None) is not None

    def generation(self, conn=None) -> str:  # conn: no transactions in memory
        return str(self._deletions)


class KeyRing:
    """Unwraps, creates, caches and destroys per-scope data keys."""

    def __init__(self, master_key: bytes, store: DataKeyStore) -> None:
        if len(master_key) != 32:
            raise VaultError("master key must be 32 bytes")
        # The master key itself is not kept: only the purpose-bound sub-keys.
        self._kek = AESGCM(_subkey(master_key, b"phrx/vault/v1/kek"))
        self._blind = BlindIndex(_subkey(master_key, b"phrx/vault/v1/blind-index"))
        self._chain = VersionChain(_subkey(master_key, b"phrx/vault/v1/version-chain"))
        self._store = store
        self._cache: dict[str, bytes] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._generation: str | None = None  # of the store, when the cache was last checked
        # Checked once: isinstance against a runtime Protocol costs microseconds per call.
        self._generational = isinstance(store, GenerationalDataKeyStore)

    def __repr__(self) -> str:
        return f"KeyRing(store={self._store!r}, cached_scopes={len(self._cache)})"

    @staticmethod
    def patient_scope(patient_id: str) -> str:
        """Scope name for a patient's data key."""
        if not isinstance(patient_id, str) or not patient_id:
            raise ValueError("patient_id must be a non-empty string")
        return f"patient:{patient_id}"

    def _scope_lock(self, scope: str) -> threading.Lock:
        # One lock per scope: first use of patient A does not wait on a slow
        # store round-trip for patient B.
        with self._locks_guard:
            return self._locks.setdefault(scope, threading.Lock())

    def data_key(self, scope: str, *, create: bool = True) -> bytes:
        """Unwrapped data key of ``scope``; created on first use unless ``create=False``."""
        key = self._cache.get(scope)  # lock-free fast path; dict reads are atomic
        if key is not None:
            return key
        with self._scope_lock(scope):
            key = self._cache.get(scope)
            if key is not None:
                return key
            wrapped = self._store.get(scope)
            if wrapped is None:
                if not create:
                    raise KeyDestroyed(f"no data key for scope {scope!r} (destroyed or never made)")
                self._store.put(scope, self.wrap_data_key(scope, os.urandom(DATA_KEY_LEN)))
                # Re-read: another process may have won the insert race.
                wrapped = self._store.get(scope)
                if wrapped is None:
                    raise VaultError(f"data key store lost the key for scope {scope!r}")
            key = self.unwrap_data_key(scope, wrapped)
            self._cache[scope] = key
            return key

    def destroy(self, scope: str) -> bool:
        """Crypto-shred ``scope``: delete the wrapped key and forget the cached one.

        Other KeyRings (other worker processes) that cached the key drop it at their
        next :meth:`refresh` (a generational store marks every deletion).
        """
        with self._scope_lock(scope):
            self._cache.pop(scope, None)
            return self._store.delete(scope)

    def refresh(self, conn=None) -> None:
        """Forget every cached key if any key was destroyed since the last check --
        by this process or another sharing the store. Callers run it before each
        unit of work (a request): one small read of the store's generation marker,
        on ``conn`` when given (the store's handle of the caller's transaction).
        The surviving keys are unwrapped again on their next use."""
        if not self._generational:
            return
        current = self._store.generation(conn)
        if current != self._generation:
            with self._locks_guard:
                self._cache.clear()
            self._generation = current

    def blind_index(self) -> BlindIndex:
        """The node's blind index (key derived from the master key)."""
        return self._blind

    def version_chain(self) -> VersionChain:
        """The node's version-chain MACs (key derived from the master key)."""
        return self._chain

    def wrap_data_key(self, scope: str, key: bytes) -> bytes:
        """``0x01 || nonce || AES-256-GCM(kek, key, aad=scope)``."""
        if len(key) != DATA_KEY_LEN:
            raise ValueError("data key must be 32 bytes")
        nonce = os.urandom(_NONCE_LEN)
        return bytes([_WRAP_VERSION]) + nonce + self._kek.encrypt(nonce, key, _wrap_aad(scope))

    def unwrap_data_key(self, scope: str, wrapped: bytes) -> bytes:
        """Inverse of :meth:`wrap_data_key`; a key copied to another scope fails."""
        wrapped = bytes(wrapped)
        if len(wrapped) != _WRAPPED_LEN or wrapped[0] != _WRAP_VERSION:
            raise IntegrityError(f"wrapped data key for scope {scope!r} is malformed")
        try:
            nonce, body = wrapped[1 : 1 + _NONCE_LEN], wrapped[1 + _NONCE_LEN :]
            return self._kek.decrypt(nonce, body, _wrap_aad(scope))
        except InvalidTag:
            raise IntegrityError(
                f"wrapped data key for scope {scope!r} failed authentication"
            ) from None


def _wrap_aad(scope: str) -> bytes:
    if not scope:
        raise ValueError("scope must be non-empty")
    return length_prefixed(b"phrx/vault/v1/data-key", scope.encode("utf-8"))
