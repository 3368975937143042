"""Code systems and value sets the consent engine understands (FHIR R4 terminology)."""

from __future__ import annotations

CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
PATIENT_PRIVACY = "patient-privacy"
LOINC = "http://loinc.org"
PRIVACY_CATEGORY = "59284-0"  # LOINC "Patient Consent"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
PROVISION_ACTOR_ROLE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
# A Reference.extension naming the country node where an identifier-only actor is
# registered ("PH"): an identifier then matches only a practitioner of that node.
NODE_COUNTRY_EXT = "https://phrx.example.org/fhir/StructureDefinition/node-country"
PHRX_SYSTEM = "https://phrx.example.org/fhir/"

# What a request does -> the consentaction codes that cover it.
ACTIONS_FOR = {
    "read": frozenset({"access", "use", "disclose"}),
    "write": frozenset({"correct", "collect"}),
}

# v3 PurposeOfUse codes (subset of v3-ActReason) accepted on a patient-privacy Consent.
PURPOSES = frozenset(
    {
        "TREAT",
        "ETREAT",
        "BTG",
        "POPHLTH",
        "PUBHLTH",
        "HPAYMT",
        "HOPERAT",
        "CAREMGT",
        "PATRQT",
        "FAMRQT",
        "PWATRNY",
        "SUPNWK",
        "HRESCH",
        "CLINTRCH",
        "HMARKT",
        "HLEGAL",
        "COVERAGE",
        "HSYSADMIN",
        "TRAIN",
    }
)
# Purposes that mean break-glass: handled only by the break-glass rules.
BREAK_GLASS_PURPOSES = frozenset({"ETREAT", "BTG"})
DEFAULT_PURPOSE = "TREAT"

# v3 ActCode sensitivity codes commonly denied by patients.
SENSITIVITY = {
    "PSY": "psychiatry information sensitivity",
    "HIV": "HIV/AIDS information sensitivity",
    "ETH": "substance abuse information sensitivity",
    "SDV": "sexual assault, abuse, or domestic violence information sensitivity",
    "GDIS": "genetic disease information sensitivity",
    "STD": "sexually transmitted disease information sensitivity",
}


def codings(concept: object) -> list[dict]:
    """The codings of a CodeableConcept (or a bare Coding, or a list of either)."""
    if isinstance(concept, list):
        return [c for item in concept for c in codings(item)]
    if not isinstance(concept, dict):
        return []
    if "coding" in concept:
        return [c for c in concept.get("coding") or [] if isinstance(c, dict)]
    if "code" in concept:
        return [concept]
    return []


def has_code(concept: object, system: str, code: str) -> bool:
    return any(c.get("system") == system and c.get("code") == code for c in codings(concept))
