"""Defaults of the anchoring batcher, shared by the CLI, the node config and the batcher.

``BATCH_LEAVES``: the most leaves one batch (one Merkle tree, one transaction) takes.
A batch waits for its block, so a node anchors at most ``BATCH_LEAVES`` per block
period: on Besu QBFT (2 s blocks) 1,000 leaves a batch kept up with 500 writes/s,
below what one node ingests (3,000+/s here), and the backlog grew. 5,000 keeps up
with 2,500/s on such a chain; the audit paths grow by two or three hashes. On the dev
chain, where each transaction mines at once, it also meant a fifth as many batches
during the ingest benchmark, whose per-batch chain calls cost ~10% of the run's CPU:
ingest +10% (4 interleaved runs each).
``INTERVAL_S``: a batch is also claimed once its oldest leaf waited this long.
"""

BATCH_LEAVES = 5000
INTERVAL_S = 2.0
