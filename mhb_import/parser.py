"""MHB export bytes -> normalised MhbExport (JSON or XML, plain or zipped).

Hostile input is refused before anything is produced: size, nesting depth,
zip entry count and compression ratio are bounded; XML with any DOCTYPE or
ENTITY declaration is rejected outright and parsed with DTD loading, entity
resolution and network access off. Error diagnostics never echo file content.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree

from mhb_import.errors import MhbInvalid, MhbTooLarge, MhbUnexpectedStructure, MhbUnsupported

from .gcpause import gc_paused
from .spec import BDATA_FIELDS, CHILD_KEY, FIELDS, IGNORED_SECTIONS, NO_DATA, SECTIONS

try:  # optional: AES-encrypted zips
    import pyzipper
except ImportError:  # pragma: no cover - exercised only without pyzipper
    pyzipper = None

Row = dict[str, Any]
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class ParseLimits:
    max_bytes: int = 50 * 1024 * 1024  # raw upload and every decompressed entry
    max_depth: int = 12  # JSON / XML nesting (an MHB file needs 5)
    max_zip_entries: int = 16
    max_compression_ratio: int = 100
    max_rows: int = 500_000


@dataclass
class MhbExport:
    """A parsed export: sections of normalised rows, nothing mapped yet."""

    format: str  # "json" | "xml"
    container: str  # "plain" | "zip" | "zip-zipcrypto" | "zip-aes"
    source_sha256: str
    filename: str | None
    request_date: str | None
    sections: dict[str, list[Row]]
    empty_sections: list[str] = field(default_factory=list)
    unknown_fields: dict[str, int] = field(default_factory=dict)
    unknown_sections: dict[str, Any] = field(default_factory=dict)
    duplicates_removed: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    omitted_demographics: list[str] = field(default_factory=list)

    def row_count(self) -> int:
        return sum(len(v) for v in self.sections.values())


# --------------------------------------------------------------------------- api


def parse_export(
    data: bytes,
    *,
    password: str | None = None,
    filename: str | None = None,
    limits: ParseLimits | None = None,
) -> MhbExport:
    limits = limits or ParseLimits()
    if not isinstance(data, bytes | bytearray):
        raise MhbInvalid("MHB export must be bytes")
    data = bytes(data)
    if len(data) > limits.max_bytes:
        raise MhbTooLarge(f"MHB export exceeds the {limits.max_bytes} byte limit")
    if not data.strip():
        raise MhbInvalid("MHB export is empty")
    sha = hashlib.sha256(data).hexdigest()
    container = "plain"
    warnings: list[str] = []
    payload = data
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        payload, container, inner_name, warnings = _unzip(data, password, limits)
        filename = filename or inner_name
    elif password is not None:
        warnings.append("a password was given but the file is not an encrypted zip")
    fmt, text = _sniff(payload)
    if filename and not filename.lower().endswith((f".{fmt}", ".zip")):
        warnings.append(f"file name extension does not match the detected {fmt} content")
    with gc_paused():  # a large, acyclic tree of rows (see gcpause)
        raw = _load_json(text, limits) if fmt == "json" else _load_xml(payload, text, limits)
        export = _normalise(raw, fmt, container, sha, filename, limits)
    export.warnings[:0] = warnings
    return export


# --------------------------------------------------------------------------- zip


def _unzip(data: bytes, password: str | None, limits: ParseLimits):  # noqa: PLR0912
    warnings: list[str] = []
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError) as exc:
        raise MhbInvalid("the zip archive is damaged or truncated") from exc
    if len(infos) > limits.max_zip_entries:
        raise MhbTooLarge(f"zip has {len(infos)} entries (limit {limits.max_zip_entries})")
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > limits.max_bytes or total > limits.max_bytes:
            raise MhbTooLarge("zip content exceeds the uncompressed size limit")
        if info.file_size > 1024 * 1024 and (
            info.file_size > limits.max_compression_ratio * max(info.compress_size, 1)
        ):
            raise MhbTooLarge("zip compression ratio is implausibly high (zip bomb?)")
    candidates = [
        i
        for i in infos
        if not i.is_dir()
        and not i.filename.startswith("__MACOSX/")
        and i.filename.lower().endswith((".json", ".xml"))
    ]
    if not candidates:
        raise MhbUnsupported("the zip contains no .json or .xml MHB file")
    candidates.sort(key=lambda i: (not i.filename.lower().endswith(".json"), i.filename))
    chosen = candidates[0]
    if len(candidates) > 1:
        warnings.append(f"zip holds {len(candidates)} data files; read {chosen.filename!s}")
    encrypted = bool(chosen.flag_bits & 0x1)
    aes = chosen.compress_type == 99
    container = "zip"
    if encrypted:
        container = "zip-aes" if aes else "zip-zipcrypto"
        if password is None:
            raise MhbInvalid("the zip is password-protected: a password is required")
    pwd = password.encode("utf-8") if password is not None else None
    if aes or (encrypted and pyzipper is not None):
        if pyzipper is None:
            raise MhbUnsupported("AES-encrypted zips need the optional pyzipper package")
        zf = pyzipper.AESZipFile(io.BytesIO(data))
    try:
        with zf.open(chosen.filename, pwd=pwd) as fh:
            payload = fh.read(limits.max_bytes + 1)
    except RuntimeError as exc:  # zipfile / pyzipper: "Bad password for file"
        raise MhbInvalid("wrong password for the encrypted zip") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        if encrypted:
            raise MhbInvalid("wrong password for the encrypted zip") from exc
        raise MhbInvalid("the zip archive is damaged or truncated") from exc
    if len(payload) > limits.max_bytes:
        raise MhbTooLarge("zip entry exceeds the uncompressed size limit")
    if payload[:2] == b"PK":
        raise MhbUnsupported("nested archives are not accepted")
    return payload, container, chosen.filename.rsplit("/", 1)[-1], warnings


# --------------------------------------------------------------------------- sniff


def _sniff(payload: bytes) -> tuple[str, str]:
    if payload.startswith(BOM):
        payload = payload[len(BOM) :]
    if payload[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise MhbUnsupported("UTF-16 files are not MHB exports (expected UTF-8)")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MhbInvalid("the MHB file is not valid UTF-8") from exc
    head = text.lstrip()[:1]
    if head in ("{", "["):
        return "json", text
    if head == "<":
        return "xml", text
    raise MhbUnsupported("content is neither JSON, XML nor a zip archive")


# --------------------------------------------------------------------------- json


def _reject_constant(name: str):
    raise MhbInvalid(f"JSON constant {name} is not allowed")


def _pairs_hook(pairs):
    out: dict[str, Any] = {}
    for key, value in pairs:
        norm = _norm_key(key)
        if norm in out:
            raise MhbInvalid("JSON object has a duplicate key")
        out[norm] = value
    return out


_JSON_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET_RE = re.compile(r"[\[\]{}]")


def _load_json(text: str, limits: ParseLimits) -> Any:
    depth = 0
    # structural depth bound before the recursive parser runs (the whole text: a
    # process that imported web3 runs with a recursion limit of 100,000, deep
    # enough for json.loads to overflow the C stack before RecursionError)
    skeleton = _JSON_STRING_RE.sub("", text)
    for m in _BRACKET_RE.finditer(skeleton):
        ch = m.group()
        if ch in "[{":
            depth += 1
            if depth > limits.max_depth:
                raise MhbInvalid(f"JSON nesting is deeper than {limits.max_depth} levels")
        elif ch in "]}":
            depth -= 1
    try:
        doc = json.loads(text, object_pairs_hook=_pairs_hook, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise MhbInvalid("JSON nesting is too deep") from exc
    except json.JSONDecodeError as exc:
        raise MhbInvalid(
            f"the JSON is malformed or truncated (line {exc.lineno}, column {exc.colno})"
        ) from exc
    _check_depth(doc, limits.max_depth)
    return doc


def _check_depth(doc: Any, max_depth: int) -> None:
    stack = [(doc, 1)]
    while stack:
        node, d = stack.pop()
        if d > max_depth:
            raise MhbInvalid(f"nesting is deeper than {max_depth} levels")
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node)


# --------------------------------------------------------------------------- xml

_DTD_RE = re.compile(r"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)


def _load_xml(payload: bytes, text: str, limits: ParseLimits) -> Any:
    if _DTD_RE.search(text):
        raise MhbInvalid("XML with a DOCTYPE or entity declaration is refused")
    body = payload[len(BOM) :] if payload.startswith(BOM) else payload
    depth = 0
    root = None
    try:
        for event, elem in etree.iterparse(
            io.BytesIO(body),
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        ):
            if event == "start":
                depth += 1
                if root is None:
                    root = elem
                if depth > limits.max_depth:
                    raise MhbInvalid(f"XML nesting is deeper than {limits.max_depth} levels")
            else:
                depth -= 1
    except etree.XMLSyntaxError as exc:
        raise MhbInvalid("the XML is malformed or truncated") from exc
    if root is None:
        raise MhbInvalid("the XML has no root element")
    if root.getroottree().docinfo.doctype:
        raise MhbInvalid("XML with a DOCTYPE is refused")
    return _xml_to_obj(root)


def _xml_to_obj(root) -> dict:
    """<myhealthbank><bdata>… -> the JSON shape: repeated elements become lists."""

    def convert(elem) -> Any:
        children = [c for c in elem if isinstance(c.tag, str)]
        if not children:
            return (elem.text or "").strip()
        out: dict[str, Any] = {}
        for child in children:
            key = _norm_key(child.tag)
            value = convert(child)
            if key in CHILD_KEY.values() or key in SECTIONS or key in out:
                out.setdefault(key, [])
                if not isinstance(out[key], list):
                    out[key] = [out[key]]
                out[key].append(value)
            else:
                out[key] = value
        return out

    return {_norm_key(root.tag): convert(root)}


# --------------------------------------------------------------------------- normalise


def _norm_key(key: str) -> str:
    return unicodedata.normalize("NFKC", str(key)).strip().replace(" ", "").lower()


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value
    raise MhbUnexpectedStructure("an MHB field holds a nested structure where a value is expected")


def _norm_value(value: Any, kind: str) -> str | None:
    text = _as_text(value)
    if text is None:
        return None
    if kind == "text":
        text = text.strip()
    else:
        text = unicodedata.normalize("NFKC", text).strip()
        if kind == "code":
            text = text.upper()
        elif kind == "num" and text:
            try:
                num = Decimal(text.replace(",", ""))
                text = format(num.normalize(), "f") if num == num.to_integral() else str(num)
                if "." in text:
                    text = text.rstrip("0").rstrip(".")
            except InvalidOperation:
                pass
    return text or None


def _rows_of(value: Any, where: str) -> list | None:
    """Section value -> list of row dicts; None for a 無資料 placeholder."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip() in (NO_DATA, ""):
            return None
        raise MhbUnexpectedStructure(f"MHB section {where} holds text instead of rows")
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise MhbUnexpectedStructure(f"MHB section {where} has an unexpected structure")
    rows = []
    for item in value:
        if isinstance(item, str) and item.strip() in (NO_DATA, ""):
            continue
        if not isinstance(item, dict):
            raise MhbUnexpectedStructure(f"MHB section {where} has an unexpected structure")
        if len(item) == 1 and isinstance(next(iter(item.values())), str | type(None)):
            only = next(iter(item.values()))
            if only is None or only.strip() == NO_DATA:
                continue  # {"r2": "無資料"}
        rows.append(item)
    return rows


