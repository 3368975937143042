"""No dev chain outlives the process that started it, however that process ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from anchoring.devchain import ANVIL_BIN, anvil_available

pytestmark = pytest.mark.skipif(not anvil_available(), reason="anvil not installed (npm ci)")

STARTER = """
import sys
from anchoring.devchain import DevChain
chain = DevChain(sys.argv[1]).start()
print(chain.pid, flush=True)
sys.stdin.read()
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_anvil_is_its_own_executable_when_npm_installed_it():
    assert ANVIL_BIN.name == "anvil" and ".bin" not in ANVIL_BIN.parts


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_anvil_stops_when_its_starter_dies(tmp_path, how):
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path / "chain")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    anvil = int(starter.stdout.readline())
    assert _alive(anvil)
    os.kill(starter.pid, how)
    starter.wait(timeout=30)
    deadline = time.monotonic() + 30  # a bound on the wait, not a speed requirement
    while _alive(anvil) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(anvil):
        os.kill(anvil, signal.SIGKILL)
        pytest.fail("anvil outlived the process that started it")
