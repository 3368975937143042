"""Patient/{id}/$everything (R4 patient-operation-everything).

Returns the Patient, every current resource in its compartment, and the
resources those reference directly (practitioners, organizations,
medications, locations), as one searchset Bundle. Supports ``_type``,
``_since``, ``_count`` and ``_offset``.

Route: fhir_server/api/operations/everything.py (access: ``guard.everything``).
"""

from __future__ import annotations

from urllib.parse import urlencode

from fhir_server import ids
from fhir_server.errors import BadRequest
from fhir_server.operations.definition import operation_definition, param
from fhir_server.resource_types import supported_types
from fhir_server.storage import queries
from fhir_server.storage.store import ResourceStore

MAX_COUNT = 5000
DEFINITION = operation_definition(
    "everything",
    code="everything",
    name="PhrxPatientEverything",
    title="Everything in a patient's record",
    description=(
        "GET or POST Patient/id/$everything: the Patient, every current resource in its "
        "compartment and the resources those reference directly, as one searchset Bundle, "
        "filtered by what the token may read (scopes, compartment, consent). The access "
        "log (AuditEvent) is left out. Paged with _count and _offset."
    ),
    resource=["Patient"],
    system=False,
    type_=False,
    instance=True,
    base="http://hl7.org/fhir/OperationDefinition/Patient-everything",
    parameters=[
        param("_since", "in", 0, "1", "instant", "Only resources updated since then."),
        param("_type", "in", 0, "*", "code", "Only these resource types (comma-separated)."),
        param("_count", "in", 0, "1", "integer", f"Page size (at most {MAX_COUNT})."),
        param("_offset", "in", 0, "1", "integer", "Entries to skip (the next link sets it)."),
        param("return", "out", 1, "1", "Bundle", "A searchset Bundle."),
    ],
)
NAME = DEFINITION["code"]


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
            number = ids.parse_version(value, name)
            if name == "_count":
                count = min(number, MAX_COUNT)
            else:
                offset = number
    return types, since, count, offset


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


def run(store: ResourceStore, patient_id: str, args, base_url: str, visible=None) -> dict:
    """``visible``: ``list[resource] -> list[resource]`` keeping what the caller may
    see (access policy); applied before counting and paging."""
    ids.check_id(patient_id, "patient id")
    store.read("Patient", patient_id)  # 404 / 410 before anything else
    types, since, count, offset = _options(args)
    pks = queries.compartment_pks(store, patient_id, types, since)
    in_compartment = store.load_in_compartment(pks, patient_id, damaged=[])
    have = {(r["resourceType"], r["id"]) for r in in_compartment}
    extra = []
    targets = referenced(in_compartment)
    if types is not None:
        # only the wanted types are decrypted, so references held by the other
        # compartment resources (an Encounter's serviceProvider) come from the index
        targets |= queries.referenced_targets(store, patient_id, types)
    for res_type, res_id in sorted(targets - have):
        if res_type in supported_types() and (types is None or res_type in types):
            found = store.read_if_readable(res_type, res_id, damaged=[])
            if found is not None:
                extra.append(found)
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