def _normalise(raw: Any, fmt: str, container: str, sha: str, filename, limits) -> MhbExport:
    if not isinstance(raw, dict) or "myhealthbank" not in raw:
        raise MhbUnsupported("not a My Health Bank export (no myhealthbank root)")
    mhb = raw["myhealthbank"]
    bdata = mhb.get("bdata") if isinstance(mhb, dict) else None
    if not isinstance(bdata, dict):
        raise MhbUnsupported("not a My Health Bank export (no bdata element)")
    export = MhbExport(
        format=fmt,
        container=container,
        source_sha256=sha,
        filename=filename,
        request_date=None,
        sections={},
    )
    unknown = export.unknown_fields
    if "b1.1" in bdata:
        export.omitted_demographics.append("b1.1")
    req = bdata.get("b1.2") or bdata.get("b2.1")
    if req is not None:
        export.request_date = _norm_value(req, "date")
    total = 0
    for key, value in bdata.items():
        if key in BDATA_FIELDS or key in IGNORED_SECTIONS:
            continue
        if key not in SECTIONS:
            unknown[key] = unknown.get(key, 0) + 1
            export.unknown_sections[key] = value
            continue
        rows = _rows_of(value, key)
        if not rows:
            export.empty_sections.append(key)
            continue
        out: list[Row] = []
        seen: set[str] = set()
        for row in rows:
            norm = _norm_row(row, key, unknown, limits)
            if key == "r7":  # duplicate lab rows are common in real exports
                fp = json.dumps(norm, sort_keys=True, ensure_ascii=False)
                if fp in seen:
                    export.duplicates_removed[key] = export.duplicates_removed.get(key, 0) + 1
                    continue
                seen.add(fp)
            out.append(norm)
        total += len(out) + sum(len(r.get(CHILD_KEY.get(key, ""), [])) for r in out)
        if total > limits.max_rows:
            raise MhbTooLarge(f"MHB export has more than {limits.max_rows} rows")
        export.sections[key] = out
    export.empty_sections.sort(key=_section_order)
    return export


def _section_order(key: str) -> int:
    return int(key[1:]) if key[1:].isdigit() else 99


def _norm_row(row: dict, section: str, unknown: dict[str, int], limits) -> Row:
    kinds = FIELDS[section]
    child_key = CHILD_KEY.get(section)
    out: Row = {}
    extra: dict[str, Any] = {}
    for key, value in row.items():
        if key == child_key:
            children = _rows_of(value, key) or []
            out[key] = [_norm_row(c, key, unknown, limits) for c in children]
        elif key in kinds:
            norm = _norm_value(value, kinds[key])
            if norm is not None:
                out[key] = norm
        else:
            unknown[key] = unknown.get(key, 0) + 1
            extra[key] = value
    if extra:
        out["_unknown"] = extra  # kept, reported, never mapped
    return out
