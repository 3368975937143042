"""Resource-server enforcement for the HTTP routes: one place, Flask-thin.

Every ``/fhir`` route except ``metadata``, ``.well-known`` and the authorization
server's own ``/fhir/auth`` endpoints is authenticated by the SMART hook
(:mod:`fhir_server.api.smart.bearer_hook`: 401 with ``WWW-Authenticate``), which
leaves the :class:`~fhir_server.smart.access.AccessContext` on ``g.access``.
The routes then call these functions, which delegate to the Flask-free
:class:`~fhir_server.access.gate.AccessPolicy` (scopes -> 403,
patient compartment confinement -> answers like a missing resource, granular
scopes, and the consent hook ``node.consent`` documented there).

Interactions are the gate's :class:`~fhir_server.access.decision.Interaction` (the
FHIR RESTful interaction codes; each maps to the SMART permission it needs:
create ``c``, read / vread / instance history / ``$verify`` / ``$provenance`` /
``$everything`` ``r``, update ``u``, delete ``d``, search / type and system history
``s``). ``$anchor`` needs a ``system/*`` scope granting ``c`` (operators and
backend services: it commits every patient's pending versions to the chain).

Patient operations (``$summary``, ``$share``, ``$erase``, ``$import-mhb``) go
through :func:`patient_operation` (scope + confinement to the token's patient)
and :func:`patient_or_admin`. Auditing: the first :func:`policy` of a read opens
the request transaction that the decision, the data and the AuditEvent share;
:func:`record_audit` (an ``after_request`` hook) writes the request's AuditEvent(s)
from what the policy noted (:mod:`fhir_server.access.request_audit`) and commits it; writes
are audited in their own transaction (the store's before-commit hook); see
:mod:`fhir_server.api.audit_hook`.
"""

from __future__ import annotations

from flask import current_app, g

from anchoring.provenance import version_key_of
from fhir_server import ids
from fhir_server.access.decision import Interaction
from fhir_server.access.gate import AccessPolicy
from fhir_server.access.request_audit import RequestAudit
from fhir_server.api import audit_hook
from fhir_server.errors import FHIRError, Forbidden, Gone
from fhir_server.operations.verify import copies as _copies
from fhir_server.resource_types import check_type, supported_types
from fhir_server.search.runner import SearchPage


def policy() -> AccessPolicy:
    """The request's policy (None access when ``PHRX_AUTH`` is off: unrestricted)."""
    found = g.get("phrx_policy")
    if found is None:
        node = current_app.extensions["phrx.node"]
        consent = getattr(node, "consent", None)
        access = g.get("access")
        found = AccessPolicy(access, node.store, consent, RequestAudit(), lambda: _admin(access))
        g.phrx_policy = found
        audit_hook.begin(node)  # before any decision: a read's transaction opens here
    return found


def search(
    res_type: str,
    query: list[tuple[str, str]],
    strict: bool = False,
    compartment: str | None = None,
) -> SearchPage:
    """A search under the token: 403 on scope, confined results, screened includes.

    A search naming one patient (``patient=`` / ``subject=Patient/``, or a patient
    compartment search, ``compartment``) by a token not confined to that patient asks
    consent up front for that patient: no Consent for this actor and type is a 403
    (it says nothing of whether the patient exists), rather than an empty page that
    looks like "no records"."""
    current = policy()
    named = compartment or _named_patient(query)
    unconfined = named is not None and current.consent is not None
    if unconfined and current.require(Interaction.SEARCH_TYPE, res_type, query).compartment is None:
        current.gate(Interaction.SEARCH_TYPE, res_type, named)
    return current.search(res_type, query, strict=strict, compartment=compartment)


def _named_patient(query: list[tuple[str, str]]) -> str | None:
    """The single patient id a search is restricted to by ``patient`` / ``subject``."""
    found = set()
    for name, value in query:
        if name in ("patient", "subject", "patient:Patient", "subject:Patient"):
            if "," in value:
                return None  # several patients: each result is decided on its own
            ref = value.rsplit("/", 2)
            if name.startswith("subject") and ":" not in name and len(ref) < 2:
                return None  # subject=<id> may be a Group or Device
            found.add(ref[-1])
    return found.pop() if len(found) == 1 else None


