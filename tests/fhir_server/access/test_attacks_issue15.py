"""An outside tester's attacks on the features of issue #15 (PATCH, conditional create by
query, compartment and system search, Provenance?target / _revinclude=Provenance:target,
CORS, refresh without client_id).

Setting: patient p1 consented to practitioner d1 (drbob), except records labelled PSY
(a nested deny; the depression Condition ``dep`` is one); patient p2 consented to no one.
Practitioner d2 (drann) has no Consent at all. d1 may therefore write p1's record, but
p2's Observation ``o-p2`` and p1's ``dep`` must stay invisible to it, as a direct read of
them is (404).

Tests marked ``# FINDING n`` assert the secure behaviour and fail on the code under test;
the others document attacks that were correctly refused.
"""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest
from flask.testing import FlaskClient

from tests.consent_builders import bearer, label, privacy_consent, put

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json", "Accept": "application/fhir+json"}
MERGE_PATCH = {"Content-Type": "application/merge-patch+json", "Accept": "application/fhir+json"}
SECRET = "p2-private-finding"
EVERYWHERE = ("2000-01-01", "2099-12-31")
PASSWORD = "correct horse battery"
REDIRECT = "https://app.example/callback"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"


def observation(res_id: str | None, patient: str, text: str = SECRET) -> dict:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": text},
        "subject": {"reference": f"Patient/{patient}"},
    }
    if res_id:
        body["id"] = res_id
    return body


def p1_consent() -> dict:
    consent = privacy_consent("p1", cid="c-p1", period=EVERYWHERE)
    consent["provision"]["provision"] = [{"type": "deny", "securityLabel": [label("PSY")]}]
    return consent


def _world(tmp_path, **config):
    from fhir_server.app import create_app
    from fhir_server.node import Node, NodeConfig

    node = Node(NodeConfig(data_dir=tmp_path / "data", **config))
    app = create_app({"NODE": node, "TESTING": True})
    put(node, {"resourceType": "Patient", "id": "p1", "name": [{"family": "Lin"}]})
    put(
        node,
        {
            "resourceType": "Patient",
            "id": "p2",
            "identifier": [{"system": "urn:id:tw", "value": "A123456789"}],
        },
    )
    put(node, p1_consent())
    put(node, observation("o-p1", "p1", "p1-finding"))
    put(node, observation("o-p2", "p2"))
    depression = {"coding": [{"system": ICD10, "code": "F32.9"}]}
    put(
        node,
        {
            "resourceType": "Condition",
            "id": "dep",
            "subject": {"reference": "Patient/p1"},
            "code": depression,
        },
    )
    put(node, {"resourceType": "Practitioner", "id": "d1", "name": [{"family": "Bob"}]})
    doctor = bearer(app, username="drbob", fhir_user="Practitioner/d1", scope="user/*.cruds")
    other = bearer(app, username="drann", fhir_user="Practitioner/d2", scope="user/*.cruds")
    patient = bearer(
        app,
        username="alice",
        fhir_user="Patient/p1",
        scope="patient/*.cruds",
        context={"patient": "p1"},
    )
    system = bearer(app, scope="system/*.cruds")
    return SimpleNamespace(
        app=app,
        node=node,
        client=FlaskClient(app, app.response_class),
        doctor={**doctor, **JSON},
        other={**other, **JSON},
        patient={**patient, **JSON},
        system={**system, **JSON},
    )


@pytest.fixture
def world(tmp_path):
    w = _world(tmp_path)
    yield w
    w.node.close()


@pytest.fixture
def anchored(tmp_path):
    """``world`` on an in-process chain, every version so far anchored."""
    w = _world(tmp_path, chain="memory", anchor_worker=False)
    assert w.client.post("/fhir/$anchor", headers=w.system).status_code == 200
    yield w
    w.node.close()


def version_of(world, res_type: str, res_id: str) -> str:
    return world.node.store.read(res_type, res_id)["meta"]["versionId"]


