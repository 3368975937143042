"""Issue 3: resource-server enforcement, on SQLite and PostgreSQL.

401 without a valid token, 403 for insufficient scopes, and a ``patient/`` token
of p1 attacking p2's data through the path, queries, ``_include``,
``_revinclude``, ``_has``, chaining, batch / transaction entries,
``$everything`` and ``_history``: each attempt is rejected and answers exactly
like missing data (no count, link or message reveals p2's data).
"""

from __future__ import annotations

from tests.fhir_server.api import enforcement_data as data
from tests.fhir_server.api.enforcement_data import assert_missing, ids_of, obs

app, seeded, p1 = data.app, data.seeded, data.p1  # fixtures: auth-on app, seeded node, p1


# -- 401 / 403 ---------------------------------------------------------------------
def test_missing_garbage_and_expired_tokens_get_401(app, seeded, monkeypatch):
    anonymous = app.test_client()
    for headers in ({}, {"Authorization": "Bearer not.a.jwt"}, {"Authorization": "Basic eA=="}):
        r = anonymous.get("/fhir/Patient/p1", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["WWW-Authenticate"].startswith('Bearer realm="phrx"')
        assert r.json["resourceType"] == "OperationOutcome"
    assert (
        'error="invalid_token"'
        in anonymous.get("/fhir/Patient", headers={"Authorization": "Bearer not.a.jwt"}).headers[
            "WWW-Authenticate"
        ]
    )
    for path in ("/fhir/metadata", "/fhir/.well-known/smart-configuration"):
        assert anonymous.get(path).status_code == 200
    from fhir_server import ids

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
    assert seen == {
        "Patient/p1",
        "Observation/o1",
        "Observation/o1v",
        "Observation/o5",
        "Condition/c1",
    }
    assert everything["total"] == 5
    assert p1.get("/fhir/_history?_count=2").json["link"][1]["relation"] == "next"


def test_patient_users_user_scopes_are_confined_too(seeded, app, client_for):
    from tests.smart_tokens import user_token

    token = user_token(app, "user/*.rs", "pat-user", "patient", "Patient/p1")
    mine = client_for(token)
    assert mine.get("/fhir/Observation/o1").status_code == 200
    assert_missing(mine.get("/fhir/Observation/o2"), "Observation/o2")
    assert mine.get("/fhir/Observation?code=B").json["total"] == 0


def test_practitioner_user_scopes_need_the_patients_consent(seeded, user_client):
    """Issue 6: user/ scopes are an upper bound; without a Consent a practitioner
    sees no patient's records (as if missing; a count of 0), and writes are refused."""
    doctor = user_client("user/*.rs")
    assert_missing(doctor.get("/fhir/Observation/o2"), "Observation/o2")
    found = doctor.get("/fhir/Observation?code=B").json
    assert "entry" not in found and found["total"] == 0
    assert doctor.post("/fhir/Observation", json=obs("x", "p1", "X")).status_code == 403


def test_granular_scopes(seeded, patient_client):
    lab = patient_client("p1", "launch/patient patient/Observation.rs?category=laboratory")
    assert lab.get("/fhir/Observation").status_code == 403
    bundle = lab.get("/fhir/Observation?category=laboratory").json
    assert ids_of(bundle) == {"Observation/o1", "Observation/o5"}
    assert lab.get("/fhir/Observation/o1").status_code == 200
    assert_missing(lab.get("/fhir/Observation/o1v"), "Observation/o1v")  # vital signs
    assert lab.get("/fhir/Observation/o1/_history").status_code == 403


def test_undecryptable_rows_of_others_answer_like_missing(p1, seeded, node):
    from sqlalchemy import update

    from fhir_server.storage.db import versions

    with node.engine.begin() as conn:
        conn.execute(
            update(versions).where(versions.c.res_id.in_(["o2", "o1v"])).values(sealed=b"x" * 64)
        )
    assert_missing(p1.get("/fhir/Observation/o2"), "Observation/o2")
    assert_missing(p1.get("/fhir/Observation/o2/$verify"), "Observation/o2")
    assert seeded.get("/fhir/Observation/o2").status_code == 500  # the operator sees it
    assert p1.get("/fhir/Observation/o1v").status_code == 500  # p1's own: reported
    assert p1.get("/fhir/Observation/o1v/$verify").status_code == 200
