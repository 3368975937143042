"""The consent decision engine: may this actor do this, for this purpose, to this data?

Flask-free. Policy (docs/architecture.md, "A request through the gate"):

* the patient may always read and write their own record;
* anyone else is denied unless an active R4 Consent of scope ``patient-privacy``
  (category LOINC 59284-0) for that patient has a provision permitting the actor,
  action, purpose, period and data (see :mod:`consent.provisions`);
* an applicable explicit deny in any Consent wins over permits (deny-overrides);
* break-glass (purpose ETREAT / BTG) is permitted only by a provision that names a
  break-glass purpose, only for reading the emergency summary (``operation="summary"``),
  only with a justification, and only for :data:`BREAK_GLASS_TTL`; it is flagged.

Decisions are cached per patient. The cache key includes a *consent token*: a
caller-supplied fingerprint of the patient's Consent versions (see
:class:`fhir_server.access.consent_hook.NodeConsent`) and a local counter bumped by
:meth:`ConsentEngine.consent_changed`, so a changed Consent is seen by the very
next decision. Cached decisions also carry the time window (next period start or
end) within which they hold.

Actors named by identifier: a local practitioner is known to the engine by its
reference; ``decide(..., resolve_actor=f)`` lets the caller add the identifiers
its Practitioner resource carries (``f(actor, now) -> Actor``). ``f`` is asked only
when one of the patient's Consents names an actor by identifier, so the look-up
it may cost is not paid by the reads of every other patient. The resolved actor
(identifiers included) is part of the decision's cache key.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from consent.codes import (
    BREAK_GLASS_PURPOSES,
    CONSENT_SCOPE,
    LOINC,
    PATIENT_PRIVACY,
    PRIVACY_CATEGORY,
    has_code,
)
from consent.provisions import Request, evaluate, names_identifiers

BREAK_GLASS_TTL = timedelta(hours=1)
SUMMARY_OPERATION = "summary"
_FAR_PAST = datetime.min.replace(tzinfo=UTC)
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Actor:
    """Who asks. ``reference`` is local ("Practitioner/x", "Patient/p1"); a practitioner
    registered at another country's node is known by ``identifiers`` and ``country``."""

    reference: str | None = None
    identifiers: tuple[tuple[str, str], ...] = ()
    is_patient: bool = False
    country: str | None = None


@dataclass(frozen=True)
class Obligation:
    """Something the enforcement point must do when it acts on a permit.

    ``code``: ``exclude`` / ``include-only`` (filter resources: ``detail["criteria"]``
    holds the provision's data criteria, ``detail["provision"]`` its path),
    ``audit-break-glass`` (detail ``justification``), ``notify-patient``,
    ``limit-to-operation`` (detail ``operation``).
    """

    code: str
    detail: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Decision:
    permit: bool
    reasons: list[str]
    obligations: list[Obligation] = field(default_factory=list)
    break_glass: bool = False
    valid_until: datetime | None = None  # break-glass expiry
    consents: list[str] = field(default_factory=list)  # ids of the deciding Consents

    def __bool__(self) -> bool:
        return self.permit

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def is_privacy_consent(consent: dict) -> bool:
    scope_ok = has_code(consent.get("scope"), CONSENT_SCOPE, PATIENT_PRIVACY)
    category_ok = any(has_code(c, LOINC, PRIVACY_CATEGORY) for c in consent.get("category") or [])
    return scope_ok and category_ok