def read(res_type: str, res_id: str) -> dict:
    return policy().read(res_type, res_id)


def vread(res_type: str, res_id: str, version_id: int) -> dict:
    return policy().vread(res_type, res_id, version_id)


def write(interaction: Interaction, res_type: str) -> AccessPolicy:
    """Scope check of a write before its body is read; the returned policy goes to
    ``store.unit_of_work(policy=...)`` so the Writer checks what is written."""
    current = policy()
    current.require(interaction, res_type)
    return current


# The access log (AuditEvents) is left out of system / compartment history and of
# $everything: it has its own view (AuditEvent search), and each such read writes
# an AuditEvent that would otherwise show up in -- and grow -- the next one.
ACCESS_LOG = "AuditEvent"


def history(res_type: str | None = None, res_id: str | None = None) -> dict:
    """Keyword arguments confining ``store.history`` (403 when not permitted)."""
    scope = policy().history_scope(res_type, res_id)
    if res_type is None:
        kinds = scope.get("res_types") or sorted(supported_types())
        scope["res_types"] = [t for t in kinds if t != ACCESS_LOG]
    return scope


def everything(patient_id: str):
    """Check ``$everything`` on ``patient_id``; returns the per-resource filter."""
    current = policy()
    current.everything_target(patient_id)

    def clinical(found: list[dict]) -> list[dict]:
        return current.visible([r for r in found if r.get("resourceType") != ACCESS_LOG])

    return clinical


def verify_stored(res_type: str, res_id: str, version_id: int | None = None) -> None:
    """``$verify`` / ``$provenance`` need read access to the resource (version);
    a deletion the token may see is left to the operation to report."""
    check_type(res_type)
    ids.check_id(res_id)
    policy().verify_target(res_type, res_id, version_id)


def verify_copies(body: dict) -> None:
    """``POST $verify``: a copy checked against the node's journal (it carries no
    Provenance) names a stored version, which must be readable (else 404 / 403)."""
    current = policy()
    if current.access is None:
        return
    try:
        pairs = _copies(body)
    except FHIRError:  # malformed bodies are reported by verify_external itself
        return
    for resource, provenance in pairs:
        key = version_key_of(resource) if provenance is None else None
        if key is None:
            continue
        try:
            current.vread(*key)
        except Gone:  # a deletion marker of a visible resource: nothing to hide
            continue


def anchor() -> None:
    policy().anchor()


# -- patient-level operations ($summary, $share, $erase, $import-mhb) -------------------
def patient_operation(
    patient_id: str, interaction: Interaction, res_type: str, *, consent: bool = True
) -> AccessPolicy:
    """Scope check for an operation on ``Patient/{patient_id}``: a token confined to
    another patient is refused (403), and the request is audited as about this patient.
    ``consent``: also ask the consent hook up front for this patient (``$summary``
    asks it itself, with the operation and purpose break-glass needs)."""
    current = policy()
    current.audit.about = patient_id
    grant = current.require(interaction, res_type)
    access = current.access
    own = access.user_patient if access is not None else None
    for confined in (grant.compartment, own):
        if confined is not None and confined != patient_id:
            raise Forbidden("The access token is confined to another patient.")
    if consent and grant.compartment is None:  # else require() already asked for it
        current.gate(interaction, res_type, patient_id)
    return current


def patient_or_admin(patient_id: str, what: str, interaction: Interaction, res_type: str) -> None:
    """Only the patient themself (or a node administrator) may ``what``, and only with a
    token whose scopes grant ``interaction`` on ``res_type`` (403 otherwise)."""
    current = policy()
    current.audit.about = patient_id
    current.require(interaction, res_type)
    access = current.access
    if access is None or access.user_patient == patient_id:
        return
    if not current.is_admin():
        raise Forbidden(f"Only the patient themself or an administrator may {what}.")


def _admin(access) -> bool:
    """Is the token's user an administrator of this node?"""
    if access is None or not access.user:
        return False
    smart = current_app.extensions.get("phrx.smart")
    user = smart.service.users.get(access.subject) if smart else None
    return user is not None and user.role == "admin"


def audited_by_route() -> None:
    """The route records its own, more specific AuditEvents (break-glass, erasure,
    share, disclosure): the generic per-request event is not written on top."""
    policy().audit.handled = True
