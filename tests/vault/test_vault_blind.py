"""Blind index: deterministic, 16 bytes, domain-separated, keyed."""

import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vault.blind import BlindIndex
from vault.keyring import KeyRing, MemoryDataKeyStore

BI = BlindIndex(b"k" * 32)


def test_deterministic_and_16_bytes():
    d = BI.digest("Patient.identifier", "urn:oid:1.2|123")
    assert len(d) == 16
    assert d == BlindIndex(b"k" * 32).digest("Patient.identifier", "urn:oid:1.2|123")


def test_domain_separated():
    assert BI.digest("Patient.identifier", "123") != BI.digest("Patient.telecom", "123")


def test_domain_value_boundary_unambiguous():
    assert BI.digest("ab", "c") != BI.digest("a", "bc")


@given(a=st.tuples(st.text(min_size=1), st.text()), b=st.tuples(st.text(min_size=1), st.text()))
def test_distinct_inputs_distinct_digests(a, b):
    assert (BI.digest(*a) == BI.digest(*b)) == (a == b)


def test_key_matters_and_keyring_derives_per_master_key():
    bi1 = KeyRing(b"\x01" * 32, MemoryDataKeyStore()).blind_index()
    bi1_again = KeyRing(b"\x01" * 32, MemoryDataKeyStore()).blind_index()
    bi2 = KeyRing(b"\x02" * 32, MemoryDataKeyStore()).blind_index()
    assert bi1.digest("d", "v") == bi1_again.digest("d", "v")
    assert bi1.digest("d", "v") != bi2.digest("d", "v")
    # The index key is derived, not the raw master key.
    assert bi1.digest("d", "v") != BlindIndex(b"\x01" * 32).digest("d", "v")


def test_rejects_bad_key_and_empty_domain():
    with pytest.raises(ValueError):
        BlindIndex(b"short")
    with pytest.raises(ValueError):
        BI.digest("", "x")


def test_repr_hides_key():
    assert "kkkk" not in repr(BI)


def test_digest_format_is_stable_across_the_domain_prefix_cache():
    # Stored index rows must keep matching: the digest is HMAC-SHA256 over
    # len32-prefixed (tag, domain, value), whatever the cache holds.
    def expected(domain: str, value: str) -> bytes:
        parts = (b"phrx/blind/v1", domain.encode(), value.encode())
        msg = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
        return hmac.digest(b"k" * 32, msg, "sha256")[:16]

    index = BlindIndex(b"k" * 32)
    for _ in range(2):  # first call fills the cache, the second uses it
        assert index.digest("Patient.name/p", "chén") == expected("Patient.name/p", "chén")
        assert index.digest("Observation.code/sc", "") == expected("Observation.code/sc", "")
