"""AuthorityRegistry governance and AnchorRegistry rules, on the in-process EVM."""

from __future__ import annotations

import pytest

from anchoring.chain import ChainClient, ChainError
from tests.anchoring.chain_helpers import COUNTRIES, grow

ROOT = bytes(range(32))
BATCH = b"\xbb" * 32


def votes_needed_to_add(clients: list[ChainClient], n: int) -> int:
    """Count votes (proposer included) until a proposal to add clients[n] executes."""
    result = clients[0].propose_add(clients[n].address, COUNTRIES[n], "u", "{}", b"")
    votes = 1
    while not result.executed:
        result = clients[votes].vote(result.proposal_id)
        votes += 1
    return votes


@pytest.mark.parametrize(("n", "expected"), [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4)])
def test_quorum_is_more_than_two_thirds(clients: list[ChainClient], n: int, expected: int) -> None:
    grow(clients, n)
    registry = clients[0]._authorities.functions
    assert registry.quorum(n).call() == expected
    assert 3 * expected > 2 * n and 3 * (expected - 1) <= 2 * n
    assert votes_needed_to_add(clients, n) == expected
    assert len(clients[0].authorities()) == n + 1


def test_double_vote_and_proposer_revote_rejected(clients: list[ChainClient]) -> None:
    grow(clients, 3)
    pid = clients[0].propose_add(clients[3].address, "ES", "u", "{}", b"").proposal_id
    with pytest.raises(ChainError, match="AlreadyVoted"):
        clients[0].vote(pid)
    clients[1].vote(pid)
    with pytest.raises(ChainError, match="AlreadyVoted"):
        clients[1].vote(pid)
    assert clients[2].vote(pid).executed
    with pytest.raises(ChainError, match="AlreadyExecuted"):
        clients[0].execute(pid)


def test_non_authority_cannot_propose_or_vote(clients: list[ChainClient]) -> None:
    grow(clients, 2)
    pid = clients[0].propose_add(clients[2].address, "IT", "u", "{}", b"").proposal_id
    with pytest.raises(ChainError, match="NotAuthority"):
        clients[5].vote(pid)
    with pytest.raises(ChainError, match="NotAuthority"):
        clients[5].propose_add(clients[5].address, "NL", "u", "{}", b"")
    with pytest.raises(ChainError, match="UnknownProposal"):
        clients[0].vote(99)


def test_last_authority_cannot_be_removed(clients: list[ChainClient]) -> None:
    with pytest.raises(ChainError, match="LastAuthority"):
        clients[0].propose_remove(clients[0].address)
    grow(clients, 2)
    # Of two, the one that stays is more than 2/3 of the others: it removes alone.
    assert clients[0].propose_remove(clients[1].address).executed
    with pytest.raises(ChainError, match="NotAuthority"):
        clients[1].propose_remove(clients[0].address)
    with pytest.raises(ChainError, match="LastAuthority"):
        clients[0].propose_remove(clients[0].address)
    assert [a.address for a in clients[0].authorities()] == [clients[0].address]


def test_an_authority_cannot_block_its_own_removal(clients: list[ChainClient]) -> None:
    grow(clients, 3)  # removal of one: more than 2/3 of the other two, i.e. both
    registry = clients[0]._authorities.functions
    removal = clients[0].propose_remove(clients[2].address)
    assert not removal.executed
    assert registry.votesNeeded(removal.proposal_id).call() == 2
    clients[2].vote(removal.proposal_id)  # the subject's vote does not count
    assert registry.currentVotes(removal.proposal_id).call() == 1
    assert clients[1].vote(removal.proposal_id).executed
    assert clients[2].address not in {a.address for a in clients[0].authorities()}


def test_removed_authority_votes_stop_counting(clients: list[ChainClient]) -> None:
    grow(clients, 4)  # quorum 3
    pending = clients[0].propose_add(clients[4].address, "AT", "u", "{}", b"").proposal_id
    clients[3].vote(pending)  # 2 of 3
    removal = clients[0].propose_remove(clients[3].address).proposal_id
    clients[1].vote(removal)
    assert clients[2].vote(removal).executed  # now 3 authorities, quorum 3
    registry = clients[0]._authorities.functions
    assert registry.currentVotes(pending).call() == 1  # clients[3]'s vote is gone
    with pytest.raises(ChainError, match="NotAuthority"):
        clients[3].vote(pending)
    assert not clients[1].vote(pending).executed
    assert clients[2].vote(pending).executed


def test_execute_after_shrink_reaches_quorum(clients: list[ChainClient]) -> None:
    grow(clients, 5)  # quorum 4
    pending = clients[0].propose_add(clients[5].address, "BE", "u", "{}", b"").proposal_id
    clients[1].vote(pending)
    clients[2].vote(pending)  # 3 of 4
    with pytest.raises(ChainError, match="QuorumNotReached"):
        clients[0].execute(pending)
    removal = clients[0].propose_remove(clients[4].address).proposal_id
    for voter in (1, 2):  # 3 of the 4 others (clients[4]'s own vote would not count)
        clients[voter].vote(removal)
    assert len(clients[0].authorities()) == 4  # quorum 3: pending has enough now
    assert clients[3].execute(pending).executed
    assert clients[5].address in {a.address for a in clients[0].authorities()}


