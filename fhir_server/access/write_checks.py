"""The gate's checks of writes, called by the storage Writer for every write
(REST, conditional, batch / transaction entries, MHB imports): the target must be
visible, the new content must stay inside the grant. Part of
:class:`fhir_server.access.gate.AccessPolicy` (see there for the rules)."""

from __future__ import annotations

from fhir_server.access.decision import Grant, Interaction
from fhir_server.errors import Forbidden, IntegrityFailure, not_found
from fhir_server.search.compartment import compartment_patient_ids

# Resources that identify a user to the consent engine (see _identity_write).
IDENTITY_TYPES = frozenset({"Practitioner", "PractitionerRole"})
# The access log: written by the node as it decides, never through the API by a user.
NODE_WRITTEN_TYPES = frozenset({"AuditEvent"})


class WriteChecks:
    """Mixed into AccessPolicy: uses its require / allows / store / audit."""

    def check_target(self, interaction: Interaction, res_type: str, res_id: str, conn) -> Grant:
        """Before an update/delete of ``res_type/res_id``: the current resource (or,
        once deleted, its last content) must be visible, else 404 as if missing."""
        grant = self.require(interaction, res_type)
        self._identity_write(res_type)
        if not self.unrestricted(grant):
            row = self.store.current_version(res_type, res_id, conn)
            if row is None:
                raise not_found(res_type, res_id)
            version = row.version_id - 1 if row.deleted else row.version_id
            if not self._version_visible(grant, res_type, res_id, version, conn):
                raise not_found(res_type, res_id)
        if interaction is Interaction.DELETE:
            # noted once the delete is known to happen: a refused one is not logged
            # in the patient's access log as done
            self._note_delete(res_type, res_id, conn)
        return grant

    def check_update(self, res_type, res_id, resource, exists: bool, fresh: bool, conn) -> None:
        """PUT: the target must be visible; a confined token may not create under an id
        it chose (that would tell taken ids apart from free ones): 404 like a missing one."""
        if exists:
            self.check_target(Interaction.UPDATE, res_type, res_id, conn)
        elif self.require(Interaction.UPDATE, res_type).compartment is not None and not fresh:
            raise not_found(res_type, res_id)
        self.check_content(Interaction.UPDATE, resource)

    def check_content(self, interaction: Interaction, resource: dict) -> None:
        """The written content must stay inside the grant (403 otherwise)."""
        interaction = Interaction(interaction)
        passed = self._passed.get(id(resource))
        if passed is not None and passed[1] is resource and passed[0] == interaction:
            return
        grant = self.require(interaction, resource.get("resourceType", ""))
        self._identity_write(grant.res_type)
        if not self.allows(grant, resource):
            raise Forbidden(
                "The access token does not permit writing this resource: it would lie "
                "outside the token's patient compartment, granular scope or consent."
            )
        if self.audit is not None:
            ref = f"{resource.get('resourceType')}/{resource.get('id')}"
            self.audit.wrote(str(interaction), ref, compartment_patient_ids(resource))
        self._passed[id(resource)] = (interaction, resource)

    def _identity_write(self, res_type: str) -> None:
        """Writes that decide who may see what, by the user's role (the node itself --
        its services, operators, or authorization switched off -- writes anything):

        * Practitioner and PractitionerRole say who a user is: Consents name their
          actors by these resources' identifiers, so a user who could edit them could
          take on another clinician's shares. Only administrators write them.
        * A Consent is the patient's decision: only the patient (a patient user, whom
          the gate confines to their own compartment, so only their own Consents) and
          administrators write one; a clinician it limits must not lift the limit.
        * AuditEvents are the access log: only the node writes them, as it decides."""
        if self.consent is None:
            return
        if res_type in NODE_WRITTEN_TYPES:
            raise Forbidden(f"{res_type} resources are written by this node only.")
        if res_type in IDENTITY_TYPES and not self.is_admin():
            raise Forbidden(
                f"Only this node's administrators and services may write {res_type} "
                "resources: they identify the clinicians that Consents name."
            )
        patient_user = self.access is not None and self.access.user_patient is not None
        if res_type == "Consent" and not patient_user and not self.is_admin():
            raise Forbidden(
                "Only the patient and this node's administrators may write a Consent "
                "(a clinician may ask the patient to share, e.g. through $share)."
            )

    def _note_delete(self, res_type: str, res_id: str, conn) -> None:
        """A delete is audited under the patients its last content belonged to."""
        if self.audit is None:
            return
        row = self.store.current_version(res_type, res_id, conn)
        owners: set[str] = set()
        if row is not None and not row.deleted:
            try:
                owners = compartment_patient_ids(self.store.open_version(row))
            except IntegrityFailure:
                owners = set()  # a tampered row: audited without its patient
        self.audit.wrote("delete", f"{res_type}/{res_id}", owners)
