"""The node's seam to the validators core (fhir_server/validation.py): R4 validation
plus the project's rules, each core's error translated once into the node's
hierarchy -- ResourceInvalid -> InvalidResource (400), ConsentRuleViolation ->
BusinessRule (422) -- with the OperationOutcome clients got before the cores had
errors of their own."""

from __future__ import annotations

import pytest

from consent.codes import ACT_REASON
from consent.rules import ConsentRuleViolation, check_consent
from fhir_server.errors import BusinessRule, InvalidResource
from fhir_server.validation import RULES, invalid_resource, validate_resource
from validators import r4
from validators.errors import ResourceInvalid

JSON = {"Content-Type": "application/fhir+json"}
BROKEN = [  # (change of the root provision, expression, words of the diagnostics)
    (lambda p: p.pop("actor"), "Consent.provision.actor", "actor"),
    (lambda p: p["period"].pop("end"), "Consent.provision.period.end", "end"),
    (
        lambda p: p.update(purpose=[{"system": ACT_REASON, "code": "FUN"}]),
        "Consent.provision.purpose[0]",
        "Unknown purpose",
    ),
    (
        lambda p: p.update(period={"start": "2026-05-01", "end": "2026-01-01"}),
        "Consent.provision.period",
        "before",
    ),
]


def outcome_of(resource: object, **kw) -> tuple[int, dict]:
    with pytest.raises((InvalidResource, BusinessRule)) as caught:
        validate_resource(resource, **kw)
    return caught.value.status, caught.value.to_operation_outcome()


def test_a_valid_resource_comes_back_unchanged(cx):
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female"}
    assert validate_resource(patient) is patient
    consent = cx.privacy_consent()
    assert validate_resource(consent, expected_type="Consent") is consent


@pytest.mark.parametrize(
    ("resource", "kw", "diagnostics", "expression"),
    [
        ([], {}, "The body must be a JSON object holding one FHIR resource.", None),
        ({"id": "x"}, {}, "The resource has no resourceType.", ["resourceType"]),
        (
            {"resourceType": "Patient"},
            {"expected_type": "Observation"},
            "resourceType 'Patient' does not match the endpoint type 'Observation'.",
            ["resourceType"],
        ),
        ({"resourceType": "Nope"}, {}, "Unknown resourceType 'Nope'.", ["resourceType"]),
    ],
)
def test_a_refusal_without_findings_is_one_structure_issue(resource, kw, diagnostics, expression):
    status, outcome = outcome_of(resource, **kw)
    issue = {"severity": "error", "code": "structure", "diagnostics": diagnostics}
    if expression:
        issue["expression"] = expression
    assert (status, outcome) == (400, {"resourceType": "OperationOutcome", "issue": [issue]})


def test_findings_keep_their_codes_and_expressions_in_order():
    patient = {"resourceType": "Patient", "name": [{}], "gender": None, "bogus": 1}
    status, outcome = outcome_of(patient)
    assert status == 400
    assert [(i["code"], i["expression"]) for i in outcome["issue"]] == [
        ("invariant", ["Patient.name[0]"]),
        ("structure", ["Patient.gender"]),
    ]
    status, outcome = outcome_of({"resourceType": "Patient", "gender": "M"})
    (issue,) = outcome["issue"]
    assert (status, issue["code"], issue["expression"]) == (
        400,
        "code-invalid",
        ["Patient.gender"],
    )
    assert "administrative-gender" in issue["diagnostics"]
    status, outcome = outcome_of({"resourceType": "Patient", "colour": "blue"})
    assert status == 400
    assert outcome["issue"] == [
        {
            "severity": "error",
            "code": "structure",
            "diagnostics": "Patient.colour: Unknown element",
            "expression": ["Patient.colour"],
        }
    ]


def test_the_translation_keeps_message_and_every_issue():
    with pytest.raises(ResourceInvalid) as caught:
        r4.validate_resource({"resourceType": "Patient", "name": [{}], "gender": None})
    error = invalid_resource(caught.value)
    assert isinstance(error, InvalidResource) and error.status == 400
    assert error.diagnostics == caught.value.message
    assert [(i.code, i.diagnostics, i.severity, i.expression) for i in error.all_issues()] == [
        (i.code, i.diagnostics, i.severity, i.expression) for i in caught.value.issues
    ]


def test_consent_rules_run_for_consents_only():
    assert RULES["Consent"] == (check_consent,)
    assert set(RULES) == {"Consent"}


@pytest.mark.parametrize(("change", "expression", "words"), BROKEN)
def test_broken_consents_are_business_rule_422(cx, change, expression, words):
    consent = cx.privacy_consent()
    change(consent["provision"])
    with pytest.raises(BusinessRule) as caught:
        validate_resource(consent)
    error = caught.value
    assert error.status == 422
    assert list(error.expression) == [expression]
    assert words in error.diagnostics
    assert not isinstance(error.__cause__, ConsentRuleViolation)  # raised "from None"
    (issue,) = error.to_operation_outcome()["issue"]
    assert issue["code"] == "business-rule" and issue["expression"] == [expression]


def test_r4_errors_come_before_consent_rules(cx):
    consent = cx.privacy_consent(actors=())  # breaks a rule ...
    consent["status"] = "bogus"  # ... and a required binding: 400 first
    status, outcome = outcome_of(consent)
    assert status == 400 and outcome["issue"][0]["expression"] == ["Consent.status"]


def test_http_create_refuses_with_422(app, cx):
    client = app.test_client()
    headers = {**JSON, **cx.bearer(app, scope="system/*.cruds")}
    bad = cx.privacy_consent(actors=())
    response = client.post("/fhir/Consent", json=bad, headers=headers)
    assert response.status_code == 422, response.get_json()
    issue = response.get_json()["issue"][0]
    assert issue["code"] == "business-rule"
    assert issue["expression"] == ["Consent.provision.actor"]
    good = client.post("/fhir/Consent", json=cx.privacy_consent(), headers=headers)
    assert good.status_code == 201, good.get_json()


def test_transaction_entry_names_the_entry(app, cx):
    client = app.test_client()
    headers = {**JSON, **cx.bearer(app, scope="system/*.cruds")}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "gender": "M"},
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
    response = client.post("/fhir", json=bundle, headers=headers)
    assert response.status_code == 400, response.get_json()
    (issue,) = response.get_json()["issue"]
    assert issue["code"] == "code-invalid"
    assert issue["expression"] == ["Patient.gender"]
    assert issue["diagnostics"].startswith("Bundle.entry[0] (POST): ")
