"""``POST /fhir/Patient/{id}/$import-mhb`` over SQLite and PostgreSQL (the shared
``node`` fixture), with SMART bearer tokens minted by the node's operator client."""

from __future__ import annotations

import copy
import hashlib
import io

import pytest
from sqlalchemy import func, select

from fhir_server.storage.db import versions
from mhb_import.synthetic import dumps_json, dumps_xml, scenario_export, synthetic_export

BASE = "http://localhost/fhir"
ZIP_PASSWORD = "健康存摺-pw-1"
SYSTEM = "system/*.cruds"


def mint(app, scope: str = SYSTEM, patient: str | None = None) -> str:
    from fhir_server.smart.tokens import Subject

    smart = app.extensions["phrx.smart"].service
    subject = Subject(context={"patient": patient}) if patient else None
    client = smart.clients.operator().client_id
    issued = smart.tokens.issue(BASE, "operator", client, subject, scope, 300, False)
    return issued["access_token"]


class Api:
    """The Flask test client with a bearer token on every request."""

    def __init__(self, app, token: str):
        self.app = app
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"}

    def _h(self, headers):
        return {**self.headers, **(headers or {})}

    def get(self, url, **kw):
        return self.client.get(url, headers=self._h(kw.pop("headers", None)), **kw)

    def put(self, url, **kw):
        return self.client.put(url, headers=self._h(kw.pop("headers", None)), **kw)

    def post(self, url, **kw):
        return self.client.post(url, headers=self._h(kw.pop("headers", None)), **kw)

    def import_mhb(self, patient, data, headers=None, **kw):
        return self.post(
            f"/fhir/Patient/{patient}/$import-mhb",
            data=data,
            content_type=kw.pop("content_type", "application/octet-stream"),
            headers=headers,
            **kw,
        )

    def with_token(self, token: str) -> Api:
        return Api(self.app, token)


@pytest.fixture
def api(app):
    api = Api(app, mint(app))
    for pid in ("p1", "p2"):
        r = api.put(
            f"/fhir/Patient/{pid}",
            json={"resourceType": "Patient", "id": pid, "name": [{"family": pid}]},
        )
        assert r.status_code in (200, 201), r.text
    return api


def stored_versions(node) -> int:
    with node.engine.connect() as conn:
        # the access log (one AuditEvent per request, issue 6) is not the record
        query = select(func.count()).select_from(versions)
        return conn.execute(query.where(versions.c.res_type != "AuditEvent")).scalar_one()


def params(body: dict) -> dict:
    """Parameters -> {name: value} for single values, lists of part-dicts for repeats."""
    out: dict = {}
    for p in body["parameter"]:
        if "part" in p:
            part = {
                q["name"]: next(v for k, v in q.items() if k.startswith("value")) for q in p["part"]
            }
            out.setdefault(p["name"], []).append(part)
        else:
            out[p["name"]] = next(v for k, v in p.items() if k.startswith("value"))
    return out


def per_type(body: dict) -> dict[str, dict]:
    return {r["type"]: r for r in params(body)["resources"]}


def total(api, query: str) -> int:
    r = api.get(f"/fhir/{query}")
    assert r.status_code == 200, r.text
    return r.json["total"]


def history_total(api, types) -> int:
    return sum(total(api, f"{t}/_history") for t in types)


def snapshot(api, patient: str, types) -> dict:
    """Every resource of ``types`` stored for the patient, meta removed."""
    out = {}
    for t in types:
        query = (
            f"{t}?_count=1000" if t in ("Organization",) else f"{t}?patient={patient}&_count=1000"
        )
        if t == "Coverage":
            query = f"Coverage?beneficiary=Patient/{patient}&_count=1000"
        if t == "Provenance":
            continue
        for e in api.get(f"/fhir/{query}").json.get("entry", []):
            res = copy.deepcopy(e["resource"])
            res.pop("meta", None)
            out[(t, res["id"])] = res
    return out


def older_and_newer() -> tuple[bytes, bytes]:
    newer = scenario_export()
    older = copy.deepcopy(newer)
    rows = older["myhealthbank"]["bdata"]["r1"]
    older["myhealthbank"]["bdata"]["r1"] = rows[2:]  # the three oldest visits
    return dumps_json(older), dumps_json(newer)


# --------------------------------------------------------------------------- the scenario


