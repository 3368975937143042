"""Security labels of a resource: its ``meta.security`` plus a small labelling service.

Imported records (My Health Bank, other nodes) rarely carry ``meta.security``, so a
patient's "deny PSY / HIV / ETH" would protect nothing. Like a Security Labeling
Service (HL7 DS4P), this module infers sensitivity labels from diagnosis codes:
ICD-10 F01-F99 (PSY; F10-F19 ETH), B20-B24 and Z21 (HIV); ICD-9 290-319
(PSY; 291-292, 303-305 ETH), 042 and V08 (HIV). Inferred labels are only added.
"""

from __future__ import annotations

from consent.codes import ACT_CODE, codings

# Elements holding the clinical concept of the common resource types.
_CONCEPT_ELEMENTS = ("code", "reasonCode", "medicationCodeableConcept", "valueCodeableConcept")


def security_labels(resource: dict) -> set[tuple[str, str]]:
    """(system, code) of every label on ``resource``, declared or inferred."""
    labels = {
        (c.get("system") or "", c.get("code") or "")
        for c in (resource.get("meta") or {}).get("security") or []
        if isinstance(c, dict)
    }
    for element in _CONCEPT_ELEMENTS:
        for coding in codings(resource.get(element)):
            labels |= {(ACT_CODE, code) for code in _inferred(coding)}
    return labels


def _inferred(coding: dict) -> set[str]:
    system = (coding.get("system") or "").lower()
    code = (coding.get("code") or "").upper().replace(".", "")
    if not code:
        return set()
    if "icd-10" in system or "icd10" in system:
        return _icd10(code)
    if "icd-9" in system or "icd9" in system:
        return _icd9(code)
    return set()


def _icd10(code: str) -> set[str]:
    if code.startswith("F1") and code[:3] <= "F19":
        return {"ETH", "PSY"}
    if code.startswith("F") and code[1:3].isdigit():
        return {"PSY"}
    if "B20" <= code[:3] <= "B24" or code.startswith("Z21"):
        return {"HIV"}
    return set()


def _icd9(code: str) -> set[str]:
    if code.startswith("042") or code.startswith("V08"):
        return {"HIV"}
    if code[:3].isdigit() and 290 <= int(code[:3]) <= 319:
        if code[:3] in {"291", "292", "303", "304", "305"}:
            return {"ETH", "PSY"}
        return {"PSY"}
    return set()
