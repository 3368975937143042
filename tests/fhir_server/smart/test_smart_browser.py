"""The npm SMART JS client (``fhirclient``) in headless Chromium via ``puppeteer-core``:
an EHR launch and a standalone launch, each reading the Patient."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
NODE_MODULES = REPO / "node_modules"
SCRIPT = Path(__file__).with_name("js") / "smart_browser.cjs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PASSWORD = "correct horse battery"
SCOPE = "openid fhirUser patient/*.rs"

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<script src="/app/fhir-client.js"></script></head><body><pre id="out"></pre>
<script>{script}</script></body></html>"""
_READY = """FHIR.oauth2.ready()
  .then(c => c.patient.read().then(p => ({id: p.id, family: p.name[0].family,
        tokenPatient: c.state.tokenResponse.patient,
        banner: c.state.tokenResponse.need_patient_banner})))
  .then(r => { document.getElementById("out").textContent = JSON.stringify(r);
               document.title = "OK"; })
  .catch(e => { document.getElementById("out").textContent = String(e);
                document.title = "ERR"; });"""

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (apt-get install chromium); browser test skipped",
    ),
    pytest.mark.skipif(
        not (NODE_MODULES / "puppeteer-core").is_dir()
        or not (NODE_MODULES / "fhirclient").is_dir(),
        reason="npm packages fhirclient / puppeteer-core absent (npm ci)",
    ),
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
]


@pytest.fixture
def js_live(smart_app, smart):
    """The node plus a same-origin SMART app under /app/ (launch, standalone, index)."""
    from flask import Response

    from fhir_server.serving import ThreadedServer

    bundle = (NODE_MODULES / "fhirclient" / "build" / "fhir-client.js").read_bytes()
    pages = {
        "launch.html": _PAGE.format(
            title="launch",
            script=(
                'FHIR.oauth2.authorize({clientId: "js-app", scope: "launch ' + SCOPE + '", '
                'redirectUri: "/app/index.html", pkceMode: "required"});'
            ),
        ),
        "standalone.html": _PAGE.format(
            title="standalone",
            script=(
                'FHIR.oauth2.authorize({iss: new URLSearchParams(location.search).get("iss"), '
                'clientId: "js-app", scope: "launch/patient ' + SCOPE + '", '
                'redirectUri: "/app/index.html", pkceMode: "required"});'
            ),
        ),
        "index.html": _PAGE.format(title="index", script=_READY),
    }

    def serve(name):
        if name == "fhir-client.js":
            return Response(bundle, mimetype="application/javascript")
        if name not in pages:
            return Response(status=404)
        return Response(pages[name], mimetype="text/html")

    smart_app.add_url_rule("/app/<name>", "js_app", serve)
    server = ThreadedServer(smart_app, port=0).start()
    origin = f"http://127.0.0.1:{server.port}"
    smart.clients.add("js-app", "public", redirect_uris=[f"{origin}/app/index.html"])
    yield origin
    server.stop()


def _run_browser(tmp_path, url, username):
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    result = subprocess.run(
        ["node", str(SCRIPT), CHROMIUM, str(profile), url, username, PASSWORD],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
        env={"NODE_PATH": str(NODE_MODULES), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["title"] == "OK", outcome["out"]
    return json.loads(outcome["out"])


def test_js_client_ehr_launch(js_live, smart, tmp_path):
    launch = smart.launches.issue("p1", "e1", "drbob")
    url = f"{js_live}/app/launch.html?iss={js_live}/fhir&launch={launch}"
    result = _run_browser(tmp_path, url, "drbob")
    assert result == {"id": "p1", "family": "Alpha", "tokenPatient": "p1", "banner": False}


def test_js_client_standalone_launch(js_live, tmp_path):
    url = f"{js_live}/app/standalone.html?iss={js_live}/fhir"
    result = _run_browser(tmp_path, url, "alice")
    assert result == {"id": "p1", "family": "Alpha", "tokenPatient": "p1", "banner": True}
