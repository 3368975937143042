"""Matching a request against one R4 ``Consent.provision`` tree (consent.html#provision).

A provision *applies* when every criterion it states matches the request: period,
actor, action, purpose, class (resource type), code, security label, dataPeriod
and data. Nested provisions are exceptions to their parent: the most specific
applicable provision decides (a deny among applicable siblings wins).

Data criteria (code, securityLabel, dataPeriod, data) need the resource. For a
type-level request (a search: no resource yet) they are *unknown*: the provision
then yields an obligation (filter each resource) instead of a verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from consent.codes import (
    ACT_REASON,
    ACTIONS_FOR,
    BREAK_GLASS_PURPOSES,
    NODE_COUNTRY_EXT,
    RESOURCE_TYPES,
    codings,
)
from consent.labels import security_labels

YES, NO, MAYBE = "yes", "no", "maybe"
CONTEXT_CRITERIA = ("period", "actor", "action", "purpose", "class")
DATA_CRITERIA = ("code", "securityLabel", "dataPeriod", "data")
_CONCEPTS = ("code", "vaccineCode", "medicationCodeableConcept", "type")
_CLINICAL_TIME = (
    "effectiveDateTime",
    "effectiveInstant",
    "effectivePeriod",
    "onsetDateTime",
    "onsetPeriod",
    "performedDateTime",
    "performedPeriod",
    "occurrenceDateTime",
    "authoredOn",
    "recordedDate",
    "issued",
    "period",
    "date",
    "dateAsserted",
    "dateTime",
)
_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")


@dataclass(frozen=True)
class Request:
    actor: object  # consent.engine.Actor
    action: str
    purpose: str | None
    res_type: str
    resource: dict | None
    now: datetime


@dataclass
class Verdict:
    type: str  # "permit" | "deny"
    path: str  # e.g. "provision.provision[1]"
    explicit: bool  # False: a root deny without criteria (restates the default)
    break_glass: bool = False  # a break-glass purpose criterion was on the path
    conditional: bool = False  # type-level permit that depends on each resource


@dataclass
class Outcome:
    verdict: Verdict | None
    obligations: list[dict] = field(default_factory=list)
    boundaries: set[datetime] = field(default_factory=set)


# -- time ---------------------------------------------------------------------------
def time_range(value: object) -> tuple[datetime, datetime] | None:
    """[low, high) of a FHIR date / dateTime / instant / Period; None if unparseable."""
    if isinstance(value, dict):  # Period
        start = time_range(value.get("start")) if value.get("start") else None
        end = time_range(value.get("end")) if value.get("end") else None
        if start is None and end is None:
            return None
        low = start[0] if start else datetime.min.replace(tzinfo=UTC)
        high = end[1] if end else datetime.max.replace(tzinfo=UTC)
        return low, high
    if not isinstance(value, str) or not value:
        return None
    partial = _PARTIAL.match(value)
    if partial:
        year, month, day = (int(g) if g else None for g in partial.groups())
        low = datetime(year, month or 1, day or 1, tzinfo=UTC)
        if day:
            return low, low + timedelta(days=1)
        if month:
            return low, datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        return low, datetime(year + 1, 1, 1, tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment, moment + timedelta(microseconds=1)


def clinical_time(resource: dict) -> tuple[datetime, datetime] | None:
    for element in _CLINICAL_TIME:
        if element in resource:
            found = time_range(resource[element])
            if found:
                return found
    return None


# -- single criteria ----------------------------------------------------------------
def actor_matches(entry: dict, actor) -> bool:
    ref = entry.get("reference") or {}
    if not isinstance(ref, dict):
        return False
    country = _node_country(ref)
    if country and (actor.country or "").upper() != country.upper():
        return False
    text = ref.get("reference")
    local = isinstance(text, str) and "/".join(text.rstrip("/").split("/")[-2:])
    if local and local == actor.reference:
        return True
    wanted = _identifier(ref)
    return wanted is not None and wanted in set(actor.identifiers)


def _identifier(ref: dict) -> tuple[str, str] | None:
    """(system, value) of a Consent actor given by identifier; None without both (an
    identifier without a system names no one in particular: never matched)."""
    ident = ref.get("identifier")
    if not isinstance(ident, dict):
        return None
    system, value = ident.get("system"), ident.get("value")
    if isinstance(system, str) and system and isinstance(value, str) and value:
        return system, value
    return None


def names_identifiers(provision: dict) -> bool:
    """Does this provision tree name any actor by identifier (system and value)?"""
    stack = [provision]
    while stack:
        item = stack.pop()
        if not isinstance(item, dict):
            continue
        for entry in item.get("actor") or []:
            ref = entry.get("reference") if isinstance(entry, dict) else None
            if isinstance(ref, dict) and _identifier(ref) is not None:
                return True
        stack.extend(item.get("provision") or [])
    return False


def _node_country(ref: dict) -> str | None:
    for ext in ref.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == NODE_COUNTRY_EXT:
            return ext.get("valueCode") or ext.get("valueString")
    return None


def purpose_matches(purposes: list, wanted: str | None) -> tuple[bool, bool]:
    """(matches, is_break_glass) for the provision's purpose Codings."""
    codes = {c.get("code") for c in purposes if c.get("system") in (None, ACT_REASON)}
    if wanted is None:
        return False, False
    if wanted in codes:
        return True, wanted in BREAK_GLASS_PURPOSES
    if wanted in BREAK_GLASS_PURPOSES and codes & BREAK_GLASS_PURPOSES:
        return True, True
    return False, False


