"""One task's life: launch, pull, run, pass or fail health checks, crash, stop.

Each task carries an agenda of timed steps decided from its ``TaskPlan`` at
launch; ``advance`` carries out the steps that are due and reports what the
scheduler must know (the task failed, or turned healthy).  Stop reasons and
codes are ECS's ("Amazon ECS stopped task error messages",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-error-codes.html).

Simplifications, on purpose: ACTIVATING and DEPROVISIONING are skipped; a task
without any health check counts as healthy once it has stayed RUNNING for
``timings.steadySeconds`` (so a crash-looping container without health checks
never completes its deployment between crashes); the ELB
health check is modelled as "healthy after the image's
startSeconds" or "unhealthy after the load balancer's unhealthyAfterSeconds".

Failing health checks take two steps, as on AWS.  First the checker gives up
(``unhealthy``): the ELB marks the target ``unhealthy`` after
UnhealthyThresholdCount failed checks ("Health checks for Application Load
Balancer target groups",
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html),
or the container health check reports UNHEALTHY.  The task keeps running and
DescribeTargetHealth shows the target ``unhealthy`` with its reason.  Then the
ECS service scheduler acts (``replace_unhealthy``): it stops the task, which
deregisters (drains) its targets.  For ELB checks it does so
``TargetGroups.ecs_notice_seconds`` later (a few health-check intervals), and
never before the service's healthCheckGracePeriodSeconds have passed since the
task started: "the Amazon ECS service scheduler ignores unhealthy Elastic Load
Balancing, VPC Lattice, and container health checks after a task has first
started" for that long (API_CreateService,
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CreateService.html).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from ecsop.sandbox import events
from ecsop.sandbox.behaviours import ContainerImage
from ecsop.sandbox.model import Container, Deployment, Service, Task, TaskStatus

if TYPE_CHECKING:
    from ecsop.sandbox.simulator import Simulator


class Outcome(Enum):
    """What the scheduler learns from a task's step; ``breaker`` decides what counts."""

    FAILED_TO_START = "failed-to-start"
    """Stopped before RUNNING (PENDING -> STOPPED): breaker stage 1 and the throttle."""
    RUNNING = "running"
    """Reached RUNNING: the service's start failures are no longer consecutive."""
    CRASHED = "crashed"
    """An essential container exited after RUNNING."""
    FAILED_HEALTH_CHECKS = "failed-health-checks"
    """Stopped by the scheduler for failed ELB or container health checks (stage 2)."""
    HEALTHY = "healthy"


def launch(sim: Simulator, service: Service, deployment: Deployment, at: float) -> Task:
    """Start one task of ``deployment`` in PROVISIONING (the scheduler's launch)."""
    task = _new_task(sim, service, deployment, at)
    task.plan_step(at + sim.timings.provisioning_seconds, "pending")
    return task


def launch_running(sim: Simulator, service: Service, deployment: Deployment, at: float) -> Task:
    """A task that is already RUNNING and healthy: services that start steady."""
    task = _new_task(sim, service, deployment, at)
    if task.plan.pull_error is not None:
        raise ValueError(
            f"service {service.name}: image {task.plan.pull_error} is not in the scenario's "
            "images (or is a pull-error image), so the service cannot start steady"
        )
    task.pull_started_at = task.pull_stopped_at = task.connectivity_at = at
    _run(sim, service, task, at, announce=False)
    for binding in service.load_balancers:
        sim.target_groups.set_state(task.target_group(binding), task.private_ip, "healthy")
    task.agenda = [(when, step) for when, step in task.agenda if step != "healthy"]
    _become_healthy(sim, service, task, at)
    return task


def _new_task(sim: Simulator, service: Service, deployment: Deployment, at: float) -> Task:
    definition = sim.task_definitions_by_arn[deployment.task_definition_arn]
    images = [
        ContainerImage(
            name=c["name"],
            image=c["image"],
            essential=bool(c.get("essential", True)),
            has_health_check="healthCheck" in c,
        )
        for c in definition.body["containerDefinitions"]
    ]
    plan = sim.catalog.plan(images, sim.rng)
    task_id = sim.ids.task_id()
    containers = [
        Container(
            name=image.name,
            image=image.image,
            arn=sim.ids.arn(f"container/{service.cluster.name}/{task_id}/{sim.ids.task_id()[:36]}"),
            essential=image.essential,
            has_health_check=image.has_health_check,
        )
        for image in images
    ]
    task = Task(
        arn=sim.ids.arn(f"task/{service.cluster.name}/{task_id}"),
        id=task_id,
        cluster_arn=service.cluster.arn,
        task_definition_arn=deployment.task_definition_arn,
        deployment_id=deployment.id,
        service_key=service.key,
        group=f"service:{service.name}",
        launch_type=deployment.launch_type,
        created_at=at,
        containers=containers,
        plan=plan,
        private_ip=sim.ids.private_ip(),
        has_health_check=bool(service.load_balancers)
        or any(c.has_health_check for c in containers if c.essential),
        tags=dict(service.tags) if service.propagate_tags == "SERVICE" else {},
        target_groups=dict(deployment.target_groups),
    )
    deployment.tasks[task.arn] = task
    sim.tasks[task.arn] = task
    for hook in sim.new_task_hooks:
        hook(service, task)
    return task


