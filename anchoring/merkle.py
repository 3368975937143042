"""RFC 6962 / RFC 9162 Merkle tree over an ordered list of leaf hashes.

RFC 6962 defines MTH recursively (split at the largest power of two < n). The same
tree is obtained bottom-up by pairing nodes level by level and carrying an unpaired
last node up unchanged (never duplicating it, which would allow second-preimage
tricks like CVE-2012-2459). The bottom-up form is iterative and fast.
"""

from __future__ import annotations

from collections.abc import Sequence

from anchoring.canonical import node_hash
from anchoring.proof import HASH_LEN, InclusionProof

# Anchored leaf counts are uint32 on chain.
MAX_LEAVES = 2**32 - 1


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        paired.append(level[-1])  # carried up, not duplicated
    return paired


class MerkleTree:
    """Immutable tree; keeps every level so that proofs are O(log n) lookups."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        if len(leaves) > MAX_LEAVES:
            raise ValueError("too many leaves for a uint32 leaf count")
        for leaf in leaves:
            if not isinstance(leaf, bytes) or len(leaf) != HASH_LEN:
                raise ValueError("every leaf must be a 32-byte hash")
        levels = [list(leaves)]
        while len(levels[-1]) > 1:
            levels.append(_next_level(levels[-1]))
        self._levels = levels

    def __len__(self) -> int:
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        return self._levels[-1][0]

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index]

    def proof(self, index: int) -> InclusionProof:
        """Audit path of leaf ``index``, ordered from the leaf's sibling up to the root."""
        size = len(self)
        if not 0 <= index < size:
            raise IndexError(f"leaf index {index} outside tree of size {size}")
        path = []
        i = index
        for level in self._levels[:-1]:
            sibling = i ^ 1
            if sibling < len(level):  # no sibling: the node is carried up, adds no hash
                path.append(level[sibling])
            i >>= 1
        return InclusionProof(leaf_index=index, tree_size=size, path=tuple(path))

    def proofs(self) -> list[InclusionProof]:
        return [self.proof(i) for i in range(len(self))]


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    return MerkleTree(leaves).root


def audit_path_length(index: int, tree_size: int) -> int:
    """Number of hashes in the audit path of ``index``, computed without building a tree."""
    if not 0 <= index < tree_size:
        raise IndexError("leaf index outside tree")
    length, i, width = 0, index, tree_size
    while width > 1:
        if (i ^ 1) < width:
            length += 1
        i >>= 1
        width = (width + 1) // 2
    return length
