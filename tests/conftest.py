"""Shared fixtures: a node on SQLite and on PostgreSQL, its Flask app and test client.

PostgreSQL is the server on 127.0.0.1:5432 (trust auth, database ``test``);
each test gets its own schema, dropped afterwards. Where no server answers,
the PostgreSQL half of a parametrised test is skipped with a visible reason.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

PG_BASE = os.environ.get("PHRX_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(PG_BASE, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as error:  # any failure means: no usable server here
        return str(error).splitlines()[0]


_PG_PROBLEM = _pg_reachable()


@pytest.fixture
def pg_url():
    """A PostgreSQL URL whose search_path is a fresh, private schema."""
    if _PG_PROBLEM:
        pytest.skip(f"PostgreSQL not reachable at {PG_BASE}: {_PG_PROBLEM}")
    schema = f"phrx_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Parametrises a test over both stores; None means the default SQLite file."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_url")


@pytest.fixture
def node(tmp_path, database_url):
    from fhir_server.node import Node, NodeConfig

    node = Node(NodeConfig(data_dir=tmp_path / "data", database_url=database_url))
    yield node
    node.close()


@pytest.fixture
def sqlite_node(tmp_path):
    from fhir_server.node import Node, NodeConfig

    node = Node(NodeConfig(data_dir=tmp_path / "data"))
    yield node
    node.close()


@pytest.fixture
def app(node):
    from fhir_server.app import create_app

    return create_app({"NODE": node, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared is absent ({SHARED}); shared-data test skipped")
    return SHARED
