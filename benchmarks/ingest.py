"""Ingest and query benchmark: posts the Synthea bundles over HTTP, then times searches.

Run: ``python benchmarks/ingest.py [--data DIR] [--database-url URL] [--workers N]``
(or ``phrx bench ingest``). Starts its own ``phrx serve`` (gunicorn) on a free
loopback port with a fresh data dir, prints figures, stops the server.
Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import Empty, Queue
from urllib.parse import quote, urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "synthea-r4"
QUERY_REPEATS = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def start_server(data_dir: Path, port: int, workers: int, database_url: str | None):
    phrx = shutil.which("phrx") or str(Path(sys.executable).parent / "phrx")
    cmd = [phrx, "serve", "--port", str(port), "--data-dir", str(data_dir)]
    cmd += ["--workers", str(workers)]
    if database_url:
        cmd += ["--database-url", database_url]
    extra = os.environ.get("PHRX_BENCH_SERVE_ARGS")
    if extra:
        cmd += extra.split()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/fhir"
    for _ in range(300):
        try:
            if requests.get(f"{base}/metadata", timeout=10).status_code == 200:
                return proc, base
        except (requests.ConnectionError, requests.Timeout):
            pass
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def auth_headers(data_dir: Path, database_url: str | None, base: str) -> dict:
    """A system token when the node enforces SMART (phrx token); none otherwise."""
    phrx = shutil.which("phrx") or str(Path(sys.executable).parent / "phrx")
    cmd = [phrx, "token", "--data-dir", str(data_dir), "--scope", "system/*.cruds"]
    cmd += ["--base-url", base, "--lifetime", "3600"]
    if database_url:
        cmd += ["--database-url", database_url]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    token = result.stdout.strip()
    return {"Authorization": f"Bearer {token}"} if result.returncode == 0 and token else {}


def _post_from(base: str, queue: Queue, headers: dict) -> list[float]:
    session = requests.Session()
    # A new connection per bundle (as behind a reverse proxy): a kept-alive one
    # would pin this client to whichever worker accepted it first.
    session.headers.update(
        {"Content-Type": "application/fhir+json", "Connection": "close", **headers}
    )
    timings = []
    while True:
        try:
            body = queue.get_nowait()
        except Empty:
            return timings
        t0 = time.perf_counter()
        response = session.post(base, data=body, timeout=600)
        timings.append(time.perf_counter() - t0)
        if response.status_code != 200:
            raise SystemExit(f"HTTP {response.status_code} {response.text[:300]}")


def ingest(base: str, files: list[Path], headers: dict, clients: int):
    """Post every bundle with ``clients`` concurrent posters pulling from one queue,
    largest bundle first (as a bulk loader would: no client sits idle while the
    other still has a long tail of work)."""
    bodies = [path.read_bytes() for path in files]
    sizes = {id(body): len(json.loads(body).get("entry", [])) for body in bodies}
    total = sum(sizes.values())
    queue: Queue = Queue()
    for body in sorted(bodies, key=lambda b: sizes[id(b)], reverse=True):
        queue.put(body)
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        runs = [pool.submit(_post_from, base, queue, headers) for _ in range(clients)]
        per_client = [run.result() for run in runs]
    seconds = time.perf_counter() - started
    return total, [t for timings in per_client for t in timings], seconds


def anchor_pending(base: str, headers: dict) -> tuple[int, float] | str:
    """``POST $anchor``: the leaves the background batcher has not anchored yet, now,
    so that the queries are timed on a settled node (else the first ones share the
    CPU with anchoring the whole ingest). A message when it did not succeed."""
    t0 = time.perf_counter()
    response = requests.post(f"{base}/$anchor", headers=headers, timeout=600)
    if response.status_code != 200:
        issues = response.json().get("issue", [{}]) if response.content else [{}]
        return f"HTTP {response.status_code} {issues[0].get('diagnostics', '')[:120]}"
    params = {p["name"]: p.get("valueInteger") for p in response.json().get("parameter", [])}
    return params.get("leafCount") or 0, time.perf_counter() - t0


class LeanClient:
    """Keep-alive GETs on ``http.client``: the figures are the server's latency.

    ``requests`` spends ~0.4 ms of Python per call on top (measured against a
    hello-world WSGI app under the same gunicorn: p50 0.74 ms with requests,
    0.34 ms with http.client), which on a 1-2 ms read is what a C load tool
    (wrk, ab) would not add either."""

    def __init__(self, base: str, headers: dict) -> None:
        parts = urlsplit(base)
        self.prefix = parts.path
        self.headers = headers
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def get(self, path: str) -> int:
        self.conn.request("GET", f"{self.prefix}/{path}", headers=self.headers)
        response = self.conn.getresponse()
        response.read()
        return response.status


def sample_ids(base: str, session: requests.Session) -> tuple[str, str]:
    bundle = session.get(f"{base}/Patient", params={"_count": "1"}).json()
    patient = bundle["entry"][0]["resource"]
    return patient["id"], patient["name"][0]["family"]


def time_queries(base: str, headers: dict) -> list[tuple[str, float, float, int]]:
    session = requests.Session()
    session.headers.update(headers)
    patient_id, family = sample_ids(base, session)
    queries = [
        f"Patient/{patient_id}",
        f"Patient?family={family}",
        f"Observation?patient={patient_id}&code=http://loinc.org|8302-2",
        "Observation?code=http://loinc.org|8302-2&value-quantity=gt170",
        "Encounter?date=ge2015-01-01&_count=50",
        "Condition?code=http://snomed.info/sct|44054006",
        f"Patient/{patient_id}/$everything",
    ]
    client = LeanClient(base, headers)
    results = []
    for query in queries:
        timings, status = [], 0
        repeats = QUERY_REPEATS if "$everything" not in query else QUERY_REPEATS // 4
        for _ in range(repeats):
            t0 = time.perf_counter()
            status = client.get(quote(query, safe="/?=&|$:"))
            timings.append((time.perf_counter() - t0) * 1000)
        results.append((query, percentile(timings, 50), percentile(timings, 95), status))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=2, help="concurrent posting clients")
    args = parser.parse_args(argv)
    files = sorted(args.data.glob("*.json")) if args.data.is_dir() else []
    if not files:
        print(f"no Synthea bundles in {args.data}; nothing to measure")
        return 1
    with tempfile.TemporaryDirectory(prefix="phrx-bench-") as tmp:
        data_dir = Path(tmp) / "node"
        proc, base = start_server(data_dir, free_port(), args.workers, args.database_url)
        try:
            headers = auth_headers(data_dir, args.database_url, base)
            total, per_bundle, seconds = ingest(base, files, headers, args.clients)
            store = "PostgreSQL" if args.database_url else "SQLite"
            print(
                f"PHRX ingest benchmark: {len(files)} Synthea bundles, {store}, "
                f"{args.workers} gunicorn workers, {args.clients} clients, encryption on"
            )
            rate = total / seconds
            print(f"  ingest: {total} resources in {seconds:.2f} s = {rate:,.0f} resources/s")
            print(
                f"  per bundle: p50 {statistics.median(per_bundle) * 1000:.0f} ms, "
                f"p95 {percentile(per_bundle, 95) * 1000:.0f} ms"
            )
            anchored = anchor_pending(base, headers)
            if isinstance(anchored, str):
                print(f"  anchoring the rest ($anchor): {anchored}")
            else:
                leaves, took = anchored
                print(f"  anchoring the rest: {leaves} leaves in {took:.2f} s ($anchor)")
                # The batcher anchors during the ingest; what it had not reached yet
                # is anchored after the clock stopped. Counted in, for comparison:
                print(
                    f"  ingest with every version anchored: "
                    f"{total / (seconds + took):,.0f} resources/s"
                )
            print(
                f"  queries ({QUERY_REPEATS} runs each, $everything {QUERY_REPEATS // 4}; "
                "keep-alive http.client):"
            )
            for query, p50, p95, status in time_queries(base, headers):
                print(f"    {query[:70]:<72} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  [{status}]")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
