"""The node's consent hook: ``node.consent = NodeConsent(node)``.

Turns a SMART :class:`~fhir_server.smart.access.AccessContext` into a
:class:`~consent.engine.Actor` and asks the :class:`~consent.engine.ConsentEngine`,
loading the patient's active Consents through the store (decrypted, as any read).

Cache invalidation: the consent token is the list of (id, version) of the
patient's Consents, read from the ``resources`` / ``resource_compartments``
tables (ids and version numbers only, no decryption). Any Consent create, update
or delete -- by this process or another worker -- changes it, so the next
decision reloads. Flask-free.

AccessContext.context keys read here (set by the token issuer / federation gateway):
``purpose_of_use`` (v3 PurposeOfUse code, default TREAT), ``btg_justification``,
``actor_identifiers`` (list of [system, value] of a foreign practitioner),
``actor_country`` (the node country the practitioner is registered at).

Who is decided how:

* the patient (``fhirUser`` Patient/x, or ``patient/`` scopes of their own login):
  always permitted on their own record (the engine's first rule);
* practitioners and every other user: default deny, unless an active Consent
  permits them (by reference, or by identifier + country when foreign);
* a local user whose ``fhirUser`` is a Practitioner or PractitionerRole is also
  known by the identifiers that resource carries (system and value, ``use`` not
  ``old``, within its ``period``, the resource not ``active: false``): a Consent
  naming such an identifier (``$share`` with ``recipient`` valueIdentifier, this
  node's country) permits them. See :class:`LocalIdentifiers`;
* this node's own backend services (a ``system/``-only token, no user, no actor
  context, from a client that is not a foreign node's gateway) and its operator
  tooling (``phrx token``, client ``phrx-operator``, no user): permitted as the
  node itself -- import, anchoring, the national EHR feed;
* a foreign node's gateway (client id ``node.<country>``, see
  :data:`GATEWAY_CLIENT_PREFIX`, or any client ``is_local_client`` rejects): never
  bypasses. Its token must carry the clinician's ``actor_identifiers`` and is then
  decided like that practitioner; without them it is refused.
* AuditEvents (the patient's access log) are readable by the patient and the
  node's own services only: no Consent opens another actor's view of who looked.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from consent.codes import DEFAULT_PURPOSE
from consent.engine import Actor, ConsentEngine, Decision
from consent.provisions import time_range
from fhir_server.access.decision import Interaction
from fhir_server.errors import Gone, IntegrityFailure, NotFound
from fhir_server.smart.clients import OPERATOR_CLIENT
from fhir_server.storage import queries

MAX_CONSENTS = 1000
# fhirUser types whose resource's identifiers name the user in Consents
IDENTIFIED_ACTOR_TYPES = ("Practitioner", "PractitionerRole")
_ALWAYS = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
# Clients registered for another country's node (its federation gateway) use this
# prefix: their system/ tokens act for a foreign clinician, never for this node.
GATEWAY_CLIENT_PREFIX = "node."


def is_gateway_client(client_id: str | None) -> bool:
    return bool(client_id) and client_id.startswith(GATEWAY_CLIENT_PREFIX)


class NodeConsent:
    """``decide(access, action, res_type, resource_or_None, patient_id) -> Decision``.

    ``system_clients_bypass``: a token without a user whose scopes are all
    ``system/`` (this node's own backend services: import, anchoring, operators)
    is permitted without a Consent, unless the token carries a federated actor
    (``actor_identifiers``), which is then judged like any practitioner.
    """

    def __init__(
        self,
        node,
        *,
        system_clients_bypass: bool = True,
        is_local_client: Callable[[str], bool] | None = None,
    ) -> None:
        self.node = node
        self.system_clients_bypass = system_clients_bypass
        # Federation: False for another node's gateway client, so its system token
        # never bypasses consent. The prefix rule always applies on top.
        self.is_local_client = is_local_client or (lambda client_id: True)
        self.engine = ConsentEngine(self.load_consents, consent_token=self.consent_token)
        self.local_identifiers = LocalIdentifiers(node.store)

    # -- data access --------------------------------------------------------------
    def load_consents(self, patient_id: str) -> list[dict]:
        """The patient's active Consents, each read through the store (head-checked,
        decrypted) and judged active by its own content -- never by index rows, which
        a database write without the keys could change (a deny hidden from a search)."""
        found = []
        for res_id, _version in self.consent_token(patient_id)[:MAX_CONSENTS]:
            try:
                consent = self.node.store.read("Consent", res_id)
            except (Gone, NotFound):
                continue  # deleted (its version row says so)
            except IntegrityFailure:
                # Fail closed: a Consent that cannot be read (altered, rolled back) may
                # be the deny that would have applied; no decision is made without it.
                raise IntegrityFailure(
                    "Integrity failure: a Consent of this patient failed its checks; access "
                    "by anyone but the patient is refused until it is repaired."
                ) from None
            if consent.get("status") == "active":
                found.append(consent)
        return found

    def consent_token(self, patient_id: str) -> tuple:
        # Ids and version numbers only (no decryption), in the request's snapshot.
        return queries.versions_in_compartment(self.node.store, patient_id, "Consent")

    # -- the hook -----------------------------------------------------------------
    def decide(
        self,
        access,
        interaction: Interaction,
        res_type: str,
        resource: dict | None,
        patient_id: str | None,
        *,
        operation: str | None = None,
        purpose: str | None = None,
        justification: str | None = None,
        now: datetime | None = None,
    ) -> Decision:
        """The gate's question (:mod:`fhir_server.access.decision`), put to the engine
        as a read or a write (an operation counts as a read; writing operations
        check their writes one by one)."""
        action = "write" if Interaction(interaction).writes else "read"
        if patient_id is None:
            # Up-front call without a confining patient, or data in no compartment:
            # each patient's resource is decided on its own when it is returned.
            return Decision(True, ["no patient named: nothing to decide for a patient"])
        if access is None:
            return Decision(True, ["authorization is switched off on this node (PHRX_AUTH)"])
        context = dict(getattr(access, "context", None) or {})
        if self.bypasses(access):
            return Decision(True, [f"system client {access.client_id} of this node"])
        if not self.is_local(access) and not context.get("actor_identifiers"):
            why = f"gateway client {access.client_id} of another node names no clinician"
            return Decision(False, [why + " (actor_identifiers): refused"])
        actor = actor_of(access, self.node)
        if res_type == "AuditEvent" and not actor.is_patient:
            why = "a patient's access log is shown to the patient and this node only"
            return Decision(False, [why])
        # Only this node's own users are known by their local Practitioner's identifiers.
        resolve = self.with_local_identifiers if self.is_local(access) else None
        return self.engine.decide(
            actor,
            action,
            purpose or context.get("purpose_of_use") or DEFAULT_PURPOSE,
            res_type,
            resource,
            patient_id,
            now,
            justification=justification or context.get("btg_justification"),
            operation=operation,
            resolve_actor=resolve,
            # a gateway acts under the share it received (federation/gateway.py names it)
            named_consent=None if self.is_local(access) else context.get("actor_consent"),
        )

    def with_local_identifiers(self, actor: Actor, now: datetime) -> Actor:
        """``actor`` with the identifiers of its local Practitioner (PractitionerRole)
        resource added; asked by the engine only for patients whose Consents name
        an actor by identifier."""
        found = self.local_identifiers(actor.reference, now)
        if not found:
            return actor
        return replace(actor, identifiers=tuple(dict.fromkeys(actor.identifiers + found)))

    def is_local(self, access) -> bool:
        return not is_gateway_client(access.client_id) and self.is_local_client(access.client_id)

    def bypasses(self, access) -> bool:
        """Is ``access`` this node's own backend service (permitted as the node itself)?
        Also true when authorization is switched off (``access`` None): nothing to decide."""
        if access is None:
            return True
        if not self.system_clients_bypass or not self.is_local(access):
            return False
        return _is_local_system_client(access, dict(getattr(access, "context", None) or {}))

    def filter_resources(
        self, access, res_type: str | None, found: list[dict], patient_id: str | None, **kw
    ) -> list[dict]:
        """The resources of ``found`` this access may read (applies exclude obligations)."""
        return [
            r
            for r in found
            if self.decide(
                access, Interaction.READ, res_type or r.get("resourceType"), r, patient_id, **kw
            ).permit
        ]

    def releases_all(self, access, patient_id: str) -> bool:
        """Can nothing of ``patient_id``'s compartment be withheld from ``access``? True
        for the patient themself (the engine always releases their own record) and
        for this node's own services; the gate then skips deciding each candidate."""
        if self.bypasses(access):
            return True
        return actor_of(access).reference == f"Patient/{patient_id}" and self.is_local(access)

    def consent_changed(self, patient_id: str) -> None:
        self.engine.consent_changed(patient_id)


