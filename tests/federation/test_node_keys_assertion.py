"""The node's federation keys (federation.node_keys) and the client assertions it
signs with them (federation.assertion): files and modes, reload and rotation, the
public halves, the JWT's claims, client ids and the actor claim's shape."""

from __future__ import annotations

import json
import stat
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import ECKey

from federation import assertion, node_keys

TOKEN_URL = "https://jp.example/fhir/auth/token"


@pytest.fixture
def keys(tmp_path):
    return node_keys.load_or_create(tmp_path)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- node keys ---------------------------------------------------------------------


def test_load_or_create_writes_private_files(tmp_path):
    made = node_keys.load_or_create(tmp_path)
    keys_dir = tmp_path / "keys"
    signing, encryption = keys_dir / "node-signing.jwk", keys_dir / "node-encryption.key"
    assert _mode(keys_dir) == 0o700
    assert _mode(signing) == 0o600
    assert _mode(encryption) == 0o600
    private = json.loads(signing.read_text())
    assert private["kty"] == "EC" and private["crv"] == "P-384" and "d" in private
    raw = bytes.fromhex(encryption.read_text().strip())
    assert len(raw) == 32
    assert isinstance(made.encryption, x25519.X25519PrivateKey)
    assert list(keys_dir.glob("*.tmp")) == []


def test_second_call_loads_the_same_keys(tmp_path):
    first = node_keys.load_or_create(tmp_path)
    before = (tmp_path / "keys" / "node-signing.jwk").read_text()
    second = node_keys.load_or_create(tmp_path)
    assert second.kid == first.kid
    assert second.encryption_public_bytes() == first.encryption_public_bytes()
    assert (tmp_path / "keys" / "node-signing.jwk").read_text() == before


def test_rotate_gives_new_keys(tmp_path):
    first = node_keys.load_or_create(tmp_path)
    rotated = node_keys.rotate(tmp_path)
    assert rotated.kid != first.kid
    assert rotated.encryption_public_bytes() != first.encryption_public_bytes()
    reloaded = node_keys.load_or_create(tmp_path)
    assert reloaded.kid == rotated.kid
    assert _mode(tmp_path / "keys" / "node-signing.jwk") == 0o600
    assert _mode(tmp_path / "keys" / "node-encryption.key") == 0o600


def test_rotate_without_existing_keys_creates_them(tmp_path):
    made = node_keys.rotate(tmp_path)
    assert node_keys.load_or_create(tmp_path).kid == made.kid


def test_public_signing_jwk_is_public(keys):
    public = keys.public_signing_jwk()
    assert "d" not in public
    assert public["kty"] == "EC"
    assert public["crv"] == "P-384"
    assert public["kid"] == keys.kid
    assert public["alg"] == "ES384"
    assert public["use"] == "sig"
    assert set(public) >= {"x", "y"}
    assert ECKey.import_key(public).thumbprint() == keys.kid


def test_kid_is_the_rfc7638_thumbprint(keys):
    assert keys.kid == keys.signing.thumbprint()
    assert len(keys.kid) == 43  # base64url of a SHA-256


def test_encryption_public_bytes_are_the_x25519_public_key(keys):
    public = keys.encryption_public_bytes()
    assert isinstance(public, bytes) and len(public) == 32
    # a peer wrapping for this key reaches the same shared secret as the node
    peer = x25519.X25519PrivateKey.generate()
    shared_peer = peer.exchange(x25519.X25519PublicKey.from_public_bytes(public))
    assert keys.encryption.exchange(peer.public_key()) == shared_peer


# --- assertions --------------------------------------------------------------------


def _verify(token: str, public_jwk: dict) -> jwt.Token:
    return jwt.decode(token, ECKey.import_key(public_jwk), algorithms=["ES384"])


def test_sign_makes_a_verifiable_client_assertion(keys):
    before = int(time.time())
    token = assertion.sign(keys, "TW", TOKEN_URL)
    after = int(time.time())
    decoded = _verify(token, keys.public_signing_jwk())
    assert decoded.header["alg"] == "ES384"
    assert decoded.header["kid"] == keys.kid
    assert decoded.header["typ"] == "JWT"
    claims = decoded.claims
    assert claims["iss"] == claims["sub"] == "node.TW"
    assert claims["aud"] == TOKEN_URL
    assert before <= claims["iat"] <= after
    assert claims["exp"] - claims["iat"] == 240
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert "phrx_actor" not in claims


def test_country_is_upper_cased_in_the_client_id(keys):
    claims = _verify(assertion.sign(keys, "tw", TOKEN_URL), keys.public_signing_jwk()).claims
    assert claims["iss"] == claims["sub"] == "node.TW"


