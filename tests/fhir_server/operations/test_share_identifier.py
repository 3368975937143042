"""Issue #14: ``$share`` to a ``valueIdentifier`` opens the record to the LOCAL
practitioner whose Practitioner resource carries that identifier (system and value
exactly), and to no one else; revoking closes it again.

Everything goes through the HTTP API with tokens from the node's own SMART server
(authorization code + PKCE for the users, Backend Services for the set-up writes).
"""

from __future__ import annotations

import pytest

from tests.smart_tokens import patient_token, user_token

JSON = {"Content-Type": "application/fhir+json"}
LICENCE = "https://tw.example/fhir/NamingSystem/physician-licence"
VALUE = "D-12345"
OBS = "/fhir/Observation/o1"
# a refused read: 403, or 404 where the node hides that the record exists
REFUSED = (403, 404)


def practitioner(pid: str, *identifiers: tuple[str, str], **extra) -> dict:
    body = {"resourceType": "Practitioner", "id": pid, **extra}
    if identifiers:
        body["identifier"] = [{"system": s, "value": v} for s, v in identifiers]
    return body


def recipient(system=LICENCE, value=VALUE, node=None) -> dict:
    params = [{"name": "recipient", "valueIdentifier": {"system": system, "value": value}}]
    if node:
        params.append({"name": "recipientNode", "valueCode": node})
    return {"resourceType": "Parameters", "parameter": params}


def revoke_recipient(system=LICENCE, value=VALUE) -> dict:
    body = recipient(system, value)
    body["parameter"].insert(0, {"name": "revoke", "valueBoolean": True})
    return body


@pytest.fixture
def site(app, client, client_for):
    """Patient p1 with one Observation, and practitioners:

    * ``dx`` carries (LICENCE, VALUE) among other identifiers;
    * ``dy`` carries VALUE under another system, and LICENCE with another value;
    * ``dz`` carries no identifier at all.
    """
    writes = [
        {"resourceType": "Patient", "id": "p1"},
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": "Patient/p1"},
        },
        practitioner("dx", ("https://other.example/ids", "x-1"), (LICENCE, VALUE)),
        practitioner("dy", ("https://other.example/ids", VALUE), (LICENCE, VALUE.lower())),
        practitioner("dz"),
    ]
    for body in writes:
        url = f"/fhir/{body['resourceType']}/{body['id']}"
        response = client.put(url, json=body, headers=JSON)
        assert response.status_code in (200, 201), response.get_json()

    def signed_in(username: str, fhir_user: str):
        token = user_token(app, "user/*.rs", username, "practitioner", fhir_user)
        return client_for(token)

    class Site:
        admin = client  # this node's backend service
        patient = client_for(patient_token(app, "p1"))
        dx = signed_in("dr-x", "Practitioner/dx")
        dy = signed_in("dr-y", "Practitioner/dy")
        dz = signed_in("dr-z", "Practitioner/dz")

    return Site


def share(site, body, status=201):
    response = site.patient.post("/fhir/Patient/p1/$share", json=body, headers=JSON)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def observation_ids(who) -> list[str]:
    response = who.get("/fhir/Observation", query_string={"patient": "p1"})
    assert response.status_code in (200, *REFUSED), response.get_json()
    if response.status_code != 200:
        return []
    return [e["resource"]["id"] for e in response.get_json().get("entry") or []]


def test_identifier_share_opens_the_record_to_the_practitioner_carrying_it(site):
    assert site.dx.get(OBS).status_code in REFUSED  # default deny before the share
    share(site, recipient())

    read = site.dx.get(OBS)
    assert read.status_code == 200, read.get_json()
    assert read.get_json()["id"] == "o1"
    assert observation_ids(site.dx) == ["o1"]
    assert site.dx.get("/fhir/Patient/p1").status_code == 200

    # same value under another system, same system with another value, no identifier
    for other in (site.dy, site.dz):
        assert other.get(OBS).status_code in REFUSED
        assert observation_ids(other) == []

    share(site, revoke_recipient(), status=200)
    assert site.dx.get(OBS).status_code in REFUSED
    assert observation_ids(site.dx) == []


def test_matching_follows_the_current_practitioner_resource(site):
    share(site, recipient())
    assert site.dx.get(OBS).status_code == 200

    # the identifier is taken off dx and given to dz: access follows it
    moved = practitioner("dx", ("https://other.example/ids", "x-1"))
    assert site.admin.put("/fhir/Practitioner/dx", json=moved, headers=JSON).status_code == 200
    given = practitioner("dz", (LICENCE, VALUE))
    assert site.admin.put("/fhir/Practitioner/dz", json=given, headers=JSON).status_code == 200
    assert site.dx.get(OBS).status_code in REFUSED
    assert site.dz.get(OBS).status_code == 200

    # a deleted Practitioner carries no identifier any more
    assert site.admin.delete("/fhir/Practitioner/dz").status_code in (200, 204)
    assert site.dz.get(OBS).status_code in REFUSED


def test_only_current_active_identifiers_count(site):
    share(site, recipient())
    old = {"system": LICENCE, "value": VALUE, "use": "old"}
    body = {"resourceType": "Practitioner", "id": "dx", "identifier": [old]}
    assert site.admin.put("/fhir/Practitioner/dx", json=body, headers=JSON).status_code == 200
    assert site.dx.get(OBS).status_code in REFUSED

    expired = {"system": LICENCE, "value": VALUE, "period": {"end": "2001-01-01"}}
    body = {"resourceType": "Practitioner", "id": "dx", "identifier": [expired]}
    assert site.admin.put("/fhir/Practitioner/dx", json=body, headers=JSON).status_code == 200
    assert site.dx.get(OBS).status_code in REFUSED

    inactive = practitioner("dx", (LICENCE, VALUE), active=False)
    assert site.admin.put("/fhir/Practitioner/dx", json=inactive, headers=JSON).status_code == 200
    assert site.dx.get(OBS).status_code in REFUSED

    current = practitioner("dx", (LICENCE, VALUE), active=True)
    assert site.admin.put("/fhir/Practitioner/dx", json=current, headers=JSON).status_code == 200
    assert site.dx.get(OBS).status_code == 200


def test_a_share_to_a_foreign_node_does_not_open_to_a_local_namesake(site):
    """The same identifier registered at another country's node is another person."""
    share(site, recipient(node="PH"))
    assert site.dx.get(OBS).status_code in REFUSED


def test_a_recipient_identifier_needs_a_system(site):
    """An identifier without a system names no one in particular: refused up front."""
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "recipient", "valueIdentifier": {"value": VALUE}}],
    }
    refused = share(site, body, status=400)
    assert refused["issue"][0]["expression"] == ["Parameters.parameter[0]"]
    assert site.dx.get(OBS).status_code in REFUSED
