"""r4 allergies (AllergyIntolerance), r5 advance directives (Consent), r6 vaccinations
(Immunization)."""

from __future__ import annotations

from typing import Any

from .. import codes as C
from ..parser import Row
from .values import fhir_date

SEVERITY = {"輕度": "mild", "輕微": "mild", "中度": "moderate", "重度": "severe", "嚴重": "severe"}


class ClinicalMixin:
    """r4 r5 r6 handlers; mixed into ``bundle._Builder`` on top of ``BuilderBase``."""

    # ---- r4
    def allergies(self, s: str, rows: list[Row]) -> None:
        for idx, row in enumerate(rows):
            substance = row.get("r4.2")
            if not substance:
                self.skip(s, idx, "allergy row without substance")
                continue
            key = self.row_key(s, row.get("r4.1"), substance, row.get("r4.4"))
            phone = "-".join(p for p in (row.get("r4.6"), row.get("r4.7")) if p) or None
            self.org(row.get("r4.4"), row.get("r4.5"), phone, row.get("r4.8"))
            res: dict[str, Any] = {
                "resourceType": "AllergyIntolerance",
                "id": self.rid(s, *key),
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                            "code": "active",
                        }
                    ]
                },
                "verificationStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                            "code": "confirmed",
                        }
                    ]
                },
                "category": ["medication"],
                "code": {"text": substance},
                "patient": self.patient,
            }
            recorded = fhir_date(row.get("r4.1"))
            if recorded:
                res["recordedDate"] = recorded
            symptoms = [t for t in (row.get("r4.10"), row.get("r4.11")) if t]
            if symptoms:
                reaction: dict[str, Any] = {"manifestation": [{"text": t} for t in symptoms]}
                sev = SEVERITY.get((row.get("r4.9") or "").strip())
                if sev:
                    reaction["severity"] = sev
                res["reaction"] = [reaction]
            notes = []
            if row.get("r4.9"):
                notes.append(f"嚴重程度: {row['r4.9']}")
            if row.get("r4.5"):
                notes.append(f"上傳醫事機構: {row['r4.5']}")
            if row.get("r4.12"):
                notes.append(f"收載方式: {row['r4.12']}")
            if notes:
                res["note"] = [{"text": "; ".join(notes)}]
            self.add(res)

    # ---- r5
    def consents(self, s: str, rows: list[Row]) -> None:
        for idx, row in enumerate(rows):
            text = row.get("r5.3") or ""
            noted = fhir_date(row.get("r5.1"))
            if not text and not row.get("r5.2"):
                self.skip(s, idx, "wish row without content")
                continue
            organ = "器官" in text or "器捐" in text
            key = self.row_key(s, row.get("r5.1"), row.get("r5.2"), text)
            res: dict[str, Any] = {
                "resourceType": "Consent",
                "id": self.rid(s, *key),
                "status": "active",
                "scope": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                            "code": "adr",
                            "display": "Advanced Care Directive",
                        }
                    ]
                },
                "category": [
                    {
                        "coding": [
                            {"system": C.LOINC, "code": "75320-2", "display": "Advance directive"}
                        ]
                    },
                    {
                        "coding": [
                            {
                                "system": C.MHB_R5_NOTE,
                                "code": row.get("r5.2") or "unknown",
                                **({"display": text} if text else {}),
                            }
                        ],
                        "text": text or None,
                    },
                ],
                "patient": self.patient,
                "policyRule": {
                    "text": "人體器官移植條例 (Human Organ Transplant Act)"
                    if organ
                    else "安寧緩和醫療條例 (Hospice Palliative Care Act)"
                },
                "provision": {"type": "permit"},
            }
            if res["category"][1]["text"] is None:
                del res["category"][1]["text"]
            if noted:
                res["dateTime"] = noted
            self.add(res)

    # ---- r6
    def immunizations(self, s: str, rows: list[Row]) -> None:
        for idx, row in enumerate(rows):
            when, name = fhir_date(row.get("r6.1")), row.get("r6.3")
            if not when or not name:
                self.skip(s, idx, "vaccination row without date or vaccine name")
                continue
            key = self.row_key(s, row.get("r6.1"), name, row.get("r6.5"))
            concept: dict[str, Any] = {"text": name}
            cvx = C.vaccine_cvx(name)
            if cvx:
                concept["coding"] = [{"system": C.CVX, "code": cvx[0], "display": cvx[1]}]
            res: dict[str, Any] = {
                "resourceType": "Immunization",
                "id": self.rid(s, *key),
                "status": "completed",
                "vaccineCode": concept,
                "patient": self.patient,
                "occurrenceDateTime": when,
                "primarySource": False,
            }
            org_ref = self.org(None, row.get("r6.5"))
            if org_ref:
                res["performer"] = [{"actor": org_ref}]
            self.add(res)
