"""Fixtures for the search-core tests: a real SQLite file DB and PostgreSQL.

PostgreSQL uses a unique schema per test run (dropped afterwards); it is
skipped with a visible message when the server is not reachable.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, insert, text

from fhir_server.resources.db import create_schema, make_engine, resources
from fhir_server.resources.indexer import ROW_FIELDS, index_rows
from fhir_server.resources.search_tables import ALL_TABLES

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

try:
    from vault.blind import BlindIndex
except ImportError:  # pragma: no cover - stand-in until vault exists
    import hashlib
    import hmac

    class BlindIndex:  # type: ignore[no-redef]
        def __init__(self, key: bytes) -> None:
            self._key = key

        def digest(self, domain: str, value: str) -> bytes:
            msg = f"{len(domain)}:{domain}|{value}".encode()
            return hmac.new(self._key, msg, hashlib.sha256).digest()[:16]


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
