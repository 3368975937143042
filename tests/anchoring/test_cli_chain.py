"""`phrx verify FILE --chain URL` (offline, anvil only), `phrx chain authorities`,
`phrx chain dev`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from anchoring.devchain import anvil_available, rpc_ready
from anchoring.node_chain import (
    NodeChain,
    load_deployment,
    open_shared_dev_chain,
    start_dev_chain,
)
from fhir_server.cli import main
from tests.smart_tokens import authorize, backend_token

pytestmark = pytest.mark.skipif(not anvil_available(), reason="node_modules/.bin/anvil missing")
JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def anvil(tmp_path: Path):
    dev = start_dev_chain(tmp_path / "anvil")
    try:
        yield dev
    finally:
        dev.stop()


def _bundle(tmp_path: Path, url: str) -> dict:
    from fhir_server.app import create_app
    from fhir_server.node import Node, NodeConfig

    node = Node(
        NodeConfig(data_dir=tmp_path / "data", chain=url, anchor_worker=False, anchor_country="PH")
    )
    try:
        app = create_app({"NODE": node, "TESTING": True})
        api = authorize(app.test_client(), backend_token(app))
        for family in ("Santos", "Reyes"):
            body = {"resourceType": "Patient", "name": [{"family": family}]}
            assert api.post("/fhir/Patient", json=body, headers=JSON).status_code == 201
        assert api.post("/fhir/$anchor").status_code == 200
        return api.get("/fhir/Patient?_anchor-provenance=true").json
    finally:
        node.close()


def test_offline_verify_of_a_downloaded_bundle(tmp_path: Path, anvil) -> None:
    bundle = _bundle(tmp_path, anvil.url)
    file = tmp_path / "download.json"
    file.write_text(json.dumps(bundle))
    runner = CliRunner()
    ok = runner.invoke(main, ["verify", str(file), "--chain", anvil.url])
    assert ok.exit_code == 0, ok.output
    assert "2/2 verified" in ok.output and "authority PH" in ok.output
    patient = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["resource"]["gender"] = "other"
    file.write_text(json.dumps(bundle))
    bad = runner.invoke(main, ["verify", str(file), "--chain", anvil.url])
    assert bad.exit_code == 1 and "1/2 verified" in bad.output
    assert "hash mismatch" in bad.output


def test_authorities_list(tmp_path: Path, anvil) -> None:
    data = tmp_path / "gov"
    chain = NodeChain(data, anvil.url, country="SG").open()
    chain.close()
    result = CliRunner().invoke(
        main, ["chain", "authorities", "list", "--data-dir", str(data), "--chain", anvil.url]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("SG  0x")


def test_chain_dev_persists_state_and_stops(tmp_path: Path) -> None:
    data = tmp_path / "dev"
    argv = [
        sys.executable,
        "-c",
        "from fhir_server.cli import main; main()",
        "chain",
        "dev",
        "--data-dir",
        str(data),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("dev chain http://127.0.0.1:"), first
        url = first.split()[2]
        assert rpc_ready(url)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert not rpc_ready(url)  # anvil stopped with the command
    assert (data / "chain" / "anvil-state.json").is_file()
    deployment = load_deployment(data)
    # a restart keeps the deployment; a node pointed at the chain finds it, no flags
    dev, again = open_shared_dev_chain(data)
    try:
        assert again.anchor_registry == deployment["anchor_registry"]
        node = NodeChain(tmp_path / "node", dev.url, country="TW").open()
        assert node.deployment == again
        assert node.client().authorities() == []  # open: the first join founds it
        assert oct((tmp_path / "node" / "keys" / "chain.key").stat().st_mode & 0o777) == "0o600"
    finally:
        dev.stop()
