"""Service event messages, worded as ECS words them.

ECS keeps the 100 most recent service events, newest first; the API returns
them in ``service.events``.  ecsop and its operators read these, so the
wording follows the ECS Developer Guide, "Service event messages":
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-event-messages.html
and the rollout-state reasons follow "Amazon ECS service deployment state change
events":
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MAX_EVENTS = 100
"""ECS shows "only the 100 most recent events" (service-event-messages.html)."""

NOTICE_REPEAT_SECONDS = 6 * 3600.0
"""A condition's event is not logged again "until either the cause is resolved or
six hours passes" (service-event-messages.html)."""


@dataclass(frozen=True)
class ServiceEvent:
    id: str
    created_at: float
    message: str


class EventLog:
    """Newest-first, capped event list of one service."""

    def __init__(self) -> None:
        self._events: deque[ServiceEvent] = deque(maxlen=MAX_EVENTS)

    def add(self, event: ServiceEvent) -> None:
        self._events.appendleft(event)

    def __iter__(self) -> Iterator[ServiceEvent]:
        return iter(self._events)

    def __len__(self) -> int:
        return len(self._events)


def _tasks(task_ids: Iterable[str]) -> str:
    return " ".join(f"(task {task_id})" for task_id in task_ids)


def started_tasks(service: str, task_ids: list[str]) -> str:
    return f"(service {service}) has started {len(task_ids)} tasks: {_tasks(task_ids)}."


def stopped_tasks(service: str, task_ids: list[str]) -> str:
    return f"(service {service}) has stopped {len(task_ids)} running tasks: {_tasks(task_ids)}."


def steady_state(service: str) -> str:
    return f"(service {service}) has reached a steady state."


def deployment_completed(service: str, deployment_id: str) -> str:
    return f"(service {service}) (deployment {deployment_id}) deployment completed."


def deployment_failed(service: str, deployment_id: str) -> str:
    return (
        f"(service {service}) (deployment {deployment_id}) deployment failed: "
        "tasks failed to start."
    )


def deployment_failed_alarms(service: str, deployment_id: str, alarms: list[str]) -> str:
    return (
        f"(service {service}) (deployment {deployment_id}) deployment failed: "
        f"alarm detected: {', '.join(alarms)}."
    )


def rolling_back(service: str, deployment_id: str) -> str:
    return f"(service {service}) rolling back to deployment {deployment_id}."


def registered_targets(service: str, count: int, target_group_arn: str) -> str:
    return f"(service {service}) registered {count} targets in (target-group {target_group_arn})"


def deregistered_targets(service: str, count: int, target_group_arn: str) -> str:
    return f"(service {service}) deregistered {count} targets in (target-group {target_group_arn})"


def draining(service: str, count: int) -> str:
    return f"(service {service}) has begun draining connections on {count} tasks."


def elb_unhealthy(service: str, task_id: str, port: int, target_group_arn: str, codes: str) -> str:
    return (
        f"(service {service}) (task {task_id}) (port {port}) is unhealthy in "
        f"(target-group {target_group_arn}) due to "
        f"(reason Health checks failed with these codes: {codes})."
    )


def container_unhealthy(service: str, task_id: str) -> str:
    return f"(service {service}) (task {task_id}) failed container health checks."


def unable_to_start_consistently(service: str) -> str:
    """The service throttle logic started (service-throttle-logic.html)."""
    return f"(service {service}) is unable to consistently start tasks successfully."


def deployment_configuration_stuck(service: str) -> str:
    """minimumHealthyPercent / maximumPercent leave no room to stop or start a task."""
    return (
        f"(service {service}) was unable to stop or start tasks during a deployment because "
        "of the service deployment configuration. Update the minimumHealthyPercent or "
        "maximumPercent value and try again."
    )


def unable_to_place_ec2(service: str, container_instance_id: str) -> str:
    """EC2: no container instance has room (service-event-messages.html)."""
    return (
        f"(service {service}) was unable to place a task because no container instance met "
        f"all of its requirements. The closest matching (container-instance "
        f"{container_instance_id}) has insufficient CPU units available. For more "
        "information, see the Troubleshooting section."
    )


