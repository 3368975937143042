"""``phrx chain init-network``: a Hyperledger Besu QBFT network for the PHRX countries.

Validator selection: **block-header** (the validator list lives in the genesis
``extraData`` and changes by ``qbft_proposeValidatorVote``), not contract-based. Reasons:

* consensus stays independent of application contracts: a bug or a stuck proposal in
  ``AuthorityRegistry`` can never halt block production;
* the registry is deployed by the first node like on any other chain (same code path as
  anvil), instead of hand-computed genesis storage that must track every layout change;
* validators (Besu node keys) and anchoring authorities (PHRX chain accounts) are
  different keys with different custody; operators mirror an authority vote with a
  QBFT validator vote (docs/anchoring.md, "Besu QBFT network").

Output layout (``--out DIR``)::

    DIR/genesis.json                 QBFT genesis (extraData = RLP validators), alloc
    DIR/static-nodes.json            enode URLs of all validators
    DIR/network.json                 summary: validators, authorities, predicted contracts
    DIR/besu/<CC>/key                validator node key (hex, 0600)
    DIR/besu/<CC>/config.toml        Besu node config
    DIR/nodes/<CC>/keys/chain.key    PHRX authority account key (0600)
    DIR/nodes/<CC>/chain/deployment.json  predicted contract addresses + deployer
    DIR/nodes/<CC>/node.env          PHRX node settings for docker-compose
"""

from __future__ import annotations

import json
from pathlib import Path

import rlp
from eth_account import Account
from eth_keys import keys as eth_keys
from eth_utils import to_checksum_address

from anchoring.chain import create_address
from anchoring.node_chain import write_private

MIX_HASH_QBFT = "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"
MIN_VALIDATORS = 4  # QBFT tolerates f faults with n >= 3f + 1; f = 1 needs 4
P2P_PORT = 30303
RPC_PORT = 8545


def qbft_extra_data(validators: list[str]) -> bytes:
    """RLP([32-byte vanity, [validators], no vote, round 0, no seals]) (Besu QBFT)."""
    addresses = [bytes.fromhex(v.removeprefix("0x")) for v in validators]
    return rlp.encode([b"\x00" * 32, addresses, [], b"", []])


def decode_extra_data(extra: bytes) -> list[str]:
    vanity, validators, _vote, _round, _seals = rlp.decode(extra)
    if len(vanity) != 32:
        raise ValueError("QBFT extraData vanity must be 32 bytes")
    return [to_checksum_address(v) for v in validators]


def _new_key() -> tuple[str, str, str]:
    """(private key hex without 0x, address, uncompressed public key hex without 04)."""
    account = Account.create()
    private = account.key.hex().removeprefix("0x")
    public = eth_keys.PrivateKey(bytes.fromhex(private)).public_key.to_bytes().hex()
    return private, account.address, public


def _check_countries(countries: list[str]) -> None:
    if len(countries) < MIN_VALIDATORS:
        raise ValueError(f"QBFT needs at least {MIN_VALIDATORS} validators (one per country)")
    if len(set(countries)) != len(countries):
        raise ValueError("each country may appear once")
    for c in countries:
        if len(c) != 2 or not c.isascii() or not c.isalpha() or not c.isupper():
            raise ValueError(f"{c!r} is not an ISO 3166-1 alpha-2 code")


def besu_config(country: str) -> str:
    return "\n".join(
        [
            'data-path="/opt/besu/data"',
            'genesis-file="/opt/besu/network/genesis.json"',
            f'node-private-key-file="/opt/besu/network/besu/{country}/key"',
            'static-nodes-file="/opt/besu/network/static-nodes.json"',
            "discovery-enabled=false",
            f"p2p-port={P2P_PORT}",
            "rpc-http-enabled=true",
            'rpc-http-host="0.0.0.0"',
            f"rpc-http-port={RPC_PORT}",
            'rpc-http-api=["ETH","NET","WEB3","QBFT","TXPOOL"]',
            'host-allowlist=["*"]',
            "min-gas-price=0",
            'logging="INFO"',
            "",
        ]
    )


def init_network(countries: list[str], out: Path, chain_id: int = 2025) -> dict:
    _check_countries(countries)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    validators: dict[str, dict] = {}
    for country in countries:
        v_key, v_addr, v_pub = _new_key()
        a_key, a_addr, _ = _new_key()
        host = f"besu-{country.lower()}"
        validators[country] = {
            "address": v_addr,
            "enode": f"enode://{v_pub}@{host}:{P2P_PORT}",
            "rpc": f"http://{host}:{RPC_PORT}",
            "authority": a_addr,
        }
        besu_dir = out / "besu" / country
        write_private(besu_dir / "key", v_key)
        (besu_dir / "config.toml").write_text(besu_config(country))
        write_private(out / "nodes" / country / "keys" / "chain.key", "0x" + a_key + "\n")
    deployer = validators[countries[0]]["authority"]
    deployment = {
        "chain_id": chain_id,
        "authority_registry": create_address(deployer, 0),
        "anchor_registry": create_address(deployer, 1),
        "deployer": deployer,
    }
    genesis = {
        "config": {
            "chainId": chain_id,
            "homesteadBlock": 0,
            "eip150Block": 0,
            "eip155Block": 0,
            "eip158Block": 0,
            "byzantiumBlock": 0,
            "constantinopleBlock": 0,
            "petersburgBlock": 0,
            "istanbulBlock": 0,
            "berlinBlock": 0,
            "londonBlock": 0,
            "zeroBaseFee": True,
            "qbft": {
                "blockperiodseconds": 2,
                "epochlength": 30000,
                "requesttimeoutseconds": 4,
            },
        },
        "nonce": "0x0",
        "timestamp": "0x0",
        "gasLimit": "0x1fffffffffffff",
        "difficulty": "0x1",
        "mixHash": MIX_HASH_QBFT,
        "coinbase": "0x0000000000000000000000000000000000000000",
        "alloc": {
            info["authority"].removeprefix("0x"): {"balance": hex(10**24)}
            for info in validators.values()
        },
        "extraData": "0x" + qbft_extra_data([v["address"] for v in validators.values()]).hex(),
    }
    (out / "genesis.json").write_text(json.dumps(genesis, indent=2) + "\n")
    (out / "static-nodes.json").write_text(
        json.dumps([v["enode"] for v in validators.values()], indent=2) + "\n"
    )
    for country in countries:
        node_dir = out / "nodes" / country
        (node_dir / "chain").mkdir(parents=True, exist_ok=True)
        (node_dir / "chain" / "deployment.json").write_text(json.dumps(deployment, indent=2))
        env = {
            "PHRX_COUNTRY": country,
            "PHRX_CHAIN": validators[country]["rpc"],
            "PHRX_DATA_DIR": "/data",
            "PHRX_DATABASE_URL": f"postgresql+psycopg://phrx@postgres-{country.lower()}/phrx",
            # what the other countries' nodes call (the compose service name)
            "PHRX_BASE_URL": f"http://node-{country.lower()}:8080/fhir",
        }
        (node_dir / "node.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    summary = {"chain_id": chain_id, "validators": validators, "deployment": deployment}
    (out / "network.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
