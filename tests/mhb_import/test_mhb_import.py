"""Tests of mhb_import: parsing, mapping, idempotency, validation, hostile input."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import given, settings
from hypothesis import strategies as st

import mhb_import
from mhb_import import codes as C
from mhb_import.errors import (
    MhbError,
    MhbInvalid,
    MhbTooLarge,
    MhbUnexpectedStructure,
    MhbUnsupported,
)
from mhb_import.mapping.values import observation_value, parse_range
from mhb_import.synthetic import dumps_json, dumps_xml, scenario_export, synthetic_export

FIXTURES = Path(__file__).parent / "fixtures"
NS = b"test-namespace-0123456789abcdef"
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def do_import(data: bytes, patient_id: str = "pat-1", **kw):
    export = mhb_import.parse_export(data, **kw)
    return mhb_import.to_bundle(export, patient_id=patient_id, id_namespace=NS, imported_at=WHEN)


SHARED_SAMPLE = Path("mhb") / "public_synthetic_sample.json"  # under ../shared
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def resources(bundle, rtype=None):
    return [
        e["resource"]
        for e in bundle["entry"]
        if rtype is None or e["resource"]["resourceType"] == rtype
    ]


def validate_all(bundle):
    get_fhir_model_class("Bundle").model_validate(bundle)
    for res in resources(bundle):
        get_fhir_model_class(res["resourceType"]).model_validate(res)


def clinical_entries(bundle):
    """Everything but the Provenance (which records the source file and time)."""
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Provenance"]


def all_references(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference":
                yield v
            else:
                yield from all_references(v)
    elif isinstance(node, list):
        for v in node:
            yield from all_references(v)


# --------------------------------------------------------------------------- scenario


@pytest.mark.parametrize("name", ["scenario_patient.json", "scenario_patient.xml"])
def test_scenario_patient_imports_five_visits(fixture_bytes, name):
    result = do_import(fixture_bytes(name), filename=name)
    bundle = result.bundle
    validate_all(bundle)
    assert result.summary["skipped"] == []
    assert result.summary["unknown_fields"] == {}
    encounters = resources(bundle, "Encounter")
    assert sorted(e["period"]["start"] for e in encounters) == [
        "2017-01-20", "2017-05-20", "2017-05-25", "2017-07-16", "2017-10-10",
    ]  # fmt: skip
    by_enc = {f"Encounter/{e['id']}": e["period"]["start"] for e in encounters}
    dx = {by_enc[c["encounter"]["reference"]]: c["code"] for c in resources(bundle, "Condition")}
    expected = {
        "2017-10-10": ("E11.9", "Type 2 diabetes mellitus"),
        "2017-07-16": ("G40.909", "Epilepsy"),
        "2017-05-25": ("G46.3", "Brain stem stroke"),
        "2017-05-20": ("G46.3", "Brain stem stroke"),
        "2017-01-20": ("R80.9", "Proteinuria"),
    }
    for day, (code, english) in expected.items():
        coding = dx[day]["coding"][0]
        assert coding["system"] == C.ICD10CM_TW
        assert coding["code"] == code
        assert coding["display"].startswith(english)
        # the Chinese name is kept next to the English display
        assert coding["_display"]["extension"][0]["extension"][1]["valueString"] == dx[day]["text"]
    meds = {by_enc[m["encounter"]["reference"]]: m for m in resources(bundle, "MedicationRequest")}
    assert meds["2017-10-10"]["medicationCodeableConcept"]["text"] == 'Iunaidon Tablets "Yu Sheng"'
    assert meds["2017-07-16"]["medicationCodeableConcept"]["text"] == "Neurtrol F.C. Tablets 300 mg"
    assert meds["2017-05-25"]["medicationCodeableConcept"]["text"] == "Cofarin Tab 1 mg"
    assert meds["2017-05-20"]["medicationCodeableConcept"]["text"] == "Cofarin Tab 1 mg"
    assert meds["2017-01-20"]["medicationCodeableConcept"]["text"] == "Kaluril Tablets 5 mg"
    rx = meds["2017-10-10"]
    assert rx["medicationCodeableConcept"]["coding"][0]["system"] == C.NHI_MEDICATION
    assert rx["dispenseRequest"]["quantity"] == {"value": 56}
    assert rx["dispenseRequest"]["expectedSupplyDuration"]["value"] == 28
    eob = resources(bundle, "ExplanationOfBenefit")
    assert len(eob) == 5
    assert {t["amount"]["value"] for e in eob for t in e["total"]} == {50, 420}


def test_scenario_fixture_files_match_generator(fixture_bytes):
    """The committed fixtures are the documented scenario patient."""
    assert json.loads(fixture_bytes("scenario_patient.json")) == scenario_export()


@pytest.mark.parametrize("stem", ["scenario_patient", "quirks"])
def test_json_and_xml_forms_give_the_same_bundle(fixture_bytes, stem):
    a = do_import(fixture_bytes(f"{stem}.json"))
    b = do_import(fixture_bytes(f"{stem}.xml"))
    assert clinical_entries(a.bundle) == clinical_entries(b.bundle)
    assert a.summary["resources"] == b.summary["resources"]
    assert a.summary["unknown_fields"] == b.summary["unknown_fields"]


# --------------------------------------------------------------------------- large synthetic


@pytest.fixture(scope="module")
def large():
    doc = synthetic_export(visits=400)
    return doc, do_import(dumps_json(doc)), do_import(dumps_xml(doc))


def test_large_export_covers_all_sections_and_validates(large):
    _, result, _ = large
    validate_all(result.bundle)
    assert set(result.summary["rows"]) == {f"r{n}" for n in range(1, 15)}
    expected_types = {
        "AllergyIntolerance", "Condition", "Consent", "Coverage", "DiagnosticReport",
        "Encounter", "EpisodeOfCare", "ExplanationOfBenefit", "Immunization",
        "MedicationRequest", "Observation", "Organization", "Procedure", "Provenance",
    }  # fmt: skip
    assert expected_types <= set(result.summary["resources"])
    assert result.summary["skipped"] == []
    assert result.summary["duplicates_removed"] == {"r7": 1}


def test_large_export_json_equals_xml(large):
    _, a, b = large
    assert clinical_entries(a.bundle) == clinical_entries(b.bundle)


def test_bundle_shape_ids_and_references(large):
    _, result, _ = large
    bundle = result.bundle
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    ids = set()
    for entry in bundle["entry"]:
        res = entry["resource"]
        assert ID_RE.match(res["id"])
        assert entry["request"] == {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"}
        ids.add(f"{res['resourceType']}/{res['id']}")
    assert len(ids) == len(bundle["entry"])
    for ref in all_references(bundle):
        assert re.match(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$", ref), ref
        assert ref == "Patient/pat-1" or ref in ids, ref
    assert "Patient" not in result.summary["resources"]


def test_ids_carry_no_phi(large):
    _, result, _ = large
    for res in resources(result.bundle):
        assert "pat-1" not in res["id"]
        assert not re.search(r"99000\d{5}", res["id"])  # facility codes
        assert res["id"].startswith("mhb-")


def test_national_id_is_never_emitted(fixture_bytes):
    result = do_import(fixture_bytes("quirks.json"))
    text = json.dumps(result.bundle, ensure_ascii=False) + json.dumps(result.summary)
    assert "Z99999" not in text
    assert result.summary["omitted_demographics"] == ["b1.1"]


def test_provenance_records_source(fixture_bytes):
    data = fixture_bytes("scenario_patient.json")
    result = do_import(data)
    prov = resources(result.bundle, "Provenance")
    assert len(prov) == 1
    sha = hashlib.sha256(data).hexdigest()
    assert prov[0]["entity"][0]["what"]["identifier"]["value"] == f"urn:sha256:{sha}"
    assert "format=json" in prov[0]["entity"][0]["what"]["display"]
    assert prov[0]["recorded"] == WHEN.isoformat(timespec="seconds")
    assert len(prov[0]["target"]) == len(result.bundle["entry"]) - 1
    assert result.summary["source"]["sha256"] == sha


# --------------------------------------------------------------------------- idempotency


def test_reimport_yields_identical_bundle(fixture_bytes):
    data = fixture_bytes("scenario_patient.json")
    assert do_import(data).bundle == do_import(data).bundle


def test_newer_overlapping_export_reuses_ids():
    old = scenario_export()
    new = scenario_export()
    rows = new["myhealthbank"]["bdata"]["r1"]
    extra = json.loads(json.dumps(rows[0]))
    extra.update({"r1.5": "20180105", "r1.7": "0099"})
    rows.insert(0, extra)  # a newer visit, listed first
    new["myhealthbank"]["bdata"]["b1.2"] = "20180201"
    a = {
        e["request"]["url"]: e["resource"]
        for e in clinical_entries(do_import(dumps_json(old)).bundle)
    }
    b = {
        e["request"]["url"]: e["resource"]
        for e in clinical_entries(do_import(dumps_json(new)).bundle)
    }
    assert set(a) < set(b)
    for url, res in a.items():
        assert b[url] == res  # identical PUT -> no-op on the server


def test_ids_depend_on_patient_and_namespace(fixture_bytes):
    data = fixture_bytes("scenario_patient.json")
    export = mhb_import.parse_export(data)
    a = mhb_import.to_bundle(export, patient_id="pat-1", id_namespace=NS, imported_at=WHEN)
    b = mhb_import.to_bundle(export, patient_id="pat-2", id_namespace=NS, imported_at=WHEN)
    c = mhb_import.to_bundle(
        export, patient_id="pat-1", id_namespace=b"another-namespace-xx", imported_at=WHEN
    )
    ids = [{e["resource"]["id"] for e in r.bundle["entry"]} for r in (a, b, c)]
    assert not ids[0] & ids[1] and not ids[0] & ids[2]


def test_bad_patient_id_or_namespace(fixture_bytes):
    export = mhb_import.parse_export(fixture_bytes("scenario_patient.json"))
    with pytest.raises(MhbInvalid):
        mhb_import.to_bundle(export, patient_id="bad id/../", id_namespace=NS)
    with pytest.raises(MhbInvalid):
        mhb_import.to_bundle(export, patient_id="p", id_namespace=b"short")


# --------------------------------------------------------------------------- quirks


def test_quirks_are_normalised(fixture_bytes):
    export = mhb_import.parse_export(fixture_bytes("quirks.json"), filename="quirks.json")
    assert export.format == "json"
    assert export.request_date == "20240102"  # b2.1 label, full-width digits
    r1 = export.sections["r1"][0]  # single-object section accepted
    assert r1["r1.3"] == "9900000201"
    assert r1["r1.8"] == "I10"
    assert r1["r1.9"] == "本態性（原發性）高血壓"  # Chinese text keeps full-width punctuation
    assert r1["r1.13"] == "300"
    assert "r1.6" not in r1 and "r1.14" not in r1  # null / "" -> absent
    assert r1["_unknown"] == {"r1.42": "未知欄位"}  # kept
    assert export.unknown_fields == {"r1.42": 1, "r15": 1}  # and reported
    assert "r15" in export.unknown_sections
    assert {"r2", "r8", "r12", "r13"} <= set(export.empty_sections)
    assert "r14" in export.sections  # upper-case R14 key
    assert export.duplicates_removed == {"r7": 1}
    result = do_import(fixture_bytes("quirks.json"))
    validate_all(result.bundle)
    rx = resources(result.bundle, "MedicationRequest")[0]
    assert rx["medicationCodeableConcept"]["coding"][0]["code"] == "AC00000510"
    obs = resources(result.bundle, "Observation")[0]
    assert obs["valueQuantity"]["value"] == 126
    assert obs["code"]["coding"][0]["code"] == "1558-6"
    assert obs["referenceRange"][0]["high"] == {"value": 100}
    assert obs["interpretation"][0]["coding"][0]["code"] == "H"
    assert obs["encounter"]["reference"].startswith("Encounter/")
    assert result.summary["unknown_fields"] == {"r1.42": 1, "r15": 1}


def test_shared_public_sample_if_present(shared_dir):
    sample = shared_dir / SHARED_SAMPLE  # shared_dir skips, naming ../shared, when it is absent
    if not sample.exists():
        pytest.skip(f"{sample} is absent; shared-sample test skipped")
    result = do_import(sample.read_bytes())
    validate_all(result.bundle)
    assert result.summary["unknown_fields"] == {"r1.99": 1}
    # pharmacy row (empty r1.5, dispensing date r1.6) -> MedicationDispense, no Encounter
    assert len(resources(result.bundle, "MedicationDispense")) == 1
    assert len(resources(result.bundle, "Encounter")) == 5


def test_row_without_date_is_skipped_and_reported():
    doc = scenario_export()
    doc["myhealthbank"]["bdata"]["r1"][0]["r1.5"] = "2017-13-45"
    result = do_import(dumps_json(doc))
    assert result.summary["skipped"] == [
        {"section": "r1", "row": 0, "reason": "missing or invalid visit date"}
    ]
    assert len(resources(result.bundle, "Encounter")) == 4


def test_icd9_era_and_vaccine_codes():
    assert C.diagnosis_coding("59010", "2015-12-18") == {"system": C.ICD9CM, "code": "590.10"}
    assert C.diagnosis_coding("E119", "2017-01-01")["code"] == "E11.9"
    assert C.vaccine_cvx("B 型肝炎遺傳工程疫苗") == ("45", "Hep B, unspecified formulation")
    assert C.vaccine_cvx("季節性流感疫苗")[0] == "88"
    assert C.vaccine_cvx("不明疫苗甲") is None


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [("[13-17]", 13, 17), ("3.8-10", 3.8, 10), ("0.7~1.3", 0.7, 1.3), ("<200", None, 200),
     (">=60", 60, None), ("陰性", None, None)],
)  # fmt: skip
def test_reference_range_parsing(text, low, high):
    rng = parse_range(text)
    assert rng["text"] == text
    assert rng.get("low", {}).get("value") == low
    assert rng.get("high", {}).get("value") == high


def test_observation_values():
    assert observation_value("<5 mg/dL") == {
        "valueQuantity": {"value": 5, "comparator": "<", "unit": "mg/dL"}
    }
    assert observation_value("陽性")["valueCodeableConcept"]["coding"][0]["code"] == "10828004"
    assert observation_value("少量") == {"valueString": "少量"}
    assert "dataAbsentReason" in observation_value(None)


# --------------------------------------------------------------------------- zip


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_plain_zip(fixture_bytes):
    data = _zip({"健康存摺醫療類_20180101.json": fixture_bytes("scenario_patient.json")})
    export = mhb_import.parse_export(data, filename="mhb.zip")
    assert (export.format, export.container) == ("json", "zip")
    assert len(export.sections["r1"]) == 5


def test_aes_zip_with_password(fixture_bytes):
    pyzipper = pytest.importorskip("pyzipper", reason="pyzipper not installed: AES zips untested")
    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", compression=pyzipper.ZIP_DEFLATED,
                             encryption=pyzipper.WZ_AES) as zf:  # fmt: skip
        zf.setpassword("生日0101".encode())
        zf.writestr("mhb.xml", fixture_bytes("scenario_patient.xml"))
    data = buf.getvalue()
    export = mhb_import.parse_export(data, password="生日0101")
    assert (export.format, export.container) == ("xml", "zip-aes")
    with pytest.raises(MhbInvalid, match="wrong password"):
        mhb_import.parse_export(data, password="nope")
    with pytest.raises(MhbInvalid, match="password is required"):
        mhb_import.parse_export(data)


def test_zipcrypto_zip_with_password(fixture_bytes, tmp_path):
    if shutil.which("zip") is None:
        pytest.skip("the zip command is not installed: cannot build a ZipCrypto archive")
    (tmp_path / "mhb.json").write_bytes(fixture_bytes("scenario_patient.json"))
    subprocess.run(["zip", "-q", "-P", "secret1", "out.zip", "mhb.json"], cwd=tmp_path, check=True)
    data = (tmp_path / "out.zip").read_bytes()
    export = mhb_import.parse_export(data, password="secret1")
    assert export.container == "zip-zipcrypto"
    with pytest.raises(MhbInvalid, match="wrong password"):
        mhb_import.parse_export(data, password="wrong")


# --------------------------------------------------------------------------- hostile input

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE myhealthbank [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<myhealthbank><bdata><r6><r6.1>20200101</r6.1><r6.3>&xxe;</r6.3></r6></bdata></myhealthbank>"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<myhealthbank><bdata><r6><r6.3>&lol3;</r6.3></r6></bdata></myhealthbank>"""
DOCTYPE_ONLY = b'<?xml version="1.0"?><!DOCTYPE myhealthbank SYSTEM "http://evil.example/x.dtd"><myhealthbank/>'


