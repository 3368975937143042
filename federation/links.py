"""Share links held by the patient's home node: which Consent a link stands for, its
key (sealed), its expiry, its passcode and how many wrong tries it has left.

Flask-free; owns the ``share_links`` table (on its own MetaData, created by the
node's schema). The link key is sealed (AES-256-GCM) under the patient's data key,
so erasing the patient (crypto-shredding) kills every link of theirs too. A passcode
is kept as a scrypt hash; each wrong one costs a try in one conditional UPDATE (two
concurrent wrong guesses cannot both spend the last try), and a link out of tries is
dead for good.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    insert,
    select,
    update,
)

from federation.errors import LinkError
from vault import envelope

METADATA = MetaData()
share_links = Table(
    "share_links",
    METADATA,
    Column("link_id", String(64), primary_key=True),  # random, the manifest URL's last segment
    Column("patient_id", String(64), nullable=False, index=True),
    Column("consent_id", String(64), nullable=False, index=True),
    Column("key_sealed", LargeBinary, nullable=False),
    Column("expires_s", BigInteger),
    Column("passcode_hash", LargeBinary),
    Column("attempts_left", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # active | revoked | exhausted
    Column("label", String(80)),
    Column("created_us", BigInteger, nullable=False),
    Column("uses", Integer, nullable=False, default=0),
)
# Files a manifest hands out by ``location`` (SHL: when a viewer's embeddedLengthMax
# is below a file's size): the JWE, already encrypted under the link's key, for a
# short while under a random id.
share_link_files = Table(
    "share_link_files",
    METADATA,
    Column("file_id", String(64), primary_key=True),
    Column("link_id", String(64), nullable=False, index=True),
    Column("jwe", LargeBinary, nullable=False),
    Column("expires_s", BigInteger, nullable=False),
)
FILE_TTL_S = 60
PASSCODE_TRIES = 5
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
ACTIVE, REVOKED, EXHAUSTED = "active", "revoked", "exhausted"


@dataclass(frozen=True)
class StoredLink:
    link_id: str
    patient_id: str
    consent_id: str
    key_sealed: bytes
    expires_s: int | None
    has_passcode: bool
    attempts_left: int
    state: str
    label: str | None
    uses: int

    def state_at(self, now_s: int) -> str:
        if self.state == ACTIVE and self.expires_s is not None and now_s >= self.expires_s:
            return "expired"
        return self.state


def new_link_id() -> str:
    """A link id: 256 random bits (the manifest URL is the link's only locator)."""
    return secrets.token_urlsafe(32)


def _aad(link_id: str) -> bytes:
    return b"phrx/share-link/v1|" + link_id.encode()


def _hash_passcode(salt: bytes, passcode: str) -> bytes:
    return salt + hashlib.scrypt(passcode.encode(), salt=salt, **_SCRYPT)


class LinkStore:
    def __init__(self, engine) -> None:
        self.engine = engine

    def create(
        self,
        conn,
        *,
        patient_id: str,
        consent_id: str,
        key: bytes,
        data_key: bytes,
        expires_s: int | None,
        passcode: str | None,
        label: str | None,
        link_id: str | None = None,
    ) -> str:
        """Store a new link in the caller's transaction (the one writing its Consent)."""
        link_id = link_id or new_link_id()
        passcode_hash = _hash_passcode(secrets.token_bytes(16), passcode) if passcode else None
        conn.execute(
            insert(share_links).values(
                link_id=link_id,
                patient_id=patient_id,
                consent_id=consent_id,
                key_sealed=envelope.seal(data_key, key, _aad(link_id)),
                expires_s=expires_s,
                passcode_hash=passcode_hash,
                attempts_left=PASSCODE_TRIES,
                state=ACTIVE,
                label=label,
                created_us=time.time_ns() // 1000,
                uses=0,
            )
        )
        return link_id

    def find(self, link_id: str) -> StoredLink | None:
        if not isinstance(link_id, str) or not 0 < len(link_id) <= 64:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(share_links).where(share_links.c.link_id == link_id)).first()
        if row is None:
            return None
        return StoredLink(
            row.link_id,
            row.patient_id,
            row.consent_id,
            bytes(row.key_sealed),
            row.expires_s,
            row.passcode_hash is not None,
            row.attempts_left,
            row.state,
            row.label,
            row.uses,
        )

    def for_patient(self, patient_id: str) -> list[StoredLink]:
        with self.engine.connect() as conn:
            ids = conn.execute(
                select(share_links.c.link_id).where(share_links.c.patient_id == patient_id)
            ).scalars()
            found = list(ids)
        return [link for link in (self.find(i) for i in found) if link is not None]

    @staticmethod
    def open_key(link: StoredLink, data_key: bytes) -> bytes:
        return envelope.open_sealed(data_key, link.key_sealed, _aad(link.link_id))

    def check_passcode(self, link_id: str, passcode: object) -> int | None:
        """None when ``passcode`` is right; else the tries left after this wrong one
        (0: the link is now dead). Raises LinkError for a link without a passcode."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(share_links.c.passcode_hash).where(share_links.c.link_id == link_id)
            ).first()
        if row is None or row.passcode_hash is None:
            raise LinkError("this link has no passcode")
        stored = bytes(row.passcode_hash)
        given = passcode if isinstance(passcode, str) and len(passcode) <= 256 else ""
        if given and hmac.compare_digest(_hash_passcode(stored[:16], given), stored):
            return None
        with self.engine.begin() as conn:
            conn.execute(
                update(share_links)
                .where(share_links.c.link_id == link_id, share_links.c.attempts_left > 0)
                .values(attempts_left=share_links.c.attempts_left - 1)
            )
            conn.execute(
                update(share_links)
                .where(share_links.c.link_id == link_id, share_links.c.attempts_left <= 0)
                .values(state=EXHAUSTED)
            )
            left = conn.execute(
                select(share_links.c.attempts_left).where(share_links.c.link_id == link_id)
            ).scalar_one()
        return left

    def put_file(self, link_id: str, jwe: str, ttl_s: int = FILE_TTL_S) -> str:
        """Keep ``jwe`` for ``ttl_s`` seconds; its random id (the location's last part).
        Expired files of any link are dropped on the way."""
        file_id = secrets.token_urlsafe(32)
        now = int(time.time())
        with self.engine.begin() as conn:
            conn.execute(share_link_files.delete().where(share_link_files.c.expires_s <= now))
            conn.execute(
                insert(share_link_files).values(
                    file_id=file_id, link_id=link_id, jwe=jwe.encode(), expires_s=now + ttl_s
                )
            )
        return file_id

    def take_file(self, link_id: str, file_id: str) -> str | None:
        """The JWE of a file of an active link while it lasts, else None."""
        if not isinstance(file_id, str) or not 0 < len(file_id) <= 64:
            return None
        link = self.find(link_id)
        if link is None or link.state_at(int(time.time())) != ACTIVE:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                select(share_link_files.c.jwe, share_link_files.c.expires_s).where(
                    share_link_files.c.file_id == file_id,
                    share_link_files.c.link_id == link_id,
                )
            ).first()
        if row is None or row.expires_s <= int(time.time()):
            return None
        return bytes(row.jwe).decode()

    def record_use(self, link_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(share_links)
                .where(share_links.c.link_id == link_id)
                .values(uses=share_links.c.uses + 1)
            )

    @staticmethod
    def revoke_patient(conn, patient_id: str) -> int:
        """Revoke every link of a patient (erasure), in the caller's transaction."""
        done = conn.execute(
            update(share_links)
            .where(share_links.c.patient_id == patient_id, share_links.c.state == ACTIVE)
            .values(state=REVOKED)
        )
        return done.rowcount or 0

    def revoke_for(self, conn, consent_ids: list[str]) -> int:
        """Revoke the links of these Consents, in the caller's transaction."""
        if not consent_ids:
            return 0
        done = conn.execute(
            update(share_links)
            .where(share_links.c.consent_id.in_(consent_ids), share_links.c.state == ACTIVE)
            .values(state=REVOKED)
        )
        return done.rowcount or 0
