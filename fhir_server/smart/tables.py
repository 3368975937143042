"""SQLAlchemy Core tables of the SMART authorization server, on the node's ``metadata``.

Secrets never sit here in clear: passwords are scrypt hashes, client secrets,
codes, refresh tokens and launch ids are SHA-256 digests of 256-bit random
values, and TOTP seeds are sealed with a node data key.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from fhir_server.storage.db import metadata

users = Table(
    "smart_users",
    metadata,
    Column("username", String(128), primary_key=True),
    Column("role", String(16), nullable=False),  # patient | practitioner | admin
    Column("fhir_user", String(200), nullable=False),  # e.g. Patient/123
    Column("password_hash", String(400), nullable=False),
    Column("totp_sealed", LargeBinary, nullable=True),
    Column("totp_last_step", BigInteger, nullable=False, default=0),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until_us", BigInteger, nullable=False, default=0),
    Column("created_us", BigInteger, nullable=False),
)

clients = Table(
    "smart_clients",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # public|symmetric|asymmetric|backend
    Column("secret_hash", String(128), nullable=True),
    Column("redirect_uris", Text, nullable=False, default="[]"),  # JSON list
    Column("scope", Text, nullable=False),  # the ceiling of what it may be granted
    Column("jwks", Text, nullable=True),  # inline JWKS (JSON)
    Column("jwks_url", String(1000), nullable=True),
    Column("created_us", BigInteger, nullable=False),
)

codes = Table(
    "smart_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("redirect_uri", String(1000), nullable=False),
    Column("scope", Text, nullable=False),
    Column("username", String(128), nullable=False),
    Column("context", Text, nullable=False, default="{}"),  # launch context JSON
    Column("code_challenge", String(128), nullable=False),
    Column("code_challenge_method", String(8), nullable=False),
    Column("nonce", String(400), nullable=True),
    Column("auth_time", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("used", Boolean, nullable=False, default=False),
)

# One row per issued access token (jti), with its optional refresh token.
tokens = Table(
    "smart_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("refresh_hash", String(64), nullable=True, unique=True),
    Column("client_id", String(128), nullable=False),
    Column("username", String(128), nullable=True),  # None for backend tokens
    Column("scope", Text, nullable=False),
    Column("context", Text, nullable=False, default="{}"),
    Column("grant_type", String(64), nullable=False),
    Column("code_hash", String(64), nullable=True),
    Column("issued_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("refresh_expires_us", BigInteger, nullable=True),
    Column("revoked", Boolean, nullable=False, default=False),
    Index("ix_smart_tokens_code", "code_hash"),
)

# RFC 7523 section 3 item 7: a client assertion's jti is accepted once.
assertion_jtis = Table(
    "smart_assertion_jtis",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("jti", String(256), primary_key=True),
    Column("expires_us", BigInteger, nullable=False),
)

launches = Table(
    "smart_launches",
    metadata,
    Column("launch_hash", String(64), primary_key=True),
    Column("context", Text, nullable=False),  # {"patient": ..., "encounter": ...}
    Column("username", String(128), nullable=True),
    Column("expires_us", BigInteger, nullable=False),
)
