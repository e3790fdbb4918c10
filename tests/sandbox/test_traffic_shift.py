"""Blue/green, canary and linear deployments, read the way a client reads them:
``lifecycleStage`` from DescribeServiceDeployments, weights from
``elbv2.describe_rules``, targets from DescribeTargetHealth, on the simulated clock.

- "Amazon ECS blue/green service deployments workflow":
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/blue-green-deployment-how-it-works.html
- "Amazon ECS canary deployments":
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/canary-deployment.html
- "Amazon ECS linear deployments":
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-linear.html
- "Lambda hooks for Amazon ECS service deployments":
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/lambda-lifecycle-hooks.html
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from sandbox_harness import (
    ALARM,
    GOOD_2,
    HOOK,
    UNHEALTHY,
    Harness,
    Traffic,
    current_deployment,
    hook_invocations,
    scenario,
    shifting_spec,
)

pytestmark = pytest.mark.sandbox

State = tuple[str, str | None, tuple[int, int], tuple[int, int]]


def _state(sb: Harness, traffic: Traffic, arn: str | None = None) -> State:
    if arn is None:
        sd = current_deployment(sb)
    else:
        sd = sb.ecs.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"][
            0
        ]
    return (sd["status"], sd.get("lifecycleStage"), *traffic.both())


def _timeline(
    sb: Harness,
    traffic: Traffic,
    done: Callable[[State], bool],
    limit: int = 1200,
    check: Callable[[State], None] | None = None,
) -> list[tuple[int, State]]:
    """Step the clock a second at a time; each distinct state of the current service
    deployment with when it began."""
    arn = sb.service()["currentServiceDeployment"]
    seen: list[tuple[int, State]] = []
    for second in range(limit):
        state = _state(sb, traffic, arn)
        if check is not None:
            check(state)
        if not seen or seen[-1][1] != state:
            seen.append((second, state))
        if done(state):
            return seen
        sb.advance(1)
    raise AssertionError(f"not done within {limit} s: {seen}")


def _finished(state: State) -> bool:
    return state[0] in ("SUCCESSFUL", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED", "STOPPED")


def _rollouts(sb: Harness) -> list[tuple[str, str]]:
    return [(d["status"], d["rolloutState"]) for d in sb.service()["deployments"]]


def _consistent(sb: Harness) -> Callable[[State], None]:
    """``deployments`` in DescribeServices agrees with the service deployment's status."""

    def check(state: State) -> None:
        rollouts = _rollouts(sb)
        primary, failed = rollouts[0], [r for r in rollouts if r[1] == "FAILED"]
        if state[0] in ("IN_PROGRESS", "ROLLBACK_REQUESTED"):
            assert primary == ("PRIMARY", "IN_PROGRESS") and not failed, (state, rollouts)
        elif state[0] == "ROLLBACK_IN_PROGRESS":
            assert primary == ("PRIMARY", "IN_PROGRESS") and failed, (state, rollouts)
        else:
            assert primary == ("PRIMARY", "COMPLETED") and not failed, (state, rollouts)

    return check


