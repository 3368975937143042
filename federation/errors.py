"""The federation's errors. The node renders them once, as OperationOutcomes
(``fhir_server/errors.py``: ``from_federation``)."""

from __future__ import annotations


class FederationError(Exception):
    """Base class; ``status`` is the HTTP status the node answers with."""

    status = 400
    code = "invalid"


class UntrustedNode(FederationError):
    """A URL or country that is not on the trust list (the chain's AuthorityRegistry):
    never called, never believed."""

    status = 403
    code = "forbidden"


class NodeUnavailable(FederationError):
    """The home node did not answer (down, timeout, garbled reply): 503, naming it."""

    status = 503
    code = "transient"


class RemoteRefused(FederationError):
    """The home node answered with a refusal; its status and OperationOutcome pass on."""

    code = "forbidden"

    def __init__(self, message: str, status: int, outcome: dict | None = None) -> None:
        super().__init__(message)
        self.status = status if 400 <= status < 500 else 502
        self.outcome = outcome


class LinkError(FederationError):
    """A SMART Health Link that is malformed, unknown, expired, revoked or used up."""

    status = 400


class Refused(FederationError):
    """A refusal this node makes itself, with the status it chose (a proxy that is
    not the caller's: 404; a Consent period that ended: 403; a home node's answer
    that makes no sense: 502)."""

    def __init__(self, message: str, status: int, code: str = "forbidden") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
