"""The federation with each country's node a real ``phrx serve`` process on its own
address (TW 127.0.0.2, PH 127.0.0.3; gunicorn, one worker) and a real anvil: the home
node killed outright (SIGKILL) and started again -- PH answers 503 naming it meanwhile,
then serves the same verified record, and nothing acknowledged is lost; the refusal
and the reads are audited at TW."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from fhir_server.demo.journey import AT_PH, PRC, SANTOS, post_mhb, post_share, put_practitioner
from tests.federation.test_cross_border import _receive

PHRX = Path(sys.executable).parent / "phrx"
HOSTS = {"TW": "127.0.0.2", "PH": "127.0.0.3"}


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class NodeProcess:
    def __init__(self, root: Path, country: str, chain_url: str):
        self.country = country
        self.data_dir = root / country.lower()
        self.host = HOSTS[country]
        self.port = _free_port(self.host)
        self.base = f"http://{self.host}:{self.port}/fhir"
        self.chain_url = chain_url
        self.proc: subprocess.Popen | None = None

    def start(self) -> NodeProcess:
        argv = [str(PHRX), "serve", "--host", self.host, "--port", str(self.port)]
        argv += ["--data-dir", str(self.data_dir), "--chain", self.chain_url]
        argv += ["--country", self.country, "--base-url", self.base, "--anchor-interval", "1"]
        log = (self.data_dir.parent / f"{self.country}.out").open("ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"phrx serve {self.country} exited: {self.proc.returncode}")
            try:
                if requests.get(f"{self.base}/metadata", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"phrx serve {self.country} did not come up")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def token(self, scope: str, username: str | None = None) -> requests.Session:
        """A token as ``phrx token`` issues it (same code, on the same data dir)."""
        from fhir_server.node import Node, NodeConfig
        from fhir_server.smart.operator import issue_operator_token
        from fhir_server.smart.service import SmartService

        node = Node(NodeConfig(data_dir=self.data_dir))
        try:
            token = issue_operator_token(
                SmartService(node), self.base, scope, username=username, lifetime=3600
            )
        finally:
            node.close()
        http = requests.Session()
        http.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/fhir+json",
                "Accept": "application/fhir+json",
            }
        )
        return http

    def add_user(self, username: str, role: str, fhir_user: str) -> None:
        from fhir_server.node import Node, NodeConfig
        from fhir_server.smart.service import SmartService

        node = Node(NodeConfig(data_dir=self.data_dir))
        try:
            SmartService(node).users.add(username, role, fhir_user, "pw-" + username * 3)
        finally:
            node.close()

    def chain_client(self):
        from anchoring.node_chain import NodeChain

        return NodeChain(self.data_dir, self.chain_url, country=self.country).open().client()


def _join(member: NodeProcess, voters: list[NodeProcess]) -> None:
    from federation import node_keys

    keys = node_keys.load_or_create(member.data_dir)
    jwk = json.dumps(keys.public_signing_jwk(), sort_keys=True)
    request = member.chain_client().request_join(
        member.country, member.base, jwk, keys.encryption_public_bytes()
    )
    admitted = request.executed
    for voter in voters:
        if not admitted:
            admitted = voter.chain_client().vote(request.proposal_id).executed
    assert admitted


@pytest.fixture(scope="module")
def processes(tmp_path_factory):
    from anchoring.devchain import anvil_available
    from anchoring.node_chain import open_shared_dev_chain

    if not anvil_available() or not PHRX.exists():
        pytest.skip("anvil (npm ci) or the installed phrx command is missing")
    root = tmp_path_factory.mktemp("processes")
    dev, _ = open_shared_dev_chain(root / "chain")
    tw = NodeProcess(root, "TW", dev.url)
    ph = NodeProcess(root, "PH", dev.url)
    try:
        tw.start()
        ph.start()
        _join(tw, [])
        _join(ph, [tw])
        yield tw, ph
    finally:
        tw.stop()
        ph.stop()
        dev.stop()


def test_home_node_killed_then_back_nothing_lost(processes):
    tw, ph = processes
    patient = tw.token("system/*.cruds").post(
        f"{tw.base}/Patient", json={"resourceType": "Patient", "name": [{"family": "Lin"}]}
    )
    patient_id = patient.json()["id"]
    tw.add_user("lin", "patient", f"Patient/{patient_id}")
    lin = tw.token("patient/*.cruds openid fhirUser", "lin")
    post_mhb(lin, tw.base, patient_id).raise_for_status()
    tw.token("system/*.cruds").post(f"{tw.base}/$anchor", json={}).raise_for_status()
    put_practitioner(ph.token("system/*.cruds"), ph.base, "dr-santos", "Santos", (PRC, "0123456"))
    ph.add_user("dr-santos", "practitioner", "Practitioner/dr-santos")
    doctor = ph.token("user/*.cruds openid fhirUser", "dr-santos")
    rw = {"name": "access", "valueCode": "read-write"}
    shared = post_share(lin, tw.base, patient_id, SANTOS, AT_PH, rw)
    link = next(p["valueString"] for p in shared.json()["parameter"] if p["name"] == "link")
    received = _receive(doctor, ph, link)
    assert received.status_code == 200, received.text
    proxy = received.json()["parameter"][0]["valueReference"]["reference"].split("/")[1]
    written = doctor.post(
        f"{ph.base}/Condition",
        json={
            "resourceType": "Condition",
            "code": {"text": "Headache"},
            "subject": {"reference": f"Patient/{proxy}"},
        },
    )
    assert written.status_code == 201, written.text
    shown_before = _verified(doctor.get(f"{ph.base}/Condition", params={"patient": proxy}))
    assert len(shown_before) >= 5  # the write-back shows once anchored (1 s batches)

    tw.kill()  # SIGKILL: no shutdown, no flush beyond what was committed
    down = doctor.get(f"{ph.base}/Condition", params={"patient": proxy})
    assert down.status_code == 503, down.text
    assert "TW" in down.json()["issue"][0]["diagnostics"]

    tw.start()  # same data dir, same port, same keys
    time.sleep(1.5)  # the restarted batcher anchors what was acknowledged (1 s interval)
    tw.token("system/*.cruds").post(f"{tw.base}/$anchor", json={}).raise_for_status()
    after = doctor.get(f"{ph.base}/Condition", params={"patient": proxy})
    assert after.status_code == 200, after.text
    verified = _verified(after)
    new_id = written.headers["Location"].split("/Condition/")[1].split("/")[0]
    # every diagnosis, the written-back one included, came back and verified
    assert verified == shown_before | {new_id} and len(verified) == 6
    # TW's access log holds the PH doctor's reads and the write-back
    log = lin.get(f"{tw.base}/AuditEvent", params={"patient": patient_id, "_count": "500"})
    assert "0123456" in log.text and '"PH"' in log.text


def _verified(response) -> set[str]:
    return {
        e["resource"]["id"]
        for e in response.json().get("entry", [])
        if any(t.get("code") == "verified" for t in e["resource"].get("meta", {}).get("tag", []))
    }
