"""Import a Taiwan My Health Bank (健康存摺) export as a FHIR R4 transaction Bundle.

Flask-free and database-free::

    export = parse_export(data, password=None, filename="健康存摺醫療類_20250101.zip")
    result = to_bundle(export, patient_id="p1", id_namespace=secret)
    result.bundle   # transaction Bundle (PUT Type/<hmac id>)
    result.summary  # counts, skipped rows, unknown fields
"""

from .mapping import ImportResult, to_bundle
from .parser import MhbExport, ParseLimits, parse_export

__all__ = ["ImportResult", "MhbExport", "ParseLimits", "parse_export", "to_bundle"]
