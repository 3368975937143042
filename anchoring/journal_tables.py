"""Anchoring journal tables (leaves, batches, audit paths) and the in-transaction write.

See ``anchoring.journal`` for the life of a leaf.
"""

from __future__ import annotations

import time

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# The journal's own tables; the node creates them with its schema (create_schema).
metadata = MetaData()


CLAIMED, SENT, ANCHORED = "claimed", "sent", "anchored"

journal = Table(
    "anchor_journal",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("leaf", LargeBinary(32), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("batch_id", String(64), nullable=True),  # hex of the on-chain bytes32 batch id
    Column("leaf_index", Integer, nullable=True),
    UniqueConstraint("res_type", "res_id", "version_id", name="uq_journal_version"),
    Index("ix_journal_batch", "batch_id", "leaf_index"),
)

batches = Table(
    "anchor_batches",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("root", LargeBinary(32), nullable=False),
    Column("leaf_count", Integer, nullable=False),
    Column("state", String(12), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("lease_until_us", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String(500), nullable=True),
    Column("tx_hash", LargeBinary(32), nullable=True),
    Column("block_number", BigInteger, nullable=True),
    Column("block_time", BigInteger, nullable=True),
    Column("chain_id", BigInteger, nullable=True),
    Column("contract", String(42), nullable=True),
    Column("authority_registry", String(42), nullable=True),
    Column("authority", String(42), nullable=True),
    Column("country", String(2), nullable=True),
    Column("anchored_us", BigInteger, nullable=True),
    Index("ix_batches_state", "state"),
)

# Audit paths, stored once the batch is anchored (JSON list of hex hashes).
proofs = Table(
    "anchor_proofs",
    metadata,
    Column("journal_seq", Integer, primary_key=True),
    Column("batch_id", String(64), nullable=False),
    Column("path", Text, nullable=False),
)


def now_us() -> int:
    return time.time_ns() // 1000
