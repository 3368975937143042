"""Params that are the union of others (Observation combo-*): no rows of their own,
same answers -- on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from fhir_server.search.params import union_members
from fhir_server.search.query import parse_search
from fhir_server.search.sql import build_search
from fhir_server.search.tables import sidx_hash, sidx_quantity
from fhir_server.storage.db import resources

LOINC = "http://loinc.org"


def _quantity(value, unit):
    return {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}


def _code(code, display):
    return {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display}


OBSERVATIONS = [
    {
        "resourceType": "Observation",
        "id": "bp",
        "status": "final",
        "code": _code("85354-9", "Blood pressure panel"),
        "component": [
            {
                "code": _code("8480-6", "Systolic blood pressure"),
                "valueQuantity": _quantity(120, "mm[Hg]"),
            },
            {
                "code": _code("8462-4", "Diastolic blood pressure"),
                "valueQuantity": _quantity(80, "mm[Hg]"),
            },
        ],
    },
    {
        "resourceType": "Observation",
        "id": "height",
        "status": "final",
        "code": _code("8302-2", "Body height"),
        "valueQuantity": _quantity(170, "cm"),
    },
    {
        "resourceType": "Observation",
        "id": "note",
        "status": "final",
        "code": _code("8867-4", "Heart rate"),
        "valueString": "not measured",
    },
]
BY_ID = {o["id"]: o for o in OBSERVATIONS}


@pytest.fixture
def db(engine, blind, store_resources):
    store_resources(engine, blind, OBSERVATIONS)
    return engine


def search(engine, blind, *pairs) -> list[str]:
    plan = build_search(parse_search("Observation", list(pairs), strict=True), blind)
    with engine.connect() as conn:
        pks = conn.execute(plan.select).scalars().all()
        by_pk = dict(
            conn.execute(
                select(resources.c.pk, resources.c.res_id).where(resources.c.pk.in_(pks))
            ).all()
        )
    found = [BY_ID[by_pk[pk]] for pk in pks]
    if plan.postfilter is not None:
        found = [o for o in found if plan.postfilter(o)]
    return [o["id"] for o in found]


def test_the_combo_params_are_unions_of_their_parts():
    assert union_members("Observation", "combo-code") == ("code", "component-code")
    assert union_members("Observation", "combo-value-quantity") == (
        "component-value-quantity",
        "value-quantity",
    )
    assert union_members("Observation", "code") == ()
    assert union_members("Observation", "subject") == ()  # references: never


def test_no_rows_are_stored_under_a_union_param(db):
    with db.connect() as conn:
        for table in (sidx_hash, sidx_quantity):
            params = set(conn.execute(select(table.c.param).distinct()).scalars())
            assert params and not {p for p in params if p.startswith("combo-")}
        codes = conn.execute(
            select(func.count()).select_from(sidx_hash).where(sidx_hash.c.param == "code")
        ).scalar_one()
    assert codes > 0


def test_token_union(db, blind):
    assert sorted(search(db, blind, ("combo-code", "8480-6"))) == ["bp"]  # component only
    assert sorted(search(db, blind, ("combo-code", f"{LOINC}|8302-2"))) == ["height"]
    assert sorted(search(db, blind, ("combo-code", "8462-4,8302-2"))) == ["bp", "height"]
    # :not excludes a resource that has the code in any member
    assert sorted(search(db, blind, ("combo-code:not", "8480-6"))) == ["height", "note"]
    assert sorted(search(db, blind, ("combo-code:text", "systolic"))) == ["bp"]
    assert search(db, blind, ("combo-code:text", "systolic height")) == []


def test_quantity_union_missing_and_sort(db, blind):
    assert search(db, blind, ("combo-value-quantity", "gt150")) == ["height"]
    assert search(db, blind, ("combo-value-quantity", "lt100")) == ["bp"]  # diastolic 80
    assert search(db, blind, ("combo-value-quantity:missing", "true")) == ["note"]
    assert sorted(search(db, blind, ("combo-value-quantity:missing", "false"))) == [
        "bp",
        "height",
    ]
    ordered = search(db, blind, ("_sort", "combo-value-quantity"))
    assert ordered == ["bp", "height", "note"]  # by the smallest value, none last
    assert search(db, blind, ("_sort", "-combo-value-quantity")) == ["height", "bp", "note"]
