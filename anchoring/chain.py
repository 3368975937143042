"""ChainClient: deploy the PHRX contracts, anchor Merkle roots, look them up, govern.

Backends: an in-process EVM (web3 EthereumTesterProvider, for unit tests) and any
Ethereum JSON-RPC HTTP URL (anvil for development, Hyperledger Besu QBFT in production).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import rlp
from eth_utils import function_signature_to_4byte_selector, keccak, to_checksum_address
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.logs import DISCARD
from web3.middleware import ExtraDataToPOAMiddleware
from web3.types import RPCEndpoint

from anchoring.contracts.build import load_artifacts
from anchoring.txsender import ChainError, SendPolicy, TransactionSender

__all__ = ["ANVIL_CHAIN_ID", "ANVIL_DEV_KEY", "ChainClient", "ChainError", "SendPolicy"]

# Anvil's first well-known account. Public knowledge, so only acceptable on a dev chain.
ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_CHAIN_ID = 31337


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    anchor_registry: str
    authority_registry: str


@dataclass(frozen=True)
class AnchorReceipt:
    root: bytes
    tx_hash: bytes
    block_number: int
    block_time: int
    gas_used: int
    fresh: bool  # False: root was already anchored; the first record stands


@dataclass(frozen=True)
class OnChainAnchor:
    root: bytes
    authority: str
    country: str
    block_number: int
    timestamp: int
    leaf_count: int
    batch_id: bytes
    confirmations: int


@dataclass(frozen=True)
class AuthorityInfo:
    address: str
    country: str
    fhir_base_url: str
    signing_jwk: str
    encryption_key: bytes


@dataclass(frozen=True)
class ProposalResult:
    proposal_id: int
    tx_hash: bytes
    executed: bool


def create_address(sender: str, nonce: int) -> str:
    """Address of the contract ``sender`` creates with ``nonce`` (CREATE)."""
    raw = rlp.encode([bytes.fromhex(sender.removeprefix("0x")), nonce])
    return to_checksum_address(keccak(raw)[12:])


_KINDS = ("add", "remove", "update")


@dataclass(frozen=True)
class PendingProposal:
    proposal_id: int
    kind: str
    account: str
    country: str
    fhir_base_url: str
    proposer: str
    votes: int
    needed: int


def _error_selectors(artifacts: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name in ("AnchorRegistry", "AuthorityRegistry"):
        for item in artifacts[name]["abi"]:
            if item["type"] == "error":
                sig = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
                out[function_signature_to_4byte_selector(sig).hex()] = item["name"]
    return out


def _country_bytes(country: str) -> bytes:
    if len(country) != 2 or not country.isascii() or not country.isupper():
        raise ValueError("country must be an ISO 3166-1 alpha-2 code like 'DE'")
    return country.encode("ascii")


def _bytes32(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValueError(f"{what} must be 32 bytes")
    return value


class ChainClient:
    """One signing account talking to one chain; thread-safe for sending."""

    def __init__(
        self,
        w3: Web3,
        private_key: str,
        deployment: Deployment | None = None,
        policy: SendPolicy | None = None,
    ) -> None:
        if private_key.lower() == ANVIL_DEV_KEY and w3.eth.chain_id != ANVIL_CHAIN_ID:
            raise ValueError("the public anvil dev key is only allowed on the dev chain")
        self._artifacts = load_artifacts()
        self._tx = TransactionSender(
            w3, private_key, policy or SendPolicy(), _error_selectors(self._artifacts)
        )
        self.w3 = w3
        self.deployment: Deployment | None = None
        if deployment is not None:
            self.use(deployment)

    @classmethod
    def from_url(cls, url: str, private_key: str, **kwargs: Any) -> ChainClient:
        # web3 validates the chain id of every call and transaction it builds, each
        # time with an eth_chainId round trip (6 per anchored batch); a chain's id is
        # fixed, so that one answer is cached.
        provider = HTTPProvider(
            url,
            request_kwargs={"timeout": 30},
            cache_allowed_requests=True,
            cacheable_requests={RPCEndpoint("eth_chainId")},
        )
        w3 = Web3(provider)
        # QBFT/Clique put more than 32 bytes in extraData; web3 rejects that without this.
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        return cls(w3, private_key, **kwargs)

    @classmethod
    def in_process(cls, **kwargs: Any) -> ChainClient:
        provider = EthereumTesterProvider()
        key = provider.ethereum_tester.backend.account_keys[0].to_hex()  # pre-funded
        return cls(Web3(provider), key, **kwargs)

    @property
    def address(self) -> str:
        return self._tx.address

    @property
    def sender(self) -> TransactionSender:
        """Sends this account's transactions (the batcher sends and waits in two steps,
        so that a crash in between leaves the transaction hash in its journal)."""
        return self._tx

    def contract_abi(self, name: str) -> list:
        """The ABI of one of the project's contracts (``AnchorRegistry``, ...)."""
        return self._artifacts[name]["abi"]

    def anchor_call(self, root: bytes, leaf_count: int, batch_id: bytes) -> Any:
        """The ``AnchorRegistry.anchor`` call, unsent."""
        self._require_deployment()
        assert self.deployment is not None
        return self._contract("AnchorRegistry", self.deployment.anchor_registry).functions.anchor(
            root, leaf_count, batch_id
        )

    def _contract(self, name: str, address: str | None = None) -> Any:
        art = self._artifacts[name]
        if address is None:
            return self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=art["abi"])

    def use(self, deployment: Deployment) -> None:
        if deployment.chain_id != self.w3.eth.chain_id:
            raise ChainError("deployment belongs to another chain")
        self.deployment = deployment
        self._anchors = self._contract("AnchorRegistry", deployment.anchor_registry)
        self._authorities = self._contract("AuthorityRegistry", deployment.authority_registry)

    def deploy_contracts(
        self, country: str | None, fhir_base_url: str, signing_jwk: str, encryption_key: bytes
    ) -> Deployment:
        """Deploy both registries with this account as the first authority of ``country``;
        ``country`` None deploys an open registry whose first ``request_join`` founds it."""
        founder = _country_bytes(country) if country is not None else b"\0\0"
        registry = self._contract("AuthorityRegistry").constructor(
            founder, fhir_base_url, signing_jwk, encryption_key
        )
        registry_address = self._tx.transact(registry)["contractAddress"]
        anchors = self._contract("AnchorRegistry").constructor(registry_address)
        anchors_address = self._tx.transact(anchors)["contractAddress"]
        deployment = Deployment(self.w3.eth.chain_id, anchors_address, registry_address)
        self.use(deployment)
        return deployment

    def _require_deployment(self) -> None:
        if self.deployment is None:
            raise ChainError("no deployment: call deploy_contracts() or use()")

    # ---- anchoring -------------------------------------------------------------------

    def anchor(self, root: bytes, leaf_count: int, batch_id: bytes) -> AnchorReceipt:
        self._require_deployment()
        if not 0 < leaf_count < 2**32:
            raise ValueError("leaf_count must fit a non-zero uint32")
        fn = self._anchors.functions.anchor(
            _bytes32(root, "root"), leaf_count, _bytes32(batch_id, "batch_id")
        )
        receipt = self._tx.transact(fn)
        fresh = bool(self._anchors.events.Anchored().process_receipt(receipt, errors=DISCARD))
        block = self.w3.eth.get_block(receipt["blockNumber"])
        return AnchorReceipt(
            root=root,
            tx_hash=bytes(receipt["transactionHash"]),
            block_number=receipt["blockNumber"],
            block_time=block["timestamp"],
            gas_used=receipt["gasUsed"],
            fresh=fresh,
        )

    def lookup(self, root: bytes) -> OnChainAnchor | None:
        self._require_deployment()
        rec = self._anchors.functions.getAnchor(_bytes32(root, "root")).call()
        authority, country, block_number, timestamp, leaf_count, batch_id = rec
        if block_number == 0:
            return None
        return OnChainAnchor(
            root=root,
            authority=authority,
            country=bytes(country).decode("ascii"),
            block_number=block_number,
            timestamp=timestamp,
            leaf_count=leaf_count,
            batch_id=bytes(batch_id),
            confirmations=self.w3.eth.block_number - block_number + 1,
        )

    # ---- authorities and governance ------------------------------------------------

    def authorities(self) -> list[AuthorityInfo]:
        self._require_deployment()
        fns = self._authorities.functions
        out = []
        for address in fns.getValidators().call():
            account, country, url, jwk, enc = fns.authorityOf(address).call()
            out.append(AuthorityInfo(account, bytes(country).decode("ascii"), url, jwk, enc))
        return out

    def propose_add(
        self,
        account: str,
        country: str,
        fhir_base_url: str,
        signing_jwk: str,
        encryption_key: bytes,
    ) -> ProposalResult:
        fn = self._gov().proposeAdd(
            Web3.to_checksum_address(account),
            _country_bytes(country),
            fhir_base_url,
            signing_jwk,
            encryption_key,
        )
        return self._proposal(fn)

    def request_join(
        self, country: str, fhir_base_url: str, signing_jwk: str, encryption_key: bytes
    ) -> ProposalResult:
        """Propose this account as the authority of ``country`` (no vote of its own;
        admitted at once by a registry that has no authority yet)."""
        fn = self._gov().requestJoin(
            _country_bytes(country), fhir_base_url, signing_jwk, encryption_key
        )
        receipt = self._tx.transact(fn)
        events = self._authorities.events
        proposed = events.Proposed().process_receipt(receipt, errors=DISCARD)
        executed = events.Executed().process_receipt(receipt, errors=DISCARD)
        return ProposalResult(
            proposed[0]["args"]["id"], bytes(receipt["transactionHash"]), bool(executed)
        )

    def update_self(self, fhir_base_url: str, signing_jwk: str, encryption_key: bytes) -> bytes:
        """Replace this authority's URL and keys at once (key rotation); the tx hash."""
        fn = self._gov().updateSelf(fhir_base_url, signing_jwk, encryption_key)
        return bytes(self._tx.transact(fn)["transactionHash"])

    def open_proposals(self) -> list[PendingProposal]:
        """Proposals not executed yet, with the votes that count now and those needed."""
        fns = self._gov()
        out = []
        for pid in range(fns.proposalCount().call()):
            kind, executed, proposer, subject = fns.getProposal(pid).call()
            if executed:
                continue
            account, country, url = subject[0], bytes(subject[1]).decode("ascii"), subject[2]
            votes, needed = fns.currentVotes(pid).call(), fns.votesNeeded(pid).call()
            out.append(
                PendingProposal(pid, _KINDS[kind], account, country, url, proposer, votes, needed)
            )
        return out

    def propose_remove(self, account: str) -> ProposalResult:
        return self._proposal(self._gov().proposeRemove(Web3.to_checksum_address(account)))

    def propose_update(
        self, account: str, fhir_base_url: str, signing_jwk: str, encryption_key: bytes
    ) -> ProposalResult:
        fn = self._gov().proposeUpdate(
            Web3.to_checksum_address(account), fhir_base_url, signing_jwk, encryption_key
        )
        return self._proposal(fn)

    def vote(self, proposal_id: int) -> ProposalResult:
        return self._proposal(self._gov().vote(proposal_id))

    def execute(self, proposal_id: int) -> ProposalResult:
        return self._proposal(self._gov().execute(proposal_id))

    def _gov(self) -> Any:
        self._require_deployment()
        return self._authorities.functions

    def _proposal(self, fn: Any) -> ProposalResult:
        receipt = self._tx.transact(fn)
        events = self._authorities.events
        voted = events.Voted().process_receipt(receipt, errors=DISCARD)
        executed = events.Executed().process_receipt(receipt, errors=DISCARD)
        proposal_id = (voted or executed)[0]["args"]["id"]
        return ProposalResult(proposal_id, bytes(receipt["transactionHash"]), bool(executed))
