"""History confined to one patient's compartment (``patient/`` tokens).

The compartment index covers current versions only, so the candidates are the
versions of resources currently in the compartment plus every version sealed
under the patient's data key (which finds deleted and moved-away resources that
were the patient's); each candidate is then decrypted and kept only when *its
own* content is in the compartment. A deletion marker is kept when the version
it deletes was. Totals and pages are computed after this filtering, so nothing
about other patients' versions is counted.
"""

from __future__ import annotations

from sqlalchemy import or_, select, tuple_

from fhir_server.errors import IntegrityFailure
from fhir_server.search.compartment import compartment_patient_ids
from fhir_server.storage.db import compartments, resources, versions
from fhir_server.storage.rows import VERSION_COLUMNS, VersionRow
from fhir_server.storage.sealing import RecordSealer


def history_in_compartment(store, patient_id: str, conditions: list, instance: bool, count, offset):
    sealed_for = select(versions.c.res_type, versions.c.res_id).where(
        versions.c.key_scope == RecordSealer.scope_for(patient_id)
    )
    in_now = (
        select(resources.c.res_type, resources.c.res_id)
        .join(compartments, compartments.c.resource_pk == resources.c.pk)
        .where(compartments.c.patient_id == patient_id)
    )
    query = select(versions.c.seq, *VERSION_COLUMNS).where(*conditions)
    if not instance:
        key = tuple_(versions.c.res_type, versions.c.res_id)
        query = query.where(or_(key.in_(sealed_for), key.in_(in_now)))
    with store.connect() as conn:
        rows = [(r[0], VersionRow(*r[1:])) for r in conn.execute(query.order_by(versions.c.seq))]
    kept = []
    visible: dict[tuple[str, str], bool] = {}  # last content version's membership
    for seq, row in rows:  # oldest first, so a deletion knows what it deletes
        key = (row.res_type, row.res_id)
        if row.deleted:
            ok = visible.get(key)
            if ok is None:  # the deleted version lies before _since: look at it
                before = store.version_row(row.res_type, row.res_id, row.version_id - 1)
                ok = (
                    before is not None and not before.deleted and _member(store, before, patient_id)
                )
        else:
            ok = _member(store, row, patient_id)
            visible[key] = ok
        if ok:
            kept.append((seq, row))
    kept.reverse()  # newest first
    page = [row for _seq, row in kept[offset : offset + count]]
    return len(kept), page


def _member(store, row, patient_id: str) -> bool:
    try:
        return patient_id in compartment_patient_ids(store.open_version(row))
    except IntegrityFailure:  # unreadable (e.g. shredded): never shown
        return False
