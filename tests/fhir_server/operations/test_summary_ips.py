"""Patient/$summary stands alone as an IPS 2.0.0 document (issue #15).

Every reference resolves to an entry by fullUrl, every entry declares the profile it
meets, the author is an entry, every narrative is well-formed XHTML, laboratory
results have a performer, and nothing comes in that the caller's gate did not release.
The official validator's verdict is in tests/conformance; these are the structural
properties, on the repo's own data, the MHB fixtures and (when ../shared is there)
Synthea patients.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fhir_server.operations.summary import build_summary

BASE = "http://localhost/fhir"
IPS = "http://hl7.org/fhir/uv/ips/StructureDefinition/"
CORE = "http://hl7.org/fhir/StructureDefinition/"
LAB = IPS + "Observation-results-laboratory-pathology-uv-ips"
DAR = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
XHTML = "{http://www.w3.org/1999/xhtml}"
JSON_TYPE = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
MHB = Path(__file__).resolve().parents[2] / "mhb_import" / "fixtures" / "quirks.json"
REQUIRED_SECTIONS = {"11450-4", "48765-2", "10160-0"}


# -- the properties ---------------------------------------------------------------------
def references(value):
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("reference"), str):
                yield item["reference"]
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(item)


def target(reference: str, full_url: str) -> str:
    """R4 bundle.html#references: a relative reference resolves against the RESTful
    base of the fullUrl of the entry that holds it."""
    if reference.startswith(("http://", "https://", "urn:")):
        return reference
    return full_url.rsplit("/", 2)[0] + "/" + reference


def well_formed(narrative: dict) -> ET.Element:
    assert narrative["status"] in ("generated", "extensions", "additional")
    root = ET.fromstring(narrative["div"])
    assert root.tag == XHTML + "div"
    assert not [e for e in root.iter() if e.tag in (XHTML + "script", XHTML + "iframe")]
    return root


def stands_alone(bundle: dict) -> dict[str, dict]:
    """Assert the document's stand-alone properties; its entries by fullUrl."""
    assert bundle["type"] == "document" and bundle["identifier"] and bundle["timestamp"]
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    assert len(by_url) == len(bundle["entry"])
    for url, resource in by_url.items():
        assert url == f"{BASE}/{resource['resourceType']}/{resource['id']}"
        assert resource["meta"]["profile"], url
        if "text" in resource:
            well_formed(resource["text"])
        for ref in references(resource):
            if not ref.startswith("#"):
                assert target(ref, url) in by_url, (url, ref)
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert [r["resourceType"] for r in by_url.values()].count("Composition") == 1
    well_formed(composition["text"])
    authors = [
        by_url[target(a["reference"], bundle["entry"][0]["fullUrl"])] for a in composition["author"]
    ]
    assert authors and all(a["resourceType"] in ("Device", "Organization") for a in authors)
    codes = set()
    for section in composition["section"]:
        code = section["code"]["coding"][0]["code"]
        codes.add(code)
        well_formed(section["text"])
        if code in REQUIRED_SECTIONS:
            assert section.get("entry") or section.get("emptyReason")
    assert codes >= REQUIRED_SECTIONS
    for url, resource in by_url.items():
        if LAB in resource["meta"]["profile"]:
            assert {"system": CATEGORY, "code": "laboratory"}.items() <= next(
                c
                for cat in resource["category"]
                for c in cat["coding"]
                if c["code"] == "laboratory"
            ).items()
            assert resource["performer"], url
            for performer in resource["performer"]:
                ref = performer.get("reference")
                assert (
                    (ref and target(ref, url) in by_url)
                    or _absent(performer)
                    or performer.get("display")
                )
    reached, todo = set(), [bundle["entry"][0]["fullUrl"]]
    while todo:  # no orphan: each entry is reached from the Composition
        url = todo.pop()
        if url not in reached:
            reached.add(url)
            todo += [target(r, url) for r in references(by_url[url]) if not r.startswith("#")]
    assert reached == set(by_url)
    return by_url


def _absent(element: dict) -> bool:
    return any(x.get("url") == DAR for x in element.get("extension") or [])


