"""Blue/green, canary and linear deployments, read the way a client reads them:
``lifecycleStage`` from DescribeServiceDeployments, weights from
``elbv2.describe_rules``, targets from DescribeTargetHealth, on the simulated clock.

- "Amazon ECS blue/green service deployments workflow":
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/blue-green-deployment-how-it-works.html
- "Amazon ECS canary deployments":
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/canary-deployment.html
- "Amazon ECS linear deployments":
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-linear.html
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from sandbox_harness import (
    ALARM,
    GOOD_2,
    HOOK,
    Harness,
    ShiftState,
    Traffic,
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
    seen = timeline(sb, traffic, finished)
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
    assert rollouts(sb) == [("PRIMARY", "COMPLETED")]
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
    timeline(sb, traffic, finished)
    assert traffic.production == (0, 100)
    sb.ecs.update_service(cluster="prod", service="api", forceNewDeployment=True)
    sd = current_deployment(sb)
    assert sd["status"] == "IN_PROGRESS"
    states = [state for _, state in timeline(sb, traffic, finished)]
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
    seen = timeline(sb, traffic, finished)
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
    seen = timeline(sb, traffic, finished)
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
    assert rollouts(sb) == [("PRIMARY", "COMPLETED")]


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
    assert shift_state(sb, traffic)[:2] == ("IN_PROGRESS", "RECONCILE_SERVICE")
    assert traffic.both() == ((100, 0), (100, 0))
    deployments = sb.service()["deployments"]
    assert [d["id"] for d in deployments][2] == blue and deployments[2]["runningCount"] == 2
    assert deployments[1]["runningCount"] == 0  # the unfinished green, draining
    stopped = sb.ecs.describe_service_deployments(serviceDeploymentArns=[first])
    assert stopped["serviceDeployments"][0]["status"] == "STOPPED"
    seen = [state for _, state in timeline(sb, traffic, finished)]
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
    seen: list[ShiftState] = []
    for _ in range(240):
        state = shift_state(sb, traffic, sd_arn)
        if not seen or seen[-1] != state:
            seen.append(state)
        if finished(state):
            break
        sb.advance(5)
    assert seen[-1] == (final, None, production, production)
    if final == "SUCCESSFUL":
        assert ("IN_PROGRESS", "POST_TEST_TRAFFIC_SHIFT", (100, 0), (0, 100)) in seen
    else:
        assert {s[2] for s in seen} == {(100, 0)}
