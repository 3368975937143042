"""``GET|POST /fhir/Patient/{id}/$summary``: the International Patient Summary.

Core: :mod:`fhir_server.operations.summary`. Access: :func:`guard.patient_operation`
(SMART scopes and confinement to the token's patient), then the consent hook
``node.consent`` with the operation and purpose break-glass needs: ``purpose``
(ETREAT | BTG) and ``justification`` (query parameters; the token context may carry
them instead). A refusal by the guard is audited by the generic per-request hook;
the summary read, break-glass and denials the route records itself
(:func:`guard.audited_by_route`).

Everything the document shows passes the request's gate, with the break-glass options
of this operation: the Patient, each section entry, and each practitioner,
organization, medication, device or specimen an entry references (the core includes
those only when released, else it drops the reference). A patient-confined token is
released nothing outside the patient's compartment, so its summary names no such
resources.
"""

from __future__ import annotations

from flask import g, request

from consent import audit
from consent.engine import SUMMARY_OPERATION
from fhir_server import ids
from fhir_server.access.decision import Interaction
from fhir_server.api import guard
from fhir_server.api.http import base_url, fhir_response
from fhir_server.api.operations.base import blueprint, node, who
from fhir_server.errors import Forbidden
from fhir_server.operations import summary as core
from fhir_server.storage.audit_log import record

bp = blueprint("summary")
CORE = core


@bp.get("/Patient/<patient_id>/$summary")
@bp.post("/Patient/<patient_id>/$summary")
def patient_summary(patient_id: str):
    ids.check_id(patient_id, "patient id")
    guard.patient_operation(patient_id, Interaction.READ, "Patient", consent=False)
    guard.audited_by_route()
    current, access = node(), g.get("access")
    hook = current.consent
    context = (access.context or {}) if access is not None else {}
    purpose = request.args.get("purpose") or context.get("purpose_of_use")
    justification = request.args.get("justification") or context.get("btg_justification")
    options = {"operation": SUMMARY_OPERATION, "purpose": purpose, "justification": justification}
    policy = guard.policy()
    if hook is None:  # consent switched off on this node: scopes alone decide
        bundle = core.build_summary(current.store, patient_id, base_url(), visible=policy.visible)
        return fhir_response(bundle)
    decision = _summary_decision(hook, access, patient_id, options)
    actor = who()
    glass = bool(getattr(decision, "break_glass", False))
    if glass or purpose in ("ETREAT", "BTG"):
        granted = bool(decision)
        record(current.store, audit.break_glass(patient_id, justification or "", granted, **actor))
    if not decision:
        reasons = list(getattr(decision, "reasons", []) or ["consent denied"])
        event = audit.denial("read", f"Patient/{patient_id}", patient_id, reasons, **actor)
        record(current.store, event)
        raise Forbidden("Consent does not permit reading this patient's summary.")

    def visible(found: list[dict]) -> list[dict]:
        # The gate decides each resource of the document (scopes, granular scopes,
        # consent), with the break-glass options of this operation put to the consent hook.
        return policy.visible(found, **options)

    bundle = core.build_summary(current.store, patient_id, base_url(), visible=visible)
    event = audit.read(f"Patient/{patient_id}/$summary", patient_id, purpose=purpose, **actor)
    record(current.store, event)
    return fhir_response(bundle)


def _summary_decision(hook, access, patient_id: str, options: dict):
    """Permitted when the actor may read any class the summary shows; each resource
    is then filtered on its own (a Consent may cover only some classes)."""
    first = hook.decide(access, "read", "Composition", None, patient_id, **options)
    if first:
        return first
    for res_type in sorted(core.SECTION_TYPES):
        decision = hook.decide(access, "read", res_type, None, patient_id, **options)
        if decision:
            return decision
    return first
