"""A real node for the client tests: ``phrx serve`` (gunicorn, a dev chain) in its own
process group, provisioned through the ``phrx`` CLI, plus what a user's browser does on
the node's sign-in, approval and portal pages (with ``requests``).

Everything goes over HTTP or through the ``phrx`` command, as an operator and the
clients would: no Flask test client and no in-process Node.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

PHRX = Path(sys.executable).parent / "phrx"
PASSWORD = "correct horse battery"
PY_REDIRECT = "https://py-app.example/callback"
FHIR_JSON = "application/fhir+json"
SERVE = [str(PHRX), "serve", "--host", "127.0.0.1", "--workers", "1", "--chain", "dev"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def query_of(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


class _Form(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inputs: list[dict] = []
        self.options: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            self.inputs.append(a)
        elif tag == "option":
            self.options.append(a.get("value", ""))


def parse_form(html: str) -> _Form:
    form = _Form()
    form.feed(html)
    return form


@dataclass
class LiveNode:
    """One ``phrx serve`` process on 127.0.0.1 with its own data dir."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    log: Path | None = None
    totp_secrets: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        return f"{self.origin}/fhir"

    def env(self) -> dict:
        # HOME: gunicorn's control socket (~/.gunicorn) stays this node's own
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HOME": str(self.data_dir.parent)}
        for name in list(env):
            if name.startswith("PHRX_"):
                env.pop(name)  # the options given here, nothing from the caller's shell
        return env

    def phrx(self, *args: str) -> str:
        """Run ``phrx ARGS --data-dir DATA``; its stdout (fails the test on an error)."""
        done = subprocess.run(
            [str(PHRX), *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"phrx {' '.join(args)}: {done.stderr[-2000:]}"
        return done.stdout

    # -- the process ------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        self.log = self.data_dir.parent / "serve.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*SERVE, "--port", str(self.port), "--data-dir", str(self.data_dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,  # its own process group: gunicorn, workers, anvil
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"phrx serve exited early:\n{self.log_tail()}")
            try:
                r = requests.get(f"{self.base}/metadata", timeout=5)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"phrx serve did not answer in {timeout} s:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """End the process group started above (only it), SIGKILL if SIGTERM is ignored."""
        if self.proc is None or self.proc.returncode is not None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the leader's pid
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        with contextlib.suppress(ProcessLookupError):  # a worker that outlived the master
            os.killpg(pgid, signal.SIGKILL)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log else ""

    # -- provisioning through the CLI -----------------------------------------------

    def add_user(self, username: str, role: str, fhir_user: str, totp: bool = False) -> None:
        pw = self.data_dir.parent / f"{username}.password"
        pw.write_text(PASSWORD + "\n")
        args = ["users", "add", "--username", username, "--role", role]
        args += ["--fhir-user", fhir_user, "--password-file", str(pw)]
        out = self.phrx(*args, *(["--totp"] if totp else []))
        if totp:
            self.totp_secrets[username] = re.search(r"secret[^:]*: ([A-Z2-7]+)", out).group(1)

    def add_client(self, client_id: str, kind: str, *extra: str) -> str:
        return self.phrx("clients", "add", "--client-id", client_id, "--kind", kind, *extra)

    def add_backend(self) -> None:
        """The backend service of tests/smart_tokens.py (its key signs the assertions)."""
        from tests.smart_tokens import BACKEND_CLIENT, backend_key

        jwks = self.data_dir.parent / "backend.jwks.json"
        jwks.write_text(json.dumps({"keys": [backend_key().as_dict(private=False)]}))
        self.add_client(
            BACKEND_CLIENT, "backend", "--jwks-file", str(jwks), "--scope", "system/*.cruds"
        )

    # -- tokens and HTTP --------------------------------------------------------------

    def backend_token(self, scope: str = "system/*.cruds") -> str:
        """SMART Backend Services: client_credentials with an RS384 private_key_jwt."""
        from tests.smart_tokens import ASSERTION_TYPE, client_assertion

        url = f"{self.base}/auth/token"
        form = {
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(url),
        }
        r = requests.post(url, data=form, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def backend_session(self) -> requests.Session:
        s = requests.Session()
        s.headers.update(
            {
                "Authorization": f"Bearer {self.backend_token()}",
                "Accept": FHIR_JSON,
                "Content-Type": FHIR_JSON,
            }
        )
        return s

    def totp(self, username: str) -> str:
        from fhir_server.smart.credentials import current_step, totp_at

        return totp_at(self.totp_secrets[username], current_step())


class UserAgent:
    """A user's browser on the node's pages, driven with ``requests``."""

    def __init__(self, node: LiveNode, username: str):
        self.node = node
        self.username = username
        self.session = requests.Session()

    def sign_in(self, next_url: str = "") -> requests.Response:
        login = f"{self.node.base}/auth/login"
        page = self.session.get(login, params={"next": next_url} if next_url else None, timeout=30)
        assert page.status_code == 200, page.text
        form = {i["name"]: i.get("value", "") for i in parse_form(page.text).inputs}
        form.update(username=self.username, password=PASSWORD)
        if self.username in self.node.totp_secrets:
            form["totp"] = self.node.totp(self.username)
        done = self.session.post(login, data=form, allow_redirects=False, timeout=30)
        assert done.status_code in (200, 302), done.text  # 401: wrong password or code
        return done

    def csrf(self) -> str:
        page = self.session.get(f"{self.node.base}/auth/login", timeout=30)
        return {i["name"]: i.get("value", "") for i in parse_form(page.text).inputs}["csrf_token"]

    def approve(self, authorize_url: str, patient: str | None = None) -> str:
        """Open ``authorize_url``, sign in, tick every scope, Allow; the redirect URL."""
        first = self.session.get(authorize_url, allow_redirects=False, timeout=30)
        assert first.status_code == 302, first.text
        location = urljoin(authorize_url, first.headers["Location"])
        if "/auth/login" in urlsplit(location).path:
            signed = self.sign_in(query_of(location)["next"])
            assert signed.status_code == 302, signed.text
            location = urljoin(authorize_url, signed.headers["Location"])
        page = self.session.get(location, allow_redirects=False, timeout=30)
        assert page.status_code == 200, page.text
        form = parse_form(page.text)
        data = [(i["name"], i.get("value", "")) for i in form.inputs if i.get("type") == "hidden"]
        data += [(i["name"], i["value"]) for i in form.inputs if i.get("type") == "checkbox"]
        if form.options or patient:
            data.append(("patient", patient or form.options[0]))
        data.append(("decision", "approve"))
        done = self.session.post(
            f"{self.node.base}/auth/authorize", data=data, allow_redirects=False, timeout=30
        )
        assert done.status_code == 302, done.text
        return done.headers["Location"]

    def ehr_launch(self, patient: str, encounter: str, launch_uri: str) -> dict:
        """The node's portal: POST /fhir/auth/launch as the signed-in user."""
        form = {
            "csrf_token": self.csrf(),
            "patient": patient,
            "encounter": encounter,
            "launch_uri": launch_uri,
        }
        r = self.session.post(f"{self.node.base}/auth/launch", data=form, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()