def test_blue_green_tests_green_then_shifts_production_at_once(
    start_sandbox: Callable[..., Harness],
) -> None:
    """Blue/green: green scales up in the alternate target group, takes the test
    traffic (TEST_TRAFFIC_SHIFT), then all production traffic at once; blue keeps
    running through ``bakeTimeInMinutes`` and is scaled in (CLEAN_UP)
    (blue-green-deployment-how-it-works.html; hook answers IN_PROGRESS then
    SUCCEEDED, re-invoked after ``callBackDelay``, lambda-lifecycle-hooks.html)."""
    hooks = [{"hookTargetArn": HOOK, "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}]
    sb = start_sandbox(
        scenario(
            {"api": shifting_spec(bakeTimeInMinutes=2, hooks=hooks)},
            hooks={HOOK: {"behavior": "succeed", "inProgressSeconds": 60}},
        )
    )
    traffic = Traffic(sb)
    blue_ips = [ip for ip, _ in traffic.targets(traffic.primary)]
    assert len(blue_ips) == 2 and traffic.targets(traffic.alternate) == []
    sb.deploy(GOOD_2)
    seen = _timeline(sb, traffic, _finished)
    states = [state for _, state in seen]
    assert states == [
        ("IN_PROGRESS", "SCALE_UP", (100, 0), (100, 0)),
        ("IN_PROGRESS", "POST_TEST_TRAFFIC_SHIFT", (100, 0), (0, 100)),
        ("IN_PROGRESS", "BAKE_TIME", (0, 100), (0, 100)),
        ("IN_PROGRESS", "CLEAN_UP", (0, 100), (0, 100)),
        ("SUCCESSFUL", None, (0, 100), (0, 100)),
    ]
    when = {state[1]: second for second, state in seen}
    assert when["CLEAN_UP"] - when["BAKE_TIME"] == 120  # bakeTimeInMinutes: 2
    assert when["BAKE_TIME"] - when["POST_TEST_TRAFFIC_SHIFT"] == 60  # the hook's 60 s
    answers = [(i["lifecycleStage"], i["result"]) for i in hook_invocations(sb)]
    assert answers == [("POST_TEST_TRAFFIC_SHIFT", "IN_PROGRESS")] * 2 + [
        ("POST_TEST_TRAFFIC_SHIFT", "SUCCEEDED")
    ]
    # Green serves from the alternate target group; blue's targets are gone.
    assert [state for _, state in traffic.targets(traffic.alternate)] == ["healthy", "healthy"]
    assert traffic.targets(traffic.primary) == []
    assert _rollouts(sb) == [("PRIMARY", "COMPLETED")]
    stopped = sb.tasks(desired="STOPPED")
    assert {t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"] for t in stopped} == {
        *blue_ips
    }
    # The revision says which target group serves it (API_ResolvedConfiguration).
    sd = current_deployment(sb)
    revision = sb.ecs.describe_service_revisions(
        serviceRevisionArns=[sd["targetServiceRevision"]["arn"]]
    )["serviceRevisions"][0]
    assert revision["resolvedConfiguration"]["loadBalancers"] == [
        {"targetGroupArn": traffic.alternate, "productionListenerRule": traffic.production_rule}
    ]


def test_the_next_deployment_swaps_the_target_groups(
    start_sandbox: Callable[..., Harness],
) -> None:
    """Green of one deployment is blue of the next: the next green goes to the target
    group that serves no production traffic, and the weights move back
    (alb-resources-for-blue-green.html, "Traffic flow during deployment")."""
    sb = start_sandbox(scenario({"api": shifting_spec(bakeTimeInMinutes=0)}))
    traffic = Traffic(sb)
    sb.deploy(GOOD_2)
    _timeline(sb, traffic, _finished)
    assert traffic.production == (0, 100)
    sb.ecs.update_service(cluster="prod", service="api", forceNewDeployment=True)
    sd = current_deployment(sb)
    assert sd["status"] == "IN_PROGRESS"
    states = [state for _, state in _timeline(sb, traffic, _finished)]
    assert states[0][2] == (0, 100) and states[-1] == ("SUCCESSFUL", None, (100, 0), (100, 0))
    assert [s for _, s in traffic.targets(traffic.primary)] == ["healthy", "healthy"]
    assert traffic.targets(traffic.alternate) == []


@pytest.mark.parametrize(
    ("percent", "canary_weights"),
    [
        pytest.param(10.0, (90, 10), id="whole-percent"),
        pytest.param(2.5, (975, 25), id="tenths"),
    ],
)
def test_canary_shifts_the_canary_percent_then_the_rest(
    start_sandbox: Callable[..., Harness], percent: float, canary_weights: tuple[int, int]
) -> None:
    """Canary: ``canaryPercent`` to green, ``canaryBakeTimeInMinutes``, then 100%
    (canary-deployment.html, "Canary traffic shifting ... two step")."""
    config = {"canaryPercent": percent, "canaryBakeTimeInMinutes": 1}
    sb = start_sandbox(
        scenario({"api": shifting_spec("CANARY", canaryConfiguration=config, bakeTimeInMinutes=1)})
    )
    traffic = Traffic(sb)
    sb.deploy(GOOD_2)
    seen = _timeline(sb, traffic, _finished)
    production = [(second, state[2]) for second, state in seen]
    weights = [w for _, w in production]
    assert weights[:3] == [(100, 0), canary_weights, (0, 100)]
    assert production[2][0] - production[1][0] == 60  # canaryBakeTimeInMinutes: 1
    assert seen[-1][1][0] == "SUCCESSFUL"


def test_linear_shifts_step_by_step(start_sandbox: Callable[..., Harness]) -> None:
    """Linear: ``stepPercent`` more every ``stepBakeTimeInMinutes``, no wait once green
    has 100% (deployment-type-linear.html; API_LinearConfiguration); a hook at
    PRODUCTION_TRAFFIC_SHIFT runs at every step (deployment-lifecycle-hooks.html)."""
    hooks = [{"hookTargetArn": HOOK, "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"]}]
    config = {"stepPercent": 25.0, "stepBakeTimeInMinutes": 2}
    sb = start_sandbox(
        scenario(
            {"api": shifting_spec("LINEAR", linearConfiguration=config, hooks=hooks)},
            hooks={HOOK: {"behavior": "succeed"}},
        )
    )
    traffic = Traffic(sb)
    sb.deploy(GOOD_2)
    seen = _timeline(sb, traffic, _finished)
    shifts = [
        (second, state[2]) for second, state in seen if state[1] == "PRODUCTION_TRAFFIC_SHIFT"
    ]
    assert [w for _, w in shifts] == [(75, 25), (50, 50), (25, 75)]
    assert [b[0] - a[0] for a, b in itertools.pairwise(shifts)] == [120, 120]
    after = [(second, state) for second, state in seen if state[2] == (0, 100)]
    assert after[0][0] - shifts[-1][0] == 120 and after[0][1][1] == "CLEAN_UP"  # no bake: 0
    steps = [
        i["payload"]["executionDetails"]["productionTrafficWeights"] for i in hook_invocations(sb)
    ]
    target = current_deployment(sb)["targetServiceRevision"]["arn"]
    assert [s[target] for s in steps] == [25, 50, 75, 100]


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
    seen = [state for _, state in _timeline(sb, traffic, _finished, check=_consistent(sb))]
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
    assert _state(sb, traffic)[0] == "ROLLBACK_REQUESTED"
    assert traffic.production == (60, 40)
    sb.advance(1)
    assert _state(sb, traffic)[0] == "ROLLBACK_IN_PROGRESS"
    assert (traffic.production, traffic.test) == ((100, 0), (100, 0))
    assert _rollouts(sb) == [("PRIMARY", "IN_PROGRESS"), ("ACTIVE", "FAILED")]
    seen = _timeline(sb, traffic, _finished)
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
    seen = [state for _, state in _timeline(sb, traffic, _finished, check=_consistent(sb))]
    assert {s[2] for s in seen} == {(100, 0)} and {s[3] for s in seen} == {(100, 0)}
    assert [s[0] for s in seen][-1] == "ROLLBACK_SUCCESSFUL"
    assert "SCALE_UP" in [s[1] for s in seen]
    sd = current_deployment(sb)
    assert sd["deploymentCircuitBreaker"]["status"] == "TRIGGERED"
    reasons = {t["stoppedReason"] for t in sb.tasks(desired="STOPPED")}
    assert f"Task failed ELB health checks in (target-group {traffic.alternate})" in reasons
    assert _rollouts(sb) == [("PRIMARY", "COMPLETED")]


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
    seen = [state for _, state in _timeline(sb, traffic, _finished)]
    stages = [s[1] for s in seen]
    assert "BAKE_TIME" in stages
    assert seen[-1] == ("ROLLBACK_SUCCESSFUL", None, (100, 0), (100, 0))
    sd = current_deployment(sb)
    assert sd["alarms"]["triggeredAlarmNames"] == ["api-prod-5xx"]


def test_a_pause_hook_waits_for_continue_service_deployment(
    start_sandbox: Callable[..., Harness],
) -> None:
    """A PAUSE hook holds the stage (AWAITING_ACTION in ``lifecycleHookDetails``) until
    ContinueServiceDeployment (pause-lifecycle-hooks.html; API_ContinueServiceDeployment)."""
    hooks = [{"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}]
    sb = start_sandbox(scenario({"api": shifting_spec(bakeTimeInMinutes=0, hooks=hooks)}))
    traffic = Traffic(sb)
    sb.deploy(GOOD_2)
    sb.run_until(
        lambda s: current_deployment(sb).get("lifecycleStage") == "POST_TEST_TRAFFIC_SHIFT"
    )
    sb.advance(3600)
    sd = current_deployment(sb)
    assert sd["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
    [detail] = sd["lifecycleHookDetails"]
    assert detail["status"] == "AWAITING_ACTION" and detail["targetType"] == "PAUSE"
    assert detail["hookId"].startswith("ecs-pause-")
    sb.ecs.continue_service_deployment(
        serviceDeploymentArn=sd["serviceDeploymentArn"], hookId=detail["hookId"]
    )
    seen = [state for _, state in _timeline(sb, traffic, _finished)]
    assert seen[-1] == ("SUCCESSFUL", None, (0, 100), (0, 100))


def test_a_hook_that_never_finishes_times_out_and_rolls_back(
    start_sandbox: Callable[..., Harness],
) -> None:
    """IN_PROGRESS past ``timeoutConfiguration.timeoutInMinutes`` is TIMED_OUT; the
    default ``action`` is ROLLBACK (API_DeploymentLifecycleHookTimeoutConfiguration)."""
    hooks = [
        {
            "hookTargetArn": HOOK,
            "lifecycleStages": ["PRE_SCALE_UP"],
            "timeoutConfiguration": {"timeoutInMinutes": 2},
        }
    ]
    sb = start_sandbox(
        scenario(
            {"api": shifting_spec(bakeTimeInMinutes=0, hooks=hooks)},
            hooks={HOOK: {"behavior": "succeed", "inProgressSeconds": 3600}},
        )
    )
    traffic = Traffic(sb)
    sb.deploy(GOOD_2)
    seen = _timeline(sb, traffic, _finished)
    assert seen[0][1][1] == "PRE_SCALE_UP"
    assert seen[-1][1][0] == "ROLLBACK_SUCCESSFUL" and seen[-1][0] == 120
    assert f"Lifecycle hook target {HOOK} timed out." in current_deployment(sb)["statusReason"]


def test_an_undeclared_hook_function_fails_to_invoke(start_sandbox: Callable[..., Harness]) -> None:
    """A hook target nobody can invoke rolls back ("ECS was unable to invoke hook target",
    troubleshooting-blue-green.html)."""
    missing = "arn:aws:lambda:us-east-1:123456789012:function:missing"
    hooks = [{"hookTargetArn": missing, "lifecycleStages": ["POST_SCALE_UP"]}]
    sb = start_sandbox(scenario({"api": shifting_spec(bakeTimeInMinutes=0, hooks=hooks)}))
    traffic = Traffic(sb)
    sb.deploy(GOOD_2)
    _timeline(sb, traffic, _finished)
    sd = current_deployment(sb)
    assert sd["status"] == "ROLLBACK_SUCCESSFUL"
    assert f"ECS was unable to invoke hook target {missing}" in sd["statusReason"]


def test_a_headless_blue_green_service_has_the_stages_without_traffic(
    start_sandbox: Callable[..., Harness],
) -> None:
    """Without a load balancer ECS still runs the stages but shifts no traffic
    (blue-green-deployment-implementation.html, "headless service")."""
    spec = shifting_spec(bakeTimeInMinutes=1)
    del spec["loadBalancer"]
    sb = start_sandbox(scenario({"api": spec}))
    sb.deploy(GOOD_2)
    stages: list[str | None] = []
    for _ in range(600):
        sd = current_deployment(sb)
        if not stages or stages[-1] != sd.get("lifecycleStage"):
            stages.append(sd.get("lifecycleStage"))
        if sd["status"] == "SUCCESSFUL":
            break
        sb.advance(1)
    assert stages == ["SCALE_UP", "BAKE_TIME", "CLEAN_UP", None]
    assert _rollouts(sb) == [("PRIMARY", "COMPLETED")]


def _update_error(sb: Harness, **request: Any) -> tuple[str, str]:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as raised:
        sb.ecs.update_service(cluster="prod", service="api", **request)
    error = raised.value.response["Error"]
    return error["Code"], error["Message"]


@pytest.mark.parametrize(
    ("config", "code", "message"),
    [
        pytest.param(
            {"strategy": "LINEAR"},
            "ClientException",
            "advancedConfiguration field is required for all loadBalancers when using the "
            "linear deployment strategy",
            id="no-advanced-configuration",
        ),
        pytest.param(
            {"strategy": "BLUE_GREEN"},
            "ClientException",
            "advancedConfiguration field is required for all loadBalancers when using the "
            "Blue/green deployment strategy",
            id="blue-green-without-advanced-configuration",
        ),
        pytest.param(
            {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 0.05}},
            "InvalidParameterException",
            "canaryConfiguration.canaryPercent must be a multiple of 0.1 from 0.1 to 100.0.",
            id="canary-percent",
        ),
        pytest.param(
            {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 2.0}},
            "InvalidParameterException",
            "linearConfiguration.stepPercent must be a multiple of 0.1 from 3.0 to 100.0.",
            id="step-percent",
        ),
        pytest.param(
            {"strategy": "LINEAR", "linearConfiguration": {"stepBakeTimeInMinutes": 1441}},
            "InvalidParameterException",
            "linearConfiguration.stepBakeTimeInMinutes must be an integer from 0 to 1440.",
            id="step-bake",
        ),
        pytest.param(
            {
                "lifecycleHooks": [
                    {"targetType": "PAUSE", "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"]}
                ]
            },
            "InvalidParameterException",
            "Invalid lifecycle stage provided for Pause Hook",
            id="pause-at-production-shift",
        ),
        pytest.param(
            {"lifecycleHooks": [{"targetType": "SNS", "lifecycleStages": ["PRE_SCALE_UP"]}]},
            "InvalidParameterException",
            "Invalid targetType. Valid values are: AWS_LAMBDA, PAUSE",
            id="target-type",
        ),
    ],
)
def test_update_service_refuses_what_ecs_refuses(
    start_sandbox: Callable[..., Harness], config: dict[str, Any], code: str, message: str
) -> None:
    """CreateService / UpdateService validation (troubleshooting-blue-green.html;
    API_CanaryConfiguration, API_LinearConfiguration, API_DeploymentLifecycleHook);
    a non-ROLLING strategy on a rolling service behind a load balancer lacks the
    advancedConfiguration (terraform-aws-modules/terraform-aws-ecs#377)."""
    from sandbox_harness import service_spec

    sb = start_sandbox(scenario({"api": service_spec(2, lb=True)}))
    config = {"bakeTimeInMinutes": 1, **config}
    assert _update_error(sb, deploymentConfiguration=config) == (code, message)


def test_blue_green_needs_a_bake_time(start_sandbox: Callable[..., Harness]) -> None:
    """ "You must provide this parameter when you use the BLUE_GREEN deployment
    strategy" (API_DeploymentConfiguration, bakeTimeInMinutes)."""
    sb = start_sandbox(scenario({"api": shifting_spec("LINEAR")}))
    assert _update_error(sb, deploymentConfiguration={"strategy": "BLUE_GREEN"}) == (
        "InvalidParameterException",
        "bakeTimeInMinutes is required when the deployment strategy is BLUE_GREEN.",
    )


def test_the_same_rule_cannot_be_production_and_test(
    start_sandbox: Callable[..., Harness],
) -> None:
    """troubleshooting-blue-green.html, "Using the same rule for both production and test
    listeners"."""
    sb = start_sandbox(scenario({"api": shifting_spec(bakeTimeInMinutes=1)}))
    binding = sb.service()["loadBalancers"][0]
    advanced = dict(binding["advancedConfiguration"])
    advanced["testListenerRule"] = advanced["productionListenerRule"]
    code, message = _update_error(
        sb, loadBalancers=[{**binding, "advancedConfiguration": advanced}]
    )
    assert code == "InvalidParameterException"
    assert message.startswith("The following rules cannot be used as both production and test")


def _own_load_balancer(sb: Harness) -> dict[str, str]:
    """What a user builds before a blue/green service (alb-resources-for-blue-green.html):
    two target groups, an ALB, a listener and a rule forwarding to both, weights 1 / 0."""
    import boto3

    ec2 = boto3.client(
        "ec2",
        endpoint_url=sb.server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    groups = [
        sb.elbv2.create_target_group(
            Name=name, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip"
        )["TargetGroups"][0]["TargetGroupArn"]
        for name in ("web-blue", "web-green")
    ]
    balancer = sb.elbv2.create_load_balancer(Name="web", Subnets=subnets, Type="application")
    listener = sb.elbv2.create_listener(
        LoadBalancerArn=balancer["LoadBalancers"][0]["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
    )["Listeners"][0]["ListenerArn"]
    rule = sb.elbv2.create_rule(
        ListenerArn=listener,
        Priority=1,
        Conditions=[{"Field": "path-pattern", "Values": ["/*"]}],
        Actions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": groups[0], "Weight": 1},
                        {"TargetGroupArn": groups[1], "Weight": 0},
                    ]
                },
            }
        ],
    )["Rules"][0]["RuleArn"]
    return {"blue": groups[0], "green": groups[1], "rule": rule}


