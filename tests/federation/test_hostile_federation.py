"""Hostile input to the federation's endpoints: every malformed request gets a clear
4xx OperationOutcome (or an OAuth error at the token endpoint), never a 500."""

from __future__ import annotations

import pytest
import requests

from federation import assertion, shlink
from tests.federation.test_cross_border import (
    AT_PH,
    SANTOS,
    _people_once,
    _receive,
    _session,
    _share,
    _token,
)


@pytest.fixture(scope="module")
def shared(network):
    tw, ph = network.nodes["TW"], network.nodes["PH"]
    patient_id, lin, doctor = _people_once(network)
    link = _share(lin, tw, patient_id, SANTOS, AT_PH)["link"]["valueString"]
    proxy = _receive(doctor, ph, link).json()["parameter"][0]["valueReference"]["reference"]
    return link, proxy.split("/")[1], lin, doctor


def _outcome(response, *statuses):
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[" * 5000, b'{"passcode": "x"}', b'{"recipient": 5}', b"[]", b"x" * 70_000],
)
def test_malformed_manifest_requests_are_400(network, shared, body):
    url = shlink.decode(shared[0]).url
    answer = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
    _outcome(answer, 400)


def test_unknown_or_odd_manifest_ids_are_404_and_a_get_is_refused(network, shared):
    url = shlink.decode(shared[0]).url
    base = url.rsplit("/", 1)[0]
    for odd in ("nope", "x" * 300, "%00", "..%2F..%2Fmetadata"):
        _outcome(requests.post(f"{base}/{odd}", json={"recipient": "r"}, timeout=30), 404)
    _outcome(requests.get(url, timeout=30), 404, 405)  # a manifest is POSTed only
    # a bearer token that does not verify is refused, never ignored
    bad = requests.post(
        url, json={"recipient": "r"}, headers={"Authorization": "Bearer junk"}, timeout=30
    )
    _outcome(bad, 401)


@pytest.mark.parametrize(
    "body",
    [
        {"resourceType": "Patient"},
        {"resourceType": "Parameters"},
        {"resourceType": "Parameters", "parameter": [{"name": "link", "valueInteger": 3}]},
        {
            "resourceType": "Parameters",
            "parameter": [{"name": "link", "valueString": "shlink:/%%%"}],
        },
        {"resourceType": "Parameters", "parameter": [{"name": "link", "valueString": "x" * 5000}]},
        {"resourceType": "Parameters", "parameter": "not a list"},
    ],
)
def test_malformed_receive_share_is_400(network, shared, body):
    ph = network.nodes["PH"]
    _outcome(shared[3].post(f"{ph.base}/$receive-share", json=body), 400)


def test_receive_share_needs_a_clinician_with_a_token(network, shared):
    ph = network.nodes["PH"]
    params = {
        "resourceType": "Parameters",
        "parameter": [{"name": "link", "valueString": shared[0]}],
    }
    _outcome(requests.post(f"{ph.base}/$receive-share", json=params, timeout=30), 401)
    operator = _session(_token(ph, "system/*.cruds"))
    _outcome(operator.post(f"{ph.base}/$receive-share", json=params), 403)


def test_proxies_answer_like_missing_patients_to_anyone_else(network, shared):
    ph = network.nodes["PH"]
    _, proxy, _, doctor = shared
    operator = _session(_token(ph, "system/*.cruds"))
    _outcome(operator.get(f"{ph.base}/Patient/{proxy}"), 404)
    _outcome(doctor.get(f"{ph.base}/Patient/x-0000/$summary"), 404)
    _outcome(doctor.get(f"{ph.base}/Condition", params={"patient": "x-" + "f" * 100}), 404)


def test_write_back_of_other_types_is_refused(network, shared):
    ph = network.nodes["PH"]
    _, proxy, _, doctor = shared
    body = {
        "resourceType": "Procedure",
        "status": "completed",
        "subject": {"reference": f"Patient/{proxy}"},
    }
    _outcome(doctor.post(f"{ph.base}/Procedure", json=body), 403, 405)
    mismatched = {"resourceType": "Observation", "subject": {"reference": f"Patient/{proxy}"}}
    _outcome(doctor.post(f"{ph.base}/Condition", json=mismatched), 400)


@pytest.mark.parametrize("client_id", ["node.ZZ", "node.tw", "node.PHX", "node."])
def test_assertions_of_unknown_nodes_are_invalid_client(network, client_id):
    tw, ph = network.nodes["TW"], network.nodes["PH"]
    token_url = f"{tw.base}/auth/token"
    signed = assertion.sign(ph.node.federation.keys, "PH", token_url, None)
    from joserfc import jwt

    key = ph.node.federation.keys.signing
    claims = {**jwt.decode(signed, key, algorithms=["ES384"]).claims}
    claims.update(iss=client_id, sub=client_id)
    forged = jwt.encode({"alg": "ES384"}, claims, key, algorithms=["ES384"])
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": forged,
    }
    answer = requests.post(token_url, data=form, timeout=30)
    assert answer.status_code in (400, 401) and answer.json()["error"] == "invalid_client"
