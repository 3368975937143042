"""Issue 6, the scenario of ../shared/scenario.md on one node (SQLite and PostgreSQL).

patient shares with doctor A -> A reads, B is refused -> A's search returns only the
permitted types -> sensitive-labelled record hidden -> revoke -> A refused ->
break-glass read of $summary by C audited -> erase -> nothing decryptable.
Every actor holds a real token (login + PKCE through tests/smart_tokens.py, or
SMART Backend Services for the node's own import); each step asserts the
AuditEvents it wrote.
"""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from fhir_server.search.runner import run_search
from fhir_server.storage.audit_log import verify_log
from fhir_server.storage.db import compartments, resources, versions
from fhir_server.storage.keystore import SqlDataKeyStore
from tests.smart_tokens import patient_token, user_token
from vault.errors import KeyDestroyed
from vault.keyring import KeyRing
from vault.masterkey import master_key_from_config

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
JSON = {"Content-Type": "application/fhir+json"}
# Table 1 of the study: the patient's outpatient diagnoses and medications.
VISITS = [
    ("dm", "2017-10-10", "E11.9", "Type 2 diabetes mellitus", 'Iunaidon Tablets "Yu Sheng"'),
    ("ep", "2017-07-16", "G40.909", "Epilepsy", "Neurtrol F.C. Tablets 300 mg"),
    ("st1", "2017-05-25", "I63.9", "Brain stem stroke", "Cofarin Tab 1 mg"),
    ("st2", "2017-05-20", "I63.9", "Brain stem stroke", "Cofarin Tab 1 mg"),
    ("pu", "2017-01-20", "R80.9", "Proteinuria, not otherwise specified", "Kaluril Tablets 5 mg"),
]


def condition(rid: str, date: str, code: str, text: str) -> dict:
    return {
        "resourceType": "Condition",
        "id": rid,
        "subject": {"reference": "Patient/p1"},
        "recordedDate": date,
        "code": {"coding": [{"system": ICD10, "code": code, "display": text}]},
    }


def medication(rid: str, date: str, text: str) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": f"rx-{rid}",
        "status": "completed",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": date,
        "medicationCodeableConcept": {"text": text},
    }


class Log:
    """The node's audit log, step by step: ``new()`` = events written since the last call."""

    def __init__(self, node):
        self.node, self.seen = node, set()

    def all(self) -> list[dict]:
        return run_search(self.node.store, "AuditEvent", [("_count", "1000")]).matches

    def new(self) -> list[dict]:
        """Access events only: the token-issue events of the fixture are not steps."""
        fresh = [e for e in self.all() if e["id"] not in self.seen]
        self.seen |= {e["id"] for e in fresh}
        fresh = [e for e in fresh if not codes(e) & {"token-issue", "token-revoke"}]
        return sorted(fresh, key=_sequence)


def _sequence(event: dict) -> int:
    from consent.audit_chain import link_of

    return link_of(event)[0]


def codes(event: dict) -> set[str]:
    return {s["code"] for s in event["subtype"]}


def who(event: dict) -> str | None:
    return next((a["who"].get("reference") for a in event["agent"] if a.get("requestor")), None)


def patients(event: dict) -> set[str]:
    return {
        e["what"]["reference"]
        for e in event.get("entity", [])
        if e.get("what", {}).get("reference", "").startswith("Patient/")
        and e["type"]["code"] == "1"
    }


def one(events: list[dict]) -> dict:
    assert len(events) == 1, [(codes(e), e.get("outcomeDesc")) for e in events]
    return events[0]


def entry_types(bundle: dict) -> set[str]:
    return {e["resource"]["resourceType"] for e in bundle.get("entry", [])}


