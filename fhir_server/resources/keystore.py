"""Wrapped data keys in the database (``data_keys`` table), for :class:`vault.keyring.KeyRing`.

Each call runs in its own short transaction: keys are created before a write
transaction opens (see ``ResourceStore.prepare_keys``), never inside one.
"""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from fhir_server.resources import ids
from fhir_server.resources.db import data_keys


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
        with self.engine.begin() as conn:
            result = conn.execute(delete(data_keys).where(data_keys.c.scope == scope))
        return result.rowcount > 0
