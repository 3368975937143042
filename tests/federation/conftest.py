"""A three-country network (one anvil, TW / PH / TH nodes on 127.0.0.2-4), shared by
the federation tests of a module."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import pytest  # noqa: E402

from anchoring.devchain import anvil_available  # noqa: E402


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    if not anvil_available():
        pytest.skip("anvil is not installed (npm ci): no chain for the federation")
    from fhir_server.demo.network import Network

    net = Network(tmp_path_factory.mktemp("federation")).start()
    try:
        yield net
    finally:
        net.close()
