"""The durable anchoring journal: one row per stored resource version, batches, proofs.

A write inserts its journal row in the same database transaction as the version row
(see ``fhir_server.resources.writer``), so a committed version always has a leaf waiting
to be anchored and a rolled-back one never has.

Life of a leaf::

    anchor_journal.batch_id IS NULL      waiting
    claim_batch()                        batch row 'claimed', leaves get batch_id + leaf_index,
                                         Merkle root fixed (one DB transaction)
    mark_sent()                          tx hash persisted before waiting for the receipt
    complete()                           batch 'anchored' with tx/block/authority, and every
                                         leaf's audit path stored

A batch's membership and root never change once claimed, so a batcher killed at any
point resumes the same batch: it first asks the chain whether the root is already
anchored (crash after the transaction was mined), then waits for a persisted tx hash,
and only then (re)sends. ``AnchorRegistry`` keeps the first record of a root, so even a
resend after a crash between send and ``mark_sent`` cannot anchor a root twice.

Batches are leased to one owner (``host:pid:random``); another batcher takes a batch
over when the lease expired or when the owner is a dead process on this host.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from anchoring.merkle import MerkleTree
from anchoring.proof import InclusionProof
from fhir_server.resources.db import metadata

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


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """True only when ``owner`` is a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:  # Linux; elsewhere: lease expiry only
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


# ---- writes --------------------------------------------------------------------------


def record(
    conn: Connection, res_type: str, res_id: str, version_id: int, leaf: bytes, at_us: int
) -> None:
    """Journal one stored version; call inside the write's transaction."""
    conn.execute(
        insert(journal).values(
            res_type=res_type, res_id=res_id, version_id=version_id, leaf=leaf, created_us=at_us
        )
    )


# ---- batches -------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    batch_id: str
    root: bytes
    leaf_count: int
    state: str
    owner: str
    tx_hash: bytes | None = None
    attempts: int = 0

    @property
    def batch_bytes(self) -> bytes:
        return bytes.fromhex(self.batch_id)


@dataclass(frozen=True)
class Pending:
    """Leaves waiting to be claimed."""

    count: int
    oldest_us: int | None


def pending(engine: Engine) -> Pending:
    with engine.connect() as conn:
        count, oldest = conn.execute(
            select(func.count(), func.min(journal.c.created_us)).where(journal.c.batch_id.is_(None))
        ).one()
    return Pending(count, oldest)


def claim_batch(engine: Engine, owner: str, max_leaves: int, lease_s: float) -> Batch | None:
    """Atomically take up to ``max_leaves`` waiting leaves (oldest first) into a new batch."""
    if max_leaves < 1:
        raise ValueError("max_leaves must be >= 1")
    with engine.begin() as conn:
        query = (
            select(journal.c.seq, journal.c.leaf)
            .where(journal.c.batch_id.is_(None))
            .order_by(journal.c.seq)
            .limit(max_leaves)
        )
        if conn.dialect.name == "postgresql":
            # Concurrent claimers skip each other's rows; SQLite serialises writers anyway.
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        if not rows:
            return None
        tree = MerkleTree([bytes(r.leaf) for r in rows])
        batch_id = os.urandom(32).hex()
        now = now_us()
        conn.execute(
            insert(batches).values(
                batch_id=batch_id,
                root=tree.root,
                leaf_count=len(rows),
                state=CLAIMED,
                owner=owner,
                lease_until_us=now + int(lease_s * 1e6),
                created_us=now,
                attempts=0,
            )
        )
        conn.execute(
            update(journal)
            .where(journal.c.seq == bindparam("s"), journal.c.batch_id.is_(None))
            .values(batch_id=batch_id, leaf_index=bindparam("i")),
            [{"s": r.seq, "i": i} for i, r in enumerate(rows)],
        )
    return Batch(batch_id, tree.root, len(rows), CLAIMED, owner)


def _batch(row) -> Batch:
    return Batch(
        row.batch_id,
        bytes(row.root),
        row.leaf_count,
        row.state,
        row.owner,
        bytes(row.tx_hash) if row.tx_hash is not None else None,
        row.attempts,
    )


