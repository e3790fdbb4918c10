"""The ECS service scheduler for the BLUE_GREEN, LINEAR and CANARY strategies.

A service deployment of one of these strategies runs the blue revision (the
one serving production traffic) and the green revision (the target) side by
side and moves traffic between their target groups through lifecycle stages,
in this order ("Amazon ECS blue/green service deployments workflow",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/blue-green-deployment-how-it-works.html,
and the linear and canary pages, deployment-type-linear.html and
canary-deployment.html):

RECONCILE_SERVICE (only when more than one revision is running: the sandbox
sends traffic back to blue and scales the others in), PRE_SCALE_UP, SCALE_UP
(green scales up to the desired count at once, into the target group that
serves no production traffic, until every green task is healthy there),
POST_SCALE_UP, TEST_TRAFFIC_SHIFT (the test listener rule forwards 100% to
green), POST_TEST_TRAFFIC_SHIFT, then for each production shift
PRE_PRODUCTION_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT (blue/green: 100% at
once; canary: ``canaryPercent``, ``canaryBakeTimeInMinutes``, then 100%;
linear: ``stepPercent`` steps ``stepBakeTimeInMinutes`` apart, no wait after
100%), POST_PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME (``bakeTimeInMinutes``, blue
still running) and CLEAN_UP (blue scaled in; the deployment is COMPLETED and
the service deployment SUCCESSFUL once blue has drained).  Green becomes the
next deployment's blue, so the two target groups swap roles every time.

Lifecycle hooks run at their stages (``lifecycle_hooks``); weights are set on
the listener rules in moto (``listener_rules``).  A rollback (circuit breaker,
deployment alarms, a failed or timed-out hook, a stage over 24 hours,
StopServiceDeployment ROLLBACK) sends production and test traffic back to blue
at once, re-invokes the PRODUCTION_TRAFFIC_SHIFT and TEST_TRAFFIC_SHIFT hooks
("There is no dedicated ROLLBACK lifecycle stage", lambda-lifecycle-hooks.html),
and scales green in; blue, still running, becomes the PRIMARY deployment again
(``rolloutState`` IN_PROGRESS, then COMPLETED) while the service deployment
goes ROLLBACK_IN_PROGRESS -> ROLLBACK_SUCCESSFUL ("The rollback happens
near-instantaneously because the blue revision remains running", AWS News
Blog, "Accelerate safe software releases with new built-in blue/green
deployments in Amazon ECS", 2025-07-17).

Where AWS is silent the sandbox reads it the least flattering way (see
docs/sandbox.md): PRE_PRODUCTION_TRAFFIC_SHIFT, which ``lifecycleStage`` cannot
show, shows as PRODUCTION_TRAFFIC_SHIFT before the weights move; a step's bake
time starts once its hooks have succeeded; a hook that fails during a rollback
makes it ROLLBACK_FAILED; the first deployment of a new service, having no blue,
is a rolling one; green ignores ``maximumPercent``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ecsop.sandbox import deployment_alarms, events, lifecycle, service_deployments, traffic_config
from ecsop.sandbox.lifecycle_hooks import HookRun
from ecsop.sandbox.model import Deployment, LoadBalancerBinding, Service, ServiceDeployment

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


def _current(service: Service) -> ServiceDeployment | None:
    return service.service_deployments[-1] if service.service_deployments else None


def governs(service: Service) -> bool:
    """This scheduler, not the rolling one, moves the service now."""
    sd = _current(service)
    return sd is not None and sd.progress is not None and not sd.progress.finished


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
    progress.invalid = None if len(sd.sources) > 1 else _invalid_networking(sim, service, pairs)
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


def _invalid_networking(sim: Simulator, service: Service, pairs: list[TrafficPair]) -> str | None:
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


# -- the scheduler step -----------------------------------------------------
def step(sim: Simulator, service: Service, at: float) -> float | None:
    """Advance the stage machine to ``at``; return when it next needs a step."""
    sd = _current(service)
    if sd is None or sd.progress is None:
        return None
    p = sd.progress
    for _ in range(2 * len(p.plan) + 4):  # each pass enters or leaves one stage
        if p.finished or (not sd.ongoing and not p.rollback):
            return None  # STOPPED (no rollback, ABORT): nothing moves any more
        if p.invalid is not None and not p.rollback:
            _fail(sim, service, sd, p.invalid, events.FAILED_NETWORKING, at)
            continue
        stage, index = p.plan[p.position]
        if not p.entered:
            _enter(sim, service, sd, p, stage, index, at)
        wakes = [_keep_scaled(sim, service, p, at)]
        verdict = sim.hooks.drive(p.hooks, at, _payload(sd, p, stage), sim.ids.event_id)
        if verdict.failure is not None:
            _fail(sim, service, sd, verdict.failure, events.FAILED_HOOKS, at)
            continue
        if verdict.done and p.hooks_done_at is None:
            p.hooks_done_at = at
        met, wake = _condition(service, p, stage, index, at)
        wakes += [verdict.wake, wake]
        if verdict.done and met:
            if p.position + 1 == len(p.plan):
                _finish(sim, service, sd, p, at)
                return None
            p.position += 1
            p.entered = False
            continue
        limit = p.entered_at + STAGE_TIMEOUT_SECONDS
        if not p.rollback and at >= limit:
            reason = (
                f"Service deployment rolled back because the {stage} lifecycle stage did not "
                "complete within 24 hours."
            )
            _fail(sim, service, sd, reason, events.FAILED_TIMEOUT, at)
            continue
        if not p.rollback:
            wakes.append(limit)
        due = [w for w in wakes if w is not None]
        return min(due) if due else None
    return at  # not settled within one pass per stage: look again at once (bounded by the sim)


def _enter(
    sim: Simulator,
    service: Service,
    sd: ServiceDeployment,
    p: ShiftProgress,
    stage: str,
    index: int,
    at: float,
) -> None:
    p.entered, p.entered_at, p.hooks_done_at = True, at, None
    if stage == "RECONCILE_SERVICE":
        _set_traffic(sim, p, production=0.0, test=0.0)
        _scale_in(sim, service, [d for d in service.deployments if d not in (p.blue, p.green)], at)
    elif stage == "TEST_TRAFFIC_SHIFT" and not p.rollback:
        _set_traffic(sim, p, test=100.0)
    elif stage == "PRODUCTION_TRAFFIC_SHIFT" and not p.rollback:
        _set_traffic(sim, p, production=p.shifts[index])
    elif stage == "CLEAN_UP":
        keep = p.blue if p.rollback else p.green
        _scale_in(sim, service, [d for d in service.deployments if d is not keep], at)
    service_deployments.stage(sd, shown(stage), at)
    new_id = lambda: sim.ids.task_id()[:20]  # noqa: E731
    p.hooks = sim.hooks.start(sd.deployment_configuration, stage, at, new_id, rollback=p.rollback)


def _set_traffic(
    sim: Simulator, p: ShiftProgress, *, production: float | None = None, test: float | None = None
) -> None:
    """ModifyRule on every pair's production and/or test rule: ``green`` percent to green."""
    for pair in p.pairs:
        if production is not None and pair.production_rule:
            sim.rules.shift(pair.production_rule, pair.blue, pair.green, production)
        if test is not None and pair.test_rule:
            sim.rules.shift(pair.test_rule, pair.blue, pair.green, test)
    if production is not None:
        p.production_percent = production
    if test is not None:
        p.test_percent = test


