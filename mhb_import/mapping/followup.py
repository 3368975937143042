"""r10 adult health checks, r11 cancer screenings, r12-r14 care programmes (EpisodeOfCare
with tracking visits) and their vital-sign / lab Observations."""

from __future__ import annotations

from typing import Any

from .. import codes as C
from ..parser import Row
from .values import (
    fhir_date,
    interpretation_of,
    number,
    observation_category,
    observation_value,
    section_type_of,
)

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


class FollowUpMixin:
    """r10-r14 handlers; mixed into ``bundle._Builder`` on top of ``BuilderBase``."""

    # ---- observation helper for r10-r14
    def vital(self, s, key, what, raw, when, enc_ref, *, interp=None, category=None) -> dict | None:
        if raw is None or raw == "":
            return None
        loinc, display, unit = C.VITALS[what]
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "id": self.rid(s, *key, what),
            "status": "final",
            "category": observation_category(
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
            "category": observation_category("vital-signs"),
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
            "type": [{**section_type_of(s), "text": type_text}],
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
                out = interpretation_of(c, d)
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
                        res_interp = interpretation_of(
                            *(("NEG", "Negative") if neg else ("POS", "Positive"))
                        )
                        if g(rt):
                            res_interp[0]["text"] = g(rt)
                    results.append(self.vital(s, key, what, raw, when, enc_ref, interp=res_interp))
            if g(29) in R10_RESULT_CODES or g(30):
                ms: dict[str, Any] = {
                    "resourceType": "Observation",
                    "id": self.rid(s, *key, "metabolic"),
                    "status": "final",
                    "category": observation_category("exam"),
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
                    "category": observation_category(cat),
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
                "type": [{**section_type_of(s), "text": PROGRAMME[s]}],
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
                    "category": observation_category("imaging"),
                    "code": {"text": "腹部超音波檢查結果 (abdominal ultrasound result)"},
                    "subject": self.patient,
                    "encounter": enc_ref,
                    "effectiveDateTime": when,
                    "valueString": us,
                }
            )
