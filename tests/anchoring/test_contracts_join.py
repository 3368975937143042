"""AuthorityRegistry: a node proposing itself (requestJoin), an open registry founded by
its first candidate, and an authority rotating its own keys (updateSelf)."""

from __future__ import annotations

import pytest
from web3 import Web3

from anchoring.chain import ChainClient, ChainError
from tests.anchoring.chain_helpers import grow


def test_request_join_is_no_vote_and_authorities_admit(clients: list[ChainClient]) -> None:
    grow(clients, 3)  # three authorities: quorum 3
    request = clients[5].request_join("PH", "http://ph/fhir", '{"kty":"EC"}', b"ph-enc")
    assert not request.executed
    pending = {p.proposal_id: p for p in clients[0].open_proposals()}[request.proposal_id]
    assert (pending.kind, pending.country, pending.votes, pending.needed) == ("add", "PH", 0, 3)
    assert pending.account == clients[5].address
    clients[0].vote(request.proposal_id)
    clients[1].vote(request.proposal_id)
    assert clients[5].address not in [a.address for a in clients[0].authorities()]
    assert clients[2].vote(request.proposal_id).executed
    listed = {a.country: a for a in clients[0].authorities()}
    assert listed["PH"].address == clients[5].address
    assert listed["PH"].fhir_base_url == "http://ph/fhir"
    assert request.proposal_id not in [p.proposal_id for p in clients[0].open_proposals()]


def test_request_join_cannot_take_a_country_or_vote_for_itself(clients: list[ChainClient]) -> None:
    with pytest.raises(ChainError, match="CountryTaken"):
        clients[5].request_join("DE", "u", "{}", b"")
    pid = clients[5].request_join("PH", "u", "{}", b"").proposal_id
    with pytest.raises(ChainError, match="NotAuthority"):
        clients[5].vote(pid)


def test_open_registry_is_founded_by_its_first_candidate(w3: Web3, keys: list[str]) -> None:
    deployer = ChainClient(w3, keys[0])
    deployment = deployer.deploy_contracts(None, "", "", b"")
    assert deployer.authorities() == []
    tw, ph = (ChainClient(w3, k, deployment=deployment) for k in keys[1:3])
    assert tw.request_join("TW", "http://tw/fhir", "{}", b"").executed
    assert [a.country for a in deployer.authorities()] == ["TW"]
    # the deployer of an open registry has no say afterwards
    with pytest.raises(ChainError, match="NotAuthority"):
        deployer.propose_add(deployer.address, "DE", "u", "{}", b"")
    second = ph.request_join("PH", "http://ph/fhir", "{}", b"")
    assert not second.executed
    assert tw.vote(second.proposal_id).executed
    assert {a.country for a in deployer.authorities()} == {"TW", "PH"}


def test_update_self_rotates_at_once_and_only_its_own(clients: list[ChainClient]) -> None:
    grow(clients, 2)
    clients[1].update_self("http://new/fhir", '{"kty":"EC","x":"new"}', b"new-enc")
    mine = {a.address: a for a in clients[0].authorities()}[clients[1].address]
    assert (mine.fhir_base_url, mine.signing_jwk, mine.encryption_key) == (
        "http://new/fhir",
        '{"kty":"EC","x":"new"}',
        b"new-enc",
    )
    with pytest.raises(ChainError, match="NotAuthority"):
        clients[5].update_self("u", "{}", b"")
