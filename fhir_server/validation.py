"""The node's one call into the validators core, and the rules of the project after it.

:func:`validate_resource` validates a resource as R4 (:mod:`validators.r4`), then
applies the project's rules for its type (a patient-privacy Consent:
:mod:`consent.rules`). Each core raises its own error; they are translated here,
once, into the node's hierarchy (docs/architecture.md), so every caller inside
``fhir_server`` sees a :class:`~fhir_server.errors.FHIRError`:

* :class:`validators.errors.ResourceInvalid` -> :class:`InvalidResource` (400), one
  OperationOutcome.issue per finding, with its code and expression;
* :class:`consent.rules.ConsentRuleViolation` -> :class:`BusinessRule` (422).

It runs for every resource of an ingest: one extra call and a dict look-up on the
valid path; translating costs only when a resource is refused.
"""

from __future__ import annotations

from collections.abc import Callable

from consent.rules import ConsentRuleViolation, check_consent
from fhir_server.errors import BusinessRule, InvalidResource, Issue
from validators import r4
from validators.errors import ResourceInvalid

# resourceType -> the project's rules for it, run on resources that are valid R4.
RULES: dict[str, tuple[Callable[[dict], None], ...]] = {
    "Consent": (check_consent,),
}


def validate_resource(resource: object, *, expected_type: str | None = None) -> dict:
    """``resource`` unchanged when it is valid R4 and keeps the project's rules;
    else :class:`InvalidResource` (400) or :class:`BusinessRule` (422)."""
    try:
        valid = r4.validate_resource(resource, expected_type=expected_type)
    except ResourceInvalid as error:
        raise invalid_resource(error) from None
    rules = RULES.get(valid["resourceType"])
    if rules:
        try:
            for rule in rules:
                rule(valid)
        except ConsentRuleViolation as error:
            raise BusinessRule(error.message, expression=list(error.expression)) from None
    return valid


def invalid_resource(error: ResourceInvalid) -> InvalidResource:
    """The node's 400 for a refusal of the validators core (same issues, in order)."""
    issues = [Issue(i.code, i.diagnostics, i.severity, i.expression) for i in error.issues]
    return InvalidResource(error.message, issues=issues)
