"""The daemon's HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz``, ``/status``, requeue.

Served by waitress: one event loop holds every connection and a fixed pool of
``EndpointSettings.workers`` threads runs the requests, so an idle or slow
connection costs a socket, never a thread. Connections idle past
``idle_timeout_seconds`` are closed; beyond ``connection_limit`` new ones wait
in the kernel's backlog. A thousand half-open connections therefore cannot
exhaust the daemon's threads or keep ``/healthz`` from answering.

``POST /requeue/NAME`` (what ``ecsop retry`` calls) makes the daemon observe a
release, and so call AWS, at once. It is guarded in this order:

1. who: with an API token configured, only ``Authorization: Bearer <token>``
   (compared in constant time), else 401; without one, only loopback clients,
   else 403. Unauthenticated callers learn nothing, not even which names exist;
2. what: a name that is not a release (the ``requeue`` callback returns False,
   or it cannot be a release name) is 404;
3. how often: a request within ``requeue_coalesce_seconds`` of an accepted one
   for the same release is coalesced into it (202, nothing more is queued);
   beyond that each release has a token bucket (``requeue_burst`` tokens, one
   more every ``requeue_every_seconds``) and a request without a token is 429
   with ``Retry-After``.

``per_release`` adds fields to each release of ``/status``, read only when
asked (its recent deployments: ``ecsop.controller.history``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

import waitress.server
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ecsop.observability.status import StatusStore
from ecsop.spec.model import NAME_PATTERN

_REQUEUE_PATH = re.compile(r"^/requeue/([^/]*)$")
_RELEASE_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class EndpointSettings:
    """How the HTTP endpoint spends threads and connections, and how often it requeues."""

    workers: int = 4
    """Threads that run requests; every other connection waits without a thread."""
    connection_limit: int = 256
    """Open connections at most; further ones wait in the listen backlog."""
    idle_timeout_seconds: float = 10.0
    """A connection with no request in progress and silent this long is closed."""
    requeue_burst: int = 3
    """Requeues of one release accepted back to back (its token bucket's size)."""
    requeue_every_seconds: float = 10.0
    """One more requeue of a release is allowed per this many seconds (the refill)."""
    requeue_coalesce_seconds: float = 1.0
    """A requeue this soon after an accepted one is the same request: 202, nothing queued."""


class ListenError(Exception):
    """The endpoint's address cannot be bound (in use, not an address of this host, ...)."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {cause.strerror or cause}")
        self.host, self.port = host, port


class Admission(Enum):
    """What became of one requeue request."""

    QUEUED = "queued"
    """Accepted: the callback queued the release."""
    COALESCED = "coalesced"
    """Folded into an accepted request a moment ago; nothing more queued."""
    UNKNOWN = "unknown"
    """No such release (the callback said so); no token spent."""
    LIMITED = "limited"
    """The release's token bucket is empty: try again after ``retry_after``."""


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    queued_at: float


class RequeueLimiter:
    """Coalescing and a token bucket per release, in front of the ``requeue`` callback.

    Buckets exist only for releases the callback knew (an unknown name's bucket
    is dropped again), so their number is bounded by the spec directory, not by
    what callers send. Thread-safe; ``monotonic`` is injected for tests.
    """

    def __init__(
        self, settings: EndpointSettings, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, name: str, requeue: Callable[[str], bool]) -> tuple[Admission, float]:
        """(what happened, seconds to wait before asking again when LIMITED)."""
        every, burst = self._settings.requeue_every_seconds, self._settings.requeue_burst
        with self._lock:
            now = self._monotonic()
            before = self._buckets.get(name)
            tokens = float(burst)
            if before is not None:
                if now - before.queued_at < self._settings.requeue_coalesce_seconds:
                    return Admission.COALESCED, 0.0
                tokens = min(float(burst), before.tokens + (now - before.stamp) / every)
            if tokens < 1:
                return Admission.LIMITED, (1 - tokens) * every
            self._buckets[name] = _Bucket(tokens - 1, now, now)
        if requeue(name):
            return Admission.QUEUED, 0.0
        with self._lock:  # not a release: forget it, so unknown names hold no memory
            if before is None:
                self._buckets.pop(name, None)
            else:
                self._buckets[name] = before
        return Admission.UNKNOWN, 0.0


class Endpoint:
    """The HTTP endpoint on ``host:port``; ``start`` serves it on a thread, ``stop`` ends it."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        statuses: StatusStore,
        ready: Callable[[], tuple[bool, str]],
        requeue: Callable[[str], bool],
        extra_status: Callable[[], dict[str, Any]] = dict,
        healthy: Callable[[], tuple[bool, str]] = lambda: (True, "ok"),
        settings: EndpointSettings | None = None,
        api_token: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        per_release: Callable[[Sequence[str]], Mapping[str, Mapping[str, Any]]] = lambda names: {},
        releases: Callable[[], list[dict[str, Any]]] | None = None,
        route: Callable[[str, str, str], tuple[int, str] | None] | None = None,
    ) -> None:
        """``releases`` replaces ``statuses`` in ``/status`` (with several replicas: every
        release and who owns it); ``route(name, query, authorization)`` may answer
        ``POST /requeue/NAME`` itself, as (HTTP status, text), for a release another
        replica owns (forwarding the caller's ``Authorization``)."""
        settings = settings or EndpointSettings()
        self._registry = registry
        self._statuses = statuses
        self._ready = ready
        self._healthy = healthy
        self._requeue = requeue
        self._extra = extra_status
        self._per_release = per_release
        self._releases = releases or (lambda: [s.to_json() for s in self._statuses.all()])
        self._route = route or (lambda name, query, authorization: None)
        self._token = _digest(api_token) if api_token else None
        self._limiter = RequeueLimiter(settings, monotonic)
        self._map: dict[int, Any] = {}
        try:
            self._server = waitress.server.create_server(
                self.wsgi,
                map=self._map,
                host=host,
                port=port,
                threads=settings.workers,
                connection_limit=settings.connection_limit,
                channel_timeout=settings.idle_timeout_seconds,
                cleanup_interval=max(0.5, settings.idle_timeout_seconds / 4),
                ident="ecsop",
            )
        except OSError as exc:
            raise ListenError(host, port, exc) from exc
        self._thread = threading.Thread(target=self._server.run, name="ecsop-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.effective_port)  # type: ignore[union-attr]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Let the workers finish, then close every connection and the listening socket.

        In waitress's own order (``MultiSocketServer.close``): a worker finishing a
        request pulls the loop's trigger, which fails on a trigger already closed.
        """

        def close_all() -> None:  # runs on the event loop's thread, as waitress requires
            for dispatcher in list(self._map.values()):
                dispatcher.close()

        self._server.task_dispatcher.shutdown(timeout=5)
        if self._thread.is_alive():
            self._server.trigger.pull_trigger(close_all)  # type: ignore[union-attr]
            self._thread.join(timeout=10)
        else:
            close_all()

    # --- the WSGI application ---------------------------------------------------------

    def wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI application waitress serves (tests call it with a made-up client address)."""
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        if method in ("GET", "HEAD"):
            code, body, content_type, headers = self._get(path)
        elif method == "POST":
            code, body, content_type, headers = self._post(path, environ)
        else:
            code, body, content_type, headers = 405, b"method not allowed\n", "text/plain", []
        start_response(
            _STATUS_LINES.get(code) or f"{code} Status",
            [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers],
        )
        return [body]

    def _get(self, path: str) -> _Response:
        if path == "/metrics":
            return 200, generate_latest(self._registry), CONTENT_TYPE_LATEST, []
        if path == "/healthz":
            ok, why = self._healthy()
            return 200 if ok else 503, f"{why}\n".encode(), "text/plain", []
        if path == "/readyz":
            ok, why = self._ready()
            return 200 if ok else 503, f"{why}\n".encode(), "text/plain", []
        if path == "/status":
            releases = self._releases()
            more = self._per_release([r["name"] for r in releases])
            for release in releases:
                release.update(more.get(release["name"], {}))
            body = {**self._extra(), "releases": releases}
            # Compact: the C encoder (indent= falls back to pure Python, seconds at 10,000).
            return 200, json.dumps(body).encode(), "application/json", []
        return 404, b"not found\n", "text/plain", []

    def _post(self, path: str, environ: WSGIEnvironment) -> _Response:
        match = _REQUEUE_PATH.match(path)
        if match is None:
            return 404, b"not found\n", "text/plain", []
        refused = self._refused(environ)
        if refused is not None:
            return refused
        name = match.group(1)
        if not _RELEASE_NAME.match(name):
            return 404, b"unknown release\n", "text/plain", []
        query, authorization = environ.get("QUERY_STRING", ""), environ.get("HTTP_AUTHORIZATION")
        routed = self._route(name, str(query), str(authorization or ""))
        if routed is not None:
            return routed[0], f"{routed[1]}\n".encode(), "text/plain", []
        admission, wait = self._limiter.admit(name, self._requeue)
        if admission is Admission.QUEUED:
            return 202, b"queued\n", "text/plain", []
        if admission is Admission.COALESCED:
            return 202, b"already queued\n", "text/plain", []
        if admission is Admission.UNKNOWN:
            return 404, b"unknown release\n", "text/plain", []
        seconds = max(1, math.ceil(wait - 1e-6))  # 5.9999999 and 6.0000001 both mean 6
        body = f"too many requeues of {name}; retry after {seconds} s\n".encode()
        return 429, body, "text/plain", [("Retry-After", str(seconds))]

    def _refused(self, environ: WSGIEnvironment) -> _Response | None:
        """None when the caller may change what the daemon does, else the answer to send."""
        if self._token is not None:
            scheme, _, given = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                _digest(given.strip()), self._token
            ):
                return None
            challenge = [("WWW-Authenticate", 'Bearer realm="ecsop"')]
            return 401, b"a valid API token is required (Authorization: Bearer)\n", "text/plain", (
                challenge
            )
        if _loopback(str(environ.get("REMOTE_ADDR", ""))):
            return None
        body = (
            b"forbidden: without an API token (--api-token-file) only loopback clients "
            b"may requeue\n"
        )
        return 403, body, "text/plain", []


_Response = tuple[int, bytes, str, list[tuple[str, str]]]

_STATUS_LINES = {
    200: "200 OK",
    202: "202 Accepted",
    401: "401 Unauthorized",
    403: "403 Forbidden",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    409: "409 Conflict",
    429: "429 Too Many Requests",
    500: "500 Internal Server Error",
    502: "502 Bad Gateway",
    503: "503 Service Unavailable",
}


def _digest(token: str) -> bytes:
    """Tokens are compared by digest: constant time, and their length does not leak."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))