def provenance_targets(bundle: dict) -> list[str]:
    return [
        t.get("reference", "")
        for e in bundle.get("entry", [])
        if e.get("resource", {}).get("resourceType") == "Provenance"
        for t in e["resource"].get("target", [])
    ]


# =====================================================================================
# Findings: each test asserts the secure behaviour and fails on the code under test.
# =====================================================================================


# FINDING 1
@pytest.mark.parametrize("ask", ["_anchor-provenance=true", "_revinclude=Provenance:target"])
def test_a_stored_searchset_bundle_does_not_fetch_the_proof_of_a_withheld_version(anchored, ask):
    """The after-request hook adds the anchoring Provenance of every ``entry`` of *any*
    200 searchset Bundle body -- also of a Bundle resource the caller stored itself and
    reads back: naming ``Observation/o-p2`` version 1 in it yields p2's proof (existence,
    version count, and the unsalted leaf hash of the content: a guess-and-confirm oracle)."""
    w = anchored
    bait = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {
                "fullUrl": "http://localhost/fhir/Observation/o-p2",
                "resource": {
                    "resourceType": "Observation",
                    "id": "o-p2",
                    "meta": {"versionId": "1"},
                    "status": "final",
                    "code": {"text": "guess"},
                },
                "search": {"mode": "match"},
            }
        ],
    }
    created = w.client.post("/fhir/Bundle", json=bait, headers=w.doctor)
    assert created.status_code == 201, created.get_json()
    bundle_id = created.get_json()["id"]
    assert w.client.get("/fhir/Observation/o-p2", headers=w.doctor).status_code == 404
    r = w.client.get(f"/fhir/Bundle/{bundle_id}?{ask}", headers=w.doctor)
    assert r.status_code == 200
    assert provenance_targets(r.get_json()) == []  # now: ['Observation/o-p2/_history/1']


# FINDING 2
def test_provenance_by_target_of_a_withheld_record_answers_like_a_missing_one(world):
    """A stored Provenance whose target is p2's Observation is in no patient compartment
    (R4: only a Patient target puts it in one), so every clinician gets it -- and with it
    the record's existence and what the Provenance says about it."""
    put(
        world.node,
        {
            "resourceType": "Provenance",
            "id": "prov-p2",
            "target": [{"reference": "Observation/o-p2"}],
            "recorded": "2026-01-01T00:00:00Z",
            "agent": [{"who": {"reference": "Practitioner/d9"}}],
            "reason": [{"text": "confirmatory test"}],
        },
    )
    missing = world.client.get("/fhir/Provenance?target=Observation/no-such", headers=world.doctor)
    hidden = world.client.get("/fhir/Provenance?target=Observation/o-p2", headers=world.doctor)
    assert missing.status_code == hidden.status_code == 200
    assert missing.get_json()["total"] == 0
    assert hidden.get_json()["total"] == 0  # now: 1
    assert "o-p2" not in json.dumps(hidden.get_json().get("entry", []))


# FINDING 3
@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_a_consented_clinician_cannot_rewrite_the_consent_that_limits_them(world, method):
    """d1 may write p1's record, and the node counts p1's Consent as part of it: d1
    removes the nested deny that withholds PSY records from them, then reads the
    depression diagnosis. Only the patient (or an administrator, as ``$share`` requires)
    may change a Consent."""
    assert world.client.get("/fhir/Condition/dep", headers=world.doctor).status_code == 404
    if method == "PATCH":
        ops = [{"op": "remove", "path": "/provision/provision"}]
        r = world.client.patch("/fhir/Consent/c-p1", json=ops, headers=world.doctor)
    else:
        body = p1_consent()
        del body["provision"]["provision"]
        r = world.client.put("/fhir/Consent/c-p1", json=body, headers=world.doctor)
    assert r.status_code == 403, r.get_json()  # now: 200
    assert world.client.get("/fhir/Condition/dep", headers=world.doctor).status_code == 404


