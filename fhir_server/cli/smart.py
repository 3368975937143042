"""SMART operator commands: ``phrx users ...``, ``phrx clients ...`` and ``phrx token``.

``phrx token`` is operator tooling: it prints a short-lived access token for
scripts, recorded (jti, client, user, scope) like every other token, so it can
be introspected and revoked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from fhir_server.cli.options import DATA_DIR, DATABASE_URL


@contextmanager
def _service(data_dir: Path, database_url: str | None) -> Iterator:
    """The node's SMART service for one command; the node is closed afterwards."""
    from fhir_server.node import Node, NodeConfig
    from fhir_server.smart.service import SmartService

    node = Node(NodeConfig(data_dir=data_dir, database_url=database_url))
    try:
        yield SmartService(node)
    finally:
        node.close()


@click.group()
def users() -> None:
    """Local accounts of patients, practitioners and administrators."""


@users.command("add")
@DATA_DIR
@DATABASE_URL
@click.option("--username", required=True)
@click.option("--role", type=click.Choice(["patient", "practitioner", "admin"]), required=True)
@click.option("--fhir-user", required=True, help="Patient/ID or Practitioner/ID.")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--totp", is_flag=True, help="Enable a TOTP second factor (not for patients).")
def users_add(data_dir, database_url, username, role, fhir_user, password_file, totp) -> None:
    """Create a user; the password is read from --password-file or prompted for."""
    if password_file:
        password = password_file.read_text().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _service(data_dir, database_url) as smart:
        user = smart.users.add(username, role, fhir_user, password)
        click.echo(f"added {user.username} ({user.role}, {user.fhir_user})")
        if totp:
            secret = smart.users.enable_totp(username)
            click.echo(f"TOTP secret (add it to an authenticator app): {secret}")


@users.command("totp")
@DATA_DIR
@DATABASE_URL
@click.option("--username", required=True)
def users_totp(data_dir, database_url, username) -> None:
    """Enable (or renew) a user's TOTP second factor and print its secret."""
    from fhir_server.smart.credentials import provisioning_uri

    with _service(data_dir, database_url) as smart:
        secret = smart.users.enable_totp(username)
        click.echo(f"TOTP secret: {secret}")
        click.echo(provisioning_uri(secret, username))


@users.command("list")
@DATA_DIR
@DATABASE_URL
def users_list(data_dir, database_url) -> None:
    with _service(data_dir, database_url) as smart:
        for user in smart.users.list():
            flag = " totp" if user.totp_enabled else ""
            click.echo(f"{user.username}\t{user.role}\t{user.fhir_user}{flag}")


@click.group()
def clients() -> None:
    """Registered SMART apps and backend services."""


@clients.command("add")
@DATA_DIR
@DATABASE_URL
@click.option("--client-id", required=True)
@click.option(
    "--kind", type=click.Choice(["public", "symmetric", "asymmetric", "backend"]), required=True
)
@click.option("--name", default=None)
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--scope", default=None, help="Ceiling of grantable scopes (default by kind).")
@click.option("--jwks-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--jwks-url", default=None)
def clients_add(
    data_dir, database_url, client_id, kind, name, redirect_uris, scope, jwks_file, jwks_url
) -> None:
    """Register a client; a symmetric client's secret is shown once."""
    jwks = json.loads(jwks_file.read_text()) if jwks_file else None
    with _service(data_dir, database_url) as smart:
        client, secret = smart.clients.add(
            client_id,
            kind,
            name=name,
            redirect_uris=list(redirect_uris),
            scope=scope,
            jwks=jwks,
            jwks_url=jwks_url,
        )
        click.echo(f"added {client.client_id} ({client.kind})")
        if secret:
            click.echo(f"client secret (shown once): {secret}")


@clients.command("list")
@DATA_DIR
@DATABASE_URL
def clients_list(data_dir, database_url) -> None:
    with _service(data_dir, database_url) as smart:
        for client in smart.clients.list():
            uris = " ".join(client.redirect_uris)
            click.echo(f"{client.client_id}\t{client.kind}\t{client.scope}\t{uris}")


@clients.command("remove")
@DATA_DIR
@DATABASE_URL
@click.option("--client-id", required=True)
def clients_remove(data_dir, database_url, client_id) -> None:
    with _service(data_dir, database_url) as smart:
        if not smart.clients.remove(client_id):
            raise ValueError(f"no client {client_id!r}")
        click.echo(f"removed {client_id}")


@click.command("token")
@DATA_DIR
@DATABASE_URL
@click.option("--scope", required=True, help='e.g. "system/*.cruds"')
@click.option("--client", "client_id", default=None, help="Default: the node's operator client.")
@click.option("--user", "username", default=None, help="Act for this user.")
@click.option("--patient", default=None, help="Patient context (with --user).")
@click.option(
    "--base-url",
    envvar="PHRX_BASE_URL",
    default="http://127.0.0.1:8080/fhir",
    show_default=True,
    help="FHIR base URL the token is for (its aud).",
)
@click.option("--lifetime", default=300, show_default=True, type=click.IntRange(1, 3600))
def token(data_dir, database_url, scope, client_id, username, patient, base_url, lifetime) -> None:
    """Print a short-lived access token for scripts (operator tooling, recorded)."""
    from fhir_server.smart.operator import issue_operator_token

    if patient and not username:
        raise click.UsageError("--patient needs --user")
    with _service(data_dir, database_url) as smart:
        token = issue_operator_token(
            smart,
            base_url,
            scope,
            client_id=client_id,
            username=username,
            patient=patient,
            lifetime=lifetime,
        )
        click.echo(token)


COMMANDS = [users, clients, token]
