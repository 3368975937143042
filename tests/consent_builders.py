"""Consent builders and SMART tokens for chosen users (the ``cx`` fixture, tests/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from consent.codes import ACT_CODE, ACT_REASON, CONSENT_SCOPE, LOINC, NODE_COUNTRY_EXT

BASE = "http://localhost/fhir"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def privacy_consent(
    patient="p1",
    *,
    cid="c1",
    status="active",
    provision=None,
    actors=(("Practitioner/d1",),),
    purposes=("TREAT",),
    period=("2026-01-01", "2026-12-31"),
    **extra,
) -> dict:
    """A patient-privacy Consent; ``provision`` overrides the built root provision."""
    if provision is None:
        provision = {"type": "permit"}
        if period:
            provision["period"] = {"start": period[0], "end": period[1]}
        if actors:
            provision["actor"] = [actor_entry(*a) for a in actors]
        if purposes:
            provision["purpose"] = [{"system": ACT_REASON, "code": p} for p in purposes]
        provision.update(extra)
    return {
        "resourceType": "Consent",
        "id": cid,
        "status": status,
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient}"},
        "dateTime": "2026-01-01",
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]},
        "provision": provision,
    }


def actor_entry(reference=None, identifier=None, country=None) -> dict:
    ref: dict = {}
    if reference:
        ref["reference"] = reference
    if identifier:
        ref["identifier"] = {"system": identifier[0], "value": identifier[1]}
    if country:
        ref["extension"] = [{"url": NODE_COUNTRY_EXT, "valueCode": country}]
    role = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                "code": "PRCP",
            }
        ]
    }
    return {"role": role, "reference": ref}


def label(code: str) -> dict:
    return {"system": ACT_CODE, "code": code}


def bearer(app, *, username=None, fhir_user=None, scope="user/*.rs", context=None, client="t"):
    """An Authorization header for a token issued by ``app``'s SMART service."""
    from fhir_server.smart.tokens import Subject

    smart = app.extensions["phrx.smart"].service
    subject = Subject(username, fhir_user, dict(context or {})) if username else None
    issued = smart.tokens.issue(BASE, "test", client, subject, scope, 300, refresh=False)
    return {"Authorization": f"Bearer {issued['access_token']}"}


def put(node, resource: dict) -> dict:
    """Write ``resource`` through the store (validated, anchored journal) and return it."""
    from fhir_server.rest import interactions
    from fhir_server.validation import validate_resource

    validate_resource(resource)
    with node.store.unit_of_work(prepare=[resource]) as writer:
        result = interactions.update(
            writer, resource["resourceType"], resource["id"], resource, None
        )
    return result.resource


class Helpers:
    """Builders shared by the consent tests (conftest modules cannot be imported)."""

    BASE = BASE
    NOW = NOW
    privacy_consent = staticmethod(privacy_consent)
    actor_entry = staticmethod(actor_entry)
    label = staticmethod(label)
    bearer = staticmethod(bearer)
    put = staticmethod(put)
