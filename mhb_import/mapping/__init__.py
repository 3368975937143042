"""MhbExport -> FHIR R4 transaction Bundle (PUT with deterministic ids).

One module per family of MHB export sections, combined into one builder in ``bundle``:

* ``values``   - dates, numbers, lab values / ranges, small shared FHIR fragments
* ``base``     - HMAC ids, the resource registry, Organization / NHIA / Coverage
* ``visits``   - r1 r2 r3 r9: encounters, diagnoses, procedures, orders, claims
* ``clinical`` - r4 allergies, r5 advance directives, r6 vaccinations
* ``results``  - r7 laboratory results, r8 imaging / pathology reports
* ``followup`` - r10 health checks, r11 screenings, r12-r14 care programmes
* ``bundle``   - ``to_bundle``: run the sections, Provenance, summary
"""

from .bundle import ImportResult, to_bundle
from .values import fhir_date, fhir_instant, number, observation_value, parse_range

__all__ = [
    "ImportResult",
    "fhir_date",
    "fhir_instant",
    "number",
    "observation_value",
    "parse_range",
    "to_bundle",
]