def test_a_service_created_through_the_api_with_its_own_load_balancer(
    sandbox: Harness,
) -> None:
    """CreateService with ``advancedConfiguration`` naming the caller's own resources; its
    first deployment has no blue to shift from and fills ``targetGroupArn``; the next
    one is blue/green (API_AdvancedConfiguration; alb-resources-for-blue-green.html)."""
    from sandbox_harness import GOOD

    own = _own_load_balancer(sandbox)
    created = sandbox.ecs.create_service(
        cluster="prod",
        serviceName="web",
        taskDefinition=sandbox.register(GOOD),
        desiredCount=1,
        launchType="FARGATE",
        loadBalancers=[
            {
                "targetGroupArn": own["blue"],
                "containerName": "api",
                "containerPort": 8000,
                "advancedConfiguration": {
                    "alternateTargetGroupArn": own["green"],
                    "productionListenerRule": own["rule"],
                    "roleArn": "arn:aws:iam::123456789012:role/ecs-elb",
                },
            }
        ],
        deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0},
    )["service"]
    assert (
        created["loadBalancers"][0]["advancedConfiguration"]["alternateTargetGroupArn"]
        == (own["green"])
    )
    sandbox.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED", name="web")
    traffic = Traffic(sandbox, "web")
    assert traffic.production == (1, 0)
    assert [s for _, s in traffic.targets(own["blue"])] == ["healthy"]
    sandbox.deploy(GOOD_2, name="web")
    sandbox.run_until(lambda s: s["deployments"][0]["rolloutState"] == "COMPLETED", name="web")
    assert traffic.production == (0, 100)
    assert [s for _, s in traffic.targets(own["green"])] == ["healthy"]


