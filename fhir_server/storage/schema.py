"""The node's database schema: every table, listed here by the package that owns it.

``anchoring`` and ``consent`` declare their tables on a ``MetaData`` of their own;
the search index and SMART tables live on the store's (its writer and the SMART
service write them beside the resources). Nothing is created as a side effect of an
import: ``create_schema`` creates exactly the tables below, idempotently.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from anchoring import journal_tables
from consent import tables as consent_tables
from federation import links as federation_links
from federation import proxies as federation_proxies
from fhir_server.search import tables as search_tables
from fhir_server.smart import tables as smart_tables
from fhir_server.storage import db

SCHEMA = {
    "storage": (db.resources, db.versions, db.data_keys, db.compartments, db.node_settings),
    "search": search_tables.ALL_TABLES,
    "smart": (
        smart_tables.users,
        smart_tables.clients,
        smart_tables.codes,
        smart_tables.tokens,
        smart_tables.assertion_jtis,
        smart_tables.launches,
    ),
    "anchoring": (journal_tables.journal, journal_tables.batches, journal_tables.proofs),
    "consent": (consent_tables.released_keys,),
    "federation": (
        federation_links.share_links,
        federation_links.share_link_files,
        federation_proxies.remote_patients,
    ),
}


def create_schema(engine: Engine) -> None:
    for tables in SCHEMA.values():
        tables[0].metadata.create_all(engine, tables=list(tables))
    db.add_version_chain_columns(engine)
