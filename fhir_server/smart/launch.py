"""EHR launch ids issued by the node's portal, bound to patient/encounter context.

SMART App Launch 2.2 app-launch.html#launch-app-ehr-launch: the EHR opens
``launch_uri?iss=<FHIR base>&launch=<opaque id>``; the app echoes ``launch``
to the authorize endpoint, which swaps it for this context.
"""

from __future__ import annotations

import json
import secrets

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from fhir_server import ids
from fhir_server.smart.credentials import secret_digest
from fhir_server.smart.tables import launches

LAUNCH_LIFETIME_S = 600


class LaunchStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def issue(
        self, patient: str | None = None, encounter: str | None = None, username: str | None = None
    ) -> str:
        """A fresh launch id for the given context (what the portal hands the app)."""
        context: dict = {}
        if patient:
            context["patient"] = patient
        if encounter:
            context["encounter"] = encounter
            context["fhirContext"] = [{"reference": f"Encounter/{encounter}"}]
        launch = secrets.token_urlsafe(24)
        now = ids.now_us()
        with self.engine.begin() as conn:
            conn.execute(delete(launches).where(launches.c.expires_us < now))
            conn.execute(
                insert(launches).values(
                    launch_hash=secret_digest(launch),
                    context=json.dumps(context),
                    username=username,
                    expires_us=now + LAUNCH_LIFETIME_S * 10**6,
                )
            )
        return launch

    def resolve(self, launch: str) -> tuple[dict, str | None] | None:
        """The (context, issuing user) of a live launch id, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(launches).where(launches.c.launch_hash == secret_digest(launch))
            ).first()
        if row is None or row.expires_us < ids.now_us():
            return None
        return json.loads(row.context), row.username
