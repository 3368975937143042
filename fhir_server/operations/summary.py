"""Patient/{id}/$summary: an International Patient Summary (IPS) document Bundle.

Flask-free. The Composition (LOINC 60591-5) has the three required IPS sections
-- Problems, Allergies, Medications -- always, with ``emptyReason`` when there is
nothing to list, plus Immunizations, Results, Vital signs, Procedures and Advance
directives when the record holds any. Entries are newest first. Where an English
display is known (ICD-10-CM table of the MHB mapper) it is shown, and the original
(e.g. Chinese) display is kept beside it in the R4 ``translation`` extension.
The Bundle and the Composition are validated before they are returned.

Route: fhir_server/api/operations/summary.py (access, consent and break-glass there).
"""

from __future__ import annotations

import copy
import html
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from consent.provisions import clinical_time
from fhir_server import ids
from fhir_server.operations.definition import operation_definition, param
from fhir_server.storage import queries
from fhir_server.validation import validate_resource
from mhb_import.codes import TRANSLATION_EXT
from mhb_import.icd10cm import english_title

LOINC = "http://loinc.org"
EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
INACTIVE = {"entered-in-error", "cancelled", "not-taken"}

# (key, LOINC code, title, required, resource types)
SECTIONS = (
    ("problems", "11450-4", "Problem list", True, ("Condition",)),
    ("allergies", "48765-2", "Allergies and intolerances", True, ("AllergyIntolerance",)),
    (
        "medications",
        "10160-0",
        "Medication summary",
        True,
        ("MedicationStatement", "MedicationRequest"),
    ),
    ("immunizations", "11369-6", "Immunizations", False, ("Immunization",)),
    ("results", "30954-2", "Results", False, ("Observation", "DiagnosticReport")),
    ("vitals", "8716-3", "Vital signs", False, ()),
    ("procedures", "47519-4", "History of procedures", False, ("Procedure",)),
    ("directives", "42348-3", "Advance directives", False, ("Consent",)),
)
SECTION_TYPES = {t for *_, types in SECTIONS for t in types}
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
    patient = store.read("Patient", patient_id)  # 404 / 410 first
    found = _load(store, patient_id)
    if visible is not None:
        found = visible(found)
    grouped = _group(found)
    now = now or datetime.now(UTC)
    composition = _composition(patient_id, grouped, base_url, now)
    members = [patient, *[r for _, items in grouped for r in items]]
    members += _referenced_medications(store, members)
    bundle = {
        "resourceType": "Bundle",
        "id": ids.new_id(),
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": "document",
        "timestamp": _instant(now),
        "entry": [_entry(composition, base_url)]
        + [_entry(_with_english(r), base_url) for r in members],
    }
    validate_resource(composition)
    validate_resource(bundle)
    return bundle


def _load(store, patient_id: str) -> list[dict]:
    pks = queries.compartment_pks(store, patient_id, SECTION_TYPES)
    return store.load_in_compartment(pks, patient_id, damaged=[])


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


def _composition(patient_id: str, grouped, base_url: str, now: datetime) -> dict:
    sections = []
    meta = {key: (code, title, required) for key, code, title, required, _ in SECTIONS}
    for key, items in grouped:
        code, title, required = meta[key]
        if not items and not required:
            continue
        section: dict = {
            "title": title,
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "text": _narrative(items),
        }
        if items:
            section["entry"] = [{"reference": f"{r['resourceType']}/{r['id']}"} for r in items]
        else:
            section["emptyReason"] = {
                "coding": [
                    {"system": EMPTY_REASON, "code": "unavailable", "display": "Unavailable"}
                ]
            }
        sections.append(section)
    return {
        "resourceType": "Composition",
        "id": ids.new_id(),
        "status": "final",
        "type": {
            "coding": [{"system": LOINC, "code": "60591-5", "display": "Patient summary Document"}]
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "date": _instant(now),
        "author": [{"display": f"PHRX node {base_url}"}],
        "title": "International Patient Summary",
        "confidentiality": "N",
        "section": sections,
    }


def _narrative(items: list[dict]) -> dict:
    if not items:
        body = "<p>No information available.</p>"
    else:
        rows = "".join(f"<li>{html.escape(_label(r))}</li>" for r in items)
        body = f"<ul>{rows}</ul>"
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'}


def _label(resource: dict) -> str:
    concept = (
        resource.get("code")
        or resource.get("vaccineCode")
        or resource.get("medicationCodeableConcept")
        or {}
    )
    coding = (concept.get("coding") or [{}])[0]
    text = _english(coding) or coding.get("display") or concept.get("text") or coding.get("code")
    when = clinical_time(resource)
    date = when[0].date().isoformat() if when and when[0].year > 1 else ""
    return " ".join(p for p in (date, text or resource["resourceType"]) if p)


def _english(coding: dict) -> str | None:
    if "icd-10-cm" not in (coding.get("system") or ""):
        return None
    return english_title(coding.get("code") or "")


def _with_english(resource: dict) -> dict:
    """A copy whose ICD-10-CM codings show the English display, the original beside it."""
    out = copy.deepcopy(resource)
    stack: list = [out]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            english = _english(item) if "code" in item and "system" in item else None
            original = item.get("display")
            translate = original and not original.isascii() and "_display" not in item
            if english and translate and original != english:
                item["display"] = english
                item["_display"] = {
                    "extension": [
                        {
                            "url": TRANSLATION_EXT,
                            "extension": [
                                {"url": "lang", "valueCode": "zh-TW"},
                                {"url": "content", "valueString": original},
                            ],
                        }
                    ]
                }
            elif english and not original:
                item["display"] = english
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(item)
    return out


def _referenced_medications(store, members: list[dict]) -> list[dict]:
    wanted = []
    for resource in members:
        ref = (resource.get("medicationReference") or {}).get("reference") or ""
        if ref.startswith("Medication/") and ref not in wanted:
            wanted.append(ref)
    found = []
    for ref in wanted:
        medication = store.read_if_readable("Medication", ref.split("/", 1)[1], damaged=[])
        if medication is not None:
            found.append(medication)
    return found


def _entry(resource: dict, base_url: str) -> dict:
    return {
        "fullUrl": f"{base_url}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
    }


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
