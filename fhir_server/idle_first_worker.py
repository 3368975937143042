"""The gunicorn ``gthread`` workers of ``phrx serve``: FHIR error answers, and one
that leaves new connections to idle sibling workers.

FHIR error answers (:class:`FhirThreadWorker`, every worker of ``phrx serve``): a
request gunicorn itself refuses before the app sees it -- a request line beyond
4,094 bytes, headers beyond 100 fields or 8,190 bytes, a malformed request line or
header -- was answered with gunicorn's HTML error page. It is answered with the
same status (414, 431, 400 ...) and a FHIR OperationOutcome as
``application/fhir+json``, as every other error of the node (issue #14).

Idle first (:class:`IdleFirstThreadWorker`, two or more workers):

Why: gunicorn's ``gthread`` worker accepts a connection whenever it holds fewer
than ``worker_connections`` (1,000) of them, so a worker busy with one request
takes the next connection as readily as an idle sibling does. PHRX's requests are
CPU-bound Python (validation, sealing, SQLite in-process): two of them in one
worker share its GIL -- one core -- while the sibling process idles. In the ingest
benchmark (2 workers, 2 clients posting Bundles) both Bundles ran in the same
worker for 28-39% of the run.

What: a worker with a request in flight does not accept at once. It watches the
listening socket instead, and when a connection arrives it waits ``MAX_DEFER_S``
-- long enough for any idle sibling to take it (one wakes and accepts within a
millisecond) -- and accepts only if the connection is still waiting then: every
sibling is busy too, and it is served here, interleaved, as gthread would. A
request blocked on I/O (a chain RPC, a client's JWKS) therefore delays a new
connection by at most ``MAX_DEFER_S``. No timer runs while nothing arrives: a
first version that looked at the listener every 10 ms took the GIL from the
request thread 100 times a second and cost ~7% of ingest throughput.

Used by ``phrx serve`` with two or more workers; with one there is no sibling to
leave a connection to. Kept-alive connections are not affected: their next
request is served by the worker that holds them.
"""

from __future__ import annotations

import select
import selectors
import ssl
import time
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus

from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers.gthread import ThreadWorker

from fhir_server import fastjson
from fhir_server.errors import Issue, operation_outcome

MAX_DEFER_S = 0.02

# gunicorn's statuses for the requests it refuses (workers/base.py handle_error);
# any other ParseException is a 400, any other error a 500.
_REFUSALS: tuple[tuple[type | tuple[type, ...], int, str], ...] = (
    # a header the app tried to send is the app's fault
    ((http_errors.InvalidResponseHeader, http_errors.InvalidResponseHeaderName), 500, "exception"),
    (http_errors.LimitRequestLine, 414, "too-long"),
    (http_errors.LimitRequestHeaders, 431, "too-long"),
    (http_errors.UnsupportedTransferCoding, 501, "not-supported"),
    (http_errors.ConfigurationProblem, 500, "exception"),
    (http_errors.ExpectationFailed, 417, "not-supported"),
    ((http_errors.ForbiddenProxyRequest, ssl.SSLError), 403, "forbidden"),
    (http_errors.ParseException, 400, "invalid"),
)
_HEADER_ERRORS = (http_errors.InvalidHeader, http_errors.InvalidHeaderName)


def refusal(exc: BaseException, cfg) -> tuple[int, str, str]:
    """(status, IssueType code, diagnostics) for an error gunicorn raised on a request."""
    status, code = next(
        ((status, code) for kinds, status, code in _REFUSALS if isinstance(exc, kinds)),
        (500, "exception"),
    )
    if status == 414:
        text = f"The request line is longer than {cfg.limit_request_line} bytes."
    elif status == 431:
        text = (
            f"The request headers exceed this server's limits ({cfg.limit_request_fields} "
            f"fields of at most {cfg.limit_request_field_size} bytes)."
        )
    elif status == 500:
        text = "Internal server error."  # the traceback goes to the log only
    else:
        text = f"Malformed HTTP request: {str(exc)[:200]}"
    return status, code, text


