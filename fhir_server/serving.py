"""Serve the app with gunicorn (production WSGI server), or in a thread for tests/demo."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from pathlib import Path

from werkzeug.serving import make_server

from fhir_server.errors import BadRequest


def check_loopback(host: str) -> None:
    """Serve loopback clients only until consent enforcement lands.

    SMART tokens are checked on every request, but releasing patient data to
    other parties also needs the patient's consent decision (not yet wired),
    so the node is not exposed beyond this machine (a TLS proxy would sit in
    front of it anyway).
    """
    try:
        loopback = ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        loopback = False
    if not loopback:
        raise BadRequest(
            f"Refusing to bind {host}: consent enforcement is not in place yet, "
            "so this node listens on 127.0.0.1 (loopback) only."
        )


def configure_logging(data_dir: Path) -> None:
    handler = logging.FileHandler(data_dir / "logs" / "phrx.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("phrx")
    root.setLevel(logging.INFO)
    if not any(isinstance(h, logging.FileHandler) for h in root.handlers):
        root.addHandler(handler)


def serve_gunicorn(app_factory, host: str, port: int, workers: int, threads: int = 4) -> None:
    from gunicorn.app.base import BaseApplication

    class _App(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", threads)
            self.cfg.set("accesslog", None)
            self.cfg.set("timeout", 120)

        def load(self):
            return app_factory()

    _App().run()


class ThreadedServer:
    """A WSGI server in a background thread (demo and tests), stopped by ``stop()``."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.server = make_server(host, port, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> ThreadedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
