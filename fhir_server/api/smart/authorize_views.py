"""The interactive half of the authorization server: sign-in, patient selection and
the approval screen in front of authlib's authorization endpoint (RFC 6749 4.1.1,
SMART App Launch 2.2 app-launch.html#obtain-authorization-code)."""

from __future__ import annotations

from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from flask import redirect, request

from fhir_server.api.smart import pages
from fhir_server.api.smart.blueprint import bp, smart
from fhir_server.api.smart.user_session import (
    auth_time,
    check_csrf,
    csrf_token,
    current_user,
    sign_in,
    sign_out,
)
from fhir_server.smart import scopes
from fhir_server.smart.discovery import endpoints
from fhir_server.smart.grants import Approval
from fhir_server.smart.tokens import Subject
from fhir_server.smart.users import LoginFailed, User

AUTHORIZE_PATH = "/fhir/auth/authorize"
LOGIN_PATH = "/fhir/auth/login"
_DECISION_FIELDS = {"csrf_token", "decision", "approved_scope", "patient"}


@bp.route("/auth/login", methods=["GET", "POST"])
def login():
    action = request.path
    next_url = request.values.get("next", "")
    if not next_url.startswith(AUTHORIZE_PATH + "?"):
        next_url = ""  # only ever return to the authorize endpoint (no open redirect)
    if request.method == "GET":
        return pages.login_page(action, csrf_token(), next_url)
    check_csrf()
    users = smart().service.users
    try:
        user = users.login(
            request.form.get("username", ""),
            request.form.get("password", ""),
            request.form.get("totp") or None,
        )
    except LoginFailed as failure:
        return pages.login_page(action, csrf_token(), next_url, str(failure), status=401)
    sign_in(user)  # a fresh session (no fixation)
    if next_url:
        return redirect(next_url)
    return pages.error_page(f"Signed in as {user.username}.", status=200)


@bp.post("/auth/logout")
def logout():
    check_csrf()
    sign_out()
    return pages.error_page("Signed out.", status=200)


@bp.route("/auth/authorize", methods=["GET", "POST"])
def authorize():
    server = smart().server
    try:
        grant = server.get_consent_grant(end_user=None)
    except OAuth2Error as error:
        if error.redirect_uri:
            return server.handle_error_response(None, error)
        return pages.error_page(f"{error.error}: {error.get_error_description()}")
    user = current_user()
    if user is None:
        params = {k: v for k, v in request.values.items(multi=True) if k not in _DECISION_FIELDS}
        target = f"{AUTHORIZE_PATH}?{urlencode(params)}"
        return redirect(f"{LOGIN_PATH}?{urlencode({'next': target})}")
    context, problem = _launch_context(grant, user)
    if problem:
        return pages.error_page(problem, 403)
    requested = scopes.split(grant.request.scope)
    choose_patient = _needs_patient_choice(requested, context, user)
    if request.method == "POST" and "decision" in request.form:
        check_csrf()
        return _decide(server, grant, user, requested, context, choose_patient)
    client = grant.request.client
    hidden = [(k, v) for k, v in request.values.items(multi=True) if k not in _DECISION_FIELDS]
    return pages.approval_page(
        action=AUTHORIZE_PATH,
        csrf=csrf_token(),
        hidden=hidden,
        app_name=client.name,
        client_id=client.client_id,
        username=user.username,
        scopes=[(s, scopes.describe(s)) for s in requested],
        choose_patient=choose_patient,
        patients=smart().service.patient_choices() if choose_patient else [],
        patient=context.get("patient"),
    )


def _decide(server, grant, user: User, requested, context, choose_patient):
    if request.form.get("decision") != "approve":
        return server.create_authorization_response(grant_user=None, grant=grant)
    approved = [s for s in requested if s in request.form.getlist("approved_scope")]
    if not approved:
        return server.create_authorization_response(grant_user=None, grant=grant)
    if choose_patient:
        patient = request.form.get("patient", "").strip()
        if not patient or not smart().service.patient_exists(patient):
            return pages.error_page("Choose an existing patient.", 400)
        context["patient"] = patient
    subject = Subject(
        username=user.username,
        fhir_user=user.fhir_user,
        context=context,
        auth_time=auth_time(),
        nonce=grant.request.payload.data.get("nonce"),
    )
    return server.create_authorization_response(
        grant_user=Approval(subject, " ".join(approved)), grant=grant
    )


def _launch_context(grant, user: User) -> tuple[dict, str | None]:
    """Context from an EHR ``launch`` id, or the standalone defaults."""
    base_style = endpoints(grant.server.fhir_base())["style"]
    launch = grant.request.payload.data.get("launch")
    if launch:
        resolved = smart().service.launches.resolve(launch)
        if resolved is None:
            return {}, "The launch has expired; start the app again from the portal."
        context, launched_by = resolved
        if launched_by and launched_by != user.username:
            return {}, "This launch was started by another user."
        context = dict(context)
        context.update(need_patient_banner=False, smart_style_url=base_style)
        return context, None
    context = {"need_patient_banner": True, "smart_style_url": base_style}
    if user.role == "patient":
        context["patient"] = user.patient_id
    return context, None


def _needs_patient_choice(requested: list[str], context: dict, user: User) -> bool:
    if context.get("patient") or user.role == "patient":
        return False
    wants = "launch/patient" in requested or any(s.startswith("patient/") for s in requested)
    return wants
