"""Hostile requests against a real ``phrx serve`` (gunicorn) process (issue #14).

Whatever a client sends, the node answers a FHIR OperationOutcome with a 4xx --
never gunicorn's HTML error page, a 500 or a dead worker -- and the worker that
answered goes on serving. Served with one worker (plain gthread) and with two
(the idle-first worker): both are worker configurations ``phrx serve`` uses.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

PHRX = Path(sys.executable).parent / "phrx"
FHIR_JSON = "application/fhir+json"
DEEP = 100_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> set[int] | None:
    """The worker processes of the gunicorn master ``pid`` (None: the kernel does
    not list children in /proc)."""
    found: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.update(int(child) for child in (task / "children").read_text().split())
    except OSError:
        return None
    return found


class Served:
    def __init__(self, port: int, master: int, token: str) -> None:
        self.port = port
        self.master = master
        self.token = token

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def raw(self, data: bytes) -> tuple[int, dict, bytes]:
        """Send ``data`` on a fresh socket; (status, headers, body) of the answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])
        }
        return status, headers, body

    def workers(self) -> set[int] | None:
        return _children(self.master)


@pytest.fixture(scope="module", params=[1, 2], ids=["1-worker", "2-workers"])
def served(request, tmp_path_factory):
    if not PHRX.exists():
        pytest.skip(f"{PHRX} is not installed (pip install -e .)")
    workers = request.param
    data = tmp_path_factory.mktemp(f"hostile{workers}") / "node"
    port = _free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PHRX_DATA_DIR", None)
    args = ["serve", "--port", str(port), "--data-dir", str(data), "--chain", "none"]
    proc = subprocess.Popen(
        [str(PHRX), *args, "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"phrx serve exited early: {proc.stderr.read()[-2000:]!r}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/fhir/metadata")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("phrx serve did not answer within 120 s")
            time.sleep(0.3)
        scope = ["--scope", "system/*.cruds"]
        token = subprocess.run(
            [str(PHRX), "token", "--data-dir", str(data), "--base-url", base, *scope],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        ).stdout.strip()
        deadline = time.monotonic() + 60
        while len(_children(proc.pid) or range(workers)) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        yield Served(port, proc.pid, token)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        proc.stderr.close()


def _outcome(status: int, headers: dict, body: bytes, expected: int) -> dict:
    assert status == expected, body[:500]
    headers = {name.lower(): value for name, value in headers.items()}
    assert headers["content-type"].split(";")[0] == FHIR_JSON, headers
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert issue["severity"] == "error"
    assert b"<html" not in body.lower()
    return issue


def _metadata_on(conn: http.client.HTTPConnection) -> int:
    conn.request("GET", "/fhir/metadata", headers={"Accept": FHIR_JSON})
    response = conn.getresponse()
    response.read()
    return response.status


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/fhir/$verify", "/fhir", "/fhir/Patient"])
def test_deep_json_is_refused_and_the_worker_keeps_serving(served, path):
    """``[`` x 100,000: web3 (py_ecc) raises the recursion limit to 100,000, and the
    worker died of a C stack overflow (SIGSEGV) inside json.loads."""
    workers = served.workers()
    conn = served.connection()
    body = b"[" * DEEP + b"]" * DEEP
    headers = {"Authorization": f"Bearer {served.token}", "Content-Type": FHIR_JSON}
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    issue = _outcome(response.status, dict(response.headers.items()), response.read(), 400)
    assert "nested" in issue["diagnostics"]
    # the same connection -- so the same worker -- answers the next request
    assert _metadata_on(conn) == 200
    conn.close()
    assert served.workers() == workers  # no worker died and was replaced


@pytest.mark.slow
def test_unclosed_deep_json_is_refused(served):
    conn = served.connection()
    headers = {"Authorization": f"Bearer {served.token}", "Content-Type": FHIR_JSON}
    conn.request("POST", "/fhir/$verify", body=b'{"a":' * DEEP, headers=headers)
    response = conn.getresponse()
    _outcome(response.status, dict(response.headers.items()), response.read(), 400)
    assert _metadata_on(conn) == 200


@pytest.mark.slow
def test_too_long_request_line_is_414_operation_outcome(served):
    request = b"GET /fhir/metadata?x=" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    issue = _outcome(*served.raw(request), 414)
    assert issue["code"] == "too-long"
    assert _metadata_on(served.connection()) == 200


@pytest.mark.slow
@pytest.mark.parametrize(
    "headers",
    [
        b"X-Big: " + b"a" * 10_000 + b"\r\n",  # one field beyond 8,190 bytes
        b"".join(b"X-H%d: v\r\n" % i for i in range(200)),  # beyond 100 fields
    ],
    ids=["field-size", "field-count"],
)
def test_too_large_headers_are_431_operation_outcome(served, headers):
    request = b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
    issue = _outcome(*served.raw(request), 431)
    assert issue["code"] == "too-long"


@pytest.mark.slow
@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /fhir/metadata HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n",
        b"G\x00T /fhir/metadata HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["request-line", "http-version", "header-name", "nul-method"],
)
def test_malformed_requests_are_400_operation_outcome(served, request_bytes):
    workers = served.workers()
    issue = _outcome(*served.raw(request_bytes), 400)
    assert issue["code"] == "invalid"
    assert _metadata_on(served.connection()) == 200
    assert served.workers() == workers
