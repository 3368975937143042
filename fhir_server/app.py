"""Flask application factory: HTTP only, over the Flask-free node core."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from flask import Flask, request
from werkzeug.exceptions import HTTPException, NotFound

from fhir_server.api.audit_hook import end_request, record_audit
from fhir_server.api.cors import init_cors
from fhir_server.api.federation import init_federation
from fhir_server.api.http import fhir_response
from fhir_server.api.smart import init_smart
from fhir_server.errors import FHIRError, Issue, operation_outcome
from fhir_server.node import Node, NodeConfig

log = logging.getLogger("phrx")

# The interpreter's default. web3 imports py_ecc, which raises the recursion limit to
# 100,000 for its own deep recursion (pairings this node never computes; py-evm, the
# in-process chain of the tests, raises it to 12,288). C code that recurses once per
# level -- json.loads, repr and == of nested lists -- then overflows the C stack (a
# gunicorn worker's threads get 8 MB here) long before RecursionError is raised:
# 100,000 nested "[" killed a worker with SIGSEGV (issue #14), and so did a deep MHB
# JSON export. Request bodies are bounded before parsing (fastjson.parse); this limit
# keeps every other recursion an exception. The test suite passes with it.
RECURSION_LIMIT = 1000

_HTTP_ISSUE_CODES = {
    404: "not-found",
    405: "not-supported",
    413: "too-costly",
    415: "not-supported",
}


def create_app(config: dict | None = None) -> Flask:
    """Build the app. ``config`` keys: DATA_DIR (required), DATABASE_URL, BASE_URL,
    MAX_BODY_BYTES, MAX_JSON_DEPTH, or NODE (an already opened :class:`Node`)."""
    config = dict(config or {})
    node = config.pop("NODE", None) or Node(
        NodeConfig(
            data_dir=Path(config.pop("DATA_DIR")),
            database_url=config.pop("DATABASE_URL", None),
            base_url=config.pop("BASE_URL", None),
            **{
                k.lower(): config.pop(k)
                for k in ("MAX_BODY_BYTES", "MAX_JSON_DEPTH")
                if k in config
            },
        )
    )
    app = Flask(__name__)
    app.config.update(
        PHRX_MAX_BODY_BYTES=node.config.max_body_bytes,
        PHRX_MAX_JSON_DEPTH=node.config.max_json_depth,
        PHRX_BASE_URL=node.config.base_url,
        MAX_CONTENT_LENGTH=node.config.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    app.config.update(config)
    app.extensions["phrx.node"] = node
    _register_blueprints(app)
    init_cors(app, node.config.cors_origins)  # first: a preflight carries no token
    init_smart(app, node)  # SMART authorization server + bearer-token before_request hook
    init_federation(app)  # share-link manifests, $receive-share, the gateway (after the bearer)
    app.after_request(record_audit)  # one AuditEvent per access to patient data
    app.teardown_request(end_request)  # never leave a request transaction open
    _register_error_handlers(app)
    restore_recursion_limit()  # the blueprints above imported web3 (and py_ecc)
    return app


def restore_recursion_limit() -> None:
    """Lower the recursion limit that heavy imports raised (see RECURSION_LIMIT)."""
    if sys.getrecursionlimit() > RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)


def import_everything() -> None:
    """Import the route modules (web3 among them) and every R4B model: seconds of
    work that a pre-fork server's master does once, so that each forked worker
    starts serving at once instead of importing on its own."""
    from fhir_server.resource_types import supported_types

    _blueprints()
    supported_types()


def _blueprints() -> list:
    from fhir_server.api.compartment import bp as compartment_bp
    from fhir_server.api.operations import blueprints as operation_blueprints
    from fhir_server.api.rest import bp as rest_bp
    from fhir_server.api.system import bp as system_bp

    return [
        system_bp,
        *operation_blueprints(),  # every $operation and OperationDefinition, before REST
        rest_bp,
        compartment_bp,
    ]


def _register_blueprints(app: Flask) -> None:
    for blueprint in _blueprints():
        app.register_blueprint(blueprint)


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(FHIRError)
    def _fhir_error(error: FHIRError):
        if error.status >= 500:
            log.error("server-side failure: %s", error.diagnostics)
        return fhir_response(error.to_operation_outcome(), error.status, dict(error.headers))

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        status = error.code or 500
        code = _HTTP_ISSUE_CODES.get(status, "processing")
        text = error.description or error.name
        if isinstance(error, NotFound) and error.description == NotFound.description:
            text = f"No FHIR endpoint at {request.path}; GET /fhir/metadata lists what is served."
        body = operation_outcome([Issue(code, text)])
        response = fhir_response(body, status)
        if status == 405 and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        # The traceback goes to the server log only; the client gets no internals.
        log.exception("unhandled error")
        body = operation_outcome([Issue("exception", "Internal server error.")])
        return fhir_response(body, 500)
