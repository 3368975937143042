"""The demo's steps: the study's Taiwanese traveller on one node, checked over HTTP.

Every step says what it checked (status, consent decision, Merkle root,
block, verification result) and counts as a failure when the node did not
behave as stated. Actors get their tokens from the node's SMART service, as
``phrx token --user`` does.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import requests

from mhb_import.synthetic import dumps_json, scenario_export

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


class Steps:
    def __init__(self) -> None:
        self.failures = 0

    def check(self, label: str, ok: bool, detail: str = "") -> bool:
        mark = "ok  " if ok else "FAIL"
        print(f"  [{mark}] {label}{': ' + detail if detail else ''}", flush=True)
        self.failures += 0 if ok else 1
        return ok


def param(parameters: dict, name: str, default=None):
    """First value of a top-level Parameters.parameter named ``name``."""
    for p in parameters.get("parameter", []) if isinstance(parameters, dict) else []:
        if p.get("name") == name:
            return next((v for k, v in p.items() if k.startswith("value")), p.get("part"))
    return default


def part(parts: list | None, name: str, default=None):
    for p in parts or []:
        if p.get("name") == name:
            return next((v for k, v in p.items() if k.startswith("value")), default)
    return default


@dataclass
class Actors:
    """One HTTP session per person, each with their own bearer token."""

    operator: requests.Session
    patient: requests.Session
    doctor_ph: requests.Session
    doctor_th: requests.Session


def session(token: str | None) -> requests.Session:
    http = requests.Session()
    http.headers.update(JSON)
    if token:
        http.headers["Authorization"] = f"Bearer {token}"
    return http


class Scenario:
    def __init__(self, base: str, admin, db_file=None):
        self.base = base
        self.admin = admin  # .token(scope, username | None) and .add_user(name, role, fhir_user)
        self.db_file = db_file
        self.steps = Steps()
        self.patient_id = ""

    def run(self) -> int:
        check = self.steps.check
        anonymous = session(None)
        cap = anonymous.get(f"{self.base}/metadata")
        check("GET /metadata (no token needed)", cap.status_code == 200, "FHIR 4.0.1")
        denied = anonymous.get(f"{self.base}/Patient")
        check("GET /Patient without a token → 401", denied.status_code == 401)
        operator = session(self.admin.token("system/*.cruds", None))
        self.patient_id = self.register_people(operator)
        token = self.admin.token
        actors = Actors(
            operator,
            session(token("patient/*.cruds openid fhirUser", "lin")),
            session(token("user/*.cruds openid fhirUser", "dr-santos")),
            session(token("user/*.cruds openid fhirUser", "dr-chai")),
        )
        self.import_records(actors)
        self.anchor_and_verify(actors)
        self.share_and_read(actors)
        self.tamper(actors)
        return self.steps.failures

    # -- 1. the patient, registered at TW, with two foreign doctors ---------------------
    def register_people(self, operator: requests.Session) -> str:
        created = operator.post(
            f"{self.base}/Patient",
            json={
                "resourceType": "Patient",
                "name": [{"family": "Lin", "given": ["Mei-Hua"]}],
                "gender": "female",
                "birthDate": "1968-03-02",
            },
        )
        patient_id = created.json().get("id", "")
        self.steps.check("POST Patient (registered at TW)", created.status_code == 201)
        for doctor, family, country in (("dr-santos", "Santos", "PH"), ("dr-chai", "Chai", "TH")):
            operator.put(
                f"{self.base}/Practitioner/{doctor}",
                json={
                    "resourceType": "Practitioner",
                    "id": doctor,
                    "name": [{"family": family, "prefix": ["Dr."]}],
                    "address": [{"country": country}],
                },
            )
            self.admin.add_user(doctor, "practitioner", f"Practitioner/{doctor}")
        self.admin.add_user("lin", "patient", f"Patient/{patient_id}")
        return patient_id

    # -- 2. My Health Bank import ----------------------------------------------------------
    def import_records(self, actors: Actors) -> None:
        check = self.steps.check
        export = dumps_json(scenario_export())
        url = f"{self.base}/Patient/{self.patient_id}/$import-mhb"
        first = actors.patient.post(url, data=export, headers={"Content-Type": "application/json"})
        created = param(first.json(), "created", 0) if first.ok else 0
        check(
            "patient imports the MHB export ($import-mhb)",
            first.status_code == 200,
            f"{created} resources created, encrypted, journaled for anchoring",
        )
        again = actors.patient.post(url, data=export, headers={"Content-Type": "application/json"})
        check(
            "re-import creates nothing (idempotent)",
            again.ok and param(again.json(), "created", -1) == 0,
        )
        history = actors.patient.get(
            f"{self.base}/Condition",
            params={"patient": self.patient_id, "_sort": "-recorded-date"},
        )
        found = [e["resource"] for e in history.json().get("entry", [])]
        dates = [c.get("recordedDate", "") for c in found]
        check(
            "patient sees the five diagnoses newest first",
            len(found) == 5 and dates == sorted(dates, reverse=True),
            ", ".join(_display(c) for c in found[:5]),
        )

    # -- 3. anchoring -----------------------------------------------------------------------
    def anchor_and_verify(self, actors: Actors) -> None:
        check = self.steps.check
        anchored, batch = self.anchor(actors.operator)
        check(
            "$anchor: Merkle root of the journal sent to the chain",
            anchored.status_code == 200,
            f"root {str(part(batch, 'root', ''))[:16]}…, block {part(batch, 'blockNumber')}",
        )
        condition = self.first_condition(actors.patient)
        verified = actors.patient.get(f"{self.base}/Condition/{condition}/$verify")
        body = verified.json() if verified.ok else {}
        check(
            "$verify a diagnosis against the chain",
            param(body, "result") is True,
            f"root {str(param(body, 'root', ''))[:16]}…, block {param(body, 'blockNumber')}, "
            f"authority {param(body, 'authority')}, {param(body, 'confirmations')} confirmations",
        )

    # -- 4. consent: share, read, refuse, write back, revoke --------------------------------
    def share_and_read(self, actors: Actors) -> None:
        check = self.steps.check
        conditions = f"{self.base}/Condition"
        query = {"patient": self.patient_id}
        before = actors.doctor_ph.get(conditions, params=query)
        check("PH doctor without consent is refused", before.status_code == 403)
        share = actors.patient.post(
            f"{self.base}/Patient/{self.patient_id}/$share",
            json=_share_parameters(
                "Practitioner/dr-santos", ["Condition", "MedicationRequest", "Encounter", "Patient"]
            ),
        )
        check(
            "patient shares with the PH doctor ($share: TREAT, period, classes)",
            share.status_code in (200, 201),
            f"HTTP {share.status_code}",
        )
        read = actors.doctor_ph.get(conditions, params=query)
        check(
            "PH doctor reads the diagnoses under the consent",
            read.status_code == 200 and read.json().get("total") == 5,
            f"{read.json().get('total')} Conditions",
        )
        allergies = actors.doctor_ph.get(f"{self.base}/AllergyIntolerance", params=query)
        check(
            "PH doctor cannot read classes outside the consent",
            allergies.status_code == 403 or not allergies.json().get("entry"),
        )
        written = actors.doctor_ph.post(conditions, json=_new_diagnosis(self.patient_id))
        check(
            "PH doctor writes back a new diagnosis (headache, dizziness)",
            written.status_code == 201,
            f"Location {written.headers.get('Location', '')[-40:]}",
        )
        _, batch = self.anchor(actors.operator)
        check(
            "the write-back is anchored in a new block",
            batch is not None,
            f"block {part(batch, 'blockNumber')}",
        )
        th = actors.doctor_th.get(conditions, params=query)
        check("TH doctor without consent is refused", th.status_code == 403)
        log = actors.patient.get(f"{self.base}/AuditEvent", params={"patient": self.patient_id})
        readers = _agents(log.json()) if log.ok else set()
        check(
            "patient's access log shows the PH doctor's read and write",
            any("dr-santos" in who for who in readers),
            f"{len(readers)} actors logged",
        )
        revoke = actors.patient.post(
            f"{self.base}/Patient/{self.patient_id}/$share",
            json={
                "resourceType": "Parameters",
                "parameter": [
                    {
                        "name": "recipient",
                        "valueReference": {"reference": "Practitioner/dr-santos"},
                    },
                    {"name": "revoke", "valueBoolean": True},
                ],
            },
        )
        check("patient revokes the share", revoke.status_code in (200, 201))
        after = actors.doctor_ph.get(conditions, params=query)
        check("PH doctor's next read is refused", after.status_code == 403)

    # -- 5. a tampered row is detected -----------------------------------------------------
    def tamper(self, actors: Actors) -> None:
        if self.db_file is None:
            return
        condition = self.first_condition(actors.patient)
        with sqlite3.connect(self.db_file) as db:
            blob = db.execute(
                "SELECT sealed FROM resource_versions WHERE res_type='Condition' AND res_id=?",
                (condition,),
            ).fetchone()[0]
            flipped = bytes([blob[0]]) + bytes([blob[1] ^ 1]) + blob[2:]
            db.execute(
                "UPDATE resource_versions SET sealed=? WHERE res_type='Condition' AND res_id=?",
                (flipped, condition),
            )
        read = actors.operator.get(f"{self.base}/Condition/{condition}")
        self.steps.check(
            "a row altered in the database is refused on read",
            read.status_code == 500 and "ntegrity" in read.text,
            "integrity failure",
        )
        verified = actors.operator.get(f"{self.base}/Condition/{condition}/$verify")
        self.steps.check(
            "$verify reports the tampered row",
            verified.ok and param(verified.json(), "result") is False,
            str(param(verified.json(), "reason", f"HTTP {verified.status_code}")),
        )

    def anchor(self, operator: requests.Session) -> tuple[requests.Response, list | None]:
        """POST $anchor; returns the response and the parts of the last batch sent, if any."""
        anchored = operator.post(f"{self.base}/$anchor", json={})
        params = anchored.json().get("parameter", []) if anchored.ok else []
        batches = [p.get("part") for p in params if p.get("name") == "batch"]
        return anchored, batches[-1] if batches else None

    def first_condition(self, http: requests.Session) -> str:
        found = http.get(f"{self.base}/Condition", params={"patient": self.patient_id})
        entries = found.json().get("entry", []) if found.ok else []
        return entries[0]["resource"]["id"] if entries else "unknown"


def _display(condition: dict) -> str:
    """The English display the importer puts beside the Chinese text."""
    codings = condition.get("code", {}).get("coding", [])
    english = next((c.get("display") for c in codings if c.get("display")), None)
    return english or condition.get("code", {}).get("text", "?")


def _agents(bundle: dict) -> set[str]:
    who = set()
    for entry in bundle.get("entry", []):
        for agent in entry.get("resource", {}).get("agent", []):
            who.add(str(agent.get("who", {}).get("reference", "")))
    return who


def _new_diagnosis(patient_id: str) -> dict:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/sid/icd-10-cm",
                    "code": "R51.9",
                    "display": "Headache, unspecified",
                },
                {
                    "system": "http://hl7.org/fhir/sid/icd-10-cm",
                    "code": "R42",
                    "display": "Dizziness and giddiness",
                },
            ]
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "recordedDate": "2026-11-21",
        "note": [{"text": "Seen in Manila; records read from TW under the patient's consent."}],
    }


def _share_parameters(recipient: str, classes: list[str]) -> dict:
    parameters = [
        {"name": "recipient", "valueReference": {"reference": recipient}},
        {"name": "period", "valuePeriod": {"start": "2020-01-01", "end": "2099-12-31"}},
        {
            "name": "purpose",
            "valueCoding": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                "code": "TREAT",
            },
        },
        {"name": "access", "valueCode": "read-write"},
    ]
    parameters += [{"name": "class", "valueCode": c} for c in classes]
    return {"resourceType": "Parameters", "parameter": parameters}
