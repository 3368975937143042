"""AuditEvent builders in the style of IHE Basic Audit Log Patterns (BALP).

Flask-free: each function returns an R4 AuditEvent dict with *who* (user, client
application, node and its country), *what* (entity references, the query of a
search), *when* (``recorded``), *why* (``purposeOfEvent``) and the *outcome*.
The patient is an entity (role Patient), so the event lands in the patient's
compartment and shows in their access log.

The events are the node's legal record, sealed under the node key and kept after a
patient's erasure: they carry references, ids, codes and the server's own reasons,
never clinical content. The exceptions are inputs a person typed for the record:
the query of a search (reduced by :mod:`fhir_server.access.audit_query` before it gets here)
and a break-glass justification (the accountable reason for emergency access,
which the patient must be able to read).
"""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime

from consent.codes import ACT_REASON, NODE_COUNTRY_EXT

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
PHRX_EVENT = "https://phrx.example.org/fhir/CodeSystem/audit-event-subtype"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ROLE_TYPE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
PATIENT_ID_SYSTEM = "https://phrx.example.org/fhir/NamingSystem/patient-id"
JTI_SYSTEM = "https://phrx.example.org/fhir/NamingSystem/access-token-jti"
CLIENT_ID_SYSTEM = "https://phrx.example.org/fhir/NamingSystem/client-id"
NODE_ID_SYSTEM = "https://phrx.example.org/fhir/NamingSystem/node-id"

SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = "0", "4", "8"
_REST = {"system": EVENT_TYPE, "code": "rest", "display": "Restful Operation"}


def who_of(access, node) -> dict:
    """Builder keywords (user, identifiers, client_id, node, country) for a SMART
    AccessContext (None: authorization switched off) on ``node``."""
    who = {"node": node.node_id, "country": node.config.anchor_country}
    if access is not None:
        context = access.context or {}
        who.update(user=access.user, client_id=access.client_id)
        who["identifiers"] = tuple(tuple(i) for i in context.get("actor_identifiers") or ())
        who["country"] = context.get("actor_country") or who["country"]
    return who


def coding_of(system: str, code: str, display: str | None = None) -> dict:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def _user_agent(user, identifiers, country, purpose, policy) -> dict | None:
    if not user and not identifiers:
        return None
    who: dict = {}
    if user:
        who["reference"] = user
    elif identifiers:
        who["identifier"] = {"system": identifiers[0][0], "value": identifiers[0][1]}
    if country:
        who["extension"] = [{"url": NODE_COUNTRY_EXT, "valueCode": country}]
    agent = {
        "type": {"coding": [coding_of(ROLE_TYPE, "humanuser", "human user")]},
        "who": who,
        "requestor": True,
    }
    if purpose:
        agent["purposeOfUse"] = [{"coding": [coding_of(ACT_REASON, purpose)]}]
    if policy:
        agent["policy"] = list(policy)
    return agent


def event(
    subtype: dict,
    action: str,
    *,
    user: str | None = None,
    identifiers: tuple = (),
    client_id: str | None = None,
    node: str = "phrx",
    country: str | None = None,
    outcome: str = SUCCESS,
    description: str | None = None,
    purpose: str | None = None,
    policy: tuple[str, ...] = (),
    patient_id: str | None = None,
    entities: tuple[dict, ...] = (),
    recorded: datetime | None = None,
    event_type: dict = _REST,
    extra_agents: tuple[dict, ...] = (),
) -> dict:
    """One AuditEvent; the specific builders below fill ``subtype`` and ``entities``."""
    recorded = recorded or datetime.now(UTC)
    agents = []
    human = _user_agent(user, identifiers, country, purpose, policy)
    if human:
        agents.append(human)
    if client_id:
        agents.append(
            {
                "type": {"coding": [coding_of(DCM, "110150", "Application")]},
                "who": {"identifier": {"system": CLIENT_ID_SYSTEM, "value": client_id}},
                "requestor": human is None,
            }
        )
    agents.extend(extra_agents)
    if not agents:  # the node itself acted
        agents.append(_node_agent(node, requestor=True))
    audit: dict = {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid4()),  # random: ids travel in clear in the index
        "type": event_type,
        "subtype": [subtype],
        "action": action,
        "recorded": recorded.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "outcome": outcome,
        "agent": agents,
        "source": {
            "site": country or "XX",
            "observer": {"identifier": {"system": NODE_ID_SYSTEM, "value": node}, "display": node},
            "type": [coding_of(SOURCE_TYPE, "4", "Application Server")],
        },
    }
    if description:
        audit["outcomeDesc"] = description
    if purpose:
        audit["purposeOfEvent"] = [{"coding": [coding_of(ACT_REASON, purpose)]}]
    found = list(entities)
    if patient_id:
        found.append(entity_of(f"Patient/{patient_id}", "1", "1", "Patient"))
    if found:
        audit["entity"] = found
    return audit


def _node_agent(node: str, *, requestor: bool, country: str | None = None, role="110153") -> dict:
    display = {"110153": "Source Role ID", "110152": "Destination Role ID"}[role]
    who: dict = {"identifier": {"system": NODE_ID_SYSTEM, "value": node}}
    if country:
        who["extension"] = [{"url": NODE_COUNTRY_EXT, "valueCode": country}]
    return {"type": {"coding": [coding_of(DCM, role, display)]}, "who": who, "requestor": requestor}


# a literal relative Reference (R4 references.html#literal): Type/id[/_history/vid]
_REFERENCE = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?")


