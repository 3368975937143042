"""The CapabilityStatement: exactly what this node implements (R4 capabilitystatement.html).

``rest.operation`` names each ``$operation`` by its OperationDefinition's canonical URL,
all under one base (:data:`fhir_server.operations.definition.CANONICAL_BASE`); the
node serves each at ``GET /fhir/OperationDefinition/{id}``
(fhir_server/api/operations/definitions.py).
"""

from __future__ import annotations

from functools import cache

from fhir_server import ids
from fhir_server.operations import registry
from fhir_server.operations.definition import VERSION
from fhir_server.resource_types import supported_types
from fhir_server.search.params import params_for
from fhir_server.smart.discovery import oauth_security

INTERACTIONS = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]
COMMON_SEARCH = [
    ("_id", "token", "http://hl7.org/fhir/SearchParameter/Resource-id"),
    ("_lastUpdated", "date", "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"),
]


def capability_statement(base_url: str, operations: list[dict] | None = None) -> dict:
    """``operations``: the ``rest.operation`` entries (default: every registered one)."""
    if operations is None:
        operations = registry.capability_entries()
    return {
        "resourceType": "CapabilityStatement",
        "id": "phrx",
        "status": "active",
        "date": ids.instant(ids.now_us())[:10],
        "publisher": "PHRX",
        "kind": "instance",
        "software": {"name": "PHRX", "version": VERSION},
        "implementation": {"description": "PHRX personal health record node", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        # fhir_server/rest/patch.py: JSON Patch, FHIRPath Patch (Parameters), merge patch
        "patchFormat": [
            "application/json-patch+json",
            "application/fhir+json",
            "application/merge-patch+json",
        ],
        "rest": [
            {
                "mode": "server",
                "security": oauth_security(base_url),
                "resource": list(_resources()),
                "interaction": [
                    {"code": "transaction"},
                    {"code": "batch"},
                    {"code": "history-system"},
                    {"code": "search-system"},
                ],
                # Patient/{id}/{type} and Patient/{id}/* (fhir_server/api/compartment.py)
                "compartment": ["http://hl7.org/fhir/CompartmentDefinition/patient"],
                "operation": operations,
            }
        ],
    }


@cache
def _resources() -> tuple[dict, ...]:
    """Every type's entry: fixed for the life of the process (about 1 ms to build,
    on every ``GET metadata``). Shared between responses: serialised, never changed."""
    return tuple(_resource(t) for t in sorted(supported_types()))


def _resource(res_type: str) -> dict:
    params = [
        {"name": name, "type": kind, "definition": definition}
        for name, kind, definition in COMMON_SEARCH
    ]
    params += [
        {
            "name": code,
            "type": param.type,
            "definition": f"http://hl7.org/fhir/SearchParameter/{res_type}-{code}",
        }
        for code, param in sorted(params_for(res_type).items())
    ]
    return {
        "type": res_type,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{res_type}",
        "interaction": [{"code": code} for code in INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "conditionalRead": "not-supported",
        "referencePolicy": ["literal", "local"],
        "searchParam": params,
    }
