"""``GET|POST /fhir/Patient/{id}/$everything``.

Core: :mod:`fhir_server.operations.everything`. Access: :func:`guard.everything` (read
of the Patient, then each resource filtered by what the token may read).
"""

from __future__ import annotations

from flask import request

from fhir_server import ids
from fhir_server.api import guard
from fhir_server.api.http import base_url, fhir_response
from fhir_server.api.operations.base import blueprint, node
from fhir_server.operations import everything as core

bp = blueprint("everything")
CORE = core


@bp.get("/Patient/<patient_id>/$everything")
@bp.post("/Patient/<patient_id>/$everything")
def patient_everything(patient_id: str):
    args = list(request.args.items(multi=True))
    visible = guard.everything(ids.check_id(patient_id, "patient id"))
    bundle = core.run(node().store, patient_id, args, base_url(), visible=visible)
    return fhir_response(bundle)
