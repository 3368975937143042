"""The journey across borders on real nodes: TW holds the patient's records, a PH
doctor reads them through PH (verified there against the chain) and writes back."""

from __future__ import annotations

import requests

from fhir_server.smart.operator import issue_operator_token
from mhb_import.synthetic import dumps_json, scenario_export

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
PRC = "https://www.prc.gov.ph/license"


def _token(member, scope, username=None):
    smart = member.app.extensions["phrx.smart"].service
    return issue_operator_token(smart, member.base, scope, username=username, lifetime=600)


def _session(token):
    http = requests.Session()
    http.headers.update({**JSON, "Authorization": f"Bearer {token}"})
    return http


def _people(network):
    tw, ph = network.nodes["TW"], network.nodes["PH"]
    operator_tw = _session(_token(tw, "system/*.cruds"))
    patient = operator_tw.post(
        f"{tw.base}/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Lin", "given": ["Mei-Hua"]}]},
    ).json()
    smart_tw = tw.app.extensions["phrx.smart"].service
    smart_tw.users.add("lin", "patient", f"Patient/{patient['id']}", "pw-lin-123456")
    operator_ph = _session(_token(ph, "system/*.cruds"))
    operator_ph.put(
        f"{ph.base}/Practitioner/dr-santos",
        json={
            "resourceType": "Practitioner",
            "id": "dr-santos",
            "identifier": [{"system": PRC, "value": "0123456"}],
            "name": [{"family": "Santos", "prefix": ["Dr."]}],
        },
    ).raise_for_status()
    smart_ph = ph.app.extensions["phrx.smart"].service
    smart_ph.users.add("dr-santos", "practitioner", "Practitioner/dr-santos", "pw-santos-1234")
    lin = _session(_token(tw, "patient/*.cruds openid fhirUser", "lin"))
    url = f"{tw.base}/Patient/{patient['id']}/$import-mhb"
    lin.post(
        url, data=dumps_json(scenario_export()), headers={"Content-Type": "application/json"}
    ).raise_for_status()
    operator_tw.post(f"{tw.base}/$anchor", json={}).raise_for_status()
    doctor = _session(_token(ph, "user/*.cruds openid fhirUser", "dr-santos"))
    return patient["id"], lin, doctor


def test_three_countries_joined_by_vote(network):
    listed = {a.country: a.fhir_base_url for a in network.authorities()}
    assert listed == {c: m.base for c, m in network.nodes.items()}


def test_share_read_verify_write_back(network):
    tw, ph = network.nodes["TW"], network.nodes["PH"]
    patient_id, lin, doctor = _people(network)
    shared = lin.post(
        f"{tw.base}/Patient/{patient_id}/$share",
        json={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "recipient", "valueIdentifier": {"system": PRC, "value": "0123456"}},
                {"name": "recipientNode", "valueCode": "PH"},
                {"name": "access", "valueCode": "read-write"},
            ],
        },
    )
    assert shared.status_code == 201, shared.text
    params = {p["name"]: p for p in shared.json()["parameter"]}
    link = params["link"]["valueString"]
    assert link.startswith("shlink:/")
    received = doctor.post(
        f"{ph.base}/$receive-share",
        json={"resourceType": "Parameters", "parameter": [{"name": "link", "valueString": link}]},
    )
    assert received.status_code == 200, received.text
    proxy = received.json()["parameter"][0]["valueReference"]["reference"].split("/")[1]
    conditions = doctor.get(f"{ph.base}/Condition", params={"patient": proxy})
    assert conditions.status_code == 200, conditions.text
    found = [
        e["resource"]
        for e in conditions.json()["entry"]
        if e["resource"]["resourceType"] == "Condition"
    ]
    assert len(found) == 5
    assert all(any(t["code"] == "verified" for t in c["meta"]["tag"]) for c in found)
    summary = doctor.get(f"{ph.base}/Patient/{proxy}/$summary")
    assert summary.status_code == 200, summary.text
    read = doctor.get(f"{ph.base}/Patient/{proxy}")
    assert read.status_code == 200 and read.json()["id"] == proxy
    written = doctor.post(
        f"{ph.base}/Condition",
        json={
            "resourceType": "Condition",
            "code": {"text": "Headache"},
            "subject": {"reference": f"Patient/{proxy}"},
        },
    )
    assert written.status_code == 201, written.text
    assert written.headers["Location"].startswith(tw.base)
