"""The anchoring proof where standard clients look for it (issue #15):
``GET Provenance?target=Type/id`` and ``_revinclude=Provenance:target``, decided by
the gate like a read of the target (in-process EVM chain, SQLite and PostgreSQL)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.consent_builders import bearer, put


# Store-agnostic semantics run on SQLite; the tests marked BOTH_STORES run on
# PostgreSQL as well (the suite's 15-minute budget: the rest adds nothing there).
@pytest.fixture(params=["sqlite"])
def database_url(request):
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_url")


BOTH_STORES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


JSON = {"Accept": "application/fhir+json"}


@pytest.fixture
def anchored(tmp_path, database_url):
    from fhir_server.app import create_app
    from fhir_server.node import Node, NodeConfig

    node = Node(
        NodeConfig(
            data_dir=tmp_path / "data",
            database_url=database_url,
            chain="memory",
            anchor_worker=False,
        )
    )
    app = create_app({"NODE": node, "TESTING": True})
    for pid in ("p1", "p2"):
        put(node, {"resourceType": "Patient", "id": pid})
        put(node, _observation(f"o-{pid}", pid, "final"))
    put(node, _observation("o-p1", "p1", "amended"))  # version 2
    system = {**bearer(app, scope="system/*.cruds"), **JSON}
    client = app.test_client()
    assert client.post("/fhir/$anchor", headers=system).status_code == 200
    put(node, _observation("o-p1", "p1", "corrected"))  # version 3: not anchored yet
    patient = bearer(
        app,
        username="alice",
        fhir_user="Patient/p1",
        scope="patient/*.rs",
        context={"patient": "p1"},
    )
    yield SimpleNamespace(client=client, system=system, patient={**patient, **JSON})
    node.close()


def _observation(res_id: str, patient: str, status: str) -> dict:
    return {
        "resourceType": "Observation",
        "id": res_id,
        "status": status,
        "code": {"text": "glucose"},
        "subject": {"reference": f"Patient/{patient}"},
    }


def _targets(bundle: dict, mode: str = "match") -> list[str]:
    return [
        e["resource"]["target"][0]["reference"]
        for e in bundle.get("entry", [])
        if e["resource"]["resourceType"] == "Provenance" and e["search"]["mode"] == mode
    ]


@BOTH_STORES
def test_provenance_by_target_lists_every_anchored_version(anchored):
    r = anchored.client.get("/fhir/Provenance?target=Observation/o-p1", headers=anchored.system)
    assert r.status_code == 200, r.get_json()
    assert _targets(r.json) == ["Observation/o-p1/_history/1", "Observation/o-p1/_history/2"]
    assert r.json["total"] == 2  # version 3 waits for its batch
    proof = r.json["entry"][0]["resource"]
    op = anchored.client.get(
        "/fhir/Observation/o-p1/_history/1/$provenance", headers=anchored.system
    )
    assert proof == op.json  # the same proof $provenance gives


def test_provenance_by_versioned_and_absolute_target(anchored):
    one = anchored.client.get(
        "/fhir/Provenance?target=Observation/o-p1/_history/2", headers=anchored.system
    ).json
    assert _targets(one) == ["Observation/o-p1/_history/2"]
    absolute = anchored.client.get(
        "/fhir/Provenance?target=http://localhost/fhir/Observation/o-p2", headers=anchored.system
    ).json
    assert _targets(absolute) == ["Observation/o-p2/_history/1"]


def test_provenance_pages(anchored):
    first = anchored.client.get(
        "/fhir/Provenance?target=Observation/o-p1&_count=1", headers=anchored.system
    ).json
    assert first["total"] == 2 and _targets(first) == ["Observation/o-p1/_history/1"]
    nxt = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = anchored.client.get(nxt.removeprefix("http://localhost"), headers=anchored.system)
    assert _targets(second.json) == ["Observation/o-p1/_history/2"]


def test_revinclude_provenance_target(anchored):
    r = anchored.client.get(
        "/fhir/Observation?_id=o-p1,o-p2&_revinclude=Provenance:target", headers=anchored.system
    )
    assert r.status_code == 200, r.get_json()
    # The current versions: o-p1's version 3 is not anchored yet, o-p2's version 1 is.
    assert _targets(r.json, "include") == ["Observation/o-p2/_history/1"]


@BOTH_STORES
def test_a_patient_finds_only_the_proofs_of_what_it_may_read(anchored):
    own = anchored.client.get("/fhir/Provenance?target=Observation/o-p1", headers=anchored.patient)
    assert own.status_code == 200 and len(_targets(own.json)) == 2
    other = anchored.client.get(
        "/fhir/Provenance?target=Observation/o-p2", headers=anchored.patient
    )
    assert other.status_code == 200
    assert _targets(other.json) == [] and other.json["total"] == 0


@pytest.mark.parametrize("target", ["NoSuchType/x", "Observation", "Observation/o-p1/x/y/z"])
def test_malformed_targets_are_400(anchored, target):
    r = anchored.client.get(f"/fhir/Provenance?target={target}", headers=anchored.system)
    assert r.status_code == 400, r.get_json()
    assert r.json["resourceType"] == "OperationOutcome"


def test_absent_target_is_an_empty_bundle(anchored):
    r = anchored.client.get("/fhir/Provenance?target=Observation/nowhere", headers=anchored.system)
    assert r.status_code == 200 and r.json["total"] == 0


def test_anchor_provenance_is_not_reported_as_an_unknown_parameter(anchored):
    for url in ("/fhir/Observation?_id=o-p2", "/fhir?_id=o-p2"):
        r = anchored.client.get(f"{url}&_anchor-provenance=true", headers=anchored.system)
        assert r.status_code == 200, r.get_json()
        assert _targets(r.json, "include") == ["Observation/o-p2/_history/1"]
        assert not [e for e in r.json["entry"] if e["search"]["mode"] == "outcome"], url


def test_other_criteria_select_among_stored_provenances_only(anchored):
    """``_id`` is a criterion: the issued proofs (not stored) cannot match it."""
    r = anchored.client.get(
        "/fhir/Provenance?target=Observation/o-p1&_id=no-such-provenance", headers=anchored.system
    )
    assert r.status_code == 200 and r.json["total"] == 0


def test_the_fullurl_of_an_issued_provenance_reads_it(anchored):
    bundle = anchored.client.get(
        "/fhir/Provenance?target=Observation/o-p1/_history/1", headers=anchored.system
    ).json
    entry = bundle["entry"][0]
    path = entry["fullUrl"].removeprefix("http://localhost")
    r = anchored.client.get(path, headers=anchored.system)
    assert r.status_code == 200, r.get_json()
    assert r.json == entry["resource"]
    # Read like the version it proves: a patient who may not read o-p2 gets a 404
    # exactly like a missing Provenance; its own proofs it reads.
    other = (
        anchored.client.get("/fhir/Provenance?target=Observation/o-p2", headers=anchored.system)
        .json["entry"][0]["fullUrl"]
        .removeprefix("http://localhost")
    )
    hidden = anchored.client.get(other, headers=anchored.patient)
    missing = anchored.client.get("/fhir/Provenance/anchor-0000-1", headers=anchored.patient)
    assert hidden.status_code == missing.status_code == 404
    assert anchored.client.get(path, headers=anchored.patient).status_code == 200
    assert (
        anchored.client.get("/fhir/Provenance/anchor-x-y", headers=anchored.system).status_code
        == 404
    )
