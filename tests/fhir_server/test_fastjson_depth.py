"""fhir_server.fastjson.parse bounds nesting on the raw text, before the recursive
parser runs (issue #14: 100,000 ``[`` overflowed the C stack once web3 had raised
the recursion limit to 100,000, and the gunicorn worker died of SIGSEGV)."""

from __future__ import annotations

import json
import sys

import pytest

from fhir_server import fastjson
from fhir_server.errors import BadRequest

DEEP = 100_000


@pytest.fixture
def web3_recursion_limit():
    """The limit py_ecc sets on import: json.loads no longer stops before the C stack."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    yield
    sys.setrecursionlimit(before)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * DEEP + b"]" * DEEP,
        b'{"a":' * DEEP + b"1" + b"}" * DEEP,
        b"[" * DEEP,  # never closed: refused before the parser descends
        b'{"resourceType": "Patient", "x": ' + b"[" * DEEP,
        ("[" * DEEP + "]" * DEEP).encode("utf-16"),
        "[" * DEEP + "]" * DEEP,  # a str
    ],
    ids=["arrays", "objects", "unclosed", "unclosed-in-object", "utf-16", "str"],
)
def test_deep_nesting_is_refused_before_parsing(web3_recursion_limit, body):
    with pytest.raises(fastjson.NestingTooDeep, match="nested"):
        fastjson.parse(body)


def test_the_limit_counts_arrays_and_objects():
    limit = fastjson.MAX_DEPTH
    assert fastjson.parse(b"[" * limit + b"]" * limit) is not None
    with pytest.raises(fastjson.NestingTooDeep):
        fastjson.parse(b"[" * (limit + 1) + b"]" * (limit + 1))
    mixed = b'{"a": [{"b": [[]]}]}'  # 5 levels
    assert fastjson.parse(mixed, max_depth=5) == json.loads(mixed)
    with pytest.raises(fastjson.NestingTooDeep):
        fastjson.parse(mixed, max_depth=4)
    wide = b"[" + b",".join([b"[[1]]"] * 1000) + b"]"  # 3 levels, many siblings
    assert fastjson.parse(wide, max_depth=3) == json.loads(wide)


@pytest.mark.parametrize(
    "text",
    [
        '{"div": "' + "[" * 500 + '"}',
        '{"a": "\\"[[[[", "b": [1]}',  # an escaped quote does not end the string
        '{"a": "x\\\\", "b": "[[[["}',  # an escaped backslash does not escape the quote
        '{"a": "\\\\\\"[[[", "b": {"c": "]]]}"}}',
        '{"a": "\\u005b\\n\\t\\/[", "b": []}',
        '{"a": ["", "", "[", ""], "b": ""}',
        '{"text": "≛⊛∛ 陳 [ { \\" }"}',
    ],
)
def test_brackets_inside_strings_do_not_count(text):
    for body in (text, text.encode(), text.encode("utf-16"), text.encode("utf-32")):
        assert fastjson.parse(body, max_depth=2) == json.loads(text)


@pytest.mark.parametrize(
    "body",
    [b'{"a": [1, 2}', b"[1]]", b"]", b'{"a": "unterminated', b'["\\', b"[[[[[[ 1"],
)
def test_malformed_json_is_still_the_parsers_error(body):
    with pytest.raises(ValueError) as error:
        fastjson.parse(body)
    assert not isinstance(error.value, fastjson.NestingTooDeep)


def test_phrx_load_refuses_a_deep_file(tmp_path, web3_recursion_limit):
    from fhir_server.loader import read_bundle

    path = tmp_path / "deep.json"
    path.write_bytes(b'{"resourceType": "Bundle", "entry": ' + b"[" * DEEP + b"]" * DEEP + b"}")
    with pytest.raises(BadRequest, match="nested"):
        read_bundle(path)
