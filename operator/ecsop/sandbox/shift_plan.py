"""Where a blue/green, linear or canary service deployment starts from, and its plan.

When a deployment of one of these strategies begins (``Simulator.new_deployment``),
this module finds blue, the running deployment that serves production traffic
(the target group of the pair with the production rule's weight), gives green
the other target group of each pair ("Traffic flow during deployment",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/alb-resources-for-blue-green.html),
checks the networking configuration as ECS does when it starts
(troubleshooting-blue-green.html, "Service deployment rolled back because of
invalid networking configuration"), and lays out the lifecycle stages in order
(blue-green-deployment-how-it-works.html): RECONCILE_SERVICE when more than one
revision runs, PRE_SCALE_UP ... POST_TEST_TRAFFIC_SHIFT, PRE_PRODUCTION and
PRODUCTION_TRAFFIC_SHIFT per production shift, POST_PRODUCTION_TRAFFIC_SHIFT,
BAKE_TIME, CLEAN_UP.  ``traffic_shift`` then walks the plan.

Deployments of other strategies (and rollback deployments of rolling ones) on a
service with ``advancedConfiguration`` register where production traffic goes;
so does the first deployment of a new service, which has no blue to shift from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ecsop.sandbox import service_deployments, traffic_config
from ecsop.sandbox.lifecycle_hooks import HookRun
from ecsop.sandbox.model import Deployment, LoadBalancerBinding, Service

if TYPE_CHECKING:
    from ecsop.sandbox.simulator import Simulator

STAGE_TIMEOUT_SECONDS = 24 * 3600.0
"""'The system times out, fails the deployment, and then initiates a rollback after a
stage reaches 24 hours' (blue-green-deployment-how-it-works.html); for linear and
canary each production shift step has its own 24 hours."""

_PREPARE = (
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
)
_FINISH = ("POST_PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME", "CLEAN_UP")
ROLLBACK_PLAN = [("PRODUCTION_TRAFFIC_SHIFT", -1), ("TEST_TRAFFIC_SHIFT", -1), ("CLEAN_UP", -1)]


@dataclass(frozen=True)
class TrafficPair:
    """One load balancer of the service during a deployment: which of its two target
    groups is blue and which green, and the rules that send them traffic."""

    key: str
    """The binding's ``targetGroupArn`` (how tasks find their target group)."""
    blue: str
    green: str
    production_rule: str | None
    test_rule: str | None


@dataclass
class ShiftProgress:
    """Where a traffic-shifting service deployment stands (``ServiceDeployment.progress``)."""

    blue: Deployment
    green: Deployment
    pairs: list[TrafficPair]
    plan: list[tuple[str, int]]
    """(stage, production shift index) in order; the rollback has its own plan."""
    shifts: list[float]
    step_bake: float
    bake: float
    position: int = 0
    entered: bool = False
    entered_at: float = 0.0
    hooks: list[HookRun] = field(default_factory=list)
    hooks_done_at: float | None = None
    rollback: bool = False
    finished: bool = False
    invalid: str | None = None
    """Invalid networking configuration found at the start: the deployment rolls back."""
    production_percent: float = 0.0
    """Green's share of production traffic now."""
    test_percent: float = 0.0

    @property
    def stage(self) -> str:
        return self.plan[self.position][0]


def shown(stage: str) -> str:
    """``lifecycleStage`` has no PRE_PRODUCTION_TRAFFIC_SHIFT (ServiceDeploymentLifecycleStage)."""
    return "PRODUCTION_TRAFFIC_SHIFT" if stage == "PRE_PRODUCTION_TRAFFIC_SHIFT" else stage