def _class_matches(classes: list, res_type: str) -> bool:
    return any(
        c.get("code") == res_type and c.get("system") in (None, RESOURCE_TYPES) for c in classes
    )


def _code_matches(concepts: list, resource: dict) -> bool:
    have = {
        (c.get("system"), c.get("code"))
        for element in _CONCEPTS
        for c in codings(resource.get(element))
    }
    return any((c.get("system"), c.get("code")) in have for c in codings(concepts))


def _label_matches(labels: list, resource: dict) -> bool:
    have = security_labels(resource)
    codes_only = {code for _, code in have}
    for label in labels:
        system, code = label.get("system"), label.get("code")
        if (system, code) in have or (system is None and code in codes_only):
            return True
    return False


def _data_period_matches(period: dict, resource: dict) -> bool:
    window, when = time_range(period), clinical_time(resource)
    return bool(window and when) and window[0] <= when[0] < window[1]


def _data_matches(data: list, resource: dict) -> bool:
    own = f"{resource.get('resourceType')}/{resource.get('id')}"
    refs = _references(resource)
    for item in data:
        target = ((item.get("reference") or {}).get("reference") or "").rstrip("/")
        target = "/".join(target.split("/")[-2:])
        if target == own or (item.get("meaning") in ("related", "dependents") and target in refs):
            return True
    return False


def _references(node) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("reference")
            if isinstance(ref, str):
                found.add("/".join(ref.split("/")[-2:]))
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(item)
    return found


# -- one provision ----------------------------------------------------------------------
def match(provision: dict, request: Request, boundaries: set) -> tuple[str, bool]:
    """(YES | NO | MAYBE, break-glass purpose matched) for one provision, ignoring children."""
    period = provision.get("period")
    if period:
        window = time_range(period)
        if window is None:
            return NO, False
        boundaries.update(b for b in window if b.year not in (1, 9999))
        if not window[0] <= request.now < window[1]:
            return NO, False
    actors = provision.get("actor") or []
    if actors and not any(actor_matches(a, request.actor) for a in actors):
        return NO, False
    actions = [c.get("code") for c in codings(provision.get("action") or [])]
    if actions and not set(actions) & ACTIONS_FOR.get(request.action, frozenset()):
        return NO, False
    glass = False
    if provision.get("purpose"):
        ok, glass = purpose_matches(provision["purpose"], request.purpose)
        if not ok:
            return NO, False
    if provision.get("class") and not _class_matches(provision["class"], request.res_type):
        return NO, False
    stated = [c for c in DATA_CRITERIA if provision.get(c)]
    if not stated:
        return YES, glass
    if request.resource is None:
        return MAYBE, glass
    resource = request.resource
    checks = {
        "code": lambda: _code_matches(provision["code"], resource),
        "securityLabel": lambda: _label_matches(provision["securityLabel"], resource),
        "dataPeriod": lambda: _data_period_matches(provision["dataPeriod"], resource),
        "data": lambda: _data_matches(provision["data"], resource),
    }
    return (YES if all(checks[c]() for c in stated) else NO), glass


def describe(provision: dict) -> dict:
    """The data criteria of a provision, for an obligation's detail."""
    detail = {}
    for name in DATA_CRITERIA:
        if provision.get(name):
            detail[name] = provision[name]
    return detail


def evaluate(
    provision: dict,
    request: Request,
    *,
    inherited: str = "deny",
    path: str = "provision",
    maybe: bool = False,
    glass: bool = False,
) -> Outcome:
    """Evaluate a provision and its exceptions; the most specific applicable one decides."""
    outcome = Outcome(None)
    state, own_glass = match(provision, request, outcome.boundaries)
    if state == NO:
        return outcome
    kind = provision.get("type") or inherited
    glass = glass or own_glass
    maybe = maybe or state == MAYBE
    if maybe:
        effect = "exclude" if kind == "deny" else "include-only"
        criteria = describe(provision)
        outcome.obligations.append({"effect": effect, "provision": path, "criteria": criteria})
        if kind == "permit":
            outcome.verdict = Verdict(kind, path, True, glass, conditional=True)
    else:
        stated = any(provision.get(c) for c in CONTEXT_CRITERIA + DATA_CRITERIA)
        outcome.verdict = Verdict(kind, path, stated or path != "provision", glass)
    child_verdicts = []
    for index, child in enumerate(provision.get("provision") or []):
        sub = evaluate(
            child,
            request,
            inherited=kind,
            path=f"{path}.provision[{index}]",
            maybe=maybe,
            glass=glass,
        )
        outcome.obligations.extend(sub.obligations)
        outcome.boundaries |= sub.boundaries
        if sub.verdict is not None:
            child_verdicts.append(sub.verdict)
    if child_verdicts:
        denials = [v for v in child_verdicts if v.type == "deny"]
        outcome.verdict = denials[0] if denials else child_verdicts[0]
    return outcome
