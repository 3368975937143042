"""``phrx bench ingest | micro | federation``: run the scripts in benchmarks/ (a source
checkout)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fhir_server.cli.options import DATABASE_URL

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@click.group()
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

    script = BENCHMARKS / "ingest.py"
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

    script = BENCHMARKS / "micro.py"
    if not script.is_file():
        raise click.ClickException(f"{script} not found: run from a source checkout")
    argv = ["--leaves", str(leaves), "--runs", str(runs), "--repeat", str(repeat)]
    sys.exit(runpy.run_path(str(script))["main"](argv))


@bench.command("federation")
@click.option("--runs", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--links", default=20, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--synthea",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A Synthea bundle (default: the ../shared one nearest 500 entries).",
)
def bench_federation(runs, links, synthea) -> None:
    """Link redemption and $summary through PH, verified on chain (benchmarks/federation.py)."""
    import runpy

    script = BENCHMARKS / "federation.py"
    if not script.is_file():
        raise click.ClickException(f"{script} not found: run from a source checkout")
    argv = ["--runs", str(runs), "--links", str(links)]
    argv += ["--synthea", str(synthea)] if synthea else []
    sys.exit(runpy.run_path(str(script))["main"](argv))


COMMANDS = [bench]
