"""Traffic-shifting strategies: what a deploy sets, what a service needs, where a rollout is.

``rollout.strategy`` makes ECS itself shift traffic (blue/green, canary,
linear) or roll (rolling). ecsop sets the strategy's fields of the service's
``deploymentConfiguration`` in the same UpdateService that changes the task
definition and nothing else of the service ("Amazon ECS blue/green service
deployments", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-blue-green.html;
linear and canary pages alike), then judges every stage with the same gates
as a rolling update. For blue/green with ``testTraffic`` it adds one ``PAUSE``
lifecycle hook at ``POST_TEST_TRAFFIC_SHIFT``: ECS holds the deployment there
with test traffic on green and production still on blue, ecsop runs the
test-traffic checks, then lets ECS continue or rolls back with
ContinueServiceDeployment ("Pause lifecycle hooks",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/pause-lifecycle-hooks.html).

Pure, like the rest of the decision.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ecsop.decision.ecs_state import ServiceState
from ecsop.decision.gates import Verdict
from ecsop.decision.observation import Observation, Traffic
from ecsop.decision.reasons import Failure
from ecsop.spec.model import ServiceRelease
from ecsop.spec.strategy import Strategy

PAUSE_STAGE = "POST_TEST_TRAFFIC_SHIFT"
"""Where ecsop's pause holds a blue/green deployment: test traffic on green, production on blue."""
TRAFFIC_SHIFTING = frozenset({"BLUE_GREEN", "CANARY", "LINEAR"})
MIGRATION_GUIDE = (
    "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/"
    "migrate-codedeploy-to-ecs-bluegreen.html"
)
ALB_RESOURCES = (
    "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/alb-resources-for-blue-green.html"
)
_SPEC_NAMES = {"BLUE_GREEN": "blueGreen", "CANARY": "canary", "LINEAR": "linear"}


def problem(release: ServiceRelease, service: ServiceState) -> str | None:
    """Why the service cannot take the spec's strategy; None when it can."""
    strategy = release.spec.rollout.strategy
    if strategy is None:
        return None
    if service.deployment_controller != "ECS":
        return (
            f"rollout.strategy needs ECS's own deployment controller, and the service uses "
            f"{service.deployment_controller}; move it to ECS-native deployments "
            f"({MIGRATION_GUIDE}), or remove rollout.strategy"
        )
    if not strategy.shifts_traffic:
        return None
    name = _SPEC_NAMES[strategy.name]
    if not service.load_balancers:
        return f"{name} shifts load balancer traffic, and the service has no target group"
    for balancer in service.load_balancers:
        if not (balancer.alternate_target_group_arn and balancer.production_listener_rule):
            return (
                f"{name} needs loadBalancers[].advancedConfiguration: alternateTargetGroupArn, "
                f"productionListenerRule and roleArn (target group "
                f"{balancer.target_group_arn.rsplit('/', 2)[-2] or balancer.target_group_arn} "
                f"has none; see {ALB_RESOURCES})"
            )
    if (
        strategy.blue_green is not None
        and strategy.blue_green.test_traffic is not None
        and not all(b.test_listener_rule for b in service.load_balancers)
    ):
        return (
            "blueGreen.testTraffic needs loadBalancers[].advancedConfiguration.testListenerRule: "
            "green is judged on the test listener before production moves"
        )
    return None


def configuration(release: ServiceRelease, service: ServiceState) -> dict[str, Any] | None:
    """The ``deploymentConfiguration`` a deploy sends: the service's own, strategy fields set.

    None when the spec names no strategy: the deploy sends no configuration and
    the service keeps its own. Everything else of the configuration (circuit
    breaker, alarms, percents, the user's own lifecycle hooks) is sent back as
    ECS reported it, because UpdateService replaces the configuration whole.
    """
    strategy = release.spec.rollout.strategy
    if strategy is None:
        return None
    config: dict[str, Any] = copy.deepcopy(dict(service.deployment_configuration))
    config["strategy"] = strategy.name
    config.pop("canaryConfiguration", None)
    config.pop("linearConfiguration", None)
    hooks = [hook for hook in config.get("lifecycleHooks") or () if not _ours(hook)]
    if strategy.blue_green is not None:
        config["bakeTimeInMinutes"] = strategy.blue_green.bake_minutes
        test = strategy.blue_green.test_traffic
        if test is not None:
            hooks.append(
                {
                    "targetType": "PAUSE",
                    "lifecycleStages": [PAUSE_STAGE],
                    "timeoutConfiguration": {
                        "timeoutInMinutes": test.timeout_minutes,
                        "action": "ROLLBACK",
                    },
                }
            )
    if strategy.canary is not None:
        config["canaryConfiguration"] = {
            "canaryPercent": strategy.canary.percent,
            "canaryBakeTimeInMinutes": strategy.canary.bake_minutes,
        }
    if strategy.linear is not None:
        config["linearConfiguration"] = {
            "stepPercent": strategy.linear.step_percent,
            "stepBakeTimeInMinutes": strategy.linear.step_bake_minutes,
        }
    if hooks or "lifecycleHooks" in config:
        config["lifecycleHooks"] = hooks
    return config


