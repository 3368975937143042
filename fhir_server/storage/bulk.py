"""Bulk inserts of the store's rows, straight on the driver's executemany.

Used by the Writer and the audit store: the one place that knows which columns
each table's rows carry, in which order.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from operator import itemgetter

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from fhir_server.search.indexer import ROW_FIELDS
from fhir_server.storage import driver_sql
from fhir_server.storage.db import resources

# Built once: compiling a fresh ``insert().values()`` per row costs more than the row.
_INSERT_RESOURCES = insert(resources).returning(resources.c.pk, sort_by_parameter_order=True)
_NEXT_PK = "SELECT COALESCE(MAX(pk), 0) + 1 FROM resources"


def insert_resources(conn: Connection, rows: list[dict]) -> list[int]:
    """Insert new ``resources`` rows (dicts of the columns but ``pk``); their pks, in
    order. Used by the Writer and by the audit store.

    SQLite: this transaction holds the database's write lock, so no other writer
    can take a pk meanwhile; the rows are numbered here, after the largest pk, and
    inserted in one driver executemany -- SQLAlchemy's batched INSERT … RETURNING
    with its order sentinel was a tenth of the time the write lock is held.
    PostgreSQL: writers run concurrently, so the sequence numbers them (RETURNING)."""
    if conn.dialect.name != "sqlite":
        return [r[0] for r in conn.execute(_INSERT_RESOURCES, rows)]
    with driver_sql.cursor(conn.engine, conn) as cursor:
        first = cursor.execute(_NEXT_PK).fetchone()[0]
        pks = list(range(first, first + len(rows)))
        cursor.executemany(
            insert_sql(resources.name, "?"),
            [(pk, *_RESOURCE_VALUES(r)) for pk, r in zip(pks, rows, strict=True)],
        )
    return pks


# Columns the writer fills, per table (indexer.index_rows yields all but resource_pk;
# the tables' own keys -- but the pk of ``resources`` rows numbered under SQLite's
# write lock (insert_resources) -- and the journal's batch columns are left to the
# database).
ROW_COLUMNS = {
    "resources": (
        "pk",
        "res_type",
        "res_id",
        "version_id",
        "last_updated_us",
        "deleted",
        "key_scope",
        "head",
    ),
    "resource_versions": (
        "res_type",
        "res_id",
        "version_id",
        "last_updated_us",
        "deleted",
        "method",
        "key_scope",
        "sealed",
        "leaf",
        "link",
    ),
    "anchor_journal": ("res_type", "res_id", "version_id", "leaf", "created_us"),
    **{name: ("resource_pk", *fields) for name, fields in ROW_FIELDS.items()},
    "resource_compartments": ("resource_pk", "patient_id"),
}


# A resources row dict -> its values after pk, in ROW_COLUMNS order.
_RESOURCE_VALUES = itemgetter(*ROW_COLUMNS["resources"][1:])


@cache
def insert_sql(table_name: str, marker: str) -> str:
    """``INSERT`` of the :data:`ROW_COLUMNS` of ``table_name`` in the driver's
    paramstyle (``marker``: ``?`` or ``%s``)."""
    columns = ROW_COLUMNS[table_name]
    # Table and column names come from the constant above, never from input.
    return (
        f"INSERT INTO {table_name} ({', '.join(columns)}) "  # noqa: S608
        f"VALUES ({', '.join(marker for _ in columns)})"
    )


def index_row_tuples(pk: int, tables: dict[str, list[tuple]]) -> Iterator[tuple[str, list[tuple]]]:
    """``(table name, rows as tuples in ROW_COLUMNS order)`` of ``index_rows`` output."""
    for name, rows in tables.items():
        yield name, [(pk, *row) for row in rows]


def bulk_insert(conn: Connection, table_name: str, rows: list[tuple]) -> None:
    """executemany straight on the driver cursor, within the same transaction.

    Index rows are plain ints, strings and bytes that need no SQLAlchemy type
    processing; skipping its per-row parameter handling (and building tuples,
    not dicts) halves the cost of storing tens of thousands of blind-index rows
    per Bundle.
    """
    with driver_sql.cursor(conn.engine, conn) as cursor:
        cursor.executemany(insert_sql(table_name, driver_sql.marker(conn.dialect)), rows)
