"""Key generation and (de)serialization for key release (PEM and JWK dicts).

Only X25519 and RSA >= 3072 bits are accepted; anything else is refused at
the boundary so the federation layer never holds a key we cannot use safely.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, x25519

from vault._encoding import b64url_decode, b64url_encode
from vault.errors import VaultError

MIN_RSA_BITS = 3072
PublicKey = x25519.X25519PublicKey | rsa.RSAPublicKey
PrivateKey = x25519.X25519PrivateKey | rsa.RSAPrivateKey


def check_key(key: object) -> None:
    """Raise VaultError unless ``key`` is X25519 or RSA >= 3072 bits."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise VaultError(f"RSA key of {key.key_size} bits refused (minimum {MIN_RSA_BITS})")
    elif not isinstance(key, PublicKey | PrivateKey):
        raise VaultError(f"unsupported key type {type(key).__name__}")


def generate_x25519_keypair() -> tuple[x25519.X25519PrivateKey, x25519.X25519PublicKey]:
    """New X25519 key pair (private, public)."""
    private = x25519.X25519PrivateKey.generate()
    return private, private.public_key()


def generate_rsa_keypair(bits: int = MIN_RSA_BITS) -> tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey]:
    """New RSA key pair (private, public), e = 65537; refuses < 3072 bits."""
    if bits < MIN_RSA_BITS:
        raise VaultError(f"RSA key of {bits} bits refused (minimum {MIN_RSA_BITS})")
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return private, private.public_key()


def public_key_to_pem(key: PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM."""
    check_key(key)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_from_pem(data: bytes) -> PublicKey:
    """Load a PEM public key; only X25519 / RSA >= 3072 accepted."""
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise VaultError("not a valid PEM public key") from None
    check_key(key)
    return key  # type: ignore[return-value]


def private_key_to_pem(key: PrivateKey, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with ``password`` when given."""
    check_key(key)
    enc: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if password:
        enc = serialization.BestAvailableEncryption(password)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def private_key_from_pem(data: bytes, password: bytes | None = None) -> PrivateKey:
    """Load a PKCS#8 PEM private key; only X25519 / RSA >= 3072 accepted."""
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError):
        raise VaultError("not a valid PEM private key (or wrong password)") from None
    check_key(key)
    return key  # type: ignore[return-value]


def _int_b64(n: int) -> str:
    return b64url_encode(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def public_key_to_jwk(key: PublicKey) -> dict[str, str]:
    """Public JWK (RFC 7517/8037): OKP/X25519 or RSA (n, e)."""
    check_key(key)
    if isinstance(key, x25519.X25519PublicKey):
        return {"kty": "OKP", "crv": "X25519", "x": b64url_encode(key.public_bytes_raw())}
    if isinstance(key, rsa.RSAPublicKey):
        nums = key.public_numbers()
        return {"kty": "RSA", "n": _int_b64(nums.n), "e": _int_b64(nums.e)}
    raise VaultError("only public keys can be exported as a public JWK")


def public_key_from_jwk(jwk: dict[str, Any]) -> PublicKey:
    """Inverse of :func:`public_key_to_jwk`; extra members (kid, use, alg) are ignored."""
    kty = jwk.get("kty")
    try:
        if kty == "OKP" and jwk.get("crv") == "X25519":
            return x25519.X25519PublicKey.from_public_bytes(b64url_decode(jwk["x"], "JWK x"))
        if kty == "RSA":
            n = int.from_bytes(b64url_decode(jwk["n"], "JWK n"), "big")
            e = int.from_bytes(b64url_decode(jwk["e"], "JWK e"), "big")
            key = rsa.RSAPublicNumbers(e, n).public_key()
            check_key(key)
            return key
    except (KeyError, TypeError, ValueError) as exc:
        raise VaultError(f"invalid {kty} JWK: {exc.__class__.__name__}") from None
    raise VaultError(f"unsupported JWK kty/crv: {kty!r}/{jwk.get('crv')!r}")


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint (base64url): a stable key id for federation."""
    required = {"OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}.get(jwk.get("kty", ""))
    if required is None:
        raise VaultError("unsupported JWK kty for thumbprint")
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())
