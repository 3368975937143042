"""``phrx demo`` leaves neither its anvil process nor its temporary data dir behind,
however it ends: a busy port, SIGTERM (``timeout``, a service manager), SIGINT sent to
it alone (Ctrl-C in a terminal also reaches anvil; ``kill -INT`` does not).

Each demo runs with ``TMPDIR`` set to a private directory: its temporary data dir is
created there, and anvil's command line names it (``--state DIR/chain/...``), so "no
process mentions that directory and the directory is empty" is the whole check.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from anchoring.devchain import anvil_available
from fhir_server.demo.run import StopSignals

PHRX = Path(sys.executable).parent / "phrx"


@pytest.fixture
def phrx_demo(tmp_path):
    if not PHRX.exists():
        pytest.skip(f"{PHRX} is not installed (pip install -e .)")
    if not anvil_available():
        pytest.skip("anvil is not installed (npm ci): the demo would run without a chain")
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    env.pop("PHRX_DATA_DIR", None)
    return tmp, env


def processes_naming(text: str) -> list[int]:
    """PIDs of live processes whose command line contains ``text`` (zombies have none)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if text.encode() in cmdline:
            found.append(int(entry.name))
    return found


def assert_nothing_left(tmp: Path, anvil_pid: int | None = None) -> None:
    assert processes_naming(str(tmp)) == [], "an anvil of the demo is still running"
    if anvil_pid is not None:
        assert anvil_pid not in processes_naming("anvil")
    assert sorted(p.name for p in tmp.iterdir()) == [], "the demo's temporary data dir is left"


@pytest.mark.slow
def test_busy_port_stops_anvil_and_removes_the_data_dir(phrx_demo):
    tmp, env = phrx_demo
    with socket.socket() as busy:
        busy.bind(("127.0.0.2", 0))  # the TW node's address
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [str(PHRX), "demo", "--exit", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
    assert result.returncode == 1
    assert "anvil pid" in result.stdout, result.stdout  # the chain had started
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors[-1].startswith(f"phrx: error: cannot listen on 127.0.0.2:{port}"), errors
    assert "Traceback" not in result.stderr
    assert_nothing_left(tmp)


def _lines(stream) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue, pattern: str, seen: list[str]) -> re.Match:
    while True:
        line = lines.get(timeout=90)
        if line is None:
            pytest.fail("the demo exited early:\n" + "".join(seen))
        seen.append(line)
        if match := re.search(pattern, line):
            return match


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_signal_after_start_stops_anvil_and_removes_the_data_dir(phrx_demo, tmp_path, stop):
    tmp, env = phrx_demo
    with (tmp_path / "stderr.log").open("w") as stderr:
        proc = subprocess.Popen(
            [str(PHRX), "demo", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
    try:
        lines, seen = _lines(proc.stdout), []
        data_dir = Path(_wait_for(lines, r"data dir (\S+) ", seen).group(1))
        anvil_pid = int(_wait_for(lines, r"anvil pid (\d+)", seen).group(1))
        _wait_for(lines, r"^FHIR base", seen)  # serving, the checks under way
        assert data_dir.parent == tmp
        assert anvil_pid in processes_naming("anvil")
        proc.send_signal(stop)
        returncode = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert returncode in (0, 1)  # exited through its cleanup, not killed by the signal
    assert not data_dir.exists()
    assert_nothing_left(tmp, anvil_pid)


def test_a_stop_while_held_waits_for_the_held_section():
    """Opening the node (anvil starting) is held: a SIGTERM then ends the demo right after."""
    before = signal.getsignal(signal.SIGTERM)
    signals = StopSignals().install()
    steps = []
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"), signals.held():
            os.kill(os.getpid(), signal.SIGTERM)
            for step in range(1000):  # the handler runs between bytecodes: give it many
                steps.append(step)
        assert len(steps) == 1000  # not cut short
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            for step in range(1000):
                steps.append(step)
        assert len(steps) < 2000  # outside a held section: at once
    finally:
        signals.restore()
    assert signal.getsignal(signal.SIGTERM) == before
