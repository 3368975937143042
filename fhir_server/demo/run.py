"""``phrx demo``: one node on embedded defaults (SQLite + local anvil chain), the study's
scenario checked step by step (see :mod:`fhir_server.demo.scenario`).

The exit status is 0 only if every step behaved.
"""

from __future__ import annotations

import contextlib
import io
import secrets
import signal
import tempfile
import threading
import time
from pathlib import Path

from fhir_server.demo.scenario import Scenario


class DemoAdmin:
    """What the operator does on the node itself: accounts and scripted tokens."""

    def __init__(self, app, base: str):
        self.smart = app.extensions["phrx.smart"].service
        self.base = base

    def add_user(self, username: str, role: str, fhir_user: str) -> None:
        if self.smart.users.get(username) is None:
            self.smart.users.add(username, role, fhir_user, secrets.token_urlsafe(18))

    def token(self, scope: str, username: str | None) -> str:
        from fhir_server.smart.operator import issue_operator_token

        return issue_operator_token(self.smart, self.base, scope, username=username, lifetime=3600)


def _open_node(data_dir: Path):
    from fhir_server.node import Node, NodeConfig

    config = NodeConfig(data_dir=data_dir, chain="dev", anchor_interval=1.0, anchor_country="TW")
    try:
        return Node(config), "local anvil dev chain"
    except Exception as error:  # no anvil here: anchoring steps will report it
        print(f"  (dev chain unavailable: {str(error)[:120]}; running without a chain)")
        return Node(NodeConfig(data_dir=data_dir)), "no chain"


def _start_network(root: Path):
    """(the three-country network, how it runs) or (None, why it could not start)."""
    from fhir_server.demo.network import Network

    try:
        network = Network(root).start()
    except Exception as error:  # no anvil, a loopback address refused, ...
        return None, str(error)[:200]
    return network, "one anvil chain"


def _run_journey(network) -> int:
    from fhir_server.demo.journey import Journey

    print("\nAcross borders: three country nodes, each an authority on one chain")
    for country, member in network.nodes.items():
        print(f"  {country}  {member.base}")
    print(f"  chain {network.chain_url} (anvil pid {network.dev.pid})\n", flush=True)
    return Journey(network).run()


def _listen(app, port: int):
    """The demo's HTTP server; a busy port is an OSError (one line from the CLI, after
    run_demo's cleanup) where werkzeug would print two lines and ``sys.exit(1)``."""
    from fhir_server.serving import ThreadedServer

    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return ThreadedServer(app, port=port).start()
    except (OSError, SystemExit) as error:
        reason = said.getvalue().strip().splitlines()[:1] or [str(error)]
        raise OSError(f"cannot listen on 127.0.0.1:{port}: {reason[0]}") from None


class StopSignals:
    """SIGTERM and SIGHUP (``timeout``, a service manager, a closed terminal) end the demo as
    Ctrl-C does, with a KeyboardInterrupt in the main thread, so every exit path runs the
    cleanup: the server, the node with its anvil child, the temporary data dir.

    While :meth:`held` a stop waits for the held section to finish: opening the node starts
    anvil, and a stop between its start and ``node`` being bound would leave it running,
    owned by nobody; the cleanup itself is not interrupted either.
    """

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self) -> None:
        self.holding = False
        self.pending: int | None = None
        self.previous: dict[int, object] = {}

    def install(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # else Python refuses
            for name in self.SIGNALS:
                number = getattr(signal, name)
                self.previous[number] = signal.signal(number, self._stop)
        return self

    def restore(self) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)  # type: ignore[arg-type]
        self.previous.clear()

    def _stop(self, signum: int, _frame) -> None:
        if self.holding:
            self.pending = signum
            return
        raise KeyboardInterrupt(signal.Signals(signum).name)

    @contextlib.contextmanager
    def held(self):
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.pending is not None:
            raise KeyboardInterrupt(signal.Signals(self.pending).name)


def run_demo(data_dir: Path | None, port: int, exit_after: bool) -> int:  # noqa: PLR0912, PLR0915
    from fhir_server.app import create_app
    from fhir_server.node import init_data_dir
    from fhir_server.serving import configure_logging

    signals = StopSignals().install()
    temp = node = server = network = None
    failures = 1
    try:
        with signals.held():
            if data_dir is None:
                temp = tempfile.TemporaryDirectory(prefix="phrx-demo-")
                data_dir = Path(temp.name)
            init_data_dir(data_dir)
            configure_logging(data_dir)  # server-side failures go to DATA/logs, not the output
            node, chain = _open_node(data_dir)
        print(f"PHRX demo node TW: data dir {data_dir} (SQLite, encrypted at rest), {chain}")
        pid = node.anchoring.chain.dev.pid if node.anchoring and node.anchoring.chain.dev else None
        if pid:
            print(f"Chain      anvil pid {pid}, state in {data_dir / 'chain'}")
        app = create_app({"NODE": node})
        server = _listen(app, port)
        base = f"http://127.0.0.1:{server.port}/fhir"
        print(f"FHIR base  {base}\nMetadata   {base}/metadata")
        print(
            f"Token      phrx token --data-dir {data_dir} --base-url {base} "
            "--scope 'system/*.cruds'\n",
            flush=True,
        )
        failures = Scenario(base, DemoAdmin(app, base), data_dir / "phrx.sqlite3").run()
        with signals.held():
            network, started = _start_network(data_dir / "countries")
        if network is not None:
            failures += _run_journey(network)
        else:
            failures += 1
            print(f"  [FAIL] three-country network: {started}")
        print(f"\n{'all steps behaved' if not failures else f'{failures} step(s) FAILED'}")
        if not exit_after and not failures:
            for country, member in network.nodes.items():
                print(f"{country} node   {member.base}  (log: {member.node.config.data_dir}/logs)")
            print("Serving until Ctrl-C …", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        signals.holding = True  # a second stop must not cut the cleanup short
        try:
            if network is not None:
                network.close()
            if server is not None:
                server.stop()
            if node is not None:
                node.close()  # stops anvil (SIGTERM, then SIGKILL if it hangs)
            if temp is not None:
                temp.cleanup()
        finally:
            signals.restore()
    return 1 if failures else 0
