"""Structural validation of R4 resources with the ``fhir.resources.R4B`` models.

R4B is wire-compatible with R4 (4.0.1) for every resource type both releases
define; the types PHRX serves are that intersection (the node's list of supported
types). A refusal is a :class:`~validators.errors.ResourceInvalid` whose issues carry
a FHIRPath ``expression`` pointing at the offending element. Rules of the project
beyond R4 (e.g. those of :mod:`consent.rules`) are not this core's: the node applies
them after this validation (``fhir_server/validation.py``).
"""

from __future__ import annotations

from functools import cache

from pydantic import ValidationError

from validators import model_cache, model_checks, null_check
from validators.bindings import check_required_bindings
from validators.elements import check_elements
from validators.errors import ResourceInvalid, ValidationIssue

MAX_ISSUES = 20
model_cache.install()  # memoised validation of repeated elements (see its docstring)
null_check.install()  # fhir_core's null-in-list check without walking every field
model_checks.install()  # its choice-type and required-element checks on per-class plans


@cache
def model_class(resource_type: str):
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (ValueError, KeyError, ImportError):
        return None


def validate_resource(resource: object, *, expected_type: str | None = None) -> dict:
    """Validate ``resource`` (parsed JSON); return it unchanged or raise ResourceInvalid."""
    if not isinstance(resource, dict):
        raise ResourceInvalid("The body must be a JSON object holding one FHIR resource.")
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise ResourceInvalid("The resource has no resourceType.", expression=("resourceType",))
    if expected_type and resource_type != expected_type:
        raise ResourceInvalid(
            f"resourceType {resource_type!r} does not match the endpoint type {expected_type!r}.",
            expression=("resourceType",),
        )
    model = model_class(resource_type)
    if model is None:
        raise ResourceInvalid(
            f"Unknown resourceType {resource_type!r}.", expression=("resourceType",)
        )
    if issues := check_elements(resource):  # null, ele-1, control characters, dom-2
        raise ResourceInvalid(f"{resource_type} failed R4 validation.", issues=issues)
    try:
        model.model_validate(resource)
    except ValidationError as error:
        raise ResourceInvalid(
            f"{resource_type} failed R4 validation.",
            issues=_issues_from(resource_type, error),
        ) from None
    except (ValueError, TypeError) as error:
        # Model-level validators of fhir.resources raise plain errors for a few rules.
        raise ResourceInvalid(f"{resource_type} failed R4 validation: {error}") from None
    if issues := check_required_bindings(resource):  # terminologies.html#required
        raise ResourceInvalid(
            f"{resource_type} has codes outside required value sets.", issues=issues[:MAX_ISSUES]
        )
    return resource


def _issues_from(resource_type: str, error: ValidationError) -> list[ValidationIssue]:
    issues = []
    for detail in error.errors()[:MAX_ISSUES]:
        path = _fhirpath(resource_type, detail.get("loc", ()))
        message = detail.get("msg", "invalid value")
        if detail.get("type") == "extra_forbidden":
            message = "Unknown element"
        elif detail.get("type") == "missing":
            message = "Required element is missing"
        issues.append(ValidationIssue("structure", f"{path}: {message}", expression=(path,)))
    return issues


def _fhirpath(resource_type: str, loc: tuple) -> str:
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "__root__":
            path += f".{part}"
    return path
