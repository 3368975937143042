"""Issue #14, below HTTP: a local practitioner is known by the identifiers of their
Practitioner resource (fhir_server.access.consent_hook.LocalIdentifiers), looked up only when the
patient's Consents name an actor by identifier, cached per version, and never for
another node's gateway."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from consent.engine import Actor
from consent.provisions import names_identifiers
from fhir_server.access.consent_hook import LocalIdentifiers, NodeConsent, resource_identifiers
from fhir_server.smart import scopes
from fhir_server.smart.access import AccessContext
from fhir_server.storage.db import versions

LICENCE = "https://tw.example/licence"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def access(user, client="app", **context):
    parsed = (scopes.parse_resource_scope("user/*.rs"),)
    return AccessContext(client, user, None, parsed, "user/*.rs", "u", "j", 0, context)


def doctor(pid="dx", *identifiers, **extra):
    body = {"resourceType": "Practitioner", "id": pid, **extra}
    body["identifier"] = [{"system": s, "value": v} for s, v in identifiers]
    return body


@pytest.fixture
def seeded(node, cx):
    cx.put(node, {"resourceType": "Patient", "id": "p1"})
    cx.put(node, {"resourceType": "Patient", "id": "p2"})
    cx.put(node, doctor("dx", (LICENCE, "7")))
    country = node.config.anchor_country
    actors = ((None, (LICENCE, "7"), country),)
    cx.put(node, cx.privacy_consent("p1", cid="by-id", actors=actors))
    cx.put(node, cx.privacy_consent("p2", cid="by-ref", actors=(("Practitioner/dq",),)))
    return node


class CountingStore:
    """The node's store, counting current-version look-ups."""

    def __init__(self, store):
        self.store, self.lookups = store, 0

    def current_version(self, res_type, res_id):
        self.lookups += 1
        return self.store.current_version(res_type, res_id)

    def open_version(self, row):
        return self.store.open_version(row)


def test_identifier_consent_permits_the_local_practitioner_carrying_it(seeded):
    hook = NodeConsent(seeded)
    decision = hook.decide(access("Practitioner/dx"), "read", "Patient", None, "p1", now=NOW)
    assert decision.permit, decision.reasons
    assert decision.consents == ["by-id"]
    assert not hook.decide(access("Practitioner/dy"), "read", "Patient", None, "p1", now=NOW)


def test_lookups_only_for_patients_with_identifier_consents(seeded):
    hook = NodeConsent(seeded)
    counted = CountingStore(seeded.store)
    hook.local_identifiers = LocalIdentifiers(counted)
    dx = access("Practitioner/dx")
    for _ in range(3):
        assert not hook.decide(dx, "read", "Patient", None, "p2", now=NOW)
    assert counted.lookups == 0  # p2's Consent names its actor by reference only
    for _ in range(3):
        assert hook.decide(dx, "read", "Patient", None, "p1", now=NOW)
    assert counted.lookups == 3  # the version row, each time: an update is seen at once
    assert hook.local_identifiers.opened == 1  # decrypted once for that version


def test_an_update_or_deletion_is_seen_by_the_next_decision(seeded, cx):
    hook = NodeConsent(seeded)
    dx = access("Practitioner/dx")
    assert hook.decide(dx, "read", "Patient", None, "p1", now=NOW)
    cx.put(seeded, doctor("dx", (LICENCE, "8")))
    assert not hook.decide(dx, "read", "Patient", None, "p1", now=NOW)
    cx.put(seeded, doctor("dx", (LICENCE, "7")))
    assert hook.decide(dx, "read", "Patient", None, "p1", now=NOW)
    with seeded.store.unit_of_work() as writer:
        from fhir_server.rest import interactions

        interactions.delete(writer, "Practitioner", "dx")
    assert not hook.decide(dx, "read", "Patient", None, "p1", now=NOW)
    assert hook.local_identifiers("Practitioner/dx", NOW) == ()


def test_an_unreadable_practitioner_names_no_one(seeded):
    hook = NodeConsent(seeded)
    with seeded.engine.begin() as conn:
        conn.execute(
            update(versions)
            .where(versions.c.res_type == "Practitioner", versions.c.res_id == "dx")
            .values(sealed=b"\x00" * 64)
        )
    assert hook.local_identifiers("Practitioner/dx", NOW) == ()
    assert not hook.decide(access("Practitioner/dx"), "read", "Patient", None, "p1", now=NOW)


def test_a_gateway_is_never_given_a_local_practitioners_identifiers(seeded):
    hook = NodeConsent(seeded, is_local_client=lambda client_id: client_id == "app")
    country = seeded.config.anchor_country
    gateway = access(
        "Practitioner/dx", "ph-node", actor_identifiers=[["urn:ph", "1"]], actor_country=country
    )
    assert not hook.decide(gateway, "read", "Patient", None, "p1", now=NOW)


def test_resolution_only_for_practitioner_references(seeded):
    hook = NodeConsent(seeded)
    actor = Actor("Patient/dx")
    assert hook.with_local_identifiers(actor, NOW) is actor
    for reference in (None, "Practitioner/", "Organization/dx", "Practitioner/dx/_history/1"):
        assert hook.local_identifiers(reference, NOW) == ()
    foreign = Actor("Practitioner/dx", (("urn:ph", "1"),), country="TW")
    merged = hook.with_local_identifiers(foreign, NOW)
    assert merged.identifiers == (("urn:ph", "1"), (LICENCE, "7"))


def test_which_identifiers_count():
    resource = {
        "resourceType": "Practitioner",
        "identifier": [
            {"system": LICENCE, "value": "1"},
            {"system": LICENCE, "value": "2", "use": "old"},
            {"value": "3"},
            {"system": LICENCE},
            {"system": LICENCE, "value": "4", "period": {"start": "2026-01-01"}},
            {"system": LICENCE, "value": "5", "period": {"end": "2026-01-01"}},
            {"system": LICENCE, "value": "6", "period": {"start": "not a date"}},
        ],
    }
    found = {(s, v) for s, v, low, high in resource_identifiers(resource) if low <= NOW < high}
    assert found == {(LICENCE, "1"), (LICENCE, "4")}
    assert resource_identifiers({**resource, "active": False}) == ()


def test_names_identifiers_needs_system_and_value(cx):
    assert names_identifiers({"actor": [cx.actor_entry(None, ("s", "v"))]})
    nested = {"provision": [{"provision": [{"actor": [cx.actor_entry(None, ("s", "v"))]}]}]}
    assert names_identifiers(nested)
    assert not names_identifiers({"actor": [cx.actor_entry("Practitioner/d1")]})
    assert not names_identifiers({"actor": [cx.actor_entry(None, ("", "v"))]})
    assert not names_identifiers({})
