"""Offline verification of a downloaded Bundle: its Provenance proofs plus chain access."""

from __future__ import annotations

from anchoring.canonical import CanonicalizationError, leaf_hash
from anchoring.chain import ChainError, Deployment
from anchoring.provenance import (
    ProvenanceError,
    claim_from_provenance,
    targets,
    version_key_of,
    version_reference,
)
from anchoring.verification import (
    CHAIN_UNAVAILABLE,
    NOT_ANCHORED,
    PROOF_INVALID,
    ROOT_NOT_ON_CHAIN,
    ChainReader,
    Verification,
    verify_claim,
)


def verify_bundle(bundle: dict, chain_url: str) -> list[Verification]:
    resources = [e.get("resource") for e in bundle.get("entry") or [] if isinstance(e, dict)]
    resources = [r for r in resources if isinstance(r, dict)]
    by_target: dict[str, dict] = {}
    for r in resources:
        if r.get("resourceType") == "Provenance":
            for t in targets(r):
                by_target[t] = r
    readers: dict[Deployment, ChainReader | Exception] = {}
    out = []
    for r in resources:
        if r.get("resourceType") in ("Provenance", "OperationOutcome"):
            continue
        key = version_key_of(r)
        target = version_reference(*key) if key else f"{r.get('resourceType')}/{r.get('id')}"
        try:
            leaf = leaf_hash(r)
        except CanonicalizationError as exc:
            out.append(Verification(False, PROOF_INVALID, f"not canonicalizable: {exc}", target))
            continue
        prov = by_target.get(target) if key else None
        if prov is None:
            out.append(verify_claim(leaf, None, None, target))
            continue
        try:
            claim = claim_from_provenance(prov)
        except ProvenanceError as exc:
            out.append(Verification(False, NOT_ANCHORED, f"proof unusable: {exc}", target, leaf))
            continue
        assert claim.chain_id is not None and claim.contract and claim.authority_registry
        dep = Deployment(claim.chain_id, claim.contract, claim.authority_registry)
        if dep not in readers:
            try:
                readers[dep] = ChainReader.from_url(chain_url, dep)
            except ChainError as exc:  # the proof names another chain id
                readers[dep] = exc
            except Exception as exc:  # chain unreachable
                readers[dep] = exc
        reader = readers[dep]
        if isinstance(reader, Exception):
            code = ROOT_NOT_ON_CHAIN if isinstance(reader, ChainError) else CHAIN_UNAVAILABLE
            reason = f"{code.replace('-', ' ')}: {reader}"
            out.append(Verification(False, code, reason, target, leaf, claim.root))
            continue
        out.append(verify_claim(leaf, claim, reader, target))
    return out
