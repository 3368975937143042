"""Named queries on the store's tables for the ``$operations`` (fhir_server/operations/).

The operations ask the store questions by name -- which resources lie in a patient's
compartment, what they reference, what is stored for a set of ids -- instead of
building SQL on ``resources``, ``resource_versions``, ``resource_compartments`` and
the ``sidx_*`` index tables themselves, so the schema has one place of use beside
the store, the writer and the search engine.

Functions taking ``store`` read on a connection of their own (or the request
transaction bound to the thread, :meth:`ResourceStore.connect`); functions taking
``conn`` run inside a unit of work (``writer.conn``), under its write lock.
Only ids, version numbers, timestamps, flags and leaf hashes are read: nothing here
decrypts.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable

from sqlalchemy import delete, or_, select, update

from fhir_server import ids
from fhir_server.search.tables import ALL_TABLES, sidx_ref
from fhir_server.storage.db import compartments, data_keys, resources, versions

log = logging.getLogger("phrx.storage")
_CHUNK = 500  # ids per IN list


# -- patient compartments -------------------------------------------------------------
def compartment_pks(
    store, patient_id: str, types: Collection[str] | None = None, since: int | None = None
) -> list[int]:
    """Primary keys of the current, not deleted resources in ``patient_id``'s
    compartment, in write order; ``types`` limits the resource types, ``since``
    (epoch microseconds) to resources last updated then or later."""
    query = (
        select(resources.c.pk)
        .join(compartments, compartments.c.resource_pk == resources.c.pk)
        .where(compartments.c.patient_id == patient_id, resources.c.deleted.is_(False))
        .order_by(resources.c.pk)
    )
    if types:
        query = query.where(resources.c.res_type.in_(sorted(types)))
    if since is not None:
        query = query.where(resources.c.last_updated_us >= since)
    with store.connect() as conn:
        return list(dict.fromkeys(r[0] for r in conn.execute(query)))


def referenced_targets(store, patient_id: str, types: Collection[str]) -> set[tuple[str, str]]:
    """(type, id) of every resource of ``types`` that a resource of ``patient_id``'s
    compartment references, read from the reference index (nothing decrypted)."""
    query = (
        select(sidx_ref.c.target_type, sidx_ref.c.target_id)
        .join(compartments, compartments.c.resource_pk == sidx_ref.c.resource_pk)
        .where(compartments.c.patient_id == patient_id, sidx_ref.c.target_type.in_(sorted(types)))
        .distinct()
    )
    with store.connect() as conn:
        return {(t, i) for t, i in conn.execute(query) if t and i}


# -- what is stored for given ids -------------------------------------------------------
def resource_known(store, res_type: str, res_id: str) -> bool:
    """Was ``res_type/res_id`` ever stored (deleted or not)?"""
    query = select(resources.c.pk).where(
        resources.c.res_type == res_type, resources.c.res_id == res_id
    )
    with store.connect() as conn:
        return conn.execute(query).first() is not None


_LEAVES_SQL = (
    f"SELECT r.res_id, r.deleted, v.leaf FROM {resources.name} r "  # noqa: S608
    f"JOIN {versions.name} v ON v.res_type = r.res_type AND v.res_id = r.res_id "
    "AND v.version_id = r.version_id WHERE r.res_type = {marker} AND r.res_id IN ({ids})"
)


def current_leaves(
    conn, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], tuple[bool, bytes | None]]:
    """(type, id) -> (deleted, anchoring leaf) of the current stored version, for the
    ids among ``keys`` that exist.

    Plain driver SQL: through SQLAlchemy's expression layer, expanding 36,000 ids into
    IN lists took ~0.4 s per look-up (profiled), several times the queries' own cost.
    """
    by_type: dict[str, list[str]] = {}
    for res_type, res_id in keys:
        by_type.setdefault(res_type, []).append(res_id)
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    found: dict[tuple[str, str], tuple[bool, bytes | None]] = {}
    for res_type, res_ids in by_type.items():
        for start in range(0, len(res_ids), _CHUNK):
            chunk = res_ids[start : start + _CHUNK]
            # table and column names are our schema's; every value is a bound parameter
            sql = _LEAVES_SQL.format(marker=marker, ids=", ".join(marker for _ in chunk))
            for res_id, deleted, leaf in conn.exec_driver_sql(sql, (res_type, *chunk)):
                found[(res_type, res_id)] = (bool(deleted), bytes(leaf) if leaf else None)
    return found


# -- a patient's erasure ----------------------------------------------------------------
def erasure_candidates(conn, patient_id: str, scope: str) -> list[tuple]:
    """(pk, type, id, deleted, key scope) of every resource whose current version is
    sealed under ``scope``, that ever had a version sealed under it, or that lies in
    ``patient_id``'s compartment and in no other patient's."""
    ever_sealed = select(versions.c.res_type, versions.c.res_id).where(
        versions.c.key_scope == scope
    )
    in_compartment = select(compartments.c.resource_pk).where(
        compartments.c.patient_id == patient_id
    )
    shared = select(compartments.c.resource_pk).where(compartments.c.patient_id != patient_id)
    sealed_pairs = {tuple(r) for r in conn.execute(ever_sealed.distinct())}
    query = select(
        resources.c.pk,
        resources.c.res_type,
        resources.c.res_id,
        resources.c.deleted,
        resources.c.key_scope,
    ).where(
        or_(
            resources.c.key_scope == scope,
            resources.c.pk.in_(in_compartment) & resources.c.pk.not_in(shared),
        )
        | resources.c.pk.in_(_pks_of(conn, sealed_pairs))
    )
    return [tuple(r) for r in conn.execute(query)]


def _pks_of(conn, pairs: set[tuple[str, str]]) -> list[int]:
    pks: list[int] = []
    by_type: dict[str, list[str]] = {}
    for res_type, res_id in pairs:
        by_type.setdefault(res_type, []).append(res_id)
    for res_type, res_ids in by_type.items():
        for start in range(0, len(res_ids), _CHUNK):
            chunk = res_ids[start : start + _CHUNK]
            query = select(resources.c.pk).where(
                resources.c.res_type == res_type, resources.c.res_id.in_(chunk)
            )
            pks.extend(r[0] for r in conn.execute(query))
    return pks


def drop_index_rows(conn, pks: list[int]) -> None:
    """Remove the blind-index (``sidx_*``) and compartment rows of ``pks``."""
    for start in range(0, len(pks), _CHUNK):
        chunk = pks[start : start + _CHUNK]
        for table in ALL_TABLES:
            conn.execute(delete(table).where(table.c.resource_pk.in_(chunk)))
        conn.execute(delete(compartments).where(compartments.c.resource_pk.in_(chunk)))


def leave_compartment(conn, patient_id: str, *, keep_type: str, keep_scope: str) -> None:
    """Take every resource out of ``patient_id``'s compartment except those of
    ``keep_type`` sealed under ``keep_scope`` (the node's AuditEvents: the access log
    outlives the record)."""
    kept = select(resources.c.pk).where(
        resources.c.res_type == keep_type, resources.c.key_scope == keep_scope
    )
    conn.execute(
        delete(compartments).where(
            compartments.c.patient_id == patient_id, compartments.c.resource_pk.not_in(kept)
        )
    )


# -- keys released to other nodes ($share) ------------------------------------------------
def _released_keys():
    from consent.tables import released_keys  # consent's own metadata

    return released_keys


def insert_released_key(conn, share_id: str, row: dict) -> None:
    """Record a data key wrapped for another node (``row``: the released_keys columns)."""
    released_keys = _released_keys()
    conn.execute(released_keys.insert().values(share_id=share_id, **row))


def forget_released_keys(
    conn, *, patient_id: str | None = None, consent_ids: Collection[str] | None = None
) -> None:
    """Null the wrapped keys released for ``patient_id`` or for the Consents
    ``consent_ids`` and stamp their revocation; the rows stay as the record."""
    released_keys = _released_keys()
    if patient_id is not None:
        where = released_keys.c.patient_id == patient_id
    elif consent_ids is not None:
        where = released_keys.c.consent_id.in_(sorted(consent_ids))
    else:
        raise ValueError("forget_released_keys needs a patient id or Consent ids")
    conn.execute(update(released_keys).where(where).values(wrapped=None, revoked_us=ids.now_us()))


# -- data keys ----------------------------------------------------------------------------
def scrub_data_key(engine, scope: str) -> tuple[bool, bool]:
    """Delete the wrapped data key of ``scope`` so it leaves no copy in the database
    files, best effort. Returns (deleted here, scrubbed from the files).

    SQLite: deleted with ``secure_delete`` (the freed cell is zeroed), then a
    TRUNCATE checkpoint moves the rewritten page into the main file and empties the
    WAL. PostgreSQL: ``VACUUM data_keys`` after the key ring deleted the row (call
    again after ``KeyRing.destroy``; see :func:`vacuum_data_keys`)."""
    removed, scrubbed = False, False
    if engine.dialect.name != "sqlite":
        return removed, scrubbed
    try:
        with engine.connect() as conn:
            # PRAGMAs go to the driver connection: they must run outside a transaction.
            raw = conn.connection.driver_connection
            raw.execute("PRAGMA secure_delete=ON")
            try:
                with conn.begin():
                    gone = conn.execute(delete(data_keys).where(data_keys.c.scope == scope))
                    removed = gone.rowcount > 0
                busy = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                scrubbed = busy is not None and busy[0] == 0
            finally:
                raw.execute("PRAGMA secure_delete=OFF")
    except Exception as error:  # the caller falls back to the key ring's plain delete
        log.warning("secure delete of a data key failed: %s", type(error).__name__)
    return removed, scrubbed


def vacuum_data_keys(engine) -> bool:
    """PostgreSQL: ``VACUUM data_keys`` (a deleted key's tuple is then reclaimed).
    Returns whether it ran; never raises (other dialects: False)."""
    if engine.dialect.name != "postgresql":
        return False
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM data_keys")
        return True
    except Exception as error:  # never fail an erasure whose key is already gone
        log.warning("VACUUM after erase failed: %s", type(error).__name__)
        return False


def versions_in_compartment(store, patient_id: str, res_type: str) -> tuple:
    """``((res_id, version_id), ...)`` of the current ``res_type`` resources in
    ``patient_id``'s compartment, by id (no decryption; inside a request's
    transaction, its snapshot). Found by the compartment rows *or* by the patient's
    key scope on the pointer, so that deleting one kind of row does not hide one."""
    in_compartment = select(compartments.c.resource_pk).where(
        compartments.c.patient_id == patient_id
    )
    query = (
        select(resources.c.res_id, resources.c.version_id)
        .where(
            resources.c.res_type == res_type,
            or_(
                resources.c.pk.in_(in_compartment),
                resources.c.key_scope == store.sealer.scope_for(patient_id),
            ),
        )
        .order_by(resources.c.res_id)
    )
    with store.connect() as c:
        return tuple(tuple(row) for row in c.execute(query))


def stored_types(store) -> list[str]:
    """The resource types with at least one current (not deleted) resource: the
    types a search across types needs to ask at all."""
    query = select(resources.c.res_type).where(resources.c.deleted.is_(False)).distinct()
    with store.connect() as c:
        return sorted(row[0] for row in c.execute(query))
