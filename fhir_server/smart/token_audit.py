"""Token-use AuditEvents (IHE BALP): who got which token, for which client and scopes.

Framework-free. Wired into :class:`~fhir_server.smart.tokens.TokenStore` by
:class:`~fhir_server.smart.service.SmartService`: issuing (every grant, and
``phrx token``) and revoking (RFC 7009) a token store an AuditEvent in the same
transaction that records the token, so no token exists without its record.
The event names the token by its ``jti`` (an id, useless without the signed
token), the client, the user's FHIR identity, the scopes and the patient in
context -- never the access or refresh token, a client secret or an assertion.
Introspection (RFC 7662) is not audited: resource servers may call it on every
request, and it changes nothing.
"""

from __future__ import annotations

from consent import audit
from fhir_server.storage import audit_store


def install(service, node) -> None:
    store = node.store
    tokens = service.tokens

    def prepare() -> None:
        audit_store.prepare(store)

    def record(conn, operation: str, token) -> None:
        who = {"node": node.node_id, "country": node.config.anchor_country}
        user = token.fhir_user
        if user is None and token.username:
            found = service.users.get(token.username)
            user = found.fhir_user if found else None
        event = audit.token_use(
            token.jti,
            token.scope,
            operation=operation,
            grant=token.grant_type,
            patient_id=(token.context or {}).get("patient"),
            user=user,
            client_id=token.client_id,
            **who,
        )
        audit_store.append(store, conn, [event])

    tokens.audit_prepare = prepare
    tokens.audit = record