class LocalIdentifiers:
    """``(reference, now) -> ((system, value), ...)``: the identifiers of this node's
    ``Practitioner/x`` or ``PractitionerRole/x`` resource that are in force at ``now``.

    A missing, deleted, inactive or unreadable (erased, failing authentication)
    resource has none. One look-up of the current version row per call (the fixed
    statement every read makes, inside the request's transaction); the resource is
    decrypted and parsed only when that version is not the cached one, so an update
    or deletion is seen by the very next decision. ``store`` is the node's
    resource store (``current_version`` / ``open_version``).
    """

    def __init__(self, store, *, cache_size: int = 10_000) -> None:
        self.store = store
        self._cache_size = cache_size
        # reference -> ((version id, last updated), ((system, value, low, high), ...))
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.opened = 0  # how often a resource was decrypted (observability, tests)

    def __call__(self, reference: str | None, now: datetime) -> tuple[tuple[str, str], ...]:
        res_type, _, res_id = (reference or "").partition("/")
        if res_type not in IDENTIFIED_ACTOR_TYPES or not res_id or "/" in res_id:
            return ()
        row = self.store.current_version(res_type, res_id)
        if row is None or row.deleted:
            return ()
        version = (row.version_id, row.last_updated_us)
        with self._lock:
            held = self._cache.get(reference)
            if held is not None and held[0] == version:
                self._cache.move_to_end(reference)
        if held is None or held[0] != version:
            held = (version, self._identifiers(row))
            with self._lock:
                self._cache[reference] = held
                self._cache.move_to_end(reference)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return tuple((system, value) for system, value, low, high in held[1] if low <= now < high)

    def _identifiers(self, row) -> tuple[tuple[str, str, datetime, datetime], ...]:
        self.opened += 1
        try:
            resource = self.store.open_version(row)
        except Exception:  # erased (Gone) or failing authentication: names no one
            return ()
        return resource_identifiers(resource)


