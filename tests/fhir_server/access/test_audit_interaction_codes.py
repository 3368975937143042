"""The restful-interaction code each request is audited under (AuditEvent.subtype):
a POST ``_search`` is a search, not a create; a PATCH is a patch (issue #15)."""

from __future__ import annotations

import pytest

from fhir_server.access.request_audit import Response, _interaction


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("POST", "Observation/_search", "search-type"),
        ("POST", "Patient/p1/Observation/_search", "search-type"),
        ("POST", "_search", "search-system"),
        ("GET", "", "search-system"),
        ("GET", "Patient/p1/Observation", "search-type"),
        ("PATCH", "Observation/o1", "patch"),
        ("PUT", "Observation/o1", "update"),
        ("POST", "Observation", "create"),
        ("DELETE", "Observation/o1", "delete"),
        ("GET", "Observation/o1", "read"),
        ("GET", "Observation/o1/_history/2", "vread"),
    ],
)
def test_interaction_code_of_a_request(method, path, code):
    assert _interaction(Response(method, path, "", 200)) == code
