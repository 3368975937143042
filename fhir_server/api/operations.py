"""HTTP routes of the $operations; each operation's logic lives in fhir_server/operations/."""

from __future__ import annotations

from flask import Blueprint, current_app, request

from fhir_server import ids
from fhir_server.api import guard
from fhir_server.api.http import base_url, fhir_response, negotiate
from fhir_server.operations import anchor, erase, everything, import_mhb, share, summary, verify

bp = Blueprint("operations", __name__, url_prefix="/fhir")

OPERATIONS = [everything, anchor, verify, import_mhb, summary, erase, share]


def operation_definitions() -> list[dict]:
    return [{"name": op.NAME, "definition": op.DEFINITION_URL} for op in OPERATIONS]


@bp.before_request
def _negotiate():
    negotiate()


def _store():
    return current_app.extensions["phrx.node"].store


@bp.get("/Patient/<patient_id>/$everything")
@bp.post("/Patient/<patient_id>/$everything")
def patient_everything(patient_id: str):
    args = list(request.args.items(multi=True))
    visible = guard.everything(ids.check_id(patient_id, "patient id"))
    bundle = everything.run(_store(), patient_id, args, base_url(), visible=visible)
    return fhir_response(bundle)
