"""A database write without the keys must not change what is served (issue #14).

(a) Index rows are hints, the sealed content is the authority: B's Observation moved into
A's compartment by editing ``resource_compartments`` and ``sidx_ref`` is never served
to A. (b) Rolling a resource or a Consent back to an older version, or deleting its
newest version, by editing ``resources`` / ``resource_versions`` is detected: reads
refuse it and ``$verify`` answers false.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.consent_builders import bearer, privacy_consent

JSON = {"Content-Type": "application/fhir+json"}


def _put(client, resource: dict) -> dict:
    path = f"/fhir/{resource['resourceType']}/{resource['id']}"
    response = client.put(path, json=resource, headers=JSON)
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def _obs(res_id: str, patient: str, value: str = "first") -> dict:
    return {
        "resourceType": "Observation",
        "id": res_id,
        "status": "final",
        "code": {"text": value},
        "subject": {"reference": f"Patient/{patient}"},
    }


@pytest.fixture
def two_patients(client):
    _put(client, {"resourceType": "Patient", "id": "pa"})
    _put(client, {"resourceType": "Patient", "id": "pb"})
    _put(client, _obs("oa", "pa"))
    _put(client, _obs("ob", "pb", "b-secret"))
    return client


def _sql(node, statement: str, **params) -> None:
    with node.store.engine.begin() as conn:
        conn.execute(text(statement), params)


def _pk(node, res_type: str, res_id: str) -> int:
    with node.store.engine.connect() as conn:
        query = text("SELECT pk FROM resources WHERE res_type = :t AND res_id = :i")
        return conn.execute(query, {"t": res_type, "i": res_id}).scalar_one()


def _move_into_a(node) -> None:
    pk = _pk(node, "Observation", "ob")
    _sql(node, "UPDATE resource_compartments SET patient_id = 'pa' WHERE resource_pk = :pk", pk=pk)
    _sql(node, "UPDATE sidx_ref SET target_id = 'pa' WHERE resource_pk = :pk", pk=pk)


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/Observation",
        "/fhir/Observation?patient=pa",
        "/fhir/Observation?subject=Patient/pa",
        "/fhir/Observation?patient=pa&_sort=code",
        "/fhir/Patient?_id=pa&_revinclude=Observation:subject",
        "/fhir/Patient/pa/$everything",
        "/fhir/Observation/_history",
    ],
)
def test_edited_compartment_rows_never_serve_another_patients_record(
    app, node, two_patients, patient_client, path
):
    _move_into_a(node)
    alice = patient_client("pa", "launch/patient patient/*.rs")
    response = alice.get(path)
    assert response.status_code == 200, response.get_json()
    body = response.get_data(as_text=True)
    assert "b-secret" not in body and '"ob"' not in body
    assert '"oa"' in body  # A's own record is still served


def test_edited_compartment_rows_do_not_reach_the_summary(app, node, two_patients, patient_client):
    _move_into_a(node)
    alice = patient_client("pa", "launch/patient patient/*.rs")
    response = alice.get("/fhir/Patient/pa/$summary")
    assert "b-secret" not in response.get_data(as_text=True)


def _rollback(node, res_type: str, res_id: str, *, drop_newer: bool) -> None:
    """Point ``resources`` back at version 1 (and optionally delete the newer rows),
    copying version 1's row values, as an attacker with SQL access but no keys can."""
    _sql(
        node,
        "UPDATE resources SET version_id = 1, last_updated_us = (SELECT last_updated_us "
        "FROM resource_versions WHERE res_type = :t AND res_id = :i AND version_id = 1) "
        "WHERE res_type = :t AND res_id = :i",
        t=res_type,
        i=res_id,
    )
    if drop_newer:
        _sql(
            node,
            "DELETE FROM resource_versions WHERE res_type = :t AND res_id = :i AND version_id > 1",
            t=res_type,
            i=res_id,
        )


