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

Where a deployment starts from and its plan of stages are ``shift_plan``'s;
lifecycle hooks run at their stages (``lifecycle_hooks``); weights are set on
the listener rules in moto (``listener_rules``).  Called by the scheduler
(``rollout.step``) in place of the rolling update while ``governs`` says so,
and by ``breaker.roll_back``.  A rollback (circuit breaker,
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

from typing import TYPE_CHECKING, Any

from ecsop.sandbox import deployment_alarms, events, lifecycle, rollout, service_deployments
from ecsop.sandbox.lifecycle_hooks import HookRun, detail
from ecsop.sandbox.model import Deployment, Service, ServiceDeployment
from ecsop.sandbox.shift_plan import ROLLBACK_PLAN, STAGE_TIMEOUT_SECONDS, ShiftProgress, shown

if TYPE_CHECKING:
    from ecsop.sandbox.simulator import Simulator


def _current(service: Service) -> ServiceDeployment | None:
    return service.service_deployments[-1] if service.service_deployments else None


def governs(service: Service) -> bool:
    """This scheduler, not the rolling one, moves the service now."""
    sd = _current(service)
    return sd is not None and sd.progress is not None and not sd.progress.finished


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
        verdict = sim.hooks.drive(p.hooks, at, _payload(sd, p, stage), sim.ids)
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
    p.hooks = sim.hooks.start(sd.deployment_configuration, stage, at, sim.ids, rollback=p.rollback)


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

    tested = any(pair.test_rule for pair in p.pairs)
    test = weights(p.test_percent) if stage == "TEST_TRAFFIC_SHIFT" and tested else {}
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
    if sd.progress is None or sd.progress.finished or not sd.ongoing:
        return []
    return [detail(run) for run in sd.progress.hooks]


def pause_hook(sd: ServiceDeployment, hook_id: str) -> HookRun | None:
    """The pause hook ``hook_id`` of ``sd``, if it is waiting for ContinueServiceDeployment."""
    if sd.progress is None or sd.progress.finished or not sd.ongoing:
        return None
    for run in sd.progress.hooks:
        if run.hook_id == hook_id and run.status == "AWAITING_ACTION":
            return run
    return None
