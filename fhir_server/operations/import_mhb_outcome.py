"""What a ``$import-mhb`` did: :class:`ImportOutcome` and its ``Parameters`` answer
(documented in docs/mhb-mapping.md, section Import). Part of
:mod:`fhir_server.operations.import_mhb`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

OUTCOMES = ("created", "updated", "unchanged")


@dataclass
class ImportOutcome:
    """What an import did. ``summary`` is the mapper's summary (source, rows,
    resources, skipped, unknown_fields, ...); ``counts[type][outcome]`` how many
    resources of each type were created / updated / left unchanged."""

    patient_id: str
    imported_at: str
    summary: dict
    counts: dict[str, Counter] = field(default_factory=dict)
    provenance: str | None = None  # "Provenance/<id>" when one was written

    def totals(self) -> Counter:
        out: Counter = Counter({k: 0 for k in OUTCOMES})
        for per_type in self.counts.values():
            out.update(per_type)
        return out

    def to_parameters(self) -> dict:
        """The operation's response: a FHIR ``Parameters`` resource (documented in
        docs/mhb-mapping.md, section Import)."""
        s = self.summary
        src = s["source"]
        source_parts = [
            {"name": "sha256", "valueString": src["sha256"]},
            {"name": "format", "valueCode": src["format"]},
            {"name": "container", "valueCode": src["container"]},
        ]
        if src.get("filename"):
            source_parts.append({"name": "filename", "valueString": src["filename"]})
        if src.get("request_date"):
            source_parts.append({"name": "requestDate", "valueDate": src["request_date"]})
        totals = self.totals()
        params: list[dict] = [
            {"name": "patient", "valueReference": {"reference": f"Patient/{self.patient_id}"}},
            {"name": "importedAt", "valueInstant": self.imported_at},
            {"name": "source", "part": source_parts},
        ]
        if self.provenance:
            params.append({"name": "provenance", "valueReference": {"reference": self.provenance}})
        params += [{"name": k, "valueInteger": totals[k]} for k in OUTCOMES]
        for rtype in sorted(self.counts):
            c = self.counts[rtype]
            params.append(
                {
                    "name": "resources",
                    "part": [
                        {"name": "type", "valueCode": rtype},
                        *({"name": k, "valueInteger": c[k]} for k in OUTCOMES),
                    ],
                }
            )
        for section, n in sorted(s["rows"].items()):
            params.append(
                {
                    "name": "rows",
                    "part": [
                        {"name": "section", "valueString": section},
                        {"name": "count", "valueInteger": n},
                    ],
                }
            )
        for skip in s["skipped"]:
            params.append(
                {
                    "name": "skipped",
                    "part": [
                        {"name": "section", "valueString": skip["section"]},
                        {"name": "row", "valueInteger": skip["row"]},
                        {"name": "reason", "valueString": skip["reason"]},
                    ],
                }
            )
        for name, n in s["unknown_fields"].items():
            params.append(
                {
                    "name": "unknownField",
                    "part": [
                        {"name": "field", "valueString": name},
                        {"name": "count", "valueInteger": n},
                    ],
                }
            )
        for section, n in sorted(s["duplicates_removed"].items()):
            params.append(
                {
                    "name": "duplicatesRemoved",
                    "part": [
                        {"name": "section", "valueString": section},
                        {"name": "count", "valueInteger": n},
                    ],
                }
            )
        params += [{"name": "emptySection", "valueString": x} for x in s["empty_sections"]]
        params += [
            {"name": "omittedDemographic", "valueString": x} for x in s["omitted_demographics"]
        ]
        params += [{"name": "warning", "valueString": w} for w in s["warnings"]]
        return {"resourceType": "Parameters", "parameter": params}
