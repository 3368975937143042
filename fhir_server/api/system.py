"""System-level endpoints: metadata, batch/transaction, system history."""

from __future__ import annotations

from flask import Blueprint, current_app

from fhir_server.api import guard
from fhir_server.api.http import base_url, fhir_response, negotiate, read_json_body
from fhir_server.api.operations import operation_definitions
from fhir_server.api.searchset import history_bundle
from fhir_server.capability import capability_statement
from fhir_server.rest.bundles import process_bundle

bp = Blueprint("system", __name__, url_prefix="/fhir")


@bp.before_request
def _negotiate():
    negotiate()


def _store():
    return current_app.extensions["phrx.node"].store


@bp.get("/metadata")
def metadata():
    return fhir_response(capability_statement(base_url(), operation_definitions()))


@bp.post("")
@bp.post("/")
def batch_or_transaction():
    bundle = read_json_body()
    return fhir_response(process_bundle(_store(), bundle, base_url(), guard.policy()))


@bp.get("/_history")
def system_history():
    return history_bundle(_store(), confine=guard.history())
