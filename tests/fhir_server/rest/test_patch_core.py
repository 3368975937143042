"""The Flask-free patch core (fhir_server/rest/patch.py, fhirpath_patch.py,
fhirpath_path.py): formats told apart, the FHIRPath subset, and what each refuses."""

from __future__ import annotations

import base64
import json

import pytest

from fhir_server.errors import BadRequest, FHIRError, PayloadTooLarge, UnsupportedMediaType
from fhir_server.rest import patch
from fhir_server.rest.fhirpath_patch import PatchNotApplicable
from fhir_server.rest.fhirpath_path import parse_path

OBS = {
    "resourceType": "Observation",
    "id": "o",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
    "valueQuantity": {"value": 120, "unit": "mmHg"},
    "component": [
        {"code": {"coding": [{"code": "8480-6"}]}, "valueQuantity": {"value": 120}},
        {"code": {"coding": [{"code": "8462-4"}]}, "valueQuantity": {"value": 80}},
    ],
    "extension": [
        {"url": "urn:e1", "valueBoolean": True},
        {"url": "urn:e2", "valueString": "two"},
    ],
}
PATIENT = {
    "resourceType": "Patient",
    "id": "p",
    "name": [{"given": ["A", "B", "C"], "_given": [None, {"id": "b"}, None]}],
    "contained": [{"resourceType": "Organization", "id": "org", "name": "Org"}],
}


def op(kind: str, path: str, **parts) -> dict:
    out = [{"name": "type", "valueCode": kind}, {"name": "path", "valueString": path}]
    for name, value in parts.items():
        if name == "name":
            out.append({"name": "name", "valueString": value})
        elif name in ("index", "source", "destination"):
            out.append({"name": name, "valueInteger": value})
        else:
            out.append({"name": "value", name: value})
    return {"name": "operation", "part": out}


def fhirpath(resource: dict, *operations) -> dict:
    document = {"resourceType": "Parameters", "parameter": list(operations)}
    return patch.apply(patch.parse("application/fhir+json", document), resource)


def test_formats_are_told_apart_by_media_type_and_shape():
    assert patch.parse("application/json-patch+json", []).kind == "json-patch"
    assert patch.parse("application/json", [{"op": "remove", "path": "/a"}]).kind == "json-patch"
    assert patch.parse(None, {"gender": "male"}).kind == "merge"
    assert patch.parse("application/merge-patch+json", {"a": None}).kind == "merge"
    assert patch.parse("application/json; charset=utf-8", {"a": 1}).kind == "merge"
    params = {"resourceType": "Parameters", "parameter": []}
    assert patch.parse("application/fhir+json", params).kind == "fhirpath"
    assert patch.parse("application/json", params).kind == "fhirpath"
    with pytest.raises(UnsupportedMediaType):
        patch.parse("text/plain", [])
    with pytest.raises(BadRequest):
        patch.parse("application/json-patch+json", {"op": "add"})
    with pytest.raises(BadRequest):
        patch.parse("application/merge-patch+json", [1])


def test_the_source_is_never_changed():
    before = json.dumps(OBS, sort_keys=True)
    fhirpath(OBS, op("delete", "Observation.component[0]"), op("delete", "Observation.value"))
    ops = [{"op": "remove", "path": "/component/0"}]
    patch.apply(patch.parse("application/json-patch+json", ops), OBS)
    patch.apply(patch.parse("application/json", {"status": None}), OBS)
    assert json.dumps(OBS, sort_keys=True) == before


def test_where_first_last_oftype_and_extension():
    out = fhirpath(
        OBS,
        op(
            "replace",
            "Observation.component.where(code.coding.code = '8462-4').value",
            valueQuantity={"value": 85},
        ),
        op("replace", "Observation.value.ofType(Quantity).value", valueDecimal=125),
        op("replace", "Observation.extension('urn:e2').value", valueString="deux"),
        op("delete", "Observation.extension.where(url='urn:e1' and value = true)"),
        op("replace", "Observation.component.first().valueQuantity.value", valueDecimal=121),
        op(
            "add",
            "Observation.component.last()",
            name="dataAbsentReason",
            valueCodeableConcept={"text": "x"},
        ),
    )
    assert out["component"][1]["valueQuantity"] == {"value": 85}
    assert out["component"][1]["dataAbsentReason"] == {"text": "x"}
    assert out["component"][0]["valueQuantity"]["value"] == 121
    assert out["valueQuantity"]["value"] == 125
    assert out["extension"] == [{"url": "urn:e2", "valueString": "deux"}]
    # = holds for exactly one equal value of the same type; an empty operand never holds
    nothing = fhirpath(
        OBS,
        op(
            "delete",
            "Observation.component.where(code.coding.code != 'x').value.where(value = '120')",
        ),
    )
    assert nothing == fhirpath(OBS)
    numbers = fhirpath(OBS, op("delete", "Observation.component.where(valueQuantity.value = 80)"))
    assert len(numbers["component"]) == 1


