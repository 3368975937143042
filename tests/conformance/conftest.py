"""Fixtures of the conformance tests: the HL7 FHIR validator, once per session, and a
node that has served a bit of everything (issue #15).

``fhir_validator`` starts the Java validator built by ``make validator``
(tools/fetch-validator.sh) once per session and skips, saying why, where it is not
built; at the end of the session it writes what it found to
``.validator/last-run.json``. ``world`` is one node (SQLite, in-process EVM chain)
whose Flask test clients drove a story through the REST API: Patients, the MHB
import of the test fixture, a $share, a Consent, a second version, a deletion, a
practitioner's disclosure, refused requests, a break-glass $summary and an anchored
batch. The tests read what the node serves and validate those bodies.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conformance.validator import OUT, ValidatorProcess, unavailable
from tests.smart_tokens import authorize, backend_token, patient_token, user_token

MHB_FIXTURE = Path(__file__).resolve().parents[1] / "mhb_import" / "fixtures"
JSON = {"Content-Type": "application/fhir+json"}


_EARLY: dict = {}  # the validator launched once the session's tests are collected


def pytest_collection_finish(session):
    """Launch the JVM as soon as the conformance tests are known to run: it loads
    its packages on the other core while the tests before them run."""
    wanted = any("tests/conformance/" in item.nodeid for item in session.items)
    if wanted and not unavailable():
        log = Path(session.config._tmp_path_factory.mktemp("validator")) / "validator.log"
        _EARLY["process"] = ValidatorProcess.launch(log)


def pytest_sessionfinish(session, exitstatus):
    unused = _EARLY.pop("process", None)  # launched, then never asked for (e.g. -x)
    if unused is not None:
        unused.proc.kill()
        unused.proc.wait()


@pytest.fixture(scope="session")
def fhir_validator(tmp_path_factory):
    why = unavailable()
    if why and os.environ.get("CI"):
        # CI runs `make test`, which builds it: its absence there is a failure to see.
        pytest.fail(f"HL7 FHIR validator not available in CI: {why}")
    if why:
        pytest.skip(f"HL7 FHIR validator not available: {why}")
    early = _EARLY.pop("process", None)
    if early is not None:
        process = early.wait_ready()
    else:
        process = ValidatorProcess.start(tmp_path_factory.mktemp("validator") / "validator.log")
    yield process
    process.close()
    report = {
        "startSeconds": round(process.start_s, 1),
        "ready": process.ready,
        "validated": len(process.results),
        "validationMs": round(sum(r.ms for r in process.results)),
        "results": [
            {"what": r.what, "profile": r.profile, "issues": r.issues}
            for r in process.results
            if r.issues
        ],
    }
    (OUT / "last-run.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))


def _ok(response, *statuses: int):
    assert response.status_code in (statuses or (200,)), response.get_data(as_text=True)
    return response


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    from fhir_server.app import create_app
    from fhir_server.node import Node, NodeConfig

    node = Node(
        NodeConfig(
            data_dir=tmp_path_factory.mktemp("conformance") / "data",
            chain="memory",
            anchor_worker=False,  # anchored explicitly with $anchor
            anchor_country="TW",
        )
    )
    app = create_app({"NODE": node, "TESTING": True})

    def client(token: str | None = None):
        test_client = app.test_client()
        return authorize(test_client, token) if token else test_client

    backend = client(backend_token(app))
    for pid, family in (("p1", "Lin"), ("p2", "Wang")):
        patient = {"resourceType": "Patient", "id": pid, "name": [{"family": family}]}
        _ok(backend.put(f"/fhir/Patient/{pid}", json=patient, headers=JSON), 200, 201)
    imported = _ok(
        backend.post(
            "/fhir/Patient/p1/$import-mhb",
            data=(MHB_FIXTURE / "scenario_patient.json").read_bytes(),
            content_type="application/octet-stream",
        )
    )
    patient = client(patient_token(app, "p1"))
    doctor_a = client(user_token(app, "user/*.cruds", "dr-a", "practitioner", "Practitioner/dA"))
    doctor_b = client(user_token(app, "user/*.cruds", "dr-b", "practitioner", "Practitioner/dB"))
    doctor_c = client(user_token(app, "user/*.cruds", "dr-c", "practitioner", "Practitioner/dC"))
    share = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "recipient", "valueReference": {"reference": "Practitioner/dA"}},
            {"name": "class", "valueCode": "Patient"},
            {"name": "class", "valueCode": "Condition"},
        ],
    }
    shared = _ok(patient.post("/fhir/Patient/p1/$share", json=share, headers=JSON), 201)
    emergency_policy = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p1"},
        "dateTime": "2026-01-01",
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
        "provision": {
            "type": "permit",
            "period": {"start": "2020-01-01", "end": "2099-12-31"},
            "purpose": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "ETREAT"}
            ],
        },
    }
    policy = _ok(patient.post("/fhir/Consent", json=emergency_policy, headers=JSON), 201)
    condition = _ok(doctor_a.get("/fhir/Condition?patient=p1")).json["entry"][0]["resource"]
    _ok(doctor_a.get(f"/fhir/Condition/{condition['id']}"))  # a disclosure
    _ok(doctor_b.get(f"/fhir/Condition/{condition['id']}"), 404)  # withheld by consent
    _ok(doctor_a.get("/fhir/Observation?patient=p1"), 403)  # a type outside the share
    emergency = {"purpose": "ETREAT", "justification": "unconscious at the ER"}
    _ok(doctor_c.get("/fhir/Patient/p1/$summary", query_string=emergency))  # break-glass
    # a second version, and a deletion, for the history Bundles
    observation = {
        "resourceType": "Observation",
        "id": "bp",
        "status": "preliminary",
        "code": {"text": "blood pressure"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-01-02",
        "performer": [{"reference": "Patient/p1"}],
        "valueString": "120/80 mmHg",
    }
    _ok(backend.put("/fhir/Observation/bp", json=observation, headers=JSON), 201)
    observation["status"] = "final"
    _ok(backend.put("/fhir/Observation/bp", json=observation, headers=JSON))
    gone = {**observation, "id": "gone"}
    _ok(backend.put("/fhir/Observation/gone", json=gone, headers=JSON), 201)
    _ok(backend.delete("/fhir/Observation/gone"), 200, 204)
    anchored = _ok(backend.post("/fhir/$anchor"))
    yield SimpleNamespace(
        node=node,
        app=app,
        client=client,
        backend=backend,
        patient=patient,
        doctor_a=doctor_a,
        imported=imported,
        shared=shared.json,
        policy=policy.json,
        anchored=anchored.json,
    )
    node.close()
