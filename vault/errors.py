"""Vault exception hierarchy.

Messages never contain key material or plaintext, so they are safe to log.
"""


class VaultError(Exception):
    """Base class for every error raised by :mod:`vault`."""


class IntegrityError(VaultError):
    """Authenticated decryption failed: the blob was altered, truncated or swapped."""


class KeyDestroyed(VaultError):
    """The data key for a scope was shredded (or never existed and creation was off)."""
