"""The ECS service scheduler for the rolling update (``ECS``) deployment controller.

One ``step`` of a service: carry out the task lifecycle steps that are due (and
let ``breaker`` count what they mean), act on StopServiceDeployment requests,
read the deployment alarms when a read is due, start and stop tasks within
``maximumPercent`` / ``minimumHealthyPercent``, retire drained deployments and
mark the primary COMPLETED once it alone runs the desired count, healthy, and
its bake time is over.

Numbers and rules come from the ECS Developer Guide:
- rolling update pacing: "Deploy Amazon ECS services by replacing tasks",
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-ecs.html
  (maximumPercent rounds down, minimumHealthyPercent rounds up; when they
  leave no room to stop or start a task, the service logs "was unable to stop
  or start tasks during a deployment because of the service deployment
  configuration", service-event-messages-list.html);
- failed tasks, the breaker and rollbacks: ``breaker``; deployment alarms and
  the bake time: ``deployment_alarms``; the launch throttle: ``throttle``;
  capacity: ``placement``;
- a FAILED deployment whose rollback is running stays in ``deployments``
  (ACTIVE, rolloutState FAILED, its failedTasks) until the rollback
  completes, even once it has no task left: ECS removes a deployment from the
  list only once a newer one has completed
  (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Service.html,
  "deployments": "The current state of deployments for the service").  ECS
  does not say when exactly; the sandbox keeps it as long as the rollback runs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ecsop.sandbox import (
    breaker,
    deployment_alarms,
    events,
    lifecycle,
    placement,
    service_deployments,
    traffic_shift,
)
from ecsop.sandbox.model import Service, Task, TaskStatus

if TYPE_CHECKING:
    from ecsop.sandbox.simulator import Simulator

DEFAULT_MAXIMUM_PERCENT = 200
DEFAULT_MINIMUM_HEALTHY_PERCENT = 100

STUCK = "deployment-configuration"
"""The condition key of the "unable to stop or start tasks" event."""


def step(sim: Simulator, service: Service, at: float) -> float | None:
    """Advance ``service`` to ``at``; return when it next needs a step (None: steady)."""
    for deployment in list(service.deployments):
        for task in list(deployment.tasks.values()):
            sim.task_visits += 1
            if task.agenda and task.agenda[0][0] <= at:
                for outcome in lifecycle.advance(sim, service, task, at):
                    breaker.account(sim, service, deployment, task, outcome, at)
            if task.last_status is TaskStatus.STOPPED and not task.agenda:
                sim.settle(service, deployment, task)
    wakes: list[float | None] = [_act_on_stop_request(sim, service, at)]
    wakes.append(deployment_alarms.check(sim, service, at))
    if traffic_shift.governs(service):  # blue/green, linear, canary: their own stages
        wakes.append(traffic_shift.step(sim, service, at))
    else:
        wakes.append(_schedule(sim, service, at))
        wakes.append(_complete(sim, service, at))
    _retire_drained(service)
    if service.status == "DRAINING" and all(d.drained() for d in service.deployments):
        service.status = "INACTIVE"
    wakes.extend(
        t.next_at for d in service.deployments for t in d.tasks.values() if t.next_at is not None
    )
    due = [w for w in wakes if w is not None]
    return max(at, min(due)) if due else None


def _act_on_stop_request(sim: Simulator, service: Service, at: float) -> float | None:
    """Carry out a StopServiceDeployment once the scheduler gets to it."""
    sd = service.service_deployments[-1] if service.service_deployments else None
    if sd is None or sd.stop_requested is None:
        return None
    due = sd.stop_requested_at + sim.timings.stop_request_seconds
    if at < due:
        return due
    stop_type, sd.stop_requested = sd.stop_requested, None
    primary = service.primary
    target = service.last_completed
    if primary.rollout_state == "IN_PROGRESS":
        primary.rollout_state = "FAILED"
        primary.rollout_state_reason = events.REASON_STOPPED
        primary.updated_at = at
        primary.bake_ends_at = None
    if stop_type == "ROLLBACK" and target is not None and target is not primary:
        breaker.roll_back(
            sim,
            service,
            target,
            at,
            events.reason_stopped_rollback(target.id),
            events.SD_ROLLBACK_REQUESTED,
        )
    else:
        service_deployments.stopped(sd, at)
    return None


def _schedule(sim: Simulator, service: Service, at: float) -> float | None:
    """Stop and start tasks; return when the scheduler must look again (None: no need)."""
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

    primary.desired_count = desired
    for deployment in service.deployments[1:]:
        deployment.desired_count = len(deployment.live())
    if primary.rollout_state == "FAILED":
        return None
    live_count = sum(len(d.live()) for d in service.deployments)
    need = min(desired - len(primary.live()), maximum - live_count)
    if need <= 0:
        _check_stuck(sim, service, at, wanted=desired - len(primary.live()), stopped=stopped)
        return None
    if at < service.launch_not_before:
        return service.launch_not_before  # the throttle (or a placement retry) holds launches
    return _launch(sim, service, at, need)


def _launch(sim: Simulator, service: Service, at: float, need: int) -> float | None:
    primary = service.primary
    capacity = placement.room(sim, service)
    placed = need if capacity is None else min(need, capacity)
    started = [lifecycle.launch(sim, service, primary, at) for _ in range(placed)]
    if started:
        service.steady = False
        primary.updated_at = at
        sim.add_event(service, events.started_tasks(service.name, [t.id for t in started]), at)
    if placed == need:
        sim.resolve(service, placement.UNPLACEABLE)
        return None
    sim.notice(service, placement.UNPLACEABLE, placement.unplaceable_event(service), at)
    breaker.start_failed(sim, service, at)
    breaker.count_failure(sim, service, primary, at)
    service.launch_not_before = max(
        service.launch_not_before, at + sim.timings.placement_retry_seconds
    )
    return service.launch_not_before


def _check_stuck(
    sim: Simulator, service: Service, at: float, *, wanted: int, stopped: list[Task]
) -> None:
    """The primary wants tasks, none can start and none can stop, and nothing is
    on its way to change that: the deployment configuration leaves no room."""
    primary = service.primary
    moving = any(
        not t.alive or not t.healthy for d in service.deployments for t in d.tasks.values()
    )
    if wanted <= 0 or stopped or moving or primary.stuck_logged:
        return
    primary.stuck_logged = True
    sim.notice(service, STUCK, events.deployment_configuration_stuck(service.name), at)


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
    """Drained deployments leave the list; a FAILED one only once nothing is rolling
    out any more (its rollback, or whatever replaced it, has completed)."""
    rolling = service.primary.rollout_state == "IN_PROGRESS"
    service.deployments[1:] = [
        d
        for d in service.deployments[1:]
        if not d.drained() or (rolling and d.rollout_state == "FAILED")
    ]


def _complete(sim: Simulator, service: Service, at: float) -> float | None:
    """COMPLETED once the primary alone serves, healthy, and its bake time is over;
    return when the bake ends (None: nothing to wait for)."""
    primary = service.primary
    live = primary.live()
    settled = (
        all(d.drained() for d in service.deployments[1:])
        and len(live) == service.desired_count
        and all(t.healthy for t in live)
        and all(t.alive for t in primary.tasks.values())
    )
    if not settled:
        primary.bake_ends_at = None
        if primary.rollout_state == "IN_PROGRESS":
            stage = (
                "CLEAN_UP"
                if len(live) == service.desired_count and all(t.healthy for t in live)
                else "SCALE_UP"
            )
            service_deployments.stage(primary.service_deployment, stage, at)
        return None
    if primary.rollout_state == "IN_PROGRESS":
        if primary.bake_ends_at is None:
            primary.bake_ends_at = at + deployment_alarms.bake_seconds(sim, service)
        if at < primary.bake_ends_at:
            service_deployments.stage(primary.service_deployment, "BAKE_TIME", at)
            return primary.bake_ends_at
        primary.rollout_state = "COMPLETED"
        primary.rollout_state_reason = events.reason_completed(primary.id)
        primary.updated_at = at
        service.last_completed = primary
        service_deployments.completed(primary, at)
        sim.add_event(service, events.deployment_completed(service.name, primary.id), at)
    if not service.steady and primary.rollout_state == "COMPLETED":
        service.steady = True
        sim.add_event(service, events.steady_state(service.name), at)
    return None
