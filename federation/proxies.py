"""Proxy patients at a reading node: the local stand-in for a patient whose records
stay at their home node.

Flask-free; owns the ``remote_patients`` table. A row says: proxy id P at this node
stands for patient X at the home node H (country, FHIR base), under the home node's
Consent C, received by clinician U of this node (from a share link). Nothing of the
patient's record is stored here: every read of P is fetched from H, decided there by
C, and verified against the chain here.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, MetaData, String, Table, insert, select

METADATA = MetaData()
remote_patients = Table(
    "remote_patients",
    METADATA,
    Column("proxy_id", String(64), primary_key=True),
    Column("home_country", String(2), nullable=False),
    Column("home_base", String(256), nullable=False),
    Column("home_patient", String(64), nullable=False),
    Column("consent", String(64), nullable=False),
    Column("holder", String(128), nullable=False),  # fhirUser of the receiving clinician
    Column("expires_s", BigInteger),  # the Consent period's end, if it has one
    Column("created_us", BigInteger, nullable=False),
)
PROXY_PREFIX = "x-"  # proxy ids never collide with this node's own patients' ids


@dataclass(frozen=True)
class RemotePatient:
    proxy_id: str
    home_country: str
    home_base: str
    home_patient: str
    consent: str
    holder: str
    expires_s: int | None


def is_proxy_id(res_id: str) -> bool:
    return isinstance(res_id, str) and res_id.startswith(PROXY_PREFIX)


class ProxyStore:
    def __init__(self, engine) -> None:
        self.engine = engine

    def add(
        self,
        *,
        home_country: str,
        home_base: str,
        home_patient: str,
        consent: str,
        holder: str,
        expires_s: int | None,
    ) -> RemotePatient:
        """The proxy of this (home patient, holder) pair: reused when it exists."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(remote_patients).where(
                    remote_patients.c.home_base == home_base,
                    remote_patients.c.home_patient == home_patient,
                    remote_patients.c.holder == holder,
                )
            ).first()
            values = {
                "home_country": home_country,
                "home_base": home_base,
                "home_patient": home_patient,
                "consent": consent,
                "holder": holder,
                "expires_s": expires_s,
            }
            if row is not None:
                conn.execute(
                    remote_patients.update()
                    .where(remote_patients.c.proxy_id == row.proxy_id)
                    .values(consent=consent, expires_s=expires_s)
                )
                return RemotePatient(row.proxy_id, **values)
            proxy_id = PROXY_PREFIX + secrets.token_hex(16)
            conn.execute(
                insert(remote_patients).values(
                    proxy_id=proxy_id, created_us=time.time_ns() // 1000, **values
                )
            )
        return RemotePatient(proxy_id, **values)

    def get(self, proxy_id: str) -> RemotePatient | None:
        if not is_proxy_id(proxy_id) or len(proxy_id) > 64:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                select(remote_patients).where(remote_patients.c.proxy_id == proxy_id)
            ).first()
        if row is None:
            return None
        return RemotePatient(
            row.proxy_id,
            row.home_country,
            row.home_base,
            row.home_patient,
            row.consent,
            row.holder,
            row.expires_s,
        )
