"""``POST /fhir/Patient/{id}/$share``: grant (or revoke) a practitioner access as a Consent.

Core: :mod:`fhir_server.operations.share`. Access: :func:`guard.patient_or_admin` (the
patient themself or a node administrator). The Consent writes are audited by the
store's before-commit hook, and the disclosure of a released key in the same
transaction (:func:`guard.audited_by_route`).

A foreign node's encryption public key comes from the chain's AuthorityRegistry when
the node is connected to one (:mod:`federation.authority_keys`), else from
``app.config["PHRX_NODE_PUBLIC_KEY"]``: ``callable(country) -> key | None``.
"""

from __future__ import annotations

from flask import current_app

from consent import audit
from federation import authority_keys
from fhir_server import ids
from fhir_server.access.decision import Interaction
from fhir_server.api import guard
from fhir_server.api.http import base_url, fhir_response, read_json_body
from fhir_server.api.operations.base import blueprint, node, who
from fhir_server.node_federation import ShareLinks
from fhir_server.operations import share as core

bp = blueprint("share")
CORE = core


@bp.post("/Patient/<patient_id>/$share")
def patient_share(patient_id: str):
    ids.check_id(patient_id, "patient id")
    guard.patient_or_admin(patient_id, "share a patient's record", Interaction.CREATE, "Consent")
    guard.audited_by_route()
    current = node()
    req = core.parse_parameters(read_json_body())
    actor = who()
    result = core.share(
        current.store,
        patient_id,
        req,
        home_country=current.config.anchor_country,
        recipient_key=authority_keys.for_node(
            current, current_app.config.get("PHRX_NODE_PUBLIC_KEY")
        ),
        disclosure=lambda refs, country: audit.disclosure(refs, patient_id, country, **actor),
        links=ShareLinks(current.federation, base_url()) if current.federation else None,
    )
    hook = current.consent
    if hasattr(hook, "consent_changed"):
        hook.consent_changed(patient_id)
    return fhir_response(result.to_parameters(base_url()), 200 if result.revoked else 201)
