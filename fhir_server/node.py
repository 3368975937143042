"""A PHRX node's Flask-free core: data dir, database, key ring and resource store.

A fresh data dir initialises itself::

    DATA/node.json          node id and creation time (no secrets)
    DATA/keys/              0700: master.key (or PHRX_MASTER_KEY), the SMART and chain keys, 0600
    DATA/phrx.sqlite3       default store (SQLite, WAL) unless a database URL is given; 0600,
                            as are its -wal / -shm files (SQLite gives them the database's mode)
    DATA/logs/phrx.log      server log (never holds PHI, tokens or keys); 0600 in a 0700 dir

Modes do not depend on the umask. On every start an existing data dir is checked:
``keys/``, ``logs/``, the log and the SQLite files are tightened to the modes above
with a warning (a data dir from an older version, or ``keys/`` made by
``phrx serve --chain dev`` writing ``chain.key`` first); a key file that group or
other may access is refused, as ``master.key`` always was -- it may have been
copied, and whether to rotate it or just chmod it is the operator's decision.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

import anchoring.journal  # noqa: F401 - registers the journal tables on the schema
from anchoring import defaults as anchor_defaults
from fhir_server import ids
from fhir_server.storage.db import make_engine
from fhir_server.storage.keystore import SqlDataKeyStore
from fhir_server.storage.schema import create_schema
from fhir_server.storage.store import ResourceStore
from vault.keyring import KeyRing
from vault.masterkey import check_owner_only, master_key_from_config

log = logging.getLogger("phrx.node")
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
LOG_FILE = "phrx.log"
# Files SQLite (and writer_queue.WriterQueue) keep next to a database file.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal", ".writers")


@dataclass(frozen=True)
class NodeConfig:
    data_dir: Path
    database_url: str | None = None
    base_url: str | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    max_json_depth: int = 64
    # Anchoring: None = no chain (tests, tools); "dev" = local anvil in DATA/chain;
    # "memory" = in-process EVM (tests); or any JSON-RPC URL. See anchoring/node_chain.py.
    chain: str | None = None
    anchor_interval: float = anchor_defaults.INTERVAL_S
    anchor_batch: int = anchor_defaults.BATCH_LEAVES
    anchor_worker: bool = True  # run the batcher in this process (else: phrx anchor-worker)
    anchor_country: str = "XX"
    # Origins whose browser apps may call the API (fhir_server/api/cors.py); "*" = any.
    cors_origins: tuple[str, ...] = ("*",)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'phrx.sqlite3'}"


def _tighten(path: Path, allowed: int, warn: bool = True) -> None:
    """Clear the permission bits of ``path`` outside ``allowed`` (by path: never
    open a SQLite file here, closing it would drop this process's locks on it)."""
    current = stat.S_IMODE(os.stat(path).st_mode)
    if current & ~allowed:
        os.chmod(path, current & allowed)
        if warn:
            log.warning(
                "data dir: %s was open to group/other (mode %04o); tightened to %04o",
                path,
                current,
                current & allowed,
            )


def _private_dir(path: Path) -> None:
    try:
        path.mkdir(mode=PRIVATE_DIR)
        os.chmod(path, PRIVATE_DIR)  # mkdir's mode is filtered by the umask
    except FileExistsError:
        _tighten(path, PRIVATE_DIR)


def _private_file(path: Path, warn: bool = True) -> None:
    """Create ``path`` empty with mode 0600, or tighten it if it exists."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, PRIVATE_FILE)
    except FileExistsError:
        _tighten(path, PRIVATE_FILE, warn)
        return
    try:
        os.fchmod(fd, PRIVATE_FILE)  # the umask may have cleared owner bits
    finally:
        os.close(fd)


def _check_key_files(keys: Path) -> None:
    """Refuse key files group or other may access (the master key's rule, for all)."""
    for entry in sorted(keys.iterdir()):
        try:
            st = os.stat(entry)
        except FileNotFoundError:  # another process's temp file, renamed meanwhile
            continue
        if stat.S_ISREG(st.st_mode):
            check_owner_only(st, entry)


def private_sqlite_files(database_url: str) -> None:
    """Make an on-disk SQLite database 0600 before SQLite first opens it: SQLite
    creates the -wal and -shm files with the database file's mode. Files left
    looser by an older version are tightened."""
    if not database_url.startswith("sqlite"):
        return
    database = make_url(database_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.is_dir():
        return  # SQLite reports the missing directory itself
    _private_file(path)
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if suffix == ".writers":
            # writer_queue.WriterQueue's lock file would be 0644; empty, so tightened quietly
            _private_file(companion, warn=False)
        elif companion.exists():
            _tighten(companion, PRIVATE_FILE)


def init_data_dir(data_dir: Path) -> dict:
    """Create the data dir layout if missing, with private modes (see the module
    docstring); return the node identity."""
    data_dir.mkdir(parents=True, exist_ok=True)
    _private_dir(data_dir / "logs")
    _private_file(data_dir / "logs" / LOG_FILE)  # logging appends to it, mode kept
    keys = data_dir / "keys"
    _private_dir(keys)
    _check_key_files(keys)
    identity_file = data_dir / "node.json"
    if not identity_file.exists():
        identity = {"node_id": str(uuid.uuid4()), "created": ids.instant(ids.now_us())}
        identity[VERSION_CHAINS] = 1  # a new store: every version is chained from the start
        tmp = identity_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(identity, indent=2))
        os.replace(tmp, identity_file)
    return json.loads(identity_file.read_text())


# node.json marks a store whose versions are all chained (vault.version_chain). Only
# a data dir without the mark -- one made before chains existed -- is chained once
# at start; the mark lives outside the database, so a database writer cannot make a
# node re-chain (and so launder) a rolled-back resource.
VERSION_CHAINS = "version_chains"


class Node:
    def __init__(self, config: NodeConfig):
        self.config = config
        self.identity = init_data_dir(config.data_dir)
        master = master_key_from_config(config.data_dir / "keys" / "master.key").load()
        private_sqlite_files(config.effective_database_url)
        self.engine = make_engine(config.effective_database_url)
        create_schema(self.engine)
        self.keyring = KeyRing(master, SqlDataKeyStore(self.engine))
        self.store = ResourceStore(self.engine, self.keyring)
        if not self.identity.get(VERSION_CHAINS):
            self._chain_legacy_versions()
        # Consent hook (see fhir_server.access.gate): every node enforces the patients'
        # Consents (fhir_server.access.consent_hook says who is decided how). Tests and
        # tools may replace it; None switches consent off (scopes still apply).
        from fhir_server.access.consent_hook import NodeConsent

        self.consent = NodeConsent(self)
        self.anchoring = None
        if config.chain:
            from anchoring.node_chain import NodeAnchoring

            self.anchoring = NodeAnchoring(
                self.engine,
                config.data_dir,
                config.chain,
                interval=config.anchor_interval,
                batch_size=config.anchor_batch,
                run_batcher=config.anchor_worker,
                country=config.anchor_country,
                base_url=config.base_url or "",
            )
        self.federation = None
        if self.anchoring is not None:
            from fhir_server.node_federation import NodeFederation

            self.federation = NodeFederation(self)

    @property
    def node_id(self) -> str:
        return self.identity["node_id"]

    def _chain_legacy_versions(self) -> None:
        """A data dir from before version chains: chain its versions once, then mark it."""
        chained = self.store.chain_legacy_versions()
        if chained:
            log.warning("version chains computed for %d resources of an older store", chained)
        identity_file = self.config.data_dir / "node.json"
        identity = {**json.loads(identity_file.read_text()), VERSION_CHAINS: 1}
        tmp = identity_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(identity, indent=2))
        os.replace(tmp, identity_file)
        self.identity = identity

    def close(self) -> None:
        if self.anchoring is not None:
            self.anchoring.close()
            self.anchoring = None
        self.store.statistics.wait()  # an ANALYZE under way holds a connection
        self.engine.dispose()
