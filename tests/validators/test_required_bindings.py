"""Required terminology bindings (R4 terminologies.html#required) in validate_resource."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

from validators.bindings import TABLE_PATH, check_required_bindings
from validators.errors import ResourceInvalid
from validators.r4 import model_class, validate_resource

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "node_modules" / "hl7.fhir.r4.examples"
GENERATOR = ROOT / "tools" / "gen_required_bindings.py"
DEFINITIONS = ROOT / "node_modules" / "@medplum" / "definitions" / "dist" / "fhir" / "r4"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
SNOMED = "http://snomed.info/sct"

# Official R4 examples that pass the R4B models but break a required binding
# themselves: none found (checked against 5,230 examples).
EXAMPLE_EXEMPTIONS: dict[str, str] = {}

SYNTHEA_OBSERVATION = {
    "resourceType": "Observation",
    "id": "af5597a6-304d-4c8f-b596-60d17d445714",
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                    "display": "vital-signs",
                }
            ]
        }
    ],
    "code": {
        "coding": [{"system": "http://loinc.org", "code": "8302-2", "display": "Body Height"}],
        "text": "Body Height",
    },
    "subject": {"reference": "urn:uuid:018f428e-34f6-4707-8009-5ad742f901e7"},
    "encounter": {"reference": "urn:uuid:a87b575f-a10e-4079-9e9e-e378729e422d"},
    "effectiveDateTime": "2011-10-14T23:37:54+00:00",
    "issued": "2011-10-14T23:37:54.543+00:00",
    "valueQuantity": {
        "value": 176.5,
        "unit": "cm",
        "system": "http://unitsofmeasure.org",
        "code": "cm",
    },
}


def refused(resource: dict) -> ResourceInvalid:
    with pytest.raises(ResourceInvalid) as caught:
        validate_resource(resource)
    error = caught.value
    assert all(issue.code == "code-invalid" for issue in error.issues)
    return error


def expressions(error: ResourceInvalid) -> list[str]:
    return [expr for issue in error.issues for expr in issue.expression]


def condition(*codings: dict) -> dict:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": list(codings)},
        "subject": {"reference": "Patient/p1"},
    }


def test_bogus_observation_status_refused():
    error = refused({"resourceType": "Observation", "status": "bogus", "code": {"text": "x"}})
    assert error.message == "Observation has codes outside required value sets."
    assert expressions(error) == ["Observation.status"]
    (issue,) = error.issues
    assert "'bogus'" in issue.diagnostics
    assert "http://hl7.org/fhir/ValueSet/observation-status" in issue.diagnostics
    assert issue.expression == ("Observation.status",)


def test_valid_observation_accepted():
    assert validate_resource(copy.deepcopy(SYNTHEA_OBSERVATION)) == SYNTHEA_OBSERVATION


def test_patient_gender():
    error = refused({"resourceType": "Patient", "gender": "M"})
    assert expressions(error) == ["Patient.gender"]
    assert "administrative-gender" in error.issues[0].diagnostics
    validate_resource({"resourceType": "Patient", "gender": "male"})


def test_nested_backbone_element():
    patient = {
        "resourceType": "Patient",
        "gender": "female",
        "contact": [{"gender": "male"}, {"gender": "F"}],
    }
    assert expressions(refused(patient)) == ["Patient.contact[1].gender"]
    patient["contact"] = [{"gender": "F"}]
    assert expressions(refused(patient)) == ["Patient.contact[0].gender"]


def test_data_type_elements_and_their_recursion():
    patient = {
        "resourceType": "Patient",
        "telecom": [{"system": "fax", "value": "1"}, {"system": "beeper", "value": "2"}],
        "identifier": [{"value": "1", "assigner": {"identifier": {"use": "bogus", "value": "x"}}}],
    }
    assert expressions(refused(patient)) == [
        "Patient.telecom[1].system",
        "Patient.identifier[0].assigner.identifier.use",
    ]


def test_code_arrays():
    request = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "x"},
        "subject": {"reference": "Patient/p1"},
        "dosageInstruction": [{"timing": {"repeat": {"dayOfWeek": ["mon", "monday"]}}}],
    }
    error = refused(request)
    assert expressions(error) == [
        "MedicationRequest.dosageInstruction[0].timing.repeat.dayOfWeek[1]"
    ]


def test_content_reference_recursion():
    questionnaire = {
        "resourceType": "Questionnaire",
        "status": "draft",
        "item": [
            {
                "linkId": "1",
                "type": "group",
                "item": [
                    {"linkId": "1.1", "type": "group", "item": [{"linkId": "x", "type": "?"}]}
                ],
            }
        ],
    }
    assert expressions(refused(questionnaire)) == ["Questionnaire.item[0].item[0].item[0].type"]


def test_bundle_entries_and_contained_resources_use_their_own_type():
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "gender": "male"}},
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "x"},
                    "contained": [{"resourceType": "Patient", "id": "p", "gender": "mann"}],
                }
            },
        ],
    }
    assert expressions(refused(bundle)) == ["Bundle.entry[1].resource.contained[0].gender"]
    bundle["type"] = "bag"
    assert "Bundle.type" in expressions(refused(bundle))


def test_bundle_request_method():
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient"},
                "request": {"method": "FETCH", "url": "Patient"},
            }
        ],
    }
    assert expressions(refused(bundle)) == ["Bundle.entry[0].request.method"]


def test_codeable_concept_code_outside_value_set():
    error = refused(condition({"system": CLINICAL, "code": "bogus"}))
    assert expressions(error) == ["Condition.clinicalStatus.coding[0]"]
    assert "http://hl7.org/fhir/ValueSet/condition-clinical" in error.issues[0].diagnostics
    validate_resource(condition({"system": CLINICAL, "code": "active"}))


def test_codeable_concept_needs_one_coding_from_the_value_set():
    # Required binding: a coded CodeableConcept must carry a coding from the value set;
    # codings of other systems may only accompany it (translations).
    error = refused(condition({"system": SNOMED, "code": "55561003"}))
    assert expressions(error) == ["Condition.clinicalStatus"]
    assert f"{SNOMED}#55561003" in error.issues[0].diagnostics
    refused(condition({"code": "active"}))  # a code without system is from no value set
    validate_resource(
        condition({"system": SNOMED, "code": "55561003"}, {"system": CLINICAL, "code": "active"})
    )
    # Not coded at all: nothing to check.
    validate_resource({**condition(), "clinicalStatus": {"text": "active"}})


def test_value_sets_that_cannot_be_enumerated_are_not_checked():
    table = json.loads(TABLE_PATH.read_text(encoding="utf-8"))
    assert "http://hl7.org/fhir/ValueSet/mimetypes" in table["skipped"]
    binary = {"resourceType": "Binary", "contentType": "application/x-anything"}
    assert check_required_bindings(binary) == []


def test_extensible_bindings_are_not_enforced():
    table = json.loads(TABLE_PATH.read_text(encoding="utf-8"))["resources"]
    assert table["Patient"]["Patient.contact.gender"] == "code administrative-gender"
    assert "Observation.referenceRange.type" not in table["Observation"]
    assert "Observation.category" not in table["Observation"]


def test_the_synthea_observation_passes_every_call():
    """What the old speed test ran 1,000 times; its µs per call is in benchmarks/micro.py."""
    before = copy.deepcopy(SYNTHEA_OBSERVATION)
    assert all(check_required_bindings(SYNTHEA_OBSERVATION) == [] for _ in range(3))
    assert before == SYNTHEA_OBSERVATION  # the check reads, never normalises in place


def test_official_r4_examples_pass():
    if not EXAMPLES.is_dir():
        pytest.skip(f"official R4 examples not installed ({EXAMPLES}): run npm install")
    checked = 0
    failures = []
    for path in sorted(EXAMPLES.glob("*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(resource, dict) or "resourceType" not in resource:
            continue  # package.json
        checked += 1
        issues = check_required_bindings(resource)
        if not issues or path.name in EXAMPLE_EXEMPTIONS:
            continue
        # Only examples that the R4B models accept must pass (model validation is the
        # slow part, so it runs only for examples with a binding issue).
        model = model_class(resource["resourceType"])
        try:
            valid = model is not None and model.model_validate(resource) is not None
        except (ValueError, TypeError):
            valid = False
        if valid:
            failures.append(f"{path.name}: {[issue.diagnostics for issue in issues]}")
    assert checked > 5000
    assert not failures, "\n".join(failures)


def test_committed_table_is_regenerated_output():
    if not DEFINITIONS.is_dir():
        pytest.skip(f"R4 definitions not installed ({DEFINITIONS}): run npm install")
    spec = importlib.util.spec_from_file_location("gen_required_bindings", GENERATOR)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    expected = generator.render(generator.build())
    assert TABLE_PATH.read_text(encoding="utf-8") == expected, (
        "validators/required_bindings.json is stale: run tools/gen_required_bindings.py"
    )
