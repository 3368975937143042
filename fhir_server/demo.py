"""``phrx demo``: one node on embedded defaults, the project's sample data, checked step by step.

Each step prints what was checked; the exit status is 0 only if every step
behaved. The cross-border scenario extends this as later issues land.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import requests

from fhir_server.sample_data import VISITS, scenario_patient_bundle

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


class Steps:
    def __init__(self):
        self.failures = 0

    def check(self, label: str, ok: bool, detail: str = "") -> bool:
        mark = "ok  " if ok else "FAIL"
        print(f"  [{mark}] {label}{': ' + detail if detail else ''}", flush=True)
        self.failures += 0 if ok else 1
        return ok


def operator_token(app, base: str, lifetime_s: int = 3600) -> str:
    """A ``system/*.cruds`` token of the node's operator client, issued through the
    app's SMART service exactly as ``phrx token`` does (recorded, revocable)."""
    smart = app.extensions["phrx.smart"].service
    client = smart.clients.operator()
    scope = client.get_allowed_scope("system/*.cruds")
    issued = smart.tokens.issue(base, "operator", client.client_id, None, scope, lifetime_s, False)
    return issued["access_token"]


def run_checks(base: str, token: str | None = None) -> int:
    steps = Steps()
    http = requests.Session()
    http.headers.update(JSON)
    cap = http.get(f"{base}/metadata")
    steps.check("GET /metadata", cap.status_code == 200, f"FHIR {cap.json().get('fhirVersion')}")
    denied = http.get(f"{base}/Patient")
    steps.check("GET /Patient without a token → 401", denied.status_code == 401)
    if token:
        http.headers["Authorization"] = f"Bearer {token}"
    tx = http.post(base, json=scenario_patient_bundle())
    entries = tx.json().get("entry", []) if tx.ok else []
    created = sum(1 for e in entries if e["response"]["status"].startswith("201"))
    steps.check("POST transaction (sample patient)", tx.status_code == 200, f"{created} created")
    patient_loc = next(
        (
            e["response"]["location"]
            for e in entries
            if e["response"]["location"].startswith("Patient/")
        ),
        "",
    )
    patient_id = patient_loc.split("/")[1] if patient_loc else ""
    read = http.get(f"{base}/Patient/{patient_id}")
    steps.check("GET Patient", read.status_code == 200, f"ETag {read.headers.get('ETag')}")
    conditions = http.get(
        f"{base}/Condition", params={"patient": patient_id, "_sort": "-recorded-date"}
    )
    got = [
        e["resource"]["code"]["coding"][0]["display"] for e in conditions.json().get("entry", [])
    ]
    steps.check(
        "search Condition?patient=…&_sort=-recorded-date",
        got == [v[2] for v in VISITS],
        f"{len(got)} diagnoses, newest first",
    )
    obs = http.get(
        f"{base}/Observation", params={"code": "http://loinc.org|8302-2", "value-quantity": "gt150"}
    )
    steps.check(
        "search Observation?code=…8302-2&value-quantity=gt150",
        obs.json().get("total") == len(VISITS),
        f"total {obs.json().get('total')}",
    )
    family = http.get(f"{base}/Patient", params={"family": "li"})
    steps.check("search Patient?family=li (blind-indexed prefix)", family.json().get("total") == 1)
    patient = read.json()
    patient["telecom"] = [{"system": "phone", "value": "+886-2-0000-0000"}]
    put = http.put(f"{base}/Patient/{patient_id}", json=patient, headers={"If-Match": 'W/"1"'})
    steps.check(
        'PUT Patient If-Match W/"1"', put.status_code == 200, f"ETag {put.headers.get('ETag')}"
    )
    stale = http.put(f"{base}/Patient/{patient_id}", json=patient, headers={"If-Match": 'W/"1"'})
    steps.check("PUT with a stale If-Match is refused", stale.status_code == 412)
    history = http.get(f"{base}/Patient/{patient_id}/_history")
    steps.check("GET Patient/_history", history.json().get("total") == 2, "2 versions")
    everything = http.get(f"{base}/Patient/{patient_id}/$everything")
    steps.check(
        "GET Patient/$everything",
        everything.status_code == 200,
        f"{everything.json().get('total')} resources",
    )
    bad = http.post(f"{base}/Observation", json={"resourceType": "Observation", "status": 7})
    steps.check(
        "invalid resource → 400 OperationOutcome",
        bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome",
    )
    return steps.failures


def run_demo(data_dir: Path | None, port: int, exit_after: bool) -> int:
    from fhir_server.app import create_app
    from fhir_server.serving import ThreadedServer

    temp = None
    if data_dir is None:
        temp = tempfile.TemporaryDirectory(prefix="phrx-demo-")
        data_dir = Path(temp.name)
    print(f"PHRX demo node, data dir {data_dir} (SQLite, encrypted at rest)")
    app = create_app({"DATA_DIR": data_dir})
    server = ThreadedServer(app, port=port).start()
    base = f"http://127.0.0.1:{server.port}/fhir"
    print(f"FHIR base  {base}\nMetadata   {base}/metadata")
    print(
        f"Token      phrx token --data-dir {data_dir} --base-url {base} --scope 'system/*.cruds'\n"
    )
    try:
        failures = run_checks(base, operator_token(app, base))
        print(f"\n{'all steps behaved' if not failures else f'{failures} step(s) FAILED'}")
        if not exit_after and not failures:
            print("Serving until Ctrl-C …")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if temp:
            temp.cleanup()
    return 1 if failures else 0
