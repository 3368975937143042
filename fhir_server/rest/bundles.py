"""batch and transaction Bundles (FHIR R4 http.html#transaction).

A transaction is resolved first (new ids for POSTs, PATCH entries applied to the
resources they read, ``urn:uuid:`` and conditional references rewritten, data keys
created), then executed in one database transaction in the order DELETE, POST,
PUT / PATCH, GET: any failure rolls back every entry. A batch runs each entry on
its own and reports each result. Entries are planned in :mod:`.bundle_plan`.
"""

from __future__ import annotations

from dataclasses import replace

from fhir_server import ids
from fhir_server.access.decision import Interaction
from fhir_server.access.gate import AccessPolicy
from fhir_server.errors import (
    BadRequest,
    Conflict,
    FHIRError,
    Forbidden,
    NotFound,
    PreconditionFailed,
)
from fhir_server.rest import interactions, patch
from fhir_server.rest.bundle_plan import (
    MAX_ENTRIES,
    METHOD_ORDER,
    PlannedEntry,
    check_bundle,
    plan_entry,
)
from fhir_server.rest.entry_urls import EntryTarget
from fhir_server.rest.interactions import Result, parse_query
from fhir_server.storage.store import ResourceStore
from fhir_server.storage.writer import Writer
from fhir_server.validation import validate_resource

__all__ = ["MAX_ENTRIES", "process_bundle"]
STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}


def process_bundle(
    store: ResourceStore, bundle: dict, base_url: str, policy: AccessPolicy | None = None
) -> dict:
    """``policy``: the request's access policy. Every entry's scope is checked before
    anything runs: a forbidden entry fails a whole transaction (403) and answers 403
    in its own slot of a batch; each write is checked again by the Writer."""
    policy = policy or AccessPolicy(None, store)
    kind = check_bundle(bundle)
    entries = [plan_entry(i, e, base_url) for i, e in enumerate(bundle.get("entry") or [])]
    for entry in entries:
        try:
            policy.require(*_interaction(entry))
        except Forbidden as error:
            if kind == "transaction":
                raise _at(entry, error) from None
            entry.error = error
    if kind == "batch":
        for entry in entries:
            if entry.error is None:
                _run_alone(store, entry, policy)
    else:
        _run_transaction(store, entries, policy)
    return _response_bundle(kind, entries, base_url)


def _interaction(entry: PlannedEntry) -> tuple:
    target = entry.target
    if entry.method in {"GET", "HEAD"}:
        if target.res_id:
            return (Interaction.READ, target.res_type)
        return (Interaction.SEARCH_TYPE, target.res_type, target.query or [])
    return (_WRITES[entry.method], target.res_type)


_WRITES = {
    "DELETE": Interaction.DELETE,
    "POST": Interaction.CREATE,
    "PUT": Interaction.UPDATE,
    "PATCH": Interaction.PATCH,
}


def _stage_patch(entry: PlannedEntry, policy: AccessPolicy) -> None:
    """Read the target through the gate and patch it (validated); written in _execute."""
    target = entry.target
    staged = patch.stage(
        policy, target.res_type, target.res_id, entry.extra["patch"], _etag_version(entry.if_match)
    )
    entry.extra["staged"] = staged
    entry.resource = staged.resource


# -- transaction -----------------------------------------------------------------
def _run_transaction(store: ResourceStore, entries: list[PlannedEntry], policy) -> None:
    for entry in entries:
        try:
            if entry.method == "PATCH":
                _stage_patch(entry, policy)  # validated there
            elif entry.resource is not None:
                validate_resource(entry.resource)
        except FHIRError as error:
            raise _at(entry, error) from None
    urn_map = _assign_ids(entries, policy)
    for entry in entries:
        if entry.resource is not None:
            entry.resource = _rewrite_refs(entry.resource, urn_map, entry, policy)
            try:  # every written content is checked before anything is written
                policy.check_content(_content_interaction(entry), _to_prepare(entry))
            except FHIRError as error:
                raise _at(entry, error) from None
    writes = [_to_prepare(e) for e in entries if e.resource is not None]
    with store.unit_of_work(prepare=writes, policy=policy) as writer:
        for entry in sorted(entries, key=lambda e: (METHOD_ORDER[e.method], e.index)):
            try:
                entry.result = _execute(writer, entry, policy)
            except FHIRError as error:
                raise _at(entry, error) from None


