"""Federation commands: ``phrx federation join | vote | list | rotate-keys``.

The federation's trust list is the chain's AuthorityRegistry: one authority per country,
each with its FHIR base URL and the public halves of its node keys (``DATA/keys``). A node
asks to join (``join``); the authorities admit it, or remove one, by more than 2/3 of
their votes (``vote``); an authority replaces its own URL and keys at once
(``rotate-keys``, or ``join`` again after the URL changed).

Every command talks to the chain as the node's own account (``DATA/keys/chain.key``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from fhir_server.cli.options import DATA_DIR

CHAIN_URL = click.option(
    "--chain",
    "chain_url",
    required=True,
    envvar="PHRX_CHAIN",
    help="JSON-RPC URL of the shared chain. Env: PHRX_CHAIN.",
)

# The AuthorityRegistry's custom errors, as an operator reads them.
_REVERTS = {
    "NotAuthority": "this node is not an authority of the federation",
    "UnknownProposal": "no such proposal",
    "AlreadyExecuted": "the proposal was already executed",
    "AlreadyVoted": "this node already voted on the proposal",
    "QuorumNotReached": "the proposal has not reached its quorum",
    "InvalidCountry": "the country must be an ISO 3166-1 alpha-2 code like 'DE'",
    "CountryTaken": "that country already has an authority",
    "AlreadyAuthority": "this node is already an authority",
    "UnknownAuthority": "no such authority",
    "LastAuthority": "the last authority cannot be removed",
}


class FederationError(click.ClickException):
    """An expected failure: one ``phrx: error:`` line, exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"phrx: error: {self.format_message()}", err=True)


@contextmanager
def _chain_errors(chain_url: str, doing: str) -> Iterator[None]:
    """Chain failures (a revert, an unreachable node) as one clear line."""
    import requests
    from web3.exceptions import Web3Exception

    from anchoring.txsender import ChainError

    try:
        yield
    except requests.exceptions.RequestException:
        raise FederationError(f"{doing}: chain {chain_url} unreachable") from None
    except ChainError as error:
        if isinstance(error.__cause__, requests.exceptions.RequestException):
            raise FederationError(f"{doing}: chain {chain_url} unreachable") from None
        text = str(error)
        reason = next((why for name, why in _REVERTS.items() if name in text), text)
        raise FederationError(f"{doing}: {reason}") from None
    except Web3Exception as error:  # the node answered, but not as a PHRX chain does
        raise FederationError(f"{doing}: {error}") from None


def _check_url(chain_url: str) -> None:
    if not chain_url.startswith(("http://", "https://")):
        raise FederationError(f"--chain must be an http(s) JSON-RPC URL, not {chain_url!r}")


def _connect(data_dir: Path, chain_url: str, *, need_account: bool = True):
    """A client as this node's chain account, bound to the deployment the node uses
    (``DATA/chain/deployment.json``) or, on a ``phrx chain dev`` chain, the shared one.
    Without ``need_account`` and no key yet (``list``): a throwaway read-only account."""
    from dataclasses import replace

    from eth_account import Account

    from anchoring.chain import ChainClient, SendPolicy
    from anchoring.node_chain import (
        KEY_FILE,
        SEND_LOCK_FILE,
        as_deployment,
        dev_deployment,
        load_deployment,
    )

    _check_url(chain_url)
    key_file = Path(data_dir) / "keys" / KEY_FILE
    if key_file.exists():
        key = key_file.read_text().strip()
    elif need_account:
        raise FederationError(
            f"no chain account at {key_file}: run `phrx federation join` for this node first"
        )
    else:
        key = "0x" + Account.create().key.hex().removeprefix("0x")
    # the node's processes send from this account in turn (the anchor batcher, too)
    policy = SendPolicy(receipt_timeout=60.0, poll_interval=0.02)
    policy = (
        replace(policy, send_lock=Path(data_dir) / SEND_LOCK_FILE) if key_file.exists() else policy
    )
    client = ChainClient.from_url(chain_url, key, policy=policy)
    doc = load_deployment(data_dir)
    if doc is not None and doc.get("authority_registry"):
        deployment = as_deployment(doc)
    else:
        deployment = dev_deployment(client.w3)
        if deployment is None:
            raise FederationError(
                f"no PHRX contracts known on {chain_url}: no {data_dir}/chain/deployment.json, "
                "and not a `phrx chain dev` chain"
            )
    if not client.w3.eth.get_code(deployment.authority_registry):
        raise FederationError(
            f"no AuthorityRegistry at {deployment.authority_registry} on {chain_url} "
            f"(the deployment in {data_dir}/chain/deployment.json is for another chain)"
        )
    client.use(deployment)
    return client