@pytest.fixture
def world(app, node, client, client_for):
    """p1's record, imported by the node's backend service; tokens for everyone."""
    for pid in ("p1", "p2"):
        assert client.put(f"/fhir/Patient/{pid}", json={"resourceType": "Patient", "id": pid})
    for rid, date, code, text, drug in VISITS:
        assert client.put(f"/fhir/Condition/{rid}", json=condition(rid, date, code, text))
        assert client.put(f"/fhir/MedicationRequest/rx-{rid}", json=medication(rid, date, drug))
    psy = condition("psy", "2016-03-01", "F32.9", "Depressive episode")  # inferred label PSY
    assert client.put("/fhir/Condition/psy", json=psy).status_code == 201
    obs = {
        "resourceType": "Observation",
        "id": "bp",
        "status": "final",
        "code": {"text": "blood pressure"},
        "subject": {"reference": "Patient/p1"},
    }
    assert client.put("/fhir/Observation/bp", json=obs).status_code == 201

    def doctor(name: str):
        token = user_token(
            app, "user/*.cruds", f"dr-{name}", "practitioner", f"Practitioner/{name}"
        )
        return client_for(token)

    class World:
        backend = client
        patient = client_for(patient_token(app, "p1"))
        other_patient = client_for(patient_token(app, "p2"))
        a, b, c = doctor("dA"), doctor("dB"), doctor("dC")

    World.node, World.log = node, Log(node)
    return World


