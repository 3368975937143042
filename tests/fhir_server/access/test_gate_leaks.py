"""Regressions from an outside tester (issue #14): what a caller may not read must not
leak through conditional interactions or counts.

Setting: patient p1 consented to practitioner d1 (read and write); patient p2 did not.
d1 may write p1's record, so every conditional interaction below is one it may make —
but p2's Observation must stay invisible to it, as a direct read of it is (404).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

JSON = {"Content-Type": "application/fhir+json"}
SECRET = "p2-private-finding"


@pytest.fixture
def gate(app, node, cx):
    everywhere = ("2000-01-01", "2099-12-31")
    cx.put(node, {"resourceType": "Patient", "id": "p1", "name": [{"family": "Lin"}]})
    cx.put(
        node,
        {
            "resourceType": "Patient",
            "id": "p2",
            "identifier": [{"system": "urn:id:tw", "value": "A123456789"}],
        },
    )
    cx.put(node, cx.privacy_consent("p1", cid="c-p1", period=everywhere))
    cx.put(node, observation("o-p2", "p2"))

    doctor = cx.bearer(app, username="drbob", fhir_user="Practitioner/d1", scope="user/*.cruds")
    return SimpleNamespace(client=app.test_client(), doctor={**doctor, **JSON}, node=node)


def observation(res_id: str | None, patient: str, text: str = SECRET) -> dict:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": text},
        "subject": {"reference": f"Patient/{patient}"},
    }
    if res_id:
        body["id"] = res_id
    return body


def test_direct_read_of_the_hidden_record_is_404(gate):
    assert gate.client.get("/fhir/Observation/o-p2", headers=gate.doctor).status_code == 404


@pytest.mark.parametrize("criteria", [f"code:text={SECRET}", "_id=o-p2"])
@pytest.mark.parametrize("prefer", ["return=representation", "return=minimal"])
def test_conditional_create_never_returns_a_hidden_match(gate, criteria, prefer):
    headers = {**gate.doctor, "If-None-Exist": criteria, "Prefer": prefer}
    response = gate.client.post("/fhir/Observation", json=observation(None, "p1"), headers=headers)
    assert response.status_code == 201, response.get_json()
    assert "o-p2" not in response.headers.get("Location", "")
    assert "Patient/p2" not in response.get_data(as_text=True)
    new_id = response.headers["Location"].split("/Observation/")[1].split("/")[0]
    assert new_id != "o-p2"
    # The hidden record is untouched and the new one belongs to p1.
    assert gate.node.store.read("Observation", "o-p2")["subject"]["reference"] == "Patient/p2"
    assert gate.node.store.read("Observation", new_id)["subject"]["reference"] == "Patient/p1"


def test_conditional_create_still_finds_a_visible_match(gate, cx):
    cx.put(gate.node, observation("o-p1", "p1", text="p1-finding"))
    headers = {**gate.doctor, "If-None-Exist": "code:text=p1-finding"}
    response = gate.client.post(
        "/fhir/Observation", json=observation(None, "p1", "p1-finding"), headers=headers
    )
    assert response.status_code == 200
    assert response.get_json()["id"] == "o-p1"


def test_conditional_update_never_names_or_touches_a_hidden_match(gate):
    response = gate.client.put(
        f"/fhir/Observation?code:text={SECRET}", json=observation(None, "p1"), headers=gate.doctor
    )
    assert "o-p2" not in response.get_data(as_text=True)
    assert "o-p2" not in response.headers.get("Location", "")
    assert response.status_code == 201, response.get_json()  # no visible match: a create
    hidden = gate.node.store.read("Observation", "o-p2")
    assert hidden["meta"]["versionId"] == "1"


def test_conditional_delete_never_deletes_or_counts_a_hidden_match(gate, cx):
    cx.put(gate.node, observation("o-p2b", "p2"))  # two hidden matches: not "412 multiple"
    response = gate.client.delete(f"/fhir/Observation?code:text={SECRET}", headers=gate.doctor)
    assert response.status_code == 204
    assert gate.node.store.read("Observation", "o-p2")["meta"]["versionId"] == "1"
    assert gate.node.store.read("Observation", "o-p2b")["meta"]["versionId"] == "1"


def test_conditional_update_with_two_hidden_matches_is_not_a_412(gate, cx):
    cx.put(gate.node, observation("o-p2b", "p2"))
    response = gate.client.put(
        f"/fhir/Observation?code:text={SECRET}", json=observation(None, "p1"), headers=gate.doctor
    )
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize(
    "query",
    [
        "Patient?identifier=urn:id:tw|A123456789&_summary=count",
        "Patient?identifier=urn:id:tw|A123456789&_total=accurate",
        f"Observation?code:text={SECRET}&_summary=count",
        f"Observation?code:text={SECRET}&_total=accurate&_count=0",
    ],
)
def test_counts_count_only_what_the_caller_may_read(gate, query):
    response = gate.client.get(f"/fhir/{query}", headers=gate.doctor)
    assert response.status_code == 200, response.get_json()
    bundle = response.get_json()
    assert bundle.get("total", 0) == 0
    assert not bundle.get("entry")


def test_counts_include_what_the_caller_may_read(gate, cx):
    cx.put(gate.node, observation("o-p1", "p1", text="shared-text"))
    cx.put(gate.node, observation("o-p2c", "p2", text="shared-text"))
    response = gate.client.get(
        "/fhir/Observation?code:text=shared-text&_summary=count", headers=gate.doctor
    )
    assert response.get_json()["total"] == 1
    page = gate.client.get("/fhir/Observation?code:text=shared-text", headers=gate.doctor)
    bundle = page.get_json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["o-p1"]
    assert bundle["total"] == 1


@pytest.mark.parametrize("res_type", ["Practitioner", "PractitionerRole"])
def test_a_clinician_cannot_take_on_another_clinicians_identifier(app, gate, cx, res_type):
    """Consents name clinicians by their Practitioner identifiers: a clinician who could
    write those resources could take over another's identifier shares."""
    body = {
        "resourceType": res_type,
        "id": "d1",
        "identifier": [{"system": "urn:license", "value": "someone-else"}],
    }
    put = gate.client.put(f"/fhir/{res_type}/d1", json=body, headers=gate.doctor)
    assert put.status_code == 403
    post = gate.client.post(f"/fhir/{res_type}", json=body, headers=gate.doctor)
    assert post.status_code == 403
    app.extensions["phrx.smart"].service.users.add("root", "admin", "Practitioner/a", "pw pw pw pw")
    admin = cx.bearer(app, username="root", fhir_user="Practitioner/a", scope="user/*.cruds")
    assert (
        gate.client.put(f"/fhir/{res_type}/d1", json=body, headers={**admin, **JSON}).status_code
        == 201
    )
    delete = gate.client.delete(f"/fhir/{res_type}/d1", headers=gate.doctor)
    assert delete.status_code == 403
    assert gate.node.store.read(res_type, "d1")["identifier"][0]["value"] == "someone-else"


