"""``phrx import-mhb FILE --patient ID`` into a data dir (SQLite and PostgreSQL) and
through ``--url`` (requests routed into the Flask test client)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from fhir_server.cli import main
from mhb_import.synthetic import dumps_json, scenario_export

FIXTURES = Path(__file__).parent / "fixtures"
SCENARIO = FIXTURES / "scenario_patient.json"


def mint(app, scope: str = "system/*.cruds") -> str:
    smart = app.extensions["phrx.smart"].service
    client = smart.clients.operator().client_id
    issued = smart.tokens.issue(
        "http://localhost/fhir", "operator", client, None, scope, 300, False
    )
    return issued["access_token"]


@pytest.fixture
def data_dir(node):
    """The shared node's data dir / database, holding Patient p1."""
    with node.store.unit_of_work(prepare=[{"resourceType": "Patient", "id": "p1"}]) as w:
        w.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"})
    args = ["--data-dir", str(node.config.data_dir)]
    if node.config.database_url:
        args += ["--database-url", node.config.database_url]
    return args


def run(*args):
    return CliRunner().invoke(main, ["import-mhb", *map(str, args)], catch_exceptions=False)


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("phrx: error:")
    return lines[0]


def test_import_into_data_dir_and_reimport(data_dir, node):
    result = run(SCENARIO, "--patient", "p1", *data_dir)
    assert result.exit_code == 0, result.output
    assert "imported json (plain)" in result.output
    assert "Condition" in result.output and "Provenance/" in result.output
    conditions = [
        line for line in result.output.splitlines() if line.strip().startswith("Condition")
    ]
    assert conditions and "created      5" in conditions[0]
    again = run(SCENARIO, "--patient", "p1", *data_dir, "--json")
    assert again.exit_code == 0, again.output
    body = json.loads(again.output)
    values = {p["name"]: p.get("valueInteger") for p in body["parameter"]}
    assert values["created"] == 0 and values["updated"] == 0 and values["unchanged"] > 0
    from fhir_server.search.runner import run_search

    assert run_search(node.store, "Condition", [("patient", "p1")]).total == 5


def test_zip_password_from_option(data_dir, tmp_path):
    import pyzipper

    path = tmp_path / "export.zip"
    with pyzipper.AESZipFile(path, "w", encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(b"s3cret")
        zf.writestr("export.json", SCENARIO.read_bytes())
    line = one_error_line(run(path, "--patient", "p1", *data_dir, "--password", "wrong"))
    assert "wrong password" in line
    ok = run(path, "--patient", "p1", *data_dir, "--password", "s3cret")
    assert ok.exit_code == 0, ok.output
    assert "(zip-aes)" in ok.output


def test_errors_are_one_line(data_dir, tmp_path):
    assert "no such file" in one_error_line(
        run(tmp_path / "nope.json", "--patient", "p1", *data_dir)
    )
    assert "not known" in one_error_line(run(SCENARIO, "--patient", "nobody", *data_dir))
    hostile = tmp_path / "x.xml"
    hostile.write_bytes(b'<!DOCTYPE a [<!ENTITY b "c">]><myhealthbank/>')
    assert "DOCTYPE" in one_error_line(run(hostile, "--patient", "p1", *data_dir))
    usage = run(SCENARIO, "--patient", "p1")
    assert usage.exit_code == 2 and "--data-dir or --url" in usage.output


def test_skipped_rows_and_unknown_fields_are_printed(data_dir, tmp_path):
    doc = scenario_export()
    doc["myhealthbank"]["bdata"]["r1"][0]["r1.5"] = "2017"
    doc["myhealthbank"]["bdata"]["r1"][1]["r1.77"] = "?"
    path = tmp_path / "e.json"
    path.write_bytes(dumps_json(doc))
    result = run(path, "--patient", "p1", *data_dir)
    assert result.exit_code == 0, result.output
    assert "skipped 1 row(s):" in result.output
    assert "r1[0]: missing or invalid visit date" in result.output
    assert "unknown fields: r1.77 (1)" in result.output


@pytest.fixture
def via_flask(node, monkeypatch):
    """Route the CLI's requests.post into a Flask test client of ``node``."""
    import requests

    from fhir_server.app import create_app

    app = create_app({"NODE": node, "TESTING": True})
    client = app.test_client()
    token = mint(app)
    r = client.put(
        "/fhir/Patient/p1",
        json={"resourceType": "Patient", "id": "p1"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code in (200, 201)

    def post(url, params=None, data=None, headers=None, timeout=None):
        path = url.removeprefix("http://localhost")
        response = client.post(path, query_string=params, data=io.BytesIO(data), headers=headers)
        return SimpleNamespace(
            status_code=response.status_code,
            reason=response.status,
            json=lambda: json.loads(response.get_data()),
        )

    monkeypatch.setattr(requests, "post", post)
    return SimpleNamespace(app=app, token=token)


def test_import_through_url(via_flask):
    url = "http://localhost/fhir"
    result = run(SCENARIO, "--patient", "p1", "--url", url, "--token", via_flask.token)
    assert result.exit_code == 0, result.output
    assert "into Patient/p1" in result.output
    line = one_error_line(
        run(SCENARIO, "--patient", "p9", "--url", url, "--token", via_flask.token)
    )
    assert "HTTP 404" in line
    line = one_error_line(run(SCENARIO, "--patient", "p1", "--url", url))
    assert "HTTP 401" in line
