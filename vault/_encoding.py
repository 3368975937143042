"""Small encoding helpers shared by the vault modules (internal)."""

import base64
import re
import struct

from vault.errors import VaultError

_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def length_prefixed(*parts: bytes) -> bytes:
    """Encode parts as ``len32 || bytes`` each.

    Naive concatenation is ambiguous ("ab"+"c" == "a"+"bc"); a length prefix
    makes every distinct tuple map to a distinct byte string.
    """
    out = bytearray()
    for part in parts:
        out += struct.pack(">I", len(part))
        out += part
    return bytes(out)


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 style)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, what: str) -> bytes:
    """Strict base64url decode; padding optional.

    The stdlib decoder silently skips invalid characters, which would turn a
    typo into a different key, so the alphabet is checked first.  ``what``
    names the field in the error message (the value itself is never echoed).
    """
    text = text.strip()
    if not _B64URL.fullmatch(text):
        raise VaultError(f"{what} is not valid base64url")
    try:
        return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except ValueError:
        raise VaultError(f"{what} is not valid base64url") from None
