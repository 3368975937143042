"""Validating and writing the resources of a ``$import-mhb``: part of
:mod:`fhir_server.operations.import_mhb`.

Only new or changed resources are validated and written: a resource whose anchoring
leaf equals the stored current version's is left alone (nothing decrypted).

Access, through the request's :class:`~fhir_server.access.gate.AccessPolicy` only:

* the patient's data -- every resource in a patient compartment -- is written by the
  :class:`~fhir_server.storage.writer.Writer` of the import's unit of work, which
  checks each write against the policy exactly like a REST write (scopes, the
  token's patient compartment, granular scopes, consent; 403 rolls back everything);
* the import's own records in no patient's compartment -- the Organizations mapped
  from the export's institution codes, the Provenance of the import -- have ids the
  node derives from the patient and the row (no token chooses which resource it
  writes) and cannot lie in the token's compartment. The policy grants each like
  any resource in no compartment (scopes, granular scopes, consent;
  :func:`own_record`), without the confinement to the token's patient; the node
  then writes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from anchoring.canonical import leaf_hash
from fhir_server.access.decision import Interaction
from fhir_server.errors import FHIRError, Forbidden
from fhir_server.rest import interactions
from fhir_server.search.compartment import compartment_patient_ids
from fhir_server.validation import validate_resource

# What an import writes outside the patient's compartment: the institutions named by
# the export and the import's own Provenance.
OWN_RECORD_TYPES = frozenset({"Organization", "Provenance"})
_RELATIVE_REF = re.compile(r"^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}$")


def key(resource: dict) -> tuple[str, str]:
    return resource["resourceType"], resource["id"]


def validate(resource: dict, validated: set) -> None:
    """R4-validate ``resource`` (errors name it) and note it in ``validated``."""
    try:
        validate_resource(resource)
    except FHIRError as error:
        error.diagnostics = f"{resource['resourceType']}/{resource['id']}: {error.diagnostics}"
        raise
    validated.add(key(resource))


class Leaves:
    """Leaf hashes of the mapped resources, each computed once per import.

    The leaf (canonical JSON without meta and text, stored for anchoring) tells an
    unchanged resource apart without decrypting anything. Computed only for ids that
    exist, before the transaction and reused under the write lock."""

    def __init__(self) -> None:
        self._leaves: dict[tuple[str, str], bytes] = {}

    def unchanged(self, resource: dict, current: tuple[bool, bytes | None] | None) -> bool:
        """Same content as the stored current version ``current`` (deleted, leaf)."""
        if current is None or current[0] or "meta" in resource:
            return False
        found = key(resource)
        leaf = self._leaves.get(found)
        if leaf is None:
            leaf = self._leaves[found] = leaf_hash(resource)
        return current[1] == leaf


def validate_provenance(provenance: dict, validated: set) -> None:
    """Validate the import's Provenance without validating each target again.

    ``target`` names every resource of the export (~36,500 for ten years). Each is
    ``{"reference": "Type/id"}`` built by the mapper from a resource it produced, and
    running every one through the R4 Reference model cost ~0.5-1 s per import. So the
    Provenance is validated with its first target, and every target is checked to be
    exactly a relative reference; anything else is validated in full."""
    targets = provenance["target"]
    if not all(type(t) is dict and t.keys() == {"reference"} and _is_ref(t) for t in targets):
        validate(provenance, validated)
        return
    validate({**provenance, "target": targets[:1]}, set())
    validated.add(key(provenance))


def _is_ref(target: dict) -> bool:
    ref = target["reference"]
    return type(ref) is str and _RELATIVE_REF.match(ref) is not None


def put(writer, resource: dict, current, validated: set, leaves: Leaves) -> str:
    """Write one resource; returns created / updated / unchanged.

    ``current`` is (deleted, leaf) of the stored current version, or None when
    the id is new. New ids go to the writer's buffered bulk insert; an identical
    stored version is left alone; anything else is an ordinary FHIR update
    (which re-checks, seals, indexes and journals). A resource that was found
    unchanged before the transaction but changed since is validated here.
    """
    if current is not None and leaves.unchanged(resource, current):
        return "unchanged"
    if key(resource) not in validated:
        validate(resource, validated)
    res_type, res_id = key(resource)
    with own_record(
        writer, Interaction.CREATE if current is None else Interaction.UPDATE, resource
    ):
        if current is None:
            writer.create(resource, res_id=res_id)
            return "created"
        written = interactions.update(writer, res_type, res_id, resource).written
    return "created" if written.created else "updated" if written.changed else "unchanged"


def put_provenance(writer, provenance: dict, validated: set) -> None:
    """Write the import's Provenance (an update-as-create under the node's id)."""
    if key(provenance) not in validated:
        validate_provenance(provenance, validated)
    with own_record(writer, Interaction.UPDATE, provenance):
        interactions.update(writer, "Provenance", provenance["id"], provenance)


@contextmanager
def own_record(writer, interaction: Interaction, resource: dict) -> Iterator[None]:
    """Around the write of ``resource``: a resource in a patient compartment is left to
    the Writer's policy; one in none is granted by the policy without the token's
    compartment (see the module docstring), then written with the Writer's policy
    set aside."""
    policy = writer.policy
    # Without a token-wide patient the Writer's own checks are these already; and
    # only the import's own kinds of record are exempt from the confinement.
    kind = resource["resourceType"]
    if policy is None or policy.confinement is None or compartment_patient_ids(resource):
        yield
        return
    if kind not in OWN_RECORD_TYPES:
        raise Forbidden(f"An import may not write a {kind} outside the patient's record.")
    grant = policy.require(interaction, resource["resourceType"])
    if not policy.allows(replace(grant, compartment=None), resource):
        raise Forbidden(
            f"The access token does not permit writing {resource['resourceType']} "
            "(granular scope or consent)."
        )
    writer.policy = None
    try:
        yield
    finally:
        writer.policy = policy