class ConsentEngine:
    """``load_consents(patient_id) -> list[dict]`` supplies the patient's Consents;
    ``consent_token(patient_id) -> hashable`` (optional) changes whenever any of them does."""

    def __init__(
        self,
        load_consents: Callable[[str], list[dict]],
        *,
        consent_token: Callable[[str], object] | None = None,
        cache_size: int = 10_000,
    ) -> None:
        self._load = load_consents
        self._token = consent_token
        self._cache_size = cache_size
        self._counters: dict[str, int] = {}
        # patient -> (consent token, Consents, whether any names an actor by identifier)
        self._consents: dict[str, tuple[object, list[dict], bool]] = {}
        self._decisions: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how often Consents were loaded (observability, tests)

    # -- cache control ----------------------------------------------------------
    def consent_changed(self, patient_id: str) -> None:
        """A Consent of ``patient_id`` was written: drop what was derived from the old ones."""
        with self._lock:
            self._counters[patient_id] = self._counters.get(patient_id, 0) + 1
            self._consents.pop(patient_id, None)

    # -- decisions --------------------------------------------------------------
    def decide(
        self,
        actor: Actor,
        action: str,
        purpose: str | None,
        res_type: str,
        resource: dict | None,
        patient_id: str,
        now: datetime | None = None,
        *,
        justification: str | None = None,
        operation: str | None = None,
        resolve_actor: Callable[[Actor, datetime], Actor] | None = None,
        named_consent: str | None = None,
    ) -> Decision:
        """``named_consent``: the id of the Consent the caller says it acts under (a
        federation gateway names the share it received); then that Consent must
        permit the request on its own too -- the patient's other Consents can still
        deny, never widen."""
        if action not in ("read", "write"):
            raise ValueError(f"action must be 'read' or 'write', not {action!r}")
        now = now or datetime.now(UTC)
        if actor.is_patient and actor.reference == f"Patient/{patient_id}":
            return Decision(True, [f"Patient/{patient_id} is the patient: always permitted"])
        token = self._consent_token(patient_id)
        if resolve_actor is not None and self._patient_consents(patient_id, token)[1]:
            actor = resolve_actor(actor, now)
        key = (patient_id, token, actor, action, purpose, res_type, _resource_key(resource))
        key += (bool((justification or "").strip()), operation, named_consent)
        cached = self._cached(key, now)
        if cached is not None:
            return cached
        consents = self._patient_consents(patient_id, token)[0]
        request = Request(actor, action, purpose, res_type, resource, now)
        decision, window = _decide(consents, request, patient_id)
        decision = _break_glass_rules(decision, request, justification, operation)
        if decision and named_consent is not None:
            named = [c for c in consents if c.get("id") == named_consent]
            # its period boundaries are among those of all Consents: the window holds
            alone, _ = _decide(named, request, patient_id)
            if not alone:
                why = f"Consent/{named_consent}, which the caller acts under, does not permit it"
                decision = Decision(False, [why])
        if key[-4] is not None:  # None: an unstored resource, not cacheable
            self._store(key, window, decision)
        return decision

    # -- internals ----------------------------------------------------------------
    def _consent_token(self, patient_id: str) -> object:
        outside = self._token(patient_id) if self._token else None
        return (self._counters.get(patient_id, 0), outside)

    def _patient_consents(self, patient_id: str, token: object) -> tuple[list[dict], bool]:
        """(the patient's Consents, whether any names an actor by identifier)."""
        with self._lock:
            held = self._consents.get(patient_id)
        if held is not None and held[0] == token:
            return held[1], held[2]
        consents = list(self._load(patient_id))
        by_identifier = any(names_identifiers(c.get("provision") or {}) for c in consents)
        self.loads += 1
        with self._lock:
            self._consents[patient_id] = (token, consents, by_identifier)
        return consents, by_identifier

    def _cached(self, key: tuple, now: datetime) -> Decision | None:
        with self._lock:
            entry = self._decisions.get(key)
            if entry is None:
                return None
            (low, high), decision = entry
            if not low <= now < high:
                return None
            self._decisions.move_to_end(key)
            return decision

    def _store(self, key: tuple, window: tuple[datetime, datetime], decision: Decision) -> None:
        if decision.break_glass:
            return  # each break-glass use is decided (and audited) afresh
        with self._lock:
            self._decisions[key] = (window, decision)
            while len(self._decisions) > self._cache_size:
                self._decisions.popitem(last=False)


