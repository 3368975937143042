"""The resource store: reads, history and units of work over the encrypted tables.

Flask-free. Every version is sealed (see :mod:`.sealing`); reads decrypt and
authenticate; writes go through a :class:`~.writer.Writer` bound to one
database transaction, so a transaction Bundle is all-or-nothing.

A read request may run in ONE write transaction (:meth:`ResourceStore.begin_request`):
every read of the store (searches, consent look-ups, history) joins it until it
ends, and so do the AuditEvents recorded for it -- the access decision and its
audit commit together, before the response leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Engine

from fhir_server.errors import Gone, IntegrityFailure, NotFound
from fhir_server.resource_types import check_type
from fhir_server.search.compartment import compartment_patient_ids
from fhir_server.search.indexer import TerminologyDigests
from fhir_server.storage import driver_sql
from fhir_server.storage.compartment_history import history_in_compartment
from fhir_server.storage.db import resources, versions
from fhir_server.storage.pg_statistics import PlannerStatistics
from fhir_server.storage.rows import (
    CURRENT_VERSION,
    CURRENT_VERSION_JOIN,
    VERSION_COLUMNS,
    VersionRow,
    version_row,
)
from fhir_server.storage.sealing import RecordSealer
from vault.keyring import KeyRing

if TYPE_CHECKING:
    from fhir_server.storage.writer import Prepared, Writer


# (store, connection) of the request transaction the current thread runs in, if any.
_BOUND: ContextVar[tuple[ResourceStore, Connection] | None] = ContextVar(
    "phrx_request_transaction", default=None
)


class _Rollback(Exception):
    """Thrown into the request transaction's context manager to roll it back."""


class RequestTransaction:
    """One write transaction that every use of ``store`` in this thread joins until
    :meth:`commit` or :meth:`rollback` (a read request: decision plus audit).

    On SQLite it is opened with the write lock (BEGIN IMMEDIATE): a read transaction
    cannot be upgraded to a writer once another writer committed, and the audit is a
    write. Concurrent reads of other connections are not blocked (WAL)."""

    def __init__(self, store: ResourceStore) -> None:
        stale = _BOUND.get()
        if stale is not None:  # a request that never ended on this thread
            _BOUND.set(None)
        self.store = store
        self._scope = store.engine.begin()
        self.conn = self._scope.__enter__()
        _BOUND.set((store, self.conn))

    @property
    def open(self) -> bool:
        return self._scope is not None

    def commit(self) -> None:
        scope, self._scope = self._scope, None
        _BOUND.set(None)
        if scope is not None:
            scope.__exit__(None, None, None)

    def rollback(self) -> None:
        scope, self._scope = self._scope, None
        _BOUND.set(None)
        if scope is not None:
            with suppress(_Rollback):
                scope.__exit__(_Rollback, _Rollback(), None)


