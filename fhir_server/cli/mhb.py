"""``phrx import-mhb FILE --patient ID``: import a My Health Bank export.

Directly into a data dir (``--data-dir``, opens the node like ``phrx load``) or
through a running node (``--url`` + ``--token``, POST to ``$import-mhb``).
Prints the summary (docs/mhb-mapping.md, "Import"); an error is one line on
stderr and exit status 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from fhir_server.cli.options import DATABASE_URL, data_dir_option
from fhir_server.errors import BadRequest


@click.command("import-mhb")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--patient", "patient_id", required=True, help="Id of an existing Patient.")
@data_dir_option(required=False, help="Import directly into this node data dir.")
@DATABASE_URL
@click.option(
    "--url", default=None, help="FHIR base URL of a running node (instead of --data-dir)."
)
@click.option("--token", envvar="PHRX_TOKEN", default=None, help="Bearer token for --url.")
@click.option(
    "--password",
    envvar="PHRX_MHB_PASSWORD",
    default=None,
    help="Password of an encrypted zip. Env: PHRX_MHB_PASSWORD.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the Parameters resource as JSON.")
def import_mhb_command(
    file, patient_id, data_dir, database_url, url, token, password, as_json
) -> None:
    """Import an MHB (健康存摺) export (JSON, XML or zip) into a patient's record."""
    if bool(url) == bool(data_dir):
        raise click.UsageError("give exactly one of --data-dir or --url")
    if not file.is_file():
        raise BadRequest(f"{file}: no such file")
    data = file.read_bytes()
    if url:
        parameters = _post(url, token, patient_id, data, file.name, password)
    else:
        parameters = _local(data_dir, database_url, patient_id, data, file.name, password)
    if as_json:
        click.echo(json.dumps(parameters, ensure_ascii=False, indent=2))
    else:
        click.echo(format_summary(parameters))


def _local(data_dir, database_url, patient_id, data, filename, password) -> dict:
    from fhir_server.node import Node, NodeConfig
    from fhir_server.operations import import_mhb

    node = Node(NodeConfig(data_dir=data_dir, database_url=database_url))
    try:
        outcome = import_mhb.run(node, patient_id, data, password=password, filename=filename)
        return outcome.to_parameters()
    finally:
        node.close()


def _post(url, token, patient_id, data, filename, password) -> dict:
    import requests

    headers = {"Content-Type": "application/octet-stream", "Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if password is not None:
        headers["X-MHB-Password"] = password
    response = requests.post(
        f"{url.rstrip('/')}/Patient/{patient_id}/$import-mhb",
        params={"filename": filename},
        data=data,
        headers=headers,
        timeout=600,
    )
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        raise ValueError(f"HTTP {response.status_code}: {_diagnostics(body) or response.reason}")
    return body


def _diagnostics(body) -> str:
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    return "; ".join(i.get("diagnostics", i.get("code", "")) for i in body.get("issue", [])[:3])


def format_summary(parameters: dict) -> str:
    """Human-readable lines from the ``$import-mhb`` Parameters."""
    params = parameters.get("parameter", [])

    def value(p):
        return next((v for k, v in p.items() if k.startswith("value")), None)

    def parts(p):
        return {q["name"]: value(q) for q in p.get("part", [])}

    single = {p["name"]: value(p) for p in params if "part" not in p}
    source = next((parts(p) for p in params if p["name"] == "source"), {})
    lines = [
        f"imported {source.get('format')} ({source.get('container')}) "
        f"sha256={source.get('sha256')} into {single.get('patient', {}).get('reference')}",
        f"created {single.get('created')}, updated {single.get('updated')}, "
        f"unchanged {single.get('unchanged')}"
        + (f"; {single['provenance']['reference']}" if single.get("provenance") else ""),
    ]
    for p in params:
        if p["name"] == "resources":
            q = parts(p)
            lines.append(
                f"  {q['type']:<22} created {q['created']:>6}  updated {q['updated']:>6}  "
                f"unchanged {q['unchanged']:>6}"
            )
    skipped = [parts(p) for p in params if p["name"] == "skipped"]
    if skipped:
        lines.append(f"skipped {len(skipped)} row(s):")
        lines += [f"  {s['section']}[{s['row']}]: {s['reason']}" for s in skipped]
    unknown = [parts(p) for p in params if p["name"] == "unknownField"]
    if unknown:
        lines.append(
            "unknown fields: " + ", ".join(f"{u['field']} ({u['count']})" for u in unknown)
        )
    lines += [f"warning: {p['valueString']}" for p in params if p["name"] == "warning"]
    return "\n".join(lines)


COMMANDS = [import_mhb_command]
