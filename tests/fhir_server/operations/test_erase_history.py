"""After ``$erase`` the node's history still answers (issue #15, found by the HL7
validator run): the erased patient's versions are left out of system and type
history, while the erased resource's own history answers 410 like its read."""

from __future__ import annotations

from fhir_server.operations.erase import erase_patient


def test_history_after_erase_serves_the_rest(app, node, cx):
    for pid, family in (("p1", "Erased"), ("p2", "Kept")):
        cx.put(node, {"resourceType": "Patient", "id": pid, "name": [{"family": family}]})
    erase_patient(node.store, "p1")
    client = app.test_client()  # a backend service: system/*.cruds
    system = client.get("/fhir/_history")
    assert system.status_code == 200, system.get_json()
    served = [e["resource"]["id"] for e in system.json["entry"] if "resource" in e]
    assert "p2" in served and "p1" not in served
    assert "total" not in system.json  # the index counts versions nobody can open now
    typed = client.get("/fhir/Patient/_history")
    assert typed.status_code == 200
    assert [e["resource"]["id"] for e in typed.json["entry"] if "resource" in e] == ["p2"]
    assert client.get("/fhir/Patient/p1/_history").status_code == 410
    assert client.get("/fhir/Patient/p2/_history").status_code == 200
