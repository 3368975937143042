"""The trust list (federation.trust): nodes by country and by URL, unusable signing
JWKs, the ttl cache and an unreachable chain."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import pytest

from federation.errors import NodeUnavailable, UntrustedNode
from federation.trust import TrustedNode, TrustList

EC_JWK = {"kty": "EC", "crv": "P-384", "x": "AAAA", "y": "BBBB"}
RSA_JWK = {"kty": "RSA", "n": "AQAB", "e": "AQAB"}


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


@dataclass
class Authority:
    country: str
    address: str
    fhir_base_url: str
    signing_jwk: str
    encryption_key: bytes = b""


TW = Authority("TW", "0xTW", "http://127.0.0.2:8080/fhir", json.dumps(EC_JWK), b"k" * 32)
JP = Authority("JP", "0xJP", "https://jp.example/r4/", json.dumps(RSA_JWK), b"")
DE = Authority("DE", "0xDE", "https://de.example", json.dumps(EC_JWK))


class Chain:
    """A chain's AuthorityRegistry: counts how often it is read."""

    def __init__(self, authorities, error: Exception | None = None):
        self.authorities = list(authorities)
        self.error = error
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return list(self.authorities)


def _trust(*authorities, ttl=60.0):
    chain = Chain(authorities or (TW, JP, DE))
    return TrustList(chain, ttl=ttl), chain


# --- by country ------------------------------------------------------------------


@pytest.mark.parametrize("asked", ["TW", "tw", "Tw"])
def test_by_country_is_case_insensitive(asked):
    trust, _ = _trust()
    node = trust.by_country(asked)
    assert isinstance(node, TrustedNode)
    assert node.country == "TW"
    assert node.address == "0xTW"
    assert node.fhir_base_url == "http://127.0.0.2:8080/fhir"
    assert node.signing_jwk == EC_JWK
    assert node.encryption_key == b"k" * 32
    assert node.client_id == "node.TW"


def test_each_country_finds_its_own_node():
    trust, _ = _trust()
    assert trust.by_country("jp").address == "0xJP"
    assert trust.by_country("DE").address == "0xDE"


@pytest.mark.parametrize("country", ["FR", "", None, "TWN", "T"])
def test_unknown_country_is_untrusted(country):
    trust, _ = _trust()
    with pytest.raises(UntrustedNode):
        trust.by_country(country)


# --- by URL ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:8080/fhir",
        "http://127.0.0.2:8080/fhir/",
        "http://127.0.0.2:8080/fhir/shl/abc",
        "http://127.0.0.2:8080/fhir/Patient/1/$everything?x=1",
        "HTTP://127.0.0.2:8080/fhir/metadata",
    ],
)
def test_for_url_finds_the_node_owning_the_url(url):
    trust, _ = _trust()
    assert trust.for_url(url).country == "TW"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:8080/fhirx/shl/abc",  # a sibling path, not under the base
        "http://127.0.0.2:8080/fhi",
        "http://127.0.0.2:8080/",
        "http://127.0.0.2:8080/other/fhir/shl/abc",
        "https://127.0.0.2:8080/fhir/shl/abc",  # another scheme
        "http://127.0.0.2:8081/fhir/shl/abc",  # another port
        "http://127.0.0.2/fhir/shl/abc",  # no port
        "http://127.0.0.3:8080/fhir/shl/abc",  # another host
        "http://evil.example/fhir",
        "http://evil.example/fhir/shl/abc",
        "http://127.0.0.2:8080@evil.example/fhir/shl/abc",  # userinfo trick
        "http://user@127.0.0.2:8080/fhir/shl/abc",
        "ftp://127.0.0.2:8080/fhir/shl/abc",
        "/fhir/shl/abc",
        "",
    ],
)
def test_for_url_refuses_urls_outside_every_base(url):
    trust, _ = _trust()
    with pytest.raises(UntrustedNode):
        trust.for_url(url)


def test_for_url_with_a_trailing_slash_base():
    trust, _ = _trust()
    assert trust.for_url("https://jp.example/r4/Patient/9").country == "JP"
    assert trust.for_url("https://jp.example/r4").country == "JP"
    with pytest.raises(UntrustedNode):
        trust.for_url("https://jp.example/r45/Patient/9")


