"""SMART Health Links (federation.shlink): the ``shlink:/`` payload, its checks, the
manifest files' compact JWEs (dir / A256GCM) and the QR code."""

from __future__ import annotations

import base64
import json
import struct
import sys

import pytest
from joserfc.jwe import decrypt_compact
from joserfc.jwk import OctKey

from federation import shlink
from federation.errors import LinkError

URL = "https://node.example/fhir/shl/abc123"
_DROP = object()  # a field left out of the payload


@pytest.fixture
def node_recursion_limit():
    """The recursion limit a running node has (``fhir_server.app.RECURSION_LIMIT``,
    1000): heavy imports in this test session (py_ecc, eth) raise it to 100000, under
    which a deeply nested JSON document overflows the C stack instead of raising."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def _key() -> bytes:
    return shlink.new_key()


def _link_text(payload: object) -> str:
    return shlink.PREFIX + shlink.b64url(json.dumps(payload).encode())


def _payload(**changes) -> dict:
    body = {"url": URL, "key": shlink.b64url(bytes(range(32))), "exp": 1_900_000_000, "v": 1}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not _DROP}


# --- encode / decode -------------------------------------------------------------


def test_round_trip_keeps_every_field():
    key = _key()
    link = shlink.ShareLink(URL, key, exp=1_900_000_000, flag="LP", label="My summary")
    text = link.encode()
    assert text.startswith("shlink:/")
    back = shlink.decode(text)
    assert back == link
    assert back.key == key
    assert back.needs_passcode


def test_encoded_payload_is_base64url_json_per_the_ig():
    key = _key()
    text = shlink.ShareLink(URL, key, exp=5, flag="PL", label="x").encode()
    body = text[len(shlink.PREFIX) :]
    assert "=" not in body and "+" not in body and "/" not in body
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert payload == {
        "url": URL,
        "key": base64.urlsafe_b64encode(key).rstrip(b"=").decode(),
        "exp": 5,
        "flag": "LP",  # letters in alphabetical order
        "label": "x",
        "v": 1,
    }
    assert len(payload["key"]) == 43


def test_minimal_link_omits_optional_fields():
    link = shlink.ShareLink(URL, _key())
    payload = json.loads(shlink.unb64url(link.encode()[len(shlink.PREFIX) :]))
    assert set(payload) == {"url", "key", "v"}
    back = shlink.decode(link.encode())
    assert back.exp is None and back.flag == "" and back.label is None
    assert not back.needs_passcode


def test_a_viewer_prefixed_link_decodes():
    link = shlink.ShareLink(URL, _key(), exp=10, flag="P")
    assert shlink.decode("https://viewer.example/#" + link.encode()) == link
    assert shlink.decode("  https://viewer.example/view#" + link.encode() + "\n") == link


def test_shlink_text_not_after_a_fragment_is_refused():
    text = shlink.ShareLink(URL, _key()).encode()
    with pytest.raises(LinkError):
        shlink.decode("https://viewer.example/?x=" + text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a link",
        "shlink:/",
        "shlink:/@@@@",
        "shlink:/ééé",
        "shlink:/" + shlink.b64url(b"not json"),
        "shlink:/" + shlink.b64url(b"\xff\xfe\x00"),
    ],
)
def test_not_base64url_json_is_refused(text):
    with pytest.raises(LinkError):
        shlink.decode(text)


def test_non_string_is_refused():
    with pytest.raises(LinkError):
        shlink.decode(b"shlink:/abc")  # type: ignore[arg-type]


@pytest.mark.parametrize("payload", [[1, 2], "url", 7, None, True])
def test_a_payload_that_is_not_an_object_is_refused(payload):
    with pytest.raises(LinkError, match="not a JSON object"):
        shlink.decode(_link_text(payload))


def test_text_longer_than_4096_chars_is_refused():
    text = _link_text(_payload())
    padded = "https://viewer.example/" + "a" * (4097 - len(text) - 24) + "#" + text
    assert len(padded) == 4097
    with pytest.raises(LinkError, match="4096"):
        shlink.decode(padded)
    # one character fewer (exactly 4096) is within the limit
    assert len(padded[1:]) == 4096
    assert shlink.decode(padded[1:]).url == URL


@pytest.mark.parametrize(
    "url",
    [
        "ftp://node.example/m",
        "javascript:alert(1)",
        "node.example/m",
        "HTTPS//node.example",
        "",
        None,
        42,
        ["https://node.example"],
    ],
)
def test_url_must_be_http_or_https(url):
    with pytest.raises(LinkError, match="url"):
        shlink.decode(_link_text(_payload(url=url)))


def test_http_url_is_accepted():
    assert shlink.decode(_link_text(_payload(url="http://127.0.0.1/m"))).url == (
        "http://127.0.0.1/m"
    )


def test_missing_url_is_refused():
    with pytest.raises(LinkError, match="url"):
        shlink.decode(_link_text(_payload(url=_DROP)))


def test_url_of_128_chars_passes_and_129_fails():
    base = "https://node.example/"
    ok = base + "a" * (128 - len(base))
    assert len(ok) == 128
    assert shlink.decode(_link_text(_payload(url=ok))).url == ok
    with pytest.raises(LinkError, match="128"):
        shlink.decode(_link_text(_payload(url=ok + "a")))


@pytest.mark.parametrize(
    "key",
    [
        shlink.b64url(bytes(31)),
        shlink.b64url(bytes(33)),
        shlink.b64url(bytes(16)),
        "",
        base64.urlsafe_b64encode(bytes(32)).decode(),  # padded: 44 characters
        shlink.b64url(bytes(32)) + "=",
        None,
        12345,
        "é" * 43,
    ],
)
def test_key_must_be_43_base64url_chars_of_32_bytes(key):
    with pytest.raises(LinkError, match="key"):
        shlink.decode(_link_text(_payload(key=key)))


@pytest.mark.parametrize("exp", [-1, True, False, "1900000000", 1.5, [1]])
def test_exp_must_be_non_negative_integer_seconds(exp):
    with pytest.raises(LinkError, match="exp"):
        shlink.decode(_link_text(_payload(exp=exp)))


@pytest.mark.parametrize("exp", [0, 1, 4_102_444_800])
def test_exp_integer_accepted(exp):
    assert shlink.decode(_link_text(_payload(exp=exp))).exp == exp


@pytest.mark.parametrize("flag", ["X", "LPX", "p", "l", " ", 1, ["P"]])
def test_flag_letters_outside_l_p_u_are_refused(flag):
    with pytest.raises(LinkError, match="flag"):
        shlink.decode(_link_text(_payload(flag=flag)))


@pytest.mark.parametrize("flag", ["", "L", "P", "U", "LP", "LU"])
def test_valid_flags_are_accepted(flag):
    link = shlink.decode(_link_text(_payload(flag=flag)))
    assert link.flag == flag
    assert link.needs_passcode == ("P" in flag)


@pytest.mark.parametrize("flag", ["UP", "PU", "LPU"])
def test_u_and_p_together_are_refused(flag):
    with pytest.raises(LinkError, match="both the U and P"):
        shlink.decode(_link_text(_payload(flag=flag)))


def test_label_of_80_chars_passes_and_81_fails():
    assert shlink.decode(_link_text(_payload(label="x" * 80))).label == "x" * 80
    with pytest.raises(LinkError, match="label"):
        shlink.decode(_link_text(_payload(label="x" * 81)))
    with pytest.raises(LinkError, match="label"):
        shlink.decode(_link_text(_payload(label=7)))


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_version_other_than_1_is_refused(version):
    with pytest.raises(LinkError, match="version"):
        shlink.decode(_link_text(_payload(v=version)))


def test_missing_version_means_1():
    assert shlink.decode(_link_text(_payload(v=_DROP))).v == 1


def test_deeply_nested_payload_is_a_link_error(node_recursion_limit):
    with pytest.raises(LinkError):
        shlink.decode(shlink.PREFIX + shlink.b64url(b"[" * 3000))


# --- JWE files ---------------------------------------------------------------


def _protected_header(token: str) -> dict:
    first = token.split(".", maxsplit=1)[0]
    return json.loads(base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)))


def test_jwe_header_is_dir_a256gcm_with_content_type():
    key = _key()
    token = shlink.encrypt(key, b'{"resourceType":"Bundle"}', "application/fhir+json")
    assert token.count(".") == 4
    parts = token.split(".")
    assert parts[1] == ""  # dir: no encrypted key
    assert _protected_header(token) == {
        "alg": "dir",
        "enc": "A256GCM",
        "cty": "application/fhir+json",
    }
    # independently decryptable with joserfc and the raw key
    found = decrypt_compact(token, OctKey.import_key(key), algorithms=["dir", "A256GCM"])
    assert found.plaintext == b'{"resourceType":"Bundle"}'


def test_jwe_round_trip():
    key = _key()
    plaintext = b"\x00binary\xffbytes" * 50
    assert shlink.decrypt(key, shlink.encrypt(key, plaintext, "application/octet-stream")) == (
        plaintext
    )


def test_empty_plaintext_round_trip():
    key = _key()
    assert shlink.decrypt(key, shlink.encrypt(key, b"", "text/plain")) == b""


def test_each_encryption_uses_a_fresh_iv():
    key = _key()
    a = shlink.encrypt(key, b"same plaintext", "text/plain")
    b = shlink.encrypt(key, b"same plaintext", "text/plain")
    assert a != b
    assert a.split(".")[2] != b.split(".")[2]  # the IVs differ
    assert shlink.decrypt(key, a) == shlink.decrypt(key, b) == b"same plaintext"


def test_wrong_key_is_a_link_error():
    token = shlink.encrypt(_key(), b"secret", "text/plain")
    with pytest.raises(LinkError, match="does not decrypt"):
        shlink.decrypt(_key(), token)


def test_a_short_key_is_a_link_error():
    token = shlink.encrypt(_key(), b"secret", "text/plain")
    with pytest.raises(LinkError):
        shlink.decrypt(bytes(16), token)


def test_a_tampered_ciphertext_is_a_link_error():
    key = _key()
    parts = shlink.encrypt(key, b"secret data here", "text/plain").split(".")
    raw = bytearray(shlink.unb64url(parts[3]))
    raw[0] ^= 1
    parts[3] = shlink.b64url(bytes(raw))
    with pytest.raises(LinkError):
        shlink.decrypt(key, ".".join(parts))


@pytest.mark.parametrize(
    "token",
    ["", "not a jwe", "a.b.c", "a.b.c.d.e", "....", "a.b.c.d.e.f", None, b"a.b.c.d.e"],
)
def test_non_jwe_is_a_link_error(token):
    with pytest.raises(LinkError):
        shlink.decrypt(_key(), token)


def test_a_jws_is_not_a_manifest_file():
    from joserfc import jws

    key = _key()
    signed = jws.serialize_compact({"alg": "HS256"}, b"payload", OctKey.import_key(key))
    with pytest.raises(LinkError):
        shlink.decrypt(key, signed)


# --- QR code -----------------------------------------------------------------


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def test_qr_png_is_a_png_that_grows_with_scale():
    text = shlink.ShareLink(URL, _key(), exp=1, flag="P", label="Summary").encode()
    small = shlink.qr_png(text, scale=2)
    large = shlink.qr_png(text, scale=6)
    for png in (small, large):
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert png.endswith(b"IEND\xaeB`\x82")
    width_small, height_small = _png_size(small)
    width_large, height_large = _png_size(large)
    assert width_small == height_small and width_large == height_large
    assert width_large == width_small * 3


def test_qr_png_of_a_longer_link_is_larger():
    short = shlink.qr_png("shlink:/" + "A" * 20, scale=1)
    long_ = shlink.qr_png("shlink:/" + "A" * 400, scale=1)
    assert _png_size(long_)[0] > _png_size(short)[0]


def test_a_large_file_round_trips():
    """A patient's summary of a few hundred records is far beyond joserfc's 64 KiB
    default; it must still decrypt."""
    key = shlink.new_key()
    payload = b'{"entry": "' + b"x" * 700_000 + b'"}'
    assert shlink.decrypt(key, shlink.encrypt(key, payload, "application/fhir+json")) == payload
