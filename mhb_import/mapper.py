"""MhbExport -> FHIR R4 transaction Bundle: compatibility shim.

The mapping lives in the ``mhb_import.mapping`` package; this module keeps the names
that used to be importable from ``mhb_import.mapper``.
"""

from .mapping.bundle import ImportResult, to_bundle
from .mapping.clinical import SEVERITY
from .mapping.followup import PROGRAMME, R10_RESULT_CODES, TRACKING
from .mapping.values import (
    TZ_TW,
    fhir_date,
    fhir_instant,
    number,
    observation_value,
    parse_range,
)
from .mapping.visits import CLAIM_TYPE, LAYOUT

__all__ = [
    "CLAIM_TYPE",
    "LAYOUT",
    "PROGRAMME",
    "R10_RESULT_CODES",
    "SEVERITY",
    "TRACKING",
    "TZ_TW",
    "ImportResult",
    "fhir_date",
    "fhir_instant",
    "number",
    "observation_value",
    "parse_range",
    "to_bundle",
]
