"""The element cache of validators.model_cache: faster, and never changes a verdict."""

import copy
from datetime import UTC

import pytest

from validators import model_cache
from validators.errors import ResourceInvalid
from validators.r4 import validate_resource

LOINC_HEIGHT = {
    "coding": [{"system": "http://loinc.org", "code": "8302-2", "display": "Body Height"}]
}


def observation(**changes) -> dict:
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": copy.deepcopy(LOINC_HEIGHT),
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": 170.5, "unit": "cm", "system": "http://unitsofmeasure.org"},
    }
    resource.update(changes)
    return resource


@pytest.fixture(autouse=True)
def fresh_cache():
    model_cache.clear()
    yield
    model_cache.clear()


def test_installed_on_the_pinned_fhir_core():
    # Fails when an upgrade of fhir.resources/fhir-core moves the hook.
    assert model_cache.is_installed()


def test_repeated_elements_are_served_from_the_cache():
    validate_resource(observation())
    first = model_cache.stats()
    validate_resource(observation())
    second = model_cache.stats()
    assert first["misses"] >= 3  # code, its Coding, subject, valueQuantity
    assert second["misses"] == first["misses"]
    assert second["hits"] >= 3


def test_an_invalid_element_after_a_cached_valid_one_is_still_refused():
    validate_resource(observation())
    bad_coding = {"coding": [{"system": "http://loinc.org", "code": "8302-2", "colour": "red"}]}
    with pytest.raises(ResourceInvalid) as caught:
        validate_resource(observation(code=bad_coding))
    assert any("Observation.code.coding[0].colour" in i.expression for i in caught.value.issues)
    # and the same invalid element is refused again: failures are not cached
    with pytest.raises(ResourceInvalid):
        validate_resource(observation(code=bad_coding))


def test_values_equal_in_python_but_different_in_json_are_kept_apart():
    # {"value": 1} == {"value": True} in Python; the decimal must still refuse true.
    validate_resource(observation(valueQuantity={"value": 1, "unit": "cm"}))
    with pytest.raises(ResourceInvalid) as caught:
        validate_resource(observation(valueQuantity={"value": True, "unit": "cm"}))
    assert any("valueQuantity.value" in i.expression[0] for i in caught.value.issues)


def test_values_json_cannot_hold_are_validated_uncached():
    """A datetime object (an internal caller's) has no JSON text to be keyed by: its
    element is validated every time, never cached under the text of a string."""
    from datetime import datetime

    start = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    validate_resource(observation(effectivePeriod={"start": start}))
    assert not any(cls.__name__ == "Period" for cls, _text in model_cache._cache)
    validate_resource(observation(effectivePeriod={"start": "2020-01-02T03:04:05Z"}))
    assert any(cls.__name__ == "Period" for cls, _text in model_cache._cache)


def test_the_cache_is_bounded():
    for n in range(model_cache.MAX_ENTRIES + 50):
        validate_resource(observation(subject={"reference": f"Patient/p{n}"}))
    assert model_cache.stats()["size"] <= model_cache.MAX_ENTRIES


def test_element_model_classes_are_looked_up_once_per_type():
    """fhir_core memoises the type -> model class import in an lru_cache of 128 entries,
    thrashed by the R4B element types (hundreds); the installed cache holds them all."""
    from fhir.resources.R4B import fhirtypes
    from fhir_core.types import FhirBase

    element_types = [
        value
        for value in vars(fhirtypes).values()
        if isinstance(value, type) and issubclass(value, FhirBase) and "_model_klass" in dir(value)
    ]
    assert len(element_types) > 128
    for element_type in element_types:
        element_type.get_model_klass()
    lookup = FhirBase.get_model_klass.__func__
    misses = lookup.cache_info().misses
    for element_type in element_types:
        assert element_type.get_model_klass().__name__
    assert lookup.cache_info().misses == misses
