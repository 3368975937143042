"""``Patient/$summary`` against the IPS Bundle profile (hl7.fhir.uv.ips 2.0.0)."""

from __future__ import annotations

import json

from tests.conformance.served import IPS_BUNDLE, conformant


def test_the_summary_conforms_to_the_ips_bundle_profile(world, fhir_validator):
    response = world.patient.get("/fhir/Patient/p1/$summary")
    assert response.status_code == 200, response.json
    assert response.json["type"] == "document"
    conformant(fhir_validator, response, "Patient/p1/$summary", IPS_BUNDLE)


def test_the_ips_profiles_of_the_entries_are_checked_too(world, fhir_validator):
    """Condition-uv-ips requires a code (R4's Condition does not): a served summary
    with one removed is an error."""
    document = json.loads(world.patient.get("/fhir/Patient/p1/$summary").get_data())
    condition = next(
        e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "Condition"
    )
    del condition["code"]
    found = fhir_validator.validate(document, IPS_BUNDLE, "summary without a Condition.code")
    assert [e["message"] for e in found.errors] == [
        "Condition.code: minimum required = 1, but only found 0 "
        "(from http://hl7.org/fhir/uv/ips/StructureDefinition/Condition-uv-ips|2.0.0)"
    ]
