"""The errors of the validators core (it imports nothing of the node).

:class:`ResourceInvalid` says a resource is not valid R4; its issues say where and
why, with the R4 IssueType code of each (``structure``, ``code-invalid``,
``invariant``, ``value``) and a FHIRPath ``expression``. The node translates it once,
where it calls this core (``fhir_server/validation.py``: 400 with one
OperationOutcome.issue per :class:`ValidationIssue`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One finding: R4 IssueType ``code``, the message, severity, FHIRPath expressions."""

    code: str
    diagnostics: str
    severity: str = "error"
    expression: tuple[str, ...] = ()


class ResourceInvalid(Exception):
    """The resource is not valid R4. ``issues`` is never empty: a refusal without a
    list of findings carries one ``structure`` issue holding ``message``."""

    def __init__(
        self,
        message: str,
        issues: tuple[ValidationIssue, ...] | list[ValidationIssue] = (),
        *,
        expression: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.issues = tuple(issues) or (
            ValidationIssue("structure", message, expression=expression),
        )
