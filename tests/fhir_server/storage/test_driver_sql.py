"""Fixed statements on the DB-API driver (driver_sql), on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import insert, select

from fhir_server.storage import driver_sql
from fhir_server.storage.db import node_settings

LOOKUP = "SELECT value FROM node_settings WHERE name = ?"


def _put(engine, name: str, value: str) -> None:
    with engine.begin() as conn:
        conn.execute(insert(node_settings).values(name=name, value=value))


def test_statement_in_the_drivers_parameter_style(engine):
    converted = driver_sql.in_style(engine.dialect, LOOKUP)
    expected = "?" if engine.dialect.name == "sqlite" else "%s"
    assert converted == f"SELECT value FROM node_settings WHERE name = {expected}"


def test_fetch_one_on_a_pooled_connection(engine):
    _put(engine, "driver-sql", "stored")
    assert driver_sql.fetch_one(engine, LOOKUP, ("driver-sql",)) == ("stored",)
    assert driver_sql.fetch_one(engine, LOOKUP, ("absent",)) is None


def test_fetch_one_sees_the_callers_uncommitted_write(engine):
    """On ``conn`` the statement runs inside the caller's transaction."""
    with engine.connect() as conn, conn.begin() as transaction:
        conn.execute(insert(node_settings).values(name="in-tx", value="pending"))
        assert driver_sql.fetch_one(engine, LOOKUP, ("in-tx",), conn) == ("pending",)
        # another connection does not see it yet
        assert driver_sql.fetch_one(engine, LOOKUP, ("in-tx",)) is None
        transaction.rollback()
    with engine.connect() as conn:
        query = select(node_settings).where(node_settings.c.name == "in-tx")
        assert conn.execute(query).first() is None


def test_a_pooled_read_leaves_no_transaction_open(engine):
    """The pooled connection goes back clean: a later writer is not blocked by it."""
    _put(engine, "before", "1")
    for _ in range(3):
        driver_sql.fetch_one(engine, LOOKUP, ("before",))
    _put(engine, "after", "2")
    assert driver_sql.fetch_one(engine, LOOKUP, ("after",)) == ("2",)