def _mine(client) -> Any:
    """This account's record on the trust list, or None."""
    me = client.address.lower()
    return next((a for a in client.authorities() if a.address.lower() == me), None)


def _require_authority(client, what: str) -> Any:
    mine = _mine(client)
    if mine is None:
        raise FederationError(
            f"{what}: this node ({client.address}) is not an authority of the federation"
        )
    return mine


def _jwk_of(text: str) -> dict | None:
    try:
        jwk = json.loads(text)
    except ValueError:
        return None
    return jwk if isinstance(jwk, dict) else None


def _kid(text: str) -> str:
    jwk = _jwk_of(text) or {}
    return str(jwk.get("kid") or "-")


def _country(value: str) -> str:
    code = value.strip().upper()
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        raise FederationError(
            f"--country must be an ISO 3166-1 alpha-2 code like 'DE', not {value!r}"
        )
    return code


def _proposal_line(p) -> str:
    url = p.fhir_base_url or "-"
    return f"{p.proposal_id}  {p.kind}  {p.country}  {url}  {p.votes}/{p.needed} votes"


# ---- phrx federation ---------------------------------------------------------------
@click.group("federation")
def federation() -> None:
    """Join the federation, vote on authorities, list the trust list, rotate node keys."""


@federation.command("join")
@DATA_DIR
@CHAIN_URL
@click.option("--country", required=True, envvar="PHRX_COUNTRY", help="ISO 3166-1 alpha-2.")
@click.option(
    "--base-url", required=True, envvar="PHRX_BASE_URL", help="This node's public FHIR base URL."
)
def join(data_dir, chain_url, country, base_url) -> None:
    """Ask to become the authority of --country (the first node of an open chain is admitted
    at once; later ones when the authorities vote). Again after joining: puts changed
    URL or keys on chain."""
    from anchoring.node_chain import NodeChain
    from federation import node_keys

    country = _country(country)
    _check_url(chain_url)
    if not base_url.startswith(("http://", "https://")):
        raise FederationError(f"--base-url must be an http(s) URL, not {base_url!r}")
    with _chain_errors(chain_url, f"{country} cannot join"):
        node_chain = NodeChain(data_dir, chain_url, country=country, base_url=base_url).open()
        try:
            client = node_chain.client()
            keys = node_keys.load_or_create(data_dir)
            jwk = json.dumps(keys.public_signing_jwk(), sort_keys=True)
            enc = keys.encryption_public_bytes()
            _join(client, chain_url, country, base_url, jwk, enc)
        finally:
            node_chain.close()


def _join(client, chain_url: str, country: str, base_url: str, jwk: str, enc: bytes) -> None:
    mine = _mine(client)
    if mine is not None:
        if mine.country != country:
            raise FederationError(
                f"this node ({client.address}) is already the authority of {mine.country}"
            )
        same = (
            mine.fhir_base_url == base_url
            and _jwk_of(mine.signing_jwk) == _jwk_of(jwk)
            and bytes(mine.encryption_key) == enc
        )
        if same:
            click.echo(f"{country} is already an authority ({client.address}): URL and keys match")
            return
        tx = client.update_self(base_url, jwk, enc)
        click.echo(
            f"{country} is an authority ({client.address}): put this node's URL and keys "
            f"on chain (signing kid {_kid(jwk)})  tx 0x{tx.hex()}"
        )
        return
    holder = next((a for a in client.authorities() if a.country == country), None)
    if holder is not None:
        raise FederationError(f"{country} already has an authority: {holder.address}")
    me = client.address.lower()
    pending = next(
        (
            p
            for p in client.open_proposals()
            if p.kind == "add" and p.account.lower() == me and p.country == country
        ),
        None,
    )
    if pending is not None and pending.fhir_base_url == base_url:
        click.echo(
            f"proposal {pending.proposal_id}: {country} already asked to join "
            f"({pending.votes}/{pending.needed} votes); authorities vote with: "
            f"phrx federation vote --data-dir <theirs> --chain {chain_url} {pending.proposal_id}"
        )
        return
    result = client.request_join(country, base_url, jwk, enc)
    if result.executed:
        click.echo(f"admitted: {country} is the first authority of this chain ({client.address})")
    else:
        click.echo(
            f"proposal {result.proposal_id}: {country} asks to join; authorities vote with: "
            f"phrx federation vote --data-dir <theirs> --chain {chain_url} {result.proposal_id}"
        )