def _payload(sd: ServiceDeployment, p: ShiftProgress, stage: str) -> dict[str, Any]:
    """The hook payload without ``executionId`` (lambda-lifecycle-hooks.html, examples)."""

    def weights(green: float) -> dict[str, float]:
        return {sd.target.arn: _number(green), p.blue.revision.arn: _number(100.0 - green)}

    test = weights(p.test_percent) if stage == "TEST_TRAFFIC_SHIFT" and p.pairs else {}
    production_stages = ("PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT")
    production = weights(p.production_percent) if stage in production_stages and p.pairs else {}
    return {
        "lifecycleStage": stage,
        "resourceArn": sd.arn,
        "executionDetails": {
            "serviceArn": sd.service_arn,
            "targetServiceRevisionArn": sd.target.arn,
            "testTrafficWeights": test,
            "productionTrafficWeights": production,
        },
    }


def _number(value: float) -> float:
    return int(value) if value == int(value) else round(value, 1)


def _keep_scaled(sim: Simulator, service: Service, p: ShiftProgress, at: float) -> float | None:
    """Keep the PRIMARY (green forward, blue in a rollback) at the desired count, once
    SCALE_UP has begun; older deployments keep what they run."""
    from ecsop.sandbox import rollout

    primary = service.primary
    primary.desired_count = service.desired_count
    for deployment in service.deployments[1:]:
        deployment.desired_count = len(deployment.live())
    scaling = p.rollback or p.position >= p.plan.index(("SCALE_UP", 0))
    need = service.desired_count - len(primary.live())
    if not scaling or primary.rollout_state != "IN_PROGRESS" or need <= 0:
        return None
    if at < service.launch_not_before:
        return service.launch_not_before
    return rollout._launch(sim, service, at, need)


def _condition(
    service: Service, p: ShiftProgress, stage: str, index: int, at: float
) -> tuple[bool, float | None]:
    """Whether the stage's own work is done (its hooks aside), and when to look again."""
    if stage == "SCALE_UP":
        return _ready(service, p.green), None
    if stage == "PRODUCTION_TRAFFIC_SHIFT" and not p.rollback and index + 1 < len(p.shifts):
        if p.hooks_done_at is None:
            return False, None
        due = p.hooks_done_at + p.step_bake
        return at >= due, due
    if stage == "BAKE_TIME":
        due = p.entered_at + p.bake
        return at >= due, due
    if stage == "CLEAN_UP":
        keep = p.blue if p.rollback else p.green
        drained = all(d.drained() for d in service.deployments if d is not keep)
        if p.rollback and keep.rollout_state == "IN_PROGRESS":
            return drained and _ready(service, keep), None
        return drained, None
    return True, None


