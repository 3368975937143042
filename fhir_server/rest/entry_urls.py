"""Parse ``Bundle.entry.request.url`` into what it targets (R4 bundle.html#transaction)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from fhir_server import ids
from fhir_server.errors import BadRequest
from fhir_server.resource_types import check_type


@dataclass(frozen=True)
class EntryTarget:
    res_type: str
    res_id: str | None = None
    version_id: str | None = None
    query: list[tuple[str, str]] | None = None


def parse_entry_url(url: object, base_url: str, where: str) -> EntryTarget:
    if not isinstance(url, str) or not url.strip():
        raise BadRequest(f"{where}.request.url is missing.", expression=[f"{where}.request.url"])
    text = url.strip()
    if text.startswith(base_url + "/"):
        text = text[len(base_url) + 1 :]
    elif "://" in text:
        raise BadRequest(
            f"{where}.request.url {url!r} points at another server.",
            expression=[f"{where}.request.url"],
        )
    parts = urlsplit(text)
    segments = [s for s in parts.path.split("/") if s]
    query = parse_qsl(parts.query, keep_blank_values=True) if parts.query else None
    if not segments:
        raise BadRequest(f"{where}.request.url {url!r} names no resource type.")
    res_type = check_type(segments[0])
    if len(segments) == 1:
        return EntryTarget(res_type, query=query)
    res_id = ids.check_id(segments[1])
    if len(segments) == 2:
        return EntryTarget(res_type, res_id, query=query)
    if len(segments) == 4 and segments[2] == "_history":
        return EntryTarget(res_type, res_id, str(ids.parse_version(segments[3])))
    raise BadRequest(f"{where}.request.url {url!r} is not a supported entry URL.")
