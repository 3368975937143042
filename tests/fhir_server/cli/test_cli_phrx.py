"""The operator CLI, run as the installed ``phrx`` binary in subprocesses."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

PHRX = Path(sys.executable).parent / "phrx"
SUBCOMMANDS = ["serve", "load", "demo", "bench"]


@pytest.fixture(scope="module")
def phrx_bin() -> Path:
    if not PHRX.exists():
        pytest.skip(f"{PHRX} is not installed (pip install -e .)")
    return PHRX


def run(phrx_bin, *args, timeout=120, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PHRX_DATA_DIR", None)
    return subprocess.run(
        [str(phrx_bin), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("phrx: error:")
    return lines[0]


def test_help_lists_subcommands(phrx_bin):
    result = run(phrx_bin, "--help")
    assert result.returncode == 0
    assert "FHIR R4" in result.stdout
    for name in SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_subcommand_help(phrx_bin, command):
    result = run(phrx_bin, command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: phrx {command}")
    assert result.stderr == ""


def test_serve_help_documents_options(phrx_bin):
    out = run(phrx_bin, "serve", "--help").stdout
    for option in ("--host", "--port", "--data-dir", "--database-url", "--workers"):
        assert option in out


def test_load_sample_bundle(phrx_bin, tmp_path):
    from tests.sample_data import scenario_patient_bundle

    bundle = scenario_patient_bundle()
    path = tmp_path / "sample.json"
    path.write_text(json.dumps(bundle))
    data = tmp_path / "data"
    result = run(phrx_bin, "load", str(path), "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    entries = len(bundle["entry"])
    assert f"loaded 1 bundle(s), {entries} entries" in result.stdout
    assert "Traceback" not in result.stderr

    # the data really landed, encrypted, in that data dir
    from fhir_server.node import Node, NodeConfig

    node = Node(NodeConfig(data_dir=data))
    try:
        total, _rows = node.store.history(count=0)
        assert total == entries
        _n, patients = node.store.history("Patient")
        patient = node.store.open_version(patients[0])
        assert patient["name"][0]["family"] == bundle["entry"][0]["resource"]["name"][0]["family"]
    finally:
        node.close()


def test_load_directory(phrx_bin, tmp_path):
    from tests.sample_data import scenario_patient_bundle

    folder = tmp_path / "bundles"
    folder.mkdir()
    sizes = 0
    for n in range(2):
        bundle = scenario_patient_bundle(family=f"Fam{n}")
        sizes += len(bundle["entry"])
        (folder / f"b{n}.json").write_text(json.dumps(bundle))
    result = run(phrx_bin, "load", str(folder), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    assert f"loaded 2 bundle(s), {sizes} entries" in result.stdout


def test_load_missing_path(phrx_bin, tmp_path):
    line = one_error_line(
        run(phrx_bin, "load", str(tmp_path / "nope.json"), "--data-dir", str(tmp_path / "d"))
    )
    assert "nope.json" in line


def test_load_non_json(phrx_bin, tmp_path):
    path = tmp_path / "notes.json"
    path.write_text("this is not json")
    line = one_error_line(run(phrx_bin, "load", str(path), "--data-dir", str(tmp_path / "d")))
    assert "notes.json" in line
    assert "JSON" in line


def test_load_non_bundle(phrx_bin, tmp_path):
    path = tmp_path / "patient.json"
    path.write_text(json.dumps({"resourceType": "Patient"}))
    line = one_error_line(run(phrx_bin, "load", str(path), "--data-dir", str(tmp_path / "d")))
    assert "patient.json" in line
    assert "Bundle" in line


def test_load_invalid_bundle_stores_nothing(phrx_bin, tmp_path):
    bad = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {"resourceType": "Observation", "code": {"text": "x"}},
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    line = one_error_line(run(phrx_bin, "load", str(path), "--data-dir", str(tmp_path / "d")))
    assert "Observation.status" in line
    assert "Bundle.entry[1]" in line

    from fhir_server.node import Node, NodeConfig

    node = Node(NodeConfig(data_dir=tmp_path / "d"))
    try:
        assert node.store.history(count=0)[0] == 0
    finally:
        node.close()


def test_non_loopback_binds_are_allowed_with_a_tls_warning():
    from fhir_server.serving import check_loopback

    assert check_loopback("127.0.0.1") is None
    assert check_loopback("localhost") is None
    warning = check_loopback("0.0.0.0")
    assert warning.startswith("WARNING: binding 0.0.0.0 over plain HTTP")
    assert "TLS" in warning


@pytest.mark.slow
def test_serve_binds_non_loopback_and_warns(phrx_bin, tmp_path):
    port = _free_port()
    args = ["serve", "--host", "0.0.0.0", "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(
        [str(phrx_bin), *args, "--data-dir", str(tmp_path / "d")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, status = time.monotonic() + 90, None
        while time.monotonic() < deadline and status != 200:
            if proc.poll() is not None:
                pytest.fail(f"phrx serve exited early: {proc.stderr.read()[-2000:]}")
            try:
                status = requests.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=5)
                status = status.status_code
            except requests.ConnectionError:
                time.sleep(0.3)
        assert status == 200
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert "WARNING: binding 0.0.0.0 over plain HTTP" in proc.stderr.read()
    assert "consent enforced" in proc.stdout.read()


@pytest.mark.slow
def test_demo_exit(phrx_bin, tmp_path):
    """The three-country demo runs every check, reports each, and exits 0 (one run:
    it starts a chain and three nodes)."""
    result = run(phrx_bin, "demo", "--exit", "--port", "0", "--data-dir", str(tmp_path / "demo"))
    assert "[ok  ] GET /metadata" in result.stdout
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stdout[-2000:]
    assert "all steps behaved" in result.stdout
    assert "[FAIL]" not in result.stdout
    assert "TH: a doctor without consent is refused" in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_serve_serves_and_initialises_data_dir(phrx_bin, tmp_path):
    data = tmp_path / "node"
    port = _free_port()
    proc = subprocess.Popen(
        [str(phrx_bin), "serve", "--port", str(port), "--data-dir", str(data), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"phrx serve exited early: {proc.stderr.read()[-2000:]}")
            try:
                response = requests.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=5)
                status = response.status_code
                if status == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        assert status == 200
        cap = response.json()
        assert cap["resourceType"] == "CapabilityStatement"
        assert cap["fhirVersion"] == "4.0.1"
        assert cap["implementation"]["url"] == f"http://127.0.0.1:{port}/fhir"
        base = f"http://127.0.0.1:{port}/fhir"
        assert requests.get(f"{base}/Patient", timeout=30).status_code == 401
        token = run(
            phrx_bin, "token", "--data-dir", str(data), "--base-url", base, "--scope", "system/*.rs"
        )
        assert token.returncode == 0, token.stderr[-2000:]
        headers = {"Authorization": f"Bearer {token.stdout.strip()}"}
        assert requests.get(f"{base}/Patient", headers=headers, timeout=30).status_code == 200
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    out = proc.stdout.read()
    assert f"http://127.0.0.1:{port}/fhir" in out
    identity = json.loads((data / "node.json").read_text())
    assert identity["node_id"]
    key = data / "keys" / "master.key"
    assert key.is_file()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (data / "phrx.sqlite3").is_file()
    assert (data / "logs").is_dir()


def test_settle_heap_freezes_what_is_loaded_and_keeps_collecting_cycles():
    import gc
    import weakref

    from fhir_server.serving import SERVING_GC_THRESHOLD, settle_heap

    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == SERVING_GC_THRESHOLD

        class Node:  # a reference cycle made after the freeze is still reclaimed
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_verify_refuses_a_deeply_nested_file_in_one_line(phrx_bin, tmp_path):
    hostile = tmp_path / "deep.json"
    hostile.write_text("[" * 100_000)
    result = run(phrx_bin, "verify", str(hostile), "--chain", "http://127.0.0.1:9")
    assert result.returncode == 1, result.stderr[-500:]
    assert result.stderr.strip().count("\n") == 0
    assert "not a FHIR JSON Bundle" in result.stderr
