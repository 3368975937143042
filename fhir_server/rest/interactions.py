"""FHIR RESTful interactions as Flask-free functions (R4 http.html).

Used by the HTTP blueprints for single requests and by the Bundle processor
for each entry, so a PUT inside a transaction behaves exactly like a PUT on
its own. Writes take a :class:`~fhir_server.storage.writer.Writer` (one database transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from fhir_server import ids
from fhir_server.errors import BadRequest, Gone, NotFound, PreconditionFailed
from fhir_server.search.runner import run_search
from fhir_server.storage.writer import WriteOutcome, Writer


@dataclass(frozen=True)
class Result:
    """What an interaction produced: HTTP status plus the resource or version written."""

    status: int
    resource: dict | None = None
    written: WriteOutcome | None = None


def parse_query(text: str) -> list[tuple[str, str]]:
    text = text.split("?", 1)[1] if "?" in text else text
    pairs = parse_qsl(text, keep_blank_values=True)
    if not pairs:
        raise BadRequest(f"Empty search criteria {text!r} in a conditional request.")
    return pairs


def matching(writer: Writer, res_type: str, query: list[tuple[str, str]]) -> list[dict]:
    """At most two current resources matching ``query``, searched inside the
    transaction among those the writer's policy may read (all, without a policy)."""
    writer.flush()
    if writer.policy is not None:
        return writer.policy.conditional_matches(res_type, query, writer.conn)
    page = run_search(
        writer.store, res_type, [*query, ("_count", "2")], strict=True, conn=writer.conn
    )
    return page.matches


def matching_ids(writer: Writer, res_type: str, query: list[tuple[str, str]]) -> list[str]:
    return [r["id"] for r in matching(writer, res_type, query)]


def create(
    writer: Writer, resource: dict, if_none_exist: str | list[tuple[str, str]] | None = None
) -> Result:
    """``if_none_exist``: the criteria of a conditional create (http.html#ccreate), as
    the ``If-None-Exist`` header's query string or as parsed pairs (the search
    parameters of ``POST [type]?criteria``). One match the caller may read is
    answered 200 with it, several are a 412, none creates."""
    if if_none_exist:
        res_type = resource.get("resourceType", "")
        criteria = parse_query(if_none_exist) if isinstance(if_none_exist, str) else if_none_exist
        found = matching(writer, res_type, criteria)
        if len(found) > 1:
            raise PreconditionFailed(
                f"The conditional create matched more than one {res_type}; it was not performed."
            )
        if found:
            return Result(200, found[0], outcome_of(found[0], changed=False))
    # The caller assigned a fresh id already (a client's id is ignored on POST):
    # the data key of a new Patient had to exist before the transaction opened.
    written = writer.create(resource, res_id=resource["id"])
    return Result(201, written.resource, written)


def update(
    writer: Writer, res_type: str, res_id: str, resource: dict, if_match: int | None = None
) -> Result:
    written = writer.update(res_type, res_id, resource, if_match=if_match)
    return Result(201 if written.created else 200, written.resource, written)


def conditional_update(
    writer: Writer,
    res_type: str,
    query: list[tuple[str, str]],
    resource: dict,
    new_id: str | None = None,
) -> Result:
    """``new_id``: the id to create under when nothing matches and the body has none;
    the caller prepared its data key (a new Patient's key cannot be made mid-transaction)."""
    found = matching_ids(writer, res_type, query)
    if len(found) > 1:
        raise PreconditionFailed(f"The conditional update matched more than one {res_type}.")
    if found:
        if resource.get("id") not in (None, found[0]):
            raise BadRequest(
                "The resource id does not match the resource the criteria selected.",
                expression=[f"{res_type}.id"],
            )
        return update(writer, res_type, found[0], {**resource, "id": found[0]})
    res_id = resource.get("id") or new_id or ids.new_id()
    if not resource.get("id"):
        writer.fresh_ids.add(res_id)  # server-chosen: a create, not an update of a guess
    return update(writer, res_type, res_id, {**resource, "id": res_id})


def delete(writer: Writer, res_type: str, res_id: str) -> Result:
    try:
        written = writer.delete(res_type, res_id)
    except (NotFound, Gone):
        # Deleting something absent or deleted is idempotent (http.html#delete).
        return Result(204)
    return Result(204, None, written)


def conditional_delete(writer: Writer, res_type: str, query: list[tuple[str, str]]) -> Result:
    found = matching_ids(writer, res_type, query)
    if len(found) > 1:
        raise PreconditionFailed(f"The conditional delete matched more than one {res_type}.")
    if not found:
        return Result(204)
    return delete(writer, res_type, found[0])


def outcome_of(resource: dict, *, changed: bool) -> WriteOutcome:
    meta = resource.get("meta", {})
    updated = ids.parse_instant_us(meta.get("lastUpdated", "")) or 0
    return WriteOutcome(
        resource["resourceType"],
        resource["id"],
        int(meta.get("versionId", "1")),
        updated,
        resource,
        changed=changed,
    )