def entry(by_url: dict, res_type: str, res_id: str) -> dict | None:
    return by_url.get(f"{BASE}/{res_type}/{res_id}")


def sections(bundle: dict) -> dict:
    composition = bundle["entry"][0]["resource"]
    return {s["code"]["coding"][0]["code"]: s for s in composition["section"]}


# -- a record with supporting resources -------------------------------------------------
def lab(rid: str, **extra) -> dict:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}], "text": rid},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-01",
        "valueQuantity": {"value": 5.5, "unit": "mmol/L"},
        **extra,
    }


@pytest.fixture
def record(node, cx):
    put = lambda resource: cx.put(node, resource)  # noqa: E731
    put({"resourceType": "Patient", "id": "p1", "name": [{"family": "Lin", "given": ["Mei"]}]})
    put({"resourceType": "Patient", "id": "p2", "name": [{"family": "Wang"}]})
    put({"resourceType": "Practitioner", "id": "doc", "name": [{"family": "Chen"}]})
    put({"resourceType": "Practitioner", "id": "noname"})  # cannot be an IPS Practitioner
    put({"resourceType": "Organization", "id": "lab", "name": "Taipei Lab"})
    put(
        {
            "resourceType": "Encounter",
            "id": "enc1",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "Patient/p1"},
            "participant": [{"individual": {"reference": "Practitioner/doc"}}],
            "serviceProvider": {"reference": "Organization/lab"},
        }
    )
    put(
        lab(
            "glucose",
            performer=[{"reference": "Organization/lab"}],
            encounter={"reference": "Encounter/enc1"},
        )
    )
    put(lab("hb"))  # no performer recorded
    put(lab("k", performer=[{"reference": "Practitioner/noname", "display": "Dr. Nobody"}]))
    loose = lab("loose", category=[{"coding": [{"code": "laboratory"}]}])  # no system
    put(loose)
    # an Observation about p2, in p1's compartment only as its performer
    put(lab("theirs", subject={"reference": "Patient/p2"}, performer=[{"reference": "Patient/p1"}]))
    put(
        {
            "resourceType": "Condition",
            "id": "dm",
            "subject": {"reference": "Patient/p1"},
            "code": {"text": 'Diabetes <type 2> & "more"'},
            "encounter": {"reference": "Encounter/enc1"},
            "asserter": {"reference": "Practitioner/doc", "display": "Dr. Chen"},
            "recordedDate": "2020-01-01",
        }
    )
    put(
        {
            "resourceType": "Medication",
            "id": "met",
            "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "A10BA02"}]},
        }
    )
    put(
        {
            "resourceType": "MedicationRequest",
            "id": "mr1",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "medicationReference": {"reference": "Medication/met"},
            "requester": {"reference": "Practitioner/doc"},
            "reasonReference": [{"reference": "Condition/dm"}],
            "authoredOn": "2024-03-02",
        }
    )
    put(
        {
            "resourceType": "MedicationRequest",
            "id": "mr2",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "medicationReference": {"reference": "Medication/gone"},
            "authoredOn": "2024-03-03",
        }
    )
    put(
        {
            "resourceType": "MedicationStatement",
            "id": "ms1",
            "status": "active",
            "subject": {"reference": "Patient/p1"},
            "contained": [
                {"resourceType": "Medication", "id": "m", "code": {"text": "Aspirin 100 mg"}}
            ],
            "medicationReference": {"reference": "#m"},
        }
    )
    put(
        {
            "resourceType": "Immunization",
            "id": "imm1",
            "status": "completed",
            "patient": {"reference": "Patient/p1"},
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "88"}]},
            "occurrenceDateTime": "2023-10-01",
            "performer": [{"actor": {"reference": "Practitioner/ghost"}}],
        }
    )
    put(
        {
            "resourceType": "Procedure",
            "id": "proc1",
            "status": "completed",
            "subject": {"reference": "Patient/p1"},
            "code": {"text": "Appendectomy"},
            "reasonReference": [{"reference": "Condition/dm"}],
        }
    )
    return node


