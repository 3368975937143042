"""Blind index: deterministic keyed digests for equality search on encrypted data."""

from __future__ import annotations

import hmac

from vault._encoding import length_prefixed

DIGEST_LEN = 16


class BlindIndex:
    """HMAC-SHA256 truncated to 16 bytes, separated by a domain string.

    Values are hashed as given; callers normalise (case, whitespace, system|code)
    before calling so that equal search terms produce equal digests.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("blind index key must be 32 bytes")
        self._key = bytes(key)

    def __repr__(self) -> str:
        return "BlindIndex(<key hidden>)"

    def digest(self, domain: str, value: str) -> bytes:
        """16-byte digest of ``value`` in ``domain`` (e.g. "Patient.identifier")."""
        if not domain:
            raise ValueError("blind index domain must be non-empty")
        # Length-prefixing keeps ("a", "bc") and ("ab", "c") apart, and the
        # domain keeps equal values in different search params unlinkable.
        msg = length_prefixed(b"phrx/blind/v1", domain.encode("utf-8"), value.encode("utf-8"))
        return hmac.digest(self._key, msg, "sha256")[:DIGEST_LEN]
