"""The sandbox keeps a client's connection open between answers, as AWS endpoints do, and
closes it when it stops: a kept connection never hangs a client of a stopped sandbox."""

from __future__ import annotations

import http.client
import json
from email.utils import parsedate_to_datetime

import pytest
from sandbox_harness import Harness

from ecsop.sandbox.server import SandboxServer

LIST_CLUSTERS = {
    "Content-Type": "application/x-amz-json-1.1",
    "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
    "Authorization": "AWS4-HMAC-SHA256 Credential=x/20261201/us-east-1/ecs/aws4_request, "
    "SignedHeaders=host, Signature=0",
}


def ask(connection: http.client.HTTPConnection) -> http.client.HTTPResponse:
    connection.request("POST", "/", body=b"{}", headers=LIST_CLUSTERS)
    answer = connection.getresponse()
    answer.read()
    return answer


def test_one_connection_serves_many_calls_each_dated_by_the_simulated_clock(
    sandbox: Harness,
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", sandbox.server.port, timeout=10)
    first = ask(connection)
    sock = connection.sock
    sandbox.advance(3600)
    second = ask(connection)
    assert (first.status, second.status) == (200, 200)
    assert connection.sock is sock  # no new TCP connection for the second call
    assert (first.getheader("Connection") or "").lower() != "close"
    dates = [parsedate_to_datetime(str(a.getheader("Date"))) for a in (first, second)]
    assert (dates[1] - dates[0]).total_seconds() >= 3600  # the simulator's clock, not the host's
    assert len([h for h, _ in second.getheaders() if h.lower() == "date"]) == 1
    connection.close()


def test_a_stopped_sandbox_closes_the_connections_it_kept(sandbox: Harness) -> None:
    server: SandboxServer = sandbox.server
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    assert ask(connection).status == 200
    server.stop()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        ask(connection)


def test_the_control_api_answers_on_a_kept_connection_too(sandbox: Harness) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", sandbox.server.port, timeout=10)
    for _ in range(3):
        connection.request("GET", "/_sandbox/health")
        answer = connection.getresponse()
        assert answer.status == 200 and json.loads(answer.read())["ok"]
    connection.close()
