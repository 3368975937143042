"""HTTP helpers shared by the blueprints: body parsing, content negotiation, responses.

FHIR R4 http.html#mime: JSON is served as ``application/fhir+json``; XML is
not produced (406 when it is the only acceptable format, 415 as a body).
"""

from __future__ import annotations

from flask import Response, current_app, request

from fhir_server import fastjson, ids
from fhir_server.errors import BadRequest, NotAcceptable, PayloadTooLarge, UnsupportedMediaType

FHIR_JSON = "application/fhir+json"
JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir", "text/json"}
XML_TYPES = {"application/fhir+xml", "application/xml", "text/xml", "xml", "application/xml+fhir"}
JSON_FORMATS = {"json", "application/json", "application/fhir+json", "text/json"}


def negotiate() -> None:
    """Refuse requests whose ``_format`` / ``Accept`` admit no JSON (406)."""
    fmt = request.args.get("_format")
    if fmt:
        if fmt.split(";")[0].strip() not in JSON_FORMATS:
            raise NotAcceptable(f"_format={fmt} is not supported; this server speaks FHIR JSON.")
        return
    accept = request.accept_mimetypes
    if not accept or accept.provided is False:
        return
    acceptable = [mime for mime, _q in accept if _q > 0]
    if not acceptable:
        return
    if any(m in JSON_TYPES or m in {"*/*", "application/*"} for m in acceptable):
        return
    raise NotAcceptable("No acceptable representation: this server produces application/fhir+json.")


def read_json_body(types: frozenset[str] | set[str] = JSON_TYPES, *, resource: bool = True):
    """Parse the request body as one FHIR JSON object, with size and depth limits.
    ``types``: the media types accepted (415 otherwise); ``resource=False``: any JSON
    value is returned (a PATCH body may be a JSON Patch array)."""
    limit = current_app.config["PHRX_MAX_BODY_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The body exceeds the limit of {limit} bytes.")
    mime = (request.mimetype or "").lower()
    if mime in XML_TYPES:
        raise UnsupportedMediaType("FHIR XML bodies are not supported; send application/fhir+json.")
    if mime and mime not in types:
        raise UnsupportedMediaType(f"Unsupported body type {mime!r}; send application/fhir+json.")
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise PayloadTooLarge(f"The body exceeds the limit of {limit} bytes.")
    if not raw.strip():
        raise BadRequest("The request body is empty.")
    depth = current_app.config["PHRX_MAX_JSON_DEPTH"]
    try:
        # bounded before parsing: json.loads recurses in C once per level (fastjson)
        body = fastjson.parse(raw, max_depth=depth)
    except fastjson.NestingTooDeep:
        raise BadRequest(f"The JSON body is nested too deeply (limit: {depth} levels).") from None
    except ValueError as error:  # UnicodeDecodeError among them
        raise BadRequest(f"The body is not valid JSON: {_short(error)}") from None
    if resource and not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object holding one FHIR resource.")
    return body


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:200]


def fhir_response(body: dict | None, status: int = 200, headers: dict | None = None) -> Response:
    payload = b"" if body is None else fastjson.dumps(body)
    response = Response(payload, status=status, mimetype=FHIR_JSON)
    if body is not None:
        response.headers["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def version_headers(res_type: str, res_id: str, version_id: int, last_updated_us: int) -> dict:
    return {
        "ETag": f'W/"{version_id}"',
        "Last-Modified": ids.http_date(last_updated_us),
        "Location": f"{base_url()}/{res_type}/{res_id}/_history/{version_id}",
    }


def base_url() -> str:
    configured = current_app.config.get("PHRX_BASE_URL")
    if configured:
        return configured.rstrip("/")
    return request.host_url.rstrip("/") + "/fhir"


def parse_etag(value: str | None) -> int | None:
    """``W/"3"`` → 3; a malformed If-Match is a client error."""
    if value is None:
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not (text.isascii() and text.isdigit()):
        raise BadRequest(f'Malformed If-Match {value!r}; expected W/"<versionId>".')
    return ids.parse_version(text, "If-Match version")


def wants_return(default: str = "representation") -> str:
    """The ``Prefer: return=`` choice (minimal | representation | OperationOutcome)."""
    for part in request.headers.get("Prefer", "").split(","):
        name, _, value = part.strip().partition("=")
        if name == "return" and value in {"minimal", "representation", "OperationOutcome"}:
            return value
    return default


def strict_handling() -> bool:
    for part in request.headers.get("Prefer", "").split(","):
        name, _, value = part.strip().partition("=")
        if name == "handling":
            return value == "strict"
    return False
