"""What a reading node accepts of a home node's International Patient Summary: an
entry may only *omit* what its anchored version holds -- never add or change anything
-- apart from meta, the narrative and the IPS's data-absent-reason markers where the
record lacks a required element. Flask-free, pure functions.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"


def content(resource: dict, original: dict | None = None) -> dict:
    """What a summary entry must not change: all but meta, narrative and the
    data-absent-reason markers the IPS puts where the record lacks a required element
    (an element the anchored ``original`` does not have at all)."""
    return {
        k: v
        for k, v in resource.items()
        if k not in ("meta", "text")
        and not (original is not None and k not in original and _absent_marker(k, v, resource))
    }


def _absent_marker(key: str, value, resource: dict) -> bool:
    if key.startswith("_"):  # a primitive's extension: only the marker, nothing else
        if key[1:] in resource or not isinstance(value, dict) or set(value) != {"extension"}:
            return False
        return all(e.get("url") == DATA_ABSENT for e in value.get("extension") or [])
    items = value if isinstance(value, list) else [value]
    return bool(items) and all(_marked(item) for item in items)


def _marked(item) -> bool:
    """A complex element that says only "absent" (its extension, and a display)."""
    if not isinstance(item, dict) or not set(item) <= {"extension", "display"}:
        return False
    extensions = item.get("extension") or []
    return bool(extensions) and all(e.get("url") == DATA_ABSENT for e in extensions)


def omits_only(part, whole) -> bool:
    """Whether ``part`` holds nothing that ``whole`` does not (elements or list items
    may be missing; none added or changed)."""
    if isinstance(part, dict) and isinstance(whole, dict):
        return all(k in whole and omits_only(v, whole[k]) for k, v in part.items())
    if isinstance(part, list) and isinstance(whole, list):
        return all(any(omits_only(item, other) for other in whole) for item in part)
    return part == whole


def drop_section_entries(composition: dict, dropped: set[str]) -> None:
    for section in composition.get("section") or []:
        refs = section.get("entry") or []
        kept = [r for r in refs if _relative(r.get("reference", "")) not in dropped]
        if len(kept) != len(refs):
            section["entry"] = kept
            if not kept:
                section.pop("entry")
                section["emptyReason"] = {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/list-empty-reason",
                            "code": "withheld",
                        }
                    ]
                }


def _relative(reference: str) -> str:
    parts = urlsplit(reference).path.rstrip("/").split("/")
    return "/".join(parts[-2:])


def faithful(entry: dict, original: dict) -> bool:
    """Whether a summary ``entry`` shows nothing its anchored ``original`` does not."""
    return omits_only(content(entry, original), content(original))
