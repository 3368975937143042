"""The IPS that crosses the border: ``Patient/{proxy}/$summary`` as the reading node
(PH) serves it, each entry verified on chain and tagged, against the IPS Bundle
profile -- with English displays beside the Chinese originals of the MHB codes."""

from __future__ import annotations

import json

import pytest

from tests.conformance.served import IPS_BUNDLE, _issue_line, accepted


@pytest.fixture(scope="module")
def summary_through_ph(tmp_path_factory):
    from anchoring.devchain import anvil_available

    if not anvil_available():
        pytest.skip("anvil is not installed (npm ci): no chain for the federation")
    from fhir_server.demo.network import Network
    from tests.federation.test_cross_border import AT_PH, SANTOS, _people, _receive, _share

    net = Network(tmp_path_factory.mktemp("ips-abroad"), countries=("TW", "PH")).start()
    try:
        tw, ph = net.nodes["TW"], net.nodes["PH"]
        patient_id, lin, doctor = _people(net)
        shared = _share(lin, tw, patient_id, SANTOS, AT_PH)
        received = _receive(doctor, ph, shared["link"]["valueString"])
        proxy = received.json()["parameter"][0]["valueReference"]["reference"].split("/")[1]
        answer = doctor.get(f"{ph.base}/Patient/{proxy}/$summary")
        assert answer.status_code == 200, answer.text
        yield answer.content
    finally:
        net.close()


def test_the_summary_through_ph_conforms_to_the_ips_bundle(summary_through_ph, fhir_validator):
    found = fhir_validator.validate(summary_through_ph, IPS_BUNDLE, "IPS through PH")
    problems = found.errors + [w for w in found.warnings if accepted(w) is None]
    assert not problems, "\n".join(_issue_line(i) for i in problems)


def test_the_summary_through_ph_carries_english_beside_chinese(summary_through_ph):
    document = json.loads(summary_through_ph)
    conditions = [
        e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "Condition"
    ]
    assert len(conditions) == 5
    for condition in conditions:
        coding = condition["code"]["coding"][0]
        assert coding["display"].isascii()  # English display of the ICD-10-CM code
        chinese = coding["_display"]["extension"][0]["extension"]
        assert {"url": "lang", "valueCode": "zh-TW"} in chinese
        assert not condition["code"]["text"].isascii()  # the original Chinese text
        assert any(t["code"] == "verified" for t in condition["meta"]["tag"])
