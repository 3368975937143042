"""Search index tables ("blind index"), registered on :data:`db.metadata`.

Nothing in these tables is clear-text PHI (see :mod:`indexer` for the full
design): token, string, uri values and quantity units are stored only as
16-byte keyed HMACs (``vault.blind.BlindIndex``); dates, numbers, quantity
values and reference target (type, id) pairs -- random server ids -- are
stored as such so that ranges can be compared and chains joined in SQL.

Every row carries the clear-text *parameter code* (``code``, ``birthdate``:
schema metadata, not PHI). The resource type is not repeated: rows join to
``resources.pk``; the HMAC domains include the resource type, so equal values
of different types/params never produce the same digest.

Types are portable between SQLite and PostgreSQL: Bytes(16) (BLOB /
BYTEA), BigInteger epoch microseconds (UTC), Double (REAL / DOUBLE PRECISION)
for numbers -- numeric values are compared as IEEE doubles on both back ends
and both sides of a comparison are produced by ``float()`` of the same
decimal text, so exact boundaries (``lt5.4`` vs a stored 5.4) behave alike.

``resource_pk`` references ``resources.pk`` with ON DELETE CASCADE (the
storage layer also deletes rows explicitly by ``resource_pk`` on update).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    text,
)

from fhir_server.storage.db import Bytes, metadata


def _pk_col() -> Column:
    return Column(
        "resource_pk", Integer, ForeignKey("resources.pk", ondelete="CASCADE"), nullable=False
    )


# token, string and uri parameters: one row per distinct (param, digest) of a
# resource. The key IS the look-up index: on SQLite the table is stored WITHOUT
# ROWID, so a row is one B-tree entry sorted for search (plus the by-resource
# index), not a rowid row plus a copy of it in a covering index -- a third less
# to write per row, on ingest and on every AuditEvent.
sidx_hash = Table(
    "sidx_hash",
    metadata,
    _pk_col(),
    Column("param", String(64), nullable=False),
    Column("hash", Bytes(16), nullable=False),
    PrimaryKeyConstraint("param", "hash", "resource_pk", name="pk_sidx_hash"),
    Index("ix_sidx_hash_pk", "resource_pk"),
    sqlite_with_rowid=False,
)

# date parameters: the implicit range [low, high) in epoch microseconds UTC.
sidx_date = Table(
    "sidx_date",
    metadata,
    _pk_col(),
    Column("param", String(64), nullable=False),
    Column("low", BigInteger, nullable=False),
    Column("high", BigInteger, nullable=False),
    Index("ix_sidx_date_param_low_high", "param", "low", "high"),
    Index("ix_sidx_date_pk", "resource_pk"),
)

# number parameters.
sidx_number = Table(
    "sidx_number",
    metadata,
    _pk_col(),
    Column("param", String(64), nullable=False),
    Column("value", Double, nullable=False),
    Index("ix_sidx_number_param_value", "param", "value"),
    Index("ix_sidx_number_pk", "resource_pk"),
)

# quantity parameters: value in clear, HMAC(system|code) and HMAC(code) / HMAC(unit)
# in one domain so ``value||x`` matches a code or a unit with one digest.
sidx_quantity = Table(
    "sidx_quantity",
    metadata,
    _pk_col(),
    Column("param", String(64), nullable=False),
    Column("value", Double, nullable=False),
    Column("sys_code", Bytes(16), nullable=True),
    Column("code", Bytes(16), nullable=True),
    Column("unit", Bytes(16), nullable=True),
    Index("ix_sidx_quantity_param_value", "param", "value"),
    Index("ix_sidx_quantity_pk", "resource_pk"),
)

# reference parameters: clear (type, id) for relative references, HMAC of any
# other URL (absolute, urn:uuid:, canonical); type kept when it can be parsed.
sidx_ref = Table(
    "sidx_ref",
    metadata,
    _pk_col(),
    Column("param", String(64), nullable=False),
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(64), nullable=True),
    Column("url_hash", Bytes(16), nullable=True),
    Index("ix_sidx_ref_param_target", "param", "target_id", "target_type"),
    # Only absolute / urn / canonical references have a URL digest: NULLs (every
    # relative reference) are never looked up, so they are not indexed.
    Index(
        "ix_sidx_ref_param_url",
        "param",
        "url_hash",
        sqlite_where=text("url_hash IS NOT NULL"),
        postgresql_where=text("url_hash IS NOT NULL"),
    ),
    Index("ix_sidx_ref_pk", "resource_pk"),
)

# search type -> table holding its rows
TABLE_FOR_TYPE = {
    "token": sidx_hash,
    "string": sidx_hash,
    "uri": sidx_hash,
    "date": sidx_date,
    "number": sidx_number,
    "quantity": sidx_quantity,
    "reference": sidx_ref,
}

ALL_TABLES = (sidx_hash, sidx_date, sidx_number, sidx_quantity, sidx_ref)