def test_a_scenario_strategy_that_shifts_traffic_needs_advanced_configuration() -> None:
    """The scenario refuses what CreateService would (troubleshooting-blue-green.html)."""
    from pydantic import ValidationError
    from sandbox_harness import service_spec

    spec = service_spec(2, lb=True)
    spec["deploymentConfiguration"].update({"strategy": "CANARY"})
    with pytest.raises(ValidationError, match="advancedConfiguration"):
        scenario({"api": spec})
    spec = shifting_spec("CANARY", canaryConfiguration={"canaryPercent": 200})
    with pytest.raises(ValidationError, match="canaryPercent"):
        scenario({"api": spec})


def test_a_new_deployment_mid_shift_reconciles_first(
    start_sandbox: Callable[..., Harness],
) -> None:
    """UpdateService while a linear shift is under way: the new service deployment
    begins at RECONCILE_SERVICE ("only happens when you start a new service deployment
    with more than 1 service revision in an ACTIVE state",
    blue-green-deployment-how-it-works.html): traffic back to blue, the unfinished
    green scaled in; the replaced service deployment is STOPPED."""
    hooks = [{"hookTargetArn": HOOK, "lifecycleStages": ["RECONCILE_SERVICE"]}]
    config = {"stepPercent": 50.0, "stepBakeTimeInMinutes": 5}
    sb = start_sandbox(
        scenario(
            {"api": shifting_spec("LINEAR", linearConfiguration=config, hooks=hooks)},
            hooks={HOOK: {"behavior": "succeed", "inProgressSeconds": 30}},
        )
    )
    traffic = Traffic(sb)
    blue = sb.service()["deployments"][0]["id"]
    sb.deploy(GOOD_2)
    sb.run_until(lambda s: traffic.production == (50, 50))
    first = sb.service()["currentServiceDeployment"]
    sb.deploy(ALARM)  # any new revision
    assert _state(sb, traffic)[:2] == ("IN_PROGRESS", "RECONCILE_SERVICE")
    assert traffic.both() == ((100, 0), (100, 0))
    deployments = sb.service()["deployments"]
    assert [d["id"] for d in deployments][2] == blue and deployments[2]["runningCount"] == 2
    assert deployments[1]["runningCount"] == 0  # the unfinished green, draining
    stopped = sb.ecs.describe_service_deployments(serviceDeploymentArns=[first])
    assert stopped["serviceDeployments"][0]["status"] == "STOPPED"
    seen = [state for _, state in _timeline(sb, traffic, _finished)]
    assert seen[1][1] == "SCALE_UP" and seen[-1] == ("SUCCESSFUL", None, (0, 100), (0, 100))
    assert [d["id"] for d in sb.service()["deployments"]] == [deployments[0]["id"]]


