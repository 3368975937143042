"""The resource server's ``before_request`` hook: every ``/fhir/*`` request carries a
valid bearer token (RFC 6750), except the CapabilityStatement, ``.well-known/*``,
the authorization server's own ``/fhir/auth/*`` endpoints, share-link manifests
(``/fhir/shl/*``, which decide their holder themselves) and CORS preflights.

The verified :class:`~fhir_server.smart.access.AccessContext` is left on
``flask.g.access`` for the route handlers to call ``g.access.require(...)``.
Enabled while ``app.config["PHRX_AUTH"]`` is true (the default).
"""

from __future__ import annotations

from flask import current_app, g, request

from fhir_server.api.http import base_url
from fhir_server.api.operations.definitions import is_public_read
from fhir_server.api.smart.blueprint import EXTENSION
from fhir_server.errors import Unauthorized

FHIR_PREFIX = "/fhir"
PUBLIC_PATHS = ("/fhir/metadata",)
# /fhir/shl/: share-link manifests (fhir_server/api/federation.py checks the holder)
PUBLIC_PREFIXES = ("/fhir/.well-known/", "/fhir/auth/", "/fhir/shl/")


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def authenticate_request() -> None:
    """Flask ``before_request`` function; raises Unauthorized (401) on a bad token."""
    g.access = None
    if not current_app.config.get("PHRX_AUTH", True):
        return
    path = request.path
    if not (path == FHIR_PREFIX or path.startswith(FHIR_PREFIX + "/")):
        return
    if is_public(path) or request.method == "OPTIONS" or is_public_read(request.method, path):
        return
    verifier = current_app.extensions[EXTENSION].verifier
    g.access = verifier.authenticate(request.headers.get("Authorization"), audience=base_url())
    check_federated(g.access)


def check_federated(access) -> None:
    """A token another country's node holds is refused once that node left the trust
    list (voted out), even before it expires."""
    federation = getattr(current_app.extensions["phrx.node"], "federation", None)
    if federation is not None and not federation.still_trusted(access.client_id):
        raise Unauthorized(
            "The calling node is no longer on the federation's trust list.",
            headers={"WWW-Authenticate": 'Bearer realm="phrx", error="invalid_token"'},
        )
