"""The SMART blueprint and the node's SMART objects, shared by the view modules.

Both :mod:`.views` and :mod:`.authorize_views` register their routes on :data:`bp`
and reach the service, the authorization server and the token verifier through
:func:`smart`; neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, current_app

from fhir_server.smart.access import TokenVerifier
from fhir_server.smart.server import SmartAuthorizationServer
from fhir_server.smart.service import SmartService

EXTENSION = "phrx.smart"
bp = Blueprint("smart", __name__, url_prefix="/fhir")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass
class SmartApp:
    """What :func:`~fhir_server.api.smart.init_smart` leaves in ``app.extensions``."""

    service: SmartService
    server: SmartAuthorizationServer
    verifier: TokenVerifier


def smart() -> SmartApp:
    """The SMART objects of the current app."""
    return current_app.extensions[EXTENSION]
