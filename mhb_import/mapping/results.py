"""r7 laboratory results (Observation + DiagnosticReport) and r8 imaging / pathology
reports (DiagnosticReport)."""

from __future__ import annotations

import base64
from typing import Any

from .. import codes as C
from ..parser import Row
from .values import (
    fhir_date,
    fhir_instant,
    interpretation_of,
    observation_category,
    observation_value,
    parse_range,
)


class ResultsMixin:
    """r7 r8 handlers; mixed into ``bundle._Builder`` on top of ``BuilderBase``."""

    # ---- r7
    def labs(self, s: str, rows: list[Row]) -> None:  # noqa: PLR0912, PLR0915
        reports: dict[tuple, dict] = {}
        for idx, row in enumerate(rows):
            item, order = row.get("r7.10"), row.get("r7.9")
            visit = fhir_date(row.get("r7.5"))
            when = fhir_date(row.get("r7.6")) or visit
            if not (item or order) or not when:
                self.skip(s, idx, "lab row without item name or date")
                continue
            fac = row.get("r7.3")
            org_ref = self.org(fac, row.get("r7.4"))
            key = self.row_key(s, fac, row.get("r7.5"), row.get("r7.6"), row.get("r7.8"), item)
            codings = []
            loinc = C.lab_loinc(item) if item else None
            if loinc:
                codings.append({"system": C.LOINC, "code": loinc[0], "display": loinc[1]})
            obs: dict[str, Any] = {
                "resourceType": "Observation",
                "id": self.rid(s, *key),
                "status": "final",
                "category": observation_category("laboratory"),
                "code": {**({"coding": codings} if codings else {}), "text": item or order},
                "subject": self.patient,
                "effectiveDateTime": when,
            }
            enc_id = self.encounters.get((fac, visit)) if fac and visit else None
            if enc_id:
                obs["encounter"] = {"reference": f"Encounter/{enc_id}"}
            issued = fhir_instant(row.get("r7.7"))
            if issued:
                obs["issued"] = issued
            if org_ref:
                obs["performer"] = [org_ref]
            value = observation_value(row.get("r7.11"))
            rng = parse_range(row.get("r7.12"))
            q = value.get("valueQuantity")
            if q and "unit" not in q and loinc and loinc[2]:
                q.update({"unit": loinc[2], "system": C.UCUM, "code": loinc[2]})
            obs.update(value)
            if rng:
                obs["referenceRange"] = [rng]
                if q and "comparator" not in q:
                    lo = rng.get("low", {}).get("value")
                    hi = rng.get("high", {}).get("value")
                    if hi is not None and q["value"] > hi:
                        obs["interpretation"] = interpretation_of("H", "High")
                    elif lo is not None and q["value"] < lo:
                        obs["interpretation"] = interpretation_of("L", "Low")
                    elif lo is not None or hi is not None:
                        obs["interpretation"] = interpretation_of("N", "Normal")
            ref = self.add(obs)
            gkey = (fac or "", row.get("r7.5") or "", row.get("r7.8") or order or "")
            rep = reports.get(gkey)
            if rep is None:
                rep = {
                    "resourceType": "DiagnosticReport",
                    "id": self.rid(s, "report", *gkey),
                    "status": "final",
                    "category": [{"coding": [{"system": C.V2_0074, "code": "LAB"}]}],
                    "code": self.order_concept(row.get("r7.8"), order or item),
                    "subject": self.patient,
                    "effectiveDateTime": when,
                    "result": [],
                }
                if enc_id:
                    rep["encounter"] = obs["encounter"]
                if org_ref:
                    rep["performer"] = [org_ref]
                reports[gkey] = rep
                self.add(rep)
            rep["result"].append(ref)

    def order_concept(self, code: str | None, name: str | None) -> dict:
        concept: dict[str, Any] = {"text": name or code or "檢驗"}
        if code:
            concept["coding"] = [
                {"system": C.NHI_PAYMENT, "code": code, **({"display": name} if name else {})}
            ]
        return concept

    # ---- r8
    def reports(self, s: str, rows: list[Row]) -> None:
        for idx, row in enumerate(rows):
            text = row.get("r8.10")
            visit = fhir_date(row.get("r8.5"))
            when = fhir_date(row.get("r8.6")) or visit
            if not when or not (text or row.get("r8.9")):
                self.skip(s, idx, "report row without date or content")
                continue
            fac = row.get("r8.3")
            org_ref = self.org(fac, row.get("r8.4"))
            code = row.get("r8.8")
            key = self.row_key(s, fac, row.get("r8.5"), row.get("r8.6"), code)
            pathology = bool(code) and code[:2] in ("25", "26", "27")
            rep: dict[str, Any] = {
                "resourceType": "DiagnosticReport",
                "id": self.rid(s, *key),
                "status": "final",
                "category": [
                    {"coding": [{"system": C.V2_0074, "code": "PAT" if pathology else "RAD"}]}
                ],
                "code": self.order_concept(code, row.get("r8.9")),
                "subject": self.patient,
                "effectiveDateTime": when,
            }
            enc_id = self.encounters.get((fac, visit)) if fac and visit else None
            if enc_id:
                rep["encounter"] = {"reference": f"Encounter/{enc_id}"}
            issued = fhir_instant(row.get("r8.7"))
            if issued:
                rep["issued"] = issued
            if org_ref:
                rep["performer"] = [org_ref]
            if text:
                rep["conclusion"] = text
                rep["presentedForm"] = [
                    {
                        "contentType": "text/plain; charset=utf-8",
                        "language": "zh-TW",
                        "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
                    }
                ]
            self.add(rep)
