"""An erasure in one process reaches the key caches of every other process on the
same database (two Node instances stand for two gunicorn workers)."""

from __future__ import annotations

import pytest

from fhir_server.operations.erase import erase_patient
from vault.errors import KeyDestroyed
from vault.keyring import KeyRing

SECRET = "Xochisentinel"


@pytest.fixture
def second(node, tmp_path, database_url):
    from fhir_server.app import create_app
    from fhir_server.node import Node, NodeConfig

    other = Node(NodeConfig(data_dir=node.config.data_dir, database_url=database_url))
    app = create_app({"NODE": other, "TESTING": True})
    yield other, app
    other.close()


def test_an_erasure_on_one_worker_empties_the_others_key_cache(node, second, cx):
    from tests.smart_tokens import authorize, backend_token

    other, app = second
    cx.put(node, {"resourceType": "Patient", "id": "p1", "name": [{"family": SECRET}]})
    cx.put(node, {"resourceType": "Patient", "id": "p1", "gender": "female"})  # version 2
    web = authorize(app.test_client(), backend_token(app))

    first = web.get("/fhir/Patient/p1/_history/1")
    assert first.status_code == 200 and SECRET in first.get_data(as_text=True)
    scope = KeyRing.patient_scope("p1")
    assert other.keyring.data_key(scope, create=False)  # cached in the other worker now

    erase_patient(node.store, "p1")  # in "this" worker

    again = web.get("/fhir/Patient/p1/_history/1")  # the old version is still stored
    assert again.status_code in (404, 410), again.json
    assert SECRET not in again.get_data(as_text=True)
    with pytest.raises(KeyDestroyed):
        other.keyring.data_key(scope, create=False)


def test_refresh_keeps_the_cache_while_nothing_was_destroyed(node, second, cx):
    other, _ = second
    cx.put(node, {"resourceType": "Patient", "id": "p2"})
    scope = KeyRing.patient_scope("p2")
    other.keyring.refresh()
    other.keyring.data_key(scope, create=False)
    other.keyring.refresh()  # no key destroyed since: the cached key stays
    assert scope in other.keyring._cache
    node.keyring.destroy(KeyRing.patient_scope("nobody"))  # any destruction is a new generation
    other.keyring.refresh()
    assert scope not in other.keyring._cache
