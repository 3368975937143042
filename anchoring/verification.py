"""Verifying a resource version against its anchor: leaf, audit path, live chain record.

Flask- and database-free: the node's ``$verify`` and the offline ``phrx verify`` both end
here. The root is always read from the chain at verification time; only the set of
recognised authorities is cached for a few seconds.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass, replace

from eth_account import Account
from web3 import HTTPProvider, Web3
from web3.middleware import ExtraDataToPOAMiddleware

from anchoring.chain import ChainClient, Deployment, OnChainAnchor
from anchoring.proof import InclusionProof, root_from_proof

# Machine-readable reasons (the Parameters carry them as `reasonCode`).
NOT_ANCHORED = "not-anchored"
HASH_MISMATCH = "hash-mismatch"
ROOT_NOT_ON_CHAIN = "root-not-on-chain"
AUTHORITY_NOT_RECOGNISED = "authority-not-recognised"
INTEGRITY_FAILURE = "integrity-failure"
CHAIN_UNAVAILABLE = "chain-unavailable"
PROOF_INVALID = "proof-invalid"
VERSION_CHAIN_BROKEN = "version-chain-broken"


@dataclass(frozen=True)
class AnchorClaim:
    """What a proof holder claims: the leaf was anchored under ``root`` on this chain."""

    leaf: bytes | None  # the leaf hash recorded when the version was written
    root: bytes
    proof: InclusionProof
    batch_id: str | None = None
    tx_hash: bytes | None = None
    block_number: int | None = None
    chain_id: int | None = None
    contract: str | None = None
    authority_registry: str | None = None
    authority: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class Verification:
    result: bool
    reason_code: str | None = None
    reason: str | None = None
    target: str | None = None
    leaf: bytes | None = None
    root: bytes | None = None
    batch_id: str | None = None
    tx_hash: bytes | None = None
    block_number: int | None = None
    block_time: int | None = None
    country: str | None = None
    authority: str | None = None
    confirmations: int | None = None
    leaf_count: int | None = None
    chain_id: int | None = None
    contract: str | None = None

    def parts(self) -> list[dict]:
        """FHIR Parameters.parameter entries."""
        out: list[dict] = [{"name": "result", "valueBoolean": self.result}]
        if self.target:
            out.append({"name": "target", "valueString": self.target})
        if self.reason:
            out.append({"name": "reason", "valueString": self.reason})
            out.append({"name": "reasonCode", "valueCode": self.reason_code})
        hexes = (("leaf", self.leaf), ("root", self.root))
        out += [{"name": n, "valueString": v.hex()} for n, v in hexes if v is not None]
        if self.batch_id:
            out.append({"name": "batch", "valueString": self.batch_id})
        if self.tx_hash:
            out.append({"name": "txHash", "valueString": "0x" + self.tx_hash.hex()})
        for name, value in (
            ("blockNumber", self.block_number),
            ("leafCount", self.leaf_count),
            ("confirmations", self.confirmations),
            ("chainId", self.chain_id),
        ):
            if value is not None:
                out.append(_int_part(name, value))
        if self.block_time is not None:
            out.append({"name": "blockTime", "valueInstant": _instant(self.block_time)})
        if self.country:
            out.append({"name": "authority", "valueString": self.country})
        if self.authority:
            out.append({"name": "authorityAddress", "valueString": self.authority})
        if self.contract:
            out.append({"name": "contract", "valueString": self.contract})
        return out

    def to_parameters(self) -> dict:
        return {"resourceType": "Parameters", "parameter": self.parts()}


def _int_part(name: str, value: int) -> dict:
    if -(2**31) <= value < 2**31:
        return {"name": name, "valueInteger": value}
    return {"name": name, "valueString": str(value)}


def _instant(epoch_s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


class ChainReader:
    """Read-only, cached access to one deployment: live anchors, recognised authorities."""

    def __init__(self, client: ChainClient, authority_ttl: float = 5.0) -> None:
        self.client = client
        self.authority_ttl = authority_ttl
        self._authorities: tuple[float, dict[str, str]] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, deployment: Deployment) -> ChainReader:
        """A reader needs no funds: it signs nothing, so a throw-away key will do."""
        w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30}))
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        key = Account.create().key.hex()
        return cls(ChainClient(w3, "0x" + key.removeprefix("0x"), deployment=deployment))

    @property
    def deployment(self) -> Deployment:
        assert self.client.deployment is not None
        return self.client.deployment

    def lookup(self, root: bytes) -> OnChainAnchor | None:
        return self.client.lookup(root)

    def authorities(self) -> dict[str, str]:
        """address (lower case) -> country of every current authority."""
        with self._lock:
            now = time.monotonic()
            if self._authorities is None or now - self._authorities[0] > self.authority_ttl:
                found = {a.address.lower(): a.country for a in self.client.authorities()}
                self._authorities = (now, found)
            return self._authorities[1]


def verify_claim(
    leaf: bytes | None,
    claim: AnchorClaim | None,
    reader: ChainReader | None,
    target: str | None = None,
) -> Verification:
    """Check that ``leaf`` (recomputed from the resource) is anchored as ``claim`` says.

    ``leaf`` None means the stored copy could not even be read (integrity failure).
    """
    base = Verification(result=False, target=target, leaf=leaf)
    if claim is None:
        return replace(base, reason_code=NOT_ANCHORED, reason="not yet anchored")
    base = replace(
        base,
        root=claim.root,
        batch_id=claim.batch_id,
        tx_hash=claim.tx_hash,
        block_number=claim.block_number,
        chain_id=claim.chain_id,
        contract=claim.contract,
        country=claim.country,
        authority=claim.authority,
        leaf_count=claim.proof.tree_size,
    )
    if leaf is None:
        return replace(
            base,
            reason_code=INTEGRITY_FAILURE,
            reason="integrity failure: the stored copy failed authentication (altered)",
        )
    if claim.leaf is not None and not hmac.compare_digest(leaf, claim.leaf):
        return replace(
            base,
            reason_code=HASH_MISMATCH,
            reason=f"hash mismatch: the resource hashes to {leaf.hex()}, "
            f"but {claim.leaf.hex()} was anchored",
        )
    implied = root_from_proof(leaf, claim.proof)
    if implied is None or not hmac.compare_digest(implied, claim.root):
        return replace(
            base,
            reason_code=HASH_MISMATCH,
            reason="hash mismatch: the resource and its proof do not lead to the anchored root",
        )
    if reader is None:
        return replace(base, reason_code=CHAIN_UNAVAILABLE, reason="no chain configured")
    if claim.chain_id is not None and claim.chain_id != reader.deployment.chain_id:
        return replace(
            base,
            reason_code=ROOT_NOT_ON_CHAIN,
            reason=f"root not on chain: anchored on chain {claim.chain_id}, "
            f"this chain is {reader.deployment.chain_id}",
        )
    try:
        record = reader.lookup(claim.root)
        authorities = reader.authorities() if record is not None else {}
    except Exception as exc:
        return replace(
            base, reason_code=CHAIN_UNAVAILABLE, reason=f"chain unavailable: {type(exc).__name__}"
        )
    if record is None:
        return replace(base, reason_code=ROOT_NOT_ON_CHAIN, reason="root not on chain")
    base = replace(
        base,
        block_number=record.block_number,
        block_time=record.timestamp,
        country=record.country,
        authority=record.authority,
        confirmations=record.confirmations,
        batch_id=record.batch_id.hex(),
        leaf_count=record.leaf_count,
    )
    if record.leaf_count != claim.proof.tree_size:
        return replace(
            base,
            reason_code=PROOF_INVALID,
            reason=f"proof is for {claim.proof.tree_size} leaves, the anchor has "
            f"{record.leaf_count}",
        )
    if claim.authority and claim.authority.lower() != record.authority.lower():
        return replace(
            base,
            reason_code=AUTHORITY_NOT_RECOGNISED,
            reason=f"authority not recognised: the proof names {claim.authority}, "
            f"the chain says {record.authority}",
        )
    if record.authority.lower() not in authorities:
        return replace(
            base,
            reason_code=AUTHORITY_NOT_RECOGNISED,
            reason=f"authority not recognised: {record.authority} ({record.country}) "
            "is not a current authority",
        )
    return replace(base, result=True)