# FINDING 4
@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_the_access_log_cannot_be_rewritten_by_the_patient(world, method):
    """AuditEvents are the node's hash-chained record of who accessed what. A patient can
    PATCH (or PUT / DELETE) their own log: here p1 makes d1's read look like d2's."""
    assert world.client.get("/fhir/Observation/o-p1", headers=world.doctor).status_code == 200
    log = world.client.get("/fhir/AuditEvent?patient=p1", headers=world.patient).get_json()
    event = next(
        e["resource"]
        for e in log["entry"]
        if any(
            a.get("who", {}).get("reference") == "Practitioner/d1"
            for a in e["resource"].get("agent", [])
        )
    )
    index = next(
        i
        for i, a in enumerate(event["agent"])
        if a.get("who", {}).get("reference") == "Practitioner/d1"
    )
    url = f"/fhir/AuditEvent/{event['id']}"
    if method == "PATCH":
        ops = [
            {"op": "replace", "path": f"/agent/{index}/who/reference", "value": "Practitioner/d2"}
        ]
        r = world.client.patch(url, json=ops, headers={**world.patient, **JSON_PATCH})
    elif method == "PUT":
        forged = json.loads(json.dumps(event))
        forged["agent"][index]["who"]["reference"] = "Practitioner/d2"
        r = world.client.put(url, json=forged, headers=world.patient)
    else:
        r = world.client.delete(url, headers=world.patient)
    assert r.status_code in (403, 405), r.status_code  # now: 200 / 200 / 204
    assert version_of(world, "AuditEvent", event["id"]) == "1"


# FINDING 5
def test_provenance_target_of_another_server_is_a_search_not_a_400(world):
    """``target`` is a reference parameter: an absolute URL of another server is a valid
    value. Alone it now fails the whole search (400) because the anchoring look-up cannot
    parse it; with any other criterion the same stored Provenance is found."""
    url = "https://other.example/fhir/Observation/x1"
    put(
        world.node,
        {
            "resourceType": "Provenance",
            "id": "ext",
            "target": [{"reference": url}],
            "recorded": "2026-01-01T00:00:00Z",
            "agent": [{"who": {"display": "other"}}],
        },
    )
    narrowed = world.client.get(
        f"/fhir/Provenance?target={url}&recorded=2026-01-01T00:00:00Z", headers=world.system
    )
    assert narrowed.status_code == 200 and narrowed.get_json()["total"] == 1
    r = world.client.get(f"/fhir/Provenance?target={url}", headers=world.system)
    assert r.status_code == 200, r.get_json()  # now: 400
    assert [e["resource"]["id"] for e in r.get_json()["entry"]] == ["ext"]


# FINDING 6
@pytest.mark.parametrize(
    ("method", "url", "headers"),
    [
        # new in #15
        ("GET", "/fhir/Provenance?target=Observation/o-p1/_history/%C2%B2", {}),
        ("GET", "/fhir/Provenance?target=Observation/o-p1/_history/99999999999999999999", {}),
        ("PATCH", "/fhir/Observation/o-p1", {"If-Match": 'W/"\u00b2"'}),
        # the same parsing elsewhere
        ("GET", "/fhir/Observation/o-p1/_history/%C2%B2", {}),
        ("GET", "/fhir/Observation/o-p1/_history/9223372036854775808", {}),
        ("GET", "/fhir/Observation/o-p1/_history/99999999999999999999/$provenance", {}),
        ("GET", "/fhir/Observation/o-p1/_history/99999999999999999999/$verify", {}),
        ("GET", "/fhir/Observation/_history?_count=%C2%B2", {}),
        ("GET", "/fhir/Patient/p1/$everything?_count=%C2%B2", {}),
    ],
    ids=[
        "provenance-target-superscript",
        "provenance-target-huge",
        "patch-if-match-superscript",
        "vread-superscript",
        "vread-2**63",
        "provenance-op-huge",
        "verify-op-huge",
        "history-count-superscript",
        "everything-count-superscript",
    ],
)
def test_malformed_numbers_are_400_not_500(world, method, url, headers):
    """``str.isdigit()`` accepts '²' (then ``int()`` raises ValueError) and version ids are
    not range-checked (SQLite: OverflowError): both end as 500."""
    body = [{"op": "test", "path": "/status", "value": "final"}] if method == "PATCH" else None
    r = world.client.open(
        url, method=method, json=body, headers={**world.system, **JSON_PATCH, **headers}
    )
    assert r.status_code in (400, 404), r.status_code  # now: 500
    assert r.get_json()["resourceType"] == "OperationOutcome"


