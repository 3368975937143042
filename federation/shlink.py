"""SMART Health Links (HL7 SMART Health Cards and Links IG, STU1): the link payload,
its ``shlink:/`` encoding, the manifest's JWE files and the QR code.

Flask-free. A link is ``shlink:/`` + base64url(JSON) of::

    {"url": manifest URL, "key": base64url of 32 random bytes, "exp": epoch seconds,
     "flag": "P" when a passcode is needed, "label": up to 80 characters, "v": 1}

optionally behind a viewer URL (``https://viewer.example/#shlink:/...``). Files are
compact JWEs, ``alg: dir``, ``enc: A256GCM``, with the link's key (a fresh IV each
time: joserfc draws one per encryption). The key never reaches the node's database
in clear and never travels anywhere but inside the link.
"""

from __future__ import annotations

import base64
import io
import json
import re
import secrets
from dataclasses import dataclass

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from federation.errors import LinkError

PREFIX = "shlink:/"
KEY_BYTES = 32
MAX_LINK_CHARS = 4096
MAX_URL_CHARS = 128
MAX_LABEL_CHARS = 80
FLAGS = frozenset("LPU")
JWE_HEADER = {"alg": "dir", "enc": "A256GCM"}


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


@dataclass(frozen=True)
class ShareLink:
    url: str
    key: bytes
    exp: int | None = None
    flag: str = ""
    label: str | None = None
    v: int = 1

    @property
    def needs_passcode(self) -> bool:
        return "P" in self.flag

    def payload(self) -> dict:
        body: dict = {"url": self.url, "key": b64url(self.key)}
        if self.exp is not None:
            body["exp"] = self.exp
        if self.flag:
            body["flag"] = "".join(sorted(self.flag))
        if self.label:
            body["label"] = self.label
        body["v"] = self.v
        return body

    def encode(self) -> str:
        raw = json.dumps(self.payload(), separators=(",", ":")).encode()
        return PREFIX + b64url(raw)


def decode(text: str) -> ShareLink:
    """The link in ``text`` (bare or after a viewer URL's ``#``); LinkError if malformed."""
    if not isinstance(text, str) or len(text) > MAX_LINK_CHARS:
        raise LinkError("a share link is a string of at most 4096 characters")
    text = text.strip()
    at = text.find(PREFIX)
    if at < 0 or (at > 0 and not text[:at].endswith("#")):
        raise LinkError("not a SMART Health Link (shlink:/...)")
    try:
        payload = json.loads(unb64url(text[at + len(PREFIX) :]))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise LinkError("the share link's payload is not base64url JSON") from None
    return _from_payload(payload)


def _from_payload(payload: object) -> ShareLink:
    if not isinstance(payload, dict):
        raise LinkError("the share link's payload is not a JSON object")
    url, key, exp = payload.get("url"), payload.get("key"), payload.get("exp")
    flag, label, version = payload.get("flag", ""), payload.get("label"), payload.get("v", 1)
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise LinkError("the share link's url is not an http(s) URL")
    if len(url) > MAX_URL_CHARS:
        raise LinkError("the share link's url is longer than 128 characters")
    try:
        raw_key = unb64url(key)
    except (ValueError, TypeError):
        raise LinkError("the share link's key is not base64url") from None
    if len(raw_key) != KEY_BYTES or len(key) != 43:
        raise LinkError("the share link's key is not 32 bytes")
    if exp is not None and (not isinstance(exp, int) or isinstance(exp, bool) or exp < 0):
        raise LinkError("the share link's exp is not epoch seconds")
    if not isinstance(flag, str) or not set(flag) <= FLAGS:
        raise LinkError("the share link's flag holds letters other than L, P, U")
    if "U" in flag and "P" in flag:
        raise LinkError("a share link cannot have both the U and P flags")
    if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL_CHARS):
        raise LinkError("the share link's label is not a string of at most 80 characters")
    if version != 1 or isinstance(version, bool) or not isinstance(version, int):
        raise LinkError("unsupported share link version")
    return ShareLink(url, raw_key, exp, flag, label)


def encrypt(key: bytes, plaintext: bytes, content_type: str) -> str:
    """A compact JWE of ``plaintext`` (``cty`` = ``content_type``) under ``key``."""
    header = {**JWE_HEADER, "cty": content_type}
    return jwe.encrypt_compact(header, plaintext, OctKey.import_key(key))


def decrypt(key: bytes, token: str) -> bytes:
    if not isinstance(token, str) or token.count(".") != 4:
        raise LinkError("a manifest file is not a compact JWE")
    try:
        found = jwe.decrypt_compact(token, OctKey.import_key(key), registry=_registry())
    except (JoseError, ValueError):
        raise LinkError("a manifest file does not decrypt with the link's key") from None
    if found.protected.get("alg") != "dir" or found.protected.get("enc") != "A256GCM":
        raise LinkError("a manifest file is not dir / A256GCM")
    return found.plaintext or b""


MAX_FILE_BYTES = 32 * 1024 * 1024  # a summary of thousands of resources still fits


def _registry() -> jwe.JWERegistry:
    """joserfc's registry for dir / A256GCM, allowing files of up to 32 MiB (its
    default, 64 KiB, is less than the summary of a patient with a few hundred records)."""
    registry = jwe.JWERegistry(algorithms=["dir", "A256GCM"])
    registry.max_ciphertext_length = MAX_FILE_BYTES * 4 // 3 + 4
    return registry


def qr_png(text: str, scale: int = 4) -> bytes:
    """The QR code of ``text`` as a PNG (error correction M, as the IG suggests)."""
    import segno

    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()
