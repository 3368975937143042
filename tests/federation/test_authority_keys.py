"""Another authority's encryption key, as read from the chain: hostile bytes are refused."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from federation.authority_keys import parse_encryption_key
from vault.errors import VaultError


def test_a_raw_x25519_key_is_read():
    key = x25519.X25519PrivateKey.generate().public_key()
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert isinstance(parse_encryption_key(raw), x25519.X25519PublicKey)


@pytest.mark.parametrize(
    "raw",
    [b"{" + b'"a":[' * 100_000, b'{"kty": "OKP"', b'{"kty": "XX"}', b"nonsense"],
)
def test_a_malformed_key_is_a_vault_error(raw):
    with pytest.raises(VaultError):
        parse_encryption_key(raw)