# FINDING 7
@pytest.mark.parametrize("kind", ["batch", "transaction"])
@pytest.mark.parametrize("if_match", [1, ['W/"1"'], 'W/"\u00b2"'], ids=["int", "list", "super2"])
def test_a_malformed_ifmatch_in_a_patch_entry_is_400_not_500(world, kind, if_match):
    patch = [{"op": "replace", "path": "/status", "value": "amended"}]
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(json.dumps(patch).encode()).decode(),
    }
    bundle = {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {
                "resource": binary,
                "request": {"method": "PATCH", "url": "Observation/o-p1", "ifMatch": if_match},
            }
        ],
    }
    r = world.client.post("/fhir", json=bundle, headers=world.system)
    assert r.status_code != 500  # now: 500 (AttributeError / ValueError in _etag_version)
    if kind == "transaction":
        assert r.status_code == 400
    else:
        assert r.get_json()["entry"][0]["response"]["status"].startswith("400")
    assert version_of(world, "Observation", "o-p1") == "1"


# FINDING 8
def test_system_search_does_not_show_a_clinician_other_users_token_events(world):
    """``GET /fhir?_type=AuditEvent`` (and the default all-types system search) hands d1
    the node's token-issue AuditEvents of other users: d2's sign-ins, client, scopes and
    token ids. They are in no patient compartment, so consent never decides them."""
    r = world.client.get("/fhir?_type=AuditEvent&_count=100", headers=world.doctor)
    assert r.status_code in (200, 403)
    found = json.dumps(r.get_json().get("entry", []))
    assert "Practitioner/d2" not in found  # now: d2's token-issue event is listed


# =====================================================================================
# Attacks that were correctly refused.
# =====================================================================================


@pytest.mark.parametrize(
    ("document", "headers"),
    [
        ([{"op": "test", "path": "/code/text", "value": SECRET}], {**JSON_PATCH}),
        ([{"op": "replace", "path": "/status", "value": "amended"}], {"If-Match": 'W/"7"'}),
        ([{"op": "replace", "path": "/nope/x", "value": "a"}], {}),
        (
            {
                "resourceType": "Parameters",
                "parameter": [
                    {
                        "name": "operation",
                        "part": [
                            {"name": "type", "valueCode": "replace"},
                            {
                                "name": "path",
                                "valueString": f"Observation.code.where(text='{SECRET}').text",
                            },
                            {"name": "value", "valueString": "x"},
                        ],
                    }
                ],
            },
            {"Content-Type": "application/fhir+json"},
        ),
        ({"subject": {"reference": "Patient/p1"}}, {**MERGE_PATCH}),
    ],
    ids=["json-patch-test", "if-match", "bad-pointer", "fhirpath-where", "merge-move-in"],
)
def test_patch_of_a_withheld_record_answers_like_a_missing_one(world, document, headers):
    def attempt(res_id):
        r = world.client.patch(
            f"/fhir/Observation/{res_id}",
            json=document,
            headers={**world.doctor, **JSON_PATCH, **headers},
        )
        return r.status_code, r.get_data(as_text=True).replace(res_id, "X")

    assert attempt("o-p2") == attempt("no-such")
    assert attempt("o-p2")[0] == 404
    assert world.node.store.read("Observation", "o-p2")["subject"]["reference"] == "Patient/p2"


@pytest.mark.parametrize("who", ["doctor", "patient"])
def test_patch_cannot_move_a_record_into_another_patients_compartment(world, who):
    ops = [{"op": "replace", "path": "/subject/reference", "value": "Patient/p2"}]
    r = world.client.patch(
        "/fhir/Observation/o-p1", json=ops, headers={**getattr(world, who), **JSON_PATCH}
    )
    assert r.status_code == 403
    assert version_of(world, "Observation", "o-p1") == "1"


