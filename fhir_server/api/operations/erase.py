"""``POST /fhir/Patient/{id}/$erase``: crypto-shredding of one patient's record.

Core: :mod:`fhir_server.operations.erase`. Access: :func:`guard.patient_or_admin` (the
patient themself or a node administrator). The erasure AuditEvent is stored in the
erasure's transaction (the route records it, :func:`guard.audited_by_route`).
"""

from __future__ import annotations

from consent import audit
from fhir_server import ids
from fhir_server.access.decision import Interaction
from fhir_server.api import guard
from fhir_server.api.http import fhir_response
from fhir_server.api.operations.base import blueprint, node, who
from fhir_server.operations import erase as core

bp = blueprint("erase")
CORE = core


@bp.post("/Patient/<patient_id>/$erase")
def patient_erase(patient_id: str):
    ids.check_id(patient_id, "patient id")
    guard.patient_or_admin(patient_id, "erase a patient's record", Interaction.DELETE, "Patient")
    guard.audited_by_route()
    event = audit.erasure(patient_id, **who())
    result = core.erase_patient(node().store, patient_id, audit_event=event)
    return fhir_response(result.to_parameters())
