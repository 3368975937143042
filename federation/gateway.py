"""The reading node's gateway (Flask-free, imports nothing of the node): a clinician
here works on a patient whose records stay at their home node, through a proxy Patient
(:mod:`federation.proxies`).

* :func:`receive_share` -- redeem a SMART Health Link at the home node (with this
  node's assertion for the clinician), learn the patient and the Consent from what it
  holds, and make (or reuse) the proxy (what is shown of the patient is fetched and
  verified like any read);
* :func:`search`, :func:`everything`, :func:`summary`, :func:`read_patient` -- fetch
  from the home node naming the Consent, as the clinician; the home node decides by
  its patient's Consent and audits the disclosure; every resource is then verified
  here against the chain (:mod:`federation.verify`): what verified is served, tagged
  ``verified``; what did not is withheld and named in an OperationOutcome entry
  (``search.mode = outcome``);
* :func:`write_back` -- forward a new record to the home node, which stores, anchors
  and audits it; its answer (201 and the home Location, or the refusal) passes back.

Nothing of the patient's record is kept here: each read goes to the home node, so a
revocation there takes effect on the very next read.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import orjson

from anchoring.provenance import version_key_of, version_reference
from federation import shlink, summary_check
from federation.assertion import actor_claim
from federation.client import WRITE_BACK_TYPES, WRITE_SCOPE
from federation.errors import LinkError, Refused, RemoteRefused
from federation.proxies import RemotePatient
from federation.verify import proofs_by_target, verify_resource

VERIFIED_SYSTEM = "https://phrx.example.org/fhir/CodeSystem/cross-border-verification"
HOME_NODE_EXT = "https://phrx.example.org/fhir/StructureDefinition/home-node"
PROVENANCE_PARAM = "_anchor-provenance"
MAX_PAGES = 50
MAX_PAGE = 1000  # entries per page asked of the home node (its own cap applies)
FHIR_JSON = "application/fhir+json"
# parameters the gateway sets itself; every other search parameter goes to the home
# node as it came (the home node refuses what it does not support, never this node)
OWN_PARAMS = frozenset({"patient", "subject", "_format", PROVENANCE_PARAM})


@dataclass(frozen=True)
class Clinician:
    """The clinician at this node the gateway acts for."""

    fhir_user: str  # Practitioner/x
    identifiers: tuple[tuple[str, str], ...]
    display: str | None
    base_url: str

    def actor(self, purpose: str = "TREAT", consent: str | None = None) -> dict:
        return actor_claim(
            list(self.identifiers),
            reference=f"{self.base_url}/{self.fhir_user}",
            display=self.display,
            purpose=purpose,
            consent=consent,
        )


# -- redeeming a share link --------------------------------------------------------
def receive_share(federation, clinician: Clinician, link_text: str, passcode: str | None):
    """(proxy, home Patient, Consent) for a share link handed to ``clinician``."""
    link = shlink.decode(link_text)
    home = federation.trust.for_url(link.url)  # a host off the trust list is never called
    if link.exp is not None and link.exp <= time.time():
        raise Refused("This share link has expired.", 404, "not-found")
    if link.needs_passcode and not passcode:
        raise LinkError("This share link needs its passcode.")
    body = {"recipient": clinician.display or clinician.fhir_user}
    if passcode:
        body["passcode"] = passcode
    manifest = federation.client.fhir("POST", link.url, actor=clinician.actor(), json=body)
    files = manifest.get("files") if isinstance(manifest.get("files"), list) else []
    found = [_open_file(federation, link, f) for f in files[:10] if isinstance(f, dict)]
    ips = next((r for r in found if r.get("resourceType") == "Bundle"), None)
    consent = next((r for r in found if r.get("resourceType") == "Consent"), None)
    patient = _patient_of(ips)
    if patient is None or consent is None or not isinstance(consent.get("id"), str):
        raise Refused("The share link's manifest holds no summary and Consent.", 502, "invalid")
    end = _consent_end(consent)
    proxy = federation.proxies.add(
        home_country=home.country,
        home_base=home.fhir_base_url.rstrip("/"),
        home_patient=patient["id"],
        consent=consent["id"],
        holder=clinician.fhir_user,
        expires_s=end,
    )
    return proxy, patient, consent


def _open_file(federation, link, entry: dict) -> dict:
    token = entry.get("embedded")
    if token is None and isinstance(entry.get("location"), str):
        found = federation.client.call("GET", entry["location"], actor=None)
        token = found.text if found.status_code == 200 else None
    if not isinstance(token, str):
        return {}
    try:
        # orjson refuses nesting deeper than 1024 levels itself (no RecursionError)
        parsed = orjson.loads(shlink.decrypt(link.key, token))
    except (LinkError, orjson.JSONDecodeError):
        raise Refused("A share link file does not decrypt with its key.", 502, "invalid") from None
    return parsed if isinstance(parsed, dict) else {}


def _patient_of(bundle: dict | None) -> dict | None:
    for entry in (bundle or {}).get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
            return resource if isinstance(resource.get("id"), str) else None
    return None


def _consent_end(consent: dict) -> int | None:
    end = ((consent.get("provision") or {}).get("period") or {}).get("end")
    return _epoch(end) if isinstance(end, str) else None


def _epoch(moment: str) -> int | None:
    """Epoch seconds at the end of a FHIR date or dateTime (a date counts to its end)."""
    try:
        if "T" in moment:
            return int(datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp())
        year = int(moment[:4])
        month = int(moment[5:7]) if len(moment) >= 7 else 12
        if not 1 <= month <= 12:
            return None
        if len(moment) >= 10:
            last = date(year, month, int(moment[8:10]))
        else:  # a year or a month: through its last day
            last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    except ValueError:
        return None
    return int(datetime(last.year, last.month, last.day, tzinfo=UTC).timestamp()) + 86400


# -- reads -------------------------------------------------------------------------
def check_proxy(proxy: RemotePatient | None, fhir_user: str | None) -> RemotePatient:
    """The proxy, for the clinician who received it only (404 for anyone else, as for
    a patient that does not exist); 403 once its Consent period ended."""
    if proxy is None or proxy.holder != fhir_user:
        raise Refused("Patient not found.", 404, "not-found")
    if proxy.expires_s is not None and proxy.expires_s <= time.time():
        raise Refused("The Consent this patient was shared under has ended.", 403, "forbidden")
    return proxy


def search(
    federation,
    proxy,
    clinician,
    res_type: str,
    params: list[tuple[str, str]],
    prefer: str | None = None,
) -> dict:
    """``prefer``: the client's ``Prefer`` header (``handling=strict`` makes the home
    node refuse parameters it does not know instead of ignoring them)."""
    query = [("patient", proxy.home_patient), (PROVENANCE_PARAM, "true")]
    query += [(k, v) for k, v in params if k.split(":")[0] not in OWN_PARAMS]
    url = f"{proxy.home_base}/{res_type}"
    headers = {"Prefer": prefer} if prefer else {}
    return _verified_searchset(federation, proxy, clinician, url, query, headers)


def everything(federation, proxy, clinician) -> dict:
    url = f"{proxy.home_base}/Patient/{proxy.home_patient}/$everything"
    query = [(PROVENANCE_PARAM, "true"), ("_count", str(MAX_PAGE))]
    return _verified_searchset(federation, proxy, clinician, url, query)


def _fetch_all(federation, proxy, clinician, url: str, query, headers=None) -> list[dict]:
    actor = clinician.actor(consent=proxy.consent)
    entries: list[dict] = []
    headers = dict(headers or {})
    page = federation.client.fhir("GET", url, actor=actor, params=query, headers=headers)
    for _ in range(MAX_PAGES):
        entries += [e for e in page.get("entry") or [] if isinstance(e, dict)]
        following = next(
            (link.get("url") for link in page.get("link") or [] if link.get("relation") == "next"),
            None,
        )
        if not isinstance(following, str):
            break
        page = federation.client.fhir("GET", following, actor=actor, headers=dict(headers))
    return entries


def _verified_searchset(federation, proxy, clinician, url, query, headers=None) -> dict:
    entries = _fetch_all(federation, proxy, clinician, url, query, headers)
    resources = [e.get("resource") for e in entries if isinstance(e.get("resource"), dict)]
    proofs = proofs_by_target(resources)
    out, withheld = [], []
    for entry in entries:
        resource = entry.get("resource")
        if not isinstance(resource, dict) or resource.get("resourceType") in (
            "OperationOutcome",
            "Provenance",
        ):
            continue
        result = _verify(federation, proxy, resource, proofs)
        if not result.result:
            withheld.append((resource, result.reason or "not verified"))
            continue
        fresh = dict(entry)
        fresh["resource"] = _tagged(resource, result)
        fresh["fullUrl"] = f"{proxy.home_base}/{resource['resourceType']}/{resource.get('id')}"
        out.append(fresh)
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "searchset",
        "total": sum(1 for e in out if (e.get("search") or {}).get("mode", "match") == "match"),
        "entry": out,
    }
    if withheld:
        bundle["entry"].append(_withheld_entry(withheld, proxy))
    return bundle


def _verify(federation, proxy, resource: dict, proofs: dict):
    """Whether ``resource`` verifies here, with its proof among ``proofs``."""
    key = version_key_of(resource)
    proof = proofs.get(version_reference(*key)) if key else None
    return verify_resource(resource, proof, federation.reader, proxy.home_country)


def _tagged(resource: dict, result) -> dict:
    """``resource`` (a copy) with the ``verified`` tag of ``result``."""
    meta = dict(resource.get("meta") or {})
    tag = {
        "system": VERIFIED_SYSTEM,
        "code": "verified",
        "display": f"verified on chain: block {result.block_number}, anchored by {result.country}",
    }
    meta["tag"] = [*(meta.get("tag") or []), tag]
    return {**resource, "meta": meta}


def _withheld_entry(withheld: list[tuple[dict, str]], proxy) -> dict:
    """An OperationOutcome naming each (resource, reason) withheld."""
    issues = []
    for resource, reason in withheld[:100]:
        where = f"{resource.get('resourceType')}/{resource.get('id')}"
        issues.append(
            {
                "severity": "warning",
                "code": "security",
                "diagnostics": f"{where} from {proxy.home_country} withheld: {reason}",
            }
        )
    outcome = {"resourceType": "OperationOutcome", "id": str(uuid.uuid4()), "issue": issues}
    return {"resource": outcome, "search": {"mode": "outcome"}}


def read_patient(federation, proxy, clinician) -> dict:
    """The proxy Patient: the home node's Patient as released and verified, under the
    proxy id, with a link to the home record and the home node named."""
    bundle = _verified_searchset(
        federation,
        proxy,
        clinician,
        f"{proxy.home_base}/Patient",
        [("_id", proxy.home_patient), (PROVENANCE_PARAM, "true")],
    )
    found = [
        e["resource"]
        for e in bundle["entry"]
        if (e.get("resource") or {}).get("resourceType") == "Patient"
    ]
    if not found:
        raise Refused(
            f"The home node {proxy.home_country} released no verifiable Patient.", 403, "forbidden"
        )
    patient = dict(found[0])
    patient["id"] = proxy.proxy_id
    home_url = f"{proxy.home_base}/Patient/{proxy.home_patient}"
    patient["link"] = [{"other": {"reference": home_url}, "type": "seealso"}]
    patient["extension"] = [
        *(patient.get("extension") or []),
        {"url": HOME_NODE_EXT, "valueCode": proxy.home_country},
    ]
    return patient


def summary(federation, proxy, clinician) -> dict:
    """The home node's IPS document, each entry checked here: its stored version (from
    ``$everything``, with proofs) must verify against the chain, and the entry may only
    *omit* what that version holds (the summary drops references to resources outside
    the document and sets meta and narrative) -- never add or change anything. What
    fails is removed, with its section reference, and named in an OperationOutcome."""
    actor = clinician.actor(consent=proxy.consent)
    url = f"{proxy.home_base}/Patient/{proxy.home_patient}/$summary"
    document = federation.client.fhir("GET", url, actor=actor)
    stored = [
        e.get("resource")
        for e in _fetch_all(
            federation,
            proxy,
            clinician,
            f"{proxy.home_base}/Patient/{proxy.home_patient}/$everything",
            [(PROVENANCE_PARAM, "true"), ("_count", str(MAX_PAGE))],
        )
        if isinstance(e.get("resource"), dict)
    ]
    proofs = proofs_by_target(stored)
    originals = {version_key_of(r): r for r in stored if version_key_of(r)}
    kept, withheld, dropped = [], [], set()
    for index, entry in enumerate(document.get("entry") or []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        if index == 0 or resource.get("resourceType") in ("Composition", "Device"):
            kept.append(entry)  # assembled for this response: nothing stored to verify
            continue
        checked, reason = _check_summary_entry(federation, proxy, resource, originals, proofs)
        if checked is None:
            withheld.append((resource, reason))
            dropped.add(f"{resource.get('resourceType')}/{resource.get('id')}")
            continue
        kept.append({**entry, "resource": checked})
    if dropped and kept and kept[0]["resource"].get("resourceType") == "Composition":
        summary_check.drop_section_entries(kept[0]["resource"], dropped)
    document = {**document, "entry": kept}
    if withheld:
        outcome = _withheld_entry(withheld, proxy)
        outcome.pop("search")
        outcome["fullUrl"] = f"urn:uuid:{outcome['resource']['id']}"
        document["entry"].append(outcome)
    return document


def _check_summary_entry(federation, proxy, resource, originals, proofs):
    """(the entry tagged verified, None) or (None, why it is withheld): its stored
    version must verify, and the entry must show nothing that version does not."""
    original = originals.get(version_key_of(resource))
    if original is None:
        return None, "not among the patient's anchored records"
    result = _verify(federation, proxy, original, proofs)
    if not result.result:
        return None, result.reason or "not verified"
    if not summary_check.faithful(resource, original):
        return None, "the summary's copy differs from the anchored record"
    return _tagged(resource, result), None


# -- write-back --------------------------------------------------------------------
def write_back(federation, proxy, clinician, res_type: str, resource: dict):
    """(status, Location, body) of the home node's answer to the new record."""
    if res_type not in WRITE_BACK_TYPES:
        raise Refused(
            f"Only {', '.join(WRITE_BACK_TYPES)} are written back to a home node.",
            405,
            "not-supported",
        )
    body = dict(resource)
    body["subject"] = {"reference": f"Patient/{proxy.home_patient}"}
    actor = clinician.actor(consent=proxy.consent)
    response = federation.client.call(
        "POST",
        f"{proxy.home_base}/{res_type}",
        actor=actor,
        scope=WRITE_SCOPE,
        json=body,
        headers={"Content-Type": FHIR_JSON, "Prefer": "return=representation"},
    )
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code >= 400:
        raise RemoteRefused(
            f"the home node {proxy.home_country} refused the record (HTTP {response.status_code})",
            response.status_code,
            answer,
        )
    return response.status_code, response.headers.get("Location"), answer
