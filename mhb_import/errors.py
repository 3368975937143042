"""The MHB importer's own errors. The node maps each kind to an HTTP status and an
OperationOutcome where it calls the importer (fhir_server.errors.from_mhb)."""

from __future__ import annotations


class MhbError(Exception):
    """The export cannot be imported; the message says why (no patient data in it)."""


class MhbInvalid(MhbError):
    """Malformed: not UTF-8, broken JSON / XML / zip, a refused construct (400)."""


class MhbTooLarge(MhbError):
    """Over a size, row, entry or compression limit (413)."""


class MhbUnsupported(MhbError):
    """Not a My Health Bank export, or packed in a way not accepted (415)."""


class MhbUnexpectedStructure(MhbError):
    """Well-formed, but a section does not have the structure the specification gives (422)."""
