"""``POST /fhir/Patient/{id}/$import-mhb``: import a My Health Bank (健康存摺) export.

Flask-free: the HTTP route (fhir_server/api/import_routes.py) and the CLI
(``phrx import-mhb``, fhir_server/cli_mhb.py) both call :func:`run`.

Steps: the patient must exist (404) → :func:`mhb_import.parse_export` (its
limits; 400 / 413 / 415 / 422 for a malformed or hostile file) →
:func:`mhb_import.to_bundle` with this node's id namespace → authorisation of
every resource type produced → comparison with the stored current versions
(leaf hashes, one bulk look-up, nothing decrypted) → R4 validation of every new or
changed resource → ONE database transaction that writes those (new ids through
the writer's bulk insert, changed ones through the same ``interactions.update`` a
transaction Bundle uses; every write sealed, indexed and journaled for anchoring)
and, when anything was created or changed, one Provenance recording the file's
SHA-256, format and import time. Identical resources are not written again. Any
failure rolls back everything.

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

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from anchoring.canonical import leaf_hash
from fhir_server.errors import Conflict, FHIRError, Forbidden
from fhir_server.resource_types import check_type
from fhir_server.rest import interactions
from fhir_server.storage.db import resources, versions
from mhb_import import ParseLimits, parse_export, to_bundle
from mhb_import.gcpause import gc_paused
from validators.r4 import validate_resource

NAME = "import-mhb"
DEFINITION_URL = "https://phrx.dev/fhir/OperationDefinition/Patient-import-mhb"
ID_NAMESPACE_LABEL = "phrx/mhb-import/v1/id-namespace"
OUTCOMES = ("created", "updated", "unchanged")
_CHUNK = 500

__all__ = ["DEFINITION_URL", "NAME", "ImportOutcome", "id_namespace", "run"]


def id_namespace(keyring) -> bytes:
    """The node's secret HMAC namespace for MHB resource ids (16 bytes)."""
    return keyring.blind_index().digest(ID_NAMESPACE_LABEL, "id-namespace")


@dataclass
class ImportOutcome:
    """What an import did. ``summary`` is the mapper's summary (source, rows,
    resources, skipped, unknown_fields, ...); ``counts[type][outcome]`` how many
    resources of each type were created / updated / left unchanged."""

    patient_id: str
    imported_at: str
    summary: dict
    counts: dict[str, Counter] = field(default_factory=dict)
    provenance: str | None = None  # "Provenance/<id>" when one was written

    def totals(self) -> Counter:
        out: Counter = Counter({k: 0 for k in OUTCOMES})
        for per_type in self.counts.values():
            out.update(per_type)
        return out

    def to_parameters(self) -> dict:
        """The operation's response: a FHIR ``Parameters`` resource (documented in
        docs/mhb-mapping.md, section Import)."""
        s = self.summary
        src = s["source"]
        source_parts = [
            {"name": "sha256", "valueString": src["sha256"]},
            {"name": "format", "valueCode": src["format"]},
            {"name": "container", "valueCode": src["container"]},
        ]
        if src.get("filename"):
            source_parts.append({"name": "filename", "valueString": src["filename"]})
        if src.get("request_date"):
            source_parts.append({"name": "requestDate", "valueDate": src["request_date"]})
        totals = self.totals()
        params: list[dict] = [
            {"name": "patient", "valueReference": {"reference": f"Patient/{self.patient_id}"}},
            {"name": "importedAt", "valueInstant": self.imported_at},
            {"name": "source", "part": source_parts},
        ]
        if self.provenance:
            params.append({"name": "provenance", "valueReference": {"reference": self.provenance}})
        params += [{"name": k, "valueInteger": totals[k]} for k in OUTCOMES]
        for rtype in sorted(self.counts):
            c = self.counts[rtype]
            params.append(
                {
                    "name": "resources",
                    "part": [
                        {"name": "type", "valueCode": rtype},
                        *({"name": k, "valueInteger": c[k]} for k in OUTCOMES),
                    ],
                }
            )
        for section, n in sorted(s["rows"].items()):
            params.append(
                {
                    "name": "rows",
                    "part": [
                        {"name": "section", "valueString": section},
                        {"name": "count", "valueInteger": n},
                    ],
                }
            )
        for skip in s["skipped"]:
            params.append(
                {
                    "name": "skipped",
                    "part": [
                        {"name": "section", "valueString": skip["section"]},
                        {"name": "row", "valueInteger": skip["row"]},
                        {"name": "reason", "valueString": skip["reason"]},
                    ],
                }
            )
        for name, n in s["unknown_fields"].items():
            params.append(
                {
                    "name": "unknownField",
                    "part": [
                        {"name": "field", "valueString": name},
                        {"name": "count", "valueInteger": n},
                    ],
                }
            )
        for section, n in sorted(s["duplicates_removed"].items()):
            params.append(
                {
                    "name": "duplicatesRemoved",
                    "part": [
                        {"name": "section", "valueString": section},
                        {"name": "count", "valueInteger": n},
                    ],
                }
            )
        params += [{"name": "emptySection", "valueString": x} for x in s["empty_sections"]]
        params += [
            {"name": "omittedDemographic", "valueString": x} for x in s["omitted_demographics"]
        ]
        params += [{"name": "warning", "valueString": w} for w in s["warnings"]]
        return {"resourceType": "Parameters", "parameter": params}