def test_update_changes_url_and_keys_only(clients: list[ChainClient]) -> None:
    grow(clients, 2)
    target = clients[1].address
    result = clients[0].propose_update(target, "https://fr.new/fhir", '{"kty":"OKP"}', b"new")
    assert not result.executed
    assert clients[1].vote(result.proposal_id).executed
    info = {a.address: a for a in clients[0].authorities()}[target]
    assert (info.country, info.fhir_base_url, info.signing_jwk, info.encryption_key) == (
        "FR",
        "https://fr.new/fhir",
        '{"kty":"OKP"}',
        b"new",
    )
    with pytest.raises(ChainError, match="UnknownAuthority"):
        clients[0].propose_update(clients[5].address, "u", "{}", b"")


def test_get_validators_tracks_membership(clients: list[ChainClient]) -> None:
    grow(clients, 4)
    registry = clients[0]._authorities.functions
    assert registry.getValidators().call() == [c.address for c in clients[:4]]
    removal = clients[0].propose_remove(clients[1].address).proposal_id
    clients[2].vote(removal)
    clients[3].vote(removal)
    validators = registry.getValidators().call()
    assert sorted(validators) == sorted(
        [clients[0].address, clients[2].address, clients[3].address]
    )
    assert not registry.isAuthority(clients[1].address).call()
    assert registry.authorityByCountry(b"FR").call() == "0x" + "00" * 20
    # Country freed by the removal can be given to a new authority.
    result = clients[0].propose_add(clients[5].address, "FR", "u", "{}", b"")
    clients[2].vote(result.proposal_id)
    assert clients[3].vote(result.proposal_id).executed
    assert registry.authorityByCountry(b"FR").call() == clients[5].address


def test_add_rejects_taken_country_member_and_bad_code(clients: list[ChainClient]) -> None:
    with pytest.raises(ChainError, match="CountryTaken"):
        clients[0].propose_add(clients[1].address, "DE", "u", "{}", b"")
    with pytest.raises(ChainError, match="AlreadyAuthority"):
        clients[0].propose_add(clients[0].address, "FR", "u", "{}", b"")
    raw = clients[0]._authorities.functions.proposeAdd(clients[1].address, b"d1", "u", "{}", b"")
    with pytest.raises(ChainError, match="InvalidCountry"):
        clients[0]._tx.transact(raw)
    with pytest.raises(ValueError, match="ISO 3166"):
        clients[0].propose_add(clients[1].address, "de", "u", "{}", b"")


def test_authority_anchors_and_event_is_emitted(clients: list[ChainClient]) -> None:
    receipt = clients[0].anchor(ROOT, 7, BATCH)
    assert receipt.fresh
    logs = clients[0]._anchors.events.Anchored().get_logs(from_block=0)
    assert len(logs) == 1
    args = logs[0]["args"]
    assert (args["root"], args["authority"], args["country"]) == (ROOT, clients[0].address, b"DE")
    assert (args["leafCount"], args["batchId"]) == (7, BATCH)
    found = clients[0].lookup(ROOT)
    assert found is not None
    assert (found.authority, found.country, found.leaf_count, found.batch_id) == (
        clients[0].address,
        "DE",
        7,
        BATCH,
    )
    assert (found.block_number, found.timestamp) == (receipt.block_number, receipt.block_time)


def test_non_authority_cannot_anchor(clients: list[ChainClient]) -> None:
    with pytest.raises(ChainError, match="NotAuthority"):
        clients[1].anchor(ROOT, 1, BATCH)
    assert clients[0].lookup(ROOT) is None


def test_duplicate_root_is_harmless_and_first_record_stands(clients: list[ChainClient]) -> None:
    grow(clients, 2)
    first = clients[0].anchor(ROOT, 3, BATCH)
    again = clients[1].anchor(ROOT, 9, b"\x01" * 32)
    assert first.fresh and not again.fresh
    assert again.block_number > first.block_number
    found = clients[0].lookup(ROOT)
    assert found is not None
    assert (found.authority, found.leaf_count, found.batch_id, found.block_number) == (
        clients[0].address,
        3,
        BATCH,
        first.block_number,
    )
    assert len(clients[0]._anchors.events.Anchored().get_logs(from_block=0)) == 1
    assert clients[0]._anchors.functions.anchorCount().call() == 1


def test_removed_authority_can_no_longer_anchor(clients: list[ChainClient]) -> None:
    grow(clients, 2)
    clients[1].anchor(ROOT, 1, BATCH)
    assert clients[0].propose_remove(clients[1].address).executed
    with pytest.raises(ChainError, match="NotAuthority"):
        clients[1].anchor(b"\x02" * 32, 1, BATCH)
    old = clients[0].lookup(ROOT)
    assert old is not None and old.country == "FR"  # history keeps the anchoring country


def test_empty_root_and_batch_rejected(clients: list[ChainClient]) -> None:
    with pytest.raises(ChainError, match="EmptyRoot"):
        clients[0].anchor(b"\0" * 32, 1, BATCH)
    raw = clients[0]._anchors.functions.anchor(ROOT, 0, BATCH)
    with pytest.raises(ChainError, match="EmptyBatch"):
        clients[0]._tx.transact(raw)
    with pytest.raises(ValueError):
        clients[0].anchor(ROOT, 0, BATCH)
    with pytest.raises(ValueError):
        clients[0].anchor(b"short", 1, BATCH)