@pytest.mark.parametrize("data", [XXE, LAUGHS, DOCTYPE_ONLY], ids=["xxe", "laughs", "doctype"])
def test_xml_dtds_are_refused(data):
    with pytest.raises(MhbInvalid, match="DOCTYPE"):
        mhb_import.parse_export(data)


def test_zip_bomb_is_refused():
    bomb = _zip({"mhb.json": b"{" + b" " * (20 * 1024 * 1024) + b"}"})
    with pytest.raises(MhbTooLarge, match="ratio"):
        mhb_import.parse_export(bomb)


def test_too_many_zip_entries():
    data = _zip({f"f{i}.json": b"{}" for i in range(40)})
    with pytest.raises(MhbTooLarge, match="entries"):
        mhb_import.parse_export(data)


def test_size_limit():
    limits = mhb_import.ParseLimits(max_bytes=1000)
    with pytest.raises(MhbTooLarge):
        mhb_import.parse_export(b"{" + b" " * 2000 + b"}", limits=limits)


@pytest.mark.parametrize(
    "data",
    [b"[" * 5000 + b"]" * 5000, b"<a>" * 5000 + b"</a>" * 5000],
    ids=["json", "xml"],
)
def test_deep_nesting_is_refused(data):
    with pytest.raises(MhbInvalid, match=r"(?i)nesting|deep"):
        mhb_import.parse_export(data)


