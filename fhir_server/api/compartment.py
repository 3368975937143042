"""Searches beyond one type (R4 http.html#search): a patient compartment search,
``GET /fhir/Patient/{id}/{type}`` (or ``*``, every type), and the system search,
``GET /fhir?params``; both also by ``POST .../_search`` with form parameters.

Every type is searched by :func:`guard.search`, the route a type-level search takes:
a compartment search is that search confined to the patient's compartment (and, for
a caller not confined to that patient, decided by consent up front, as a search
naming the patient is).
"""

from __future__ import annotations

from functools import partial

from flask import Blueprint, current_app, request

from fhir_server import ids
from fhir_server.access.wide_search import search_across
from fhir_server.api import guard
from fhir_server.api.http import base_url, fhir_response, negotiate, strict_handling
from fhir_server.api.searchset import search_bundle
from fhir_server.errors import BadRequest, NotFound
from fhir_server.resource_types import check_type
from fhir_server.storage.queries import stored_types

bp = Blueprint("compartment", __name__, url_prefix="/fhir")
EVERY_TYPE = "*"


@bp.before_request
def _negotiate():
    negotiate()


def search_query() -> list[tuple[str, str]]:
    """The search parameters of a GET, or of a POST ``_search`` form."""
    pairs = list(request.args.items(multi=True))
    if request.method == "POST":
        if request.get_data() and request.mimetype != "application/x-www-form-urlencoded":
            raise BadRequest("POST _search takes application/x-www-form-urlencoded parameters.")
        pairs.extend(request.form.items(multi=True))
    return [(k, v) for k, v in pairs if k != "_format"]


def _store():
    return current_app.extensions["phrx.node"].store


@bp.get("")
@bp.get("/")
@bp.post("/_search")
def system_search():
    query = search_query()
    search_one = partial(_search_one, compartment=None)
    page = search_across(search_one, query, stored_types(_store()))
    return fhir_response(search_bundle(page, base_url(), query))


@bp.get("/<compartment>/<patient_id>/<res_type>")
@bp.post("/<compartment>/<patient_id>/<res_type>/_search")
def compartment_search(compartment: str, patient_id: str, res_type: str):
    if compartment != "Patient":
        check_type(compartment)
        raise NotFound(f"Compartment searches are supported for Patient, not {compartment}.")
    ids.check_id(patient_id)
    query = search_query()
    url = f"{base_url()}/Patient/{patient_id}/{res_type}"
    if res_type == EVERY_TYPE:
        search_one = partial(_search_one, compartment=patient_id)
        page = search_across(search_one, query, stored_types(_store()), compartment=patient_id)
    else:
        check_type(res_type)
        page = guard.search(res_type, query, strict=strict_handling(), compartment=patient_id)
    return fhir_response(search_bundle(page, url, query))


def _search_one(res_type: str, query: list[tuple[str, str]], compartment: str | None):
    return guard.search(res_type, query, strict=True, compartment=compartment)
