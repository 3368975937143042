"""CORS on every FHIR and SMART endpoint (issue #15): a SMART app served from another
origin must be able to read what its token allows, preflights included; never with
credentials; the cookie-session pages stay closed to other origins."""

from __future__ import annotations

import pytest

from tests.smart_tokens import authorize, backend_token

APP_ORIGIN = "http://127.0.0.2:9000"


@pytest.fixture
def cors_client(sqlite_node):
    from fhir_server.app import create_app

    app = create_app({"NODE": sqlite_node, "TESTING": True})
    client = authorize(app.test_client(), backend_token(app))
    r = client.put(
        "/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1", "name": [{"family": "A"}]}
    )
    assert r.status_code == 201, r.text
    client.raw = app.test_client()  # no token: what a preflight or a stranger sends
    return client


def _preflight(client, path, method="GET", headers="authorization"):
    return client.open(
        path,
        method="OPTIONS",
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/fhir/Patient/p1", "GET"),
        ("/fhir/Patient/p1", "PUT"),
        ("/fhir/Patient/p1", "PATCH"),
        ("/fhir/Patient/p1", "DELETE"),
        ("/fhir/Patient", "POST"),
        ("/fhir/metadata", "GET"),
        ("/fhir", "POST"),
        ("/fhir/Patient/p1/$everything", "GET"),
        ("/fhir/auth/token", "POST"),
        ("/fhir/.well-known/smart-configuration", "GET"),
        ("/fhir/no/such/path", "GET"),
    ],
)
def test_preflight_answers_without_a_token(cors_client, path, method):
    headers = "authorization, content-type, prefer, if-match, if-none-exist"
    r = _preflight(cors_client.raw, path, method, headers)
    assert r.status_code == 204, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert method in r.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "prefer", "if-match", "if-none-exist"} <= allowed
    assert "Access-Control-Allow-Credentials" not in r.headers


def test_answers_carry_allow_origin_and_expose_headers(cors_client):
    origin = {"Origin": APP_ORIGIN}
    metadata = cors_client.raw.get("/fhir/metadata", headers=origin)
    assert metadata.headers["Access-Control-Allow-Origin"] == "*"
    read = cors_client.get("/fhir/Patient/p1", headers=origin)
    assert read.status_code == 200
    assert read.headers["Access-Control-Allow-Origin"] == "*"
    exposed = {h.strip() for h in read.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Location", "ETag", "Content-Location"} <= exposed
    created = cors_client.post(
        "/fhir/Patient", json={"resourceType": "Patient", "active": True}, headers=origin
    )
    assert created.status_code == 201
    assert created.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in created.headers


def test_errors_carry_allow_origin_so_the_app_can_read_them(cors_client):
    """A 401 the browser hides looks like a network failure to the app."""
    unauthorized = cors_client.raw.get("/fhir/Patient/p1", headers={"Origin": APP_ORIGIN})
    assert unauthorized.status_code == 401
    assert unauthorized.headers["Access-Control-Allow-Origin"] == "*"
    token = cors_client.raw.post("/fhir/auth/token", data={"grant_type": "nonsense"})
    assert token.status_code == 400
    assert token.headers["Access-Control-Allow-Origin"] == "*"


def test_interactive_pages_are_not_opened_to_other_origins(cors_client):
    for path in ("/fhir/auth/login", "/fhir/auth/authorize"):
        r = cors_client.raw.get(path, headers={"Origin": APP_ORIGIN})
        assert "Access-Control-Allow-Origin" not in r.headers, path
        r = _preflight(cors_client.raw, path, "POST")
        assert "Access-Control-Allow-Origin" not in r.headers, path


def test_configured_origins_are_echoed_and_others_refused(tmp_path):
    from fhir_server.app import create_app
    from fhir_server.node import Node, NodeConfig

    node = Node(NodeConfig(data_dir=tmp_path / "data", cors_origins=(APP_ORIGIN,)))
    try:
        client = create_app({"NODE": node, "TESTING": True}).test_client()
        listed = client.get("/fhir/metadata", headers={"Origin": APP_ORIGIN})
        assert listed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        assert "Origin" in listed.headers["Vary"]
        other = client.get("/fhir/metadata", headers={"Origin": "http://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers
        assert "Origin" in other.headers["Vary"]
        preflight = _preflight(client, "/fhir/Patient/p1")
        assert preflight.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    finally:
        node.close()


def test_serve_takes_cors_origins_from_the_command_line():
    from click.testing import CliRunner

    from fhir_server.cli.serve import serve

    result = CliRunner().invoke(serve, ["--help"])
    assert "--cors-origin" in result.output
    param = next(p for p in serve.params if p.name == "cors_origins")
    assert param.multiple and "PHRX_CORS_ORIGINS" in param.envvar