def test_truncated_json(fixture_bytes):
    data = fixture_bytes("scenario_patient.json")[:500]
    with pytest.raises(MhbInvalid, match="malformed or truncated"):
        mhb_import.parse_export(data)


def test_truncated_xml(fixture_bytes):
    with pytest.raises(MhbInvalid, match="malformed or truncated"):
        mhb_import.parse_export(fixture_bytes("scenario_patient.xml")[:500])


@pytest.mark.parametrize(
    "data",
    [b'{"resourceType": "Patient"}', b"<html><body/></html>", b"%PDF-1.4 ...", b"[1, 2]"],
)
def test_non_mhb_content(data):
    with pytest.raises(MhbUnsupported):
        mhb_import.parse_export(data)


def test_bad_structure_and_duplicate_keys():
    with pytest.raises(MhbUnexpectedStructure):
        mhb_import.parse_export(b'{"myhealthbank": {"bdata": {"r1": 42}}}')
    with pytest.raises(MhbInvalid, match="duplicate"):
        mhb_import.parse_export(b'{"myhealthbank": {"bdata": {"r1": [], "r1": []}}}')


def test_errors_do_not_echo_content():
    secret = "A123456789-secret-diagnosis"
    data = ('{"myhealthbank": {"bdata": {"r1": [{"r1.9": "' + secret + '"').encode()
    with pytest.raises(MhbInvalid) as info:
        mhb_import.parse_export(data)
    assert secret not in str(info.value)
    assert "Traceback" not in str(info.value)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_raise_project_errors(data):
    with contextlib.suppress(MhbError):
        mhb_import.parse_export(data)


def test_fixtures_dir_has_own_files_only():
    names = sorted(p.name for p in FIXTURES.iterdir())
    assert "public_synthetic_sample.json" not in names