def test_a_clinician_cannot_patch_a_practitioner(world):
    ops = [{"op": "add", "path": "/identifier", "value": [{"system": "urn:lic", "value": "x"}]}]
    r = world.client.patch(
        "/fhir/Practitioner/d1", json=ops, headers={**world.doctor, **JSON_PATCH}
    )
    assert r.status_code == 403
    assert "identifier" not in world.node.store.read("Practitioner", "d1")


@pytest.mark.parametrize(
    ("ops", "status"),
    [
        (
            [{"op": "add", "path": "/note", "value": [{"text": "x" * 20000}]}]
            + [{"op": "copy", "from": "/note", "path": "/note/-"}] * 40,
            413,
        ),
        (
            [
                {
                    "op": "add",
                    "path": "/extension",
                    "value": [{"url": "http://x", "valueString": "y"}],
                }
            ]
            + [{"op": "copy", "from": "/extension", "path": "/extension/0/extension"}] * 80,
            400,
        ),
        ([{"op": "replace", "path": "", "value": [1]}], 400),
        ([{"op": "add", "path": "/code", "value": {}}], 400),
    ],
    ids=["copy-doubling", "copy-nesting", "root-not-a-resource", "empty-element"],
)
def test_amplifying_or_invalid_patches_are_4xx(world, ops, status):
    r = world.client.patch(
        "/fhir/Observation/o-p1", json=ops, headers={**world.system, **JSON_PATCH}
    )
    assert r.status_code == status
    assert r.get_json()["resourceType"] == "OperationOutcome"
    assert version_of(world, "Observation", "o-p1") == "1"


@pytest.mark.parametrize("criteria", [f"code:text={SECRET}", "_id=o-p2"])
def test_conditional_create_by_query_never_matches_a_withheld_record(world, criteria):
    r = world.client.post(
        f"/fhir/Observation?{criteria}", json=observation(None, "p1"), headers=world.doctor
    )
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["id"] != "o-p2"
    assert "Patient/p2" not in r.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/Patient/p2/Observation",
        "/fhir/Patient/no-such/Observation",
        "/fhir/Patient/p2/*",
        "/fhir/Patient/p2/*?_type=Observation",
        "/fhir/Patient/p2/Patient",
        "/fhir?_type=Observation&patient=p2",
        "/fhir?_type=Observation&subject.identifier=urn:id:tw|A123456789",
    ],
)
def test_searches_naming_an_unconsented_patient_are_403(world, path):
    r = world.client.get(path, headers=world.doctor)
    assert r.status_code == 403
    assert "o-p2" not in r.get_data(as_text=True)


@pytest.mark.parametrize(
    "query",
    [
        "_id=o-p2&_summary=count",
        "_id=dep&_summary=count",
        "_id=o-p2,dep,o-p1&_total=accurate",
        f"_type=Observation&code:text={SECRET}&_summary=count",
        "_type=Patient&identifier=urn:id:tw|A123456789&_summary=count",
        "_type=Condition&code=F32.9&_summary=count",
    ],
)
def test_system_search_counts_only_what_the_caller_may_read(world, query):
    r = world.client.get(f"/fhir?{query}", headers=world.doctor)
    assert r.status_code == 200
    bundle = r.get_json()
    ids = [e["resource"]["id"] for e in bundle.get("entry", [])]
    assert bundle["total"] == len([i for i in ids if i == "o-p1"]) and "o-p2" not in ids


def test_compartment_search_of_a_consented_patient_withholds_the_carve_out(world):
    every = world.client.get("/fhir/Patient/p1/*", headers=world.doctor).get_json()
    ids = sorted(e["resource"]["id"] for e in every["entry"])
    assert "dep" not in ids and every["total"] == len(ids)
    count = world.client.get("/fhir/Patient/p1/Condition?_summary=count", headers=world.doctor)
    assert count.get_json()["total"] == 0


