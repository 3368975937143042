"""Node master key (KEK) sources.

The master key is 32 random bytes that never reach the database or a log.
Sources sit behind :class:`MasterKeySource` so a KMS/HSM-backed source can be
added later without touching :class:`vault.keyring.KeyRing`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import Protocol, runtime_checkable

from vault._encoding import b64url_decode
from vault.errors import VaultError

MASTER_KEY_LEN = 32
ENV_VAR = "PHRX_MASTER_KEY"
OWNER_ONLY = 0o077  # permission bits of group and other: none may be set on a key file


class KeyFileError(VaultError, OSError):
    """A key file that cannot be used: unreadable, not a regular file, or open to
    group/other. An OSError too, so command lines report it as one line."""


def check_owner_only(st: os.stat_result, path: Path, what: str = "key file") -> None:
    """Raise VaultError unless ``st`` (of ``path``) is a regular file that group
    and other can neither read, write nor execute."""
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{what} {path} is not a regular file")
    if st.st_mode & OWNER_ONLY:
        raise KeyFileError(
            f"{what} {path} has mode {stat.S_IMODE(st.st_mode):04o}; "
            "it must not be accessible by group/other (chmod 600)"
        )


def read_private_file(path: Path, what: str = "key file", limit: int = 1 << 20) -> bytes:
    """Read a secret file: no symlink, a regular file, owner-only (see
    :func:`check_owner_only`); at most ``limit`` bytes."""
    try:
        # O_NOFOLLOW: a symlink planted at the key path is refused.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise KeyFileError(f"cannot open {what} {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        check_owner_only(os.fstat(fh.fileno()), path, what)  # the opened file: no TOCTOU
        return fh.read(limit)


@runtime_checkable
class MasterKeySource(Protocol):
    """Anything that can produce the 32-byte node master key."""

    def load(self) -> bytes: ...


class FileMasterKey:
    """Master key kept as 32 raw bytes in a file that only the owner may read."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileMasterKey({str(self.path)!r})"

    def load(self) -> bytes:
        """Read the key, creating it (0600, directory 0700) if absent."""
        if not self.path.exists():
            self._create()
        return self._read()

    def _create(self) -> None:
        parent = self.path.parent
        if not parent.exists():
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdir's mode is filtered by the umask; set it explicitly.
            os.chmod(parent, 0o700)
        # Write to a private temp file, then hard-link it into place: link()
        # fails if the target exists, so two processes racing on first start
        # agree on one key and nobody ever reads a half-written file.
        tmp = parent / f".{self.path.name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(MASTER_KEY_LEN))
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def _read(self) -> bytes:
        data = read_private_file(self.path, "master key file", MASTER_KEY_LEN + 1)
        if len(data) != MASTER_KEY_LEN:
            raise VaultError(
                f"master key file {self.path} must hold exactly {MASTER_KEY_LEN} bytes"
            )
        return data


class EnvMasterKey:
    """Master key given as base64url in an environment variable."""

    def __init__(self, var: str = ENV_VAR) -> None:
        self.var = var

    def __repr__(self) -> str:
        return f"EnvMasterKey({self.var!r})"

    def load(self) -> bytes:
        """Decode the variable; it must be exactly 32 bytes."""
        text = os.environ.get(self.var)
        if not text:
            raise VaultError(f"environment variable {self.var} is not set")
        key = b64url_decode(text, f"environment variable {self.var}")
        if len(key) != MASTER_KEY_LEN:
            raise VaultError(
                f"environment variable {self.var} must decode to {MASTER_KEY_LEN} bytes"
            )
        return key


def master_key_from_config(path: Path | None) -> MasterKeySource:
    """Pick the source: ``PHRX_MASTER_KEY`` wins if set, else the key file."""
    if os.environ.get(ENV_VAR):
        return EnvMasterKey(ENV_VAR)
    if path is None:
        raise VaultError(f"no master key configured: set {ENV_VAR} or a master key file path")
    return FileMasterKey(Path(path))
