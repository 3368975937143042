"""``POST /fhir/Patient/{id}/$import-mhb``: import a My Health Bank (健康存摺) export.

Flask-free: the HTTP route (fhir_server/api/operations/import_mhb.py) and the CLI
(``phrx import-mhb``, fhir_server/cli/mhb.py) both call :func:`run`.

Steps: the patient must exist (404) → :func:`mhb_import.parse_export` (its
limits; 400 / 413 / 415 / 422 for a malformed or hostile file) →
:func:`mhb_import.to_bundle` with this node's id namespace → the request's access
policy grants create and update on every resource type produced (403) →
comparison with the stored current versions (leaf hashes, one bulk look-up,
nothing decrypted) → R4 validation of every new or changed resource → ONE
database transaction that writes those (new ids through the writer's bulk insert,
changed ones through the same ``interactions.update`` a transaction Bundle uses;
every write sealed, indexed and journaled for anchoring, and checked by the
Writer against the request's policy -- compartment, granular scopes, consent --
exactly like a REST write) and, when anything was created or changed, one
Provenance recording the file's SHA-256, format and import time. Identical
resources are not written again. Any failure (a 403 included) rolls back everything.

Access is decided only by the :class:`~fhir_server.access.gate.AccessPolicy` passed
as ``policy`` (None: unrestricted, the local CLI).

Why not ``process_bundle``: a 10-year export maps to ~36,000 resources, over
the Bundle limit of ``bundles.MAX_ENTRIES`` (10,000), and the Provenance must be
written only when the import changed something (else a re-import would add a
version), which a pre-built transaction cannot express.

Ids: ``mhb-<HMAC-SHA256(namespace, patient ␟ section ␟ row key)>`` where the
namespace is a per-node secret derived from the node master key (through the
key ring's blind-index key, label :data:`ID_NAMESPACE_LABEL`): stable across
restarts, not guessable from the data, different on every node.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from fhir_server.access.decision import Interaction
from fhir_server.errors import Conflict, from_mhb
from fhir_server.operations.definition import operation_definition, param
from fhir_server.operations.import_mhb_outcome import OUTCOMES, ImportOutcome
from fhir_server.operations.import_mhb_write import (
    Leaves,
    key,
    put,
    put_provenance,
    validate,
    validate_provenance,
)
from fhir_server.resource_types import check_type
from fhir_server.storage import queries
from mhb_import import ParseLimits, parse_export, to_bundle
from mhb_import.errors import MhbError
from mhb_import.gcpause import gc_paused

ID_NAMESPACE_LABEL = "phrx/mhb-import/v1/id-namespace"

_COUNTS = [
    param("type", "out", 1, "1", "code"),
    *(param(k, "out", 1, "1", "integer") for k in OUTCOMES),
]


def _counted(name: str) -> list[dict]:
    return [param(name, "out", 1, "1", "string"), param("count", "out", 1, "1", "integer")]


DEFINITION = operation_definition(
    "import-mhb",
    code="import-mhb",
    name="PhrxPatientImportMhb",
    title="Import a My Health Bank (健康存摺) export",
    description=(
        "POST Patient/id/$import-mhb with the export file (JSON, XML or zip) as the raw "
        "body, or as multipart/form-data with a part 'file' and an optional 'password'; "
        "a zip password may also come in the X-MHB-Password header. Maps the export to "
        "FHIR and writes, in one transaction, what is new or changed, plus a Provenance of "
        "the import. Needs create and update on every type produced; each write is "
        "checked like a REST write (compartment, granular scopes, consent). See "
        "docs/mhb-mapping.md."
    ),
    resource=["Patient"],
    system=False,
    type_=False,
    instance=True,
    affects_state=True,
    parameters=[
        param("file", "in", 1, "1", "base64Binary", "The export file (raw body or part)."),
        param("password", "in", 0, "1", "string", "Password of a zip export."),
        param("filename", "in", 0, "1", "string", "The file's name (query parameter)."),
        param("patient", "out", 1, "1", "Reference"),
        param("importedAt", "out", 1, "1", "instant"),
        param(
            "source",
            "out",
            1,
            "1",
            None,
            "The file imported.",
            part=[
                param("sha256", "out", 1, "1", "string"),
                param("format", "out", 1, "1", "code"),
                param("container", "out", 1, "1", "code"),
                param("filename", "out", 0, "1", "string"),
                param("requestDate", "out", 0, "1", "date"),
            ],
        ),
        param("provenance", "out", 0, "1", "Reference", "When anything was written."),
        *(param(k, "out", 1, "1", "integer", f"Resources {k} in all.") for k in OUTCOMES),
        param("resources", "out", 0, "*", None, "Per resource type.", part=_COUNTS),
        param(
            "rows",
            "out",
            0,
            "*",
            None,
            "Rows per section of the export.",
            part=_counted("section"),
        ),
        param(
            "skipped",
            "out",
            0,
            "*",
            None,
            "Rows not imported, with the reason.",
            part=[
                param("section", "out", 1, "1", "string"),
                param("row", "out", 1, "1", "integer"),
                param("reason", "out", 1, "1", "string"),
            ],
        ),
        param(
            "unknownField",
            "out",
            0,
            "*",
            None,
            part=_counted("field"),
        ),
        param(
            "duplicatesRemoved",
            "out",
            0,
            "*",
            None,
            part=_counted("section"),
        ),
        param("emptySection", "out", 0, "*", "string"),
        param("omittedDemographic", "out", 0, "*", "string"),
        param("warning", "out", 0, "*", "string"),
    ],
)
NAME = DEFINITION["code"]

__all__ = ["DEFINITION", "NAME", "ImportOutcome", "id_namespace", "run"]


def id_namespace(keyring) -> bytes:
    """The node's secret HMAC namespace for MHB resource ids (16 bytes)."""
    return keyring.blind_index().digest(ID_NAMESPACE_LABEL, "id-namespace")


