"""Patient/{id}/$share: grant (or revoke) a practitioner access as a Consent.

Flask-free. Input Parameters (all optional except a recipient):

* ``recipient`` -- valueIdentifier (system and value) or valueReference of the
  practitioner; an identifier names a practitioner of ``recipientNode``: on this
  node, the one whose Practitioner resource carries it (see :mod:`fhir_server.access.consent_hook`);
* ``recipientNode`` -- valueCode, country of the practitioner's node (omitted: this node);
* ``period`` -- valuePeriod (default: from now for :data:`DEFAULT_DAYS` days);
* ``purpose`` -- valueCoding, repeating (default v3-ActReason TREAT);
* ``class`` -- valueCode (or valueCoding) resource type, repeating (default: all);
* ``access`` -- valueCode ``read`` | ``read-write`` (default read);
* ``revoke`` -- valueBoolean; with ``share`` (valueString, the share id) or the recipient;
* ``link`` -- valueBoolean: also issue a SMART Health Link to the share (``link`` and
  ``qr`` out; default: for a recipient at another country's node, or without a
  recipient -- then the Consent names the link itself: "any clinician the link
  reaches"); only a node with a federation (a chain) issues links;
* ``passcode`` -- valueString: the link needs it (flag P; a few wrong tries kill it);
* ``label`` -- valueString: the link's label (at most 80 characters).

A grant writes an active patient-privacy Consent through the normal write path
(validated, sealed, journalled for anchoring). For a foreign node the patient's
data key is released: wrapped for that node's encryption public key (looked up by
``recipient_key``: the chain's AuthorityRegistry, see
:mod:`federation.authority_keys`) and kept in ``released_keys``; the disclosure
AuditEvent is stored in the same transaction, so no key leaves without its record.
Revocation sets the matching Consents ``inactive`` and destroys their released keys.

Route: fhir_server/api/operations/share.py (the patient themself or an administrator).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import x25519

from consent.codes import (
    ACT_CODE,
    ACT_REASON,
    CONSENT_ACTION,
    CONSENT_SCOPE,
    LOINC,
    NODE_COUNTRY_EXT,
    PRIVACY_CATEGORY,
    PROVISION_ACTOR_ROLE,
    RESOURCE_TYPES,
)
from consent.provisions import time_range
from federation import shlink
from federation.links import new_link_id
from fhir_server import ids
from fhir_server.errors import BadRequest, NotFound
from fhir_server.operations import definition as opd
from fhir_server.resource_types import supported_types
from fhir_server.rest import interactions
from fhir_server.search.runner import run_search
from fhir_server.storage import audit_store, queries
from fhir_server.validation import validate_resource
from vault import release
from vault._encoding import length_prefixed
from vault.keyring import KeyRing

SHARE_SYSTEM = "https://phrx.example.org/fhir/NamingSystem/share-id"
# Identifies the holder of a share link (its id) to the consent engine.
SHARE_LINK_SYSTEM = "https://phrx.example.org/fhir/NamingSystem/share-link"
DEFAULT_DAYS = 30
DEFINITION = opd.operation_definition(
    "share",
    code="share",
    name="PhrxPatientShare",
    title="Share a patient's record with a practitioner (or revoke a share)",
    description=(
        "POST Patient/id/$share with a Parameters body, by the patient themself or a node "
        "administrator: writes an active patient-privacy Consent permitting the recipient "
        "(a Practitioner reference, or an identifier of a practitioner of recipientNode). "
        "For another country's node the patient's data key is released, wrapped for that "
        "node's public key. revoke=true sets the matching Consents inactive and destroys "
        "their released keys. 201 for a grant, 200 for a revocation."
    ),
    resource=["Patient"],
    system=False,
    type_=False,
    instance=True,
    affects_state=True,
    parameters=[
        opd.param(
            "recipient",
            "in",
            0,
            "1",
            "Element",
            "valueIdentifier (system and value) or valueReference (Practitioner); "
            "required unless revoking by share id.",
        ),
        opd.param("recipientNode", "in", 0, "1", "code", "Country of the recipient's node."),
        opd.param("period", "in", 0, "1", "Period", f"Default: from now for {DEFAULT_DAYS} days."),
        opd.param("purpose", "in", 0, "*", "Coding", "Default: v3-ActReason TREAT."),
        opd.param("class", "in", 0, "*", "code", "Resource types shared (default: all)."),
        opd.param("access", "in", 0, "1", "code", "read (default) or read-write."),
        opd.param("revoke", "in", 0, "1", "boolean", "Revoke instead of granting."),
        opd.param("share", "in", 0, "1", "string", "The share id to revoke."),
        opd.param("link", "in", 0, "1", "boolean", "Issue a SMART Health Link (default: abroad)."),
        opd.param("passcode", "in", 0, "1", "string", "Passcode the link asks for."),
        opd.param("label", "in", 0, "1", "string", "Label of the link (80 characters)."),
        opd.param("consent", "out", 0, "*", "Consent", "The Consents written."),
        opd.param("share", "out", 0, "1", "string", "The share id."),
        opd.param("reference", "out", 0, "*", "Reference", "URL of each Consent."),
        opd.param("keyReleased", "out", 1, "1", "boolean", "A data key went to another node."),
        opd.param("link", "out", 0, "1", "string", "The SMART Health Link (shlink:/...)."),
        opd.param("qr", "out", 0, "1", "Attachment", "The link as a QR code (PNG)."),
    ],
)
NAME = DEFINITION["code"]

PublicKeyLookup = Callable[[str], object | None]  # country -> encryption public key


class LinkIssuer(Protocol):
    """Issues and revokes share links in the share's transaction (see
    fhir_server/node_federation.py)."""

    def issue(self, conn, link_id: str, patient_id: str, consent_id: str, req, end) -> str: ...

    def revoke(self, conn, consent_ids: list[str]) -> None: ...


# (Consent references, recipient country) -> the disclosure AuditEvent
DisclosureEvent = Callable[[list[str], str], dict]


@dataclass
class ShareRequest:
    reference: str | None = None
    identifier: tuple[str, str] | None = None
    node: str | None = None
    period: dict = field(default_factory=dict)
    purposes: list[dict] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    access: str = "read"
    revoke: bool = False
    share_id: str | None = None
    link: bool | None = None
    passcode: str | None = None
    label: str | None = None


@dataclass
class ShareResult:
    consents: list[dict]
    share_id: str | None
    released_to: str | None = None  # country whose node got the wrapped key
    revoked: bool = False
    link: str | None = None  # shlink:/...

    def to_parameters(self, base_url: str) -> dict:
        params = [{"name": "consent", "resource": c} for c in self.consents]
        if self.link:
            params.append({"name": "link", "valueString": self.link})
            png = base64.b64encode(shlink.qr_png(self.link)).decode("ascii")
            qr = {"contentType": "image/png", "data": png, "title": "SMART Health Link"}
            params.append({"name": "qr", "valueAttachment": qr})
        if self.share_id:
            params.append({"name": "share", "valueString": self.share_id})
        for consent in self.consents:
            url = f"{base_url}/Consent/{consent['id']}"
            params.append({"name": "reference", "valueReference": {"reference": url}})
        params.append({"name": "keyReleased", "valueBoolean": self.released_to is not None})
        return {"resourceType": "Parameters", "parameter": params}


def parse_parameters(body: dict) -> ShareRequest:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("$share takes a Parameters resource.")
    req = ShareRequest()
    for index, param in enumerate(body.get("parameter") or []):
        _apply(req, param.get("name"), param, f"Parameters.parameter[{index}]")
    if not req.purposes:
        req.purposes = [{"system": ACT_REASON, "code": "TREAT"}]
    if not req.revoke and not (req.reference or req.identifier) and req.link is False:
        raise BadRequest("$share needs a recipient (Identifier or Reference) or a link.")
    if req.revoke and not (req.share_id or req.reference or req.identifier):
        raise BadRequest("Revoking needs the share id or the recipient.")
    return req


def _apply(req: ShareRequest, name: str, param: dict, where: str) -> None:  # noqa: PLR0912
    if name == "recipient":
        if "valueIdentifier" in param:
            ident = param["valueIdentifier"]
            if not isinstance(ident, dict) or not ident.get("system") or not ident.get("value"):
                # without a system the identifier names no one in particular: never matched
                raise BadRequest(
                    "recipient Identifier needs a system and a value.", expression=[where]
                )
            req.identifier = (ident["system"], ident["value"])
        elif "valueReference" in param:
            req.reference = (param["valueReference"] or {}).get("reference")
            if not req.reference or not req.reference.startswith("Practitioner"):
                raise BadRequest("recipient must reference a Practitioner.", expression=[where])
        else:
            raise BadRequest("recipient is an Identifier or a Reference.", expression=[where])
    elif name == "recipientNode":
        req.node = (param.get("valueCode") or param.get("valueString") or "").upper() or None
    elif name == "period":
        req.period = dict(param.get("valuePeriod") or {})
    elif name == "purpose":
        coding = param.get("valueCoding") or {"system": ACT_REASON, "code": param.get("valueCode")}
        req.purposes.append(
            {"system": coding.get("system") or ACT_REASON, "code": coding.get("code")}
        )
    elif name == "class":
        code = param.get("valueCode") or (param.get("valueCoding") or {}).get("code")
        if code not in supported_types():
            raise BadRequest(f"class {code!r} is not a resource type.", expression=[where])
        req.classes.append(code)
    elif name == "access":
        req.access = param.get("valueCode") or ""
        if req.access not in ("read", "read-write"):
            raise BadRequest("access is 'read' or 'read-write'.", expression=[where])
    elif name == "revoke":
        req.revoke = bool(param.get("valueBoolean"))
    elif name == "share":
        req.share_id = param.get("valueString") or param.get("valueCode")
    elif name == "link":
        req.link = _boolean(param, where)
    elif name in ("passcode", "label"):
        value = param.get("valueString")
        limit = 80 if name == "label" else 256
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            raise BadRequest(f"{name} is a string of 1 to {limit} characters.", expression=[where])
        setattr(req, name, value)
    else:
        raise BadRequest(f"Unknown $share parameter {name!r}.", expression=[where])


def _boolean(param: dict, where: str) -> bool:
    value = param.get("valueBoolean")
    if not isinstance(value, bool):
        raise BadRequest("expected valueBoolean.", expression=[where])
    return value


def consent_for(
    patient_id: str,
    req: ShareRequest,
    share_id: str,
    home: str,
    now: datetime,
    link_id: str | None = None,
) -> dict:
    ref: dict = {}
    if not (req.reference or req.identifier) and link_id:
        # "any clinician the link reaches": the link is the actor the Consent names
        ref["identifier"] = {"system": SHARE_LINK_SYSTEM, "value": link_id}
    if req.reference:
        ref["reference"] = req.reference
    if req.identifier:
        ref["identifier"] = {"system": req.identifier[0], "value": req.identifier[1]}
        ref["extension"] = [{"url": NODE_COUNTRY_EXT, "valueCode": req.node or home}]
    actions = ["access"] + (["correct"] if req.access == "read-write" else [])
    period = {"start": req.period.get("start") or _instant(now)}
    period["end"] = req.period.get("end") or _instant(now + timedelta(days=DEFAULT_DAYS))
    provision: dict = {
        "type": "permit",
        "period": period,
        "actor": [
            {
                "role": {"coding": [{"system": PROVISION_ACTOR_ROLE, "code": "PRCP"}]},
                "reference": ref,
            }
        ],
        "action": [{"coding": [{"system": CONSENT_ACTION, "code": a}]} for a in actions],
        "purpose": req.purposes,
    }
    if req.classes:
        provision["class"] = [{"system": RESOURCE_TYPES, "code": c} for c in req.classes]
    return {
        "resourceType": "Consent",
        "id": ids.new_id(),
        "identifier": [{"system": SHARE_SYSTEM, "value": share_id}],
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC, "code": PRIVACY_CATEGORY}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": _instant(now),
        "performer": [{"reference": f"Patient/{patient_id}"}],
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]},
        "provision": provision,
    }


def share(
    store,
    patient_id: str,
    req: ShareRequest,
    *,
    home_country: str,
    recipient_key: PublicKeyLookup | None = None,
    disclosure: DisclosureEvent | None = None,
    now: datetime | None = None,
    links: LinkIssuer | None = None,
) -> ShareResult:
    """Grant or revoke; ``recipient_key(country)`` gives a foreign node's public key,
    ``disclosure`` the AuditEvent of a key release (stored with it), ``links`` issues
    the share link (None: this node issues none)."""
    ids.check_id(patient_id, "patient id")
    store.read("Patient", patient_id)  # 404 / 410
    now = now or datetime.now(UTC)
    if req.revoke:
        return revoke(store, patient_id, req, links)
    if not (req.reference or req.identifier) and (links is None or req.link is False):
        raise BadRequest("$share needs a recipient (Identifier or Reference) or a share link.")
    share_id = ids.new_id()
    foreign = req.node is not None and req.node != home_country.upper()
    # A link by default where one travels: to another country's clinician, or to
    # whoever it reaches; a share with a clinician of this node needs none.
    wanted = req.link if req.link is not None else foreign or not (req.reference or req.identifier)
    link_id = new_link_id() if links is not None and wanted else None
    consent = validate_resource(consent_for(patient_id, req, share_id, home_country, now, link_id))
    public_key = recipient_key(req.node) if foreign and recipient_key else None
    audit_store.prepare(store)
    with store.unit_of_work(prepare=[consent]) as writer:
        written = interactions.create(writer, consent).resource
        if public_key is not None:
            row = release_key(store.keyring, patient_id, written["id"], req.node, public_key)
            queries.insert_released_key(writer.conn, share_id, row)
            if disclosure is not None:
                event = disclosure([f"Consent/{written['id']}"], req.node)
                audit_store.append(store, writer.conn, [event])
        link = None
        if link_id is not None:
            window = time_range(written["provision"]["period"])
            end = window[1] if window else None
            link = links.issue(writer.conn, link_id, patient_id, written["id"], req, end)
    released = req.node if public_key is not None else None
    return ShareResult([written], share_id, released, link=link)


def release_key(keyring: KeyRing, patient_id: str, consent_id: str, node: str, public_key) -> dict:
    """The patient's data key wrapped for ``public_key`` (X25519 HPKE or RSA-OAEP).

    The context binds scope, Consent and recipient node, so the blob cannot be
    replayed for another patient, share or node."""
    scope = KeyRing.patient_scope(patient_id)
    context = release_context(scope, consent_id, node)
    key = keyring.data_key(scope, create=False)
    if isinstance(public_key, x25519.X25519PublicKey):
        wrapped = release.wrap_for_x25519(key, public_key, context)
    else:
        wrapped = release.wrap_for_rsa(key, public_key, context)
    return {
        "patient_id": patient_id,
        "consent_id": consent_id,
        "recipient_node": node,
        "recipient_kid": release.jwk_thumbprint(release.public_key_to_jwk(public_key)),
        "key_scope": scope,
        "wrapped": wrapped,
        "created_us": ids.now_us(),
    }


def release_context(scope: str, consent_id: str, node: str) -> bytes:
    return length_prefixed(b"phrx/share/v1", scope.encode(), consent_id.encode(), node.encode())


def revoke(store, patient_id: str, req: ShareRequest, links=None) -> ShareResult:
    query = [("patient", patient_id), ("status", "active"), ("_count", "1000")]
    matching = [c for c in run_search(store, "Consent", query).matches if _matches(c, req)]
    if not matching:
        raise NotFound("No active share matches the revocation.")
    revoked = []
    with store.unit_of_work() as writer:
        for consent in matching:
            body = {k: v for k, v in consent.items() if k != "meta"}
            body["status"] = "inactive"
            revoked.append(interactions.update(writer, "Consent", consent["id"], body).resource)
        queries.forget_released_keys(writer.conn, consent_ids=[c["id"] for c in matching])
        if links is not None:
            links.revoke(writer.conn, [c["id"] for c in matching])
    return ShareResult(revoked, req.share_id, revoked=True)


def _matches(consent: dict, req: ShareRequest) -> bool:
    shares = {
        i.get("value") for i in consent.get("identifier") or [] if i.get("system") == SHARE_SYSTEM
    }
    if req.share_id:
        return req.share_id in shares
    for actor in (consent.get("provision") or {}).get("actor") or []:
        ref = actor.get("reference") or {}
        if req.reference and ref.get("reference") == req.reference:
            return True
        ident = ref.get("identifier") or {}
        if req.identifier and (ident.get("system") or "", ident.get("value")) == req.identifier:
            countries = {e.get("valueCode") for e in ref.get("extension") or []}
            if req.node is None or req.node in countries:
                return True
    return False


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
