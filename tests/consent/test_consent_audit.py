"""BALP-style AuditEvent builders and the tamper-evident audit chain."""

from __future__ import annotations

import base64
import copy

import pytest

from consent import audit
from consent.audit_chain import AuditChain, Head, verify_chain
from fhir_server.search.compartment import compartment_patient_ids
from fhir_server.validation import validate_resource

WHO = {"user": "Practitioner/d1", "client_id": "ehr-app", "node": "tw-node", "country": "TW"}


@pytest.mark.parametrize(
    "build",
    [
        lambda: audit.read("Condition/c1", "p1", purpose="TREAT", **WHO),
        lambda: audit.query("Condition", "patient=p1", "p1", **WHO),
        lambda: audit.create("Observation/o1", "p1", **WHO),
        lambda: audit.update("Observation/o1", "p1", **WHO),
        lambda: audit.delete("Observation/o1", "p1", **WHO),
        lambda: audit.disclosure(["Condition/c1"], "p1", "PH", **WHO),
        lambda: audit.denial("read", "Condition/c1", "p1", ["default deny"], **WHO),
        lambda: audit.break_glass("p1", "unconscious", True, **WHO),
        lambda: audit.break_glass("p1", "", False, **WHO),
        lambda: audit.token_use("jti-1", "user/*.rs", **WHO),
        lambda: audit.erasure("p1", **WHO),
        lambda: audit.read("Condition/c1", "p1"),  # the node itself
    ],
)
def test_builders_produce_valid_r4_audit_events(build):
    event = build()
    validate_resource(event)
    assert event["recorded"].endswith("Z")
    assert event["source"]["observer"]


def test_who_what_when_why_outcome():
    event = audit.read("Condition/c1", "p1", purpose="TREAT", policy=("Consent/c9",), **WHO)
    human = event["agent"][0]
    assert human["who"]["reference"] == "Practitioner/d1" and human["requestor"] is True
    assert human["who"]["extension"][0]["valueCode"] == "TW"
    assert human["policy"] == ["Consent/c9"]
    assert event["agent"][1]["who"]["identifier"]["value"] == "ehr-app"
    assert [e["what"]["reference"] for e in event["entity"]] == ["Condition/c1", "Patient/p1"]
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    assert event["outcome"] == "0" and event["source"]["site"] == "TW"
    assert compartment_patient_ids(event) == {"p1"}  # the patient sees it in their log


def test_denial_query_and_foreign_actor():
    denied = audit.denial("read", "Condition/c1", "p1", ["no consent"], **WHO)
    assert denied["outcome"] == "4" and "no consent" in denied["outcomeDesc"]
    found = audit.query("Condition", "patient=p1&code=E11.9", "p1", **WHO)
    assert base64.b64decode(found["entity"][0]["query"]) == b"Condition?patient=p1&code=E11.9"
    foreign = audit.read("Condition/c1", "p1", identifiers=(("urn:ph", "42"),), country="PH")
    assert foreign["agent"][0]["who"]["identifier"]["value"] == "42"


def test_erasure_stays_in_the_erased_patients_access_log():
    # AuditEvents are sealed under the node key, so the erasure can name the patient.
    event = audit.erasure("p1", user="Patient/p1", client_id="app", country="TW")
    assert compartment_patient_ids(event) == {"p1"}


def test_token_use_never_holds_the_token():
    event = audit.token_use("jti-1", "user/*.rs", **WHO)
    assert event["entity"][0]["what"]["identifier"]["value"] == "jti-1"


def _chain(count=5):
    chain = AuditChain()
    events = [chain.append(audit.read(f"Condition/c{i}", "p1", **WHO)) for i in range(count)]
    return chain, events


def test_intact_chain_verifies():
    chain, events = _chain()
    report = verify_chain(list(reversed(events)), chain.head)
    assert report.ok, report.problems
    assert report.checked == 5


def test_deleting_an_event_is_detected():
    chain, events = _chain()
    del events[2]
    report = verify_chain(events, chain.head)
    assert not report.ok
    assert any("deleted" in p and "#3" in p for p in report.problems)


def test_altering_an_event_is_detected():
    chain, events = _chain()
    events[1] = copy.deepcopy(events[1])
    events[1]["outcome"] = "8"
    report = verify_chain(events, chain.head)
    assert not report.ok
    assert any("altered" in p and "#2" in p for p in report.problems)


def test_altering_or_dropping_the_last_event_needs_the_head():
    chain, events = _chain()
    assert verify_chain(events[:-1]).ok  # without the head a truncation is invisible
    assert not verify_chain(events[:-1], chain.head).ok
    events[-1] = {**events[-1], "outcomeDesc": "edited"}
    assert not verify_chain(events, chain.head).ok


def test_resumed_chain_and_unchained_event():
    chain, events = _chain(2)
    resumed = AuditChain(Head(chain.head.sequence, chain.head.digest))
    events.append(resumed.append(audit.read("Condition/x", "p1", **WHO)))
    assert verify_chain(events, resumed.head).ok
    stray = audit.read("Condition/y", "p1", **WHO)
    assert not verify_chain([*events, stray]).ok


@pytest.mark.parametrize(
    ("path", "what", "description"),
    [
        ("Condition/c1", "Condition/c1", None),
        ("Condition/c1/_history/2", "Condition/c1/_history/2", None),
        ("Patient/p1/$summary", "Patient/p1", "Patient/p1/$summary"),
        ("Patient/p1/_history/1/$verify", "Patient/p1/_history/1", "Patient/p1/_history/1/$verify"),
        ("Observation", None, "Observation"),  # a type-level search
        ("", None, "/"),  # the system
    ],
)
def test_entities_name_request_paths_with_literal_references_only(path, what, description):
    """Reference.reference must be a literal reference (R4 references.html): a path with
    an $operation names the resource it acts on; a type or the system, none."""
    entity = audit.entity_of(path)
    assert entity.get("what") == ({"reference": what} if what else None)
    assert entity.get("description") == description
    denied = audit.denial("search-type", path, "p1", ["scope"], **WHO)
    validate_resource(denied)
