"""``private_key_jwt`` client authentication (RFC 7523 section 2.2 / 3) as SMART
Backend Services and asymmetric apps use it (client-confidential-asymmetric.html).

Only RS384 and ES384 are accepted. Keys come from the client's inline JWKS or
from its registered JWKS URL - the only URL ever fetched; a ``jku`` header must
equal it. ``iss == sub == client_id``, ``aud`` is the token URL, ``exp`` is at
most five minutes ahead, and a ``jti`` is never accepted twice.
"""

from __future__ import annotations

import logging
import re
import threading
import time

import requests
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from federation.assertion import ACTOR_CLAIM, country_of, parse_actor
from fhir_server import fastjson

ALGORITHMS = ["RS384", "ES384"]
MAX_LIFETIME_S = 300
CLOCK_SKEW_S = 10
JWKS_TIMEOUT_S = 5
JWKS_MAX_BYTES = 256 * 1024
JWKS_MAX_DEPTH = 8  # a JWKS is an object of a list of key objects (x5c lists inside)
JWKS_DEFAULT_TTL_S = 300
JWKS_MAX_TTL_S = 24 * 3600
log = logging.getLogger("phrx.smart")


class JwksCache:
    """Fetched JWKS per URL, kept as long as the response's Cache-Control allows."""

    def __init__(self):
        self._entries: dict[str, tuple[float, dict]] = {}
        self._lock = threading.Lock()

    def get(self, url: str, *, refresh: bool = False) -> dict:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(url)
        if entry and entry[0] > now and not refresh:
            return entry[1]
        response = requests.get(url, timeout=JWKS_TIMEOUT_S, allow_redirects=False, stream=True)
        body = response.raw.read(JWKS_MAX_BYTES + 1, decode_content=True)
        if response.status_code != 200 or len(body) > JWKS_MAX_BYTES:
            raise InvalidClientError(description="The client's JWKS URL did not serve a JWKS.")
        try:
            jwks = fastjson.parse(body, max_depth=JWKS_MAX_DEPTH)
        except ValueError:  # not JSON, or nested deeper than any JWKS is
            raise InvalidClientError(
                description="The client's JWKS URL did not serve a JWKS."
            ) from None
        ttl = cache_ttl(response.headers.get("Cache-Control", ""))
        if ttl > 0:
            with self._lock:
                self._entries[url] = (now + ttl, jwks)
        return jwks


def cache_ttl(cache_control: str) -> int:
    directives = [d.strip().lower() for d in cache_control.split(",") if d.strip()]
    if any(d in ("no-store", "no-cache") for d in directives):
        return 0
    for d in directives:
        match = re.fullmatch(r"(?:s-)?max-age=(\d+)", d)
        if match:
            return min(int(match.group(1)), JWKS_MAX_TTL_S)
    return JWKS_DEFAULT_TTL_S


class PrivateKeyJWT(JWTBearerClientAssertion):
    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, token_url, replay, jwks_cache: JwksCache):
        super().__init__(validate_jti=True, leeway=CLOCK_SKEW_S)
        self._token_url = token_url  # callable: the token URL of this request
        self._replay = replay
        self._jwks_cache = jwks_cache

    def get_audiences(self):
        return [self._token_url()]

    def __call__(self, query_client, request):
        if request.form.get("client_assertion_type") != self.CLIENT_ASSERTION_TYPE:
            return None
        assertion = request.form.get("client_assertion")
        if not assertion:
            return None
        headers, claims = self.extract_assertion(assertion)
        if headers.get("alg") not in ALGORITHMS:
            raise InvalidClientError(description="Assertions must be signed with RS384 or ES384.")
        client_id = claims.get("sub")
        if not isinstance(client_id, str) or claims.get("iss") != client_id:
            raise InvalidClientError(description="Assertion 'iss' and 'sub' must be the client_id.")
        form_client = request.form.get("client_id")
        if form_client and form_client != client_id:
            raise InvalidClientError(description="Assertion 'sub' does not match client_id.")
        client = query_client(client_id)
        if not client or not self._uses_keys(client):
            raise InvalidClientError(description="Unknown client or no registered keys.")
        request.client = client
        keys = self._keys(client, headers)
        try:
            token = jwt.decode(assertion, keys, algorithms=ALGORITHMS)
        except JoseError:
            if client.jwks_url and "jku" not in headers:
                keys = self._keys(client, headers, refresh=True)  # key rotation
                try:
                    token = jwt.decode(assertion, keys, algorithms=ALGORITHMS)
                except JoseError as e:
                    raise InvalidClientError(description="Assertion signature invalid.") from e
            else:
                raise InvalidClientError(description="Assertion signature invalid.") from None
        self.verify_claims(token.claims)
        if country_of(client_id) is not None:
            # a node's gateway: the clinician it acts for, as that node attests them
            request.federated_actor = parse_actor(token.claims.get(ACTOR_CLAIM))
        return self.authenticate_client(client)

    def verify_claims(self, claims):
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp - time.time() > MAX_LIFETIME_S + CLOCK_SKEW_S:
            raise InvalidClientError(description="Assertion 'exp' is more than 5 minutes ahead.")
        super().verify_claims(claims)  # iss, sub, aud, exp, then the jti replay check

    def validate_jti(self, claims, jti):
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            return False
        return self._replay.first_use(claims["sub"], jti, int(claims["exp"]))

    @staticmethod
    def _uses_keys(client) -> bool:
        return bool(getattr(client, "jwks", None) or getattr(client, "jwks_url", None))

    def _keys(self, client, headers, refresh: bool = False) -> KeySet:
        jku = headers.get("jku")
        if jku is not None and jku != client.jwks_url:
            raise InvalidClientError(description="Assertion 'jku' is not the registered JWKS URL.")
        try:
            if client.jwks_url:
                data = self._jwks_cache.get(client.jwks_url, refresh=refresh)
            else:
                data = client.jwks
            usable = [k for k in data.get("keys", []) if k.get("kty") in ("RSA", "EC")]
            return KeySet.import_key_set({"keys": usable})
        except InvalidClientError:
            raise
        except (requests.RequestException, ValueError, JoseError, AttributeError) as e:
            log.warning("cannot load JWKS of client %s: %s", client.client_id, type(e).__name__)
            raise InvalidClientError(description="The client's keys cannot be loaded.") from e
