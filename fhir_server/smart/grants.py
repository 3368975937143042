"""authlib grants configured for SMART App Launch 2.2 (framework-free).

* :class:`StrictS256` - RFC 7636 with SMART's rule that every client uses PKCE
  and only ``S256`` (app-launch.html#considerations-for-pkce-support); authlib's
  default accepts ``plain`` and skips PKCE when no challenge is sent.
* :class:`SmartCodeGrant` - ``state`` required and ``aud`` must be this FHIR
  base (SMART App Launch 2.2), exact redirect_uri, launch context bound to the
  code, codes single-use (RFC 6749 section 4.1.2).
* :class:`SmartRefreshGrant` - bound to its client (a public client is known by
  its refresh token), never widening scope (RFC 6749 section 6), rotated on use;
  a used refresh token presented again revokes its whole grant family (OAuth 2.0
  Security BCP, RFC 9700 4.14.2).
* :class:`BackendGrant` - client_credentials with private_key_jwt only
  (SMART Backend Services, backend-services.html).
"""

from __future__ import annotations

from typing import ClassVar

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc6749.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge

from federation.assertion import country_of
from fhir_server.smart import scopes
from fhir_server.smart.tokens import RefreshReplayed, Subject

APP_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post", "private_key_jwt")


class StrictS256(CodeChallenge):
    SUPPORTED_CODE_CHALLENGE_METHOD = ("S256",)
    CODE_CHALLENGE_METHODS: ClassVar[dict] = {"S256": compare_s256_code_challenge}
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def __init__(self):
        super().__init__(required=True)

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send 'code_challenge' (RFC 7636 4.3).")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256; 'plain' is refused.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant, result):
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier' (RFC 7636 4.5).")
        if not grant.request.authorization_code.code_challenge:
            raise InvalidRequestError("The code was issued without PKCE.")
        super().validate_code_verifier(grant, result)


class Approval:
    """What the resource owner approved: the (possibly narrowed) scope and context."""

    def __init__(self, subject: Subject, scope: str):
        self.subject = subject
        self.scope = scope


class SmartCodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = APP_AUTH_METHODS

    def validate_authorization_request(self):
        redirect_uri = super().validate_authorization_request()
        # Client and redirect_uri are valid by now, so errors go back to the
        # client (RFC 6749 4.1.2.1), never to an unchecked redirect_uri.
        if not self.request.payload.data.get("state"):
            raise InvalidRequestError(
                "'state' is required (SMART App Launch 2.2, "
                "app-launch.html#request-authorization).",
                redirect_uri=redirect_uri,
            )
        aud = self.request.payload.data.get("aud")
        if aud != self.server.fhir_base():
            raise InvalidRequestError(
                "'aud' must be this server's FHIR base URL (SMART App Launch 2.2, "
                "app-launch.html#request-authorization).",
                redirect_uri=redirect_uri,
            )
        launch = self.request.payload.data.get("launch")
        if launch and self.server.smart.launches.resolve(launch) is None:
            raise InvalidRequestError("Unknown or expired 'launch'.", redirect_uri=redirect_uri)
        return redirect_uri

    def save_authorization_code(self, code, request):
        approval: Approval = request.user
        data = request.payload.data
        self.server.smart.tokens.save_code(
            code,
            request.client.client_id,
            request.payload.redirect_uri,
            approval.scope,
            approval.subject,
            data.get("code_challenge"),
            data.get("code_challenge_method"),
        )

    def query_authorization_code(self, code, client):
        return self.server.smart.tokens.consume_code(code, client.get_client_id())

    def delete_authorization_code(self, authorization_code):
        """Nothing to do: :meth:`query_authorization_code` consumed it atomically."""

    def authenticate_user(self, authorization_code):
        user = self.server.smart.users.get(authorization_code.username)
        if user is None:
            return None
        return Subject(
            username=user.username,
            fhir_user=user.fhir_user,
            context=authorization_code.context,
            auth_time=authorization_code.auth_time,
            nonce=authorization_code.nonce,
            code_hash=authorization_code.code_hash,
        )


class SmartRefreshGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = APP_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_token_endpoint_client(self):
        """A public client may refresh without naming itself: it has no credential
        to present, and the refresh token says whose it is (RFC 6749 section 6; the
        SMART JS client sends no ``client_id``). Only a public client's token is
        taken so: a confidential client still authenticates as it must."""
        if not self._names_a_client():
            owner = self._public_owner_of(self.request.form.get("refresh_token"))
            if owner is not None:
                self.server.send_signal("after_authenticate_client", client=owner, grant=self)
                return owner
        return super().authenticate_token_endpoint_client()

    def _names_a_client(self) -> bool:
        form = self.request.form
        named = ("client_id", "client_secret", "client_assertion")
        return "authorization" in self.request.headers or any(form.get(k) for k in named)

    def _public_owner_of(self, refresh_token: str | None):
        record = self.server.smart.tokens.by_refresh(refresh_token) if refresh_token else None
        client = self.server.query_client(record.client_id) if record is not None else None
        return client if client is not None and client.kind == "public" else None

    def authenticate_refresh_token(self, refresh_token):
        tokens = self.server.smart.tokens
        record = tokens.by_refresh(refresh_token)
        if record is None:
            return None
        if record.is_revoked():
            # Used (rotated) or revoked, and presented again: whoever holds it, the
            # grant is compromised. Revoke every token of it (RFC 9700 4.14.2).
            tokens.revoke_family(record)
            return None
        return None if record.is_expired() else record

    def _validate_token_scope(self, token):
        requested = self.request.payload.scope
        if requested and not scopes.narrows(token.get_scope(), requested):
            raise InvalidScopeError("A refresh may narrow the scope, never widen it (RFC 6749 6).")

    def authenticate_user(self, refresh_token):
        if refresh_token.username is None:
            return None
        user = self.server.smart.users.get(refresh_token.username)
        if user is None:
            return None
        return Subject(
            user.username,
            user.fhir_user,
            refresh_token.context,
            code_hash=refresh_token.family_id,  # the successor joins the family
            rotates=refresh_token,
        )

    def issue_token(self, user, refresh_token):
        try:
            return super().issue_token(user, refresh_token)
        except RefreshReplayed:
            # Another request rotated this refresh token first (it was read as
            # unused by both): this one is a replay, and nothing was issued to it.
            self.server.smart.tokens.revoke_family(refresh_token)
            raise InvalidGrantError() from None

    def revoke_old_credential(self, refresh_token):
        """Nothing to do: the old refresh token (and its access token) was revoked
        in the transaction that recorded its successor (TokenStore.issue)."""


class BackendGrant(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ("private_key_jwt",)

    def generate_token(self, user=None, scope=None, grant_type=None, **kwargs):
        """Another country's node acts for the clinician its assertion names: the
        token carries them (decided like that practitioner, never as this node's own
        backend service); without one it acts for no one and every patient read is
        refused (fhir_server.access.consent_hook)."""
        actor = getattr(self.request, "federated_actor", None)
        if user is None and actor is not None:
            country = country_of(self.request.client.client_id)
            context = {
                "actor_identifiers": actor["identifiers"],
                "actor_country": country,
                "purpose_of_use": actor.get("purpose") or "TREAT",
            }
            for name in ("reference", "display", "consent"):
                if actor.get(name):
                    context[f"actor_{name}"] = actor[name]
            user = Subject(context=context)
        return super().generate_token(user=user, scope=scope, grant_type=grant_type, **kwargs)
