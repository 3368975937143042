"""A few fixed, hot statements sent straight to the DB-API driver. Flask-free.

SQLAlchemy Core spends 50-100 µs per statement on building the expression, its
cache key, the execution context and the result wrapper. On a single read that
was more than the database work itself: the request's look-ups (token, key
generation, the current version) are single-row reads by primary key that the
driver answers in a few microseconds. So the statements every request runs are
written once here, in SQLite's ``?`` style, and sent on the driver cursor in the
driver's own style; everything else stays on SQLAlchemy Core.

Only for statements whose parameters are plain values and whose text is fixed
(no identifiers or SQL assembled from input).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager

from sqlalchemy.engine import Connection, Engine

_CONVERTED: dict[tuple[str, str], str] = {}


def marker(dialect) -> str:
    """The driver's positional parameter marker (``?`` for sqlite3, ``%s`` for psycopg)."""
    return "?" if dialect.paramstyle == "qmark" else "%s"


def in_style(dialect, template: str) -> str:
    """``template`` (written with ``?``) in the driver's parameter style."""
    style = marker(dialect)
    key = (style, template)
    found = _CONVERTED.get(key)
    if found is None:
        found = _CONVERTED[key] = template.replace("?", style)
    return found


@contextmanager
def cursor(engine: Engine, conn: Connection | None = None) -> Iterator:
    """A driver cursor: on ``conn`` (inside the caller's transaction), else on a
    pooled connection of its own for one read (SQLite runs it in autocommit: this
    project issues BEGIN itself; other drivers are rolled back on return to the pool)."""
    if conn is not None:
        with closing(conn.connection.driver_connection.cursor()) as found:
            yield found
        return
    # The pooled connection goes back to the pool on close, which resets (rolls back) it.
    with closing(engine.raw_connection()) as raw, closing(raw.driver_connection.cursor()) as found:
        yield found


def fetch_one(
    engine: Engine, template: str, params: Sequence, conn: Connection | None = None
) -> tuple | None:
    """The first row of a fixed ``template`` (``?`` markers), or None."""
    with cursor(engine, conn) as found:
        found.execute(in_style(engine.dialect, template), tuple(params))
        return found.fetchone()
