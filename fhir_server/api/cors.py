"""CORS (Fetch standard) on every FHIR and SMART endpoint, preflights included.

A SMART app in a browser is served from its own origin and calls the node with a
bearer token; without ``Access-Control-Allow-Origin`` the browser hides every answer
from it (the CapabilityStatement says ``security.cors: true``). Tokens travel in the
``Authorization`` header, never in cookies, so the node never answers with
``Access-Control-Allow-Credentials``: a cross-origin page can use only what it was
given a token for. The interactive pages (sign-in, approval, the portal's launch) use
the cookie session and are not opened to other origins at all.

Allowed origins: ``NodeConfig.cors_origins`` (``phrx serve --cors-origin``), default
``*`` (any origin: a bearer-token API has nothing a foreign origin could take without
the token). With a list, the request's ``Origin`` is echoed when listed (``Vary: Origin``).
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request

FHIR_PREFIX = "/fhir"
# Cookie-session pages: a browser navigates to them, no script of another origin reads them.
INTERACTIVE = ("/fhir/auth/login", "/fhir/auth/authorize", "/fhir/auth/logout", "/fhir/auth/launch")
ALLOW_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = (
    "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, "
    "If-None-Exist, If-Modified-Since, X-Requested-With"
)
EXPOSE_HEADERS = "Location, ETag, Content-Location, Last-Modified, WWW-Authenticate"
PREFLIGHT_MAX_AGE = "600"
CONFIG_KEY = "PHRX_CORS_ORIGINS"


def init_cors(app: Flask, origins: tuple[str, ...]) -> None:
    """Answer preflights before any other hook (no token is sent on a preflight) and
    add the CORS headers to every answer under /fhir, errors included."""
    app.config[CONFIG_KEY] = tuple(origins)
    app.before_request_funcs.setdefault(None, []).insert(0, _preflight)
    app.after_request(_add_headers)


def _applies() -> bool:
    path = request.path
    in_fhir = path == FHIR_PREFIX or path.startswith(FHIR_PREFIX + "/")
    return in_fhir and path not in INTERACTIVE


def allowed_origin(origin: str | None, origins: tuple[str, ...]) -> str | None:
    """The value of ``Access-Control-Allow-Origin`` for ``origin``, or None."""
    if "*" in origins:
        return "*"
    if origin and origin in origins:
        return origin
    return None


def _preflight() -> Response | None:
    asks = "Access-Control-Request-Method" in request.headers
    if not (request.method == "OPTIONS" and asks and _applies()):
        return None
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
    response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
    response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    return response  # the Allow-Origin header is added by _add_headers


def _add_headers(response: Response) -> Response:
    if not _applies():
        return response
    origins = current_app.config.get(CONFIG_KEY, ("*",))
    allow = allowed_origin(request.headers.get("Origin"), origins)
    if "*" not in origins:
        response.vary.add("Origin")
    if allow is None:
        return response
    response.headers["Access-Control-Allow-Origin"] = allow
    response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    return response
