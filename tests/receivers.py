"""Local HTTP receivers for the notification tests: a recorder and a fake GitHub API.

``Receiver`` records every request (method, path, headers, body, when) and
answers from a script (``answer``), so a test can play 429 with Retry-After,
500 then 200, or a receiver that hangs. ``FakeGitHub`` answers the REST calls
ecsop makes (commit statuses, deployments and their statuses) the way GitHub
documents them, and keeps what it was told per commit.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    """Names lower-cased."""
    body: bytes
    at: float
    """time.monotonic() when the request arrived."""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records requests and answers from a script."""

    default: Answer = (200, {}, b"ok")
    script: deque[Answer | str] = field(default_factory=deque)
    """Answers for the next requests, in order; the string "hang" never answers."""
    requests: list[Recorded] = field(default_factory=list)
    respond: Callable[[Recorded], Answer] | None = None
    """Answers every request the script does not (a fake API), else ``default``."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                receiver._handle(self)

            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, *answers: Answer | str) -> None:
        with self._lock:
            self.script.extend(answers)

    def received(self, path_prefix: str = "") -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def wait_for(self, count: int, timeout: float = 10.0, path_prefix: str = "") -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.received(path_prefix)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"expected {count} requests, got {self.received(path_prefix)}")

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        recorded = Recorded(
            request.command,
            request.path,
            {k.lower(): v for k, v in request.headers.items()},
            body,
            time.monotonic(),
        )
        with self._lock:
            self.requests.append(recorded)
            scripted = self.script.popleft() if self.script else None
        if scripted == "hang":
            self._released.wait(30)
            return
        if isinstance(scripted, tuple):
            status, headers, payload = scripted
        elif self.respond is not None:
            status, headers, payload = self.respond(recorded)
        else:
            status, headers, payload = self.default
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)


class FakeGitHub:
    """GitHub's REST API for commit statuses and deployments, in memory."""

    def __init__(self) -> None:
        self.statuses: dict[str, list[dict[str, Any]]] = {}
        """sha -> statuses posted, oldest first."""
        self.deployments: list[dict[str, Any]] = []
        self.deployment_statuses: dict[int, list[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self.receiver = Receiver(respond=self._respond)

    @property
    def url(self) -> str:
        return self.receiver.url

    def states(self, sha: str, context: str) -> list[str]:
        return [s["state"] for s in self.statuses.get(sha, []) if s["context"] == context]

    def close(self) -> None:
        self.receiver.close()

    def _respond(self, request: Recorded) -> Answer:
        parts = urllib.parse.urlsplit(request.path)
        segments = parts.path.strip("/").split("/")
        if segments[:1] != ["repos"] or len(segments) < 4:
            return _json(404, {"message": "Not Found"})
        rest = segments[3:]
        if request.method == "POST" and rest[0] == "statuses" and len(rest) == 2:
            status = {**request.json(), "id": next(self._ids)}
            self.statuses.setdefault(rest[1], []).append(status)
            return _json(201, status)
        if rest == ["deployments"] and request.method == "POST":
            deployment = {**request.json(), "id": next(self._ids), "sha": request.json()["ref"]}
            self.deployments.append(deployment)
            return _json(201, deployment)
        if rest == ["deployments"] and request.method == "GET":
            query = dict(urllib.parse.parse_qsl(parts.query))
            found = [
                d
                for d in reversed(self.deployments)
                if d["sha"] == query.get("sha", d["sha"])
                and d["environment"] == query.get("environment", d["environment"])
                and d["task"] == query.get("task", d["task"])
            ]
            return _json(200, found)
        if len(rest) == 3 and rest[0] == "deployments" and rest[2] == "statuses":
            status = {**request.json(), "id": next(self._ids)}
            self.deployment_statuses.setdefault(int(rest[1]), []).append(status)
            return _json(201, status)
        return _json(404, {"message": "Not Found"})


def _json(status: int, body: Any) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()
