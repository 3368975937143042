"""$receive-share: a clinician of this node hands in a share link another country's
node issued (the link text, or a picture of its QR code) and gets the proxy Patient
to work on (see federation/gateway.py, which redeems it).

Flask-free: the OperationDefinition and the reading of the Parameters.
Route: fhir_server/api/operations/receive_share.py (a clinician signed in here).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from fhir_server.errors import BadRequest
from fhir_server.operations import definition as opd

DEFINITION = opd.operation_definition(
    "receive-share",
    code="receive-share",
    name="PhrxReceiveShare",
    title="Receive a SMART Health Link from another country's node",
    description=(
        "POST $receive-share with a Parameters body, by a clinician signed in at this "
        "node: link (valueString, the shlink:/ text) or qr (valueAttachment, a PNG or "
        "JPEG picture of its QR code), and passcode when the link needs one. This node "
        "redeems the link at the patient's home node with its node assertion (the home "
        "node decides by the patient's Consent) and answers a proxy Patient at this node: "
        "reads of it are fetched from the home node and verified against the chain here."
    ),
    system=True,
    type_=False,
    instance=False,
    affects_state=True,
    parameters=[
        opd.param("link", "in", 0, "1", "string", "The SMART Health Link (shlink:/...)."),
        opd.param("qr", "in", 0, "1", "Attachment", "A PNG or JPEG of the link's QR code."),
        opd.param("passcode", "in", 0, "1", "string", "The link's passcode (flag P)."),
        opd.param("patient", "out", 1, "1", "Reference", "The proxy Patient at this node."),
        opd.param("homeNode", "out", 1, "1", "code", "Country of the patient's home node."),
        opd.param("homePatient", "out", 1, "1", "uri", "The patient at their home node."),
        opd.param("consent", "out", 1, "1", "uri", "The home node's Consent."),
    ],
)
NAME = DEFINITION["code"]


@dataclass(frozen=True)
class ReceiveRequest:
    link: str | None
    picture: bytes | None
    passcode: str | None


def parse_parameters(body: object) -> ReceiveRequest:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("$receive-share takes a Parameters resource (link or qr, passcode).")
    entries = body.get("parameter")
    entries = [p for p in entries if isinstance(p, dict)] if isinstance(entries, list) else []
    values = {p.get("name"): p for p in entries}
    link = (values.get("link") or {}).get("valueString")
    passcode = (values.get("passcode") or {}).get("valueString")
    if passcode is not None and not isinstance(passcode, str):
        raise BadRequest("passcode is a valueString.")
    if isinstance(link, str):
        return ReceiveRequest(link, None, passcode)
    attachment = (values.get("qr") or {}).get("valueAttachment")
    if not isinstance(attachment, dict) or not isinstance(attachment.get("data"), str):
        raise BadRequest(
            "$receive-share needs the link (valueString) or a picture of its QR code "
            "(qr: valueAttachment with base64 data)."
        )
    try:
        picture = base64.b64decode(attachment["data"], validate=True)
    except ValueError:
        raise BadRequest("qr.data is not base64.") from None
    return ReceiveRequest(None, picture, passcode)


def result_parameters(proxy, consent_id: str) -> dict:
    home = f"{proxy.home_base}/Patient/{proxy.home_patient}"
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "valueReference": {"reference": f"Patient/{proxy.proxy_id}"}},
            {"name": "homeNode", "valueCode": proxy.home_country},
            {"name": "homePatient", "valueUri": home},
            {"name": "consent", "valueUri": f"{proxy.home_base}/Consent/{consent_id}"},
        ],
    }
