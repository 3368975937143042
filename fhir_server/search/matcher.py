"""In-Python matching of the residual conditions the blind index can only
approximate (post-filter over decrypted resources), and Python sort keys.

Only what :mod:`.sql` delegates is implemented here: string searches
(default starts-with, ``:contains``, ``:exact``) and token ``:text``.
"""

from __future__ import annotations

from collections.abc import Callable

from fhir_server.search.params import SearchParam, params_for
from fhir_server.search.values import (
    normalize,
    param_values,
    parse_reference,
    reference_values,
    string_values,
    token_values,
    value_date_ranges,
)


def string_matcher(sp: SearchParam, modifier: str | None, queries: list[str]) -> Callable:
    """resource -> bool: any value of ``sp`` matches any of ``queries`` (OR)."""
    if modifier == "exact":
        wanted = set(queries)

        def exact(resource: dict) -> bool:
            return any(s in wanted for v in param_values(resource, sp) for s in string_values(v))

        return exact
    nq = [normalize(q) for q in queries]
    contains = modifier == "contains"

    def match(resource: dict) -> bool:
        for v in param_values(resource, sp):
            for s in string_values(v):
                n = normalize(s)
                for q in nq:
                    if (q in n) if contains else n.startswith(q):
                        return True
        return False

    return match


def token_text_matcher(sp: SearchParam, queries: list[str]) -> Callable:
    """resource -> bool for token ``:text`` (normalized starts-with on the text)."""
    nq = [normalize(q) for q in queries]

    def match(resource: dict) -> bool:
        for v in param_values(resource, sp):
            for t in token_values(v)[1]:
                n = normalize(t)
                if any(n.startswith(q) for q in nq):
                    return True
        return False

    return match


def sort_key_values(resource: dict, sp: SearchParam) -> list:
    """Comparable values of ``sp`` in ``resource`` for a Python sort."""
    vals = param_values(resource, sp)
    t = sp.type
    out: list = []
    for v in vals:
        if t == "string":
            out.extend(normalize(s) for s in string_values(v))
        elif t == "token":
            out.extend(c for _s, c in token_values(v)[0] if c is not None)
        elif t == "uri" and isinstance(v, str):
            out.append(v)
        elif t == "reference":
            out.extend(f"{a or ''}/{b or ''}{c or ''}" for a, b, c in reference_values(v))
        elif t == "date":
            out.extend(r[0] for r in value_date_ranges(v))
        elif t in ("number", "quantity"):
            num = v.get("value") if isinstance(v, dict) else v
            if isinstance(num, int | float) and not isinstance(num, bool):
                out.append(float(num))
    return out


def python_sorter(resource_type: str, sort: list[tuple[str, bool]]) -> Callable:
    """list[resource] -> sorted list; missing values last in both directions.

    Ascending uses each resource's smallest value, descending its largest;
    ties fall back to the resource id.
    """
    params = params_for(resource_type)

    def key_for(code: str, desc: bool) -> Callable:
        if code == "_id":
            return lambda r: (0, r.get("id") or "")
        if code == "_lastUpdated":
            return lambda r: (0, (r.get("meta") or {}).get("lastUpdated") or "")
        sp = params[code]

        def key(r: dict) -> tuple:
            vals = sort_key_values(r, sp)
            if not vals:
                return (1, 0)
            return (0, max(vals) if desc else min(vals))

        return key

    def sort_resources(resources: list[dict]) -> list[dict]:
        out = sorted(resources, key=lambda r: r.get("id") or "")
        for code, desc in reversed(sort):
            key = key_for(code, desc)
            present = [r for r in out if key(r)[0] == 0]
            missing = [r for r in out if key(r)[0] == 1]
            present.sort(key=lambda r, k=key: k(r)[1], reverse=desc)
            out = present + missing
        return out

    return sort_resources


__all__ = [
    "parse_reference",
    "python_sorter",
    "sort_key_values",
    "string_matcher",
    "token_text_matcher",
]
