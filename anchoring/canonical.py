"""Canonical byte form of a FHIR resource and its Merkle leaf hash.

The node rewrites ``meta`` (versionId, lastUpdated, ...) and may regenerate ``text``
(the narrative) on every write, so neither can be part of what is proven; everything
else is serialized with RFC 8785 JSON Canonicalization Scheme (JCS) so any verifier
that parses the same JSON gets the same bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

# Tagged domain-separation prefixes (RFC 6962 style, but self-describing and versioned).
# A leaf preimage can never be confused with an interior-node preimage.
LEAF_PREFIX = b"PHRX-LEAF-v1\x00"
NODE_PREFIX = b"PHRX-NODE-v1\x00"

# Only top-level members are excluded: nested "text" (e.g. CodeableConcept.text) is data.
EXCLUDED_TOP_LEVEL = frozenset({"meta", "text"})


class CanonicalizationError(ValueError):
    """The resource cannot be canonicalized (not a resource, or not JCS-representable)."""


def canonical_bytes(resource: dict[str, Any]) -> bytes:
    """RFC 8785 bytes of ``resource`` without its top-level ``meta`` and ``text``."""
    if not isinstance(resource, dict):
        raise CanonicalizationError("a FHIR resource must be a JSON object")
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise CanonicalizationError("resourceType missing or not a string")
    stripped = {k: v for k, v in resource.items() if k not in EXCLUDED_TOP_LEVEL}
    try:
        return rfc8785.dumps(stripped)
    except rfc8785.CanonicalizationError as exc:
        # e.g. integers beyond 2**53, NaN, non-string keys: refuse rather than guess.
        raise CanonicalizationError(str(exc)) from exc


def leaf_hash_of_bytes(canonical: bytes) -> bytes:
    """SHA-256(LEAF_PREFIX || canonical)."""
    return hashlib.sha256(LEAF_PREFIX + canonical).digest()


def leaf_hash(resource: dict[str, Any]) -> bytes:
    """Merkle leaf hash of a FHIR resource version."""
    return leaf_hash_of_bytes(canonical_bytes(resource))


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(NODE_PREFIX || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()
