"""The operator command line ``phrx``: this module holds the group (the entry point) and
turns expected failures into one line; each command group lives in its own module.

:mod:`.serve` (``phrx serve``), :mod:`.load` (``phrx load``), :mod:`.demo` (``phrx demo``),
:mod:`.bench` (``phrx bench ingest | micro``), :mod:`.chain` (``phrx chain …``,
``anchor-worker``, ``verify``), :mod:`.smart` (``phrx users | clients | token``),
:mod:`.mhb` (``phrx import-mhb``), :mod:`.federation` (``phrx federation join | vote |
list | rotate-keys``); options they share are in :mod:`.options`.
"""

from __future__ import annotations

import sys

import click

from fhir_server.errors import FHIRError
from mhb_import.errors import MhbError


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
        except (OSError, ValueError, MhbError) as error:
            click.echo(f"phrx: error: {error}", err=True)
            sys.exit(1)


@click.group(cls=PhrxGroup)
def main() -> None:
    """PHRX: cross-border personal health record node (FHIR R4)."""


def _add_commands() -> None:
    # The command modules import only click and the options at import time; what a
    # command needs (the node, Flask, the chain) is imported when it runs.
    from fhir_server.cli import bench, chain, demo, federation, load, mhb, serve, smart

    for module in (serve, load, demo, bench, chain, federation, smart, mhb):
        for command in module.COMMANDS:
            main.add_command(command)


_add_commands()

__all__ = ["PhrxGroup", "main"]
