"""The signed-in user of the cookie session and its CSRF token, shared by the
portal's launch endpoint (:mod:`.views`) and the sign-in and approval pages
(:mod:`.authorize_views`)."""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

from fhir_server import ids
from fhir_server.api.smart.blueprint import smart
from fhir_server.smart.users import User

SESSION_MAX_AGE_S = 8 * 3600


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def check_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    if not (session.get("csrf") and hmac.compare_digest(sent, session["csrf"])):
        abort(400, "The form expired; go back and try again.")


def sign_in(user: User) -> None:
    """A fresh session (no fixation) for ``user``, with a new CSRF token."""
    session.clear()
    session["user"] = user.username
    session["auth_time"] = ids.now_us() // 10**6
    csrf_token()


def sign_out() -> None:
    session.clear()


def current_user() -> User | None:
    username = session.get("user")
    auth_time = session.get("auth_time", 0)
    if not username or auth_time + SESSION_MAX_AGE_S < ids.now_us() // 10**6:
        return None
    return smart().service.users.get(username)


def auth_time() -> int | None:
    """When the session's user signed in (epoch seconds), for the ID token."""
    return session.get("auth_time")
