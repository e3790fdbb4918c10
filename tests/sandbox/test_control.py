"""The /_sandbox/ control API, as another process sees it: plain HTTP and JSON."""

from __future__ import annotations

import pytest
import requests
from sandbox_harness import UNKNOWN, Harness

pytestmark = pytest.mark.sandbox


def test_clock(sandbox: Harness) -> None:
    url = f"{sandbox.server.endpoint_url}/_sandbox/clock"
    before = requests.get(url, timeout=5).json()
    assert before["speed"] == 0
    after = requests.post(url, json={"advance": 90}, timeout=5).json()
    assert after["now"] == pytest.approx(before["now"] + 90)
    assert requests.post(url, json={"speed": 5}, timeout=5).json()["speed"] == 5
    assert requests.post(url, json={"rewind": 1}, timeout=5).status_code == 400


def test_advancing_the_clock_moves_the_rollout(sandbox: Harness) -> None:
    sandbox.deploy(UNKNOWN)
    requests.post(f"{sandbox.server.endpoint_url}/_sandbox/clock", json={"advance": 1}, timeout=5)
    requests.post(f"{sandbox.server.endpoint_url}/_sandbox/clock", json={"advance": 5}, timeout=5)
    assert sandbox.service()["deployments"][0]["failedTasks"] == 2  # both failed to pull


def test_calls_are_counted_and_reset(sandbox: Harness) -> None:
    base = sandbox.server.endpoint_url
    requests.post(f"{base}/_sandbox/calls/reset", timeout=5)
    for _ in range(3):
        sandbox.service()
    sandbox.elbv2.describe_target_groups()
    found = requests.get(f"{base}/_sandbox/calls", timeout=5).json()["calls"]
    assert {"service": "ecs", "operation": "DescribeServices", "count": 3} in [
        {k: c[k] for k in ("service", "operation", "count")} for c in found
    ]
    assert any(c["operation"] == "DescribeTargetGroups" for c in found)
    requests.post(f"{base}/_sandbox/calls/reset", timeout=5)
    assert requests.get(f"{base}/_sandbox/calls", timeout=5).json() == {"calls": []}


def test_images_can_be_added_at_run_time(sandbox: Harness) -> None:
    url = f"{sandbox.server.endpoint_url}/_sandbox/images"
    response = requests.post(url, json={"images": {UNKNOWN: {"behavior": "healthy"}}}, timeout=5)
    assert response.ok
    assert UNKNOWN in requests.get(url, timeout=5).json()["images"]
    sandbox.deploy(UNKNOWN)
    sandbox.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED")
    bad = requests.post(url, json={"images": {UNKNOWN: {"behavior": "exploding"}}}, timeout=5)
    assert bad.status_code == 400


def test_unknown_route(sandbox: Harness) -> None:
    assert (
        requests.get(f"{sandbox.server.endpoint_url}/_sandbox/nope", timeout=5).status_code == 404
    )