def unfinished(engine: Engine, owner: str, lease_s: float) -> list[Batch]:
    """Batches not yet anchored that ``owner`` holds or may take over (now taken), oldest first."""
    now = now_us()
    with engine.connect() as conn:
        rows = conn.execute(
            select(batches).where(batches.c.state != ANCHORED).order_by(batches.c.created_us)
        ).all()
    mine = []
    for row in rows:
        if row.owner != owner:
            if row.lease_until_us > now and not owner_is_dead(row.owner):
                continue
            if not _take_over(engine, row.batch_id, row.owner, owner, lease_s):
                continue
        mine.append(replace(_batch(row), owner=owner))
    return mine


def _take_over(engine: Engine, batch_id: str, old: str, new: str, lease_s: float) -> bool:
    with engine.begin() as conn:
        result = conn.execute(
            update(batches)
            .where(batches.c.batch_id == batch_id, batches.c.owner == old)
            .values(owner=new, lease_until_us=now_us() + int(lease_s * 1e6))
        )
        return result.rowcount == 1


def renew(engine: Engine, batch_id: str, owner: str, lease_s: float) -> bool:
    with engine.begin() as conn:
        result = conn.execute(
            update(batches)
            .where(batches.c.batch_id == batch_id, batches.c.owner == owner)
            .values(lease_until_us=now_us() + int(lease_s * 1e6))
        )
        return result.rowcount == 1


def release(engine: Engine, owner: str) -> None:
    """Give up every lease of ``owner`` (clean shutdown): others may resume at once."""
    with engine.begin() as conn:
        conn.execute(
            update(batches)
            .where(batches.c.owner == owner, batches.c.state != ANCHORED)
            .values(lease_until_us=0)
        )


def batch_leaves(engine: Engine, batch_id: str) -> list[bytes]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(journal.c.leaf)
            .where(journal.c.batch_id == batch_id)
            .order_by(journal.c.leaf_index)
        ).all()
    return [bytes(r.leaf) for r in rows]


def mark_sent(engine: Engine, batch_id: str, owner: str, tx_hash: bytes) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(batches)
            .where(batches.c.batch_id == batch_id, batches.c.owner == owner)
            .values(state=SENT, tx_hash=tx_hash)
        )


def record_failure(engine: Engine, batch_id: str, error: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(batches)
            .where(batches.c.batch_id == batch_id)
            .values(attempts=batches.c.attempts + 1, last_error=error[:500])
        )


@dataclass(frozen=True)
class AnchorInfo:
    tx_hash: bytes
    block_number: int
    block_time: int
    chain_id: int
    contract: str
    authority_registry: str
    authority: str
    country: str


def complete(engine: Engine, batch: Batch, info: AnchorInfo) -> bool:
    """Store the anchor and every leaf's audit path; False if the batch was already complete."""
    leaves = batch_leaves(engine, batch.batch_id)
    tree = MerkleTree(leaves)
    if tree.root != batch.root or len(leaves) != batch.leaf_count:
        raise RuntimeError(f"batch {batch.batch_id} changed after it was claimed")
    with engine.begin() as conn:
        result = conn.execute(
            update(batches)
            .where(batches.c.batch_id == batch.batch_id, batches.c.state != ANCHORED)
            .values(
                state=ANCHORED,
                tx_hash=info.tx_hash,
                block_number=info.block_number,
                block_time=info.block_time,
                chain_id=info.chain_id,
                contract=info.contract,
                authority_registry=info.authority_registry,
                authority=info.authority,
                country=info.country,
                anchored_us=now_us(),
                last_error=None,
            )
        )
        if result.rowcount != 1:
            return False  # someone else completed it; the proofs are already there
        seqs = conn.execute(
            select(journal.c.seq)
            .where(journal.c.batch_id == batch.batch_id)
            .order_by(journal.c.leaf_index)
        ).all()
        conn.execute(
            insert(proofs),
            [
                {
                    "journal_seq": row.seq,
                    "batch_id": batch.batch_id,
                    "path": json.dumps([h.hex() for h in tree.proof(i).path]),
                }
                for i, row in enumerate(seqs)
            ],
        )
    return True


