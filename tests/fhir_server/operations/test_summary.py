"""Patient/$summary: IPS document structure, emptyReason, order, English displays."""

from __future__ import annotations

import pytest

from fhir_server.errors import Gone, NotFound
from fhir_server.operations.summary import build_summary
from mhb_import.codes import ICD10CM_TW, TRANSLATION_EXT

BASE = "http://localhost/fhir"


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
            "category": [{"coding": [{"code": "laboratory"}]}],
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
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert composition["type"]["coding"][0]["code"] == "60591-5"
    assert composition["subject"] == {"reference": "Patient/p1"}
    assert bundle["entry"][1]["resource"]["resourceType"] == "Patient"
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


def test_visible_filter_and_empty_record(node, cx):
    cx.put(node, {"resourceType": "Patient", "id": "p1"})
    cx.put(node, condition("dm", "E11.9", "第二型糖尿病", "2017-10-10"))
    bundle = build_summary(node.store, "p1", BASE, visible=lambda found: [])
    found = sections(bundle)
    assert set(found) == {"11450-4", "48765-2", "10160-0"}
    assert all("emptyReason" in s for s in found.values())


def test_unknown_patient(node):
    with pytest.raises(NotFound):
        build_summary(node.store, "nobody", BASE)


def test_erased_patient_is_gone(sqlite_node, cx):
    from fhir_server.operations.erase import erase_patient

    cx.put(sqlite_node, {"resourceType": "Patient", "id": "p1"})
    erase_patient(sqlite_node.store, "p1")
    with pytest.raises(Gone):
        build_summary(sqlite_node.store, "p1", BASE)
