"""A searchset's ``search.mode = outcome`` entry has a fullUrl (R4: every entry of a
searchset does; the OperationOutcome has no id, so a ``urn:uuid:``)."""

from __future__ import annotations

import re


def test_an_ignored_parameter_is_reported_in_an_outcome_entry_with_a_fullurl(client):
    patient = {"resourceType": "Patient", "id": "p1"}
    assert client.put("/fhir/Patient/p1", json=patient).status_code == 201
    bundle = client.get("/fhir/Patient?no-such-parameter=1").get_json()
    outcomes = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcomes) == 1
    assert "no-such-parameter" in outcomes[0]["resource"]["issue"][0]["diagnostics"]
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", outcomes[0]["fullUrl"])
    assert all("fullUrl" in e for e in bundle["entry"])
