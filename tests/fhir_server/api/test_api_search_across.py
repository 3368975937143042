"""Compartment search (``GET Patient/{id}/{type}``, ``Patient/{id}/*``) and system
search (``GET /fhir?...``), issue #15: both through the one gate.

Setting: patients p1 and p2 with Observations; p1 consented to practitioner d1,
p2 did not; a Practitioner outside every compartment."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


# Store-agnostic semantics run on SQLite; the tests marked BOTH_STORES run on
# PostgreSQL as well (the suite's 15-minute budget: the rest adds nothing there).
@pytest.fixture(params=["sqlite"])
def database_url(request):
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_url")


BOTH_STORES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


JSON = {"Accept": "application/fhir+json"}


def observation(res_id: str, patient: str) -> dict:
    return {
        "resourceType": "Observation",
        "id": res_id,
        "status": "final",
        "code": {"text": f"finding of {patient}"},
        "subject": {"reference": f"Patient/{patient}"},
    }


@pytest.fixture
def world(app, node, cx):
    everywhere = ("2000-01-01", "2099-12-31")
    for pid in ("p1", "p2"):
        cx.put(node, {"resourceType": "Patient", "id": pid, "name": [{"family": pid}]})
        for n in range(3):
            cx.put(node, observation(f"o-{pid}-{n}", pid))
    cx.put(
        node, {"resourceType": "Condition", "id": "c-p1", "subject": {"reference": "Patient/p1"}}
    )
    cx.put(node, {"resourceType": "Practitioner", "id": "d1", "name": [{"family": "Bob"}]})
    cx.put(node, cx.privacy_consent("p1", cid="consent-p1", period=everywhere))
    doctor = cx.bearer(app, username="drbob", fhir_user="Practitioner/d1", scope="user/*.rs")
    patient = cx.bearer(
        app,
        username="alice",
        fhir_user="Patient/p1",
        scope="patient/*.rs",
        context={"patient": "p1"},
    )
    system = cx.bearer(app, scope="system/*.rs")
    from flask.testing import FlaskClient

    return SimpleNamespace(
        client=app.test_client(),
        anonymous=FlaskClient(app, app.response_class),
        doctor={**doctor, **JSON},
        patient={**patient, **JSON},
        system={**system, **JSON},
    )


def ids_of(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def test_compartment_search_of_one_type(world):
    r = world.client.get("/fhir/Patient/p1/Observation", headers=world.system)
    assert r.status_code == 200, r.get_json()
    assert sorted(ids_of(r.json)) == ["o-p1-0", "o-p1-1", "o-p1-2"]
    assert r.json["total"] == 3
    assert r.json["link"][0]["url"].endswith("/fhir/Patient/p1/Observation")
    narrowed = world.client.get("/fhir/Patient/p1/Observation?_id=o-p1-1", headers=world.system)
    assert ids_of(narrowed.json) == ["o-p1-1"]
    other = world.client.get("/fhir/Patient/p1/Observation?_id=o-p2-1", headers=world.system)
    assert ids_of(other.json) == [] and other.json["total"] == 0


@BOTH_STORES
def test_compartment_search_pages(world):
    first = world.client.get("/fhir/Patient/p1/Observation?_count=2", headers=world.system).json
    nxt = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = world.client.get(nxt.removeprefix("http://localhost"), headers=world.system).json
    assert len(ids_of(first)) == 2 and len(ids_of(second)) == 1
    assert sorted(ids_of(first) + ids_of(second)) == ["o-p1-0", "o-p1-1", "o-p1-2"]


def test_every_type_of_a_compartment(world):
    r = world.client.get("/fhir/Patient/p1/*", headers=world.system)
    assert r.status_code == 200, r.get_json()
    found = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in r.json["entry"]}
    assert {("Observation", "o-p1-0"), ("Condition", "c-p1"), ("Patient", "p1")} <= found
    assert not any(res_id.startswith("o-p2") for _t, res_id in found)
    assert ("Practitioner", "d1") not in found  # in no patient's compartment
    typed = world.client.get("/fhir/Patient/p1/*?_type=Condition", headers=world.system).json
    assert ids_of(typed) == ["c-p1"]


def test_patient_token_sees_only_its_own_compartment(world):
    own = world.client.get("/fhir/Patient/p1/Observation", headers=world.patient)
    assert own.status_code == 200 and len(ids_of(own.json)) == 3
    other = world.client.get("/fhir/Patient/p2/Observation", headers=world.patient)
    assert other.status_code == 200
    assert ids_of(other.json) == [] and other.json["total"] == 0


def test_practitioner_needs_the_patients_consent(world):
    consented = world.client.get("/fhir/Patient/p1/Observation", headers=world.doctor)
    assert consented.status_code == 200 and len(ids_of(consented.json)) == 3
    refused = world.client.get("/fhir/Patient/p2/Observation", headers=world.doctor)
    assert refused.status_code == 403
    assert refused.json["resourceType"] == "OperationOutcome"


def test_system_search_by_id_and_type(world):
    r = world.client.get("/fhir?_id=o-p1-1", headers=world.system)
    assert r.status_code == 200, r.get_json()
    assert [(e["resource"]["resourceType"], e["resource"]["id"]) for e in r.json["entry"]] == [
        ("Observation", "o-p1-1")
    ]
    typed = world.client.get("/fhir?_type=Patient,Practitioner", headers=world.system).json
    assert sorted(ids_of(typed)) == ["d1", "p1", "p2"]
    assert typed["total"] == 3
    counted = world.client.get("/fhir?_type=Observation&_summary=count", headers=world.system)
    assert counted.json["total"] == 6 and "entry" not in counted.json


@BOTH_STORES
def test_system_search_pages_across_types(world):
    seen, url, pages = [], "/fhir?_type=Condition,Observation,Patient&_count=4", 0
    while url:
        bundle = world.client.get(url, headers=world.system).json
        assert bundle["total"] == 9
        seen += [(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]]
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = nxt[0].removeprefix("http://localhost") if nxt else None
        pages += 1
    assert pages == 3
    assert len(seen) == len(set(seen)) == 9


@BOTH_STORES
def test_system_search_is_confined_for_a_patient_and_decided_for_a_practitioner(world):
    mine = world.client.get("/fhir?_type=Observation", headers=world.patient).json
    assert sorted(ids_of(mine)) == ["o-p1-0", "o-p1-1", "o-p1-2"]
    doctors = world.client.get("/fhir?_type=Observation", headers=world.doctor).json
    assert sorted(ids_of(doctors)) == ["o-p1-0", "o-p1-1", "o-p1-2"]
    assert doctors["total"] == 3  # p2's Observations are neither listed nor counted
    hidden = world.client.get("/fhir?_id=o-p2-0", headers=world.doctor).json
    assert ids_of(hidden) == [] and hidden["total"] == 0


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("patient=p1", "_type"),  # not defined for every stored type: refused, not ignored
        ("_type=Observation,Practitioner&code=x", "not defined for Practitioner"),
        ("_sort=_id", "_sort"),
        ("_revinclude=Provenance:target", "_revinclude"),
        ("_type=NoSuchType", "NoSuchType"),
        ("_type=", "_type"),
    ],
)
def test_criteria_that_cannot_apply_across_types_are_refused(world, query, fragment):
    r = world.client.get(f"/fhir?{query}", headers=world.system)
    assert r.status_code == 400, r.get_json()
    assert r.json["resourceType"] == "OperationOutcome"
    assert fragment in r.json["issue"][0]["diagnostics"]


def test_search_across_types_needs_a_token(world):
    assert world.anonymous.get("/fhir?_id=p1").status_code == 401
    assert world.anonymous.get("/fhir/Patient/p1/*").status_code == 401


def test_unknown_compartments_and_paths_answer_operation_outcomes(world):
    for path in (
        "/fhir/Encounter/e1/Observation",
        "/fhir/Patient/p1/NoSuchType",
        "/fhir/Patient/p1/Observation/extra/segments",
        "/fhir/no-such-endpoint",
    ):
        r = world.client.get(path, headers=world.system)
        assert r.status_code == 404, path
        assert r.json["resourceType"] == "OperationOutcome", path
        assert "URL manually" not in r.json["issue"][0]["diagnostics"]  # werkzeug's words
        # What a browser asks for: still FHIR JSON (a 404, or a 406 where the route
        # exists but cannot answer HTML), never an HTML page.
        r = world.client.get(path, headers={**world.system, "Accept": "text/html"})
        assert r.status_code in (404, 406), path
        assert r.mimetype == "application/fhir+json", path
        assert r.json["resourceType"] == "OperationOutcome", path
