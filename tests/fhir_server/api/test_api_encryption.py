"""Encryption at rest and tamper detection: clear-text values never reach the database,
and an altered or swapped sealed row is refused with a 500 integrity OperationOutcome."""

from __future__ import annotations

from sqlalchemy import inspect, select, text, update

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
FAMILY = "Qzxsentinelname"
CODE = "SENTINEL-9137"
SENTINELS = [FAMILY, CODE, FAMILY.lower(), "Qzxsentinel"]


def _write_sentinels(client) -> tuple[str, str]:
    patient = {
        "resourceType": "Patient",
        "name": [{"family": FAMILY, "given": ["Wilhelmina"]}],
        "birthDate": "1970-01-01",
    }
    created = client.post("/fhir/Patient", json=patient, headers=JSON)
    assert created.status_code == 201
    pid = created.get_json()["id"]
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"coding": [{"system": "urn:test:codes", "code": CODE, "display": "Sentinel"}]},
    }
    made = client.post("/fhir/Condition", json=condition, headers=JSON)
    assert made.status_code == 201
    return pid, made.get_json()["id"]


def _raw_sqlite_bytes(node) -> bytes:
    db = node.config.data_dir / "phrx.sqlite3"
    raw = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = db.with_name(db.name + suffix)
        if path.exists():
            raw += path.read_bytes()
    return raw


def _all_table_text(node) -> tuple[str, bytes]:
    """Every row of every table, as PostgreSQL/SQLite text plus the raw bytes of binary columns."""
    tables = inspect(node.engine).get_table_names()
    assert "resource_versions" in tables and "resources" in tables
    texts, blobs = [], []
    with node.engine.connect() as conn:
        for table in tables:
            if node.engine.dialect.name == "postgresql":
                for (row,) in conn.execute(text(f'SELECT t::text FROM "{table}" t')):
                    texts.append(row)
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        blobs.append(bytes(value))
                    else:
                        texts.append(str(value))
    return "\n".join(texts), b"".join(blobs)


def test_sentinels_never_stored_in_clear(client, node):
    pid, cid = _write_sentinels(client)
    # the API still serves and finds them
    assert client.get(f"/fhir/Patient/{pid}").get_json()["name"][0]["family"] == FAMILY
    condition = client.get(f"/fhir/Condition/{cid}").get_json()
    assert condition["code"]["coding"][0]["code"] == CODE
    all_text, blobs = _all_table_text(node)
    assert pid in all_text  # the scan really sees the tables
    for sentinel in SENTINELS:
        assert sentinel not in all_text
        assert sentinel.encode() not in blobs
    if node.engine.dialect.name == "sqlite":
        raw = _raw_sqlite_bytes(node)
        assert pid.encode() in raw  # ids are stored, so the file scan is meaningful
        for sentinel in SENTINELS:
            assert sentinel.encode() not in raw
            assert sentinel.encode("utf-16-le") not in raw


def test_sentinels_are_searchable_through_the_api(client):
    pid, cid = _write_sentinels(client)
    by_family = client.get("/fhir/Patient", query_string={"family": FAMILY}).get_json()
    assert by_family["total"] == 1
    assert by_family["entry"][0]["resource"]["id"] == pid
    by_code = client.get(
        "/fhir/Condition", query_string={"code": f"urn:test:codes|{CODE}"}
    ).get_json()
    assert [e["resource"]["id"] for e in by_code["entry"]] == [cid]
    by_bare_code = client.get("/fhir/Condition", query_string={"code": CODE}).get_json()
    assert by_bare_code["total"] == 1
    assert client.get("/fhir/Patient", query_string={"family": "Nobody"}).get_json()["total"] == 0


def _sealed(node, res_type: str, res_id: str, version_id: int = 1) -> bytes:
    from fhir_server.storage.db import versions

    with node.engine.connect() as conn:
        value = conn.execute(
            select(versions.c.sealed).where(
                versions.c.res_type == res_type,
                versions.c.res_id == res_id,
                versions.c.version_id == version_id,
            )
        ).scalar_one()
    return bytes(value)


def _store_sealed(node, res_type: str, res_id: str, blob: bytes, version_id: int = 1) -> None:
    from fhir_server.storage.db import versions

    with node.engine.begin() as conn:
        result = conn.execute(
            update(versions)
            .where(
                versions.c.res_type == res_type,
                versions.c.res_id == res_id,
                versions.c.version_id == version_id,
            )
            .values(sealed=blob)
        )
        assert result.rowcount == 1


def _integrity_500(response) -> None:
    assert response.status_code == 500
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    diagnostics = body["issue"][0]["diagnostics"]
    assert "integrity" in diagnostics.lower()
    text_body = response.get_data(as_text=True)
    assert FAMILY not in text_body
    assert "Traceback" not in text_body
    assert "name" not in body


def test_altered_byte_is_an_integrity_failure(client, node):
    pid, cid = _write_sentinels(client)
    other = client.post(
        "/fhir/Patient", json={"resourceType": "Patient", "gender": "male"}, headers=JSON
    )
    other_id = other.get_json()["id"]
    blob = bytearray(_sealed(node, "Patient", pid))
    middle = len(blob) // 2
    blob[middle] ^= 0x01
    _store_sealed(node, "Patient", pid, bytes(blob))
    _integrity_500(client.get(f"/fhir/Patient/{pid}"))
    _integrity_500(client.get(f"/fhir/Patient/{pid}/_history/1"))
    # everything else still reads
    assert client.get(f"/fhir/Patient/{other_id}").status_code == 200
    assert client.get(f"/fhir/Condition/{cid}").status_code == 200


def test_last_byte_altered_is_an_integrity_failure(client, node):
    pid, _cid = _write_sentinels(client)
    blob = bytearray(_sealed(node, "Patient", pid))
    blob[-1] ^= 0x80
    _store_sealed(node, "Patient", pid, bytes(blob))
    _integrity_500(client.get(f"/fhir/Patient/{pid}"))


def test_swapped_row_is_an_integrity_failure(client, node):
    first = client.post(
        "/fhir/Organization", json={"resourceType": "Organization", "name": "Alpha"}, headers=JSON
    )
    second = client.post(
        "/fhir/Organization", json={"resourceType": "Organization", "name": "Beta"}, headers=JSON
    )
    a_id, b_id = first.get_json()["id"], second.get_json()["id"]
    _store_sealed(node, "Organization", b_id, _sealed(node, "Organization", a_id))
    response = client.get(f"/fhir/Organization/{b_id}")
    assert response.status_code == 500
    assert "integrity" in response.get_json()["issue"][0]["diagnostics"].lower()
    assert "Alpha" not in response.get_data(as_text=True)
    assert client.get(f"/fhir/Organization/{a_id}").get_json()["name"] == "Alpha"


def test_version_swapped_within_history_is_an_integrity_failure(client, node):
    made = client.post(
        "/fhir/Organization", json={"resourceType": "Organization", "name": "V1"}, headers=JSON
    )
    oid = made.get_json()["id"]
    body = {**made.get_json(), "name": "V2"}
    assert client.put(f"/fhir/Organization/{oid}", json=body, headers=JSON).status_code == 200
    # replay the old version's ciphertext as the current one
    _store_sealed(node, "Organization", oid, _sealed(node, "Organization", oid, 1), version_id=2)
    response = client.get(f"/fhir/Organization/{oid}")
    assert response.status_code == 500
    assert "integrity" in response.get_json()["issue"][0]["diagnostics"].lower()
    assert client.get(f"/fhir/Organization/{oid}/_history/1").get_json()["name"] == "V1"