def test_provenance_search_answers_a_withheld_target_like_a_missing_one(anchored):
    w = anchored
    own = w.client.get("/fhir/Provenance?target=Observation/o-p1", headers=w.doctor).get_json()
    assert provenance_targets(own) == ["Observation/o-p1/_history/1"]
    answers = [
        w.client.get(f"/fhir/Provenance?target={t}", headers=w.doctor).get_json()
        for t in ("Observation/o-p2", "Observation/no-such", "Condition/dep/_history/1")
    ]
    assert [(b["total"], b.get("entry")) for b in answers] == [(0, None)] * 3
    both = w.client.get(
        "/fhir/Observation?_id=o-p1,o-p2&_revinclude=Provenance:target", headers=w.doctor
    ).get_json()
    assert provenance_targets(both) == ["Observation/o-p1/_history/1"]


def test_cors_never_allows_credentials_and_leaves_the_session_pages_closed(world):
    origin = {"Origin": "https://evil.example"}
    api = [
        ("GET", "/fhir/metadata", {}),
        ("GET", "/fhir/Observation/o-p1", world.doctor),
        ("GET", "/fhir/Observation/o-p2", world.doctor),
        ("PATCH", "/fhir/Observation/o-p2", world.doctor),
        ("GET", "/fhir?_id=o-p1", world.doctor),
        ("POST", "/fhir/auth/token", {}),
        ("OPTIONS", "/fhir/Observation/o-p1", {"Access-Control-Request-Method": "PATCH"}),
    ]
    for method, path, headers in api:
        r = world.client.open(path, method=method, headers={**headers, **origin})
        assert r.headers.get("Access-Control-Allow-Origin") == "*", path
        assert "Access-Control-Allow-Credentials" not in r.headers, path
    for path in ("/fhir/auth/login", "/fhir/auth/authorize?client_id=x", "/fhir/auth/launch"):
        for method in ("GET", "POST", "OPTIONS"):
            extra = {"Access-Control-Request-Method": "POST"} if method == "OPTIONS" else {}
            r = world.client.open(path, method=method, headers={**origin, **extra})
            assert not any(h.lower().startswith("access-control-") for h, _ in r.headers.items())


def test_refresh_without_client_id_takes_only_a_live_public_token(world):
    from fhir_server.smart.tokens import Subject

    smart = world.app.extensions["phrx.smart"].service
    smart.users.add("alice", "patient", "Patient/p1", PASSWORD)
    smart.clients.add("app-public", "public", redirect_uris=[REDIRECT])
    smart.clients.add("app-public2", "public", redirect_uris=[REDIRECT])
    _, secret = smart.clients.add("app-conf", "symmetric", redirect_uris=[REDIRECT])
    scope = "launch/patient patient/*.rs offline_access"

    def issue(client_id):
        subject = Subject("alice", "Patient/p1", {"patient": "p1"})
        base = "http://localhost/fhir"
        issued = smart.tokens.issue(base, "code", client_id, subject, scope, 300, refresh=True)
        return issued["refresh_token"]

    def refresh(token, headers=None, **extra):
        data = {"grant_type": "refresh_token", "refresh_token": token, **extra}
        return world.client.post("/fhir/auth/token", data=data, headers=headers or {})

    confidential = issue("app-conf")
    bare = refresh(confidential)
    assert bare.status_code == 401 and bare.get_json()["error"] == "invalid_client"
    basic = base64.b64encode(f"app-conf:{secret}".encode()).decode()
    assert refresh(confidential, {"Authorization": f"Basic {basic}"}).status_code == 200

    public = issue("app-public")
    stolen = refresh(public, client_id="app-public2")
    assert stolen.status_code == 400 and stolen.get_json()["error"] == "invalid_grant"
    revoked = world.client.post(
        "/fhir/auth/revoke", data={"token": public, "client_id": "app-public"}
    )
    assert revoked.status_code == 200
    after = refresh(public)
    assert after.status_code == 400 and after.get_json()["error"] == "invalid_grant"
    widened = refresh(issue("app-public"), scope="patient/*.cruds")
    assert widened.status_code == 400 and widened.get_json()["error"] == "invalid_scope"
