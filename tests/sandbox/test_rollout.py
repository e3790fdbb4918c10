"""Rolling deployments as ECS documents them, observed through boto3."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sandbox_harness import (
    ALARM,
    CRASH,
    FLAKY,
    GOOD,
    GOOD_2,
    PULL_ERROR,
    SLOW,
    UNHEALTHY,
    UNKNOWN,
    Harness,
    messages,
    rollout,
    scenario,
    service_spec,
)

pytestmark = pytest.mark.sandbox


def completed(service: dict[str, Any]) -> bool:
    return len(service["deployments"]) == 1 and (
        service["deployments"][0]["rolloutState"] == "COMPLETED"
    )


def primary(service: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = service["deployments"][0]
    assert found["status"] == "PRIMARY"
    return found


def test_services_start_steady(sandbox: Harness) -> None:
    service = sandbox.service()
    assert rollout(service) == [("PRIMARY", "api:1", "COMPLETED")]
    assert service["runningCount"] == service["desiredCount"] == 2
    assert service["taskDefinition"].startswith("arn:aws:ecs:us-east-1:")
    assert service["taskDefinition"].endswith(":task-definition/api:1")
    assert messages(service)[0] == "(service api) has reached a steady state."
    assert all(t["lastStatus"] == "RUNNING" for t in sandbox.tasks())


def test_healthy_rollout_sequence(start_sandbox: Callable[..., Harness]) -> None:
    sb = start_sandbox(scenario({"api": service_spec(2, lb=True)}))
    old = sandbox_primary_id = sb.service()["deployments"][0]["id"]
    new_arn = sb.deploy(GOOD_2)

    service = sb.service()
    assert service["taskDefinition"] == new_arn
    assert rollout(service) == [
        ("PRIMARY", "api:2", "IN_PROGRESS"),
        ("ACTIVE", "api:1", "COMPLETED"),
    ]
    new = primary(service)
    assert new["id"].startswith("ecs-svc/") and new["id"][8:].isdigit()
    assert new["rolloutStateReason"] == f"ECS deployment {new['id']} in progress."

    sb.advance(1)  # the scheduler launches within maximumPercent (200% of 2)
    new_tasks = [t for t in sb.tasks() if t["startedBy"] == new["id"]]
    assert [t["lastStatus"] for t in new_tasks] == ["PROVISIONING", "PROVISIONING"]
    assert all(t["taskDefinitionArn"] == new_arn for t in new_tasks)
    assert messages(sb.service())[0].startswith("(service api) has started 2 tasks: (task ")

    sb.advance(2)
    assert {t["lastStatus"] for t in sb.tasks() if t["startedBy"] == new["id"]} == {"PENDING"}
    sb.advance(3)
    running = [t for t in sb.tasks() if t["startedBy"] == new["id"]]
    assert {t["lastStatus"] for t in running} == {"RUNNING"}
    assert running[0]["containers"][0]["imageDigest"] == "sha256:" + "b" * 64
    tg = service["loadBalancers"][0]["targetGroupArn"]
    states = target_states(sb, tg)
    assert sorted(states.values()) == ["healthy", "healthy", "initial", "initial"]
    # minimumHealthyPercent 100: old tasks keep running until new ones are healthy
    assert sb.service()["runningCount"] == 4

    waited = sb.run_until(completed)
    service = sb.service()
    assert rollout(service) == [("PRIMARY", "api:2", "COMPLETED")]
    assert primary(service)["rolloutStateReason"] == f"ECS deployment {new['id']} completed."
    assert waited >= 20  # old targets drain for deregistrationDelaySeconds
    events = messages(service)
    assert events[0] == "(service api) has reached a steady state."
    assert events[1] == f"(service api) (deployment {new['id']}) deployment completed."
    assert any("has begun draining connections on 2 tasks." in m for m in events)
    assert any(m.startswith("(service api) has stopped 2 running tasks:") for m in events)
    stopped = [t for t in sb.tasks(desired="STOPPED") if t["startedBy"] == old]
    assert {t["stoppedReason"] for t in stopped} == {
        f"Scaling activity initiated by (deployment {sandbox_primary_id})"
    }
    assert {t["stopCode"] for t in stopped} == {"ServiceSchedulerInitiated"}
    assert sorted(target_states(sb, tg).values()) == ["healthy", "healthy"]


def target_states(sb: Harness, target_group_arn: str) -> dict[str, str]:
    found = sb.elbv2.describe_target_health(TargetGroupArn=target_group_arn)
    return {
        d["Target"]["Id"]: d["TargetHealth"]["State"] for d in found["TargetHealthDescriptions"]
    }


# Crashes after RUNNING without a health check count only with the scenario option
# (ECS's documented stages do not cover them; see test_failed_tasks.py).
COUNTS = {"crashAfterRunningCountsAsFailed": True}


def test_crashloop_trips_breaker_and_rolls_back(start_sandbox: Callable[..., Harness]) -> None:
    sb = start_sandbox(scenario({"api": service_spec(4, **COUNTS)}))
    completed_id = primary(sb.service())["id"]
    sb.ecs.tag_resource(resourceArn=sb.service()["serviceArn"], tags=[{"key": "k", "value": "v"}])
    sb.deploy(CRASH)
    failing_id = primary(sb.service())["id"]

    sb.run_until(
        lambda s: (
            s["deployments"][-1]["rolloutState"] == "FAILED"
            or any(d["rolloutState"] == "FAILED" for d in s["deployments"])
        )
    )
    service = sb.service()
    failed = next(d for d in service["deployments"] if d["id"] == failing_id)
    assert failed["status"] == "ACTIVE"
    assert failed["failedTasks"] == 3  # threshold for 4 desired: max(3, 0.5 x 4)
    assert failed["rolloutStateReason"] == "ECS deployment circuit breaker: tasks failed to start."
    back = primary(service)
    assert back["taskDefinition"].endswith("task-definition/api:1")
    assert service["taskDefinition"] == back["taskDefinition"]
    assert back["rolloutState"] == "IN_PROGRESS"
    assert back["rolloutStateReason"] == (
        f"ECS deployment circuit breaker: rolling back to deploymentId {completed_id}."
    )
    events = messages(service)
    assert (
        f"(service api) (deployment {failing_id}) deployment failed: tasks failed to start."
        in events
    )
    assert f"(service api) rolling back to deployment {completed_id}." in events

    crashed = [t for t in sb.tasks(desired="STOPPED") if t["startedBy"] == failing_id]
    assert crashed
    assert {t["stoppedReason"] for t in crashed} == {"Essential container in task exited"}
    assert {t["stopCode"] for t in crashed} == {"EssentialContainerExited"}
    assert {t["containers"][0]["exitCode"] for t in crashed} == {3}

    sb.run_until(completed)
    assert rollout(sb.service()) == [("PRIMARY", "api:1", "COMPLETED")]
    assert sb.service()["runningCount"] == 4


@pytest.mark.parametrize(
    ("desired", "threshold"),
    [
        pytest.param(1, 3, id="1-task-minimum-3"),
        pytest.param(4, 3, id="4-tasks-minimum-3"),
        pytest.param(10, 5, id="10-tasks-half"),
        pytest.param(7, 4, id="7-tasks-half-rounded-up"),
        pytest.param(500, 200, id="500-tasks-maximum-200"),
    ],
)
def test_breaker_threshold(
    start_sandbox: Callable[..., Harness], desired: int, threshold: int
) -> None:
    sb = start_sandbox(scenario({"api": service_spec(desired, rollback=False, **COUNTS)}))
    sb.deploy(CRASH)
    failing = primary(sb.service())["id"]
    seen: list[int] = []

    def failed_or_record(service: dict[str, Any]) -> bool:
        seen.append(primary(service)["failedTasks"])
        return bool(primary(service)["rolloutState"] == "FAILED")

    sb.run_until(failed_or_record)
    service = sb.service()
    assert primary(service)["id"] == failing  # no rollback: stays PRIMARY
    assert primary(service)["failedTasks"] == threshold
    assert max(seen[:-1]) < threshold
    # A FAILED deployment launches no new tasks; the old ones keep serving.
    sb.advance(120)
    service = sb.service()
    assert primary(service)["runningCount"] == primary(service)["pendingCount"] == 0
    assert service["runningCount"] == desired


def test_without_breaker_failed_tasks_are_replaced_forever(
    start_sandbox: Callable[..., Harness],
) -> None:
    sb = start_sandbox(scenario({"api": service_spec(2, breaker=False, **COUNTS)}))
    sb.deploy(CRASH)
    for _ in range(30):
        sb.advance(20)
        assert primary(sb.service())["rolloutState"] == "IN_PROGRESS"
    service = sb.service()
    assert primary(service)["failedTasks"] > 20
    assert len(service["deployments"]) == 2  # the old deployment keeps serving
    assert rollout(service)[1] == ("ACTIVE", "api:1", "COMPLETED")
    assert service["runningCount"] >= 2


def test_unhealthy_fails_elb_health_checks(start_sandbox: Callable[..., Harness]) -> None:
    sb = start_sandbox(scenario({"api": service_spec(2, lb=True)}))
    tg = sb.service()["loadBalancers"][0]["targetGroupArn"]
    sb.deploy(UNHEALTHY)
    sb.advance(1)
    sb.advance(5)  # RUNNING, registered
    assert sorted(target_states(sb, tg).values()) == ["healthy", "healthy", "initial", "initial"]
    sb.advance(30)  # the ELB marks them unhealthy; ECS has not noticed yet
    assert sorted(target_states(sb, tg).values()) == [
        "healthy",
        "healthy",
        "unhealthy",
        "unhealthy",
    ]
    assert sb.tasks(desired="STOPPED") == []
    sb.advance(60)  # two health-check intervals (30 s) later ECS stops the tasks
    states = target_states(sb, tg)
    assert sorted(states.values()).count("draining") == 2  # failed targets leave the group
    stopped = [t for t in sb.tasks(desired="STOPPED")]
    assert {t["stoppedReason"] for t in stopped} == {
        f"Task failed ELB health checks in (target-group {tg})"
    }
    assert {t["stopCode"] for t in stopped} == {"ServiceSchedulerInitiated"}
    events = messages(sb.service())
    assert any(
        "(port 8000) is unhealthy in (target-group " in m
        and m.endswith("due to (reason Health checks failed with these codes: [500]).")
        for m in events
    )
    sb.run_until(lambda s: any(d["rolloutState"] == "FAILED" for d in s["deployments"]))


def test_unhealthy_health_check_reasons_in_target_health(
    start_sandbox: Callable[..., Harness],
) -> None:
    sb = start_sandbox(scenario({"api": service_spec(1, lb=True, breaker=False)}))
    tg = sb.service()["loadBalancers"][0]["targetGroupArn"]
    sb.deploy(UNHEALTHY)
    sb.advance(1)  # launched when UpdateService returned (t0): RUNNING at t0 + 5
    sb.advance(5)
    sb.advance(28)  # t0 + 34: still initial; unhealthy after 30 s RUNNING
    health = sb.elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    initial = [h for h in health if h["TargetHealth"]["State"] == "initial"]
    assert initial[0]["TargetHealth"]["Reason"] == "Elb.RegistrationInProgress"
    sb.advance(1)
    health = sb.elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    unhealthy = [h for h in health if h["TargetHealth"]["State"] == "unhealthy"]
    assert unhealthy[0]["TargetHealth"]["Reason"] == "Target.ResponseCodeMismatch"
    assert unhealthy[0]["TargetHealth"]["Description"] == (
        "Health checks failed with these codes: [500]"
    )
    sb.advance(60)
    health = sb.elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    draining = [h for h in health if h["TargetHealth"]["State"] == "draining"]
    assert draining[0]["TargetHealth"]["Reason"] == "Target.DeregistrationInProgress"


@pytest.mark.parametrize(
    "image",
    [pytest.param(PULL_ERROR, id="pull-error"), pytest.param(UNKNOWN, id="unknown-image")],
)
def test_pull_errors(start_sandbox: Callable[..., Harness], image: str) -> None:
    sb = start_sandbox()
    sb.deploy(image)
    sb.advance(1)
    sb.advance(2)
    assert {t["lastStatus"] for t in sb.tasks() if t["taskDefinitionArn"].endswith(":2")} == {
        "PENDING"
    }
    sb.advance(3)
    stopped = sb.tasks(desired="STOPPED")
    assert len(stopped) == 2
    for task in stopped:
        assert task["lastStatus"] == "STOPPED"
        assert task["stopCode"] == "TaskFailedToStart"
        assert task["stoppedReason"].startswith("CannotPullContainerError")
        assert image in task["stoppedReason"]
        assert "startedAt" not in task
    assert primary(sb.service())["failedTasks"] == 2


def test_slow_image_takes_start_seconds(start_sandbox: Callable[..., Harness]) -> None:
    sb = start_sandbox(scenario({"api": service_spec(1, lb=True)}))
    sb.deploy(SLOW)
    waited = sb.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED" or False)
    # 1 (launch) + 2 provisioning + 3 pull + 120 start + 20 deregistration delay
    assert waited >= 125
    assert rollout(sb.service()) == [("PRIMARY", "api:2", "COMPLETED")]


def test_slow_without_health_checks_delays_running(start_sandbox: Callable[..., Harness]) -> None:
    sb = start_sandbox(scenario({"api": service_spec(1)}))
    sb.deploy(SLOW)
    sb.advance(1)
    sb.advance(60)
    assert {t["lastStatus"] for t in sb.tasks() if t["taskDefinitionArn"].endswith(":2")} == {
        "PENDING"
    }
    sb.run_until(completed)


def test_alarm_image_trips_alarm_while_it_serves(start_sandbox: Callable[..., Harness]) -> None:
    sb = start_sandbox(scenario({"api": service_spec(2)}))

    def state() -> str:
        alarms = sb.cloudwatch.describe_alarms(AlarmNames=["api-prod-5xx"])["MetricAlarms"]
        return str(alarms[0]["StateValue"])

    assert state() == "OK"
    sb.deploy(ALARM)
    sb.run_until(completed)
    assert state() == "ALARM"
    sb.deploy(GOOD)
    sb.run_until(completed)
    assert state() == "OK"


def test_deployment_alarms_fail_and_roll_back(start_sandbox: Callable[..., Harness]) -> None:
    spec = service_spec(2)
    spec["deploymentConfiguration"]["alarms"] = {
        "alarmNames": ["api-prod-5xx"],
        "enable": True,
        "rollback": True,
    }
    sb = start_sandbox(scenario({"api": spec}))
    sb.deploy(ALARM)
    sb.run_until(lambda s: any(d["rolloutState"] == "FAILED" for d in s["deployments"]))
    assert primary(sb.service())["taskDefinition"].endswith("api:1")
    sb.run_until(completed)


def test_flaky_is_deterministic_per_seed(start_sandbox: Callable[..., Harness]) -> None:
    def fates(seed: int) -> list[str]:
        sb = start_sandbox(scenario({"api": service_spec(6, breaker=False)}, seed=seed))
        sb.deploy(FLAKY)
        for _ in range(4):
            sb.advance(10)
        result = sorted(
            (t["taskArn"].rsplit("/", 1)[-1], t.get("stopCode", "running"))
            for t in sb.tasks(desired="RUNNING") + sb.tasks(desired="STOPPED")
        )
        sb.server.stop()
        return [f"{i}:{code}" for i, code in result]

    first, again, other = fates(1), fates(1), fates(2)
    assert first == again
    assert first != other
    assert any("EssentialContainerExited" in f for f in first)


@pytest.mark.parametrize(
    ("maximum", "minimum", "ceiling", "floor"),
    [
        pytest.param(200, 100, 8, 4, id="max200-min100"),
        pytest.param(100, 50, 4, 2, id="max100-min50"),
        pytest.param(150, 75, 6, 3, id="max150-min75"),
    ],
)
def test_pacing_within_maximum_and_minimum_percent(
    start_sandbox: Callable[..., Harness], maximum: int, minimum: int, ceiling: int, floor: int
) -> None:
    spec = service_spec(4)
    spec["deploymentConfiguration"].update(
        {"maximumPercent": maximum, "minimumHealthyPercent": minimum}
    )
    sb = start_sandbox(scenario({"api": spec}))
    sb.deploy(GOOD_2)
    peak, lowest = 0, 4
    for _ in range(200):
        tasks = sb.tasks()  # desiredStatus RUNNING: launched and not told to stop
        peak = max(peak, len(tasks))
        running = sum(1 for t in tasks if t["lastStatus"] == "RUNNING")
        lowest = min(lowest, running)
        if completed(sb.service()):
            break
        sb.advance(1)
    assert completed(sb.service())
    assert peak == ceiling
    assert lowest == floor


def test_force_new_deployment_and_scaling(sandbox: Harness) -> None:
    sandbox.ecs.update_service(cluster="prod", service="api", forceNewDeployment=True)
    service = sandbox.service()
    assert rollout(service) == [
        ("PRIMARY", "api:1", "IN_PROGRESS"),
        ("ACTIVE", "api:1", "COMPLETED"),
    ]
    sandbox.run_until(completed)
    sandbox.ecs.update_service(cluster="prod", service="api", desiredCount=5)
    sandbox.run_until(lambda s: s["runningCount"] == 5)
    assert len(sandbox.service()["deployments"]) == 1
    sandbox.ecs.update_service(cluster="prod", service="api", desiredCount=1)
    sandbox.run_until(lambda s: s["runningCount"] == 1)


def test_stop_task_is_replaced(sandbox: Harness) -> None:
    victim = sandbox.tasks()[0]["taskArn"]
    sandbox.ecs.stop_task(cluster="prod", task=victim, reason="testing")
    sandbox.run_until(lambda s: s["runningCount"] == 2 and messages(s)[0].endswith("steady state."))
    stopped = sandbox.ecs.describe_tasks(cluster="prod", tasks=[victim])["tasks"][0]
    assert stopped["stopCode"] == "UserInitiated"
    assert stopped["stoppedReason"] == "testing"
    assert stopped["lastStatus"] == "STOPPED"


def test_events_newest_first_capped_at_100(start_sandbox: Callable[..., Harness]) -> None:
    sb = start_sandbox(scenario({"api": service_spec(1, breaker=False)}))
    sb.deploy(CRASH)
    sb.advance(1)
    for _ in range(200):
        sb.advance(10)
    events = sb.service()["events"]
    assert len(events) == 100
    times = [e["createdAt"] for e in events]
    assert times == sorted(times, reverse=True)


def test_stop_service_deployment_rolls_back(sandbox: Harness) -> None:
    old = primary(sandbox.service())["id"]
    sandbox.deploy(GOOD_2)
    arn = sandbox.service()["currentServiceDeployment"]
    sandbox.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    sandbox.advance(1)  # asynchronous: ROLLBACK_REQUESTED until the scheduler acts
    service = sandbox.service()
    assert primary(service)["taskDefinition"].endswith("api:1")
    assert old in primary(service)["rolloutStateReason"]
    sandbox.run_until(completed)


def test_services_with_count_are_expanded(start_sandbox: Callable[..., Harness]) -> None:
    sb = start_sandbox(scenario({"api": service_spec(1, count=12)}))
    arns = sb.ecs.list_services(cluster="prod", maxResults=100)["serviceArns"]
    assert len(arns) == 12
    assert arns[0].endswith("service/prod/api-0001")
    assert GOOD  # the shared image
