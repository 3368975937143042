"""Reader-side verification: a resource fetched from a patient's home node is shown
only if its proof leads, on this node's own view of the chain, to a root anchored by
the home node's authority (leaf -> Merkle root -> AnchorRegistry -> AuthorityRegistry).

Flask-free. The proof (an anchoring Provenance the home node sent along) is only a
claim: the leaf is recomputed from the resource as received, and the contract,
chain and authority come from this node's deployment, never from the Provenance.

Chain down: a root this node has already seen anchored stays anchored (an anchored
root is never removed from the AnchorRegistry), so those resources still verify from
the roots remembered here; anything else waits for the chain (``chain-unavailable``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from anchoring.canonical import CanonicalizationError, leaf_hash
from anchoring.provenance import (
    ProvenanceError,
    claim_from_provenance,
    targets,
    version_key_of,
    version_reference,
)
from anchoring.verification import (
    AUTHORITY_NOT_RECOGNISED,
    NOT_ANCHORED,
    PROOF_INVALID,
    ROOT_NOT_ON_CHAIN,
    Verification,
    verify_claim,
)

MAX_REMEMBERED_ROOTS = 100_000


REREAD_AFTER_S = 60.0


class RememberingReader:
    """A ChainReader that remembers the anchored roots and the authorities it saw:
    a root seen anchored is taken from memory for ``reread_after`` seconds (the
    hundreds of resources of one summary share a handful of roots: one chain read
    each, not one per resource), and from memory at any age while the chain is
    unreachable. Whether the anchoring authority is still one is asked separately
    (``authorities``, re-read every few seconds)."""

    def __init__(self, reader_factory, reread_after: float = REREAD_AFTER_S) -> None:
        self._factory = reader_factory  # () -> ChainReader (the node's, reconnecting)
        self.reread_after = reread_after
        self._roots: dict[bytes, tuple[float, object]] = {}
        self._authorities: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def deployment(self):
        return self._factory().deployment

    def lookup(self, root: bytes):
        with self._lock:
            known = self._roots.get(root)
        if known is not None and time.monotonic() - known[0] < self.reread_after:
            return known[1]
        try:
            found = self._factory().lookup(root)
        except Exception:
            if known is not None:
                return known[1]
            raise
        if found is not None:
            with self._lock:
                if len(self._roots) < MAX_REMEMBERED_ROOTS or root in self._roots:
                    self._roots[root] = (time.monotonic(), found)
        return found

    def authorities(self) -> dict[str, str]:
        try:
            found = self._factory().authorities()
        except Exception:
            with self._lock:
                if self._authorities:
                    return dict(self._authorities)
            raise
        with self._lock:
            self._authorities = dict(found)
        return found


def proofs_by_target(resources: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for resource in resources:
        if resource.get("resourceType") == "Provenance":
            for target in targets(resource):
                out.setdefault(target, resource)
    return out


def verify_resource(resource: dict, proof: dict | None, reader, home_country: str) -> Verification:
    """Whether ``resource`` as received is anchored, by the home node, on our chain."""
    key = version_key_of(resource)
    target = version_reference(*key) if key else f"{resource.get('resourceType')}/?"
    try:
        leaf = leaf_hash(resource)
    except CanonicalizationError as error:
        return Verification(False, PROOF_INVALID, f"not canonicalizable: {error}", target)
    if proof is None:
        return verify_claim(leaf, None, None, target)
    try:
        claim = claim_from_provenance(proof)
    except ProvenanceError as error:
        return Verification(False, NOT_ANCHORED, f"proof unusable: {error}", target, leaf)
    ours = reader.deployment
    if (claim.chain_id, claim.contract) != (ours.chain_id, ours.anchor_registry):
        why = "the proof names another chain or contract than this node's"
        return Verification(False, ROOT_NOT_ON_CHAIN, why, target, leaf, claim.root)
    # The claim's own contract fields are replaced by ours: nothing of it is trusted.
    claim = replace(
        claim, contract=ours.anchor_registry, authority_registry=ours.authority_registry
    )
    result = verify_claim(leaf, claim, reader, target)
    if result.result and (result.country or "").upper() != home_country.upper():
        why = f"anchored by {result.country}, not by the home node {home_country}"
        return replace(result, result=False, reason_code=AUTHORITY_NOT_RECOGNISED, reason=why)
    return result
