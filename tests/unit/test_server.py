"""The HTTP endpoint under hostile clients: idle connections, floods, strangers."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

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


# --- POST /requeue/NAME ----------------------------------------------------------------------


def post(endpoint: Endpoint, path: str, remote: str = "127.0.0.1", **headers: str) -> Any:
    """Call the WSGI application as a client at ``remote`` would: (status, headers, body)."""
    environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "REMOTE_ADDR": remote}
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    setup_testing_defaults(environ)
    answer: dict[str, Any] = {}

    def start_response(status: str, sent: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = int(status.split()[0]), dict(sent)

    body = b"".join(endpoint.wsgi(environ, start_response))  # type: ignore[arg-type]
    return answer["status"], answer["headers"], body


def test_an_unknown_release_is_404_and_costs_no_rate_limit(serve: Callable[..., Endpoint]) -> None:
    requeues = Requeues()
    endpoint = serve(requeue=requeues)
    for _ in range(20):
        assert post(endpoint, "/requeue/ghost")[0] == 404
    assert post(endpoint, "/requeue/Not_A..Name")[0] == 404  # cannot be a release: not asked
    assert post(endpoint, "/requeue/a/b")[0] == 404
    assert requeues.calls == ["ghost"] * 20
    assert post(endpoint, "/requeue/shop")[:1] == (202,)


def test_a_flood_is_coalesced_then_rate_limited_per_release(
    serve: Callable[..., Endpoint],
) -> None:
    clock, requeues = Clock(), Requeues()
    settings = EndpointSettings(
        requeue_burst=2, requeue_every_seconds=10, requeue_coalesce_seconds=1
    )
    endpoint = serve(requeue=requeues, settings=settings, monotonic=clock)
    answers = [post(endpoint, "/requeue/shop")[2] for _ in range(50)]
    assert answers == [b"queued\n"] + [b"already queued\n"] * 49
    assert requeues.calls == ["shop"]  # fifty requests, one requeue
    clock.now += 2
    assert post(endpoint, "/requeue/shop")[2] == b"queued\n"  # the second token
    clock.now += 2
    status, headers, body = post(endpoint, "/requeue/shop")
    assert (status, headers["Retry-After"]) == (429, "6")  # 0.4 token: 6 s to the next
    assert body == b"too many requeues of shop; retry after 6 s\n"
    assert post(endpoint, "/requeue/billing")[0] == 202  # buckets are per release
    clock.now += 6
    assert post(endpoint, "/requeue/shop")[0] == 202
    assert requeues.calls == ["shop", "shop", "billing", "shop"]


@pytest.mark.parametrize(
    ("remote", "status"),
    [
        pytest.param("127.0.0.1", 202, id="ipv4-loopback"),
        pytest.param("127.3.4.5", 202, id="loopback-range"),
        pytest.param("::1", 202, id="ipv6-loopback"),
        pytest.param("::ffff:127.0.0.1", 202, id="ipv4-mapped-loopback"),
        pytest.param("10.0.0.7", 403, id="pod-network"),
        pytest.param("203.0.113.9", 403, id="internet"),
    ],
)
def test_without_a_token_only_loopback_may_requeue(
    serve: Callable[..., Endpoint], remote: str, status: int
) -> None:
    requeues = Requeues()
    endpoint = serve(requeue=requeues)
    assert post(endpoint, "/requeue/shop", remote=remote)[0] == status
    assert requeues.calls == (["shop"] if status == 202 else [])


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        pytest.param(None, 401, id="none"),
        pytest.param("Bearer wrong", 401, id="wrong"),
        pytest.param("Basic czNjcjN0", 401, id="other-scheme"),
        pytest.param("Bearer s3cr3t-t0ken", 202, id="right"),
        pytest.param("bearer s3cr3t-t0ken", 202, id="scheme-any-case"),
    ],
)
def test_with_a_token_every_client_must_present_it(
    serve: Callable[..., Endpoint], authorization: str | None, status: int
) -> None:
    requeues = Requeues()
    endpoint = serve(requeue=requeues, api_token="s3cr3t-t0ken")
    headers = {"Authorization": authorization} if authorization else {}
    request = urllib.request.Request(
        f"http://127.0.0.1:{endpoint.port}/requeue/ghost", method="POST", headers=headers
    )
    try:  # a stranger learns nothing, not even whether a release exists
        urllib.request.urlopen(request, timeout=5)
    except urllib.error.HTTPError as error:
        assert error.code == (404 if status == 202 else 401)
        if status == 401:
            assert error.headers["WWW-Authenticate"] == 'Bearer realm="ecsop"'
    assert requeues.calls == (["ghost"] if status == 202 else [])
    assert post(endpoint, "/requeue/shop", remote="10.0.0.7", **headers)[0] == status


def test_reading_endpoints_need_no_token(serve: Callable[..., Endpoint]) -> None:
    endpoint = serve(api_token="s3cr3t-t0ken")
    for path in ("/healthz", "/readyz", "/status", "/metrics"):
        assert get(endpoint, path)[0] == 200
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=5)
    connection.request("DELETE", "/status")
    assert connection.getresponse().status == 405
