"""Deployment strategies that shift traffic: what ECS accepts, and the plan it implies.

Pure functions over the ``deploymentConfiguration`` and ``loadBalancers`` of a
CreateService / UpdateService request (and of a scenario service), used by the
ECS API (``ecs_services``), the scenario (``scenario``) and the scheduler
(``traffic_shift``).  Nothing here touches the simulator.

Accepted values, from the API Reference and the Developer Guide:

- ``strategy``: ROLLING (default), BLUE_GREEN, LINEAR, CANARY
  (API_DeploymentConfiguration,
  https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentConfiguration.html);
  BLUE_GREEN shifts all production traffic at once
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-blue-green.html);
- ``bakeTimeInMinutes``: "You must provide this parameter when you use the
  BLUE_GREEN deployment strategy" (API_DeploymentConfiguration).  Its range is
  not documented; the sandbox takes 0 to 1440, the range of the step bake times;
- ``canaryConfiguration``: ``canaryPercent`` multiples of 0.1 from 0.1 to 100.0
  (default 5.0), ``canaryBakeTimeInMinutes`` 0 to 1440 (default 10)
  (API_CanaryConfiguration,
  https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CanaryConfiguration.html);
  two steps: the canary percent, then 100
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/canary-deployment.html);
- ``linearConfiguration``: ``stepPercent`` multiples of 0.1 from 3.0 to 100.0
  (default 10.0), ``stepBakeTimeInMinutes`` 0 to 1440 (default 6), "not applied
  after reaching 100 percent traffic" (API_LinearConfiguration,
  https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_LinearConfiguration.html;
  steps 10, 20, 30, ... in deployment-type-linear.html);
- ``lifecycleHooks``: ``targetType`` AWS_LAMBDA (default) or PAUSE, stages from
  DeploymentLifecycleHookStage, PAUSE not at TEST_TRAFFIC_SHIFT or
  PRODUCTION_TRAFFIC_SHIFT, timeouts 1 to 1440 minutes for Lambda hooks and 1
  to 20160 for pause hooks, default 1440 and ROLLBACK
  (API_DeploymentLifecycleHook; "Lambda hooks for Amazon ECS service
  deployments", lambda-lifecycle-hooks.html; pause-lifecycle-hooks.html);
- ``loadBalancers[].advancedConfiguration``: required on every load balancer
  for a strategy other than ROLLING, all or none, rules distinct, and so on,
  with the error messages of "Troubleshooting Amazon ECS blue/green
  deployments"
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/troubleshooting-blue-green.html).
  That page words the missing-configuration error "... when using a
  non-ROLLING deployment strategy"; ECS has been seen answering "... when using
  the linear deployment strategy" (terraform-aws-modules/terraform-aws-ecs#377)
  and "... the Blue/green deployment strategy": the sandbox names the strategy
  the way those observed answers do.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

ROLLING = "ROLLING"
STRATEGIES = ("ROLLING", "BLUE_GREEN", "LINEAR", "CANARY")
SHIFTING = frozenset({"BLUE_GREEN", "LINEAR", "CANARY"})
"""Strategies that run two service revisions side by side and shift traffic."""

HOOK_STAGES = (
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
)
"""DeploymentLifecycleHookStage: the stages a hook may name."""
PAUSE_FORBIDDEN = frozenset({"TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"})
"""Stages also run during a rollback, so no pause hook there (deployment-lifecycle-hooks.html)."""

DEFAULT_HOOK_TIMEOUT_MINUTES = 1440
MAX_LAMBDA_TIMEOUT_MINUTES = 1440
MAX_PAUSE_TIMEOUT_MINUTES = 20160
MAX_BAKE_MINUTES = 1440

_STRATEGY_WORDS = {"BLUE_GREEN": "Blue/green", "LINEAR": "linear", "CANARY": "canary"}


class ConfigurationError(ValueError):
    """A request ECS would refuse: ``code`` is the exception name it answers with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(message: str) -> ConfigurationError:
    return ConfigurationError("InvalidParameterException", message)


def strategy_of(config: Mapping[str, Any]) -> str:
    return str(config.get("strategy") or ROLLING)


def shifts_traffic(config: Mapping[str, Any]) -> bool:
    return strategy_of(config) in SHIFTING


