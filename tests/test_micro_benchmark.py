"""benchmarks/micro.py (``phrx bench micro``) prints its named figures; what they are worth
is the machine's business, so no threshold here (issue #14)."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

from click.testing import CliRunner

from fhir_server.cli import main as phrx

MICRO = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "micro.py"))
KEYS = [key for key, _label, _unit in MICRO["FIGURES"]]


def test_run_returns_every_figure_on_a_tiny_size():
    figures = MICRO["run"](leaves=3, runs=2, repeat=1)
    assert sorted(figures) == sorted(KEYS)
    assert all(math.isfinite(value) and value > 0 for value in figures.values())


def test_main_prints_every_named_figure(capsys):
    assert MICRO["main"](["--leaves", "5", "--runs", "2", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "Merkle tree + all proofs, 5 leaves" in out
    assert "required-bindings check, per Observation" in out
    assert "index_rows, per Observation" in out
    assert "index_rows, per Patient" in out
    assert "index_rows, per Observation with CachingBlind" in out
    assert len(out.strip().splitlines()) == len(KEYS)


def test_phrx_bench_micro_runs_it():
    result = CliRunner().invoke(
        phrx, ["bench", "micro", "--leaves", "4", "--runs", "1", "--repeat", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "Merkle tree + all proofs, 4 leaves" in result.output
    assert "µs" in result.output


def test_phrx_bench_micro_refuses_an_empty_tree():
    result = CliRunner().invoke(phrx, ["bench", "micro", "--leaves", "0"])
    assert result.exit_code == 2
    assert "--leaves" in result.output
