"""The daemon's HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz``, ``/status``, requeue.

Served by waitress: one event loop holds every connection and a fixed pool of
``EndpointSettings.workers`` threads runs the requests, so an idle or slow
connection costs a socket, never a thread. Connections idle past
``idle_timeout_seconds`` are closed; beyond ``connection_limit`` new ones wait
in the kernel's backlog. A thousand half-open connections therefore cannot
exhaust the daemon's threads or keep ``/healthz`` from answering.

``POST /requeue/NAME`` lets ``ecsop retry`` wake the daemon instead of waiting
for the next resync.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

import waitress.server
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ecsop.observability.status import StatusStore

_REQUEUE_PATH = re.compile(r"^/requeue/([^/]*)$")


@dataclass(frozen=True)
class EndpointSettings:
    """How the HTTP endpoint spends threads and connections, and how often it requeues."""

    workers: int = 4
    """Threads that run requests; every other connection waits without a thread."""
    connection_limit: int = 256
    """Open connections at most; further ones wait in the listen backlog."""
    idle_timeout_seconds: float = 10.0
    """A connection with no request in progress and silent this long is closed."""


class ListenError(Exception):
    """The endpoint's address cannot be bound (in use, not an address of this host, ...)."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {cause.strerror or cause}")
        self.host, self.port = host, port


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
        settings: EndpointSettings | None = None,
    ) -> None:
        settings = settings or EndpointSettings()
        self._registry = registry
        self._statuses = statuses
        self._ready = ready
        self._requeue = requeue
        self._extra = extra_status
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
        """Close every connection and the listening socket, then let the workers finish."""

        def close_all() -> None:  # runs on the event loop's thread, as waitress requires
            for dispatcher in list(self._map.values()):
                dispatcher.close()

        if self._thread.is_alive():
            self._server.trigger.pull_trigger(close_all)  # type: ignore[union-attr]
            self._thread.join(timeout=10)
        else:
            close_all()
        self._server.task_dispatcher.shutdown(timeout=5)

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
            _STATUS_LINES[code],
            [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers],
        )
        return [body]

    def _get(self, path: str) -> _Response:
        if path == "/metrics":
            return 200, generate_latest(self._registry), CONTENT_TYPE_LATEST, []
        if path == "/healthz":
            return 200, b"ok\n", "text/plain", []
        if path == "/readyz":
            ok, why = self._ready()
            return 200 if ok else 503, f"{why}\n".encode(), "text/plain", []
        if path == "/status":
            body = {**self._extra(), "releases": [s.to_json() for s in self._statuses.all()]}
            return 200, json.dumps(body, indent=2).encode(), "application/json", []
        return 404, b"not found\n", "text/plain", []

    def _post(self, path: str, environ: WSGIEnvironment) -> _Response:
        match = _REQUEUE_PATH.match(path)
        if match is None:
            return 404, b"not found\n", "text/plain", []
        if self._requeue(match.group(1)):
            return 202, b"queued\n", "text/plain", []
        return 404, b"unknown release\n", "text/plain", []


_Response = tuple[int, bytes, str, list[tuple[str, str]]]

_STATUS_LINES = {
    200: "200 OK",
    202: "202 Accepted",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    503: "503 Service Unavailable",
}
