"""Flask views of the SMART authorization server: discovery, token, introspection,
revocation, JWKS, and the portal's launch endpoint. Thin: the logic is in authlib
(configured in :mod:`fhir_server.smart.server`) and in the framework-free stores."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Response, jsonify, request, session

from fhir_server.api.http import base_url
from fhir_server.api.smart.blueprint import NO_STORE, bp, smart
from fhir_server.api.smart.user_session import check_csrf, current_user
from fhir_server.errors import BadRequest, Forbidden, Unauthorized
from fhir_server.smart.discovery import openid_configuration, smart_configuration


@bp.get("/.well-known/smart-configuration")
def smart_config():
    """JSON whatever the Accept header says (App Launch 2.2 conformance.html)."""
    response = jsonify(smart_configuration(base_url()))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/.well-known/openid-configuration")
def openid_config():
    """OIDC discovery where OIDC Discovery 1.0 section 4 looks: issuer (the FHIR
    base) + ``/.well-known/openid-configuration``, beside SMART's own document."""
    response = jsonify(openid_configuration(base_url()))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/auth/jwks")
def jwks():
    response = jsonify(smart().service.signing_key.jwks())
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.get("/auth/smart-style.json")
def smart_style():
    style = {
        "color_background": "#f7f7f7",
        "color_highlight": "#2b6cb0",
        "color_modal_backdrop": "",
        "color_success": "#2f855a",
        "color_error": "#c53030",
        "dim_border_radius": "4px",
        "dim_font_size": "14px",
        "dim_spacing_size": "16px",
        "font_family_body": "system-ui, sans-serif",
        "font_family_heading": "system-ui, sans-serif",
    }
    return jsonify(style)


def _oauth_response(response: Response) -> Response:
    for name, value in NO_STORE.items():
        response.headers[name] = value
    return response


@bp.post("/auth/token")
def token():
    return _oauth_response(smart().server.create_token_response())


@bp.post("/auth/introspect")
def introspect():
    return _oauth_response(smart().server.create_endpoint_response("introspection"))


@bp.post("/auth/revoke")
def revoke():
    return _oauth_response(smart().server.create_endpoint_response("revocation"))


@bp.post("/auth/launch")
def launch():
    """The portal's EHR launch: a signed-in practitioner (or admin, or a patient for
    themselves) gets a launch id bound to patient/encounter context, and the app's
    launch URL to open (``iss`` + ``launch`` appended) when ``launch_uri`` is given."""
    user = current_user()
    if user is None:
        raise Unauthorized("Sign in to the portal first.")
    check_csrf()
    patient = request.form.get("patient") or None
    encounter = request.form.get("encounter") or None
    if user.role == "patient" and patient not in (None, user.patient_id):
        raise Forbidden("Patients can launch apps for their own record only.")
    if user.role == "patient":
        patient = user.patient_id
    if patient and not smart().service.patient_exists(patient):
        raise BadRequest("Unknown patient.")
    launch_id = smart().service.launches.issue(patient, encounter, user.username)
    body = {"launch": launch_id, "iss": base_url()}
    launch_uri = request.form.get("launch_uri")
    if launch_uri:
        if not launch_uri.startswith(("https://", "http://")):
            raise BadRequest("launch_uri must be an http(s) URL.")
        sep = "&" if "?" in launch_uri else "?"
        body["url"] = f"{launch_uri}{sep}{urlencode({'iss': base_url(), 'launch': launch_id})}"
    response = jsonify(body)
    response.headers.update(NO_STORE)
    session.modified = True
    return response
