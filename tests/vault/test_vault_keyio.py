"""Key generation and PEM/JWK (de)serialization for key release."""

import os

import pytest

from vault.errors import VaultError
from vault.release import (
    generate_rsa_keypair,
    generate_x25519_keypair,
    jwk_thumbprint,
    private_key_from_pem,
    private_key_to_pem,
    public_key_from_jwk,
    public_key_from_pem,
    public_key_to_jwk,
    public_key_to_pem,
    unwrap_x25519,
    wrap_for_x25519,
)

KEY = os.urandom(32)
CTX = b"ctx"


@pytest.fixture(scope="module")
def rsa_pair():
    return generate_rsa_keypair()


def _same_public(a, b):
    return public_key_to_pem(a) == public_key_to_pem(b)


def test_pem_roundtrips(rsa_pair):
    xpriv, xpub = generate_x25519_keypair()
    for priv, pub in ((xpriv, xpub), rsa_pair):
        assert _same_public(public_key_from_pem(public_key_to_pem(pub)), pub)
        plain = private_key_to_pem(priv)
        assert b"ENCRYPTED" not in plain
        assert _same_public(private_key_from_pem(plain).public_key(), pub)
        enc = private_key_to_pem(priv, password=b"pw")
        assert b"ENCRYPTED" in enc
        assert _same_public(private_key_from_pem(enc, password=b"pw").public_key(), pub)
        with pytest.raises(VaultError):
            private_key_from_pem(enc, password=b"wrong")
    # A usable key after a roundtrip, not just equal bytes.
    blob = wrap_for_x25519(KEY, public_key_from_pem(public_key_to_pem(xpub)), CTX)
    assert unwrap_x25519(blob, private_key_from_pem(private_key_to_pem(xpriv)), CTX) == KEY


def test_jwk_roundtrips(rsa_pair):
    _, xpub = generate_x25519_keypair()
    xjwk = public_key_to_jwk(xpub)
    assert xjwk["kty"] == "OKP" and xjwk["crv"] == "X25519" and "=" not in xjwk["x"]
    assert _same_public(public_key_from_jwk({**xjwk, "kid": "k1", "use": "enc"}), xpub)
    rjwk = public_key_to_jwk(rsa_pair[1])
    assert rjwk["kty"] == "RSA" and rjwk["e"] == "AQAB"
    assert _same_public(public_key_from_jwk(rjwk), rsa_pair[1])


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "Ed25519", "x": "A" * 43},
        {"kty": "OKP", "crv": "X25519"},
        {"kty": "OKP", "crv": "X25519", "x": "AAAA"},
        {"kty": "OKP", "crv": "X25519", "x": "!!" * 22},
        {"kty": "RSA", "n": "AQAB"},
    ],
)
def test_bad_jwk_refused(jwk):
    with pytest.raises(VaultError):
        public_key_from_jwk(jwk)


def test_pem_garbage_refused():
    with pytest.raises(VaultError):
        public_key_from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_jwk_thumbprint_rfc7638_example():
    # RFC 7638 section 3.1 example key and its published thumbprint.
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
            "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
            "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
            "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_jwk_thumbprint_distinguishes_keys():
    a = public_key_to_jwk(generate_x25519_keypair()[1])
    b = public_key_to_jwk(generate_x25519_keypair()[1])
    assert jwk_thumbprint(a) == jwk_thumbprint({**a, "kid": "x"}) != jwk_thumbprint(b)
