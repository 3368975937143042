"""fhir_server.fastjson: orjson's speed, the standard library's acceptance."""

import json

from fhir_server import fastjson


def test_same_compact_utf8_as_the_standard_library():
    value = {"resourceType": "Patient", "name": [{"family": "陳"}], "x": 1.5, "b": True}
    data = fastjson.dumps(value)
    assert data == json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert json.loads(data) == value


def test_integers_beyond_64_bits_keep_every_digit():
    value = json.loads('{"valueDecimal": 123456789012345678901234567890}')
    assert json.loads(fastjson.dumps(value)) == value


def test_parse_is_the_standard_librarys_json_without_non_numbers():
    import pytest

    body = b'{"resourceType": "Observation", "valueQuantity": {"value": 1.5}, "n": [1, 1.0, true]}'
    assert fastjson.parse(body) == json.loads(body)
    assert [type(v) for v in fastjson.parse(body)["n"]] == [int, float, bool]
    # beyond 64 bits: every digit kept (orjson alone would make it a float)
    big = fastjson.parse(b'{"valueDecimal": 123456789012345678901234567890}')
    assert big["valueDecimal"] == 123456789012345678901234567890
    # not UTF-8: the standard parser reads it as before
    assert fastjson.parse('{"a": "é"}'.encode("utf-16")) == {"a": "é"}
    for bad in (
        b'{"v": NaN}',
        b'{"v": -Infinity}',
        b'{"v": 1e400}',
        b'{"v": 1e400, "x": "12345678901234567890"}',
    ):
        with pytest.raises(ValueError):
            fastjson.parse(bad)
