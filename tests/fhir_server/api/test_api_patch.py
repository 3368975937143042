"""Issue 15: the FHIR ``patch`` interaction (R4 http.html#patch) -- JSON Patch,
FHIRPath Patch and JSON Merge Patch (what fhirpy sends) -- through the gate, as a
request and as batch / transaction entries (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from tests.fhir_server.api import enforcement_data as data
from tests.fhir_server.api.enforcement_data import assert_missing, obs
from tests.smart_tokens import authorize, patient_token, user_token


# Store-agnostic semantics run on SQLite; the tests marked BOTH_STORES run on
# PostgreSQL as well (the suite's 15-minute budget: the rest adds nothing there).
@pytest.fixture(params=["sqlite"])
def database_url(request):
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_url")


BOTH_STORES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


app, seeded, p1 = data.app, data.seeded, data.p1  # fixtures: auth-on app, seeded node, p1

JSON_PATCH = {"Content-Type": "application/json-patch+json"}
FHIRPATH = {"Content-Type": "application/fhir+json"}
PATIENT = {
    "resourceType": "Patient",
    "id": "pp",
    "active": True,
    "gender": "male",
    "name": [{"family": "Kim", "given": ["Ann", "Bo"]}],
    "identifier": [{"system": "urn:a", "value": "1"}, {"system": "urn:b", "value": "2"}],
}


def op(kind: str, path: str, **parts) -> dict:
    """One FHIRPath Patch operation; ``value`` parts are given as value<Type>=..."""
    out = [{"name": "type", "valueCode": kind}, {"name": "path", "valueString": path}]
    for name, value in parts.items():
        if name in ("name",):
            out.append({"name": name, "valueString": value})
        elif name in ("index", "source", "destination"):
            out.append({"name": name, "valueInteger": value})
        elif name == "value_parts":
            out.append({"name": "value", "part": value})
        else:  # valueX=...
            out.append({"name": "value", name: value})
    return {"name": "operation", "part": out}


def fhirpath_patch(*operations) -> dict:
    return {"resourceType": "Parameters", "parameter": list(operations)}


@pytest.fixture
def pp(client):
    assert client.put("/fhir/Patient/pp", json=PATIENT).status_code == 201
    return client


def version(client, ref: str) -> str:
    return client.get(f"/fhir/{ref}").json["meta"]["versionId"]


def test_json_patch_each_operation(pp):
    ops = [
        {"op": "test", "path": "/gender", "value": "male"},
        {"op": "replace", "path": "/gender", "value": "female"},
        {"op": "add", "path": "/birthDate", "value": "1990-04-05"},
        {"op": "add", "path": "/name/0/given/-", "value": "Cy"},
        {"op": "remove", "path": "/active"},
        {"op": "move", "from": "/identifier/1", "path": "/identifier/0"},
        {"op": "copy", "from": "/name/0", "path": "/name/1"},
    ]
    r = pp.patch("/fhir/Patient/pp", json=ops, headers=JSON_PATCH)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == 'W/"2"'
    assert r.headers["Location"].endswith("/Patient/pp/_history/2")
    body = pp.get("/fhir/Patient/pp").json
    assert body["gender"] == "female" and body["birthDate"] == "1990-04-05"
    assert "active" not in body
    assert body["name"] == [{"family": "Kim", "given": ["Ann", "Bo", "Cy"]}] * 2
    assert [i["system"] for i in body["identifier"]] == ["urn:b", "urn:a"]
    assert body["meta"]["versionId"] == "2" and r.json == body
    # Prefer: return=minimal / OperationOutcome, like update
    minimal = {**JSON_PATCH, "Prefer": "return=minimal"}
    again = [{"op": "replace", "path": "/gender", "value": "other"}]
    r = pp.patch("/fhir/Patient/pp", json=again, headers=minimal)
    assert r.status_code == 200 and r.data == b"" and r.headers["ETag"] == 'W/"3"'
    outcome = {**JSON_PATCH, "Prefer": "return=OperationOutcome"}
    again = [{"op": "replace", "path": "/gender", "value": "unknown"}]
    r = pp.patch("/fhir/Patient/pp", json=again, headers=outcome)
    assert r.status_code == 200 and r.json["resourceType"] == "OperationOutcome"


def test_fhirpath_patch_each_operation(pp):
    patch = fhirpath_patch(
        op("add", "Patient", name="birthDate", valueDate="1990-04-05"),
        op("add", "Patient", name="deceased", valueBoolean=False),  # a choice: deceasedBoolean
        op("add", "Patient", name="telecom", valueContactPoint={"system": "phone", "value": "1"}),
        op(
            "add",
            "Patient",
            name="contact",
            value_parts=[
                {"name": "name", "valueHumanName": {"family": "Kin"}},
                {"name": "telecom", "valueContactPoint": {"system": "email", "value": "k@x"}},
            ],
        ),
        op("insert", "Patient.name[0].given", index=0, valueString="Zed"),
        op("move", "Patient.identifier", source=1, destination=0),
        op("replace", "Patient.identifier.where(system='urn:a').value", valueString="9"),
        op("replace", "Patient.deceased", valueDateTime="2020-01-01"),  # changes its type
        op("delete", "Patient.name.given.where($this = 'Bo')"),
        op("delete", "Patient.active"),
        op("delete", "Patient.maritalStatus"),  # nothing there: delete is idempotent
        op("replace", "Patient.gender", valueCode="female"),
    )
    r = pp.patch("/fhir/Patient/pp", json=patch, headers=FHIRPATH)
    assert r.status_code == 200, r.text
    body = pp.get("/fhir/Patient/pp").json
    assert body["birthDate"] == "1990-04-05" and body["gender"] == "female"
    assert body["deceasedDateTime"] == "2020-01-01" and "deceasedBoolean" not in body
    assert body["telecom"] == [{"system": "phone", "value": "1"}]
    assert body["contact"] == [
        {"name": {"family": "Kin"}, "telecom": [{"system": "email", "value": "k@x"}]}
    ]
    assert body["name"] == [{"family": "Kim", "given": ["Zed", "Ann"]}]
    assert body["identifier"] == [
        {"system": "urn:b", "value": "2"},
        {"system": "urn:a", "value": "9"},
    ]
    assert "active" not in body and body["meta"]["versionId"] == "2"


def test_merge_patch_as_fhirpy_sends_it(pp):
    # fhirpy save(fields=[...]): the named fields, Content-Type application/json; null removes
    r = pp.patch("/fhir/Patient/pp", json={"gender": "other", "active": None})
    assert r.status_code == 200, r.text
    body = pp.get("/fhir/Patient/pp").json
    assert body["gender"] == "other" and "active" not in body
    assert body["name"] == PATIENT["name"]  # untouched
    merge = {"Content-Type": "application/merge-patch+json"}
    assert (
        pp.patch("/fhir/Patient/pp", json={"birthDate": "2001"}, headers=merge).status_code == 200
    )
    assert pp.get("/fhir/Patient/pp").json["birthDate"] == "2001"


@BOTH_STORES
def test_if_match(pp):
    change = [{"op": "replace", "path": "/gender", "value": "female"}]
    stale = {**JSON_PATCH, "If-Match": 'W/"7"'}
    r = pp.patch("/fhir/Patient/pp", json=change, headers=stale)
    assert r.status_code == 412, r.text
    assert version(pp, "Patient/pp") == "1"
    current = {**JSON_PATCH, "If-Match": 'W/"1"'}
    assert pp.patch("/fhir/Patient/pp", json=change, headers=current).status_code == 200
    r = pp.patch("/fhir/Patient/pp", json=change, headers=current)  # version 1 is gone
    assert r.status_code == 412
    bad = {**JSON_PATCH, "If-Match": "yesterday"}
    assert pp.patch("/fhir/Patient/pp", json=change, headers=bad).status_code == 400
    assert version(pp, "Patient/pp") == "2"


def test_patched_result_is_validated_like_an_update(pp):
    for patch in (
        [{"op": "replace", "path": "/gender", "value": "bogus"}],  # required binding
        [{"op": "add", "path": "/birthDate", "value": "not-a-date"}],
        [{"op": "add", "path": "/colour", "value": "red"}],  # unknown element
        [{"op": "replace", "path": "/name/0", "value": {}}],  # ele-1
    ):
        r = pp.patch("/fhir/Patient/pp", json=patch, headers=JSON_PATCH)
        assert r.status_code == 400, (patch, r.text)
        assert r.json["resourceType"] == "OperationOutcome"
    merge = pp.patch("/fhir/Patient/pp", json={"birthDate": 5})
    assert merge.status_code == 400
    assert version(pp, "Patient/pp") == "1"


def test_id_and_resource_type_cannot_change(pp):
    for body, headers in (
        ([{"op": "replace", "path": "/id", "value": "other"}], JSON_PATCH),
        ([{"op": "remove", "path": "/id"}], JSON_PATCH),
        ([{"op": "replace", "path": "", "value": {"resourceType": "Patient"}}], JSON_PATCH),
        ({"resourceType": "Group"}, {"Content-Type": "application/merge-patch+json"}),
        ({"id": "other"}, {}),
        (fhirpath_patch(op("replace", "Patient.id", valueId="other")), FHIRPATH),
    ):
        r = pp.patch("/fhir/Patient/pp", json=body, headers=headers)
        assert r.status_code == 400, (body, r.text)
    assert pp.get("/fhir/Patient/other").status_code == 404
    assert version(pp, "Patient/pp") == "1"


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"[", JSON_PATCH, 400),
        (b'{"op": "add"}', JSON_PATCH, 400),  # a JSON Patch is an array
        (b'[{"op": "frobnicate", "path": "/gender"}]', JSON_PATCH, 400),
        (b'[{"path": "/gender"}]', JSON_PATCH, 400),
        (b'[{"op": "add", "path": "gender", "value": "x"}]', JSON_PATCH, 400),
        (b'[{"op": "add", "path": "/gender"}]', JSON_PATCH, 400),  # no value
        (b'["add"]', JSON_PATCH, 400),
        (b'"text"', {}, 400),
        (b'{"resourceType": "Parameters", "parameter": [{"name": "x"}]}', FHIRPATH, 400),
        (json.dumps(fhirpath_patch(op("upsert", "Patient.gender"))).encode(), FHIRPATH, 400),
        (json.dumps(fhirpath_patch(op("add", "Patient"))).encode(), FHIRPATH, 400),
        (json.dumps(fhirpath_patch(op("delete", "Patient.name.("))).encode(), FHIRPATH, 400),
        (json.dumps(fhirpath_patch(op("delete", "Patient.name.exists()"))).encode(), FHIRPATH, 400),
        (json.dumps(fhirpath_patch(op("delete", "Patient.colour"))).encode(), FHIRPATH, 400),
        (json.dumps(fhirpath_patch(op("delete", "Observation.status"))).encode(), FHIRPATH, 400),
        (
            json.dumps(fhirpath_patch(op("delete", "Patient.name.where(a or b)"))).encode(),
            FHIRPATH,
            400,
        ),
        (json.dumps(fhirpath_patch(op("delete", "Patient"))).encode(), FHIRPATH, 400),
        (
            json.dumps(
                fhirpath_patch(op("add", "Patient", name="deceased", valueString="x"))
            ).encode(),
            FHIRPATH,
            400,
        ),
        (b"[]", {"Content-Type": "text/plain"}, 415),
        (b"<Parameters/>", {"Content-Type": "application/fhir+xml"}, 415),
        # well-formed, but not applicable to this resource as it is: 422
        (b'[{"op": "test", "path": "/gender", "value": "female"}]', JSON_PATCH, 422),
        (b'[{"op": "remove", "path": "/birthDate"}]', JSON_PATCH, 422),
        (b'[{"op": "add", "path": "/name/7", "value": {}}]', JSON_PATCH, 422),
        (b'[{"op": "add", "path": "/x/y", "value": 1}]', JSON_PATCH, 422),
        (
            json.dumps(
                fhirpath_patch(op("replace", "Patient.birthDate", valueDate="2000"))
            ).encode(),
            FHIRPATH,
            422,
        ),
        (
            json.dumps(
                fhirpath_patch(op("replace", "Patient.identifier.value", valueString="x"))
            ).encode(),
            FHIRPATH,
            422,
        ),
        (
            json.dumps(
                fhirpath_patch(op("add", "Patient", name="gender", valueCode="male"))
            ).encode(),
            FHIRPATH,
            422,
        ),
        (
            json.dumps(
                fhirpath_patch(
                    op("insert", "Patient.identifier", index=5, valueIdentifier={"value": "x"})
                )
            ).encode(),
            FHIRPATH,
            422,
        ),
        (
            json.dumps(
                fhirpath_patch(op("move", "Patient.identifier", source=0, destination=2))
            ).encode(),
            FHIRPATH,
            422,
        ),
    ],
)
def test_malformed_or_inapplicable_patches_are_refused(pp, body, headers, status):
    r = pp.patch(
        "/fhir/Patient/pp", data=body, headers=headers or {"Content-Type": "application/json"}
    )
    assert r.status_code == status, r.text
    assert r.json["resourceType"] == "OperationOutcome"
    assert version(pp, "Patient/pp") == "1"


def test_copy_cannot_blow_up_the_document(app, pp):
    """Each JSON Patch copy may double the document: it is measured after every copy
    and refused at the body limit (413), long before memory runs out."""
    app.config["PHRX_MAX_BODY_BYTES"] = 64 * 1024
    explode = [{"op": "add", "path": "/z", "value": ["x" * 1000]}]
    explode += [{"op": "copy", "from": "/z", "path": "/z/-"} for _ in range(60)]
    r = pp.patch("/fhir/Patient/pp", json=explode, headers=JSON_PATCH)
    assert r.status_code == 413, r.text
    assert version(pp, "Patient/pp") == "1"


def test_unknown_and_deleted_resources(pp):
    change = [{"op": "replace", "path": "/gender", "value": "female"}]
    r = pp.patch("/fhir/Patient/nobody", json=change, headers=JSON_PATCH)
    assert_missing(r, "Patient/nobody")
    assert pp.delete("/fhir/Patient/pp").status_code == 204
    assert pp.patch("/fhir/Patient/pp", json=change, headers=JSON_PATCH).status_code == 410
    assert pp.patch("/fhir/Nonsense/pp", json=change, headers=JSON_PATCH).status_code in (400, 404)


# -- the gate --------------------------------------------------------------------------
def test_patient_token_cannot_patch_another_patients_resource(p1, seeded):
    change = [{"op": "replace", "path": "/status", "value": "amended"}]
    r = p1.patch("/fhir/Observation/o2", json=change, headers=JSON_PATCH)
    assert_missing(r, "Observation/o2")  # exactly like a resource that does not exist
    r = p1.patch("/fhir/Observation/o2", json={"status": "amended"})
    assert_missing(r, "Observation/o2")
    # even a patch that would fail, or a stale If-Match, says nothing about o2
    failing = [{"op": "test", "path": "/status", "value": "nope"}]
    assert_missing(
        p1.patch("/fhir/Observation/o2", json=failing, headers=JSON_PATCH), "Observation/o2"
    )
    stale = {**JSON_PATCH, "If-Match": 'W/"9"'}
    assert_missing(p1.patch("/fhir/Observation/o2", json=change, headers=stale), "Observation/o2")
    assert_missing(
        p1.patch("/fhir/Observation/o6", json=change, headers=JSON_PATCH), "Observation/o6"
    )
    unchanged = seeded.get("/fhir/Observation/o2").json
    assert unchanged["status"] == "final" and unchanged["meta"]["versionId"] == "1"
    # its own: patched; moving it into p2's compartment: 403, nothing written
    assert p1.patch("/fhir/Observation/o1", json=change, headers=JSON_PATCH).status_code == 200
    away = [{"op": "replace", "path": "/subject/reference", "value": "Patient/p2"}]
    assert p1.patch("/fhir/Observation/o1", json=away, headers=JSON_PATCH).status_code == 403
    mine = seeded.get("/fhir/Observation/o1").json
    assert mine["subject"]["reference"] == "Patient/p1" and mine["meta"]["versionId"] == "2"
    # a read-only token may not patch (403), nor may a write-only token patch unseen data
    reader = authorize(
        p1.application.test_client(),
        patient_token(p1.application, "p1", "launch/patient patient/*.rs"),
    )
    assert reader.patch("/fhir/Observation/o1", json=change, headers=JSON_PATCH).status_code == 403


@BOTH_STORES
def test_consent_withheld_resource_is_not_patchable(app, client, client_for):
    for pid in ("p1", "p2"):
        assert client.put(f"/fhir/Patient/{pid}", json={"resourceType": "Patient", "id": pid})
    icd = "http://hl7.org/fhir/sid/icd-10-cm"

    def condition(rid, code):
        return {
            "resourceType": "Condition",
            "id": rid,
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": icd, "code": code}]},
        }

    assert client.put("/fhir/Condition/dm", json=condition("dm", "E11.9")).status_code == 201
    assert client.put("/fhir/Condition/psy", json=condition("psy", "F32.9")).status_code == 201
    patient = client_for(patient_token(app, "p1"))
    share = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "recipient", "valueReference": {"reference": "Practitioner/dA"}},
            {"name": "class", "valueCode": "Condition"},
        ],
    }
    shared = patient.post("/fhir/Patient/p1/$share", json=share, headers=FHIRPATH)
    assert shared.status_code == 201, shared.text
    consent = {p["name"]: p for p in shared.json["parameter"]}["consent"]["resource"]
    deny = {
        "type": "deny",
        "securityLabel": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}
        ],
    }
    consent["provision"]["provision"] = [deny]
    assert patient.put(f"/fhir/Consent/{consent['id']}", json=consent).status_code == 200
    doctor = client_for(user_token(app, "user/*.cruds", "dr-dA", "practitioner", "Practitioner/dA"))
    assert doctor.get("/fhir/Condition/dm").status_code == 200
    assert doctor.get("/fhir/Condition/psy").status_code == 404  # withheld by consent
    change = [{"op": "add", "path": "/note", "value": [{"text": "seen"}]}]
    r = doctor.patch("/fhir/Condition/psy", json=change, headers=JSON_PATCH)
    assert_missing(r, "Condition/psy")
    r = doctor.patch("/fhir/Condition/psy", json={"note": [{"text": "seen"}]})
    assert_missing(r, "Condition/psy")
    psy = client.get("/fhir/Condition/psy").json
    assert "note" not in psy and psy["meta"]["versionId"] == "1"
    # the withheld resource cannot be patched through a Bundle either
    entry = {
        "request": {"method": "PATCH", "url": "Condition/psy"},
        "resource": binary(change),
    }
    batch = doctor.post("/fhir", json={"resourceType": "Bundle", "type": "batch", "entry": [entry]})
    assert batch.json["entry"][0]["response"]["status"] == "404"
    tx = doctor.post(
        "/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    )
    assert tx.status_code == 404
    assert client.get("/fhir/Condition/psy").json["meta"]["versionId"] == "1"


# -- batch and transaction ----------------------------------------------------------------
def binary(patch: list, content_type: str = "application/json-patch+json") -> dict:
    encoded = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"resourceType": "Binary", "contentType": content_type, "data": encoded}


def patch_entry(url: str, resource: dict, **request) -> dict:
    return {"request": {"method": "PATCH", "url": url, **request}, "resource": resource}


@BOTH_STORES
def test_patch_in_a_transaction_is_all_or_nothing(pp):
    assert pp.put("/fhir/Observation/ob", json=obs("ob", "pp", "X")).status_code == 201
    new = f"urn:uuid:{uuid.uuid4()}"
    good = [
        patch_entry(
            "Patient/pp", binary([{"op": "replace", "path": "/gender", "value": "female"}])
        ),
        patch_entry(
            "Observation/ob",
            fhirpath_patch(
                op("replace", "Observation.status", valueCode="amended"),
                op("add", "Observation", name="performer", valueReference={"reference": new}),
            ),
            ifMatch='W/"1"',
        ),
        {
            "fullUrl": new,
            "request": {"method": "POST", "url": "Practitioner"},
            "resource": {"resourceType": "Practitioner", "name": [{"family": "Who"}]},
        },
    ]
    r = pp.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": good})
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json["entry"]]
    assert statuses == ["200 OK", "200 OK", "201 Created"]
    assert r.json["entry"][0]["response"]["etag"] == 'W/"2"'
    ob = pp.get("/fhir/Observation/ob").json
    practitioner = r.json["entry"][2]["response"]["location"].split("/_history")[0]
    assert ob["status"] == "amended" and ob["performer"] == [{"reference": practitioner}]
    assert pp.get("/fhir/Patient/pp").json["gender"] == "female"
    # one failing patch (a test op) fails the whole transaction: nothing is written
    failing = [
        patch_entry("Patient/pp", binary([{"op": "replace", "path": "/gender", "value": "other"}])),
        patch_entry(
            "Observation/ob", binary([{"op": "test", "path": "/status", "value": "final"}])
        ),
    ]
    r = pp.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": failing})
    assert r.status_code == 422, r.text
    assert "Bundle.entry[1]" in r.json["issue"][0]["diagnostics"]
    stale = [
        patch_entry("Patient/pp", binary([{"op": "remove", "path": "/active"}]), ifMatch='W/"1"')
    ]
    r = pp.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": stale})
    assert r.status_code == 412
    assert version(pp, "Patient/pp") == "2" and version(pp, "Observation/ob") == "2"
    assert pp.get("/fhir/Patient/pp").json["gender"] == "female"


def test_patch_in_a_batch(p1, seeded):
    entries = [
        patch_entry(
            "Observation/o1", binary([{"op": "replace", "path": "/status", "value": "amended"}])
        ),
        patch_entry(
            "Observation/o1v",
            fhirpath_patch(op("replace", "Observation.status", valueCode="amended")),
        ),
        patch_entry(
            "Observation/o2", binary([{"op": "replace", "path": "/status", "value": "amended"}])
        ),
        patch_entry(
            "Observation/o1v", binary([{"op": "test", "path": "/status", "value": "final"}])
        ),
        patch_entry(  # an invalid result: 400 in its own slot
            "Observation/o1", binary([{"op": "replace", "path": "/status", "value": "bogus"}])
        ),
        patch_entry(
            "Observation/o1", binary({"status": "cancelled"}, "application/merge-patch+json")
        ),
    ]
    r = p1.post("/fhir", json={"resourceType": "Bundle", "type": "batch", "entry": entries})
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json["entry"]]
    assert statuses == ["200 OK", "200 OK", "404", "422", "400", "200 OK"]
    assert seeded.get("/fhir/Observation/o1").json["status"] == "cancelled"
    assert seeded.get("/fhir/Observation/o1v").json["status"] == "amended"
    assert seeded.get("/fhir/Observation/o2").json["meta"]["versionId"] == "1"


def test_malformed_patch_entries_are_400(pp):
    for entry in (
        patch_entry("Patient/pp", {"resourceType": "Patient"}),
        patch_entry("Patient", binary([])),
        patch_entry("Patient?name=x", binary([])),
        patch_entry(
            "Patient/pp",
            {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": "%%%"},
        ),
        patch_entry("Patient/pp", binary([{"op": "nope"}])),
        {"request": {"method": "PATCH", "url": "Patient/pp"}},
    ):
        r = pp.post(
            "/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
        )
        assert r.status_code == 400, (entry, r.text)
    assert version(pp, "Patient/pp") == "1"


# -- a real client ------------------------------------------------------------------------
def test_fhirpy_save_fields_and_patch(live_server, live_headers):
    from fhirpy import SyncFHIRClient

    fhir = SyncFHIRClient(live_server, authorization=live_headers["Authorization"])
    patient = fhir.resource("Patient", name=[{"family": "Fields"}], gender="male", active=True)
    patient.save()
    patient["gender"] = "female"
    patient["birthDate"] = "1999-09-09"
    patient.save(fields=["gender", "birthDate"])  # PATCH with the named fields
    assert patient["meta"]["versionId"] == "2"
    again = fhir.reference("Patient", patient.id).to_resource()
    assert again["gender"] == "female" and again["birthDate"] == "1999-09-09"
    assert again["active"] is True and again["name"][0]["family"] == "Fields"
    again.patch(active=None)  # a null removes the field
    assert "active" not in fhir.reference("Patient", patient.id).to_resource()
    fhir.patch("Patient", patient.id, gender="other")
    assert fhir.reference("Patient", patient.id).to_resource()["gender"] == "other"
