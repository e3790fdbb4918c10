"""Deployment alarms: the bake time and ECS's own reading schedule, through boto3.

"How CloudWatch alarms detect Amazon ECS deployment failures":
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sandbox_harness import GOOD_2, Harness, messages, rollout, scenario, service_spec

pytestmark = pytest.mark.sandbox

ALARM_NAME = "api-prod-5xx"


def _alarmed(**config: Any) -> dict[str, Any]:
    spec = service_spec(2, breaker=False)
    spec["deploymentConfiguration"]["alarms"] = {
        "alarmNames": [ALARM_NAME],
        "enable": True,
        "rollback": True,
    }
    spec["deploymentConfiguration"].update(config)
    return spec


def _stage(sb: Harness) -> str | None:
    arn = sb.service()["currentServiceDeployment"]
    found = sb.ecs.describe_service_deployments(serviceDeploymentArns=[arn])
    stage: str | None = found["serviceDeployments"][0].get("lifecycleStage")
    return stage


def test_steady_deployment_bakes_before_it_completes(start_sandbox: Callable[..., Harness]) -> None:
    """ "When the service reaches a steady state and the bake time is complete, the
    rollout state transitions to COMPLETED"; ``bakeTimeInMinutes``
    (API_DeploymentConfiguration) sets it."""
    sb = start_sandbox(scenario({"api": _alarmed(bakeTimeInMinutes=5)}))
    sb.deploy(GOOD_2)
    sb.run_until(lambda s: len(s["deployments"]) == 1)  # old tasks gone: steady
    assert _stage(sb) == "BAKE_TIME"
    service = sb.service()
    assert rollout(service) == [("PRIMARY", "api:2", "IN_PROGRESS")]
    assert "(service api) has reached a steady state." not in messages(service)[:1]
    waited = sb.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED")
    assert 298 <= waited <= 300
    assert messages(sb.service())[0] == "(service api) has reached a steady state."


def test_bake_time_follows_the_alarm_configuration_by_default(
    start_sandbox: Callable[..., Harness],
) -> None:
    """Without bakeTimeInMinutes, "Amazon ECS computes this time period based on the
    alarm configuration": here Period 60 s x EvaluationPeriods 3."""
    sb = start_sandbox(scenario({"api": _alarmed()}))
    sb.cloudwatch.put_metric_alarm(
        AlarmName=ALARM_NAME,
        MetricName="HTTPCode_Target_5XX_Count",
        Namespace="AWS/ApplicationELB",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=3,
        Threshold=0.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    sb.deploy(GOOD_2)
    sb.run_until(lambda s: len(s["deployments"]) == 1)
    assert _stage(sb) == "BAKE_TIME"
    waited = sb.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED")
    assert 178 <= waited <= 180


def test_alarm_read_on_ecs_schedule_fails_a_quiet_deployment(
    start_sandbox: Callable[..., Harness],
) -> None:
    """An alarm that goes to ALARM while no task changes fails the deployment at
    ECS's next read of the alarms (every ``alarmPollSeconds`` from the start), and
    the bake time is still part of the deployment: it rolls back."""
    sb = start_sandbox(
        scenario({"api": _alarmed(bakeTimeInMinutes=10)}, timings={"alarmPollSeconds": 30})
    )
    sb.deploy(GOOD_2)  # t0; reads at t0 + 30, + 60, ...
    failing = sb.service()["deployments"][0]["id"]
    sb.advance(100)  # baking, nothing moves
    sb.cloudwatch.set_alarm_state(AlarmName=ALARM_NAME, StateValue="ALARM", StateReason="5xx")
    sb.advance(19)  # t0 + 119: not read yet
    assert rollout(sb.service()) == [("PRIMARY", "api:2", "IN_PROGRESS")]
    sb.advance(1)  # t0 + 120: read, failed, rolled back
    service = sb.service()
    failed = next(d for d in service["deployments"] if d["id"] == failing)
    assert failed["rolloutState"] == "FAILED"
    assert service["deployments"][0]["taskDefinition"].endswith("api:1")
    assert (
        f"(service api) (deployment {failing}) deployment failed: alarm detected: {ALARM_NAME}."
        in messages(service)
    )


def test_alarm_state_times_are_on_the_simulated_clock(
    start_sandbox: Callable[..., Harness],
) -> None:
    """StateTransitionedTimestamp moves when the value changes, StateUpdatedTimestamp at
    every update, both on the clock the service's deployments are dated by (ecsop
    measures how long ECS has had to act on its own alarm from them)."""
    sb = start_sandbox(scenario({"api": _alarmed()}))

    def alarm() -> dict[str, Any]:
        return sb.cloudwatch.describe_alarms(AlarmNames=[ALARM_NAME])["MetricAlarms"][0]

    created = alarm()["StateTransitionedTimestamp"]
    sb.advance(600)
    sb.cloudwatch.set_alarm_state(AlarmName=ALARM_NAME, StateValue="ALARM", StateReason="5xx")
    fired = alarm()
    assert (fired["StateTransitionedTimestamp"] - created).total_seconds() >= 600
    assert fired["StateUpdatedTimestamp"] == fired["StateTransitionedTimestamp"]
    sb.advance(120)
    sb.cloudwatch.set_alarm_state(AlarmName=ALARM_NAME, StateValue="ALARM", StateReason="again")
    again = alarm()
    assert again["StateTransitionedTimestamp"] == fired["StateTransitionedTimestamp"]
    assert (again["StateUpdatedTimestamp"] - fired["StateUpdatedTimestamp"]).total_seconds() >= 120
    deployed = sb.deploy(GOOD_2)
    started = sb.service()["deployments"][0]["createdAt"]
    assert deployed and abs((started - again["StateUpdatedTimestamp"]).total_seconds()) < 5