def test_for_url_with_a_base_without_path_owns_the_whole_host():
    trust, _ = _trust()
    assert trust.for_url("https://de.example/anything/at/all").country == "DE"
    assert trust.for_url("https://DE.example/x").country == "DE"
    with pytest.raises(UntrustedNode):
        trust.for_url("https://de.example.evil.test/x")


# --- signing JWKs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "{",
        "[1, 2]",
        '"EC"',
        "null",
        "{}",
        json.dumps({"kty": "oct", "k": "AAAA"}),
        json.dumps({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
        json.dumps({"kty": "ec"}),
        json.dumps({"crv": "P-384"}),
    ],
)
def test_unusable_signing_jwk_is_none_and_the_node_still_listed(text):
    bad = Authority("FR", "0xFR", "https://fr.example/fhir", text)
    trust, _ = _trust(TW, bad)
    node = trust.by_country("FR")
    assert node.signing_jwk is None
    assert node.fhir_base_url == "https://fr.example/fhir"
    assert trust.by_country("TW").signing_jwk == EC_JWK


@pytest.mark.parametrize("jwk", [EC_JWK, RSA_JWK])
def test_ec_and_rsa_jwks_are_kept_as_dicts(jwk):
    trust, _ = _trust(Authority("FR", "0xFR", "https://fr.example", json.dumps(jwk)))
    assert trust.by_country("FR").signing_jwk == jwk


def test_a_deeply_nested_signing_jwk_is_unusable_not_fatal(node_recursion_limit):
    bad = Authority("FR", "0xFR", "https://fr.example", "[" * 100_000)
    trust, _ = _trust(TW, bad)
    assert trust.by_country("TW").signing_jwk == EC_JWK
    assert trust.by_country("FR").signing_jwk is None


# --- cache and chain failures -------------------------------------------------------


def test_the_list_is_cached_within_ttl():
    trust, chain = _trust(ttl=3600)
    trust.by_country("TW")
    trust.by_country("JP")
    trust.for_url("https://de.example/x")
    trust.nodes()
    assert chain.calls == 1


def test_the_cache_hides_changes_until_fresh():
    trust, chain = _trust(TW, ttl=3600)
    assert trust.by_country("TW").address == "0xTW"
    chain.authorities = [Authority("TW", "0xNEW", TW.fhir_base_url, TW.signing_jwk)]
    assert trust.by_country("TW").address == "0xTW"  # cached
    assert chain.calls == 1
    assert trust.by_country("TW", fresh=True).address == "0xNEW"
    assert chain.calls == 2
    assert trust.by_country("TW").address == "0xNEW"  # the fresh read is cached too
    assert chain.calls == 2


def test_a_node_voted_out_is_untrusted_after_a_fresh_read():
    trust, chain = _trust(TW, JP, ttl=3600)
    assert trust.by_country("JP").country == "JP"
    chain.authorities = [TW]
    with pytest.raises(UntrustedNode):
        trust.by_country("JP", fresh=True)
    with pytest.raises(UntrustedNode):
        trust.for_url("https://jp.example/r4/Patient/1")


def test_the_list_is_reread_after_ttl():
    trust, chain = _trust(ttl=0)
    trust.nodes()
    trust.nodes()
    trust.by_country("TW")
    assert chain.calls == 3


def test_an_unreachable_chain_is_node_unavailable():
    chain = Chain([TW], error=ConnectionError("rpc down"))
    trust = TrustList(chain, ttl=3600)
    with pytest.raises(NodeUnavailable, match="rpc down"):
        trust.nodes()
    with pytest.raises(NodeUnavailable):
        trust.by_country("TW")
    with pytest.raises(NodeUnavailable):
        trust.for_url("http://127.0.0.2:8080/fhir/x")


def test_a_failed_fresh_read_is_node_unavailable_even_with_a_cache():
    trust, chain = _trust(TW, ttl=3600)
    assert trust.by_country("TW").country == "TW"
    chain.error = RuntimeError("chain gone")
    assert trust.by_country("TW").country == "TW"  # within ttl: from the cache
    with pytest.raises(NodeUnavailable):
        trust.by_country("TW", fresh=True)


def test_an_empty_registry_trusts_no_one():
    trust = TrustList(Chain([]), ttl=3600)
    assert trust.nodes() == []
    with pytest.raises(UntrustedNode):
        trust.by_country("TW")
    with pytest.raises(UntrustedNode):
        trust.for_url("http://127.0.0.2:8080/fhir")
