"""``_include`` and ``_revinclude`` over the reference index (R4 search.html#include).

References are indexed with their target type and (random) id in clear, so
both directions are plain joins; the included resources are then decrypted.
"""

from __future__ import annotations

from sqlalchemy import and_, select, tuple_
from sqlalchemy.engine import Connection

from fhir_server.search.ref_rows import ref_rows
from fhir_server.search.tables import sidx_ref
from fhir_server.storage.db import resources


def included_resources(store, request, page: list[dict], conn: Connection, within=None):
    """``within(table)``: an SQL condition every included resource must meet
    (the patient compartment of a ``patient/`` token)."""
    if not page or not (request.include or request.revinclude):
        return []
    keys = {(r["resourceType"], r["id"]) for r in page}
    pks: list[int] = []
    for source_type, param, target_type in request.include:
        pks += _forward(conn, keys, source_type, param, target_type, within)
    for source_type, param, target_type in request.revinclude:
        pks += _reverse(conn, keys, source_type, param, target_type, within)
    found = store.load_current(list(dict.fromkeys(pks)), conn)
    return [r for r in found if (r["resourceType"], r["id"]) not in keys]


def _forward(conn, keys, source_type, param, target_type, within) -> list[int]:
    ids_of_source = [res_id for res_type, res_id in keys if res_type == source_type]
    if not ids_of_source:
        return []
    source = resources.alias("source")
    target = resources.alias("target")
    query = (
        select(target.c.pk)
        .select_from(
            sidx_ref.join(source, source.c.pk == sidx_ref.c.resource_pk).join(
                target,
                and_(
                    target.c.res_type == sidx_ref.c.target_type,
                    target.c.res_id == sidx_ref.c.target_id,
                ),
            )
        )
        .where(
            source.c.res_type == source_type,
            source.c.res_id.in_(ids_of_source),
            ref_rows(source_type, param),
            target.c.deleted.is_(False),
        )
    )
    if target_type:
        query = query.where(sidx_ref.c.target_type == target_type)
    if within is not None:
        query = query.where(within(target))
    return [row[0] for row in conn.execute(query)]


def _reverse(conn, keys, source_type, param, target_type, within) -> list[int]:
    wanted = [k for k in keys if target_type is None or k[0] == target_type]
    if not wanted:
        return []
    query = (
        select(resources.c.pk)
        .select_from(sidx_ref.join(resources, resources.c.pk == sidx_ref.c.resource_pk))
        .where(
            resources.c.res_type == source_type,
            resources.c.deleted.is_(False),
            ref_rows(source_type, param),
            tuple_(sidx_ref.c.target_type, sidx_ref.c.target_id).in_(wanted),
        )
    )
    if within is not None:
        query = query.where(within(resources))
    return [row[0] for row in conn.execute(query)]