def _ours(hook: Mapping[str, Any]) -> bool:
    """ecsop's pause: a PAUSE hook at POST_TEST_TRAFFIC_SHIFT alone."""
    return hook.get("targetType") == "PAUSE" and list(hook.get("lifecycleStages") or ()) == [
        PAUSE_STAGE
    ]


def waits_seconds(strategy: Strategy | None, service: ServiceState) -> float:
    """Time the strategy waits on purpose: added to ``rollout.timeoutSeconds``.

    The timeout bounds the time ECS works on a rollout; a canary's bake or a
    blue/green test-traffic pause is not ECS being stuck, so it must never
    count against it.
    """
    if strategy is None or not strategy.shifts_traffic:
        return 0.0
    bake = float(service.deployment_configuration.get("bakeTimeInMinutes") or 0)
    if strategy.blue_green is not None:
        test = strategy.blue_green.test_traffic
        pause = test.timeout_minutes if test is not None else 0
        return 60.0 * (strategy.blue_green.bake_minutes + pause)
    if strategy.canary is not None:
        return 60.0 * (strategy.canary.bake_minutes + bake)
    assert strategy.linear is not None
    steps = max(0, math.ceil(100.0 / strategy.linear.step_percent) - 1)
    return 60.0 * (steps * strategy.linear.step_bake_minutes + bake)


def paused_for_test_traffic(release: ServiceRelease, traffic: Traffic | None) -> bool:
    """ECS waits at ecsop's pause, and the spec has test-traffic checks to run."""
    strategy = release.spec.rollout.strategy
    return (
        traffic is not None
        and traffic.paused is not None
        and traffic.stage == PAUSE_STAGE
        and strategy is not None
        and strategy.blue_green is not None
        and strategy.blue_green.test_traffic is not None
    )


def judge_test_traffic(release: ServiceRelease, observed: Observation) -> Verdict | bool:
    """Green on test traffic: a failure, True (every check passed enough), or False (not yet)."""
    strategy = release.spec.rollout.strategy
    assert strategy is not None and strategy.blue_green is not None
    test = strategy.blue_green.test_traffic
    assert test is not None
    result = observed.health.test_traffic
    if result is None:
        return False
    if result.failing:
        return Verdict(
            Failure.TEST_TRAFFIC,
            f"test-traffic check failing before any production traffic moved: {result.failing[0]}",
        )
    if result.unknown or len(result.passes) < len(test.http_checks):
        return False
    return all(count >= test.passes_required for count in result.passes.values())


def progress(release: ServiceRelease, observed: Observation, now: datetime) -> str:
    """Where a traffic-shifting rollout is, in words: "canary: 10% of production on
    green, bake 3m12s left"."""
    traffic = observed.traffic
    if traffic is None or traffic.strategy not in TRAFFIC_SHIFTING:
        return ""
    name = {"BLUE_GREEN": "blue/green", "CANARY": "canary", "LINEAR": "linear"}[traffic.strategy]
    production = traffic.production_on_green
    if paused_for_test_traffic(release, traffic):
        result = observed.health.test_traffic
        strategy = release.spec.rollout.strategy
        assert strategy is not None and strategy.blue_green is not None
        test = strategy.blue_green.test_traffic
        assert test is not None
        passed = (
            sum(1 for n in result.passes.values() if n >= test.passes_required) if result else 0
        )
        return f"{name}: test traffic on green, checks {passed}/{len(test.http_checks)} passed"
    if traffic.stage in ("TEST_TRAFFIC_SHIFT", PAUSE_STAGE):
        return f"{name}: test traffic on green, production on blue"
    if production is not None and 0 < production < 100:
        words = f"{name}: {production:g}% of production on green"
        if traffic.strategy == "CANARY":
            return words + _bake_left(traffic, "canaryBakeTimeInMinutes", now)
        return words + f" ({traffic.stage})"
    if traffic.stage == "BAKE_TIME":
        return f"{name}: all production on green, blue kept" + _bake_left(
            traffic, "bakeTimeInMinutes", now
        )
    if traffic.stage == "CLEAN_UP":
        return f"{name}: all production on green, blue scaling in"
    return f"{name}: {traffic.stage.lower().replace('_', ' ') or 'starting'}"


def _bake_left(traffic: Traffic, field: str, now: datetime) -> str:
    """ ", bake 3m12s left", timed from the stage's start (``updatedAt``); "" if unknown.

    A canary's bake is the PRODUCTION_TRAFFIC_SHIFT stage after its first shift,
    blue/green's the BAKE_TIME stage (Amazon ECS Developer Guide,
    canary-deployment.html and deployment-type-blue-green.html).
    """
    minutes = traffic.configuration.get(field)
    if traffic.stage_since is None or not isinstance(minutes, int | float):
        return ""
    left = int(60 * minutes - (now - traffic.stage_since).total_seconds())
    if left <= 0:
        return ", bake over"
    return f", bake {left // 60}m{left % 60:02d}s left" if left >= 60 else f", bake {left}s left"
