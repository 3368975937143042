"""Master key sources: file permissions, length checks, env precedence."""

import base64
import os
import stat

import pytest

from vault.errors import VaultError
from vault.masterkey import (
    ENV_VAR,
    EnvMasterKey,
    FileMasterKey,
    MasterKeySource,
    master_key_from_config,
)


def mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_file_created_0600_in_0700_dir_and_stable(tmp_path):
    path = tmp_path / "secrets" / "sub" / "master.key"
    src = FileMasterKey(path)
    assert isinstance(src, MasterKeySource)
    key = src.load()
    assert len(key) == 32
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert path.read_bytes() == key
    assert FileMasterKey(path).load() == key  # loaded, not regenerated
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]  # no temp left


def test_two_fresh_nodes_get_different_keys(tmp_path):
    assert FileMasterKey(tmp_path / "a").load() != FileMasterKey(tmp_path / "b").load()


@pytest.mark.parametrize("bad_mode", [0o644, 0o640, 0o604, 0o660])
def test_refuses_group_or_other_access(tmp_path, bad_mode):
    path = tmp_path / "master.key"
    path.write_bytes(b"s" * 32)
    os.chmod(path, bad_mode)
    with pytest.raises(VaultError, match="chmod 600") as exc:
        FileMasterKey(path).load()
    assert "s" * 8 not in str(exc.value)


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_refuses_wrong_length(tmp_path, length):
    path = tmp_path / "master.key"
    path.write_bytes(b"s" * length)
    os.chmod(path, 0o600)
    with pytest.raises(VaultError, match="exactly 32 bytes") as exc:
        FileMasterKey(path).load()
    assert "ssss" not in str(exc.value)


def test_refuses_symlink(tmp_path):
    real = tmp_path / "real.key"
    real.write_bytes(b"s" * 32)
    os.chmod(real, 0o600)
    link = tmp_path / "master.key"
    link.symlink_to(real)
    with pytest.raises(VaultError):
        FileMasterKey(link).load()


def test_env_key(monkeypatch):
    raw = bytes(range(32))
    monkeypatch.setenv(ENV_VAR, base64.urlsafe_b64encode(raw).decode().rstrip("="))
    assert EnvMasterKey().load() == raw
    monkeypatch.setenv(ENV_VAR, base64.urlsafe_b64encode(raw).decode())  # padded ok
    assert EnvMasterKey().load() == raw
    monkeypatch.setenv("OTHER_VAR", base64.urlsafe_b64encode(raw).decode())
    assert EnvMasterKey("OTHER_VAR").load() == raw


@pytest.mark.parametrize(
    "value",
    [
        base64.urlsafe_b64encode(b"q" * 16).decode(),  # too short
        base64.urlsafe_b64encode(b"q" * 33).decode(),  # too long
        "cXFx*" * 9,  # not base64url
        base64.b64encode(b"\xfb" * 32).decode(),  # standard alphabet ('+' '/') refused
    ],
)
def test_env_key_rejected_without_echoing_value(monkeypatch, value):
    monkeypatch.setenv(ENV_VAR, value)
    with pytest.raises(VaultError) as exc:
        EnvMasterKey().load()
    assert value not in str(exc.value)


def test_env_unset():
    with pytest.raises(VaultError, match="not set"):
        EnvMasterKey().load()


def test_config_env_wins_over_file(monkeypatch, tmp_path):
    path = tmp_path / "master.key"
    file_key = FileMasterKey(path).load()
    env_key = b"e" * 32
    monkeypatch.setenv(ENV_VAR, base64.urlsafe_b64encode(env_key).decode())
    src = master_key_from_config(path)
    assert isinstance(src, EnvMasterKey)
    assert src.load() == env_key != file_key


def test_config_falls_back_to_file(tmp_path):
    path = tmp_path / "master.key"
    src = master_key_from_config(path)
    assert isinstance(src, FileMasterKey)
    assert src.load() == path.read_bytes()


def test_config_nothing_configured():
    with pytest.raises(VaultError, match="no master key configured"):
        master_key_from_config(None)