def _content_interaction(entry: PlannedEntry) -> Interaction:
    """What the Writer checks a write as (a patch writes an update)."""
    return Interaction.UPDATE if entry.method == "PATCH" else _interaction(entry)[0]


def _assign_ids(entries: list[PlannedEntry], policy: AccessPolicy):
    """Give each POST its id up front; ``ifNoneExist`` reuses the id of a match the
    caller may read (one it may not read is no match)."""
    urn_map: dict[str, str] = {}
    for entry in entries:
        _new_id_for_conditional_put(entry)
        if entry.method != "POST":
            continue
        res_type = entry.target.res_type
        res_id = ids.new_id()
        if entry.if_none_exist:
            found = policy.conditional_matches(res_type, parse_query(entry.if_none_exist))
            if len(found) > 1:
                raise _at(entry, PreconditionFailed("ifNoneExist matched more than one resource."))
            if found:
                res_id = found[0]["id"]
                entry.extra["existing"] = res_id
        entry.resource = {**entry.resource, "id": res_id}
        if entry.full_url:
            urn_map[entry.full_url] = f"{res_type}/{res_id}"
    return urn_map


def _new_id_for_conditional_put(entry: PlannedEntry) -> None:
    """A conditional PUT that matches nothing creates under this id (data key prepared)."""
    if entry.method == "PUT" and entry.target.query and not entry.resource.get("id"):
        entry.extra["new_id"] = ids.new_id()


def _to_prepare(entry: PlannedEntry) -> dict:
    new_id = entry.extra.get("new_id")
    return {**entry.resource, "id": new_id} if new_id else entry.resource


def _rewrite_refs(resource: dict, urn_map: dict, entry: PlannedEntry, policy) -> dict:
    """``resource`` with urn:uuid and conditional references resolved.

    Copy-on-write: only the dicts and lists on the way to a changed reference are
    copied; everything else is shared with ``resource`` (neither is mutated later).
    """

    def resolve(value: str) -> str:
        return _resolve_reference(value, urn_map, entry, policy)

    return _rewrite_node(resource, resolve)


def _rewrite_node(node, resolve):
    if type(node) is dict:
        copy = None
        for key, value in node.items():
            if key == "reference" and type(value) is str:
                new = resolve(value)
            elif type(value) is dict or type(value) is list:
                new = _rewrite_node(value, resolve)
            else:
                continue
            if new is not value:
                copy = copy if copy is not None else dict(node)
                copy[key] = new
        return node if copy is None else copy
    if type(node) is list:
        copy = None
        for i, value in enumerate(node):
            if type(value) is dict or type(value) is list:
                new = _rewrite_node(value, resolve)
                if new is not value:
                    copy = copy if copy is not None else list(node)
                    copy[i] = new
        return node if copy is None else copy
    return node


def _resolve_reference(value: str, urn_map, entry: PlannedEntry, policy) -> str:
    if value in urn_map:
        return urn_map[value]
    if value.startswith("urn:uuid:"):
        raise _at(entry, NotFound(f"Reference {value} names no entry of this transaction."))
    res_type, sep, query = value.partition("?")
    if not sep or "/" in res_type:
        return value
    # Only what the caller may read can be matched: no probing of other patients' data.
    found = policy.conditional_matches(res_type, parse_query(query))
    if len(found) != 1:
        problem = "nothing" if not found else "more than one resource"
        raise _at(entry, PreconditionFailed(f"Conditional reference {value} matched {problem}."))
    return f"{res_type}/{found[0]['id']}"


def _execute(writer: Writer, entry: PlannedEntry, policy) -> Result:
    target = entry.target
    if entry.method == "DELETE":
        if target.query:
            return interactions.conditional_delete(writer, target.res_type, target.query)
        return interactions.delete(writer, target.res_type, target.res_id)
    if entry.method == "POST":
        existing = entry.extra.get("existing")
        if existing:
            current = policy.read(target.res_type, existing, writer.conn)
            return Result(200, current, interactions.outcome_of(current, changed=False))
        if entry.if_none_exist:
            again = interactions.matching_ids(
                writer, target.res_type, parse_query(entry.if_none_exist)
            )
            if again:
                raise Conflict("A matching resource appeared concurrently; retry the transaction.")
        return interactions.create(writer, entry.resource)
    if entry.method == "PATCH":
        staged = replace(entry.extra["staged"], resource=entry.resource)  # refs resolved
        return patch.commit(writer, staged)
    if entry.method == "PUT":
        if target.query:
            return interactions.conditional_update(
                writer, target.res_type, target.query, entry.resource, entry.extra.get("new_id")
            )
        if_match = _etag_version(entry.if_match)
        return interactions.update(writer, target.res_type, target.res_id, entry.resource, if_match)
    writer.flush()  # buffered writes of this transaction must be visible to its GETs
    return _read(policy, target, writer.conn)


