"""The ECS service scheduler for the rolling update (``ECS``) deployment controller.

One ``step`` of a service: carry out the task lifecycle steps that are due,
count failures against the primary deployment, trip the deployment circuit
breaker or the deployment alarms, then start and stop tasks within
``maximumPercent`` / ``minimumHealthyPercent``, retire drained deployments and
mark the primary COMPLETED once it alone runs the desired count, healthy.

Numbers and rules come from the ECS Developer Guide:
- rolling update pacing: "Deploy Amazon ECS services by replacing tasks",
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-ecs.html
  (maximumPercent rounds down, minimumHealthyPercent rounds up);
- circuit breaker: "How the Amazon ECS deployment circuit breaker detects
  failures", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-circuit-breaker.html
  and API_ServiceDeploymentCircuitBreaker: threshold = 0.5 x desired count,
  at least 3, at most 200 (ThresholdConfiguration BOUNDED_PERCENT 50 by
  default); the count resets when a task turns healthy (resetOnHealthyTask,
  default true); a FAILED deployment launches no new tasks; with rollback,
  ECS deploys the task definition of the last COMPLETED deployment;
- deployment alarms: "How CloudWatch alarms detect Amazon ECS deployment
  failures", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html
  ("If an alarm is in the ALARM state at the beginning of a deployment, Amazon
  ECS will not monitor alarms for the duration of that deployment");
- a rollback deployment "is not eligible for another rollback until it reaches
  a COMPLETED state" (deployment-circuit-breaker.html), whichever method
  started the rollback.  Together these make one alarm going to ALARM fail at
  most one deployment: the rollback it starts begins with that alarm in ALARM.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ecsop.sandbox import events, lifecycle
from ecsop.sandbox.lifecycle import Outcome
from ecsop.sandbox.model import Deployment, Service, Task

if TYPE_CHECKING:
    from ecsop.sandbox.simulator import Simulator

DEFAULT_MAXIMUM_PERCENT = 200
DEFAULT_MINIMUM_HEALTHY_PERCENT = 100


def breaker_threshold(desired_count: int, circuit_breaker: dict[str, Any]) -> int:
    """Failed tasks that fail a deployment (API_ServiceDeploymentCircuitBreaker)."""
    config = circuit_breaker.get("thresholdConfiguration") or {}
    kind = config.get("type", "BOUNDED_PERCENT")
    value = int(config.get("value", 50))
    if kind == "COUNT":
        return max(1, value)
    threshold = math.ceil(desired_count * value / 100)
    if kind == "UNBOUNDED_PERCENT":
        return max(1, threshold)
    return min(200, max(3, threshold))


def step(sim: Simulator, service: Service, at: float) -> float | None:
    """Advance ``service`` to ``at``; return when it next needs a step (None: steady)."""
    for deployment in list(service.deployments):
        for task in list(deployment.tasks):
            if task.agenda and task.agenda[0][0] <= at:
                for outcome in lifecycle.advance(sim, service, task, at):
                    _account(sim, service, deployment, task, outcome, at)
    _check_alarms(sim, service, at)
    _schedule(sim, service, at)
    _retire_drained(service)
    _complete(sim, service, at)
    if service.status == "DRAINING" and all(d.drained() for d in service.deployments):
        service.status = "INACTIVE"
    upcoming = [t.next_at for d in service.deployments for t in d.tasks if t.next_at is not None]
    return min(upcoming) if upcoming else None


def _account(
    sim: Simulator,
    service: Service,
    deployment: Deployment,
    task: Task,
    outcome: Outcome,
    at: float,
) -> None:
    primary = deployment is service.primary
    if outcome is Outcome.FAILED:
        service.steady = False
        if deployment.rollout_state == "FAILED":
            return  # the breaker has spoken; later failures do not count
        deployment.failed_tasks += 1
        deployment.updated_at = at
        breaker = service.circuit_breaker()
        if (
            primary
            and deployment.rollout_state == "IN_PROGRESS"
            and breaker.get("enable")
            and deployment.failed_tasks >= breaker_threshold(service.desired_count, breaker)
        ):
            _fail(sim, service, at, alarms=[])
    elif (
        outcome is Outcome.HEALTHY
        and service.circuit_breaker().get("resetOnHealthyTask", True)
        and deployment.rollout_state == "IN_PROGRESS"
    ):
        deployment.failed_tasks = 0


def firing_alarms(sim: Simulator, service: Service) -> list[str]:
    """The service's deployment alarms in ALARM (none when they are not enabled)."""
    config = service.deployment_alarms()
    if not config.get("enable"):
        return []
    return [name for name in config.get("alarmNames", []) if sim.alarms.state(name) == "ALARM"]


def _check_alarms(sim: Simulator, service: Service, at: float) -> None:
    primary = service.primary
    if primary.rollout_state != "IN_PROGRESS" or primary.alarms_ignored:
        return  # an alarm in ALARM when the deployment began: ECS ignores the alarms
    firing = firing_alarms(sim, service)
    if firing:
        _fail(sim, service, at, alarms=firing)


