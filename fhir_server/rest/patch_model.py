"""What a FHIRPath Patch needs to know of an element: its JSON key(s), whether it
repeats, and the model of its content (R4 fhirpatch.html: ``add`` must know whether
``name`` is a list, and which ``[x]`` key a typed value of a choice element takes).

Read from the ``fhir.resources.R4B`` models the validators core validates with
(:func:`validators.r4.model_class`), so the patch and the validation that follows it
agree on every element. A dict that names its ``resourceType`` (a contained
resource, ``Bundle.entry.resource``) is described by the model of that type.
"""

from __future__ import annotations

import importlib
import typing
from dataclasses import dataclass
from functools import cache

from validators.r4 import model_class


@dataclass(frozen=True)
class Element:
    """One element of a model: ``keys`` maps each JSON key it may take (one, or one
    per type of a choice element ``value[x]``) to the model of its content (None:
    a primitive)."""

    name: str
    keys: dict[str, type | None]
    repeats: bool
    choice: bool


def model_of(value: object, declared: type | None) -> type | None:
    """The model describing ``value`` (None: a primitive or unknown)."""
    if type(value) is not dict:
        return None
    kind = value.get("resourceType")
    if isinstance(kind, str):
        return model_class(kind) or declared
    return declared


def element(model: type, name: str) -> Element | None:
    """``name`` of ``model``, or None; a choice element by its base name (``value``:
    every type) or by one typed JSON name (``valueQuantity``)."""
    return _elements(model).get(name)


@cache
def _elements(model: type) -> dict[str, Element]:
    found: dict[str, Element] = {}
    choices: dict[str, dict[str, type | None]] = {}
    for attribute, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if not extra.get("element_property"):
            continue
        key = field.alias or attribute
        content = _class_of(field.annotation)
        base = extra.get("one_of_many")
        if isinstance(base, str):
            choices.setdefault(base, {})[key] = content
        else:
            found[key] = Element(key, {key: content}, _repeats(field.annotation), False)
    for base, keys in choices.items():
        found[base] = Element(base, keys, False, True)
        for key, content in keys.items():  # valueQuantity: the JSON name, as clients write it
            found.setdefault(key, Element(key, {key: content}, False, False))
    return found


def _class_of(annotation) -> type | None:
    """The model class named by a field's annotation (``abc.HumanNameType`` ->
    HumanName), or None for primitives."""
    stack = [annotation]
    while stack:
        current = stack.pop()
        path = getattr(current, "_model_klass", None)
        if isinstance(path, str):
            module, _, name = path.rpartition(".")
            return getattr(importlib.import_module(module), name, None)
        stack.extend(typing.get_args(current))
    return None


def _repeats(annotation) -> bool:
    stack = [annotation]
    while stack:
        current = stack.pop()
        if typing.get_origin(current) is list:
            return True
        stack.extend(typing.get_args(current))
    return False
