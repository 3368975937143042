"""The element values a search parameter reaches in a resource (Flask-free).

Shared by the indexer (which digests them), the Python matcher (post-filters)
and the compartment / granular-scope checks: compiled element paths, the
searchable strings of HumanName/Address, the (system, code) pairs and texts of
tokens, the ``[low, high)`` microsecond ranges of dates, and parsed references.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Any

from fhir_server.search.params import SearchParam

MIN_US = -(2**62)
MAX_US = 2**62
CONTACT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})

# ---------------------------------------------------------------- normalizing

_WS = re.compile(r"\s+")


def normalize(value: str) -> str:
    """NFKD, drop combining marks, casefold, collapse whitespace."""
    if not value.isascii():
        value = "".join(
            ch for ch in unicodedata.normalize("NFKD", value) if not unicodedata.combining(ch)
        )
    return _WS.sub(" ", value.casefold()).strip()


def trigrams(norm: str) -> set[str]:
    return {norm[i : i + 3] for i in range(len(norm) - 2)}


# ---------------------------------------------------------------- dates

_DT = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_DAY = 86_400_000_000


def _days_from_civil(y: int, m: int, d: int) -> int:
    # H. Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date.
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_MDAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def date_range(text: str) -> tuple[int, int] | None:
    """Implicit ``[low, high)`` range in epoch µs of a FHIR date/dateTime/instant.

    Returns None when ``text`` is not a valid value. A time without zone is UTC.
    """
    m = _DT.match(text)
    if not m:
        return None
    ys, mos, ds, hs, mis, ss, frac, tz = m.groups()
    y = int(ys)
    if mos is None:
        return _days_from_civil(y, 1, 1) * _DAY, _days_from_civil(y + 1, 1, 1) * _DAY
    mo = int(mos)
    if not 1 <= mo <= 12:
        return None
    if ds is None:
        nxt = _days_from_civil(y + (mo == 12), mo % 12 + 1, 1)
        return _days_from_civil(y, mo, 1) * _DAY, nxt * _DAY
    d = int(ds)
    if not 1 <= d <= _MDAYS[mo - 1] or (
        mo == 2 and d == 29 and not (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0))
    ):
        return None
    day = _days_from_civil(y, mo, d) * _DAY
    if hs is None:
        return day, day + _DAY
    h, mi = int(hs), int(mis)
    s = int(ss) if ss else 0
    if h > 23 or mi > 59 or s > 59:  # leap seconds are not representable
        return None
    low = day + ((h * 60 + mi) * 60 + s) * 1_000_000
    if ss is None:
        width = 60_000_000
    elif frac:
        digits = frac[:6]
        low += int(digits.ljust(6, "0"))
        width = 10 ** (6 - len(digits))
    else:
        width = 1_000_000
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        th, tm = int(tz[1:3]), int(tz[4:6])
        if th > 14 or tm > 59:
            return None
        low -= sign * (th * 60 + tm) * 60_000_000
    return low, low + width


def value_date_ranges(v: Any) -> list[tuple[int, int]]:
    """Ranges of a date-ish element value (date/dateTime/instant, Period, Timing)."""
    if isinstance(v, str):
        r = date_range(v)
        return [r] if r else []
    if not isinstance(v, dict):
        return []
    if "event" in v:  # Timing
        out = []
        for e in v["event"] or ():
            r = date_range(e) if isinstance(e, str) else None
            if r:
                out.append(r)
        return out
    start, end = v.get("start"), v.get("end")
    if start is None and end is None:
        return []
    lo = date_range(start) if isinstance(start, str) else None
    hi = date_range(end) if isinstance(end, str) else None
    if (start is not None and lo is None) or (end is not None and hi is None):
        return []
    return [(lo[0] if lo else MIN_US, hi[1] if hi else MAX_US)]


# ---------------------------------------------------------------- paths

Step = tuple[str, str | None, str | None]
_SEG = re.compile(r"^([A-Za-z]+)(?:\(([A-Za-z]+)=([^)]*)\))?$")


@cache
def compile_path(path: str) -> tuple[Step, ...]:
    steps = []
    for seg in path.split("."):
        m = _SEG.match(seg)
        if not m:
            raise ValueError(f"bad element path {path!r}")
        steps.append((m.group(1), m.group(2), m.group(3)))
    return tuple(steps)


def path_values(resource: dict, steps: tuple[Step, ...], out: list) -> None:
    """Append every value reached by ``steps`` (lists flattened) to ``out``."""
    nodes: list = [resource]
    last = len(steps) - 1
    for i, (name, fk, fv) in enumerate(steps):
        nxt: list = []
        for node in nodes:
            v = node.get(name)
            if v is None:
                continue
            for item in v if isinstance(v, list) else (v,):
                if fk is not None and (not isinstance(item, dict) or item.get(fk) != fv):
                    continue
                if i == last:
                    out.append(item)
                elif isinstance(item, dict):
                    nxt.append(item)
        nodes = nxt
        if not nodes:
            return


def param_values(resource: dict, sp: SearchParam) -> list:
    out: list = []
    for p in sp.paths:
        path_values(resource, compile_path(p), out)
    return out


# ---------------------------------------------------------------- value shapes


def string_values(v: Any) -> list[str]:
    """Searchable strings of a string-param value (HumanName/Address parts)."""
    if isinstance(v, str):
        return [v]
    if not isinstance(v, dict):
        return []
    out: list[str] = []
    for k in ("family", "text", "city", "district", "state", "postalCode", "country"):
        s = v.get(k)
        if isinstance(s, str):
            out.append(s)
    for k in ("given", "prefix", "suffix", "line"):
        for s in v.get(k) or ():
            if isinstance(s, str):
                out.append(s)
    return out


def is_identifier_like(v: Any) -> bool:
    """True for a token value that :func:`token_values` reads as an Identifier or a
    ContactPoint (a person's MRN, phone, e-mail), not as terminology."""
    return isinstance(v, dict) and "value" in v and "coding" not in v


def token_values(v: Any) -> tuple[list[tuple[str | None, str | None]], list[str]]:  # noqa: PLR0912
    """``([(system, code)], [texts])`` of a token-param value."""
    if isinstance(v, str):
        return [(None, v)], []
    if isinstance(v, bool):
        return [(None, "true" if v else "false")], []
    if not isinstance(v, dict):
        return [], []
    pairs: list[tuple[str | None, str | None]] = []
    texts: list[str] = []
    if "coding" in v or ("text" in v and "value" not in v):  # CodeableConcept
        for c in v.get("coding") or ():
            if isinstance(c, dict):
                if c.get("code") is not None or c.get("system") is not None:
                    pairs.append((c.get("system"), c.get("code")))
                if isinstance(c.get("display"), str):
                    texts.append(c["display"])
        if isinstance(v.get("text"), str):
            texts.append(v["text"])
        return pairs, texts
    if "value" in v:  # Identifier or ContactPoint
        val = v.get("value")
        system = v.get("system")
        if system in CONTACT_SYSTEMS and "type" not in v:
            system = None  # ContactPoint: the token is the value; its system is not a URI
        if isinstance(val, str):
            pairs.append((system, val))
        t = v.get("type")
        if isinstance(t, dict) and isinstance(t.get("text"), str):
            texts.append(t["text"])
        return pairs, texts
    if "code" in v or "system" in v:  # Coding (or a Quantity as token)
        pairs.append((v.get("system"), v.get("code")))
        if isinstance(v.get("display"), str):
            texts.append(v["display"])
    return pairs, texts


_REL = re.compile(
    r"^([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$"
)
_ABS_TAIL = re.compile(r"/([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


def parse_reference(ref: str) -> tuple[str | None, str | None, str | None]:
    """``(type, id, url)``: relative -> (type, id, None); otherwise (type?, None, url)."""
    m = _REL.match(ref)
    if m:
        return m.group(1), m.group(2), None
    if ref.startswith("#"):
        return None, None, None
    url = ref.split("|", 1)[0] if "|" in ref else ref
    m = _ABS_TAIL.search(url)
    return (m.group(1) if m else None), None, url


def reference_values(v: Any) -> list[tuple[str | None, str | None, str | None]]:
    if isinstance(v, str):  # canonical / uri
        return [parse_reference(v)] if v else []
    if not isinstance(v, dict):
        return []
    ref = v.get("reference")
    if not isinstance(ref, str) or not ref:
        return []
    t, i, u = parse_reference(ref)
    if t is None and isinstance(v.get("type"), str):
        t = v["type"]
    if t is None and i is None and u is None:
        return []
    return [(t, i, u)]