WEB = "111122223333.dkr.ecr.us-east-1.amazonaws.com/taskboard-web@sha256:"
WEB_V3_1 = WEB + "9f606588de72969076b0c7773fb7ac65116f4880b1367ed6aa75394726a6ec27"
WEB_BROKEN = WEB + "5faa7b90d3822c01df89aa281331a304a3a628079e0140f02cfaa04d57c2f89f"


@pytest.mark.parametrize(
    ("image", "final", "production"),
    [
        pytest.param(WEB_V3_1, "SUCCESSFUL", (0, 100), id="good"),
        pytest.param(WEB_BROKEN, "ROLLBACK_SUCCESSFUL", (100, 0), id="fails-health-checks"),
    ],
)
def test_the_demo_blue_green_service(
    start_sandbox: Callable[..., Harness], image: str, final: str, production: tuple[int, int]
) -> None:
    """demo.yaml's taskboard-web: the good image goes through test traffic (and the smoke
    hook) to production; the broken one never gets healthy in its target group, so the
    breaker rolls it back and production never leaves blue."""
    from pathlib import Path

    from ecsop.sandbox.scenario import load_scenario

    demo = Path(__file__).parents[2] / "operator" / "ecsop" / "sandbox" / "demo.yaml"
    sb = start_sandbox(load_scenario(demo).model_copy(update={"clock_speed": 0}))
    web = sb.service("taskboard-web")
    definition = sb.ecs.describe_task_definition(taskDefinition=web["taskDefinition"])
    body = {
        k: v
        for k, v in definition["taskDefinition"].items()
        if k in ("family", "requiresCompatibilities", "networkMode", "cpu", "memory")
        or k in ("executionRoleArn", "containerDefinitions")
    }
    body["containerDefinitions"][0]["image"] = image
    arn = sb.ecs.register_task_definition(**body)["taskDefinition"]["taskDefinitionArn"]
    sb.ecs.update_service(cluster="prod", service="taskboard-web", taskDefinition=arn)
    traffic = Traffic(sb, "taskboard-web")
    sd_arn = sb.service("taskboard-web")["currentServiceDeployment"]
    seen: list[State] = []
    for _ in range(240):
        state = _state(sb, traffic, sd_arn)
        if not seen or seen[-1] != state:
            seen.append(state)
        if _finished(state):
            break
        sb.advance(5)
    assert seen[-1] == (final, None, production, production)
    if final == "SUCCESSFUL":
        assert ("IN_PROGRESS", "POST_TEST_TRAFFIC_SHIFT", (100, 0), (0, 100)) in seen
    else:
        assert {s[2] for s in seen} == {(100, 0)}


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
    seen = _timeline(sb, traffic, _finished)
    assert seen[-1][1] == ("STOPPED", None, (100, 0), (100, 0))
    sb.advance(600)
    assert _rollouts(sb) == [("PRIMARY", "FAILED"), ("ACTIVE", "COMPLETED")]
    assert [s for _, s in traffic.targets(traffic.primary)] == ["healthy", "healthy"]
    assert traffic.both() == ((100, 0), (100, 0))
