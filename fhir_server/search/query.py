"""Parse a FHIR R4 search query string into a :class:`SearchRequest` (Flask-free).

Decisions:

* Repeated parameters are ANDed (one :class:`Criterion` each); comma-separated
  values are ORed (``Criterion.values``; ``\\,`` escapes a comma).
* Empty values (``name=``) are ignored, as R4 allows.
* Unknown / unsupported parameters: ``strict=True`` -> ``BadRequest`` naming the
  parameter; ``strict=False`` -> ignored and listed in ``SearchRequest.unknown``.
  Malformed values (bad date, prefix, number, modifier, count ...) are a
  ``BadRequest`` in both modes: silently ignoring them would widen the result.
* Unsupported modifiers (``:in``, ``:below`` ...) are treated as malformed.
* ``_format``/``_pretty`` are accepted and ignored (the HTTP layer handles them).
* Chains are one level (``subject:Patient.name``); when the reference has
  several targets having the chained param, the chain is ORed over them.
  ``_has`` is one level (``_has:Observation:patient:code=x``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fhir_server.errors import BadRequest
from fhir_server.search.params import SearchParam, params_for, supported_types
from fhir_server.search.query_values import (
    bad_param,
    parse_date_value,
    parse_number_value,
    parse_quantity_value,
    parse_reference_value,
    parse_token_value,
    split_values,
    unescape,
)

MAX_COUNT = 1000
MODIFIERS = {
    "token": {"not", "text", "missing"},
    "string": {"exact", "contains", "missing"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "reference": {"missing"},  # plus :<TargetType>
    "uri": {"missing"},
}
SQL_SORT_TYPES = frozenset({"date", "number", "quantity"})
# Not criteria: the format, and _anchor-provenance, which the Provenance route acts on
# after the search (fhir_server/api/operations/provenance.py).
_IGNORED = frozenset({"_format", "_pretty", "_anchor-provenance"})
_SPECIAL_ID = SearchParam("_id", "token", (), ())
_SPECIAL_LU = SearchParam("_lastUpdated", "date", (), ())


@dataclass
class Criterion:
    """One ANDed condition; ``values`` are ORed.

    ``param`` is a search param code, ``_id``, ``_lastUpdated``, or ``_has``.
    Value types: token -> TokenValue (``:text`` -> str), string/uri -> str,
    date -> DateValue, number -> NumberValue, quantity -> QuantityValue,
    reference -> RefValue, ``:missing`` -> bool.
    Chains: ``chain`` = [(target_type, inner Criterion)], values empty.
    ``_has``: ``has_type``/``has_param`` + ``chain`` = [(has_type, inner)].
    """

    resource_type: str
    param: str
    type: str
    modifier: str | None = None
    values: list[Any] = field(default_factory=list)
    sp: SearchParam | None = None
    chain: list[tuple[str, Criterion]] = field(default_factory=list)
    has_type: str | None = None
    has_param: str | None = None


@dataclass
class SearchRequest:
    resource_type: str
    criteria: list[Criterion] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (param, descending)
    count: int | None = None
    offset: int = 0
    total: str | None = None
    summary: str | None = None
    elements: list[str] | None = None
    include: list[tuple[str, str, str | None]] = field(default_factory=list)
    revinclude: list[tuple[str, str, str | None]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    strict: bool = False


class _Unknown(Exception):
    """Internal: the parameter is unknown/unsupported (strictness decides)."""


def _parse_values(sp: SearchParam, modifier: str | None, raw: str, param: str) -> list[Any]:
    vals = [v for v in split_values(raw) if v != ""]
    if modifier == "missing":
        if len(vals) != 1 or vals[0] not in ("true", "false"):
            raise bad_param(f"{param}:missing must be true or false", param)
        return [vals[0] == "true"]
    t = sp.type
    if t == "token":
        if modifier == "text":
            return [unescape(v) for v in vals]
        return [parse_token_value(v) for v in vals]
    if t in ("string", "uri"):
        return [unescape(v) for v in vals]
    if t == "date":
        return [parse_date_value(v, param) for v in vals]
    if t == "number":
        return [parse_number_value(v, param) for v in vals]
    if t == "quantity":
        return [parse_quantity_value(v, param) for v in vals]
    type_mod = modifier if modifier and modifier[0].isupper() else None
    return [parse_reference_value(unescape(v), sp, type_mod) for v in vals]


def _lookup(rtype: str, code: str) -> SearchParam:
    if code == "_id":
        return _SPECIAL_ID
    if code == "_lastUpdated":
        return _SPECIAL_LU
    sp = params_for(rtype).get(code)
    if sp is None:
        raise _Unknown(code)
    return sp


def _check_modifier(sp: SearchParam, modifier: str | None, param: str) -> None:
    if modifier is None:
        return
    if sp.code in {"_id", "_lastUpdated"}:
        if modifier != "missing" or sp.code == "_id":
            raise bad_param(f"Unsupported modifier :{modifier} on {param!r}", param)
        return
    if sp.type == "reference" and modifier[:1].isupper():
        if modifier not in sp.targets:
            raise bad_param(f"Modifier :{modifier} is not a target type of {param!r}", param)
        return
    if modifier not in MODIFIERS[sp.type]:
        raise bad_param(
            f"Unknown or unsupported modifier :{modifier} on parameter {param!r}", param
        )


def _parse_simple(rtype: str, key: str, raw: str) -> Criterion | None:
    code, _, modifier = key.partition(":")
    modifier = modifier or None
    sp = _lookup(rtype, code)
    _check_modifier(sp, modifier, key)
    values = _parse_values(sp, modifier, raw, key)
    if not values:
        return None
    return Criterion(rtype, code, sp.type, modifier, values, sp)


def _parse_chain(rtype: str, key: str, raw: str) -> Criterion | None:
    left, _, right = key.partition(".")
    if "." in right:
        raise bad_param(f"Only one level of chaining is supported: {key!r}", key)
    code, _, type_mod = left.partition(":")
    sp = _lookup(rtype, code)
    if sp.type != "reference":
        raise bad_param(f"Chained parameter {code!r} is not a reference", key)
    if type_mod:
        if type_mod not in sp.targets:
            raise bad_param(f"Modifier :{type_mod} is not a target type of {code!r}", key)
        types = [type_mod]
    else:
        types = list(sp.targets)
    inner_code = right.partition(":")[0]
    chain = []
    for t in types:
        if inner_code in ("_id", "_lastUpdated") or inner_code in params_for(t):
            inner = _parse_simple(t, right, raw)
            if inner is None:
                return None
            chain.append((t, inner))
    if not chain:
        raise _Unknown(key)
    return Criterion(rtype, code, "reference", type_mod or None, [], sp, chain)


def _parse_has(rtype: str, key: str, raw: str) -> Criterion | None:
    parts = key.split(":")
    if len(parts) < 4 or not all(parts[1:4]):
        raise bad_param(f"Malformed _has parameter {key!r}", key)
    has_type, has_param = parts[1], parts[2]
    inner_key = ":".join(parts[3:])
    if inner_key.startswith("_has") or "." in inner_key:
        raise bad_param(f"Only one level of _has is supported: {key!r}", key)
    if has_type not in supported_types():
        raise bad_param(f"Unknown resource type {has_type!r} in {key!r}", key)
    ref = params_for(has_type).get(has_param)
    if ref is None or ref.type != "reference" or (ref.targets and rtype not in ref.targets):
        raise bad_param(f"{has_type}.{has_param} is not a reference to {rtype} in {key!r}", key)
    inner = _parse_simple(has_type, inner_key, raw)
    if inner is None:
        return None
    return Criterion(rtype, "_has", "has", None, [], None, [(has_type, inner)], has_type, has_param)


def _parse_int(raw: str, name: str) -> int:
    if not re.fullmatch(r"\d{1,9}", raw):
        raise bad_param(f"{name} must be a non-negative integer, got {raw!r}", name)
    return int(raw)


def _parse_include(rtype: str, raw: str, name: str, rev: bool) -> tuple[str, str, str | None]:
    parts = raw.split(":")
    if raw == "*" or (len(parts) == 2 and parts[1] == "*"):
        return (parts[0] if len(parts) == 2 else rtype, "*", None)
    if len(parts) not in (2, 3) or not all(parts):
        raise bad_param(f"Malformed {name} value {raw!r}", name)
    src, code = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if not rev and src != rtype:
        raise bad_param(f"{name} source type {src!r} must be {rtype!r}", name)
    sp = params_for(src).get(code)
    if sp is None or sp.type != "reference":
        raise bad_param(f"{name}: {src}.{code} is not a reference parameter", name)
    if target is not None and target not in sp.targets:
        raise bad_param(f"{name}: {target!r} is not a target of {src}.{code}", name)
    if rev and sp.targets and rtype not in sp.targets and target is None:
        raise bad_param(f"{name}: {src}.{code} cannot refer to {rtype}", name)
    return (src, code, target)


def parse_search(
    resource_type: str, query: list[tuple[str, str]], *, strict: bool
) -> SearchRequest:
    """Parse ``query`` (decoded name/value pairs, in order) for ``resource_type``."""
    if resource_type not in supported_types():
        raise BadRequest(diagnostics=f"Unsupported resource type {resource_type!r}")
    req = SearchRequest(resource_type, strict=strict)
    for key, raw in query:
        try:
            _parse_one(req, key, raw)
        except _Unknown as exc:
            if strict:
                raise bad_param(
                    f"Unknown or unsupported search parameter {key!r} for {resource_type}"
                    + (f" ({exc.args[0]!r})" if exc.args and exc.args[0] != key else ""),
                    key,
                ) from None
            req.unknown.append(key)
    return req


def _parse_one(req: SearchRequest, key: str, raw: str) -> None:  # noqa: PLR0912
    rtype = req.resource_type
    if key in _IGNORED:
        return
    if key == "_count":
        req.count = min(_parse_int(raw, key), MAX_COUNT)
    elif key == "_offset":
        req.offset = _parse_int(raw, key)
    elif key == "_total":
        if raw not in ("none", "estimate", "accurate"):
            raise bad_param(f"_total must be none, estimate or accurate, got {raw!r}", key)
        req.total = raw
    elif key == "_summary":
        if raw not in ("true", "text", "data", "count", "false"):
            raise bad_param(f"Invalid _summary value {raw!r}", key)
        req.summary = raw
    elif key == "_elements":
        req.elements = [e.strip() for e in raw.split(",") if e.strip()]
    elif key == "_sort":
        _parse_sort(req, raw)
    elif key in ("_include", "_include:iterate"):
        req.include.append(_parse_include(rtype, raw, key, rev=False))
    elif key in ("_revinclude", "_revinclude:iterate"):
        req.revinclude.append(_parse_include(rtype, raw, key, rev=True))
    elif key.startswith("_has:"):
        crit = _parse_has(rtype, key, raw)
        if crit:
            req.criteria.append(crit)
    elif "." in key:  # param codes never contain dots
        crit = _parse_chain(rtype, key, raw)
        if crit:
            req.criteria.append(crit)
    else:
        crit = _parse_simple(rtype, key, raw)
        if crit:
            req.criteria.append(crit)


def _parse_sort(req: SearchRequest, raw: str) -> None:
    for part in raw.split(","):
        item = part.strip()
        if not item:
            continue
        desc = item.startswith("-")
        code = item[1:] if desc else item
        if code not in ("_id", "_lastUpdated") and code not in params_for(req.resource_type):
            if req.strict:
                raise bad_param(f"Unknown sort parameter {code!r} for {req.resource_type}", "_sort")
            req.unknown.append(f"_sort={item}")
            continue
        req.sort.append((code, desc))
