"""SMART App Launch 2.2 authorization server and resource-server library of a node.

Framework-free core: :mod:`.scopes`, :mod:`.tokens`, :mod:`.users`, :mod:`.clients`,
:mod:`.launch`, :mod:`.access` (bearer tokens -> :class:`AccessContext`), on
authlib's grants (:mod:`.grants`, :mod:`.assertion`). Flask adapter:
:mod:`.views`, :mod:`.authorize_views`, :mod:`.flask_hook`, set up by :func:`init_app`.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.smart.access import AccessContext, Permit, TokenVerifier, authenticate

__all__ = ["AccessContext", "Permit", "SmartApp", "TokenVerifier", "authenticate", "init_app"]


@dataclass
class SmartApp:
    service: object  # SmartService
    server: object  # SmartAuthorizationServer
    verifier: TokenVerifier


def init_app(app, node) -> SmartApp:
    """Register the SMART blueprint, the session key and the bearer-token hook."""
    from fhir_server.api.http import base_url
    from fhir_server.smart import authorize_views  # noqa: F401  (registers routes on bp)
    from fhir_server.smart.flask_hook import authenticate_request
    from fhir_server.smart.server import SmartAuthorizationServer
    from fhir_server.smart.service import SmartService
    from fhir_server.smart.session import LazyCookieSessionInterface
    from fhir_server.smart.views import bp

    service = SmartService(node)
    server = SmartAuthorizationServer(service, base_url)
    smart = SmartApp(service, server, TokenVerifier(service.signing_key, service.tokens))
    app.extensions["phrx.smart"] = smart
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
