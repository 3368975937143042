"""``phrx demo``: the command; the demo itself is :mod:`fhir_server.demo`."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
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
    from fhir_server.demo.run import run_demo

    sys.exit(run_demo(data_dir, port, exit_after))


COMMANDS = [demo]
