"""Blind index: deterministic keyed digests for equality search on encrypted data."""

from __future__ import annotations

import hmac

from vault._encoding import length_prefixed

DIGEST_LEN = 16
MAX_CACHED_DOMAINS = 10_000
_TAG = b"phrx/blind/v1"


class BlindIndex:
    """HMAC-SHA256 truncated to 16 bytes, separated by a domain string.

    Values are hashed as given; callers normalise (case, whitespace, system|code)
    before calling so that equal search terms produce equal digests.
    """

    __slots__ = ("_key", "_prefixes")

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("blind index key must be 32 bytes")
        self._key = bytes(key)
        # Encoded ``tag || domain`` per domain: domains are the server's own
        # "Type.param/kind" names (a few thousand at most), and encoding them
        # again for each of the ~25 digests of a resource showed in profiles.
        self._prefixes: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return "BlindIndex(<key hidden>)"

    def digest(self, domain: str, value: str) -> bytes:
        """16-byte digest of ``value`` in ``domain`` (e.g. "Patient.identifier")."""
        prefix = self._prefixes.get(domain)
        if prefix is None:
            if not domain:
                raise ValueError("blind index domain must be non-empty")
            # Length-prefixing keeps ("a", "bc") and ("ab", "c") apart, and the
            # domain keeps equal values in different search params unlinkable.
            prefix = length_prefixed(_TAG, domain.encode("utf-8"))
            if len(self._prefixes) < MAX_CACHED_DOMAINS:
                self._prefixes[domain] = prefix
        data = value.encode("utf-8")
        msg = prefix + len(data).to_bytes(4, "big") + data  # == length_prefixed(..., data)
        return hmac.digest(self._key, msg, "sha256")[:DIGEST_LEN]