def check_patient_access(access, patient_id: str) -> None:
    """403 unless ``access`` (an AccessContext, or None = auth off) may write into
    this patient's record. Cheap: called before the file is parsed."""
    if access is None:
        return
    for confined in (access.compartment_patient, access.user_patient):
        if confined is not None and confined != patient_id:
            raise Forbidden("The access token is confined to another patient's record.")
    check_write_access(access, {"Provenance"})


def check_write_access(access, res_types) -> None:
    """403 unless create and update are permitted, unconditionally, on every type."""
    if access is None:
        return
    for res_type in sorted(res_types):
        for interaction in ("c", "u"):
            permit = access.require(interaction, res_type)
            if permit.constraints:
                raise Forbidden(
                    f"Granular scopes on {res_type} cannot authorise an MHB import "
                    "(it writes every category)."
                )


def run(
    node,
    patient_id: str,
    data: bytes,
    *,
    password: str | None = None,
    filename: str | None = None,
    access=None,
    limits: ParseLimits | None = None,
    imported_at: datetime | None = None,
    timings: dict | None = None,
) -> ImportOutcome:
    """Import ``data`` (an MHB export file) into ``patient_id``'s record on ``node``.

    ``access``: the request's AccessContext (None: no checks, e.g. the local CLI).
    ``timings``: if given, filled with seconds per phase (parse, map, compare, validate, store).
    """
    # The mapped resources, their validation and the buffered rows of the write are
    # ~2 million live objects without reference cycles (an import leaves < 100 cyclic
    # objects behind); with the cyclic collector walking them again and again, a
    # 10-year import took ~19 s instead of ~13.5 s (benchmark, median of 2 each).
    with gc_paused():
        return _import(
            node, patient_id, data, password, filename, access, limits, imported_at, timings
        )


def _import(
    node, patient_id, data, password, filename, access, limits, imported_at, timings
) -> ImportOutcome:
    clock = _Clock(timings)
    store = node.store
    check_patient_access(access, patient_id)
    store.read("Patient", patient_id)  # NotFound (404) / Gone (410)
    imported_at = imported_at or datetime.now(UTC)
    export = parse_export(data, password=password, filename=filename, limits=limits)
    clock.lap("parse")
    result = to_bundle(
        export,
        patient_id=patient_id,
        id_namespace=id_namespace(node.keyring),
        imported_at=imported_at,
    )
    entries = [e["resource"] for e in result.bundle["entry"]]
    clinical = [r for r in entries if r["resourceType"] != "Provenance"]
    provenance = next(r for r in entries if r["resourceType"] == "Provenance")
    types = {r["resourceType"] for r in entries}
    for res_type in types:
        check_type(res_type)
    check_write_access(access, types)
    clock.lap("map")
    # Resources identical to what is stored were validated when they were stored and
    # are not written again: only the others are validated, sealed and indexed.
    leaves = _Leaves()
    with store.connect() as conn:
        stored = _current_leaves(conn, clinical)
    to_write = [r for r in clinical if not leaves.unchanged(r, stored.get(_key(r)))]
    clock.lap("compare")
    validated: set[tuple[str, str]] = set()
    for resource in to_write:
        _validate(resource, validated)
    if to_write:  # else the Provenance is written only if the store changed meanwhile
        _validate_provenance(provenance, validated)
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
        with store.unit_of_work(prepare=prepare) as writer:
            # the authoritative look-up, under the write lock; skipped when nothing
            # existed before (a concurrent first import then fails on the insert)
            current = _current_leaves(writer.conn, clinical) if stored else {}
            for resource in clinical:
                kind = _put(writer, resource, current.get(_key(resource)), validated, leaves)
                outcome.counts[resource["resourceType"]][kind] += 1
                changed += kind != "unchanged"
            if changed:
                if _key(provenance) not in validated:
                    _validate_provenance(provenance, validated)
                interactions.update(writer, "Provenance", provenance["id"], provenance)
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


