"""The FHIR ``patch`` interaction (R4 http.html#patch), Flask-free.

Used by ``PATCH /fhir/{type}/{id}`` and by ``PATCH`` entries of batch / transaction
Bundles. Three patch formats, told apart by media type (and, for the generic JSON
types, by the body's shape):

* JSON Patch (RFC 6902, ``application/json-patch+json``; a JSON array), applied by
  the ``jsonpatch`` library one operation at a time;
* FHIRPath Patch (``application/fhir+json``; a ``Parameters`` resource,
  :mod:`.fhirpath_patch`);
* JSON Merge Patch (RFC 7386, ``application/merge-patch+json``; a JSON object):
  what ``fhirpy`` sends for ``resource.save(fields=[...])`` / ``patch(**fields)`` --
  the named top-level fields as ``application/json``, ``null`` removing one.

With ``application/json`` (also ``fhir+json``, ``json+fhir``, ``text/json``) an array
is a JSON Patch, a ``Parameters`` object a FHIRPath Patch, any other object a merge
patch. Bundle entries carry a ``Binary`` (``contentType`` and base64 ``data``) or a
``Parameters`` (FHIRPath Patch).

A patch is applied only to a resource the caller may read (:meth:`AccessPolicy.read`:
404 exactly like a read otherwise, 410 for a deletion it may see), at the version
it read: ``If-Match`` naming another version is a 412; the result must keep its
``resourceType`` and ``id`` (400) and is validated exactly like an update, then
written by :func:`interactions.update` (the Writer's per-write checks) on condition
that the version patched is still current. A version written in between is not
silently overwritten: the patch is applied again to the new version (a few times;
then 409), or, when the client named the version (If-Match), answered 412.

Statuses: a malformed patch document 400; an unsupported media type 415; a patch
that is well-formed but cannot be applied to the resource in its current state --
a failing JSON Patch ``test``, a path that is not there, an index outside its
list -- 422 (RFC 5789 section 2.2 "unprocessable request"; 409 is left to what R4
uses it for, version conflicts, which a client would retry in vain).
"""

from __future__ import annotations

import base64
import binascii
import copy
from dataclasses import dataclass

import jsonpatch
import jsonpointer

from fhir_server import fastjson
from fhir_server.access.gate import AccessPolicy
from fhir_server.errors import (
    BadRequest,
    Conflict,
    PayloadTooLarge,
    PreconditionFailed,
    UnsupportedMediaType,
)
from fhir_server.rest import fhirpath_patch, interactions
from fhir_server.rest.fhirpath_patch import PatchNotApplicable
from fhir_server.rest.interactions import Result
from fhir_server.validation import validate_resource

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
FHIR_TYPES = frozenset({"application/fhir+json", "application/json+fhir"})
GENERIC_JSON = frozenset({"application/json", "text/json", *FHIR_TYPES})
MEDIA_TYPES = frozenset({JSON_PATCH, MERGE_PATCH, *GENERIC_JSON})
# RFC 6902 section 4: the members each operation needs besides op and path
_JSON_PATCH_MEMBERS = {"add": ("value",), "replace": ("value",), "test": ("value",)}
_JSON_PATCH_MEMBERS.update(move=("from",), copy=("from",))
ATTEMPTS = 3  # applications of a patch racing concurrent writes before a 409


@dataclass(frozen=True)
class Limits:
    """Bounds of a patched resource (a JSON Patch ``copy`` can double a document)."""

    max_bytes: int = 32 * 1024 * 1024
    max_depth: int = fastjson.MAX_DEPTH


@dataclass(frozen=True)
class Patch:
    kind: str  # "json-patch" | "fhirpath" | "merge"
    document: object
    operations: tuple = ()  # parsed FHIRPath Patch operations


def media_type(value: str | None) -> str:
    """The patch media type of a Content-Type (none: application/json), else 415."""
    mime = (value or "application/json").split(";")[0].strip().lower()
    if mime not in MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"PATCH takes {JSON_PATCH}, application/fhir+json (FHIRPath Patch) or "
            f"{MERGE_PATCH}, not {mime!r}."
        )
    return mime


