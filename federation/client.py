"""Calls to another country's node: only to nodes on the trust list, authenticated by
a client assertion signed with this node's key (SMART Backend Services).

Flask-free. The token endpoint is found in the called node's
``.well-known/smart-configuration`` and must itself lie under that node's registered
FHIR base URL (a node cannot send our assertions elsewhere). Tokens are kept per
(node, clinician, scope) until shortly before they expire; a 401 gets one fresh token.
Redirects are never followed. A node that does not answer is :class:`NodeUnavailable`
(503 naming it), a refusal is :class:`RemoteRefused` with the node's OperationOutcome.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import requests

from federation import assertion
from federation.errors import NodeUnavailable, RemoteRefused
from federation.node_keys import NodeKeys
from federation.trust import TrustedNode, TrustList

TIMEOUT_S = 10.0
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_CACHED_TOKENS = 1000
FHIR_JSON = "application/fhir+json"
READ_SCOPE = "system/*.rs"
# What a node may do at another: read, and create the clinical records of a write-back.
WRITE_BACK_TYPES = ("Encounter", "Condition", "MedicationRequest", "Observation")
WRITE_SCOPE = " ".join([READ_SCOPE, *(f"system/{t}.c" for t in WRITE_BACK_TYPES)])


class NodeClient:
    def __init__(
        self,
        trust: TrustList,
        keys: NodeKeys | Callable[[], NodeKeys],
        country: str,
        timeout: float = TIMEOUT_S,
    ):
        self.trust = trust
        # the node's keys, or a provider of the current ones (rotation without restart)
        self._keys = keys if callable(keys) else (lambda: keys)
        self.country = country.upper()
        self.timeout = timeout
        self.http = requests.Session()
        self._tokens: dict[tuple, tuple[float, str]] = {}
        self._token_urls: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def keys(self) -> NodeKeys:
        return self._keys()

    # -- transport -----------------------------------------------------------------
    def _send(self, node: TrustedNode, method: str, url: str, **kwargs) -> requests.Response:
        self.trust.for_url(url)  # never a host off the trust list (also after a re-read)
        try:
            response = self.http.request(
                method, url, timeout=self.timeout, allow_redirects=False, stream=True, **kwargs
            )
            # read at most the limit: a node that sends more is cut off, not buffered
            body = response.raw.read(MAX_BODY_BYTES + 1, decode_content=True)
            response.close()
        except (requests.RequestException, OSError) as error:
            raise NodeUnavailable(
                f"the home node {node.country} ({node.fhir_base_url}) did not answer: "
                f"{type(error).__name__}"
            ) from None
        if len(body) > MAX_BODY_BYTES:
            raise NodeUnavailable(f"the node {node.country} answered more than 32 MiB")
        response._content = body  # what .json() / .text read (requests' own attribute)
        return response

    def _token_url(self, node: TrustedNode) -> str:
        with self._lock:
            known = self._token_urls.get(node.fhir_base_url)
        if known:
            return known
        config = self._send(
            node, "GET", node.fhir_base_url.rstrip("/") + "/.well-known/smart-configuration"
        )
        url = _json(config, node).get("token_endpoint") if config.status_code == 200 else None
        if not isinstance(url, str) or not node.owns(url):
            raise NodeUnavailable(f"the node {node.country} names no token endpoint of its own")
        with self._lock:
            self._token_urls[node.fhir_base_url] = url
        return url

    def token(self, node: TrustedNode, actor: dict | None, scope: str, fresh: bool = False) -> str:
        key = (node.fhir_base_url, json.dumps(actor, sort_keys=True), scope)
        with self._lock:
            cached = self._tokens.get(key)
        if cached and not fresh and cached[0] > time.monotonic():
            return cached[1]
        token_url = self._token_url(node)
        form = {
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion.sign(self.keys, self.country, token_url, actor),
        }
        response = self._send(node, "POST", token_url, data=form)
        body = _json(response, node)
        if response.status_code != 200 or not isinstance(body.get("access_token"), str):
            why = body.get("error_description") or body.get("error") or response.status_code
            # whatever status the token endpoint chose, to this node's caller it means
            # the home node does not (or no longer) accept this node: forbidden
            raise RemoteRefused(
                f"the node {node.country} refused this node's assertion: {why}", 403
            )
        lifetime = body.get("expires_in") if isinstance(body.get("expires_in"), int) else 60
        now = time.monotonic()
        with self._lock:
            if len(self._tokens) > MAX_CACHED_TOKENS:  # one per clinician: drop the expired
                self._tokens = {k: v for k, v in self._tokens.items() if v[0] > now}
            self._tokens[key] = (now + max(lifetime - 30, 1), body["access_token"])
        return body["access_token"]

    def call(
        self,
        method: str,
        url: str,
        *,
        actor: dict | None,
        scope: str = READ_SCOPE,
        **kwargs,
    ) -> requests.Response:
        """An authenticated call to the trusted node serving ``url``."""
        node = self.trust.for_url(url)
        headers = {"Accept": FHIR_JSON, **kwargs.pop("headers", {})}
        for attempt in (0, 1):
            token = self.token(node, actor, scope, fresh=attempt == 1)
            headers["Authorization"] = f"Bearer {token}"
            response = self._send(node, method, url, headers=headers, **kwargs)
            # only a bearer challenge asks for a new token; a share link's manifest
            # answers a wrong passcode with a bare 401, and a retry would spend a try
            if response.status_code != 401 or "WWW-Authenticate" not in response.headers:
                return response
        return response

    def fhir(self, method: str, url: str, *, actor: dict | None, **kwargs) -> dict:
        """A FHIR call whose success body is returned; a refusal raises RemoteRefused."""
        response = self.call(method, url, actor=actor, **kwargs)
        node = self.trust.for_url(url)
        body = _json(response, node)
        if response.status_code >= 400:
            raise RemoteRefused(
                _diagnostics(body, node, response.status_code), response.status_code, body
            )
        return body


def _json(response: requests.Response, node: TrustedNode) -> dict:
    try:
        body = response.json()
    except ValueError:
        if response.status_code >= 500:
            raise NodeUnavailable(
                f"the home node {node.country} failed (HTTP {response.status_code})"
            ) from None
        return {}
    return body if isinstance(body, dict) else {}


def _diagnostics(body: dict, node: TrustedNode, status: int) -> str:
    issues = body.get("issue") if isinstance(body.get("issue"), list) else []
    said = "; ".join(str(i.get("diagnostics")) for i in issues[:2] if isinstance(i, dict))
    if isinstance(body.get("remainingAttempts"), int):  # a share link's wrong passcode
        said = f"wrong passcode, {body['remainingAttempts']} attempt(s) left"
    return f"the home node {node.country} answered {status}" + (f": {said}" if said else "")
