"""``to_bundle``: validate the arguments, run every section handler, assemble the
transaction Bundle, its Provenance and the import summary."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from mhb_import.errors import MhbInvalid

from .. import codes as C
from ..gcpause import gc_paused
from ..parser import MhbExport
from .base import BuilderBase
from .clinical import ClinicalMixin
from .followup import FollowUpMixin
from .results import ResultsMixin
from .values import fhir_date
from .visits import VisitsMixin

_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass
class ImportResult:
    bundle: dict
    summary: dict


def to_bundle(
    export: MhbExport,
    *,
    patient_id: str,
    id_namespace: bytes,
    imported_at: datetime | None = None,
) -> ImportResult:
    if not isinstance(patient_id, str) or not _ID_RE.match(patient_id):
        raise MhbInvalid("patient_id must be a FHIR id ([A-Za-z0-9-.]{1,64})")
    if not isinstance(id_namespace, bytes | bytearray) or len(id_namespace) < 16:
        raise MhbInvalid("id_namespace must be at least 16 bytes")
    imported_at = imported_at or datetime.now(UTC)
    if imported_at.tzinfo is None:
        imported_at = imported_at.replace(tzinfo=UTC)
    with gc_paused():  # tens of thousands of acyclic resource dicts (see gcpause)
        return _Builder(export, patient_id, bytes(id_namespace), imported_at).run()


class _Builder(VisitsMixin, ClinicalMixin, ResultsMixin, FollowUpMixin, BuilderBase):
    """One import: every section handler over one shared registry."""

    # ---- run
    def run(self) -> ImportResult:
        handlers = {
            "r1": self.visits, "r2": self.visits, "r3": self.visits, "r9": self.visits,
            "r4": self.allergies, "r5": self.consents, "r6": self.immunizations,
            "r7": self.labs, "r8": self.reports, "r10": self.health_checks,
            "r11": self.screenings, "r12": self.tracking, "r13": self.tracking,
            "r14": self.tracking,
        }  # fmt: skip
        # visits first so labs / reports can link to their encounter
        for section in ("r2", "r1", "r3", "r9", "r4", "r5", "r6", "r7", "r8", "r10", "r11",
                        "r12", "r13", "r14"):  # fmt: skip
            rows = self.x.sections.get(section)
            if rows:
                handlers[section](section, rows)
        targets = [{"reference": f"{t}/{i}"} for (t, i) in self.resources]
        prov = self.provenance(targets)
        entries = []
        for (rtype, rid), res in [*self.resources.items(), (("Provenance", prov["id"]), prov)]:
            entries.append({"resource": res, "request": {"method": "PUT", "url": f"{rtype}/{rid}"}})
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        counts = Counter(t for (t, _i) in self.resources)
        counts["Provenance"] += 1
        summary = {
            "source": {
                "sha256": self.x.source_sha256,
                "format": self.x.format,
                "container": self.x.container,
                "filename": self.x.filename,
                "request_date": fhir_date(self.x.request_date),
            },
            "rows": {s: len(r) for s, r in self.x.sections.items()},
            "resources": dict(sorted(counts.items())),
            "total_resources": sum(counts.values()),
            "skipped": self.skipped,
            "unknown_fields": dict(sorted(self.x.unknown_fields.items())),
            "empty_sections": list(self.x.empty_sections),
            "duplicates_removed": dict(self.x.duplicates_removed),
            "omitted_demographics": list(self.x.omitted_demographics),
            "warnings": list(self.x.warnings),
        }
        return ImportResult(bundle=bundle, summary=summary)

    def provenance(self, targets: list[dict]) -> dict:
        when = self.imported_at.isoformat(timespec="seconds")
        return {
            "resourceType": "Provenance",
            "id": self.rid("Provenance", self.x.source_sha256, when),
            "target": targets or [self.patient],
            "recorded": when,
            "activity": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                        "code": "CREATE",
                    }
                ],
                "text": "import of a My Health Bank (健康存摺) export",
            },
            "agent": [
                {
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                "code": "informant",
                            }
                        ]
                    },
                    "who": self.patient,
                }
            ],
            "entity": [
                {
                    "role": "source",
                    "what": {
                        "identifier": {
                            "system": C.SOURCE_HASH_SYSTEM,
                            "value": f"urn:sha256:{self.x.source_sha256}",
                        },
                        "display": (
                            f"MHB export, format={self.x.format}, container={self.x.container}"
                        ),
                    },
                }
            ],
        }