def parse(content_type: str | None, document: object) -> Patch:
    """The patch a request body holds (400 malformed, 415 unsupported media type)."""
    mime = media_type(content_type)
    if mime == JSON_PATCH or (mime != MERGE_PATCH and isinstance(document, list)):
        return _json_patch(document)
    if mime != MERGE_PATCH and _is_parameters(document):
        return Patch("fhirpath", document, tuple(fhirpath_patch.parse_parameters(document)))
    if not isinstance(document, dict):
        raise BadRequest(
            "A PATCH body is a JSON Patch (an array), a FHIRPath Patch (a Parameters "
            "resource) or a JSON Merge Patch (an object)."
        )
    return Patch("merge", document)


def _is_parameters(document: object) -> bool:
    return isinstance(document, dict) and document.get("resourceType") == "Parameters"


def _json_patch(document: object) -> Patch:
    if not isinstance(document, list):
        raise BadRequest("A JSON Patch (RFC 6902) is a JSON array of operations.")
    for i, op in enumerate(document):
        if not isinstance(op, dict):
            raise BadRequest(f"JSON Patch operation {i} is not an object.")
        for pointer in ("path", "from"):
            value = op.get(pointer, "")
            if not isinstance(value, str) or (value and not value.startswith("/")):
                raise BadRequest(f"JSON Patch operation {i}: {pointer} must be a JSON Pointer.")
        kind = op.get("op")
        if not isinstance(kind, str):
            raise BadRequest(f"JSON Patch operation {i} has no op (add, remove, replace ...).")
        needs = _JSON_PATCH_MEMBERS.get(kind, ())
        if any(member not in op for member in needs):
            raise BadRequest(f"JSON Patch operation {i} ({kind}) needs {', '.join(needs)}.")
        try:
            jsonpatch.JsonPatch([op])  # checks the op and path members
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as error:
            raise BadRequest(f"JSON Patch operation {i} is malformed: {error}") from None
    return Patch("json-patch", document)


def from_entry(resource: object, where: str) -> Patch:
    """The patch of a Bundle entry: a Binary holding a patch, or a Parameters."""
    if _is_parameters(resource):
        return parse("application/fhir+json", resource)
    if not isinstance(resource, dict) or resource.get("resourceType") != "Binary":
        raise BadRequest(
            f"{where}: a PATCH entry carries a Binary (JSON Patch) or a Parameters "
            "(FHIRPath Patch) resource.",
            expression=[f"{where}.resource"],
        )
    data = resource.get("data")
    try:
        raw = base64.b64decode(data if isinstance(data, str) else "", validate=True)
        document = fastjson.parse(raw) if raw else None
    except (binascii.Error, ValueError):
        raise BadRequest(f"{where}: Binary.data is not base64 of a JSON patch.") from None
    if document is None:
        raise BadRequest(f"{where}: the Binary holds no patch.")
    return parse(str(resource.get("contentType") or JSON_PATCH), document)


# -- applying ------------------------------------------------------------------------------
def apply(patch: Patch, resource: dict, limits: Limits = Limits()) -> dict:
    """The patched copy of ``resource`` (which is left unchanged)."""
    res_type, res_id = resource.get("resourceType"), resource.get("id")
    work = copy.deepcopy(resource)
    if patch.kind == "json-patch":
        result = _apply_json_patch(patch.document, work, limits)
    elif patch.kind == "merge":
        result = _merge(work, patch.document)
    else:
        result = fhirpath_patch.apply(list(patch.operations), work)
    if not isinstance(result, dict):
        raise BadRequest("The patched document is not a resource.")
    for name, before in (("resourceType", res_type), ("id", res_id)):
        if result.get(name) != before:
            raise BadRequest(
                f"A patch may not change the resource's {name} ({before!r}).",
                expression=[f"{res_type}.{name}"],
            )
    _check_size(result, limits)
    return result


