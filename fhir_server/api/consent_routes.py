"""HTTP routes of the consent operations: Patient/{id}/$summary, $erase and $share.

The logic lives in fhir_server/operations/{summary,erase,share}.py. Authorization
goes through the guard (:func:`guard.patient_operation`: SMART scopes and
confinement to the token's patient; :func:`guard.patient_or_admin`), then the
consent hook ``node.consent``. A refusal by the guard is audited by the generic
per-request hook; the outcomes these routes know better -- summary read,
break-glass, erasure, share, disclosure -- they record themselves (and tell the
hook so with :func:`guard.audited_by_route`).

``$summary`` inputs for break-glass: ``purpose`` (ETREAT | BTG) and
``justification`` (query parameters; the token context may carry them instead).
``$share`` takes a foreign node's encryption public key from the chain's
AuthorityRegistry when the node is connected to one (:mod:`federation.authority_keys`),
else from ``app.config["PHRX_NODE_PUBLIC_KEY"]``: ``callable(country) -> key | None``.
Its Consent writes are audited with them (the store's before-commit hook) and the
disclosure of a released key in the same transaction; ``$erase`` stores its
erasure event in the erasure's transaction.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, request

from consent import audit
from consent.engine import SUMMARY_OPERATION
from federation import authority_keys
from fhir_server import ids
from fhir_server.api import guard
from fhir_server.api.http import base_url, fhir_response, negotiate, read_json_body
from fhir_server.errors import Forbidden
from fhir_server.operations import erase, share, summary
from fhir_server.storage.audit_log import record

bp = Blueprint("consent_ops", __name__, url_prefix="/fhir")


@bp.before_request
def _negotiate():
    negotiate()


def _node():
    return current_app.extensions["phrx.node"]


def _who() -> dict:
    return audit.who_of(g.get("access"), _node())


@bp.get("/Patient/<patient_id>/$summary")
@bp.post("/Patient/<patient_id>/$summary")
def patient_summary(patient_id: str):
    ids.check_id(patient_id, "patient id")
    guard.patient_operation(patient_id, "r", "Patient", consent=False)
    guard.audited_by_route()
    node, access, hook = _node(), g.get("access"), _node().consent
    context = (access.context or {}) if access is not None else {}
    purpose = request.args.get("purpose") or context.get("purpose_of_use")
    justification = request.args.get("justification") or context.get("btg_justification")
    options = {"operation": SUMMARY_OPERATION, "purpose": purpose, "justification": justification}
    if hook is None:  # consent switched off on this node: scopes alone decide
        return fhir_response(summary.build_summary(node.store, patient_id, base_url()))
    decision = _summary_decision(hook, access, patient_id, options)
    who = _who()
    glass = bool(getattr(decision, "break_glass", False))
    if glass or purpose in ("ETREAT", "BTG"):
        granted = bool(decision)
        record(node.store, audit.break_glass(patient_id, justification or "", granted, **who))
    if not decision:
        reasons = list(getattr(decision, "reasons", []) or ["consent denied"])
        record(
            node.store, audit.denial("read", f"Patient/{patient_id}", patient_id, reasons, **who)
        )
        raise Forbidden("Consent does not permit reading this patient's summary.")

    def visible(found: list[dict]) -> list[dict]:
        return [
            r
            for r in found
            if hook.decide(access, "read", r["resourceType"], r, patient_id, **options)
        ]

    bundle = summary.build_summary(node.store, patient_id, base_url(), visible=visible)
    record(
        node.store, audit.read(f"Patient/{patient_id}/$summary", patient_id, purpose=purpose, **who)
    )
    return fhir_response(bundle)


def _summary_decision(hook, access, patient_id: str, options: dict):
    """Permitted when the actor may read any class the summary shows; each resource
    is then filtered on its own (a Consent may cover only some classes)."""
    first = hook.decide(access, "read", "Composition", None, patient_id, **options)
    if first:
        return first
    for res_type in sorted(summary.SECTION_TYPES):
        decision = hook.decide(access, "read", res_type, None, patient_id, **options)
        if decision:
            return decision
    return first


@bp.post("/Patient/<patient_id>/$erase")
def patient_erase(patient_id: str):
    ids.check_id(patient_id, "patient id")
    guard.patient_or_admin(patient_id, "erase a patient's record")
    guard.audited_by_route()
    event = audit.erasure(patient_id, **_who())
    result = erase.erase_patient(_node().store, patient_id, audit_event=event)
    return fhir_response(result.to_parameters())


@bp.post("/Patient/<patient_id>/$share")
def patient_share(patient_id: str):
    ids.check_id(patient_id, "patient id")
    guard.patient_or_admin(patient_id, "share a patient's record")
    guard.audited_by_route()
    node = _node()
    req = share.parse_parameters(read_json_body())
    who = _who()
    result = share.share(
        node.store,
        patient_id,
        req,
        home_country=node.config.anchor_country,
        recipient_key=authority_keys.for_node(node, current_app.config.get("PHRX_NODE_PUBLIC_KEY")),
        disclosure=lambda refs, country: audit.disclosure(refs, patient_id, country, **who),
    )
    _consent_changed(patient_id)
    return fhir_response(result.to_parameters(base_url()), 200 if result.revoked else 201)


def _consent_changed(patient_id: str) -> None:
    hook = _node().consent
    if hasattr(hook, "consent_changed"):
        hook.consent_changed(patient_id)
