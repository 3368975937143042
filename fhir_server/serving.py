"""Serve the app with gunicorn (production WSGI server), or in a thread for tests/demo."""

from __future__ import annotations

import gc
import ipaddress
import logging
import socket
import threading
from pathlib import Path

from werkzeug.serving import WSGIRequestHandler, make_server


def check_loopback(host: str) -> str | None:
    """A warning when ``host`` is not a loopback address, else None.

    Any address may be bound now that every request is decided by SMART scopes
    and the patient's consent, but this server speaks plain HTTP: bearer tokens
    and health data must not cross a network unencrypted, so a TLS-terminating
    proxy has to sit in front of a non-loopback bind.
    """
    try:
        loopback = ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        loopback = False
    if loopback:
        return None
    return (
        f"WARNING: binding {host} over plain HTTP; put a TLS-terminating proxy in "
        "front of this node (tokens and health data must not travel unencrypted)."
    )


def configure_logging(data_dir: Path) -> None:
    handler = logging.FileHandler(data_dir / "logs" / "phrx.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("phrx")
    root.setLevel(logging.INFO)
    if not any(isinstance(h, logging.FileHandler) for h in root.handlers):
        root.addHandler(handler)


# Allocations between young-generation collections in a serving worker (CPython's
# default is 700). Requests allocate tens of thousands of short-lived dicts that
# reference counting frees; collecting every 700 of them only rescans survivors.
SERVING_GC_THRESHOLD = 10_000


def settle_heap() -> None:
    """Call once a worker has loaded everything it keeps (models, app, node).

    ``gc.freeze()`` moves those objects out of the collector's view: the R4B model
    classes and the app are hundreds of thousands of long-lived objects that every
    full collection would otherwise walk again, and Bundle ingestion triggers many
    (measured: ~10-20% of ingest CPU). Cycles created later are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(SERVING_GC_THRESHOLD, *gc.get_threshold()[1:])


def serve_gunicorn(app_factory, host: str, port: int, workers: int, threads: int = 4) -> None:
    from gunicorn.app.base import BaseApplication

    from fhir_server.idle_first_worker import FhirThreadWorker, IdleFirstThreadWorker

    # Every worker answers the requests gunicorn refuses (414, 431, 400) with an
    # OperationOutcome instead of an HTML page. With siblings, a busy worker leaves
    # new connections to an idle one; alone, it takes them as gthread does.
    worker_class = IdleFirstThreadWorker if workers > 1 else FhirThreadWorker

    class _App(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", worker_class)
            self.cfg.set("threads", threads)
            self.cfg.set("accesslog", None)
            self.cfg.set("timeout", 120)

        def load(self):
            return app_factory()

    _App().run()


def _request_handler(log_file: Path):
    """werkzeug's request handler with its request log in ``log_file`` (plain text)
    instead of stderr (with colour codes)."""

    class FileLoggingHandler(WSGIRequestHandler):
        def log(self, type: str, message: str, *args) -> None:
            line = f"{self.address_string()} [{self.log_date_time_string()}] {message % args}"
            with log_file.open("a", encoding="utf-8") as out:
                out.write(line + "\n")

    return FileLoggingHandler


class ThreadedServer:
    """A WSGI server in a background thread (demo and tests), stopped by ``stop()``;
    ``request_log``: a file for its request log (else werkzeug's, on stderr)."""

    def __init__(
        self, app, host: str = "127.0.0.1", port: int = 0, request_log: Path | None = None
    ):
        handler = _request_handler(request_log) if request_log is not None else None
        self.server = make_server(host, port, app, threaded=True, request_handler=handler)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> ThreadedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