def advance(sim: Simulator, service: Service, task: Task, until: float) -> list[Outcome]:
    """Carry out every agenda step of ``task`` due at or before ``until``."""
    outcomes: list[Outcome] = []
    while task.agenda and task.agenda[0][0] <= until:
        at, step = task.agenda.pop(0)
        outcome = _STEPS[step](sim, service, task, at)
        task.version += 1
        _changed(sim, service, task, at)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def begin_stop(
    sim: Simulator,
    service: Service,
    task: Task,
    at: float,
    *,
    reason: str,
    code: str,
    failed: bool,
) -> None:
    """Ask a task to stop: drain its targets if it served, then STOPPING, STOPPED."""
    if not task.alive:
        return
    task.desired_status = "STOPPED"
    task.stopping_at = at
    task.stopped_reason = reason
    task.stop_code = code
    task.failed = failed
    task.healthy = False
    task.version += 1
    _release_alarms(sim, task, at)
    task.agenda = []
    graceful = not failed and task.last_status is TaskStatus.RUNNING
    if task.registered_target:
        for binding in service.load_balancers:
            sim.target_groups.set_state(task.target_group(binding), task.private_ip, "draining")
        delay = max(b.deregistration_delay for b in service.load_balancers)
        task.plan_step(at + delay, "target_gone")
        if graceful:
            task.last_status = TaskStatus.DEACTIVATING
            task.plan_step(at + delay, "stopping")
            _changed(sim, service, task, at)
            return
    if task.last_status in (TaskStatus.PROVISIONING, TaskStatus.PENDING):
        task.plan_step(at, "stopped")
    else:
        task.last_status = TaskStatus.STOPPING
        task.plan_step(at + sim.timings.stopping_seconds, "stopped")
    _changed(sim, service, task, at)


def _changed(sim: Simulator, service: Service, task: Task, at: float) -> None:
    """Tell the listeners (ECS's events: ``ecs_eventbridge``) the task may have changed."""
    for listener in sim.listeners:
        listener.task_changed(service, task, at)


def _pending(sim: Simulator, service: Service, task: Task, at: float) -> Outcome | None:
    task.last_status = TaskStatus.PENDING
    task.pull_started_at = at
    task.connectivity_at = at
    if task.plan.pull_error is not None:
        task.plan_step(at + sim.timings.pull_seconds, "pull_failed")
        return None
    delay = sim.timings.pull_seconds
    if not task.has_health_check:
        delay += task.plan.start_seconds  # no health check: "slow" shows as a slow start
    task.plan_step(at + delay, "running")
    return None


def _pull_failed(sim: Simulator, service: Service, task: Task, at: float) -> Outcome | None:
    image = task.plan.pull_error or ""
    reason = events.stop_pull_error(image)
    task.pull_stopped_at = at
    for container in task.containers:
        if container.image == image:
            container.reason = reason
    begin_stop(sim, service, task, at, reason=reason, code="TaskFailedToStart", failed=True)
    return Outcome.FAILED_TO_START


def _running(sim: Simulator, service: Service, task: Task, at: float) -> Outcome | None:
    task.pull_stopped_at = at
    _run(sim, service, task, at)
    return Outcome.RUNNING


def _run(sim: Simulator, service: Service, task: Task, at: float, announce: bool = True) -> None:
    task.last_status = TaskStatus.RUNNING
    task.started_at = at
    for container in task.containers:
        container.last_status = "RUNNING"
        container.image_digest = task.plan.digests.get(container.name)
        container.runtime_id = sim.ids.runtime_id(task.id)
    for binding in service.load_balancers:
        sim.target_groups.register(
            task.target_group(binding), task.private_ip, binding.container_port
        )
        task.registered_target = True
        if announce:
            sim.add_event(
                service, events.registered_targets(service.name, 1, task.target_group(binding)), at
            )
    plan = task.plan
    if plan.crash_after is not None:
        task.plan_step(at + plan.crash_after, "crash")
    if not task.has_health_check:
        # Nothing checks its health: it counts once it has stayed up a while.
        task.plan_step(at + sim.timings.steady_seconds, "healthy")
    else:
        if plan.unhealthy:
            after = max([b.unhealthy_after for b in service.load_balancers] or [plan.start_seconds])
            task.plan_step(at + after, "unhealthy")
        else:
            task.plan_step(at + plan.start_seconds, "healthy")


