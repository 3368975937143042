"""PHRX vault: key hierarchy, envelope encryption, blind index, key release.

Flask-free.  See :mod:`vault.keyring` for the key hierarchy.
"""

from vault.blind import BlindIndex
from vault.envelope import open_sealed, record_aad, seal
from vault.errors import IntegrityError, KeyDestroyed, VaultError
from vault.keyring import NODE_SCOPE, DataKeyStore, KeyRing, MemoryDataKeyStore
from vault.masterkey import EnvMasterKey, FileMasterKey, MasterKeySource, master_key_from_config

__all__ = [
    "NODE_SCOPE",
    "BlindIndex",
    "DataKeyStore",
    "EnvMasterKey",
    "FileMasterKey",
    "IntegrityError",
    "KeyDestroyed",
    "KeyRing",
    "MasterKeySource",
    "MemoryDataKeyStore",
    "VaultError",
    "master_key_from_config",
    "open_sealed",
    "record_aad",
    "seal",
]
