"""npm ``fhir-kit-client`` (pinned 2.0.3) against a real node, as a backend service: CRUD,
batch and transaction Bundles, instance history, JSON Patch, compartment search, paging
and system search. ``js/fhir_kit.cjs`` runs every step once and prints what it saw; each
test here checks one step."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.clients.app_site import NODE_MODULES

SCRIPT = Path(__file__).with_name("js") / "fhir_kit.cjs"

pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    pytest.mark.skipif(
        not (NODE_MODULES / "fhir-kit-client").is_dir(),
        reason="npm package fhir-kit-client absent (npm ci)",
    ),
]


@pytest.fixture(scope="module")
def kit(live_node, tmp_path_factory):
    tag = uuid.uuid4().hex[:10]
    done = subprocess.run(
        ["node", str(SCRIPT), live_node.base, live_node.backend_token(), tag],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            "NODE_PATH": str(NODE_MODULES),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(tmp_path_factory.mktemp("kit-home")),
        },
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _step(kit, name) -> dict:
    result = dict(kit[name])
    assert result.pop("ok"), f"{name}: {result.get('error')}"
    return result


def test_crud(kit):
    crud = _step(kit, "crud")
    assert crud["createdVersion"] == "1"
    assert crud["readFamily"].startswith("Kit")
    assert (crud["updatedVersion"], crud["updatedGender"]) == ("2", "other")
    assert crud["vreadGender"] == "female"  # version 1 as it was
    assert crud["afterDelete"] == 410


def test_json_patch(kit):
    patch = _step(kit, "patch")
    assert patch["version"] == "3"
    assert (patch["gender"], patch["birthDate"]) == ("male", "1960-07-08")
    assert patch["family"].startswith("Kit")  # untouched by the patch


def test_instance_history(kit):
    history = _step(kit, "history")
    assert history["type"] == "history"
    assert history["versions"] == ["2", "1"]  # newest first (taken before the patch)


def test_batch(kit):
    crud = _step(kit, "crud")
    batch = _step(kit, "batch")
    assert batch["type"] == "batch-response"
    assert batch["statuses"] == ["201", "200", "404"]  # entries succeed or fail alone
    assert batch["readId"] == crud["id"]


def test_transaction_resolves_urn_uuid_references(kit):
    tx = _step(kit, "transaction")
    assert tx["type"] == "transaction-response"
    assert tx["statuses"] == ["201", "201"]
    assert tx["subject"] == f"Patient/{tx['patient']}"


def test_compartment_search(kit):
    crud = _step(kit, "crud")
    found = _step(kit, "compartment")
    assert found["type"] == "searchset"
    assert found["subjects"] == [f"Patient/{crud['id']}"]
    assert found["extra"] in found["ids"]
    assert len(found["ids"]) == 2  # the batch's Observation and this one


def test_paging_with_next_page(kit):
    paging = _step(kit, "paging")
    assert [len(page) for page in paging["pages"]] == [2, 1]
    assert sorted(i for page in paging["pages"] for i in page) == sorted(paging["created"])


def test_system_search_by_id(kit):
    crud = _step(kit, "crud")
    found = _step(kit, "system-search")
    assert found["ids"] == [f"Patient/{crud['id']}"]
