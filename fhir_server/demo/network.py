"""Country nodes on one shared chain, each on its own loopback address, joined into a
federation by vote: what ``phrx demo`` runs and what the federation tests stand on.

Each node is a full node (its own data dir, SQLite store, keys and SMART server)
served in this process on ``127.0.0.N`` (its own "host"); the chain is one anvil
(``phrx chain dev``). Joining follows the AuthorityRegistry's rules: the first node
founds the open registry, each next one asks to join and the current authorities
vote until more than 2/3 of them agreed.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

from fhir_server.serving import ThreadedServer

HOSTS = {"TW": "127.0.0.2", "PH": "127.0.0.3", "TH": "127.0.0.4"}


@dataclass
class CountryNode:
    country: str
    node: object
    app: object
    server: ThreadedServer
    base: str

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.server.stop()
        with contextlib.suppress(Exception):
            self.node.close()


class Network:
    """``ports``: a fixed port per country (default: free ones)."""

    def __init__(
        self,
        root: Path,
        countries=("TW", "PH", "TH"),
        anchor_interval: float = 1.0,
        ports: dict[str, int] | None = None,
    ):
        self.root = Path(root)
        self.countries = countries
        self.anchor_interval = anchor_interval
        self.ports = dict(ports or {})
        self.dev = None
        self.nodes: dict[str, CountryNode] = {}

    def start(self) -> Network:
        return self.start_chain().start_nodes()

    def start_chain(self) -> Network:
        from anchoring.node_chain import open_shared_dev_chain

        self.dev, _ = open_shared_dev_chain(self.root / "chain")
        return self

    def start_nodes(self) -> Network:
        """Each country's node, joined by vote as it comes up; on any failure every
        node started so far and the chain are stopped again."""
        try:
            for country in self.countries:
                self.nodes[country] = self._start_node(country)
                self.join(country)
        except BaseException:
            self.close()
            raise
        return self

    @property
    def chain_url(self) -> str:
        return self.dev.url

    def _start_node(self, country: str) -> CountryNode:
        from fhir_server.app import create_app
        from fhir_server.node import Node, NodeConfig

        data_dir = self.root / country.lower()
        config = NodeConfig(
            data_dir=data_dir,
            chain=self.dev.url,
            anchor_interval=self.anchor_interval,
            anchor_country=country,
        )
        node = Node(config)
        host = HOSTS.get(country, "127.0.0.1")
        port = self.ports.get(country, 0)
        try:
            app = create_app({"NODE": node})
            server = _listen(app, host, port, data_dir / "logs" / "requests.log")
        except BaseException:
            node.close()
            raise
        base = f"http://{host}:{server.port}/fhir"
        return CountryNode(country, node, app, server, base)

    def join(self, country: str) -> None:
        """``country`` asks to join; the authorities vote until it is admitted."""
        member = self.nodes[country]
        federation = member.node.federation
        client = member.node.anchoring.chain.client()
        reg = federation.registration(member.base)
        request = client.request_join(
            country, reg["fhir_base_url"], reg["signing_jwk"], reg["encryption_key"]
        )
        admitted = request.executed
        for other in self.nodes.values():
            if admitted or other.country == country:
                continue
            voter = other.node.anchoring.chain.client()
            if voter.address in {a.address for a in voter.authorities()}:
                admitted = voter.vote(request.proposal_id).executed
        if not admitted:
            raise RuntimeError(f"{country} was not admitted: {request.proposal_id} pending")

    def authorities(self) -> list:
        first = next(iter(self.nodes.values()))
        return first.node.anchoring.chain.client().authorities()

    def close(self) -> None:
        for member in self.nodes.values():
            member.close()
        if self.dev is not None:
            self.dev.stop()
            self.dev = None


def _listen(app, host: str, port: int, request_log: Path) -> ThreadedServer:
    """The node's server; a busy port is one clear OSError (werkzeug would print two
    lines and ``sys.exit(1)``)."""
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return ThreadedServer(app, host=host, port=port, request_log=request_log).start()
    except (OSError, SystemExit) as error:
        reason = said.getvalue().strip().splitlines()[:1] or [str(error)]
        raise OSError(f"cannot listen on {host}:{port}: {reason[0]}") from None
