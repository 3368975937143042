"""TOTP second factor for practitioners, and the operator CLI."""

from __future__ import annotations

import time

from click.testing import CliRunner

from fhir_server.cli import main
from fhir_server.smart import credentials


def test_totp_rfc6238_vector():
    import base64

    secret = base64.b32encode(b"12345678901234567890").decode()
    assert credentials.totp_at(secret, 59 // 30) == "287082"  # RFC 6238 appendix B, 6 digits
    assert credentials.totp_at(secret, 1111111109 // 30) == "081804"


def test_practitioner_login_needs_totp(flow, smart):
    secret = smart.users.enable_totp("drbob")
    assert flow.login("drbob").status_code == 401  # password alone is not enough
    step = credentials.current_step()
    wrong = flow.login(
        "drbob", totp="000000" if credentials.totp_at(secret, step) != "000000" else "111111"
    )
    assert wrong.status_code == 401
    code = credentials.totp_at(secret, credentials.current_step())
    params, _ = flow.authorize_params(scope="launch/patient patient/*.rs")
    location = flow.approve(params, username="drbob", totp=code, patient="p2")
    assert "code=" in location
    # the same one-time code cannot be used twice
    flow.client.delete_cookie("session", path="/fhir/auth")
    assert flow.login("drbob", totp=code).status_code == 401


def test_patients_do_not_get_totp(smart):
    import pytest

    with pytest.raises(ValueError):
        smart.users.enable_totp("alice")


def _run(args, input=None):
    result = CliRunner().invoke(main, args, input=input)
    return result


def test_cli_users_clients_token(tmp_path):
    data = tmp_path / "node"
    pw = tmp_path / "pw.txt"
    pw.write_text("s3cret-password\n")
    r = _run(
        [
            "users",
            "add",
            "--data-dir",
            str(data),
            "--username",
            "carol",
            "--role",
            "practitioner",
            "--fhir-user",
            "Practitioner/c1",
            "--password-file",
            str(pw),
        ]
    )
    assert r.exit_code == 0, r.output
    r = _run(
        [
            "users",
            "add",
            "--data-dir",
            str(data),
            "--username",
            "dave",
            "--role",
            "patient",
            "--fhir-user",
            "Patient/d1",
        ],
        input="another-password\nanother-password\n",
    )
    assert r.exit_code == 0, r.output
    r = _run(["users", "list", "--data-dir", str(data)])
    assert "carol\tpractitioner\tPractitioner/c1" in r.output
    assert "dave\tpatient\tPatient/d1" in r.output
    assert "s3cret" not in r.output
    r = _run(
        [
            "users",
            "add",
            "--data-dir",
            str(data),
            "--username",
            "eve",
            "--role",
            "patient",
            "--fhir-user",
            "Practitioner/x",
            "--password-file",
            str(pw),
        ]
    )
    assert r.exit_code == 1

    r = _run(
        [
            "clients",
            "add",
            "--data-dir",
            str(data),
            "--client-id",
            "web",
            "--kind",
            "symmetric",
            "--redirect-uri",
            "https://web.example/cb",
        ]
    )
    assert r.exit_code == 0, r.output
    assert "client secret (shown once)" in r.output
    r = _run(
        [
            "clients",
            "add",
            "--data-dir",
            str(data),
            "--client-id",
            "spa",
            "--kind",
            "public",
            "--redirect-uri",
            "https://spa.example/cb",
        ]
    )
    assert r.exit_code == 0, r.output
    r = _run(["clients", "list", "--data-dir", str(data)])
    assert "spa\tpublic" in r.output and "web\tsymmetric" in r.output
    r = _run(["clients", "remove", "--data-dir", str(data), "--client-id", "spa"])
    assert r.exit_code == 0
    assert "spa" not in _run(["clients", "list", "--data-dir", str(data)]).output

    r = _run(
        [
            "token",
            "--data-dir",
            str(data),
            "--scope",
            "system/*.cruds",
            "--base-url",
            "http://localhost/fhir",
        ]
    )
    assert r.exit_code == 0, r.output
    access = r.output.strip()

    from fhir_server.app import create_app
    from fhir_server.node import Node, NodeConfig

    node = Node(NodeConfig(data_dir=data))
    try:
        app = create_app({"NODE": node, "TESTING": True})
        client = app.test_client()
        auth = {"Authorization": f"Bearer {access}"}
        put = client.put(
            "/fhir/Patient/d1", headers=auth, json={"resourceType": "Patient", "id": "d1"}
        )
        assert put.status_code in (200, 201), put.text
        verifier = app.extensions["phrx.smart"].verifier
        ctx = verifier.authenticate(f"Bearer {access}", "http://localhost/fhir")
        assert ctx.client_id == "phrx-operator"
        assert ctx.expires_at - time.time() <= 300
    finally:
        node.close()

    r = _run(
        [
            "token",
            "--data-dir",
            str(data),
            "--scope",
            "user/*.rs",
            "--user",
            "dave",
            "--base-url",
            "http://localhost/fhir",
        ]
    )
    assert r.exit_code == 0, r.output
    node = Node(NodeConfig(data_dir=data))
    try:
        app = create_app({"NODE": node, "TESTING": True})
        ctx = app.extensions["phrx.smart"].verifier.authenticate(
            f"Bearer {r.output.strip()}", "http://localhost/fhir"
        )
        assert ctx.user == "Patient/d1" and ctx.patient == "d1"
        assert ctx.user_patient == "d1"
    finally:
        node.close()
