"""A local anvil dev chain whose state persists in a data directory.

Only for development and tests; production nodes talk to Besu QBFT via ChainClient.from_url.
"""

from __future__ import annotations

import ctypes
import json
import platform
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from anchoring.contracts.build import REPO_ROOT

STATE_FILE = "anvil-state.json"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _anvil_binary() -> Path:
    """anvil's own executable where npm installed the platform's package, else npm's
    ``node`` wrapper (which runs it as a child: two processes to stop instead of one)."""
    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
    system = platform.system().lower()
    own = REPO_ROOT / "node_modules" / "@foundry-rs" / f"anvil-{system}-{machine}" / "bin" / "anvil"
    return own if own.is_file() else REPO_ROOT / "node_modules" / ".bin" / "anvil"


ANVIL_BIN = _anvil_binary()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started anvil dies, even
    by SIGKILL, so that no chain outlives its node (Linux; elsewhere a no-op)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class DevChainError(RuntimeError):
    """anvil is missing, did not start, or died."""


def anvil_available(binary: Path = ANVIL_BIN) -> bool:
    return binary.is_file()


def free_port() -> int:
    # Racy by nature (the port is released before anvil binds it); start() retries.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rpc_ready(url: str) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    req = urllib.request.Request(  # noqa: S310 - url is our own http://127.0.0.1
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=1) as resp:  # noqa: S310
            return "result" in json.loads(resp.read())
    except OSError:
        return False


class DevChain:
    """Start/stop one anvil process; use as a context manager so it never outlives you."""

    def __init__(
        self,
        data_dir: Path,
        binary: Path = ANVIL_BIN,
        state_interval: int = 1,
        startup_timeout: float = 20.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.binary = Path(binary)
        self.state_interval = state_interval
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def state_file(self) -> Path:
        return self.data_dir / STATE_FILE

    @property
    def url(self) -> str:
        if self.port is None:
            raise DevChainError("not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self, attempts: int = 3) -> DevChain:
        if self._proc is not None:
            raise DevChainError("already running")
        if not anvil_available(self.binary):
            raise DevChainError(f"anvil not found at {self.binary} (run `npm ci`)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            if self._try_start(free_port()):
                return self
        raise DevChainError("anvil did not answer on 127.0.0.1")

    def _try_start(self, port: int) -> bool:
        argv = [str(self.binary), "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--state", str(self.state_file), "--state-interval", str(self.state_interval)]
        argv += ["--chain-id", "31337", "--silent"]
        log = (self.data_dir / "anvil.log").open("ab")
        self._proc = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            argv,
            stdout=log,
            stderr=log,
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
        log.close()  # the child keeps its own descriptor
        self.port = port
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:  # e.g. port taken between probe and bind
                break
            if rpc_ready(self.url):
                return True
            time.sleep(0.05)
        self.stop()
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM lets anvil write its state file; SIGKILL only if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)

    def __enter__(self) -> DevChain:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
