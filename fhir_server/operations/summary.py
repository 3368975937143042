"""Patient/{id}/$summary: an International Patient Summary (IPS 2.0.0) document Bundle.

Flask-free. The document stands alone and declares what it meets:

* the Composition (LOINC 60591-5, ``Composition-uv-ips``) has the three required IPS
  sections -- Problems, Allergies, Medications -- always, with ``emptyReason`` when there
  is nothing to list, plus Immunizations, Results, Vital signs, Procedures, Past
  illnesses and Advance directives when the record holds any; every section has a
  generated XHTML narrative, entries newest first (:mod:`.summary_narrative`);
* its author is a Device entry standing for this PHRX node (the software that
  assembled the document, not a clinician);
* every entry declares in ``meta.profile`` the profile it meets (:mod:`.summary_profiles`);
* every reference names an entry of the Bundle (``Type/id`` against RESTful fullUrls
  ``{base}/Type/id``): referenced practitioners, organizations, medications, devices
  and specimens come along when the caller may read them, other references are
  dropped (:mod:`.summary_refs`). A medication order or statement whose Medication
  cannot come along is left out, and its section says so.

Only what ``visible`` (the route's gate) releases is shown: the Patient, each section
entry and each supporting resource. The Bundle and the Composition are validated (R4)
before they are returned.

Route: fhir_server/api/operations/summary.py (access, consent and break-glass there).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from consent.provisions import clinical_time
from fhir_server import ids
from fhir_server.errors import Forbidden
from fhir_server.operations import summary_narrative as text
from fhir_server.operations import summary_profiles as profiles
from fhir_server.operations import summary_refs as refs
from fhir_server.operations.definition import VERSION, operation_definition, param
from fhir_server.storage import queries
from fhir_server.validation import validate_resource

LOINC = "http://loinc.org"
EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
INACTIVE = {"entered-in-error", "cancelled", "not-taken"}
PAST = {"inactive", "remission", "resolved"}
TITLE = "International Patient Summary"

# (key, LOINC code, LOINC display, title, required, resource types)
SECTIONS = (
    ("problems", "11450-4", "Problem list - Reported", "Problem list", True, ("Condition",)),
    (
        "allergies",
        "48765-2",
        "Allergies and adverse reactions Document",
        "Allergies and intolerances",
        True,
        ("AllergyIntolerance",),
    ),
    (
        "medications",
        "10160-0",
        "History of Medication use Narrative",
        "Medication summary",
        True,
        ("MedicationStatement", "MedicationRequest"),
    ),
    (
        "immunizations",
        "11369-6",
        "History of Immunization note",
        "Immunizations",
        False,
        ("Immunization",),
    ),
    (
        "results",
        "30954-2",
        "Relevant diagnostic tests/laboratory data note",
        "Results",
        False,
        ("Observation", "DiagnosticReport"),
    ),
    ("vitals", "8716-3", "Vital signs note", "Vital signs", False, ()),
    (
        "procedures",
        "47519-4",
        "History of Procedures Document",
        "History of procedures",
        False,
        ("Procedure",),
    ),
    ("past", "11348-0", "History of Past illness note", "History of past illness", False, ()),
    (
        "directives",
        "42348-3",
        "Advance healthcare directives",
        "Advance directives",
        False,
        ("Consent",),
    ),
)
SECTION_TYPES = {t for *_, types in SECTIONS for t in types}
# the element naming the patient a section entry is about
ABOUT = {"AllergyIntolerance": "patient", "Immunization": "patient", "Consent": "patient"}
DEFINITION = operation_definition(
    "summary",
    code="summary",
    name="PhrxPatientSummary",
    title="International Patient Summary of a patient",
    description=(
        "GET or POST Patient/id/$summary: an IPS document Bundle (Composition LOINC "
        "60591-5) of what the caller may read. Practitioners need the patient's Consent; "
        "where the patient's policy allows break-glass, purpose=ETREAT (or BTG) with a "
        "justification opens it, and the access is audited as break-glass."
    ),
    resource=["Patient"],
    system=False,
    type_=False,
    instance=True,
    base="http://hl7.org/fhir/uv/ips/OperationDefinition/summary",
    parameters=[
        param("purpose", "in", 0, "1", "code", "ETREAT or BTG asks for break-glass."),
        param("justification", "in", 0, "1", "string", "Why break-glass is needed."),
        param("return", "out", 1, "1", "Bundle", "The IPS document Bundle."),
    ],
)
NAME = DEFINITION["code"]


def build_summary(
    store,
    patient_id: str,
    base_url: str,
    *,
    visible: Callable[[list[dict]], list[dict]] | None = None,
    now: datetime | None = None,
) -> dict:
    """The IPS document Bundle of ``patient_id``; ``visible`` filters what the caller may see."""
    ids.check_id(patient_id, "patient id")
    base_url = base_url.rstrip("/")
    patient = store.read("Patient", patient_id)  # 404 / 410 first
    found = [r for r in _load(store, patient_id) if _about(r, patient_id, base_url)]
    found = [r for r in found if _section_of(r)]  # only what a section shows is asked for
    if visible is not None:
        released = visible([patient, *found])
        if not any(r["resourceType"] == "Patient" for r in released):
            raise Forbidden("This request may not read the patient the summary is about.")
        found = [r for r in released if r["resourceType"] != "Patient"]
    grouped = _group(found)
    support = refs.gather(store, patient_id, _members(patient, grouped), base_url, visible)
    members = _members(patient, grouped) | {_key(r): r for r in support}
    grouped, notes = _without_lost_medications(grouped, members, base_url)
    members = _members(patient, grouped)
    support = refs.reachable(members, support, base_url)  # none left for a left-out order
    members.update({_key(r): r for r in support})
    copies = _entries(members, base_url)
    now = now or datetime.now(UTC)
    device = _device(base_url)
    composition = _composition(copies, grouped, notes, device, now)
    order = [("Patient", patient_id), *(_key(r) for _, items in grouped for r in items)]
    order += [_key(r) for r in support]
    bundle = {
        "resourceType": "Bundle",
        "id": ids.new_id(),
        "meta": {"profile": [profiles.BUNDLE]},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": "document",
        "timestamp": _instant(now),
        "entry": [_entry(composition, base_url)]
        + [_entry(copies[k], base_url) for k in order]
        + [_entry(device, base_url)],
    }
    validate_resource(composition)
    validate_resource(bundle)
    return bundle


def _load(store, patient_id: str) -> list[dict]:
    pks = queries.compartment_pks(store, patient_id, SECTION_TYPES)
    return store.load_in_compartment(pks, patient_id, damaged=[])


def _key(resource: dict) -> tuple[str, str]:
    return resource["resourceType"], resource["id"]


def _members(patient: dict, grouped) -> dict:
    members = {_key(patient): patient}
    members.update({_key(r): r for _, items in grouped for r in items})
    return members


def _about(resource: dict, patient_id: str, base_url: str) -> bool:
    """Is the entry about this patient (its subject), not only in their compartment?"""
    subject = resource.get(ABOUT.get(resource["resourceType"], "subject")) or {}
    reference = subject.get("reference") if isinstance(subject, dict) else None
    return refs.key_of(reference or "", base_url) == ("Patient", patient_id)


def _section_of(resource: dict) -> str | None:
    kind = resource["resourceType"]
    if resource.get("status") in INACTIVE:
        return None
    if kind == "Consent":
        scopes = {c.get("code") for c in (resource.get("scope") or {}).get("coding") or []}
        return "directives" if "adr" in scopes and resource.get("status") == "active" else None
    if kind == "Observation":
        categories = {
            c.get("code")
            for concept in resource.get("category") or []
            for c in concept.get("coding") or []
        }
        if "vital-signs" in categories:
            return "vitals"
        if categories & {"social-history", "survey"}:
            return None
        return "results"
    if kind == "Condition":
        verification = (resource.get("verificationStatus") or {}).get("coding") or [{}]
        if verification[0].get("code") in ("entered-in-error", "refuted"):
            return None
        clinical = (resource.get("clinicalStatus") or {}).get("coding") or [{}]
        return "past" if clinical[0].get("code") in PAST else "problems"
    for key, *_, types in SECTIONS:
        if kind in types:
            return key
    return None


def _newest_first(resource: dict) -> float:
    when = clinical_time(resource)
    return -when[0].timestamp() if when else float("inf")


def _group(found: list[dict]) -> list[tuple[str, list[dict]]]:
    by_section: dict[str, list[dict]] = {key: [] for key, *_ in SECTIONS}
    for resource in found:
        key = _section_of(resource)
        if key:
            by_section[key].append(resource)
    return [(key, sorted(items, key=_newest_first)) for key, items in by_section.items()]


def _without_lost_medications(grouped, members: dict, base_url: str):
    """Medication orders / statements whose Medication cannot come along (not readable by
    this request, or not an IPS Medication) name no medication: they are left out, and
    their section says how many."""
    notes: dict[str, list[str]] = {}
    out = []
    for key, items in grouped:
        kept = []
        for resource in items:
            medication = resource.get("medicationReference") or {}
            ref = medication.get("reference") or ""
            named = ref.startswith("#") or refs.key_of(ref, base_url) in members
            if medication and not (named or medication.get("display")):
                continue
            kept.append(resource)
        if len(kept) < len(items):
            left = len(items) - len(kept)
            notes[key] = [
                f"{left} medication entr{'y' if left == 1 else 'ies'} not shown: the "
                "medication named is not available to this request."
            ]
        out.append((key, kept))
    return out, notes


def _entries(members: dict, base_url: str) -> dict:
    """The pruned, profiled copies of ``members`` (the Bundle's stored resources)."""
    copies = {}
    for key, resource in members.items():
        copies[key] = refs.prune(text.with_english(resource), members, base_url)
    claimed = {key: profiles.profile_of(copy) for key, copy in copies.items()}
    profiles.settle(claimed, copies)
    for key, copy in copies.items():
        copy["meta"] = {**(copy.get("meta") or {}), "profile": [claimed[key]]}
        if not copy.get("text"):
            copy["text"] = text.resource_text(copy)
    return copies


def _device(base_url: str) -> dict:
    """This node as the Device that assembled the document (same id on every call)."""
    device_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{base_url}#phrx-node"))
    name = f"PHRX node {base_url}"
    return {
        "resourceType": "Device",
        "id": device_id,
        "meta": {"profile": [profiles.CORE + "Device"]},
        "text": text.div(
            f"<p>{text.esc(name)}: the PHRX personal health record server (version "
            f"{text.esc(VERSION)}) that assembled this summary from the records it holds.</p>"
        ),
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": base_url}],
        "status": "active",
        "deviceName": [{"name": name, "type": "user-friendly-name"}],
        "type": {"text": "Personal health record server software"},
        "version": [{"value": VERSION}],
    }


def _composition(copies, grouped, notes, device, now: datetime) -> dict:
    meta = {
        key: (code, display, title, required) for key, code, display, title, required, _ in SECTIONS
    }
    sections = []
    for key, items in grouped:
        code, display, title, required = meta[key]
        if not items and not required:
            continue
        shown = [copies[_key(r)] for r in items]
        section: dict = {
            "title": title,
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
            "text": text.section_text(title, shown, notes.get(key, [])),
        }
        if items:
            section["entry"] = [{"reference": f"{r['resourceType']}/{r['id']}"} for r in items]
        else:
            section["emptyReason"] = {
                "coding": [
                    {"system": EMPTY_REASON, "code": "unavailable", "display": "Unavailable"}
                ],
                "text": "No information available",
            }
        sections.append(section)
    composition_id = ids.new_id()
    patient = next(c for k, c in copies.items() if k[0] == "Patient")
    date = _instant(now)
    return {
        "resourceType": "Composition",
        "id": composition_id,
        "meta": {"profile": [profiles.COMPOSITION]},
        "text": text.composition_text(
            TITLE, patient, date, device["deviceName"][0]["name"], sections
        ),
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{composition_id}"},
        "status": "final",
        "type": {
            "coding": [{"system": LOINC, "code": "60591-5", "display": "Patient summary Document"}]
        },
        "subject": {"reference": f"Patient/{patient['id']}"},
        "date": date,
        "author": [{"reference": f"Device/{device['id']}"}],
        "title": TITLE,
        "confidentiality": "N",
        "section": sections,
    }


def _entry(resource: dict, base_url: str) -> dict:
    return {
        "fullUrl": f"{base_url}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
    }


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
