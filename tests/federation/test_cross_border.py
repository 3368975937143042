"""The journey across borders on real nodes: TW holds the patient's records, a PH
doctor reads them through PH (verified there against the chain) and writes back."""

from __future__ import annotations

import json

import requests

from fhir_server.demo.journey import AT_PH, PRC, SANTOS, post_mhb, post_share, put_practitioner
from fhir_server.smart.operator import issue_operator_token

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


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
    put_practitioner(operator_ph, ph.base, "dr-santos", "Santos", (PRC, "0123456"))
    smart_ph = ph.app.extensions["phrx.smart"].service
    smart_ph.users.add("dr-santos", "practitioner", "Practitioner/dr-santos", "pw-santos-1234")
    lin = _session(_token(tw, "patient/*.cruds openid fhirUser", "lin"))
    post_mhb(lin, tw.base, patient["id"]).raise_for_status()

    operator_tw.post(f"{tw.base}/$anchor", json={}).raise_for_status()
    doctor = _session(_token(ph, "user/*.cruds openid fhirUser", "dr-santos"))
    return patient["id"], lin, doctor


def test_three_countries_joined_by_vote(network):
    listed = {a.country: a.fhir_base_url for a in network.authorities()}
    assert listed == {c: m.base for c, m in network.nodes.items()}


def test_share_read_verify_write_back(network):
    tw, ph = network.nodes["TW"], network.nodes["PH"]
    patient_id, lin, doctor = _people_once(network)
    shared = post_share(lin, tw.base, patient_id, SANTOS, AT_PH, READ_WRITE)
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
    kinds = [e["resource"]["resourceType"] for e in summary.json()["entry"]]
    assert kinds[0] == "Composition" and "OperationOutcome" not in kinds, kinds
    tagged = [
        e["resource"]
        for e in summary.json()["entry"]
        if any(t.get("code") == "verified" for t in e["resource"].get("meta", {}).get("tag", []))
    ]
    assert {"Patient", "Condition", "MedicationRequest"} <= {r["resourceType"] for r in tagged}
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
    location = written.headers["Location"]
    assert location.startswith(tw.base)
    # at home: stored under the patient, with a Provenance naming the PH doctor and node
    new_id = location.split("/Condition/")[1].split("/")[0]
    stored = lin.get(f"{tw.base}/Condition/{new_id}")
    assert stored.status_code == 200
    assert stored.json()["subject"]["reference"] == f"Patient/{patient_id}"
    provenance = lin.get(f"{tw.base}/Provenance", params={"target": f"Condition/{new_id}"})
    agents = [
        a
        for e in provenance.json().get("entry", [])
        if e["resource"]["resourceType"] == "Provenance" and "agent" in e["resource"]
        for a in e["resource"]["agent"]
        if a.get("onBehalfOf", {}).get("identifier", {}).get("value") == "PH"
    ]
    assert agents and agents[0]["who"]["identifier"] == {"system": PRC, "value": "0123456"}
    from fhir_server.validation import validate_resource

    validate_resource(
        next(
            e["resource"]
            for e in provenance.json()["entry"]
            if "agent" in e["resource"] and e["resource"]["agent"][0].get("onBehalfOf")
        )
    )


def test_write_back_without_write_permission_stores_nothing(network):
    tw, ph = network.nodes["TW"], network.nodes["PH"]
    patient_id, lin, doctor = _people_once(network)
    _revoke_all(lin, tw, patient_id)  # earlier tests' read-write shares
    shared = _share(lin, tw, patient_id, SANTOS, AT_PH, {"name": "access", "valueCode": "read"})
    proxy = _receive(doctor, ph, shared["link"]["valueString"]).json()["parameter"][0]
    proxy = proxy["valueReference"]["reference"].split("/")[1]
    operator = _session(_token(tw, "system/*.cruds"))
    before = operator.get(
        f"{tw.base}/Condition", params={"patient": patient_id, "_summary": "count"}
    )
    refused = doctor.post(
        f"{ph.base}/Condition",
        json={
            "resourceType": "Condition",
            "code": {"text": "x"},
            "subject": {"reference": f"Patient/{proxy}"},
        },
    )
    after = operator.get(
        f"{tw.base}/Condition", params={"patient": patient_id, "_summary": "count"}
    )
    assert refused.status_code == 403, refused.text
    assert after.json()["total"] == before.json()["total"]
    # reading is still allowed under the read-only share
    assert doctor.get(f"{ph.base}/Condition", params={"patient": proxy}).status_code == 200


