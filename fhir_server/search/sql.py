"""Compile a :class:`SearchRequest` into SQLAlchemy selects over the blind index.

Decisions:

* ``plan.select`` yields ``resources.pk`` of current, non-deleted resources of
  the requested type. Each criterion is a ``pk IN (subquery on sidx_*)``
  (``NOT IN`` for ``:not`` / ``:missing=true``); the subqueries are
  uncorrelated so both SQLite and PostgreSQL use the ``(param, ...)`` indexes.
* Default order (no ``_sort``): ``last_updated_us DESC, pk DESC`` (newest
  first). Every order ends with ``pk`` as tie-break (same direction as the
  last sort key for the defaults, ascending otherwise).
* ``_sort`` on ``_id``, ``_lastUpdated``, date (asc: min low / desc: max high),
  number and quantity (min / max value) is done in SQL, missing values last.
  Sorting on string/token/uri/reference params cannot use digests: then
  ``plan.python_sort`` is a callable ``list[resource] -> list[resource]``
  implementing the *whole* ``_sort`` (the caller must fetch all candidates,
  decrypt, post-filter, sort with it, then page).
* ``plan.postfilter`` is None when SQL is exact; otherwise a callable
  ``resource -> bool`` that must be applied to every candidate (long
  starts-with queries, ``:contains``, token ``:text``). The SQL part is
  always a superset of the true result.
* Date semantics (R4 search.html#prefix), target range T=[tl, th), search S=[sl, sh):
  eq: sl<=tl and th<=sh; ne: not eq; gt: th>sh; lt: tl<sl; ge: gt or eq;
  le: lt or eq; sa: tl>=sh; eb: th<=sl; ap: T overlaps S widened by 10 % of
  the distance from now (at least one day). ``ne`` is evaluated per value
  (a resource with several values matches if any value is not equal).
  ``_lastUpdated`` uses T=[col, col+1).
* Numbers/quantities: eq/ne use the implicit precision range of the search
  value (``100`` = [99.5, 100.5)); lt/gt/le/ge compare with the exact value;
  sa = gt, eb = lt; ap = within 10 % of the value.
* Chains and ``_has`` use IN-subqueries on ``sidx_ref`` joined to the other
  type's criteria; a chained criterion that would need a Python post-filter
  is rejected with BadRequest (the referenced resource is not decrypted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    false,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.sql.expression import literal

from fhir_server.errors import BadRequest
from fhir_server.search import matcher
from fhir_server.search.indexer import PREFIX_CAP, token_digest_pairs
from fhir_server.search.params import union_members
from fhir_server.search.query import SQL_SORT_TYPES, Criterion, SearchRequest
from fhir_server.search.query_values import QuantityValue, RefValue, TokenValue
from fhir_server.search.ref_rows import ref_rows, ref_stored_param
from fhir_server.search.sql_conditions import date_cond, num_cond
from fhir_server.search.tables import (
    TABLE_FOR_TYPE,
    sidx_date,
    sidx_hash,
    sidx_number,
    sidx_quantity,
    sidx_ref,
)
from fhir_server.search.values import normalize, trigrams
from fhir_server.storage.db import resources


@dataclass
class SearchPlan:
    select: Select  # resources.pk, ordered; no limit/offset
    count_select: Select  # SELECT count(*) of the same set
    postfilter: Callable[[dict], bool] | None = None
    python_sort: Callable[[list[dict]], list[dict]] | None = None

    @property
    def needs_python(self) -> bool:
        """True when the caller must fetch all candidates and filter/sort in Python."""
        return self.postfilter is not None or self.python_sort is not None


class _Ctx:
    def __init__(self, blind: Any, in_chain: bool, within: Any = None) -> None:
        self.blind = blind
        self.in_chain = in_chain
        self.within = within  # table -> condition confining chained/_has resources
        self.postfilters: list[Callable[[dict], bool]] = []

    def digest(self, rtype: str, param: str, kind: str, value: str) -> bytes:
        return self.blind.digest(f"{rtype}.{param}/{kind}", value)

    def residual(self, crit: Criterion, fn: Callable[[dict], bool]) -> None:
        if self.in_chain:
            raise BadRequest(
                diagnostics=f"Parameter {crit.param!r} with this modifier/value needs "
                "post-filtering, which is not supported inside a chain or _has",
                expression=(crit.param,),
            )
        self.postfilters.append(fn)


# ---------------------------------------------------------------- helpers


def _has_rows(table, param: str) -> Select:
    return select(table.c.resource_pk).where(table.c.param == param)


def _hash_in(param: str, hashes: list[bytes]) -> Select:
    return select(sidx_hash.c.resource_pk).where(
        sidx_hash.c.param == param, sidx_hash.c.hash.in_(hashes)
    )


def _hash_all(param: str, hashes: set[bytes]) -> Select:
    """Resources having every digest of ``hashes`` for ``param``."""
    return (
        select(sidx_hash.c.resource_pk)
        .where(sidx_hash.c.param == param, sidx_hash.c.hash.in_(sorted(hashes)))
        .group_by(sidx_hash.c.resource_pk)
        .having(func.count(func.distinct(sidx_hash.c.hash)) == len(hashes))
    )


# ---------------------------------------------------------------- criteria


def _token(crit: Criterion, ctx: _Ctx, pk) -> ColumnElement:
    rt, p = crit.resource_type, crit.param
    if crit.modifier == "text":
        subs = []
        for q in crit.values:
            words = normalize(q).split(" ")
            full = {ctx.digest(rt, p, "w", w) for w in words[:-1] if w}
            subs.append(pk.in_(_hash_all(p, full)) if full else pk.in_(_has_rows(sidx_hash, p)))
        ctx.residual(crit, matcher.token_text_matcher(crit.sp, crit.values))
        return or_(*subs)
    hashes = []
    for v in crit.values:
        assert isinstance(v, TokenValue)
        if v.system is None:
            hashes.append(ctx.digest(rt, p, "c", v.code or ""))
        elif v.code is None:
            hashes.append(ctx.digest(rt, p, "s", v.system))
        else:
            kind, val = token_digest_pairs(v.system, v.code)[0]
            hashes.append(ctx.digest(rt, p, kind, val))
    sub = _hash_in(p, hashes)
    return pk.not_in(sub) if crit.modifier == "not" else pk.in_(sub)


def _string(crit: Criterion, ctx: _Ctx, pk) -> ColumnElement:
    rt, p = crit.resource_type, crit.param
    if crit.modifier == "exact":
        return pk.in_(_hash_in(p, [ctx.digest(rt, p, "x", v) for v in crit.values]))
    residual = False
    if crit.modifier == "contains":
        subs = []
        for v in crit.values:
            n = normalize(v)
            if len(n) < 3:
                subs.append(pk.in_(_has_rows(sidx_hash, p)))
            else:
                subs.append(pk.in_(_hash_all(p, {ctx.digest(rt, p, "t", g) for g in trigrams(n)})))
            residual = residual or len(n) != 3
        clause = or_(*subs)
    else:
        hashes = []
        for v in crit.values:
            n = normalize(v)
            residual = residual or len(n) > PREFIX_CAP
            hashes.append(ctx.digest(rt, p, "p", n[:PREFIX_CAP]))
        clause = pk.in_(_hash_in(p, hashes))
    if residual:
        ctx.residual(crit, matcher.string_matcher(crit.sp, crit.modifier, crit.values))
    return clause


def _uri(crit: Criterion, ctx: _Ctx, pk) -> ColumnElement:
    rt, p = crit.resource_type, crit.param
    return pk.in_(_hash_in(p, [ctx.digest(rt, p, "u", v) for v in crit.values]))


def _date(crit: Criterion, ctx: _Ctx, pk) -> ColumnElement:
    conds = [date_cond(sidx_date.c.low, sidx_date.c.high, v) for v in crit.values]
    return pk.in_(
        select(sidx_date.c.resource_pk).where(sidx_date.c.param == crit.param, or_(*conds))
    )


def _number(crit: Criterion, ctx: _Ctx, pk) -> ColumnElement:
    conds = [num_cond(sidx_number.c.value, v) for v in crit.values]
    return pk.in_(
        select(sidx_number.c.resource_pk).where(sidx_number.c.param == crit.param, or_(*conds))
    )


def _quantity(crit: Criterion, ctx: _Ctx, pk) -> ColumnElement:
    rt, p = crit.resource_type, crit.param
    q = sidx_quantity.c
    conds = []
    for v in crit.values:
        assert isinstance(v, QuantityValue)
        c = num_cond(q.value, v.number)
        if v.system and v.code:
            c = and_(c, q.sys_code == ctx.digest(rt, p, "sc", f"{v.system}|{v.code}"))
        elif v.code:
            h = ctx.digest(rt, p, "u", v.code)
            c = and_(c, or_(q.code == h, q.unit == h))
        conds.append(c)
    return pk.in_(select(q.resource_pk).where(q.param == p, or_(*conds)))


def _reference(crit: Criterion, ctx: _Ctx, pk) -> ColumnElement:
    rt, p = crit.resource_type, crit.param
    r = sidx_ref.c
    stored = ref_stored_param(rt, p)
    conds = []
    for v in crit.values:
        assert isinstance(v, RefValue)
        if v.id is not None:
            c = r.target_id == v.id
            if v.type is not None:
                c = and_(c, r.target_type == v.type)
            conds.append(c)
        if v.url is not None:
            conds.append(r.url_hash == ctx.digest(rt, stored, "u", v.url))
    return pk.in_(select(r.resource_pk).where(ref_rows(rt, p), or_(*conds)))


def _chain(crit: Criterion, ctx: _Ctx, pk) -> ColumnElement:
    r = sidx_ref.c
    subs = []
    for ttype, inner in crit.chain:
        other = resources.alias()
        ids = select(other.c.res_id).where(
            other.c.res_type == ttype,
            other.c.deleted.is_(False),
            _criterion(inner, _Ctx(ctx.blind, True, ctx.within), other),
            *([ctx.within(other)] if ctx.within else []),
        )
        subs.append(and_(r.target_type == ttype, r.target_id.in_(ids)))
    return pk.in_(select(r.resource_pk).where(ref_rows(crit.resource_type, crit.param), or_(*subs)))


def _has(crit: Criterion, ctx: _Ctx, table) -> ColumnElement:
    (has_type, inner) = crit.chain[0]
    other = resources.alias()
    r = sidx_ref.c
    ids = (
        select(r.target_id)
        .join(other, other.c.pk == r.resource_pk)
        .where(
            ref_rows(has_type, crit.has_param),
            r.target_type == crit.resource_type,
            other.c.res_type == has_type,
            other.c.deleted.is_(False),
            _criterion(inner, _Ctx(ctx.blind, True, ctx.within), other),
            *([ctx.within(other)] if ctx.within else []),
        )
    )
    return table.c.res_id.in_(ids)


_BUILDERS = {
    "token": _token,
    "string": _string,
    "uri": _uri,
    "date": _date,
    "number": _number,
    "quantity": _quantity,
    "reference": _reference,
}


def _criterion(crit: Criterion, ctx: _Ctx, table) -> ColumnElement:
    """SQL condition of ``crit`` over ``table`` (``resources`` or an alias of it)."""
    pk = table.c.pk
    if crit.param == "_has":
        return _has(crit, ctx, table)
    if crit.param == "_id":
        return table.c.res_id.in_([v.code for v in crit.values])
    if crit.param == "_lastUpdated":
        if crit.modifier == "missing":
            return false() if crit.values[0] else true()
        col = table.c.last_updated_us
        return or_(*[date_cond(col, col + literal(1), v) for v in crit.values])
    if members := union_members(crit.resource_type, crit.param):
        return _union(crit, members, ctx, table)
    if crit.chain:
        return _chain(crit, ctx, pk)
    if crit.modifier == "missing":
        if crit.type == "reference":
            sub = select(sidx_ref.c.resource_pk).where(ref_rows(crit.resource_type, crit.param))
        else:
            sub = _has_rows(TABLE_FOR_TYPE[crit.type], crit.param)
        return pk.not_in(sub) if crit.values[0] else pk.in_(sub)
    return _BUILDERS[crit.type](crit, ctx, pk)


def _union(crit: Criterion, members: tuple[str, ...], ctx: _Ctx, table) -> ColumnElement:
    """A param that is the union of others (search_params.union_members) has no rows
    of its own: it matches where any member matches (``:not`` / ``:missing=true``:
    where every member does). ``crit.sp`` stays the union's, so a post-filter tests
    the union's paths -- the same test for each member, ANDed without effect."""
    parts = [_criterion(replace(crit, param=m), ctx, table) for m in members]
    negated = crit.modifier == "not" or (crit.modifier == "missing" and crit.values[0])
    return and_(*parts) if negated else or_(*parts)