def test_consent_scenario(world):  # one story, told step by step
    w, log = world, world.log
    imported = log.new()  # the node's own import: create events, no disclosure
    assert {tuple(codes(e)) for e in imported} == {("update",)}  # PUT: update-as-create
    assert all(patients(e) <= {"Patient/p1", "Patient/p2"} for e in imported)
    assert not any("disclosure" in codes(e) for e in imported)

    # 1. The patient shares Patient, Condition, MedicationRequest with doctor A.
    share = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "recipient", "valueReference": {"reference": "Practitioner/dA"}},
            {"name": "class", "valueCode": "Patient"},
            {"name": "class", "valueCode": "Condition"},
            {"name": "class", "valueCode": "MedicationRequest"},
        ],
    }
    shared = w.patient.post("/fhir/Patient/p1/$share", json=share, headers=JSON)
    assert shared.status_code == 201, shared.json
    params = {p["name"]: p for p in shared.json["parameter"]}
    consent, share_id = params["consent"]["resource"], params["share"]["valueString"]
    created = one(log.new())
    assert codes(created) == {"create"} and who(created) == "Patient/p1"
    assert f"Consent/{consent['id']}" in {e["what"].get("reference") for e in created["entity"]}
    # ... and carves out sensitive records: a nested deny on the PSY label.
    psy_deny = {
        "type": "deny",
        "securityLabel": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}
        ],
    }
    consent["provision"]["provision"] = [psy_deny]
    edited = w.patient.put(f"/fhir/Consent/{consent['id']}", json=consent)
    assert edited.status_code == 200, edited.json
    update = one(log.new())
    assert codes(update) == {"update"} and patients(update) == {"Patient/p1"}

    # 2. A reads; B is refused (as if the record did not exist; $everything: 403).
    assert w.a.get("/fhir/Condition/dm").status_code == 200
    read = one(log.new())
    assert codes(read) == {"read", "disclosure"} and who(read) == "Practitioner/dA"
    assert read["outcome"] == "0" and patients(read) == {"Patient/p1"}
    refused = w.b.get("/fhir/Condition/dm")
    assert refused.status_code == 404
    assert refused.json["issue"][0]["diagnostics"] == "Condition/dm is not known."
    denial = one(log.new())
    assert denial["outcome"] == "4" and who(denial) == "Practitioner/dB"
    assert patients(denial) == {"Patient/p1"} and "withheld by consent" in denial["outcomeDesc"]
    assert w.b.get("/fhir/Patient/p1/$everything").status_code == 404  # as if unknown
    denial = one(log.new())
    assert denial["outcome"] == "4" and "withheld by consent" in denial["outcomeDesc"]
    assert patients(denial) == {"Patient/p1"} and who(denial) == "Practitioner/dB"

    # 3. A's search returns only the permitted types (and no count of the rest).
    everything = w.a.get("/fhir/Patient/p1/$everything").json
    assert entry_types(everything) == {"Patient", "Condition", "MedicationRequest"}
    query = one(log.new())
    assert codes(query) == {"operation", "disclosure"} and patients(query) == {"Patient/p1"}
    assert "withheld by consent" in query["outcomeDesc"]  # the Observation, the PSY record
    observations = w.a.get("/fhir/Observation?patient=p1")  # a type outside the share
    assert observations.status_code == 403
    refusal = one(log.new())
    assert refusal["outcome"] == "4" and patients(refusal) == {"Patient/p1"}
    unnamed = w.a.get("/fhir/Observation").json  # across patients: counts only what it may read
    assert "entry" not in unnamed and unnamed["total"] == 0
    assert one(log.new())["outcome"] == "4"

    # 4. The sensitive-labelled record is hidden from A's search and read.
    conditions = w.a.get("/fhir/Condition?patient=p1").json
    found = {e["resource"]["id"] for e in conditions["entry"]}
    assert found == {"dm", "ep", "st1", "st2", "pu"} and conditions["total"] == len(found)
    query = one(log.new())
    assert codes(query) == {"search-type", "disclosure"} and query["outcome"] == "0"
    assert query["outcomeDesc"] == "1 resource(s) withheld by consent"
    assert w.a.get("/fhir/Condition/psy").status_code == 404
    assert one(log.new())["outcome"] == "4"
    # the patient sees it all, and their reads are not disclosures
    mine = w.patient.get("/fhir/Condition?patient=p1").json
    assert len(mine["entry"]) == 6 and mine["total"] == 6
    assert codes(one(log.new())) == {"search-type"}

    # 5. Revoke: A's next request is refused.
    revoke = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "revoke", "valueBoolean": True},
            {"name": "share", "valueString": share_id},
        ],
    }
    assert w.patient.post("/fhir/Patient/p1/$share", json=revoke, headers=JSON).status_code == 200
    assert codes(one(log.new())) == {"update"}
    assert w.a.get("/fhir/Condition/dm").status_code == 404
    assert one(log.new())["outcome"] == "4"
    assert w.a.get("/fhir/Patient/p1/$everything").status_code == 404
    assert who(one(log.new())) == "Practitioner/dA"

    # 6. Break-glass: the patient's policy opens the emergency summary to any
    #    clinician for ETREAT; C uses it with a justification, and it is audited.
    policy = {
        "resourceType": "Consent",
        "status": "active",
        "scope": consent["scope"],
        "category": consent["category"],
        "patient": {"reference": "Patient/p1"},
        "dateTime": "2026-01-01",
        "policyRule": consent["policyRule"],
        "provision": {
            "type": "permit",
            "period": {"start": "2020-01-01", "end": "2099-12-31"},
            "purpose": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "ETREAT"}
            ],
        },
    }
    assert w.patient.post("/fhir/Consent", json=policy).status_code == 201, "break-glass policy"
    assert codes(one(log.new())) == {"create"}
    assert w.c.get("/fhir/Patient/p1/$everything").status_code == 404  # only the summary
    assert one(log.new())["outcome"] == "4"
    url = "/fhir/Patient/p1/$summary"
    emergency = {"purpose": "ETREAT", "justification": "unconscious at the ER"}
    summary = w.c.get(url, query_string=emergency)
    assert summary.status_code == 200, summary.json
    assert summary.json["type"] == "document"
    glass, read = log.new()
    assert codes(glass) == {"break-glass"} and glass["outcome"] == "0"
    assert who(glass) == "Practitioner/dC" and patients(glass) == {"Patient/p1"}
    detail = next(e for e in glass["entity"] if e.get("detail"))["detail"][0]
    assert detail["valueString"] == "unconscious at the ER"
    assert codes(read) == {"read"} and who(read) == "Practitioner/dC"

    # The patient's access log: who read and wrote what, over HTTP with their token.
    own_log = w.patient.get("/fhir/AuditEvent?patient=p1&_count=1000").json
    seen = {(who(e["resource"]), tuple(sorted(codes(e["resource"])))) for e in own_log["entry"]}
    assert ("Practitioner/dA", ("disclosure", "read")) in seen
    assert ("Practitioner/dB", ("read",)) in seen  # B's refusal
    assert ("Practitioner/dC", ("break-glass",)) in seen
    assert log.new() == []  # reading one's own log does not grow it
    # ... nobody else's: another patient, or a doctor, sees none of it.
    assert w.other_patient.get("/fhir/AuditEvent?patient=p1").status_code in (200, 403)
    theirs = w.other_patient.get("/fhir/AuditEvent").json
    assert not any("Patient/p1" in patients(e["resource"]) for e in theirs.get("entry", []))
    log.new()
    doctors_view = w.c.get("/fhir/AuditEvent?patient=p1").json
    assert "entry" not in doctors_view
    log.new()

    # The log is one unbroken hash chain up to its head.
    report = verify_log(w.node.store, log.all())
    assert report.ok, report.problems

    # 7. Erase: crypto-shredding, audited in the patient's own log.
    erased = w.patient.post("/fhir/Patient/p1/$erase")
    assert erased.status_code == 200, erased.json
    erasure = one(log.new())
    assert codes(erasure) == {"erase"} and patients(erasure) == {"Patient/p1"}
    assert w.patient.get("/fhir/Patient/p1").status_code in (404, 410)
    scope = KeyRing.patient_scope("p1")
    with w.node.engine.connect() as conn:
        sealed = conn.execute(
            select(versions.c.res_type, versions.c.key_scope).where(versions.c.sealed.is_not(None))
        ).all()
    shredded = {kind for kind, key_scope in sealed if key_scope == scope}
    assert shredded >= {"Patient", "Condition", "Consent"}
    # The access log is the node's record: sealed under the node key, not the patient's.
    assert "AuditEvent" not in shredded
    assert {key_scope for kind, key_scope in sealed if kind == "AuditEvent"} == {"node"}
    master = master_key_from_config(w.node.config.data_dir / "keys" / "master.key").load()
    with pytest.raises(KeyDestroyed):  # not even the node master key opens them
        KeyRing(master, SqlDataKeyStore(w.node.engine)).data_key(scope, create=False)

    # After the erasure the chain still verifies and the operator still reads who
    # accessed p1's record (the events name records by reference only).
    report = verify_log(w.node.store, log.all())
    assert report.ok, report.problems
    access_log = w.backend.get("/fhir/AuditEvent?patient=p1&_count=500")
    assert access_log.status_code == 200, access_log.json
    readers = {who(e["resource"]) for e in access_log.json["entry"]}
    assert {"Practitioner/dA", "Practitioner/dC", "Patient/p1"} <= readers


