"""OperationDefinitions of this node's ``$operations``, under ONE canonical base.

Each operation core (fhir_server/operations/<operation>.py) declares its R4
OperationDefinition with :func:`operation_definition`; its canonical URL is
``{CANONICAL_BASE}/OperationDefinition/{id}``, the CapabilityStatement names it in
``rest.operation.definition`` (fhir_server/capability.py), and the node serves it at
``GET /fhir/OperationDefinition/{id}`` (fhir_server/api/operations/definitions.py).
Where an operation implements one defined elsewhere (HL7's Patient ``$everything``,
IPS ``$summary``) that definition is named in ``base``.

Flask-free, and with no imports of the cores: they import this module.
"""

from __future__ import annotations

from collections.abc import Sequence

CANONICAL_BASE = "https://phrx.dev/fhir"
VERSION = "0.1.0"
PUBLISHER = "PHRX"


def definition_url(op_id: str) -> str:
    """The canonical URL of this node's OperationDefinition ``op_id``."""
    return f"{CANONICAL_BASE}/OperationDefinition/{op_id}"


def param(
    name: str,
    use: str,
    min_: int,
    max_: str,
    type_: str | None = None,
    documentation: str | None = None,
    *,
    part: list[dict] | None = None,
) -> dict:
    """One ``OperationDefinition.parameter``: ``use`` in / out, ``max_`` "1" or "*";
    a parameter with ``part`` has no type of its own."""
    out: dict = {"name": name, "use": use, "min": min_, "max": max_}
    if documentation:
        out["documentation"] = documentation
    if type_ is not None:
        out["type"] = type_
    if part:
        out["part"] = part
    return out


def operation_definition(
    op_id: str,
    *,
    code: str,
    name: str,
    title: str,
    description: str,
    resource: Sequence[str] = (),
    system: bool,
    type_: bool,
    instance: bool,
    parameters: list[dict],
    affects_state: bool = False,
    base: str | None = None,
) -> dict:
    """An R4 OperationDefinition (status active, kind operation) of this node."""
    definition = {
        "resourceType": "OperationDefinition",
        "id": op_id,
        "url": definition_url(op_id),
        "version": VERSION,
        "name": name,
        "title": title,
        "status": "active",
        "kind": "operation",
        "publisher": PUBLISHER,
        "description": description,
        "affectsState": affects_state,
        "code": code,
        "resource": list(resource),
        "system": system,
        "type": type_,
        "instance": instance,
        "parameter": parameters,
    }
    if base is not None:
        definition["base"] = base
    if not resource:  # a system-level operation on no type
        del definition["resource"]
    return definition


def capability_entry(definition: dict) -> dict:
    """The CapabilityStatement ``rest.operation`` entry naming ``definition``."""
    return {"name": definition["code"], "definition": definition["url"]}