def _resource_key(resource: dict | None) -> object:
    """Cache identity of a resource: type/id/version when stored, else None (no caching)."""
    if resource is None:
        return "-"
    version = (resource.get("meta") or {}).get("versionId")
    if resource.get("id") and version:
        digest = hashlib.sha256(json.dumps(resource, sort_keys=True).encode()).hexdigest()[:16]
        return (resource.get("resourceType"), resource["id"], version, digest)
    return None


def _decide(
    consents: list[dict], request: Request, patient_id: str
) -> tuple[Decision, tuple[datetime, datetime]]:
    reasons: list[str] = []
    permits, denials, boundaries = [], [], set()
    for consent in consents:
        name = f"Consent/{consent.get('id')}"
        if consent.get("status") != "active":
            reasons.append(f"{name} is {consent.get('status')!r}, not active: ignored")
            continue
        if not is_privacy_consent(consent):
            continue  # advance directives, research consents, ...: not access policies
        patient_ref = (consent.get("patient") or {}).get("reference") or ""
        if "/".join(patient_ref.split("/")[-2:]) != f"Patient/{patient_id}":
            reasons.append(f"{name} is for another patient: ignored")
            continue
        outcome = evaluate(consent.get("provision") or {}, request)
        boundaries |= outcome.boundaries
        verdict = outcome.verdict
        if verdict is None or not verdict.explicit:
            reasons.append(f"{name}: no provision applies")
            continue
        line = f"{name} {verdict.path} ({verdict.type}) applies"
        if verdict.type == "deny":
            denials.append((consent, line))
        else:
            permits.append((consent, line, verdict, outcome.obligations))
    window = _window(boundaries, request.now)
    if denials:
        lines = [line for _, line in denials]
        ids = [c.get("id") for c, _ in denials]
        lines.append("an explicit deny overrides any permit")
        return Decision(False, lines, consents=ids), window
    if not permits:
        why = "default deny: no active patient-privacy Consent permits this actor, action, "
        why += "purpose, period and data"
        return Decision(False, [*reasons, why]), window
    glass = any(v.break_glass for _, _, v, _ in permits)
    plain = [p for p in permits if not p[2].break_glass]
    chosen = plain or permits  # a plain permit needs no break-glass
    found = [Obligation(o["effect"], o) for _, _, _, obs in chosen for o in obs]
    decision = Decision(
        True,
        [line for _, line, _, _ in chosen],
        found,
        break_glass=glass and not plain,
        consents=[c.get("id") for c, _, _, _ in chosen],
    )
    return decision, window


def _window(boundaries: set[datetime], now: datetime) -> tuple[datetime, datetime]:
    low = max((b for b in boundaries if b <= now), default=_FAR_PAST)
    high = min((b for b in boundaries if b > now), default=_FAR_FUTURE)
    return low, high


def _break_glass_rules(
    decision: Decision, request: Request, justification: str | None, operation: str | None
) -> Decision:
    if not decision.break_glass:
        if decision.permit or request.purpose not in BREAK_GLASS_PURPOSES:
            return decision
        why = "break-glass needs a Consent provision permitting ETREAT/BTG for this actor"
        return Decision(False, [*decision.reasons, why])
    refusals = []
    if request.action != "read":
        refusals.append("break-glass permits reading only")
    if operation != SUMMARY_OPERATION:
        refusals.append("break-glass is limited to the emergency summary (Patient/$summary)")
    if not (justification or "").strip():
        refusals.append("break-glass needs a justification")
    if refusals:
        return Decision(False, [*decision.reasons, *refusals], [], True, None, decision.consents)
    until = request.now + BREAK_GLASS_TTL
    obligations = [
        *decision.obligations,
        Obligation("audit-break-glass", {"justification": justification.strip()}),
        Obligation("notify-patient"),
        Obligation("limit-to-operation", {"operation": SUMMARY_OPERATION}),
    ]
    reasons = [*decision.reasons, f"break-glass granted until {until.isoformat()}"]
    return Decision(True, reasons, obligations, True, until, decision.consents)
