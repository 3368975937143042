"""validators.model_checks: fhir_core's choice-type and required-element checks on
per-class plans, with every verdict the library's own."""

import pytest
from fhir_core.fhirabstractmodel import FHIRAbstractModel

from validators import model_cache, model_checks
from validators.errors import ResourceInvalid
from validators.r4 import validate_resource

OBSERVATION = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"text": "height"},
    "subject": {"reference": "Patient/p1"},
}
# medication[x] is required (1..1); value[x] of Observation is optional
REQUEST = {
    "resourceType": "MedicationRequest",
    "status": "active",
    "intent": "order",
    "subject": {"reference": "Patient/p1"},
}

CASES = [
    OBSERVATION,
    {**OBSERVATION, "valueString": "tall"},
    {**OBSERVATION, "valueString": "tall", "valueBoolean": True},  # two choices
    {**OBSERVATION, "component": [{"code": {"text": "a"}, "valueInteger": 1, "valueString": "b"}]},
    {k: v for k, v in OBSERVATION.items() if k != "status"},  # required primitive absent
    {  # ... absent but explained by an extension: allowed
        **{k: v for k, v in OBSERVATION.items() if k != "status"},
        "_status": {"extension": [{"url": "http://example.org/why", "valueString": "n/a"}]},
    },
    {**REQUEST, "medicationCodeableConcept": {"text": "aspirin"}},
    REQUEST,  # required choice missing
    {
        **REQUEST,
        "medicationCodeableConcept": {"text": "aspirin"},
        "medicationReference": {"reference": "Medication/m1"},
    },
]


@pytest.fixture(autouse=True)
def fresh_cache():
    model_cache.clear()  # so nested elements are validated, not served from the cache
    yield
    model_cache.clear()


def _verdict(resource: dict):
    try:
        validate_resource(resource)
    except ResourceInvalid as error:
        return [(issue.expression, issue.diagnostics) for issue in error.issues]
    return "valid"


def test_installed_on_the_pinned_fhir_core():
    # Fails when an upgrade of fhir.resources/fhir-core renames or moves the methods.
    assert model_checks.is_installed()
    assert FHIRAbstractModel._validate_one_of_many is model_checks._choices_checked
    assert FHIRAbstractModel._validate_required_primitive_elements is (
        model_checks._required_checked
    )


def test_every_verdict_equals_the_librarys(monkeypatch):
    fast = [_verdict(case) for case in CASES]
    for name, method in model_checks._library.items():
        monkeypatch.setattr(FHIRAbstractModel, name, method)
    model_cache.clear()
    library = [_verdict(case) for case in CASES]
    assert fast == library
    assert fast[0] == fast[1] == fast[5] == fast[6] == "valid"
    assert all(verdict != "valid" for verdict in (fast[2], fast[3], fast[4], fast[7], fast[8]))


def test_refusals_name_the_element():
    two_values = _verdict(CASES[2])
    assert "valueString" in str(two_values) and "multiple" in str(two_values)
    no_status = _verdict(CASES[4])
    assert no_status[0][0] == ("Observation.status",)
