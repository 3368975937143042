"""$summary: the narratives of the IPS document and its English displays.

Every text is escaped (:func:`html.escape`) into a ``<div>`` of the XHTML namespace, with
only the elements R4 narrative allows (``p``, ``b``, ``ul``/``li``, ``table``). Where an
English display is known (the ICD-10-CM table of the MHB mapper) it is shown, and the
original (e.g. Chinese) display is kept beside it in the R4 ``translation`` extension.
Flask-free.
"""

from __future__ import annotations

import copy
import html

from consent.provisions import clinical_time
from mhb_import.codes import TRANSLATION_EXT
from mhb_import.icd10cm import english_title

XHTML = "http://www.w3.org/1999/xhtml"
COLUMNS = ("Item", "Details", "Status", "Date")


def div(body: str) -> dict:
    return {"status": "generated", "div": f'<div xmlns="{XHTML}">{body}</div>'}


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def section_text(title: str, items: list[dict], notes: list[str]) -> dict:
    """A table of the section's entries (newest first), or a sentence saying there is
    nothing to list; ``notes`` say what was left out and why."""
    extra = "".join(f"<p>{esc(note)}</p>" for note in notes)
    if not items:
        return div(f"<p>No information available ({esc(title.lower())}).</p>{extra}")
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in _row(r)) + "</tr>" for r in items
    )
    return div(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{extra}")


def composition_text(title: str, patient: dict, date: str, author: str, sections) -> dict:
    listed = "".join(
        f"<li>{esc(s['title'])}: {len(s.get('entry') or [])} "
        f"entr{'y' if len(s.get('entry') or []) == 1 else 'ies'}</li>"
        for s in sections
    )
    born = patient.get("birthDate") or "unknown"
    return div(
        f"<p><b>{esc(title)}</b></p>"
        f"<p>Patient: {esc(person_name(patient))} (born {esc(born)})</p>"
        f"<p>Date: {esc(date)}</p><p>Assembled by: {esc(author)}</p><ul>{listed}</ul>"
    )


def resource_text(resource: dict) -> dict:
    """The narrative of an entry that has none: what it is, from its own elements."""
    kind = resource["resourceType"]
    if kind in ("Patient", "Practitioner"):
        shown = [person_name(resource), resource.get("gender"), resource.get("birthDate")]
    elif kind in ("Organization", "Device"):
        names = [d.get("name") for d in resource.get("deviceName") or []]
        shown = [resource.get("name") or next(iter(names), None) or kind]
    else:
        shown = list(_row(resource))
    cells = "; ".join(esc(s) for s in shown if s)
    return div(f"<p><b>{esc(kind)}</b>: {cells}</p>")


def person_name(resource: dict) -> str:
    for name in resource.get("name") or []:
        if name.get("text"):
            return name["text"]
        parts = [*(name.get("given") or []), name.get("family") or ""]
        if any(parts):
            return " ".join(p for p in parts if p)
    return "name unknown"


def label(resource: dict) -> str:
    """What the entry is about: the (English) display of its code, or its text."""
    concept = (
        resource.get("code")
        or resource.get("vaccineCode")
        or resource.get("medicationCodeableConcept")
        or (resource.get("medicationReference") or {})
        or {}
    )
    coding = (concept.get("coding") or [{}])[0]
    text = english(coding) or coding.get("display") or concept.get("text") or coding.get("code")
    text = text or concept.get("display")
    return str(text or resource["resourceType"])


def _row(resource: dict) -> tuple[str, str, str, str]:
    when = clinical_time(resource)
    date = when[0].date().isoformat() if when and when[0].year > 1 else ""
    return label(resource), _details(resource), _status(resource), date


def _status(resource: dict) -> str:
    for element in ("clinicalStatus", "verificationStatus"):
        coding = ((resource.get(element) or {}).get("coding") or [{}])[0]
        if coding.get("code"):
            return str(coding["code"])
    return str(resource.get("status") or "")


def _details(resource: dict) -> str:
    kind = resource["resourceType"]
    if kind == "Observation":
        parts = [_value(resource)]
        parts += [f"{label(c)}: {_value(c)}" for c in resource.get("component") or []]
        return "; ".join(p for p in parts if p)
    if kind in ("MedicationRequest", "MedicationStatement"):
        dosage = resource.get("dosageInstruction") or resource.get("dosage") or []
        return "; ".join(d["text"] for d in dosage if d.get("text"))
    if kind == "AllergyIntolerance":
        found = [
            label({"resourceType": kind, "code": m})
            for reaction in resource.get("reaction") or []
            for m in reaction.get("manifestation") or []
        ]
        return ", ".join([resource.get("criticality") or "", *found]).strip(", ")
    return ""


def _value(item: dict) -> str:
    quantity = item.get("valueQuantity")
    if quantity:
        value = quantity.get("value")
        shown = (
            f"{value:g}" if isinstance(value, float) else str(value if value is not None else "")
        )
        return f"{quantity.get('comparator', '')}{shown} {quantity.get('unit') or ''}".strip()
    for key in ("valueString", "valueBoolean", "valueInteger", "valueDateTime"):
        if key in item:
            return str(item[key])
    if "valueCodeableConcept" in item:
        return label({"resourceType": "", "code": item["valueCodeableConcept"]})
    return ""


def english(coding: dict) -> str | None:
    if "icd-10-cm" not in (coding.get("system") or ""):
        return None
    return english_title(coding.get("code") or "")


def with_english(resource: dict) -> dict:
    """A copy whose ICD-10-CM codings show the English display, the original beside it."""
    out = copy.deepcopy(resource)
    stack: list = [out]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found = english(item) if "code" in item and "system" in item else None
            original = item.get("display")
            translate = original and not original.isascii() and "_display" not in item
            if found and translate and original != found:
                item["display"] = found
                item["_display"] = {
                    "extension": [
                        {
                            "url": TRANSLATION_EXT,
                            "extension": [
                                {"url": "lang", "valueCode": "zh-TW"},
                                {"url": "content", "valueString": original},
                            ],
                        }
                    ]
                }
            elif found and not original:
                item["display"] = found
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(item)
    return out
