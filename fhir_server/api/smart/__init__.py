"""The Flask side of the node's SMART App Launch 2.2 authorization server and
resource server, over the framework-free core in :mod:`fhir_server.smart`.

:mod:`.blueprint` (the blueprint and :func:`~.blueprint.smart`), :mod:`.views`
(discovery, token, introspection, revocation, JWKS, the portal's launch),
:mod:`.authorize_views` (sign-in and approval), :mod:`.user_session` (the signed-in
user and CSRF token), :mod:`.pages` (HTML), :mod:`.session` (the cookie session),
:mod:`.server` (authlib's Flask request/response binding) and :mod:`.bearer_hook`
(the ``before_request`` bearer-token check), set up by :func:`init_smart`.
"""

from __future__ import annotations

from flask import Flask

from fhir_server.api.http import base_url
from fhir_server.api.smart import authorize_views, views  # noqa: F401  (register routes on bp)
from fhir_server.api.smart.bearer_hook import authenticate_request
from fhir_server.api.smart.blueprint import EXTENSION, SmartApp, bp
from fhir_server.api.smart.server import FlaskSmartAuthorizationServer
from fhir_server.api.smart.session import LazyCookieSessionInterface
from fhir_server.smart.access import TokenVerifier
from fhir_server.smart.service import SmartService

__all__ = ["SmartApp", "init_smart"]


def init_smart(app: Flask, node) -> SmartApp:
    """Register the SMART blueprint, the session key and the bearer-token hook."""
    service = SmartService(node)
    server = FlaskSmartAuthorizationServer(service, base_url)
    smart = SmartApp(service, server, TokenVerifier(service.signing_key, service.tokens))
    app.extensions[EXTENSION] = smart
    if not app.secret_key:
        app.secret_key = service.session_secret
    app.session_interface = LazyCookieSessionInterface()
    app.config.setdefault("PHRX_AUTH", True)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.config["SESSION_COOKIE_PATH"] = app.config.get("SESSION_COOKIE_PATH") or "/fhir/auth"
    if (node.config.base_url or "").startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    app.register_blueprint(bp)
    app.before_request(authenticate_request)
    return smart
