"""Key release: wrap a symmetric key for a recipient's public key.

* X25519: RFC 9180 HPKE, base mode, suite DHKEM(X25519, HKDF-SHA256) /
  HKDF-SHA256 / AES-256-GCM (``cryptography.hazmat.primitives.hpke``), with
  ``info = b"phrx/vault/v1/release\\x00" || context``.
  Blob: ``0x01 || enc (32 bytes) || ciphertext+tag``.
* RSA: RSA-OAEP with SHA-256 / MGF1-SHA-256, ``label = context``; keys under
  3072 bits are refused.  Blob: ``0x02 || OAEP ciphertext``.

``context`` should name what is released and to whom (e.g. a length-prefixed
scope + recipient id) so a wrapped key cannot be replayed in another context.
Any unwrap failure raises :class:`vault.errors.IntegrityError`.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import padding, rsa, x25519

from vault.errors import IntegrityError, VaultError
from vault.keyio import (
    MIN_RSA_BITS,
    check_key,
    generate_rsa_keypair,
    generate_x25519_keypair,
    jwk_thumbprint,
    private_key_from_pem,
    private_key_to_pem,
    public_key_from_jwk,
    public_key_from_pem,
    public_key_to_jwk,
    public_key_to_pem,
)

__all__ = [
    "MIN_RSA_BITS",
    "generate_rsa_keypair",
    "generate_x25519_keypair",
    "jwk_thumbprint",
    "private_key_from_pem",
    "private_key_to_pem",
    "public_key_from_jwk",
    "public_key_from_pem",
    "public_key_to_jwk",
    "public_key_to_pem",
    "unwrap_rsa",
    "unwrap_x25519",
    "wrap_for_rsa",
    "wrap_for_x25519",
]

_X25519_TAG = b"\x01"
_RSA_TAG = b"\x02"
_INFO_LABEL = b"phrx/vault/v1/release\x00"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def _check_secret(key: bytes) -> None:
    # Key release is for keys, not bulk data; a size bound catches callers that
    # pass a document by mistake (and keeps RSA-OAEP within its limit).
    if not isinstance(key, bytes | bytearray) or not 16 <= len(key) <= 64:
        raise ValueError("key to release must be 16..64 bytes")


def wrap_for_x25519(key: bytes, recipient_public: x25519.X25519PublicKey, context: bytes) -> bytes:
    """HPKE-seal ``key`` to ``recipient_public`` bound to ``context``."""
    _check_secret(key)
    if not isinstance(recipient_public, x25519.X25519PublicKey):
        raise VaultError("recipient key must be an X25519 public key")
    return _X25519_TAG + _SUITE.encrypt(bytes(key), recipient_public, info=_INFO_LABEL + context)


def unwrap_x25519(blob: bytes, private: x25519.X25519PrivateKey, context: bytes) -> bytes:
    """Open a blob from :func:`wrap_for_x25519`."""
    if not isinstance(private, x25519.X25519PrivateKey):
        raise VaultError("private key must be an X25519 private key")
    blob = bytes(blob)
    if blob[:1] != _X25519_TAG:
        raise IntegrityError("not an X25519 key-release blob")
    try:
        return _SUITE.decrypt(blob[1:], private, info=_INFO_LABEL + context)
    except (InvalidTag, ValueError):
        raise IntegrityError("key-release blob failed authentication") from None


def _oaep(context: bytes) -> padding.OAEP:
    return padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=context
    )


def wrap_for_rsa(key: bytes, public: rsa.RSAPublicKey, context: bytes) -> bytes:
    """RSA-OAEP-SHA256-encrypt ``key`` with ``context`` as the OAEP label."""
    _check_secret(key)
    if not isinstance(public, rsa.RSAPublicKey):
        raise VaultError("recipient key must be an RSA public key")
    check_key(public)
    return _RSA_TAG + public.encrypt(bytes(key), _oaep(context))


def unwrap_rsa(blob: bytes, private: rsa.RSAPrivateKey, context: bytes) -> bytes:
    """Open a blob from :func:`wrap_for_rsa`."""
    if not isinstance(private, rsa.RSAPrivateKey):
        raise VaultError("private key must be an RSA private key")
    check_key(private)
    blob = bytes(blob)
    if blob[:1] != _RSA_TAG:
        raise IntegrityError("not an RSA key-release blob")
    try:
        return private.decrypt(blob[1:], _oaep(context))
    except ValueError:
        raise IntegrityError("key-release blob failed authentication") from None
