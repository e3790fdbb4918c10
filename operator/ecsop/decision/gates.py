"""Judging a rollout: is it failing, and why, in words status and metrics use.

The decision (``reconciler``) asks these questions of an ``Observation``:
did ECS fail the deployment (and was it its deployment alarms), are there
more failed tasks than the spec allows, is a watched alarm firing, are the
new targets unhealthy, is an HTTP check failing, has the timeout passed.
``needs_health`` tells the controller when the health gates are worth
probing at all. Pure functions, like the decision.
"""

from __future__ import annotations

from datetime import datetime

from ecsop.decision import failures
from ecsop.decision.actions import Failure
from ecsop.decision.ecs_state import (
    TAG_RELEASE,
    Deployment,
    DeploymentStatus,
    Fingerprint,
    RolloutState,
    ServiceState,
)
from ecsop.decision.observation import Observation, fingerprint_of, in_progress
from ecsop.spec.model import ServiceRelease


def needs_health(release: ServiceRelease, observed: Observation) -> bool:
    """Whether the health gates matter this pass: our rollout is in progress, or baking.

    The controller probes target health, alarms and HTTP checks only then, so
    a release that is Synced (or anything else) costs no health call at all.
    Mirrors the branches of ``decide`` that read ``observed.health``.
    """
    service, primary = observed.service, observed.service.primary
    if release.spec.suspend or primary is None:
        return False
    desired = Fingerprint(release.fingerprint())
    if in_progress(service, primary):
        td = observed.task_definitions.get(primary.task_definition)
        if fingerprint_of(release, td) == desired:
            # A recorded failure with a rollback to resume is not judged again;
            # with rollback off (or no last-good) it is, to stay Degraded.
            resuming = (
                observed.failed_fingerprint == desired
                and release.spec.rollback.automatic
                and bool(observed.last_good)
                and observed.last_good != primary.task_definition
            )
            return not resuming
        if failed_ecs_deployment(observed, release, desired) is not None:
            return False  # ECS is rolling back: nothing of ours to judge
        if observed.last_good == primary.task_definition and observed.failed_fingerprint:
            return False  # our own rollback: watched for ECS's signals only
        # ecsop's earlier rollout of this release, superseded by a spec change:
        # judged like any of ours, health included.
        return td is not None and td.tags.get(TAG_RELEASE) == release.name
    running = observed.task_definitions.get(service.task_definition)
    if fingerprint_of(release, running) != desired or observed.last_good is None:
        return False
    return not (
        observed.last_good == service.task_definition and observed.failed_fingerprint != desired
    )


def failed_ecs_deployment(
    observed: Observation, release: ServiceRelease, desired: Fingerprint
) -> Deployment | None:
    """An older deployment of the desired release that ECS marked FAILED."""
    for deployment in observed.service.deployments:
        if deployment.status is DeploymentStatus.PRIMARY:
            continue
        td = observed.task_definitions.get(deployment.task_definition)
        if (
            deployment.rollout_state is RolloutState.FAILED
            and fingerprint_of(release, td) == desired
        ):
            return deployment
    return None


def rollout_failure(
    release: ServiceRelease, observed: Observation, primary: Deployment, now: datetime
) -> tuple[Failure, str] | None:
    rollout = release.spec.rollout
    if primary.rollout_state is RolloutState.FAILED:
        return ecs_failure(observed, primary, Failure.CIRCUIT_BREAKER)
    if primary.failed_tasks > rollout.max_failed_tasks:
        return Failure.FAILED_TASKS, (
            f"{primary.failed_tasks} failed tasks (maxFailedTasks {rollout.max_failed_tasks})"
        )
    health = health_failure(release, observed)
    if health is not None:
        return health
    if age(primary, now) > rollout.timeout_seconds:
        return Failure.TIMEOUT, (
            f"not completed {rollout.timeout_seconds}s after the deployment was created"
        )
    return None


def ecs_failure(
    observed: Observation, deployment: Deployment, otherwise: Failure
) -> tuple[Failure, str]:
    """Why ECS marked ``deployment`` FAILED: its deployment alarms, or ``otherwise``."""
    reason = deployment.rollout_state_reason or "deployment FAILED"
    alarm = failures.ecs_alarm_failure(reason, [e.message for e in observed.service.events])
    if alarm is None:
        return otherwise, reason
    names = alarm or ", ".join(observed.service.alarm_names) or "a deployment alarm"
    return Failure.ALARM, f"ECS deployment alarm {names} in ALARM ({reason})"


def target_health_enabled(release: ServiceRelease, service: ServiceState) -> bool:
    """``rollout.targetHealth``, defaulting to on when the service has load balancers."""
    target_health = release.spec.rollout.target_health
    return service.has_load_balancers if target_health is None else target_health


def health_failure(release: ServiceRelease, observed: Observation) -> tuple[Failure, str] | None:
    health = observed.health
    watched = set(release.spec.rollout.alarms) | set(observed.service.alarm_names)
    firing = [name for name in health.alarms_in_alarm if name in watched]
    if firing:
        return Failure.ALARM, f"alarm {firing[0]} is in ALARM"
    if target_health_enabled(release, observed.service) and health.unhealthy_targets > 0:
        why = f": {health.target_detail}" if health.target_detail else ""
        return Failure.TARGET_HEALTH, f"{health.unhealthy_targets} targets unhealthy{why}"
    if health.failing_http_checks:
        return Failure.HTTP_CHECK, f"HTTP check failing: {health.failing_http_checks[0]}"
    return None


def age(deployment: Deployment, now: datetime) -> float:
    return (now - deployment.created_at).total_seconds()
