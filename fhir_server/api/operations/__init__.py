"""The HTTP routes of the ``$operations``: one module per operation, and their registry.

Each ``<operation>.py`` here holds the route(s) of one operation over its Flask-free
core ``fhir_server/operations/<operation>.py`` (whose ``DEFINITION`` is the
OperationDefinition, see fhir_server/operations/registry.py); ``definitions.py``
serves those OperationDefinitions. :func:`blueprints` is what the app registers,
before the generic REST blueprint.
"""

from __future__ import annotations

from fhir_server.api.operations import (
    anchor,
    definitions,
    erase,
    everything,
    import_mhb,
    provenance,
    receive_share,
    share,
    summary,
    verify,
)
from fhir_server.operations import registry

# One route module per operation (each names its core as CORE).
ROUTES = (
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


def blueprints() -> list:
    """The operations' blueprints (each once, in the order above), then the
    OperationDefinitions' own."""
    found: list = []
    for module in ROUTES:
        if module.bp not in found:
            found.append(module.bp)
    return [*found, definitions.bp]


def operation_definitions() -> list[dict]:
    """``CapabilityStatement.rest.operation``: name and canonical definition of each."""
    return registry.capability_entries()
