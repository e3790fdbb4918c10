"""The listeners of a traffic-shifting service answer real HTTP, routed by their rules' weights.

An Application Load Balancer sends each request to a target group chosen by the
listener rule's forward-action weights, then to one of its healthy targets
("Listener rules for your Application Load Balancer",
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-listeners.html).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from sandbox_harness import GOOD_2, Harness, scenario, shifting_spec

pytestmark = pytest.mark.sandbox

BROKEN = "registry.example/api@sha256:" + "7" * 64
"""Passes its ELB health checks, but its application answers 500 to every request."""


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def listeners(sb: Harness) -> dict[str, Any]:
    with urllib.request.urlopen(f"{sb.server.endpoint_url}/_sandbox/listeners") as response:
        found: dict[str, Any] = json.load(response)["listeners"]["prod/api"]
    return found


def test_test_traffic_reaches_green_while_production_stays_on_blue(
    start_sandbox: Callable[..., Harness],
) -> None:
    pause = [
        {
            "targetType": "PAUSE",
            "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
            "timeoutConfiguration": {"timeoutInMinutes": 60, "action": "ROLLBACK"},
        }
    ]
    config = scenario({"api": shifting_spec(bakeTimeInMinutes=1, hooks=pause)})
    config.images[BROKEN] = config.images[GOOD_2].model_copy(update={"error_rate": 1.0})
    sb = start_sandbox(config)
    urls = listeners(sb)
    assert [get(urls["production"]["url"]) for _ in range(5)] == [200] * 5
    sb.deploy(BROKEN)
    for _ in range(60):
        sb.advance(5)
        stage = sb.ecs.describe_service_deployments(
            serviceDeploymentArns=[sb.service()["currentServiceDeployment"]]
        )["serviceDeployments"][0].get("lifecycleStage")
        if stage == "POST_TEST_TRAFFIC_SHIFT":
            break
    assert stage == "POST_TEST_TRAFFIC_SHIFT"
    assert {get(urls["test"]["url"]) for _ in range(10)} == {500}, "test traffic: green"
    assert {get(urls["production"]["url"]) for _ in range(10)} == {200}, "production: blue"
    answers = listeners(sb)
    broken = next(td for td in answers["test"]["answers"] if td.endswith(":2"))
    assert answers["test"]["answers"][broken] == {"500": 10}
    assert all(not td.endswith(":2") for td in answers["production"]["answers"])
