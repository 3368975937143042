"""Anchoring benchmark on a real anvil: prints figures, asserts nothing.

    .venv/bin/python benchmarks/anchoring.py [--per-record 200] [--verify 300]

* anchored records/s at batch sizes 1, 100, 10,000 (journal -> Merkle batch -> one
  transaction per batch -> receipt -> proofs stored), and end-to-end including the writes;
* the source paper's design on the same chain: one anchoring transaction per record;
* proof size; ``$verify`` p50/p95 on a warm node (Flask test client, live chain read).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anchoring import journal
from anchoring.merkle import audit_path_length
from anchoring.node_chain import start_dev_chain


def write_records(node, n: int, per_tx: int = 100) -> float:
    start = time.perf_counter()
    done = 0
    while done < n:
        chunk = [
            {
                "resourceType": "Observation",
                "id": os.urandom(8).hex(),
                "status": "final",
                "code": {"text": "Glucose"},
                "valueQuantity": {"value": (done + i) % 97 + 0.5, "unit": "mmol/L"},
            }
            for i in range(min(per_tx, n - done))
        ]
        with node.store.unit_of_work(prepare=chunk) as w:
            for body in chunk:
                w.create(body, res_id=body["id"])
        done += len(chunk)
    return time.perf_counter() - start


def batched(tmp: Path, url: str, batch: int, n: int) -> dict:
    from fhir_server.node import Node, NodeConfig

    node = Node(
        NodeConfig(data_dir=tmp / f"b{batch}", chain=url, anchor_worker=False, anchor_batch=batch)
    )
    try:
        write_s = write_records(node, n)
        start = time.perf_counter()
        results = node.anchoring.batcher.flush()
        anchor_s = time.perf_counter() - start
        assert journal.counts(node.engine)["anchored"] == n
        return {
            "batch": batch,
            "records": n,
            "txs": len(results),
            "write_s": write_s,
            "anchor_s": anchor_s,
        }
    finally:
        node.close()


def per_record(tmp: Path, url: str, n: int) -> dict:
    from anchoring.node_chain import NodeChain

    chain = NodeChain(tmp / "per-record", url).open()
    client = chain.client()
    leaves = [os.urandom(32) for _ in range(n)]
    start = time.perf_counter()
    for leaf in leaves:
        client.anchor(leaf, 1, leaf)
    return {"records": n, "anchor_s": time.perf_counter() - start}


def verify_latency(tmp: Path, url: str, n: int) -> dict:
    from fhir_server.app import create_app
    from fhir_server.node import Node, NodeConfig

    node = Node(
        NodeConfig(data_dir=tmp / "verify", chain=url, anchor_worker=False, anchor_batch=10_000)
    )
    try:
        write_records(node, 1000)
        node.anchoring.batcher.flush()
        api = create_app({"NODE": node, "PHRX_AUTH": False}).test_client()
        rows = [r for r in journal_rows(node)][:n]
        for r in rows[:20]:  # warm up: connections, caches
            api.get(f"/fhir/{r[0]}/{r[1]}/$verify")
        times = []
        for res_type, res_id in rows:
            t = time.perf_counter()
            resp = api.get(f"/fhir/{res_type}/{res_id}/$verify")
            times.append((time.perf_counter() - t) * 1000)
            assert resp.json["parameter"][0]["valueBoolean"] is True
        times.sort()
        prov = api.get(f"/fhir/{rows[0][0]}/{rows[0][1]}/_history/1/$provenance").json
        return {
            "n": len(times),
            "p50": statistics.median(times),
            "p95": times[int(0.95 * (len(times) - 1))],
            "provenance_bytes": len(json.dumps(prov, separators=(",", ":"))),
        }
    finally:
        node.close()


def journal_rows(node):
    from sqlalchemy import select

    with node.engine.connect() as conn:
        return conn.execute(select(journal.journal.c.res_type, journal.journal.c.res_id)).all()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-record", type=int, default=200)
    parser.add_argument("--verify", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="phrx-bench-") as tmpdir:
        tmp = Path(tmpdir)
        dev = start_dev_chain(tmp / "anvil")
        try:
            print(f"anvil {dev.url} (automine), SQLite node, one process\n")
            base = per_record(tmp, dev.url, args.per_record)
            base_rate = base["records"] / base["anchor_s"]
            print(
                f"one tx per record (paper design): {base['records']} records in "
                f"{base['anchor_s']:.2f} s = {base_rate:,.0f} records/s"
            )
            for batch, n in ((1, args.per_record), (100, 10_000), (10_000, 10_000)):
                r = batched(tmp, dev.url, batch, n)
                rate = n / r["anchor_s"]
                e2e = n / (r["anchor_s"] + r["write_s"])
                print(
                    f"batch {batch:>6}: {n} records, {r['txs']} tx, anchoring "
                    f"{r['anchor_s']:.2f} s = {rate:,.0f} records/s "
                    f"({rate / base_rate:,.1f}x per-record); with writes "
                    f"{e2e:,.0f} records/s (writes {r['write_s']:.2f} s)"
                )
            for size in (1, 100, 10_000, 1_000_000):
                hashes = audit_path_length(0, size)
                print(f"proof size, tree of {size:>9,}: {hashes} hashes = {hashes * 32} bytes")
            v = verify_latency(tmp, dev.url, args.verify)
            print(
                f"$verify warm node: n={v['n']} p50 {v['p50']:.2f} ms, p95 {v['p95']:.2f} ms; "
                f"Provenance (tree of 1,000) {v['provenance_bytes']} bytes JSON"
            )
        finally:
            dev.stop()


if __name__ == "__main__":
    main()
