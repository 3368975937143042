"""Patient/$summary: IPS document structure, emptyReason, order, English displays.

The document's stand-alone properties (references, profiles, narrative, access) are in
test_summary_ips.py."""

from __future__ import annotations

import pytest

from fhir_server.errors import Forbidden, Gone, NotFound
from fhir_server.operations.summary import build_summary
from mhb_import.codes import ICD10CM_TW, TRANSLATION_EXT

BASE = "http://localhost/fhir"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
IPS = "http://hl7.org/fhir/uv/ips/StructureDefinition/"


def condition(rid, code, display, when):
    return {
        "resourceType": "Condition",
        "id": rid,
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": ICD10CM_TW, "code": code, "display": display}]},
        "recordedDate": when,
    }


@pytest.fixture
def record(node, cx):
    put = cx.put
    put(node, {"resourceType": "Patient", "id": "p1", "name": [{"family": "Lin"}]})
    put(node, condition("stroke", "G46.3", "腦幹中風症候群", "2017-05-25"))
    put(node, condition("dm", "E11.9", "第二型糖尿病", "2017-10-10"))
    put(node, condition("epi", "G40.909", "癲癇", "2017-07-16"))
    put(
        node,
        {
            "resourceType": "MedicationRequest",
            "id": "mr1",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {"text": "Cofarin Tab 1 mg"},
            "authoredOn": "2017-05-25",
        },
    )
    put(
        node,
        {
            "resourceType": "Immunization",
            "id": "imm1",
            "status": "completed",
            "patient": {"reference": "Patient/p1"},
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "88"}]},
            "occurrenceDateTime": "2020-10-01",
        },
    )
    put(
        node,
        {
            "resourceType": "Observation",
            "id": "hba1c",
            "status": "final",
            "category": [{"coding": [{"system": CATEGORY, "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2017-10-10",
            "valueQuantity": {"value": 7.1, "unit": "%"},
        },
    )
    adr = cx.privacy_consent(cid="adr1", actors=(), period=None)
    adr["scope"]["coding"][0]["code"] = "adr"
    put(node, adr)
    put(node, cx.privacy_consent(cid="share1"))  # an access policy, not a directive
    return node


def sections(bundle):
    composition = bundle["entry"][0]["resource"]
    return {s["code"]["coding"][0]["code"]: s for s in composition["section"]}


def test_document_bundle_with_ips_composition(record):
    bundle = build_summary(record.store, "p1", BASE)
    assert bundle["type"] == "document" and bundle["identifier"]["value"].startswith("urn:uuid:")
    assert bundle["meta"]["profile"] == [IPS + "Bundle-uv-ips"] and bundle["timestamp"]
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert composition["meta"]["profile"] == [IPS + "Composition-uv-ips"]
    assert composition["type"]["coding"][0]["code"] == "60591-5"
    assert composition["subject"] == {"reference": "Patient/p1"}
    assert composition["status"] == "final" and composition["confidentiality"] == "N"
    assert composition["date"] == bundle["timestamp"] and composition["title"]
    assert bundle["entry"][1]["resource"]["resourceType"] == "Patient"
    # the author is the node itself, a Device entry of the document
    author = composition["author"][0]["reference"]
    device = next(e["resource"] for e in bundle["entry"] if e["fullUrl"] == f"{BASE}/{author}")
    assert device["resourceType"] == "Device" and device["deviceName"][0]["name"].endswith(BASE)
    found = sections(bundle)
    # required sections always; optional ones only when present (no procedures here)
    assert set(found) == {"11450-4", "48765-2", "10160-0", "11369-6", "30954-2", "42348-3"}
    urls = {e["fullUrl"] for e in bundle["entry"]}
    for section in found.values():
        for entry in section.get("entry", []):
            assert f"{BASE}/{entry['reference']}" in urls


def test_empty_required_section_has_empty_reason(record):
    allergies = sections(build_summary(record.store, "p1", BASE))["48765-2"]
    assert "entry" not in allergies
    assert allergies["emptyReason"]["coding"][0]["code"] == "unavailable"
    assert "No information" in allergies["text"]["div"]
    assert allergies["text"]["status"] == "generated"


def test_problems_newest_first_and_directives_only_adr(record):
    found = sections(build_summary(record.store, "p1", BASE))
    problems = [e["reference"] for e in found["11450-4"]["entry"]]
    assert problems == ["Condition/dm", "Condition/epi", "Condition/stroke"]
    assert [e["reference"] for e in found["42348-3"]["entry"]] == ["Consent/adr1"]


def test_english_display_beside_the_original(record):
    bundle = build_summary(record.store, "p1", BASE)
    dm = next(e["resource"] for e in bundle["entry"] if e["resource"].get("id") == "dm")
    coding = dm["code"]["coding"][0]
    assert coding["display"] == "Type 2 diabetes mellitus without complications"
    translation = coding["_display"]["extension"][0]
    assert translation["url"] == TRANSLATION_EXT
    assert {"url": "content", "valueString": "第二型糖尿病"} in translation["extension"]
    assert "Type 2 diabetes" in sections(bundle)["11450-4"]["text"]["div"]


def test_resolved_problems_are_past_illnesses(node, cx):
    cx.put(node, {"resourceType": "Patient", "id": "p1"})
    old = condition("flu", "J11.1", "流行性感冒", "2015-01-10")
    old["clinicalStatus"] = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "resolved",
            }
        ]
    }
    cx.put(node, old)
    found = sections(build_summary(node.store, "p1", BASE))
    assert "emptyReason" in found["11450-4"]
    assert [e["reference"] for e in found["11348-0"]["entry"]] == ["Condition/flu"]


def only_patients(found):
    return [r for r in found if r["resourceType"] == "Patient"]


def test_visible_filter_and_empty_record(node, cx):
    cx.put(node, {"resourceType": "Patient", "id": "p1"})
    cx.put(node, condition("dm", "E11.9", "第二型糖尿病", "2017-10-10"))
    bundle = build_summary(node.store, "p1", BASE, visible=only_patients)
    found = sections(bundle)
    assert set(found) == {"11450-4", "48765-2", "10160-0"}
    assert all("emptyReason" in s for s in found.values())
    assert "Condition" not in {e["resource"]["resourceType"] for e in bundle["entry"]}


def test_no_summary_without_the_patient(node, cx):
    cx.put(node, {"resourceType": "Patient", "id": "p1"})
    with pytest.raises(Forbidden):
        build_summary(node.store, "p1", BASE, visible=lambda found: [])


def test_unknown_patient(node):
    with pytest.raises(NotFound):
        build_summary(node.store, "nobody", BASE)


def test_erased_patient_is_gone(sqlite_node, cx):
    from fhir_server.operations.erase import erase_patient

    cx.put(sqlite_node, {"resourceType": "Patient", "id": "p1"})
    erase_patient(sqlite_node.store, "p1")
    with pytest.raises(Gone):
        build_summary(sqlite_node.store, "p1", BASE)
