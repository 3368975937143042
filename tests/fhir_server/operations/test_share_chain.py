"""$share to a foreign node: its key from the chain's AuthorityRegistry (in-process EVM),
configuration as the fallback, and the disclosure audited in the share's transaction."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import delete, func, select

from consent.tables import released_keys
from federation.authority_keys import chain_lookup, parse_encryption_key
from fhir_server.operations.share import release_context
from fhir_server.search.runner import run_search
from fhir_server.storage.audit_log import HEAD_SETTING, verify_log
from fhir_server.storage.db import node_settings, versions
from vault.errors import VaultError
from vault.keyring import KeyRing
from vault.release import (
    generate_rsa_keypair,
    generate_x25519_keypair,
    public_key_to_jwk,
    public_key_to_pem,
    unwrap_x25519,
)

JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def chain_node(tmp_path, database_url):
    from fhir_server.node import Node, NodeConfig

    config = NodeConfig(
        data_dir=tmp_path / "tw",
        database_url=database_url,
        chain="memory",
        anchor_worker=False,
        anchor_country="TW",
    )
    node = Node(config)
    yield node
    node.close()


@pytest.fixture
def world(chain_node, cx):
    from fhir_server.app import create_app

    ph_private, ph_public = generate_x25519_keypair()
    _, configured_public = generate_x25519_keypair()
    client = chain_node.anchoring.chain.client()
    jwk = json.dumps(public_key_to_jwk(ph_public)).encode()
    added = client.propose_add(
        client.w3.eth.accounts[1], "PH", "https://ph.example/fhir", "{}", jwk
    )
    assert added.executed  # the only authority's vote is a quorum of one

    configured = {"PH": generate_x25519_keypair()[1], "TH": configured_public}
    app = create_app({"NODE": chain_node, "TESTING": True})
    app.config["PHRX_NODE_PUBLIC_KEY"] = configured.get
    cx.put(chain_node, {"resourceType": "Patient", "id": "p1"})
    token = cx.bearer(
        app,
        username="alice",
        fhir_user="Patient/p1",
        scope="patient/*.cruds",
        context={"patient": "p1"},
    )

    return SimpleNamespace(
        node=chain_node,
        web=app.test_client(),
        headers={**JSON, **token},
        ph=ph_private,
        th_public=configured_public,
    )


def share_with(country: str) -> dict:
    recipient = {"system": f"https://{country.lower()}.example/prc", "value": "0042"}
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "recipient", "valueIdentifier": recipient},
            {"name": "recipientNode", "valueCode": country},
        ],
    }


def released(node, country: str) -> list:
    with node.engine.connect() as conn:
        query = select(released_keys).where(released_keys.c.recipient_node == country)
        return conn.execute(query).all()


def disclosures(node) -> list[dict]:
    found = run_search(node.store, "AuditEvent", [("subtype", "disclosure"), ("patient", "p1")])
    return found.matches


def test_the_key_is_released_to_the_key_the_chain_registers(world):
    shared = world.web.post("/fhir/Patient/p1/$share", json=share_with("PH"), headers=world.headers)
    assert shared.status_code == 201, shared.json
    (row,) = released(world.node, "PH")
    scope = KeyRing.patient_scope("p1")
    key = unwrap_x25519(row.wrapped, world.ph, release_context(scope, row.consent_id, "PH"))
    assert key == world.node.keyring.data_key(scope, create=False)  # not the configured key
    (event,) = disclosures(world.node)
    assert f"Consent/{row.consent_id}" in {e["what"].get("reference") for e in event["entity"]}
    everything = run_search(world.node.store, "AuditEvent", [("_count", "1000")]).matches
    assert verify_log(world.node.store, everything).ok


def test_a_country_not_on_chain_falls_back_to_configuration(world):
    shared = world.web.post("/fhir/Patient/p1/$share", json=share_with("TH"), headers=world.headers)
    assert shared.status_code == 201, shared.json
    (row,) = released(world.node, "TH")
    from vault.release import jwk_thumbprint

    assert row.recipient_kid == jwk_thumbprint(public_key_to_jwk(world.th_public))


def test_a_disclosure_that_cannot_be_audited_releases_nothing(world):
    with world.node.engine.begin() as conn:
        conn.execute(delete(node_settings).where(node_settings.c.name == HEAD_SETTING))
    shared = world.web.post("/fhir/Patient/p1/$share", json=share_with("PH"), headers=world.headers)
    assert shared.status_code == 500
    assert shared.json["resourceType"] == "OperationOutcome"
    assert released(world.node, "PH") == []
    with world.node.engine.connect() as conn:
        consents = conn.execute(
            select(func.count()).select_from(versions).where(versions.c.res_type == "Consent")
        ).scalar_one()
    assert consents == 0


def test_encryption_key_encodings_on_chain():
    _, x_public = generate_x25519_keypair()
    raw = x_public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    for encoded in (
        raw,
        json.dumps(public_key_to_jwk(x_public)).encode(),
        public_key_to_pem(x_public),
    ):
        assert parse_encryption_key(encoded).public_bytes_raw() == raw
    assert parse_encryption_key(b"") is None
    with pytest.raises(VaultError):
        parse_encryption_key(b"\x01\x02")
    _, rsa_public = generate_rsa_keypair()
    assert parse_encryption_key(public_key_to_pem(rsa_public)).key_size == rsa_public.key_size


def test_an_unreachable_chain_or_unusable_key_uses_the_fallback():
    from anchoring.chain import AuthorityInfo

    configured = object()

    def down():
        raise ConnectionError("chain down")

    assert chain_lookup(down, lambda c: configured)("PH") is configured
    garbage = [AuthorityInfo("0x0", "PH", "u", "{}", b"not a key")]
    assert chain_lookup(lambda: garbage, lambda c: configured)("PH") is configured
    assert chain_lookup(lambda: garbage)("PH") is None
