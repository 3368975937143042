"""SMART App Launch 2.2 scopes (scopes-and-launch-context.html), framework-free.

``patient|user|system / Type|* . cruds [?query]`` (v2) and ``.read|.write|.*``
(v1, mapped to v2: read = rs, write = cud, * = cruds). Granular v2 scopes
carry search constraints, e.g. ``patient/Observation.rs?category=laboratory``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

PERMISSION_ORDER = "cruds"
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
# Scopes that name no resource type, in the order discovery lists them.
NON_RESOURCE_SCOPES = (
    "openid",
    "fhirUser",
    "profile",
    "launch",
    "launch/patient",
    "launch/encounter",
    "offline_access",
    "online_access",
)
NON_RESOURCE = frozenset(NON_RESOURCE_SCOPES)
_SCOPE = re.compile(r"^(patient|user|system)/([A-Z][A-Za-z]{0,63}|\*)\.([a-z*]+)(?:\?(.+))?$")
_V2 = re.compile(r"^c?r?u?d?s?$")
_WORDS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


class ScopeSyntaxError(ValueError):
    """A scope that is neither a known launch/identity scope nor a resource scope."""


@dataclass(frozen=True)
class ResourceScope:
    context: str  # patient | user | system
    res_type: str  # a FHIR type or "*"
    permissions: frozenset[str]  # subset of c r u d s
    query: tuple[tuple[str, str], ...] = ()
    version: int = 2
    raw: str = ""

    def covers(self, other: ResourceScope) -> bool:
        """True when everything ``other`` permits is also permitted by ``self``."""
        return (
            self.context == other.context
            and self.res_type in ("*", other.res_type)
            and other.permissions <= self.permissions
            and set(self.query) <= set(other.query)
        )

    def permits(self, interaction: str, res_type: str) -> bool:
        return interaction in self.permissions and self.res_type in ("*", res_type)

    def v2(self) -> str:
        perms = "".join(p for p in PERMISSION_ORDER if p in self.permissions)
        text = f"{self.context}/{self.res_type}.{perms}"
        if self.query:
            text += "?" + "&".join(f"{k}={v}" for k, v in self.query)
        return text

    def describe(self) -> str:
        """Plain words for the approval screen."""
        words = ", ".join(_WORDS[p] for p in PERMISSION_ORDER if p in self.permissions)
        what = "all kinds of records" if self.res_type == "*" else f"{self.res_type} records"
        whose = {
            "patient": "of the selected patient",
            "user": "that you can access",
            "system": "on this whole node",
        }[self.context]
        text = f"{words.capitalize()} {what} {whose}"
        if self.query:
            text += " (only where " + ", ".join(f"{k} is {v}" for k, v in self.query) + ")"
        return text


def parse_resource_scope(text: str) -> ResourceScope | None:
    """Parse one resource scope; None when ``text`` is not one."""
    match = _SCOPE.match(text)
    if not match:
        return None
    context, res_type, perms, query = match.groups()
    if perms in V1_PERMISSIONS:
        if query:
            return None  # v1 has no granular form
        return ResourceScope(context, res_type, frozenset(V1_PERMISSIONS[perms]), (), 1, text)
    if not perms or not _V2.match(perms):
        return None
    pairs = tuple(sorted(parse_qsl(query, keep_blank_values=False))) if query else ()
    if query and not pairs:
        return None
    return ResourceScope(context, res_type, frozenset(perms), pairs, 2, text)


def split(scope: str | None) -> list[str]:
    seen: list[str] = []
    for item in (scope or "").split():
        if item not in seen:
            seen.append(item)
    return seen


def check_syntax(scope: str | None) -> None:
    """RFC 6749 section 3.3: reject scope strings this server cannot understand."""
    for item in split(scope):
        if item in NON_RESOURCE or "/" not in item or item.startswith("launch/"):
            continue  # identity/launch scopes, or unknown ones that are simply not granted
        if parse_resource_scope(item) is None:
            raise ScopeSyntaxError(f"unsupported scope {item!r}")


def allowed(requested: str | None, ceiling: str) -> list[str]:
    """The requested scopes that the ``ceiling`` (a client's registration) covers."""
    limits = split(ceiling)
    limit_scopes = [s for s in (parse_resource_scope(x) for x in limits) if s]
    result = []
    for item in split(requested):
        parsed = parse_resource_scope(item)
        if parsed is None:
            if item in NON_RESOURCE and item in limits:
                result.append(item)
        elif any(limit.covers(parsed) for limit in limit_scopes):
            result.append(item)
    return result


def narrows(granted: str, requested: str) -> bool:
    """True when every scope in ``requested`` is covered by one in ``granted``."""
    have = split(granted)
    have_parsed = [s for s in (parse_resource_scope(x) for x in have) if s]
    for item in split(requested):
        parsed = parse_resource_scope(item)
        if parsed is None:
            if item not in have:
                return False
        elif not any(g.covers(parsed) for g in have_parsed):
            return False
    return True


def describe(item: str) -> str:
    parsed = parse_resource_scope(item)
    if parsed:
        return parsed.describe()
    return {
        "openid": "Confirm who you are (OpenID Connect)",
        "fhirUser": "Know your FHIR identity (Patient or Practitioner record)",
        "profile": "Know your profile",
        "launch": "Receive the context the portal launched it in",
        "launch/patient": "Know which patient is selected",
        "launch/encounter": "Know which encounter is selected",
        "offline_access": "Keep access while you are away (refresh token)",
        "online_access": "Keep access while you are signed in",
    }.get(item, item)
