"""The /_sandbox/ control API, as another process sees it: plain HTTP and JSON."""

from __future__ import annotations

import boto3
import pytest
import requests
from sandbox_harness import GOOD_2, UNKNOWN, Harness

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


def test_call_log_times_each_call_and_names_its_caller(sandbox: Harness) -> None:
    base = sandbox.server.endpoint_url
    requests.post(f"{base}/_sandbox/calls/reset", timeout=5)
    other = boto3.client(
        "ecs",
        endpoint_url=base,
        region_name="us-east-1",
        aws_access_key_id="bench-script",
        aws_secret_access_key="x",
    )
    sandbox.service()
    requests.post(f"{base}/_sandbox/clock", json={"advance": 30}, timeout=5)
    arn = sandbox.register(GOOD_2)
    other.update_service(cluster="prod", service="api", taskDefinition=arn)

    log = requests.get(f"{base}/_sandbox/calls/log", timeout=5).json()["calls"]
    assert [(c["operation"], c["caller"]) for c in log] == [
        ("DescribeServices", "testing"),
        ("RegisterTaskDefinition", "testing"),
        ("UpdateService", "bench-script"),
    ]
    describe, register, update = log
    assert describe["service"] == "ecs"
    assert describe["request"] == {"cluster": "prod", "services": ["api"]}
    assert register["request"] == {"family": "api"}  # whose revision it is
    assert update["request"] == {"cluster": "prod", "service": "api", "taskDefinition": arn}
    assert update["sim"] == pytest.approx(describe["sim"] + 30)  # the frozen clock, stepped
    assert describe["wall"] <= update["wall"] and update["fault"] is None

    only = requests.get(
        f"{base}/_sandbox/calls/log",
        params={"operation": "UpdateService", "caller": "bench-script"},
        timeout=5,
    ).json()["calls"]
    assert [c["seq"] for c in only] == [update["seq"]]
    after = requests.get(
        f"{base}/_sandbox/calls/log", params={"after": describe["seq"], "limit": 1}, timeout=5
    ).json()["calls"]
    assert [c["operation"] for c in after] == ["RegisterTaskDefinition"]
    bad = requests.get(f"{base}/_sandbox/calls/log", params={"op": "x"}, timeout=5)
    assert bad.status_code == 400
    requests.post(f"{base}/_sandbox/calls/reset", timeout=5)
    assert requests.get(f"{base}/_sandbox/calls/log", timeout=5).json() == {"calls": []}


def test_clock_reports_wall_time(sandbox: Harness) -> None:
    import time

    before = time.time()
    answer = requests.get(f"{sandbox.server.endpoint_url}/_sandbox/clock", timeout=5).json()
    assert before <= answer["wall"] <= time.time()
