"""Typed values of a FHIR R4 search parameter, parsed from the query string
(search.html: prefixes, escaping, token ``system|code``, references). Flask-free."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from fhir_server.errors import BadRequest
from fhir_server.search.params import SearchParam
from fhir_server.search.values import date_range, parse_reference

PREFIXES = ("eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap")


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


def bad_param(msg: str, param: str) -> BadRequest:
    return BadRequest(diagnostics=msg, expression=(param,))


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
    return [unescape(p) for p in parts]


def unescape(s: str) -> str:
    return re.sub(r"\\([\\,|$])", r"\1", s)


def _prefix(raw: str, param: str) -> tuple[str, str]:
    m = re.match(r"^([a-z]{2})(.*)$", raw)
    if m:
        if m.group(1) not in PREFIXES:
            raise bad_param(f"Unknown prefix {m.group(1)!r} in parameter {param!r}", param)
        return m.group(1), m.group(2)
    return "eq", raw


def parse_date_value(raw: str, param: str) -> DateValue:
    prefix, text = _prefix(raw, param)
    r = date_range(text)
    if r is None:
        raise bad_param(f"Invalid date {raw!r} for parameter {param!r}", param)
    return DateValue(prefix, r[0], r[1], raw)


_NUM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def parse_number_value(raw: str, param: str) -> NumberValue:
    prefix, text = _prefix(raw, param)
    if not _NUM.match(text):
        raise bad_param(f"Invalid number {raw!r} for parameter {param!r}", param)
    try:
        d = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - regex guards this
        raise bad_param(f"Invalid number {raw!r} for parameter {param!r}", param) from exc
    exp = d.as_tuple().exponent
    half = Decimal(5).scaleb(int(exp) - 1)  # 0.5 * 10**exp
    return NumberValue(prefix, float(d), float(d - half), float(d + half), raw)


def parse_quantity_value(raw: str, param: str) -> QuantityValue:
    parts = _split_bar(raw)
    if len(parts) > 3 or len(parts) == 2:
        raise bad_param(f"Invalid quantity {raw!r} for parameter {param!r}", param)
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
            raise bad_param(f"Reference {raw!r} does not match modifier :{type_mod}", param)
        if sp.targets and t not in sp.targets:
            raise bad_param(f"Reference type {t!r} is not a target of {param!r}", param)
        return RefValue(t, i, None)
    if url is None:
        raise bad_param(f"Unsupported reference {raw!r} for parameter {param!r}", param)
    tail_id = None
    if t is not None:
        tail_id = url.rstrip("/").split("/_history/")[0].rsplit("/", 1)[-1]
    return RefValue(t, tail_id, url)