# -- a deployment begins ----------------------------------------------------
def began(sim: Simulator, service: Service, deployment: Deployment, at: float) -> None:
    """Give a new deployment its target groups; start the stage machine if it shifts traffic."""
    advanced = [b for b in service.load_balancers if b.advanced]
    sd = deployment.service_deployment
    shifting = (
        sd.target_deployment is deployment
        and not deployment.rollback
        and traffic_config.shifts_traffic(sd.deployment_configuration)
    )
    blue = _blue(sim, service, deployment, advanced) if shifting else None
    if blue is None:
        # Nothing to shift from (or a rolling deployment): serve where production goes.
        deployment.target_groups = {b.target_group_arn: _serving(sim, b) for b in advanced}
        deployment.revision.resolved_target_groups = dict(deployment.target_groups)
        return
    pairs = [_pair(b, blue) for b in advanced]
    deployment.target_groups = {p.key: p.green for p in pairs}
    deployment.revision.resolved_target_groups = dict(deployment.target_groups)
    config = sd.deployment_configuration
    shifts = traffic_config.production_steps(config)
    plan = [("RECONCILE_SERVICE", 0)] if len(sd.sources) > 1 else []
    plan += [(stage, 0) for stage in _PREPARE]
    for index in range(len(shifts)):
        plan += [("PRE_PRODUCTION_TRAFFIC_SHIFT", index), ("PRODUCTION_TRAFFIC_SHIFT", index)]
    plan += [(stage, 0) for stage in _FINISH]
    progress = ShiftProgress(
        blue=blue,
        green=deployment,
        pairs=pairs,
        plan=plan,
        shifts=shifts,
        step_bake=traffic_config.step_bake_seconds(config),
        bake=traffic_config.bake_seconds(config),
        entered_at=at,
    )
    if pairs:
        progress.production_percent = sim.rules.share(pairs[0].production_rule, pairs[0].green)
        progress.test_percent = sim.rules.share(pairs[0].test_rule, pairs[0].green)
    progress.invalid = None if len(sd.sources) > 1 else _invalid_networking(sim, pairs)
    sd.progress = progress
    service_deployments.stage(sd, shown(progress.stage), at)


def _serving(sim: Simulator, binding: LoadBalancerBinding) -> str:
    """The target group of ``binding`` that gets most production traffic."""
    advanced = binding.advanced or {}
    pair = (binding.target_group_arn, advanced.get("alternateTargetGroupArn", ""))
    weights = sim.rules.weights(advanced.get("productionListenerRule"))
    best = max(pair, key=lambda g: weights.get(g, 0))
    return best if weights.get(best, 0) > 0 else binding.target_group_arn


def _blue(
    sim: Simulator, service: Service, green: Deployment, advanced: list[LoadBalancerBinding]
) -> Deployment | None:
    """The running deployment that serves production now (newest first, COMPLETED preferred)."""
    candidates = [d for d in service.deployments if d is not green and d.live()]
    if not candidates:
        return None
    if advanced:
        key = advanced[0].target_group_arn
        serving = _serving(sim, advanced[0])
        matching = [d for d in candidates if d.target_groups.get(key, key) == serving]
        if matching:
            completed = [d for d in matching if d.rollout_state == "COMPLETED"]
            return (completed or matching)[0]
    if service.last_completed in candidates:
        return service.last_completed
    return candidates[0]


def _pair(binding: LoadBalancerBinding, blue: Deployment) -> TrafficPair:
    advanced = binding.advanced or {}
    primary, alternate = binding.target_group_arn, advanced["alternateTargetGroupArn"]
    blue_group = blue.target_groups.get(primary, primary)
    return TrafficPair(
        key=primary,
        blue=blue_group,
        green=alternate if blue_group == primary else primary,
        production_rule=advanced.get("productionListenerRule"),
        test_rule=advanced.get("testListenerRule"),
    )


def _invalid_networking(sim: Simulator, pairs: list[TrafficPair]) -> str | None:
    """The asynchronous checks of troubleshooting-blue-green.html, in its wording."""
    prefix = "Service deployment rolled back because of invalid networking configuration"
    for pair in pairs:
        rules = [r for r in (pair.production_rule, pair.test_rule) if r]
        for rule in rules:
            if not sim.rules.exists(rule):
                return f"{prefix}: listener rule {rule} was not found."
        production = sim.rules.weights(pair.production_rule)
        serving = [g for g, w in production.items() if w > 0]
        if len(serving) > 1:
            return (
                f"{prefix}. productionListenerRule {pair.production_rule} should have exactly "
                f"one target group serving traffic but found {len(serving)} target groups "
                "which are serving traffic"
            )
        unexpected = [g for g in serving if g not in (pair.blue, pair.green)]
        if unexpected:
            return (
                f"{prefix}. Production listener rule is forwarding traffic to unexpected "
                f"target group {unexpected[0]}. Expected traffic to be forwarded to either "
                f"targetGroupArn: {pair.key} or alternateTargetGroupArn: "
                f"{pair.green if pair.blue == pair.key else pair.blue}"
            )
        associated = set(production) | set(sim.rules.weights(pair.test_rule))
        for group in (pair.blue, pair.green):
            if group not in associated:
                return (
                    f"{prefix}: Target group {group} is not associated with either "
                    "productionListenerRule or testListenerRule."
                )
    return None
