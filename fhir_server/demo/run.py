"""``phrx demo``: the cross-border scenario (``../shared/scenario.md``) on three country
nodes -- TW, PH, TH, each on its own loopback address (127.0.0.2-4) with its own data
dir (SQLite, encrypted at rest), all authorities of one local anvil chain, joined by
vote -- checked step by step (see :mod:`fhir_server.demo.journey`).

The exit status is 0 only if every step behaved. Without ``--exit`` the nodes keep
serving until Ctrl-C (or SIGTERM / SIGHUP); every exit path stops the nodes and the
chain and removes a temporary data dir.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
import time
from pathlib import Path

from fhir_server.demo.journey import Journey


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


def run_demo(data_dir: Path | None, port: int, exit_after: bool) -> int:
    from fhir_server.demo.network import Network
    from fhir_server.node import init_data_dir
    from fhir_server.serving import configure_logging

    signals = StopSignals().install()
    temp = network = journey = None
    failures = 1
    try:
        with signals.held():
            if data_dir is None:
                temp = tempfile.TemporaryDirectory(prefix="phrx-demo-")
                data_dir = Path(temp.name)
            init_data_dir(data_dir)
            configure_logging(data_dir)  # server-side failures go to DATA/logs, not the output
            network = Network(data_dir / "countries", ports={"TW": port} if port else None)
            network.start_chain()
        print(f"PHRX demo: data dir {data_dir} (three country nodes, SQLite each, encrypted)")
        print(
            f"Chain      anvil pid {network.dev.pid}, {network.chain_url}, state in "
            f"{network.root / 'chain'}",
            flush=True,
        )
        with signals.held():
            network.start_nodes()
        _print_nodes(network)
        journey = Journey(network)
        failures = journey.run()
        print(f"\n{'all steps behaved' if not failures else f'{failures} step(s) FAILED'}")
        if not exit_after and not failures:
            _print_sign_in(network, journey.passwords)
            print("Serving until Ctrl-C …", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        signals.holding = True  # a second stop must not cut the cleanup short
        try:
            if network is not None:
                network.close()  # every node, then anvil (SIGTERM, SIGKILL if it hangs)
            if temp is not None:
                temp.cleanup()
        finally:
            signals.restore()
    return 1 if failures else 0


def _print_nodes(network) -> None:
    tw = network.nodes["TW"]
    print(f"FHIR base  {tw.base} (TW, the patient's home node)")
    for country, member in network.nodes.items():
        print(f"  {country}  {member.base}  log {member.node.config.data_dir / 'logs'}")
    print(f"Metadata   {tw.base}/metadata\n", flush=True)


def _print_sign_in(network, passwords: dict) -> None:
    print("\nSign in (SMART standalone launch; passwords made for this run):")
    for username, (country, password) in passwords.items():
        print(f"  {username:10} at {country}  {network.nodes[country].base}  password {password}")
