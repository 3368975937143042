"""``_summary`` and ``_elements`` (R4 search.html#summary, #elements).

Summary elements come from the R4B models' ``summary_element_property``
flags; subsetted resources carry the SUBSETTED tag as the spec asks.
"""

from __future__ import annotations

from functools import cache

from validators.r4 import model_class

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
ALWAYS = ("resourceType", "id", "meta")


@cache
def summary_elements(res_type: str) -> frozenset[str]:
    model = model_class(res_type)
    if model is None:
        return frozenset(ALWAYS)
    names = set(ALWAYS)
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra or {}
        if isinstance(extra, dict) and extra.get("summary_element_property"):
            names.add(info.alias or name)
            names.add("_" + (info.alias or name))
    return frozenset(names)


def _subset(resource: dict, keep) -> dict:
    out = {k: v for k, v in resource.items() if k in keep}
    meta = dict(out.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, SUBSETTED]
    out["meta"] = meta
    return out


def shape(resource: dict, summary: str | None, elements: list[str] | None) -> dict:
    res_type = resource.get("resourceType", "")
    if summary == "true":
        return _subset(resource, summary_elements(res_type))
    if summary == "text":
        return _subset(resource, {*ALWAYS, "text"} | _mandatory(res_type))
    if summary == "data":
        return _subset(resource, set(resource) - {"text"})
    if elements:
        wanted = {e.split(".")[0] for e in elements}
        return _subset(resource, set(ALWAYS) | wanted | {"_" + e for e in wanted})
    return resource


@cache
def _mandatory(res_type: str) -> frozenset[str]:
    model = model_class(res_type)
    if model is None:
        return frozenset()
    return frozenset(
        (info.alias or name)
        for name, info in model.model_fields.items()
        if info.is_required() and not name.endswith("__ext")
    )
