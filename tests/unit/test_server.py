"""The HTTP endpoint under hostile clients: idle connections, floods, strangers."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from ecsop.observability.server import Endpoint, EndpointSettings
from ecsop.observability.status import StatusStore

RELEASES = {"shop", "billing"}


class Requeues:
    """The daemon's side of ``requeue(name) -> bool``: True for its releases, False otherwise."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, name: str) -> bool:
        self.calls.append(name)
        return name in RELEASES


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def serve() -> Iterator[Callable[..., Endpoint]]:
    started: list[Endpoint] = []

    def start(**kwargs: Any) -> Endpoint:
        kwargs.setdefault("requeue", Requeues())
        endpoint = Endpoint(
            "127.0.0.1",
            0,
            CollectorRegistry(),
            StatusStore(),
            ready=lambda: (True, "ready"),
            **kwargs,
        )
        endpoint.start()
        started.append(endpoint)
        return endpoint

    yield start
    for endpoint in started:
        endpoint.stop()


def get(endpoint: Endpoint, path: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}{path}", timeout=5) as answer:
        return answer.status, answer.read()


# --- idle and slow connections -------------------------------------------------------------


def test_idle_connections_hold_no_thread_and_healthz_still_answers(
    serve: Callable[..., Endpoint],
) -> None:
    endpoint = serve(settings=EndpointSettings(workers=4, connection_limit=512))
    assert get(endpoint, "/healthz") == (200, b"ok\n")
    threads = threading.active_count()
    idle: list[socket.socket] = []
    try:
        for number in range(300):
            client = socket.create_connection(("127.0.0.1", endpoint.port), timeout=5)
            if number % 2:  # half of them start a request and never finish it
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            idle.append(client)
        time.sleep(0.5)  # let the server accept them all
        assert threading.active_count() <= threads
        started = time.monotonic()
        assert get(endpoint, "/healthz") == (200, b"ok\n")
        assert time.monotonic() - started < 2
    finally:
        for client in idle:
            client.close()


def test_an_idle_connection_is_closed_after_the_idle_timeout(
    serve: Callable[..., Endpoint],
) -> None:
    endpoint = serve(settings=EndpointSettings(idle_timeout_seconds=0.5))
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\n")  # and nothing more
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError):  # a reset is a hang-up too
            assert client.recv(1024) == b""
        assert time.monotonic() - started < 5
