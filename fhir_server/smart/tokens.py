"""Issued grants: authorization codes, access tokens (RS256 JWT + jti record) and
refresh tokens (opaque, stored as SHA-256), with revocation and introspection.

RFC 6749 section 4.1.2: codes are short-lived and single-use; a replayed code
revokes every token issued from it. RFC 7009 / RFC 7662: revoking either token
of a grant kills both.

Refresh tokens rotate: the one used is revoked in the transaction that records
its successor, so of two requests with the same token only one gets a successor.
Every token descending from one authorization code forms a *family*, recorded in
``smart_tokens.code_hash`` (the code's digest; for rows stored before families
existed, the jti of the oldest refreshed token). A refresh token presented after
it was rotated or revoked revokes its whole family: two parties hold it, and the
server cannot tell the client from the attacker (OAuth 2.0 Security BCP, RFC 9700
section 4.14.2).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Connection, Engine

from fhir_server import ids
from fhir_server.smart.credentials import secret_digest
from fhir_server.smart.keys import SigningKey
from fhir_server.smart.tables import codes, tokens
from fhir_server.storage import driver_sql

CODE_LIFETIME_S = 60
ACCESS_LIFETIME_S = 3600
BACKEND_LIFETIME_S = 300
REFRESH_LIFETIME_S = 30 * 24 * 3600
log = logging.getLogger("phrx.smart")
CONTEXT_KEYS = ("patient", "encounter", "fhirContext", "need_patient_banner", "smart_style_url")


class RefreshReplayed(Exception):
    """The refresh token being rotated was used (or revoked) meanwhile."""


@dataclass
class Subject:
    """Whom a grant acts for: a user with launch context (None user for backend)."""

    username: str | None = None
    fhir_user: str | None = None
    context: dict = field(default_factory=dict)
    auth_time: int | None = None
    nonce: str | None = None
    code_hash: str | None = None  # the token family (see the module docstring)
    rotates: TokenRecord | None = None  # the refresh token this issue replaces


@dataclass
class CodeRecord:
    client_id: str
    redirect_uri: str
    scope: str
    username: str
    context: dict
    code_challenge: str
    code_challenge_method: str
    nonce: str | None
    auth_time: int
    code_hash: str

    # authlib AuthorizationCodeMixin
    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time


@dataclass
class TokenRecord:
    jti: str
    client_id: str
    username: str | None
    scope: str
    context: dict
    grant_type: str
    issued_us: int
    expires_us: int
    refresh_expires_us: int | None
    revoked: bool
    via_refresh: bool = False  # looked up by its refresh token
    fhir_user: str | None = None  # known when just issued (not stored: the user's is)
    family: str | None = None  # code_hash column: the grant it descends from

    @property
    def family_id(self) -> str:
        """The family this token's successors are recorded under."""
        return self.family or self.jti

    # authlib TokenMixin
    def check_client(self, client):
        return client.get_client_id() == self.client_id

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return max(0, (self.expires_us - ids.now_us()) // 10**6)

    def is_expired(self):
        limit = self.refresh_expires_us if self.via_refresh else self.expires_us
        return limit is None or limit <= ids.now_us()

    def is_revoked(self):
        return self.revoked


class TokenStore:
    def __init__(self, engine: Engine, signing_key: SigningKey):
        self.engine = engine
        self.key = signing_key
        # ``audit(conn, event, record)`` stores a token-use AuditEvent ("issue" or
        # "revoke") in the transaction that records the token (SmartService wires it
        # to the node's audit log). ``prepare()`` runs before that transaction opens.
        self.audit: Callable[[Connection, str, TokenRecord], None] | None = None
        self.audit_prepare: Callable[[], None] | None = None

    # -- authorization codes ------------------------------------------------------
    def save_code(
        self,
        code: str,
        client_id: str,
        redirect_uri: str,
        scope: str,
        subject: Subject,
        challenge: str,
        method: str,
    ) -> None:
        now = ids.now_us()
        row = {
            "code_hash": secret_digest(code),
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "username": subject.username,
            "context": json.dumps(subject.context),
            "code_challenge": challenge,
            "code_challenge_method": method,
            "nonce": subject.nonce,
            "auth_time": subject.auth_time or now // 10**6,
            "expires_us": now + CODE_LIFETIME_S * 10**6,
            "used": False,
        }
        with self.engine.begin() as conn:
            conn.execute(insert(codes).values(**row))

    def consume_code(self, code: str, client_id: str) -> CodeRecord | None:
        """Atomically mark the code used; a second presentation revokes its tokens."""
        digest = secret_digest(code)
        now = ids.now_us()
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(codes)
                .where(
                    codes.c.code_hash == digest,
                    codes.c.client_id == client_id,
                    codes.c.used.is_(False),
                    codes.c.expires_us > now,
                )
                .values(used=True)
            ).rowcount
            row = conn.execute(select(codes).where(codes.c.code_hash == digest)).first()
            if row is not None and not claimed and row.used:
                conn.execute(
                    update(tokens).where(tokens.c.code_hash == digest).values(revoked=True)
                )
        if not claimed or row is None:
            return None
        return CodeRecord(
            row.client_id,
            row.redirect_uri,
            row.scope,
            row.username,
            json.loads(row.context),
            row.code_challenge,
            row.code_challenge_method,
            row.nonce,
            row.auth_time,
            digest,
        )

    # -- tokens -------------------------------------------------------------------
    def issue(
        self,
        base_url: str,
        grant_type: str,
        client_id: str,
        subject: Subject | None,
        scope: str,
        lifetime_s: int,
        refresh: bool,
    ) -> dict:
        subject = subject or Subject()
        now = ids.now_us()
        jti = secrets.token_urlsafe(24)
        expires = now + lifetime_s * 10**6
        claims = {
            "iss": base_url,
            "aud": base_url,
            "sub": subject.username or client_id,
            "client_id": client_id,
            "scope": scope,
            "jti": jti,
            "iat": now // 10**6,
            "exp": expires // 10**6,
        }
        if subject.fhir_user:
            claims["fhirUser"] = f"{base_url}/{subject.fhir_user}"
        if subject.context.get("patient"):
            claims["patient"] = subject.context["patient"]
        token = {
            "token_type": "Bearer",
            "access_token": self.key.sign(claims),
            "expires_in": lifetime_s,
            "scope": scope,
        }
        refresh_token = secrets.token_urlsafe(32) if refresh else None
        if refresh_token:
            token["refresh_token"] = refresh_token
        row = {
            "jti": jti,
            "refresh_hash": secret_digest(refresh_token) if refresh_token else None,
            "client_id": client_id,
            "username": subject.username,
            "scope": scope,
            "context": json.dumps(subject.context),
            "grant_type": grant_type,
            "code_hash": subject.code_hash,
            "issued_us": now,
            "expires_us": expires,
            "refresh_expires_us": now + REFRESH_LIFETIME_S * 10**6 if refresh_token else None,
            "revoked": False,
        }
        if self.audit_prepare is not None:
            self.audit_prepare()
        with self.engine.begin() as conn:
            if subject.rotates is not None:
                self._claim(conn, subject.rotates)
            conn.execute(insert(tokens).values(**row))
            if self.audit is not None:
                self.audit(conn, "issue", _record(row, subject))
        # Audit line: identifiers only, never a token, secret or patient data.
        log.info(
            "token issued jti=%s client=%s user=%s grant=%s scope=%s refresh=%s",
            jti,
            client_id,
            subject.username or "-",
            grant_type,
            scope,
            bool(refresh_token),
        )
        for name in CONTEXT_KEYS:
            if name in subject.context:
                token[name] = subject.context[name]
        return token

    def by_jti(self, jti: str) -> TokenRecord | None:
        # On every request with a token: straight to the driver (see driver_sql).
        row = driver_sql.fetch_one(self.engine, _BY_JTI, (jti,))
        return _stored(row, via_refresh=False) if row is not None else None

    def by_refresh(self, refresh_token: str) -> TokenRecord | None:
        return self._one(tokens.c.refresh_hash == secret_digest(refresh_token), via_refresh=True)

    def by_access_token(self, access_token: str) -> TokenRecord | None:
        try:
            claims = self.key.verify(access_token)
        except Exception:  # any defect in the JWT: it is not one of ours
            return None
        jti = claims.get("jti")
        return self.by_jti(jti) if isinstance(jti, str) else None

    def revoke(self, jti: str) -> None:
        record = self.by_jti(jti) if self.audit is not None else None
        if record is not None and self.audit_prepare is not None:
            self.audit_prepare()
        with self.engine.begin() as conn:
            conn.execute(update(tokens).where(tokens.c.jti == jti).values(revoked=True))
            if record is not None:
                self.audit(conn, "revoke", record)

    def _claim(self, conn: Connection, old: TokenRecord) -> None:
        """Revoke the refresh token being rotated, unless something else did first
        (a concurrent refresh with the same token): then raise RefreshReplayed and
        the caller's transaction records no successor."""
        claimed = conn.execute(
            update(tokens)
            .where(tokens.c.jti == old.jti, tokens.c.revoked.is_(False))
            .values(revoked=True)
        ).rowcount
        if claimed != 1:
            raise RefreshReplayed(old.jti)
        if self.audit is not None:
            self.audit(conn, "revoke", old)

    def revoke_family(self, record: TokenRecord) -> int:
        """Revoke every token of ``record``'s family (a used refresh token came
        back); returns how many were still live."""
        family = record.family_id
        member = or_(
            tokens.c.code_hash == family, tokens.c.jti == family, tokens.c.jti == record.jti
        )
        revoked = 0
        while True:  # again until none is live: a rotation under way may commit a successor
            if self.audit_prepare is not None:
                self.audit_prepare()
            with self.engine.begin() as conn:
                live = conn.execute(
                    select(*_RECORD_COLUMNS).where(member, tokens.c.revoked.is_(False))
                ).all()
                for row in live:
                    conn.execute(
                        update(tokens)
                        .where(tokens.c.jti == row.jti, tokens.c.revoked.is_(False))
                        .values(revoked=True)
                    )
                    if self.audit is not None:
                        self.audit(conn, "revoke", _stored(tuple(row), via_refresh=False))
            if not live:
                break
            revoked += len(live)
        # Identifiers only (never a token): the presented token's jti and its client.
        log.warning(
            "used or revoked refresh token presented again: revoked its grant family "
            "jti=%s client=%s live=%d",
            record.jti,
            record.client_id,
            revoked,
        )
        return revoked

    def _one(self, condition, via_refresh: bool) -> TokenRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_RECORD_COLUMNS).where(condition)).first()
        return _stored(tuple(row), via_refresh) if row is not None else None