class ResourceStore:
    def __init__(self, engine: Engine, keyring: KeyRing):
        self.engine = engine
        self.keyring = keyring
        self.sealer = RecordSealer(keyring)
        self.blind = keyring.blind_index()
        self.chain = keyring.version_chain()
        self.terms = TerminologyDigests(self.blind)  # memoised digests of codes only
        # Called with the Writer after its last write and before COMMIT (the HTTP
        # layer stores the request's AuditEvents here, so a write and its audit
        # commit or roll back together). An exception rolls the whole unit back.
        self.before_commit: Callable[[Writer], None] | None = None
        self.statistics = PlannerStatistics(engine)  # PostgreSQL: ANALYZE after bulk writes

    # -- request transactions --------------------------------------------------
    def begin_request(self) -> RequestTransaction:
        """Open the request transaction (see :class:`RequestTransaction`); in it, the
        key ring first drops keys another process destroyed (``$erase`` on another
        worker) -- inside, so no destruction can slip in between check and use."""
        transaction = RequestTransaction(self)
        try:
            self.keyring.refresh(transaction.conn)
        except BaseException:
            transaction.rollback()
            raise
        return transaction

    def bound(self) -> Connection | None:
        """The connection of the request transaction this thread runs in, if any."""
        found = _BOUND.get()
        return found[1] if found is not None and found[0] is self else None

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """A write transaction: a savepoint of the request transaction when there is
        one (committed with it), else a transaction of its own."""
        bound = self.bound()
        if bound is not None:
            with bound.begin_nested():
                yield bound
            return
        with self.engine.begin() as conn:
            yield conn

    # -- units of work ------------------------------------------------------
    def prepare_keys(self, prepared: list[Prepared]) -> None:
        """Create the data keys these writes will be sealed under, before writing.

        Also those of every other patient whose compartment holds them: the
        AuditEvent of the write, stored in the same transaction, is sealed under
        the key of each patient it names."""
        from fhir_server.storage.writer import patient_of

        scopes = set()
        for ahead in prepared:
            resource = ahead.source
            scopes.add(self.sealer.scope_for(patient_of(resource, ahead.compartments)))
            if resource.get("resourceType") != "Patient":
                scopes.update(self.sealer.scope_for(p) for p in ahead.compartments)
        for scope in scopes:
            self.sealer.ensure_key(scope)

    @contextmanager
    def unit_of_work(
        self, prepare: list[dict] = (), policy=None, *, hooks: bool = True
    ) -> Iterator[Writer]:
        """One database transaction; commits on success, rolls back on any error.

        ``prepare``: the resources about to be written, whose data keys must
        exist before the transaction opens. ``policy``: the request's
        :class:`~fhir_server.access.gate.AccessPolicy`, checked on every write.
        ``hooks``: run :attr:`before_commit` (False for the audit log's own units).
        """
        from fhir_server.storage.writer import Writer
        from fhir_server.storage.writer import prepare as prepare_write

        # Content-only work (keys, index rows, anchoring leaf) before the write lock.
        ahead = {id(r): prepare_write(r, self) for r in prepare}
        self.prepare_keys(list(ahead.values()))
        # Inside a read's request transaction: a savepoint of it (a second writer
        # would wait on the request's own write lock on SQLite).
        with self.write_transaction() as conn:
            writer = Writer(self, conn, policy, prepared=ahead)
            yield writer
            if hooks and self.before_commit is not None:
                self.before_commit(writer)
            writer.flush()
        self.statistics.wrote()

    # -- reads --------------------------------------------------------------
    def open_version(self, row: VersionRow) -> dict:
        return self.sealer.open(row.res_type, row.res_id, row.version_id, row.key_scope, row.sealed)

    def read(self, res_type: str, res_id: str, conn: Connection | None = None) -> dict:
        row = self.current_version(res_type, res_id, conn)
        if row is None:
            raise NotFound(f"{res_type}/{res_id} is not known.")
        self.check_head(row)
        if row.deleted:
            raise Gone(f"{res_type}/{res_id} was deleted (version {row.version_id}).")
        return self.open_version(row)

    def read_if_readable(
        self, res_type: str, res_id: str, damaged: list[str] | None = None
    ) -> dict | None:
        """The current version, or None when there is none, it is a deletion, or it
        fails its checks (then "Type/id" is noted in ``damaged``): for the resources an
        operation follows references to, where one bad row must not fail the rest."""
        row = self.current_version(res_type, res_id)
        if row is None or row.deleted:
            return None
        try:
            self.check_head(row)
            return self.open_version(row)
        except (IntegrityFailure, Gone):
            if damaged is not None:
                damaged.append(f"{res_type}/{res_id}")
            return None

    def check_head(self, row: VersionRow) -> None:
        """``row``, read as the current version, must be the one the resource's head
        names (vault.version_chain): else it was rolled back or replaced."""
        if not self.chain.head_is_valid(
            row.res_type, row.res_id, row.version_id, row.link, row.head
        ):
            raise IntegrityFailure(
                f"Integrity failure: {row.res_type}/{row.res_id} is not at its latest version "
                "(rolled back or altered in the database); it is not served."
            )

    def current_version(
        self, res_type: str, res_id: str, conn: Connection | None = None
    ) -> VersionRow | None:
        check_type(res_type)
        # The look-up of every read: straight to the driver (see driver_sql).
        bound = conn if conn is not None else self.bound()
        row = driver_sql.fetch_one(self.engine, CURRENT_VERSION, (res_type, res_id), bound)
        return version_row(row) if row is not None else None

    def vread(self, res_type: str, res_id: str, version_id: int) -> dict:
        check_type(res_type)
        query = select(*VERSION_COLUMNS).where(
            versions.c.res_type == res_type,
            versions.c.res_id == res_id,
            versions.c.version_id == version_id,
        )
        row = self._one(query)
        if row is None:
            raise NotFound(f"{res_type}/{res_id}/_history/{version_id} is not known.")
        if row.deleted:
            raise Gone(f"{res_type}/{res_id}/_history/{version_id} is a deletion.")
        return self.open_version(row)

    def version_row(
        self, res_type: str, res_id: str, version_id: int, conn: Connection | None = None
    ) -> VersionRow | None:
        query = select(*VERSION_COLUMNS).where(
            versions.c.res_type == res_type,
            versions.c.res_id == res_id,
            versions.c.version_id == version_id,
        )
        return self._one(query, conn)

    def load_current(
        self, pks: list[int], conn: Connection | None = None, damaged: list[str] | None = None
    ) -> list[dict]:
        """Decrypt the current versions of ``pks``, keeping the order given.

        A version that fails its checks (altered, swapped or rolled back in the
        database) is left out; with ``damaged``, its "Type/id" is appended there
        (else the :class:`IntegrityFailure` is raised)."""
        if not pks:
            return []
        query = (
            select(
                resources.c.pk,
                resources.c.res_type,
                resources.c.res_id,
                resources.c.version_id,
                *VERSION_COLUMNS[3:],
                resources.c.head,
            )
            .select_from(resources.outerjoin(versions, CURRENT_VERSION_JOIN))
            .where(resources.c.pk.in_(pks))
        )
        with self.connect(conn) as c:
            rows = {r[0]: version_row(r[1:]) for r in c.execute(query)}
        found = []
        for pk in pks:
            row = rows.get(pk)
            if row is None:
                continue
            try:
                self.check_head(row)
                found.append(self.open_version(row))
            except (IntegrityFailure, Gone):
                if damaged is None:
                    raise
                damaged.append(f"{row.res_type}/{row.res_id}")
        return found

    def load_in_compartment(
        self, pks: list[int], patient_id: str, conn=None, damaged: list[str] | None = None
    ) -> list[dict]:
        """:meth:`load_current`, keeping only resources whose *sealed content* lies in
        ``patient_id``'s compartment: the compartment index rows are hints, and a
        database write without the keys (rows pointed at another patient) is caught
        here. A dropped resource is reported in ``damaged`` like a failed one."""
        found = []
        for resource in self.load_current(pks, conn, damaged):
            if patient_id in compartment_patient_ids(resource):
                found.append(resource)
            elif damaged is not None:
                damaged.append(f"{resource['resourceType']}/{resource['id']}")
        return found

    def chain_legacy_versions(self) -> int:
        """Chain the versions of a store made before version chains (their ``link`` and
        the pointers' ``head`` are NULL); returns how many resources were chained. Run
        once per data dir, at start, by the node (see Node._chain_legacy_versions)."""
        todo = select(versions.c.res_type, versions.c.res_id).where(versions.c.link.is_(None))
        with self.engine.connect() as conn:
            pending = sorted(set(conn.execute(todo.distinct())))
        if not pending:
            return 0
        with self.engine.begin() as conn:
            for res_type, res_id in pending:
                rows = conn.execute(
                    select(
                        versions.c.seq, versions.c.version_id, versions.c.deleted, versions.c.leaf
                    )
                    .where(versions.c.res_type == res_type, versions.c.res_id == res_id)
                    .order_by(versions.c.version_id)
                ).all()
                link = None
                for seq, version_id, deleted, leaf in rows:
                    link = self.chain.link(res_type, res_id, version_id, bool(deleted), leaf, link)
                    conn.execute(update(versions).where(versions.c.seq == seq).values(link=link))
                head = self.chain.head(res_type, res_id, rows[-1][1], link)
                conn.execute(
                    update(resources)
                    .where(resources.c.res_type == res_type, resources.c.res_id == res_id)
                    .values(head=head)
                )
        return len(pending)

    def chain_break(self, res_type: str, res_id: str) -> int | None:
        """The first version of ``res_type/res_id`` at which its version chain fails
        (a version missing, altered, or the head not naming the latest), or None."""
        check_type(res_type)
        query = (
            select(versions.c.version_id, versions.c.deleted, versions.c.leaf, versions.c.link)
            .where(versions.c.res_type == res_type, versions.c.res_id == res_id)
            .order_by(versions.c.version_id)
        )
        head = select(resources.c.version_id, resources.c.head).where(
            resources.c.res_type == res_type, resources.c.res_id == res_id
        )
        with self.connect() as c:
            rows = [(v, bool(d), leaf, link) for v, d, leaf, link in c.execute(query)]
            pointer = c.execute(head).first()
        current, head_mac = pointer if pointer is not None else (None, None)
        if rows and current != rows[-1][0]:
            return current or 1  # the pointer names another version than the latest
        return self.chain.broken_at(res_type, res_id, rows, head_mac)

    # -- history --------------------------------------------------------------
    def history(
        self,
        res_type: str | None = None,
        res_id: str | None = None,
        *,
        since_us: int | None = None,
        at_most_us: int | None = None,
        count: int = 50,
        offset: int = 0,
        compartment_patient: str | None = None,
        res_types: Collection[str] | None = None,
    ) -> tuple[int, list[VersionRow]]:
        """Versions newest first; returns (total, page).

        ``res_types``: only versions of these types (system history under
        type-limited scopes). ``compartment_patient``: only versions whose own
        content is in that patient's compartment (deletions: when the version
        they delete was); see :mod:`.compartment_history`.
        """
        conditions = []
        if res_type:
            check_type(res_type)
            conditions.append(versions.c.res_type == res_type)
        if res_types is not None:
            conditions.append(versions.c.res_type.in_(sorted(res_types)))
        if res_id:
            conditions.append(versions.c.res_id == res_id)
        if since_us is not None:
            conditions.append(versions.c.last_updated_us >= since_us)
        if at_most_us is not None:
            conditions.append(versions.c.last_updated_us <= at_most_us)
        if compartment_patient is not None:
            total, rows = history_in_compartment(
                self, compartment_patient, conditions, res_id is not None, count, offset
            )
        else:
            with self.connect() as conn:
                total = conn.execute(select(func.count()).select_from(versions).where(*conditions))
                total = total.scalar_one()
                page = conn.execute(
                    select(*VERSION_COLUMNS)
                    .where(*conditions)
                    .order_by(versions.c.seq.desc())
                    .limit(count)
                    .offset(offset)
                )
                rows = [VersionRow(*r) for r in page]
        if res_id and total == 0:
            raise NotFound(f"{res_type}/{res_id} is not known.")
        return total, rows

    # -- helpers --------------------------------------------------------------
    @contextmanager
    def connect(self, conn: Connection | None = None) -> Iterator[Connection]:
        """``conn``, else the request transaction's connection, else a fresh one."""
        if conn is None:
            conn = self.bound()
        if conn is not None:
            yield conn
        else:
            with self.engine.connect() as fresh:
                yield fresh

    def _one(self, query, conn: Connection | None = None) -> VersionRow | None:
        with self.connect(conn) as c:
            row = c.execute(query).first()
        return VersionRow(*row) if row else None
