"""Index extraction: resource dict -> blind-index rows (Flask-free).

Blind-index design (decisions; the SQL side is :mod:`.sql`)
------------------------------------------------------------------
Digests: ``blind.digest(domain, value)`` with ``domain = f"{Type}.{param}/{kind}"``,
so equal values in different params / resource types never share a digest.
All token/string/uri digests go into ``sidx_hash(param, hash)``.

* string (HumanName/Address parts, plain strings): ``normalize()`` = NFKD,
  drop combining marks, casefold, collapse whitespace, strip.

  - kind ``p``: one digest per prefix of the normalized value, lengths
    1..``PREFIX_CAP`` (32). Default search (starts-with on the whole normalized
    string) is then one exact digest lookup; queries longer than the cap use
    the capped prefix plus a Python post-filter.
  - kind ``x``: digest of the raw value (``:exact``, case/accent sensitive).
  - kind ``t``: digests of the character trigrams of the normalized value
    (``:contains`` needs all query trigrams, then a post-filter; exactly 3
    chars is exact; shorter queries post-filter every resource having the param).
* token (Coding, CodeableConcept, Identifier, ContactPoint, code, boolean):

  - kind ``sc``: ``"{system}|{code}"`` (system "" when absent: ``|code``),
  - kind ``c``: code alone, kind ``s``: system alone (``system|``),
  - kind ``w``: each whitespace-separated word of the normalized
    CodeableConcept.text / Coding.display / Identifier.type.text (``:text``).
* uri: kind ``u``: the raw uri (exact match only).
* reference: relative ``Type/id`` -> clear ``(target_type, target_id)`` (ids are
  random server ids); anything else (absolute URL, ``urn:uuid:``, canonical)
  -> kind ``u`` digest of the URL (version suffix ``|x`` of canonicals removed),
  with ``target_type`` when the URL ends in ``Type/id``. References whose
  type is known but not one of the parameter's targets are skipped (this is
  how ``where(resolve() is Patient)`` is honoured). Contained (``#x``) and
  identifier-only references are not indexed.
* date: ``[low, high)`` epoch microseconds UTC from the implicit precision of
  date/dateTime/instant (no tz -> UTC); Period start/end (open ends ->
  ``MIN_US``/``MAX_US``); Timing.event. Values that do not parse are skipped.
* number: ``float`` value. quantity: ``float`` value, ``sys_code`` = digest
  ``sc`` of ``system|code``, ``code``/``unit`` = digests in the same ``u``
  domain (no UCUM canonicalisation).

Speed: paths are compiled once per type; rows are de-duplicated per resource.
Wrap a ``BlindIndex`` in :class:`CachingBlind` to memoise digests of repeated
values (LOINC codes, systems) across resources -- it keeps clear values as
dict keys in process memory, so the caller decides.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from fhir_server.search.params import (
    SearchParam,
    params_for,
    reference_alias,
    union_members,
)
from fhir_server.search.values import (
    compile_path,
    is_identifier_like,
    normalize,
    path_values,
    reference_values,
    string_values,
    token_values,
    trigrams,
    value_date_ranges,
)

PREFIX_CAP = 32

# The values of one row, per index table, in this order (``resource_pk`` is put
# first by the writer): tuples, not dicts -- a Synthea resource has ~20 index rows,
# and they go to the driver's executemany as tuples anyway.
ROW_FIELDS = {
    "sidx_hash": ("param", "hash"),
    "sidx_date": ("param", "low", "high"),
    "sidx_number": ("param", "value"),
    "sidx_quantity": ("param", "value", "sys_code", "code", "unit"),
    "sidx_ref": ("param", "target_type", "target_id", "url_hash"),
}


# ---------------------------------------------------------------- indexing


class CachingBlind:
    """Memoising wrapper around a blind index (same ``digest`` signature)."""

    __slots__ = ("_blind", "_cache", "_max")

    def __init__(self, blind: Any, maxsize: int = 100_000) -> None:
        self._blind = blind
        self._cache: dict[tuple[str, str], bytes] = {}
        self._max = maxsize

    def digest(self, domain: str, value: str) -> bytes:
        key = (domain, value)
        d = self._cache.get(key)
        if d is None:
            if len(self._cache) >= self._max:
                self._cache.clear()
            d = self._cache[key] = self._blind.digest(domain, value)
        return d


class TerminologyDigests(CachingBlind):
    """The digests of terminology -- code systems, codes and the words of their
    display texts, which repeat across every resource (the same LOINC code in each
    vital sign) -- memoised per process. Identifiers, contact points, names and
    addresses never come here (:func:`_index_token`), so the cache holds no value
    that identifies a person; the digests equal ``blind.digest``'s."""

    def __init__(self, blind: Any, maxsize: int = 50_000) -> None:
        super().__init__(blind, maxsize)


