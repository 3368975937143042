"""``POST /fhir/$anchor``: anchor the journal's pending versions now.

Core: :mod:`fhir_server.operations.anchor`. Access: :func:`guard.anchor` (a
``system/`` scope granting create).
"""

from __future__ import annotations

from fhir_server.api import guard
from fhir_server.api.http import fhir_response
from fhir_server.api.operations.base import INTEGRITY, node
from fhir_server.operations import anchor as core

bp = INTEGRITY
CORE = core


@bp.post("/$anchor")
def anchor_now():
    guard.anchor()
    return fhir_response(core.run(node()))
