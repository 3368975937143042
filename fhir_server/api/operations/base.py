"""What every ``$operation`` route module shares: its blueprint and the node.

Each operation has one route module here (``<operation>.py``) over its Flask-free
core in ``fhir_server/operations/<operation>.py``. Access is decided through
:mod:`fhir_server.api.guard` (the request's
:class:`~fhir_server.access.gate.AccessPolicy`), before the core runs.

``$anchor``, ``$verify`` and ``$provenance`` -- the operations on the anchoring
journal -- share the :data:`INTEGRITY` blueprint (endpoints ``integrity.*``); every
other operation has a blueprint of its own, named after it.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g

from consent import audit
from fhir_server.api.http import negotiate

URL_PREFIX = "/fhir"


def blueprint(name: str) -> Blueprint:
    """A blueprint under ``/fhir`` whose requests must accept FHIR JSON (406)."""
    bp = Blueprint(name, __name__, url_prefix=URL_PREFIX)
    bp.before_request(negotiate)
    return bp


def node():
    """The :class:`~fhir_server.node.Node` this app serves."""
    return current_app.extensions["phrx.node"]


def who() -> dict:
    """The actor of this request, as the AuditEvent builders of :mod:`consent.audit` take it."""
    return audit.who_of(g.get("access"), node())


INTEGRITY = blueprint("integrity")
