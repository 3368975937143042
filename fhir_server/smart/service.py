"""The framework-free SMART service of one node: its stores and signing key."""

from __future__ import annotations

from sqlalchemy import select

from fhir_server.smart import token_audit
from fhir_server.smart.clients import ClientStore
from fhir_server.smart.keys import SigningKey, load_or_create_secret
from fhir_server.smart.launch import LaunchStore
from fhir_server.smart.replay import AssertionReplayCache
from fhir_server.smart.tokens import TokenStore
from fhir_server.smart.users import UserStore
from fhir_server.storage.db import resources


class SmartService:
    """Everything the authorization server and the resource-server library share."""

    def __init__(self, node):
        self.node = node
        engine = node.engine
        key_dir = node.config.data_dir / "keys"
        self.signing_key = SigningKey(key_dir)
        self.users = UserStore(engine, node.keyring)
        self.clients = ClientStore(engine)
        self.tokens = TokenStore(engine, self.signing_key)
        self.launches = LaunchStore(engine)
        self.replay = AssertionReplayCache(engine)
        self.session_secret = load_or_create_secret(key_dir / "smart-session.key")
        token_audit.install(self, node)  # every token issued or revoked is audited

    def patient_exists(self, patient_id: str) -> bool:
        with self.node.engine.connect() as conn:
            row = conn.execute(
                select(resources.c.deleted).where(
                    resources.c.res_type == "Patient", resources.c.res_id == patient_id
                )
            ).first()
        return row is not None and not row.deleted

    def patient_choices(self, limit: int = 50) -> list[tuple[str, str]]:
        """(id, display name) of some patients for a practitioner's picker."""
        with self.node.engine.connect() as conn:
            rows = conn.execute(
                select(resources.c.res_id)
                .where(resources.c.res_type == "Patient", resources.c.deleted.is_(False))
                .order_by(resources.c.res_id)
                .limit(limit)
            ).all()
        choices = []
        for (res_id,) in rows:
            try:
                patient = self.node.store.read("Patient", res_id)
            except Exception:  # unreadable (e.g. shredded): list the id alone
                patient = {}
            choices.append((res_id, _display_name(patient) or res_id))
        return choices


def _display_name(patient: dict) -> str:
    for name in patient.get("name", []):
        if name.get("text"):
            return name["text"]
        parts = [*name.get("given", []), name.get("family", "")]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return ""
