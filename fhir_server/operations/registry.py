"""Every ``$operation`` of this node: its Flask-free core module and OperationDefinition.

Each core (``fhir_server/operations/<operation>.py``) declares ``DEFINITION`` (an R4
OperationDefinition under :data:`~fhir_server.operations.definition.CANONICAL_BASE`)
and ``NAME`` (its code); its HTTP route is ``fhir_server/api/operations/<operation>.py``.
The CapabilityStatement lists :func:`capability_entries`; ``GET
/fhir/OperationDefinition[/{id}]`` serves :func:`definitions`.
"""

from __future__ import annotations

import copy
from functools import cache

from fhir_server.operations import (
    anchor,
    erase,
    everything,
    import_mhb,
    provenance,
    receive_share,
    share,
    summary,
    verify,
)
from fhir_server.operations.definition import capability_entry

CORES = (
    everything,
    summary,
    share,
    erase,
    import_mhb,
    anchor,
    verify,
    provenance,
    receive_share,
)


@cache
def _by_id() -> dict[str, dict]:
    found: dict[str, dict] = {}
    for core in CORES:
        definition = core.DEFINITION
        if definition["id"] in found:
            raise ValueError(f"two operations declare OperationDefinition/{definition['id']}")
        found[definition["id"]] = definition
    return found


def definitions() -> list[dict]:
    """Every OperationDefinition, in registry order (copies: callers may change them)."""
    return [copy.deepcopy(d) for d in _by_id().values()]


def definition(op_id: str) -> dict | None:
    """The OperationDefinition ``op_id`` (a copy), or None."""
    found = _by_id().get(op_id)
    return copy.deepcopy(found) if found is not None else None


def capability_entries() -> list[dict]:
    """``CapabilityStatement.rest.operation``: each operation's code and canonical URL."""
    return [capability_entry(d) for d in _by_id().values()]
