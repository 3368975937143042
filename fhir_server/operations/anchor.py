"""``POST /fhir/$anchor``: flush the anchoring journal now, return the batches anchored."""

from __future__ import annotations

from fhir_server.errors import FHIRError

NAME = "anchor"
DEFINITION_URL = "https://phrx.dev/fhir/OperationDefinition/anchor"


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
