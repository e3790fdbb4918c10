"""Why a rollout failed, in ECS's own words: stop reasons, rollout-state reasons, events.

ECS explains failures in free text: a stopped task's ``stopCode`` and
``stoppedReason`` (and each container's ``exitCode`` and ``reason``), a
deployment's ``rolloutStateReason`` and the service's event messages. This
module turns that text into the few kinds ecsop reports, so status, logs and
the ``reason`` label of ``ecsop_rollbacks_total`` say the same thing, and the
label set stays bounded (names and digests go into details, never labels).

Everything is pure; ``ecsop.decision.gates`` calls it. ``tally`` reads the
judged deployment's stopped tasks (``Observation.stopped``): how many failed
in a way that counts against a rollout, and the earliest failure, which
explains it. ``ecs_alarm_failure`` tells an ECS rollback caused by the
service's deployment alarms from one caused by its circuit breaker.

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
from dataclasses import dataclass
from enum import StrEnum

from ecsop.decision.reasons import Failure


class StopKind(StrEnum):
    """What stopped a task, as far as a rollout is concerned."""

    ESSENTIAL_EXITED = "essential_container_exited"
    OUT_OF_MEMORY = "out_of_memory"
    CANNOT_PULL = "cannot_pull_container"
    RESOURCE_INITIALIZATION = "resource_initialization"
    ELB_HEALTH = "elb_health_checks"
    CONTAINER_HEALTH = "container_health_checks"
    FAILED_TO_START = "failed_to_start"
    """``TaskFailedToStart`` without a more specific reason."""
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
    (("taskfailedtostart",), StopKind.FAILED_TO_START),
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


COUNTED = frozenset(
    {
        StopKind.ESSENTIAL_EXITED,
        StopKind.OUT_OF_MEMORY,
        StopKind.CANNOT_PULL,
        StopKind.RESOURCE_INITIALIZATION,
        StopKind.ELB_HEALTH,
        StopKind.CONTAINER_HEALTH,
        StopKind.FAILED_TO_START,
    }
)
"""Stops that count against a rollout: the revision failed to start, crashed, or failed
its health checks. Scale-in, replacement by a newer deployment, a person's StopTask,
Spot interruptions and rebalancing (``OTHER``) say nothing about the revision."""


@dataclass(frozen=True)
class Tally:
    """ecsop's own count of a deployment's failed tasks, from their stop reasons."""

    failed: int = 0
    """Tasks that stopped in a way ``COUNTED`` (an essential container's exit counts only
    with a non-zero code)."""
    first: StopReason | None = None
    """The earliest of them: closest to the cause."""
    crashed_after_running: int = 0
    """Of ``failed``, containers that exited (ECS's breaker does not count these)."""
    exit_code: int | None = None
    container: str = ""


def counts(reason: StopReason) -> bool:
    """Whether a stopped task counts as a failure of its revision."""
    if reason.kind not in COUNTED:
        return False
    return not (reason.kind is StopKind.ESSENTIAL_EXITED and reason.exit_code == 0)


def tally(lines: Sequence[str]) -> Tally:
    """Count the failures among stop reasons given newest first."""
    failed: list[StopReason] = [r for r in map(classify_stop, reversed(lines)) if counts(r)]
    if not failed:
        return Tally()
    crashed = [r for r in failed if r.kind in (StopKind.ESSENTIAL_EXITED, StopKind.OUT_OF_MEMORY)]
    last = crashed[-1] if crashed else None
    return Tally(
        failed=len(failed),
        first=failed[0],
        crashed_after_running=len(crashed),
        exit_code=last.exit_code if last else None,
        container=last.container if last else "",
    )


def retarget(failure: Failure, stop: StopReason | None, *, target_health: bool) -> Failure:
    """The failure kind once the first stop reason is known.

    When tasks were counted as failed (by ecsop's ``maxFailedTasks``, ECS's
    circuit breaker, or the rollback ECS started after it) and the first of
    them was stopped for failing its ELB health checks, the rollout failed
    because its targets were unhealthy: with the target-health gate on, the
    reason is ``target_health``, the cause, just as an ECS rollback on its
    deployment alarms is ``alarm``. (ECS replaces such tasks some health-check
    intervals after the target turns unhealthy; when ecsop's target-health
    gate is off, or ECS got there first, the stop reason is what tells.)
    """
    task_counts = failure in (Failure.FAILED_TASKS, Failure.CIRCUIT_BREAKER, Failure.ECS_ROLLBACK)
    if target_health and task_counts and stop is not None and stop.kind is StopKind.ELB_HEALTH:
        return Failure.TARGET_HEALTH
    return failure
