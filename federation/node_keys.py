"""This node's federation keys, kept in ``DATA/keys/`` (0600 files in a 0700 dir).

* ``node-signing.jwk`` -- EC P-384 private JWK: signs the node's client assertions
  (SMART Backend Services, ES384) when it calls another country's node;
* ``node-encryption.key`` -- X25519 private key (32 raw bytes, hex): other nodes wrap
  a patient's released data key for its public half (``$share``, vault.release).

Only the public halves leave the node: ``phrx federation join`` puts them in the
AuthorityRegistry, the federation's trust list. Flask-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from joserfc.jwk import ECKey

from anchoring.node_chain import write_private

SIGNING_FILE = "node-signing.jwk"
ENCRYPTION_FILE = "node-encryption.key"
SIGNING_ALG = "ES384"


@dataclass(frozen=True)
class NodeKeys:
    signing: ECKey
    encryption: x25519.X25519PrivateKey

    @property
    def kid(self) -> str:
        return self.signing.thumbprint()

    def public_signing_jwk(self) -> dict:
        """The public JWK other nodes check this node's assertions with."""
        public = self.signing.as_dict(private=False)
        return {**public, "kid": self.kid, "alg": SIGNING_ALG, "use": "sig"}

    def encryption_public_bytes(self) -> bytes:
        return self.encryption.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )


def _keys_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "keys"


def _write_signing(path: Path) -> None:
    fresh = ECKey.generate_key("P-384", private=True)
    write_private(path, json.dumps(fresh.as_dict(private=True)) + "\n")


def _write_encryption(path: Path) -> None:
    raw = x25519.X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    write_private(path, raw.hex() + "\n")


def load_or_create(data_dir: Path) -> NodeKeys:
    """The node's keys, created (0600) on first use."""
    keys = _keys_dir(data_dir)
    signing_file, encryption_file = keys / SIGNING_FILE, keys / ENCRYPTION_FILE
    if not signing_file.exists():
        _write_signing(signing_file)
    if not encryption_file.exists():
        _write_encryption(encryption_file)
    signing = ECKey.import_key(json.loads(signing_file.read_text()))
    encryption = x25519.X25519PrivateKey.from_private_bytes(
        bytes.fromhex(encryption_file.read_text().strip())
    )
    return NodeKeys(signing, encryption)


def rotate(data_dir: Path) -> NodeKeys:
    """New signing and encryption keys in place of the old, each file replaced
    atomically (a running node never sees a missing key). The caller then puts their
    public halves on chain: the old ones stop being trusted at once."""
    keys = _keys_dir(data_dir)
    _write_signing(keys / SIGNING_FILE)
    _write_encryption(keys / ENCRYPTION_FILE)
    return load_or_create(data_dir)


class KeyFiles:
    """The node's keys as the files say now: reloaded when a file changed (a
    ``phrx federation rotate-keys`` takes effect in a running node on its next call
    to another node, without a restart)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._loaded: tuple[tuple, NodeKeys] | None = None

    def _stamp(self) -> tuple:
        keys = _keys_dir(self.data_dir)
        stamps = []
        for name in (SIGNING_FILE, ENCRYPTION_FILE):
            try:
                st = (keys / name).stat()
            except FileNotFoundError:
                return ()
            stamps.append((st.st_mtime_ns, st.st_ino, st.st_size))
        return tuple(stamps)

    def current(self) -> NodeKeys:
        stamp = self._stamp()
        loaded = self._loaded
        if loaded is None or not stamp or loaded[0] != stamp:
            keys = load_or_create(self.data_dir)
            self._loaded = loaded = (self._stamp(), keys)
        return loaded[1]
