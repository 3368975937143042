"""Which ``sidx_ref`` rows belong to a reference search param.

Shared by the search compiler and ``_include``/``_revinclude``: a narrower param
(search_params.reference_alias, e.g. Observation ``patient``) has no rows of its
own and reads the wider param's.
"""

from __future__ import annotations

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement

from fhir_server.search.params import reference_alias
from fhir_server.search.tables import sidx_ref


def ref_rows(rtype: str, param: str) -> ColumnElement:
    """The sidx_ref rows of reference param ``param`` of ``rtype``: its own, or for a
    narrower view of another param (search_params.reference_alias) that param's
    rows whose target type is one it allows (or unknown, as the indexer keeps)."""
    alias = reference_alias(rtype, param)
    if alias is None:
        return sidx_ref.c.param == param
    stored, types = alias
    target = sidx_ref.c.target_type
    return and_(sidx_ref.c.param == stored, or_(target.in_(types), target.is_(None)))


def ref_stored_param(rtype: str, param: str) -> str:
    """The param whose HMAC domain a reference URL of ``param`` is digested in."""
    alias = reference_alias(rtype, param)
    return alias[0] if alias else param