def _ready(service: Service, deployment: Deployment) -> bool:
    live = deployment.live()
    return len(live) >= service.desired_count and all(t.healthy for t in live)


def _scale_in(sim: Simulator, service: Service, deployments: list[Deployment], at: float) -> None:
    stopped = [t for d in deployments for t in d.live()]
    for task in stopped:
        lifecycle.begin_stop(
            sim,
            service,
            task,
            at,
            reason=events.stop_scaling(task.deployment_id),
            code="ServiceSchedulerInitiated",
            failed=False,
        )
    if stopped:
        sim.add_event(service, events.stopped_tasks(service.name, [t.id for t in stopped]), at)
        draining = sum(1 for t in stopped if t.registered_target)
        if draining:
            sim.add_event(service, events.draining(service.name, draining), at)


def _finish(
    sim: Simulator, service: Service, sd: ServiceDeployment, p: ShiftProgress, at: float
) -> None:
    p.finished = True
    p.hooks = []
    done = p.blue if p.rollback else p.green
    if done.rollout_state != "IN_PROGRESS":
        return  # the rollback failed: nothing completes
    done.rollout_state = "COMPLETED"
    done.rollout_state_reason = events.reason_completed(done.id)
    done.updated_at = at
    service.last_completed = done
    service_deployments.completed(done, at)
    sim.add_event(service, events.deployment_completed(service.name, done.id), at)
    service.steady = True
    sim.add_event(service, events.steady_state(service.name), at)


# -- failures and rollbacks -------------------------------------------------
def _fail(
    sim: Simulator, service: Service, sd: ServiceDeployment, reason: str, why: str, at: float
) -> None:
    """A hook, the networking checks or a stage timeout failed the deployment: roll back
    (whatever the breaker's and alarms' ``rollback`` say: hooks always roll back)."""
    p = sd.progress
    assert p is not None
    if p.rollback:
        blue = p.blue
        blue.rollout_state, blue.rollout_state_reason = "FAILED", reason
        blue.updated_at = at
        service_deployments.rollback_failed(sd, reason, at)
        p.hooks = []
        p.position, p.entered = len(p.plan) - 1, False  # still scale green in
        return
    green = p.green
    green.rollout_state = "FAILED"
    green.rollout_state_reason = events.reason_failed(why)
    green.updated_at = at
    green.bake_ends_at = None
    sim.add_event(service, events.deployment_failed_because(service.name, green.id, why), at)
    sd.status_reason = reason
    roll_back(sim, service, at, events.reason_failed_rolling_back(why, p.blue.id), reason)


def roll_back(
    sim: Simulator, service: Service, at: float, reason: str, sd_reason: str
) -> Deployment:
    """Return to blue within the current service deployment: traffic at once, then
    green scaled in while blue, PRIMARY again, is kept at the desired count."""
    sd = _current(service)
    assert sd is not None and sd.progress is not None
    p = sd.progress
    if p.rollback:
        return p.blue
    blue = p.blue
    _set_traffic(sim, p, production=0.0, test=0.0)
    service.deployments.remove(blue)
    for deployment in service.deployments:
        deployment.status = "ACTIVE"
        deployment.updated_at = at
    blue.status = "PRIMARY"
    service.deployments.insert(0, blue)
    blue.rollout_state, blue.rollout_state_reason = "IN_PROGRESS", reason
    blue.rollback = True
    blue.bake_ends_at = None
    blue.updated_at = at
    # An alarm in ALARM when the rollback begins is not watched for it (as for any
    # deployment, deployment-alarm-failure.html): green keeps it firing a while.
    blue.alarms_ignored = bool(deployment_alarms.firing_alarms(sim, service))
    blue.service_deployment = sd
    service.task_definition_arn = blue.task_definition_arn
    service.steady = False
    service_deployments.rolling_back(sd, blue, sd_reason, at)
    p.rollback = True
    p.plan, p.position, p.entered, p.hooks = list(ROLLBACK_PLAN), 0, False, []
    service_deployments.stage(sd, shown(p.stage), at)
    sim.add_event(service, events.rolling_back(service.name, blue.id), at)
    sim.wake(service, at)
    return blue


def hook_details(sd: ServiceDeployment) -> list[dict[str, Any]]:
    """``lifecycleHookDetails``: the hooks of the stage the deployment is at."""
    from ecsop.sandbox.lifecycle_hooks import detail

    if sd.progress is None or sd.progress.finished:
        return []
    return [detail(run) for run in sd.progress.hooks]


def pause_hook(sd: ServiceDeployment, hook_id: str) -> HookRun | None:
    """The pause hook ``hook_id`` of ``sd``, if it is waiting for ContinueServiceDeployment."""
    if sd.progress is None or sd.progress.finished:
        return None
    for run in sd.progress.hooks:
        if run.hook_id == hook_id and run.status == "AWAITING_ACTION":
            return run
    return None
