"""Rules of the gate for resources in no patient's compartment that are nevertheless
about patients' data (part of :class:`fhir_server.access.gate.AccessPolicy`).

Consent decides by compartment; these two kinds sit outside every compartment unless
they point at a Patient directly, so without a rule of their own they would be
released to any clinician with a broad scope:

* **Provenance** is about its targets: it is released only to a caller who may read
  every local resource it targets (a Provenance of a withheld record answers like a
  missing one: it would name the record, its versions, its authors).
* **AuditEvent** is the access log: besides the patient (through their compartment),
  the node's services and its administrators, a user sees only the events of what
  they did themselves (an agent is them), never other users' sign-ins or reads.
"""

from __future__ import annotations

from fhir_server.access.decision import Grant, Interaction
from fhir_server.errors import FHIRError, Gone, NotFound

_HISTORY = "/_history/"


class KindRules:
    """Mixed into AccessPolicy: uses its access, consent, store, is_admin, allows."""

    _deciding: set[int]

    def kind_allows(self, grant: Grant, resource: dict) -> bool:
        kind = resource.get("resourceType")
        if kind == "Provenance":
            return self._targets_readable(grant, resource)
        if kind == "AuditEvent":
            return self._own_event(grant, resource)
        return True

    def _restricted_outside_compartments(self, grant: Grant) -> bool:
        """A caller consent narrows, not confined to one patient (a clinician)."""
        return self.consent is not None and grant.compartment is None

    def _targets_readable(self, grant: Grant, provenance: dict) -> bool:
        if self.consent is None and not grant.constraints and grant.compartment is None:
            return True  # the node's services and unrestricted tokens
        marker = id(provenance)
        if marker in getattr(self, "_deciding", set()):
            return False  # Provenances targeting each other in a circle
        self._deciding = {*getattr(self, "_deciding", set()), marker}
        writing = grant.interaction.writes
        try:
            return all(self._readable(ref, writing) for ref in _local_targets(provenance))
        finally:
            self._deciding = self._deciding - {marker}

    def _readable(self, reference: str, writing: bool) -> bool:
        """May the caller read the target? Writing, a target not (yet) stored is no
        bar: a transaction or an import writes the Provenance with its targets, which
        only its own transaction sees; what exists must be readable either way."""
        res_type, _, rest = reference.partition("/")
        res_id, _, version = rest.partition(_HISTORY)
        target_grant = self.grant_or_none(Interaction.READ, res_type)
        if target_grant is None:
            return False
        try:
            if version:
                target = self.store.vread(res_type, res_id, int(version))
            else:
                target = self.store.read(res_type, res_id)
        except (NotFound, Gone):
            return writing  # reading: nothing to release it by
        except (FHIRError, ValueError):
            return False  # erased, damaged or malformed
        return self.allows(target_grant, target)

    def _own_event(self, grant: Grant, event: dict) -> bool:
        if not self._restricted_outside_compartments(grant) or self.is_admin():
            return True
        user = getattr(self.access, "user", None)
        agents = event.get("agent") or []
        return user is not None and any(
            (agent.get("who") or {}).get("reference") == user for agent in agents
        )


def _local_targets(provenance: dict) -> list[str]:
    """The targets as ``Type/id[/_history/n]``. An absolute URL is read by its tail:
    the gate does not know under which base URLs clients name this node, so it fails
    closed (another server's record with no such local one is not readable here)."""
    found = []
    for target in provenance.get("target") or []:
        reference = (target or {}).get("reference")
        if not isinstance(reference, str) or reference.startswith(("urn:", "#")):
            continue
        segments = reference.split("/")
        tail = segments[-4:] if len(segments) >= 4 and segments[-2] == "_history" else segments[-2:]
        found.append("/".join(tail))
    return found
