"""``$provenance``: the anchoring proof of a stored version, as an R4 Provenance.

``GET /fhir/{type}/{id}/_history/{vid}/$provenance`` answers the Provenance the node
issues for an anchored version (Merkle path, root, chain transaction; see
docs/anchoring.md): with it, a downloaded copy can be verified offline or on any node
(``POST $verify``). Searchset Bundles (searches, ``$everything``) carry the
Provenance of every anchored version they contain when asked with
``_anchor-provenance=true`` (:func:`with_provenance`).

Route: fhir_server/api/operations/provenance.py.
"""

from __future__ import annotations

from anchoring import journal
from anchoring.provenance import provenance_for, provenance_id, version_key_of, version_reference
from fhir_server import ids
from fhir_server.errors import BadRequest, NotFound
from fhir_server.operations.definition import operation_definition, param
from fhir_server.resource_types import check_type, supported_types

PROVENANCE_PARAM = "_anchor-provenance"
ISSUED_PREFIX = "anchor-"  # the ids of the Provenances issued from the journal
DEFINITION = operation_definition(
    "provenance",
    code="provenance",
    name="PhrxProvenance",
    title="Anchoring proof of a version",
    description=(
        "GET Type/id/_history/vid/$provenance: the Provenance recording where the version's "
        "anchoring leaf lies in which anchored Merkle batch (audit path, root, chain "
        "transaction, block). 404 until the version is anchored. Searches and $everything "
        "add these Provenances to a searchset when asked with _anchor-provenance=true."
    ),
    resource=["Resource"],
    system=False,
    type_=False,
    instance=True,
    parameters=[param("return", "out", 1, "1", "Provenance", "The anchoring proof.")],
)
NAME = DEFINITION["code"]


def provenance_of(node, res_type: str, res_id: str, version_id: int) -> dict:
    check_type(res_type)
    anchor = journal.version_anchor(node.engine, res_type, res_id, version_id)
    if anchor is None or not anchor.anchored:
        raise NotFound(f"{version_reference(res_type, res_id, version_id)} is not anchored yet.")
    return provenance_for(anchor)


def issued_provenance(node, res_id: str):
    """(the anchoring Provenance whose id is ``res_id``, its version's key), or None
    when no anchored version has that id (``anchor-<batch prefix>-<leaf index>``)."""
    prefix, _, leaf = res_id.removeprefix(ISSUED_PREFIX).rpartition("-")
    if not prefix or not (leaf.isascii() and leaf.isdigit()) or len(leaf) > 9:
        return None
    anchor = journal.anchor_at(node.engine, prefix, int(leaf))
    if anchor is None or not anchor.anchored or res_id != provenance_id(anchor):
        return None
    return provenance_for(anchor), (anchor.res_type, anchor.res_id, anchor.version_id)


def parse_target(value: str, base_url: str) -> tuple[str, str, int | None] | None:
    """A ``target`` value (``Type/id``, ``Type/id/_history/n``, or either under this
    node's base URL) as (type, id, version or None); None for another server's URL
    (this node anchors only its own records)."""
    text = value.removeprefix(base_url.rstrip("/") + "/")
    if "://" in text or text.startswith("urn:"):
        return None
    parts = text.split("/")
    if len(parts) == 4 and parts[2] == "_history":
        version = ids.parse_version(parts[3], "target version")
        return _known_type(parts[0], value), ids.check_id(parts[1]), version
    if len(parts) == 2:
        return _known_type(parts[0], value), ids.check_id(parts[1]), None
    raise BadRequest(f"target={value!r}: expected Type/id or Type/id/_history/n.")


def _known_type(res_type: str, value: str) -> str:
    if res_type not in supported_types():
        raise BadRequest(f"target={value!r} names no resource type this server holds.")
    return res_type


def anchoring_provenances(node, versions: list[tuple[str, str, int]]) -> list[dict]:
    """The Provenances of those of ``versions`` that are anchored, in their order."""
    anchors = journal.version_anchors(node.engine, versions)
    found = [anchors.get(key) for key in versions]
    return [provenance_for(a) for a in found if a is not None and a.anchored]


def with_provenance(node, body: dict, base_url: str) -> bool:
    """Append to the searchset ``body`` (in place) the Provenance of every anchored
    version it holds, as ``include`` entries; returns whether ``body`` is a searchset."""
    if body.get("resourceType") != "Bundle" or body.get("type") != "searchset":
        return False
    keys = [version_key_of(e.get("resource") or {}) for e in body.get("entry") or []]
    anchors = journal.version_anchors(node.engine, [k for k in keys if k])
    for key in keys:
        found = anchors.get(key) if key else None
        if found is None or not found.anchored:
            continue
        body.setdefault("entry", []).append(
            {
                "fullUrl": f"{base_url}/Provenance/{provenance_id(found)}",
                "resource": provenance_for(found),
                "search": {"mode": "include"},
            }
        )
    return True