def test_scenario_patient_imports_and_is_searchable(api, fixture_bytes):
    data = fixture_bytes("scenario_patient.json")
    r = api.import_mhb("p1", data, query_string={"filename": "scenario_patient.json"})
    assert r.status_code == 200, r.text
    body = r.json
    assert body["resourceType"] == "Parameters"
    p = params(body)
    assert p["patient"] == {"reference": "Patient/p1"}
    source = p["source"][0]
    assert source["sha256"] == hashlib.sha256(data).hexdigest()
    assert (source["format"], source["container"]) == ("json", "plain")
    assert source["filename"] == "scenario_patient.json"
    types = per_type(body)
    assert types["Condition"]["created"] == 5
    assert types["MedicationRequest"]["created"] == 5
    assert p["updated"] == 0 and p["unchanged"] == 0
    assert p["created"] == sum(t["created"] for t in types.values())
    assert "skipped" not in p
    # searchable afterwards, in the patient's compartment
    assert total(api, "Condition?patient=p1") == 5
    assert total(api, "MedicationRequest?patient=p1") == 5
    assert total(api, "Condition?patient=p2") == 0
    codes = {
        e["resource"]["code"]["coding"][0]["code"]
        for e in api.get("/fhir/Condition?patient=p1").json["entry"]
    }
    assert codes == {"E11.9", "G40.909", "G46.3", "R80.9"}
    # the Provenance records the file's hash, format and the import time
    prov_ref = p["provenance"]["reference"]
    prov = api.get(f"/fhir/{prov_ref}").json
    what = prov["entity"][0]["what"]
    assert what["identifier"]["value"] == f"urn:sha256:{source['sha256']}"
    assert "format=json" in what["display"]
    assert prov["recorded"] == p["importedAt"]
    assert len(prov["target"]) == p["created"] - 1


def test_reimport_creates_no_versions(api, node, fixture_bytes):
    data = fixture_bytes("scenario_patient.json")
    first = api.import_mhb("p1", data)
    assert first.status_code == 200, first.text
    types = list(per_type(first.json))
    before = history_total(api, types)
    stored = stored_versions(node)
    again = api.import_mhb("p1", data)
    assert again.status_code == 200, again.text
    p = params(again.json)
    assert p["created"] == 0 and p["updated"] == 0
    assert p["unchanged"] == params(first.json)["created"] - 1  # all but the Provenance
    assert "provenance" not in p  # nothing changed, nothing to attest
    assert history_total(api, types) == before
    assert stored_versions(node) == stored


def test_overlapping_newer_export_adds_only_new_rows(api, node):
    older, newer = older_and_newer()
    r = api.import_mhb("p1", older)
    assert r.status_code == 200, r.text
    assert per_type(r.json)["Condition"]["created"] == 3
    stored = stored_versions(node)
    r = api.import_mhb("p1", newer)
    assert r.status_code == 200, r.text
    types = per_type(r.json)
    assert types["Condition"] == {"type": "Condition", "created": 2, "updated": 0, "unchanged": 3}
    assert types["MedicationRequest"]["created"] == 2
    assert types["MedicationRequest"]["unchanged"] == 3
    assert types["Organization"]["created"] == 0
    assert params(r.json)["updated"] == 0
    # new versions: exactly the new resources plus one Provenance
    assert stored_versions(node) == stored + params(r.json)["created"]
    assert total(api, "Condition?patient=p1") == 5
    assert total(api, "Encounter?patient=p1") == 5


def test_json_and_xml_store_identical_resources(api, fixture_bytes):
    r = api.import_mhb("p1", fixture_bytes("scenario_patient.json"))
    assert r.status_code == 200, r.text
    types = list(per_type(r.json))
    from_json = snapshot(api, "p1", types)
    # the XML of the same export, into the same patient, changes nothing JSON stored
    r = api.import_mhb("p1", fixture_bytes("scenario_patient.xml"))
    assert r.status_code == 200, r.text
    p = params(r.json)
    assert p["source"][0]["format"] == "xml"
    assert p["created"] == 0 and p["updated"] == 0
    assert snapshot(api, "p1", types) == from_json
    assert len(from_json) == p["unchanged"]


def test_quirks_summary_reports_unknown_fields(api, fixture_bytes):
    r = api.import_mhb("p1", fixture_bytes("quirks.xml"))
    assert r.status_code == 200, r.text
    p = params(r.json)
    unknown = {u["field"]: u["count"] for u in p["unknownField"]}
    assert unknown == {"r1.42": 1, "r15": 1}
    assert {"r2", "r8"} <= set(
        x["valueString"] for x in r.json["parameter"] if x["name"] == "emptySection"
    )
    assert p["duplicatesRemoved"] == [{"section": "r7", "count": 1}]
    rows = {x["section"]: x["count"] for x in p["rows"]}
    assert rows["r1"] == 1


