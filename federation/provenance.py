"""The Provenance a home node stores with a record written back from another country.

Flask-free. It names who wrote the record (the clinician by the identifiers their
node attested, in the node's signed assertion), on behalf of which node and country,
and when; it is stored (sealed and anchored) in the same transaction as the record,
so the patient sees in their own record who, from where, added it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

ISO_COUNTRY = "urn:iso:std:iso:3166"
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"


def write_back_provenance(
    target: str, context: dict, patient: str | None = None, client_name: str | None = None
) -> dict | None:
    """The Provenance of ``target`` (``Type/id/_history/n``) written for the federated
    clinician in a token's ``context``; None when the context names none. ``patient``
    (``Patient/x``) is targeted too: that puts the Provenance in the patient's
    compartment, where the patient's own app finds it."""
    identifiers = context.get("actor_identifiers") or []
    country = context.get("actor_country")
    if not identifiers or not country:
        return None
    system, value = identifiers[0]
    who: dict = {"identifier": {"system": system, "value": value}}
    if context.get("actor_display"):
        who["display"] = context["actor_display"]
    node = {
        "identifier": {"system": ISO_COUNTRY, "value": country},
        "display": client_name or f"PHRX node {country}",
    }
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "resourceType": "Provenance",
        "id": str(uuid.uuid4()),
        "target": [{"reference": t} for t in (target, patient) if t],
        "recorded": now,
        "activity": {"coding": [{"system": DATA_OPERATION, "code": "CREATE"}]},
        "agent": [
            {
                "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author"}]},
                "who": who,
                "onBehalfOf": node,
            }
        ],
    }
