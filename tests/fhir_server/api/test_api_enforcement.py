"""Issue 3: resource-server enforcement, on SQLite and PostgreSQL.

401 without a valid token, 403 for insufficient scopes, and a ``patient/`` token
of p1 attacking p2's data through the path, queries, ``_include``,
``_revinclude``, ``_has``, chaining, batch / transaction entries,
``$everything`` and ``_history``: each attempt is rejected and answers exactly
like missing data (no count, link or message reveals p2's data).
"""

from __future__ import annotations

import pytest

from fhir_server.app import create_app

LAB = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                   "code": "laboratory"}]}  # fmt: skip
VITAL = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                     "code": "vital-signs"}]}  # fmt: skip


def obs(oid, subject, code, category=LAB, **extra):
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [category],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{subject}"},
        **extra,
    }


SEED = [
    {"resourceType": "Patient", "id": "p1", "name": [{"family": "Alpha"}]},
    {"resourceType": "Patient", "id": "p2", "name": [{"family": "Beta"}]},
    {"resourceType": "Practitioner", "id": "d1", "name": [{"family": "Doc"}]},
    # p1's, pointing at p2 (focus is not a compartment param) and a practitioner
    obs("o1", "p1", "A", focus=[{"reference": "Patient/p2"}],
        performer=[{"reference": "Practitioner/d1"}]),  # fmt: skip
    obs("o1v", "p1", "V", category=VITAL),
    obs("o2", "p2", "B", identifier=[{"system": "urn:x", "value": "secret-id"}]),
    # p2's, pointing at p1: must not confirm anything through p1's _has / _revinclude
    obs("o3", "p2", "B", focus=[{"reference": "Patient/p1"}]),
    {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "code": {"text": "c1"},
    },
    {
        "resourceType": "Condition",
        "id": "c2",
        "subject": {"reference": "Patient/p2"},
        "code": {"text": "c2"},
    },
]


@pytest.fixture
def app(node):
    """Authentication on (the default), whatever the directory's conftest says."""
    return create_app({"NODE": node, "TESTING": True})


@pytest.fixture
def seeded(client):
    for resource in SEED:
        r = client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource)
        assert r.status_code in (200, 201), r.text
    # o5 moved from p2 to p1: its first version is p2's data
    assert client.put("/fhir/Observation/o5", json=obs("o5", "p2", "M")).status_code == 201
    assert client.put("/fhir/Observation/o5", json=obs("o5", "p1", "M")).status_code == 200
    # o6 of p2, deleted
    assert client.put("/fhir/Observation/o6", json=obs("o6", "p2", "D")).status_code == 201
    assert client.delete("/fhir/Observation/o6").status_code == 204
    return client


@pytest.fixture
def p1(seeded, patient_client):
    return patient_client("p1", "launch/patient patient/*.cruds")


def ids_of(bundle: dict, mode: str | None = None) -> set[str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if "resource" in e and (mode is None or e.get("search", {}).get("mode") == mode)
    }


def assert_missing(response, where: str):
    assert response.status_code == 404, response.text
    body = response.json
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "not-found"
    assert body["issue"][0]["diagnostics"] == f"{where} is not known."