def _revoke_all(lin, tw, patient_id):
    revoke = {"name": "revoke", "valueBoolean": True}
    answer = post_share(lin, tw.base, patient_id, SANTOS, AT_PH, revoke)
    assert answer.status_code in (200, 404), answer.text


def _share(lin, tw, patient_id, *extra):
    answer = post_share(lin, tw.base, patient_id, *extra)
    assert answer.status_code == 201, answer.text
    return {p["name"]: p for p in answer.json()["parameter"]}


def _receive(doctor, ph, link, passcode=None):
    params = [{"name": "link", "valueString": link}]
    if passcode:
        params.append({"name": "passcode", "valueString": passcode})
    return doctor.post(
        f"{ph.base}/$receive-share", json={"resourceType": "Parameters", "parameter": params}
    )


READ_WRITE = {"name": "access", "valueCode": "read-write"}


def test_revocation_cuts_the_next_read_and_a_th_doctor_is_refused(network):
    tw, ph, th = network.nodes["TW"], network.nodes["PH"], network.nodes["TH"]
    patient_id, lin, doctor = _people_once(network)
    shared = _share(lin, tw, patient_id, SANTOS, AT_PH)
    received = _receive(doctor, ph, shared["link"]["valueString"])
    proxy = received.json()["parameter"][0]["valueReference"]["reference"].split("/")[1]
    assert doctor.get(f"{ph.base}/Condition", params={"patient": proxy}).status_code == 200
    # the same link redeemed by a TH doctor: TW's Consent names the PH doctor only
    operator_th = _session(_token(th, "system/*.cruds"))
    put_practitioner(
        operator_th, th.base, "dr-chai", "Chai", ("https://tmc.or.th/license", "TH-77")
    )
    th.app.extensions["phrx.smart"].service.users.add(
        "dr-chai", "practitioner", "Practitioner/dr-chai", "pw-chai-123456"
    )
    chai = _session(_token(th, "user/*.cruds openid fhirUser", "dr-chai"))
    refused = _receive(chai, th, shared["link"]["valueString"])
    assert refused.status_code == 403, refused.text
    # another PH user cannot use the PH doctor's proxy
    assert chai.get(f"{th.base}/Patient/{proxy}").status_code == 404
    # every share with the PH doctor (the first test's too)
    revoke = {"name": "revoke", "valueBoolean": True}
    revoked = post_share(lin, tw.base, patient_id, SANTOS, AT_PH, revoke)
    assert revoked.status_code == 200, revoked.text
    after = doctor.get(f"{ph.base}/Condition", params={"patient": proxy})
    assert after.status_code == 403, after.text
    again = _receive(doctor, ph, shared["link"]["valueString"])
    assert again.status_code == 404  # a revoked link answers 404, nothing else


def test_passcode_cap_kills_the_link(network):
    tw, ph = network.nodes["TW"], network.nodes["PH"]
    patient_id, lin, doctor = _people_once(network)
    shared = _share(lin, tw, patient_id, SANTOS, AT_PH, {"name": "passcode", "valueString": "4711"})
    link = shared["link"]["valueString"]
    from federation import shlink

    assert shlink.decode(link).flag == "P"
    for _ in range(5):
        wrong = _receive(doctor, ph, link, "0000")
        assert wrong.status_code == 401, wrong.text
        assert "attempt(s) left" in wrong.text
    assert _receive(doctor, ph, link, "4711").status_code == 404  # dead for good


