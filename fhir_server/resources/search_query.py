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
from decimal import Decimal, InvalidOperation
from typing import Any

from fhir_server.errors import BadRequest
from fhir_server.resources.search_params import SearchParam, params_for, supported_types
from fhir_server.resources.values import date_range, parse_reference

MAX_COUNT = 1000
PREFIXES = ("eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap")
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
_IGNORED = frozenset({"_format", "_pretty"})
_SPECIAL_ID = SearchParam("_id", "token", (), ())
_SPECIAL_LU = SearchParam("_lastUpdated", "date", (), ())


@dataclass(frozen=True)
class TokenValue:
    system: str | None  # None: any system; "": no system (``|code``)
    code: str | None  # None: ``system|`` (any code in system)


@dataclass(frozen=True)
class DateValue:
    prefix: str
    low: int  # epoch µs, inclusive
    high: int  # exclusive
    raw: str


@dataclass(frozen=True)
class NumberValue:
    prefix: str
    value: float
    low: float  # implicit precision range [low, high) for eq/ne
    high: float
    raw: str


@dataclass(frozen=True)
class QuantityValue:
    prefix: str
    number: NumberValue
    system: str | None
    code: str | None  # with system None/"" and ``value||x``: matches code or unit


@dataclass(frozen=True)
class RefValue:
    type: str | None
    id: str | None
    url: str | None  # absolute / other URL, matched by digest


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


def _bad(msg: str, param: str) -> BadRequest:
    return BadRequest(diagnostics=msg, expression=(param,))


class _Unknown(Exception):
    """Internal: the parameter is unknown/unsupported (strictness decides)."""


def split_values(raw: str) -> list[str]:
    """Split on unescaped commas; unescape ``\\,`` ``\\|`` ``\\$`` ``\\\\``."""
    out, cur, i = [], [], 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            cur.append(raw[i : i + 2])
            i += 2
            continue
        if ch == ",":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur))
    return out


def _split_bar(raw: str) -> list[str]:
    """Split on unescaped ``|`` and unescape."""
    parts = re.split(r"(?<!\\)\|", raw)
    return [_unescape(p) for p in parts]


def _unescape(s: str) -> str:
    return re.sub(r"\\([\\,|$])", r"\1", s)


def _prefix(raw: str, param: str) -> tuple[str, str]:
    m = re.match(r"^([a-z]{2})(.*)$", raw)
    if m:
        if m.group(1) not in PREFIXES:
            raise _bad(f"Unknown prefix {m.group(1)!r} in parameter {param!r}", param)
        return m.group(1), m.group(2)
    return "eq", raw


def parse_date_value(raw: str, param: str) -> DateValue:
    prefix, text = _prefix(raw, param)
    r = date_range(text)
    if r is None:
        raise _bad(f"Invalid date {raw!r} for parameter {param!r}", param)
    return DateValue(prefix, r[0], r[1], raw)


_NUM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def parse_number_value(raw: str, param: str) -> NumberValue:
    prefix, text = _prefix(raw, param)
    if not _NUM.match(text):
        raise _bad(f"Invalid number {raw!r} for parameter {param!r}", param)
    try:
        d = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - regex guards this
        raise _bad(f"Invalid number {raw!r} for parameter {param!r}", param) from exc
    exp = d.as_tuple().exponent
    half = Decimal(5).scaleb(int(exp) - 1)  # 0.5 * 10**exp
    return NumberValue(prefix, float(d), float(d - half), float(d + half), raw)


def parse_quantity_value(raw: str, param: str) -> QuantityValue:
    parts = _split_bar(raw)
    if len(parts) > 3 or len(parts) == 2:
        raise _bad(f"Invalid quantity {raw!r} for parameter {param!r}", param)
    num = parse_number_value(parts[0], param)
    system = code = None
    if len(parts) == 3:
        system, code = parts[1], parts[2] or None
    return QuantityValue(num.prefix, num, system, code)


def parse_token_value(raw: str) -> TokenValue:
    parts = _split_bar(raw)
    if len(parts) == 1:
        return TokenValue(None, parts[0])
    system, code = parts[0], "|".join(parts[1:])
    return TokenValue(system, code or None)


def parse_reference_value(raw: str, sp: SearchParam, type_mod: str | None) -> RefValue:
    param = sp.code
    if "/" not in raw and ":" not in raw:
        if type_mod:
            return RefValue(type_mod, raw, None)
        if len(sp.targets) == 1:
            return RefValue(sp.targets[0], raw, None)
        return RefValue(None, raw, None)  # id on any target type
    t, i, url = parse_reference(raw)
    if i is not None:
        if type_mod and t != type_mod:
            raise _bad(f"Reference {raw!r} does not match modifier :{type_mod}", param)
        if sp.targets and t not in sp.targets:
            raise _bad(f"Reference type {t!r} is not a target of {param!r}", param)
        return RefValue(t, i, None)
    if url is None:
        raise _bad(f"Unsupported reference {raw!r} for parameter {param!r}", param)
    tail_id = None
    if t is not None:
        tail_id = url.rstrip("/").split("/_history/")[0].rsplit("/", 1)[-1]
    return RefValue(t, tail_id, url)


