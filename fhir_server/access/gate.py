"""Resource-server access policy (Flask-free): SMART scopes, patient compartments, consent.

One :class:`AccessPolicy` per request wraps the verified
:class:`~fhir_server.smart.access.AccessContext` (None when authentication is
off: everything is allowed, nothing is confined). The HTTP layer
(:mod:`fhir_server.api.guard`) and the Bundle processor call it; the
:class:`~fhir_server.storage.writer.Writer` carries it so every write,
including those inside batch/transaction Bundles and conditional interactions,
is checked where it happens.

Rules:

* **Scopes** (403): ``require(interaction, type, query)`` per interaction and per
  Bundle entry; ``c`` create, ``r`` read/vread/instance history/$verify, ``u``
  update, ``d`` delete, ``s`` search and type/system history.
* **Confinement**: a grant's ``compartment`` is the token's patient for
  ``patient/`` scopes, and a patient user's own id for their ``user/`` scopes.
  Searches, ``_include``/``_revinclude``, chains and ``_has`` (their inner
  resources too), history, ``$everything`` and the searches behind conditional
  interactions are restricted to that compartment in SQL, so totals, paging and
  ``_summary=count`` count only what the token may see. A read of a resource
  outside it answers exactly like a missing resource (404, same
  OperationOutcome); a delete answers 204 without deleting; an update answers
  404; a write whose new content would leave the compartment is refused with 403.
  Strictly: resources in no patient compartment (Practitioner, Organization,
  Medication ...) are outside every compartment.
* **Granular scopes** (``patient/Observation.rs?category=laboratory``): a search
  must carry the constraint (403 otherwise); a resource read, included or written
  must satisfy one alternative (:mod:`.granular`: token, string and reference params;
  any other param type fails closed). History under granular-only scopes is 403.

Consent hook: ``node.consent`` is None (consent off: scopes still apply) or an
object with::

    decide(access, interaction, res_type, resource, patient_id) -> Decision

(:mod:`.decision`: ``interaction`` an :class:`~.decision.Interaction`, the answer a
:class:`~.decision.Decision`), called *after* the scope checks: ``resource`` is
None for the up-front call made once per interaction (``patient_id`` = the
confining patient or None), and the resource for every resource about to be
returned or written (``patient_id`` = each patient whose compartment holds it, or
the confining patient). A denied up-front call is a 403; a denied resource is
withheld (reads: 404 as if missing; searches: left out, and counted out of totals).
Optionally ``releases_all(access, patient_id)``: True when nothing of that
patient's compartment can be withheld from ``access`` (the patient's own record),
which spares deciding every candidate of a search.

Audit: ``audit`` (a :class:`~fhir_server.access.request_audit.RequestAudit`, or None)
is told every resource returned, written or withheld here, so the HTTP layer can write one
AuditEvent per request without re-deriving what the token actually touched.
"""

from __future__ import annotations

import logging
from functools import partial

from fhir_server.access.decision import Grant, Interaction
from fhir_server.access.granular import meets
from fhir_server.access.kind_rules import KindRules
from fhir_server.access.write_checks import WriteChecks
from fhir_server.errors import BadRequest, Forbidden, Gone, IntegrityFailure, not_found
from fhir_server.search.compartment import compartment_patient_ids
from fhir_server.search.query import parse_search
from fhir_server.storage.sealing import RecordSealer

LOG = logging.getLogger("phrx.integrity")
# Search parameters that shape a result instead of selecting: not criteria.
RESULT_CONTROLS = frozenset(
    {"_count", "_offset", "_sort", "_summary", "_total", "_elements", "_include", "_revinclude"}
)


