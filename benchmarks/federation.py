"""Cross-border benchmark on real nodes: prints figures, asserts nothing.

    .venv/bin/python benchmarks/federation.py [--runs 30] [--links 20] [--synthea FILE]

A TW and a PH node on one anvil chain, joined by vote (fhir_server/demo/network.py),
served over HTTP on 127.0.0.2 / 127.0.0.3. For the study's Table 1 patient (MHB
import) and for a Synthea patient of about 500 resources (from ../shared, the file
nearest 500 entries; else a generated record of that size), after anchoring:

* link redemption: ``POST [PH]/$receive-share`` (PH -> TW manifest with its node
  assertion, JWE decryption, proxy) p50 / p95 over ``--links`` fresh links;
* ``GET [PH]/Patient/{proxy}/$summary`` p50 / p95 over ``--runs``: TW's IPS and its
  ``$everything`` with proofs fetched, every entry verified against the chain at PH.

Targets on the 2-core reference machine (issue #16): $summary through PH p95 <=
500 ms for Table 1 and <= 2 s for the Synthea patient.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests

from fhir_server.demo.journey import AT_PH, PRC, SANTOS, Journey, _session, post_share

SHARED_SYNTHEA = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthea-r4"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def report(label: str, ms: list[float]) -> None:
    print(
        f"  {label:58} p50 {statistics.median(ms):7.1f} ms   p95 {pct(ms, 0.95):7.1f} ms"
        f"   (n={len(ms)})",
        flush=True,
    )


def synthea_bundle(path: Path | None) -> tuple[dict, str]:
    if path is None and SHARED_SYNTHEA.is_dir():
        sizes = []
        for file in SHARED_SYNTHEA.glob("*.json"):
            entries = len(json.loads(file.read_text()).get("entry", []))
            sizes.append((abs(entries - 500), file))
        path = min(sizes)[1] if sizes else None
    if path is not None:
        return json.loads(Path(path).read_text()), f"Synthea {Path(path).name[:40]}"
    return generated_bundle(500), "generated (../shared absent): 500 resources"


def generated_bundle(n: int) -> dict:
    patient = {
        "fullUrl": "urn:uuid:p",
        "resource": {"resourceType": "Patient", "name": [{"family": "Gen"}]},
    }
    entries = [patient]
    for i in range(n - 1):
        kind = ("Condition", "Observation")[i % 2]
        body: dict = {"resourceType": kind, "subject": {"reference": "urn:uuid:p"}}
        if kind == "Condition":
            body["code"] = {"text": f"condition {i}"}
        else:
            body.update(status="final", code={"text": f"lab {i}"}, valueQuantity={"value": i})
        entries.append({"resource": body})
    for entry in entries:
        entry["request"] = {"method": "POST", "url": entry["resource"]["resourceType"]}
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def load_synthea(journey: Journey, bundle: dict) -> str:
    tw = journey.tw
    operator = _session(journey.token(tw, "system/*.cruds"))
    bundle = {**bundle, "type": "transaction"}
    for entry in bundle["entry"]:
        entry.setdefault("request", {"method": "POST", "url": entry["resource"]["resourceType"]})
    answer = operator.post(tw.base, json=bundle, timeout=600)
    answer.raise_for_status()
    for entry in answer.json().get("entry", []):
        location = entry.get("response", {}).get("location", "")
        if location.startswith("Patient/") or "/Patient/" in location:
            return location.split("Patient/")[1].split("/")[0]
    raise RuntimeError("no Patient in the Synthea bundle")


def share_link(journey: Journey, patient_id: str) -> str:
    tw = journey.tw
    username = f"patient-{patient_id[:12]}"
    journey.add_user(tw, username, "patient", f"Patient/{patient_id}")
    patient = _session(journey.token(tw, "patient/*.cruds openid fhirUser", username))
    answer = post_share(patient, tw.base, patient_id, SANTOS, AT_PH)
    answer.raise_for_status()
    return next(p["valueString"] for p in answer.json()["parameter"] if p["name"] == "link")


def receive(journey: Journey, santos: requests.Session, link: str) -> str:
    answer = santos.post(
        f"{journey.ph.base}/$receive-share",
        json={"resourceType": "Parameters", "parameter": [{"name": "link", "valueString": link}]},
    )
    answer.raise_for_status()
    return answer.json()["parameter"][0]["valueReference"]["reference"].split("/")[1]


def bench_patient(journey, santos, patient_id: str, label: str, runs: int, links: int) -> None:
    operator = _session(journey.token(journey.tw, "system/*.cruds"))
    operator.post(f"{journey.tw.base}/$anchor", json={}).raise_for_status()
    shared = [share_link(journey, patient_id) for _ in range(links)]
    proxies: list[str] = []
    redemption = []
    for link in shared:
        start = time.perf_counter()
        proxies.append(receive(journey, santos, link))
        redemption.append((time.perf_counter() - start) * 1000)
    proxy = proxies[-1]
    url = f"{journey.ph.base}/Patient/{proxy}/$summary"
    first = santos.get(url)
    first.raise_for_status()
    entries = first.json()["entry"]
    verified = sum(1 for e in entries if "tag" in e["resource"].get("meta", {}))
    print(f"\n{label}: IPS of {len(entries)} entries, {verified} verified at PH")
    report("link redemption (PH -> TW manifest, JWE, proxy)", redemption)
    report(
        "$summary through PH (TW fetch + chain verification)",
        timed(lambda: santos.get(url).raise_for_status(), runs),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--links", type=int, default=20)
    parser.add_argument("--synthea", type=Path, default=None)
    args = parser.parse_args(argv)
    from fhir_server.demo.network import Network

    with tempfile.TemporaryDirectory(prefix="phrx-bench-fed-") as tmp:
        network = Network(Path(tmp), countries=("TW", "PH")).start()
        try:
            journey = Journey.__new__(Journey)
            journey.net, journey.passwords = network, {}
            journey.tw, journey.ph = network.nodes["TW"], network.nodes["PH"]
            from fhir_server.demo.journey import Steps

            journey.steps = Steps()
            print("TW", journey.tw.base, " PH", journey.ph.base, " chain", network.chain_url)
            import contextlib
            import io

            with contextlib.redirect_stdout(io.StringIO()):
                patient_id, _ = journey.patient_at_home()
                santos = journey.doctor(journey.ph, "dr-santos", "Santos", PRC, "0123456")
            bench_patient(
                journey, santos, patient_id, "Table 1 patient (MHB import)", args.runs, args.links
            )
            bundle, label = synthea_bundle(args.synthea)
            synthea_id = load_synthea(journey, bundle)
            bench_patient(
                journey,
                santos,
                synthea_id,
                f"{label} ({len(bundle['entry'])} entries)",
                args.runs,
                args.links,
            )
        finally:
            network.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