def test_the_document_stands_alone(record):
    bundle = build_summary(record.store, "p1", BASE)
    by_url = stands_alone(bundle)
    kinds = [r["resourceType"] for r in by_url.values()]
    assert "Encounter" not in kinds  # not part of an IPS: the references to it go
    assert entry(by_url, "Practitioner", "doc")["meta"]["profile"] == [IPS + "Practitioner-uv-ips"]
    assert entry(by_url, "Organization", "lab")["meta"]["profile"] == [IPS + "Organization-uv-ips"]
    assert entry(by_url, "Medication", "met")["meta"]["profile"] == [IPS + "Medication-uv-ips"]
    assert entry(by_url, "Practitioner", "noname") is None
    assert entry(by_url, "Observation", "theirs") is None  # about another patient
    assert entry(by_url, "Patient", "p2") is None
    # references that could not be included are dropped; their display stays
    assert "encounter" not in entry(by_url, "Condition", "dm")
    assert "encounter" not in entry(by_url, "Observation", "glucose")
    assert entry(by_url, "Observation", "k")["performer"] == [{"display": "Dr. Nobody"}]
    assert "performer" not in entry(by_url, "Immunization", "imm1")
    assert entry(by_url, "Procedure", "proc1")["reasonReference"] == [{"reference": "Condition/dm"}]


def test_each_entry_claims_the_profile_it_meets(record):
    by_url = stands_alone(build_summary(record.store, "p1", BASE))
    profile = lambda t, i: entry(by_url, t, i)["meta"]["profile"]  # noqa: E731
    assert profile("Patient", "p1") == [IPS + "Patient-uv-ips"]
    patient = entry(by_url, "Patient", "p1")
    assert _absent(patient["_birthDate"])  # IPS: populate if known
    assert profile("Observation", "glucose") == [LAB]
    assert entry(by_url, "Observation", "glucose")["performer"] == [
        {"reference": "Organization/lab"}
    ]
    hb = entry(by_url, "Observation", "hb")
    assert profile("Observation", "hb") == [LAB] and _absent(hb["performer"][0])
    assert profile("Observation", "loose") == [CORE + "Observation"]  # category without system
    assert profile("Condition", "dm") == [IPS + "Condition-uv-ips"]
    assert profile("MedicationRequest", "mr1") == [IPS + "MedicationRequest-uv-ips"]
    assert profile("Immunization", "imm1") == [IPS + "Immunization-uv-ips"]
    assert profile("Procedure", "proc1") == [IPS + "Procedure-uv-ips"]
    statement = entry(by_url, "MedicationStatement", "ms1")  # its Medication is contained
    assert profile("MedicationStatement", "ms1") == [IPS + "MedicationStatement-uv-ips"]
    assert statement["medicationReference"] == {"reference": "#m"}
    assert _absent(statement["_effectiveDateTime"])
    assert _absent(entry(by_url, "Procedure", "proc1")["_performedDateTime"])


def test_an_order_whose_medication_cannot_come_along_is_left_out_and_said(record):
    bundle = build_summary(record.store, "p1", BASE)
    medications = sections(bundle)["10160-0"]
    listed = [e["reference"] for e in medications["entry"]]
    assert listed == ["MedicationRequest/mr1", "MedicationStatement/ms1"]
    assert "1 medication entry not shown" in medications["text"]["div"]
    assert not any(e["resource"]["id"] == "mr2" for e in bundle["entry"])


def test_narratives_are_escaped_xhtml(record):
    bundle = build_summary(record.store, "p1", BASE)
    problems = well_formed(sections(bundle)["11450-4"]["text"])
    assert 'Diabetes <type 2> & "more"' in "".join(problems.itertext())
    condition = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == "dm")
    assert "Diabetes" in "".join(well_formed(condition["text"]).itertext())


