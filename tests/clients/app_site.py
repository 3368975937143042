"""A SMART app's own web site, on another origin than the node: a tiny static server
on 127.0.0.2 (another loopback host, so another origin than 127.0.0.1 whatever the
ports) serving the npm ``fhirclient`` bundle and three pages (EHR launch, standalone
launch, redirect target)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO / "node_modules"
BUNDLE = NODE_MODULES / "fhirclient" / "build" / "fhir-client.js"
CLIENT_ID = "js-app"
SCOPE = "openid fhirUser patient/*.rs offline_access"

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<script src="/app/fhir-client.js"></script></head><body><pre id="out"></pre>
<script>{script}</script></body></html>"""

_AUTHORIZE = """FHIR.oauth2.authorize({{
  {iss}clientId: "{client}", scope: "{scope}",
  redirectUri: "/app/index.html", pkceMode: "required"}});"""

# Each step records what it saw, or its error under out.errors[step]; a failed step does
# not stop the next ones (all but "ready" need only the client).
_READY = """(async () => {
  const out = {steps: [], errors: {}};
  const step = async (name, fn) => {
    try { const v = await fn(); out.steps.push(name); return v; }
    catch (e) { out.errors[name] = String(e && e.message || e); }
  };
  const c = await step("ready", () => FHIR.oauth2.ready());
  if (c) {
    out.origin = location.origin;
    out.serverUrl = c.state.serverUrl;
    out.tokenPatient = c.state.tokenResponse.patient;
    out.banner = c.state.tokenResponse.need_patient_banner;
    out.encounter = c.encounter.id || null;
    out.hasRefresh = Boolean(c.state.tokenResponse.refresh_token);
    const p = await step("read", () => c.patient.read());
    if (p) out.read = {id: p.id, family: p.name[0].family};
    const before = c.state.tokenResponse.access_token;
    await step("refresh", () => c.refresh());
    out.newToken = c.state.tokenResponse.access_token !== before;
    const again = await step("read-after-refresh", () => c.request("Patient/" + c.patient.id));
    if (again) out.reread = {id: again.id, family: again.name[0].family};
    const oidc = await step("openid-configuration", () =>
      fetch(c.state.serverUrl + "/.well-known/openid-configuration")
        .then(r => { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); }));
    if (oidc) out.oidc = {issuer: oidc.issuer, token: oidc.token_endpoint, jwks: oidc.jwks_uri};
  }
  // The control: a server sending no CORS headers, on yet another origin, must be refused.
  await step("control-without-cors", () => fetch("{control}").then(r => r.text()));
  document.getElementById("out").textContent = JSON.stringify(out);
  document.title = "DONE";
})();"""


def pages(control_url: str) -> dict[str, str]:
    iss = 'iss: new URLSearchParams(location.search).get("iss"),\n  '
    return {
        "launch.html": _PAGE.format(
            title="launch",
            script=_AUTHORIZE.format(iss="", client=CLIENT_ID, scope=f"launch {SCOPE}"),
        ),
        "standalone.html": _PAGE.format(
            title="standalone",
            script=_AUTHORIZE.format(iss=iss, client=CLIENT_ID, scope=f"launch/patient {SCOPE}"),
        ),
        "index.html": _PAGE.format(title="index", script=_READY.replace("{control}", control_url)),
    }


class AppSite:
    """``ThreadingHTTPServer`` on 127.0.0.2 (127.0.0.1 with another port where the
    kernel refuses 127.0.0.2): either way another origin than the node's."""

    def __init__(self):
        self.control = ThreadingHTTPServer(
            ("127.0.0.1", 0), _handler({"/data.json": (b"{}", "application/json")})
        )
        control_url = f"http://127.0.0.1:{self.control.server_address[1]}/data.json"
        files = {
            f"/app/{name}": (html.encode(), "text/html")
            for name, html in pages(control_url).items()
        }
        if BUNDLE.is_file():
            files["/app/fhir-client.js"] = (BUNDLE.read_bytes(), "application/javascript")

        self.server = ThreadingHTTPServer((_host(), 0), _handler(files))
        host, port = self.server.server_address[:2]
        self.origin = f"http://{host}:{port}"
        self.threads = [
            threading.Thread(target=server.serve_forever, daemon=True)
            for server in (self.server, self.control)
        ]

    @property
    def redirect_uri(self) -> str:
        return f"{self.origin}/app/index.html"

    def start(self) -> AppSite:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        if not self.threads[0].is_alive():
            return
        for server, thread in zip((self.server, self.control), self.threads, strict=True):
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


def _handler(files: dict[str, tuple[bytes, str]]):
    """Static files, no CORS headers."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body, mime = files.get(self.path.split("?")[0], (b"not found", "text/plain"))
            self.send_response(200 if mime != "text/plain" else 404)
            self.send_header("Content-Type", mime)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


def _host() -> str:
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.2", 0))
        return "127.0.0.2"
    except OSError:
        return "127.0.0.1"
