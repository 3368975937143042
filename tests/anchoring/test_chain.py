"""ChainClient and TransactionSender behaviour on the in-process EVM (plus fakes)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from web3 import Web3

from anchoring.chain import ANVIL_DEV_KEY, ChainClient, ChainError, Deployment, SendPolicy
from anchoring.txsender import NonceManager

ROOT = b"\x42" * 32


def test_in_process_round_trip_and_unknown_root() -> None:
    client = ChainClient.in_process()
    with pytest.raises(ChainError, match="no deployment"):
        client.lookup(ROOT)
    deployment = client.deploy_contracts("DE", "https://de", "{}", b"")
    assert deployment.chain_id == client.w3.eth.chain_id
    assert client.lookup(ROOT) is None
    receipt = client.anchor(ROOT, 2, b"\0" * 32)
    assert receipt.fresh and 60_000 < receipt.gas_used < 150_000
    assert client.lookup(ROOT).block_number == receipt.block_number  # type: ignore[union-attr]


def test_dev_key_refused_off_the_dev_chain(w3: Web3) -> None:
    assert w3.eth.chain_id != 31337
    with pytest.raises(ValueError, match="dev chain"):
        ChainClient(w3, ANVIL_DEV_KEY)


def test_deployment_of_another_chain_refused(w3: Web3, keys: list[str]) -> None:
    other = Deployment(
        chain_id=1, anchor_registry="0x" + "11" * 20, authority_registry="0x" + "22" * 20
    )
    with pytest.raises(ChainError, match="another chain"):
        ChainClient(w3, keys[0], deployment=other)


def test_confirmations_grow_with_new_blocks(clients: list[ChainClient], w3: Web3) -> None:
    clients[0].anchor(ROOT, 1, b"\0" * 32)
    assert clients[0].lookup(ROOT).confirmations == 1  # type: ignore[union-attr]
    w3.provider.ethereum_tester.mine_blocks(3)
    assert clients[0].lookup(ROOT).confirmations == 4  # type: ignore[union-attr]


def test_waiting_for_unreachable_confirmations_times_out(
    w3: Web3, keys: list[str], deployment: Deployment
) -> None:
    policy = SendPolicy(confirmations=3, receipt_timeout=0.5, poll_interval=0.05)
    client = ChainClient(w3, keys[0], deployment=deployment, policy=policy)
    with pytest.raises(ChainError, match="3x confirmed"):
        client.anchor(ROOT, 1, b"\0" * 32)  # automine: no further blocks arrive


def test_gas_limit_has_the_margin(clients: list[ChainClient], w3: Web3) -> None:
    fn = clients[0]._anchors.functions.anchor(ROOT, 1, b"\0" * 32)
    estimate = fn.estimate_gas({"from": clients[0].address})
    receipt = clients[0].anchor(ROOT, 1, b"\0" * 32)
    assert w3.eth.get_transaction(receipt.tx_hash)["gas"] == int(estimate * 1.25)


def test_send_policy_validation() -> None:
    for bad in ({"confirmations": 0}, {"gas_margin": 0.9}, {"receipt_timeout": 0}):
        with pytest.raises(ValueError):
            SendPolicy(**bad)  # type: ignore[arg-type]


def _fake_w3(pending: list[int]) -> SimpleNamespace:
    eth = SimpleNamespace(get_transaction_count=lambda _addr, _block: pending[0])
    return SimpleNamespace(eth=eth)


def test_nonce_manager_uses_pending_nonce_and_local_counter() -> None:
    pending = [5]
    nonces = NonceManager(_fake_w3(pending), "0xabc")  # type: ignore[arg-type]
    assert [nonces.reserve(), nonces.reserve()] == [5, 6]  # node has not seen 5 yet
    pending[0] = 9  # another process (or our previous life) sent more
    assert nonces.reserve() == 9
    nonces.reset()
    pending[0] = 7  # after a failed send the node's view wins again
    assert nonces.reserve() == 7


def test_two_clients_on_one_account_do_not_collide(
    w3: Web3, keys: list[str], deployment: Deployment
) -> None:
    # A restarted node builds a fresh client: it must pick up the chain's nonce.
    first = ChainClient(w3, keys[0], deployment=deployment)
    first.anchor(b"\x01" * 32, 1, b"\0" * 32)
    second = ChainClient(w3, keys[0], deployment=deployment)
    second.anchor(b"\x02" * 32, 1, b"\0" * 32)
    first.anchor(b"\x03" * 32, 1, b"\0" * 32)
    assert all(first.lookup(bytes([k]) * 32) for k in (1, 2, 3))


def test_concurrent_anchors_from_threads(clients: list[ChainClient]) -> None:
    roots = [bytes([k]) * 32 for k in range(1, 9)]
    errors: list[BaseException] = []

    def run(root: bytes) -> None:
        try:
            clients[0].anchor(root, 1, b"\0" * 32)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in roots]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert all(clients[0].lookup(r) for r in roots)
