"""``phrx serve``: the FHIR API under gunicorn; ``--chain dev`` starts one local anvil
chain for the master and every worker."""

from __future__ import annotations

import signal
from dataclasses import replace

import click

from anchoring import defaults as anchor_defaults
from fhir_server.cli.options import DATA_DIR, DATABASE_URL


@click.command()
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
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    envvar="PHRX_CORS_ORIGINS",
    help="Origin of a browser app allowed to call the API (repeatable; default: any).",
)
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
    cors_origins,
) -> None:
    """Serve the FHIR API with gunicorn (production WSGI server)."""
    from fhir_server.node import Node, NodeConfig
    from fhir_server.serving import check_loopback, configure_logging, serve_gunicorn, settle_heap

    # Until gunicorn's master installs its own handlers, SIGTERM / SIGHUP end this
    # process through the finally below, so the dev chain started here is stopped.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
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
        cors_origins=tuple(cors_origins) or ("*",),
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


def _exit_on_signal(signum, _frame) -> None:
    raise SystemExit(128 + signum)


COMMANDS = [serve]
