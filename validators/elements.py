"""Rules every element of every resource obeys, which the ``fhir.resources`` models
leave unchecked (issue #14: each of these was stored with 201):

* no ``null`` as a value: an element without a value is left out (R4 json.html).
  The one ``null`` FHIR JSON has keeps two arrays of a repeating primitive aligned:
  ``"given": ["Ann", null]`` with ``"_given": [null, {"extension": ...}]`` -- a
  ``null`` needs a value at the same index of its partner array;
* ele-1, "All FHIR elements must have a @value or children": no empty object
  (``"name": [{}]``), no empty string. (An empty array, which json.html forbids
  too, is left alone: it holds no element, and clients and this repository's own
  fixtures send ``"note": []`` for "none".)
* no character below U+0020 but TAB, LF and CR in any string (datatypes.html#string:
  ``[ \\r\\n\\t\\S]+``; narrative XHTML cannot hold them either);
* dom-2, "If the resource is contained in another resource, it SHALL NOT contain
  nested Resources".

Validation runs on every resource of an ingest, so :func:`check_elements` makes one
pass over the resource that only answers "anything to report?" (no paths built);
only then a second pass collects every issue with its FHIRPath ``expression``.
"""

from __future__ import annotations

import re

from validators.errors import ValidationIssue

MAX_ISSUES = 20
# Characters a FHIR string may not hold (all below U+0020 but TAB, LF, CR).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def check_elements(resource: dict) -> list[ValidationIssue]:
    """Issues for the rules above, each with the path of its element (empty: none)."""
    if _clean(resource):
        return []
    issues: list[ValidationIssue] = []
    _collect(resource, str(resource.get("resourceType") or "Resource"), issues)
    return issues[:MAX_ISSUES]


def _clean(node: dict) -> bool:  # noqa: PLR0912 - inline: a call per value cost +30%
    """True when nothing under ``node`` breaks a rule (a null in an array: False,
    so that :func:`_collect` decides whether it is aligned). ``isprintable`` is
    False for TAB, CR and LF too: the regex then looks (0.5% of Synthea resources)."""
    for value in node.values():
        kind = value.__class__
        if kind is str:
            if not value or (not value.isprintable() and _CONTROL.search(value)):
                return False
        elif kind is dict:
            if not value or not _clean(value):
                return False
        elif kind is list:
            for item in value:
                kind = item.__class__
                if kind is str:
                    if not item or (not item.isprintable() and _CONTROL.search(item)):
                        return False
                elif kind is dict:
                    if not item or not _clean(item):
                        return False
                elif item is None:
                    return False
        elif value is None:
            return False
    contained = node.get("contained")
    if contained.__class__ is list:
        for item in contained:
            if item.__class__ is dict and "contained" in item:
                return False
    return True


def _collect(node: dict, path: str, issues: list[ValidationIssue]) -> None:
    for key, value in node.items():
        where = f"{path}.{key}"
        if value is None:
            issues.append(_null(where))
        elif value.__class__ is list:
            for index, item in enumerate(value):
                if item is None:
                    if not _aligned(node, key, index):
                        issues.append(_null(f"{where}[{index}]"))
                else:
                    _check_value(item, f"{where}[{index}]", issues)
            if key == "contained":
                for index, item in enumerate(value):
                    if item.__class__ is dict and "contained" in item:
                        issues.append(_nested_contained(f"{where}[{index}].contained"))
        else:
            _check_value(value, where, issues)


def _check_value(value: object, where: str, issues: list[ValidationIssue]) -> None:
    if value.__class__ is str:
        if not value:
            issues.append(_empty(where, "string"))
        elif found := _CONTROL.search(value):
            issues.append(
                ValidationIssue(
                    "value",
                    f"{where}: the string holds the control character "
                    f"U+{ord(found.group()):04X}; FHIR strings hold none below U+0020 "
                    "but TAB, CR and LF",
                    expression=(where,),
                )
            )
    elif value.__class__ is dict:
        if value:
            _collect(value, where, issues)
        else:
            issues.append(_empty(where, "object"))


def _aligned(node: dict, key: str, index: int) -> bool:
    """A null in a primitive array stands for the item whose value or extension is at
    the same index of its partner (``given`` / ``_given``)."""
    partner = node.get(key[1:] if key.startswith("_") else f"_{key}")
    return partner.__class__ is list and index < len(partner) and partner[index] is not None


def _null(where: str) -> ValidationIssue:
    return ValidationIssue(
        "structure",
        f"{where}: null is not a value; leave out an element that has none (FHIR JSON)",
        expression=(where,),
    )


def _empty(where: str, what: str) -> ValidationIssue:
    return ValidationIssue(
        "invariant",
        f"{where}: ele-1: every element must have a value or children (an empty {what})",
        expression=(where,),
    )


def _nested_contained(where: str) -> ValidationIssue:
    return ValidationIssue(
        "invariant",
        f"{where}: dom-2: a contained resource must not contain resources",
        expression=(where,),
    )
