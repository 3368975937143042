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

from tests.smart_tokens import authorize, backend_token, patient_token, practitioner_token

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
    """A test client sending a ``system/*.cruds`` bearer token (SMART Backend
    Services, obtained from the app's token endpoint) while ``PHRX_AUTH`` is on."""
    test_client = app.test_client()
    signed_in = "HTTP_AUTHORIZATION" in test_client.environ_base  # a bearer client class
    if app.config.get("PHRX_AUTH", True) and not signed_in:
        authorize(test_client, backend_token(app))
    return test_client


@pytest.fixture
def client_for(app):
    """``client_for(token)`` -> a fresh test client of ``app`` sending that token."""
    return lambda token: authorize(app.test_client(), token)


@pytest.fixture
def backend_client(app, client_for):
    """``backend_client(scope)`` -> a client with a backend-services token of ``scope``."""
    return lambda scope="system/*.cruds": client_for(backend_token(app, scope))


@pytest.fixture
def patient_client(app, client_for):
    """``patient_client(patient_id, scope)`` -> a client with the token a patient user
    (``Patient/<patient_id>``) approved for an app (authorization code flow)."""

    def make(patient_id: str, scope: str = "launch/patient patient/*.cruds"):
        return client_for(patient_token(app, patient_id, scope))

    return make


@pytest.fixture
def user_client(app, client_for):
    """``user_client(scope, patient=None)`` -> a client with a practitioner's token."""

    def make(scope: str = "user/*.cruds", patient: str | None = None):
        return client_for(practitioner_token(app, scope, patient))

    return make


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared is absent ({SHARED}); shared-data test skipped")
    return SHARED


@pytest.fixture
def cx():
    """Consent builders and token helpers (tests/consent_builders.py)."""
    from tests.consent_builders import Helpers

    return Helpers
