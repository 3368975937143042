"""File modes of a node's data dir (issue #14, finding 3).

README "Data dir layout": ``DATA/keys/`` is 0700 and every key file in it 0600;
the SQLite database and its ``-wal`` / ``-shm`` files are 0600; ``DATA/logs/`` is
0700 and the log 0600 -- whatever the process umask.

On start, a data dir left looser by an older version (or by ``phrx serve
--chain dev``, which writes ``keys/chain.key`` before the node opens) is
tightened with a warning: directories, the database files and the log hold no
secret a permission change would come too late for. A key file readable or
writable by group/other is refused, as ``master.key`` always was: the key may
have been copied, and only the operator can decide to rotate or to chmod it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat

import pytest

from vault.errors import VaultError
from vault.masterkey import ENV_VAR

DB_FILES = ("phrx.sqlite3", "phrx.sqlite3-wal", "phrx.sqlite3-shm")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


@contextlib.contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def open_node(data_dir, *, with_app=True):
    """Open a node (and its SMART service, which adds the signing/session keys),
    write something so the WAL holds data, and close it again."""
    from fhir_server.app import create_app
    from fhir_server.node import Node, NodeConfig

    node = Node(NodeConfig(data_dir=data_dir))
    try:
        if with_app:
            app = create_app({"NODE": node, "TESTING": True})
            users = app.extensions["phrx.smart"].service.users
            if users.get("someone") is None:
                users.add("someone", "patient", "Patient/x", "correct horse battery")
        return {name: mode(data_dir / name) for name in DB_FILES if (data_dir / name).exists()}
    finally:
        node.close()


def assert_private(data: os.PathLike) -> None:
    keys = data / "keys"
    assert mode(keys) == 0o700
    names = sorted(p.name for p in keys.iterdir())
    assert {"master.key", "smart-signing.jwk", "smart-session.key"} <= set(names)
    for key in keys.iterdir():
        assert mode(key) == 0o600, key.name
    assert mode(data / "logs") == 0o700
    assert mode(data / "logs" / "phrx.log") == 0o600
    for name in (*DB_FILES, "phrx.sqlite3.writers"):
        if (data / name).exists():
            assert mode(data / name) == 0o600, name


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o000])
def test_fresh_data_dir_is_private_whatever_the_umask(tmp_path, mask):
    data = tmp_path / "data"
    with umask(mask):
        open_modes = open_node(data)
    # while the node was open the WAL and shared-memory files existed, already 0600
    assert open_modes == dict.fromkeys(DB_FILES, 0o600)
    assert_private(data)


def test_log_file_keeps_its_mode_when_logging_opens_it(tmp_path):
    data = tmp_path / "data"
    open_node(data, with_app=False)
    handler = logging.FileHandler(data / "logs" / "phrx.log")  # as serving.configure_logging
    try:
        handler.emit(logging.makeLogRecord({"msg": "hello"}))
    finally:
        handler.close()
    assert mode(data / "logs" / "phrx.log") == 0o600
    assert "hello" in (data / "logs" / "phrx.log").read_text()


def test_loose_existing_data_dir_is_tightened_with_a_warning(tmp_path, caplog):
    data = tmp_path / "data"
    open_node(data)
    loose = {
        data / "keys": 0o755,
        data / "logs": 0o755,
        data / "logs" / "phrx.log": 0o644,
        **{data / name: 0o644 for name in DB_FILES if (data / name).exists()},
    }
    for path, bits in loose.items():
        os.chmod(path, bits)
    with caplog.at_level(logging.WARNING, logger="phrx"):
        open_modes = open_node(data)
    assert set(open_modes.values()) == {0o600}
    assert_private(data)
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "keys" in warned and "phrx.sqlite3" in warned and "phrx.log" in warned


def test_keys_dir_made_by_the_chain_key_first_is_tightened(tmp_path):
    """``phrx serve --chain dev`` writes keys/chain.key before the node opens."""
    from anchoring.node_chain import load_or_create_key

    data = tmp_path / "data"
    with umask(0o022):
        load_or_create_key(data)
    open_node(data)
    assert_private(data)
    assert mode(data / "keys" / "chain.key") == 0o600


@pytest.mark.parametrize("name", ["smart-signing.jwk", "smart-session.key", "chain.key"])
@pytest.mark.parametrize("bits", [0o644, 0o640, 0o604, 0o620])
def test_loose_key_file_is_refused(tmp_path, name, bits):
    data = tmp_path / "data"
    open_node(data)
    key = data / "keys" / name
    if not key.exists():
        key.write_text("0x" + "11" * 32 + "\n")
    os.chmod(key, bits)
    with pytest.raises(VaultError, match="chmod 600") as refused:
        open_node(data)
    assert name in str(refused.value)
    assert mode(key) == bits  # left for the operator to judge, not silently "fixed"


def test_signing_key_refused_when_loose_even_without_the_node(tmp_path):
    from fhir_server.smart.keys import SigningKey, load_or_create_secret

    keys = tmp_path / "keys"
    SigningKey(keys)
    load_or_create_secret(keys / "smart-session.key")
    os.chmod(keys / "smart-signing.jwk", 0o644)
    with pytest.raises(VaultError, match="chmod 600"):
        SigningKey(keys)
    os.chmod(keys / "smart-session.key", 0o640)
    with pytest.raises(VaultError, match="chmod 600"):
        load_or_create_secret(keys / "smart-session.key")


def test_signing_key_dir_created_0700_whatever_the_umask(tmp_path):
    from fhir_server.smart.keys import SigningKey

    with umask(0):
        SigningKey(tmp_path / "a" / "keys")
    assert mode(tmp_path / "a" / "keys") == 0o700
    assert mode(tmp_path / "a" / "keys" / "smart-signing.jwk") == 0o600


def test_refusal_is_one_line_from_the_command_line(tmp_path):
    """README: errors are one line on stderr and a non-zero exit (no traceback)."""
    from click.testing import CliRunner

    from fhir_server.cli import main

    data = tmp_path / "data"
    open_node(data)
    os.chmod(data / "keys" / "master.key", 0o640)
    result = CliRunner().invoke(main, ["users", "list", "--data-dir", str(data)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("phrx: error: ") and lines[0].endswith(
        f"key file {data / 'keys' / 'master.key'} has mode 0640; "
        "it must not be accessible by group/other (chmod 600)"
    )