def entity_of(reference: str, entity_type="2", role="4", role_display="Domain Resource") -> dict:
    """An entity naming ``reference``: a literal reference (``Type/id``, ``.../_history/n``),
    or a request path that is none (a type, an ``$operation``, the system): then
    ``what`` names the resource the path starts with, if any, and ``description`` the
    path (a Reference.reference must resolve to a resource, R4 references.html)."""
    entity: dict = {}
    if _REFERENCE.fullmatch(reference):
        entity["what"] = {"reference": reference}
    else:
        target = _REFERENCE.match(reference)
        if target and reference[target.end()] == "/":
            entity["what"] = {"reference": target.group(0)}
        entity["description"] = reference or "/"
    entity["type"] = coding_of(ENTITY_TYPE, entity_type)
    entity["role"] = coding_of(OBJECT_ROLE, role, role_display)
    return entity


def restful_subtype(code: str) -> dict:
    return coding_of(RESTFUL, code)


# -- BALP patterns ----------------------------------------------------------------------
def read(reference: str, patient_id: str | None = None, **who) -> dict:
    return event(
        restful_subtype("read"), "R", patient_id=patient_id, entities=(entity_of(reference),), **who
    )


def query(res_type: str, query_string: str, patient_id: str | None = None, **who) -> dict:
    entity = {
        "type": coding_of(ENTITY_TYPE, "2"),
        "role": coding_of(OBJECT_ROLE, "24", "Query"),
        "query": base64.b64encode(f"{res_type}?{query_string}".encode()).decode(),
    }
    return event(
        restful_subtype("search-type"), "E", patient_id=patient_id, entities=(entity,), **who
    )


search = query


def create(reference: str, patient_id: str | None = None, **who) -> dict:
    return event(
        restful_subtype("create"),
        "C",
        patient_id=patient_id,
        entities=(entity_of(reference),),
        **who,
    )


def update(reference: str, patient_id: str | None = None, **who) -> dict:
    return event(
        restful_subtype("update"),
        "U",
        patient_id=patient_id,
        entities=(entity_of(reference),),
        **who,
    )


def delete(reference: str, patient_id: str | None = None, **who) -> dict:
    return event(
        restful_subtype("delete"),
        "D",
        patient_id=patient_id,
        entities=(entity_of(reference),),
        **who,
    )


def disclosure(references: list[str], patient_id: str, recipient_node: str, **who) -> dict:
    """Records released to another node (cross-border): a DICOM Export event."""
    destination = _node_agent(
        recipient_node, requestor=False, country=recipient_node, role="110152"
    )
    return event(
        coding_of(PHRX_EVENT, "disclosure", "Disclosure to another node"),
        "R",
        event_type=coding_of(DCM, "110106", "Export"),
        patient_id=patient_id,
        entities=tuple(entity_of(r) for r in references),
        extra_agents=(destination,),
        **who,
    )


def denial(
    interaction: str, reference: str, patient_id: str | None, reasons: list[str], **who
) -> dict:
    """An access refused by scope or consent (outcome: minor failure)."""
    action = {"read": "R", "search-type": "E", "create": "C", "update": "U", "delete": "D"}
    return event(
        restful_subtype(interaction),
        action.get(interaction, "E"),
        outcome=MINOR_FAILURE,
        description="; ".join(reasons)[:1000] or "access denied",
        patient_id=patient_id,
        entities=(entity_of(reference),) if reference else (),
        **who,
    )


def break_glass(patient_id: str, justification: str, granted: bool, **who) -> dict:
    """Emergency access to the summary; always recorded, shown to the patient."""
    entity = entity_of(f"Patient/{patient_id}/$summary")
    if justification:
        entity["detail"] = [{"type": "justification", "valueString": justification}]
    who.setdefault("purpose", "BTG")
    return event(
        coding_of(PHRX_EVENT, "break-glass", "Break-glass access"),
        "E",
        outcome=SUCCESS if granted else MINOR_FAILURE,
        description="break-glass granted" if granted else "break-glass refused",
        patient_id=patient_id,
        entities=(entity,),
        **who,
    )


_TOKEN_OPERATIONS = {
    "use": ("token-use", "Access token use", "E"),
    "issue": ("token-issue", "Access token issued", "C"),
    "revoke": ("token-revoke", "Access token revoked", "D"),
}


def token_use(
    jti: str,
    scope: str,
    *,
    operation: str = "use",
    grant: str | None = None,
    patient_id: str | None = None,
    **who,
) -> dict:
    """An access token was issued, used or revoked (BALP: OAuth token use). The
    token is named by its ``jti``; the token itself is never stored."""
    code, display, action = _TOKEN_OPERATIONS[operation]
    details = [{"type": "scope", "valueString": scope}]
    if grant:
        details.append({"type": "grant_type", "valueString": grant})
    entity = {
        "what": {"identifier": {"system": JTI_SYSTEM, "value": jti}},
        "type": coding_of(ENTITY_TYPE, "2"),
        "role": coding_of(OBJECT_ROLE, "13", "Security Resource"),
        "detail": details,
    }
    return event(
        coding_of(PHRX_EVENT, code, display),
        action,
        event_type=coding_of(DCM, "110114", "User Authenticated"),
        entities=(entity,),
        patient_id=patient_id,
        **who,
    )


def erasure(patient_id: str, **who) -> dict:
    """The patient's record was crypto-shredded. The event names the patient by
    reference, so it stays in their access log: AuditEvents are sealed under the
    node key (:mod:`fhir_server.storage.audit_store`), not under the key being destroyed."""
    return event(
        coding_of(PHRX_EVENT, "erase", "Erasure (crypto-shredding)"),
        "D",
        patient_id=patient_id,
        **who,
    )
