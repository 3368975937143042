"""The patient's record as the node serves it, read back after the MHB import: every
imported resource, search and history Bundles, $everything (HL7 validator, issue #15)."""

from __future__ import annotations

from tests.conformance.served import conformant


def _params(body: dict) -> dict:
    return {p["name"]: p for p in body["parameter"]}


def imported_references(world) -> list[str]:
    """``Type/id`` of everything the import created, from its Provenance's targets."""
    provenance = _params(world.imported.json)["provenance"]["valueReference"]["reference"]
    found = world.backend.get(f"/fhir/{provenance}").json
    return [t["reference"].split("/_history/")[0] for t in found["target"]]


def test_the_import_outcome_is_conformant(world, fhir_validator):
    assert world.imported.json["resourceType"] == "Parameters"
    conformant(fhir_validator, world.imported, "Patient/p1/$import-mhb")


def test_a_read_of_every_imported_resource_is_conformant(world, fhir_validator):
    references = imported_references(world)
    types = {r.split("/")[0] for r in references}
    produced = {
        p["part"][0]["valueCode"]
        for p in world.imported.json["parameter"]
        if p["name"] == "resources"
    }
    assert types >= produced - {"Provenance"}, (types, produced)
    for reference in references:
        response = world.backend.get(f"/fhir/{reference}")
        assert response.status_code == 200, (reference, response.json)
        conformant(fhir_validator, response, f"read {reference}")


def test_search_bundles_are_conformant(world, fhir_validator):
    for query in (
        "Condition?patient=p1",
        "MedicationRequest?patient=p1&_count=2",
        "Observation?patient=p1&_sort=-date",
        "Encounter?patient=p1&_include=Encounter:subject",
        "Patient?_id=p1&_revinclude=Condition:subject",
        "Condition?patient=p1&_summary=count",
        "Patient?name=nobody",
        "Condition?patient=p1&no-such-parameter=1",  # a search.mode = outcome entry
    ):
        response = world.backend.get(f"/fhir/{query}")
        assert response.status_code == 200, (query, response.json)
        assert response.json["type"] == "searchset"
        conformant(fhir_validator, response, f"search {query}")


def test_history_bundles_are_conformant(world, fhir_validator):
    for path in ("Observation/bp/_history", "Observation/_history", "_history?_count=100"):
        response = world.backend.get(f"/fhir/{path}")
        assert response.status_code == 200, (path, response.json)
        assert response.json["type"] == "history"
        conformant(fhir_validator, response, f"history {path}")
    deleted = world.backend.get("/fhir/Observation/gone/_history").json
    assert any(e["request"]["method"] == "DELETE" for e in deleted["entry"])


def test_everything_is_conformant(world, fhir_validator):
    response = world.backend.get("/fhir/Patient/p1/$everything")
    assert response.status_code == 200, response.json
    conformant(fhir_validator, response, "Patient/p1/$everything")
