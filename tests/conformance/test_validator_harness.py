"""The validator process itself: it finds errors (so zero errors elsewhere means
something), checks named profiles, and answers many requests in one process."""

from __future__ import annotations

from tests.conformance.served import IPS_BUNDLE, accepted


def test_it_reports_an_invalid_code_as_an_error(fhir_validator):
    found = fhir_validator.validate({"resourceType": "Patient", "gender": "bogus"}, what="bad")
    assert [e["location"] for e in found.errors] and all(
        e["location"] == "Patient.gender" for e in found.errors
    )
    valid = fhir_validator.validate({"resourceType": "Patient", "gender": "female"}, what="ok")
    assert valid.errors == []


def test_it_checks_the_ips_bundle_profile(fhir_validator):
    document = {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:0c3151bd-1cbf-4d64"},
        "type": "document",
        "timestamp": "2026-01-01T00:00:00Z",
        "entry": [
            {
                "fullUrl": "urn:uuid:9d3f1d2e-4d64-4b2a-9c3e-1d2e4d644b2a",
                "resource": {"resourceType": "Patient", "name": [{"family": "Lin"}]},
            }
        ],
    }
    plain = fhir_validator.validate(document, what="document without Composition")
    against_ips = fhir_validator.validate(document, IPS_BUNDLE, "document without Composition")
    assert len(against_ips.errors) > len(plain.errors)
    assert any("Bundle.entry:composition" in e["message"] for e in against_ips.errors)


def test_an_unknown_profile_is_an_error(fhir_validator):
    found = fhir_validator.validate(
        {"resourceType": "Patient"}, "http://example.org/StructureDefinition/none", "unknown"
    )
    assert found.errors


def test_the_accepted_warnings_do_not_swallow_errors_or_other_warnings():
    narrative = "Constraint failed: dom-6: 'A resource should have narrative' (Best Practice)"
    assert accepted({"severity": "warning", "message": narrative})
    assert accepted({"severity": "warning", "message": "Unknown code 'x#y'"}) is None
