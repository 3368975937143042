"""The chain account key is created owner-only, in an owner-only keys/ directory."""

from __future__ import annotations

import os
import stat

from anchoring.node_chain import load_or_create_key


def test_chain_key_and_its_directory_are_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        load_or_create_key(tmp_path / "data")
    finally:
        os.umask(old)
    keys = tmp_path / "data" / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in keys.iterdir())
