"""HTTP checks that need credentials: read by the daemon at probe time, never shown.

A check names where the daemon reads a secret (``ECSOP_CHECK_*`` variables,
files of the check-secrets directory); the URL itself may carry none. These
tests run checks against a local server that requires the credentials, and
look for the secret values in every message and log line the check produces.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ecsop.probes import http_checks
from ecsop.spec.http_check import HttpCheck
from ecsop.spec.quoting import redacted

TOKEN = "t0k3n-5ecret-value"
USER, PASSWORD = "smoke", "pa55-5ecret-word"


class Guarded:
    """A local server answering 200 only to the expected Authorization header, else 401."""

    def __init__(self, expected: str) -> None:
        outer = self
        self.expected = expected
        self.seen: list[str | None] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                given = self.headers.get("Authorization")
                outer.seen.append(given)
                self.send_response(200 if given == outer.expected else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/smoke"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def bearer() -> Iterator[Guarded]:
    server = Guarded(f"Bearer {TOKEN}")
    yield server
    server.close()


def check(url: str, **extra: Any) -> HttpCheck:
    return HttpCheck.model_validate(
        {"url": url, "intervalSeconds": 1, "failuresAllowed": 0, **extra}
    )


def settled(probes: http_checks.HttpProbes, checks: list[HttpCheck]) -> tuple[Any, Any]:
    """``watch`` once the first verdict (or 'cannot be judged') is in."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        failing, pending = probes.watch("api", "g1", checks)
        if failing or not pending or any(" " in p for p in pending):
            return failing, pending
        time.sleep(0.02)
    raise AssertionError("no verdict")


def token_header(source: dict[str, str]) -> dict[str, Any]:
    return {"headers": [{"name": "Authorization", "valueFrom": source}]}


@pytest.fixture
def probes_with() -> Iterator[Callable[..., http_checks.HttpProbes]]:
    made: list[http_checks.HttpProbes] = []

    def make(**kwargs: Any) -> http_checks.HttpProbes:
        made.append(http_checks.HttpProbes(workers=1, **kwargs))
        return made[-1]

    yield make
    for probes in made:
        probes.close()


def test_a_token_from_a_variable_passes_and_is_never_shown(
    bearer: Guarded, probes_with: Callable[..., http_checks.HttpProbes]
) -> None:
    checks = [check(bearer.url, **token_header({"env": "ECSOP_CHECK_TOKEN"}))]
    probes = probes_with(environ={"ECSOP_CHECK_TOKEN": f"Bearer {TOKEN}"})
    with capture_logs() as logs:
        assert settled(probes, checks) == ((), ())
    assert bearer.seen == [f"Bearer {TOKEN}"]
    assert TOKEN not in repr(logs)


def test_a_token_from_a_file_is_read_at_each_request(
    bearer: Guarded, probes_with: Callable[..., http_checks.HttpProbes], tmp_path: Path
) -> None:
    (tmp_path / "smoke-token").write_text(f"Bearer {TOKEN}\n")  # as `kubectl create secret` does
    probes = probes_with(secrets_dir=tmp_path)
    assert settled(probes, [check(bearer.url, **token_header({"file": "smoke-token"}))]) == ((), ())


def test_basic_auth_from_two_variables(probes_with: Callable[..., http_checks.HttpProbes]) -> None:
    server = Guarded("Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    try:
        auth = {
            "basicAuth": {
                "usernameFrom": {"env": "ECSOP_CHECK_USER"},
                "passwordFrom": {"env": "ECSOP_CHECK_PASSWORD"},
            }
        }
        probes = probes_with(environ={"ECSOP_CHECK_USER": USER, "ECSOP_CHECK_PASSWORD": PASSWORD})
        assert settled(probes, [check(server.url, **auth)]) == ((), ())
    finally:
        server.close()


def test_a_missing_variable_makes_the_check_unknown_naming_it(
    bearer: Guarded, probes_with: Callable[..., http_checks.HttpProbes]
) -> None:
    probes = probes_with(environ={})
    with capture_logs() as logs:
        failing, pending = settled(
            probes, [check(bearer.url, **token_header({"env": "ECSOP_CHECK_TOKEN"}))]
        )
    assert failing == ()  # never failed: nothing was judged
    why = "cannot be judged: environment variable ECSOP_CHECK_TOKEN is not set"
    assert pending == (f"{bearer.url} ({why})",)
    assert http_checks.pending_wording(pending[0]) == f"HTTP check {bearer.url} ({why})"
    assert bearer.seen == []  # no request without its credentials
    assert [e["why"] for e in logs if e["event"] == "HTTP check cannot be judged"] == [
        "environment variable ECSOP_CHECK_TOKEN is not set"
    ]


def test_a_missing_file_makes_the_check_unknown_naming_it(
    bearer: Guarded, probes_with: Callable[..., http_checks.HttpProbes], tmp_path: Path
) -> None:
    probes = probes_with(secrets_dir=tmp_path)
    failing, (item,) = settled(probes, [check(bearer.url, **token_header({"file": "smoke-token"}))])
    assert failing == () and "cannot be judged: secret file smoke-token cannot be read" in item


def test_a_wrong_token_fails_and_no_message_shows_a_secret(
    bearer: Guarded, probes_with: Callable[..., http_checks.HttpProbes]
) -> None:
    url = f"{bearer.url}?token=url-5ecret&page=2"
    probes = probes_with(environ={"ECSOP_CHECK_TOKEN": "Bearer wrong-5ecret"})
    with capture_logs() as logs:
        (failing,), pending = settled(
            probes, [check(url, **token_header({"env": "ECSOP_CHECK_TOKEN"}))]
        )
    assert failing == (
        f"{bearer.url}?token=REDACTED&page=2: HTTP 401, expected 200 (1 consecutive failures)"
    )
    shown = repr(logs) + failing + repr(pending)
    assert "5ecret" not in shown
    assert "token=REDACTED" in repr(logs)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://bob:hunter2@h.example/x", "https://REDACTED@h.example/x"),
        ("https://h.example/x?token=abc&page=2", "https://h.example/x?token=REDACTED&page=2"),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=ff&v=1",
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&v=1",
        ),
        (
            "https://h/?api_key=1&apikey=2&access_token=3&password=4&passwd=5&pwd=6&sig=7&auth=8",
            "https://h/?api_key=REDACTED&apikey=REDACTED&access_token=REDACTED&password=REDACTED"
            "&passwd=REDACTED&pwd=REDACTED&sig=REDACTED&auth=REDACTED",
        ),
        ("http://h:8080/healthz?verbose", "http://h:8080/healthz?verbose"),
        ("http://[::1", "<unparseable URL>"),
    ],
)
def test_redacted(url: str, shown: str) -> None:
    assert redacted(url) == shown
