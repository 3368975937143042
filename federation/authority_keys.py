"""Encryption public keys of other countries' nodes, from the chain's AuthorityRegistry.

Flask-free. The AuthorityRegistry is the federation's trust list (docs/anchoring.md,
contracts): each authority registers its country, FHIR base URL,
signing JWK and encryption key, and only a >2/3 vote of the authorities changes
them. ``$share`` wraps a patient's data key for the recipient node's key, so the
key is looked up there, at the moment of the share -- a key rotated or a node voted
out on chain takes effect at once.

``encryptionKey`` bytes on chain are one of: a public JWK as UTF-8 JSON (like the
signing JWK), a PEM SubjectPublicKeyInfo, or the 32 raw bytes of an X25519 key.
Only X25519 and RSA >= 3072 are accepted (:func:`vault.keyio.check_key`).

Configuration (``PHRX_NODE_PUBLIC_KEY``: ``callable(country) -> key | None``) is the
fallback: for a node without a chain, a chain that cannot be reached, or a country
registered without an encryption key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import x25519

from vault.errors import VaultError
from vault.keyio import check_key, public_key_from_jwk, public_key_from_pem

log = logging.getLogger("phrx.federation")
PublicKeyLookup = Callable[[str], object | None]
_X25519_RAW = 32


def parse_encryption_key(raw: bytes) -> object | None:
    """The public key in an authority's ``encryptionKey`` bytes; None when empty.
    Raises VaultError for bytes that hold no acceptable key."""
    raw = bytes(raw or b"")
    if not raw:
        return None
    if len(raw) == _X25519_RAW:
        return x25519.X25519PublicKey.from_public_bytes(raw)
    if raw.lstrip().startswith(b"{"):
        try:
            key = public_key_from_jwk(json.loads(raw))
        except (KeyError, TypeError, ValueError, RecursionError) as error:
            raise VaultError(f"encryption key JWK is malformed: {type(error).__name__}") from None
    elif raw.lstrip().startswith(b"-----BEGIN"):
        key = public_key_from_pem(raw)
    else:
        raise VaultError("encryption key is neither a JWK, a PEM key nor raw X25519 bytes")
    check_key(key)
    return key


def chain_lookup(authorities: Callable[[], list], fallback: PublicKeyLookup | None = None):
    """A :data:`PublicKeyLookup` reading ``authorities()`` (``ChainClient.authorities``:
    AuthorityInfo with ``country`` and ``encryption_key``) on every call, then
    ``fallback`` where the chain names no usable key."""

    def lookup(country: str) -> object | None:
        try:
            listed = authorities()
        except Exception as error:  # chain unreachable: the configured key, if any
            log.warning("AuthorityRegistry unreachable (%s); using configuration", error)
            listed = []
        for info in listed:
            if info.country.upper() != country.upper():
                continue
            try:
                key = parse_encryption_key(info.encryption_key)
            except (VaultError, ValueError) as error:
                log.warning("authority %s registers an unusable key: %s", info.country, error)
                key = None
            if key is not None:
                return key
        return fallback(country) if fallback is not None else None

    return lookup


def for_node(node, fallback: PublicKeyLookup | None = None) -> PublicKeyLookup | None:
    """The lookup of ``node``: its chain's AuthorityRegistry when connected, else
    ``fallback`` (configuration) alone."""
    anchoring = getattr(node, "anchoring", None)
    if anchoring is None:
        return fallback
    return chain_lookup(lambda: anchoring.chain.client().authorities(), fallback)
