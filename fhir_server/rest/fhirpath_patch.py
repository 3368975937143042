"""FHIRPath Patch (R4 fhirpatch.html): a ``Parameters`` resource of ``operation``s.

Each operation has a ``type`` (add, insert, delete, replace, move), a ``path``
(the FHIRPath subset of :mod:`.fhirpath_path`) and, as its type needs, ``name``,
``value`` (a ``value[x]``, or ``part``s building an element, or a ``resource``),
``index``, ``source`` and ``destination``:

* add: ``path`` selects one element; ``name`` is added to it (appended when the
  element repeats; a single-valued element must not have a value yet);
* insert / move: ``path`` names a list (``Patient.identifier``); ``index`` /
  ``source`` and ``destination`` must lie inside it;
* delete: ``path`` selects at most one element (none: nothing to do);
* replace: ``path`` selects one element, replaced by ``value`` (a choice element may
  change its type: ``Observation.value`` with a ``valueString``).

Errors: a document that is not such a Parameters, an unsupported path or an unknown
element is a 400; a path that selects nothing (but for delete) or more than one
element, an index outside its list, or an add over an existing value cannot be
applied to this resource in its current state: :class:`PatchNotApplicable` (422).
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.errors import BadRequest, FHIRError
from fhir_server.rest.fhirpath_path import Node, evaluate, parse_path
from fhir_server.rest.patch_model import element, model_of
from validators.r4 import model_class

OPERATION_TYPES = ("add", "insert", "delete", "replace", "move")
_PARTS = {"type", "path", "name", "value", "index", "source", "destination"}
_NEEDS = {
    "add": ("name", "value"),
    "insert": ("value", "index"),
    "delete": (),
    "replace": ("value",),
    "move": ("source", "destination"),
}


class PatchNotApplicable(FHIRError):
    """422: a well-formed patch that cannot be applied to the resource as it is now."""

    status = 422
    code = "processing"


@dataclass(frozen=True)
class Operation:
    type: str
    path: str
    steps: tuple
    parts: dict


def parse_parameters(document: object) -> list[Operation]:
    """The operations of a FHIRPath Patch ``Parameters`` (400 when malformed)."""
    if not isinstance(document, dict) or document.get("resourceType") != "Parameters":
        raise BadRequest("A FHIRPath Patch is a Parameters resource.")
    parameters = document.get("parameter", [])
    if not isinstance(parameters, list):
        raise BadRequest("Parameters.parameter must be a list.")
    return [_operation(p, i) for i, p in enumerate(parameters)]


def _operation(parameter: object, i: int) -> Operation:
    where = f"Parameters.parameter[{i}]"
    if not isinstance(parameter, dict) or parameter.get("name") != "operation":
        raise BadRequest(f"{where} must be an 'operation' (FHIRPath Patch).", expression=[where])
    parts: dict = {}
    if not isinstance(parameter.get("part"), list):
        raise BadRequest(f"{where}: an operation has parts.", expression=[where])
    for part in parameter["part"]:
        name = part.get("name") if isinstance(part, dict) else None
        if name not in _PARTS or name in parts:
            raise BadRequest(f"{where}: unknown or repeated part {name!r}.", expression=[where])
        parts[name] = part
    kind = parts.get("type", {}).get("valueCode")
    if kind not in OPERATION_TYPES:
        raise BadRequest(
            f"{where}: type must be one of {', '.join(OPERATION_TYPES)}, not {kind!r}.",
            expression=[where],
        )
    for needed in ("path", *_NEEDS[kind]):
        if needed not in parts:
            raise BadRequest(f"{where}: a {kind} operation needs {needed}.", expression=[where])
    path = parts["path"].get("valueString")
    steps = parse_path(path)
    if kind in ("insert", "move") and (len(steps) < 2 or steps[-1][0] != "name"):
        raise BadRequest(f"{where}: the path of {kind} names a list element, e.g. Patient.name.")
    if "name" in parts and not isinstance(parts["name"].get("valueString"), str):
        raise BadRequest(f"{where}: name must be a valueString.", expression=[where])
    for number in ("index", "source", "destination"):
        if number in parts and type(parts[number].get("valueInteger")) is not int:
            raise BadRequest(f"{where}: {number} must be a valueInteger.", expression=[where])
    if "value" in parts:
        _value_forms(parts["value"], where)
    return Operation(kind, path, steps, parts)


def apply(operations: list[Operation], resource: dict) -> dict:
    """Apply ``operations`` to ``resource`` (changed in place, and returned)."""
    root_model = model_class(str(resource.get("resourceType")))
    for number, operation in enumerate(operations):
        try:
            _APPLY[operation.type](operation, resource, root_model)
        except FHIRError as error:
            error.diagnostics = f"FHIRPath Patch operation {number} ({operation.type}): " + (
                error.diagnostics
            )
            raise
    return resource


# -- the operations ----------------------------------------------------------------------
def _add(op: Operation, resource: dict, root_model) -> None:
    target = _one(op, evaluate(resource, root_model, op.steps, op.path))
    if type(target.value) is not dict:
        raise PatchNotApplicable(f"{op.path} is not an element that can hold {_name(op)!r}.")
    name = _name(op)
    key, repeats, declared = _slot(target.model, target.value, name, op.parts["value"])
    value = build_value(op.parts["value"], declared)
    if repeats:
        _insert(target.value, key, len(target.value.get(key) or []), value, op)
        return
    taken = [k for k in _keys(target.model, name, key) if k in target.value]
    if taken:
        raise PatchNotApplicable(f"{op.path}.{name} has a value already (use replace).")
    target.value[key] = value


def _insert(parent: dict, key: str, index: int, value: object, op: Operation) -> None:
    items = parent.get(key)
    if items is None:
        items = parent[key] = []
    if type(items) is not list:
        raise PatchNotApplicable(f"{op.path}: {key} is not a list.")
    if not 0 <= index <= len(items):
        raise PatchNotApplicable(f"{op.path}: index {index} is outside 0..{len(items)}.")
    items.insert(index, value)
    extensions = parent.get("_" + key)
    if type(extensions) is list and index <= len(extensions):
        extensions.insert(index, None)  # keep a primitive list's _key partner aligned


def _insert_op(op: Operation, resource: dict, root_model) -> None:
    parent, key, declared = _list_of(op, resource, root_model)
    value = build_value(op.parts["value"], declared)
    _insert(parent, key, op.parts["index"]["valueInteger"], value, op)


def _move(op: Operation, resource: dict, root_model) -> None:
    parent, key, _declared = _list_of(op, resource, root_model)
    items = parent.get(key)
    if type(items) is not list:
        raise PatchNotApplicable(f"{op.path} has no list to move in.")
    source = op.parts["source"]["valueInteger"]
    destination = op.parts["destination"]["valueInteger"]
    for index in (source, destination):
        if not 0 <= index < len(items):
            raise PatchNotApplicable(f"{op.path}: index {index} is outside 0..{len(items) - 1}.")
    items.insert(destination, items.pop(source))
    extensions = parent.get("_" + key)
    if type(extensions) is list and len(extensions) == len(items):
        extensions.insert(destination, extensions.pop(source))


def _delete(op: Operation, resource: dict, root_model) -> None:
    nodes = evaluate(resource, root_model, op.steps, op.path)
    if not nodes:
        return  # nothing to delete: delete is the one operation that may match nothing
    node = _one(op, nodes)
    if node.parent is None:
        raise BadRequest("A FHIRPath Patch cannot delete the resource itself.")
    parent, key = node.parent, node.key
    extensions = parent.get("_" + key)
    if node.index is None:
        del parent[key]
        parent.pop("_" + key, None)
        return
    parent[key].pop(node.index)
    if type(extensions) is list and node.index < len(extensions):
        extensions.pop(node.index)
        if not any(e is not None for e in extensions):
            del parent["_" + key]
    if not parent[key]:
        del parent[key]


def _replace(op: Operation, resource: dict, root_model) -> None:
    node = _one(op, evaluate(resource, root_model, op.steps, op.path))
    if node.parent is None:
        raise BadRequest("A FHIRPath Patch cannot replace the resource itself (use update).")
    parent, key = node.parent, node.key
    new_key, declared = key, (node.model if type(node.value) is dict else None)
    if node.parent_model is not None:
        found = element(node.parent_model, node.base)
        if found is not None:
            _typed = found.choice and _value_type(op.parts["value"])
            new_key = node.base + _typed if _typed else key
            if new_key not in found.keys:
                raise BadRequest(f"{op.path} cannot hold a value of type {_typed}.")
            declared = found.keys[new_key]
    value = build_value(op.parts["value"], declared)
    if node.index is not None:
        parent[key][node.index] = value
        return
    if new_key != key:
        del parent[key]
        parent.pop("_" + key, None)
    parent[new_key] = value


_APPLY = {
    "add": _add,
    "insert": _insert_op,
    "delete": _delete,
    "replace": _replace,
    "move": _move,
}


# -- helpers --------------------------------------------------------------------------
def _one(op: Operation, nodes: list[Node]) -> Node:
    if len(nodes) != 1:
        found = "no element" if not nodes else f"{len(nodes)} elements"
        raise PatchNotApplicable(f"{op.path} selects {found}; the {op.type} needs exactly one.")
    return nodes[0]


def _name(op: Operation) -> str:
    return op.parts["name"]["valueString"]


def _list_of(op: Operation, resource: dict, root_model) -> tuple[dict, str, type | None]:
    """The parent and key of the list an insert / move path names."""
    parent = _one(op, evaluate(resource, root_model, op.steps[:-1], op.path))
    name = op.steps[-1][1]
    if type(parent.value) is not dict:
        raise PatchNotApplicable(f"{op.path} does not name a list of an element.")
    if parent.model is None:
        return parent.value, name, None
    found = element(parent.model, name)
    if found is None or not found.repeats:
        raise BadRequest(f"{op.path} does not name a repeating element.")
    return parent.value, name, found.keys[name]


def _slot(model, value: dict, name: str, value_part: dict) -> tuple[str, bool, type | None]:
    """(JSON key, repeats, content model) for adding ``name`` to ``value``."""
    if model is None:
        return name, type(value.get(name)) is list, None
    found = element(model, name)
    if found is None:
        raise BadRequest(f"{model.__name__} has no element {name!r}.")
    if not found.choice:
        return name, found.repeats, found.keys[name]
    typed = _value_type(value_part)
    if not typed or name + typed not in found.keys:
        raise BadRequest(f"{name}[x] needs a value[x] of one of its types, not {typed!r}.")
    return name + typed, False, found.keys[name + typed]


def _keys(model, name: str, key: str) -> list[str]:
    found = element(model, name) if model is not None else None
    return list(found.keys) if found is not None else [key]


def _value_forms(part: dict, where: str) -> list[str]:
    forms = [k for k in part if k in ("part", "resource") or _is_value_key(k)]
    if len(forms) != 1:
        raise BadRequest(
            f"{where}: a value holds exactly one of value[x], part or resource.",
            expression=[where],
        )
    return forms


def _is_value_key(key: str) -> bool:
    return key.startswith("value") and len(key) > 5 and key[5].isupper()


def _value_type(part: dict) -> str | None:
    """``Quantity`` for a part carrying ``valueQuantity`` (None: parts or resource)."""
    for key in part:
        if _is_value_key(key):
            return key[5:]
    return None


def build_value(part: dict, model: type | None):
    """The JSON of an element given as ``value[x]``, ``resource`` or nested ``part``s
    (an anonymous element: each part names one of its elements)."""
    (form,) = _value_forms(part, "value")
    if form == "resource":
        if not isinstance(part["resource"], dict):
            raise BadRequest("A value's resource must be a JSON object.")
        return part["resource"]
    if form != "part":
        return part[form]
    if not isinstance(part["part"], list):
        raise BadRequest("A value's part must be a list.")
    out: dict = {}
    for child in part["part"]:
        if not isinstance(child, dict) or not isinstance(child.get("name"), str):
            raise BadRequest("Each part of a value needs a name.")
        key, repeats, declared = _slot(model, out, child["name"], child)
        value = build_value(child, model_of(child.get("resource"), declared) or declared)
        if repeats:
            out.setdefault(key, []).append(value)
        elif key in out:
            raise BadRequest(f"The element {key!r} is given twice in a value.")
        else:
            out[key] = value
    return out
