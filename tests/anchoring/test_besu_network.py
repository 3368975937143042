"""`phrx chain init-network`: QBFT genesis, keys, configs, and the compose file."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from eth_account import Account

from anchoring.besu import create_address, decode_extra_data, init_network, qbft_extra_data
from anchoring.chain import ChainClient

REPO = Path(__file__).resolve().parents[2]
COUNTRIES = ["TW", "PH", "TH", "SG"]


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("net")
    return out, init_network(COUNTRIES, out, chain_id=2025)


def test_genesis_extra_data_decodes_to_the_validators(network) -> None:
    out, summary = network
    genesis = json.loads((out / "genesis.json").read_text())
    assert genesis["config"]["chainId"] == 2025 and "qbft" in genesis["config"]
    extra = bytes.fromhex(genesis["extraData"][2:])
    validators = decode_extra_data(extra)
    assert validators == [summary["validators"][c]["address"] for c in COUNTRIES]
    assert len(validators) >= 4
    # each validator address is the one of its (0600) node key
    for country, address in zip(COUNTRIES, validators, strict=True):
        key_file = out / "besu" / country / "key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert Account.from_key(bytes.fromhex(key_file.read_text())).address == address
    # the authorities (not the validators) are funded
    funded = {"0x" + a.lower() for a in genesis["alloc"]}
    assert funded == {v["authority"].lower() for v in summary["validators"].values()}
    assert qbft_extra_data(validators) == extra


def test_static_nodes_and_node_configs(network) -> None:
    out, summary = network
    enodes = json.loads((out / "static-nodes.json").read_text())
    assert len(enodes) == 4 and all(e.startswith("enode://") and "@besu-" in e for e in enodes)
    for country in COUNTRIES:
        assert f"besu/{country}/key" in (out / "besu" / country / "config.toml").read_text()
        node = out / "nodes" / country
        key = node / "keys" / "chain.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert (
            Account.from_key(key.read_text().strip()).address
            == (summary["validators"][country]["authority"])
        )
        env = (node / "node.env").read_text()
        assert f"PHRX_COUNTRY={country}" in env and "PHRX_CHAIN=http://besu-" in env
        dep = json.loads((node / "chain" / "deployment.json").read_text())
        assert dep == summary["deployment"]


def test_predicted_contract_addresses_match_a_real_deployment() -> None:
    client = ChainClient.in_process()
    predicted = (create_address(client.address, 0), create_address(client.address, 1))
    deployment = client.deploy_contracts("TW", "https://tw", "{}", b"")
    assert predicted == (deployment.authority_registry, deployment.anchor_registry)


def test_refuses_small_or_bad_networks(tmp_path) -> None:
    with pytest.raises(ValueError, match="at least 4"):
        init_network(["TW", "PH", "TH"], tmp_path)
    with pytest.raises(ValueError, match="alpha-2"):
        init_network(["TW", "PH", "TH", "sg"], tmp_path)


def test_compose_file_passes_docker_compose_config(network) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed (Debian package `docker-compose`)")
    out, _ = network
    env = {**os.environ, "PHRX_NETWORK_DIR": str(out)}
    result = subprocess.run(
        [binary, "-f", str(REPO / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    services = result.stdout
    for country in COUNTRIES:
        for svc in ("besu", "postgres", "node"):
            assert f"{svc}-{country.lower()}:" in services
