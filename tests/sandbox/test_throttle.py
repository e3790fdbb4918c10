"""ECS's service throttle logic, observed through boto3 on a frozen clock.

"Amazon ECS service throttle logic":
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-throttle-logic.html
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from sandbox_harness import CRASH, GOOD_2, PULL_ERROR, Harness, messages, scenario, service_spec

pytestmark = pytest.mark.sandbox

THROTTLED = "(service api) is unable to consistently start tasks successfully."
BACKOFF = {
    "launchBackoffAfterFailures": 2,
    "launchBackoffInitialSeconds": 10,
    "launchBackoffMaxSeconds": 40,
}


def _launches(sb: Harness, deployment_id: str) -> list[float]:
    """createdAt of every task the deployment started, in order."""
    arns = []
    for desired in ("RUNNING", "STOPPED"):
        arns += sb.ecs.list_tasks(cluster="prod", startedBy=deployment_id, desiredStatus=desired)[
            "taskArns"
        ]
    tasks: list[dict[str, Any]] = sb.ecs.describe_tasks(cluster="prod", tasks=arns)["tasks"]
    return sorted(t["createdAt"].timestamp() for t in tasks)


def _gaps(times: list[float]) -> list[float]:
    return [round(b - a) for a, b in itertools.pairwise(times)]


def test_tasks_that_never_run_are_relaunched_further_and_further_apart(
    start_sandbox: Callable[..., Harness],
) -> None:
    """service-throttle-logic.html: tasks that go PENDING -> STOPPED are relaunched
    at incrementally longer intervals, up to a maximum; the service logs "(service
    service-name) is unable to consistently start tasks successfully."; a new task
    definition returns the service to normal at once."""
    spec = service_spec(1, breaker=False)
    sb = start_sandbox(scenario({"api": spec}, timings=BACKOFF))
    sb.deploy(PULL_ERROR)
    deployment = sb.service()["deployments"][0]["id"]
    for _ in range(20):
        sb.advance(10)
    # Each task fails 5 s after launch (2 s provisioning + 3 s pull); from the second
    # consecutive failure on, the next launch waits 10, 20, 40, 40 s more.
    assert _gaps(_launches(sb, deployment))[:6] == [5, 15, 25, 45, 45, 45]
    assert messages(sb.service()).count(THROTTLED) == 1

    updated = sb.server.simulator.now
    sb.deploy(GOOD_2)  # a new task definition: no longer throttled
    sb.advance(1)
    fixed = sb.service()["deployments"][0]["id"]
    assert _launches(sb, fixed) == [pytest.approx(updated, abs=1e-3)]


def test_tasks_that_crash_after_running_are_not_throttled(
    start_sandbox: Callable[..., Harness],
) -> None:
    """service-throttle-logic.html: "Tasks that are stopped after they reach the
    RUNNING state don't start the throttle logic or the associated service event
    message" (a container command exiting non-zero included)."""
    spec = service_spec(1, breaker=False)
    sb = start_sandbox(scenario({"api": spec}, timings=BACKOFF))
    sb.deploy(CRASH)
    deployment = sb.service()["deployments"][0]["id"]
    for _ in range(12):
        sb.advance(10)
    # 2 + 3 + 5 s (its start) to RUNNING, crash 5 s later, replaced at once: unthrottled.
    assert set(_gaps(_launches(sb, deployment))) == {15}
    assert THROTTLED not in messages(sb.service())
