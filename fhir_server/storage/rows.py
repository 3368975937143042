"""Stored versions as rows, before decryption: the columns every read selects."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_

from fhir_server.storage.db import resources, versions


@dataclass(frozen=True)
class VersionRow:
    """One stored version, before decryption."""

    res_type: str
    res_id: str
    version_id: int
    last_updated_us: int
    deleted: bool
    method: str
    key_scope: str
    sealed: bytes | None
    leaf: bytes | None = None
    link: bytes | None = None  # version chain link (vault.version_chain)
    head: bytes | None = None  # the resource's head MAC, on current-version rows only


VERSION_COLUMNS = (
    versions.c.res_type,
    versions.c.res_id,
    versions.c.version_id,
    versions.c.last_updated_us,
    versions.c.deleted,
    versions.c.method,
    versions.c.key_scope,
    versions.c.sealed,
    versions.c.leaf,
    versions.c.link,
)

# The version row a ``resources`` pointer names (SQLAlchemy; CURRENT_VERSION below is
# the same join written for the driver).
CURRENT_VERSION_JOIN = and_(
    versions.c.res_type == resources.c.res_type,
    versions.c.res_id == resources.c.res_id,
    versions.c.version_id == resources.c.version_id,
)

# The pointer's own type, id and version, then the version row's columns: LEFT JOIN,
# so a pointer whose version row was deleted in the database reads as a row without
# a link -- failing the head check (an integrity failure) instead of looking absent.
# Column names from the constant above, never from input.
CURRENT_VERSION = (
    "SELECT r.res_type, r.res_id, r.version_id, "  # noqa: S608
    f"{', '.join(f'v.{c.name}' for c in VERSION_COLUMNS[3:])}, r.head "
    f"FROM {resources.name} r LEFT JOIN {versions.name} v ON v.res_type = r.res_type "
    "AND v.res_id = r.res_id AND v.version_id = r.version_id "
    "WHERE r.res_type = ? AND r.res_id = ?"
)


def version_row(row: tuple) -> VersionRow:
    """A VersionRow of a driver row of :data:`VERSION_COLUMNS` (sqlite3 returns
    booleans as 0 / 1)."""
    res_type, res_id, version_id, updated, deleted, *rest = row
    return VersionRow(res_type, res_id, version_id, updated, bool(deleted), *rest)
