"""MhbExport -> FHIR R4 transaction Bundle (PUT with deterministic ids)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from fhir_server.errors import BadRequest

from . import codes as C
from .parser import MhbExport, Row
from .spec import SECTION_TITLES

TZ_TW = "+08:00"
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
        raise BadRequest("patient_id must be a FHIR id ([A-Za-z0-9-.]{1,64})")
    if not isinstance(id_namespace, bytes | bytearray) or len(id_namespace) < 16:
        raise BadRequest("id_namespace must be at least 16 bytes")
    imported_at = imported_at or datetime.now(UTC)
    if imported_at.tzinfo is None:
        imported_at = imported_at.replace(tzinfo=UTC)
    return _Builder(export, patient_id, bytes(id_namespace), imported_at).run()


# --------------------------------------------------------------------------- helpers


def fhir_date(value: str | None) -> str | None:
    """YYYYMMDD / YYYYMM / ROC YYYMMDD / YYYY-MM-DD -> FHIR date, None if invalid."""
    if not value:
        return None
    digits = re.sub(r"[-/.]", "", value)
    if not digits.isdigit():
        return None
    try:
        if len(digits) == 8:
            return date(int(digits[:4]), int(digits[4:6]), int(digits[6:])).isoformat()
        if len(digits) == 7:  # ROC calendar 1061010
            return date(int(digits[:3]) + 1911, int(digits[3:5]), int(digits[5:])).isoformat()
        if len(digits) == 6:
            y, m = int(digits[:4]), int(digits[4:])
            if 1 <= m <= 12 and y > 1900:
                return f"{y:04d}-{m:02d}"
    except ValueError:
        return None
    return None


def fhir_instant(value: str | None) -> str | None:
    """YYYYMMDDHHMM (Taiwan local time) -> FHIR instant."""
    if not value or not value.isdigit() or len(value) != 12:
        return None
    try:
        dt = datetime(
            int(value[:4]), int(value[4:6]), int(value[6:8]), int(value[8:10]), int(value[10:])
        )
    except ValueError:
        return None
    return dt.strftime("%Y-%m-%dT%H:%M:00") + TZ_TW


def number(value: str | None) -> int | float | None:
    if value is None:
        return None
    try:
        d = Decimal(value.replace(",", ""))
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    return int(d) if d == d.to_integral() else float(d)


_VALUE_RE = re.compile(
    r"^(?P<cmp><=|>=|<|>)?\s*(?P<num>[-+]?\d+(?:\.\d+)?)\s*(?P<unit>[A-Za-z%µ/][\w/%.^*µ]*)?$"
)
_RANGE_RE = re.compile(r"^(?P<lo>[-+]?\d+(?:\.\d+)?)\s*(?:-|~|–|to)\s*(?P<hi>[-+]?\d+(?:\.\d+)?)")
_BOUND_RE = re.compile(r"^(?P<op><=|>=|<|>|≦|≧)\s*(?P<v>[-+]?\d+(?:\.\d+)?)")


def parse_range(text: str | None) -> dict | None:
    if not text:
        return None
    raw = text
    inner = text.strip().strip("[]()（）【】 ")
    rng: dict[str, Any] = {"text": raw}
    m = _RANGE_RE.match(inner)
    if m:
        rng["low"] = {"value": number(m["lo"])}
        rng["high"] = {"value": number(m["hi"])}
        return rng
    m = _BOUND_RE.match(inner)
    if m:
        side = "high" if m["op"] in ("<", "<=", "≦") else "low"
        rng[side] = {"value": number(m["v"])}
    return rng


def observation_value(text: str | None) -> dict:
    if not text:
        return {
            "dataAbsentReason": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                        "code": "unknown",
                    }
                ]
            }
        }
    m = _VALUE_RE.match(text)
    if m:
        q: dict[str, Any] = {"value": number(m["num"])}
        if m["cmp"]:
            q["comparator"] = m["cmp"]
        if m["unit"]:
            q["unit"] = m["unit"]
        return {"valueQuantity": q}
    concept = C.presence_concept(text)
    if concept:
        return {"valueCodeableConcept": concept}
    return {"valueString": text}


def _interp(code: str, display: str) -> list[dict]:
    return [{"coding": [{"system": C.V3_INTERP, "code": code, "display": display}]}]


def _category(code: str) -> list[dict]:
    return [{"coding": [{"system": C.OBS_CATEGORY, "code": code}]}]


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

# r12_1 / r13_1 / r14_1 field -> (vital key, which date field)
TRACKING = {
    "r12": {"bp": (5, 6), "date_field": 2, "fields": {7: ("hba1c", 3), 8: ("ldl", 3),
            9: ("glucose_ac", 3), 10: ("creatinine", 3), 11: ("egfr", 3), 12: ("tg", 3),
            13: ("uacr", 4)}},
    "r13": {"bp": (3, 4), "date_field": 2, "fields": {5: ("egfr", 2), 6: ("upcr", 2),
            7: ("creatinine", 2), 8: ("ldl", 2), 9: ("hba1c", 2), 10: ("microalbumin", 2)}},
}  # fmt: skip
PROGRAMME = {
    "r12": "糖尿病共同照護追蹤 (diabetes shared-care programme)",
    "r13": "初期慢性腎臟病追蹤 (early CKD care programme)",
    "r14": "B、C型肝炎追蹤 (hepatitis B/C care programme)",
}
R10_RESULT_CODES = {"1": ("N", "Normal"), "2": ("A", "Abnormal"), "3": ("A", "Abnormal"),
                    "4": ("A", "Abnormal")}  # fmt: skip
SEVERITY = {"輕度": "mild", "輕微": "mild", "中度": "moderate", "重度": "severe", "嚴重": "severe"}


class _Builder:
    def __init__(self, export: MhbExport, patient_id: str, ns: bytes, imported_at: datetime):
        self.x = export
        self.pid = patient_id
        self.ns = ns
        self.imported_at = imported_at
        self.resources: dict[tuple[str, str], dict] = {}
        self.skipped: list[dict] = []
        self.occ: Counter = Counter()
        self.encounters: dict[tuple[str, str], str] = {}
        self.patient = {"reference": f"Patient/{patient_id}"}

    # ---- ids and registry
    def rid(self, section: str, *parts: str) -> str:
        msg = "\x1f".join([self.pid, section, *parts]).encode("utf-8")
        return "mhb-" + hmac.new(self.ns, msg, hashlib.sha256).hexdigest()[:40]

    def row_key(self, section: str, *parts: str | None) -> tuple[str, ...]:
        base = tuple(p or "" for p in parts)
        self.occ[(section, base)] += 1
        n = self.occ[(section, base)]
        return base if n == 1 else (*base, f"#{n}")

    def add(self, res: dict) -> dict:
        key = (res["resourceType"], res["id"])
        self.resources.setdefault(key, res)
        return {"reference": f"{key[0]}/{key[1]}"}

    def skip(self, section: str, index: int, reason: str) -> None:
        self.skipped.append({"section": section, "row": index, "reason": reason})

    # ---- shared resources
    def org(self, code: str | None, name: str | None, phone=None, address=None) -> dict | None:
        if not code and not name:
            return None
        key = ("code", code) if code else ("name", name or "")
        oid = self.rid("Organization", *key)
        existing = self.resources.get(("Organization", oid))
        if existing is None:
            res: dict[str, Any] = {"resourceType": "Organization", "id": oid, "active": True}
            if code:
                res["identifier"] = [{"system": C.ORG_IDENTIFIER, "value": code}]
            if name:
                res["name"] = name
            existing = res
            self.add(res)
        if phone and "telecom" not in existing:
            existing["telecom"] = [{"system": "phone", "value": phone}]
        if address and "address" not in existing:
            existing["address"] = [{"text": address, "country": "TW"}]
        if name and "name" not in existing:
            existing["name"] = name
        return {"reference": f"Organization/{oid}"}

    def nhia(self) -> dict:
        oid = self.rid("Organization", "nhia")
        return self.add(
            {
                "resourceType": "Organization",
                "id": oid,
                "active": True,
                "name": "衛生福利部中央健康保險署",
                "alias": ["National Health Insurance Administration"],
            }
        )

    def coverage(self) -> dict:
        return self.add(
            {
                "resourceType": "Coverage",
                "id": self.rid("Coverage", "nhi"),
                "status": "active",
                "type": {
                    "coding": [
                        {
                            "system": C.V3_ACTCODE,
                            "code": "PUBLICPOL",
                            "display": "public healthcare",
                        }
                    ],
                    "text": "全民健康保險 (National Health Insurance)",
                },
                "beneficiary": self.patient,
                "payor": [self.nhia()],
            }
        )

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

    # ---- coding helpers
    def dx_concept(self, code: str | None, name: str | None, when: str | None) -> dict | None:
        coding = C.diagnosis_coding(code, when) if code else None
        if not coding and not name and not code:
            return None
        concept: dict[str, Any] = {}
        if coding:
            english = C.ICD10CM_EN.get(coding["code"]) if coding["system"] == C.ICD10CM_TW else None
            if english:
                coding["display"] = english
                if name:
                    coding["_display"] = _translation(name)
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
                    "type": [_section_type(s)],
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
                enc_dx.append({"condition": cref, "rank": seq, "use": _billing_role()})
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
                "category": _category("laboratory"),
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
                        obs["interpretation"] = _interp("H", "High")
                    elif lo is not None and q["value"] < lo:
                        obs["interpretation"] = _interp("L", "Low")
                    elif lo is not None or hi is not None:
                        obs["interpretation"] = _interp("N", "Normal")
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

    # ---- observation helper for r10-r14
    def vital(self, s, key, what, raw, when, enc_ref, *, interp=None, category=None) -> dict | None:
        if raw is None or raw == "":
            return None
        loinc, display, unit = C.VITALS[what]
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "id": self.rid(s, *key, what),
            "status": "final",
            "category": _category(
                category
                or ("vital-signs" if what in ("height", "weight", "bmi", "waist") else "laboratory")
            ),
            "code": {
                "coding": [{"system": C.LOINC, "code": loinc, "display": display}],
                "text": display,
            },
            "subject": self.patient,
            "encounter": enc_ref,
            "effectiveDateTime": when,
        }
        num = number(raw)
        if what == "waist" and num is not None:
            unit = "[in_i]" if num < 60 else "cm"
        if num is not None:
            if num == 0 and what not in ("urine_protein",):
                return None  # 0 = not measured (see docs)
            q: dict[str, Any] = {"value": num}
            if unit:
                q.update({"unit": unit, "system": C.UCUM, "code": unit})
            obs["valueQuantity"] = q
        else:
            obs.update(observation_value(raw))
        if interp:
            obs["interpretation"] = interp
        return self.add(obs)

    def bp(self, s, key, sbp, dbp, when, enc_ref, interp=None) -> dict | None:
        comps = []
        for what, raw in (("sbp", sbp), ("dbp", dbp)):
            num = number(raw)
            if num:
                loinc, display, unit = C.VITALS[what]
                comps.append(
                    {
                        "code": {
                            "coding": [{"system": C.LOINC, "code": loinc, "display": display}]
                        },
                        "valueQuantity": {
                            "value": num,
                            "unit": "mmHg",
                            "system": C.UCUM,
                            "code": unit,
                        },
                    }
                )
        if not comps:
            return None
        loinc, display, _ = C.VITALS["bp"]
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "id": self.rid(s, *key, "bp"),
            "status": "final",
            "category": _category("vital-signs"),
            "code": {
                "coding": [{"system": C.LOINC, "code": loinc, "display": display}],
                "text": "血壓",
            },
            "subject": self.patient,
            "encounter": enc_ref,
            "effectiveDateTime": when,
            "component": comps,
        }
        if interp:
            obs["interpretation"] = interp
        return self.add(obs)

    def encounter(self, s, key, when, org_ref, type_text, episode=None, reason=None) -> dict:
        enc: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": self.rid(s, *key, "enc"),
            "status": "finished",
            "class": {"system": C.V3_ACTCODE, "code": "AMB", "display": "ambulatory"},
            "type": [{**_section_type(s), "text": type_text}],
            "subject": self.patient,
            "period": {"start": when},
        }
        if episode:
            enc["episodeOfCare"] = [episode]
        if org_ref:
            enc["serviceProvider"] = org_ref
        if reason:
            enc["reasonCode"] = [{"text": reason}]
        return self.add(enc)

    # ---- r10
    def health_checks(self, s: str, rows: list[Row]) -> None:
        for idx, row in enumerate(rows):

            def g(n, row=row):
                return row.get(f"r10.{n}")

            when = fhir_date(g(5))
            if not when:
                self.skip(s, idx, "health check without date")
                continue
            phone = "-".join(p for p in (g(3), g(4)) if p) or None
            org_ref = self.org(g(1), g(2), phone)
            key = self.row_key(s, g(1), g(5))
            enc_ref = self.encounter(
                s, key, when, org_ref, "成人預防保健 (adult preventive health check)"
            )

            def interp(code_n, text_n, g=g):
                code = g(code_n)
                if code not in R10_RESULT_CODES:
                    return None
                c, d = R10_RESULT_CODES[code]
                out = _interp(c, d)
                if g(text_n):
                    out[0]["text"] = g(text_n)
                return out

            results = [
                self.vital(s, key, "height", g(6), when, enc_ref),
                self.vital(s, key, "weight", g(7), when, enc_ref),
                self.vital(s, key, "bmi", g(8), when, enc_ref),
                self.vital(s, key, "waist", g(9), when, enc_ref),
                self.bp(s, key, g(10), g(11), when, enc_ref, interp(12, 13)),
            ]
            lip = interp(18, 19)
            for what, n in (("tc", 14), ("tg", 15), ("hdl", 16), ("ldl", 17)):
                results.append(self.vital(s, key, what, g(n), when, enc_ref, interp=lip))
            results.append(
                self.vital(s, key, "glucose_ac", g(20), when, enc_ref, interp=interp(21, 22))
            )
            ren = interp(26, 27)
            for what, n in (("bun", 23), ("creatinine", 24), ("egfr", 25)):
                results.append(self.vital(s, key, what, g(n), when, enc_ref, interp=ren))
            results.append(self.vital(s, key, "urine_protein", g(28), when, enc_ref))
            liv = interp(33, 34)
            for what, n in (("ast", 31), ("alt", 32)):
                results.append(self.vital(s, key, what, g(n), when, enc_ref, interp=liv))
            for what, cn, rc, rt in (("hbsag", 35, 37, 38), ("anti_hcv", 39, 41, 42)):
                if g(cn) in ("1", "2"):
                    raw = "陰性" if g(cn) == "1" else "陽性"
                    res_interp = None
                    if g(rc) in ("1", "2"):
                        neg = g(rc) == "1"
                        res_interp = _interp(*(("NEG", "Negative") if neg else ("POS", "Positive")))
                        if g(rt):
                            res_interp[0]["text"] = g(rt)
                    results.append(self.vital(s, key, what, raw, when, enc_ref, interp=res_interp))
            if g(29) in R10_RESULT_CODES or g(30):
                ms: dict[str, Any] = {
                    "resourceType": "Observation",
                    "id": self.rid(s, *key, "metabolic"),
                    "status": "final",
                    "category": _category("exam"),
                    "code": {"text": "代謝症候群檢查 (metabolic syndrome assessment)"},
                    "subject": self.patient,
                    "encounter": enc_ref,
                    "effectiveDateTime": when,
                    **observation_value(g(30) or g(29)),
                }
                if g(29) in R10_RESULT_CODES:
                    ms["interpretation"] = interp(29, 30)
                results.append(self.add(ms))
            refs = [r for r in results if r]
            rep = {
                "resourceType": "DiagnosticReport",
                "id": self.rid(s, *key, "report"),
                "status": "final",
                "code": {
                    "text": "成人預防保健服務檢查結果 (adult preventive health check results)"
                },
                "subject": self.patient,
                "encounter": enc_ref,
                "effectiveDateTime": when,
                **({"result": refs} if refs else {}),
            }
            if org_ref:
                rep["performer"] = [org_ref]
            self.add(rep)

    # ---- r11
    def screenings(self, s: str, rows: list[Row]) -> None:
        for idx, row in enumerate(rows):
            kind, item = row.get("r11.1") or "", row.get("r11.2") or ""
            children = row.get("r11_1", [])
            if not children:
                self.skip(s, idx, "screening without result rows")
                continue
            label = " - ".join(t for t in (kind, item) if t) or "癌症篩檢"
            loinc = None
            if "糞便潛血" in item or "大腸" in kind:
                loinc, cat = C.VITALS["fobt"], "laboratory"
            elif "乳房" in item or "乳癌" in kind:
                loinc, cat = C.VITALS["mammogram"], "imaging"
            else:
                cat = "exam"
            for cidx, child in enumerate(children):
                when = fhir_date(child.get("r11_1.1"))
                if not when:
                    self.skip("r11_1", cidx, "screening result without date")
                    continue
                key = self.row_key(s, kind, item, child.get("r11_1.1"), child.get("r11_1.2"))
                org_ref = self.org(None, child.get("r11_1.2"))
                code = {"text": label}
                if loinc:
                    code["coding"] = [{"system": C.LOINC, "code": loinc[0], "display": loinc[1]}]
                obs: dict[str, Any] = {
                    "resourceType": "Observation",
                    "id": self.rid(s, *key, "obs"),
                    "status": "final",
                    "category": _category(cat),
                    "code": code,
                    "subject": self.patient,
                    "effectiveDateTime": when,
                    **observation_value(child.get("r11_1.3")),
                }
                if child.get("r11_1.4"):
                    obs["note"] = [{"text": child["r11_1.4"]}]
                if org_ref:
                    obs["performer"] = [org_ref]
                ref = self.add(obs)
                rep: dict[str, Any] = {
                    "resourceType": "DiagnosticReport",
                    "id": self.rid(s, *key, "report"),
                    "status": "final",
                    "code": {"text": f"癌症篩檢 {label}"},
                    "subject": self.patient,
                    "effectiveDateTime": when,
                    "result": [ref],
                }
                if child.get("r11_1.4"):
                    rep["conclusion"] = child["r11_1.4"]
                if org_ref:
                    rep["performer"] = [org_ref]
                self.add(rep)

    # ---- r12 r13 r14
    def tracking(self, s: str, rows: list[Row]) -> None:
        for idx, row in enumerate(rows):
            start = fhir_date(row.get(f"{s}.1"))
            if not start:
                self.skip(s, idx, "care programme without enrolment date")
                continue
            end = fhir_date(row.get(f"{s}.3"))
            org_ref = self.org(None, row.get(f"{s}.2"))
            key = self.row_key(s, row.get(f"{s}.1"), row.get(f"{s}.2"))
            eoc: dict[str, Any] = {
                "resourceType": "EpisodeOfCare",
                "id": self.rid(s, *key, "episode"),
                "status": "finished" if end else "active",
                "type": [{**_section_type(s), "text": PROGRAMME[s]}],
                "patient": self.patient,
                "period": {"start": start, **({"end": end} if end and end >= start else {})},
            }
            if org_ref:
                eoc["managingOrganization"] = org_ref
            eoc_ref = self.add(eoc)
            for cidx, child in enumerate(row.get(f"{s}_1", [])):
                self.tracking_visit(s, key, cidx, child, eoc_ref, org_ref)

    def tracking_visit(self, s, key, cidx, child, eoc_ref, org_ref) -> None:
        p = f"{s}_1"

        def g(n):
            return child.get(f"{p}.{n}")

        when = fhir_date(g(2))
        if not when:
            self.skip(p, cidx, "care programme visit without date")
            return
        vkey = self.row_key(p, *key, g(2), g(1))
        reason = g(3) if s == "r14" else None
        enc_ref = self.encounter(p, vkey, when, org_ref, g(1) or PROGRAMME[s], eoc_ref, reason)
        if s in TRACKING:
            spec = TRACKING[s]
            self.bp(p, vkey, g(spec["bp"][0]), g(spec["bp"][1]), when, enc_ref)
            for n, (what, date_n) in spec["fields"].items():
                self.vital(p, vkey, what, g(n), fhir_date(g(date_n)) or when, enc_ref)
            return
        # r14: the field table has 8 columns, the spec sample 9 (extra marker at .6)
        self.vital(p, vkey, "hbsag", g(4), when, enc_ref)
        self.vital(p, vkey, "hbeag", g(5), when, enc_ref)
        if g(9) is not None:
            self.vital(p, vkey, "anti_hcv", g(6), when, enc_ref)
            ast, alt, us = g(7), g(8), g(9)
        else:
            ast, alt, us = g(6), g(7), g(8)
        self.vital(p, vkey, "ast", ast, when, enc_ref)
        self.vital(p, vkey, "alt", alt, when, enc_ref)
        if us:
            self.add(
                {
                    "resourceType": "Observation",
                    "id": self.rid(p, *vkey, "ultrasound"),
                    "status": "final",
                    "category": _category("imaging"),
                    "code": {"text": "腹部超音波檢查結果 (abdominal ultrasound result)"},
                    "subject": self.patient,
                    "encounter": enc_ref,
                    "effectiveDateTime": when,
                    "valueString": us,
                }
            )


def _section_type(s: str) -> dict:
    base = s.split("_", 1)[0]
    return {
        "coding": [{"system": C.MHB_SECTION, "code": base, "display": SECTION_TITLES[base]}],
        "text": SECTION_TITLES[base],
    }


def _billing_role() -> dict:
    return {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/diagnosis-role",
                "code": "billing",
                "display": "Billing",
            }
        ]
    }


def _translation(text: str, lang: str = "zh-TW") -> dict:
    return {
        "extension": [
            {
                "url": C.TRANSLATION_EXT,
                "extension": [
                    {"url": "lang", "valueCode": lang},
                    {"url": "content", "valueString": text},
                ],
            }
        ]
    }
