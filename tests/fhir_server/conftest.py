"""Fixtures for the HTTP-level node tests (tests/fhir_server/api, tests/fhir_server/cli).

These tests cover the FHIR R4 core semantics (http.html), so the app is built
with the SMART bearer-token layer switched off (``PHRX_AUTH=False``); that
layer is tested on its own. ``live_server`` serves the parametrised app
(SQLite or PostgreSQL) through a real threaded WSGI server on a free port.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _core_app(node):
    from fhir_server.app import create_app

    return create_app({"NODE": node, "TESTING": True, "PHRX_AUTH": False})


@pytest.fixture
def make_app():
    """``make_app(node)`` -> a Flask app over ``node`` without the auth layer."""
    return _core_app


@pytest.fixture
def app(node):
    return _core_app(node)


@pytest.fixture
def live_server(app):
    """Base URL (``http://127.0.0.1:<port>/fhir``) of ``app`` served in a thread."""
    from fhir_server.serving import ThreadedServer

    server = ThreadedServer(app, port=0).start()
    yield f"http://127.0.0.1:{server.port}/fhir"
    server.stop()


@pytest.fixture
def repo_root() -> Path:
    return REPO