def test_choice_types_and_contained_resources():
    out = fhirpath(OBS, op("replace", "Observation.value", valueString="high"))
    assert out["valueString"] == "high" and "valueQuantity" not in out
    with pytest.raises(BadRequest):  # Observation.value cannot be a HumanName
        fhirpath(OBS, op("replace", "Observation.value", valueHumanName={"family": "x"}))
    out = fhirpath(PATIENT, op("replace", "Patient.contained[0].name", valueString="Org 2"))
    assert out["contained"][0]["name"] == "Org 2"
    with pytest.raises(BadRequest):  # Organization has no gender
        fhirpath(PATIENT, op("delete", "Patient.contained[0].gender"))


def test_primitive_extensions_stay_aligned():
    out = fhirpath(PATIENT, op("delete", "Patient.name.given[0]"))
    assert out["name"][0]["given"] == ["B", "C"] and out["name"][0]["_given"] == [{"id": "b"}, None]
    out = fhirpath(PATIENT, op("insert", "Patient.name[0].given", index=0, valueString="Z"))
    assert out["name"][0]["_given"] == [None, None, {"id": "b"}, None]
    out = fhirpath(PATIENT, op("move", "Patient.name[0].given", source=1, destination=2))
    assert out["name"][0]["given"] == ["A", "C", "B"]
    assert out["name"][0]["_given"] == [None, None, {"id": "b"}]
    out = fhirpath(PATIENT, op("delete", "Patient.name.given[1]"))
    assert "_given" not in out["name"][0]


@pytest.mark.parametrize(
    "path",
    [
        "",
        "Patient..name",
        "Patient.name[-1]",
        "Patient.name[x]",
        "Patient.name.exists()",
        "Patient.name.where(given)",
        "Patient.name.where(given = 'a' or family = 'b')",
        "Patient.name.where(given = family)",
        "Patient.name.where(given = 'a'",
        "%resource.name",
        "Patient.name | Patient.telecom",
        "resolve()",
        "Patient.name.where(given = 'a\\q')",
    ],
)
def test_paths_outside_the_subset_are_400(path):
    with pytest.raises(BadRequest):
        parse_path(path)


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        (op("replace", "Patient.name.given", valueString="x"), PatchNotApplicable),  # 3 match
        (op("replace", "Patient.birthDate", valueDate="2000"), PatchNotApplicable),  # none
        (op("add", "Patient.name.given", name="x", valueString="y"), PatchNotApplicable),
        (op("insert", "Patient.name[0].given", index=4, valueString="y"), PatchNotApplicable),
        (op("move", "Patient.name[0].given", source=3, destination=0), PatchNotApplicable),
        (op("insert", "Patient.gender", index=0, valueCode="male"), BadRequest),  # not a list
        (op("add", "Patient", name="colour", valueString="red"), BadRequest),
        (op("delete", "Patient"), BadRequest),
        (op("replace", "Observation.status", valueCode="final"), BadRequest),
    ],
)
def test_fhirpath_patch_errors(operation, error):
    with pytest.raises(error):
        fhirpath(PATIENT, operation)


def test_bundle_entry_documents():
    data = base64.b64encode(b'[{"op": "remove", "path": "/status"}]').decode()
    binary = {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data}
    assert patch.from_entry(binary, "e").kind == "json-patch"
    merge = {**binary, "contentType": "application/merge-patch+json"}
    merge["data"] = base64.b64encode(b'{"status": null}').decode()
    assert patch.from_entry(merge, "e").kind == "merge"
    params = {"resourceType": "Parameters", "parameter": []}
    assert patch.from_entry(params, "e").kind == "fhirpath"
    for bad in (
        {**binary, "data": "%%"},
        {**binary, "data": ""},
        {"resourceType": "Patient"},
        None,
    ):
        with pytest.raises(FHIRError):
            patch.from_entry(bad, "e")


def test_json_patch_copy_is_bounded():
    ops = [{"op": "add", "path": "/z", "value": ["x" * 100]}]
    ops += [{"op": "copy", "from": "/z", "path": "/z/-"} for _ in range(64)]
    with pytest.raises(PayloadTooLarge):
        patch.apply(patch.parse("application/json-patch+json", ops), OBS, patch.Limits(10_000))
    deep = [{"op": "add", "path": "/z", "value": {}}]
    deep += [{"op": "copy", "from": "/z", "path": "/z/z"} for _ in range(70)]
    with pytest.raises(FHIRError):
        patch.apply(patch.parse("application/json-patch+json", deep), OBS)
