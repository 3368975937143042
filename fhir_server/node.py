"""A PHRX node's Flask-free core: data dir, database, key ring and resource store.

A fresh data dir initialises itself::

    DATA/node.json          node id and creation time (no secrets)
    DATA/keys/master.key    256-bit node master key, mode 0600 (or PHRX_MASTER_KEY)
    DATA/phrx.sqlite3       default store (SQLite, WAL) unless a database URL is given
    DATA/logs/phrx.log      server log (never holds PHI, tokens or keys)
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import anchoring.journal  # noqa: F401 - registers the journal tables on the schema
from anchoring import defaults as anchor_defaults
from fhir_server.resources import ids
from fhir_server.resources.db import create_schema, make_engine
from fhir_server.resources.keystore import SqlDataKeyStore
from fhir_server.resources.store import ResourceStore
from vault.keyring import KeyRing
from vault.masterkey import master_key_from_config


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

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'phrx.sqlite3'}"


def init_data_dir(data_dir: Path) -> dict:
    """Create the data dir layout if missing; return the node identity."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "logs").mkdir(exist_ok=True)
    keys = data_dir / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    identity_file = data_dir / "node.json"
    if not identity_file.exists():
        identity = {"node_id": str(uuid.uuid4()), "created": ids.instant(ids.now_us())}
        tmp = identity_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(identity, indent=2))
        os.replace(tmp, identity_file)
    return json.loads(identity_file.read_text())


class Node:
    def __init__(self, config: NodeConfig):
        self.config = config
        self.identity = init_data_dir(config.data_dir)
        master = master_key_from_config(config.data_dir / "keys" / "master.key").load()
        self.engine = make_engine(config.effective_database_url)
        create_schema(self.engine)
        self.keyring = KeyRing(master, SqlDataKeyStore(self.engine))
        self.store = ResourceStore(self.engine, self.keyring)
        # Consent hook (see fhir_server.resources.access_policy): every node enforces
        # the patients' Consents (consent.adapter says who is decided how). Tests and
        # tools may replace it; None switches consent off (scopes still apply).
        from consent.adapter import NodeConsent

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

    @property
    def node_id(self) -> str:
        return self.identity["node_id"]

    def close(self) -> None:
        if self.anchoring is not None:
            self.anchoring.close()
            self.anchoring = None
        self.store.statistics.wait()  # an ANALYZE under way holds a connection
        self.engine.dispose()