# -- validation -------------------------------------------------------------
def check_deployment_configuration(
    requested: Mapping[str, Any], merged: Mapping[str, Any] | None = None
) -> None:
    """Refuse what ECS refuses in ``requested`` (the fields the caller sent);
    ``merged`` is the service's configuration once they apply (default: the same)."""
    merged = requested if merged is None else merged
    strategy = strategy_of(merged)
    if strategy not in STRATEGIES:
        raise _invalid(
            f"Invalid deployment strategy {strategy!r}. Valid values are: {', '.join(STRATEGIES)}"
        )
    _minutes(requested, "bakeTimeInMinutes", "bakeTimeInMinutes")
    if strategy == "BLUE_GREEN" and merged.get("bakeTimeInMinutes") is None:
        raise _invalid("bakeTimeInMinutes is required when the deployment strategy is BLUE_GREEN.")
    canary = requested.get("canaryConfiguration")
    if canary is not None:
        if strategy != "CANARY":
            raise _invalid("canaryConfiguration is only valid with the CANARY deployment strategy.")
        _percent(canary, "canaryPercent", Decimal("0.1"), "canaryConfiguration")
        _minutes(canary, "canaryBakeTimeInMinutes", "canaryConfiguration.canaryBakeTimeInMinutes")
    linear = requested.get("linearConfiguration")
    if linear is not None:
        if strategy != "LINEAR":
            raise _invalid("linearConfiguration is only valid with the LINEAR deployment strategy.")
        _percent(linear, "stepPercent", Decimal("3.0"), "linearConfiguration")
        _minutes(linear, "stepBakeTimeInMinutes", "linearConfiguration.stepBakeTimeInMinutes")
    for hook in requested.get("lifecycleHooks") or []:
        check_hook(hook)


def _minutes(config: Mapping[str, Any], key: str, where: str) -> None:
    value = config.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BAKE_MINUTES:
        raise _invalid(f"{where} must be an integer from 0 to {MAX_BAKE_MINUTES}.")


def _percent(config: Mapping[str, Any], key: str, low: Decimal, where: str) -> None:
    value = config.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"{where}.{key} must be a number.")
    number = Decimal(str(value))
    if not low <= number <= 100 or number % Decimal("0.1") != 0:
        raise _invalid(f"{where}.{key} must be a multiple of 0.1 from {low} to 100.0.")


def check_hook(hook: Mapping[str, Any]) -> None:
    """One ``lifecycleHooks`` entry (API_DeploymentLifecycleHook)."""
    target_type = hook.get("targetType", "AWS_LAMBDA")
    if target_type not in ("AWS_LAMBDA", "PAUSE"):
        raise _invalid("Invalid targetType. Valid values are: AWS_LAMBDA, PAUSE")
    stages = hook.get("lifecycleStages") or []
    if not stages:
        raise _invalid("lifecycleStages must contain at least one lifecycle stage.")
    for stage in stages:
        if stage not in HOOK_STAGES:
            raise _invalid(
                f"Invalid lifecycle stage {stage!r}. Valid values are: {', '.join(HOOK_STAGES)}"
            )
        if target_type == "PAUSE" and stage in PAUSE_FORBIDDEN:
            raise _invalid("Invalid lifecycle stage provided for Pause Hook")
    if target_type == "AWS_LAMBDA" and not hook.get("hookTargetArn"):
        raise _invalid("hookTargetArn is required for an AWS_LAMBDA lifecycle hook.")
    timeout = hook.get("timeoutConfiguration") or {}
    limit = MAX_PAUSE_TIMEOUT_MINUTES if target_type == "PAUSE" else MAX_LAMBDA_TIMEOUT_MINUTES
    minutes = timeout.get("timeoutInMinutes", DEFAULT_HOOK_TIMEOUT_MINUTES)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= limit:
        raise _invalid(f"timeoutConfiguration.timeoutInMinutes must be from 1 to {limit}.")
    if timeout.get("action", "ROLLBACK") not in ("ROLLBACK", "CONTINUE"):
        raise _invalid("timeoutConfiguration.action must be ROLLBACK or CONTINUE.")


