"""JSON serialisation on the hot paths (sealed versions, responses) through ``orjson``.

Why: every resource is serialised to be sealed and every response body is
serialised once more; ``orjson`` does it about five times faster than the standard
library (measured on the Synthea resources). The output is the same compact UTF-8
JSON. Where ``orjson`` refuses a value the standard library accepts (integers
beyond 64 bits: a FHIR decimal such as 123456789012345678901234567890 is valid),
the standard library serialises it.

Parsing (:func:`parse`) stays with ``json.loads``: ``orjson.loads`` would read such
an integer as a float and silently drop digits, and on the Synthea Bundles it is
no faster (building the Python objects is the cost). It is the one parser of
untrusted JSON (request bodies, ``phrx load`` files), and it bounds nesting on the
raw text before ``json.loads`` runs (:func:`nesting_exceeds`).
"""

from __future__ import annotations

import json
import math
import re
from array import array
from itertools import accumulate
from typing import Any

import orjson

# Arrays and objects nested deeper than this are refused (the node's default,
# NodeConfig.max_json_depth; FHIR resources nest about a dozen levels).
MAX_DEPTH = 64


class NestingTooDeep(ValueError):
    """The JSON nests arrays and objects deeper than the limit; it was not parsed."""


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON (no whitespace, no ASCII escaping of other characters)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # e.g. an integer beyond 64 bits
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def parse(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON as RFC 8259 defines it. ``NaN``, ``Infinity`` and ``-Infinity``,
    which Python's parser accepts, are refused (ValueError), and so are numbers too
    large for a double (``1e400``): FHIR JSON has no such numbers, and written out
    again they would silently turn into ``null``. Arrays and objects nested deeper
    than ``max_depth`` are refused (:class:`NestingTooDeep`) before parsing."""
    if isinstance(raw, str):
        utf8 = raw.encode("utf-8", "surrogatepass")
    elif json.detect_encoding(raw).startswith("utf-8"):
        utf8 = raw  # (UTF-8 never has the bytes of quotes or brackets inside a character)
    else:  # UTF-16 or UTF-32, decoded as json.loads decodes them
        raw = raw.decode(json.detect_encoding(raw), "surrogatepass")
        utf8 = raw.encode("utf-8", "surrogatepass")
    if nesting_exceeds(utf8, max_depth):
        raise NestingTooDeep(f"The JSON is nested more than {max_depth} levels deep.")
    try:
        return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:  # not reached while max_depth is far below the recursion limit
        raise NestingTooDeep("The JSON is nested too deeply.") from None


# Bytes that matter to nesting: quotes and brackets ({} are counted as [] are).
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_STRING = re.compile(rb'"[^"]*"')
_STEPS = bytes.maketrans(b"[]", b"\x01\xff")  # +1 / -1 as signed bytes
_MANY_ESCAPES = 4096
_LONG_SKELETON = 1 << 16


def nesting_exceeds(raw: bytes, limit: int) -> bool:
    """True when arrays and objects in the UTF-8 JSON ``raw`` nest deeper than
    ``limit`` -- or, for malformed JSON, when ``json.loads`` could descend deeper
    than ``limit`` before it finds the fault. Nothing is parsed.

    Why: ``json.loads`` recurses in C once per level; web3 (py_ecc) raises the
    recursion limit to 100,000, past which the C stack overflows first, and 100,000
    ``[`` killed a worker (SIGSEGV). Checking the parsed value is too late.

    How, at C speed (measured on the 25 Synthea Bundles: 1.3 ms per MB, against 4.2
    for the former walk over the parsed containers, in the same run): escapes
    are dropped, then every byte but quotes and brackets (``bytes.translate``);
    strings are then the runs between paired quotes -- most are now empty (``""``,
    one ``bytes.replace``), the rest go with one regex. What is left is the bracket
    skeleton, ``{}`` read as ``[]``. Each ``replace(b"[]", b"")`` removes the
    innermost level (the empty arrays and objects: non-overlapping, left to right,
    it never removes a pair its own removals created), so the number of passes is
    the depth. Real data loses half its skeleton a pass; a long skeleton that barely
    shrinks (hostile: thousands of 64-deep arrays) is measured in one pass over
    running sums instead: 32 MB of them cost 1.3 s (passes alone: 6.8 s; json.loads
    of them: 15 s). A skeleton that stops shrinking before it is empty is malformed:
    the parser can reach at most the passes so far plus the ``[`` left.
    """
    skeleton = _quotes_and_brackets(raw).replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = _STRING.sub(b"", skeleton)
        unterminated = skeleton.find(b'"')
        if unterminated >= 0:  # the parser stops in that string
            skeleton = skeleton[:unterminated]
    passes = 0
    while skeleton:
        shorter = skeleton.replace(b"[]", b"")
        if len(shorter) == len(skeleton):  # unbalanced: the parser reports it
            return passes + shorter.count(b"[") > limit
        passes += 1
        if passes > limit:
            return True
        if len(shorter) > _LONG_SKELETON and len(shorter) * 4 > len(skeleton) * 3:
            return passes + _deepest_prefix(shorter) > limit
        skeleton = shorter
    return False


def _deepest_prefix(skeleton: bytes) -> int:
    """The most ``[`` open at any point of ``skeleton`` (one pass, in C)."""
    steps = array("b")
    steps.frombytes(skeleton.translate(_STEPS))
    return max(accumulate(steps, initial=0))


def _quotes_and_brackets(raw: bytes) -> bytes:
    """The quotes and brackets of ``raw`` outside backslash escapes: ``\\"`` ends no
    string and ``\\\\`` escapes no quote (the other escapes hold neither)."""
    if b"\\" not in raw:
        return raw.translate(_BRACKETS, _NOT_STRUCTURE)
    parts = raw.split(b"\\", _MANY_ESCAPES)
    if len(parts) > _MANY_ESCAPES:  # escaped backslashes first, as the parser pairs them
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
        return raw.translate(_BRACKETS, _NOT_STRUCTURE)
    # Few (real data): split finds them at memchr speed, where replace is slower.
    kept = [parts[0].translate(_BRACKETS, _NOT_STRUCTURE)]
    i, count = 1, len(parts)
    while i < count:
        part = parts[i]
        if part:  # the backslash before it escapes its first byte
            kept.append(part[1:].translate(_BRACKETS, _NOT_STRUCTURE))
            i += 1
        else:  # two backslashes: an escaped one; the part after them is plain
            if i + 1 < count:
                kept.append(parts[i + 1].translate(_BRACKETS, _NOT_STRUCTURE))
            i += 2
    return b"".join(kept)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: a valid JSON number no double holds
        raise ValueError(f"{text[:40]} is out of range")
    return value