@pytest.mark.parametrize("drop_newer", [False, True])
def test_a_rolled_back_resource_is_detected(node, client, drop_newer):
    _put(client, {"resourceType": "Patient", "id": "pa"})
    _put(client, _obs("oa", "pa", "first"))
    _put(client, _obs("oa", "pa", "second"))
    _rollback(node, "Observation", "oa", drop_newer=drop_newer)
    read = client.get("/fhir/Observation/oa")
    assert read.status_code >= 400 and read.status_code != 404
    assert "first" not in read.get_data(as_text=True)
    assert read.get_json()["resourceType"] == "OperationOutcome"
    search = client.get("/fhir/Observation?patient=pa").get_data(as_text=True)
    assert '"first"' not in search


def test_a_rolled_back_consent_no_longer_permits(app, node, client):
    """The patient revoked a share (Consent v2 inactive); an attacker rolls the Consent
    back to v1 (active): the practitioner must not regain access."""
    _put(client, {"resourceType": "Patient", "id": "p1"})
    _put(client, _obs("o1", "p1", "private"))
    consent = privacy_consent("p1", cid="c1", period=("2000-01-01", "2099-12-31"))
    _put(client, consent)
    doctor = bearer(app, username="drbob", fhir_user="Practitioner/d1", scope="user/*.rs")
    web = app.test_client()
    assert web.get("/fhir/Observation/o1", headers=doctor).status_code == 200
    _put(client, {**consent, "status": "inactive"})
    assert web.get("/fhir/Observation/o1", headers=doctor).status_code == 404
    _rollback(node, "Consent", "c1", drop_newer=True)
    node.consent.consent_changed("p1")  # as another worker would see it
    again = web.get("/fhir/Observation/o1", headers=doctor)
    assert again.status_code != 200
    assert "private" not in again.get_data(as_text=True)


@pytest.fixture
def anchored(tmp_path, database_url):
    """A node on the in-process chain, anchoring on request ($anchor)."""
    from fhir_server.app import create_app
    from fhir_server.node import Node, NodeConfig
    from tests.smart_tokens import authorize, backend_token

    node = Node(
        NodeConfig(
            data_dir=tmp_path / "chain-data",
            database_url=database_url,
            chain="memory",
            anchor_worker=False,
            anchor_country="TW",
        )
    )
    app = create_app({"NODE": node, "TESTING": True})
    yield node, authorize(app.test_client(), backend_token(app))
    node.close()


def _verify(api, path: str) -> dict:
    assert api.post("/fhir/$anchor").status_code == 200
    body = api.get(f"{path}/$verify").get_json()
    return {p["name"]: p for p in body["parameter"]}


@pytest.mark.parametrize("drop_newer", [False, True])
def test_verify_detects_a_rollback_of_anchored_versions(anchored, drop_newer):
    node, api = anchored
    _put(api, {"resourceType": "Patient", "id": "pa"})
    _put(api, _obs("oa", "pa", "first"))
    assert _verify(api, "/fhir/Observation/oa")["result"]["valueBoolean"] is True
    _put(api, _obs("oa", "pa", "second"))
    assert _verify(api, "/fhir/Observation/oa")["result"]["valueBoolean"] is True
    _rollback(node, "Observation", "oa", drop_newer=drop_newer)
    found = _verify(api, "/fhir/Observation/oa")
    assert found["result"]["valueBoolean"] is False
    assert "version chain broken" in json_text(found)


def test_verify_detects_a_deleted_middle_version(anchored):
    node, api = anchored
    _put(api, {"resourceType": "Patient", "id": "pa"})
    for value in ("first", "second", "third"):
        _put(api, _obs("oa", "pa", value))
    assert _verify(api, "/fhir/Observation/oa")["result"]["valueBoolean"] is True
    _sql(
        node,
        "DELETE FROM resource_versions WHERE res_type = 'Observation' AND res_id = 'oa' "
        "AND version_id = 2",
    )
    assert _verify(api, "/fhir/Observation/oa")["result"]["valueBoolean"] is False
    assert _verify(api, "/fhir/Observation/oa/_history/3")["result"]["valueBoolean"] is False


def test_a_write_on_top_of_a_rollback_is_refused(anchored):
    """Writing v2 again over a rolled-back pointer would launder the rollback."""
    node, api = anchored
    _put(api, {"resourceType": "Patient", "id": "pa"})
    _put(api, _obs("oa", "pa", "first"))
    _put(api, _obs("oa", "pa", "second"))
    _rollback(node, "Observation", "oa", drop_newer=True)
    response = api.put("/fhir/Observation/oa", json=_obs("oa", "pa", "third"), headers=JSON)
    assert response.status_code == 500
    assert response.get_json()["issue"][0]["code"] in ("exception", "security", "processing")


