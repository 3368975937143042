"""Patient compartment membership (CompartmentDefinition ``patient``, R4).

Only relative references ``Patient/<id>`` (optionally with ``/_history/n``)
count; absolute URLs and ``urn:uuid:`` references are deliberately NOT
resolved (they are ignored). A Patient is in its own compartment (and, per the
definition's ``link`` param, in the compartments of the patients it links).
"""

from __future__ import annotations

from fhir_server.search.params import params_for, patient_compartment_definition
from fhir_server.search.values import param_values, reference_values


def patient_compartment_params(resource_type: str) -> tuple[str, ...]:
    """Search params that put a ``resource_type`` into a Patient compartment."""
    return patient_compartment_definition().get(resource_type, ())


def compartment_patient_ids(resource: dict) -> set[str]:
    """Ids of the Patients whose compartment includes ``resource``."""
    rtype = resource.get("resourceType")
    out: set[str] = set()
    if not isinstance(rtype, str):
        return out
    if rtype == "Patient" and isinstance(resource.get("id"), str):
        out.add(resource["id"])
    params = params_for(rtype)
    for code in patient_compartment_params(rtype):
        sp = params.get(code)
        if sp is None or sp.type != "reference":
            continue
        for v in param_values(resource, sp):
            for ttype, tid, _url in reference_values(v):
                if ttype == "Patient" and tid is not None:
                    out.add(tid)
    return out