def test_each_assertion_has_its_own_jti(keys):
    public = keys.public_signing_jwk()
    first = _verify(assertion.sign(keys, "TW", TOKEN_URL), public).claims
    second = _verify(assertion.sign(keys, "TW", TOKEN_URL), public).claims
    assert first["jti"] != second["jti"]


def test_actor_claim_is_carried(keys):
    actor = assertion.actor_claim(
        [("https://tw.example/license", "A123"), ("urn:oid:1.2.3", "9")],
        reference="Practitioner/7",
        display="Dr. Lin",
        purpose="TREAT",
        consent="Consent/3",
    )
    token = assertion.sign(keys, "TW", TOKEN_URL, actor=actor)
    claims = _verify(token, keys.public_signing_jwk()).claims
    assert claims["phrx_actor"] == {
        "identifiers": [["https://tw.example/license", "A123"], ["urn:oid:1.2.3", "9"]],
        "reference": "Practitioner/7",
        "display": "Dr. Lin",
        "purpose": "TREAT",
        "consent": "Consent/3",
    }
    assert assertion.parse_actor(claims["phrx_actor"]) == claims["phrx_actor"]


def test_an_assertion_does_not_verify_under_another_nodes_key(keys, tmp_path):
    other = node_keys.load_or_create(tmp_path / "other")
    token = assertion.sign(keys, "TW", TOKEN_URL)
    with pytest.raises(BadSignatureError):
        _verify(token, other.public_signing_jwk())


def test_an_assertion_does_not_verify_after_rotation(tmp_path):
    old = node_keys.load_or_create(tmp_path)
    token = assertion.sign(old, "TW", TOKEN_URL)
    new = node_keys.rotate(tmp_path)
    with pytest.raises(BadSignatureError):
        _verify(token, new.public_signing_jwk())


def test_country_of_a_client_id():
    assert assertion.country_of("node.TW") == "TW"
    assert assertion.country_of(assertion.client_id("jp")) == "JP"


@pytest.mark.parametrize(
    "client",
    [
        "node.tw",
        "node.TWN",
        "node.T",
        "node.",
        "app",
        None,
        "NODE.TW",
        "xnode.TW",
        "node.T1",
        "node.ÄB",
        42,
    ],
)
def test_country_of_anything_else_is_none(client):
    assert assertion.country_of(client) is None


# --- parse_actor -------------------------------------------------------------------


def test_parse_actor_accepts_a_valid_claim():
    claim = {"identifiers": [["sys", "val"]], "purpose": "TREAT", "consent": "Consent/1"}
    assert assertion.parse_actor(claim) == claim


def test_parse_actor_drops_unknown_members():
    claim = {"identifiers": [["sys", "val"]], "role": "admin", "purpose": None}
    assert assertion.parse_actor(claim) == {"identifiers": [["sys", "val"]]}


def test_parse_actor_accepts_ten_identifiers_and_256_chars():
    claim = {
        "identifiers": [[f"s{i}", "v" * 256] for i in range(10)],
        "display": "d" * 256,
    }
    assert assertion.parse_actor(claim) == claim


@pytest.mark.parametrize(
    "claim",
    [
        None,
        "actor",
        [["sys", "val"]],
        42,
        {},
        {"identifiers": []},
        {"identifiers": None},
        {"identifiers": "sys|val"},
        {"identifiers": [["s", "v"]] * 11},
        {"identifiers": [["sys"]]},
        {"identifiers": [["sys", "val", "extra"]]},
        {"identifiers": [("sys", "val")]},
        {"identifiers": ["sys|val"]},
        {"identifiers": [["", "val"]]},
        {"identifiers": [["sys", ""]]},
        {"identifiers": [["sys", 1]]},
        {"identifiers": [[None, "val"]]},
        {"identifiers": [["s" * 257, "val"]]},
        {"identifiers": [["sys", "v" * 257]]},
        {"identifiers": [["sys", "val"]], "purpose": 1},
        {"identifiers": [["sys", "val"]], "purpose": ["TREAT"]},
        {"identifiers": [["sys", "val"]], "purpose": ""},
        {"identifiers": [["sys", "val"]], "display": "d" * 257},
        {"identifiers": [["sys", "val"]], "reference": {"reference": "Practitioner/1"}},
        {"identifiers": [["sys", "val"]], "consent": True},
    ],
)
def test_parse_actor_refuses_malformed_claims(claim):
    assert assertion.parse_actor(claim) is None
