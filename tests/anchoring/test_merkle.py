"""Merkle tree, inclusion proofs and canonicalization."""

from __future__ import annotations

import hashlib
import json
import math
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anchoring.canonical import (
    LEAF_PREFIX,
    NODE_PREFIX,
    CanonicalizationError,
    canonical_bytes,
    leaf_hash,
)
from anchoring.merkle import MerkleTree, audit_path_length, merkle_root
from anchoring.proof import (
    InclusionProof,
    ProofFormatError,
    verify_inclusion,
    verify_resource,
)

hashes = st.binary(min_size=32, max_size=32)
leaf_lists = st.lists(hashes, min_size=1, max_size=70)


def rfc6962_root(leaves: list[bytes]) -> bytes:
    """Independent recursive MTH exactly as written in RFC 6962 section 2.1."""
    n = len(leaves)
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)  # largest power of two < n
    left, right = rfc6962_root(leaves[:k]), rfc6962_root(leaves[k:])
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def test_prefixes_are_distinct_and_documented_hex() -> None:
    assert LEAF_PREFIX.hex() == "504852582d4c4541462d763100"
    assert NODE_PREFIX.hex() == "504852582d4e4f44452d763100"


def test_canonical_strips_only_top_level_meta_and_text() -> None:
    res = {
        "resourceType": "Observation",
        "meta": {"versionId": "3"},
        "text": {"status": "generated", "div": "<div/>"},
        "code": {"text": "Glucose"},
        "id": "o1",
    }
    assert (
        canonical_bytes(res)
        == b'{"code":{"text":"Glucose"},"id":"o1","resourceType":"Observation"}'
    )
    assert leaf_hash(res) == hashlib.sha256(LEAF_PREFIX + canonical_bytes(res)).digest()


def test_canonical_ignores_key_order_and_meta_changes() -> None:
    a = {"resourceType": "Patient", "id": "p", "active": True, "meta": {"versionId": "1"}}
    b = {
        "meta": {"versionId": "2", "lastUpdated": "2024"},
        "active": True,
        "id": "p",
        "resourceType": "Patient",
    }
    assert leaf_hash(a) == leaf_hash(b)
    assert leaf_hash(a) != leaf_hash({**a, "active": False})


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"id": "x"},
        {"resourceType": 5},
        {"resourceType": "Patient", "x": float("nan")},
    ],
)
def test_canonical_rejects_non_resources(bad: object) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_bytes(bad)  # type: ignore[arg-type]


@given(leaf_lists)
def test_iterative_root_equals_rfc6962_recursive_definition(leaves: list[bytes]) -> None:
    assert MerkleTree(leaves).root == rfc6962_root(leaves)


@given(leaf_lists)
def test_every_leaf_verifies_and_proof_roundtrips_json(leaves: list[bytes]) -> None:
    tree = MerkleTree(leaves)
    for i, leaf in enumerate(leaves):
        proof = tree.proof(i)
        assert verify_inclusion(leaf, proof, tree.root)
        wire = json.loads(json.dumps(proof.to_dict()))
        assert InclusionProof.from_dict(wire) == proof
        assert verify_inclusion(leaf, wire, tree.root)
        assert len(proof.path) == audit_path_length(i, len(leaves))
        assert len(proof.path) <= math.ceil(math.log2(len(leaves)))


def _flip(data: bytes, pos: int, bit: int) -> bytes:
    pos %= len(data)
    return data[:pos] + bytes([data[pos] ^ (1 << bit)]) + data[pos + 1 :]


