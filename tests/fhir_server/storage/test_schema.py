"""create_schema creates every table the packages declare, and nothing else."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect

from anchoring import journal_tables
from consent import tables as consent_tables
from federation import links as federation_links
from federation import proxies as federation_proxies
from fhir_server.storage import db
from fhir_server.storage.schema import SCHEMA, create_schema


def test_every_declared_table_is_listed_and_created(tmp_path):
    declared = {
        *db.metadata.tables,  # the store's own, the search index and SMART tables
        *journal_tables.metadata.tables,
        *consent_tables.metadata.tables,
        *federation_links.METADATA.tables,
        *federation_proxies.METADATA.tables,
    }
    listed = {t.name for tables in SCHEMA.values() for t in tables}
    assert listed == declared
    engine = create_engine(f"sqlite:///{tmp_path / 'schema.sqlite3'}")
    create_schema(engine)
    create_schema(engine)  # idempotent
    assert set(inspect(engine).get_table_names()) == declared
    engine.dispose()