@pytest.mark.parametrize("control", ["_offset=1", "_count=1", "_sort=code"])
def test_conditional_criteria_carry_no_result_controls(gate, cx, control):
    """``_offset=1`` would step over the second of two matches and update the other."""
    cx.put(gate.node, observation("o-a", "p1", text="twice"))
    cx.put(gate.node, observation("o-b", "p1", text="twice"))
    response = gate.client.put(
        f"/fhir/Observation?code:text=twice&{control}",
        json=observation(None, "p1", "twice"),
        headers=gate.doctor,
    )
    assert response.status_code == 400
    assert gate.node.store.read("Observation", "o-a")["meta"]["versionId"] == "1"
    assert gate.node.store.read("Observation", "o-b")["meta"]["versionId"] == "1"


def test_a_refused_delete_is_not_logged_as_done(gate, cx):
    from fhir_server.search.runner import run_search

    before = run_search(gate.node.store, "AuditEvent", [("_count", "1000")]).matches
    response = gate.client.delete("/fhir/Observation/o-p2", headers=gate.doctor)
    assert response.status_code in (204, 404)
    assert gate.node.store.read("Observation", "o-p2")["meta"]["versionId"] == "1"
    after = run_search(gate.node.store, "AuditEvent", [("_count", "1000")]).matches
    new = [e for e in after if e["id"] not in {b["id"] for b in before}]
    done = [e for e in new if e.get("action") == "D" and e.get("outcome") == "0"]
    assert not done, done


def test_history_counts_and_deletions_hide_what_consent_withholds(gate, cx, backend_client):
    admin = backend_client()
    assert admin.delete("/fhir/Observation/o-p2").status_code == 204
    history = gate.client.get("/fhir/Observation/_history", headers=gate.doctor).get_json()
    assert "total" not in history
    urls = [e.get("request", {}).get("url") for e in history.get("entry", [])]
    assert "Observation/o-p2" not in urls
    instance = gate.client.get("/fhir/Observation/o-p2/_history", headers=gate.doctor)
    assert instance.status_code == 404  # as a read of it answers


@pytest.mark.parametrize(
    "query",
    [
        f"Patient?_has:Observation:subject:code:text={SECRET}",
        "Observation?subject:Patient.identifier=urn:id:tw|A123456789",
    ],
)
def test_chains_cannot_probe_what_consent_withholds(gate, query):
    response = gate.client.get(f"/fhir/{query}", headers=gate.doctor)
    assert response.status_code == 403
    assert "p2" not in response.get_data(as_text=True)
