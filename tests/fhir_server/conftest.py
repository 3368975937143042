"""Fixtures of the node tests (tests/fhir_server/...): signed-in apps, and real databases.

These tests cover the FHIR R4 core semantics (http.html) with authentication on:
every ``app.test_client()`` of ``app`` / ``make_app`` is signed in as a SMART
backend service (``system/*.cruds``, client_credentials + private_key_jwt, see
tests/smart_tokens.py). ``live_server`` serves the parametrised app (SQLite or
PostgreSQL) through a real threaded WSGI server on a free port; ``live_headers``
holds the ``Authorization`` header of a token obtained from that server.
``engine`` and ``blind`` give the storage and search cores a real SQLite file DB or a
PostgreSQL schema of their own.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, text

from fhir_server.search.indexer import ROW_FIELDS, index_rows
from fhir_server.search.tables import ALL_TABLES
from fhir_server.storage.db import make_engine, resources
from fhir_server.storage.schema import create_schema
from vault.blind import BlindIndex

REPO = Path(__file__).resolve().parents[2]


def _core_app(node):
    from fhir_server.app import create_app
    from tests.smart_tokens import bearer_client_class

    app = create_app({"NODE": node, "TESTING": True})
    app.test_client_class = bearer_client_class()
    return app


@pytest.fixture
def make_app():
    """``make_app(node)`` -> a Flask app over ``node`` whose test clients are signed in."""
    return _core_app


@pytest.fixture
def app(node):
    return _core_app(node)


@pytest.fixture
def live_server(app):
    """Base URL (``http://127.0.0.1:<port>/fhir``) of ``app`` served in a thread."""
    from fhir_server.serving import ThreadedServer

    server = ThreadedServer(app, port=0).start()
    yield f"http://127.0.0.1:{server.port}/fhir"
    server.stop()


@pytest.fixture
def live_headers(app, live_server):
    """``{"Authorization": "Bearer …"}`` for ``live_server`` (a backend-services token
    requested over HTTP from the served token endpoint)."""
    from tests.smart_tokens import backend_token_http

    return {"Authorization": f"Bearer {backend_token_http(app, live_server)}"}


@pytest.fixture
def repo_root() -> Path:
    return REPO


# -- storage and search cores: a real SQLite file DB and PostgreSQL -----------------
PG_URL = os.environ.get("PHRX_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def blind():
    return BlindIndex(b"k" * 32)


def _pg_engine():
    schema = f"t_search_{uuid.uuid4().hex[:12]}"
    try:
        admin = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc.__class__.__name__}")
    eng = create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    return eng, admin, schema


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'search.db'}")
        create_schema(eng)
        yield eng
        eng.dispose()
        return
    eng, admin, schema = _pg_engine()
    try:
        create_schema(eng)
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store_resources():
    """The :func:`store` helper (a fixture: conftest modules are not importable)."""
    return store


def store(engine, blind, items, *, deleted=()) -> dict[str, int]:
    """Insert resources (+ index rows); returns "Type/id" -> pk."""
    pks = {}
    table_by_name = {t.name: t for t in ALL_TABLES}
    with engine.begin() as conn:
        for n, res in enumerate(items):
            key = f"{res['resourceType']}/{res['id']}"
            lu = res.get("_lu_us", 1_700_000_000_000_000 + n * 1_000_000)
            pk = conn.execute(
                insert(resources).returning(resources.c.pk),
                {
                    "res_type": res["resourceType"],
                    "res_id": res["id"],
                    "version_id": 1,
                    "last_updated_us": lu,
                    "deleted": key in deleted,
                    "key_scope": "",
                },
            ).scalar_one()
            pks[key] = pk
            clean = {k: v for k, v in res.items() if k != "_lu_us"}
            for name, rows in index_rows(clean, blind).items():
                conn.execute(
                    insert(table_by_name[name]),
                    [
                        {**dict(zip(ROW_FIELDS[name], r, strict=True)), "resource_pk": pk}
                        for r in rows
                    ],
                )
    return pks
