"""Batch life cycle: lease owners, claim, take-over, send, failure and completion.

See ``anchoring.journal`` for the life of a leaf.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass, replace

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine

from anchoring.journal_tables import ANCHORED, CLAIMED, SENT, batches, journal, now_us, proofs
from anchoring.merkle import MerkleTree


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
        # Thousands of rows: one executemany on the driver (no Core statement per row).
        conn.exec_driver_sql(
            _in_style(conn.dialect, _CLAIM_LEAF),
            [(batch_id, i, r.seq) for i, r in enumerate(rows)],
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
    """Store the anchor and every leaf's audit path; False if the batch was already complete.

    The leaves of a claimed batch no longer change, so the tree and every audit path
    are computed before the write transaction: it only stores them (on SQLite every
    other writer of the node, reads included, waits while it runs)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(journal.c.seq, journal.c.leaf)
            .where(journal.c.batch_id == batch.batch_id)
            .order_by(journal.c.leaf_index)
        ).all()
    tree = MerkleTree([bytes(row.leaf) for row in rows])
    if tree.root != batch.root or len(rows) != batch.leaf_count:
        raise RuntimeError(f"batch {batch.batch_id} changed after it was claimed")
    proof_rows = [
        (row.seq, batch.batch_id, json.dumps([h.hex() for h in tree.proof(i).path]))
        for i, row in enumerate(rows)
    ]
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
        conn.exec_driver_sql(_in_style(conn.dialect, _INSERT_PROOF), proof_rows)
    return True


def _in_style(dialect, statement: str) -> str:
    """``statement`` (written with ``?``) in the driver's parameter style."""
    return statement if dialect.paramstyle == "qmark" else statement.replace("?", "%s")


# Table names from the table objects, never from input.
_INSERT_PROOF = f"INSERT INTO {proofs.name} (journal_seq, batch_id, path) VALUES (?, ?, ?)"  # noqa: S608
_CLAIM_LEAF = (
    f"UPDATE {journal.name} SET batch_id = ?, leaf_index = ? "  # noqa: S608
    "WHERE seq = ? AND batch_id IS NULL"
)