_RECORD_COLUMNS = (
    tokens.c.jti,
    tokens.c.client_id,
    tokens.c.username,
    tokens.c.scope,
    tokens.c.context,
    tokens.c.grant_type,
    tokens.c.issued_us,
    tokens.c.expires_us,
    tokens.c.refresh_expires_us,
    tokens.c.revoked,
    tokens.c.code_hash,
)
# Column names from the constant above, never from input.
_BY_JTI = (
    f"SELECT {', '.join(c.name for c in _RECORD_COLUMNS)} FROM {tokens.name} "  # noqa: S608
    "WHERE jti = ?"
)


def _stored(row: tuple, via_refresh: bool) -> TokenRecord:
    """A TokenRecord of a row of :data:`_RECORD_COLUMNS`."""
    jti, client_id, username, scope, context, grant, issued, expires, refresh_expires = row[:9]
    revoked, family = row[9:]
    return TokenRecord(
        jti,
        client_id,
        username,
        scope,
        json.loads(context),
        grant,
        issued,
        expires,
        refresh_expires,
        bool(revoked),  # sqlite3 returns SQLite booleans as 0 / 1
        via_refresh,
        family=family,
    )


def _record(row: dict, subject: Subject) -> TokenRecord:
    return TokenRecord(
        row["jti"],
        row["client_id"],
        row["username"],
        row["scope"],
        dict(subject.context),
        row["grant_type"],
        row["issued_us"],
        row["expires_us"],
        row["refresh_expires_us"],
        False,
        fhir_user=subject.fhir_user,
        family=row["code_hash"],
    )