def _parse_values(sp: SearchParam, modifier: str | None, raw: str, param: str) -> list[Any]:
    vals = [v for v in split_values(raw) if v != ""]
    if modifier == "missing":
        if len(vals) != 1 or vals[0] not in ("true", "false"):
            raise _bad(f"{param}:missing must be true or false", param)
        return [vals[0] == "true"]
    t = sp.type
    if t == "token":
        if modifier == "text":
            return [_unescape(v) for v in vals]
        return [parse_token_value(v) for v in vals]
    if t in ("string", "uri"):
        return [_unescape(v) for v in vals]
    if t == "date":
        return [parse_date_value(v, param) for v in vals]
    if t == "number":
        return [parse_number_value(v, param) for v in vals]
    if t == "quantity":
        return [parse_quantity_value(v, param) for v in vals]
    type_mod = modifier if modifier and modifier[0].isupper() else None
    return [parse_reference_value(_unescape(v), sp, type_mod) for v in vals]


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
            raise _bad(f"Unsupported modifier :{modifier} on {param!r}", param)
        return
    if sp.type == "reference" and modifier[:1].isupper():
        if modifier not in sp.targets:
            raise _bad(f"Modifier :{modifier} is not a target type of {param!r}", param)
        return
    if modifier not in MODIFIERS[sp.type]:
        raise _bad(f"Unknown or unsupported modifier :{modifier} on parameter {param!r}", param)


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
        raise _bad(f"Only one level of chaining is supported: {key!r}", key)
    code, _, type_mod = left.partition(":")
    sp = _lookup(rtype, code)
    if sp.type != "reference":
        raise _bad(f"Chained parameter {code!r} is not a reference", key)
    if type_mod:
        if type_mod not in sp.targets:
            raise _bad(f"Modifier :{type_mod} is not a target type of {code!r}", key)
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
        raise _bad(f"Malformed _has parameter {key!r}", key)
    has_type, has_param = parts[1], parts[2]
    inner_key = ":".join(parts[3:])
    if inner_key.startswith("_has") or "." in inner_key:
        raise _bad(f"Only one level of _has is supported: {key!r}", key)
    if has_type not in supported_types():
        raise _bad(f"Unknown resource type {has_type!r} in {key!r}", key)
    ref = params_for(has_type).get(has_param)
    if ref is None or ref.type != "reference" or (ref.targets and rtype not in ref.targets):
        raise _bad(f"{has_type}.{has_param} is not a reference to {rtype} in {key!r}", key)
    inner = _parse_simple(has_type, inner_key, raw)
    if inner is None:
        return None
    return Criterion(rtype, "_has", "has", None, [], None, [(has_type, inner)], has_type, has_param)


def _parse_int(raw: str, name: str) -> int:
    if not re.fullmatch(r"\d{1,9}", raw):
        raise _bad(f"{name} must be a non-negative integer, got {raw!r}", name)
    return int(raw)


def _parse_include(rtype: str, raw: str, name: str, rev: bool) -> tuple[str, str, str | None]:
    parts = raw.split(":")
    if raw == "*" or (len(parts) == 2 and parts[1] == "*"):
        return (parts[0] if len(parts) == 2 else rtype, "*", None)
    if len(parts) not in (2, 3) or not all(parts):
        raise _bad(f"Malformed {name} value {raw!r}", name)
    src, code = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if not rev and src != rtype:
        raise _bad(f"{name} source type {src!r} must be {rtype!r}", name)
    sp = params_for(src).get(code)
    if sp is None or sp.type != "reference":
        raise _bad(f"{name}: {src}.{code} is not a reference parameter", name)
    if target is not None and target not in sp.targets:
        raise _bad(f"{name}: {target!r} is not a target of {src}.{code}", name)
    if rev and sp.targets and rtype not in sp.targets and target is None:
        raise _bad(f"{name}: {src}.{code} cannot refer to {rtype}", name)
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
                raise _bad(
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
            raise _bad(f"_total must be none, estimate or accurate, got {raw!r}", key)
        req.total = raw
    elif key == "_summary":
        if raw not in ("true", "text", "data", "count", "false"):
            raise _bad(f"Invalid _summary value {raw!r}", key)
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
                raise _bad(f"Unknown sort parameter {code!r} for {req.resource_type}", "_sort")
            req.unknown.append(f"_sort={item}")
            continue
        req.sort.append((code, desc))