@given(leaf_lists, st.data())
def test_any_flipped_bit_in_leaf_root_or_path_fails(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = MerkleTree(leaves)
    i = data.draw(st.integers(0, len(leaves) - 1))
    proof, pos, bit = tree.proof(i), data.draw(st.integers(0, 31)), data.draw(st.integers(0, 7))
    assert not verify_inclusion(_flip(leaves[i], pos, bit), proof, tree.root)
    assert not verify_inclusion(leaves[i], proof, _flip(tree.root, pos, bit))
    if proof.path:
        j = data.draw(st.integers(0, len(proof.path) - 1))
        path = list(proof.path)
        path[j] = _flip(path[j], pos, bit)
        bad = InclusionProof(proof.leaf_index, proof.tree_size, tuple(path))
        assert not verify_inclusion(leaves[i], bad, tree.root)


@given(leaf_lists, st.data())
def test_wrong_index_or_truncated_path_fails(leaves: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree(leaves)
    n = len(leaves)
    i = data.draw(st.integers(0, n - 1))
    proof = tree.proof(i)
    other = data.draw(st.integers(0, n + 3).filter(lambda j: j != i))
    if other >= n or leaves[other] != leaves[i]:
        assert not verify_inclusion(leaves[i], InclusionProof(other, n, proof.path), tree.root)
    if proof.path:
        short = InclusionProof(i, n, proof.path[:-1])
        assert not verify_inclusion(leaves[i], short, tree.root)
        longer = InclusionProof(i, n, (*proof.path, proof.path[0]))
        assert not verify_inclusion(leaves[i], longer, tree.root)


def test_tree_size_must_match_the_anchored_leaf_count() -> None:
    # RFC 9162 proofs do not bind the size by themselves: the (0, 3) path also verifies
    # as (0, 4). The anchored leafCount is what pins it, hence the expected_size check.
    leaves = [hashlib.sha256(bytes([k])).digest() for k in range(3)]
    tree = MerkleTree(leaves)
    forged = InclusionProof(0, 4, tree.proof(0).path)
    assert verify_inclusion(leaves[0], forged, tree.root)
    assert not verify_inclusion(leaves[0], forged, tree.root, expected_size=3)
    assert verify_inclusion(leaves[0], tree.proof(0), tree.root, expected_size=3)


@settings(max_examples=200)
@given(
    st.dictionaries(st.text(max_size=5), st.text(max_size=8), max_size=4),
    st.integers(1, 20),
    st.data(),
)
def test_changed_resource_content_fails(extra: dict, n: int, data: st.DataObject) -> None:
    resources = [{"resourceType": "Observation", "id": f"o{k}", **extra} for k in range(n)]
    tree = MerkleTree([leaf_hash(r) for r in resources])
    i = data.draw(st.integers(0, n - 1))
    assert verify_resource(resources[i], tree.proof(i), tree.root)
    changed = {**resources[i], "valueString": data.draw(st.text(max_size=8))}
    assert not verify_resource(changed, tree.proof(i), tree.root)
    # meta/text are excluded by design: changing them must NOT break the proof.
    assert verify_resource({**resources[i], "meta": {"versionId": "9"}}, tree.proof(i), tree.root)


def test_single_leaf_tree_root_is_the_leaf_and_proof_is_empty() -> None:
    leaf = leaf_hash({"resourceType": "Patient", "id": "solo"})
    tree = MerkleTree([leaf])
    assert tree.root == leaf
    assert tree.proof(0) == InclusionProof(0, 1, ())
    assert verify_inclusion(leaf, tree.proof(0), leaf)
    assert not verify_inclusion(leaf, InclusionProof(0, 2, ()), leaf)


def test_leaf_cannot_pose_as_interior_node() -> None:
    a, b = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
    root = merkle_root([a, b])
    # A one-leaf "tree" whose leaf is the root verifies trivially; what must fail is
    # presenting the root as a leaf of a bigger tree built from the same data.
    assert not verify_inclusion(root, InclusionProof(0, 2, (b,)), root)
    # Odd sizes must not duplicate the last leaf (CVE-2012-2459 shape).
    assert merkle_root([a, b, b]) != merkle_root([a, b, b, b])


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {"format": "other", "leaf_index": 0, "tree_size": 1, "path": []},
        {"format": "phrx-merkle-inclusion-v1", "leaf_index": True, "tree_size": 1, "path": []},
        {"format": "phrx-merkle-inclusion-v1", "leaf_index": -1, "tree_size": 1, "path": []},
        {
            "format": "phrx-merkle-inclusion-v1",
            "leaf_index": 0,
            "tree_size": 2,
            "path": ["AB" * 32],
        },
        {
            "format": "phrx-merkle-inclusion-v1",
            "leaf_index": 0,
            "tree_size": 2,
            "path": ["zz" * 32],
        },
        {"format": "phrx-merkle-inclusion-v1", "leaf_index": 0, "tree_size": 2, "path": ["ab"]},
        {"format": "phrx-merkle-inclusion-v1", "leaf_index": 0, "tree_size": 2, "path": "ab"},
    ],
)
def test_malformed_proof_dicts_rejected(bad: object) -> None:
    with pytest.raises(ProofFormatError):
        InclusionProof.from_dict(bad)  # type: ignore[arg-type]
    assert not verify_inclusion(b"\0" * 32, bad, b"\0" * 32)  # type: ignore[arg-type]


def test_tree_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        MerkleTree([])
    with pytest.raises(ValueError):
        MerkleTree([b"short"])
    with pytest.raises(IndexError):
        MerkleTree([b"\0" * 32]).proof(1)


def test_ten_thousand_leaves_tree_and_all_proofs() -> None:
    """A full anchoring batch; its time is in benchmarks/micro.py (phrx bench micro)."""
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(10_000)]
    tree = MerkleTree(leaves)
    proofs = tree.proofs()
    assert tree.root == rfc6962_root(leaves)
    assert len(proofs) == 10_000
    assert all(
        verify_inclusion(leaf, proof, tree.root, expected_size=10_000)
        for leaf, proof in zip(leaves, proofs, strict=True)
    )
    assert not verify_inclusion(leaves[0], proofs[1], tree.root)


MILLION = 1_000_000


@cache
def _uniform_root(size: int) -> bytes:
    """MTH of `size` copies of one leaf; depends only on size, so memoization makes it O(log n)."""
    if size == 1:
        return UNIFORM_LEAF
    k = 1 << ((size - 1).bit_length() - 1)
    return hashlib.sha256(NODE_PREFIX + _uniform_root(k) + _uniform_root(size - k)).digest()


UNIFORM_LEAF = hashlib.sha256(b"uniform").digest()


def _lazy_path(index: int, size: int) -> list[bytes]:
    """RFC 6962 PATH(m, D[n]) over the lazily-defined uniform tree, leaf-first order."""
    if size == 1:
        return []
    k = 1 << ((size - 1).bit_length() - 1)
    if index < k:
        return [*_lazy_path(index, k), _uniform_root(size - k)]
    return [*_lazy_path(index - k, size - k), _uniform_root(k)]


@pytest.mark.parametrize("index", [0, 1, 524_287, 524_288, 999_998, MILLION - 1])
def test_million_leaf_tree_proof_is_logarithmic(index: int) -> None:
    path = _lazy_path(index, MILLION)
    assert len(path) == audit_path_length(index, MILLION)
    assert len(path) <= math.ceil(math.log2(MILLION)) == 20
    proof = InclusionProof(index, MILLION, tuple(path))
    assert verify_inclusion(UNIFORM_LEAF, proof, _uniform_root(MILLION))
    assert len(json.dumps(proof.to_dict())) < 20 * 67 + 120  # hex hashes dominate the size