def check_load_balancers(strategy: str, load_balancers: list[Mapping[str, Any]]) -> None:
    """The synchronous checks of troubleshooting-blue-green.html on ``loadBalancers``."""
    if not load_balancers:
        return
    classic = [lb for lb in load_balancers if lb.get("loadBalancerName")]
    if classic and len(classic) != len(load_balancers):
        raise _invalid(
            "All loadBalancers must be strictly either ELBv1 (defining loadBalancerName) "
            "or ELBv2 (defining targetGroupArn)"
        )
    advanced = [lb.get("advancedConfiguration") for lb in load_balancers]
    if classic and any(advanced):
        raise _invalid("advancedConfiguration field is not allowed with ELBv1 loadBalancers")
    if any(advanced) and not all(advanced):
        raise _invalid(
            "Either all or none of the provided loadBalancers must have "
            "advancedConfiguration defined"
        )
    if strategy in SHIFTING and not all(advanced):
        raise ConfigurationError(
            "ClientException",
            "advancedConfiguration field is required for all loadBalancers when using the "
            f"{_STRATEGY_WORDS[strategy]} deployment strategy",
        )
    seen: set[str] = set()
    for lb in load_balancers:
        config = lb.get("advancedConfiguration") or {}
        for arn in (lb.get("targetGroupArn"), config.get("alternateTargetGroupArn")):
            if arn is None:
                continue
            if arn in seen:
                raise _invalid(f"Duplicate targetGroupArn found: {arn}")
            seen.add(arn)
        if not config:
            continue
        if not config.get("alternateTargetGroupArn") or not config.get("productionListenerRule"):
            raise _invalid(
                "advancedConfiguration requires alternateTargetGroupArn and productionListenerRule."
            )
        production, test = config["productionListenerRule"], config.get("testListenerRule")
        for name, arn in (("productionListenerRule", production), ("testListenerRule", test)):
            if arn is not None and ":listener-rule/" not in arn and ":listener/net/" not in arn:
                raise _invalid(
                    f"{name} has an invalid ARN format. Must be RuleArn for ALB or "
                    f"ListenerArn for NLB. Got: {arn}"
                )
        if test is not None and test == production:
            raise _invalid(
                "The following rules cannot be used as both production and test listener "
                f"rules: {production}"
            )


# -- the plan ---------------------------------------------------------------
def production_steps(config: Mapping[str, Any]) -> list[float]:
    """The green revision's share of production traffic after each shift, in percent."""
    strategy = strategy_of(config)
    if strategy == "CANARY":
        canary = Decimal(str((config.get("canaryConfiguration") or {}).get("canaryPercent", 5.0)))
        return [float(canary), 100.0] if canary < 100 else [100.0]
    if strategy == "LINEAR":
        step = Decimal(str((config.get("linearConfiguration") or {}).get("stepPercent", 10.0)))
        steps, share = [], step
        while share < 100:
            steps.append(float(share))
            share += step
        return [*steps, 100.0]
    return [100.0]


def step_bake_seconds(config: Mapping[str, Any]) -> float:
    """The wait after each production shift but the last (0 for BLUE_GREEN)."""
    strategy = strategy_of(config)
    if strategy == "CANARY":
        minutes = (config.get("canaryConfiguration") or {}).get("canaryBakeTimeInMinutes", 10)
    elif strategy == "LINEAR":
        minutes = (config.get("linearConfiguration") or {}).get("stepBakeTimeInMinutes", 6)
    else:
        minutes = 0
    return float(minutes) * 60


def bake_seconds(config: Mapping[str, Any]) -> float:
    """BAKE_TIME: both revisions run, production on green, before blue is scaled in.
    Required for BLUE_GREEN; AWS gives no default for LINEAR and CANARY, the sandbox reads 0."""
    return float(config.get("bakeTimeInMinutes") or 0) * 60


def hooks_at(config: Mapping[str, Any], stage: str) -> list[dict[str, Any]]:
    """The configured lifecycle hooks that run at ``stage``, in configuration order."""
    return [h for h in config.get("lifecycleHooks") or [] if stage in h.get("lifecycleStages", [])]


def weights_for(green_percent: float) -> tuple[int, int]:
    """(blue, green) ALB forward weights for ``green_percent``: whole percentages sum
    to 100; a fractional one (canaryPercent 2.5) is written in tenths, summing to 1000
    (ALB weights are integers 0-999).  ECS does not document the weights it writes."""
    tenths = round(Decimal(str(green_percent)) * 10)
    if tenths % 10 == 0:
        return 100 - tenths // 10, tenths // 10
    return 1000 - tenths, tenths
