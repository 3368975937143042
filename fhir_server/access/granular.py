"""Granular SMART scope constraints (``patient/Observation.rs?category=laboratory``)
evaluated on a resource in Python, for reads, includes and writes.

Token, string (starts-with, normalized) and reference parameters are evaluated;
any other parameter type fails closed (the resource is treated as not matching).
"""

from __future__ import annotations

from fhir_server.search.params import params_for
from fhir_server.search.values import (
    normalize,
    param_values,
    parse_reference,
    reference_values,
    string_values,
    token_values,
)


def meets(resource: dict, alternative: tuple[tuple[str, str], ...]) -> bool:
    """True when ``resource`` satisfies every (param, value) of one alternative."""
    params = params_for(resource.get("resourceType", ""))
    for code, wanted in alternative:
        sp = params.get(code)
        if sp is None or not _param_matches(resource, sp, wanted):
            return False
    return True


def _param_matches(resource: dict, sp, wanted: str) -> bool:
    values = param_values(resource, sp)
    choices = [w for w in wanted.split(",") if w]
    if sp.type == "token":
        have = [pair for v in values for pair in token_values(v)[0]]
        for choice in choices:
            system, bar, code = choice.rpartition("|")
            for s, c in have:
                if c == code and (not bar or s == (system or None)):
                    return True
        return False
    if sp.type == "string":
        have = [normalize(s) for v in values for s in string_values(v)]
        return any(h.startswith(normalize(c)) for c in choices for h in have)
    if sp.type == "reference":
        have = {(t, i) for v in values for t, i, _u in reference_values(v)}
        for choice in choices:
            t, i, _u = parse_reference(choice) if "/" in choice else (None, choice, None)
            if any(i == hi and (t is None or t == ht) for ht, hi in have):
                return True
        return False
    return False  # other parameter types are not evaluated: fail closed
