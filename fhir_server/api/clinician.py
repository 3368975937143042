"""The clinician signed in at this node a federation request acts for: their
Practitioner, the identifiers other nodes know them by (those of their Practitioner
resource, in force now), and their name."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app, g

from federation import gateway
from fhir_server.api.http import base_url
from fhir_server.errors import Forbidden


def clinician() -> gateway.Clinician:
    """The clinician signed in at this node the gateway acts for (403 for anyone else)."""
    access = g.get("access")
    user = getattr(access, "user", None)
    if not user or not user.startswith(("Practitioner/", "PractitionerRole/")):
        raise Forbidden("Only a clinician signed in at this node uses shared records.")
    node = current_app.extensions["phrx.node"]
    found = node.consent.local_identifiers(user, datetime.now(UTC))
    if not found:
        raise Forbidden(
            "Your Practitioner record carries no identifier another node can know you by."
        )
    resource = node.store.read(*user.split("/", 1))
    name = (resource.get("name") or [{}])[0]
    display = (
        name.get("text")
        or " ".join(
            [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
        ).strip()
    )
    return gateway.Clinician(user, tuple(found), display or None, base_url())
