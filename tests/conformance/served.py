"""Validate what the node served: zero errors, and only the warnings README.md accepts."""

from __future__ import annotations

import re

from tests.conformance.validator import Validated, ValidatorProcess

IPS_BUNDLE = "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips"


def _issue_line(issue: dict) -> str:
    return f"{issue['severity']} at {issue['location']}: {issue['message']}"


def conformant(
    validator: ValidatorProcess, response, what: str, profile: str | None = None
) -> Validated:
    """Validate the body of ``response`` (a Flask test response) and assert the
    validator found no error and no warning outside :data:`ACCEPTED_WARNINGS`."""
    assert response.mimetype == "application/fhir+json", (what, response.mimetype)
    found = validator.validate(response.get_data(), profile, what)
    problems = found.errors + [w for w in found.warnings if accepted(w) is None]
    assert not problems, f"{what}:\n" + "\n".join(_issue_line(i) for i in problems)
    return found


def accepted(warning: dict) -> str | None:
    """The reason ``warning`` is acceptable (README.md, "FHIR conformance"), or None."""
    for pattern, reason in ACCEPTED_WARNINGS:
        if re.search(pattern, warning["message"]):
            return reason
    return None


# (regular expression on the validator's message, why the warning is acceptable); the
# same list, with the same reasons, is in README.md ("FHIR conformance")
ACCEPTED_WARNINGS: list[tuple[str, str]] = [
    (
        r"^Constraint failed: dom-6: ",
        "no text narrative: the node stores and serves structured data only (best practice)",
    ),
    (
        r"^CodeSystem is unknown and can't be validated: http://loinc\.org ",
        "LOINC is in no local package and the terminology server is off",
    ),
    (
        r'Cannot invoke "org\.hl7\.fhir\.r5\.model\.CodeSystem\.getConcept\(\)" because '
        r'"this\.codeSystem" is null validating CodeableConcept',
        "the validator cannot check IPS's LOINC Composition.type without LOINC (tx off)",
    ),
    (
        r"^CodeSystem is unknown and can't be validated: https://twcore\.mohw\.gov\.tw/ig/twcore/",
        "TW Core's code systems (ICD-10-CM 2023 TW, NHI codes): no package on the npm registry",
    ),
    (
        r"^CodeSystem is unknown and can't be validated: https://phrx\.example\.org/fhir/CodeSystem/",
        "PHRX's own code systems (MHB sections and totals, audit subtypes) are not published",
    ),
    (
        r"^The Coding provided \(https://phrx\.example\.org/fhir/CodeSystem/audit-event-subtype#"
        r"[a-z-]+\) was not found in the value set 'Audit Event Sub-Type'",
        "extensible binding: R4 has no subtype for disclosure, break-glass, token use, erasure",
    ),
    (
        r"value set 'Consent PolicyRule Codes' .*codes = "
        r"http://terminology\.hl7\.org/CodeSystem/v3-ActCode#OPTIN\)",
        "extensible binding: v3-ActCode OPTIN is the policy R4's own Consent examples use",
    ),
    (
        r"value set 'SecurityRoleType' .*codes = "
        r"http://terminology\.hl7\.org/CodeSystem/v3-ParticipationType#PRCP\)",
        "extensible binding: PRCP (recipient) is the actor role R4's own Consent examples use",
    ),
    (
        r"^No code provided, and a code should be provided from the value set "
        r"'Provenance activity type'",
        "anchoring is no activity of that extensible value set; activity.text says what it is",
    ),
]
