"""The gunicorn worker that leaves new connections to idle siblings (``phrx serve
--workers N``): its rule on a fake clock, then two real gunicorn workers."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fhir_server.idle_first_worker import AcceptPolicy

ROOT = Path(__file__).resolve().parents[2]

# A WSGI app answering with the pid of the worker that served it; /sleep?S waits
# S seconds without the GIL, as a request blocked on a chain RPC does.
SERVER = """
import os, sys, time
from fhir_server.serving import serve_gunicorn

def app(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(float(environ["QUERY_STRING"]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]

serve_gunicorn(lambda: app, "127.0.0.1", int(sys.argv[1]), 2)
"""


class FakeClock:
    """Seconds in halves, exact in binary floating point."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_idle_worker_accepts_and_a_busy_one_waits_for_its_siblings():
    clock = FakeClock()
    policy = AcceptPolicy(max_defer_s=2.0, clock=clock)
    assert policy.may_accept(in_flight=0, connection_waiting=False)
    assert policy.may_accept(in_flight=0, connection_waiting=True)
    assert not policy.may_accept(in_flight=1, connection_waiting=False)
    # A connection seen waiting is left to an idle sibling for max_defer_s ...
    assert not policy.may_accept(in_flight=1, connection_waiting=True)
    clock.now += 1.5
    assert not policy.may_accept(in_flight=2, connection_waiting=True)
    assert policy.defer_left() == 0.5
    # ... and taken once it has waited that long: every sibling is busy too.
    clock.now += 0.5
    assert policy.may_accept(in_flight=2, connection_waiting=True)


def test_a_connection_a_sibling_took_restarts_the_wait():
    clock = FakeClock()
    policy = AcceptPolicy(max_defer_s=2.0, clock=clock)
    policy.saw_connection()  # noticed by the poller
    clock.now += 1.5
    assert not policy.may_accept(in_flight=1, connection_waiting=False)  # taken elsewhere
    assert policy.waiting_since is None
    clock.now += 1.0
    assert not policy.may_accept(in_flight=1, connection_waiting=True)  # a new one: wait
    clock.now += 2.0
    assert policy.may_accept(in_flight=1, connection_waiting=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def two_workers():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def get(path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            return int(conn.getresponse().read())
        finally:
            conn.close()

    try:
        for _ in range(300):
            try:
                get("/")
                break
            except OSError:
                time.sleep(0.05)
        yield get
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _in_background(get, path: str) -> tuple[threading.Thread, dict]:
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(pid=get(path)))
    thread.start()
    return thread, result


def test_new_connections_go_to_the_idle_worker(two_workers):
    """Plain gthread gives a worker waiting on a slow request about half of the new
    connections (measured: 26 of 50); this worker gives it none while its sibling idles."""
    get = two_workers
    thread, slow = _in_background(get, "/sleep?1.5")
    time.sleep(0.3)  # the slow request is in flight
    pids = [get("/") for _ in range(10)]
    thread.join()
    assert slow["pid"] not in pids
    assert len(set(pids)) == 1


def test_when_every_worker_is_busy_a_new_request_is_still_served(two_workers):
    get = two_workers
    first, a = _in_background(get, "/sleep?2")
    time.sleep(0.2)
    second, b = _in_background(get, "/sleep?2")
    time.sleep(0.3)
    pid = get("/")
    beside = first.is_alive() and second.is_alive()
    first.join()
    second.join()
    assert a["pid"] != b["pid"]  # the second slow request went to the idle worker
    assert pid in (a["pid"], b["pid"])
    assert beside  # answered while both slow requests were still running, not after one
