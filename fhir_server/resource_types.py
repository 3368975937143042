"""Which resource types this node serves: R4 types that the R4B models validate."""

from __future__ import annotations

from functools import cache

from fhir_server.errors import NotFound
from validators.r4 import model_class

# Served but never stored as-is: a Bundle POSTed to the base is processed, and
# Bundles of type document/collection may be stored like any resource.
NOT_STORABLE: frozenset[str] = frozenset({"OperationOutcome", "Parameters"})


@cache
def supported_types() -> frozenset[str]:
    from fhir_server.search.params import supported_types as r4_types

    return frozenset(
        name for name in r4_types() if name not in NOT_STORABLE and model_class(name) is not None
    )


def check_type(res_type: str) -> str:
    if res_type not in supported_types():
        raise NotFound(f"Resource type {res_type!r} is not supported by this server.")
    return res_type
