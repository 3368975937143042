"""Database schema (SQLAlchemy Core) and engine creation for SQLite and PostgreSQL.

Only random ids, version numbers, timestamps, ciphertext and keyed hashes are
stored; every clear-text value of a resource lives inside its sealed version.
Index tables of the search engine are declared on the same ``metadata`` in
:mod:`fhir_server.search.tables`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    event,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError

from fhir_server.storage import wal_checkpoint
from fhir_server.storage.writer_queue import WriterQueue

metadata = MetaData()


class Bytes(LargeBinary):
    """BLOB / bytea without SQLAlchemy's per-value ``Binary()`` wrapping.

    sqlite3 and psycopg both take ``bytes`` natively; skipping the wrapper
    saves a Python call per hash on every index row (tens of thousands per bundle).
    """

    cache_ok = True

    def bind_processor(self, dialect):
        return None


# The current version of every resource; ``pk`` is what index rows point at.
resources = Table(
    "resources",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated_us", BigInteger, nullable=False),  # epoch microseconds, UTC
    Column("deleted", Boolean, nullable=False, default=False),
    # Key scope the current version is sealed under: a patient id, or "" for node data.
    Column("key_scope", String(80), nullable=False, default=""),
    # MAC naming the current version's chain link (vault.version_chain): a row
    # pointed back at an older version no longer matches it.
    Column("head", Bytes(32), nullable=True),
    UniqueConstraint("res_type", "res_id", name="uq_resources_type_id"),
    Index("ix_resources_type_updated", "res_type", "last_updated_us"),
)

# Every version ever written (history), sealed with AES-256-GCM.
versions = Table(
    "resource_versions",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),  # global write order
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated_us", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("method", String(8), nullable=False),  # POST / PUT / DELETE
    Column("key_scope", String(80), nullable=False, default=""),
    Column("sealed", Bytes, nullable=True),  # None for delete markers
    Column("leaf", Bytes(32), nullable=True),  # anchoring leaf hash of the content
    Column("link", Bytes(32), nullable=True),  # version chain link (vault.version_chain)
    UniqueConstraint("res_type", "res_id", "version_id", name="uq_versions_type_id_vid"),
    Index("ix_versions_updated", "last_updated_us"),
)

# Patient data keys, wrapped by the node master key (crypto-shredding = delete the row).
data_keys = Table(
    "data_keys",
    metadata,
    Column("scope", String(80), primary_key=True),
    Column("wrapped", Bytes, nullable=False),
    Column("created_us", BigInteger, nullable=False),
)

# Which patients' compartments each current resource belongs to (random ids only).
compartments = Table(
    "resource_compartments",
    metadata,
    Column("resource_pk", Integer, nullable=False, index=True),
    Column("patient_id", String(64), nullable=False),
    Index("ix_compartments_patient", "patient_id", "resource_pk"),
)

node_settings = Table(
    "node_settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(4000), nullable=False),
)
# A setting's value, for driver_sql (read on every request: key generation, audit head).
SETTING_VALUE = "SELECT value FROM node_settings WHERE name = ?"


def ensure_setting(engine: Engine, name: str, initial: str) -> None:
    """Create the setting ``name`` with ``initial`` unless it exists (outside any
    write transaction; another process creating it first is fine)."""
    with engine.connect() as conn:
        found = conn.execute(select(node_settings.c.name).where(node_settings.c.name == name))
        if found.first() is not None:
            return
    try:
        with engine.begin() as conn:
            conn.execute(insert(node_settings).values(name=name, value=initial))
    except IntegrityError:
        pass  # another process created it first


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Checkpoints run in the background (wal_checkpoint.py), not in a writer's COMMIT.
    cursor.execute(f"PRAGMA wal_autocheckpoint={wal_checkpoint.SAFETY_PAGES}")
    cursor.close()


_WRITE = "phrx_write_transaction"


def _sqlite_begin(conn) -> None:
    # Write transactions (engine.begin()) take the write lock at BEGIN, so
    # concurrent writers queue instead of failing half-way with "database is
    # locked" when a read lock cannot be upgraded. Reads (engine.connect())
    # begin deferred: in WAL mode they never wait for, or block, a writer.
    # Sent on the driver connection: this runs at the start of every transaction.
    immediate = conn.get_execution_options().get(_WRITE, False)
    conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _write_begin(engine: Engine, queue: WriterQueue | None):
    @contextmanager
    def begin() -> Iterator[Connection]:
        with queue.turn() if queue is not None else nullcontext(), engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    return begin


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, IMMEDIATE write transactions, deferred reads."""
    if url.startswith("sqlite"):
        path = make_url(url).database
        on_disk = bool(path) and path != ":memory:"
        # LIFO (file databases; memory ones have one connection per thread): the
        # connection used last is taken again, with its page cache still warm
        # (SQLite drops a connection's cache when another connection wrote);
        # first in, first out handed every request the coldest one.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            **({"pool_use_lifo": True} if on_disk else {}),
        )
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves

        event.listen(engine, "begin", _sqlite_begin)
        # Every engine.begin() in the code base is a write intent: mark it so
        # the begin hook can tell it from a read's autobegin.
        queue = WriterQueue(path) if on_disk else None
        engine.begin = _write_begin(engine, queue)
        if queue is not None:
            event.listen(engine, "engine_disposed", lambda _engine: queue.close())
        wal_checkpoint.CHECKPOINTER.register(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def add_version_chain_columns(engine: Engine) -> None:
    """A store created before version chains gets their (nullable) columns (the
    versions it holds then fail their chain checks until re-written: see
    docs/architecture.md, "Integrity of what is served")."""
    inspector = inspect(engine)
    missing = [
        (table, column)
        for table, column in (("resources", "head"), ("resource_versions", "link"))
        if column not in {c["name"] for c in inspector.get_columns(table)}
    ]
    if not missing:
        return
    blob = "BYTEA" if engine.dialect.name == "postgresql" else "BLOB"
    with engine.begin() as conn:
        for table, column in missing:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {blob}"))
