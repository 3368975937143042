"""What `make test` / `make demo` leave on a newcomer's machine (issue #14): the committed
npm lock untouched, PostgreSQL started for the suite, no machine's paths in the tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PG_BASE

ROOT = Path(__file__).resolve().parents[1]
START_POSTGRES = ROOT / "tools" / "start-postgres.sh"


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )


def test_the_bootstrap_leaves_the_committed_package_lock_byte_identical():
    if shutil.which("git") is None or _git("rev-parse", "--is-inside-work-tree").returncode:
        pytest.skip("not a git checkout: nothing to compare package-lock.json with")
    if _git("ls-files", "--error-unmatch", "package-lock.json").returncode:
        pytest.skip("package-lock.json is not committed in this checkout")
    diff = _git("diff", "--exit-code", "--stat", "--", "package-lock.json")
    assert diff.returncode == 0, f"npm rewrote the committed lock:\n{diff.stdout}"


def test_npm_ci_accepts_the_lock_as_committed(tmp_path):
    """`npm ci` (the Makefile's step) installs from the lock without touching it, and
    refuses a lock out of sync with package.json, as the committed one was when it
    lacked anvil's other-platform binaries (npm install then added 76 lines)."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    for name in ("package.json", "package-lock.json"):
        shutil.copy(ROOT / name, tmp_path / name)
    # an empty cache and --offline: the lock alone must satisfy npm, no registry needed
    cache = str(tmp_path / "npm-cache")
    result = subprocess.run(
        ["npm", "ci", "--dry-run", "--offline", "--ignore-scripts", "--cache", cache],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lock = (ROOT / "package-lock.json").read_bytes()
    assert (tmp_path / "package-lock.json").read_bytes() == lock


def test_the_lock_lists_every_platforms_anvil():
    lock = (ROOT / "package-lock.json").read_text(encoding="utf-8")
    for platform in ("darwin-amd64", "darwin-arm64", "linux-amd64", "linux-arm64", "win32-amd64"):
        assert f'"node_modules/@foundry-rs/anvil-{platform}"' in lock, platform


def test_the_makefile_installs_npm_tools_with_npm_ci_and_starts_postgres_for_make_test():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    npm_step = re.search(r"^\$\(NPM_STAMP\):.*\n((?:\t.*\n)+)", makefile, re.M)
    assert npm_step and "npm ci " in npm_step.group(1) and "npm install" not in npm_step.group(1)
    test_recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert test_recipe and "tools/start-postgres.sh" in test_recipe.group(1)


def test_start_postgres_is_idempotent_and_leaves_the_suites_server_answering():
    """Run as `make test` runs it; a second run finds the server up and does nothing."""
    if os.geteuid() != 0:
        pytest.skip("tools/start-postgres.sh installs and starts PostgreSQL only as root")
    if shutil.which("apt-get") is None:
        pytest.skip("no apt-get: tools/start-postgres.sh targets Debian")
    first = subprocess.run(
        ["bash", str(START_POSTGRES)], capture_output=True, text=True, timeout=600, check=False
    )
    assert first.returncode == 0, first.stderr
    second = subprocess.run(
        ["bash", str(START_POSTGRES)], capture_output=True, text=True, timeout=60, check=False
    )
    assert second.returncode == 0
    assert second.stdout == second.stderr == ""  # already running: nothing done, nothing said
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_BASE, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select current_database()")).scalar() == "test"
    finally:
        engine.dispose()


def test_start_postgres_without_root_says_the_tests_will_skip():
    """No server and no root: one line saying so, and `make test` goes on (exit 0)."""
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("no runuser to drop root")
    # the same script, aimed at a port where no server answers, read from stdin
    script = START_POSTGRES.read_text().replace("PORT=5432", "PORT=1")
    argv = ["bash", "-s"]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "nobody", "--", *argv]
    result = subprocess.run(
        argv, input=script, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert "PostgreSQL tests will skip" in result.stderr


def test_no_test_names_a_path_of_this_machine():
    """Tests find ../shared and the project relative to the checkout (tests/conftest.py's
    SHARED), never at an absolute path that exists only on one machine."""
    machine = re.compile(r"""["']""" + re.escape(str(ROOT.parent)) + r"/")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if machine.search(line)
    ]
    assert found == []