class AccessPolicy(WriteChecks, KindRules):
    def __init__(self, access, store, consent=None, audit=None, is_admin=None):
        self.access = access
        self.store = store
        # () -> bool: is the token's user one of this node's administrators (asked
        # only when an answer is needed: it costs a look-up).
        self.is_admin = is_admin or (lambda: False)
        # A hook that lets this access through wholesale (the node's own backend
        # services) is left out, so they see tampered rows and deletions as before.
        bypasses = getattr(consent, "bypasses", None)
        self.consent = None if bypasses is not None and bypasses(access) else consent
        self.audit = audit
        # Contents check_content passed, by id (the dict is kept, so the id is not
        # reused): a transaction checks every entry before writing anything, and the
        # Writer then checks the same content again as it writes it.
        self._passed: dict[int, tuple[str, dict]] = {}

    # -- audit notes --------------------------------------------------------------
    def saw(self, resource: dict) -> dict:
        """``resource`` is about to be returned to the token holder."""
        if self.audit is not None:
            self.audit.saw(resource)
        return resource

    # -- scopes ---------------------------------------------------------------------
    @property
    def confinement(self) -> str | None:
        """Token-wide patient (strictest reading), for searches behind writes."""
        if self.access is None:
            return None
        return self.access.compartment_patient or self.access.user_patient

    def require(self, interaction: Interaction, res_type: str, query=None) -> Grant:
        """Scope check (403) then the up-front consent call; returns the :class:`Grant`."""
        interaction = Interaction(interaction)
        if self.access is None:
            grant = Grant(interaction, res_type)
        else:
            permit = self.access.require(interaction.smart, res_type, query)
            own = self.access.user_patient
            if permit.compartment and own and permit.compartment != own:
                raise Forbidden("The token's patient context is not the signed-in patient.")
            grant = Grant(interaction, res_type, permit.compartment or own, permit.constraints)
        self.gate(interaction, res_type, grant.compartment)
        return grant

    def grant_or_none(self, interaction: Interaction, res_type: str) -> Grant | None:
        try:
            return self.require(interaction, res_type)
        except Forbidden:
            return None

    def gate(self, interaction: Interaction, res_type: str, patient_id: str | None) -> None:
        """The up-front consent question for ``patient_id`` (403 when denied)."""
        if self.consent is None:
            return
        decision = self.consent.decide(self.access, interaction, res_type, None, patient_id)
        if not decision.permit:
            if self.audit is not None and patient_id:
                self.audit.about = patient_id
            raise Forbidden(f"Consent does not permit this {interaction} on {res_type}.")

    def consented(
        self, interaction: Interaction, resource: dict, compartment: str | None, **options
    ) -> bool:
        """``options``: what an operation adds to the consent question (``$summary``:
        operation, purpose, justification -- break-glass)."""
        if self.consent is None:
            return True
        owners = [compartment] if compartment else sorted(compartment_patient_ids(resource))
        kind = resource.get("resourceType")
        permitted = all(
            self.consent.decide(self.access, interaction, kind, resource, p, **options).permit
            for p in owners or [None]
        )
        if not permitted and self.audit is not None:
            self.audit.withhold(resource, [p for p in owners if p])
        return permitted

    # -- searches -------------------------------------------------------------------
    def search(self, res_type: str, query, *, strict: bool = False, conn=None, compartment=None):
        """``run_search`` under this policy: scope check (granular constraints must be
        in ``query``), types reached by chains / ``_has`` need ``s`` too, everything
        confined to the grant's compartment, includes screened. ``compartment``: a
        patient id, for a compartment search (``GET Patient/{id}/{type}``); it narrows
        the grant's own compartment, never widens it."""
        from fhir_server.search.runner import SearchPage, run_search

        grant = self.require(Interaction.SEARCH_TYPE, res_type, query)
        self._check_chains(res_type, query, strict)
        within = grant.compartment
        if compartment is not None:
            if within not in (None, compartment):  # another patient's compartment
                request = parse_search(res_type, query, strict=strict)
                return SearchPage(request, 0, count=0)
            within = compartment
        screen = self.visible if (self.access is not None or self.consent) else None
        # Where consent may withhold a match, every candidate is decided before it is
        # counted or paged: a total counts only what the caller may read.
        admit = partial(self.allows, grant) if self._may_withhold(grant) else None
        page = run_search(
            self.store,
            res_type,
            query,
            strict=strict,
            conn=conn,
            compartment_patient=within,
            include_filter=screen,
            admit=admit,
        )
        if page.damaged:
            # Logged for the operator; named in the page only to an unrestricted caller:
            # an unreadable row cannot be decided, so a restricted one is not told of it.
            LOG.warning("search left out damaged rows: %s", ", ".join(page.damaged))
            if not self.unrestricted(grant):
                page.damaged = []
        for resource in (*page.matches, *page.included):
            self.saw(resource)
        return page

    def may_withhold(self, compartment: str | None) -> bool:
        """May consent withhold part of ``compartment`` (None: of any patient's data)?"""
        releases_all = getattr(self.consent, "releases_all", None)
        if self.consent is None:
            return False
        return not (compartment and releases_all and releases_all(self.access, compartment))

    def deletion_visible(self, res_type: str, res_id: str, version_id: int) -> bool:
        """May the caller see that ``version_id`` (a deletion) deleted what it did? Only
        if it may read the version it deleted."""
        grant = self.grant_or_none(Interaction.READ, res_type)
        return grant is not None and self._version_visible(grant, res_type, res_id, version_id - 1)

    def _check_chains(self, res_type: str, query, strict: bool = True) -> None:
        """Chained parameters and ``_has`` select by resources of other types that are
        never returned, so nothing decides them one by one: each inner type needs a
        search scope with no granular constraint, and consent must not be able to
        withhold any of it (else the chain could tell a withheld resource exists)."""
        if self.access is None or not any("." in k or k.startswith("_has:") for k, _ in query):
            return
        for crit in parse_search(res_type, query, strict=strict).criteria:
            for inner_type, _inner in crit.chain:
                inner = self.require(Interaction.SEARCH_TYPE, inner_type)
                if inner.constraints or self._may_withhold(inner):
                    raise Forbidden(
                        f"Chained and _has searches through {inner_type} are not available "
                        "to this token: its scopes or the patient's consent may withhold "
                        f"{inner_type} resources, which a chain would reveal."
                    )

    def unrestricted(self, grant: Grant) -> bool:
        """Does ``grant`` reach everything of its type: no compartment, no granular
        constraint, no consent to narrow it (nothing to decide per resource)?"""
        return grant.compartment is None and not grant.constraints and self.consent is None

    def _may_withhold(self, grant: Grant) -> bool:
        return self.may_withhold(grant.compartment)

    def conditional_matches(self, res_type: str, query, conn=None) -> list[dict]:
        """At most two current resources matching the criteria of a conditional
        interaction (If-None-Exist, conditional update / delete / reference) among
        those the caller may read: a match it may not read is no match, so a
        conditional request discloses nothing a direct read would not."""
        from fhir_server.search.runner import run_search

        controls = sorted({name for name, _ in query if name.split(":")[0] in RESULT_CONTROLS})
        if controls:  # _offset=1 would step over a second match, _count=1 hide it
            raise BadRequest(
                f"Conditional criteria may not carry result controls ({', '.join(controls)})."
            )
        grant = self.grant_or_none(Interaction.READ, res_type)
        if grant is None:
            return []  # nothing of this type is readable: nothing can match
        self._check_chains(res_type, query)
        admit = None if self.unrestricted(grant) else partial(self.allows, grant)
        page = run_search(
            self.store,
            res_type,
            [*query, ("_count", "2")],
            strict=True,
            conn=conn,
            compartment_patient=grant.compartment,
            admit=admit,
        )
        return [self.saw(r) for r in page.matches]

    def history_scope(self, res_type: str | None, res_id: str | None) -> dict:
        """Keyword arguments of ``store.history`` for this token (403 when not allowed)."""
        from fhir_server.resource_types import supported_types

        if res_type:
            kind = Interaction.HISTORY_INSTANCE if res_id else Interaction.HISTORY_TYPE
            grant = self.require(kind, res_type)
            self.no_granular_history(grant)
            return {"compartment_patient": grant.compartment}
        if self.access is None:
            self.gate(Interaction.HISTORY_SYSTEM, "*", None)
            return {}
        every = sorted(supported_types())
        grants = [self.grant_or_none(Interaction.HISTORY_SYSTEM, t) for t in every]
        grants = [g for g in grants if g is not None and not g.constraints]
        if not grants:
            raise Forbidden("The access token's scopes do not permit system history.")
        confined = any(g.compartment for g in grants)
        return {
            "compartment_patient": self.confinement if confined else None,
            "res_types": None if len(grants) == len(every) else [g.res_type for g in grants],
        }

    def everything_target(self, patient_id: str) -> None:
        """``Patient/{id}/$everything``: a confined token only for its own patient
        (any other answers 404 like a missing Patient)."""
        if self.audit is not None:
            self.audit.about = patient_id
        grant = self.require(Interaction.READ, "Patient")
        if grant.compartment is not None and grant.compartment != patient_id:
            raise not_found("Patient", patient_id)
        self.read("Patient", patient_id)
        self.gate(Interaction.OPERATION, "Patient", patient_id)

    def anchor(self) -> None:
        """``$anchor`` seals a batch of every patient's versions on the chain: it needs a
        ``system/*`` scope granting ``c`` (an operator / backend service)."""
        if self.access is not None and not any(
            s.context == "system" and s.res_type == "*" and "c" in s.permissions and not s.query
            for s in self.access.scopes
        ):
            raise Forbidden("$anchor needs a system/*.c (e.g. system/*.cruds) scope.")
        self.gate(Interaction.OPERATION, "*", None)

    # -- resources ------------------------------------------------------------------
    def allows(self, grant: Grant, resource: dict, **options) -> bool:
        """May ``resource`` be returned / written under ``grant``?"""
        if grant.compartment is not None and grant.compartment not in compartment_patient_ids(
            resource
        ):
            return False
        if grant.constraints and not any(meets(resource, alt) for alt in grant.constraints):
            return False
        if not self.kind_allows(grant, resource):
            return False
        return self.consented(grant.interaction, resource, grant.compartment, **options)

    def visible(
        self, resources: list[dict], interaction: Interaction = Interaction.READ, **options
    ) -> list[dict]:
        """The resources the token may read (for includes, ``$everything``, history,
        ``$summary``): scopes, compartment, granular scopes and consent, per resource."""
        grants: dict[str, Grant | None] = {}
        out = []
        for resource in resources:
            kind = resource.get("resourceType")
            if kind not in grants:
                grants[kind] = self.grant_or_none(interaction, kind)
            grant = grants[kind]
            if grant is not None and self.allows(grant, resource, **options):
                out.append(self.saw(resource))
        return out

    def read(self, res_type: str, res_id: str, conn=None) -> dict:
        """Read with scope (403) and visibility checks (404 exactly like a missing one)."""
        grant = self.require(Interaction.READ, res_type)
        try:
            resource = self.store.read(res_type, res_id, conn)
        except Gone:
            if not self.deleted_visible(grant, res_type, res_id, conn):
                raise not_found(res_type, res_id) from None
            raise
        except IntegrityFailure:  # not even a tampered row may reveal another's data
            self._own_key(grant, self.store.current_version(res_type, res_id, conn), res_id)
            raise
        if not self.allows(grant, resource):
            raise not_found(res_type, res_id)
        return self.saw(resource)

    def vread(self, res_type: str, res_id: str, version_id: int) -> dict:
        grant = self.require(Interaction.READ, res_type)
        self.no_granular_history(grant)
        try:
            resource = self.store.vread(res_type, res_id, version_id)
        except Gone:
            if not self._version_visible(grant, res_type, res_id, version_id - 1):
                raise not_found(res_type, res_id, version_id) from None
            raise
        except IntegrityFailure:
            row = self.store.version_row(res_type, res_id, version_id)
            self._own_key(grant, row, res_id, version_id)
            raise
        if not self.allows(grant, resource):
            raise not_found(res_type, res_id, version_id)
        return self.saw(resource)

    def deleted_visible(self, grant: Grant, res_type: str, res_id: str, conn=None) -> bool:
        """Was the deleted resource (its last content) visible under ``grant``?"""
        if self.unrestricted(grant):
            return True
        row = self.store.current_version(res_type, res_id, conn)
        return row is not None and self._version_visible(
            grant, res_type, res_id, row.version_id - 1, conn
        )

    def _version_visible(self, grant: Grant, res_type, res_id, version_id: int, conn=None) -> bool:
        if self.unrestricted(grant):
            return True
        row = None
        if version_id > 0:
            row = self.store.version_row(res_type, res_id, version_id, conn)
        if row is None or row.deleted:
            return False
        return self.allows(grant, self.store.open_version(row))

    def verify_target(self, res_type: str, res_id: str, version_id: int | None) -> None:
        """``$verify`` / ``$provenance``: read access to the (version of the) resource.
        Unrestricted tokens need no decryption (the operation reports tampering); a
        confined token whose target cannot be decrypted is judged by the key the
        version is sealed under (the patient's own key: visible; else 404)."""
        grant = self.require(Interaction.READ, res_type)
        if self.unrestricted(grant):
            return
        try:
            if version_id is None:
                self.read(res_type, res_id)
            else:
                self.vread(res_type, res_id, version_id)
        except Gone:
            return  # a deletion the token may see: the operation reports it
        except IntegrityFailure:
            return  # only raised once _own_key found the patient's own key: report it

    def _own_key(self, grant: Grant, row, res_id: str, version_id: int | None = None) -> None:
        """An undecryptable version is shown as failing only when it is sealed under
        the confining patient's own key (an unconfined token always sees it); else 404."""
        if self.unrestricted(grant):
            return
        own = RecordSealer.scope_for(grant.compartment) if grant.compartment else None
        if row is None or grant.constraints or own is None or row.key_scope != own:
            raise not_found(grant.res_type, res_id, version_id)

    def no_granular_history(self, grant: Grant) -> None:
        if grant.constraints:
            raise Forbidden(
                f"Granular scopes on {grant.res_type} do not cover history; "
                "the constraints are checked against current versions only."
            )
