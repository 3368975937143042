"""Resource-server side of SMART: bearer-token authentication and scope checks.

Framework-free. ``TokenVerifier.authenticate(header, audience)`` turns an
``Authorization`` header into an :class:`AccessContext`, raising
:class:`~fhir_server.errors.Unauthorized` with a ``WWW-Authenticate`` challenge
(RFC 6750 section 3). ``AccessContext.require`` raises
:class:`~fhir_server.errors.Forbidden` when no granted scope permits an interaction
(SMART App Launch 2.2 scopes-and-launch-context.html).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir_server import ids
from fhir_server.errors import Forbidden, Unauthorized
from fhir_server.smart import scopes
from fhir_server.smart.keys import SigningKey
from fhir_server.smart.scopes import ResourceScope

INTERACTIONS = frozenset("cruds")
REALM = "phrx"


@dataclass(frozen=True)
class Permit:
    """Why an interaction is allowed.

    ``compartment``: a patient id the interaction must stay inside (only
    ``patient/`` scopes matched), else None. ``constraints``: when only granular
    scopes matched, the alternatives of (param, value) conditions the resource
    must satisfy (any one alternative suffices); empty when unconditional.
    """

    scopes: tuple[ResourceScope, ...]
    compartment: str | None
    constraints: tuple[tuple[tuple[str, str], ...], ...] = ()


@dataclass(frozen=True)
class AccessContext:
    client_id: str
    user: str | None  # fhirUser as "Patient/123" / "Practitioner/9", or None
    patient: str | None  # launch context patient id
    scopes: tuple[ResourceScope, ...]
    scope: str  # the granted scope string as issued
    subject: str  # username, or the client id for backend tokens
    jti: str
    expires_at: int  # epoch seconds
    context: dict = field(default_factory=dict)  # encounter, fhirContext, ...

    @property
    def compartment_patient(self) -> str | None:
        """The patient confining every access made under ``patient/`` scopes."""
        if any(s.context == "patient" for s in self.scopes):
            return self.patient
        return None

    @property
    def user_patient(self) -> str | None:
        """For a patient's own login, their Patient id (confines ``user/`` scopes too)."""
        if self.user and self.user.startswith("Patient/"):
            return self.user.split("/", 1)[1]
        return None

    def permit(
        self, interaction: str, res_type: str, query: list[tuple[str, str]] | None = None
    ) -> Permit | None:
        if interaction not in INTERACTIONS:
            raise ValueError(f"interaction must be one of c r u d s, not {interaction!r}")
        given = set(query or ())
        matching = [s for s in self.scopes if s.permits(interaction, res_type)]
        usable = []
        for s in matching:
            if s.query and query is not None and not set(s.query) <= given:
                continue  # a search outside the granular constraint
            usable.append(s)
        if not usable:
            return None
        unconstrained = [s for s in usable if not s.query or query is not None]
        chosen = unconstrained or usable
        constraints = () if unconstrained else tuple(s.query for s in usable)
        if any(s.context in ("user", "system") for s in chosen):
            compartment = None
        else:
            compartment = self.patient
            if compartment is None:
                return None  # patient/ scopes without a patient in context permit nothing
        return Permit(tuple(chosen), compartment, constraints)

    def require(
        self, interaction: str, res_type: str, query: list[tuple[str, str]] | None = None
    ) -> Permit:
        """The :class:`Permit` for this interaction, or raise 403 Forbidden."""
        permit = self.permit(interaction, res_type, query)
        if permit is None:
            raise Forbidden(
                f"The access token's scopes do not permit '{interaction}' on {res_type}."
            )
        return permit


class TokenVerifier:
    """Verifies this node's access tokens: RS256 signature, issuer, audience,
    expiry, and the server-side record (so revocation takes effect at once)."""

    def __init__(self, signing_key: SigningKey, token_store):
        self.key = signing_key
        self.tokens = token_store

    def authenticate(self, authorization_header: str | None, audience: str) -> AccessContext:
        """The context of the bearer token in ``authorization_header``, issued by and
        for ``audience`` (this server's FHIR base URL)."""
        audience = (audience or "").rstrip("/")
        if not authorization_header:
            raise _unauthorized("A bearer access token is required.", error=None)
        kind, _, token = authorization_header.strip().partition(" ")
        token = token.strip()
        if kind.lower() != "bearer" or not token or " " in token:
            raise _unauthorized(
                "The Authorization header must be 'Bearer <token>'.", error="invalid_request"
            )
        try:
            claims = self.key.verify(token)
        except Exception:  # any signature / format / algorithm defect
            raise _unauthorized("The access token is invalid.") from None
        now_s = ids.now_us() // 10**6
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= now_s:
            raise _unauthorized("The access token has expired.")
        if not audience or claims.get("aud") != audience or claims.get("iss") != audience:
            raise _unauthorized("The access token was not issued for this server.")
        jti = claims.get("jti")
        record = self.tokens.by_jti(jti) if isinstance(jti, str) else None
        if record is None or record.revoked or record.expires_us <= ids.now_us():
            raise _unauthorized("The access token has been revoked or is unknown.")
        parsed = tuple(
            p for p in (scopes.parse_resource_scope(x) for x in scopes.split(record.scope)) if p
        )
        fhir_user = claims.get("fhirUser")
        user = fhir_user[len(audience) + 1 :] if isinstance(fhir_user, str) else None
        return AccessContext(
            client_id=record.client_id,
            user=user,
            patient=record.context.get("patient"),
            scopes=parsed,
            scope=record.scope,
            subject=record.username or record.client_id,
            jti=record.jti,
            expires_at=exp,
            context=dict(record.context),
        )


def _unauthorized(message: str, error: str | None = "invalid_token") -> Unauthorized:
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += f', error="{error}"'
    return Unauthorized(message, headers={"WWW-Authenticate": challenge})
