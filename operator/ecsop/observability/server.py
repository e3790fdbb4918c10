"""The daemon's HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz``, ``/status``.

A plain ``ThreadingHTTPServer`` is enough: scrapes and probes are few and
small, and the standard library keeps the production image lean. ``POST
/requeue/NAME`` lets ``ecsop retry`` wake the daemon instead of waiting for
the next resync.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ecsop.observability.status import StatusStore


class Endpoint:
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
        releases: Callable[[], list[dict[str, Any]]] | None = None,
        route: Callable[[str, str], tuple[int, str] | None] | None = None,
    ) -> None:
        """``releases`` replaces ``statuses`` in ``/status`` (with several replicas: every
        release and who owns it); ``route(name, query)`` may answer ``POST /requeue/NAME``
        itself, as (HTTP status, text), for a release another replica owns."""
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint._get(self)

            def do_POST(self) -> None:
                endpoint._post(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Probes every few seconds would drown the daemon's own log."""

        self._registry = registry
        self._statuses = statuses
        self._ready = ready
        self._healthy = healthy
        self._requeue = requeue
        self._extra = extra_status
        self._releases = releases or (lambda: [s.to_json() for s in self._statuses.all()])
        self._route = route or (lambda name, query: None)
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ecsop-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _get(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0]
        if path == "/metrics":
            _send(request, 200, generate_latest(self._registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            ok, why = self._healthy()
            _send(request, 200 if ok else 503, f"{why}\n".encode(), "text/plain")
        elif path == "/readyz":
            ok, why = self._ready()
            _send(request, 200 if ok else 503, f"{why}\n".encode(), "text/plain")
        elif path == "/status":
            body = {**self._extra(), "releases": self._releases()}
            _send(request, 200, json.dumps(body, indent=2).encode(), "application/json")
        else:
            _send(request, 404, b"not found\n", "text/plain")

    def _post(self, request: BaseHTTPRequestHandler) -> None:
        prefix = "/requeue/"
        path, _, query = request.path.partition("?")
        if path.startswith(prefix):
            name = path[len(prefix) :]
            routed = self._route(name, query)
            if routed is not None:
                _send(request, routed[0], f"{routed[1]}\n".encode(), "text/plain")
                return
            found = self._requeue(name)
            _send(
                request,
                202 if found else 404,
                b"queued\n" if found else b"unknown release\n",
                "text/plain",
            )
        else:
            _send(request, 404, b"not found\n", "text/plain")


def _send(request: BaseHTTPRequestHandler, code: int, body: bytes, content_type: str) -> None:
    request.send_response(code)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)
