"""Fixtures for the HTTP-level node tests (tests/fhir_server/api, tests/fhir_server/cli).

These tests cover the FHIR R4 core semantics (http.html) with authentication on:
every ``app.test_client()`` of ``app`` / ``make_app`` is signed in as a SMART
backend service (``system/*.cruds``, client_credentials + private_key_jwt, see
tests/smart_tokens.py). ``live_server`` serves the parametrised app (SQLite or
PostgreSQL) through a real threaded WSGI server on a free port; ``live_headers``
holds the ``Authorization`` header of a token obtained from that server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _core_app(node):
    from fhir_server.app import create_app
    from tests.smart_tokens import bearer_client_class

    app = create_app({"NODE": node, "TESTING": True})
    app.test_client_class = bearer_client_class()
    return app


@pytest.fixture
def make_app():
    """``make_app(node)`` -> a Flask app over ``node`` whose test clients are signed in."""
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
def live_headers(app, live_server):
    """``{"Authorization": "Bearer …"}`` for ``live_server`` (a backend-services token
    requested over HTTP from the served token endpoint)."""
    from tests.smart_tokens import backend_token_http

    return {"Authorization": f"Bearer {backend_token_http(app, live_server)}"}


@pytest.fixture
def repo_root() -> Path:
    return REPO
