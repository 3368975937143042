"""Local accounts (patients, practitioners, administrators) with throttled logins."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from fhir_server import ids
from fhir_server.smart import credentials
from fhir_server.smart.tables import users
from vault.envelope import open_sealed, seal
from vault.keyring import KeyRing

ROLES = ("patient", "practitioner", "admin")
_FHIR_USER = re.compile(
    r"^(Patient|Practitioner|PractitionerRole|RelatedPerson|Person)/[A-Za-z0-9\-.]{1,64}$"
)
_USERNAME = re.compile(r"^[A-Za-z0-9_.@\-]{1,128}$")
MAX_FAILURES = 5
LOCK_BASE_S = 30
LOCK_MAX_S = 15 * 60
TOTP_SCOPE = "node:smart-totp"


@dataclass(frozen=True)
class User:
    username: str
    role: str
    fhir_user: str
    totp_enabled: bool

    @property
    def patient_id(self) -> str | None:
        kind, _, rid = self.fhir_user.partition("/")
        return rid if kind == "Patient" else None


class LoginFailed(Exception):
    """Wrong credentials, or locked out for a while (message is safe to show)."""


class UserStore:
    def __init__(self, engine: Engine, keyring: KeyRing):
        self.engine = engine
        self.keyring = keyring

    def add(self, username: str, role: str, fhir_user: str, password: str) -> User:
        if not _USERNAME.match(username):
            raise ValueError("usernames use letters, digits and . _ @ - only")
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if not _FHIR_USER.match(fhir_user):
            raise ValueError("--fhir-user must look like Patient/ID or Practitioner/ID")
        if role == "patient" and not fhir_user.startswith("Patient/"):
            raise ValueError("a patient account's fhirUser must be a Patient")
        if self.get(username):
            raise ValueError(f"user {username!r} already exists")
        row = {
            "username": username,
            "role": role,
            "fhir_user": fhir_user,
            "password_hash": credentials.hash_password(password),
            "totp_last_step": 0,
            "failed_logins": 0,
            "locked_until_us": 0,
            "created_us": ids.now_us(),
        }
        with self.engine.begin() as conn:
            conn.execute(insert(users).values(**row))
        return User(username, role, fhir_user, False)

    def get(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).first()
        return _user(row) if row else None

    def list(self) -> list[User]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(users).order_by(users.c.username)).all()
        return [_user(r) for r in rows]

    def login(self, username: str, password: str, totp_code: str | None = None) -> User:
        """Check password (and TOTP when enabled); throttle after repeated failures."""
        now = ids.now_us()
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).first()
        if row is not None and row.locked_until_us > now:
            raise LoginFailed("Too many failed attempts; try again later.")
        ok = credentials.verify_password(password, row.password_hash if row else None)
        if ok and row.totp_sealed is not None:
            step = credentials.totp_match(
                self._totp_secret(row), totp_code or "", row.totp_last_step
            )
            ok = bool(step)
            if ok:
                self._update(username, totp_last_step=step)
        if row is None:
            raise LoginFailed("Unknown user or wrong password.")
        if not ok:
            failures = row.failed_logins + 1
            lock = 0
            if failures >= MAX_FAILURES:
                lock = now + min(LOCK_BASE_S * 2 ** (failures - MAX_FAILURES), LOCK_MAX_S) * 10**6
            self._update(username, failed_logins=failures, locked_until_us=lock)
            raise LoginFailed("Unknown user or wrong password.")
        self._update(username, failed_logins=0, locked_until_us=0)
        return _user(row)

    def enable_totp(self, username: str) -> str:
        """Give a practitioner (or admin) a TOTP seed; returns it for the authenticator app."""
        user = self.get(username)
        if user is None:
            raise ValueError(f"no user {username!r}")
        if user.role == "patient":
            raise ValueError("TOTP is offered to practitioners and administrators")
        secret = credentials.new_totp_secret()
        sealed = seal(self.keyring.data_key(TOTP_SCOPE), secret.encode(), _aad(username))
        self._update(username, totp_sealed=sealed, totp_last_step=0)
        return secret

    def _totp_secret(self, row) -> str:
        key = self.keyring.data_key(TOTP_SCOPE)
        return open_sealed(key, row.totp_sealed, _aad(row.username)).decode()

    def _update(self, username: str, **values) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.username == username).values(**values))


def _aad(username: str) -> bytes:
    return b"phrx-totp\0" + username.encode()


def _user(row) -> User:
    return User(row.username, row.role, row.fhir_user, row.totp_sealed is not None)