def outcome_response(status: int, code: str, diagnostics: str) -> bytes:
    """A complete HTTP/1.1 response carrying one OperationOutcome; closes the connection."""
    body = fastjson.dumps(operation_outcome([Issue(code, diagnostics)]))
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/fhir+json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class FhirThreadWorker(ThreadWorker):
    """``gthread`` answering the requests gunicorn refuses with an OperationOutcome
    (gunicorn's ``handle_error`` writes an HTML page: ``util.write_error``)."""

    def handle_error(self, req, client, addr, exc) -> None:
        request_start = datetime.now()
        addr = addr or ("", -1)  # unix socket
        status, code, diagnostics = refusal(exc, self.cfg)
        if status == 500:
            self.log.exception("Error handling request %s", getattr(req, "uri", "(no URI read)"))
        else:
            self.log.warning("Invalid request from ip=%s: %s", addr[0], str(exc)[:200])
        if req is None and isinstance(exc, _HEADER_ERRORS):
            req = getattr(exc, "req", None)  # for the access log, as gunicorn does
        if req is not None:
            environ = default_environ(req, client, self.cfg)
            environ["REMOTE_ADDR"] = addr[0]
            environ["REMOTE_PORT"] = str(addr[1])
            response = Response(req, client, self.cfg)
            response.status = f"{status} {HTTPStatus(status).phrase}"
            response.response_length = len(diagnostics)
            self.log.access(response, req, environ, datetime.now() - request_start)
        try:
            util.write_nonblock(client, outcome_response(status, code, diagnostics))
        except Exception:  # the client may be gone; nothing more to tell it
            self.log.debug("Failed to send error message.")


class AcceptPolicy:
    """When a worker with ``in_flight`` requests accepts (Flask- and gunicorn-free,
    so that the rule is tested on its own)."""

    def __init__(
        self, max_defer_s: float = MAX_DEFER_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_defer_s = max_defer_s
        self._clock = clock
        self.waiting_since: float | None = None  # a connection seen waiting, not taken

    def saw_connection(self) -> None:
        if self.waiting_since is None:
            self.waiting_since = self._clock()

    def may_accept(self, in_flight: int, connection_waiting: bool) -> bool:
        if in_flight == 0 or not connection_waiting:
            self.waiting_since = None
            return in_flight == 0
        self.saw_connection()
        return self.defer_left() == 0.0

    def defer_left(self) -> float:
        """Seconds until a connection seen waiting may be taken (0: now)."""
        if self.waiting_since is None:
            return self.max_defer_s
        return max(0.0, self.max_defer_s - (self._clock() - self.waiting_since))


class IdleFirstThreadWorker(FhirThreadWorker):
    """:class:`FhirThreadWorker` with :class:`AcceptPolicy` (hooks of gunicorn 27's ThreadWorker:
    ``enqueue_req``, ``finish_request``, ``set_accept_enabled`` and
    ``wait_for_and_dispatch_events``; a test serves through it)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight = 0
        self.accept_policy = AcceptPolicy()
        self._watching = False  # listener registered to notice, not to accept

    def enqueue_req(self, conn) -> None:
        self.in_flight += 1
        super().enqueue_req(conn)
        if self._accepting:
            self.set_accept_enabled(True)  # the policy decides again

    def finish_request(self, conn, fs) -> None:
        self.in_flight -= 1
        super().finish_request(conn, fs)  # may enqueue the connection's next request

    def set_accept_enabled(self, enabled: bool) -> None:
        # gunicorn's loop asks for accepting on every round while it has room
        # (rounds end on events: a request done, a connection seen, a timeout).
        enabled = enabled and self.alive
        accept = enabled and self._may_accept()
        if accept or not enabled:
            self._watch(False)
        super().set_accept_enabled(accept)
        if enabled and not accept and self.accept_policy.waiting_since is None:
            self._watch(True)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        if not self._accepting and self.accept_policy.waiting_since is not None:
            timeout = min(timeout, self.accept_policy.defer_left())
        super().wait_for_and_dispatch_events(timeout)

    def _watch(self, on: bool) -> None:
        if on == self._watching:
            return
        for listener in self.sockets:
            if on:
                self.poller.register(listener, selectors.EVENT_READ, self._connection_seen)
            else:
                self.poller.unregister(listener)
        self._watching = on

    def _connection_seen(self, _listener) -> None:
        self._watch(False)  # level-triggered: it would fire again until taken
        self.accept_policy.saw_connection()

    def _may_accept(self) -> bool:
        return self.accept_policy.may_accept(self.in_flight, self._connection_waiting())

    def _connection_waiting(self) -> bool:
        if self.in_flight == 0:
            return False  # not needed: an idle worker accepts anyway
        readable, _, _ = select.select(self.sockets, [], [], 0)
        return bool(readable)