def json_text(found: dict) -> str:
    import json

    return json.dumps(found)


def _damage(node, res_type: str, res_id: str) -> None:
    with node.store.engine.begin() as conn:
        query = "SELECT sealed FROM resource_versions WHERE res_type = :t AND res_id = :i"
        sealed = bytearray(conn.execute(text(query), {"t": res_type, "i": res_id}).scalar_one())
        sealed[-1] ^= 1
        conn.execute(
            text("UPDATE resource_versions SET sealed = :s WHERE res_type = :t AND res_id = :i"),
            {"s": bytes(sealed), "t": res_type, "i": res_id},
        )


def test_a_damaged_row_is_named_and_the_rest_served(node, client):
    _put(client, {"resourceType": "Patient", "id": "pa"})
    _put(client, _obs("oa", "pa", "kept"))
    _put(client, _obs("ob", "pa", "broken"))
    _damage(node, "Observation", "ob")
    response = client.get("/fhir/Observation?patient=pa")
    assert response.status_code == 200, response.get_json()
    bundle = response.get_json()
    matches = [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert matches == ["oa"]
    outcomes = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert outcomes and "Observation/ob" in outcomes[0]["issue"][0]["diagnostics"]
    assert client.get("/fhir/Observation/ob").status_code == 500  # a read still refuses it


def test_a_damaged_row_is_not_named_to_a_restricted_caller(node, client, patient_client):
    _put(client, {"resourceType": "Patient", "id": "pa"})
    _put(client, {"resourceType": "Patient", "id": "pb"})
    _put(client, _obs("oa", "pa", "kept"))
    _put(client, _obs("ob", "pb", "broken"))
    _move_into_a(node)
    _damage(node, "Observation", "ob")
    alice = patient_client("pa", "launch/patient patient/*.rs")
    response = alice.get("/fhir/Observation?patient=pa")
    assert response.status_code == 200
    assert "ob" not in [e["resource"].get("id") for e in response.get_json()["entry"]]
    assert "Observation/ob" not in response.get_data(as_text=True)


def test_a_damaged_consent_fails_closed(app, node, client):
    """A Consent that cannot be read may be the deny that applies: nobody but the
    patient is let in until it is repaired."""
    _put(client, {"resourceType": "Patient", "id": "p1"})
    _put(client, _obs("o1", "p1", "private"))
    _put(client, privacy_consent("p1", cid="c1", period=("2000-01-01", "2099-12-31")))
    _put(client, privacy_consent("p1", cid="c2", period=("2000-01-01", "2099-12-31")))
    doctor = bearer(app, username="drbob", fhir_user="Practitioner/d1", scope="user/*.rs")
    web = app.test_client()
    assert web.get("/fhir/Observation/o1", headers=doctor).status_code == 200
    _damage(node, "Consent", "c2")
    node.consent.consent_changed("p1")
    refused = web.get("/fhir/Observation/o1", headers=doctor)
    assert refused.status_code == 500
    assert "private" not in refused.get_data(as_text=True)


def _forget_chains(node) -> None:
    """What a store written before version chains looks like: no links, no heads."""
    _sql(node, "UPDATE resource_versions SET link = NULL")
    _sql(node, "UPDATE resources SET head = NULL")


def _reopen(node):
    from fhir_server.node import Node

    node.close()
    return Node(node.config)


def test_a_store_from_before_version_chains_is_chained_once(node, client):
    import json

    _put(client, {"resourceType": "Patient", "id": "pa"})
    _put(client, _obs("oa", "pa", "first"))
    _put(client, _obs("oa", "pa", "second"))
    _forget_chains(node)
    identity_file = node.config.data_dir / "node.json"
    identity = json.loads(identity_file.read_text())
    del identity["version_chains"]  # a data dir made before chains existed
    identity_file.write_text(json.dumps(identity))
    again = _reopen(node)
    try:
        assert again.store.read("Observation", "oa")["code"]["text"] == "second"
        assert again.store.chain_break("Observation", "oa") is None
        assert json.loads(identity_file.read_text())["version_chains"] == 1
    finally:
        again.close()


def test_a_marked_store_is_never_chained_again(node, client):
    """Dropping the chains in the database cannot make the node re-chain (launder) a
    rolled-back resource: the mark lives in node.json, outside the database."""
    from fhir_server.errors import IntegrityFailure

    _put(client, {"resourceType": "Patient", "id": "pa"})
    _put(client, _obs("oa", "pa", "first"))
    _put(client, _obs("oa", "pa", "second"))
    _rollback(node, "Observation", "oa", drop_newer=True)
    _forget_chains(node)
    again = _reopen(node)
    try:
        with pytest.raises(IntegrityFailure):
            again.store.read("Observation", "oa")
    finally:
        again.close()


def _drop_current_version_row(node, res_type: str, res_id: str) -> None:
    _sql(
        node,
        "DELETE FROM resource_versions WHERE res_type = :t AND res_id = :i AND version_id = "
        "(SELECT version_id FROM resources WHERE res_type = :t AND res_id = :i)",
        t=res_type,
        i=res_id,
    )


def test_a_pointer_without_its_version_row_is_an_integrity_failure(node, client):
    _put(client, {"resourceType": "Patient", "id": "pa"})
    _put(client, _obs("oa", "pa", "first"))
    _put(client, _obs("oa", "pa", "second"))
    _drop_current_version_row(node, "Observation", "oa")
    assert client.get("/fhir/Observation/oa").status_code == 500  # not "absent" (404)
    page = client.get("/fhir/Observation?patient=pa").get_json()
    outcomes = [e for e in page.get("entry", []) if e["search"]["mode"] == "outcome"]
    assert outcomes and "Observation/oa" in outcomes[0]["resource"]["issue"][0]["diagnostics"]


def test_a_consent_without_its_version_row_fails_closed(app, node, client):
    _put(client, {"resourceType": "Patient", "id": "p1"})
    _put(client, _obs("o1", "p1", "private"))
    _put(client, privacy_consent("p1", cid="c1", period=("2000-01-01", "2099-12-31")))
    _put(client, privacy_consent("p1", cid="c2", period=("2000-01-01", "2099-12-31")))
    doctor = bearer(app, username="drbob", fhir_user="Practitioner/d1", scope="user/*.rs")
    web = app.test_client()
    assert web.get("/fhir/Observation/o1", headers=doctor).status_code == 200
    _drop_current_version_row(node, "Consent", "c2")
    node.consent.consent_changed("p1")
    assert web.get("/fhir/Observation/o1", headers=doctor).status_code == 500


@pytest.mark.parametrize(
    "hide",
    [
        "UPDATE resources SET deleted = :t WHERE res_type = 'Consent' AND res_id = 'deny'",
        "DELETE FROM sidx_hash WHERE resource_pk = "
        "(SELECT pk FROM resources WHERE res_type = 'Consent' AND res_id = 'deny')",
    ],
)
def test_a_deny_consent_cannot_be_hidden_from_the_decision(app, node, client, hide):
    """Flipping the pointer's deleted flag or dropping its index rows hides a Consent
    from searches; the decision reads the patient's Consents through the store."""
    _put(client, {"resourceType": "Patient", "id": "p1"})
    _put(client, _obs("o1", "p1", "private"))
    everywhere = ("2000-01-01", "2099-12-31")
    _put(client, privacy_consent("p1", cid="permit", period=everywhere))
    deny = privacy_consent("p1", cid="deny", period=everywhere)
    deny["provision"]["type"] = "deny"
    _put(client, deny)
    doctor = bearer(app, username="drbob", fhir_user="Practitioner/d1", scope="user/*.rs")
    web = app.test_client()
    assert web.get("/fhir/Observation/o1", headers=doctor).status_code == 404
    _sql(node, hide, t=True)
    node.consent.consent_changed("p1")
    again = web.get("/fhir/Observation/o1", headers=doctor)
    assert again.status_code != 200
    assert "private" not in again.get_data(as_text=True)
