"""r1 / r2 / r3 / r9 (visits): Encounter, Condition, Procedure, MedicationRequest,
MedicationDispense, ExplanationOfBenefit and the visited Organization."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .. import codes as C
from ..icd10cm import english_title
from ..parser import Row
from .values import billing_role, fhir_date, number, section_type_of, translation_ext

LAYOUT = {
    "r1": {"fac": 3, "name": 4, "date": 5, "alt": 6, "seq": 7, "dx": 8, "proc": 10,
           "copay": 12, "points": 13, "sdx": (14, 23), "sproc": (24, 27)},
    "r2": {"fac": 3, "name": 4, "date": 5, "end": 6, "claim": (7, 8), "seq": 9, "dx": 10,
           "proc": 12, "copay": 14, "points": 15, "sdx": (16, 53), "sproc": (54, 91)},
    "r3": {"fac": 3, "name": 4, "date": 5, "seq": 6, "dx": 7, "proc": 9, "copay": 11,
           "points": 12, "sdx": (13, 22), "sproc": (23, 26)},
}  # fmt: skip
LAYOUT["r9"] = LAYOUT["r3"]
CLAIM_TYPE = {"r1": "professional", "r2": "institutional", "r3": "oral", "r9": "professional"}


class VisitsMixin:
    """r1 r2 r3 r9 handlers; mixed into ``bundle._Builder`` on top of ``BuilderBase``."""

    # ---- coding helpers
    def dx_concept(self, code: str | None, name: str | None, when: str | None) -> dict | None:
        coding = C.diagnosis_coding(code, when) if code else None
        if not coding and not name and not code:
            return None
        concept: dict[str, Any] = {}
        if coding:
            english = english_title(coding["code"]) if coding["system"] == C.ICD10CM_TW else None
            if english:
                coding["display"] = english
                if name:
                    coding["_display"] = translation_ext(name)
            elif name:
                coding["display"] = name
            concept["coding"] = [coding]
        concept["text"] = name or code
        return concept

    def proc_concept(self, code: str | None, name: str | None) -> dict | None:
        if not code and not name:
            return None
        coding = C.procedure_coding(code) if code else None
        concept: dict[str, Any] = {}
        if coding:
            if name:
                coding["display"] = name
            concept["coding"] = [coding]
        concept["text"] = name or code
        return concept

    # ---- r1 r2 r3 r9
    def visits(self, s: str, rows: list[Row]) -> None:  # noqa: PLR0912, PLR0915
        lay = LAYOUT[s]
        child_key = f"{s}_1"
        for idx, row in enumerate(rows):

            def g(n, row=row):
                return row.get(f"{s}.{n}")

            start = fhir_date(g(lay["date"]))
            alt = fhir_date(g(lay["alt"])) if "alt" in lay else None
            dispense = s == "r1" and not start and bool(alt)
            when = start or alt
            if not when:
                self.skip(s, idx, "missing or invalid visit date")
                continue
            fac = g(lay["fac"])
            org_ref = self.org(fac, g(lay["name"]))
            key = self.row_key(s, fac, g(lay["date"]), g(lay.get("alt", 0)), g(lay["seq"]),
                               g(lay["dx"]))  # fmt: skip
            enc_ref = None
            end = fhir_date(g(lay["end"])) if "end" in lay else None
            if not dispense:
                enc: dict[str, Any] = {
                    "resourceType": "Encounter",
                    "id": self.rid(s, *key, "enc"),
                    "status": "finished",
                    "class": {
                        "system": C.V3_ACTCODE,
                        "code": "IMP" if s == "r2" else "AMB",
                        "display": "inpatient encounter" if s == "r2" else "ambulatory",
                    },
                    "type": [section_type_of(s)],
                    "subject": self.patient,
                    "period": {"start": start, **({"end": end} if end and end >= start else {})},
                }
                if org_ref:
                    enc["serviceProvider"] = org_ref
                enc_ref = self.add(enc)
                if fac:
                    self.encounters.setdefault((fac, start), enc["id"])
            # diagnoses
            dx_fields = [lay["dx"], *range(lay["sdx"][0], lay["sdx"][1] + 1, 2)]
            eob_dx: list[dict] = []
            enc_dx: list[dict] = []
            for pos, n in enumerate(dx_fields, start=1):
                concept = self.dx_concept(g(n), g(n + 1), when)
                if concept is None:
                    continue
                seq = len(eob_dx) + 1
                if dispense:
                    eob_dx.append({"sequence": seq, "diagnosisCodeableConcept": concept})
                    continue
                cond = {
                    "resourceType": "Condition",
                    "id": self.rid(s, *key, "dx", str(pos), g(n) or ""),
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                    "code": "encounter-diagnosis",
                                }
                            ]
                        }
                    ],
                    "code": concept,
                    "subject": self.patient,
                    "encounter": enc_ref,
                    "recordedDate": start,
                    "note": [{"text": "主診斷 (principal)" if pos == 1 else "次診斷 (secondary)"}],
                }
                cref = self.add(cond)
                enc_dx.append({"condition": cref, "rank": seq, "use": billing_role()})
                eob_dx.append({"sequence": seq, "diagnosisReference": cref})
            if enc_dx:
                enc["diagnosis"] = enc_dx
            # procedures (ICD-10-PCS / NHI fee-schedule)
            if not dispense:
                proc_fields = [lay["proc"], *range(lay["sproc"][0], lay["sproc"][1] + 1, 2)]
                for pos, n in enumerate(proc_fields, start=1):
                    concept = self.proc_concept(g(n), g(n + 1))
                    if concept is None:
                        continue
                    proc = {
                        "resourceType": "Procedure",
                        "id": self.rid(s, *key, "proc", str(pos), g(n) or ""),
                        "status": "completed",
                        "code": concept,
                        "subject": self.patient,
                        "encounter": enc_ref,
                    }
                    if s == "r2" and end and end >= start:
                        proc["performedPeriod"] = {"start": start, "end": end}
                    else:
                        proc["performedDateTime"] = start
                    self.add(proc)
            # orders
            items: list[dict] = []
            line_occ: Counter = Counter()
            for line in row.get(child_key, []):
                self.order_line(s, key, line, line_occ, items, when, start, dispense, enc_ref,
                                org_ref)  # fmt: skip
            # claim
            eob: dict[str, Any] = {
                "resourceType": "ExplanationOfBenefit",
                "id": self.rid(s, *key, "eob"),
                "status": "active",
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                            "code": "pharmacy" if dispense else CLAIM_TYPE[s],
                        }
                    ]
                },
                "use": "claim",
                "patient": self.patient,
                "created": when,
                "insurer": self.nhia(),
                "provider": org_ref or self.nhia(),
                "outcome": "complete",
                "insurance": [{"focal": True, "coverage": self.coverage()}],
            }
            if s == "r2":
                c0, c1 = (fhir_date(g(n)) for n in lay["claim"])
                if c0 and c1 and len(c0) == len(c1) and c1 >= c0:
                    eob["billablePeriod"] = {"start": c0, "end": c1}
            if eob_dx:
                eob["diagnosis"] = eob_dx
            if items:
                eob["item"] = items
            totals = []
            copay = number(g(lay["copay"]))
            if copay is not None:
                totals.append(
                    {
                        "category": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/adjudication",
                                    "code": "copay",
                                    "display": "CoPay",
                                }
                            ],
                            "text": "部分負擔金額",
                        },
                        "amount": {"value": copay, "currency": "TWD"},
                    }
                )
            points = number(g(lay["points"]))
            if points is not None:
                totals.append(
                    {
                        "category": {
                            "coding": [
                                {
                                    "system": C.MHB_CLAIM_TOTAL,
                                    "code": "nhi-points",
                                    "display": "NHI points",
                                }
                            ],
                            "text": "健保支付點數",
                        },
                        "amount": {"value": points},
                    }
                )
            if totals:
                eob["total"] = totals
            self.add(eob)

    def order_line(  # noqa: PLR0912, PLR0915
        self, s, key, line, line_occ, items, when, start, dispense, enc_ref, org_ref
    ):
        p = f"{s}_1"
        if s == "r2":
            code, name, qty = line.get(f"{p}.4"), line.get(f"{p}.5"), number(line.get(f"{p}.6"))
            days = None
            l0, l1 = fhir_date(line.get(f"{p}.2")), fhir_date(line.get(f"{p}.3"))
        else:
            code, name, qty = line.get(f"{p}.1"), line.get(f"{p}.2"), number(line.get(f"{p}.3"))
            days = number(line.get(f"{p}.6" if s == "r3" else f"{p}.4"))
            l0 = l1 = None
        if not code and not name:
            self.skip(p, len(items), "order line without code or name")
            return
        line_occ[code or name] += 1
        lkey = (*key, "line", code or "", name if not code else "", str(line_occ[code or name]))
        drug = bool(code) and C.is_drug_code(code, s)
        system = C.NHI_MEDICATION if drug else C.NHI_PAYMENT
        concept: dict[str, Any] = {"text": name or code}
        if code:
            coding = {"system": system, "code": code}
            if name:
                coding["display"] = name
            concept["coding"] = [coding]
        item: dict[str, Any] = {"sequence": len(items) + 1, "productOrService": concept}
        if l0 and l1 and len(l0) == len(l1) and l1 >= l0:
            item["servicedPeriod"] = {"start": l0, "end": l1}
        else:
            item["servicedDate"] = when
        if qty is not None:
            item["quantity"] = {"value": qty}
        if enc_ref:
            item["encounter"] = [enc_ref]
        items.append(item)
        supply = (
            {"value": days, "unit": "day", "system": C.UCUM, "code": "d"}
            if days is not None and days > 0
            else None
        )
        if drug and dispense:
            md: dict[str, Any] = {
                "resourceType": "MedicationDispense",
                "id": self.rid(s, *lkey, "dispense"),
                "status": "completed",
                "medicationCodeableConcept": concept,
                "subject": self.patient,
                "whenHandedOver": when,
            }
            if org_ref:
                md["performer"] = [{"actor": org_ref}]
            if qty is not None:
                md["quantity"] = {"value": qty}
            if supply:
                md["daysSupply"] = supply
            self.add(md)
        elif drug:
            mr: dict[str, Any] = {
                "resourceType": "MedicationRequest",
                "id": self.rid(s, *lkey, "rx"),
                "status": "completed",
                "intent": "order",
                "medicationCodeableConcept": concept,
                "subject": self.patient,
                "encounter": enc_ref,
                "authoredOn": l0 or start,
            }
            if org_ref:
                mr["requester"] = org_ref
            dr: dict[str, Any] = {}
            if qty is not None:
                dr["quantity"] = {"value": qty}
            if supply:
                dr["expectedSupplyDuration"] = supply
            if l0 and l1 and len(l0) == len(l1) and l1 >= l0:
                dr["validityPeriod"] = {"start": l0, "end": l1}
            if dr:
                mr["dispenseRequest"] = dr
            self.add(mr)
        elif s == "r3" and enc_ref:  # dental treatment lines are procedures on a tooth
            proc: dict[str, Any] = {
                "resourceType": "Procedure",
                "id": self.rid(s, *lkey, "proc"),
                "status": "completed",
                "code": concept,
                "subject": self.patient,
                "encounter": enc_ref,
                "performedDateTime": start,
            }
            tooth, tooth_name = line.get("r3_1.4"), line.get("r3_1.5")
            if tooth or tooth_name:
                site: dict[str, Any] = {"text": tooth_name or tooth}
                if tooth and tooth in C.TOOTH_CODES and tooth[0] in "1234":
                    site["coding"] = [{"system": C.TOOTH, "code": tooth}]
                proc["bodySite"] = [site]
            self.add(proc)
