"""SQL conditions for date and number search values (FHIR R4 search.html#prefix).

Dates are ``[low, high)`` microsecond ranges on both sides (the stored value's
implicit precision and the query's); numbers compare as IEEE doubles.
"""

from __future__ import annotations

import time

from sqlalchemy import and_, not_, or_
from sqlalchemy.sql.elements import ColumnElement

from fhir_server.search.query_values import DateValue, NumberValue

_DAY_US = 86_400_000_000


def date_cond(lo, hi, v: DateValue) -> ColumnElement:
    sl, sh = v.low, v.high
    eq = and_(lo >= sl, hi <= sh)
    p = v.prefix
    if p == "eq":
        return eq
    if p == "ne":
        return not_(eq)
    if p == "gt":
        return hi > sh
    if p == "lt":
        return lo < sl
    if p == "ge":
        return or_(hi > sh, eq)
    if p == "le":
        return or_(lo < sl, eq)
    if p == "sa":
        return lo >= sh
    if p == "eb":
        return hi <= sl
    # ap
    now = int(time.time() * 1_000_000)
    gap = max(abs(now - sl) // 10, _DAY_US)
    return and_(lo < sh + gap, hi > sl - gap)


def num_cond(col, v: NumberValue) -> ColumnElement:
    p = v.prefix
    if p == "eq":
        return and_(col >= v.low, col < v.high)
    if p == "ne":
        return or_(col < v.low, col >= v.high)
    if p in ("gt", "sa"):
        return col > v.value
    if p in ("lt", "eb"):
        return col < v.value
    if p == "ge":
        return col >= v.value
    if p == "le":
        return col <= v.value
    gap = abs(v.value) * 0.1  # ap
    return and_(col >= v.value - gap, col <= v.value + gap)
