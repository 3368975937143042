"""Resource ids, version ids and server time (R4 datatypes.html#id, #instant)."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime

from fhir_server.errors import BadRequest

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def new_id() -> str:
    """A random id: ids travel in clear in the index, so they must carry no PHI."""
    return str(uuid.uuid4())


def check_id(value: str, what: str = "id") -> str:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise BadRequest(f"Invalid {what} {value!r}: must match [A-Za-z0-9-.]{{1,64}}.")
    return value


MAX_VERSION = 2**31 - 1  # version ids are INTEGER columns


def parse_version(text: str, what: str = "version id") -> int:
    """A version id (or count) from a URL or header: ASCII digits only (``str.isdigit``
    also takes "²", which int() refuses), within the INTEGER columns that hold it."""
    if not (isinstance(text, str) and text.isascii() and text.isdigit()):
        raise BadRequest(f"Invalid {what} {text!r}: expected a non-negative integer.")
    value = int(text)
    if value > MAX_VERSION:
        raise BadRequest(f"Invalid {what} {text!r}: at most {MAX_VERSION}.")
    return value


def now_us() -> int:
    return time.time_ns() // 1000


def instant(us: int) -> str:
    """FHIR instant with millisecond precision, UTC."""
    moment = datetime.fromtimestamp(us / 1_000_000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def http_date(us: int) -> str:
    moment = datetime.fromtimestamp(us / 1_000_000, tz=UTC)
    return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")


def parse_instant_us(value: str) -> int | None:
    """Parse a FHIR instant/dateTime with timezone (as used in `_since`) to epoch µs."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)
