"""The federation's HTTP surface.

* ``POST /fhir/shl/{link}`` -- a SMART Health Link's manifest (HL7 SHL IG STU1): the
  patient's International Patient Summary and the Consent, as compact JWEs under
  the link's key. The link holder is an actor the one gate decides: the ``$summary``
  route runs as them (the link's own identity, plus the clinician a calling node's
  bearer token names), so the Consent the link stands for -- and nothing else --
  decides what is released, and the read is audited like any other.
* (``POST /fhir/$receive-share`` is an operation: fhir_server/api/operations/
  receive_share.py.)
* The gateway hook: requests here about a proxy Patient (read, ``$summary``,
  ``$everything``, searches naming it, new records about it) are served from the
  home node through :mod:`federation.gateway`, after this node's own
  scope check; a proxy is usable only by the clinician who received it.
"""

from __future__ import annotations

import json
import time
import uuid

from flask import Blueprint, Response, current_app, g, request

from consent import audit
from federation import gateway, shlink
from federation.errors import FederationError
from federation.proxies import PROXY_PREFIX, is_proxy_id
from fhir_server import fastjson
from fhir_server.api.clinician import clinician
from fhir_server.api.http import base_url, fhir_response, read_json_body
from fhir_server.api.operations.base import node, who
from fhir_server.api.smart.bearer_hook import check_federated
from fhir_server.errors import BadRequest, FHIRError, NotFound, from_federation
from fhir_server.operations.share import SHARE_LINK_SYSTEM
from fhir_server.smart import scopes
from fhir_server.smart.access import AccessContext
from fhir_server.storage.audit_log import record
from vault.keyring import KeyRing

# Under the FHIR base, so a link's URL lies under the node's registered base (the trust
# check); public for the bearer hook: the manifest authenticates its holder itself.
manifests = Blueprint("shl", __name__, url_prefix="/fhir/shl")
LINK_SCOPE = "system/*.rs"
FHIR_JSON = "application/fhir+json"
FILE_TYPE = "application/fhir+json;fhirVersion=4.0.1"  # the IG's content type for FHIR
MAX_MANIFEST_BODY = 64 * 1024


def _federation():
    found = node().federation
    if found is None:
        raise NotFound("This node has no federation (it runs without a chain).")
    return found


# -- the manifest ------------------------------------------------------------------
@manifests.post("/<link_id>")
def manifest(link_id: str):
    federation = _federation()
    link = federation.links.find(link_id)
    if link is None or link.state_at(int(time.time())) != "active":
        raise NotFound("No active share link here.")  # revoked, expired, used up: all alike
    body = _manifest_request()
    if link.has_passcode:
        left = federation.links.check_passcode(link_id, body.get("passcode"))
        if left is not None:
            answer = {"remainingAttempts": left}
            return Response(json.dumps(answer), 401, mimetype="application/json")
    current = node()
    try:
        consent = current.store.read("Consent", link.consent_id)
    except FHIRError:  # deleted, erased: the link is as dead as its Consent
        raise NotFound("No active share link here.") from None
    if consent.get("status") != "active":  # revoking revokes its links too: belt and braces
        raise NotFound("No active share link here.")
    g.access = _link_holder(link_id)
    from fhir_server.api.operations.summary import patient_summary

    summary = patient_summary(link.patient_id)  # the gate decides, the route audits
    data_key = current.keyring.data_key(KeyRing.patient_scope(link.patient_id), create=False)
    key = federation.links.open_key(link, data_key)
    limit = _embedded_limit(body)
    files = [
        _file(federation, link_id, shlink.encrypt(key, content, FHIR_JSON), limit)
        for content in (summary.get_data(), json.dumps(consent).encode())
    ]
    federation.links.record_use(link_id)
    recipient = str(body.get("recipient"))[:200]
    event = audit.disclosure(
        [f"Consent/{link.consent_id}"], link.patient_id, _country(g.access) or "link", **who()
    )
    event["outcomeDesc"] = f"share link manifest released to {recipient!r}"
    record(current.store, event)
    # can-change: the summary is made from the record as it is at each request
    answer = {"status": "can-change", "files": files}
    return Response(json.dumps(answer), 200, mimetype="application/json")


def _embedded_limit(body: dict) -> int | None:
    limit = body.get("embeddedLengthMax")
    if limit is None:
        return None
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise BadRequest("embeddedLengthMax is a non-negative integer.")
    return limit


