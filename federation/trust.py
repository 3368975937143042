"""The trust list: the authorities the chain's AuthorityRegistry holds right now.

Flask-free. Nothing else is trusted: a node is believed (its client assertions
checked against the signing JWK it registered) and called (at the FHIR base URL
it registered) only while it is an authority. The list is re-read from the chain
after ``ttl`` seconds, so a node voted out or a key rotated takes effect within
that time everywhere; callers that decide on trust (token requests) ask ``fresh``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from federation.errors import NodeUnavailable, UntrustedNode

DEFAULT_TTL_S = 2.0


@dataclass(frozen=True)
class TrustedNode:
    country: str
    address: str
    fhir_base_url: str
    signing_jwk: dict | None  # None when the registered JWK is unusable
    encryption_key: bytes

    @property
    def client_id(self) -> str:
        """The client id this node's assertions use at other nodes."""
        return f"node.{self.country}"

    def owns(self, url: str) -> bool:
        """Whether ``url`` lies under this node's registered FHIR base URL (same
        scheme, host and port, and a path below the base path)."""
        base, asked = urlsplit(self.fhir_base_url.rstrip("/")), urlsplit(url)
        if (base.scheme, base.netloc.lower()) != (asked.scheme, asked.netloc.lower()):
            return False
        return asked.path == base.path or asked.path.startswith(base.path + "/")


MAX_JWK_CHARS = 8192


def _jwk(text: str) -> dict | None:
    """The registered signing JWK, or None when it is unusable (one authority's bad
    key must not break the trust list of every node)."""
    if not isinstance(text, str) or len(text) > MAX_JWK_CHARS:
        return None
    try:
        found = json.loads(text) if text else None
    except (ValueError, RecursionError):
        return None
    return found if isinstance(found, dict) and found.get("kty") in ("EC", "RSA") else None


class TrustList:
    """``authorities()`` is ``ChainClient.authorities`` (or anything returning
    objects with country, address, fhir_base_url, signing_jwk, encryption_key)."""

    def __init__(self, authorities: Callable[[], list], ttl: float = DEFAULT_TTL_S) -> None:
        self._authorities = authorities
        self.ttl = ttl
        self._cached: tuple[float, list[TrustedNode]] | None = None
        self._lock = threading.Lock()

    def nodes(self, fresh: bool = False) -> list[TrustedNode]:
        now = time.monotonic()
        with self._lock:
            cached = self._cached
        if cached is not None and not fresh and now - cached[0] < self.ttl:
            return cached[1]
        try:
            listed = self._authorities()
        except Exception as error:  # the chain is the trust list: without it, no one
            raise NodeUnavailable(f"the chain (trust list) is unreachable: {error}") from None
        found = [
            TrustedNode(
                a.country, a.address, a.fhir_base_url, _jwk(a.signing_jwk), a.encryption_key
            )
            for a in listed
        ]
        with self._lock:
            self._cached = (now, found)
        return found

    def by_country(self, country: str, fresh: bool = False) -> TrustedNode:
        for node in self.nodes(fresh):
            if node.country == (country or "").upper():
                return node
        raise UntrustedNode(f"no node of country {country!r} is on the trust list")

    def for_url(self, url: str) -> TrustedNode:
        """The trusted node serving ``url``; UntrustedNode for any other host."""
        for node in self.nodes():
            if node.owns(url):
                return node
        host = urlsplit(url).netloc or url[:60]
        raise UntrustedNode(f"{host} is not a node on the trust list; it is never called")
