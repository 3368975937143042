"""Federation failure cases on a network of its own (a real anvil, three nodes): each
gets the right refusal or recovery, nothing half-done."""

from __future__ import annotations

import json

import pytest
import requests

from anchoring.node_chain import open_shared_dev_chain
from federation import assertion
from tests.federation.test_cross_border import (
    AT_PH,
    SANTOS,
    _people,
    _people_once,
    _receive,
    _share,
)


@pytest.fixture
def net(tmp_path):
    from anchoring.devchain import anvil_available

    if not anvil_available():
        pytest.skip("anvil is not installed (npm ci): no chain for the federation")
    from fhir_server.demo.network import Network

    network = Network(tmp_path / "net").start()
    try:
        yield network
    finally:
        network.close()


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    """One network for the cases that leave it usable (each restores what it changed)."""
    from anchoring.devchain import anvil_available

    if not anvil_available():
        pytest.skip("anvil is not installed (npm ci): no chain for the federation")
    from fhir_server.demo.network import Network

    network = Network(tmp_path_factory.mktemp("kept")).start()
    try:
        yield network
    finally:
        network.close()


def _shared_proxy(net):
    tw, ph = net.nodes["TW"], net.nodes["PH"]
    patient_id, lin, doctor = _people_once(net)
    shared = _share(lin, tw, patient_id, SANTOS, AT_PH)
    received = _receive(doctor, ph, shared["link"]["valueString"])
    assert received.status_code == 200, received.text
    proxy = received.json()["parameter"][0]["valueReference"]["reference"].split("/")[1]
    return patient_id, lin, doctor, proxy


def _conditions(doctor, ph, proxy):
    return doctor.get(f"{ph.base}/Condition", params={"patient": proxy})


def _verified(bundle: dict) -> list[str]:
    return [
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if any(t.get("code") == "verified" for t in e["resource"].get("meta", {}).get("tag", []))
    ]


def test_a_voted_out_node_is_refused_on_its_next_call(net):
    tw, ph, th = (net.nodes[c] for c in ("TW", "PH", "TH"))
    _, _, doctor, proxy = _shared_proxy(net)
    assert _conditions(doctor, ph, proxy).status_code == 200  # PH holds a valid token now
    ph_address = ph.node.anchoring.chain.client().address
    removal = tw.node.anchoring.chain.client().propose_remove(ph_address)
    assert th.node.anchoring.chain.client().vote(removal.proposal_id).executed
    tw.node.federation.trust.nodes(fresh=True)  # TW's next look (at most 2 s later anyway)
    refused = _conditions(doctor, ph, proxy)
    assert refused.status_code in (401, 403), refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert "TW" in refused.text


def test_a_replayed_node_assertion_is_refused(kept):
    net = kept
    tw, ph = net.nodes["TW"], net.nodes["PH"]
    token_url = f"{tw.base}/auth/token"
    signed = assertion.sign(ph.node.federation.keys, "PH", token_url, None)
    form = {
        "grant_type": "client_credentials",
        "scope": "system/*.rs",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": signed,
    }
    first = requests.post(token_url, data=form, timeout=30)
    assert first.status_code == 200, first.text
    again = requests.post(token_url, data=form, timeout=30)
    assert again.status_code in (400, 401) and again.json()["error"] == "invalid_client"
    # signed with a key that is not the one on chain: refused too
    from federation.node_keys import load_or_create

    stranger = load_or_create(tw.node.config.data_dir.parent / "stranger")
    forged = {**form, "client_assertion": assertion.sign(stranger, "PH", token_url, None)}
    assert requests.post(token_url, data=forged, timeout=30).json()["error"] == "invalid_client"


def test_home_node_down_is_503_naming_it(net):
    tw, ph = net.nodes["TW"], net.nodes["PH"]
    _, _, doctor, proxy = _shared_proxy(net)
    tw.server.stop()
    down = _conditions(doctor, ph, proxy)
    assert down.status_code == 503, down.text
    body = down.json()
    assert body["resourceType"] == "OperationOutcome"
    assert "TW" in body["issue"][0]["diagnostics"]


def test_chain_down_verifies_from_remembered_roots_and_anchors_resume(net):
    tw, ph = net.nodes["TW"], net.nodes["PH"]
    patient_id, lin, doctor, proxy = _shared_proxy(net)
    before = _verified(_conditions(doctor, ph, proxy).json())
    assert len(before) == 5
    port = net.dev.port
    net.dev.stop()
    during = _conditions(doctor, ph, proxy)
    assert during.status_code == 200, during.text
    assert sorted(_verified(during.json())) == sorted(before)
    # a new record while the chain is down is stored at home, its anchor queued
    written = lin.post(
        f"{tw.base}/Observation",
        json={
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "blood pressure"},
            "subject": {"reference": f"Patient/{patient_id}"},
        },
    )
    assert written.status_code == 201, written.text
    net.dev, _ = open_shared_dev_chain(net.root / "chain", port)
    from tests.federation.test_cross_border import _session, _token

    anchored = _session(_token(tw, "system/*.cruds")).post(f"{tw.base}/$anchor", json={})
    assert anchored.status_code == 200, anchored.text
    assert any(p["name"] == "batch" for p in anchored.json().get("parameter", []))


class _AlterOneCondition:
    """WSGI middleware: TW's software compromised, serving one Condition altered."""

    def __init__(self, app, victim: str):
        self.app, self.victim = app, victim

    def __call__(self, environ, start_response):
        captured = {}

        def keep(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        body = b"".join(self.app(environ, keep))
        if b'"entry"' in body and self.victim.encode() in body:
            bundle = json.loads(body)
            for entry in bundle.get("entry", []):
                if entry.get("resource", {}).get("id") == self.victim:
                    entry["resource"]["recordedDate"] = "1999-01-01"
            body = json.dumps(bundle).encode()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]


