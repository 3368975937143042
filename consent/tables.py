"""Keys released to other nodes by ``$share`` (consent's own ``metadata``).

One row per (share, recipient node): the patient's data key wrapped for the
recipient node's encryption public key (:mod:`vault.release`), bound to a context
naming the scope, the Consent and the recipient. Revoking the share (or erasing
the patient) nulls ``wrapped`` and stamps ``revoked_us``; the row stays as a
record of what was released to whom and when. Only random ids, country codes,
key thumbprints and ciphertext are stored.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, LargeBinary, MetaData, String, Table

# Consent's own tables; the node creates them with its schema (create_schema).
metadata = MetaData()

released_keys = Table(
    "released_keys",
    metadata,
    Column("share_id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("consent_id", String(64), nullable=False),
    Column("recipient_node", String(16), nullable=False),  # country code of the node
    Column("recipient_kid", String(128), nullable=False),  # JWK thumbprint of its key
    Column("key_scope", String(80), nullable=False),
    Column("wrapped", LargeBinary, nullable=True),  # None once revoked / erased
    Column("created_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger, nullable=True),
    Index("ix_released_keys_patient", "patient_id"),
    Index("ix_released_keys_consent", "consent_id"),
)