def _apply_json_patch(operations: list, document: dict, limits: Limits):
    for i, op in enumerate(operations):
        try:
            document = jsonpatch.JsonPatch([op]).apply(document, in_place=True)
        except jsonpatch.InvalidJsonPatch as error:
            raise BadRequest(f"JSON Patch operation {i} is malformed: {_short(error)}") from None
        except jsonpatch.JsonPatchTestFailed:
            raise PatchNotApplicable(
                f"JSON Patch operation {i} (test) failed: {op['path']!r} does not hold the "
                "tested value.",
            ) from None
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as error:
            raise PatchNotApplicable(
                f"JSON Patch operation {i} ({op.get('op')}) cannot be applied at "
                f"{op['path']!r}: {_short(error)}"
            ) from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
            raise BadRequest(
                f"JSON Patch operation {i} cannot be applied: {_short(error)}"
            ) from None
        if op.get("op") == "copy":  # each copy may double the document: bound it at once
            _check_size(document, limits)
    return document


def _short(error: Exception) -> str:
    """The library's message without the document it quotes (``... not found in {...}``)."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    for cut in (" in {", " in ["):
        text = text.split(cut)[0]
    return text[:200]


def _merge(target: object, patch: object) -> object:
    """RFC 7386 MergePatch(Target, Patch)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = _merge(out.get(name), value)
    return out


def _check_size(document: object, limits: Limits) -> None:
    raw = fastjson.dumps(document)
    if len(raw) > limits.max_bytes:
        raise PayloadTooLarge(f"The patched resource exceeds {limits.max_bytes} bytes.")
    if fastjson.nesting_exceeds(raw, limits.max_depth):
        raise BadRequest(f"The patched resource nests deeper than {limits.max_depth} levels.")


# -- the interaction -------------------------------------------------------------------------
@dataclass(frozen=True)
class Staged:
    """A patched resource ready to be written over ``base_version``."""

    res_type: str
    res_id: str
    resource: dict
    base_version: int
    if_match: int | None


class ChangedConcurrently(Conflict):
    """The version patched was replaced before the write (no If-Match was given)."""


def stage(
    policy: AccessPolicy,
    res_type: str,
    res_id: str,
    patch: Patch,
    if_match: int | None = None,
    limits: Limits = Limits(),
) -> Staged:
    """Read (through the gate), check If-Match, patch and validate; nothing is written.
    Runs before the write transaction opens (validation never holds the write lock)."""
    current = policy.read(res_type, res_id)  # 404 like a read; 410 for a visible deletion
    version = int(current["meta"]["versionId"])
    if if_match is not None and if_match != version:
        raise PreconditionFailed(
            f"If-Match names version {if_match} but the current version is {version}."
        )
    patched = apply(patch, current, limits)
    return Staged(
        res_type, res_id, validate_resource(patched, expected_type=res_type), version, if_match
    )


def commit(writer, staged: Staged) -> Result:
    """Write ``staged`` if the version it was made from is still the current one."""
    try:
        return interactions.update(
            writer, staged.res_type, staged.res_id, staged.resource, staged.base_version
        )
    except PreconditionFailed:
        if staged.if_match is not None:
            raise
        raise ChangedConcurrently(
            f"{staged.res_type}/{staged.res_id} was changed while it was patched; retry."
        ) from None


def patch_resource(
    store,
    policy: AccessPolicy,
    res_type: str,
    res_id: str,
    patch: Patch,
    if_match: int | None = None,
    limits: Limits = Limits(),
) -> Result:
    """The whole interaction in its own unit of work (a request, a batch entry)."""
    for attempt in range(ATTEMPTS):
        staged = stage(policy, res_type, res_id, patch, if_match, limits)
        try:
            with store.unit_of_work(prepare=[staged.resource], policy=policy) as writer:
                return commit(writer, staged)
        except ChangedConcurrently:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