def test_a_record_altered_at_home_is_withheld_and_the_rest_shows(kept):
    net = kept
    tw, ph = net.nodes["TW"], net.nodes["PH"]
    _, _, doctor, proxy = _shared_proxy(net)
    before = _verified(_conditions(doctor, ph, proxy).json())
    victim = before[0]
    honest = tw.app.wsgi_app
    tw.app.wsgi_app = _AlterOneCondition(honest, victim)
    try:
        after = _conditions(doctor, ph, proxy)
    finally:
        tw.app.wsgi_app = honest
    assert after.status_code == 200
    shown = _verified(after.json())
    assert victim not in shown and sorted(shown) == sorted(before[1:])
    outcome = after.json()["entry"][-1]
    assert outcome["search"]["mode"] == "outcome"
    assert victim in outcome["resource"]["issue"][0]["diagnostics"]
    assert "hash mismatch" in outcome["resource"]["issue"][0]["diagnostics"]


def test_a_link_used_after_expiry_answers_404(kept):
    net = kept
    tw, ph = net.nodes["TW"], net.nodes["PH"]
    patient_id, lin, doctor = _people_once(net)
    period = {"name": "period", "valuePeriod": {"start": "2020-01-01", "end": "2021-01-01"}}
    shared = _share(lin, tw, patient_id, SANTOS, AT_PH, period)
    link = shared["link"]["valueString"]
    assert _receive(doctor, ph, link).status_code == 404
    from federation import shlink

    decoded = shlink.decode(link)
    assert requests.post(decoded.url, json={"recipient": "x"}, timeout=30).status_code == 404


def test_a_rotated_key_replaces_the_old_at_once(kept):
    net = kept
    from federation import node_keys

    tw, ph = net.nodes["TW"], net.nodes["PH"]
    _, _, doctor, proxy = _shared_proxy(net)
    old = ph.node.federation.keys
    new = node_keys.rotate(ph.node.config.data_dir)
    jwk = json.dumps(new.public_signing_jwk(), sort_keys=True)
    ph.node.anchoring.chain.client().update_self(ph.base, jwk, new.encryption_public_bytes())
    assert ph.node.federation.keys.kid == new.kid != old.kid  # taken up without a restart
    ph.node.federation.client._tokens.clear()  # the next call needs a new token
    assert _conditions(doctor, ph, proxy).status_code == 200
    token_url = f"{tw.base}/auth/token"
    stale = {
        "grant_type": "client_credentials",
        "scope": "system/*.rs",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion.sign(old, "PH", token_url, None),
    }
    assert requests.post(token_url, data=stale, timeout=30).json()["error"] == "invalid_client"


class _DieOnEverything:
    """WSGI middleware: TW dies between the two fetches of a $summary (the document
    came, the proofs never do)."""

    def __init__(self, app, stop):
        self.app, self.stop = app, stop

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").endswith("/$everything"):
            import threading

            threading.Thread(target=self.stop, daemon=True).start()
            start_response("500 Internal Server Error", [("Content-Length", "0")])
            return [b""]
        return self.app(environ, start_response)


def test_home_node_killed_mid_fetch_serves_nothing_partial(net):
    tw, ph = net.nodes["TW"], net.nodes["PH"]
    _, _, doctor, proxy = _shared_proxy(net)
    tw.app.wsgi_app = _DieOnEverything(tw.app.wsgi_app, tw.server.stop)
    answer = doctor.get(f"{ph.base}/Patient/{proxy}/$summary")
    assert answer.status_code in (502, 503), answer.text
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert "TW" in answer.json()["issue"][0]["diagnostics"]
    again = doctor.get(f"{ph.base}/Patient/{proxy}/$summary")  # now down for good
    assert again.status_code == 503 and "TW" in again.text


def test_an_erased_patients_links_die_with_the_record(net):
    tw, ph = net.nodes["TW"], net.nodes["PH"]
    patient_id, lin, doctor = _people(net)
    link = _share(lin, tw, patient_id, SANTOS, AT_PH)["link"]["valueString"]
    erased = lin.post(f"{tw.base}/Patient/{patient_id}/$erase", json={})
    assert erased.status_code == 200, erased.text
    answer = _receive(doctor, ph, link)
    assert answer.status_code == 404, answer.text
    from federation import shlink

    url = shlink.decode(link).url
    assert requests.post(url, json={"recipient": "x"}, timeout=30).status_code == 404


def test_a_home_node_answering_too_much_is_cut_off(kept):
    """More than 32 MiB from another node is never buffered: 503, naming it."""
    tw, ph = kept.nodes["TW"], kept.nodes["PH"]
    _, _, doctor, proxy = _shared_proxy(kept)
    honest = tw.app.wsgi_app

    def flood(environ, start_response):
        if "/Condition" not in environ.get("PATH_INFO", ""):
            return honest(environ, start_response)
        start_response("200 OK", [("Content-Type", "application/fhir+json")])
        return (b" " * (1024 * 1024) for _ in range(40))  # 40 MiB, streamed

    tw.app.wsgi_app = flood
    try:
        answer = _conditions(doctor, ph, proxy)
    finally:
        tw.app.wsgi_app = honest
    assert answer.status_code == 503, answer.text[:300]
    assert "32 MiB" in answer.json()["issue"][0]["diagnostics"]
