"""``phrx demo``: one node on embedded defaults (SQLite + local anvil chain), the study's
scenario checked step by step (see :mod:`fhir_server.demo_scenario`).

The exit status is 0 only if every step behaved.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path

from fhir_server.demo_scenario import Scenario


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


def run_demo(data_dir: Path | None, port: int, exit_after: bool) -> int:
    from fhir_server.app import create_app
    from fhir_server.serving import ThreadedServer

    temp = None
    if data_dir is None:
        temp = tempfile.TemporaryDirectory(prefix="phrx-demo-")
        data_dir = Path(temp.name)
    from fhir_server.node import init_data_dir
    from fhir_server.serving import configure_logging

    init_data_dir(data_dir)
    configure_logging(data_dir)  # server-side failures go to DATA/logs, not the demo's output
    node, chain = _open_node(data_dir)
    app = create_app({"NODE": node})
    server = ThreadedServer(app, port=port).start()
    base = f"http://127.0.0.1:{server.port}/fhir"
    print(f"PHRX demo node TW: data dir {data_dir} (SQLite, encrypted at rest), {chain}")
    print(f"FHIR base  {base}\nMetadata   {base}/metadata")
    print(
        f"Token      phrx token --data-dir {data_dir} --base-url {base} --scope 'system/*.cruds'\n"
    )
    failures = 1
    try:
        failures = Scenario(base, DemoAdmin(app, base), data_dir / "phrx.sqlite3").run()
        print(f"\n{'all steps behaved' if not failures else f'{failures} step(s) FAILED'}")
        if not exit_after and not failures:
            print("Serving until Ctrl-C …")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        node.close()
        if temp:
            temp.cleanup()
    return 1 if failures else 0
