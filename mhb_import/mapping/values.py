"""Value parsing (dates, numbers, lab values, ranges) and small shared FHIR fragments."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .. import codes as C
from ..spec import SECTION_TITLES

TZ_TW = "+08:00"


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


def interpretation_of(code: str, display: str) -> list[dict]:
    return [{"coding": [{"system": C.V3_INTERP, "code": code, "display": display}]}]


def observation_category(code: str) -> list[dict]:
    return [{"coding": [{"system": C.OBS_CATEGORY, "code": code}]}]


def section_type_of(s: str) -> dict:
    base = s.split("_", 1)[0]
    return {
        "coding": [{"system": C.MHB_SECTION, "code": base, "display": SECTION_TITLES[base]}],
        "text": SECTION_TITLES[base],
    }


def billing_role() -> dict:
    return {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/diagnosis-role",
                "code": "billing",
                "display": "Billing",
            }
        ]
    }


def translation_ext(text: str, lang: str = "zh-TW") -> dict:
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
