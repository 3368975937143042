"""Registered SMART clients and their authlib model (rfc6749 ClientMixin).

Kinds (SMART App Launch 2.2 client-authentication profiles):

* ``public``      - browser/native app, no secret, PKCE only (auth method ``none``)
* ``symmetric``   - confidential, ``client_secret_basic`` / ``client_secret_post``
* ``asymmetric``  - confidential, ``private_key_jwt`` (RS384 / ES384)
* ``backend``     - SMART Backend Services: ``client_credentials`` + ``private_key_jwt``
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from dataclasses import dataclass, field

from authlib.oauth2.rfc6749 import ClientMixin
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from fhir_server import ids
from fhir_server.smart import scopes
from fhir_server.smart.credentials import secret_digest
from fhir_server.smart.tables import clients

KINDS = ("public", "symmetric", "asymmetric", "backend")
APP_SCOPE = (
    "openid fhirUser profile launch launch/patient launch/encounter offline_access "
    "online_access patient/*.cruds user/*.cruds"
)
BACKEND_SCOPE = "system/*.cruds"
OPERATOR_CLIENT = "phrx-operator"
_AUTH_METHODS = {
    "public": ("none",),
    "symmetric": ("client_secret_basic", "client_secret_post"),
    "asymmetric": ("private_key_jwt",),
    "backend": ("private_key_jwt",),
}
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


@dataclass
class Client(ClientMixin):
    client_id: str
    name: str
    kind: str
    scope: str
    redirect_uris: list[str] = field(default_factory=list)
    secret_hash: str | None = None
    jwks: dict | None = None
    jwks_url: str | None = None

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None  # SMART: redirect_uri is always sent, and must match exactly

    def get_allowed_scope(self, scope):
        granted = scopes.allowed(scope, self.scope)
        return " ".join(granted) if granted else None

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris  # exact string comparison

    def check_client_secret(self, client_secret):
        if not self.secret_hash or not client_secret:
            return False
        return hmac.compare_digest(self.secret_hash, secret_digest(client_secret))

    def check_endpoint_auth_method(self, method, endpoint):
        return method in _AUTH_METHODS.get(self.kind, ())

    def check_response_type(self, response_type):
        return response_type == "code" and self.kind != "backend"

    def check_grant_type(self, grant_type):
        if self.kind == "backend":
            return grant_type == "client_credentials"
        return grant_type in ("authorization_code", "refresh_token")


class ClientStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def add(
        self,
        client_id: str,
        kind: str,
        *,
        name: str | None = None,
        redirect_uris: list[str] = (),
        scope: str | None = None,
        jwks: dict | None = None,
        jwks_url: str | None = None,
    ) -> tuple[Client, str | None]:
        """Register a client; returns it and, for ``symmetric``, the one-time secret."""
        if not _CLIENT_ID.match(client_id) or client_id == OPERATOR_CLIENT:
            raise ValueError(
                f"client ids use letters, digits and . _ - only (not {OPERATOR_CLIENT})"
            )
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if kind in ("asymmetric", "backend") and not (jwks or jwks_url):
            raise ValueError("private_key_jwt clients need --jwks-file or --jwks-url")
        if jwks_url and not jwks_url.startswith(
            ("https://", "http://127.0.0.1", "http://localhost")
        ):
            raise ValueError("a JWKS URL must be https (or loopback http for testing)")
        if kind != "backend" and not redirect_uris:
            raise ValueError("apps need at least one --redirect-uri")
        if jwks is not None and not isinstance(jwks.get("keys"), list):
            raise ValueError("the JWKS must be an object with a 'keys' list")
        scope = scope or (BACKEND_SCOPE if kind == "backend" else APP_SCOPE)
        scopes.check_syntax(scope)
        if self.get(client_id):
            raise ValueError(f"client {client_id!r} already exists")
        secret = secrets.token_urlsafe(32) if kind == "symmetric" else None
        row = {
            "client_id": client_id,
            "name": name or client_id,
            "kind": kind,
            "secret_hash": secret_digest(secret) if secret else None,
            "redirect_uris": json.dumps(list(redirect_uris)),
            "scope": scope,
            "jwks": json.dumps(jwks) if jwks else None,
            "jwks_url": jwks_url,
            "created_us": ids.now_us(),
        }
        with self.engine.begin() as conn:
            conn.execute(insert(clients).values(**row))
        return self.get(client_id), secret

    def get(self, client_id: str) -> Client | None:
        if not isinstance(client_id, str):
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(clients).where(clients.c.client_id == client_id)).first()
        return _client(row) if row else None

    def list(self) -> list[Client]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(clients).order_by(clients.c.client_id)).all()
        return [_client(r) for r in rows]

    def remove(self, client_id: str) -> bool:
        with self.engine.begin() as conn:
            return (
                conn.execute(delete(clients).where(clients.c.client_id == client_id)).rowcount > 0
            )

    def operator(self) -> Client:
        """The node's own client for ``phrx token`` (never reachable over HTTP)."""
        return Client(
            OPERATOR_CLIENT,
            "PHRX operator tooling",
            "operator",
            "system/*.cruds user/*.cruds patient/*.cruds launch/patient openid fhirUser",
        )


def _client(row) -> Client:
    return Client(
        client_id=row.client_id,
        name=row.name,
        kind=row.kind,
        scope=row.scope,
        redirect_uris=json.loads(row.redirect_uris or "[]"),
        secret_hash=row.secret_hash,
        jwks=json.loads(row.jwks) if row.jwks else None,
        jwks_url=row.jwks_url,
    )
