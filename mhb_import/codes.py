"""Code systems and the small public code tables used by the MHB mapping."""

from __future__ import annotations

import re
import unicodedata

TWCORE = "https://twcore.mohw.gov.tw/ig/twcore/CodeSystem/"
ICD10CM_TW = TWCORE + "icd-10-cm-2023-tw"
ICD10PCS_TW = TWCORE + "icd-10-pcs-2023-tw"
ICD9CM = "http://hl7.org/fhir/sid/icd-9-cm"
NHI_MEDICATION = TWCORE + "medication-nhi-tw"
NHI_PAYMENT = TWCORE + "medical-service-payment-tw"
ORG_IDENTIFIER = TWCORE + "organization-identifier-tw"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
CVX = "http://hl7.org/fhir/sid/cvx"
UCUM = "http://unitsofmeasure.org"
TOOTH = "http://terminology.hl7.org/CodeSystem/ex-tooth"
TRANSLATION_EXT = "http://hl7.org/fhir/StructureDefinition/translation"
# PHRX-local code systems (documented in docs/mhb-mapping.md)
PHRX = "https://phrx.example.org/fhir/CodeSystem/"
MHB_SECTION = PHRX + "mhb-section"
MHB_CLAIM_TOTAL = PHRX + "mhb-claim-total"
MHB_R5_NOTE = PHRX + "mhb-nhi-card-note"
MHB_R10_RESULT = PHRX + "mhb-health-check-result"
SOURCE_HASH_SYSTEM = "urn:ietf:rfc:3986"

OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
V3_ACTCODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"

# Chinese vaccine names (NFKC, spaces removed) -> CVX. Most specific first.
VACCINE_CVX: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("六合一",), "146", "DTaP,IPV,Hib,HepB"),
    (("五合一",), "120", "DTaP-Hib-IPV"),
    (("四合一",), "130", "DTaP-IPV"),
    (("減量破傷風白喉非細胞性百日咳", "Tdap"), "115", "Tdap"),
    (("破傷風減量白喉", "Td"), "139", "Td(adult) unspecified formulation"),
    (("麻疹腮腺炎德國麻疹", "MMR"), "03", "MMR"),
    (("水痘",), "21", "varicella"),
    (("帶狀疱疹", "帶狀皰疹"), "188", "zoster vaccine, unspecified formulation"),
    (("卡介苗", "BCG"), "19", "BCG"),
    (("日本腦炎",), "129", "Japanese Encephalitis vaccine, unspecified formulation"),
    (("A型肝炎",), "85", "Hep A, unspecified formulation"),
    (("B型肝炎免疫球蛋白",), "30", "HBIG"),
    (("B型肝炎",), "45", "Hep B, unspecified formulation"),
    (("13價",), "133", "Pneumococcal conjugate PCV 13"),
    (("23價",), "33", "pneumococcal polysaccharide PPV23"),
    (("肺炎鏈球菌",), "109", "pneumococcal, unspecified formulation"),
    (("人類乳突病毒", "HPV"), "137", "HPV, unspecified formulation"),
    (("輪狀病毒",), "122", "rotavirus, unspecified formulation"),
    (("COVID", "新冠", "嚴重特殊傳染性肺炎"), "213", "SARS-COV-2 (COVID-19) vaccine, UNSPECIFIED"),
    (("流感",), "88", "influenza, unspecified formulation"),
    (("小兒麻痺",), "89", "polio, unspecified formulation"),
)


def vaccine_cvx(name: str) -> tuple[str, str] | None:
    key = re.sub(r"\s+", "", unicodedata.normalize("NFKC", name)).upper()
    for needles, code, display in VACCINE_CVX:
        if any(n.upper() in key for n in needles):
            return code, display
    return None


# Lab item names (upper-case, NFKC) -> (LOINC, display, UCUM unit or None)
LAB_LOINC = {
    "HGB": ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL"),
    "HB": ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL"),
    "WBC": ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", None),
    "RBC": ("789-8", "Erythrocytes [#/volume] in Blood by Automated count", None),
    "PLT": ("777-3", "Platelets [#/volume] in Blood by Automated count", None),
    "HCT": ("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%"),
    "HBA1C": ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%"),
    "GLUCOSE AC": ("1558-6", "Fasting glucose [Mass/volume] in Serum or Plasma", "mg/dL"),
    "GLU-AC": ("1558-6", "Fasting glucose [Mass/volume] in Serum or Plasma", "mg/dL"),
    "CREATININE": ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL"),
    "CRE": ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL"),
    "BUN": ("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL"),
    "ALT": (
        "1742-6",
        "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
    ),
    "GPT": (
        "1742-6",
        "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
    ),
    "AST": (
        "1920-8",
        "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
    ),
    "GOT": (
        "1920-8",
        "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
    ),
    "CHOLESTEROL": ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL"),
    "T-CHO": ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL"),
    "TG": ("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL"),
    "HDL": ("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL"),
    "LDL": ("2089-1", "Cholesterol in LDL [Mass/volume] in Serum or Plasma", "mg/dL"),
    "URIC ACID": ("3084-1", "Urate [Mass/volume] in Serum or Plasma", "mg/dL"),
    "K": ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L"),
    "NA": ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L"),
    "URINE PROTEIN": ("20454-5", "Protein [Presence] in Urine by Test strip", None),
    "EGFR": ("33914-3", "Glomerular filtration rate/1.73 sq M.predicted", "mL/min/{1.73_m2}"),
}


