"""``POST /fhir/$receive-share``: a clinician here hands in a share link (text or a
picture of its QR code); this node redeems it at the home node and answers the proxy
Patient. Core: :mod:`fhir_server.operations.receive_share`; the redeeming:
:func:`federation.gateway.receive_share`. Access: a clinician signed in at this node
(:func:`fhir_server.api.clinician.clinician`); the home node decides by its Consent.
"""

from __future__ import annotations

from consent import audit
from federation import gateway, qr
from federation.errors import FederationError
from fhir_server.api.clinician import clinician
from fhir_server.api.http import fhir_response, read_json_body
from fhir_server.api.operations.base import blueprint, node, who
from fhir_server.errors import NotFound, from_federation
from fhir_server.operations import receive_share as core
from fhir_server.storage.audit_log import record

bp = blueprint("receive_share")
CORE = core


@bp.post("/$receive-share")
def receive_share():
    federation = node().federation
    if federation is None:
        raise NotFound("This node has no federation (it runs without a chain).")
    who_asks = clinician()
    req = core.parse_parameters(read_json_body())
    try:
        link = req.link if req.link is not None else qr.decode(req.picture)
        proxy, _patient, consent = gateway.receive_share(federation, who_asks, link, req.passcode)
    except FederationError as error:
        raise from_federation(error) from None
    event = audit.read(f"Patient/{proxy.proxy_id}", proxy.proxy_id, **who())
    home = f"{proxy.home_base}/Patient/{proxy.home_patient}"
    event["outcomeDesc"] = f"share received from {proxy.home_country}: {home}"
    record(node().store, event)
    return fhir_response(core.result_parameters(proxy, consent["id"]), 200)
