"""$anchor, $verify (stored and external copies), Provenance in Bundles, tampering.

Runs on SQLite and PostgreSQL with the in-process EVM chain (``chain="memory"``); the
real-anvil paths are covered by test_batcher_durability.py and test_cli_chain.py.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, update

from anchoring import journal
from fhir_server.storage.db import versions
from tests.smart_tokens import authorize, backend_token

JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def chain_node(tmp_path, database_url):
    from fhir_server.node import Node, NodeConfig

    node = Node(
        NodeConfig(
            data_dir=tmp_path / "data",
            database_url=database_url,
            chain="memory",
            anchor_worker=False,  # flushed explicitly via $anchor
            anchor_country="TW",
        )
    )
    yield node
    node.close()


@pytest.fixture
def api(chain_node):
    from fhir_server.app import create_app

    app = create_app({"NODE": chain_node, "TESTING": True})
    return authorize(app.test_client(), backend_token(app))  # system/*.cruds backend service


def _params(body: dict) -> dict:
    return {
        p["name"]: next(v for k, v in p.items() if k.startswith("value"))
        for p in body["parameter"]
        if "part" not in p
    }


def _create(api, family="Chen") -> str:
    r = api.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "name": [{"family": family}]},
        headers=JSON,
    )
    assert r.status_code == 201
    return r.headers["Location"].split("/")[-3]


def test_journal_row_commits_with_the_write_or_not_at_all(chain_node) -> None:
    body = {"resourceType": "Patient", "id": "p-rollback", "active": True}
    with pytest.raises(RuntimeError), chain_node.store.unit_of_work(prepare=[body]) as w:
        w.create(body, res_id="p-rollback")
        w.flush()
        raise RuntimeError("abort the transaction")
    with chain_node.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(journal.journal)).scalar() == 0
    with chain_node.store.unit_of_work(prepare=[body]) as w:
        w.create(body, res_id="p-rollback")
    assert journal.counts(chain_node.engine)["waiting"] == 1
    assert journal.version_anchor(chain_node.engine, "Patient", "p-rollback", 1).state is None


def test_anchor_then_verify_current_and_version(api) -> None:
    pid = _create(api)
    before = _params(api.get(f"/fhir/Patient/{pid}/$verify").json)
    assert before["result"] is False and before["reasonCode"] == "not-anchored"
    flushed = api.post("/fhir/$anchor").json
    top = _params(flushed)
    # the Patient, the AuditEvent of its creation and that of the backend token's
    # issue: audit events are anchored too
    assert top["batches"] == 1 and top["leafCount"] == 3
    batch = {
        p["name"]: next(v for k, v in p.items() if k.startswith("value"))
        for p in flushed["parameter"][2]["part"]
    }
    assert batch["txHash"].startswith("0x") and batch["blockNumber"] > 0
    assert _params(api.post("/fhir/$anchor").json)["batches"] == 0  # nothing waits
    # second version, anchored in a second batch
    patient = api.get(f"/fhir/Patient/{pid}").json
    patient["active"] = True
    assert api.put(f"/fhir/Patient/{pid}", json=patient, headers=JSON).status_code == 200
    api.post("/fhir/$anchor")
    for url in (f"/fhir/Patient/{pid}/$verify", f"/fhir/Patient/{pid}/_history/1/$verify"):
        got = _params(api.get(url).json)
        assert got["result"] is True, got
        assert got["authority"] == "TW" and got["confirmations"] >= 1
        for name in ("leaf", "root", "batch", "txHash", "blockNumber", "blockTime"):
            assert name in got
    v1 = _params(api.get(f"/fhir/Patient/{pid}/_history/1/$verify").json)
    assert v1["root"] == batch["root"] and v1["target"].endswith("/_history/1")
    assert api.get(f"/fhir/Patient/{pid}/_history/9/$verify").status_code == 404
    assert api.get("/fhir/Patient/nope/$verify").status_code == 404


def test_operations_route_before_generic_rest(api) -> None:
    rules = {r.rule: r.endpoint for r in api.application.url_map.iter_rules()}
    assert rules["/fhir/<res_type>/<res_id>/$verify"] == "integrity.verify_current"
    adapter = api.application.url_map.bind("localhost")
    assert adapter.match("/fhir/Patient/x/$verify")[0] == "integrity.verify_current"
    assert adapter.match("/fhir/$verify", method="POST")[0] == "integrity.verify_copy"
    assert adapter.match("/fhir/$anchor", method="POST")[0] == "integrity.anchor_now"
    meta = api.get("/fhir/metadata").json
    names = {op["name"] for op in meta["rest"][0]["operation"]}
    assert {"anchor", "verify"} <= names


def _tamper_ciphertext(node, pid: str) -> None:
    with node.engine.begin() as conn:
        sealed = conn.execute(
            select(versions.c.sealed).where(versions.c.res_id == pid)
        ).scalar_one()
        flipped = bytes(sealed[:-1]) + bytes([sealed[-1] ^ 1])
        conn.execute(update(versions).where(versions.c.res_id == pid).values(sealed=flipped))


def test_tampered_row_fails_verify_and_read(api, chain_node) -> None:
    pid = _create(api, "Tamper")
    api.post("/fhir/$anchor")
    assert _params(api.get(f"/fhir/Patient/{pid}/$verify").json)["result"] is True
    _tamper_ciphertext(chain_node, pid)  # directly in SQLite / PostgreSQL
    got = _params(api.get(f"/fhir/Patient/{pid}/$verify").json)
    assert got["result"] is False and got["reasonCode"] == "integrity-failure"
    read = api.get(f"/fhir/Patient/{pid}")
    assert read.status_code == 500 and "Integrity failure" in read.get_data(as_text=True)


def test_resealed_content_change_is_a_hash_mismatch(api, chain_node) -> None:
    """An insider with the node key re-seals altered content: decryption passes,
    the anchored hash does not."""
    pid = _create(api, "Insider")
    api.post("/fhir/$anchor")
    store = chain_node.store
    row = store.version_row("Patient", pid, 1)
    altered = store.open_version(row)
    altered["name"] = [{"family": "Forged"}]
    from fhir_server.storage.sealing import dumps

    sealed = store.sealer.seal("Patient", pid, 1, row.key_scope, dumps(altered))
    with chain_node.engine.begin() as conn:
        conn.execute(update(versions).where(versions.c.res_id == pid).values(sealed=sealed))
    got = _params(api.get(f"/fhir/Patient/{pid}/$verify").json)
    assert got["result"] is False and got["reasonCode"] == "hash-mismatch"


def test_bundle_download_with_provenance_verifies_externally(api) -> None:
    pids = [_create(api, f"Fam{i}") for i in range(3)]
    api.post("/fhir/$anchor")
    bundle = api.get("/fhir/Patient?_anchor-provenance=true").json
    provs = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"
    ]
    assert len(provs) == 3
    assert {p["target"][0]["reference"] for p in provs} == {f"Patient/{p}/_history/1" for p in pids}
    ext = {e["url"] for e in provs[0]["extension"][0]["extension"]}
    assert {"root", "path", "batch", "txHash", "blockNumber", "chainId", "contract"} <= ext
    plain = api.get("/fhir/Patient").json
    assert all(e["resource"]["resourceType"] != "Provenance" for e in plain["entry"])
    ok = api.post("/fhir/$verify", data=json.dumps(bundle), headers=JSON).json
    assert ok["parameter"][0] == {"name": "result", "valueBoolean": True}
    assert sum(1 for p in ok["parameter"] if p["name"] == "entry") == 3
    # an edited copy fails, naming the reason
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "Patient":
            e["resource"]["name"][0]["family"] = "Edited"
            break
    bad = api.post("/fhir/$verify", data=json.dumps(bundle), headers=JSON).json
    assert bad["parameter"][0]["valueBoolean"] is False
    reasons = [_params({"parameter": p["part"]}) for p in bad["parameter"] if p["name"] == "entry"]
    assert sorted(r.get("reasonCode", "ok") for r in reasons) == ["hash-mismatch", "ok", "ok"]
    # a single copy without Provenance is checked against the node's journal
    one = api.get(f"/fhir/Patient/{pids[1]}").json
    assert _params(api.post("/fhir/$verify", json=one, headers=JSON).json)["result"] is True
    prov = api.get(f"/fhir/Patient/{pids[1]}/_history/1/$provenance").json
    assert prov["resourceType"] == "Provenance"


def test_anchor_without_chain_is_503(node) -> None:
    from fhir_server.app import create_app

    app = create_app({"NODE": node, "TESTING": True})
    client = authorize(app.test_client(), backend_token(app))
    assert client.post("/fhir/$anchor").status_code == 503
