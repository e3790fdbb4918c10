"""Failed tasks, the deployment circuit breaker, and rollbacks.

What counts as a failed task follows "How the Amazon ECS deployment circuit
breaker detects failures"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-circuit-breaker.html):
stage 1, tasks that fail to reach RUNNING; stage 2, tasks that fail their
health checks (ELB, Cloud Map, container) and are stopped.  API_Deployment adds
"a task is considered a failure if the service scheduler can't launch the task"
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Deployment.html),
so placement failures count too.

A task that reaches RUNNING and then exits, with no health check to fail, is in
neither stage, and users report crash loops the breaker never trips on
(aws/containers-roadmap#1206 and #1488, aws/copilot-cli#1879).  The sandbox
follows what they observe: such a crash does not count, unless the scenario
sets ``crashAfterRunningCountsAsFailed`` (globally or per service).  A crash of
a task that has a health check and never passed it counts (stage 2).

The threshold is API_ServiceDeploymentCircuitBreaker's: 0.5 x desired count, at
least 3, at most 200 (ThresholdConfiguration BOUNDED_PERCENT 50 by default); the
count resets when a task turns healthy (resetOnHealthyTask, default true); a
FAILED deployment launches no new tasks; with rollback, ECS deploys the task
definition of the last COMPLETED deployment; a rollback deployment "is not
eligible for another rollback until it reaches a COMPLETED state", whichever
method started the rollback.

Failed starts (and placements) also feed the service throttle (``throttle``).
Called by the scheduler (``rollout``) under the simulator's lock.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ecsop.sandbox import events, service_deployments, traffic_shift
from ecsop.sandbox.lifecycle import Outcome
from ecsop.sandbox.model import Deployment, Service, Task

if TYPE_CHECKING:
    from ecsop.sandbox.simulator import Simulator

THROTTLE = "throttle"
"""The condition key of the throttle's service event (``Simulator.notice``)."""


def threshold(desired_count: int, circuit_breaker: dict[str, Any]) -> int:
    """Failed tasks that fail a deployment (API_ServiceDeploymentCircuitBreaker)."""
    config = circuit_breaker.get("thresholdConfiguration") or {}
    kind = config.get("type", "BOUNDED_PERCENT")
    value = int(config.get("value", 50))
    if kind == "COUNT":
        return max(1, value)
    count = math.ceil(desired_count * value / 100)
    if kind == "UNBOUNDED_PERCENT":
        return max(1, count)
    return min(200, max(3, count))


def account(
    sim: Simulator,
    service: Service,
    deployment: Deployment,
    task: Task,
    outcome: Outcome,
    at: float,
) -> None:
    """What one task step means for its deployment and for the service's throttle."""
    if outcome is Outcome.RUNNING:
        service.throttle.reset()
        sim.resolve(service, THROTTLE)
    elif outcome is Outcome.FAILED_TO_START:
        start_failed(sim, service, at)
        count_failure(sim, service, deployment, at)
    elif outcome is Outcome.FAILED_HEALTH_CHECKS or (
        outcome is Outcome.CRASHED and (task.has_health_check or service.crash_counts_as_failed)
    ):
        count_failure(sim, service, deployment, at)
    elif outcome is Outcome.CRASHED:
        service.steady = False  # replaced, but not counted: the breaker does not see it
    elif (
        outcome is Outcome.HEALTHY
        and service.circuit_breaker().get("resetOnHealthyTask", True)
        and deployment.rollout_state == "IN_PROGRESS"
    ):
        deployment.failed_tasks = 0


def start_failed(sim: Simulator, service: Service, at: float) -> None:
    """A task of the service failed to start or to be placed: the throttle counts it."""
    delay = service.throttle.record_failure(sim.timings)
    service.launch_not_before = max(service.launch_not_before, at + delay)
    if service.throttle.started(sim.timings):
        sim.notice(service, THROTTLE, events.unable_to_start_consistently(service.name), at)


def count_failure(sim: Simulator, service: Service, deployment: Deployment, at: float) -> None:
    """One more failed task of ``deployment``; the breaker trips at the threshold."""
    service.steady = False
    if deployment.rollout_state == "FAILED":
        return  # the breaker has spoken; later failures do not count
    deployment.failed_tasks += 1
    deployment.updated_at = at
    breaker = service.circuit_breaker()
    if (
        deployment is service.primary
        and deployment.rollout_state == "IN_PROGRESS"
        and breaker.get("enable")
        and deployment.failed_tasks >= threshold(service.desired_count, breaker)
    ):
        fail(sim, service, at, alarms=[])


def fail(sim: Simulator, service: Service, at: float, *, alarms: list[str]) -> None:
    """The primary deployment FAILED (by the breaker, or by ``alarms``); maybe roll back."""
    failed = service.primary
    failed.rollout_state = "FAILED"
    failed.updated_at = at
    failed.bake_ends_at = None
    if alarms:
        failed.rollout_state_reason = events.reason_alarm_failed(alarms)
        sim.add_event(service, events.deployment_failed_alarms(service.name, failed.id, alarms), at)
        rollback = bool(service.deployment_alarms().get("rollback"))
        sd_reason = events.sd_alarms(alarms)
    else:
        failed.rollout_state_reason = events.REASON_BREAKER_FAILED
        sim.add_event(service, events.deployment_failed(service.name, failed.id), at)
        rollback = bool(service.circuit_breaker().get("rollback"))
        sd_reason = events.SD_BREAKER
    target = service.last_completed
    if failed.rollback:
        rollback = False  # not eligible for another rollback until COMPLETED
    rolling_back = rollback and target is not None and target is not failed
    service_deployments.failed(
        failed, at, reason=sd_reason, alarms=alarms, rolling_back=rolling_back
    )
    if rolling_back and target is not None:
        reason = (
            events.reason_alarm_rolling_back(target.id)
            if alarms
            else events.reason_rolling_back(target.id)
        )
        sd_rollback = events.sd_rollback_alarms(alarms) if alarms else events.SD_ROLLBACK_BREAKER
        roll_back(sim, service, target, at, reason, sd_rollback)


def roll_back(
    sim: Simulator,
    service: Service,
    target: Deployment,
    at: float,
    reason: str,
    sd_reason: str,
) -> Deployment:
    """Start a new PRIMARY deployment of ``target``'s task definition, within the
    failing primary's service deployment (blue/green, linear and canary return to
    their running blue instead: ``traffic_shift.roll_back``)."""
    if traffic_shift.governs(service):
        return traffic_shift.roll_back(sim, service, at, reason, sd_reason)
    sd = service.primary.service_deployment
    deployment = sim.new_deployment(
        service, target.task_definition_arn, at, rollback_of=sd, revision=target.revision
    )
    deployment.rollout_state_reason = reason
    deployment.rollback = True
    service_deployments.rolling_back(sd, deployment, sd_reason, at)
    sim.add_event(service, events.rolling_back(service.name, target.id), at)
    return deployment