def resource_identifiers(resource: dict) -> tuple[tuple[str, str, datetime, datetime], ...]:
    """(system, value, in force from, until) of a Practitioner's usable identifiers:
    both system and value present, ``use`` not ``old``; none if ``active`` is false."""
    if not isinstance(resource, dict) or resource.get("active") is False:
        return ()
    found = []
    for ident in resource.get("identifier") or []:
        if not isinstance(ident, dict) or ident.get("use") == "old":
            continue
        system, value = ident.get("system"), ident.get("value")
        if not (isinstance(system, str) and system and isinstance(value, str) and value):
            continue
        window = time_range(ident["period"]) if ident.get("period") else _ALWAYS
        if window is not None:  # an unparseable period: not in force
            found.append((system, value, *window))
    return tuple(found)


def actor_of(access, node=None) -> Actor:
    context = dict(getattr(access, "context", None) or {})
    identifiers = tuple(
        (str(s), str(v)) for s, v in context.get("actor_identifiers") or () if s is not None
    )
    country = context.get("actor_country")
    if country is None and node is not None and not identifiers:
        country = getattr(node.config, "anchor_country", None)
    user = getattr(access, "user", None)
    return Actor(
        reference=user,
        identifiers=identifiers,
        is_patient=bool(user and user.startswith("Patient/")),
        country=country,
    )


def _is_local_system_client(access, context: dict) -> bool:
    if access.user or context.get("actor_identifiers") or context.get("actor_country"):
        return False  # acts for a person: decided like them
    if access.client_id == OPERATOR_CLIENT:
        return True  # `phrx token` on the node itself: the operator, whatever the scopes
    scopes = tuple(getattr(access, "scopes", ()) or ())
    return bool(scopes) and all(getattr(s, "context", None) == "system" for s in scopes)
