"""The cross-border journey of ``../shared/scenario.md`` on three country nodes (TW,
PH, TH on one chain): every step over HTTP at the node where it happens, each with
what was checked (node, status, consent decision, Merkle root, block, verification).
"""

from __future__ import annotations

import secrets
import sqlite3

import requests

from fhir_server.smart.operator import issue_operator_token
from mhb_import.synthetic import dumps_json, scenario_export

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
PRC = "https://www.prc.gov.ph/license"  # Philippine Professional Regulation Commission
TMC = "https://www.tmc.or.th/license"  # Thai Medical Council


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


# The PH doctor as the patient names them in a share: their licence at PH's regulator.
SANTOS = {"name": "recipient", "valueIdentifier": {"system": PRC, "value": "0123456"}}
AT_PH = {"name": "recipientNode", "valueCode": "PH"}


def post_share(session: requests.Session, base: str, patient_id: str, *params: dict):
    """``POST Patient/{id}/$share`` with these Parameters entries."""
    body = {"resourceType": "Parameters", "parameter": list(params)}
    return session.post(f"{base}/Patient/{patient_id}/$share", json=body)


def post_mhb(session: requests.Session, base: str, patient_id: str):
    """The study's Table 1 export, imported by ``POST Patient/{id}/$import-mhb``."""
    return session.post(
        f"{base}/Patient/{patient_id}/$import-mhb",
        data=dumps_json(scenario_export()),
        headers={"Content-Type": "application/json"},
    )


def put_practitioner(session, base: str, res_id: str, family: str, licence: tuple[str, str]):
    """A clinician's Practitioner at their node, known abroad by their licence
    (``(system, value)``): the identifier a patient's share names them by."""
    body = {
        "resourceType": "Practitioner",
        "id": res_id,
        "identifier": [{"system": licence[0], "value": licence[1]}],
        "name": [{"family": family, "prefix": ["Dr."]}],
    }
    return session.put(f"{base}/Practitioner/{res_id}", json=body).raise_for_status()


def _session(token: str) -> requests.Session:
    http = requests.Session()
    http.headers.update({**JSON, "Authorization": f"Bearer {token}"})
    return http


