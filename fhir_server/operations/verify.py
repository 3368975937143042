"""``$verify``: is a resource version exactly what was anchored on the chain?

* instance / version level: recompute the leaf from the *stored* version, check its audit
  path, read the root from the chain live;
* ``POST /fhir/$verify``: the same for an external copy (a resource, a Parameters with
  ``resource`` + ``provenance``, or a Bundle with the Provenance the node issued). A copy
  without a Provenance is checked against the node's own journal.

Route: fhir_server/api/operations/verify.py. The proof itself (``$provenance``) is
fhir_server/operations/provenance.py.
"""

from __future__ import annotations

from dataclasses import replace

from anchoring import journal
from anchoring.canonical import CanonicalizationError, leaf_hash
from anchoring.provenance import (
    ProvenanceError,
    claim_from_anchor,
    claim_from_provenance,
    targets,
    version_key_of,
    version_reference,
)
from anchoring.verification import (
    HASH_MISMATCH,
    NOT_ANCHORED,
    VERSION_CHAIN_BROKEN,
    ChainReader,
    Verification,
    verify_claim,
)
from fhir_server import ids
from fhir_server.errors import BadRequest, Gone, IntegrityFailure, NotFound
from fhir_server.operations.definition import operation_definition, param
from fhir_server.resource_types import check_type

_RESULT_PARTS = [
    param("result", "out", 1, "1", "boolean", "True: the version is exactly what was anchored."),
    param("target", "out", 0, "1", "string", "The version checked (Type/id/_history/vid)."),
    param("reason", "out", 0, "1", "string", "Why the result is false."),
    param("reasonCode", "out", 0, "1", "code", "hash-mismatch, not-anchored, ..."),
    param("leaf", "out", 0, "1", "string", "Leaf hash (hex) of the canonical content."),
    param("root", "out", 0, "1", "string", "Merkle root (hex) of the batch."),
    param("batch", "out", 0, "1", "string"),
    param("txHash", "out", 0, "1", "string"),
    param("blockNumber", "out", 0, "1", "integer"),
    param("leafCount", "out", 0, "1", "integer"),
    param("confirmations", "out", 0, "1", "integer"),
    param("chainId", "out", 0, "1", "integer"),
    param("blockTime", "out", 0, "1", "instant"),
    param("authority", "out", 0, "1", "string", "Country of the anchoring authority."),
    param("authorityAddress", "out", 0, "1", "string"),
    param("contract", "out", 0, "1", "string", "Address of the anchor registry."),
]
DEFINITION = operation_definition(
    "verify",
    code="verify",
    name="PhrxVerify",
    title="Verify a version against its anchor on the chain",
    description=(
        "Instance level (GET Type/id/$verify, Type/id/_history/vid/$verify): recomputes "
        "the anchoring leaf of the stored version, checks its Merkle path and reads the "
        "root from the chain. System level (POST $verify): the same for a downloaded copy "
        "-- a resource, a Parameters with resource and provenance, or a Bundle carrying the "
        "Provenance this node issued; a copy without a Provenance is checked against the "
        "node's journal. A Bundle answers one result overall and one entry per copy."
    ),
    resource=["Resource"],
    system=True,
    type_=False,
    instance=True,
    parameters=[
        param("resource", "in", 0, "1", "Resource", "System level: the copy to verify."),
        param("provenance", "in", 0, "1", "Provenance", "System level: its anchoring proof."),
        *_RESULT_PARTS,
        param("entry", "out", 0, "*", None, "POST of a Bundle: one per copy.", part=_RESULT_PARTS),
    ],
)
NAME = DEFINITION["code"]


def _reader(node) -> ChainReader | None:
    anchoring = getattr(node, "anchoring", None)
    if anchoring is None:
        return None
    try:
        return anchoring.reader()
    except Exception:  # chain down: verification reports chain-unavailable
        return None


