"""Node-to-node client assertions (SMART Backend Services, RFC 7523 private_key_jwt).

Flask-free. A node calling another country's node signs, with its node key
(:mod:`federation.node_keys`), a JWT with ``iss = sub = node.<country>``, ``aud`` the
called node's token URL, ``exp`` at most five minutes ahead and a fresh ``jti``.
The called node checks it against the signing JWK this node registered on chain
(``fhir_server/smart/assertion.py`` does the RFC 7523 checks and the jti replay check).

The gateway acts for one clinician: the claim :data:`ACTOR_CLAIM` names them, as the
calling country attests them (the identifiers of its Practitioner resource, the
purpose of use, the Consent the access rests on). The called node decides by its
patient's Consent for that clinician; it never takes the calling node's word for
what the patient allowed.
"""

from __future__ import annotations

import secrets
import time

from joserfc import jwt

from federation.node_keys import SIGNING_ALG, NodeKeys

ACTOR_CLAIM = "phrx_actor"
ASSERTION_LIFETIME_S = 240  # under the five minutes the called node accepts
MAX_IDENTIFIERS = 10
MAX_TEXT = 256


def client_id(country: str) -> str:
    return f"node.{country.upper()}"


def country_of(client: str | None) -> str | None:
    """The country of a ``node.XX`` client id, else None."""
    if isinstance(client, str) and client.startswith("node.") and len(client) == 7:
        code = client[5:]
        if code.isascii() and code.isalpha() and code.isupper():
            return code
    return None


def sign(
    keys: NodeKeys,
    country: str,
    token_url: str,
    actor: dict | None = None,
    lifetime_s: int = ASSERTION_LIFETIME_S,
) -> str:
    """A client assertion of this node (``country``) for ``token_url``."""
    now = int(time.time())
    claims = {
        "iss": client_id(country),
        "sub": client_id(country),
        "aud": token_url,
        "iat": now,
        "exp": now + lifetime_s,
        "jti": secrets.token_urlsafe(24),
    }
    if actor is not None:
        claims[ACTOR_CLAIM] = actor
    header = {"alg": SIGNING_ALG, "kid": keys.kid, "typ": "JWT"}
    return jwt.encode(header, claims, keys.signing, algorithms=[SIGNING_ALG])


def actor_claim(
    identifiers: list[tuple[str, str]],
    *,
    reference: str | None = None,
    display: str | None = None,
    purpose: str | None = None,
    consent: str | None = None,
) -> dict:
    claim: dict = {"identifiers": [[s, v] for s, v in identifiers]}
    for name, value in (
        ("reference", reference),
        ("display", display),
        ("purpose", purpose),
        ("consent", consent),
    ):
        if value:
            claim[name] = value
    return claim


def parse_actor(claim: object) -> dict | None:
    """The actor a verified assertion names, checked for shape; None if it names none
    or anything in it is malformed (the token then acts for no one: refused)."""
    if not isinstance(claim, dict):
        return None
    raw = claim.get("identifiers")
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_IDENTIFIERS:
        return None
    identifiers = []
    for pair in raw:
        if not (isinstance(pair, list) and len(pair) == 2):
            return None
        if not all(isinstance(x, str) and 0 < len(x) <= MAX_TEXT for x in pair):
            return None
        identifiers.append(pair)
    out: dict = {"identifiers": identifiers}
    for name in ("reference", "display", "purpose", "consent"):
        value = claim.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT:
            return None
        out[name] = value
    return out
