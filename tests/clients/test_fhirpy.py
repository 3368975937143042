"""``fhirpy`` (pinned 2.3.1) against a real node, as a backend service (SMART Backend
Services token): CRUD, chained search, paging with ``fetch_all``, ``get_or_create``
(conditional create by query), ``save(fields=…)`` (PATCH), and the anchoring Provenance
of a stored Observation found with ``Provenance?target=…``."""

from __future__ import annotations

import time
import uuid

import pytest

pytest.importorskip("fhirpy", reason="fhirpy is not installed")

LOINC = "http://loinc.org"


@pytest.fixture
def fhir(live_node, backend_headers):
    from fhirpy import SyncFHIRClient

    return SyncFHIRClient(live_node.base, authorization=backend_headers["Authorization"])


def _family(tag: str) -> str:
    return f"{tag}{uuid.uuid4().hex[:8]}"


def _patient(fhir, family, **extra):
    patient = fhir.resource("Patient", name=[{"family": family, "given": ["Py"]}], **extra)
    patient.save()
    return patient


def _observation(fhir, patient, code="8867-4", value=70):
    obs = fhir.resource(
        "Observation",
        status="final",
        code={"coding": [{"system": LOINC, "code": code}]},
        subject=patient.to_reference(),
        valueQuantity={"value": value, "unit": "/min"},
    )
    obs.save()
    return obs


def test_crud(fhir):
    from fhirpy.base.exceptions import ResourceNotFound

    family = _family("Crud")
    patient = _patient(fhir, family, gender="male", birthDate="1970-01-02")
    pid = patient.id
    assert pid and patient["meta"]["versionId"] == "1"

    read = fhir.reference("Patient", pid).to_resource()
    assert read["name"][0]["family"] == family
    assert read["birthDate"] == "1970-01-02"

    read["gender"] = "other"
    read.save()
    assert read["meta"]["versionId"] == "2"
    again = fhir.reference("Patient", pid).to_resource()
    assert again["gender"] == "other"
    assert again["meta"]["versionId"] == "2"

    again.delete()
    with pytest.raises(ResourceNotFound):
        fhir.reference("Patient", pid).to_resource()  # 410 Gone
    assert fhir.resources("Patient").search(family=family).fetch() == []


def test_chained_search(fhir):
    family = _family("Chain")
    mine = _patient(fhir, family)
    other = _patient(fhir, _family("Other"))
    wanted = {_observation(fhir, mine, value=v).id for v in (71, 72)}
    _observation(fhir, other, value=73)

    found = fhir.resources("Observation").search(subject__Patient__name=family).fetch_all()
    assert {o.id for o in found} == wanted
    by_family = fhir.resources("Observation").search(subject__Patient__family=family)
    assert {o.id for o in by_family.fetch_all()} == wanted
    nobody = fhir.resources("Observation").search(subject__Patient__name=_family("Nobody"))
    assert nobody.fetch_all() == []


def test_paging_fetch_all(fhir):
    patient = _patient(fhir, _family("Pages"))
    created = {_observation(fhir, patient, value=v).id for v in range(7)}
    search = fhir.resources("Observation").search(subject=f"Patient/{patient.id}").limit(3)
    first_page = search.fetch()
    assert len(first_page) == 3
    everything = search.fetch_all()  # follows Bundle.link[next] over three pages
    assert len(everything) == 7
    assert {o.id for o in everything} == created


def test_get_or_create_twice_gives_one_resource(fhir):
    value = uuid.uuid4().hex
    identifier = {"system": "urn:phrx:fhirpy", "value": value}
    search = fhir.resources("Patient").search(identifier=f"urn:phrx:fhirpy|{value}")

    first, created = search.get_or_create(
        fhir.resource("Patient", identifier=[identifier], name=[{"family": "Once"}])
    )
    assert created is True
    assert first.id

    second, created = search.get_or_create(
        fhir.resource("Patient", identifier=[identifier], name=[{"family": "Twice"}])
    )
    assert created is False
    assert second.id == first.id
    assert second["name"][0]["family"] == "Once"  # the existing one, not the new body
    assert [p.id for p in search.fetch_all()] == [first.id]


def test_save_fields_patches_only_those_fields(fhir):
    family = _family("Patch")
    patient = _patient(fhir, family, gender="male", birthDate="1980-05-06", active=True)
    pid = patient.id

    patient["gender"] = "female"
    patient["birthDate"] = "1999-09-09"  # changed here but not in fields: not sent
    patient.save(fields=["gender"])
    stored = fhir.reference("Patient", pid).to_resource()
    assert stored["gender"] == "female"
    assert stored["birthDate"] == "1980-05-06"
    assert stored["name"][0]["family"] == family
    assert stored["active"] is True
    assert stored["meta"]["versionId"] == "2"

    stored.patch(active=False)  # fhirpy's patch(): save(fields=["active"])
    again = fhir.reference("Patient", pid).to_resource()
    assert again["active"] is False
    assert again["gender"] == "female"
    assert again["meta"]["versionId"] == "3"


def test_anchoring_provenance_by_target(fhir):
    from fhirpy.base.exceptions import ResourceNotFound

    obs = _observation(fhir, _patient(fhir, _family("Anchor")))
    path = f"Observation/{obs.id}/_history/1/$provenance"
    deadline = time.monotonic() + 90
    while True:  # 404 until the batcher has anchored the version (interval 2 s)
        try:
            proof = fhir.execute(path, method="get")
            break
        except ResourceNotFound:
            if time.monotonic() > deadline:
                pytest.fail("the Observation was not anchored within 90 s")
            time.sleep(0.5)
    assert proof["resourceType"] == "Provenance"

    found = fhir.resources("Provenance").search(target=f"Observation/{obs.id}").fetch_all()
    assert [p.id for p in found] == [proof["id"]]
    targets = [t["reference"] for t in found[0]["target"]]
    assert f"Observation/{obs.id}/_history/1" in targets
