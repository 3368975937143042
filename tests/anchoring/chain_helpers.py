"""Helpers shared by the contract tests (a plain module: conftest is not importable)."""

from anchoring.chain import ChainClient

COUNTRIES = ["DE", "FR", "IT", "ES", "NL", "AT", "BE"]


def grow(clients: list[ChainClient], n: int) -> None:
    """Make clients[0..n-1] authorities, collecting just enough votes each time."""
    for k in range(1, n):
        newcomer = clients[k]
        result = clients[0].propose_add(
            newcomer.address, COUNTRIES[k], f"https://{COUNTRIES[k]}.example", "{}", b""
        )
        voter = 1
        while not result.executed:
            result = clients[voter].vote(result.proposal_id)
            voter += 1
    assert len(clients[0].authorities()) == n