@federation.command("vote")
@DATA_DIR
@CHAIN_URL
@click.option("--remove", "remove", metavar="CC", help="Propose removing CC's authority.")
@click.argument("proposal_id", type=int, required=False)
def vote(data_dir, chain_url, remove, proposal_id) -> None:
    """Vote yes on PROPOSAL_ID, or (--remove CC) propose removing the authority of
    country CC (voting on the open removal proposal if another authority made one)."""
    if (remove is None) == (proposal_id is None):
        raise FederationError("give either a PROPOSAL_ID or --remove CC")
    what = (
        f"cannot vote on proposal {proposal_id}"
        if remove is None
        else f"cannot remove {remove.upper()}"
    )
    with _chain_errors(chain_url, what):
        client = _connect(data_dir, chain_url)
        _require_authority(client, what)
        if remove is not None:
            result, label = _vote_remove(client, _country(remove))
        else:
            subject = next(
                (p for p in client.open_proposals() if p.proposal_id == proposal_id), None
            )
            label = f"{subject.kind} {subject.country}" if subject else "?"
            result = client.vote(proposal_id)
        if result.executed:
            click.echo(f"proposal {result.proposal_id} ({label}): executed")
            return
        now = next(
            (p for p in client.open_proposals() if p.proposal_id == result.proposal_id), None
        )
        tally = f", {now.votes}/{now.needed} votes" if now else ""
        click.echo(f"proposal {result.proposal_id} ({label}): pending{tally}")


def _vote_remove(client, country: str):
    target = next((a for a in client.authorities() if a.country == country), None)
    if target is None:
        raise FederationError(f"cannot remove {country}: {country} has no authority")
    label = f"remove {country}"
    account = target.address.lower()
    for p in client.open_proposals():
        if p.kind == "remove" and p.account.lower() == account:
            return client.vote(p.proposal_id), label
    return client.propose_remove(target.address), label


@federation.command("list")
@DATA_DIR
@CHAIN_URL
def list_authorities(data_dir, chain_url) -> None:
    """The trust list (country, account, FHIR base URL, signing key id, encryption key),
    then the open proposals."""
    with _chain_errors(chain_url, "cannot list the federation"):
        client = _connect(data_dir, chain_url, need_account=False)
        authorities = client.authorities()
        proposals = client.open_proposals()
    me = client.address.lower()
    click.echo(f"authorities ({len(authorities)}):")
    for a in authorities:
        enc = "yes" if a.encryption_key else "no"
        this = "  (this node)" if a.address.lower() == me else ""
        click.echo(
            f"  {a.country}  {a.address}  {a.fhir_base_url or '-'}  kid {_kid(a.signing_jwk)}"
            f"  encryption {enc}{this}"
        )
    click.echo(f"open proposals ({len(proposals)}):")
    for p in proposals:
        click.echo(f"  {_proposal_line(p)}")


@federation.command("rotate-keys")
@DATA_DIR
@CHAIN_URL
def rotate_keys(data_dir, chain_url) -> None:
    """New node signing and encryption keys, trusted at once in place of the old ones
    (a running node signs with them from its next call to another node)."""
    from federation import node_keys

    what = "cannot rotate the node keys"
    with _chain_errors(chain_url, what):
        client = _connect(data_dir, chain_url)
        mine = _require_authority(client, what)
    old_kid = _kid(mine.signing_jwk)
    keys = node_keys.rotate(data_dir)
    jwk = json.dumps(keys.public_signing_jwk(), sort_keys=True)
    retry = (
        "new keys made in the data dir but not put on chain (retry with "
        f"`phrx federation join --country {mine.country} --base-url {mine.fhir_base_url}`)"
    )
    with _chain_errors(chain_url, retry):
        tx = client.update_self(mine.fhir_base_url, jwk, keys.encryption_public_bytes())
    click.echo(
        f"{mine.country}: keys rotated, signing kid {keys.kid} (was {old_kid})  tx 0x{tx.hex()}"
    )


COMMANDS = [federation]
