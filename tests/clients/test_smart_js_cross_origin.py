"""The npm SMART JS client (``fhirclient``, pinned 2.6.3) in headless Chromium, the app
served from ANOTHER ORIGIN than the node (tests/clients/app_site.py): a standalone launch
by a patient and an EHR launch from the node's portal by a practitioner, each reading the
Patient, refreshing its token (a public client: no client_id on the refresh) and reading
again, and fetching the node's OpenID configuration. Every FHIR and SMART call the page
makes is cross-origin, so the browser needs the node's CORS answers.

Each launch runs the browser once (a module fixture); each test checks one part of it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest

from tests.clients.app_site import BUNDLE, NODE_MODULES
from tests.clients.conftest import ALICE, BOB, ENCOUNTER, FAMILIES
from tests.clients.live_node import PASSWORD, UserAgent

SCRIPT = NODE_MODULES.parent / "tests" / "clients" / "js" / "smart_browser.cjs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (apt-get install chromium); browser test skipped",
    ),
    pytest.mark.skipif(
        not (NODE_MODULES / "puppeteer-core").is_dir() or not BUNDLE.is_file(),
        reason="npm packages fhirclient / puppeteer-core absent (npm ci)",
    ),
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
]


def _run_browser(tmp_path, url, username) -> dict:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    done = subprocess.run(
        ["node", str(SCRIPT), CHROMIUM, str(profile), url, username, PASSWORD],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
        env={"NODE_PATH": str(NODE_MODULES), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["title"] == "DONE", outcome
    return json.loads(outcome["out"])


@pytest.fixture(scope="module")
def standalone(live_node, app_site, tmp_path_factory):
    url = f"{app_site.origin}/app/standalone.html?iss={live_node.base}"
    return _run_browser(tmp_path_factory.mktemp("standalone"), url, "alice")


@pytest.fixture(scope="module")
def ehr(live_node, app_site, tmp_path_factory):
    portal = UserAgent(live_node, "drbob")
    portal.sign_in()
    launch = portal.ehr_launch(BOB, ENCOUNTER, f"{app_site.origin}/app/launch.html")
    assert launch["iss"] == live_node.base
    assert launch["url"].startswith(f"{app_site.origin}/app/launch.html?")
    return _run_browser(tmp_path_factory.mktemp("ehr"), launch["url"], "drbob")


def _ok(run: dict, *steps: str) -> None:
    for name in steps:
        assert name in run["steps"], f"{name}: {run['errors'].get(name, 'not reached')}"


def test_app_and_node_are_different_origins(live_node, app_site, standalone):
    app, node = urlsplit(app_site.origin), urlsplit(live_node.origin)
    assert (app.scheme, app.hostname, app.port) != (node.scheme, node.hostname, node.port)
    # the control: this browser refuses a cross-origin answer without CORS headers
    assert "control-without-cors" not in standalone["steps"]
    assert "Failed to fetch" in standalone["errors"]["control-without-cors"]


def test_standalone_launch_reads_the_patient(standalone, live_node, app_site):
    _ok(standalone, "ready", "read")
    assert standalone["origin"] == app_site.origin
    assert standalone["serverUrl"] == live_node.base
    assert standalone["tokenPatient"] == ALICE
    assert standalone["banner"] is True
    assert standalone["read"] == {"id": ALICE, "family": FAMILIES[ALICE]}


def test_standalone_refresh_then_read_again(standalone):
    _ok(standalone, "ready")
    assert standalone["hasRefresh"] is True  # offline_access was granted
    _ok(standalone, "refresh", "read-after-refresh")
    assert standalone["newToken"] is True
    assert standalone["reread"] == {"id": ALICE, "family": FAMILIES[ALICE]}


def test_openid_configuration_from_another_origin(standalone, live_node):
    _ok(standalone, "ready", "openid-configuration")
    assert standalone["oidc"] == {
        "issuer": live_node.base,
        "token": f"{live_node.base}/auth/token",
        "jwks": f"{live_node.base}/auth/jwks",
    }


def test_ehr_launch_reads_the_patient_in_context(ehr, app_site):
    _ok(ehr, "ready", "read")
    assert ehr["origin"] == app_site.origin
    assert ehr["tokenPatient"] == BOB
    assert ehr["encounter"] == ENCOUNTER
    assert ehr["banner"] is False
    assert ehr["read"] == {"id": BOB, "family": FAMILIES[BOB]}


def test_ehr_launch_refresh_then_read_again(ehr):
    _ok(ehr, "ready")
    assert ehr["hasRefresh"] is True
    _ok(ehr, "refresh", "read-after-refresh")
    assert ehr["newToken"] is True
    assert ehr["reread"] == {"id": BOB, "family": FAMILIES[BOB]}