def token_digest_pairs(system: str | None, code: str | None) -> list[tuple[str, str]]:
    """``(kind, value)`` pairs stored for one token (see module docstring)."""
    out = []
    if code is not None:
        out.append(("sc", f"{system or ''}|{code}"))
        out.append(("c", code))
    if system:
        out.append(("s", system))
    return out


def _index_token(dom: str, vals: list, digest: Callable, terms: Callable, acc: set) -> None:
    for v in vals:
        pairs, texts = token_values(v)
        # Codes, systems and display words repeat across resources: ``terms``
        # may memoise them; identifiers and contact points always go to ``digest``.
        hashed = digest if is_identifier_like(v) else terms
        for system, code in pairs:
            for kind, val in token_digest_pairs(system, code):
                acc.add(hashed(dom + kind, val))
        for t in texts:
            for w in normalize(t).split(" "):
                if w:
                    acc.add(hashed(dom + "w", w))


def _index_string(dom: str, vals: list, digest: Callable, acc: set) -> None:
    seen: set[str] = set()
    for v in vals:
        for s in string_values(v):
            if s in seen:
                continue
            seen.add(s)
            acc.add(digest(dom + "x", s))
            n = normalize(s)
            for k in range(1, min(len(n), PREFIX_CAP) + 1):
                acc.add(digest(dom + "p", n[:k]))
            for tg in trigrams(n):
                acc.add(digest(dom + "t", tg))


def _index_uri(dom: str, vals: list, digest: Callable, acc: set) -> None:
    for v in vals:
        if isinstance(v, str) and v:
            acc.add(digest(dom + "u", v))


@cache
def _plan(resource_type: str) -> tuple[tuple[SearchParam, str, tuple], ...]:
    return tuple(
        (sp, f"{resource_type}.{code}/", tuple(compile_path(p) for p in sp.paths))
        for code, sp in sorted(params_for(resource_type).items())
        # searched through their members / the wider reference param's rows
        if not union_members(resource_type, code) and not reference_alias(resource_type, code)
    )


def index_rows(  # noqa: PLR0912, PLR0915
    resource: dict, blind: Any, terms: Any = None
) -> dict[str, list[tuple]]:
    """Table name -> rows (tuples of :data:`ROW_FIELDS`) for the current version.

    ``terms``: a :class:`TerminologyDigests` of ``blind`` for the digests of codes
    (same values; memoised)."""
    rtype = resource.get("resourceType")
    digest = blind.digest
    term_digest = terms.digest if terms is not None else digest
    hash_rows: list[tuple] = []
    date_rows: list[tuple] = []
    num_rows: list[tuple] = []
    qty_rows: list[tuple] = []
    ref_rows: list[tuple] = []
    for sp, dom, steps_list in _plan(rtype) if isinstance(rtype, str) else ():
        vals: list = []
        for steps in steps_list:
            path_values(resource, steps, vals)
        if not vals:
            continue
        code = sp.code
        t = sp.type
        if t in ("token", "string", "uri"):
            acc: set[bytes] = set()
            if t == "token":
                _index_token(dom, vals, digest, term_digest, acc)
            elif t == "string":
                _index_string(dom, vals, digest, acc)
            else:
                _index_uri(dom, vals, digest, acc)
            hash_rows.extend([(code, h) for h in acc])
        elif t == "date":
            seen_d: set = set()
            for v in vals:
                for r in value_date_ranges(v):
                    if r not in seen_d:
                        seen_d.add(r)
                        date_rows.append((code, r[0], r[1]))
        elif t == "number":
            for v in vals:
                if isinstance(v, int | float) and not isinstance(v, bool):
                    num_rows.append((code, float(v)))
        elif t == "quantity":
            for v in vals:
                if not isinstance(v, dict):
                    continue
                num = v.get("value")
                if not isinstance(num, int | float) or isinstance(num, bool):
                    continue
                sysv, cd, unit = v.get("system"), v.get("code"), v.get("unit")
                qty_rows.append(
                    (
                        code,
                        float(num),
                        digest(dom + "sc", f"{sysv or ''}|{cd}") if cd is not None else None,
                        digest(dom + "u", cd) if isinstance(cd, str) else None,
                        digest(dom + "u", unit) if isinstance(unit, str) else None,
                    )
                )
        else:  # reference
            seen_r: set = set()
            targets = sp.targets
            for v in vals:
                for ttype, tid, url in reference_values(v):
                    if ttype is not None and targets and ttype not in targets:
                        continue
                    key = (ttype, tid, url)
                    if key in seen_r:
                        continue
                    seen_r.add(key)
                    ref_rows.append((code, ttype, tid, digest(dom + "u", url) if url else None))
    out: dict[str, list[tuple]] = {}
    for name, rows in (
        ("sidx_hash", hash_rows),
        ("sidx_date", date_rows),
        ("sidx_number", num_rows),
        ("sidx_quantity", qty_rows),
        ("sidx_ref", ref_rows),
    ):
        if rows:
            out[name] = rows
    return out
