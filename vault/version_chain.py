"""Per-resource version chains: a database write without the keys cannot roll a
resource back, or delete one of its versions, unnoticed.

Every stored version ``n`` of a resource carries a ``link``::

    link_n = HMAC-SHA256(K, LP("PHRX-VLINK-v1", type, id, n, deleted, leaf_n, link_{n-1}))

(``LP``: each part length-prefixed; ``link_0`` is 32 zero bytes; ``leaf_n`` the
anchoring leaf of the content, empty for a deletion marker), and the resource's
current-version row carries its ``head``::

    head = HMAC-SHA256(K, LP("PHRX-VHEAD-v1", type, id, n, link_n))

``K`` is derived from the node master key, which never enters the database. The head
is overwritten by each write and exists nowhere else, so an attacker holding the
database but no key cannot make an older version current again (its head would have
to be forged); a deleted or altered version breaks every later link. Reads check the
head (one HMAC); ``$verify`` walks the whole chain. The leaves themselves are anchored
on chain, so each link is also tied to what the federation saw. See
docs/architecture.md ("Integrity of what is served").
"""

from __future__ import annotations

import hashlib
import hmac

from vault._encoding import length_prefixed

GENESIS = bytes(32)
_LINK = b"PHRX-VLINK-v1\x00"
_HEAD = b"PHRX-VHEAD-v1\x00"


class VersionChain:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("version chain key must be 32 bytes")
        self._key = key

    def link(
        self,
        res_type: str,
        res_id: str,
        version_id: int,
        deleted: bool,
        leaf: bytes | None,
        previous: bytes | None,
    ) -> bytes:
        message = length_prefixed(
            _LINK,
            res_type.encode(),
            res_id.encode(),
            version_id.to_bytes(8, "big"),
            b"\x01" if deleted else b"\x00",
            bytes(leaf or b""),
            bytes(previous) if previous is not None else GENESIS,
        )
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def head(self, res_type: str, res_id: str, version_id: int, link: bytes) -> bytes:
        message = length_prefixed(
            _HEAD, res_type.encode(), res_id.encode(), version_id.to_bytes(8, "big"), link
        )
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def head_is_valid(
        self, res_type: str, res_id: str, version_id: int, link: bytes | None, head: bytes | None
    ) -> bool:
        if link is None or head is None:
            return False
        return hmac.compare_digest(self.head(res_type, res_id, version_id, bytes(link)), head)

    def broken_at(self, res_type: str, res_id: str, rows, head: bytes | None) -> int | None:
        """The first version number at which the chain of ``rows`` -- ``(version_id,
        deleted, leaf, link)`` of every stored version, oldest first -- fails, or None
        when versions 1..n are all there, each link holds and ``head`` names version n."""
        previous = GENESIS
        expected = 1
        for version_id, deleted, leaf, link in rows:
            if version_id != expected:
                return expected  # a missing version
            want = self.link(res_type, res_id, version_id, deleted, leaf, previous)
            if link is None or not hmac.compare_digest(want, bytes(link)):
                return version_id
            previous, expected = want, expected + 1
        if expected == 1 or not self.head_is_valid(res_type, res_id, expected - 1, previous, head):
            return max(expected - 1, 1)
        return None