# ---- reads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionAnchor:
    """What the journal knows about one resource version."""

    res_type: str
    res_id: str
    version_id: int
    leaf: bytes
    batch_id: str | None
    leaf_index: int | None
    state: str | None  # None: not yet in a batch
    root: bytes | None = None
    leaf_count: int | None = None
    proof: InclusionProof | None = None
    tx_hash: bytes | None = None
    block_number: int | None = None
    block_time: int | None = None
    chain_id: int | None = None
    contract: str | None = None
    authority_registry: str | None = None
    authority: str | None = None
    country: str | None = None

    @property
    def anchored(self) -> bool:
        return self.state == ANCHORED and self.proof is not None


_READ_COLUMNS = (
    journal.c.res_type,
    journal.c.res_id,
    journal.c.version_id,
    journal.c.leaf,
    journal.c.batch_id,
    journal.c.leaf_index,
    batches.c.state,
    batches.c.root,
    batches.c.leaf_count,
    proofs.c.path,
    batches.c.tx_hash,
    batches.c.block_number,
    batches.c.block_time,
    batches.c.chain_id,
    batches.c.contract,
    batches.c.authority_registry,
    batches.c.authority,
    batches.c.country,
)


def _read_query():
    return select(*_READ_COLUMNS).select_from(
        journal.outerjoin(batches, batches.c.batch_id == journal.c.batch_id).outerjoin(
            proofs, proofs.c.journal_seq == journal.c.seq
        )
    )


def _version_anchor(row) -> VersionAnchor:
    proof = None
    if row.path is not None:
        proof = InclusionProof(
            leaf_index=row.leaf_index,
            tree_size=row.leaf_count,
            path=tuple(bytes.fromhex(h) for h in json.loads(row.path)),
        )
    return VersionAnchor(
        res_type=row.res_type,
        res_id=row.res_id,
        version_id=row.version_id,
        leaf=bytes(row.leaf),
        batch_id=row.batch_id,
        leaf_index=row.leaf_index,
        state=row.state,
        root=bytes(row.root) if row.root is not None else None,
        leaf_count=row.leaf_count,
        proof=proof,
        tx_hash=bytes(row.tx_hash) if row.tx_hash is not None else None,
        block_number=row.block_number,
        block_time=row.block_time,
        chain_id=row.chain_id,
        contract=row.contract,
        authority_registry=row.authority_registry,
        authority=row.authority,
        country=row.country,
    )


def version_anchor(
    engine: Engine, res_type: str, res_id: str, version_id: int
) -> VersionAnchor | None:
    query = _read_query().where(
        journal.c.res_type == res_type,
        journal.c.res_id == res_id,
        journal.c.version_id == version_id,
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return _version_anchor(row) if row else None


def version_anchors(
    engine: Engine, keys: Iterable[tuple[str, str, int]]
) -> dict[tuple[str, str, int], VersionAnchor]:
    """Bulk form of :func:`version_anchor` (for Bundle downloads)."""
    keys = list(dict.fromkeys(keys))
    out: dict[tuple[str, str, int], VersionAnchor] = {}
    with engine.connect() as conn:
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            cond = or_(
                *(
                    and_(
                        journal.c.res_type == t,
                        journal.c.res_id == i,
                        journal.c.version_id == v,
                    )
                    for t, i, v in chunk
                )
            )
            for row in conn.execute(_read_query().where(cond)):
                anchor = _version_anchor(row)
                out[(anchor.res_type, anchor.res_id, anchor.version_id)] = anchor
    return out


def batch_info(engine: Engine, batch_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(select(batches).where(batches.c.batch_id == batch_id)).first()
    return dict(row._mapping) if row else None


def counts(engine: Engine) -> dict[str, int]:
    """Leaves per state: waiting / claimed / sent / anchored."""
    with engine.connect() as conn:
        waiting = conn.execute(
            select(func.count()).select_from(journal).where(journal.c.batch_id.is_(None))
        ).scalar_one()
        rows = conn.execute(
            select(batches.c.state, func.coalesce(func.sum(batches.c.leaf_count), 0)).group_by(
                batches.c.state
            )
        ).all()
    out = {"waiting": waiting, CLAIMED: 0, SENT: 0, ANCHORED: 0}
    out.update({state: int(n) for state, n in rows})
    return out
