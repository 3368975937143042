"""RFC 7523 section 3 item 7: each client assertion ``jti`` is accepted once."""

from __future__ import annotations

from sqlalchemy import delete, insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from fhir_server import ids
from fhir_server.smart.tables import assertion_jtis


class AssertionReplayCache:
    def __init__(self, engine: Engine):
        self.engine = engine

    def first_use(self, client_id: str, jti: str, expires_s: int) -> bool:
        """Record (client, jti) until the assertion expires; False if seen before."""
        now = ids.now_us()
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(assertion_jtis).where(assertion_jtis.c.expires_us < now))
                conn.execute(
                    insert(assertion_jtis).values(
                        client_id=client_id, jti=jti, expires_us=(expires_s + 60) * 10**6
                    )
                )
        except IntegrityError:
            return False
        return True
