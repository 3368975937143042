"""Patient/{id}/$everything (R4 patient-operation-everything).

Returns the Patient, every current resource in its compartment, and the
resources those reference directly (practitioners, organizations,
medications, locations), as one searchset Bundle. Supports ``_type``,
``_since``, ``_count`` and ``_offset``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy import select

from fhir_server import ids
from fhir_server.errors import BadRequest
from fhir_server.resource_types import supported_types
from fhir_server.search.tables import sidx_ref
from fhir_server.storage.db import compartments, resources
from fhir_server.storage.store import ResourceStore

NAME = "everything"
DEFINITION_URL = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
MAX_COUNT = 5000


def _options(args: list[tuple[str, str]]) -> tuple[set[str] | None, int | None, int, int]:
    types, since, count, offset = None, None, MAX_COUNT, 0
    for name, value in args:
        if name == "_type":
            types = {t.strip() for t in value.split(",") if t.strip()}
            unknown = types - supported_types()
            if unknown:
                raise BadRequest(f"_type names unsupported types: {', '.join(sorted(unknown))}.")
        elif name == "_since":
            since = ids.parse_instant_us(value)
            if since is None:
                raise BadRequest(f"_since must be a FHIR instant, not {value!r}.")
        elif name in {"_count", "_offset"}:
            if not value.isdigit():
                raise BadRequest(f"{name} must be a non-negative integer.")
            if name == "_count":
                count = min(int(value), MAX_COUNT)
            else:
                offset = int(value)
    return types, since, count, offset


def compartment_pks(store: ResourceStore, patient_id: str, types, since) -> list[int]:
    query = (
        select(resources.c.pk)
        .join(compartments, compartments.c.resource_pk == resources.c.pk)
        .where(compartments.c.patient_id == patient_id, resources.c.deleted.is_(False))
        .order_by(resources.c.pk)
    )
    if types:
        query = query.where(resources.c.res_type.in_(types))
    if since is not None:
        query = query.where(resources.c.last_updated_us >= since)
    with store.connect() as conn:
        return list(dict.fromkeys(r[0] for r in conn.execute(query)))


def referenced(found: list[dict]) -> set[tuple[str, str]]:
    refs: set[tuple[str, str]] = set()
    stack: list = list(found)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ref.count("/") == 1 and "?" not in ref:
                res_type, res_id = ref.split("/")
                refs.add((res_type, res_id))
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend(node)
    return refs


def indexed_targets(store: ResourceStore, patient_id: str, types: set[str]) -> set[tuple[str, str]]:
    """References of type ``types`` made by any resource of the compartment.

    With ``_type`` only the wanted types are decrypted, so references held by
    the other compartment resources (an Encounter's serviceProvider) are read
    from the reference index instead.
    """
    query = (
        select(sidx_ref.c.target_type, sidx_ref.c.target_id)
        .join(compartments, compartments.c.resource_pk == sidx_ref.c.resource_pk)
        .where(compartments.c.patient_id == patient_id, sidx_ref.c.target_type.in_(types))
        .distinct()
    )
    with store.connect() as conn:
        return {(t, i) for t, i in conn.execute(query) if t and i}


def run(store: ResourceStore, patient_id: str, args, base_url: str, visible=None) -> dict:
    """``visible``: ``list[resource] -> list[resource]`` keeping what the caller may
    see (access policy); applied before counting and paging."""
    ids.check_id(patient_id, "patient id")
    store.read("Patient", patient_id)  # 404 / 410 before anything else
    types, since, count, offset = _options(args)
    pks = compartment_pks(store, patient_id, types, since)
    in_compartment = store.load_in_compartment(pks, patient_id, damaged=[])
    have = {(r["resourceType"], r["id"]) for r in in_compartment}
    extra = []
    targets = referenced(in_compartment)
    if types is not None:
        targets |= indexed_targets(store, patient_id, types)
    for res_type, res_id in sorted(targets - have):
        if res_type in supported_types() and (types is None or res_type in types):
            row = store.current_version(res_type, res_id)
            if row is not None and not row.deleted:
                extra.append(store.open_version(row))
    everything = in_compartment + extra
    if visible is not None:
        everything = visible(everything)
    page = everything[offset : offset + count]
    self_url = f"{base_url}/Patient/{patient_id}/$everything"
    links = [{"relation": "self", "url": self_url + _qs(args)}]
    if offset + count < len(everything):
        nxt = [(k, v) for k, v in args if k != "_offset"] + [("_offset", str(offset + count))]
        links.append({"relation": "next", "url": self_url + _qs(nxt)})
    return {
        "resourceType": "Bundle",
        "id": ids.new_id(),
        "type": "searchset",
        "total": len(everything),
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in page
        ],
    }


def _qs(args) -> str:
    return "?" + urlencode(args) if args else ""