def test_skipped_rows_are_reported_with_reason(api):
    doc = scenario_export()
    doc["myhealthbank"]["bdata"]["r1"][0]["r1.5"] = "20171399"  # impossible date
    r = api.import_mhb("p1", dumps_json(doc))
    assert r.status_code == 200, r.text
    p = params(r.json)
    assert p["skipped"] == [{"section": "r1", "row": 0, "reason": "missing or invalid visit date"}]
    assert per_type(r.json)["Condition"]["created"] == 4


def test_large_synthetic_export_covering_every_section(api, node):
    doc = synthetic_export(visits=120, years=10)
    sections = set(doc["myhealthbank"]["bdata"])
    assert {f"r{n}" for n in range(1, 15)} <= {s.lower() for s in sections}
    r = api.import_mhb("p1", dumps_xml(doc))
    assert r.status_code == 200, r.text
    p = params(r.json)
    types = per_type(r.json)
    assert p["created"] == stored_versions(node) - 2  # minus the two Patients
    for t in (
        "AllergyIntolerance",
        "Consent",
        "DiagnosticReport",
        "Encounter",
        "EpisodeOfCare",
        "ExplanationOfBenefit",
        "Immunization",
        "MedicationRequest",
        "Observation",
        "Procedure",
    ):
        assert types[t]["created"] > 0, t
    # every stored resource reads back and is an R4-valid resource of the patient
    from fhir_server.validation import validate_resource

    for t in types:
        if t in ("Organization", "Provenance"):
            continue
        query = "Coverage?beneficiary=Patient/p1" if t == "Coverage" else f"{t}?patient=p1"
        found = api.get(f"/fhir/{query}&_count=1000").json
        assert found["total"] == types[t]["created"], t
        for e in found["entry"]:
            validate_resource(e["resource"])


