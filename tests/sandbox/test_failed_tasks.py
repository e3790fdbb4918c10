"""What fails a deployment and what does not, observed through boto3 on a frozen clock.

Crashes after RUNNING (not counted by default), FAILED deployments that stay
listed while their rollback runs, deployment configurations that leave no
room, and tasks that cannot be placed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from sandbox_harness import (
    CRASH,
    GOOD_2,
    PULL_ERROR,
    Harness,
    messages,
    rollout,
    scenario,
    service_spec,
)

pytestmark = pytest.mark.sandbox


def _crash_loop(sb: Harness) -> str:
    sb.deploy(CRASH)
    deployment: str = sb.service()["deployments"][0]["id"]
    for _ in range(30):
        sb.advance(10)
    return deployment


def test_crash_after_running_without_health_check_is_not_a_failed_task(
    start_sandbox: Callable[..., Harness],
) -> None:
    """The breaker's two stages are tasks that fail to reach RUNNING and tasks that
    fail health checks (deployment-circuit-breaker.html,
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-circuit-breaker.html);
    a task that runs and then exits, with no health check, is in neither, and users
    see such crash loops never trip it (aws/containers-roadmap#1206, #1488). The
    tasks still show as ECS shows them (stopped-task-error-codes.html)."""
    sb = start_sandbox(scenario({"api": service_spec(2)}))
    deployment = _crash_loop(sb)

    service = sb.service()
    assert rollout(service)[0] == ("PRIMARY", "api:2", "IN_PROGRESS")
    assert service["deployments"][0]["failedTasks"] == 0
    crashed = sb.ecs.describe_tasks(
        cluster="prod",
        tasks=sb.ecs.list_tasks(cluster="prod", startedBy=deployment, desiredStatus="STOPPED")[
            "taskArns"
        ],
    )["tasks"]
    assert len(crashed) >= 10
    for task in crashed:
        assert task["startedBy"] == deployment
        assert task["stopCode"] == "EssentialContainerExited"
        assert task["stoppedReason"] == "Essential container in task exited"
        assert task["containers"][0]["exitCode"] == 3
    events = messages(service)
    task_id = crashed[0]["taskArn"].rsplit("/", 1)[-1]
    assert f"(service api) has stopped 1 running tasks: (task {task_id})." in events
    assert sum(m.startswith("(service api) has started ") for m in events) >= 10


@pytest.mark.parametrize(
    ("top", "per_service"),
    [
        pytest.param({"crashAfterRunningCountsAsFailed": True}, {}, id="scenario-wide"),
        pytest.param({}, {"crashAfterRunningCountsAsFailed": True}, id="per-service"),
    ],
)
def test_crash_after_running_counts_when_the_scenario_says_so(
    start_sandbox: Callable[..., Harness], top: dict[str, Any], per_service: dict[str, Any]
) -> None:
    """``crashAfterRunningCountsAsFailed: true``: the breaker (threshold 3,
    API_ServiceDeploymentCircuitBreaker) trips on the crash loop and rolls back."""
    sb = start_sandbox(scenario({"api": service_spec(2, **per_service)}, **top))
    sb.deploy(CRASH)
    failing = sb.service()["deployments"][0]["id"]
    sb.run_until(lambda s: s["deployments"][0]["id"] != failing, limit=300)
    failed = next(d for d in sb.service()["deployments"] if d["id"] == failing)
    assert (failed["rolloutState"], failed["failedTasks"]) == ("FAILED", 3)


def test_failed_deployment_stays_listed_until_its_rollback_completes(
    start_sandbox: Callable[..., Harness],
) -> None:
    """A FAILED deployment whose tasks never ran stays in ``deployments`` (ACTIVE,
    FAILED, its failedTasks) next to the rollback deployment until the rollback
    completes (deployment-circuit-breaker.html; API_Service "deployments",
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Service.html)."""
    sb = start_sandbox(scenario({"api": service_spec(2)}))
    sb.deploy(PULL_ERROR)
    failing = sb.service()["deployments"][0]["id"]
    sb.run_until(lambda s: any(d["rolloutState"] == "FAILED" for d in s["deployments"]))
    for _ in range(5):
        sb.advance(1)  # its last tasks have stopped: nothing of it is left running
        service = sb.service()
        assert rollout(service) == [
            ("PRIMARY", "api:1", "IN_PROGRESS"),
            ("ACTIVE", "api:2", "FAILED"),
            ("ACTIVE", "api:1", "COMPLETED"),
        ]
        failed = service["deployments"][1]
        assert failed["id"] == failing
        assert (failed["failedTasks"], failed["runningCount"], failed["pendingCount"]) == (3, 0, 0)
    sb.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED")
    assert rollout(sb.service()) == [("PRIMARY", "api:1", "COMPLETED")]


def test_no_room_to_stop_or_start_a_task_is_logged(start_sandbox: Callable[..., Harness]) -> None:
    """maximumPercent 125 of 3 rounds down to 3 and minimumHealthyPercent 100 keeps all
    3: the service logs "(service api) was unable to stop or start tasks during a
    deployment because of the service deployment configuration. Update the
    minimumHealthyPercent or maximumPercent value and try again." (deployment-type-ecs.html,
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-ecs.html;
    service-event-messages-list.html) and never progresses."""
    spec = service_spec(3)
    spec["deploymentConfiguration"].update({"maximumPercent": 125, "minimumHealthyPercent": 100})
    sb = start_sandbox(scenario({"api": spec}))
    sb.deploy(GOOD_2)
    for _ in range(10):
        sb.advance(30)
    service = sb.service()
    stuck = (
        "(service api) was unable to stop or start tasks during a deployment because of the "
        "service deployment configuration. Update the minimumHealthyPercent or maximumPercent "
        "value and try again."
    )
    assert messages(service).count(stuck) == 1
    assert rollout(service)[0] == ("PRIMARY", "api:2", "IN_PROGRESS")
    assert service["deployments"][0]["runningCount"] == 0


@pytest.mark.parametrize(
    ("launch_type", "event"),
    [
        pytest.param(
            "FARGATE",
            "(service api) was unable to place a task. Reason: Capacity is unavailable at this "
            "time. Please try again later or in a different availability zone.",
            id="fargate",
        ),
        pytest.param(
            "EC2",
            "(service api) was unable to place a task because no container instance met all of "
            "its requirements. The closest matching (container-instance ",
            id="ec2",
        ),
    ],
)
def test_tasks_that_cannot_be_placed_stall_the_rollout(
    start_sandbox: Callable[..., Harness], launch_type: str, event: str
) -> None:
    """No capacity: no task is started, the service logs ECS's placement event
    (service-event-messages-list.html,
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-event-messages-list.html),
    each attempt counts as a failed task ("the service scheduler can't launch the
    task", API_Deployment) and attempts back off (service-throttle-logic.html)."""
    spec = service_spec(2, breaker=False, launchType=launch_type)
    raw_capacity = {"prod": {"services": {"api": spec}, "capacity": {"maxTasks": 2}}}
    sb = start_sandbox(scenario(clusters=raw_capacity))
    sb.deploy(GOOD_2)
    for _ in range(20):
        sb.advance(30)
    service = sb.service()
    assert rollout(service)[0] == ("PRIMARY", "api:2", "IN_PROGRESS")
    assert service["deployments"][0]["runningCount"] == 0
    assert service["deployments"][0]["failedTasks"] >= 3
    placement = [m for m in messages(service) if m.startswith(event)]
    assert len(placement) == 1  # not repeated while the cause lasts
    assert "(service api) is unable to consistently start tasks successfully." in messages(service)

    url = f"{sb.server.endpoint_url}/_sandbox/capacity"
    answer = requests.post(url, json={"cluster": "prod", "maxTasks": None}, timeout=10)
    assert answer.json() == {"capacity": {"prod": {"maxTasks": None}}}
    sb.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED", limit=3600)
