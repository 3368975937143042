"""One real node for every client test of the session: ``phrx serve`` in its own process
group (gunicorn, a dev chain), provisioned with the ``phrx`` CLI, seeded over HTTP by a
backend service, and stopped (that process group only) at the end.

Seed: patients ``cl-alice`` (user ``alice``, five Observations) and ``cl-bob`` (encounter
``cl-enc``), both consenting to treatment by Practitioner/d1 (``drbob``) and
Practitioner/d2 (``drtotp``, who signs in with a TOTP code). Clients: ``py-app`` and
``js-app`` (public, PKCE), the backend service of tests/smart_tokens.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.app_site import CLIENT_ID as JS_CLIENT
from tests.clients.app_site import AppSite
from tests.clients.live_node import PHRX, PY_REDIRECT, LiveNode
from tests.consent_builders import privacy_consent

PY_CLIENT = "py-app"
ALICE = "cl-alice"
BOB = "cl-bob"
ENCOUNTER = "cl-enc"
OBSERVATIONS = 5
FAMILIES = {ALICE: "Clientalice", BOB: "Clientbob"}
HERE = Path(__file__).resolve().parent
_RUNNING: list = []  # the node and the app site, stopped after the last client test


def pytest_runtest_teardown(item, nextitem):
    """Stop the node once no client test is left, not at the end of the whole session
    (a session fixture would leave it running, anchoring, through every other test)."""
    if not _RUNNING:
        return
    rest = item.session.items[item.session.items.index(nextitem) :] if nextitem else []
    if not any(HERE in other.path.parents for other in rest):
        while _RUNNING:
            _RUNNING.pop().stop()


@pytest.fixture(scope="session")
def app_site():
    """The JS app's static site, another origin than the node."""
    site = AppSite().start()
    _RUNNING.append(site)
    yield site
    site.stop()


@pytest.fixture(scope="session")
def live_node(tmp_path_factory, app_site):
    if not PHRX.exists():
        pytest.skip(f"{PHRX} is not installed (pip install -e .)")
    node = LiveNode(tmp_path_factory.mktemp("clients") / "node")
    node.add_user("alice", "patient", f"Patient/{ALICE}")
    node.add_user("drbob", "practitioner", "Practitioner/d1")
    node.add_user("drtotp", "practitioner", "Practitioner/d2", totp=True)
    node.add_client(PY_CLIENT, "public", "--redirect-uri", PY_REDIRECT, "--name", "Python app")
    node.add_client(JS_CLIENT, "public", "--redirect-uri", app_site.redirect_uri)
    node.add_backend()
    _RUNNING.append(node)
    try:
        node.start()
        _seed(node)
        yield node
    finally:
        node.stop()


def _seed(node: LiveNode) -> None:
    entries = []
    for pid, family in FAMILIES.items():
        patient = {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [{"system": "urn:phrx:clients", "value": pid}],
            "name": [{"family": family, "given": [pid.split("-")[1].title()]}],
        }
        consent = privacy_consent(
            pid,
            cid=f"treat-{pid}",
            actors=(("Practitioner/d1",), ("Practitioner/d2",)),
            period=("2020-01-01", "2099-12-31"),
        )
        entries += [patient, consent]
    entries.append(
        {
            "resourceType": "Encounter",
            "id": ENCOUNTER,
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": f"Patient/{BOB}"},
        }
    )
    for n in range(OBSERVATIONS):
        entries.append(
            {
                "resourceType": "Observation",
                "id": f"cl-obs-{n}",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "subject": {"reference": f"Patient/{ALICE}"},
                "effectiveDateTime": f"2024-01-0{n + 1}",
                "valueQuantity": {"value": 60 + n, "unit": "/min"},
            }
        )
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in entries
        ],
    }
    r = node.backend_session().post(node.base, json=bundle, timeout=60)
    assert r.status_code == 200, r.text


@pytest.fixture
def backend_headers(live_node) -> dict:
    """A fresh backend-services token (system/*.cruds) for one test."""
    return {"Authorization": f"Bearer {live_node.backend_token()}"}
