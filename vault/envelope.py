"""Envelope encryption of resource versions.

Blob format (v1)::

    0x01 || nonce (12 bytes) || AES-256-GCM ciphertext + 16-byte tag

The AES key is derived per record: ``HKDF-SHA256(data_key, info=LABEL || aad)``.
The AAD is also passed to GCM, so a row moved to another resource, version or
patient scope fails authentication instead of decrypting into the wrong place.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault._encoding import length_prefixed
from vault.errors import IntegrityError

VERSION = 1
NONCE_LEN = 12
TAG_LEN = 16
KEY_LEN = 32
_HEADER = bytes([VERSION])
_MIN_LEN = 1 + NONCE_LEN + TAG_LEN
_AAD_LABEL = b"phrx/record/v1"
_KDF_LABEL = b"phrx/vault/v1/record-key\x00"  # NUL: the label can never run into the AAD
_SHA256 = hashes.SHA256()


def record_aad(res_type: str, res_id: str, version_id: int | str, scope: str) -> bytes:
    """Canonical AAD for one resource version (length-prefixed fields).

    ``version_id`` 3 and "3" give the same AAD on purpose: FHIR versionIds are
    strings, and the DB may hand back either form.
    """
    if isinstance(version_id, bool) or not isinstance(version_id, int | str):
        raise TypeError("version_id must be int or str")
    fields = (res_type, res_id, str(version_id), scope)
    if not all(isinstance(f, str) and f for f in fields):
        raise ValueError("record_aad fields must be non-empty strings")
    return length_prefixed(_AAD_LABEL, *(f.encode("utf-8") for f in fields))


def _record_cipher(data_key: bytes, aad: bytes) -> AESGCM:
    if len(data_key) != KEY_LEN:
        raise ValueError("data key must be 32 bytes")
    # The data key is already uniform, but full HKDF (extract+expand) costs
    # ~1 µs and keeps the construction textbook.  Each derived key only ever
    # seals the few writes of one resource version, so random 96-bit nonces
    # stay far below their collision bound.
    key = HKDF(_SHA256, KEY_LEN, None, _KDF_LABEL + aad).derive(data_key)
    return AESGCM(key)


def seal(data_key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt ``plaintext`` bound to ``aad``; returns a v1 blob."""
    nonce = os.urandom(NONCE_LEN)
    return _HEADER + nonce + _record_cipher(data_key, aad).encrypt(nonce, plaintext, aad)


def open_sealed(data_key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Decrypt a v1 blob; any tampering, truncation or wrong AAD -> IntegrityError."""
    blob = bytes(blob)  # accept memoryview/bytearray from DB drivers
    if len(blob) < _MIN_LEN or blob[0] != VERSION:
        raise IntegrityError("sealed blob is truncated or has an unknown format version")
    nonce = blob[1 : 1 + NONCE_LEN]
    try:
        return _record_cipher(data_key, aad).decrypt(nonce, blob[1 + NONCE_LEN :], aad)
    except InvalidTag:
        raise IntegrityError("sealed blob failed authentication") from None