def test_anyone_link_opens_in_a_plain_shl_viewer(network):
    tw = network.nodes["TW"]
    patient_id, lin, _ = _people_once(network)
    shared = _share(lin, tw, patient_id)  # no recipient: whoever the link reaches
    from federation import shlink

    link = shlink.decode(shared["link"]["valueString"])
    assert shared["qr"]["valueAttachment"]["contentType"] == "image/png"
    manifest = requests.post(link.url, json={"recipient": "Viewer test"}, timeout=30)
    assert manifest.status_code == 200, manifest.text
    assert manifest.json()["status"] == "can-change"
    files = manifest.json()["files"]
    assert files[0]["contentType"] == "application/fhir+json;fhirVersion=4.0.1"
    ips = json_of(shlink.decrypt(link.key, files[0]["embedded"]))
    assert ips["type"] == "document"
    assert ips["entry"][0]["resource"]["resourceType"] == "Composition"
    # a forged link naming a host off the trust list is never called by PH
    forged = shlink.ShareLink("http://127.0.0.9:9/fhir/shl/abc", link.key).encode()
    ph, doctor = network.nodes["PH"], _people_once(network)[2]
    answer = _receive(doctor, ph, forged)
    assert answer.status_code == 403 and "trust list" in answer.text


def json_of(raw: bytes) -> dict:
    import json

    return json.loads(raw)


_PEOPLE: dict[int, tuple] = {}  # id(network) -> (network, its patient, lin, doctor)


def _people_once(network):
    """The scenario's people on ``network``, made once per network."""
    held = _PEOPLE.get(id(network))
    if held is None or held[0] is not network:
        held = _PEOPLE[id(network)] = (network, *_people(network))
    return held[1:]


def test_the_demo_journey_behaves_on_a_fresh_network(tmp_path):
    """The steps ``make demo`` runs across TW, PH and TH, as an automated test."""
    from fhir_server.demo.journey import Journey
    from fhir_server.demo.network import Network

    net = Network(tmp_path / "journey").start()
    try:
        assert Journey(net).run() == 0
    finally:
        net.close()


def test_the_home_node_decides_by_the_consent_the_reader_acts_under(network):
    """Two shares with the same doctor: reading through the proxy of the narrow one
    (Conditions only) releases no medication, though the broad one would."""
    tw, ph = network.nodes["TW"], network.nodes["PH"]
    patient_id, lin, doctor = _people_once(network)
    _revoke_all(lin, tw, patient_id)
    broad = _share(lin, tw, patient_id, SANTOS, AT_PH)
    narrow = _share(lin, tw, patient_id, SANTOS, AT_PH, {"name": "class", "valueCode": "Condition"})
    _receive(doctor, ph, broad["link"]["valueString"])
    received = _receive(doctor, ph, narrow["link"]["valueString"])  # the proxy now acts under it
    proxy = received.json()["parameter"][0]["valueReference"]["reference"].split("/")[1]
    assert doctor.get(f"{ph.base}/Condition", params={"patient": proxy}).status_code == 200
    medications = doctor.get(f"{ph.base}/MedicationRequest", params={"patient": proxy})
    assert medications.status_code == 403, medications.text
    _receive(doctor, ph, broad["link"]["valueString"])  # back under the broad share
    medications = doctor.get(f"{ph.base}/MedicationRequest", params={"patient": proxy})
    assert medications.status_code == 200, medications.text


