"""Writes inside one database transaction: create, update, delete (FHIR R4 http.html).

Each write assigns the version, seals it, stores the version row, moves the
``resources`` pointer and replaces the blind-index and compartment rows. Index
rows are buffered and flushed in bulk (before any search and at commit), which
keeps Bundle ingestion fast.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from contextlib import suppress
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from anchoring import journal as anchor_journal
from anchoring.canonical import CanonicalizationError, leaf_hash
from fhir_server import ids
from fhir_server.access.decision import Interaction
from fhir_server.errors import (
    BadRequest,
    Conflict,
    Gone,
    IntegrityFailure,
    NotFound,
    PreconditionFailed,
)
from fhir_server.resource_types import check_type
from fhir_server.search.compartment import compartment_patient_ids
from fhir_server.search.indexer import index_rows
from fhir_server.storage import queries
from fhir_server.storage.bulk import bulk_insert, index_row_tuples, insert_resources
from fhir_server.storage.db import compartments, resources, versions
from fhir_server.storage.rows import CURRENT_VERSION_JOIN
from fhir_server.storage.sealing import dumps


@dataclass(frozen=True)
class WriteOutcome:
    res_type: str
    res_id: str
    version_id: int
    last_updated_us: int
    resource: dict | None  # None after a delete
    created: bool = False
    changed: bool = True  # False for a no-op update or a matched conditional create

    @property
    def location(self) -> str:
        return f"{self.res_type}/{self.res_id}/_history/{self.version_id}"


@dataclass(frozen=True)
class _Current:
    pk: int
    version_id: int
    deleted: bool
    link: bytes | None  # the current version's chain link (vault.version_chain)


@dataclass(frozen=True)
class Prepared:
    """What a write computes from the content alone, done before the transaction
    opens (on SQLite the write lock serialises every writer): the blind-index rows
    (they never depend on the id or the server-set meta), and -- valid when the
    content carries the id it is written under (:meth:`fits`) -- the anchoring leaf
    (it covers the id but not meta) and the patient compartments. ``source`` is
    the dict it was computed from."""

    source: dict
    index: dict[str, list[tuple]]
    leaf: bytes | None  # None: not canonicalisable (the write itself will say)
    compartments: frozenset[str]

    def fits(self, res_id: str) -> bool:
        return self.source.get("id") == res_id


def prepare(resource: dict, store) -> Prepared:
    leaf = None
    if resource.get("id"):  # without it the leaf could never fit
        with suppress(CanonicalizationError):  # the write itself will raise it
            leaf = leaf_hash(resource)
    compartments = frozenset(compartment_patient_ids(resource))
    index = index_rows(resource, store.blind, store.terms)
    return Prepared(resource, index, leaf, compartments)


def patient_of(resource: dict, compartments: Collection[str] | None = None) -> str | None:
    """The patient whose data key seals this resource (None: node data key)."""
    if resource.get("resourceType") == "Patient":
        return resource.get("id")
    owners = compartment_patient_ids(resource) if compartments is None else compartments
    return min(owners) if owners else None


class Writer:
    def __init__(self, store, conn: Connection, policy=None, *, prepared=None):
        """``store``: the :class:`~fhir_server.storage.store.ResourceStore` it writes."""
        self.store = store
        self.conn = conn
        # access.gate.AccessPolicy of the request (None: unrestricted), and the
        # server-chosen ids a confined token may create under with PUT.
        self.policy = policy
        self.fresh_ids: set[str] = set()
        # Buffered rows as tuples in bulk.ROW_COLUMNS order (resource_pk first).
        self._index_rows: dict[str, list[tuple]] = defaultdict(list)
        self._compartment_rows: list[tuple] = []
        self._stale_pks: list[int] = []
        # Versions and brand-new resources are inserted in bulk at flush();
        # a new resource gets its pk (needed by its index rows) only then.
        self._version_rows: list[tuple] = []
        self._journal_rows: list[tuple] = []  # anchoring journal, same transaction
        # (resources row, stored resource, the caller's resource it was made from)
        self._new_resources: list[tuple[dict, dict, dict]] = []
        # What this transaction wrote, as (interaction, "Type/id", stored content or
        # None after a delete): the request's AuditEvents are built from it (or from
        # the policy's notes) and stored in this same transaction by the store's
        # before-commit hook (ResourceStore.before_commit).
        self.changes: list[tuple[str, str, dict | None]] = []
        # id(resource) -> Prepared, computed before the transaction opened
        # (ResourceStore.unit_of_work). Used only for the very dict it was made from.
        self._prepared: dict[int, Prepared] = prepared or {}

    # -- interactions -----------------------------------------------------------
    # Callers validate (fhir_server.validation) before the transaction opens, so the
    # write lock is never held while pydantic runs; the writer trusts its input.
    def create(
        self, resource: dict, *, res_id: str | None = None, checked: bool = True
    ) -> WriteOutcome:
        """``checked=False``: not subject to the request's policy (the node's own
        AuditEvents, written in the request's transaction)."""
        res_type = check_type(resource["resourceType"])
        res_id = res_id or ids.new_id()
        if checked and self.policy is not None:
            content = resource if resource.get("id") == res_id else {**resource, "id": res_id}
            self.policy.check_content(Interaction.CREATE, content)
        return self._write(res_type, res_id, resource, None, "POST")

    def update(
        self, res_type: str, res_id: str, resource: dict, *, if_match: int | None = None
    ) -> WriteOutcome:
        check_type(res_type)
        ids.check_id(res_id)
        if resource.get("id") != res_id:
            raise BadRequest(
                f"The resource id {resource.get('id')!r} must equal the URL id {res_id!r}.",
                expression=[f"{res_type}.id"],
            )
        current = self._current(res_type, res_id)
        if self.policy is not None:
            fresh = res_id in self.fresh_ids
            self.policy.check_update(
                res_type, res_id, resource, current is not None, fresh, self.conn
            )
        if if_match is not None and (current is None or current.version_id != if_match):
            found = current.version_id if current else "none"
            raise PreconditionFailed(
                f"If-Match names version {if_match} but the current version is {found}."
            )
        if current and not current.deleted and self._unchanged(res_type, res_id, resource):
            row = self.store.current_version(res_type, res_id, self.conn)
            return WriteOutcome(
                res_type,
                res_id,
                row.version_id,
                row.last_updated_us,
                self.store.open_version(row),
                changed=False,
            )
        return self._write(res_type, res_id, resource, current, "PUT")

    def delete(self, res_type: str, res_id: str) -> WriteOutcome:
        check_type(res_type)
        current = self._current(res_type, res_id)
        if self.policy is not None and current is not None:
            self.policy.check_target(Interaction.DELETE, res_type, res_id, self.conn)  # 404 outside
        if current is None:
            raise NotFound(f"{res_type}/{res_id} is not known.")
        if current.deleted:
            raise Gone(f"{res_type}/{res_id} is already deleted.")
        return self._write(res_type, res_id, None, current, "DELETE")

    # -- buffered index rows ------------------------------------------------------
    def flush(self) -> None:
        """Write buffered rows; reads and searches inside this transaction call it first."""
        if self._version_rows:
            bulk_insert(self.conn, versions.name, self._version_rows)
            self._version_rows = []
        if self._journal_rows:
            bulk_insert(self.conn, anchor_journal.journal.name, self._journal_rows)
            self._journal_rows = []
        if self._new_resources:
            rows = [row for row, _, _ in self._new_resources]
            pks = insert_resources(self.conn, rows)
            for pk, (_, stored, source) in zip(pks, self._new_resources, strict=True):
                self._buffer_index(pk, stored, source)
            self._new_resources = []
        if self._stale_pks:
            queries.drop_index_rows(self.conn, self._stale_pks)
            self._stale_pks = []
        for name, rows in self._index_rows.items():
            if rows:
                bulk_insert(self.conn, name, rows)
        if self._compartment_rows:
            bulk_insert(self.conn, compartments.name, self._compartment_rows)
        self._index_rows = defaultdict(list)
        self._compartment_rows = []

    # -- internals ------------------------------------------------------------------
    def _current(self, res_type: str, res_id: str) -> _Current | None:
        self.flush()
        query = (
            select(
                resources.c.pk,
                resources.c.version_id,
                resources.c.deleted,
                versions.c.link,
                resources.c.head,
            )
            .join(versions, CURRENT_VERSION_JOIN)
            .where(resources.c.res_type == res_type, resources.c.res_id == res_id)
            .with_for_update()
        )
        row = self.conn.execute(query).first()
        if row is None:
            return None
        *fields, head = row
        current = _Current(*fields)
        # A version written on top of a rolled-back pointer would launder the rollback
        # into a valid chain: the head must hold before anything is added to it.
        if not self.store.chain.head_is_valid(
            res_type, res_id, current.version_id, current.link, head
        ):
            raise IntegrityFailure(
                f"Integrity failure: {res_type}/{res_id} does not name its latest version "
                "(rolled back or altered in the database); it is not written to."
            )
        return current

    def _unchanged(self, res_type: str, res_id: str, resource: dict) -> bool:
        """True when ``resource`` equals the current version apart from server meta."""
        row = self.store.current_version(res_type, res_id, self.conn)
        if row is None or row.leaf != leaf_hash(resource):
            return False
        stored_meta = _client_meta(self.store.open_version(row))
        return stored_meta == _client_meta(resource)

    def _write(
        self,
        res_type: str,
        res_id: str,
        resource: dict | None,
        current: _Current | None,
        method: str,
    ) -> WriteOutcome:
        version_id = current.version_id + 1 if current else 1
        now = ids.now_us()
        scope, sealed, leaf, stored = "", None, None, None
        if resource is not None:
            stored = with_server_meta(resource, res_id, version_id, now)
            ahead = self._prepared_for(resource, res_id)
            owners = ahead.compartments if ahead is not None else None
            scope = self.store.sealer.scope_for(patient_of(stored, owners))
            sealed = self.store.sealer.seal(res_type, res_id, version_id, scope, dumps(stored))
            # The leaf covers neither meta nor text (anchoring.canonical), only the id.
            leaf = ahead.leaf if ahead is not None and ahead.leaf else leaf_hash(stored)
        deleted = resource is None
        link = self.store.chain.link(
            res_type, res_id, version_id, deleted, leaf, current.link if current else None
        )
        head = self.store.chain.head(res_type, res_id, version_id, link)
        # Tuples in bulk.ROW_COLUMNS order, inserted in bulk at flush().
        self._version_rows.append(
            (res_type, res_id, version_id, now, deleted, method, scope, sealed, leaf, link)
        )
        if leaf is not None:
            self._journal_rows.append((res_type, res_id, version_id, leaf, now))
        pointer = {"version_id": version_id, "last_updated_us": now, "key_scope": scope}
        pointer["head"] = head
        if current is None:
            row = {"res_type": res_type, "res_id": res_id, "deleted": False, **pointer}
            self._new_resources.append((row, stored, resource))
        else:
            pk = self._move_pointer(res_type, res_id, current, deleted=resource is None, **pointer)
            if stored is not None:
                self._buffer_index(pk, stored, resource)
        created = current is None or current.deleted
        interaction = "delete" if resource is None else "create" if created else "update"
        self.changes.append((interaction, f"{res_type}/{res_id}", stored))
        return WriteOutcome(res_type, res_id, version_id, now, stored, created=created)

    def _move_pointer(self, res_type: str, res_id: str, current: _Current, **values) -> int:
        result = self.conn.execute(
            _MOVE_POINTER, {"b_pk": current.pk, "b_version": current.version_id, **values}
        )
        if result.rowcount != 1:
            raise Conflict(f"{res_type}/{res_id} was changed concurrently; retry the request.")
        self._stale_pks.append(current.pk)
        return current.pk

    def _prepared_for(self, resource: dict, res_id: str | None = None) -> Prepared | None:
        """The Prepared made from this very dict; with ``res_id``, only if it fits."""
        ahead = self._prepared.get(id(resource))
        if ahead is None or ahead.source is not resource:
            return None
        return ahead if res_id is None or ahead.fits(res_id) else None

    def _buffer_index(self, pk: int, stored: dict, source: dict) -> None:
        ahead = self._prepared_for(source)
        if ahead is not None:
            tables = ahead.index
        else:
            tables = index_rows(stored, self.store.blind, self.store.terms)
        for name, rows in index_row_tuples(pk, tables):
            self._index_rows[name].extend(rows)
        if ahead is not None and ahead.fits(stored["id"]):
            owners = ahead.compartments
        else:
            owners = compartment_patient_ids(stored)
        self._compartment_rows.extend((pk, patient_id) for patient_id in owners)


_MOVE_POINTER = update(resources).where(
    resources.c.pk == bindparam("b_pk"), resources.c.version_id == bindparam("b_version")
)


def with_server_meta(resource: dict, res_id: str, version_id: int, now_us: int) -> dict:
    """The stored form: resourceType, id and meta (versionId, lastUpdated) first."""
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = ids.instant(now_us)
    stored = {"resourceType": resource["resourceType"], "id": res_id, "meta": meta}
    stored.update((k, v) for k, v in resource.items() if k not in stored)
    return stored


def _client_meta(resource: dict) -> dict:
    meta = dict(resource.get("meta") or {})
    meta.pop("versionId", None)
    meta.pop("lastUpdated", None)
    return meta
