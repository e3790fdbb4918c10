"""Rollbacks of blue/green, canary and linear deployments: traffic back to blue at
once, green scaled in, ROLLBACK_IN_PROGRESS -> ROLLBACK_SUCCESSFUL, whatever failed it
(a hook, the circuit breaker, an alarm, StopServiceDeployment).

- "Lambda hooks for Amazon ECS service deployments", "Lifecycle hooks during rollback":
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/lambda-lifecycle-hooks.html
- "Troubleshooting Amazon ECS blue/green deployments":
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/troubleshooting-blue-green.html
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sandbox_harness import (
    ALARM,
    GOOD_2,
    HOOK,
    UNHEALTHY,
    Harness,
    Traffic,
    consistent,
    current_deployment,
    finished,
    hook_invocations,
    rollouts,
    scenario,
    shift_state,
    shifting_spec,
    timeline,
)

pytestmark = pytest.mark.sandbox


@pytest.mark.parametrize(
    ("stage", "production_before"),
    [
        pytest.param("POST_TEST_TRAFFIC_SHIFT", (100, 0), id="before-production"),
        pytest.param("POST_PRODUCTION_TRAFFIC_SHIFT", (0, 100), id="after-production"),
    ],
)
def test_a_failed_hook_rolls_back_and_traffic_returns_at_once(
    start_sandbox: Callable[..., Harness], stage: str, production_before: tuple[int, int]
) -> None:
    """A hook answering FAILED rolls the deployment back: production and test traffic
    return to blue in the same step, the TEST_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT
    hooks run again with blue at 100%, green is scaled in, and the service deployment
    goes ROLLBACK_IN_PROGRESS -> ROLLBACK_SUCCESSFUL with the documented reason
    (lambda-lifecycle-hooks.html, "Lifecycle hooks during rollback";
    troubleshooting-blue-green.html, "Lambda hook returns FAILED status")."""
    failing = "arn:aws:lambda:us-east-1:123456789012:function:failing"
    hooks = [
        {"hookTargetArn": failing, "lifecycleStages": [stage]},
        {
            "hookTargetArn": HOOK,
            "lifecycleStages": ["TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"],
        },
    ]
    sb = start_sandbox(
        scenario(
            {"api": shifting_spec(bakeTimeInMinutes=1, hooks=hooks)},
            hooks={
                HOOK: {"behavior": "succeed"},
                failing: {"behavior": "fail", "inProgressSeconds": 30},
            },
        )
    )
    traffic = Traffic(sb)
    blue = sb.service()["deployments"][0]["id"]
    sb.deploy(GOOD_2)
    green = sb.service()["deployments"][0]["id"]
    seen = [state for _, state in timeline(sb, traffic, finished, check=consistent(sb))]
    at_hook = next(s for s in seen if s[1] == stage)
    assert at_hook[2:] == (production_before, (0, 100))
    rolling_back = [s for s in seen if s[0] == "ROLLBACK_IN_PROGRESS"]
    assert rolling_back and all(s[2:] == ((100, 0), (100, 0)) for s in rolling_back)
    assert seen[-1] == ("ROLLBACK_SUCCESSFUL", None, (100, 0), (100, 0))
    sd = current_deployment(sb)
    assert sd["statusReason"] == (
        f"Service deployment rolled back because {stage} lifecycle hook(s) failed. "
        f"Lifecycle hook target {failing} returned FAILED status."
    )
    assert sd["rollback"]["serviceRevisionArn"] == sd["sourceServiceRevisions"][0]["arn"]
    # Blue never stopped: it is the PRIMARY again, COMPLETED; green's tasks stopped.
    deployments = sb.service()["deployments"]
    assert [(d["id"], d["rolloutState"]) for d in deployments] == [(blue, "COMPLETED")]
    assert {t["startedBy"] for t in sb.tasks(desired="STOPPED")} == {green}
    assert traffic.targets(traffic.alternate) == []
    rollback_calls = [i for i in hook_invocations(sb) if i["rollback"]]
    assert [i["lifecycleStage"] for i in rollback_calls] == [
        "PRODUCTION_TRAFFIC_SHIFT",
        "TEST_TRAFFIC_SHIFT",
    ]
    weights = rollback_calls[0]["payload"]["executionDetails"]["productionTrafficWeights"]
    assert weights == {
        sd["targetServiceRevision"]["arn"]: 0,
        sd["rollback"]["serviceRevisionArn"]: 100,
    }
    messages = [e["message"] for e in sb.service()["events"]]
    assert f"(service api) rolling back to deployment {blue}." in messages


def test_stop_service_deployment_mid_shift_returns_traffic_at_once(
    start_sandbox: Callable[..., Harness],
) -> None:
    """StopServiceDeployment ROLLBACK during a linear shift: ROLLBACK_REQUESTED, then
    production (and test) traffic back to blue in one step
    (stop-service-deployment.html; blue is still running, so no task starts)."""
    config = {"stepPercent": 20.0, "stepBakeTimeInMinutes": 5}
    sb = start_sandbox(scenario({"api": shifting_spec("LINEAR", linearConfiguration=config)}))
    traffic = Traffic(sb)
    sb.deploy(GOOD_2)
    sb.run_until(lambda s: traffic.production == (60, 40), limit=1200)
    arn = sb.service()["currentServiceDeployment"]
    running = {t["taskArn"] for t in sb.tasks()}
    sb.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    assert shift_state(sb, traffic)[0] == "ROLLBACK_REQUESTED"
    assert traffic.production == (60, 40)
    sb.advance(1)
    assert shift_state(sb, traffic)[0] == "ROLLBACK_IN_PROGRESS"
    assert (traffic.production, traffic.test) == ((100, 0), (100, 0))
    assert rollouts(sb) == [("PRIMARY", "IN_PROGRESS"), ("ACTIVE", "FAILED")]
    seen = timeline(sb, traffic, finished)
    assert seen[-1][1] == ("ROLLBACK_SUCCESSFUL", None, (100, 0), (100, 0))
    assert not {t["taskArn"] for t in sb.tasks()} - running  # nothing was started


def test_the_breaker_on_green_rolls_back_before_any_production_traffic(
    start_sandbox: Callable[..., Harness],
) -> None:
    """Green failing its ELB health checks in the alternate target group trips the
    circuit breaker; the rollback leaves production where it always was, on blue
    (deployment-circuit-breaker.html; blue-green-deployment-how-it-works.html,
    "Only when green tasks pass health checks does the deployment proceed")."""
    sb = start_sandbox(scenario({"api": shifting_spec(bakeTimeInMinutes=1)}))
    traffic = Traffic(sb)
    sb.deploy(UNHEALTHY)
    seen = [state for _, state in timeline(sb, traffic, finished, check=consistent(sb))]
    assert {s[2] for s in seen} == {(100, 0)} and {s[3] for s in seen} == {(100, 0)}
    assert [s[0] for s in seen][-1] == "ROLLBACK_SUCCESSFUL"
    assert "SCALE_UP" in [s[1] for s in seen]
    sd = current_deployment(sb)
    assert sd["deploymentCircuitBreaker"]["status"] == "TRIGGERED"
    reasons = {t["stoppedReason"] for t in sb.tasks(desired="STOPPED")}
    assert f"Task failed ELB health checks in (target-group {traffic.alternate})" in reasons
    assert rollouts(sb) == [("PRIMARY", "COMPLETED")]


def test_a_deployment_alarm_in_the_bake_time_rolls_back(
    start_sandbox: Callable[..., Harness],
) -> None:
    """A deployment alarm read in ALARM during BAKE_TIME fails the deployment; with
    ``rollback`` production returns to blue, which was kept running for this
    (deployment-alarm-failure.html; deployment-type-blue-green.html, "the blue
    revision is kept running until the bake time expires")."""
    spec = shifting_spec(bakeTimeInMinutes=10)
    spec["deploymentConfiguration"]["alarms"] = {
        "alarmNames": ["api-prod-5xx"],
        "enable": True,
        "rollback": True,
    }
    sb = start_sandbox(scenario({"api": spec}))
    traffic = Traffic(sb)
    sb.deploy(ALARM)
    seen = [state for _, state in timeline(sb, traffic, finished)]
    stages = [s[1] for s in seen]
    assert "BAKE_TIME" in stages
    assert seen[-1] == ("ROLLBACK_SUCCESSFUL", None, (100, 0), (100, 0))
    sd = current_deployment(sb)
    assert sd["alarms"]["triggeredAlarmNames"] == ["api-prod-5xx"]


def test_without_rollback_a_failed_green_stops_where_it_is(
    start_sandbox: Callable[..., Harness],
) -> None:
    """Breaker without ``rollback``: the service deployment is STOPPED (API_ServiceDeployment,
    "stoppedAt"); nothing moves traffic back, blue keeps serving, green launches no more."""
    spec = shifting_spec(bakeTimeInMinutes=1)
    spec["deploymentConfiguration"]["deploymentCircuitBreaker"] = {
        "enable": True,
        "rollback": False,
    }
    sb = start_sandbox(scenario({"api": spec}))
    traffic = Traffic(sb)
    sb.deploy(UNHEALTHY)
    seen = timeline(sb, traffic, finished)
    assert seen[-1][1] == ("STOPPED", None, (100, 0), (100, 0))
    sb.advance(600)
    assert rollouts(sb) == [("PRIMARY", "FAILED"), ("ACTIVE", "COMPLETED")]
    assert [s for _, s in traffic.targets(traffic.primary)] == ["healthy", "healthy"]
    assert traffic.both() == ((100, 0), (100, 0))
