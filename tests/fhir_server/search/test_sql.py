"""End-to-end search tests: parse -> build_search -> real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from fhir_server.errors import BadRequest
from fhir_server.search.query import parse_search
from fhir_server.search.sql import build_search
from fhir_server.search.tables import ALL_TABLES
from fhir_server.storage.db import resources

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
MRN = "http://hospital.example/mrn"
LONG_TEXT = "Johnathan Bartholomew Smithington-Worthington"


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1_000_000)


def _obs(oid, code, *, subject, system=LOINC, display=None, **extra):
    coding = {"code": code}
    if system:
        coding["system"] = system
    if display:
        coding["display"] = display
    res = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [coding], **({"text": display} if display else {})},
        "subject": {"reference": subject},
    }
    res.update(extra)
    return res


RESOURCES = [
    {
        "resourceType": "Patient",
        "id": "p1",
        "_lu_us": _us("2024-01-01T00:00:00"),
        "identifier": [{"system": MRN, "value": "MRN-001"}],
        "name": [{"use": "official", "family": "Zyxwvutsr", "given": ["Anna", "Maria"]}],
        "telecom": [{"system": "phone", "value": "555-0101"}],
        "gender": "female",
        "birthDate": "1970-05-12",
        "address": [{"city": "Zürich", "country": "CH"}],
    },
    {
        "resourceType": "Patient",
        "id": "p2",
        "_lu_us": _us("2024-02-01T00:00:00"),
        "identifier": [{"system": MRN, "value": "MRN-002"}],
        "name": [{"family": "Müller", "given": ["Jürgen"]}],
        "gender": "male",
        "birthDate": "1985",
    },
    {
        "resourceType": "Patient",
        "id": "p3",
        "_lu_us": _us("2024-03-01T00:00:00"),
        "name": [{"family": "Smith", "given": ["John"], "text": LONG_TEXT}],
        "gender": "male",
        "birthDate": "1950-01-01",
        "deceasedDateTime": "2015-02-03T04:05:06Z",
    },
    {
        "resourceType": "Patient",
        "id": "p4",  # deleted: must never be returned
        "name": [{"family": "Smith"}],
        "gender": "male",
    },
    _obs(
        "o1",
        "8302-2",
        subject="Patient/p1",
        display="Body Height",
        encounter={"reference": "Encounter/e1"},
        effectiveDateTime="2020-03-01T10:00:00+01:00",
        valueQuantity={"value": 170.5, "unit": "cm", "system": UCUM, "code": "cm"},
    ),
    _obs(
        "o2",
        "29463-7",
        subject="Patient/p2",
        display="Body Weight",
        effectiveDateTime="2021-06-15",
        valueQuantity={"value": 80, "unit": "kg", "system": UCUM, "code": "kg"},
    ),
    _obs(
        "o3",
        "SENTINEL-123",
        system="http://sentinel.example",
        subject="Patient/p1",
        display="Sentinel Code Alpha",
        effectivePeriod={"start": "2019-01-01", "end": "2019-12-31"},
        valueQuantity={
            "value": 5.4,
            "unit": "mmol per liter",
            "system": UCUM,
            "code": "mmol/L",
        },
    ),
    _obs(
        "o4",
        "8302-2",
        system=None,
        subject="http://other.example/fhir/Patient/p3",
        status="preliminary",
    ),
    {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2020-03-01T09:00:00Z", "end": "2020-03-01T11:00:00Z"},
    },
    {
        "resourceType": "Encounter",
        "id": "e2",
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/p2"},
        "period": {"start": "2022-01-01T00:00:00Z"},  # open end
    },
    {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p2"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
        "onsetDateTime": "2010",
    },
    {
        "resourceType": "RiskAssessment",
        "id": "ra1",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "prediction": [{"probabilityDecimal": 0.25}],
    },
    {
        "resourceType": "RiskAssessment",
        "id": "ra2",
        "status": "final",
        "subject": {"reference": "Patient/p2"},
        "prediction": [{"probabilityDecimal": 0.8}],
    },
]
BY_KEY = {
    f"{r['resourceType']}/{r['id']}": {k: v for k, v in r.items() if k != "_lu_us"}
    for r in RESOURCES
}


@pytest.fixture
def db(engine, blind, store_resources):
    store_resources(engine, blind, RESOURCES, deleted={"Patient/p4"})
    return engine


def run(engine, blind, rtype, query, *, strict=True, expect_python=None):
    """Execute a search like the storage layer would; returns ids in order."""
    req = parse_search(rtype, query, strict=strict)
    plan = build_search(req, blind)
    if expect_python is not None:
        assert (plan.postfilter is not None) == expect_python
    with engine.connect() as conn:
        pks = conn.execute(plan.select).scalars().all()
        rows = dict(
            conn.execute(
                select(resources.c.pk, resources.c.res_id).where(resources.c.pk.in_(pks))
            ).all()
        )
        count = conn.execute(plan.count_select).scalar_one()
    assert count == len(pks)
    found = [BY_KEY[f"{rtype}/{rows[pk]}"] for pk in pks]
    if plan.postfilter is not None:
        found = [r for r in found if plan.postfilter(r)]
    if plan.python_sort is not None:
        found = plan.python_sort(found)
    return [r["id"] for r in found]


def ids(*a, **kw):
    return sorted(run(*a, **kw))


# ------------------------------------------------------------------ token


def test_token(db, blind):
    q = lambda *pairs: ids(db, blind, "Observation", list(pairs))  # noqa: E731
    assert q(("code", "8302-2")) == ["o1", "o4"]
    assert q(("code", f"{LOINC}|8302-2")) == ["o1"]
    assert q(("code", "|8302-2")) == ["o4"]
    assert q(("code", f"{LOINC}|")) == ["o1", "o2"]
    assert q(("code", "8302-2,29463-7")) == ["o1", "o2", "o4"]
    assert q(("code", "8302-2"), ("status", "final")) == ["o1"]
    assert q(("code:not", "8302-2")) == ["o2", "o3"]
    assert q(("code:not", "8302-2,29463-7")) == ["o3"]
    assert q(("status", "preliminary")) == ["o4"]
    assert q(("code", "nothing")) == []
    assert ids(db, blind, "Patient", [("gender", "male")]) == ["p2", "p3"]
    assert ids(db, blind, "Patient", [("identifier", "MRN-001")]) == ["p1"]
    assert ids(db, blind, "Patient", [("identifier", f"{MRN}|MRN-002")]) == ["p2"]
    assert ids(db, blind, "Patient", [("identifier", "http://other|MRN-002")]) == []
    assert ids(db, blind, "Patient", [("identifier:missing", "true")]) == ["p3"]
    # :not also returns resources without any value for the param (p3)
    assert ids(db, blind, "Patient", [("identifier:not", "MRN-001")]) == ["p2", "p3"]
    assert ids(db, blind, "Patient", [("phone", "555-0101")]) == ["p1"]


def test_token_text(db, blind):
    q = lambda v, **kw: ids(db, blind, "Observation", [("code:text", v)], **kw)  # noqa: E731
    assert q("body", expect_python=True) == ["o1", "o2"]
    assert q("BODY he", expect_python=True) == ["o1"]
    assert q("height") == []  # starts-with on the whole text, not any word
    assert q("sentinel code alp,body w") == ["o2", "o3"]


# ------------------------------------------------------------------ string


def test_string(db, blind):
    q = lambda k, v, **kw: ids(db, blind, "Patient", [(k, v)], **kw)  # noqa: E731
    assert q("family", "zyx", expect_python=False) == ["p1"]
    assert q("family", "ZYXWVUTSR") == ["p1"]
    assert q("family", "yxw") == []  # starts-with, not contains
    assert q("name", "mul") == ["p2"]  # accent-insensitive (Müller)
    assert q("name", "jürg") == ["p2"]
    assert q("name", "smith") == ["p3"]  # p4 deleted
    assert q("name", "anna,john") == ["p1", "p3"]
    assert q("address-city", "zurich") == ["p1"]
    assert q("family:exact", "Müller", expect_python=False) == ["p2"]
    assert q("family:exact", "muller") == []
    assert q("family:exact", "Mülle") == []
    assert q("family:contains", "wvu", expect_python=False) == ["p1"]  # 3 chars: exact
    assert q("family:contains", "wvut", expect_python=True) == ["p1"]
    assert q("family:contains", "wvtu") == []  # trigram superset rejected by post-filter
    assert q("family:contains", "ÜLL") == ["p2"]
    assert q("family:contains", "xyz") == []
    assert q("family:contains", "it") == ["p3"]  # < 3 chars: post-filter only
    assert q("family:missing", "false") == ["p1", "p2", "p3"]
    # queries longer than the 32-char prefix cap: capped digest + post-filter
    assert q("name", LONG_TEXT[:40], expect_python=True) == ["p3"]
    assert q("name", LONG_TEXT[:33] + "X") == []


# ------------------------------------------------------------------ date


def test_date_prefixes(db, blind):
    q = lambda v: ids(db, blind, "Patient", [("birthdate", v)])  # noqa: E731
    assert q("1970") == ["p1"]
    assert q("1970-05") == ["p1"]
    assert q("1970-05-12") == ["p1"]
    assert q("1970-05-13") == []
    assert q("1985-06-01") == []  # target 1985 is wider than the search day
    assert q("ge1980") == ["p2"]
    assert q("gt1985-06") == ["p2"]  # year 1985 extends past June 1985
    assert q("lt1960") == ["p3"]
    assert q("le1970-05-12") == ["p1", "p3"]
    assert q("ne1970-05-12") == ["p2", "p3"]
    assert q("sa1980") == ["p2"]
    assert q("sa1985-06") == []
    assert q("eb1960") == ["p3"]
    assert q("ap1970-05-10") == ["p1"]
    assert q("1950,1985") == ["p2", "p3"]
    assert ids(db, blind, "Patient", [("birthdate", "ge1950"), ("birthdate", "lt1980")]) == [
        "p1",
        "p3",
    ]
    assert ids(db, blind, "Patient", [("death-date", "2015-02-03T04:05:06Z")]) == ["p3"]
    assert ids(db, blind, "Patient", [("death-date", "2015-02-03T05:05:06+01:00")]) == ["p3"]
    assert ids(db, blind, "Patient", [("death-date:missing", "true")]) == ["p1", "p2"]


def test_date_periods_and_timezones(db, blind):
    q = lambda v: ids(db, blind, "Observation", [("date", v)])  # noqa: E731
    assert q("2020-03-01") == ["o1"]  # 10:00+01:00 is 09:00Z
    assert q("2020-03-01T09:00:00Z") == ["o1"]
    assert q("2020-03-01T10:00:00Z") == []
    assert q("2019") == ["o3"]  # Period inside the year
    assert q("2019-06") == []  # Period not contained in June
    assert q("lt2019-06") == ["o3"]
    assert q("ge2019-06") == ["o1", "o2", "o3"]
    assert q("eb2020") == ["o3"]
    assert ids(db, blind, "Observation", [("date:missing", "true")]) == ["o4"]
    e = lambda v: ids(db, blind, "Encounter", [("date", v)])  # noqa: E731
    assert e("2020-03-01") == ["e1"]
    assert e("gt2030") == ["e2"]  # open-ended period
    assert e("lt2021") == ["e1"]
    assert e("2022") == []  # open end is not contained in 2022


def test_last_updated_and_id(db, blind):
    q = lambda *p: ids(db, blind, "Patient", list(p))  # noqa: E731
    assert q(("_lastUpdated", "2024-02-01")) == ["p2"]
    assert q(("_lastUpdated", "gt2024-01-15")) == ["p2", "p3"]
    assert q(("_lastUpdated", "le2024-02")) == ["p1", "p2"]
    assert q(("_lastUpdated", "ne2024-02")) == ["p1", "p3"]
    assert q(("_id", "p1,p3")) == ["p1", "p3"]
    assert q(("_id", "p4")) == []  # deleted
    assert q(("_id", "p1"), ("gender", "male")) == []


# ------------------------------------------------------------------ number / quantity


def test_number(db, blind):
    q = lambda v: ids(db, blind, "RiskAssessment", [("probability", v)])  # noqa: E731
    assert q("0.25") == ["ra1"]
    assert q("0.3") == ["ra1"]  # implicit range [0.25, 0.35)
    assert q("0.2") == []  # [0.15, 0.25) excludes 0.25
    assert q("0.250") == ["ra1"]
    assert q("gt0.5") == ["ra2"]
    assert q("lt0.25") == []
    assert q("le0.25") == ["ra1"]
    assert q("ne0.25") == ["ra2"]
    assert q("ap0.8") == ["ra2"]
    assert q("2.5e-1") == ["ra1"]


def test_quantity(db, blind):
    q = lambda v: ids(db, blind, "Observation", [("value-quantity", v)])  # noqa: E731
    assert q("170.5") == ["o1"]
    assert q("170") == []  # [169.5, 170.5)
    assert q("171") == ["o1"]
    assert q("gt100") == ["o1"]
    assert q("lt10|http://unitsofmeasure.org|mmol/L") == ["o3"]
    assert q("5.4|http://unitsofmeasure.org|mmol/L") == ["o3"]
    assert q("lt5.4") == []
    assert q("80||kg") == ["o2"]
    assert q("5.4||mmol per liter") == ["o3"]  # unit text
    assert q("5.4||mmol/L") == ["o3"]  # code
    assert q("80|http://unitsofmeasure.org|g") == []
    assert q("ge80,lt6") == ["o1", "o2", "o3"]
    assert ids(db, blind, "Observation", [("value-quantity:missing", "true")]) == ["o4"]


# ------------------------------------------------------------------ reference


def test_reference(db, blind):
    q = lambda *p: ids(db, blind, "Observation", list(p))  # noqa: E731
    assert q(("subject", "Patient/p1")) == ["o1", "o3"]
    assert q(("patient", "p1")) == ["o1", "o3"]
    assert q(("subject:Patient", "p2")) == ["o2"]
    assert q(("subject", "p2")) == ["o2"]
    assert q(("subject", "Patient/p1/_history/3")) == ["o1", "o3"]
    assert q(("subject", "http://other.example/fhir/Patient/p3")) == ["o4"]
    assert q(("subject", "http://x.example/fhir/Patient/p1")) == ["o1", "o3"]
    assert q(("patient", "p3")) == []  # absolute reference is not local Patient/p3
    assert q(("subject", "Patient/p1,Patient/p2")) == ["o1", "o2", "o3"]
    assert q(("encounter", "Encounter/e1")) == ["o1"]
    assert q(("encounter:missing", "true")) == ["o2", "o3", "o4"]
    assert q(("encounter:missing", "false")) == ["o1"]
    assert ids(db, blind, "Condition", [("patient", "Patient/p2")]) == ["c1"]


def test_chain_and_has(db, blind):
    q = lambda *p: ids(db, blind, "Observation", list(p))  # noqa: E731
    assert q(("subject:Patient.name", "zyx")) == ["o1", "o3"]
    assert q(("patient.birthdate", "ge1980")) == ["o2"]
    assert q(("patient.gender", "male")) == ["o2"]  # o4 -> absolute ref, not chained
    assert q(("subject.family:exact", "Müller")) == ["o2"]
    assert q(("encounter.status", "finished")) == ["o1"]
    assert q(("patient._id", "p2")) == ["o2"]
    assert q(("patient.name", "zyx"), ("code", "8302-2")) == ["o1"]
    p = lambda *x: ids(db, blind, "Patient", list(x))  # noqa: E731
    assert p(("_has:Observation:patient:code", "8302-2")) == ["p1"]
    assert p(("_has:Observation:subject:code", "29463-7")) == ["p2"]
    assert p(("_has:Observation:patient:value-quantity", "gt50")) == ["p1", "p2"]
    assert p(("_has:Condition:patient:code", "44054006")) == ["p2"]
    assert p(("_has:Encounter:patient:date", "2020-03-01"), ("gender", "female")) == ["p1"]
    assert p(("_has:Condition:patient:code", "nope")) == []
    with pytest.raises(BadRequest):
        build_search(
            parse_search("Observation", [("patient.name:contains", "zy")], strict=True), blind
        )


# ------------------------------------------------------------------ sort


def test_sort_sql(db, blind):
    o = lambda s: run(db, blind, "Observation", [("_sort", s)])  # noqa: E731
    assert o("date") == ["o3", "o1", "o2", "o4"]
    assert o("-date") == ["o2", "o1", "o3", "o4"]
    assert o("value-quantity") == ["o3", "o2", "o1", "o4"]
    assert o("-value-quantity") == ["o1", "o2", "o3", "o4"]
    assert o("_id") == ["o1", "o2", "o3", "o4"]
    assert o("-_id") == ["o4", "o3", "o2", "o1"]
    p = lambda *q: run(db, blind, "Patient", list(q))  # noqa: E731
    assert p() == ["p3", "p2", "p1"]  # default: newest _lastUpdated first
    assert p(("_sort", "_lastUpdated")) == ["p1", "p2", "p3"]
    assert p(("_sort", "birthdate")) == ["p3", "p1", "p2"]
    assert p(("_sort", "-birthdate"), ("gender", "male")) == ["p2", "p3"]


def test_sort_python(db, blind):
    req = parse_search("Patient", [("_sort", "family")], strict=True)
    plan = build_search(req, blind)
    assert plan.python_sort is not None and plan.needs_python
    assert run(db, blind, "Patient", [("_sort", "family")]) == ["p2", "p3", "p1"]
    assert run(db, blind, "Patient", [("_sort", "-family")]) == ["p1", "p3", "p2"]
    assert run(db, blind, "Patient", [("_sort", "gender,-birthdate")]) == ["p1", "p2", "p3"]
    assert run(db, blind, "Patient", [("_sort", "identifier")]) == ["p1", "p2", "p3"]


# ------------------------------------------------------------------ no clear text


def test_no_clear_text_in_index(db, blind):
    sentinels = [
        "zyxwvutsr",
        "sentinel-123",
        "mrn-001",
        "müller",
        "muller",
        "zürich",
        "555-0101",
        "body height",
        "sentinel.example",
    ]
    seen = 0
    with db.connect() as conn:
        for table in ALL_TABLES:
            for row in conn.execute(select(table)).mappings():
                for v in row.values():
                    seen += 1
                    blob = (
                        bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview) else str(v)
                    ).casefold()
                    for s in sentinels:
                        assert s not in blob, (table.name, row)
    assert seen > 300
