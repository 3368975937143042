"""Options every ``phrx`` command spells the same way (flags and PHRX_* variables)."""

from __future__ import annotations

from pathlib import Path

import click


def data_dir_option(*, required: bool = True, help: str | None = None):
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="PHRX_DATA_DIR",
        required=required,
        default=None,
        help=help or "Node data dir (created and initialised if new). Env: PHRX_DATA_DIR.",
    )


DATA_DIR = data_dir_option()
DATABASE_URL = click.option(
    "--database-url",
    envvar="PHRX_DATABASE_URL",
    default=None,
    help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db. Default: SQLite in the data dir.",
)
