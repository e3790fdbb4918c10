"""Blue/green, canary and linear: what a deploy sets, what blocks it, how a rollout is judged."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from builders import NOW, deployment, memory_tags, release, service, task_definition
from ecsop.decision import decide as decision
from ecsop.decision import strategy
from ecsop.decision.actions import Continue, Deploy, Revert, Rollback, Wait
from ecsop.decision.ecs_state import DeploymentStatus, LoadBalancer, RolloutState
from ecsop.decision.memory import TAG_FINGERPRINT, TAG_RELEASE
from ecsop.decision.observation import (
    Health,
    Observation,
    Options,
    PausedHook,
    TestTraffic,
    Traffic,
)
from ecsop.decision.reasons import Failure, Phase, Reason
from ecsop.decision.situation import Probe, classify, probes_for
from ecsop.spec.model import ServiceRelease, fingerprint

OLD = "repo/web@sha256:" + "0" * 64
NEW = "repo/web@sha256:" + "1" * 64
TD_OLD = task_definition("web", 1, {"web": OLD})
TD_NEW = task_definition(
    "web", 2, {"web": NEW}, {TAG_RELEASE: "api-prod", TAG_FINGERPRINT: fingerprint({"web": NEW})}
)
TDS = {td.arn: td for td in (TD_OLD, TD_NEW)}
TG = "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web-a/1"
TG_B = "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web-b/2"
RULE = "arn:aws:elasticloadbalancing:us-east-1:111122223333:listener-rule/app/web/1/2/3"
TEST_RULE = "arn:aws:elasticloadbalancing:us-east-1:111122223333:listener-rule/app/web/1/4/5"
ADVANCED = LoadBalancer(TG, "web", 8080, TG_B, RULE, TEST_RULE)
SD = "arn:aws:ecs:us-east-1:111122223333:service-deployment/prod/api/abc"
CONFIG = {
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
    "deploymentCircuitBreaker": {"enable": True, "rollback": True},
    "strategy": "ROLLING",
    "lifecycleHooks": [
        {
            "hookTargetArn": "arn:aws:lambda:us-east-1:1:function:theirs",
            "lifecycleStages": ["POST_SCALE_UP"],
        }
    ],
}
CHECK = {"url": "http://test-listener.internal:8080/health", "intervalSeconds": 1}


def web(strategy_spec: dict[str, Any], image: str = NEW, **rollout: Any) -> ServiceRelease:
    return release(containers={"web": image}, rollout={"strategy": strategy_spec, **rollout})


def observe(
    *deployments: Any,
    traffic: Traffic | None = None,
    health: Health | None = None,
    balancer: LoadBalancer = ADVANCED,
    **fields: Any,
) -> Observation:
    state = service(
        *deployments,
        tags=memory_tags(last_good=TD_OLD.arn),
        load_balancers=(balancer,),
        has_load_balancers=True,
        deployment_configuration=CONFIG,
        **fields,
    )
    return Observation(state, TDS, health=health or Health(), traffic=traffic)


def decide(rel: ServiceRelease, obs: Observation) -> Any:
    return decision.decide(rel, obs, NOW, Options(active_poll_seconds=5))


STEADY_OLD = deployment(TD_OLD)
ROLLING_NEW = deployment(TD_NEW, RolloutState.IN_PROGRESS, age=120, updated_ago=10)
BLUE = deployment(TD_OLD, status=DeploymentStatus.ACTIVE)


def traffic(stage: str, production: float = 0.0, **fields: Any) -> Traffic:
    return Traffic(SD, "IN_PROGRESS", stage, "BLUE_GREEN", TG_B, production, 100.0, **fields)


# --- the deploy ----------------------------------------------------------------------


def test_a_blue_green_deploy_sets_the_strategy_and_ecsops_pause_and_nothing_else() -> None:
    rel = web({"blueGreen": {"bakeMinutes": 7, "testTraffic": {"httpChecks": [CHECK]}}})
    action = decide(rel, observe(STEADY_OLD))
    assert isinstance(action, Deploy)
    config = action.deployment_configuration
    assert config is not None
    assert (config["strategy"], config["bakeTimeInMinutes"]) == ("BLUE_GREEN", 7)
    assert config["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert config["maximumPercent"] == 200
    theirs, ours = config["lifecycleHooks"]
    assert theirs == CONFIG["lifecycleHooks"][0]
    assert ours["targetType"] == "PAUSE"
    assert ours["lifecycleStages"] == ["POST_TEST_TRAFFIC_SHIFT"]
    assert ours["timeoutConfiguration"] == {"timeoutInMinutes": 30, "action": "ROLLBACK"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"canary": {"percent": 10, "bakeMinutes": 3}},
            {"canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 3}},
            id="canary",
        ),
        pytest.param(
            {"linear": {"stepPercent": 25, "stepBakeMinutes": 2}},
            {"linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 2}},
            id="linear",
        ),
        pytest.param({"rolling": {}}, {"strategy": "ROLLING"}, id="rolling"),
    ],
)
def test_canary_linear_and_rolling_set_their_own_fields(
    spec: dict[str, Any], expected: dict[str, Any]
) -> None:
    action = decide(web(spec), observe(STEADY_OLD))
    assert isinstance(action, Deploy) and action.deployment_configuration is not None
    assert expected.items() <= action.deployment_configuration.items()


def test_no_strategy_leaves_the_service_configuration_alone() -> None:
    action = decide(release(containers={"web": NEW}), observe(STEADY_OLD))
    assert isinstance(action, Deploy) and action.deployment_configuration is None


@pytest.mark.parametrize(
    ("spec", "fields", "words"),
    [
        pytest.param(
            {"canary": {}},
            {"deployment_controller": "CODE_DEPLOY"},
            "CODE_DEPLOY",
            id="code-deploy",
        ),
        pytest.param(
            {"blueGreen": {}},
            {"balancer": LoadBalancer(TG, "web", 8080)},
            "needs loadBalancers[].advancedConfiguration",
            id="no-advanced-configuration",
        ),
        pytest.param(
            {"blueGreen": {"testTraffic": {"httpChecks": [CHECK]}}},
            {"balancer": LoadBalancer(TG, "web", 8080, TG_B, RULE)},
            "testListenerRule",
            id="test-traffic-without-test-listener",
        ),
    ],
)
def test_a_service_that_cannot_take_the_strategy_is_a_clear_error_not_a_deploy(
    spec: dict[str, Any], fields: dict[str, Any], words: str
) -> None:
    action = decide(web(spec), observe(STEADY_OLD, **fields))
    assert (type(action), action.phase, action.reason) == (
        Wait,
        Phase.INVALID,
        Reason.STRATEGY_UNSUPPORTED,
    )
    assert words in action.message


# --- judging the stages ------------------------------------------------------------------


def paused_observation(test: TestTraffic) -> Observation:
    paused = traffic("POST_TEST_TRAFFIC_SHIFT", paused=PausedHook("ecs-pause-1"))
    return observe(
        ROLLING_NEW,
        BLUE,
        strategy="BLUE_GREEN",
        traffic=paused,
        health=Health(test_traffic=test),
    )


BG_TEST = {"blueGreen": {"testTraffic": {"httpChecks": [CHECK], "passesRequired": 2}}}


def test_green_passing_test_traffic_lets_ecs_move_production() -> None:
    action = decide(web(BG_TEST), paused_observation(TestTraffic({CHECK["url"]: 2})))
    assert isinstance(action, Continue)
    assert (action.service_deployment, action.hook_id) == (SD, "ecs-pause-1")


def test_production_stays_on_blue_while_ecs_has_its_move_on_a_deployment_alarm() -> None:
    # Test traffic passed, but the service's own deployment alarm fired 10 s ago and
    # ECS rolls back on it by itself: ecsop neither rolls back nor lets ECS go on.
    obs = paused_observation(TestTraffic({CHECK["url"]: 2}))
    firing = Health(
        test_traffic=obs.health.test_traffic,
        alarms_in_alarm=("web-5xx",),
        alarms_firing_since={"web-5xx": NOW - timedelta(seconds=10)},
    )
    service = replace(obs.service, alarm_names=("web-5xx",), alarm_rollback=True)
    action = decide(web(BG_TEST), replace(obs, service=service, health=firing))
    assert isinstance(action, Wait) and "ECS rolls back by itself" in action.message


def test_green_not_yet_judged_on_test_traffic_waits() -> None:
    action = decide(web(BG_TEST), paused_observation(TestTraffic({CHECK["url"]: 1})))
    assert isinstance(action, Wait) and action.reason is Reason.ROLLOUT_IN_PROGRESS
    assert "test traffic on green, checks 0/1 passed" in action.message


def test_green_failing_test_traffic_rolls_back_through_the_pause() -> None:
    failing = TestTraffic({CHECK["url"]: 0}, failing=(f"{CHECK['url']}: HTTP 500",))
    action = decide(web(BG_TEST), paused_observation(failing))
    assert isinstance(action, Rollback)
    assert (action.failure, action.service_deployment, action.hook_id) == (
        Failure.TEST_TRAFFIC,
        SD,
        "ecs-pause-1",
    )
    assert "before any production traffic moved" in action.detail


def test_a_gate_failing_mid_canary_rolls_back_through_ecs() -> None:
    canary = replace(traffic("PRODUCTION_TRAFFIC_SHIFT", 10.0), strategy="CANARY")
    obs = observe(replace(ROLLING_NEW, failed_tasks=3), BLUE, strategy="CANARY", traffic=canary)
    action = decide(web({"canary": {"percent": 10}}), obs)
    assert isinstance(action, Rollback)
    assert (action.service_deployment, action.hook_id, action.to) == (SD, "", TD_OLD.arn)


def test_a_rollback_ecs_has_not_acted_on_yet_is_not_requested_twice() -> None:
    """StopServiceDeployment answered, ECS shows ROLLBACK_REQUESTED, the deployments
    still look like the rollout and the failure is recorded: wait, never stop again."""
    failed_fp = fingerprint({"web": NEW})
    requested = replace(
        traffic("BAKE_TIME", 100.0), status="ROLLBACK_REQUESTED", strategy="BLUE_GREEN"
    )
    state = service(
        ROLLING_NEW,
        BLUE,
        tags=memory_tags(last_good=TD_OLD.arn, failed=failed_fp),
        load_balancers=(ADVANCED,),
        has_load_balancers=True,
        deployment_configuration=CONFIG,
    )
    action = decide(web({"blueGreen": {}}), Observation(state, TDS, traffic=requested))
    assert isinstance(action, Wait) and action.phase is Phase.ROLLING_BACK, action


def test_a_canary_rollout_says_where_traffic_is_and_how_much_bake_is_left() -> None:
    canary = replace(
        traffic("PRODUCTION_TRAFFIC_SHIFT", 10.0),
        strategy="CANARY",
        stage_since=NOW - timedelta(seconds=108),
        configuration={"canaryBakeTimeInMinutes": 5},
    )
    action = decide(web({"canary": {"percent": 10}}), observe(ROLLING_NEW, BLUE, traffic=canary))
    assert "canary: 10% of production on green, bake 3m12s left" in action.message


def test_a_blue_green_bake_says_how_long_blue_is_kept() -> None:
    baking = replace(
        traffic("BAKE_TIME", 100.0),
        stage_since=NOW - timedelta(seconds=20),
        configuration={"bakeTimeInMinutes": 1},
    )
    action = decide(web({"blueGreen": {}}), observe(ROLLING_NEW, BLUE, traffic=baking))
    assert "blue/green: all production on green, blue kept, bake 40s left" in action.message


def test_the_strategys_bakes_do_not_count_against_the_timeout() -> None:
    old = replace(ROLLING_NEW, created_at=NOW - timedelta(seconds=1000))
    canary = web({"canary": {"percent": 10, "bakeMinutes": 30}}, timeoutSeconds=600)
    assert isinstance(decide(canary, observe(old, BLUE)), Wait), "600 s + 30 min of canary bake"
    rolling = web({"rolling": {}}, timeoutSeconds=600)
    assert isinstance(decide(rolling, observe(old, BLUE)), Rollback)


def test_a_revert_mid_shift_stops_the_rollout_without_a_failure() -> None:
    linear = replace(traffic("PRODUCTION_TRAFFIC_SHIFT", 30.0), strategy="LINEAR")
    obs = observe(ROLLING_NEW, BLUE, strategy="LINEAR", traffic=linear)
    action = decide(web({"linear": {}}, image=OLD), obs)
    assert isinstance(action, Revert)
    assert (action.to, action.service_deployment) == (TD_OLD.arn, SD)
    assert action.memory.failed is None and action.memory.deploying is None


def test_traffic_is_probed_only_while_it_may_move() -> None:
    rel = web({"canary": {}})
    moving = observe(ROLLING_NEW, BLUE, strategy="CANARY")
    assert Probe.TRAFFIC in probes_for(classify(rel, moving, Options()))
    steady = observe(deployment(TD_NEW), strategy="CANARY")
    assert Probe.TRAFFIC not in probes_for(classify(rel, steady, Options()))
    rolling_service = observe(ROLLING_NEW, BLUE)
    assert Probe.TRAFFIC not in probes_for(classify(rel, rolling_service, Options()))


def test_waits_cover_every_bake_of_the_strategy() -> None:
    state = service(deployment(TD_OLD), deployment_configuration={"bakeTimeInMinutes": 5})
    linear = web({"linear": {"stepPercent": 25, "stepBakeMinutes": 2}}).spec.rollout.strategy
    assert strategy.waits_seconds(linear, state) == 60 * (3 * 2 + 5)


# --- attacks: a spec edit while green waits at the test-traffic pause --------------------

NEWER = "repo/web@sha256:" + "2" * 64


def test_a_superseded_rollout_at_the_test_traffic_pause_is_judged_not_left_waiting() -> None:
    """A new digest pushed while green waits at ecsop's pause: the earlier rollout is
    judged like ours, so green that passed its test traffic goes on (and finishes first,
    as any healthy superseded rollout does) instead of ECS holding it until the pause
    times out, then rolling it back, half an hour later, before the new digest deploys."""
    passed = decide(web(BG_TEST, image=NEWER), paused_observation(TestTraffic({CHECK["url"]: 2})))
    assert isinstance(passed, Continue), passed.message
    assert (passed.service_deployment, passed.hook_id) == (SD, "ecs-pause-1")
    failing = TestTraffic({CHECK["url"]: 0}, failing=(f"{CHECK['url']}: HTTP 500",))
    failed = decide(web(BG_TEST, image=NEWER), paused_observation(failing))
    assert isinstance(failed, Rollback), failed.message
    assert (failed.failure, failed.hook_id) == (Failure.TEST_TRAFFIC, "ecs-pause-1")
    assert failed.failed_fingerprint == fingerprint({"web": NEW}), "the rollout that failed"


@pytest.mark.xfail(
    strict=True,
    reason="strategy._ours takes every PAUSE hook at POST_TEST_TRAFFIC_SHIFT alone for "
    "ecsop's, so a person's approval hook there (AWS's own pause-hook example) is deleted "
    "by every deploy (and, with testTraffic, replaced by ecsop's pause, which ecsop "
    "continues on its own checks: the approval is bypassed). Fix: remember that ecsop "
    "wrote its pause (a word in the service's memory, written before the UpdateService) "
    "and remove only a pause it remembers",
)
def test_a_persons_approval_pause_after_test_traffic_is_kept_by_a_deploy() -> None:
    approval = {
        "targetType": "PAUSE",
        "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
        "timeoutConfiguration": {"timeoutInMinutes": 2880, "action": "ROLLBACK"},
    }
    base = observe(STEADY_OLD)
    config = {**CONFIG, "strategy": "BLUE_GREEN", "lifecycleHooks": [approval]}
    obs = replace(base, service=replace(base.service, deployment_configuration=config))
    action = decide(web({"blueGreen": {"bakeMinutes": 5}}), obs)
    assert isinstance(action, Deploy) and action.deployment_configuration is not None
    assert action.deployment_configuration["lifecycleHooks"] == [approval]


# --- attacks: ECS returning traffic to a blue deployed days ago ----------------------------


def test_a_traffic_rollback_to_a_blue_deployed_days_ago_is_waited_for_not_declared_failed() -> None:
    """A canary failed and ECS returns traffic within its service deployment: blue,
    deployed days ago, is PRIMARY and IN_PROGRESS again while green drains, and the fix
    is already pushed. Blue's age is not the rollback's: judged by it, the rollback
    "failed" at once (RollbackFailed recorded, "ecsop has stopped acting")."""
    failed_fp = fingerprint({"web": NEW})
    tags = memory_tags(last_good=TD_OLD.arn, failed=failed_fp, reason=Failure.HTTP_CHECK)
    blue = deployment(TD_OLD, RolloutState.IN_PROGRESS, age=2 * 86400, updated_ago=5)
    green = deployment(TD_NEW, RolloutState.FAILED, DeploymentStatus.ACTIVE, age=300)
    returning = Traffic(SD, "ROLLBACK_IN_PROGRESS", "CLEAN_UP", "CANARY", TG_B, 0.0)
    state = service(
        blue,
        green,
        tags=tags,
        load_balancers=(ADVANCED,),
        has_load_balancers=True,
        deployment_configuration={**CONFIG, "strategy": "CANARY"},
        strategy="CANARY",
    )
    fix = web({"canary": {}}, image=NEWER)
    action = decide(fix, Observation(state, TDS, traffic=returning))
    assert isinstance(action, Wait), action.message
    assert action.reason is Reason.ROLLING_BACK
    failed = Traffic(SD, "ROLLBACK_FAILED", "CLEAN_UP", "CANARY", TG_B, 0.0)
    action = decide(fix, Observation(state, TDS, traffic=failed))
    assert action.reason is Reason.ROLLBACK_FAILED, "ECS's own verdict on its rollback"
    # A rollback held in one stage (a hook that never answers) longer than timeoutSeconds
    # is said to have failed in time, not waited for as long as ECS takes.
    timeout = timedelta(seconds=fix.spec.rollout.timeout_seconds)
    since = NOW - timeout + timedelta(seconds=30)
    held = replace(returning, stage_since=since)
    assert decide(fix, Observation(state, TDS, traffic=held)).reason is Reason.ROLLING_BACK
    stuck = replace(returning, stage_since=since - timedelta(seconds=60))
    action = decide(fix, Observation(state, TDS, traffic=stuck))
    assert action.reason is Reason.ROLLBACK_FAILED, action.message


# --- attacks: the timeout while ECS scales blue in -----------------------------------------


def test_the_timeout_never_rolls_back_a_release_that_has_all_production_while_blue_drains() -> None:
    """In CLEAN_UP every production request is on green, which passed every bake, and
    blue's tasks are draining (300 s by default) and stopping: a rollback for the
    timeout then sends production back to a blue that may have no task left."""
    old = replace(ROLLING_NEW, created_at=NOW - timedelta(hours=2))
    cleaning = replace(traffic("CLEAN_UP", 100.0), strategy="CANARY")
    base = observe(old, BLUE, traffic=cleaning, strategy="CANARY")
    no_hooks = {**CONFIG, "strategy": "CANARY", "lifecycleHooks": []}
    obs = replace(base, service=replace(base.service, deployment_configuration=no_hooks))
    action = decide(web({"canary": {"percent": 10, "bakeMinutes": 5}}), obs)
    assert isinstance(action, Wait), action.message
    # Any other gate still acts.
    failing = replace(obs, health=Health(failing_http_checks=("http://x/health: HTTP 500",)))
    assert isinstance(decide(web({"canary": {}}), failing), Rollback)
