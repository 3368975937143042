"""Wrapped data keys in the database (``data_keys`` table), for :class:`vault.keyring.KeyRing`.

Each call runs in its own short transaction: keys are created before a write
transaction opens (see ``ResourceStore.prepare_keys``), never inside one.

Every deletion (crypto-shredding) also changes a generation marker in
``node_settings``, in the same transaction, so the key rings of other worker
processes notice with one cheap read per request (``KeyRing.refresh``) and drop
the key they cached.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from fhir_server import ids
from fhir_server.storage import driver_sql
from fhir_server.storage.db import SETTING_VALUE, data_keys, ensure_setting, node_settings

GENERATION_SETTING = "data_key_generation"


class SqlDataKeyStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def get(self, scope: str) -> bytes | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(data_keys.c.wrapped).where(data_keys.c.scope == scope)
            ).first()
        return bytes(row[0]) if row else None

    def put(self, scope: str, wrapped: bytes) -> None:
        """Store a new wrapped key; if another process won the race, keep theirs.

        The KeyRing re-reads after put, so every process ends up with the one
        stored key for a scope.
        """
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(data_keys).values(scope=scope, wrapped=wrapped, created_us=ids.now_us())
                )
        except IntegrityError:
            pass

    def delete(self, scope: str) -> bool:
        """Delete the wrapped key and mark the deletion (always, even when another
        path deleted the row already: the marker is what other processes watch)."""
        self._ensure_generation_row()
        with self.engine.begin() as conn:
            result = conn.execute(delete(data_keys).where(data_keys.c.scope == scope))
            conn.execute(
                update(node_settings)
                .where(node_settings.c.name == GENERATION_SETTING)
                .values(value=uuid.uuid4().hex)
            )
        return result.rowcount > 0

    def generation(self, conn: Connection | None = None) -> str:
        """The deletion marker (on ``conn`` when given: inside the caller's transaction)."""
        row = driver_sql.fetch_one(self.engine, SETTING_VALUE, (GENERATION_SETTING,), conn)
        return (row[0] if row else None) or ""

    def _ensure_generation_row(self) -> None:
        ensure_setting(self.engine, GENERATION_SETTING, uuid.uuid4().hex)
