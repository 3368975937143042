"""validators.null_check: fhir_core's null-in-list check, on a per-class plan."""

import pytest
from fhir_core import fhirabstractmodel

from validators import model_cache, null_check
from validators.errors import ResourceInvalid
from validators.r4 import validate_resource


@pytest.fixture(autouse=True)
def fresh_cache():
    model_cache.clear()  # so nested elements are validated, not served from the cache
    yield
    model_cache.clear()


@pytest.fixture
def library_only(monkeypatch):
    """validate_resource's own element walk (validators.elements) refuses nulls first,
    at the item (``Observation.category[0]``); without it the library's check runs."""
    from validators import r4

    monkeypatch.setattr(r4, "check_elements", lambda resource: [])


def _refused(resource: dict) -> list[tuple]:
    with pytest.raises(ResourceInvalid) as caught:
        validate_resource(resource)
    return [(i.expression, i.diagnostics) for i in caught.value.issues]


def test_installed_on_the_pinned_fhir_core():
    # Fails when an upgrade of fhir.resources/fhir-core changes the function.
    assert null_check.is_installed()
    function = fhirabstractmodel.FHIRAbstractModel.__dict__["reject_null_complex_elements"]
    assert function.__func__.__code__ is null_check._fast_path.__code__


def test_a_null_in_a_list_of_complex_elements_is_refused_with_the_librarys_error(library_only):
    issues = _refused(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "category": [None],
        }
    )
    assert issues == [
        (
            ("Observation.category",),
            "Observation.category: None is not allowed as an element of category",
        )
    ]


def test_nested_and_aliased_lists_are_checked_too(library_only):
    nested = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"code": "a"}, None]},
    }
    assert _refused(nested)[0][0] == ("Observation.code.coding",)
    # "class" is a Python keyword: the model's field is class_fhir, the JSON key "class"
    coverage = {
        "resourceType": "Coverage",
        "status": "active",
        "beneficiary": {"reference": "Patient/p1"},
        "payor": [{"reference": "Organization/o1"}],
        "class": [None],
    }
    assert _refused(coverage)[0][0] == ("Coverage.class",)


def test_a_null_in_a_primitive_list_lines_up_with_its_extension_and_stays():
    extension = {"extension": [{"url": "http://example.org/why", "valueString": "unknown"}]}
    patient = {
        "resourceType": "Patient",
        "name": [{"given": ["Ann", None], "_given": [None, extension]}],
    }
    assert validate_resource(patient) is patient
