"""Envelope encryption: roundtrip, tamper detection and AAD binding."""

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vault.envelope import NONCE_LEN, TAG_LEN, VERSION, open_sealed, record_aad, seal
from vault.errors import IntegrityError

KEY = bytes(range(32))
AAD = record_aad("Observation", "obs-1", 3, "patient:p1")
ident = st.text(min_size=1, max_size=20)


@given(plaintext=st.binary(max_size=2048), key=st.binary(min_size=32, max_size=32))
def test_roundtrip(plaintext, key):
    blob = seal(key, plaintext, AAD)
    assert open_sealed(key, blob, AAD) == plaintext


def test_format_and_fresh_nonce():
    blob1, blob2 = seal(KEY, b"x" * 100, AAD), seal(KEY, b"x" * 100, AAD)
    assert blob1[0] == VERSION
    assert len(blob1) == 1 + NONCE_LEN + 100 + TAG_LEN
    assert b"x" * 10 not in blob1  # ciphertext, not plaintext
    assert blob1[1 : 1 + NONCE_LEN] != blob2[1 : 1 + NONCE_LEN]


def test_accepts_memoryview_from_db_driver():
    blob = seal(KEY, b"hello", AAD)
    assert open_sealed(KEY, memoryview(blob), AAD) == b"hello"


@given(data=st.data())
def test_any_flipped_byte_fails(data):
    blob = bytearray(seal(KEY, b'{"resourceType":"Observation"}', AAD))
    pos = data.draw(st.integers(0, len(blob) - 1))
    blob[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises(IntegrityError):
        open_sealed(KEY, bytes(blob), AAD)


@given(data=st.data())
def test_any_truncation_fails(data):
    blob = seal(KEY, b"some resource", AAD)
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(IntegrityError):
        open_sealed(KEY, blob[:cut], AAD)


def test_unknown_version_fails_even_if_rest_is_valid():
    blob = seal(KEY, b"x", AAD)
    with pytest.raises(IntegrityError):
        open_sealed(KEY, bytes([VERSION + 1]) + blob[1:], AAD)


@pytest.mark.parametrize(
    "other",
    [
        record_aad("Observation", "obs-2", 3, "patient:p1"),  # other id
        record_aad("Observation", "obs-1", 4, "patient:p1"),  # other version
        record_aad("Observation", "obs-1", 3, "patient:p2"),  # other patient scope
        record_aad("Condition", "obs-1", 3, "patient:p1"),  # other type
        record_aad("Observation", "obs-1", 3, "node"),
    ],
)
def test_swapped_row_fails(other):
    blob = seal(KEY, b"x", AAD)
    with pytest.raises(IntegrityError):
        open_sealed(KEY, blob, other)


def test_wrong_data_key_fails():
    blob = seal(KEY, b"x", AAD)
    with pytest.raises(IntegrityError):
        open_sealed(os.urandom(32), blob, AAD)


def test_bad_key_length_is_a_programming_error():
    with pytest.raises(ValueError):
        seal(b"short", b"x", AAD)


def test_version_id_int_and_str_are_the_same_version():
    assert record_aad("Patient", "a", 1, "node") == record_aad("Patient", "a", "1", "node")


def test_record_aad_rejects_bad_fields():
    with pytest.raises(TypeError):
        record_aad("Patient", "a", True, "node")
    with pytest.raises(ValueError):
        record_aad("Patient", "", 1, "node")


@given(a=st.tuples(ident, ident, ident, ident), b=st.tuples(ident, ident, ident, ident))
def test_record_aad_is_injective(a, b):
    # Length prefixing: ("ab","c",..) and ("a","bc",..) must not collide.
    assert (record_aad(*a) == record_aad(*b)) == (a == b)


def test_record_aad_not_naive_concatenation():
    assert record_aad("ab", "c", 1, "node") != record_aad("a", "bc", 1, "node")