def _fail(sim: Simulator, service: Service, at: float, *, alarms: list[str]) -> None:
    failed = service.primary
    failed.rollout_state = "FAILED"
    failed.updated_at = at
    if alarms:
        failed.rollout_state_reason = events.reason_alarm_failed(alarms)
        sim.add_event(service, events.deployment_failed_alarms(service.name, failed.id, alarms), at)
        rollback = bool(service.deployment_alarms().get("rollback"))
    else:
        failed.rollout_state_reason = events.REASON_BREAKER_FAILED
        sim.add_event(service, events.deployment_failed(service.name, failed.id), at)
        rollback = bool(service.circuit_breaker().get("rollback"))
    target = service.last_completed
    if failed.rollback:
        rollback = False  # not eligible for another rollback until COMPLETED
    if rollback and target is not None and target is not failed:
        reason = (
            events.reason_alarm_rolling_back(target.id)
            if alarms
            else events.reason_rolling_back(target.id)
        )
        roll_back(sim, service, target, at, reason)


def roll_back(
    sim: Simulator, service: Service, target: Deployment, at: float, reason: str
) -> Deployment:
    """Start a new PRIMARY deployment of ``target``'s task definition."""
    deployment = sim.new_deployment(service, target.task_definition_arn, at)
    deployment.rollout_state_reason = reason
    deployment.rollback = True
    sim.add_event(service, events.rolling_back(service.name, target.id), at)
    return deployment


def _schedule(sim: Simulator, service: Service, at: float) -> None:
    desired = service.desired_count
    config = service.deployment_configuration
    maximum = math.floor(desired * config.get("maximumPercent", DEFAULT_MAXIMUM_PERCENT) / 100)
    minimum = math.ceil(
        desired * config.get("minimumHealthyPercent", DEFAULT_MINIMUM_HEALTHY_PERCENT) / 100
    )
    primary = service.primary
    stopped: list[Task] = []

    # Scale the primary in when the desired count went down.
    surplus = len(primary.live()) - desired
    if surplus > 0:
        victims = sorted(primary.live(), key=lambda t: (t.healthy, -t.created_at))[:surplus]
        for task in victims:
            _stop(sim, service, task, at, primary.id)
        stopped.extend(victims)

    # Retire older deployments' tasks while enough healthy tasks remain.
    live = [t for d in service.deployments for t in d.live()]
    healthy = sum(1 for t in live if t.healthy)
    old = sorted(
        (t for d in service.deployments[1:] for t in d.live()),
        key=lambda t: (t.healthy, t.created_at),
    )
    for task in old:
        if task.healthy:
            if healthy - 1 < minimum:
                break
            healthy -= 1
        _stop(sim, service, task, at, task.deployment_id)
        stopped.append(task)
    if stopped:
        sim.add_event(service, events.stopped_tasks(service.name, [t.id for t in stopped]), at)
        draining = sum(1 for t in stopped if t.registered_target)
        if draining:
            sim.add_event(service, events.draining(service.name, draining), at)

    # Start primary tasks up to the desired count, within maximumPercent.
    started: list[Task] = []
    if primary.rollout_state != "FAILED":
        live_count = sum(len(d.live()) for d in service.deployments)
        room = maximum - live_count
        need = desired - len(primary.live())
        for _ in range(max(0, min(need, room))):
            started.append(lifecycle.launch(sim, service, primary, at))
    if started:
        service.steady = False
        primary.updated_at = at
        sim.add_event(service, events.started_tasks(service.name, [t.id for t in started]), at)

    primary.desired_count = desired
    for deployment in service.deployments[1:]:
        deployment.desired_count = len(deployment.live())


def _stop(sim: Simulator, service: Service, task: Task, at: float, deployment_id: str) -> None:
    lifecycle.begin_stop(
        sim,
        service,
        task,
        at,
        reason=events.stop_scaling(deployment_id),
        code="ServiceSchedulerInitiated",
        failed=False,
    )


def _retire_drained(service: Service) -> None:
    service.deployments[1:] = [d for d in service.deployments[1:] if not d.drained()]


def _complete(sim: Simulator, service: Service, at: float) -> None:
    primary = service.primary
    live = primary.live()
    settled = (
        len(service.deployments) == 1
        and len(live) == service.desired_count
        and all(t.healthy for t in live)
        and all(t.alive or t.last_status == "STOPPED" for t in primary.tasks)
    )
    if not settled:
        return
    if primary.rollout_state == "IN_PROGRESS":
        primary.rollout_state = "COMPLETED"
        primary.rollout_state_reason = events.reason_completed(primary.id)
        primary.updated_at = at
        service.last_completed = primary
        sim.add_event(service, events.deployment_completed(service.name, primary.id), at)
    if not service.steady and primary.rollout_state == "COMPLETED":
        service.steady = True
        sim.add_event(service, events.steady_state(service.name), at)
