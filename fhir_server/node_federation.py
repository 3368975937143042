"""A node's place in the federation (Flask-free wiring of :mod:`federation`).

``node.federation`` exists when the node has a chain (the chain is the trust list):

* ``trust`` -- the AuthorityRegistry's current authorities;
* ``keys`` -- this node's signing and encryption keys (``DATA/keys``, re-read when
  the files change: a key rotation needs no restart);
* ``client`` -- calls to other nodes (trust-list only, node client assertions);
* ``links`` -- share links this node issued; ``proxies`` -- patients of other nodes
  that clinicians here received;
* ``reader`` -- chain verification that remembers roots it has seen;
* :meth:`client_for` -- the SMART client another node's assertions authenticate as:
  its signing JWK is the one on chain *now* (a rotated key replaces the old at once;
  a node voted out is unknown on its next token request).
"""

from __future__ import annotations

import json

from federation import node_keys, shlink
from federation.assertion import country_of
from federation.client import WRITE_SCOPE, NodeClient
from federation.errors import FederationError, UntrustedNode
from federation.links import LinkStore
from federation.proxies import ProxyStore
from federation.trust import TrustList
from federation.verify import RememberingReader
from fhir_server.smart.clients import Client
from vault.keyring import KeyRing


class NodeFederation:
    def __init__(self, node) -> None:
        anchoring = node.anchoring
        self.node = node
        self.country = node.config.anchor_country.upper()
        self.trust = TrustList(lambda: anchoring.chain.client().authorities())
        self.key_files = node_keys.KeyFiles(node.config.data_dir)
        self.key_files.current()  # created on the node's first start
        self.client = NodeClient(self.trust, self.key_files.current, self.country)
        self.links = LinkStore(node.engine)
        self.proxies = ProxyStore(node.engine)
        self.reader = RememberingReader(anchoring.reader)

    @property
    def keys(self) -> node_keys.NodeKeys:
        """This node's keys as the key files hold them now."""
        return self.key_files.current()

    def client_for(self, client_id: str) -> Client | None:
        """The SMART client of another country's node, from the chain; None when the
        id names no node on the trust list now (or this node itself)."""
        country = country_of(client_id)
        if country is None or country == self.country:
            return None
        try:
            trusted = self.trust.by_country(country, fresh=True)
        except FederationError:
            return None
        if trusted.signing_jwk is None:
            return None
        return Client(
            client_id=client_id,
            name=f"PHRX node {country} ({trusted.fhir_base_url})",
            kind="backend",
            scope=WRITE_SCOPE,
            jwks={"keys": [trusted.signing_jwk]},
        )

    def still_trusted(self, client_id: str) -> bool:
        """Whether a token of ``client_id`` may still be used: every client that is no
        other node's may; another node's only while it is on the trust list (voted
        out: refused on its next call, not when its token expires). While the chain
        is unreachable the trust list as last read decides."""
        country = country_of(client_id)
        if country is None:
            return True
        try:
            self.trust.by_country(country)
        except UntrustedNode:
            return False
        except FederationError:
            return True  # chain unreachable: short-lived tokens already issued stand
        return True

    def registration(self, base_url: str) -> dict:
        """What ``phrx federation join`` puts on chain for this node."""
        return {
            "country": self.country,
            "fhir_base_url": base_url,
            "signing_jwk": json.dumps(self.keys.public_signing_jwk(), sort_keys=True),
            "encryption_key": self.keys.encryption_public_bytes(),
        }


class ShareLinks:
    """The link issuer ``$share`` uses (operations/share.py ``LinkIssuer``): a fresh
    256-bit key per link, sealed under the patient's data key; the manifest lives at
    ``{FHIR base}/shl/{link id}``."""

    def __init__(self, federation: NodeFederation, fhir_base: str) -> None:
        self.federation = federation
        self.manifest_base = fhir_base.rstrip("/") + "/shl"

    def issue(self, conn, link_id: str, patient_id: str, consent_id: str, req, end) -> str:
        key = shlink.new_key()
        keyring = self.federation.node.keyring
        data_key = keyring.data_key(KeyRing.patient_scope(patient_id), create=False)
        exp = int(end.timestamp()) if end is not None and end.year < 9999 else None
        self.federation.links.create(
            conn,
            link_id=link_id,
            patient_id=patient_id,
            consent_id=consent_id,
            key=key,
            data_key=data_key,
            expires_s=exp,
            passcode=req.passcode,
            label=req.label,
        )
        flag = "P" if req.passcode else ""
        url = f"{self.manifest_base}/{link_id}"
        return shlink.ShareLink(url, key, exp, flag, req.label).encode()

    def revoke(self, conn, consent_ids: list[str]) -> None:
        self.federation.links.revoke_for(conn, consent_ids)