class Journey:
    def __init__(self, network) -> None:
        self.net = network
        self.steps = Steps()
        self.tw, self.ph, self.th = (network.nodes[c] for c in ("TW", "PH", "TH"))
        # username -> (country, password): sign-in for the apps, made for this run
        self.passwords: dict[str, tuple[str, str]] = {}

    def add_user(self, member, username: str, role: str, fhir_user: str) -> None:
        smart = member.app.extensions["phrx.smart"].service
        if smart.users.get(username) is None:
            password = secrets.token_urlsafe(12)
            smart.users.add(username, role, fhir_user, password)
            self.passwords[username] = (member.country, password)

    def token(self, member, scope: str, username: str | None = None) -> str:
        smart = member.app.extensions["phrx.smart"].service
        return issue_operator_token(smart, member.base, scope, username=username, lifetime=3600)

    def run(self) -> int:
        check = self.steps.check
        anonymous = requests.Session()
        anonymous.headers.update(JSON)
        cap = anonymous.get(f"{self.tw.base}/metadata")
        check("GET /metadata (no token needed)", cap.status_code == 200, "FHIR 4.0.1")
        denied = anonymous.get(f"{self.tw.base}/Patient")
        check("GET /Patient without a token → 401", denied.status_code == 401)
        listed = {a.country: a.fhir_base_url for a in self.net.authorities()}
        check(
            "three countries on one chain, admitted by vote",
            listed == {c: m.base for c, m in self.net.nodes.items()},
            ", ".join(f"{c} {u}" for c, u in listed.items()),
        )
        patient_id, lin = self.patient_at_home()
        santos, chai = (
            self.doctor(self.ph, "dr-santos", "Santos", PRC, "0123456"),
            self.doctor(self.th, "dr-chai", "Chai", TMC, "TH-77"),
        )
        link = self.share(lin, patient_id)
        proxy = self.receive(santos, link)
        if proxy:
            self.read_abroad(santos, proxy)
            self.write_back(santos, proxy, lin, patient_id)
        self.th_refused(chai, link)
        if proxy:
            self.tamper_and_revoke(santos, proxy, lin, patient_id)
        return self.steps.failures

    # -- 1. the patient at home ----------------------------------------------------------
    def patient_at_home(self):
        tw, check = self.tw, self.steps.check
        operator = _session(self.token(tw, "system/*.cruds"))
        patient = operator.post(
            f"{tw.base}/Patient",
            json={
                "resourceType": "Patient",
                "name": [{"family": "Lin", "given": ["Mei-Hua"]}],
                "gender": "female",
                "birthDate": "1968-03-02",
            },
        ).json()
        self.add_user(tw, "lin", "patient", f"Patient/{patient['id']}")
        lin = _session(self.token(tw, "patient/*.cruds openid fhirUser", "lin"))
        imported = post_mhb(lin, tw.base, patient["id"])
        check(
            "TW: the patient imports the My Health Bank export",
            imported.status_code == 200,
            f"HTTP {imported.status_code}, {param(imported.json(), 'created', 0)} resources "
            "encrypted and journaled",
        )
        again = post_mhb(lin, tw.base, patient["id"])
        check(
            "TW: re-importing the same file creates nothing (idempotent)",
            again.ok and param(again.json(), "created", -1) == 0,
        )
        anchored = operator.post(f"{tw.base}/$anchor", json={})
        batches = [
            p.get("part") for p in anchored.json().get("parameter", []) if p.get("name") == "batch"
        ]
        last = (
            {x["name"]: next(v for k, v in x.items() if k.startswith("value")) for x in batches[-1]}
            if batches
            else {}
        )
        check(
            "TW: the records are anchored (one Merkle root on chain)",
            anchored.status_code == 200 and bool(batches),
            f"root {str(last.get('root', ''))[:18]}..., block {last.get('blockNumber')}",
        )
        found = lin.get(f"{tw.base}/Condition", params={"patient": patient["id"]})
        first = (found.json().get("entry") or [{}])[0].get("resource", {}).get("id", "?")
        verified = lin.get(f"{tw.base}/Condition/{first}/$verify")
        body = verified.json() if verified.ok else {}
        check(
            "TW: the patient's app verifies a diagnosis against the chain ($verify)",
            param(body, "result") is True,
            f"root {str(param(body, 'root', ''))[:18]}..., block {param(body, 'blockNumber')}, "
            f"authority {param(body, 'authority')}",
        )
        return patient["id"], lin

    def doctor(self, member, username: str, family: str, system: str, value: str):
        operator = _session(self.token(member, "system/*.cruds"))
        put_practitioner(operator, member.base, username, family, (system, value))
        self.add_user(member, username, "practitioner", f"Practitioner/{username}")
        return _session(self.token(member, "user/*.cruds openid fhirUser", username))

    # -- 2. sharing --------------------------------------------------------------------
    def share(self, lin, patient_id: str) -> str:
        shared = post_share(
            lin,
            self.tw.base,
            patient_id,
            SANTOS,
            AT_PH,
            {"name": "access", "valueCode": "read-write"},
            {"name": "label", "valueString": "Lin Mei-Hua for Dr. Santos"},
        )
        link = param(shared.json(), "link", "") if shared.ok else ""
        self.steps.check(
            "TW: the patient shares with the PH doctor ($share: Consent + SMART Health Link + QR)",
            shared.status_code == 201 and link.startswith("shlink:/"),
            f"HTTP {shared.status_code}, link {link[:28]}..., key released to PH: "
            f"{param(shared.json(), 'keyReleased') if shared.ok else '-'}",
        )
        self.share_link = link
        return link

    def receive(self, santos, link: str) -> str | None:
        received = santos.post(
            f"{self.ph.base}/$receive-share",
            json={
                "resourceType": "Parameters",
                "parameter": [{"name": "link", "valueString": link}],
            },
        )
        proxy = None
        if received.ok:
            proxy = param(received.json(), "patient", {}).get("reference", "").split("/")[-1]
        self.steps.check(
            "PH: the doctor hands the link to PH, which redeems it at TW with its node assertion",
            received.status_code == 200 and bool(proxy),
            f"HTTP {received.status_code}, proxy Patient/{proxy}",
        )
        return proxy

    # -- 3. reading abroad, verified at PH -------------------------------------------------
    def read_abroad(self, santos, proxy: str) -> None:
        check = self.steps.check
        found = santos.get(f"{self.ph.base}/Condition", params={"patient": proxy})
        entries = found.json().get("entry", []) if found.ok else []
        conditions = [
            e["resource"] for e in entries if e["resource"]["resourceType"] == "Condition"
        ]
        verified = [
            c
            for c in conditions
            if any(t.get("code") == "verified" for t in c.get("meta", {}).get("tag", []))
        ]
        dates = [c.get("recordedDate", "") for c in conditions]
        check(
            "PH: diagnoses fetched from TW (consent decided at TW), each verified at PH on chain",
            found.status_code == 200 and len(verified) == 5 == len(conditions),
            f"{len(verified)}/{len(conditions)} verified; {_tag(verified)}",
        )
        newest = sorted(dates, reverse=True)
        check(
            "PH: the history is there, newest first",
            newest[:1] == ["2017-10-10"],
            ", ".join(newest),
        )
        summary = santos.get(f"{self.ph.base}/Patient/{proxy}/$summary")
        entries = summary.json().get("entry", []) if summary.ok else []
        tagged = sum(
            1
            for e in entries
            if any(
                t.get("code") == "verified" for t in e["resource"].get("meta", {}).get("tag", [])
            )
        )
        check(
            "PH: International Patient Summary through PH, every entry verified",
            summary.status_code == 200 and tagged >= 10 and _withheld(entries) == 0,
            f"HTTP {summary.status_code}, {tagged} verified entries of {len(entries)}",
        )

    # -- 4. write-back -----------------------------------------------------------------
    def write_back(self, santos, proxy: str, lin, patient_id: str) -> None:
        check = self.steps.check
        written = santos.post(
            f"{self.ph.base}/Condition",
            json={
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
                        }
                    ]
                },
                "subject": {"reference": f"Patient/{proxy}"},
                "recordedDate": "2026-11-21",
            },
        )
        location = written.headers.get("Location", "")
        check(
            "PH: the doctor writes back a diagnosis; it is stored at TW",
            written.status_code == 201 and location.startswith(self.tw.base),
            f"HTTP {written.status_code}, Location {location[:60]}",
        )
        operator = _session(self.token(self.tw, "system/*.cruds"))
        anchored = operator.post(f"{self.tw.base}/$anchor", json={})
        check("TW: the new record is anchored in a new block", anchored.status_code == 200)
        log = lin.get(f"{self.tw.base}/AuditEvent", params={"patient": patient_id, "_count": "200"})
        text = log.text if log.ok else ""
        check(
            "TW: the patient's access log shows the PH doctor's read and write",
            log.ok and "0123456" in text and '"PH"' in text,
            "agent identifier 0123456, country PH",
        )

    def th_refused(self, chai, link: str) -> None:
        refused = chai.post(
            f"{self.th.base}/$receive-share",
            json={
                "resourceType": "Parameters",
                "parameter": [{"name": "link", "valueString": link}],
            },
        )
        self.steps.check(
            "TH: a doctor without consent is refused (TW decides, nothing released)",
            refused.status_code == 403,
            f"HTTP {refused.status_code}, {_said(refused)}",
        )

    # -- 5. tampering and revocation -------------------------------------------------------
    def tamper_and_revoke(self, santos, proxy: str, lin, patient_id: str) -> None:
        check = self.steps.check
        found = santos.get(f"{self.ph.base}/Condition", params={"patient": proxy}).json()
        victim = next(
            e["resource"]["id"]
            for e in found.get("entry", [])
            if e["resource"]["resourceType"] == "Condition"
        )
        db_file = self.tw.node.config.data_dir / "phrx.sqlite3"
        with sqlite3.connect(db_file) as db:
            blob = db.execute(
                "SELECT sealed FROM resource_versions WHERE res_type='Condition' AND res_id=?",
                (victim,),
            ).fetchone()[0]
            db.execute(
                "UPDATE resource_versions SET sealed=? WHERE res_type='Condition' AND res_id=?",
                (bytes([blob[0], blob[1] ^ 1]) + blob[2:], victim),
            )
        operator = _session(self.token(self.tw, "system/*.cruds"))
        verified = operator.get(f"{self.tw.base}/Condition/{victim}/$verify")
        check(
            "TW: a row altered in TW's database is detected by $verify",
            verified.ok and param(verified.json(), "result") is False,
            str(param(verified.json(), "reason", f"HTTP {verified.status_code}"))[:80],
        )
        after = santos.get(f"{self.ph.base}/Condition", params={"patient": proxy})
        shown = [
            e["resource"]["id"]
            for e in (after.json().get("entry", []) if after.ok else [])
            if e["resource"]["resourceType"] == "Condition"
        ]
        check(
            "PH: the altered record never reaches the PH doctor as verified",
            victim not in shown,
            f"HTTP {after.status_code}, {len(shown)} verified diagnoses shown",
        )
        revoke = {"name": "revoke", "valueBoolean": True}
        revoked = post_share(lin, self.tw.base, patient_id, SANTOS, AT_PH, revoke)
        check("TW: the patient revokes the share", revoked.status_code == 200)
        refused = santos.get(f"{self.ph.base}/Condition", params={"patient": proxy})
        check(
            "PH: the doctor's next read is refused (TW decides on every read)",
            refused.status_code == 403,
            f"HTTP {refused.status_code}, {_said(refused)}",
        )


def _tag(resources: list[dict]) -> str:
    return resources[0]["meta"]["tag"][-1]["display"] if resources else ""


def _withheld(entries: list[dict]) -> int:
    outcomes = [
        e["resource"] for e in entries if e["resource"]["resourceType"] == "OperationOutcome"
    ]
    return sum(len(o.get("issue", [])) for o in outcomes)


def _said(response: requests.Response) -> str:
    """The first diagnostics of an OperationOutcome answer: the decision, in words."""
    try:
        issues = response.json().get("issue") or [{}]
    except ValueError:
        return "no OperationOutcome"
    return str(issues[0].get("diagnostics", ""))[:110]
