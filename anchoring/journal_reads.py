"""Read side of the anchoring journal: per-version anchors with proofs, batch info, counts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Engine

from anchoring.journal_tables import ANCHORED, CLAIMED, SENT, batches, journal, proofs
from anchoring.proof import InclusionProof


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


def anchor_at(engine: Engine, batch_prefix: str, leaf_index: int) -> VersionAnchor | None:
    """The version at ``leaf_index`` of the one batch whose id starts with
    ``batch_prefix``: what a Provenance id names (:func:`anchoring.provenance.provenance_id`)."""
    query = _read_query().where(
        journal.c.batch_id.startswith(batch_prefix, autoescape=True),
        journal.c.leaf_index == leaf_index,
    )
    with engine.connect() as conn:
        rows = conn.execute(query.limit(2)).all()
    return _version_anchor(rows[0]) if len(rows) == 1 else None


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
