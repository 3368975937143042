"""Chain commands: ``phrx chain dev | init-network | authorities …``, ``phrx anchor-worker``,
``phrx verify FILE --chain URL``."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

import click

from anchoring import defaults as anchor_defaults
from fhir_server import fastjson
from fhir_server.cli.options import DATA_DIR, DATABASE_URL


def _stop_on_signal() -> threading.Event:
    """An event SIGINT/SIGTERM set. Installed before a command announces itself:
    a caller may signal as soon as it reads the first line, and the default
    SIGTERM action would kill the process before its ``finally`` cleans up."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _wait_for(stop: threading.Event) -> None:
    while not stop.wait(0.5):
        pass


# ---- phrx anchor-worker -----------------------------------------------------------------
@click.command("anchor-worker")
@DATA_DIR
@DATABASE_URL
@click.option("--chain", "chain", required=True, envvar="PHRX_CHAIN", help="JSON-RPC URL.")
@click.option(
    "--anchor-interval", default=anchor_defaults.INTERVAL_S, show_default=True, type=float
)
@click.option("--anchor-batch", default=anchor_defaults.BATCH_LEAVES, show_default=True, type=int)
@click.option("--country", default="XX", show_default=True, envvar="PHRX_COUNTRY")
def anchor_worker(data_dir, database_url, chain, anchor_interval, anchor_batch, country) -> None:
    """Anchor the journal in its own process (the server then needs no batcher)."""
    from fhir_server.node import Node, NodeConfig

    stop = _stop_on_signal()
    node = Node(
        NodeConfig(
            data_dir=data_dir,
            database_url=database_url,
            chain=chain,
            anchor_interval=anchor_interval,
            anchor_batch=anchor_batch,
            anchor_country=country,
        )
    )
    try:
        assert node.anchoring is not None
        dep = node.anchoring.chain.deployment
        click.echo(f"anchor-worker running: chain {chain}, AnchorRegistry {dep.anchor_registry}")
        sys.stdout.flush()
        _wait_for(stop)
    finally:
        node.close()


# ---- phrx verify ----------------------------------------------------------------------
@click.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--chain", "chain_url", required=True, help="JSON-RPC URL of the chain.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def verify_file(file, chain_url, as_json) -> None:
    """Verify a downloaded Bundle (with its Provenance proofs) offline: chain access only."""
    from anchoring.offline import verify_bundle

    try:
        bundle = fastjson.parse(file.read_bytes())
    except ValueError as error:  # not JSON, or nested too deeply to be a Bundle
        raise click.ClickException(f"{file}: not a FHIR JSON Bundle ({error})") from None
    results = verify_bundle(bundle, chain_url)
    if as_json:
        click.echo(json.dumps([r.to_parameters() for r in results], indent=2))
    for r in results:
        if r.result:
            line = f"OK    {r.target}  block {r.block_number}  authority {r.country}"
            click.echo(line + f"  confirmations {r.confirmations}", err=as_json)
        else:
            click.echo(f"FAIL  {r.target}  {r.reason}", err=as_json)
    ok = sum(r.result for r in results)
    click.echo(f"{ok}/{len(results)} verified", err=as_json)
    sys.exit(0 if results and ok == len(results) else 1)


# ---- phrx chain -----------------------------------------------------------------------
@click.group("chain")
def chain() -> None:
    """Local dev chain, Besu QBFT network generation, authority governance."""


@chain.command("dev")
@DATA_DIR
@click.option("--port", default=None, type=int, help="Fixed port (default: a free one).")
def chain_dev(data_dir, port) -> None:
    """Run a local anvil chain that several nodes share (state in DATA/chain): the
    contracts are deployed once, with no authority yet; nodes started with
    ``--chain URL`` find them, and the first ``phrx federation join`` founds the trust list."""
    from anchoring.node_chain import open_shared_dev_chain

    stop = _stop_on_signal()
    dev, dep = open_shared_dev_chain(data_dir, port)
    try:
        click.echo(f"dev chain {dev.url} (pid {dev.pid})")
        click.echo(f"AnchorRegistry {dep.anchor_registry}")
        click.echo(f"AuthorityRegistry {dep.authority_registry}")
        sys.stdout.flush()
        _wait_for(stop)
    finally:
        dev.stop()


@chain.command("init-network")
@click.option("--countries", required=True, help="Comma-separated ISO codes, e.g. TW,PH,TH,SG.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--chain-id", default=2025, show_default=True, type=int)
def init_network_cmd(countries, out, chain_id) -> None:
    """Generate a Besu QBFT network: keys, genesis, configs, per-country node dirs."""
    from anchoring.besu import init_network

    codes = [c.strip().upper() for c in countries.split(",") if c.strip()]
    summary = init_network(codes, out, chain_id=chain_id)
    click.echo(f"QBFT network for {', '.join(codes)} in {out}")
    for country, info in summary["validators"].items():
        click.echo(f"  {country} validator {info['address']}  authority {info['authority']}")
    click.echo(f"  AuthorityRegistry (predicted) {summary['deployment']['authority_registry']}")
    click.echo(f"  AnchorRegistry    (predicted) {summary['deployment']['anchor_registry']}")


def _governance_client(data_dir: Path, chain_url: str):
    from anchoring.chain import ChainClient
    from anchoring.node_chain import as_deployment, load_deployment

    doc = load_deployment(data_dir)
    if doc is None:
        raise click.UsageError(f"no {data_dir}/chain/deployment.json")
    key_file = data_dir / "keys" / "chain.key"
    if not key_file.exists():
        raise click.UsageError(f"no chain key at {key_file}")
    return ChainClient.from_url(
        chain_url, key_file.read_text().strip(), deployment=as_deployment(doc)
    )


CHAIN_URL = click.option("--chain", "chain_url", required=True, envvar="PHRX_CHAIN")


@chain.group("authorities")
def authorities() -> None:
    """List and govern the anchoring authorities (one per country)."""


@authorities.command("list")
@DATA_DIR
@CHAIN_URL
def authorities_list(data_dir, chain_url) -> None:
    client = _governance_client(data_dir, chain_url)
    for a in client.authorities():
        click.echo(f"{a.country}  {a.address}  {a.fhir_base_url}")


def _report(result) -> None:
    state = "executed" if result.executed else "pending (needs more votes)"
    click.echo(f"proposal {result.proposal_id}: {state}  tx 0x{result.tx_hash.hex()}")


@authorities.command("propose-add")
@DATA_DIR
@CHAIN_URL
@click.option("--address", required=True)
@click.option("--country", required=True)
@click.option("--fhir-base-url", required=True)
@click.option("--signing-jwk", default="{}")
def authorities_add(data_dir, chain_url, address, country, fhir_base_url, signing_jwk) -> None:
    client = _governance_client(data_dir, chain_url)
    _report(client.propose_add(address, country.upper(), fhir_base_url, signing_jwk, b""))


@authorities.command("propose-remove")
@DATA_DIR
@CHAIN_URL
@click.option("--address", required=True)
def authorities_remove(data_dir, chain_url, address) -> None:
    _report(_governance_client(data_dir, chain_url).propose_remove(address))


@authorities.command("vote")
@DATA_DIR
@CHAIN_URL
@click.argument("proposal_id", type=int)
def authorities_vote(data_dir, chain_url, proposal_id) -> None:
    _report(_governance_client(data_dir, chain_url).vote(proposal_id))


COMMANDS = [anchor_worker, verify_file, chain]
