"""Index extraction, compartments, generated parameter definitions (speed: benchmarks/micro.py)."""

from __future__ import annotations

from fhir_server.search.compartment import compartment_patient_ids, patient_compartment_params
from fhir_server.search.indexer import ROW_FIELDS, CachingBlind, index_rows
from fhir_server.search.params import params_for, supported_types
from fhir_server.search.values import date_range, normalize

OBS = {
    "resourceType": "Observation",
    "id": "obs-1",
    "meta": {"lastUpdated": "2020-01-01T00:00:00Z"},
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                    "display": "vital-signs",
                }
            ]
        }
    ],
    "code": {
        "coding": [{"system": "http://loinc.org", "code": "8302-2", "display": "Body Height"}],
        "text": "Body Height",
    },
    "subject": {"reference": "urn:uuid:6b2b9e5c-2f0a-4f55-9a53-7c1b1f1e2a10"},
    "encounter": {"reference": "Encounter/enc-1"},
    "effectiveDateTime": "2011-04-17T10:37:17-04:00",
    "issued": "2011-04-17T10:37:17.664-04:00",
    "valueQuantity": {
        "value": 166.6,
        "unit": "cm",
        "system": "http://unitsofmeasure.org",
        "code": "cm",
    },
}
PATIENT = {
    "resourceType": "Patient",
    "id": "pat-1",
    "identifier": [
        {
            "system": "https://github.com/synthetichealth/synthea",
            "value": "b3a8d3c2-5f4d-4e0f-9b7a-1c2d3e4f5a6b",
        },
        {
            "type": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}
                ],
                "text": "Social Security Number",
            },
            "system": "http://hl7.org/fhir/sid/us-ssn",
            "value": "999-12-3456",
        },
    ],
    "name": [{"use": "official", "family": "Zyxwvutsr", "given": ["Anna"], "prefix": ["Mrs."]}],
    "telecom": [{"system": "phone", "value": "555-123-4567", "use": "home"}],
    "gender": "female",
    "birthDate": "1970-05-12",
    "address": [
        {
            "line": ["123 Main Street"],
            "city": "Boston",
            "state": "MA",
            "postalCode": "02101",
            "country": "US",
        }
    ],
    "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US"}]}}],
}


def test_generated_params():
    assert {"Patient", "Observation", "Encounter", "Condition"} <= supported_types()
    obs = params_for("Observation")
    assert obs["code"].type == "token" and obs["code"].paths == ("code",)
    assert obs["value-quantity"].paths[0] == "valueQuantity"
    assert set(obs["date"].paths) == {
        "effectiveDateTime",
        "effectivePeriod",
        "effectiveTiming",
        "effectiveInstant",
    }
    assert obs["patient"].targets == ("Patient",)
    assert params_for("Patient")["phone"].paths == ("telecom(system=phone)",)
    assert "_id" not in params_for("Patient")
    assert params_for("Nope") == {}


def as_dicts(tables: dict[str, list[tuple]]) -> dict[str, list[dict]]:
    return {
        name: [dict(zip(ROW_FIELDS[name], row, strict=True)) for row in rows]
        for name, rows in tables.items()
    }


def test_index_rows_shape(blind):
    rows = as_dicts(index_rows(OBS, blind))
    assert set(rows) == {"sidx_hash", "sidx_date", "sidx_quantity", "sidx_ref"}
    assert all(len(r["hash"]) == 16 for r in rows["sidx_hash"])
    assert all("resource_pk" not in r for rs in rows.values() for r in rs)
    dates = {r["param"]: (r["low"], r["high"]) for r in rows["sidx_date"]}
    assert dates["date"] == date_range("2011-04-17T14:37:17Z")
    refs = {(r["param"], r["target_type"], r["target_id"]) for r in rows["sidx_ref"]}
    assert ("encounter", "Encounter", "enc-1") in refs
    assert ("subject", None, None) in refs  # urn:uuid: digest only
    q = [r for r in rows["sidx_quantity"] if r["param"] == "value-quantity"]
    assert q[0]["value"] == 166.6 and q[0]["code"] == q[0]["unit"]
    assert index_rows({"resourceType": "Nope"}, blind) == {}


def test_date_ranges():
    assert date_range("2020") == (1577836800000000, 1609459200000000)
    assert date_range("2020-02")[1] - date_range("2020-02")[0] == 29 * 86_400_000_000
    assert date_range("2021-02-29") is None
    lo, hi = date_range("2020-01-01T00:00:00.5+01:00")
    assert lo == 1577833200500000 and hi - lo == 100_000
    assert date_range("2020-01-01T00:00Z")[1] - date_range("2020-01-01T00:00Z")[0] == 60_000_000


def test_normalize():
    assert normalize("  Jürgen   MÜLLER\t") == "jurgen muller"
    assert normalize("Straße") == "strasse"


def test_compartment():
    assert patient_compartment_params("Observation") == ("subject", "performer")
    assert patient_compartment_params("Practitioner") == ()
    obs = {
        "resourceType": "Observation",
        "subject": {"reference": "Patient/p1"},
        "performer": [
            {"reference": "Patient/p2/_history/2"},
            {"reference": "https://x.example/fhir/Patient/p3"},
            {"reference": "urn:uuid:abc"},
            {"reference": "Practitioner/d1"},
        ],
    }
    assert compartment_patient_ids(obs) == {"p1", "p2"}
    pat = {"resourceType": "Patient", "id": "p9", "link": [{"other": {"reference": "Patient/p8"}}]}
    assert compartment_patient_ids(pat) == {"p9", "p8"}
    assert compartment_patient_ids({"resourceType": "Practitioner", "id": "d"}) == set()


def test_caching_blind_gives_the_same_rows_on_every_call(blind):
    """The calls the old speed test timed (µs per call: benchmarks/micro.py) give the
    same rows every time, and the writer's CachingBlind the same rows as the plain index."""
    for resource in (OBS, PATIENT):
        plain = index_rows(resource, blind)
        cached = CachingBlind(blind)
        assert index_rows(resource, blind) == plain
        assert index_rows(resource, cached) == plain
        assert index_rows(resource, cached) == plain  # from the cache this time


def test_terminology_digests_are_the_same_digests_and_never_hold_identifiers(blind):
    from fhir_server.search.indexer import TerminologyDigests

    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": "urn:oid:2.16.886.101.20003", "value": "A123456789"}],
        "telecom": [{"system": "phone", "value": "0912-345-678"}],
        "name": [{"family": "Lin", "given": ["Mei"]}],
        "gender": "female",
        "maritalStatus": {"coding": [{"system": "http://hl7.org/v3", "code": "M"}]},
    }
    terms = TerminologyDigests(blind)
    for resource in (OBS, patient, OBS):
        assert index_rows(resource, blind, terms) == index_rows(resource, blind)
    cached_values = {value for _domain, value in terms._cache}
    assert "8302-2" in cached_values and "female" in cached_values
    for personal in ("A123456789", "0912-345-678", "Lin", "lin", "Mei", "mei"):
        assert not any(personal in value for value in cached_values), personal