def _read(policy: AccessPolicy, target: EntryTarget, conn=None) -> Result:
    if target.res_id and target.version_id:
        return Result(200, policy.vread(target.res_type, target.res_id, int(target.version_id)))
    if target.res_id:
        return Result(200, policy.read(target.res_type, target.res_id, conn))
    page = policy.search(target.res_type, target.query or [], conn=conn)
    bundle = {"resourceType": "Bundle", "type": "searchset"}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["entry"] = [{"resource": r, "search": {"mode": "match"}} for r in page.matches]
    return Result(200, bundle)


def _etag_version(value) -> int | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f'Malformed ifMatch {value!r}: a string W/"<versionId>" is expected.')
    text = value.removeprefix("W/").strip('"')
    if not (text.isascii() and text.isdigit()):
        raise BadRequest(f"Malformed ifMatch {value!r}.")
    return ids.parse_version(text, "ifMatch version")


def _at(entry: PlannedEntry, error: FHIRError) -> FHIRError:
    """Prefix the failing entry so the client knows which one broke the transaction."""
    prefix = f"Bundle.entry[{entry.index}] ({entry.method}): "
    error.diagnostics = prefix + error.diagnostics
    if error.issues:
        # keep each issue (and its expression), naming the entry in its diagnostics
        error.issues = [replace(i, diagnostics=prefix + i.diagnostics) for i in error.issues]
    return error


# -- batch ------------------------------------------------------------------------
def _run_alone(store: ResourceStore, entry: PlannedEntry, policy: AccessPolicy) -> None:
    try:
        if entry.method in {"GET", "HEAD"}:
            entry.result = _read(policy, entry.target)
            return
        if entry.method == "PATCH":
            target, if_match = entry.target, _etag_version(entry.if_match)
            document = entry.extra["patch"]
            entry.result = patch.patch_resource(
                store, policy, target.res_type, target.res_id, document, if_match
            )
            return
        if entry.resource is not None:
            validate_resource(entry.resource)
        if entry.method == "POST":
            entry.resource = {**entry.resource, "id": ids.new_id()}
        if entry.resource is not None:
            _new_id_for_conditional_put(entry)
        prepare = [_to_prepare(entry)] if entry.resource else []
        if entry.resource is not None:
            policy.check_content(_content_interaction(entry), _to_prepare(entry))
        with store.unit_of_work(prepare=prepare, policy=policy) as writer:
            if entry.method == "POST":  # a conditional create is decided in its own unit
                entry.result = interactions.create(writer, entry.resource, entry.if_none_exist)
            else:
                entry.result = _execute(writer, entry, policy)
    except FHIRError as error:
        entry.error = error


# -- response ---------------------------------------------------------------------
def _response_bundle(kind: str, entries: list[PlannedEntry], base_url: str) -> dict:
    return {
        "resourceType": "Bundle",
        "id": ids.new_id(),
        "type": f"{kind}-response",
        "entry": [_response_entry(e, base_url) for e in entries],
    }


def _response_entry(entry: PlannedEntry, base_url: str) -> dict:
    if entry.error is not None:
        return {
            "response": {
                "status": str(entry.error.status),
                "outcome": entry.error.to_operation_outcome(),
            }
        }
    result = entry.result
    response: dict = {"status": STATUS_TEXT.get(result.status, str(result.status))}
    out: dict = {"response": response}
    written = result.written
    if written is not None:
        response["location"] = f"{written.res_type}/{written.res_id}/_history/{written.version_id}"
        response["etag"] = f'W/"{written.version_id}"'
        response["lastModified"] = ids.instant(written.last_updated_us)
        out["fullUrl"] = f"{base_url}/{written.res_type}/{written.res_id}"
    if entry.method in {"GET", "HEAD"} and result.resource is not None:
        out["resource"] = result.resource
    return out
