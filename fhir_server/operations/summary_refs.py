"""$summary: the references of an IPS document, made to resolve inside it.

An IPS document stands alone: every ``reference`` it holds names an entry of the
Bundle. :func:`gather` adds the supporting resources the entries reference
(practitioners, organizations, medications, devices, specimens) that the caller may
read -- each through the caller's ``visible`` filter, the gate the rest of the
summary uses -- and :func:`prune` then rewrites each reference to the entry it names
(``Type/id``, resolved against the entry's RESTful fullUrl) or drops it. A dropped
reference keeps its ``display`` / ``identifier`` when it has one (what the released
resource itself says, no link); a backbone element that cannot stand without the
reference (``performer.actor``, ``diagnosis.condition``, an extension's value ...) goes
with it. Flask-free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fhir_server import ids
from fhir_server.operations.summary_profiles import support_meets
from fhir_server.search.compartment import compartment_patient_ids

# Resources an entry may point to that the summary brings in when the caller may read
# them (Encounters, Locations, CarePlans ... are not part of an IPS: their references go).
SUPPORT_TYPES = frozenset(
    {"Practitioner", "PractitionerRole", "Organization", "Medication", "Device", "Specimen"}
)
# A backbone element (or extension) that has no meaning without this reference child.
REQUIRED_CHILD = frozenset(
    {
        "actor",  # Immunization / Procedure .performer.actor
        "condition",  # Encounter.diagnosis.condition
        "location",  # Encounter.location.location (top-level ``location`` is kept apart)
        "link",  # DiagnosticReport.media.link
        "manipulated",  # Procedure.focalDevice.manipulated
        "other",  # Patient.link.other
        "itemReference",  # Medication.ingredient.item[x]
        "reference",  # Consent.provision.actor.reference / .data.reference
        "valueReference",  # an extension's only value
    }
)
MAX_ROUNDS = 4  # a PractitionerRole names a Practitioner, who names an Organization ...
_DROP = object()

Key = tuple[str, str]


def key_of(reference: str, base_url: str) -> Key | None:
    """(type, id) of a literal reference to this server (relative, versioned or absolute
    under ``base_url``); None for anything else (``urn:``, ``#contained``, elsewhere)."""
    if reference.startswith(base_url.rstrip("/") + "/"):
        reference = reference[len(base_url.rstrip("/")) + 1 :]
    parts = reference.split("/")
    if len(parts) == 4 and parts[2] == "_history":
        parts = parts[:2]
    if len(parts) != 2 or not parts[0][:1].isupper() or not ids.ID_PATTERN.match(parts[1]):
        return None
    return parts[0], parts[1]


def references(value) -> Iterator[str]:
    """Every literal ``reference`` string inside ``value``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("reference")
            if isinstance(ref, str):
                yield ref
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(item)


def gather(
    store,
    patient_id: str,
    members: dict[Key, dict],
    base_url: str,
    visible: Callable[[list[dict]], list[dict]] | None,
) -> list[dict]:
    """The supporting resources ``members`` reference (and those reference, a few steps
    deep) that meet their IPS profile, belong to no other patient and ``visible``
    releases. Only what would be included is put to ``visible``, so the caller's audit
    trail names what the document shows."""
    found: list[dict] = []
    tried: set[Key] = set(members)
    frontier = list(members.values())
    for _ in range(MAX_ROUNDS):
        wanted = []
        for resource in frontier:
            for ref in references(resource):
                key = key_of(ref, base_url)
                if key and key[0] in SUPPORT_TYPES and key not in tried:
                    tried.add(key)
                    wanted.append(key)
        loaded = []
        for res_type, res_id in sorted(wanted):
            resource = store.read_if_readable(res_type, res_id, damaged=[])
            if resource is None or not support_meets(resource):
                continue
            if compartment_patient_ids(resource) - {patient_id}:
                continue  # another patient's device or specimen
            loaded.append(resource)
        frontier = visible(loaded) if visible is not None else loaded
        found += frontier
        for resource in frontier:
            members[(resource["resourceType"], resource["id"])] = resource
        if not frontier:
            break
    return found


def prune(resource: dict, members: dict[Key, dict], base_url: str) -> dict:
    """A copy of ``resource`` whose references all name ``members`` (as ``Type/id``); a
    top-level element left with nothing goes (the caller checks required ones first)."""

    def resolve(ref: str) -> str | None:
        if ref.startswith("#"):
            return ref  # a contained resource (kept with its container)
        key = key_of(ref, base_url)
        return f"{key[0]}/{key[1]}" if key in members else None

    out: dict = {}
    for name, value in resource.items():
        if isinstance(value, dict | list):
            kept = _prune(value, resolve)
            if kept is not _DROP:
                out[name] = kept
        else:
            out[name] = value
    return out


def _prune(value, resolve):
    if isinstance(value, list):
        items = [kept for item in value if (kept := _prune(item, resolve)) is not _DROP]
        return items or _DROP
    if not isinstance(value, dict):
        return value
    ref = value.get("reference")
    if isinstance(ref, str):
        target = resolve(ref)
        if target is None:
            value = {k: v for k, v in value.items() if k != "reference"}
            if not (value.get("display") or value.get("identifier")):
                return _DROP
        else:
            value = {**value, "reference": target}
    out = {}
    for name, child in value.items():
        if isinstance(child, dict | list) and name != "div":
            kept = _prune(child, resolve)
            if kept is _DROP:
                if name in REQUIRED_CHILD:
                    return _DROP
                continue
            out[name] = kept
        else:
            out[name] = child
    if not set(out) - {"id", "url"}:
        return _DROP  # nothing left (e.g. an extension whose value was the reference)
    return out


def reachable(members: dict[Key, dict], support: list[dict], base_url: str) -> list[dict]:
    """The ``support`` resources still referenced (directly or through one another) from
    ``members`` (after entries were left out): no entry of the document is an orphan."""
    pending = {(r["resourceType"], r["id"]): r for r in support}
    kept: list[dict] = []
    frontier = list(members.values())
    while frontier and pending:
        named = {key_of(ref, base_url) for r in frontier for ref in references(r)}
        frontier = [pending.pop(key) for key in sorted(k for k in named if k in pending)]
        kept += frontier
    return kept
