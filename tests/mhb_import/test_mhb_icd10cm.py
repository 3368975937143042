"""English ICD-10-CM displays from the pinned public code list (simple-icd-10-cm),
and the TW Core code system URLs the mapping writes."""

from __future__ import annotations

from datetime import UTC, datetime

import mhb_import
from mhb_import import codes as C
from mhb_import.icd10cm import english_title
from mhb_import.synthetic import dumps_json, scenario_export

NS = b"test-namespace-0123456789abcdef"


def conditions_by_code(doc) -> dict[str, dict]:
    export = mhb_import.parse_export(dumps_json(doc))
    result = mhb_import.to_bundle(
        export, patient_id="p1", id_namespace=NS, imported_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    found = {}
    for entry in result.bundle["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "Condition":
            found[res["code"]["coding"][0]["code"]] = res["code"]
    return found


def test_titles_come_from_the_full_code_list():
    assert english_title("E11.9") == "Type 2 diabetes mellitus without complications"
    # codes the old built-in table of ~35 codes never had
    assert english_title("K35.80") == "Unspecified acute appendicitis"
    assert english_title("B99") == "Other and unspecified infectious diseases"
    assert english_title("S72.001A") == (
        "Fracture of unspecified part of neck of right femur, initial encounter for closed fracture"
    )


def test_chapters_blocks_and_unknown_codes_have_no_title():
    for code in ("1", "A00-A09", "A00.99", "X9Z", ""):
        assert english_title(code) is None, code


def test_mapped_diagnosis_shows_english_with_the_chinese_beside_it():
    doc = scenario_export()
    row = doc["myhealthbank"]["bdata"]["r1"][0]
    row["r1.8"], row["r1.9"] = "K3580", "急性闌尾炎"
    row["r1.14"], row["r1.15"] = "A0099", "不存在的代碼"  # ICD-10 shaped, not a CM code
    found = conditions_by_code(doc)
    known = found["K35.80"]["coding"][0]
    assert known["system"] == C.ICD10CM_TW
    assert known["display"] == "Unspecified acute appendicitis"
    translation = known["_display"]["extension"][0]
    assert translation["url"] == C.TRANSLATION_EXT
    assert translation["extension"] == [
        {"url": "lang", "valueCode": "zh-TW"},
        {"url": "content", "valueString": "急性闌尾炎"},
    ]
    assert found["K35.80"]["text"] == "急性闌尾炎"
    unknown = found["A00.99"]["coding"][0]
    assert unknown["display"] == "不存在的代碼"  # no English source: the Chinese name
    assert "_display" not in unknown


def test_icd9_codes_get_no_icd10_title():
    doc = scenario_export()
    row = doc["myhealthbank"]["bdata"]["r1"][0]
    row["r1.5"], row["r1.8"], row["r1.9"] = "20150301", "2500", "糖尿病"
    coding = conditions_by_code(doc)["250.0"]["coding"][0]
    assert coding["system"] == C.ICD9CM
    assert coding["display"] == "糖尿病"


def test_tw_core_code_system_urls():
    # checked against the TW Core IG build (CodeSystem pages and its own examples);
    # a change here changes every stored code: it must be deliberate
    tw = "https://twcore.mohw.gov.tw/ig/twcore/CodeSystem/"
    assert tw + "icd-10-cm-2023-tw" == C.ICD10CM_TW
    assert tw + "icd-10-pcs-2023-tw" == C.ICD10PCS_TW
    assert tw + "medication-nhi-tw" == C.NHI_MEDICATION
    assert tw + "medical-service-payment-tw" == C.NHI_PAYMENT
    assert tw + "organization-identifier-tw" == C.ORG_IDENTIFIER