def _key(resource: dict) -> tuple[str, str]:
    return resource["resourceType"], resource["id"]


def _validate(resource: dict, validated: set) -> None:
    try:
        validate_resource(resource)
    except FHIRError as error:
        error.diagnostics = f"{resource['resourceType']}/{resource['id']}: {error.diagnostics}"
        raise
    validated.add(_key(resource))


class _Leaves:
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
        key = _key(resource)
        leaf = self._leaves.get(key)
        if leaf is None:
            leaf = self._leaves[key] = leaf_hash(resource)
        return current[1] == leaf


def _validate_provenance(provenance: dict, validated: set) -> None:
    """Validate the import's Provenance without validating each target again.

    ``target`` names every resource of the export (~36,500 for ten years). Each is
    ``{"reference": "Type/id"}`` built by the mapper from a resource it produced, and
    running every one through the R4 Reference model cost ~0.5-1 s per import. So the
    Provenance is validated with its first target, and every target is checked to be
    exactly a relative reference; anything else is validated in full."""
    targets = provenance["target"]
    if not all(type(t) is dict and t.keys() == {"reference"} and _is_ref(t) for t in targets):
        _validate(provenance, validated)
        return
    _validate({**provenance, "target": targets[:1]}, set())
    validated.add(_key(provenance))


_RELATIVE_REF = re.compile(r"^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}$")


def _is_ref(target: dict) -> bool:
    ref = target["reference"]
    return type(ref) is str and _RELATIVE_REF.match(ref) is not None


def _put(writer, resource: dict, current, validated: set, leaves: _Leaves) -> str:
    """Write one resource; returns created / updated / unchanged.

    ``current`` is (deleted, leaf) of the stored current version, or None when
    the id is new. New ids go to the writer's buffered bulk insert; an identical
    stored version is left alone; anything else is an ordinary FHIR update
    (which re-checks, seals, indexes and journals). A resource that was found
    unchanged before the transaction but changed since is validated here.
    """
    if current is not None and leaves.unchanged(resource, current):
        return "unchanged"
    if _key(resource) not in validated:
        _validate(resource, validated)
    res_type, res_id = _key(resource)
    if current is None:
        writer.create(resource, res_id=res_id)
        return "created"
    written = interactions.update(writer, res_type, res_id, resource).written
    return "created" if written.created else "updated" if written.changed else "unchanged"


def _current_leaves(conn, clinical: list[dict]) -> dict[tuple[str, str], tuple[bool, bytes]]:
    """(type, id) -> (deleted, leaf) of the current stored version, for the ids given.

    Plain driver SQL: through SQLAlchemy's expression layer, expanding 36,000 ids into
    IN lists took ~0.4 s per look-up (profiled), several times the queries' own cost.
    """
    by_type: dict[str, list[str]] = {}
    for r in clinical:
        by_type.setdefault(r["resourceType"], []).append(r["id"])
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    found: dict[tuple[str, str], tuple[bool, bytes]] = {}
    for res_type, res_ids in by_type.items():
        for start in range(0, len(res_ids), _CHUNK):
            chunk = res_ids[start : start + _CHUNK]
            # table and column names are our schema's; every value is a bound parameter
            sql = _LEAVES_SQL.format(marker=marker, ids=", ".join(marker for _ in chunk))
            for res_id, deleted, leaf in conn.exec_driver_sql(sql, (res_type, *chunk)):
                found[(res_type, res_id)] = (bool(deleted), bytes(leaf) if leaf else None)
    return found


_LEAVES_SQL = (
    f"SELECT r.res_id, r.deleted, v.leaf FROM {resources.name} r "  # noqa: S608
    f"JOIN {versions.name} v ON v.res_type = r.res_type AND v.res_id = r.res_id "
    "AND v.version_id = r.version_id WHERE r.res_type = {marker} AND r.res_id IN ({ids})"
)
