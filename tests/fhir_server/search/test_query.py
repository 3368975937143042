"""Parsing: result parameters, strict/lenient handling, malformed values."""

from __future__ import annotations

import pytest

from fhir_server.errors import BadRequest
from fhir_server.search.query import parse_search
from fhir_server.search.query_values import DateValue, NumberValue, TokenValue


def test_result_parameters():
    req = parse_search(
        "Observation",
        [
            ("_count", "5000"),
            ("_offset", "20"),
            ("_total", "accurate"),
            ("_summary", "count"),
            ("_elements", "id,code"),
            ("_sort", "-date,_id"),
            ("_include", "Observation:patient"),
            ("_include", "Observation:subject:Patient"),
            ("_format", "json"),
        ],
        strict=True,
    )
    assert req.count == 1000
    assert req.offset == 20
    assert req.total == "accurate"
    assert req.summary == "count"
    assert req.elements == ["id", "code"]
    assert req.sort == [("date", True), ("_id", False)]
    assert req.include == [("Observation", "patient", None), ("Observation", "subject", "Patient")]
    assert req.criteria == []
    rev = parse_search("Patient", [("_revinclude", "Observation:subject")], strict=True)
    assert rev.revinclude == [("Observation", "subject", None)]


def test_values_and_or_and():
    req = parse_search(
        "Observation",
        [("code", "http://loinc.org|8302-2,|x,sys|"), ("code", "a\\,b"), ("date", "ge2020")],
        strict=True,
    )
    assert len(req.criteria) == 3
    assert req.criteria[0].values == [
        TokenValue("http://loinc.org", "8302-2"),
        TokenValue("", "x"),
        TokenValue("sys", None),
    ]
    assert req.criteria[1].values == [TokenValue(None, "a,b")]
    d = req.criteria[2].values[0]
    assert isinstance(d, DateValue) and d.prefix == "ge"
    n = parse_search("RiskAssessment", [("probability", "100")], strict=True).criteria[0]
    assert n.values == [NumberValue("eq", 100.0, 99.5, 100.5, "100")]
    assert parse_search("Patient", [("name", "")], strict=True).criteria == []


def test_unknown_strict_and_lenient():
    with pytest.raises(BadRequest) as exc:
        parse_search("Patient", [("shoe-size", "42")], strict=True)
    assert "shoe-size" in exc.value.diagnostics
    req = parse_search(
        "Patient", [("shoe-size", "42"), ("_text", "x"), ("gender", "male")], strict=False
    )
    assert req.unknown == ["shoe-size", "_text"]
    assert [c.param for c in req.criteria] == ["gender"]
    with pytest.raises(BadRequest):
        parse_search("Patient", [("_sort", "shoe-size")], strict=True)
    assert parse_search("Patient", [("_sort", "shoe-size")], strict=False).sort == []
    with pytest.raises(BadRequest, match="nope"):
        parse_search("Observation", [("patient.nope", "x")], strict=True)
    with pytest.raises(BadRequest):
        parse_search("Nope", [], strict=False)


@pytest.mark.parametrize(
    ("rtype", "key", "value", "needle"),
    [
        ("Patient", "birthdate", "1970-13", "birthdate"),
        ("Patient", "birthdate", "1970-02-30", "birthdate"),
        ("Patient", "birthdate", "xx1970", "xx"),
        ("Patient", "birthdate", "ge19700", "birthdate"),
        ("Patient", "birthdate", "2020-01-01T25:00Z", "birthdate"),
        ("Observation", "value-quantity", "abc", "value-quantity"),
        ("Observation", "value-quantity", "5|x", "value-quantity"),
        ("RiskAssessment", "probability", "1..2", "probability"),
        ("Patient", "family:foo", "x", "family:foo"),
        ("Patient", "gender:exact", "x", "gender:exact"),
        ("Patient", "gender:missing", "maybe", "gender:missing"),
        ("Observation", "subject:Medication", "x", "Medication"),
        ("Observation", "patient", "Group/1", "Group"),
        ("Observation", "patient.name.family", "x", "one level"),
        ("Observation", "code.name", "x", "not a reference"),
        ("Patient", "_has:Observation:code:code", "x", "_has"),
        ("Patient", "_has:Observation", "x", "_has"),
        ("Patient", "_count", "-1", "_count"),
        ("Patient", "_offset", "x", "_offset"),
        ("Patient", "_total", "all", "_total"),
        ("Patient", "_summary", "maybe", "_summary"),
        ("Patient", "_include", "Observation:patient", "_include"),
        ("Observation", "_include", "Observation:code", "_include"),
    ],
)
@pytest.mark.parametrize("strict", [True, False])
def test_malformed_is_always_bad_request(rtype, key, value, needle, strict):
    with pytest.raises(BadRequest) as exc:
        parse_search(rtype, [(key, value)], strict=strict)
    assert needle in exc.value.diagnostics
    assert exc.value.status == 400