# -- 401 / 403 ---------------------------------------------------------------------
def test_missing_garbage_and_expired_tokens_get_401(app, seeded, monkeypatch):
    anonymous = app.test_client()
    for headers in ({}, {"Authorization": "Bearer not.a.jwt"}, {"Authorization": "Basic eA=="}):
        r = anonymous.get("/fhir/Patient/p1", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["WWW-Authenticate"].startswith('Bearer realm="phrx"')
        assert r.json["resourceType"] == "OperationOutcome"
    assert 'error="invalid_token"' in anonymous.get(
        "/fhir/Patient", headers={"Authorization": "Bearer not.a.jwt"}
    ).headers["WWW-Authenticate"]
    for path in ("/fhir/metadata", "/fhir/.well-known/smart-configuration"):
        assert anonymous.get(path).status_code == 200
    from fhir_server.resources import ids

    later = ids.now_us() + 400 * 10**6  # backend tokens live 300 s
    monkeypatch.setattr(ids, "now_us", lambda: later)
    r = seeded.get("/fhir/Patient/p1")
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert "expired" in r.json["issue"][0]["diagnostics"]


def test_insufficient_scopes_get_403(seeded, backend_client, patient_client):
    reader = backend_client("system/*.rs")
    assert reader.get("/fhir/Observation/o1").status_code == 200
    for response in (
        reader.post("/fhir/Observation", json=obs("x", "p1", "A")),
        reader.put("/fhir/Observation/o1", json=obs("o1", "p1", "A")),
        reader.delete("/fhir/Observation/o1"),
    ):
        assert response.status_code == 403
        assert response.json["issue"][0]["code"] == "forbidden"
    only_obs = patient_client("p1", "launch/patient patient/Observation.rs")
    assert only_obs.get("/fhir/Observation/o1").status_code == 200
    for path in ("/fhir/Condition/c1", "/fhir/Condition?patient=p1", "/fhir/Condition/_history"):
        r = only_obs.get(path)
        assert r.status_code == 403, path
        assert r.json["resourceType"] == "OperationOutcome"
    # an included type the token may not read is left out silently
    bundle = only_obs.get("/fhir/Observation?_id=o1&_include=Observation:subject").json
    assert ids_of(bundle) == {"Observation/o1"}
    # chaining into a type the token may not search
    assert only_obs.get("/fhir/Observation?subject:Patient.family=Alpha").status_code == 403
    assert only_obs.post("/fhir/$anchor").status_code == 403


# -- cross-patient attacks under patient/ scopes -------------------------------------
def test_path_reads_answer_like_missing(p1):
    assert p1.get("/fhir/Observation/o1").status_code == 200
    assert p1.get("/fhir/Patient/p1").status_code == 200
    assert_missing(p1.get("/fhir/Observation/o2"), "Observation/o2")
    assert_missing(p1.get("/fhir/Observation/nope"), "Observation/nope")
    assert_missing(p1.get("/fhir/Patient/p2"), "Patient/p2")
    assert_missing(p1.get("/fhir/Practitioner/d1"), "Practitioner/d1")
    assert_missing(p1.get("/fhir/Observation/o6"), "Observation/o6")  # deleted: not 410
    assert_missing(p1.get("/fhir/Observation/o2/_history/1"), "Observation/o2/_history/1")
    assert_missing(p1.get("/fhir/Observation/o5/_history/1"), "Observation/o5/_history/1")
    assert p1.get("/fhir/Observation/o5/_history/2").status_code == 200
    assert_missing(p1.get("/fhir/Observation/o2/$verify"), "Observation/o2")


def test_queries_counts_and_links_stay_in_the_compartment(p1):
    mine = {"Observation/o1", "Observation/o1v", "Observation/o5"}
    bundle = p1.get("/fhir/Observation").json
    assert ids_of(bundle) == mine and bundle["total"] == 3
    for query in (
        "subject=Patient/p2",
        "patient=p2",
        "code=B",
        "identifier=urn:x|secret-id",
        "_id=o2,o3",
        "code=B&_summary=count",
        "code=B&_total=accurate",
    ):
        bundle = p1.get(f"/fhir/Observation?{query}").json
        assert bundle.get("total", 0) == 0 and "entry" not in bundle, query
        assert [link["relation"] for link in bundle["link"]] == ["self"], query
    paged = p1.get("/fhir/Observation?_count=1").json
    assert paged["total"] == 3 and len(paged["entry"]) == 1
    assert p1.get("/fhir/Patient").json["total"] == 1
    assert p1.get("/fhir/Condition?_summary=count").json["total"] == 1


def test_include_and_revinclude_stay_in_the_compartment(p1):
    bundle = p1.get(
        "/fhir/Observation?_id=o1&_include=Observation:focus&_include=Observation:performer"
        "&_include=Observation:subject"
    ).json
    assert ids_of(bundle, "include") == {"Patient/p1"}
    bundle = p1.get("/fhir/Patient?_revinclude=Observation:focus").json
    assert ids_of(bundle) == {"Patient/p1"}  # o3 (p2's) points at p1: not included
    bundle = p1.get("/fhir/Patient?_revinclude=Observation:subject").json
    assert ids_of(bundle, "include") == {"Observation/o1", "Observation/o1v", "Observation/o5"}


def test_has_cannot_probe_other_patients(p1):
    # o3 is p2's Observation (code B) whose focus is p1
    bundle = p1.get("/fhir/Patient?_has:Observation:focus:code=B").json
    assert bundle["total"] == 0 and "entry" not in bundle
    bundle = p1.get("/fhir/Patient?_has:Observation:subject:code=B").json
    assert bundle["total"] == 0
    assert p1.get("/fhir/Patient?_has:Observation:subject:code=A").json["total"] == 1


def test_chains_cannot_probe_other_patients(p1):
    # o1 (p1's) has focus Patient/p2 named Beta
    assert p1.get("/fhir/Observation?focus:Patient.family=Beta").json["total"] == 0
    assert p1.get("/fhir/Observation?focus:Patient.family=Alpha").json["total"] == 0
    assert p1.get("/fhir/Observation?subject:Patient.family=Alpha").json["total"] == 3
    assert p1.get("/fhir/Condition?subject:Patient.family=Beta").json["total"] == 0
    assert p1.get("/fhir/Observation?performer:Practitioner.family=Doc").json["total"] == 0


def test_batch_entries_are_checked_one_by_one(p1, seeded):
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Observation/o1"}},
            {"request": {"method": "GET", "url": "Observation/o2"}},
            {"request": {"method": "GET", "url": "Observation?code=B"}},
            {"request": {"method": "POST", "url": "Observation"},
             "resource": obs("n", "p2", "N")},  # fmt: skip
            {"request": {"method": "PUT", "url": "Observation/o2"},
             "resource": obs("o2", "p1", "B")},  # fmt: skip
            {"request": {"method": "DELETE", "url": "Observation/o2"}},
            {"request": {"method": "POST", "url": "Observation"},
             "resource": obs("n", "p1", "N")},  # fmt: skip
        ],
    }
    r = p1.post("/fhir", json=batch)
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json["entry"]]
    assert statuses[0].startswith("200") and statuses[1] == "404"
    assert r.json["entry"][2]["resource"]["total"] == 0
    assert statuses[3] == "403" and statuses[4] == "404"
    assert statuses[5].startswith("204") and statuses[6].startswith("201")
    outcome = r.json["entry"][1]["response"]["outcome"]
    assert outcome["issue"][0]["diagnostics"] == "Observation/o2 is not known."
    still = seeded.get("/fhir/Observation/o2")
    assert still.status_code == 200 and still.json["meta"]["versionId"] == "1"
    reader = {"resourceType": "Bundle", "type": "batch", "entry": batch["entry"][:1] + [
        {"request": {"method": "POST", "url": "Observation"}, "resource": obs("n", "p1", "N")}
    ]}  # fmt: skip
    # with a read-only token, the write entry alone is refused
    ro = p1.application.test_client()
    from tests.smart_tokens import authorize, patient_token

    authorize(ro, patient_token(p1.application, "p1", "launch/patient patient/*.rs"))
    statuses = [e["response"]["status"] for e in ro.post("/fhir", json=reader).json["entry"]]
    assert statuses[0].startswith("200") and statuses[1] == "403"