def unable_to_place_fargate(service: str) -> str:
    """Fargate: the "Reason:" form of service-event-messages.html, with the reason
    RunTask gives when Fargate has no capacity (re:Post, "ecs-fargate-runtask-capacity")."""
    return (
        f"(service {service}) was unable to place a task. Reason: Capacity is unavailable at "
        "this time. Please try again later or in a different availability zone."
    )


# Rollout state reasons (Deployment.rolloutStateReason).
def reason_in_progress(deployment_id: str) -> str:
    return f"ECS deployment {deployment_id} in progress."


def reason_completed(deployment_id: str) -> str:
    return f"ECS deployment {deployment_id} completed."


REASON_BREAKER_FAILED = "ECS deployment circuit breaker: tasks failed to start."


def reason_rolling_back(to_deployment_id: str) -> str:
    return f"ECS deployment circuit breaker: rolling back to deploymentId {to_deployment_id}."


def reason_alarm_failed(alarms: list[str]) -> str:
    return f"ECS deployment alarms: {', '.join(alarms)} in ALARM state."


def reason_alarm_rolling_back(to_deployment_id: str) -> str:
    return f"ECS deployment alarms: rolling back to deploymentId {to_deployment_id}."


def reason_stopped_rollback(to_deployment_id: str) -> str:
    return f"ECS deployment stopped: rolling back to deploymentId {to_deployment_id}."


REASON_STOPPED = "ECS deployment stopped."


# Why a blue/green, linear or canary deployment failed other than by the breaker or
# alarms (``traffic_shift``).  ECS documents the service deployment's statusReason for
# these (troubleshooting-blue-green.html) but not the deployment's rolloutStateReason
# nor a service event: the wording around ``why`` is the sandbox's own.
FAILED_HOOKS = "lifecycle hook(s) failed"
FAILED_NETWORKING = "invalid networking configuration"
FAILED_TIMEOUT = "lifecycle stage timed out"


def reason_failed(why: str) -> str:
    return f"ECS deployment failed: {why}."


def reason_failed_rolling_back(why: str, to_deployment_id: str) -> str:
    return f"ECS deployment failed: {why}: rolling back to deploymentId {to_deployment_id}."


def deployment_failed_because(service: str, deployment_id: str, why: str) -> str:
    return f"(service {service}) (deployment {deployment_id}) deployment failed: {why}."


# Service deployment status reasons (ServiceDeployment.statusReason, rollback.reason).
# ECS documents the field ("for example, the circuit breaker detected a failure")
# but not its wording: these are the sandbox's own.
SD_BREAKER = "Service deployment failed: the deployment circuit breaker detected a failure."
SD_STOPPED = "Service deployment stopped by StopServiceDeployment."
SD_SUPERSEDED = "Service deployment was superseded by a newer service deployment."
SD_ROLLBACK_BREAKER = "Circuit breaker triggered a rollback."
SD_ROLLBACK_REQUESTED = "StopServiceDeployment requested a rollback."


def sd_alarms(alarms: list[str]) -> str:
    return f"Service deployment failed: alarm(s) {', '.join(alarms)} in ALARM state."


def sd_rollback_alarms(alarms: list[str]) -> str:
    return f"Alarm(s) {', '.join(alarms)} triggered a rollback."


# Task stop reasons and codes (Task.stoppedReason / stopCode), as listed in
# "Amazon ECS stopped task error messages":
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-error-codes.html
STOP_ESSENTIAL_EXITED = "Essential container in task exited"
STOP_CONTAINER_HEALTH = "Task failed container health checks"
STOP_USER = "Task stopped by user"


def stop_elb_health(target_group_arn: str) -> str:
    return f"Task failed ELB health checks in (target-group {target_group_arn})"


def stop_scaling(deployment_id: str) -> str:
    return f"Scaling activity initiated by (deployment {deployment_id})"


def stop_pull_error(image: str) -> str:
    return (
        "CannotPullContainerError: pull image manifest has been retried 7 time(s): "
        f"failed to resolve ref {image}: {image}: not found"
    )