def test_multipart_upload(api):
    r = api.post(
        "/fhir/Patient/p1/$import-mhb",
        data={"file": (io.BytesIO(dumps_json(scenario_export())), "健康存摺_2018.json")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 200, r.text
    assert params(r.json)["source"][0]["filename"] == "健康存摺_2018.json"
    r = api.post(
        "/fhir/Patient/p1/$import-mhb",
        data={"other": (io.BytesIO(b"{}"), "x.json")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 400
    assert "file" in r.json["issue"][0]["diagnostics"]


# --------------------------------------------------------------------------- zips


def aes_zip(payload: bytes, password: str) -> bytes:
    import pyzipper

    buf = io.BytesIO()
    with pyzipper.AESZipFile(
        buf, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
    ) as zf:
        zf.setpassword(password.encode())
        zf.writestr("健康存摺醫療類_20180101.json", payload)
    return buf.getvalue()


def test_zip_with_password(api, node, fixture_bytes):
    data = aes_zip(fixture_bytes("scenario_patient.json"), ZIP_PASSWORD)
    stored = stored_versions(node)
    wrong = api.import_mhb("p1", data, headers={"X-MHB-Password": "not it"})
    assert wrong.status_code == 400
    assert wrong.json["resourceType"] == "OperationOutcome"
    assert "password" in wrong.json["issue"][0]["diagnostics"]
    missing = api.import_mhb("p1", data)
    assert missing.status_code == 400
    assert stored_versions(node) == stored
    ok = api.post(
        "/fhir/Patient/p1/$import-mhb",
        data={"file": (io.BytesIO(data), "export.zip"), "password": ZIP_PASSWORD},
        content_type="multipart/form-data",
    )
    assert ok.status_code == 200, ok.text
    source = params(ok.json)["source"][0]
    assert source["container"] == "zip-aes"
    assert source["sha256"] == hashlib.sha256(data).hexdigest()
    assert total(api, "Condition?patient=p1") == 5
    # the same zip through the raw body + header: nothing new
    again = api.import_mhb("p1", data, headers={"X-MHB-Password": ZIP_PASSWORD})
    assert again.status_code == 200, again.text
    assert params(again.json)["created"] == 0


# --------------------------------------------------------------------------- refusals

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<myhealthbank><bdata><r1><r1.4>&lol2;</r1.4></r1></bdata></myhealthbank>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<myhealthbank><bdata><r1><r1.4>&x;</r1.4></r1></bdata></myhealthbank>"""


@pytest.mark.parametrize(
    ("name", "body", "status"),
    [
        ("billion-laughs", BILLION_LAUGHS, 400),
        ("xxe", XXE, 400),
        ("truncated-json", b'{"myhealthbank": {"bdata": {"r1": [', 400),
        ("truncated-xml", b"<myhealthbank><bdata><r1>", 400),
        ("empty", b"", 400),
        ("not-mhb-json", b'{"resourceType": "Patient"}', 415),
        ("not-data", b"\x00\x01binary", 415),
        ("deep-json", b'{"myhealthbank": ' + b"[" * 200 + b"]" * 200 + b"}", 400),
        ("damaged-zip", b"PK\x03\x04" + b"\x00" * 40, 400),
        ("wrong-shape", b'{"myhealthbank": {"bdata": {"r1": 42}}}', 422),
    ],
)
def test_hostile_or_malformed_files_store_nothing(api, node, name, body, status):
    stored = stored_versions(node)
    r = api.import_mhb("p1", body)
    assert r.status_code == status, (name, r.text)
    assert r.json["resourceType"] == "OperationOutcome"
    diagnostics = r.json["issue"][0].get("diagnostics", "")
    assert "passwd" not in diagnostics and "lol" not in diagnostics
    assert stored_versions(node) == stored


def test_too_large_is_413_and_stores_nothing(node):
    from fhir_server.app import create_app

    app = create_app({"NODE": node, "TESTING": True, "PHRX_MAX_BODY_BYTES": 2000})
    api = Api(app, mint(app))
    assert (
        api.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1"}).status_code == 201
    )
    stored = stored_versions(node)
    r = api.import_mhb("p1", dumps_json(scenario_export()))
    assert r.status_code == 413
    assert r.json["resourceType"] == "OperationOutcome"
    assert stored_versions(node) == stored


def test_unknown_patient_is_404(api, node, fixture_bytes):
    stored = stored_versions(node)
    r = api.import_mhb("nobody", fixture_bytes("scenario_patient.json"))
    assert r.status_code == 404
    assert r.json["resourceType"] == "OperationOutcome"
    assert stored_versions(node) == stored
    assert api.import_mhb("bad id!", b"{}").status_code in (400, 404)


def test_token_of_another_patient_is_403(api, node, fixture_bytes):
    other = api.with_token(mint(api.app, "patient/*.cruds", patient="p2"))
    stored = stored_versions(node)
    r = other.import_mhb("p1", fixture_bytes("scenario_patient.json"))
    assert r.status_code == 403
    assert r.json["resourceType"] == "OperationOutcome"
    assert stored_versions(node) == stored
    # the same token imports into its own patient's record
    own = other.import_mhb("p2", fixture_bytes("scenario_patient.json"))
    assert own.status_code == 200, own.text
    assert total(api, "Condition?patient=p2") == 5


@pytest.mark.parametrize(
    "scope",
    [
        "system/*.rs",  # no write at all
        "system/Condition.cu system/Provenance.cu",  # not every type the export produces
        "system/*.c",  # create without update
    ],
)
def test_insufficient_scopes_are_403(api, node, fixture_bytes, scope):
    limited = api.with_token(mint(api.app, scope))
    stored = stored_versions(node)
    r = limited.import_mhb("p1", fixture_bytes("scenario_patient.json"))
    assert r.status_code == 403, r.text
    assert stored_versions(node) == stored


def test_without_token_is_401(api, fixture_bytes):
    r = api.client.post("/fhir/Patient/p1/$import-mhb", data=fixture_bytes("scenario_patient.json"))
    assert r.status_code == 401


def test_capability_statement_lists_the_operation(api):
    ops = api.get("/fhir/metadata").json["rest"][0]["operation"]
    assert {
        "name": "import-mhb",
        "definition": "https://phrx.dev/fhir/OperationDefinition/import-mhb",
    } in ops


def test_id_namespace_is_secret_and_stable(node, tmp_path):
    from fhir_server.node import Node, NodeConfig
    from fhir_server.operations.import_mhb import id_namespace

    ns = id_namespace(node.keyring)
    assert len(ns) >= 16
    if node.config.database_url is None:  # same data dir reopened: same namespace
        again = Node(NodeConfig(data_dir=node.config.data_dir))
        try:
            assert id_namespace(again.keyring) == ns
        finally:
            again.close()
    other = Node(NodeConfig(data_dir=tmp_path / "other"))
    try:
        assert id_namespace(other.keyring) != ns
    finally:
        other.close()