def test_transaction_with_one_forbidden_entry_fails_whole(p1, seeded):
    before = seeded.get("/fhir/Observation?_summary=count").json["total"]
    for bad in (
        {"request": {"method": "POST", "url": "Observation"}, "resource": obs("n", "p2", "N")},
        {"request": {"method": "PUT", "url": "Observation/o2"}, "resource": obs("o2", "p1", "B")},
        {"request": {"method": "DELETE", "url": "Condition?patient=p1"}},
        {"request": {"method": "PUT", "url": "Observation/mine"},
         "resource": obs("mine", "p1", "N")},  # fmt: skip
    ):
        tx = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"request": {"method": "POST", "url": "Observation"},
                 "resource": obs("ok", "p1", "OK")},  # fmt: skip
                bad,
            ],
        }
        if bad["request"]["method"] == "DELETE":
            ro = p1.application.test_client()
            from tests.smart_tokens import authorize, patient_token

            scope = "launch/patient patient/Observation.cruds patient/Condition.rs"
            authorize(ro, patient_token(p1.application, "p1", scope))
            r = ro.post("/fhir", json=tx)
            assert r.status_code == 403, r.text
        else:
            r = p1.post("/fhir", json=tx)
            assert r.status_code in (403, 404), r.text
        assert r.json["resourceType"] == "OperationOutcome"
        assert "Bundle.entry[1]" in r.json["issue"][0]["diagnostics"]
    assert seeded.get("/fhir/Observation?_summary=count").json["total"] == before
    assert seeded.get("/fhir/Observation/o2").json["meta"]["versionId"] == "1"