def test_the_link_can_be_handed_over_as_a_picture_of_its_qr_code(network):
    tw, ph = network.nodes["TW"], network.nodes["PH"]
    patient_id, lin, doctor = _people_once(network)
    shared = _share(lin, tw, patient_id, SANTOS, AT_PH)
    picture = shared["qr"]["valueAttachment"]
    params = [
        {"name": "qr", "valueAttachment": {"contentType": "image/png", "data": picture["data"]}}
    ]
    received = doctor.post(
        f"{ph.base}/$receive-share", json={"resourceType": "Parameters", "parameter": params}
    )
    assert received.status_code == 200, received.text
    assert received.json()["parameter"][0]["valueReference"]["reference"].startswith("Patient/x-")
    params = [{"name": "qr", "valueAttachment": {"contentType": "image/png", "data": "@@@"}}]
    bad = doctor.post(
        f"{ph.base}/$receive-share", json={"resourceType": "Parameters", "parameter": params}
    )
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"


def test_search_parameters_reach_the_home_node(network):
    """A reading node adds nothing and drops nothing: the home node filters (and
    refuses what it does not know) exactly as for its own users."""
    tw, ph = network.nodes["TW"], network.nodes["PH"]
    patient_id, lin, doctor = _people_once(network)
    _revoke_all(lin, tw, patient_id)
    shared = _share(lin, tw, patient_id, SANTOS, AT_PH)
    received = _receive(doctor, ph, shared["link"]["valueString"])
    proxy = received.json()["parameter"][0]["valueReference"]["reference"].split("/")[1]
    one_day = doctor.get(
        f"{ph.base}/Condition", params={"patient": proxy, "recorded-date": "2017-10-10"}
    )
    assert one_day.status_code == 200, one_day.text
    dates = [
        e["resource"]["recordedDate"]
        for e in one_day.json()["entry"]
        if e["resource"]["resourceType"] == "Condition"
    ]
    assert dates == ["2017-10-10"]
    unknown = {"patient": proxy, "no-such": "x"}
    strict = doctor.get(
        f"{ph.base}/Condition", params=unknown, headers={"Prefer": "handling=strict"}
    )
    assert strict.status_code == 400 and strict.json()["resourceType"] == "OperationOutcome"
    lenient = doctor.get(f"{ph.base}/Condition", params=unknown)  # TW ignores it, as for its own
    assert lenient.status_code == 200


def test_a_share_with_a_clinician_at_home_issues_no_link_unless_asked(network):
    tw = network.nodes["TW"]
    patient_id, lin, _ = _people_once(network)
    local = {"name": "recipient", "valueReference": {"reference": "Practitioner/dr-home"}}
    assert "link" not in _share(lin, tw, patient_id, local)
    asked = _share(lin, tw, patient_id, local, {"name": "link", "valueBoolean": True})
    assert asked["link"]["valueString"].startswith("shlink:/")
    abroad = _share(lin, tw, patient_id, SANTOS, AT_PH, {"name": "link", "valueBoolean": False})
    assert "link" not in abroad and "qr" not in abroad


def test_files_beyond_the_viewers_embedded_length_come_by_location(network):
    tw = network.nodes["TW"]
    patient_id, lin, _ = _people_once(network)
    from federation import shlink

    link = shlink.decode(_share(lin, tw, patient_id)["link"]["valueString"])
    manifest = requests.post(link.url, json={"recipient": "viewer", "embeddedLengthMax": 200})
    assert manifest.status_code == 200, manifest.text
    files = manifest.json()["files"]
    assert all("location" in f and "embedded" not in f for f in files)
    fetched = requests.get(files[0]["location"], timeout=30)
    assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "application/jose"
    assert json.loads(shlink.decrypt(link.key, fetched.text))["type"] == "document"
    assert requests.get(files[0]["location"] + "x", timeout=30).status_code == 404
    big_enough = requests.post(link.url, json={"recipient": "v", "embeddedLengthMax": 10**9})
    assert all("embedded" in f for f in big_enough.json()["files"])
    bad = requests.post(link.url, json={"recipient": "v", "embeddedLengthMax": "many"})
    assert bad.status_code == 400