def lab_loinc(item: str) -> tuple[str, str, str | None] | None:
    return LAB_LOINC.get(re.sub(r"\s+", " ", unicodedata.normalize("NFKC", item)).strip().upper())


# Fixed LOINC codes for the structured r10 / r12-r14 fields.
# key -> (LOINC, display, UCUM unit or None)
VITALS = {
    "height": ("8302-2", "Body height", "cm"),
    "weight": ("29463-7", "Body weight", "kg"),
    "bmi": ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2"),
    "waist": ("8280-0", "Waist Circumference at umbilicus by Tape measure", None),
    "sbp": ("8480-6", "Systolic blood pressure", "mm[Hg]"),
    "dbp": ("8462-4", "Diastolic blood pressure", "mm[Hg]"),
    "bp": ("85354-9", "Blood pressure panel with all children optional", None),
    "tc": LAB_LOINC["CHOLESTEROL"],
    "tg": LAB_LOINC["TG"],
    "hdl": LAB_LOINC["HDL"],
    "ldl": LAB_LOINC["LDL"],
    "glucose_ac": LAB_LOINC["GLUCOSE AC"],
    "bun": LAB_LOINC["BUN"],
    "creatinine": LAB_LOINC["CREATININE"],
    "egfr": LAB_LOINC["EGFR"],
    "urine_protein": LAB_LOINC["URINE PROTEIN"],
    "ast": LAB_LOINC["AST"],
    "alt": LAB_LOINC["ALT"],
    "hba1c": LAB_LOINC["HBA1C"],
    "hbsag": ("5196-1", "Hepatitis B virus surface Ag [Presence] in Serum", None),
    "hbeag": ("13954-3", "Hepatitis B virus e Ag [Presence] in Serum", None),
    "anti_hcv": ("16128-1", "Hepatitis C virus Ab [Presence] in Serum", None),
    "uacr": ("14959-1", "Microalbumin/Creatinine [Mass Ratio] in Urine", None),
    "upcr": ("2890-2", "Protein/Creatinine [Mass Ratio] in Urine", None),
    "microalbumin": ("14957-5", "Microalbumin [Mass/volume] in Urine", None),
    "fobt": (
        "29771-3",
        "Hemoglobin.gastrointestinal.lower [Presence] in Stool by Immunoassay",
        None,
    ),
    "mammogram": ("24606-6", "MG Breast Screening", None),
}

POSITIVE = {"陽性", "POSITIVE", "POS", "+", "(+)", "REACTIVE"}
NEGATIVE = {"陰性", "NEGATIVE", "NEG", "-", "(-)", "NON-REACTIVE", "NONREACTIVE"}


def presence_concept(text: str) -> dict | None:
    """陽性/陰性 -> SNOMED CT positive/negative, text kept."""
    key = text.strip().upper()
    if key in POSITIVE:
        return {
            "coding": [{"system": SNOMED, "code": "10828004", "display": "Positive"}],
            "text": text,
        }
    if key in NEGATIVE:
        return {
            "coding": [{"system": SNOMED, "code": "260385009", "display": "Negative"}],
            "text": text,
        }
    return None


_ICD10_RE = re.compile(r"^[A-Z][0-9][0-9A-Z]([0-9A-Z]{1,4})?$")
_ICD9_RE = re.compile(r"^([0-9]{3,5}|V[0-9]{2,4}|E[0-9]{3,4})$")
_PCS_RE = re.compile(r"^[0-9A-HJ-NP-Z]{7}$")
_FEE_RE = re.compile(r"^[0-9]{5}[A-Z]([0-9]{2})?$|^[A-Z][0-9]{2,5}[A-Z]?$")
_DRUG_RE = re.compile(r"^[A-Z][A-Z0-9][0-9]{8}$")
_TCM_DRUG_RE = re.compile(r"^[A-Z][0-9]{6}([0-9]{3})?$")


def diagnosis_coding(code: str, visit_date: str | None) -> dict | None:
    """MHB diagnosis code (no dot) -> Coding. ICD-9-CM before 2016 (Taiwan switch)."""
    if not code:
        return None
    icd9_era = bool(visit_date) and visit_date < "2016-01-01"
    if _ICD9_RE.match(code) and (icd9_era or code[0].isdigit()):
        dotted = code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"
        if code[0] == "E" and len(code) > 4:
            dotted = f"{code[:4]}.{code[4:]}"
        return {"system": ICD9CM, "code": dotted}
    if _ICD10_RE.match(code):
        dotted = code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"
        return {"system": ICD10CM_TW, "code": dotted}
    return None


def procedure_coding(code: str) -> dict | None:
    """ICD-10-PCS (7 chars) or NHI fee-schedule code."""
    if not code:
        return None
    if _FEE_RE.match(code):
        return {"system": NHI_PAYMENT, "code": code}
    if _PCS_RE.match(code):
        return {"system": ICD10PCS_TW, "code": code}
    if re.match(r"^[0-9]{2}(\.?[0-9]{1,2})?$", code):
        return {"system": "http://hl7.org/fhir/sid/icd-9-cm", "code": code}
    return None


def is_drug_code(code: str, section: str) -> bool:
    if _DRUG_RE.match(code):
        return True
    return section == "r9" and bool(_TCM_DRUG_RE.match(code))


TOOTH_CODES = {f"{q}{n}" for q in range(1, 9) for n in range(1, 9) if q <= 4 or n <= 5}
