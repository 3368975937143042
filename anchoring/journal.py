"""The durable anchoring journal: one row per stored resource version, batches, proofs.

A write inserts its journal row in the same database transaction as the version row
(see ``fhir_server.storage.writer``), so a committed version always has a leaf waiting
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

Tables and the write live in ``journal_tables``, the batch life cycle in ``journal_batches``,
reads in ``journal_reads``; this module re-exports them (importing it registers the tables).
"""

from anchoring.journal_batches import (
    AnchorInfo,
    Batch,
    Pending,
    claim_batch,
    complete,
    mark_sent,
    new_owner,
    owner_is_dead,
    pending,
    record_failure,
    release,
    renew,
    unfinished,
)
from anchoring.journal_reads import (
    VersionAnchor,
    anchor_at,
    batch_info,
    counts,
    version_anchor,
    version_anchors,
)
from anchoring.journal_tables import (
    ANCHORED,
    CLAIMED,
    SENT,
    batches,
    journal,
    now_us,
    proofs,
)

__all__ = [
    "ANCHORED",
    "CLAIMED",
    "SENT",
    "AnchorInfo",
    "Batch",
    "Pending",
    "VersionAnchor",
    "anchor_at",
    "batch_info",
    "batches",
    "claim_batch",
    "complete",
    "counts",
    "journal",
    "mark_sent",
    "new_owner",
    "now_us",
    "owner_is_dead",
    "pending",
    "proofs",
    "record_failure",
    "release",
    "renew",
    "unfinished",
    "version_anchor",
    "version_anchors",
]
