"""FHIR Provenance for anchored resource versions, and parsing them back into claims.

One Provenance per anchored version, ``target`` = that version (``Type/id/_history/v``).
The anchor travels in one complex extension, so a downloaded Bundle carries everything an
offline verifier needs besides chain access::

    extension[url=ANCHOR_EXT].extension:
      leaf, root, leafIndex, treeSize, path (one per hash, sibling first), batch,
      txHash, blockNumber, chainId, contract, authorityRegistry, authority, country
"""

from __future__ import annotations

import time
from typing import Any

from web3 import Web3

from anchoring.journal import VersionAnchor
from anchoring.proof import InclusionProof, ProofFormatError, parse_hash
from anchoring.verification import AnchorClaim

ANCHOR_EXT = "https://phrx.dev/fhir/StructureDefinition/merkle-anchor"
POLICY = "https://phrx.dev/fhir/anchoring/phrx-merkle-inclusion-v1"
# the authority's chain account (an EIP-55 address): not a URI, so not urn:ietf:rfc:3986
CHAIN_ACCOUNT_SYSTEM = "https://phrx.dev/fhir/NamingSystem/chain-account"


def provenance_id(anchor: VersionAnchor) -> str:
    assert anchor.batch_id is not None
    return f"anchor-{anchor.batch_id[:24]}-{anchor.leaf_index}"


def version_reference(res_type: str, res_id: str, version_id: int | str) -> str:
    return f"{res_type}/{res_id}/_history/{version_id}"


def provenance_for(anchor: VersionAnchor) -> dict:
    """The Provenance of one anchored version (requires ``anchor.anchored``)."""
    if not anchor.anchored:
        raise ValueError("version not anchored yet")
    assert anchor.proof is not None and anchor.root is not None and anchor.tx_hash is not None
    sub: list[dict[str, Any]] = [
        {"url": "leaf", "valueString": anchor.leaf.hex()},
        {"url": "root", "valueString": anchor.root.hex()},
        {"url": "leafIndex", "valueUnsignedInt": anchor.proof.leaf_index},
        {"url": "treeSize", "valueUnsignedInt": anchor.proof.tree_size},
    ]
    sub += [{"url": "path", "valueString": h.hex()} for h in anchor.proof.path]
    sub += [
        {"url": "batch", "valueString": anchor.batch_id},
        {"url": "txHash", "valueString": "0x" + anchor.tx_hash.hex()},
        {"url": "blockNumber", "valueString": str(anchor.block_number)},
        {"url": "chainId", "valueString": str(anchor.chain_id)},
        {"url": "contract", "valueString": anchor.contract},
        {"url": "authorityRegistry", "valueString": anchor.authority_registry},
        {"url": "authority", "valueString": anchor.authority},
        {"url": "country", "valueCode": anchor.country},
    ]
    recorded = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(anchor.block_time or 0))
    return {
        "resourceType": "Provenance",
        "id": provenance_id(anchor),
        "extension": [{"url": ANCHOR_EXT, "extension": sub}],
        "target": [
            {"reference": version_reference(anchor.res_type, anchor.res_id, anchor.version_id)}
        ],
        "recorded": recorded,
        "policy": [POLICY],
        "activity": {"text": "Merkle root of this version anchored on the PHRX chain"},
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/"
                            "provenance-participant-type",
                            "code": "verifier",
                        }
                    ]
                },
                "who": {
                    "identifier": {"system": CHAIN_ACCOUNT_SYSTEM, "value": anchor.authority},
                    "display": f"PHRX anchoring authority {anchor.country}",
                },
            }
        ],
    }


class ProvenanceError(ValueError):
    """Not a PHRX anchoring Provenance, or a malformed one."""


def targets(provenance: dict) -> list[str]:
    return [
        t.get("reference", "")
        for t in provenance.get("target", [])
        if isinstance(t, dict) and isinstance(t.get("reference"), str)
    ]


def claim_from_provenance(provenance: dict) -> AnchorClaim:
    if not isinstance(provenance, dict) or provenance.get("resourceType") != "Provenance":
        raise ProvenanceError("not a Provenance")
    ext = next((e for e in provenance.get("extension", []) if e.get("url") == ANCHOR_EXT), None)
    if ext is None:
        raise ProvenanceError("Provenance carries no PHRX anchor extension")
    values: dict[str, list[Any]] = {}
    for item in ext.get("extension", []):
        value = next((v for k, v in item.items() if k.startswith("value")), None)
        values.setdefault(item.get("url"), []).append(value)

    def one(name: str, required: bool = True) -> Any:
        got = values.get(name)
        if not got:
            if required:
                raise ProvenanceError(f"anchor extension lacks {name!r}")
            return None
        return got[0]

    try:
        proof = InclusionProof.from_dict(
            {
                "format": "phrx-merkle-inclusion-v1",
                "leaf_index": one("leafIndex"),
                "tree_size": one("treeSize"),
                "path": values.get("path", []),
            }
        )
        leaf, root = parse_hash(one("leaf")), parse_hash(one("root"))
        tx = one("txHash", False)
        return AnchorClaim(
            leaf=leaf,
            root=root,
            proof=proof,
            batch_id=one("batch", False),
            tx_hash=bytes.fromhex(tx[2:]) if tx else None,
            block_number=int(one("blockNumber", False) or 0) or None,
            chain_id=int(one("chainId")),
            contract=Web3.to_checksum_address(one("contract")),
            authority_registry=Web3.to_checksum_address(one("authorityRegistry")),
            authority=one("authority", False),
            country=one("country", False),
        )
    except (ProofFormatError, ValueError, TypeError) as exc:
        raise ProvenanceError(f"malformed anchor extension: {exc}") from exc


def claim_from_anchor(anchor: VersionAnchor | None) -> AnchorClaim | None:
    """The node's own claim for a version (None until its batch is anchored)."""
    if anchor is None or not anchor.anchored:
        return None
    assert anchor.root is not None and anchor.proof is not None
    return AnchorClaim(
        leaf=anchor.leaf,
        root=anchor.root,
        proof=anchor.proof,
        batch_id=anchor.batch_id,
        tx_hash=anchor.tx_hash,
        block_number=anchor.block_number,
        chain_id=anchor.chain_id,
        contract=anchor.contract,
        authority_registry=anchor.authority_registry,
        authority=anchor.authority,
        country=anchor.country,
    )


def version_key_of(resource: dict) -> tuple[str, str, int] | None:
    """(type, id, versionId) of a resource copy, from its meta."""
    try:
        vid = int((resource.get("meta") or {}).get("versionId"))
    except (TypeError, ValueError):
        return None
    res_type, res_id = resource.get("resourceType"), resource.get("id")
    if not isinstance(res_type, str) or not isinstance(res_id, str):
        return None
    return res_type, res_id, vid
