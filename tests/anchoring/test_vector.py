"""The worked test vector in docs/anchoring.md is what the code computes."""

from __future__ import annotations

import json
from pathlib import Path

from anchoring.canonical import canonical_bytes, leaf_hash, node_hash
from anchoring.merkle import MerkleTree
from anchoring.proof import verify_resource

DOC = Path(__file__).resolve().parents[2] / "docs" / "anchoring.md"
LEAVES = [
    "2e085ae3e26093925306ab0403a7d7a185efa281ac5e0a9bd0a336dc617e5c5c",
    "22801f0c51573611a64d9acae3828bfdb08b046657cc39afd5e7b6bed3394bc1",
    "bc1af6df1d6810ec34e46ff7c93937578df37316ecf14f207cca83341814c044",
]
INNER = "d6db81a11303875cd8155d5876a31f3793d2b43c002f0e5904b3cea5890309f8"
ROOT = "41b03f6fa188564b14257c041666c91a04570269f50adbd588b86aeb6f56fc94"


def _doc_resources() -> list[dict]:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("Resources, in leaf order:")[1].split("```json")[1].split("```")[0]
    return [json.loads(line) for line in block.strip().splitlines()]


def test_vector_from_the_spec() -> None:
    resources = _doc_resources()
    assert [leaf_hash(r).hex() for r in resources] == LEAVES
    assert canonical_bytes(resources[0]).decode().startswith('{"active":true,"id":"p1"')
    leaves = [bytes.fromhex(h) for h in LEAVES]
    assert node_hash(leaves[0], leaves[1]).hex() == INNER
    tree = MerkleTree(leaves)
    assert tree.root.hex() == ROOT
    assert tree.proof(2).to_dict()["path"] == [INNER]
    assert tree.proof(1).to_dict()["path"] == [LEAVES[0], LEAVES[2]]
    assert verify_resource(resources[1], tree.proof(1), tree.root, expected_size=3)


def test_spec_states_every_vector_value() -> None:
    text = DOC.read_text(encoding="utf-8")
    for value in [*LEAVES, INNER, ROOT, "504852582d4c4541462d763100", "504852582d4e4f44452d763100"]:
        assert value in text