def _file(federation, link_id: str, jwe: str, limit: int | None) -> dict:
    """A manifest file: embedded, or -- longer than the viewer's embeddedLengthMax --
    at a short-lived location (SHL IG: the JWE, for a minute, under a random id)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if limit is None or len(jwe) <= limit:
        return {"contentType": FILE_TYPE, "embedded": jwe, "lastUpdated": now}
    file_id = federation.links.put_file(link_id, jwe)
    location = f"{base_url()}/shl/{link_id}/file/{file_id}"
    return {"contentType": FILE_TYPE, "location": location, "lastUpdated": now}


@manifests.get("/<link_id>/file/<file_id>")
def manifest_file(link_id: str, file_id: str):
    """A file a manifest handed out by location (public, like the manifest: the
    random location is the capability, the content is encrypted for the link)."""
    found = _federation().links.take_file(link_id, file_id)
    if found is None:
        raise NotFound("No such file (expired, or its link is no longer active).")
    return Response(found, 200, mimetype="application/jose")


def _manifest_request() -> dict:
    raw = request.get_data(cache=False)
    if len(raw) > MAX_MANIFEST_BODY:
        raise BadRequest("A manifest request is a small JSON object.")
    try:
        body = fastjson.parse(raw or b"{}", max_depth=4)
    except ValueError:
        raise BadRequest("The manifest request body is not JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("The manifest request body is a JSON object.")
    recipient = body.get("recipient")
    if not isinstance(recipient, str) or not recipient.strip():
        raise BadRequest("The manifest request names its recipient (SHL: 'recipient').")
    return body


def _link_holder(link_id: str) -> AccessContext:
    """Who asks: the link itself, plus the clinician a calling node's valid bearer
    token names (a token that does not verify is refused, never ignored)."""
    identifiers = [[SHARE_LINK_SYSTEM, link_id]]
    context: dict = {"purpose_of_use": "TREAT"}
    client = "shl-holder"
    header = request.headers.get("Authorization")
    if header:
        verifier = current_app.extensions["phrx.smart"].verifier
        caller = verifier.authenticate(header, audience=base_url())
        check_federated(caller)
        client = caller.client_id
        identifiers += list(caller.context.get("actor_identifiers") or [])
        for name in ("actor_country", "actor_reference", "actor_display", "purpose_of_use"):
            if caller.context.get(name):
                context[name] = caller.context[name]
    context["actor_identifiers"] = identifiers
    parsed = tuple(p for p in (scopes.parse_resource_scope(LINK_SCOPE),) if p)
    return AccessContext(
        client_id=client,
        user=None,
        patient=None,
        scopes=parsed,
        scope=LINK_SCOPE,
        subject=f"share-link:{link_id[:8]}",
        jti=f"shl-{uuid.uuid4()}",
        expires_at=int(time.time()) + 60,
        context=context,
    )


def _country(access) -> str | None:
    return (access.context or {}).get("actor_country") if access is not None else None


# -- the gateway hook ------------------------------------------------------------------
def gateway_hook():
    """Serve requests about a proxy Patient from its home node (see module docstring)."""
    path = request.path
    if not path.startswith("/fhir/") or request.method not in ("GET", "POST"):
        return None
    parts = path[len("/fhir/") :].split("/")
    target = _proxy_target(parts)
    if target is None:
        return None
    access = g.get("access")
    if access is None:
        return None
    federation = node().federation
    if federation is None:
        return None
    kind, proxy_id, res_type = target
    try:
        proxy = gateway.check_proxy(federation.proxies.get(proxy_id), access.user)
        return _serve(federation, proxy, clinician(), access, kind, res_type)
    except FederationError as error:
        raise from_federation(error) from None


def _proxy_target(parts: list[str]):
    """(kind, proxy id, resource type) when the request is about a proxy, else None."""
    if len(parts) >= 2 and parts[0] == "Patient" and is_proxy_id(parts[1]):
        if len(parts) == 2 and request.method == "GET":
            return "read", parts[1], "Patient"
        if len(parts) == 3 and parts[2] in ("$summary", "$everything"):
            return parts[2][1:], parts[1], "Patient"
        if len(parts) == 3 and request.method == "GET" and not parts[2].startswith(("$", "_")):
            return "search", parts[1], parts[2]
        return None
    if len(parts) != 1 or not parts[0] or parts[0].startswith(("$", "_")):
        return None
    if request.method == "GET":
        for name in ("patient", "subject"):
            value = request.args.get(name, "").removeprefix("Patient/")
            if is_proxy_id(value):
                return "search", value, parts[0]
        return None
    raw = request.get_data(cache=True)
    if f'"Patient/{PROXY_PREFIX}'.encode() not in raw:
        return None  # not about a proxy: the REST route parses (and bounds) the body
    try:
        body = fastjson.parse(raw, max_depth=current_app.config["PHRX_MAX_JSON_DEPTH"])
    except ValueError:
        return None  # the REST route answers the malformed body
    subject = body.get("subject") if isinstance(body, dict) else None
    ref = (subject or {}).get("reference", "") if isinstance(subject, dict) else ""
    if isinstance(ref, str) and is_proxy_id(ref.removeprefix("Patient/")):
        return "write", ref.removeprefix("Patient/"), parts[0]
    return None


def _serve(federation, proxy, clinician, access, kind: str, res_type: str):
    current = node()
    if kind == "write":
        access.require("c", res_type)
        body = read_json_body()
        if not isinstance(body, dict) or body.get("resourceType") != res_type:
            raise BadRequest(f"The body is not a {res_type}.")
        status, location, answer = gateway.write_back(federation, proxy, clinician, res_type, body)
        record(current.store, audit.create(location or res_type, proxy.proxy_id, **who()))
        response = fhir_response(answer, status)
        if location:
            response.headers["Location"] = location
        return response
    access.require("r" if kind != "search" else "s", res_type)
    if kind == "read":
        found = gateway.read_patient(federation, proxy, clinician)
    elif kind == "summary":
        found = gateway.summary(federation, proxy, clinician)
    elif kind == "everything":
        found = gateway.everything(federation, proxy, clinician)
    else:
        query = list(request.args.items(multi=True))
        prefer = request.headers.get("Prefer")
        found = gateway.search(federation, proxy, clinician, res_type, query, prefer)
    reference = f"Patient/{proxy.proxy_id}" + ("" if kind == "read" else f" {kind} {res_type}")
    event = audit.read(f"Patient/{proxy.proxy_id}", proxy.proxy_id, **who())
    event["outcomeDesc"] = f"received from {proxy.home_country} and verified on chain: {reference}"
    record(current.store, event)
    return fhir_response(found, 200)


def init_federation(app) -> None:
    app.register_blueprint(manifests)
    app.before_request(gateway_hook)  # after the bearer hook: g.access is known
