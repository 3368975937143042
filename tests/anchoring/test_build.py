"""The committed contract artifacts are exactly what the pinned compiler produces."""

from __future__ import annotations

import pytest

from anchoring.contracts.build import (
    ARTIFACTS,
    compile_contracts,
    load_artifacts,
    render,
    solc_available,
)


def test_committed_artifacts_are_complete() -> None:
    artifacts = load_artifacts()
    assert artifacts["compiler"].startswith("soljson-v0.8.37+commit.")
    for name in ("AnchorRegistry", "AuthorityRegistry"):
        assert artifacts[name]["bytecode"].startswith("0x60")
        names = {item.get("name") for item in artifacts[name]["abi"]}
        assert {"AnchorRegistry": {"anchor", "getAnchor", "Anchored"}}.get(name, set()) <= names
    registry = {i.get("name") for i in artifacts["AuthorityRegistry"]["abi"]}
    assert {"getValidators", "isAuthority", "authorityOf", "vote"} <= registry


@pytest.mark.skipif(not solc_available(), reason="node or node_modules/solc missing (npm ci)")
def test_recompiling_reproduces_committed_artifacts_byte_for_byte() -> None:
    assert render(compile_contracts()) == ARTIFACTS.read_text()
