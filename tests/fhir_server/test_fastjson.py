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
