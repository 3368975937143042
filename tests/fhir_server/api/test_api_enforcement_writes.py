"""Issue 3, continued: batch / transaction entries and writes under a ``patient/``
token of p1 must not reach p2's data (SQLite and PostgreSQL)."""

from __future__ import annotations

from tests.fhir_server.api import enforcement_data as data
from tests.fhir_server.api.enforcement_data import assert_missing, obs

app, seeded, p1 = data.app, data.seeded, data.p1  # fixtures: auth-on app, seeded node, p1


def test_batch_entries_are_checked_one_by_one(p1, seeded):
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Observation/o1"}},
            {"request": {"method": "GET", "url": "Observation/o2"}},
            {"request": {"method": "GET", "url": "Observation?code=B"}},
            {
                "request": {"method": "POST", "url": "Observation"},
                "resource": obs("n", "p2", "N"),
            },
            {
                "request": {"method": "PUT", "url": "Observation/o2"},
                "resource": obs("o2", "p1", "B"),
            },
            {"request": {"method": "DELETE", "url": "Observation/o2"}},
            {
                "request": {"method": "POST", "url": "Observation"},
                "resource": obs("n", "p1", "N"),
            },
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
    write = {"request": {"method": "POST", "url": "Observation"}, "resource": obs("n", "p1", "N")}
    reader = {"resourceType": "Bundle", "type": "batch", "entry": [batch["entry"][0], write]}
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
        {
            "request": {"method": "PUT", "url": "Observation/mine"},
            "resource": obs("mine", "p1", "N"),
        },
    ):
        tx = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "request": {"method": "POST", "url": "Observation"},
                    "resource": obs("ok", "p1", "OK"),
                },
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
    assert_missing(
        p1.put("/fhir/Observation/free", json=obs("free", "p1", "F")), "Observation/free"
    )
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
