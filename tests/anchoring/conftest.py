"""Shared fixtures for anchoring tests."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# `make test` installs the project editable; plain `.venv/bin/pytest` on a fresh checkout
# does not put the repo root on sys.path (tests/ has no __init__.py), so add it here.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import pytest  # noqa: E402 - after the sys.path fix above
from web3 import EthereumTesterProvider, Web3  # noqa: E402

from anchoring.chain import ChainClient, Deployment  # noqa: E402


@pytest.fixture
def w3() -> Web3:
    return Web3(EthereumTesterProvider())


@pytest.fixture
def keys(w3: Web3) -> list[str]:
    """Pre-funded eth-tester accounts; index 0 deploys."""
    return [k.to_hex() for k in w3.provider.ethereum_tester.backend.account_keys]


@pytest.fixture
def deployment(w3: Web3, keys: list[str]) -> Deployment:
    client = ChainClient(w3, keys[0])
    return client.deploy_contracts("DE", "https://de.example/fhir", '{"kty":"EC"}', b"de-enc")


@pytest.fixture
def clients(w3: Web3, keys: list[str], deployment: Deployment) -> list[ChainClient]:
    """One client per funded account; only clients[0] (DE) is an authority at first."""
    return [ChainClient(w3, key, deployment=deployment) for key in keys]
