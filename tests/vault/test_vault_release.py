"""Key release: HPKE/X25519 and RSA-OAEP wrapping, RSA size floor."""

import base64
import os

import pytest
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from vault.errors import IntegrityError, VaultError
from vault.release import (
    generate_rsa_keypair,
    generate_x25519_keypair,
    public_key_from_jwk,
    public_key_from_pem,
    unwrap_rsa,
    unwrap_x25519,
    wrap_for_rsa,
    wrap_for_x25519,
)

KEY = os.urandom(32)
CTX = b"scope=patient:p1;recipient=node-b"


def _b64(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


@pytest.fixture(scope="module")
def rsa_pair():
    return generate_rsa_keypair()


@pytest.fixture(scope="module")
def weak_rsa():
    # Generated directly: our own generator refuses this size.
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private, private.public_key()


def test_x25519_roundtrip_and_randomized():
    priv, pub = generate_x25519_keypair()
    blob = wrap_for_x25519(KEY, pub, CTX)
    assert unwrap_x25519(blob, priv, CTX) == KEY
    assert wrap_for_x25519(KEY, pub, CTX) != blob  # fresh ephemeral key each time


def test_x25519_is_standard_hpke():
    # The documented format lets a partner open the blob with any RFC 9180 library.
    priv, pub = generate_x25519_keypair()
    blob = wrap_for_x25519(KEY, pub, CTX)
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    assert blob[0] == 1
    assert suite.decrypt(blob[1:], priv, info=b"phrx/vault/v1/release\x00" + CTX) == KEY


def test_x25519_wrong_private_key_context_or_tamper_fails():
    priv, pub = generate_x25519_keypair()
    other, _ = generate_x25519_keypair()
    blob = wrap_for_x25519(KEY, pub, CTX)
    with pytest.raises(IntegrityError):
        unwrap_x25519(blob, other, CTX)
    with pytest.raises(IntegrityError):
        unwrap_x25519(blob, priv, CTX + b"x")
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x80
        with pytest.raises(IntegrityError):
            unwrap_x25519(bytes(bad), priv, CTX)
    with pytest.raises(IntegrityError):
        unwrap_x25519(blob[:40], priv, CTX)


def test_rsa_roundtrip(rsa_pair):
    priv, pub = rsa_pair
    assert pub.key_size == 3072
    assert unwrap_rsa(wrap_for_rsa(KEY, pub, CTX), priv, CTX) == KEY


def test_rsa_wrong_private_key_context_or_tamper_fails(rsa_pair):
    priv, pub = rsa_pair
    other = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    blob = wrap_for_rsa(KEY, pub, CTX)
    with pytest.raises(IntegrityError):
        unwrap_rsa(blob, other, CTX)
    with pytest.raises(IntegrityError):
        unwrap_rsa(blob, priv, b"other context")
    bad = bytearray(blob)
    bad[100] ^= 1
    with pytest.raises(IntegrityError):
        unwrap_rsa(bytes(bad), priv, CTX)


def test_blob_types_not_interchangeable(rsa_pair):
    xpriv, xpub = generate_x25519_keypair()
    with pytest.raises(IntegrityError):
        unwrap_x25519(wrap_for_rsa(KEY, rsa_pair[1], CTX), xpriv, CTX)
    with pytest.raises(IntegrityError):
        unwrap_rsa(wrap_for_x25519(KEY, xpub, CTX), rsa_pair[0], CTX)


def test_rsa_under_3072_refused(weak_rsa):
    priv, pub = weak_rsa
    with pytest.raises(VaultError, match="2048 bits refused"):
        generate_rsa_keypair(2048)
    with pytest.raises(VaultError, match="refused"):
        wrap_for_rsa(KEY, pub, CTX)
    with pytest.raises(VaultError, match="refused"):
        unwrap_rsa(b"\x02" + b"\x00" * 256, priv, CTX)
    pem = pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(VaultError, match="refused"):
        public_key_from_pem(pem)
    n = pub.public_numbers()
    jwk = {"kty": "RSA", "n": _b64(n.n.to_bytes(256, "big")), "e": "AQAB"}
    with pytest.raises(VaultError, match="refused"):
        public_key_from_jwk(jwk)


def test_wrong_key_types_refused(rsa_pair):
    _, xpub = generate_x25519_keypair()
    with pytest.raises(VaultError):
        wrap_for_x25519(KEY, rsa_pair[1], CTX)
    with pytest.raises(VaultError):
        wrap_for_rsa(KEY, xpub, CTX)


@pytest.mark.parametrize("bad", [b"", b"k" * 15, b"k" * 65])
def test_secret_size_bounds(bad):
    _, pub = generate_x25519_keypair()
    with pytest.raises(ValueError):
        wrap_for_x25519(bad, pub, CTX)
