"""The one exception hierarchy of PHRX, rendered once as a FHIR OperationOutcome.

Flask-free: the node's packages raise these; the cores (vault, validators,
mhb_import, ...) raise their own, translated here where the node calls them
(``from_mhb``). The HTTP adapter maps each to a status code and an OperationOutcome
body (FHIR R4 http.html#2.21.0.6 and operationoutcome.html). Diagnostics never
carry stack traces or secrets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mhb_import.errors import (
    MhbError,
    MhbInvalid,
    MhbTooLarge,
    MhbUnexpectedStructure,
    MhbUnsupported,
)


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue (R4 IssueType / IssueSeverity codes)."""

    code: str
    diagnostics: str
    severity: str = "error"
    expression: tuple[str, ...] = ()

    def to_fhir(self) -> dict:
        issue: dict = {"severity": self.severity, "code": self.code}
        if self.diagnostics:
            issue["diagnostics"] = self.diagnostics
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


def operation_outcome(issues: Iterable[Issue]) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


@dataclass
class FHIRError(Exception):
    """Base error: an HTTP status plus the OperationOutcome issues explaining it."""

    diagnostics: str = ""
    expression: tuple[str, ...] | list[str] | None = None
    issues: list[Issue] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    status = 400
    code = "invalid"

    def __post_init__(self) -> None:
        super().__init__(self.diagnostics)

    def all_issues(self) -> list[Issue]:
        if self.issues:
            return list(self.issues)
        return [Issue(self.code, self.diagnostics, expression=tuple(self.expression or ()))]

    def to_operation_outcome(self) -> dict:
        return operation_outcome(self.all_issues())


class BadRequest(FHIRError):
    """400: the request is malformed (http.html#2.21.0.6)."""


class InvalidResource(FHIRError):
    """400: the resource does not validate against the R4 structure."""

    code = "structure"


class Unauthorized(FHIRError):
    """401: no valid bearer token (SMART App Launch, RFC 6750 section 3)."""

    status = 401
    code = "login"


class Forbidden(FHIRError):
    """403: authenticated, but scope or consent does not permit this."""

    status = 403
    code = "forbidden"


class NotFound(FHIRError):
    """404: unknown resource, type or route."""

    status = 404
    code = "not-found"


def not_found(res_type: str, res_id: str, version: int | str | None = None) -> NotFound:
    """The error a missing resource gets (the store's exact wording)."""
    where = f"{res_type}/{res_id}" + (f"/_history/{version}" if version else "")
    return NotFound(f"{where} is not known.")


class MethodNotAllowed(FHIRError):
    """405: the interaction is not supported on this path."""

    status = 405
    code = "not-supported"


class NotAcceptable(FHIRError):
    """406: the requested representation cannot be produced."""

    status = 406
    code = "not-supported"


class Conflict(FHIRError):
    """409: the request conflicts with the current state (e.g. id mismatch)."""

    status = 409
    code = "conflict"


class Gone(FHIRError):
    """410: the resource was deleted (http.html#read)."""

    status = 410
    code = "deleted"


class PreconditionFailed(FHIRError):
    """412: If-Match names a stale version, or a conditional matched several."""

    status = 412
    code = "conflict"


class PayloadTooLarge(FHIRError):
    """413: the body exceeds the configured limit."""

    status = 413
    code = "too-costly"


class UnsupportedMediaType(FHIRError):
    """415: the body is not a FHIR format this server reads."""

    status = 415
    code = "not-supported"


class BusinessRule(FHIRError):
    """422: the resource is valid R4 but breaks a rule of this server."""

    status = 422
    code = "business-rule"


class IntegrityFailure(FHIRError):
    """500: stored data failed authentication (altered or swapped row).

    This is not the client's fault, so it is a 5xx; the outcome names the
    integrity failure and never returns the suspect data.
    """

    status = 500
    code = "exception"


class AuditFailure(FHIRError):
    """500: the access could not be recorded in the audit log, so it did not happen.

    Issue 6: every access to patient data is audited in the transaction that
    decides it; when the AuditEvent cannot be stored, the data is not served.
    """

    status = 500
    code = "exception"


def from_mhb(error: MhbError) -> FHIRError:
    """The FHIR error of an MHB importer error (the importer owns its errors)."""
    for kind, fhir in _MHB_ERRORS:
        if isinstance(error, kind):
            return fhir(str(error))
    return BadRequest(str(error))


_MHB_ERRORS = (
    (MhbTooLarge, PayloadTooLarge),
    (MhbUnsupported, UnsupportedMediaType),
    (MhbUnexpectedStructure, BusinessRule),
    (MhbInvalid, BadRequest),
)


def from_federation(error: Exception) -> FHIRError:
    """The one translation of :mod:`federation.errors` (and the gateway's refusals)
    into this node's errors: the status the federation chose (503 for a home node
    that did not answer, 403 for a node off the trust list, the home node's own
    refusal status) and its message naming the node."""
    return upstream(str(error), getattr(error, "status", 502), getattr(error, "code", "exception"))


def upstream(message: str, status: int, code: str) -> FHIRError:
    """An error whose status another node decided (or its absence: 503)."""
    found = FHIRError(message)
    found.status = status
    found.code = code
    return found