def test_writes_cannot_touch_other_patients(p1, seeded):
    assert p1.post("/fhir/Observation", json=obs("x", "p2", "X")).status_code == 403
    assert p1.post("/fhir/Patient", json={"resourceType": "Patient"}).status_code == 403
    assert_missing(p1.put("/fhir/Observation/o2", json=obs("o2", "p1", "B")), "Observation/o2")
    assert_missing(p1.put("/fhir/Observation/free", json=obs("free", "p1", "F")), "Observation/free")
    assert p1.put("/fhir/Observation/o1", json=obs("o1", "p2", "A")).status_code == 403
    assert p1.delete("/fhir/Observation/o2").status_code == 204
    assert p1.delete("/fhir/Observation?code=B").status_code == 204
    assert seeded.get("/fhir/Observation/o2").status_code == 200
    assert seeded.get("/fhir/Observation/o3").status_code == 200
    # If-None-Exist must not find (and return) p2's resource
    r = p1.post(
        "/fhir/Observation",
        json=obs("y", "p1", "Y"),
        headers={"If-None-Exist": "identifier=urn:x|secret-id"},
    )
    assert r.status_code == 201 and r.json["subject"]["reference"] == "Patient/p1"
    # conditional update matching only p2's data creates p1's own resource
    body = {k: v for k, v in obs("z", "p1", "B").items() if k != "id"}
    r = p1.put("/fhir/Observation?code=B", json=body)
    assert r.status_code == 201 and r.json["id"] not in ("o2", "o3"), r.text
    ok = p1.post("/fhir/Observation", json=obs("x", "p1", "X"))
    assert ok.status_code == 201
    again = p1.put(f"/fhir/Observation/{ok.json['id']}", json={**ok.json, "status": "amended"})
    assert again.status_code == 200, again.text
    assert seeded.get("/fhir/Observation/o2").json["meta"]["versionId"] == "1"


def test_everything_only_for_own_patient(p1):
    assert_missing(p1.get("/fhir/Patient/p2/$everything"), "Patient/p2")
    assert_missing(p1.get("/fhir/Patient/nope/$everything"), "Patient/nope")
    bundle = p1.get("/fhir/Patient/p1/$everything").json
    expected = {"Patient/p1", "Observation/o1", "Observation/o1v", "Observation/o5", "Condition/c1"}
    assert ids_of(bundle) == expected and bundle["total"] == len(expected)


def test_history_stays_in_the_compartment(p1):
    assert_missing(p1.get("/fhir/Observation/o2/_history"), "Observation/o2")
    assert_missing(p1.get("/fhir/Observation/o6/_history"), "Observation/o6")
    moved = p1.get("/fhir/Observation/o5/_history").json
    assert moved["total"] == 1 and moved["entry"][0]["response"]["etag"] == 'W/"2"'
    history = p1.get("/fhir/Observation/_history").json
    assert {e["fullUrl"].rsplit("/", 2)[-2:][1] for e in history["entry"]} == {"o1", "o1v", "o5"}
    assert history["total"] == 3
    everything = p1.get("/fhir/_history").json
    seen = {"/".join(e["fullUrl"].rsplit("/", 2)[-2:]) for e in everything["entry"]}
    assert seen == {"Patient/p1", "Observation/o1", "Observation/o1v", "Observation/o5",
                    "Condition/c1"}  # fmt: skip
    assert everything["total"] == 5
    assert p1.get("/fhir/_history?_count=2").json["link"][1]["relation"] == "next"


def test_patient_users_user_scopes_are_confined_too(seeded, app, client_for):
    from tests.smart_tokens import user_token

    token = user_token(app, "user/*.rs", "pat-user", "patient", "Patient/p1")
    mine = client_for(token)
    assert mine.get("/fhir/Observation/o1").status_code == 200
    assert_missing(mine.get("/fhir/Observation/o2"), "Observation/o2")
    assert mine.get("/fhir/Observation?code=B").json["total"] == 0


def test_practitioner_user_scopes_see_every_patient(seeded, user_client):
    doctor = user_client("user/*.rs")
    assert doctor.get("/fhir/Observation/o2").status_code == 200
    assert doctor.get("/fhir/Observation?code=B").json["total"] == 2
    assert doctor.post("/fhir/Observation", json=obs("x", "p1", "X")).status_code == 403


def test_granular_scopes(seeded, patient_client):
    lab = patient_client("p1", "launch/patient patient/Observation.rs?category=laboratory")
    assert lab.get("/fhir/Observation").status_code == 403
    bundle = lab.get("/fhir/Observation?category=laboratory").json
    assert ids_of(bundle) == {"Observation/o1", "Observation/o5"}
    assert lab.get("/fhir/Observation/o1").status_code == 200
    assert_missing(lab.get("/fhir/Observation/o1v"), "Observation/o1v")  # vital signs
    assert lab.get("/fhir/Observation/o1/_history").status_code == 403
