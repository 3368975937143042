"""``phrx load PATH``: transaction Bundles into a data dir or a running node
(the work is done by :mod:`fhir_server.loader`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fhir_server.cli.options import DATABASE_URL, data_dir_option


@click.command()
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


COMMANDS = [load]
