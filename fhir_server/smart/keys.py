"""The node's SMART signing key (RS256) in DATA/keys/, and JWT signing/verification.

The private JWK lives in ``DATA/keys/smart-signing.jwk`` (mode 0600, in a 0700
directory), created atomically on first use so concurrent workers agree on one
key. Like the master key, a key file that group or other may access is refused.
Only the public half is published at the ``jwks_uri``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from vault.masterkey import read_private_file

SIGNING_ALG = "RS256"
VERIFIED_CACHE_SIZE = 4096  # tokens whose signature check is remembered per process


def _create_exclusive(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` unless it exists (atomic, mode 0600)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another worker won the race
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def _key_dir(key_dir: Path) -> None:
    """Create ``key_dir`` 0700 if missing (an existing one is the node's to check)."""
    if not key_dir.exists():
        key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(key_dir, 0o700)  # mkdir's mode is filtered by the umask


def load_or_create_secret(path: Path, size: int = 32) -> bytes:
    if not path.exists():
        _key_dir(path.parent)
        _create_exclusive(path, secrets.token_bytes(size))
    return read_private_file(path, "secret key file")


class SigningKey:
    """RS256 key pair of this node: signs access tokens and id_tokens."""

    def __init__(self, key_dir: Path):
        path = key_dir / "smart-signing.jwk"
        if not path.exists():
            _key_dir(key_dir)
            fresh = RSAKey.generate_key(2048, auto_kid=True)
            data = fresh.as_dict(private=True)
            data.update(use="sig", alg=SIGNING_ALG)
            _create_exclusive(path, json.dumps(data).encode())
        text = read_private_file(path, "SMART signing key file")
        self.key = RSAKey.import_key(json.loads(text))
        self.kid = self.key.kid
        self._verified: dict[bytes, dict] = {}  # SHA-256 of a verified token -> claims

    def jwks(self) -> dict:
        public = self.key.as_dict(private=False)
        public.update(use="sig", alg=SIGNING_ALG, kid=self.kid)
        return {"keys": [public]}

    def sign(self, claims: dict) -> str:
        header = {"alg": SIGNING_ALG, "kid": self.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.key, algorithms=[SIGNING_ALG])

    def verify(self, token: str) -> dict:
        """Check the signature (RS256 only: ``none`` and HS256 never pass) and return
        the claims; raises joserfc errors or ValueError on any defect.

        A token that verified once is remembered by its SHA-256 (never the token
        itself), so a client's every request does not parse and check the same
        signature again: the result depends on nothing but the bytes and this key.
        Expiry, audience and revocation are the caller's, checked on every use."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        claims = self._verified.get(digest)
        if claims is None:
            keys = KeySet([self.key])
            decoded = jwt.decode(token, keys, algorithms=[SIGNING_ALG])
            if decoded.header.get("alg") != SIGNING_ALG:
                raise ValueError("unexpected alg")
            claims = dict(decoded.claims)
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()  # bounded; refilled by the tokens in use
            self._verified[digest] = claims
        return dict(claims)  # our tokens' claims are flat: a copy keeps the cache intact