# ---------------------------------------------------------------- sorting


def _sql_sort_key(req: SearchRequest, code: str, desc: bool):
    if code == "_id":
        col = resources.c.res_id
    elif code == "_lastUpdated":
        col = resources.c.last_updated_us
    else:
        sp = req_param(req, code)
        if sp.type == "date":
            t, c = sidx_date, (func.max(sidx_date.c.high) if desc else func.min(sidx_date.c.low))
        elif sp.type == "number":
            t = sidx_number
            c = func.max(t.c.value) if desc else func.min(t.c.value)
        else:
            t = sidx_quantity
            c = func.max(t.c.value) if desc else func.min(t.c.value)
        names = union_members(req.resource_type, code) or (code,)
        col = (
            select(c)
            .where(t.c.resource_pk == resources.c.pk, t.c.param.in_(names))
            .scalar_subquery()
        )
        return (col.desc() if desc else col.asc()).nulls_last()
    return col.desc() if desc else col.asc()


def req_param(req: SearchRequest, code: str):
    from fhir_server.search.params import params_for

    return params_for(req.resource_type)[code]


def _sql_sortable(req: SearchRequest) -> bool:
    return all(
        code in ("_id", "_lastUpdated") or req_param(req, code).type in SQL_SORT_TYPES
        for code, _ in req.sort
    )


# ---------------------------------------------------------------- entry point


def build_search(req: SearchRequest, blind: Any, within: Any = None) -> SearchPlan:
    """Compile ``req`` (module docstring); ``within(table)`` confines chains / ``_has``."""
    ctx = _Ctx(blind, False, within)
    where = [resources.c.res_type == req.resource_type, resources.c.deleted.is_(False)]
    where.extend(_criterion(c, ctx, resources) for c in req.criteria)
    base = select(resources.c.pk).where(*where)
    count_select = select(func.count()).select_from(base.subquery())
    python_sort = None
    if req.sort and _sql_sortable(req):
        order = [_sql_sort_key(req, code, desc) for code, desc in req.sort]
        order.append(resources.c.pk.asc())
    else:
        if req.sort:
            python_sort = matcher.python_sorter(req.resource_type, req.sort)
        order = [resources.c.last_updated_us.desc(), resources.c.pk.desc()]
    postfilter = None
    if ctx.postfilters:
        fns = tuple(ctx.postfilters)

        def postfilter(resource: dict) -> bool:
            return all(fn(resource) for fn in fns)

    return SearchPlan(base.order_by(*order), count_select, postfilter, python_sort)
