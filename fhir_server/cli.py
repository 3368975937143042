"""The operator command line: ``phrx serve | load | demo | bench``."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from anchoring import defaults as anchor_defaults
from fhir_server.cli_options import DATA_DIR, DATABASE_URL, data_dir_option
from fhir_server.errors import FHIRError


class PhrxGroup(click.Group):
    """Turn every expected failure into one clear line and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FHIRError as error:
            # the issues name the element at fault (e.g. Observation.status); one line still
            detail = "; ".join(i.diagnostics for i in error.all_issues()[:3] if i.diagnostics)
            click.echo(f"phrx: error: {detail or error.diagnostics}", err=True)
            sys.exit(1)
        except (OSError, ValueError) as error:
            click.echo(f"phrx: error: {error}", err=True)
            sys.exit(1)


@click.group(cls=PhrxGroup)
def main() -> None:
    """PHRX: cross-border personal health record node (FHIR R4)."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="PHRX_HOST")
@click.option("--port", default=8080, show_default=True, type=int, envvar="PHRX_PORT")
@DATA_DIR
@DATABASE_URL
@click.option("--base-url", envvar="PHRX_BASE_URL", default=None, help="Public FHIR base URL.")
@click.option("--workers", default=1, show_default=True, type=int, envvar="PHRX_WORKERS")
@click.option(
    "--chain",
    default="dev",
    show_default=True,
    envvar="PHRX_CHAIN",
    help="'dev' (local anvil in DATA/chain), a JSON-RPC URL, or 'none' (no anchoring).",
)
@click.option(
    "--anchor-interval", default=anchor_defaults.INTERVAL_S, show_default=True, type=float
)
@click.option("--anchor-batch", default=anchor_defaults.BATCH_LEAVES, show_default=True, type=int)
@click.option(
    "--anchor-worker/--no-anchor-worker",
    default=True,
    show_default=True,
    help="Run the anchoring batcher in the server (else run `phrx anchor-worker`).",
)
@click.option("--country", default="XX", show_default=True, envvar="PHRX_COUNTRY")
def serve(
    host,
    port,
    data_dir,
    database_url,
    base_url,
    workers,
    chain,
    anchor_interval,
    anchor_batch,
    anchor_worker,
    country,
) -> None:
    """Serve the FHIR API with gunicorn (production WSGI server)."""
    from fhir_server.node import Node, NodeConfig
    from fhir_server.serving import check_loopback, configure_logging, serve_gunicorn, settle_heap

    warning = check_loopback(host)
    if warning:
        click.echo(warning, err=True)
    dev_chain = None
    chain_opt = None if chain == "none" else chain
    if chain_opt == "dev":
        # One anvil for the master and every worker; the workers talk to its URL.
        from anchoring.node_chain import NodeChain

        dev_chain = NodeChain(data_dir, "dev", country=country, base_url=base_url or "").open()
        chain_opt = dev_chain.url
        click.echo(f"dev chain {chain_opt} (state in {data_dir / 'chain'})")
    config = NodeConfig(
        data_dir=data_dir,
        database_url=database_url,
        base_url=base_url,
        chain=chain_opt,
        anchor_interval=anchor_interval,
        anchor_batch=anchor_batch,
        anchor_worker=anchor_worker,
        anchor_country=country,
    )
    # initialise data dir, schema and deployment once, before forking workers
    Node(replace(config, anchor_worker=False)).close()
    configure_logging(data_dir)
    click.echo(f"PHRX node serving http://{host}:{port}/fhir ({workers} worker(s))")
    click.echo("SMART bearer tokens and patient consent enforced; every access is audited.")

    # Import the routes and every R4B model once, here in the master: the forked
    # workers inherit them and serve at once. A worker still importing while its
    # sibling serves gets no share of the clients that connected meanwhile.
    from fhir_server.app import create_app, import_everything

    import_everything()
    settle_heap()  # frozen before fork: the workers share these pages untouched

    def factory():
        app = create_app({"NODE": Node(config)})
        settle_heap()
        return app

    try:
        serve_gunicorn(factory, host, port, workers)
    finally:
        if dev_chain is not None:
            dev_chain.close()


@main.command()
# No exists=True: a missing path is reported by bundle_files() as one "phrx: error:" line.
@click.argument("path", type=click.Path(path_type=Path))
@data_dir_option(required=False, help="Load directly into this node data dir.")
@DATABASE_URL
@click.option(
    "--url", default=None, help="FHIR base URL of a running node (instead of --data-dir)."
)
def load(path, data_dir, database_url, url) -> None:
    """Load transaction Bundles (a file or a directory of .json files)."""
    from tqdm import tqdm

    from fhir_server.loader import bundle_files, load_http, load_local

    files = bundle_files(path)
    if url:
        steps = load_http(url, files)
    elif data_dir:
        from fhir_server.node import Node, NodeConfig

        node = Node(NodeConfig(data_dir=data_dir, database_url=database_url))
        steps = load_local(node.store, files, "http://localhost/fhir")
    else:
        raise click.UsageError("give --data-dir or --url")
    total = 0
    # The bar only on a terminal, cleared on exit, so an error stays one line on stderr.
    interactive = sys.stderr.isatty()
    with tqdm(
        total=len(files), unit="bundle", file=sys.stderr, disable=not interactive, leave=False
    ) as bar:
        for _path, entries in steps:
            total += entries
            bar.update(1)
    click.echo(f"loaded {len(files)} bundle(s), {total} entries")


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data dir for the demo node (default: a fresh temporary dir).",
)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--exit", "exit_after", is_flag=True, help="Exit after the checks (0 = all behaved).")
def demo(data_dir, port, exit_after) -> None:
    """Start a node on embedded defaults, load sample data, check each step."""
    from fhir_server.demo import run_demo

    sys.exit(run_demo(data_dir, port, exit_after))


@main.group()
def bench() -> None:
    """Benchmarks that print figures."""


@bench.command("ingest")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory of Synthea bundles (default: ../shared/data/synthea-r4).",
)
@DATABASE_URL
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--clients", default=2, show_default=True, type=int)
def bench_ingest(data, database_url, workers, clients) -> None:
    """Post Synthea bundles over HTTP and time ingest and searches (benchmarks/ingest.py)."""
    import runpy

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "ingest.py"
    if not script.is_file():
        raise click.ClickException(f"{script} not found: run from a source checkout")
    argv = ["--workers", str(workers), "--clients", str(clients)]
    argv += ["--data", str(data)] if data else []
    argv += ["--database-url", database_url] if database_url else []
    sys.exit(runpy.run_path(str(script))["main"](argv))


@bench.command("micro")
@click.option("--leaves", default=10_000, show_default=True, type=click.IntRange(min=1))
@click.option("--runs", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--repeat", default=5, show_default=True, type=click.IntRange(min=1))
def bench_micro(leaves, runs, repeat) -> None:
    """Merkle tree + proofs, required-bindings check, index_rows (benchmarks/micro.py)."""
    import runpy

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "micro.py"
    if not script.is_file():
        raise click.ClickException(f"{script} not found: run from a source checkout")
    argv = ["--leaves", str(leaves), "--runs", str(runs), "--repeat", str(repeat)]
    sys.exit(runpy.run_path(str(script))["main"](argv))


def _add_chain_commands() -> None:
    from fhir_server.cli_chain import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_add_chain_commands()


def _add_smart_commands() -> None:
    from fhir_server.smart.cli import register

    register(main)  # phrx users | clients | token


_add_smart_commands()


from fhir_server.cli_mhb import import_mhb_command  # noqa: E402

main.add_command(import_mhb_command)  # phrx import-mhb
