"""Real HTTP ports on 127.0.0.1, one per serving task, and Prometheus file SD.

``Endpoints`` listens on one port per key (a task ARN) and answers
``GET /metrics`` with whatever ``render(key)`` returns, in Prometheus's text
format.  One thread serves every port (a selector over the listening sockets;
scrapes are small and answered in turn), so a thousand serving tasks cost a
thousand sockets, not a thousand threads; it starts with the first port.  When
the simulated clock runs (speed > 0) the same thread calls ``tick`` a few times
a second, so tasks that start or stop between AWS calls still open or close
their ports and the discovery file follows.

``write_file_sd`` writes Prometheus's ``file_sd_configs`` format, a JSON list of
``{"targets": [...], "labels": {...}}`` groups ("<file_sd_config>",
https://prometheus.io/docs/prometheus/latest/configuration/configuration/#file_sd_config),
atomically (a temporary file renamed over the old one) so Prometheus, which
watches the file, never reads half of it.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

TICK_SECONDS = 0.25
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Endpoints:
    def __init__(
        self,
        render: Callable[[str], bytes | None],
        tick: Callable[[], object],
        ticking: Callable[[], bool],
    ) -> None:
        self._render = render
        self._tick = tick
        self._ticking = ticking
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._sockets: dict[str, socket.socket] = {}
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def open(self, key: str) -> int:
        """Listen for ``key`` on a new port of 127.0.0.1; return the port."""
        with self._lock:
            found = self._sockets.get(key)
            if found is not None:
                return int(found.getsockname()[1])
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            listener.listen(16)
            listener.setblocking(False)
            self._sockets[key] = listener
            self._selector.register(listener, selectors.EVENT_READ, key)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="sandbox-task-metrics", daemon=True
                )
                self._thread.start()
            return int(listener.getsockname()[1])

    def close(self, key: str) -> None:
        with self._lock:
            listener = self._sockets.pop(key, None)
            if listener is not None:
                self._selector.unregister(listener)
                listener.close()

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._sockets)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        for key in self.keys():
            self.close(key)
        self._selector.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            ready = self._selector.select(timeout=TICK_SECONDS)
            for selected, _ in ready:
                key = str(selected.data)
                try:
                    connection, _ = selected.fileobj.accept()  # type: ignore[union-attr]
                except (BlockingIOError, OSError):
                    continue  # closed meanwhile, or another accept took it
                with connection:
                    self._answer(connection, key)
            if self._ticking():
                self._tick()

    def _answer(self, connection: socket.socket, key: str) -> None:
        connection.setblocking(True)
        connection.settimeout(2.0)
        request = b""
        try:
            while b"\r\n\r\n" not in request and len(request) < 65536:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                request += chunk
            line = request.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split()
            path = parts[1].split("?", 1)[0] if len(parts) > 1 else ""
            body = self._render(key) if parts[:1] == ["GET"] and path == "/metrics" else None
            if body is None:
                status, body, kind = "404 Not Found", b"not found\n", "text/plain"
            else:
                status, kind = "200 OK", CONTENT_TYPE
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            connection.sendall(head.encode("latin-1") + body)
        except OSError:
            return


def write_file_sd(path: str, groups: Sequence[Mapping[str, Any]]) -> None:
    """Replace ``path`` with ``groups`` as a Prometheus file_sd JSON document."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".sd-", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(groups, out, indent=1, sort_keys=True)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