def test_nothing_the_gate_withholds_is_pulled_in(record):
    """A Practitioner the caller may not read stays out, and so do the links to it."""
    seen = []

    def visible(found):
        seen.extend(found)
        return [r for r in found if r["resourceType"] != "Practitioner"]

    bundle = build_summary(record.store, "p1", BASE, visible=visible)
    by_url = stands_alone(bundle)
    assert entry(by_url, "Practitioner", "doc") is None
    assert entry(by_url, "Condition", "dm")["asserter"] == {"display": "Dr. Chen"}
    assert "requester" not in entry(by_url, "MedicationRequest", "mr1")
    # every stored resource of the document was put to the gate first
    generated = {bundle["entry"][0]["fullUrl"], bundle["entry"][-1]["fullUrl"]}
    asked = {f"{BASE}/{r['resourceType']}/{r['id']}" for r in seen}
    assert set(by_url) - generated <= asked


def test_over_http_each_caller_gets_what_its_gate_releases(app, record, cx):
    client = app.test_client()
    patient = cx.bearer(
        app,
        username="alice",
        fhir_user="Patient/p1",
        scope="patient/*.rs",
        context={"patient": "p1"},
    )
    response = client.get("/fhir/Patient/p1/$summary", headers=patient)
    assert response.status_code == 200, response.get_json()
    by_url = stands_alone(response.get_json())
    # a patient-confined token reads nothing outside the compartment
    kinds = {r["resourceType"] for r in by_url.values()}
    assert not kinds & {"Practitioner", "Organization", "Medication"}
    glucose = entry(by_url, "Observation", "glucose")
    assert _absent(glucose["performer"][0])  # its Organization is not released
    assert entry(by_url, "MedicationRequest", "mr1") is None  # nor its Medication

    cx.put(record, cx.privacy_consent(cid="share", period=("2020-01-01", "2099-12-31")))
    doctor = cx.bearer(app, username="drbob", fhir_user="Practitioner/d1", scope="user/*.rs")
    response = client.get("/fhir/Patient/p1/$summary", headers=doctor)
    assert response.status_code == 200, response.get_json()
    by_url = stands_alone(response.get_json())
    assert entry(by_url, "Practitioner", "doc") and entry(by_url, "Organization", "lab")
    assert entry(by_url, "MedicationRequest", "mr1")


def test_an_mhb_import_summary_stands_alone(app, node, cx):
    cx.put(node, {"resourceType": "Patient", "id": "p1", "name": [{"text": "林美華"}]})
    client = app.test_client()  # the node's own backend service
    imported = client.post(
        "/fhir/Patient/p1/$import-mhb",
        data=MHB.read_bytes(),
        headers={"Content-Type": "application/json"},
    )
    assert imported.status_code == 200, imported.get_json()
    response = client.get("/fhir/Patient/p1/$summary")
    by_url = stands_alone(response.get_json())
    labs = [r for r in by_url.values() if LAB in r["meta"]["profile"]]
    assert labs
    for observation in labs:  # the facility the MHB row names performed it
        performer = observation["performer"][0]["reference"]
        assert by_url[f"{BASE}/{performer}"]["resourceType"] == "Organization"


@pytest.mark.slow
def test_synthea_summaries_stand_alone(shared_dir, sqlite_node, make_app):
    files = sorted((shared_dir / "data" / "synthea-r4").glob("*.json"))[:3]
    if not files:
        pytest.skip(f"no Synthea bundles in {shared_dir / 'data' / 'synthea-r4'}")
    client = make_app(sqlite_node).test_client()
    for path in files:
        loaded = client.post("/fhir", data=path.read_bytes(), headers=JSON_TYPE)
        assert loaded.status_code == 200, path.name
        patient_id = next(
            e["response"]["location"].split("/")[1]
            for e in loaded.get_json()["entry"]
            if e["response"]["location"].startswith("Patient/")
        )
        bundle = client.get(f"/fhir/Patient/{patient_id}/$summary").get_json()
        by_url = stands_alone(bundle)
        kinds = [r["resourceType"] for r in by_url.values()]
        assert "Encounter" not in kinds and kinds.count("Observation") > 5, path.name
        source = json.loads(path.read_bytes())
        labs = [
            e["resource"]
            for e in source["entry"]
            if e["resource"]["resourceType"] == "Observation"
            and "laboratory" in json.dumps(e["resource"].get("category"))
        ]
        shown = [r for r in by_url.values() if LAB in r["meta"]["profile"]]
        assert len(shown) == len(labs), path.name  # every laboratory result, IPS-profiled