def test_a_deleted_audit_event_is_detected(world):
    """An operator deleting one AuditEvent row straight from the database is caught."""
    w = world
    assert w.patient.get("/fhir/Condition/dm").status_code == 200
    assert w.b.get("/fhir/Condition/dm").status_code == 404
    assert w.patient.get("/fhir/Condition/ep").status_code == 200  # B's is not the last
    events = w.log.all()
    assert verify_log(w.node.store, events).ok
    victim = next(e for e in events if who(e) == "Practitioner/dB")
    with w.node.engine.begin() as conn:
        pks = [
            r[0]
            for r in conn.execute(
                select(resources.c.pk).where(
                    resources.c.res_type == "AuditEvent", resources.c.res_id == victim["id"]
                )
            )
        ]
        conn.execute(delete(compartments).where(compartments.c.resource_pk.in_(pks)))
        conn.execute(
            delete(versions).where(
                versions.c.res_type == "AuditEvent", versions.c.res_id == victim["id"]
            )
        )
        conn.execute(delete(resources).where(resources.c.pk.in_(pks)))
    remaining = w.log.all()
    assert len(remaining) == len(events) - 1
    report = verify_log(w.node.store, remaining)
    assert not report.ok
    assert any(p.startswith("deleted:") for p in report.problems), report.problems


def test_foreign_gateway_tokens_do_not_bypass_consent(world, app, cx):
    """A foreign node's gateway (client ``node.PH``) with system scopes is no local
    backend: without the clinician's identifiers it is refused, with them it is
    decided like that practitioner."""
    gateway = cx.bearer(app, scope="system/*.rs", client="node.PH")
    assert world.backend.get("/fhir/Condition/dm", headers=gateway).status_code == 404
    ph_doctor = {"actor_identifiers": [["urn:ph:prc", "12345"]], "actor_country": "PH"}
    acting = cx.bearer(
        app, username="ph-gateway", scope="system/*.rs", client="node.PH", context=ph_doctor
    )
    assert world.backend.get("/fhir/Condition/dm", headers=acting).status_code == 404
    share = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "recipient",
                "valueIdentifier": {"system": "urn:ph:prc", "value": "12345"},
            },
            {"name": "recipientNode", "valueCode": "PH"},
        ],
    }
    shared = world.patient.post("/fhir/Patient/p1/$share", json=share, headers=JSON)
    assert shared.status_code == 201, shared.json
    assert world.backend.get("/fhir/Condition/dm", headers=acting).status_code == 200
    assert world.backend.get("/fhir/Condition/dm", headers=gateway).status_code == 404
    # the node's own backend service still reads as the node itself
    assert world.backend.get("/fhir/Condition/dm").status_code == 200
