"""Tokens the operator issues to scripts (``phrx token``, the demo), recorded like any other."""

from __future__ import annotations

from fhir_server.smart.tokens import Subject


def issue_operator_token(
    smart,
    base_url: str,
    scope: str,
    *,
    client_id: str | None = None,
    username: str | None = None,
    patient: str | None = None,
    lifetime: int = 300,
) -> str:
    """An access token of ``client_id`` (default: the node's operator client).

    With ``username`` it acts for that user (a patient user's patient context
    is always their own record). Raises ValueError for unknown clients/users
    or scopes the client may not hold.
    """
    client = smart.clients.get(client_id) if client_id else smart.clients.operator()
    if client is None:
        raise ValueError(f"no client {client_id!r}")
    granted = client.get_allowed_scope(scope)
    if not granted:
        raise ValueError("none of the requested scopes is allowed for this client")
    subject = None
    if username:
        user = smart.users.get(username)
        if user is None:
            raise ValueError(f"no user {username!r}")
        context = {}
        if patient or user.patient_id:
            context["patient"] = patient if user.role != "patient" else user.patient_id
        subject = Subject(user.username, user.fhir_user, context)
    elif patient:
        raise ValueError("a patient context needs a user")
    issued = smart.tokens.issue(
        base_url.rstrip("/"), "operator", client.client_id, subject, granted, lifetime, False
    )
    return issued["access_token"]
