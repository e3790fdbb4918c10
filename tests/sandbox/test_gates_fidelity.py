"""Failure gates as ECS and ELB run them: visible unhealthy targets, alarm rollbacks.

Through boto3 over HTTP on a frozen clock (speed 0, stepped by ``advance``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sandbox_harness import (
    CRASH,
    GOOD_2,
    UNHEALTHY,
    Harness,
    messages,
    rollout,
    scenario,
    service_spec,
    task_definition,
)

from ecsop.sandbox import rollout as rollout_module
from ecsop.sandbox.model import Service
from ecsop.sandbox.simulator import Simulator, SimulatorStuck

pytestmark = pytest.mark.sandbox


# -- ELB target health: unhealthy is visible until ECS replaces the task -------


def _new_task(sb: Harness, first: dict[str, Any] | None = None) -> dict[str, Any]:
    """The first task of the ``api:2`` deployment (``first``: that task, described again)."""
    if first is not None:
        found: dict[str, Any] = sb.ecs.describe_tasks(cluster="prod", tasks=[first["taskArn"]])[
            "tasks"
        ][0]
        return found
    tasks = [t for t in sb.tasks() if t["taskDefinitionArn"].endswith("api:2")]
    assert len(tasks) == 1, tasks
    return tasks[0]


def _ip(task: dict[str, Any]) -> str:
    details = task["attachments"][0]["details"]
    return str(next(d["value"] for d in details if d["name"] == "privateIPv4Address"))


def _target(sb: Harness, tg: str, ip: str) -> dict[str, Any] | None:
    """The TargetHealth of ``ip`` (None: not registered)."""
    found = sb.elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    health = [h["TargetHealth"] for h in found if h["Target"]["Id"] == ip]
    return health[0] if health else None


def _failed_tasks(sb: Harness) -> int:
    return int(sb.service()["deployments"][0]["failedTasks"])


def _elb_event(service: str, task_id: str, tg: str) -> str:
    return (
        f"(service {service}) (task {task_id}) (port 8000) is unhealthy in "
        f"(target-group {tg}) due to (reason Health checks failed with these codes: [500])."
    )


def _start_unhealthy(sb: Harness) -> tuple[str, dict[str, Any]]:
    """Deploy UNHEALTHY at t0; return the target group and the new task at t0 + 6."""
    tg = sb.service()["loadBalancers"][0]["targetGroupArn"]
    sb.deploy(UNHEALTHY)
    sb.advance(1)  # launched at t0, when UpdateService returned
    sb.advance(5)  # RUNNING at t0 + 5, target registered
    task = _new_task(sb)
    assert task["lastStatus"] == "RUNNING"
    assert _target(sb, tg, _ip(task)) == {
        "State": "initial",
        "Reason": "Elb.RegistrationInProgress",
        "Description": "Target registration is in progress",
    }
    return tg, task


def _assert_unhealthy_and_serving(sb: Harness, tg: str, task: dict[str, Any]) -> None:
    assert _target(sb, tg, _ip(task)) == {
        "State": "unhealthy",
        "Reason": "Target.ResponseCodeMismatch",
        "Description": "Health checks failed with these codes: [500]",
    }
    now = _new_task(sb, task)
    assert (now["lastStatus"], now["desiredStatus"]) == ("RUNNING", "RUNNING")
    assert "stoppedReason" not in now
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    assert _elb_event("api", task_id, tg) not in messages(sb.service())


def _assert_replaced(sb: Harness, tg: str, task: dict[str, Any]) -> None:
    stopped = _new_task(sb, task)
    assert stopped["desiredStatus"] == "STOPPED"
    assert stopped["stoppedReason"] == f"Task failed ELB health checks in (target-group {tg})"
    assert stopped["stopCode"] == "ServiceSchedulerInitiated"
    assert _target(sb, tg, _ip(task)) == {
        "State": "draining",
        "Reason": "Target.DeregistrationInProgress",
        "Description": "Target deregistration is in progress",
    }
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    events = messages(sb.service())
    assert _elb_event("api", task_id, tg) in events
    assert f"(service api) has stopped 1 running tasks: (task {task_id})." in events


def test_unhealthy_target_is_visible_until_ecs_replaces_the_task(
    start_sandbox: Callable[..., Harness],
) -> None:
    sb = start_sandbox(scenario({"api": service_spec(1, lb=True, breaker=False)}))
    tg, task = _start_unhealthy(sb)
    sb.advance(29)  # t0 + 35: unhealthyAfterSeconds (30) after RUNNING, the ELB gives up
    _assert_unhealthy_and_serving(sb, tg, task)
    sb.advance(59)  # t0 + 94: ECS has not acted on it yet; the task still serves
    _assert_unhealthy_and_serving(sb, tg, task)
    sb.advance(1)  # t0 + 95: two health-check intervals (2 x 30 s) after it turned unhealthy
    _assert_replaced(sb, tg, task)
    sb.advance(20)  # the deregistration delay
    assert _target(sb, tg, _ip(task)) is None
    assert _failed_tasks(sb) == 1


def test_unhealthy_target_keeps_serving_through_the_grace_period(
    start_sandbox: Callable[..., Harness],
) -> None:
    spec = service_spec(1, lb=True, breaker=False, healthCheckGracePeriodSeconds=300)
    sb = start_sandbox(scenario({"api": spec}))
    tg, task = _start_unhealthy(sb)
    sb.advance(29)  # t0 + 35: unhealthy, inside the grace period
    _assert_unhealthy_and_serving(sb, tg, task)
    sb.advance(269)  # t0 + 304: ECS still ignores ELB health (grace ends at RUNNING + 300)
    _assert_unhealthy_and_serving(sb, tg, task)
    assert _failed_tasks(sb) == 0
    sb.advance(1)  # t0 + 305: the grace period is over
    _assert_replaced(sb, tg, task)
    assert _failed_tasks(sb) == 1


def test_ecs_notices_after_the_target_groups_health_check_intervals(
    start_sandbox: Callable[..., Harness],
) -> None:
    sb = start_sandbox(scenario({"api": service_spec(1, lb=True, breaker=False)}))
    tg = sb.service()["loadBalancers"][0]["targetGroupArn"]
    sb.elbv2.modify_target_group(TargetGroupArn=tg, HealthCheckIntervalSeconds=5)
    tg, task = _start_unhealthy(sb)
    sb.advance(29)  # t0 + 35: unhealthy
    _assert_unhealthy_and_serving(sb, tg, task)
    sb.advance(9)  # t0 + 44
    _assert_unhealthy_and_serving(sb, tg, task)
    sb.advance(1)  # t0 + 45: 2 x 5 s later
    _assert_replaced(sb, tg, task)


def test_container_health_check_unhealthy_during_the_grace_period(
    start_sandbox: Callable[..., Harness],
) -> None:
    spec = service_spec(1, breaker=False, healthCheckGracePeriodSeconds=120)
    sb = start_sandbox(scenario({"api": spec}))
    definition = task_definition(UNHEALTHY)
    definition["containerDefinitions"][0]["healthCheck"] = {"command": ["CMD", "true"]}
    arn = sb.ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    sb.ecs.update_service(cluster="prod", service="api", taskDefinition=arn)
    sb.advance(1)
    sb.advance(5)  # RUNNING at t0 + 5
    sb.advance(10)  # t0 + 16: its health check has failed (startSeconds 5), inside the grace
    task = _new_task(sb)
    assert (task["lastStatus"], task["desiredStatus"]) == ("RUNNING", "RUNNING")
    assert task["healthStatus"] == "UNHEALTHY"
    assert task["containers"][0]["healthStatus"] == "UNHEALTHY"
    sb.advance(109)  # t0 + 125: grace over (RUNNING + 120)
    task = _new_task(sb, task)
    assert task["desiredStatus"] == "STOPPED"
    assert task["stoppedReason"] == "Task failed container health checks"
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    assert f"(service api) (task {task_id}) failed container health checks." in messages(
        sb.service()
    )


# -- deployment alarms ------------------------------------------------------


def _completed(service: dict[str, Any]) -> bool:
    return len(service["deployments"]) == 1 and (
        service["deployments"][0]["rolloutState"] == "COMPLETED"
    )


def _alarmed_service(crash_counts: bool = False, **alarms: Any) -> dict[str, Any]:
    spec = service_spec(
        2, breaker=False, rollback=False, crashAfterRunningCountsAsFailed=crash_counts
    )
    spec["deploymentConfiguration"]["alarms"] = {
        "alarmNames": ["api-prod-5xx"],
        "enable": True,
        "rollback": True,
        **alarms,
    }
    return spec


def _set_alarm(sb: Harness, state: str) -> None:
    sb.cloudwatch.set_alarm_state(
        AlarmName="api-prod-5xx", StateValue=state, StateReason=f"test: {state}"
    )


@pytest.mark.timeout(30)
def test_alarm_rollback_is_not_rolled_back_by_the_same_alarm(
    start_sandbox: Callable[..., Harness],
) -> None:
    """The alarm that failed a deployment stays in ALARM: ECS rolls back once.

    The rollback deployment starts with the alarm already in ALARM, so ECS does
    not monitor alarms for it (deployment-alarm-failure.html), and it is not
    eligible for another rollback anyway (deployment-circuit-breaker.html).
    """
    sb = start_sandbox(scenario({"api": _alarmed_service()}))
    completed_id = sb.service()["deployments"][0]["id"]
    sb.deploy(GOOD_2)
    failing_id = sb.service()["deployments"][0]["id"]
    sb.advance(3)  # the new tasks are starting
    _set_alarm(sb, "ALARM")  # e.g. the load balancer's 5xx alarm; it stays in ALARM
    # The scheduler's next look at the service fails the deployment (before the
    # fix, the rollback was failed again at the same instant, forever, under
    # the simulator's lock: this call never returned).
    sb.run_until(lambda s: any(d["rolloutState"] == "FAILED" for d in s["deployments"]), limit=60)

    service = sb.service()
    assert len(service["deployments"]) <= 3
    failed = next(d for d in service["deployments"] if d["id"] == failing_id)
    assert failed["status"] == "ACTIVE"
    assert failed["rolloutState"] == "FAILED"
    assert failed["rolloutStateReason"] == "ECS deployment alarms: api-prod-5xx in ALARM state."
    back = service["deployments"][0]
    assert back["status"] == "PRIMARY"
    assert back["taskDefinition"].endswith("task-definition/api:1")
    assert back["rolloutState"] == "IN_PROGRESS"
    assert back["rolloutStateReason"] == (
        f"ECS deployment alarms: rolling back to deploymentId {completed_id}."
    )
    events = messages(service)
    failed_events = [m for m in events if "deployment failed" in m]
    assert failed_events == [
        f"(service api) (deployment {failing_id}) deployment failed: alarm detected: api-prod-5xx."
    ]
    assert [m for m in events if "rolling back" in m] == [
        f"(service api) rolling back to deployment {completed_id}."
    ]

    # The alarm stays in ALARM; the rollback runs to completion all the same.
    sb.run_until(_completed, limit=600)
    service = sb.service()
    assert rollout(service) == [("PRIMARY", "api:1", "COMPLETED")]
    assert service["runningCount"] == 2
    assert sum("deployment failed" in m for m in messages(service)) == 1
    assert sum("rolling back" in m for m in messages(service)) == 1


def test_alarm_in_alarm_when_the_deployment_starts_is_ignored(
    start_sandbox: Callable[..., Harness],
) -> None:
    """ECS: "If an alarm is in the ALARM state at the beginning of a deployment,
    Amazon ECS will not monitor alarms for the duration of that deployment" (so
    a fix can be deployed while the alarm fires)."""
    sb = start_sandbox(scenario({"api": _alarmed_service()}))
    _set_alarm(sb, "ALARM")
    sb.deploy(GOOD_2)
    sb.run_until(_completed, limit=600)
    service = sb.service()
    assert rollout(service) == [("PRIMARY", "api:2", "COMPLETED")]
    assert not any("deployment failed" in m for m in messages(service))


def test_alarm_fails_a_rollback_without_rolling_it_back(
    start_sandbox: Callable[..., Harness],
) -> None:
    """A rollback deployment is not eligible for another rollback until COMPLETED."""
    spec = _alarmed_service(crash_counts=True)
    spec["deploymentConfiguration"]["deploymentCircuitBreaker"] = {"enable": True, "rollback": True}
    sb = start_sandbox(scenario({"api": spec}))
    sb.deploy(CRASH)
    sb.run_until(
        lambda s: s["deployments"][0]["rolloutStateReason"].startswith(
            "ECS deployment circuit breaker: rolling back"
        )
    )
    back_id = sb.service()["deployments"][0]["id"]
    _set_alarm(sb, "ALARM")  # while the rollback is in progress
    sb.run_until(lambda s: s["deployments"][0]["rolloutState"] == "FAILED", limit=120)
    service = sb.service()
    assert service["deployments"][0]["id"] == back_id  # no deployment after the rollback
    assert service["deployments"][0]["rolloutStateReason"] == (
        "ECS deployment alarms: api-prod-5xx in ALARM state."
    )
    sb.advance(300)
    service = sb.service()
    assert service["deployments"][0]["id"] == back_id
    assert sum("rolling back" in m for m in messages(service)) == 1


def test_a_scheduler_that_never_settles_is_reported_not_spun(
    start_sandbox: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: a livelock raises instead of hanging under the lock."""
    sb = start_sandbox()
    sim = sb.server.simulator

    def restless(sim_: Simulator, service: Service, at: float) -> float:
        sim_.wake(service, at)
        return at

    monkeypatch.setattr(rollout_module, "step", restless)
    sb.ecs.update_service(cluster="prod", service="api", forceNewDeployment=True)
    with pytest.raises(SimulatorStuck, match="prod/api stepped 1000 times"):
        sb.advance(1)
    monkeypatch.undo()
    # The lock was released and the service left due: once the scheduler
    # behaves again, the endpoint answers and the deployment goes on.
    sb.run_until(_completed, limit=600)
    assert len(sim.services) == 1
