"""``POST /fhir/$anchor``: flush the anchoring journal now, return the batches anchored."""

from __future__ import annotations

from fhir_server.errors import FHIRError
from fhir_server.operations.definition import operation_definition, param

_BATCH_PARTS = [
    param("batch", "out", 1, "1", "string", "Batch id in the node's anchoring journal."),
    param("root", "out", 1, "1", "string", "Merkle root (hex) anchored on the chain."),
    param("leafCount", "out", 1, "1", "integer"),
    param("txHash", "out", 1, "1", "string", "Chain transaction (0x hex)."),
    param("blockNumber", "out", 1, "1", "integer"),
    param("blockTime", "out", 1, "1", "integer", "Block time, seconds since the epoch."),
    param("authority", "out", 1, "1", "string", "Country of the anchoring authority."),
]
DEFINITION = operation_definition(
    "anchor",
    code="anchor",
    name="PhrxAnchor",
    title="Anchor pending versions now",
    description=(
        "Flushes the node's anchoring journal: every pending resource version is committed "
        "to the chain as a Merkle root, one transaction per batch. Needs a system/ scope "
        "granting create (operators and backend services). 503 without a chain."
    ),
    system=True,
    type_=False,
    instance=False,
    affects_state=True,
    parameters=[
        param("batches", "out", 1, "1", "integer", "Number of batches anchored."),
        param("leafCount", "out", 1, "1", "integer", "Versions anchored in all."),
        param("batch", "out", 0, "*", None, "One per anchored batch.", part=_BATCH_PARTS),
    ],
)
NAME = DEFINITION["code"]


class ChainUnavailable(FHIRError):
    """503: the node has no chain configured, or the chain does not answer."""

    status = 503
    code = "transient"


def anchoring_of(node):
    if getattr(node, "anchoring", None) is None:
        raise ChainUnavailable("This node runs without a chain (start it with --chain).")
    return node.anchoring


def run(node) -> dict:
    anchoring = anchoring_of(node)
    try:
        results = anchoring.batcher.flush()
    except Exception as exc:
        raise ChainUnavailable(
            f"Anchoring failed, the journal keeps every leaf: {type(exc).__name__}"
        ) from exc
    params: list[dict] = [
        {"name": "batches", "valueInteger": len(results)},
        {"name": "leafCount", "valueInteger": sum(r.leaf_count for r in results)},
    ]
    for r in results:
        params.append(
            {
                "name": "batch",
                "part": [
                    {"name": "batch", "valueString": r.batch_id},
                    {"name": "root", "valueString": r.root.hex()},
                    {"name": "leafCount", "valueInteger": r.leaf_count},
                    {"name": "txHash", "valueString": "0x" + r.tx_hash.hex()},
                    {"name": "blockNumber", "valueInteger": r.block_number},
                    {"name": "blockTime", "valueInteger": r.block_time},
                    {"name": "authority", "valueString": r.country},
                ],
            }
        )
    return {"resourceType": "Parameters", "parameter": params}
