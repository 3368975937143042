"""One AuditEvent per HTTP request: what the access policy let through, withheld or refused.

Flask-free. The request's :class:`~fhir_server.access.gate.AccessPolicy`
notes every resource it returns (``saw``), writes (``wrote``) or withholds by
consent (``withheld``); when the response is known, :meth:`RequestAudit.event`
turns that into IHE BALP-style AuditEvents (:mod:`consent.audit`), one per
request, or one per patient when a query or Bundle touched several (as BALP asks):

* a 403 -> ``denial`` (outcome 4) naming the patient the request was about;
* writes -> ``create`` / ``update`` / ``delete`` (or one ``batch`` / ``transaction``
  event naming every written resource);
* a single instance read -> ``read``; searches, history and operations -> ``query``
  (the query text plus one entity per patient whose data was returned);
* a read answered 404 because consent withheld the record -> ``denial``;
* a read by anyone but the patient (or this node's own backend services) also
  carries the ``disclosure`` subtype, so the patient can tell them apart.

Few events per request keep the log (and its hash chain) cheap; the entities are
capped so a large page does not make a huge event. Requests that touched no
patient's data write nothing, and neither does a patient reading their own
access log (else each look at the log would grow it).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from consent import audit
from fhir_server.search.compartment import compartment_patient_ids

MAX_ENTITIES = 100  # per event: a page of 1000 results must not make a 1000-entity event
_WRITES = {
    "POST": ("create", "C"),
    "PUT": ("update", "U"),
    "PATCH": ("patch", "U"),
    "DELETE": ("delete", "D"),
}


@dataclass
class Response:
    """What :meth:`RequestAudit.event` needs of the HTTP exchange (no Flask types)."""

    method: str
    path: str  # relative to the FHIR base, e.g. "Observation/o1" or "Patient/p1/$summary"
    query: str  # the query string as sent
    status: int
    diagnostics: str = ""  # of an error's OperationOutcome


@dataclass
class RequestAudit:
    read: dict = field(default_factory=dict)  # "Type/id" -> set of patient ids
    written: dict = field(default_factory=dict)  # "Type/id" -> (interaction, patient ids)
    withheld: dict = field(default_factory=dict)  # "Type/id" -> patient ids
    about: str | None = None  # the patient a refused request was about
    handled: bool = False  # the route recorded its own (more specific) events
    recorded: set = field(default_factory=set)  # writes audited in their own transaction

    # -- notes taken by the access policy ----------------------------------------
    def saw(self, resource: dict) -> None:
        self.read.setdefault(_ref(resource), compartment_patient_ids(resource))

    def wrote(self, interaction: str, reference: str, patients: set[str]) -> None:
        if reference in self.recorded:
            return  # already audited in the transaction that wrote it
        self.written[reference] = (interaction, set(patients))

    def withhold(self, resource: dict, patients) -> None:
        self.withheld.setdefault(_ref(resource), set(patients))

    # -- the events of a write, stored in its own transaction ----------------------
    def take_writes(self, access, node, response: Response, changes=()) -> list[dict]:
        """The AuditEvents of the writes about to commit (``response``: the request
        as far as known, status 200), which are then no longer part of
        :meth:`events`. ``changes``: the Writer's (interaction, "Type/id", content)
        list, for writes no policy noted (a writer without the request's policy).

        A route that records its own events (:attr:`handled`: ``$share``) gets one
        create / update event per written resource and patient, as it records them;
        deletions there (``$erase``) are left to the route's own erasure event, which
        must not name the patient by reference."""
        if self.handled:
            return _route_writes(access, node, changes)
        for interaction, ref, content in changes:
            if ref not in self.written and not ref.startswith("AuditEvent/"):
                patients = compartment_patient_ids(content) if content is not None else set()
                self.wrote(interaction, ref, patients)
        if not self.written:
            return []
        events = RequestAudit(written=dict(self.written)).events(access, node, response)
        self.recorded |= set(self.written)
        self.written.clear()
        return events

    # -- the event --------------------------------------------------------------
    def patients(self) -> list[str]:
        found: set[str] = set()
        for group in (*self.read.values(), *self.withheld.values()):
            found |= group
        for _interaction, group in self.written.values():
            found |= group
        return sorted(found)

    def events(self, access, node, response: Response) -> list[dict]:
        """The AuditEvents of this request: one, or (BALP: a query or Bundle touching
        several patients) one per patient, each naming only that patient's records --
        so no patient's log shows another's, and each is sealed under its own key."""
        if self.handled:
            return []
        who = audit.who_of(access, node)
        context = (getattr(access, "context", None) or {}) if access is not None else {}
        purpose = context.get("purpose_of_use")
        patients = self.patients()
        own = _own_patient(access)
        if response.status == 403:
            about = self.about or own or (patients[0] if patients else None)
            built = audit.denial(
                _interaction(response),
                response.path,
                None,
                [response.diagnostics or "access denied"],
                purpose=purpose,
                **who,
            )
            return [_finish(built, access, about)]
        if own and self._only_audit_events() and not self.written:
            return []  # the patient looking at their own access log
        return [
            self._slice(p)._event(access, node, response, p, own, purpose, who) for p in patients
        ]

    def _slice(self, patient: str) -> RequestAudit:
        def mine(found: dict) -> dict:
            return {ref: ps for ref, ps in found.items() if patient in ps}

        written = {ref: w for ref, w in self.written.items() if patient in w[1]}
        return RequestAudit(mine(self.read), written, mine(self.withheld))

    def _event(self, access, node, response: Response, patient, own, purpose, who) -> dict:
        if self.written:
            built = self._write_event(response, purpose, who)
        elif self.read:
            built = self._read_event(response, purpose, who)
        else:  # everything of this patient's that was asked for was withheld by consent
            reasons = [f"withheld by consent: {', '.join(sorted(self.withheld))}"]
            built = audit.denial("read", response.path, None, reasons, purpose=purpose, **who)
            return _finish(built, access, patient)
        if response.status >= 400:
            failure = audit.SERIOUS_FAILURE if response.status >= 500 else audit.MINOR_FAILURE
            built["outcome"] = failure
        if self.withheld:
            built["outcomeDesc"] = f"{len(self.withheld)} resource(s) withheld by consent"
        if not self.written and _discloses(access, own, node, patient):
            built["subtype"].append(
                audit.coding_of(audit.PHRX_EVENT, "disclosure", "Disclosure of patient data")
            )
        return _finish(built, access, patient)

    def _only_audit_events(self) -> bool:
        return all(ref.startswith("AuditEvent/") for ref in self.read)

    def _write_event(self, response: Response, purpose, who) -> dict:
        refs = list(self.written)
        if response.path in ("", "/") or len(refs) > 1:
            # a Bundle (or conditional write) touching several: one event naming each
            built = audit.event(audit.restful_subtype("batch"), "E", purpose=purpose, **who)
        else:
            interaction = self.written[refs[0]][0]
            builder = {"create": audit.create, "update": audit.update, "delete": audit.delete}
            built = builder[interaction](refs[0], None, purpose=purpose, **who)
            refs = refs[1:]
        built.setdefault("entity", []).extend(audit.entity_of(r) for r in refs)
        return built

    def _read_event(self, response: Response, purpose, who) -> dict:
        refs = list(self.read)
        single = response.method == "GET" and response.path == refs[0] and len(refs) == 1
        if single:
            return audit.read(refs[0], None, purpose=purpose, **who)
        res_type = response.path.split("/", 1)[0] or "*"
        built = audit.query(res_type, response.query, None, purpose=purpose, **who)
        built["subtype"] = [audit.restful_subtype(_interaction(response))]
        built["entity"][0]["query"] = base64.b64encode(
            f"{response.path}?{response.query}".encode()
        ).decode()
        return built


def _route_writes(access, node, changes) -> list[dict]:
    who = audit.who_of(access, node)
    builders = {"create": audit.create, "update": audit.update}
    events = []
    for interaction, ref, content in changes:
        if interaction not in builders or ref.startswith("AuditEvent/") or content is None:
            continue
        for patient in sorted(compartment_patient_ids(content)):
            events.append(builders[interaction](ref, patient, **who))
    return events


def _finish(built: dict, access, patient: str | None) -> dict:
    """Entities: the patient (whose log shows the event), the records, then the token
    used (BALP token use: its id, never the token), capped at MAX_ENTITIES."""
    entities = [audit.entity_of(f"Patient/{patient}", "1", "1", "Patient")] if patient else []
    entities += built.get("entity", [])
    jti = getattr(access, "jti", None) if access is not None else None
    if jti:
        entities.append(
            {
                "what": {"identifier": {"system": audit.JTI_SYSTEM, "value": jti}},
                "type": audit.coding_of(audit.ENTITY_TYPE, "2"),
                "role": audit.coding_of(audit.OBJECT_ROLE, "13", "Security Resource"),
            }
        )
    if entities:
        built["entity"] = entities[:MAX_ENTITIES]
    return built


def _ref(resource: dict) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _own_patient(access) -> str | None:
    if access is None:
        return None
    return getattr(access, "user_patient", None) or getattr(access, "compartment_patient", None)


def _discloses(access, own: str | None, node, patient: str) -> bool:
    """Patient data seen by someone other than that patient (local backend services,
    which the consent hook lets through as the node itself, are not a disclosure)."""
    if access is None:
        return False
    consent = getattr(node, "consent", None)
    if consent is not None and hasattr(consent, "bypasses") and consent.bypasses(access):
        return False
    return patient != own


def _interaction(response: Response) -> str:
    """The FHIR restful-interaction code of the request."""
    path, method = response.path, response.method
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "batch" if method == "POST" else "search-system"
    if any(p.startswith("$") for p in parts):
        return "operation"
    if "_history" in parts:
        if parts[-1] != "_history":
            return "vread"
        return {1: "history-system", 2: "history-type"}.get(len(parts), "history-instance")
    if parts[-1] == "_search":  # POST [type/]_search: a search, whatever the method
        return "search-system" if len(parts) == 1 else "search-type"
    if method in _WRITES:
        return _WRITES[method][0] if len(parts) != 1 or method == "POST" else "update"
    if len(parts) == 2 and parts[1] != "_search":
        return "read"
    return "search-type"