def _healthy(sim: Simulator, service: Service, task: Task, at: float) -> Outcome | None:
    for binding in service.load_balancers:
        sim.target_groups.set_state(task.target_group(binding), task.private_ip, "healthy")
    _become_healthy(sim, service, task, at)
    return Outcome.HEALTHY


def _become_healthy(sim: Simulator, service: Service, task: Task, at: float) -> None:
    task.healthy = True
    if any(c.has_health_check for c in task.containers):
        task.health_status = "HEALTHY"
        for container in task.containers:
            if container.has_health_check:
                container.health_status = "HEALTHY"
    names = tuple(
        template.format(cluster=service.cluster.name, service=service.name)
        for template in task.plan.alarms
    )
    for name in names:
        sim.alarms.trip(name, at)
    task.alarms_tripped = names


def _release_alarms(sim: Simulator, task: Task, at: float) -> None:
    for name in task.alarms_tripped:
        sim.alarms.release(name, at)
    task.alarms_tripped = ()


def _unhealthy(sim: Simulator, service: Service, task: Task, at: float) -> Outcome | None:
    """The health checks have failed: the target (or container) shows unhealthy."""
    grace = service.health_check_grace_period or 0
    grace_ends = (task.started_at if task.started_at is not None else at) + grace
    if service.load_balancers:
        notice = 0.0
        for binding in service.load_balancers:
            sim.target_groups.set_state(
                task.target_group(binding),
                task.private_ip,
                "unhealthy",
                task.plan.health_check_codes,
            )
            notice = max(notice, sim.target_groups.ecs_notice_seconds(task.target_group(binding)))
        # ECS notices on its next look at target health, and not during the grace period.
        task.plan_step(max(at + notice, grace_ends), "replace_unhealthy")
    else:
        # The agent reports the container UNHEALTHY; ECS replaces the task once
        # the grace period is over (at once without one).
        task.health_status = "UNHEALTHY"
        for container in task.containers:
            if container.has_health_check:
                container.health_status = "UNHEALTHY"
        task.plan_step(max(at, grace_ends), "replace_unhealthy")
    return None


def _replace_unhealthy(sim: Simulator, service: Service, task: Task, at: float) -> Outcome | None:
    """The service scheduler stops the unhealthy task (and so drains its targets)."""
    if service.load_balancers:
        binding = service.load_balancers[0]
        sim.add_event(
            service,
            events.elb_unhealthy(
                service.name,
                task.id,
                binding.container_port,
                task.target_group(binding),
                task.plan.health_check_codes,
            ),
            at,
        )
        reason = events.stop_elb_health(task.target_group(binding))
    else:
        sim.add_event(service, events.container_unhealthy(service.name, task.id), at)
        reason = events.STOP_CONTAINER_HEALTH
    begin_stop(sim, service, task, at, reason=reason, code="ServiceSchedulerInitiated", failed=True)
    sim.add_event(service, events.stopped_tasks(service.name, [task.id]), at)
    return Outcome.FAILED_HEALTH_CHECKS


def _crash(sim: Simulator, service: Service, task: Task, at: float) -> Outcome | None:
    for container in task.containers:
        if container.name == task.plan.crash_container:
            container.exit_code = task.plan.exit_code
            container.last_status = "STOPPED"
    begin_stop(
        sim,
        service,
        task,
        at,
        reason=events.STOP_ESSENTIAL_EXITED,
        code="EssentialContainerExited",
        failed=True,
    )
    sim.add_event(service, events.stopped_tasks(service.name, [task.id]), at)
    return Outcome.CRASHED


def _stopping(sim: Simulator, service: Service, task: Task, at: float) -> Outcome | None:
    task.last_status = TaskStatus.STOPPING
    task.plan_step(at + sim.timings.stopping_seconds, "stopped")
    return None


def _stopped(sim: Simulator, service: Service, task: Task, at: float) -> Outcome | None:
    task.last_status = TaskStatus.STOPPED
    task.execution_stopped_at = at
    task.stopped_at = at
    for container in task.containers:
        if container.last_status == "RUNNING" and container.exit_code is None:
            container.exit_code = 0
        container.last_status = "STOPPED"
    return None


def _target_gone(sim: Simulator, service: Service, task: Task, at: float) -> Outcome | None:
    for binding in service.load_balancers:
        sim.target_groups.deregister(task.target_group(binding), task.private_ip)
        sim.add_event(
            service, events.deregistered_targets(service.name, 1, task.target_group(binding)), at
        )
    task.registered_target = False
    return None


_STEPS = {
    "pending": _pending,
    "pull_failed": _pull_failed,
    "running": _running,
    "healthy": _healthy,
    "unhealthy": _unhealthy,
    "replace_unhealthy": _replace_unhealthy,
    "crash": _crash,
    "stopping": _stopping,
    "stopped": _stopped,
    "target_gone": _target_gone,
}
