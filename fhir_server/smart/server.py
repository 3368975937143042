"""The authlib authorization server of a node, plus RFC 7662 / RFC 7009 endpoints.

Framework-free: the HTTP adapter subclasses :class:`SmartAuthorizationServer` with
authlib's request and response binding for its web framework
(``create_oauth2_request``, ``create_json_request``, ``handle_response``).
"""

from __future__ import annotations

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidScopeError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from fhir_server import ids
from fhir_server.smart import scopes
from fhir_server.smart.assertion import JwksCache, PrivateKeyJWT
from fhir_server.smart.grants import (
    APP_AUTH_METHODS,
    BackendGrant,
    SmartCodeGrant,
    SmartRefreshGrant,
    StrictS256,
)
from fhir_server.smart.service import SmartService
from fhir_server.smart.tokens import ACCESS_LIFETIME_S, BACKEND_LIFETIME_S, Subject

ID_TOKEN_LIFETIME_S = 3600


class SmartAuthorizationServer(AuthorizationServer):
    def __init__(self, service: SmartService, fhir_base):
        super().__init__()
        self.smart = service
        self.fhir_base = fhir_base  # callable: this request's FHIR base URL
        self.jwks_cache = JwksCache()
        self.register_token_generator("default", self._generate_token)
        self.register_client_auth_method(
            "private_key_jwt", PrivateKeyJWT(self.token_url, service.replay, self.jwks_cache)
        )
        self.register_grant(SmartCodeGrant, [StrictS256()])
        self.register_grant(SmartRefreshGrant)
        self.register_grant(BackendGrant)
        self.register_endpoint(SmartIntrospection)
        self.register_endpoint(SmartRevocation)

    def token_url(self) -> str:
        return self.fhir_base() + "/auth/token"

    def query_client(self, client_id):
        found = self.smart.clients.get(client_id)
        federation = getattr(self.smart.node, "federation", None)
        if found is None and federation is not None and isinstance(client_id, str):
            # another country's node: known by the signing key it has on chain now
            found = federation.client_for(client_id)
        return found

    def save_token(self, token, request):
        """Tokens are recorded when generated (see :meth:`_generate_token`)."""

    def validate_requested_scope(self, scope):
        try:
            scopes.check_syntax(scope)
        except scopes.ScopeSyntaxError as error:
            raise InvalidScopeError(str(error)) from None

    def _generate_token(
        self, grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True
    ):
        granted = client.get_allowed_scope(scope)
        if not granted:
            raise InvalidScopeError("None of the requested scopes can be granted.")
        subject: Subject | None = user
        backend = grant_type == "client_credentials"
        offline = "offline_access" in scopes.split(granted) or (
            "online_access" in scopes.split(granted)
        )
        token = self.smart.tokens.issue(
            self.fhir_base(),
            grant_type,
            client.client_id,
            subject,
            granted,
            BACKEND_LIFETIME_S if backend else ACCESS_LIFETIME_S,
            refresh=bool(include_refresh_token and offline and not backend and subject),
        )
        listed = scopes.split(granted)
        if (
            subject
            and subject.fhir_user
            and "openid" in listed
            and ("fhirUser" in listed or "profile" in listed)
        ):
            token["id_token"] = self.id_token(client.client_id, subject)
        return token

    def id_token(self, client_id: str, subject: Subject) -> str:
        """OpenID Connect Core 2 ID Token with SMART's ``fhirUser`` claim (RS256)."""
        now = ids.now_us() // 10**6
        base = self.fhir_base()
        claims = {
            "iss": base,
            "sub": subject.username,
            "aud": client_id,
            "iat": now,
            "exp": now + ID_TOKEN_LIFETIME_S,
            "fhirUser": f"{base}/{subject.fhir_user}",
        }
        if subject.auth_time:
            claims["auth_time"] = subject.auth_time
        if subject.nonce:
            claims["nonce"] = subject.nonce
        return self.smart.signing_key.sign(claims)


class _TokenLookup:
    CLIENT_AUTH_METHODS = APP_AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token", "refresh_token")

    def query_token(self, token_string, token_type_hint):
        tokens = self.server.smart.tokens
        if token_type_hint == "refresh_token":  # noqa: S105 (a hint name, not a secret)
            return tokens.by_refresh(token_string) or tokens.by_access_token(token_string)
        return tokens.by_access_token(token_string) or tokens.by_refresh(token_string)


class SmartIntrospection(_TokenLookup, IntrospectionEndpoint):
    """RFC 7662; a client may introspect the tokens issued to it."""

    def check_permission(self, token, client, request):
        return token.check_client(client)

    def introspect_token(self, token):
        base = self.server.fhir_base()
        payload = {
            "active": True,
            "scope": token.scope,
            "client_id": token.client_id,
            "token_type": "refresh_token" if token.via_refresh else "Bearer",
            "exp": (token.refresh_expires_us if token.via_refresh else token.expires_us) // 10**6,
            "iat": token.issued_us // 10**6,
            "iss": base,
            "sub": token.username or token.client_id,
        }
        if token.username:
            payload["username"] = token.username
            user = self.server.smart.users.get(token.username)
            if user and "openid" in scopes.split(token.scope):
                payload["fhirUser"] = f"{base}/{user.fhir_user}"
        for name in ("patient", "encounter", "fhirContext"):
            if name in token.context:
                payload[name] = token.context[name]
        return payload


class SmartRevocation(_TokenLookup, RevocationEndpoint):
    """RFC 7009; revoking either token of a grant revokes both."""

    def revoke_token(self, token, request):
        self.server.smart.tokens.revoke(token.jti)