def verify_stored(node, res_type: str, res_id: str, version_id: int | None = None) -> Verification:
    check_type(res_type)
    ids.check_id(res_id)
    store = node.store
    if version_id is None:
        row = store.current_version(res_type, res_id)
    else:
        row = store.version_row(res_type, res_id, version_id)
    where = f"{res_type}/{res_id}" + (f"/_history/{version_id}" if version_id else "")
    if row is None:
        raise NotFound(f"{where} is not known.")
    if row.deleted:
        raise Gone(f"{where} is a deletion; there is no content to verify.")
    target = version_reference(res_type, res_id, row.version_id)
    try:
        leaf: bytes | None = leaf_hash(store.open_version(row))
    except IntegrityFailure:
        leaf = None
    anchor = journal.version_anchor(node.engine, res_type, res_id, row.version_id)
    verification = verify_claim(leaf, claim_from_anchor(anchor), _reader(node), target)
    broken = store.chain_break(res_type, res_id)
    if broken is None:
        return verification
    why = (
        f"version chain broken at version {broken}: a version was deleted or altered, or "
        f"{res_type}/{res_id} was rolled back to an older version in the database"
    )
    return replace(verification, result=False, reason_code=VERSION_CHAIN_BROKEN, reason=why)


def _verify_copy(node, resource: dict, provenance: dict | None) -> Verification:
    key = version_key_of(resource)
    target = version_reference(*key) if key else None
    try:
        leaf = leaf_hash(resource)
    except CanonicalizationError as exc:
        raise BadRequest(f"Cannot canonicalize the resource: {exc}") from None
    if provenance is not None:
        try:
            claim = claim_from_provenance(provenance)
        except ProvenanceError as exc:
            return Verification(False, HASH_MISMATCH, f"proof unusable: {exc}", target, leaf)
        reader = _reader(node)
        if (
            reader is not None
            and claim.contract
            and (claim.contract.lower() != reader.deployment.anchor_registry.lower())
        ):
            reader = None  # another deployment: the node cannot vouch for it
        return verify_claim(leaf, claim, reader, target)
    if key is None:
        return Verification(
            False, NOT_ANCHORED, "no meta.versionId and no Provenance: version unknown", None, leaf
        )
    anchor = journal.version_anchor(node.engine, *key)
    return verify_claim(leaf, claim_from_anchor(anchor), _reader(node), target)


def verify_external(node, body: dict) -> dict:
    """POST $verify: returns Parameters (one ``result`` overall, one ``entry`` per copy)."""
    pairs = copies(body)
    if not pairs:
        raise BadRequest("Nothing to verify: send a resource, a Bundle or Parameters.")
    results = [_verify_copy(node, resource, prov) for resource, prov in pairs]
    if len(results) == 1 and body.get("resourceType") != "Bundle":
        return results[0].to_parameters()
    params = [{"name": "result", "valueBoolean": all(r.result for r in results)}]
    params += [{"name": "entry", "part": r.parts()} for r in results]
    return {"resourceType": "Parameters", "parameter": params}


def copies(body: dict) -> list[tuple[dict, dict | None]]:
    """The (resource, Provenance or None) pairs a ``POST $verify`` body carries."""
    kind = body.get("resourceType")
    if kind == "Bundle":
        resources = [e.get("resource") for e in body.get("entry") or [] if isinstance(e, dict)]
        resources = [r for r in resources if isinstance(r, dict)]
        provs = [r for r in resources if r.get("resourceType") == "Provenance"]
        by_target = {t: p for p in provs for t in targets(p)}
        out = []
        for r in resources:
            if r.get("resourceType") in ("Provenance", "OperationOutcome"):
                continue  # the proofs / search warnings, not the data
            key = version_key_of(r)
            out.append((r, by_target.get(version_reference(*key)) if key else None))
        return out
    if kind == "Parameters":
        resource, prov = None, None
        for p in body.get("parameter") or []:
            if p.get("name") == "resource":
                resource = p.get("resource")
            elif p.get("name") == "provenance":
                prov = p.get("resource")
        if not isinstance(resource, dict):
            raise BadRequest("Parameters need a 'resource' part.")
        return [(resource, prov if isinstance(prov, dict) else None)]
    return [(body, None)]