def run(
    node,
    patient_id: str,
    data: bytes,
    *,
    password: str | None = None,
    filename: str | None = None,
    policy=None,
    limits: ParseLimits | None = None,
    imported_at: datetime | None = None,
    timings: dict | None = None,
) -> ImportOutcome:
    """Import ``data`` (an MHB export file) into ``patient_id``'s record on ``node``.

    ``policy``: the request's :class:`~fhir_server.access.gate.AccessPolicy` (None:
    no checks, e.g. the local CLI); every write is checked by it.
    ``timings``: if given, filled with seconds per phase (parse, map, compare, validate, store).
    """
    # The mapped resources, their validation and the buffered rows of the write are
    # ~2 million live objects without reference cycles (an import leaves < 100 cyclic
    # objects behind); with the cyclic collector walking them again and again, a
    # 10-year import took ~19 s instead of ~13.5 s (benchmark, median of 2 each).
    with gc_paused():
        return _import(
            node, patient_id, data, password, filename, policy, limits, imported_at, timings
        )


def require_writes(policy, res_types) -> None:
    """403 unless ``policy`` grants create and update on every type in ``res_types``
    (an import creates what is new and updates what changed). Scopes and the up-front
    consent call only: each resource is checked again as the Writer writes it."""
    if policy is None:
        return
    for res_type in sorted(res_types):
        for interaction in (Interaction.CREATE, Interaction.UPDATE):
            policy.require(interaction, res_type)


def _import(
    node, patient_id, data, password, filename, policy, limits, imported_at, timings
) -> ImportOutcome:
    clock = _Clock(timings)
    store = node.store
    require_writes(policy, {"Provenance"})  # cheap: before the file is parsed
    store.read("Patient", patient_id)  # NotFound (404) / Gone (410)
    imported_at = imported_at or datetime.now(UTC)
    try:  # the importer owns its errors: translated here, where the node calls it
        export = parse_export(data, password=password, filename=filename, limits=limits)
        clock.lap("parse")
        result = to_bundle(
            export,
            patient_id=patient_id,
            id_namespace=id_namespace(node.keyring),
            imported_at=imported_at,
        )
    except MhbError as error:
        raise from_mhb(error) from None
    entries = [e["resource"] for e in result.bundle["entry"]]
    clinical = [r for r in entries if r["resourceType"] != "Provenance"]
    provenance = next(r for r in entries if r["resourceType"] == "Provenance")
    types = {r["resourceType"] for r in entries}
    for res_type in types:
        check_type(res_type)
    require_writes(policy, types)
    clock.lap("map")
    # Resources identical to what is stored were validated when they were stored and
    # are not written again: only the others are validated, sealed and indexed.
    leaves = Leaves()
    with store.connect() as conn:
        stored = queries.current_leaves(conn, map(key, clinical))
    to_write = [r for r in clinical if not leaves.unchanged(r, stored.get(key(r)))]
    clock.lap("compare")
    validated: set[tuple[str, str]] = set()
    for resource in to_write:
        validate(resource, validated)
    if to_write:  # else the Provenance is written only if the store changed meanwhile
        validate_provenance(provenance, validated)
    clock.lap("validate")
    outcome = ImportOutcome(
        patient_id=patient_id,
        imported_at=provenance["recorded"],
        summary=result.summary,
        counts={t: Counter({k: 0 for k in OUTCOMES}) for t in sorted(types - {"Provenance"})},
    )
    # Only what will be written is prepared (data keys; the store may index it ahead
    # of the write lock). An id that exists already has its key; the patient's key
    # exists with the Patient, so a Provenance written after a concurrent change
    # finds its key too.
    prepare = [*to_write, provenance] if to_write else []
    changed = 0
    try:
        with store.unit_of_work(prepare=prepare, policy=policy) as writer:
            # the authoritative look-up, under the write lock; skipped when nothing
            # existed before (a concurrent first import then fails on the insert)
            current = queries.current_leaves(writer.conn, map(key, clinical)) if stored else {}
            for resource in clinical:
                kind = put(writer, resource, current.get(key(resource)), validated, leaves)
                outcome.counts[resource["resourceType"]][kind] += 1
                changed += kind != "unchanged"
            if changed:
                put_provenance(writer, provenance, validated)
                outcome.provenance = f"Provenance/{provenance['id']}"
                outcome.counts["Provenance"] = Counter(created=1, updated=0, unchanged=0)
    except IntegrityError:
        # another import created one of these ids between our look-up and the commit
        raise Conflict("A concurrent import wrote the same resources; retry.") from None
    clock.lap("store")
    return outcome


class _Clock:
    def __init__(self, timings: dict | None):
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[name] = self.timings.get(name, 0.0) + now - self.last
        self.last = now
