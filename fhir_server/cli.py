"""The operator command line: ``phrx serve | load | demo | bench``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fhir_server.errors import FHIRError

DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="PHRX_DATA_DIR",
    required=True,
    help="Node data dir (created and initialised if new). Env: PHRX_DATA_DIR.",
)
DATABASE_URL = click.option(
    "--database-url",
    envvar="PHRX_DATABASE_URL",
    default=None,
    help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db. Default: SQLite in the data dir.",
)


class PhrxGroup(click.Group):
    """Turn every expected failure into one clear line and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FHIRError as error:
            click.echo(f"phrx: error: {error.diagnostics}", err=True)
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
def serve(host, port, data_dir, database_url, base_url, workers) -> None:
    """Serve the FHIR API with gunicorn (production WSGI server)."""
    from fhir_server.node import Node, NodeConfig
    from fhir_server.serving import check_loopback, configure_logging, serve_gunicorn

    check_loopback(host)
    config = NodeConfig(data_dir=data_dir, database_url=database_url, base_url=base_url)
    Node(config).close()  # initialise data dir and schema once, before forking workers
    configure_logging(data_dir)
    click.echo(f"PHRX node serving http://{host}:{port}/fhir ({workers} worker(s))")
    click.echo("No authentication yet: listening on loopback only.")

    def factory():
        from fhir_server.app import create_app

        return create_app({"NODE": Node(config)})

    serve_gunicorn(factory, host, port, workers)


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="PHRX_DATA_DIR"
)
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
    with tqdm(total=len(files), unit="bundle", file=sys.stderr) as bar:
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
@click.option("--database-url", default=None)
@click.option("--workers", default=2, show_default=True, type=int)
def bench_ingest(data, database_url, workers) -> None:
    """Post Synthea bundles over HTTP and time ingest and searches."""
    from benchmarks_runner import run_ingest_benchmark  # type: ignore[import-not-found]

    run_ingest_benchmark(data, database_url, workers)
