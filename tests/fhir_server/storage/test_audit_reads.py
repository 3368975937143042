"""Issue 6: a read's access decision and its AuditEvent are ONE transaction (SQLite and
PostgreSQL), committed before the response; the events are cheap but complete.

The audit is made to fail without mocking: the chain head row is deleted behind
the node's back (the process remembers it exists), so the event of the next
access cannot be chained and the request transaction rolls back.
"""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import delete, func, select

from fhir_server.search.params import AUDIT_EVENT_PARAMS
from fhir_server.search.runner import run_search
from fhir_server.search.tables import ALL_TABLES
from fhir_server.storage.audit_log import HEAD_SETTING, head, verify_log
from fhir_server.storage.db import node_settings, resources, versions
from fhir_server.validation import validate_resource

SECRET_NAME = "Quetzalsentinel"
DIAGNOSIS = "F32.9"


def access_log(node) -> list[dict]:
    return run_search(node.store, "AuditEvent", [("_count", "1000")]).matches


def access_events(node) -> list[dict]:
    return [e for e in access_log(node) if not e["subtype"][0]["code"].startswith("token-")]


def count_events(node) -> int:
    with node.engine.connect() as conn:
        query = select(func.count()).select_from(versions)
        return conn.execute(query.where(versions.c.res_type == "AuditEvent")).scalar_one()


def drop_head(node) -> None:
    with node.engine.begin() as conn:
        conn.execute(delete(node_settings).where(node_settings.c.name == HEAD_SETTING))


@pytest.fixture
def record(node, cx):
    cx.put(node, {"resourceType": "Patient", "id": "p1", "name": [{"family": SECRET_NAME}]})
    cx.put(node, {**_patient(), "gender": "female"})  # version 2
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": DIAGNOSIS}]},
    }
    cx.put(node, condition)
    return node


def _patient() -> dict:
    return {"resourceType": "Patient", "id": "p1", "name": [{"family": SECRET_NAME}]}


READS = [
    "/fhir/Patient/p1",
    "/fhir/Patient/p1/_history/1",
    "/fhir/Patient?name=" + SECRET_NAME,
    "/fhir/Patient/p1/_history",
    "/fhir/Condition?patient=p1",
    "/fhir/Patient/p1/$everything",
    "/fhir/Patient/p1/$summary",
]


@pytest.mark.parametrize("path", READS)
def test_a_read_is_audited_before_the_response_leaves(client, record, path):
    before = count_events(record)
    response = client.get(path)
    assert response.status_code == 200, response.json
    # The response is out: its event is committed (read from another connection).
    assert count_events(record) == before + 1
    assert record.store.bound() is None  # the request transaction is over


@pytest.mark.parametrize("path", READS)
def test_a_read_whose_audit_fails_returns_no_data(client, record, path):
    before = count_events(record)
    drop_head(record)
    response = client.get(path)
    assert response.status_code == 500
    assert response.json["resourceType"] == "OperationOutcome"
    assert "audited" in response.json["issue"][0]["diagnostics"]  # no stack trace
    assert SECRET_NAME not in response.get_data(as_text=True)
    assert count_events(record) == before  # nothing half-written
    assert record.store.bound() is None


def test_a_denial_whose_audit_fails_is_a_500(app, record, cx):
    doctor = cx.bearer(app, username="drx", fhir_user="Practitioner/d9", scope="user/*.rs")
    plain = app.test_client()
    assert plain.get("/fhir/Condition/c1", headers=doctor).status_code in (403, 404)
    denied = access_events(record)[-1]
    assert denied["outcome"] == "4"
    drop_head(record)
    response = plain.get("/fhir/Condition?patient=p1", headers=doctor)
    assert response.status_code == 500
    assert DIAGNOSIS not in response.get_data(as_text=True)


def test_read_events_are_valid_r4_node_sealed_and_indexed_only_as_needed(client, record, cx):
    for path in READS:
        assert client.get(path).status_code == 200
    events = access_log(record)
    assert len(events) >= len(READS)
    for event in events:  # stored without re-validation: valid by construction
        validate_resource(event)
    with record.engine.connect() as conn:
        scopes = conn.execute(
            select(versions.c.key_scope).where(versions.c.res_type == "AuditEvent").distinct()
        ).all()
        pks = select(resources.c.pk).where(resources.c.res_type == "AuditEvent")
        params = set()
        for table in ALL_TABLES:
            found = select(table.c.param).where(table.c.resource_pk.in_(pks)).distinct()
            params |= {row[0] for row in conn.execute(found)}
    assert [tuple(s) for s in scopes] == [("node",)]
    assert params <= AUDIT_EVENT_PARAMS and {"patient", "date", "subtype"} <= params
    assert verify_log(record.store, events).ok
    assert head(record.engine).sequence == len(events)
    # The patient's access log is searched by those params.
    reads = run_search(record.store, "AuditEvent", [("patient", "p1"), ("subtype", "read")])
    assert {e["entity"][1]["what"]["reference"] for e in reads.matches} == {"Patient/p1"}


def test_the_logged_query_keeps_ids_and_hides_clinical_values(client, record):
    assert client.get(f"/fhir/Condition?patient=p1&code={DIAGNOSIS}&_count=5").status_code == 200
    event = access_events(record)[-1]
    query = base64.b64decode(event["entity"][1]["query"]).decode()
    assert query.startswith("Condition?patient=p1&code=%23") and query.endswith("&_count=5")
    assert DIAGNOSIS not in json.dumps(event)
    assert client.get(f"/fhir/Patient?name={SECRET_NAME}").status_code == 200
    assert SECRET_NAME not in json.dumps(access_events(record)[-1])


def test_write_requests_do_not_open_a_read_transaction(client, record):
    body = {**_patient(), "gender": "other"}
    assert client.put("/fhir/Patient/p1", json=body).status_code == 200
    assert client.post("/fhir/Patient", json={"resourceType": "Patient"}).status_code == 201
    assert record.store.bound() is None
    assert verify_log(record.store, access_log(record)).ok


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_reads_and_audit_share_the_request_transaction(record, outcome):
    """What the decision reads (store.connect, searches, Consent look-ups) and what is
    recorded (audit_log.record) go through the one request transaction."""
    from consent import audit
    from fhir_server.storage import audit_store
    from fhir_server.storage.audit_log import record as record_event

    before = count_events(record)
    audit_store.prepare(record.store)  # as the HTTP hook does, before the transaction
    transaction = record.store.begin_request()
    try:
        with record.store.connect() as conn:
            assert conn is transaction.conn
        assert record.consent.consent_token("p1") == ()  # read on the same connection
        assert run_search(record.store, "Patient", [("_id", "p1")]).total == 1
        record_event(record.store, audit.read("Patient/p1", "p1"))
        assert count_events(record) == before  # not visible outside before the commit
    finally:
        getattr(transaction, outcome)()
    assert record.store.bound() is None
    assert count_events(record) == before + (1 if outcome == "commit" else 0)
