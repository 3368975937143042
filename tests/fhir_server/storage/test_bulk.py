"""The bulk inserts name real columns, and every column a row must carry."""

from __future__ import annotations

from fhir_server.storage import bulk
from fhir_server.storage.schema import SCHEMA


def test_writer_bulk_insert_columns_match_the_schema():
    # The writer inserts rows as tuples in these column orders: every column must
    # exist, and every NOT NULL column without a default must be among them.
    tables = {t.name: t for owned in SCHEMA.values() for t in owned}
    for name, columns in bulk.ROW_COLUMNS.items():
        table = tables[name]
        assert set(columns) <= set(table.columns.keys()), name
        required = {
            c.name
            for c in table.columns
            if not c.nullable
            and c.default is None
            and c.autoincrement is not True
            and not c.primary_key
        }
        assert required <= set(columns), (name, required - set(columns))
        if name.startswith("sidx_"):  # index rows: pk first, then index_rows' keys
            assert columns == tuple(table.columns.keys())
