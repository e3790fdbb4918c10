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
