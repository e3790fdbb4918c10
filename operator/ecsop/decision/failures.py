"""Why a rollout failed, in ECS's own words: stop reasons, rollout-state reasons, events.

ECS explains failures in free text: a stopped task's ``stopCode`` and
``stoppedReason`` (and each container's ``exitCode`` and ``reason``), a
deployment's ``rolloutStateReason`` and the service's event messages. This
module turns that text into the few kinds ecsop reports, so status, logs and
the ``reason`` label of ``ecsop_rollbacks_total`` say the same thing, and the
label set stays bounded (names and digests go into details, never labels).

Everything is pure. The controller calls ``first_failure`` with the lines
``EcsGateway.stopped_task_reasons`` returns, only on failure paths, and
``refine`` to fold that stop reason into the failure action; the reconciler
calls ``ecs_alarm_failure`` to tell an ECS rollback caused by the service's
deployment alarms from one caused by its circuit breaker.

Wording follows "Amazon ECS stopped task error messages"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-error-codes.html),
"Amazon ECS service event messages"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-event-messages.html)
and "How CloudWatch alarms detect Amazon ECS deployment failures"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TypeVar

from ecsop.decision.actions import Failure, RecordFailure, Rollback


class StopKind(StrEnum):
    """What stopped a task, as far as a rollout is concerned."""

    ESSENTIAL_EXITED = "essential_container_exited"
    OUT_OF_MEMORY = "out_of_memory"
    CANNOT_PULL = "cannot_pull_container"
    RESOURCE_INITIALIZATION = "resource_initialization"
    ELB_HEALTH = "elb_health_checks"
    CONTAINER_HEALTH = "container_health_checks"
    SCALING = "scaling"
    """Stopped by the scheduler replacing or scaling in: not a failure."""
    USER = "user"
    """StopTask by a person or a tool: not a failure of the revision."""
    OTHER = "other"


NOT_FAILURES = frozenset({StopKind.SCALING, StopKind.USER})
STOP_REASON_MAX = 300
"""Characters of a stop reason kept for status and logs (ECS's can run to kilobytes)."""


@dataclass(frozen=True)
class StopReason:
    kind: StopKind
    text: str
    """ECS's line for the task (stop code, stopped reason, container exit codes), trimmed."""
    exit_code: int | None = None
    container: str = ""

    @property
    def is_failure(self) -> bool:
        return self.kind not in NOT_FAILURES


_STOP_SIGNS: tuple[tuple[tuple[str, ...], StopKind], ...] = (
    (("outofmemoryerror", "killed due to memory usage"), StopKind.OUT_OF_MEMORY),
    (("cannotpullcontainererror",), StopKind.CANNOT_PULL),
    (("resourceinitializationerror",), StopKind.RESOURCE_INITIALIZATION),
    (("failed elb health checks",), StopKind.ELB_HEALTH),
    (("failed container health checks",), StopKind.CONTAINER_HEALTH),
    (("essential container in task exited",), StopKind.ESSENTIAL_EXITED),
    (("scaling activity initiated by",), StopKind.SCALING),
    (("userinitiated", "task stopped by user"), StopKind.USER),
)
"""Lower-case phrases of ECS's stop reasons, most specific first: the first match wins."""
_EXIT_CODE = re.compile(r"container (?P<name>[^\s;:]+) exit code (?P<code>-?\d+)")
_ALARM_REASON = re.compile(r"ECS deployment alarms?:\s*(?P<rest>.*)", re.IGNORECASE)
_ALARM_EVENT = re.compile(r"deployment failed: alarm detected(?::\s*(?P<names>[^.]+))?", re.I)
_IN_ALARM = re.compile(r"^(?P<names>.+?) in ALARM state", re.IGNORECASE)


def classify_stop(line: str) -> StopReason:
    """Classify one stopped task from its one-line description.

    ``line`` is what ``EcsGateway.stopped_task_reasons`` builds: stop code,
    stopped reason, then ``container <name> exit code <n>`` and
    ``container <name>: <reason>`` parts joined by ``; ``. Raw
    ``stoppedReason`` strings work too. The most specific cause wins: an
    out-of-memory kill is reported by ECS as "Essential container in task
    exited" with the container's reason saying OutOfMemoryError.
    """
    text = line.strip()[:STOP_REASON_MAX]
    exit_code, container = _failed_exit(line)
    lowered = line.lower()
    kind = next(
        (kind for needles, kind in _STOP_SIGNS if any(n in lowered for n in needles)),
        StopKind.OTHER,
    )
    return StopReason(kind, text, exit_code, container)


def _failed_exit(line: str) -> tuple[int | None, str]:
    """The first non-zero container exit code in ``line`` (a zero one if none failed)."""
    found = [(int(m["code"]), m["name"]) for m in _EXIT_CODE.finditer(line)]
    for code, name in found:
        if code != 0:
            return code, name
    return found[0] if found else (None, "")


def first_failure(lines: Sequence[str]) -> StopReason | None:
    """The earliest failure among stop reasons given newest first, as the gateway returns them.

    Tasks the scheduler stopped to scale in, and tasks stopped by hand, are
    skipped: they say nothing about the revision. The earliest failure is the
    one closest to the cause; later ones are often its echo.
    """
    for line in reversed(lines):
        reason = classify_stop(line)
        if reason.is_failure:
            return reason
    return None


def describe(reason: StopReason) -> str:
    """A short human summary of a stop reason, for messages."""
    if reason.kind is StopKind.ESSENTIAL_EXITED and reason.exit_code is not None:
        return f"essential container {reason.container} exited with code {reason.exit_code}"
    if reason.kind is StopKind.OUT_OF_MEMORY:
        return f"container {reason.container or '?'} killed: OutOfMemoryError"
    return reason.text


def ecs_alarm_failure(rollout_state_reason: str, events: Sequence[str] = ()) -> str | None:
    """The alarm detail when ECS failed a deployment because of its deployment alarms.

    Returns None when the failure was not alarm-driven (the circuit breaker's
    "ECS deployment circuit breaker: tasks failed to start."). Otherwise the
    alarm names when ECS gave them (``rolloutStateReason`` "ECS deployment
    alarms: <names> in ALARM state.", or the service event "(deployment ...)
    deployment failed: alarm detected: <names>."), else "" (alarm-driven,
    names unknown).
    """
    match = _ALARM_REASON.search(rollout_state_reason)
    if match:
        names = _IN_ALARM.match(match["rest"].strip())
        return names["names"].strip() if names else ""
    for message in events:
        event = _ALARM_EVENT.search(message)
        if event:
            return (event["names"] or "").strip()
    return None


_TASK_COUNTS = frozenset({Failure.FAILED_TASKS, Failure.CIRCUIT_BREAKER, Failure.ECS_ROLLBACK})
_Act = TypeVar("_Act", bound=Rollback | RecordFailure)


def refine(action: _Act, stop: StopReason | None, *, target_health: bool) -> _Act:
    """Fold the first stop reason into a failure action.

    The reason becomes ``stop_reason`` (status ``lastRollout.stopReason``).
    When tasks were counted as failed (by ecsop's ``maxFailedTasks``, ECS's
    circuit breaker, or the rollback ECS started after it) and the first of
    them was stopped for failing its ELB health checks, the rollout failed
    because its targets were unhealthy: with the target-health gate on, the
    reason is ``target_health``, the cause, just as an ECS rollback on its
    deployment alarms is ``alarm``. (ECS replaces such tasks some health-check
    intervals after the target turns unhealthy; when ecsop's target-health
    gate is off, or ECS got there first, the stop reason is what tells.)
    """
    if stop is None:
        return action
    failure, detail = action.failure, action.detail
    if target_health and failure in _TASK_COUNTS and stop.kind is StopKind.ELB_HEALTH:
        failure = Failure.TARGET_HEALTH
        detail = f"new tasks failed their ELB health checks ({action.detail})"
    message = action.message.replace(f"{action.failure}: {action.detail}", f"{failure}: {detail}")
    if stop.text not in message:
        message = f"{message}; first stopped task: {describe(stop)}"
    return replace(action, failure=failure, detail=detail, message=message, stop_reason=stop.text)
