"""Inclusion proofs: data type, JSON (hex) form and RFC 9162 verification."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from anchoring.canonical import leaf_hash, node_hash

HASH_LEN = 32
PROOF_FORMAT = "phrx-merkle-inclusion-v1"
# A uint32-sized tree never needs more than 32 path entries; reject absurd input early.
MAX_PATH_LEN = 64


class ProofFormatError(ValueError):
    """A serialized proof is malformed."""


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    path: tuple[bytes, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROOF_FORMAT,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "path": [h.hex() for h in self.path],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InclusionProof:
        if not isinstance(data, dict) or data.get("format") != PROOF_FORMAT:
            raise ProofFormatError(f"expected format {PROOF_FORMAT!r}")
        index, size, path = data.get("leaf_index"), data.get("tree_size"), data.get("path")
        # bool is an int subclass; true/false must not pass for 1/0.
        for value in (index, size):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ProofFormatError("leaf_index and tree_size must be non-negative ints")
        if not isinstance(path, list) or len(path) > MAX_PATH_LEN:
            raise ProofFormatError("path must be a list of hex hashes")
        return cls(leaf_index=index, tree_size=size, path=tuple(parse_hash(h) for h in path))


def parse_hash(value: Any) -> bytes:
    # Lower-case only, so each proof has exactly one serialization.
    if not isinstance(value, str) or len(value) != 2 * HASH_LEN or value != value.lower():
        raise ProofFormatError("hash must be 64 lower-case hex characters")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise ProofFormatError("hash is not hex") from exc


def root_from_proof(leaf: bytes, proof: InclusionProof) -> bytes | None:
    """RFC 9162 section 2.1.3.2; returns the implied root, or None if the proof is malformed."""
    if len(leaf) != HASH_LEN or not 0 <= proof.leaf_index < proof.tree_size:
        return None
    fn, sn, r = proof.leaf_index, proof.tree_size - 1, leaf
    for p in proof.path:
        if sn == 0 or len(p) != HASH_LEN:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:  # skip levels where this node was carried up
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(
    leaf: bytes,
    proof: InclusionProof | dict[str, Any],
    root: bytes,
    expected_size: int | None = None,
) -> bool:
    """True iff leaf hash ``leaf`` is at ``proof.leaf_index`` of the tree with ``root``.

    Pass the anchored leaf count as ``expected_size``: the audit path alone does not
    bind the tree size (RFC 9162 relies on the signed tree head for that).
    """
    try:
        parsed = proof if isinstance(proof, InclusionProof) else InclusionProof.from_dict(proof)
    except ProofFormatError:
        return False
    if expected_size is not None and parsed.tree_size != expected_size:
        return False
    computed = root_from_proof(leaf, parsed)
    return computed is not None and hmac.compare_digest(computed, root)


def verify_resource(
    resource: dict[str, Any],
    proof: InclusionProof | dict[str, Any],
    root: bytes,
    expected_size: int | None = None,
) -> bool:
    """Canonicalize ``resource`` and verify its inclusion under ``root``."""
    return verify_inclusion(leaf_hash(resource), proof, root, expected_size)
