"""Rules every element of every resource obeys (issue #14), through validate_resource:
no null property values (json.html), no empty objects or arrays (ele-1), no control
characters in strings (datatypes.html#string), no contained resource that contains
resources (dom-2). Each refusal names its rule and the element (``expression``)."""

from __future__ import annotations

import copy

import pytest

from validators.errors import ResourceInvalid
from validators.r4 import validate_resource

EXT = [{"url": "http://example.org/x", "valueString": "y"}]


def refused(resource: dict) -> list[dict]:
    """The refusal's issues as dicts (severity, code, diagnostics, expression list)."""
    with pytest.raises(ResourceInvalid) as error:
        validate_resource(resource)
    return [
        {
            "severity": i.severity,
            "code": i.code,
            "diagnostics": i.diagnostics,
            "expression": list(i.expression),
        }
        for i in error.value.issues
    ]


@pytest.mark.parametrize(
    "resource,expression,rule",
    [
        (
            {
                "resourceType": "Patient",
                "contained": [
                    {
                        "resourceType": "Patient",
                        "id": "c1",
                        "contained": [{"resourceType": "Patient"}],
                    }
                ],
            },
            "Patient.contained[0].contained",
            "dom-2",
        ),
        (
            {"resourceType": "Patient", "name": [{"family": "a\u0000b"}]},
            "Patient.name[0].family",
            "U+0000",
        ),
        (
            {"resourceType": "Patient", "name": [{"given": ["Ann", "B\u0001"]}]},
            "Patient.name[0].given[1]",
            "U+0001",
        ),
        (
            {
                "resourceType": "Patient",
                "text": {
                    "status": "generated",
                    "div": '<div xmlns="http://www.w3.org/1999/xhtml">\u001f</div>',
                },
            },
            "Patient.text.div",
            "U+001F",
        ),
        ({"resourceType": "Patient", "name": [{}]}, "Patient.name[0]", "ele-1"),
        ({"resourceType": "Patient", "maritalStatus": {}}, "Patient.maritalStatus", "ele-1"),
        (
            {"resourceType": "Patient", "photo": [{"contentType": "image/png", "data": ""}]},
            "Patient.photo[0].data",
            "ele-1",
        ),
        ({"resourceType": "Patient", "active": None}, "Patient.active", "null"),
        ({"resourceType": "Patient", "_active": None}, "Patient._active", "null"),
        (
            {"resourceType": "Patient", "name": [{"given": [None]}]},
            "Patient.name[0].given[0]",
            "null",
        ),
        (  # a null in both arrays at the same index aligns nothing
            {"resourceType": "Patient", "name": [{"given": ["a", None], "_given": [None, None]}]},
            "Patient.name[0].given[1]",
            "null",
        ),
        (
            {"resourceType": "Patient", "name": [None]},
            "Patient.name[0]",
            "null",
        ),
    ],
    ids=[
        "nested-contained",
        "nul",
        "u0001",
        "narrative",
        "empty-object-in-list",
        "empty-object",
        "empty-string",
        "null",
        "null-extension",
        "null-primitive-item",
        "null-on-both-sides",
        "null-complex-item",
    ],
)
def test_refused_with_rule_and_expression(resource, expression, rule):
    issues = refused(resource)
    assert issues[0]["expression"] == [expression], issues
    if "_given" not in str(resource):
        assert len(issues) == 1, issues
    else:  # both nulls of the pair are reported
        assert [i["expression"][0] for i in issues[1:]] == ["Patient.name[0]._given[1]"]
    assert rule in issues[0]["diagnostics"]
    assert issues[0]["severity"] == "error"


def test_allowed_whitespace_and_aligned_nulls_pass():
    resource = {
        "resourceType": "Patient",
        "name": [
            {
                "given": ["Ann", None, "Lee"],
                "_given": [None, {"extension": EXT}, None],
                "text": "tab\there\r\nnew line",
            }
        ],
        "contained": [{"resourceType": "Organization", "id": "o1", "name": "陳 clinic\u00a0"}],
        "managingOrganization": {"reference": "#o1"},
    }
    before = copy.deepcopy(resource)
    assert validate_resource(resource) == before


def test_resources_inside_resources_are_checked_with_their_paths():
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "active": True}},
            {"resource": {"resourceType": "Patient", "name": [{"family": "x\u0007"}]}},
        ],
    }
    issues = refused(bundle)
    assert issues[0]["expression"] == ["Bundle.entry[1].resource.name[0].family"]
    nested = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "Patient",
                    "contained": [{"resourceType": "Patient", "contained": [{}]}],
                }
            }
        ],
    }
    expressions = [i["expression"][0] for i in refused(nested)]
    assert "Bundle.entry[0].resource.contained[0].contained" in expressions


def test_every_problem_is_reported_once():
    resource = {
        "resourceType": "Patient",
        "active": None,
        "name": [{}, {"family": "a\u0000"}],
        "telecom": [{"system": "url", "value": "http://x", "_value": {}}],
    }
    issues = refused(resource)
    assert sorted(i["expression"][0] for i in issues) == [
        "Patient.active",
        "Patient.name[0]",
        "Patient.name[1].family",
        "Patient.telecom[0]._value",
    ]


def test_an_empty_array_stands_for_none_and_passes():
    # json.html forbids it too, but it holds no element: left alone (see the module)
    assert validate_resource({"resourceType": "Patient", "name": []})
