"""Judging a rollout: is it failing, and why, in the words status and metrics use.

``decide`` asks these questions of the deployment its ``View`` judges: did
ECS fail it (and was it its deployment alarms), did more tasks fail than the
spec allows (ECS's ``failedTasks``, or ecsop's own count of the deployment's
stopped tasks, whichever is larger), is a watched alarm firing, are the new
targets unhealthy, is an HTTP check failing, has the timeout passed. Every
answer is a ``Verdict`` with the first stopped task's reason folded in, so
nothing after ``decide`` rewrites it. Pure functions, like the decision.
An analysis (``rollout.analysis``) fails like an HTTP check, after them.

The service's own deployment alarms are watched too, but when ECS rolls back
on them by itself (``alarms.rollback``) ecsop leaves the first move to ECS for
``ECS_ALARM_GRACE_SECONDS`` after the alarm fired: two rollbacks of one
deployment would race (ecsop's UpdateService against ECS's own), and the one
ECS makes is the one the user configured. ECS watches none of the alarms for
a deployment that began with one in ALARM, and only while the deployment is
IN_PROGRESS ("How CloudWatch alarms detect Amazon ECS deployment failures",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html);
outside those, or once the grace is over, ecsop acts at once as for any alarm.
Every other failing gate (tasks, targets, HTTP checks, analyses, the timeout)
acts at once: it is ecsop's to judge, and a blue/green pause is not passed
while ECS is given its move.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ecsop.decision import failures
from ecsop.decision.ecs_state import Deployment, RolloutState, ServiceState
from ecsop.decision.observation import Observation
from ecsop.decision.reasons import Failure
from ecsop.spec.model import ServiceRelease

ECS_ALARM_GRACE_SECONDS = 90.0
"""How long ECS gets to roll back on its own deployment alarm before ecsop does.

ECS does not document how often it reads the alarms; 60 s is CloudWatch's
standard alarm period, and 30 s more lets ECS's rollback show in DescribeServices.
"""


@dataclass(frozen=True)
class Verdict:
    """A failed gate: the failure kind, what was seen, and ECS's first stop reason."""

    failure: Failure
    detail: str
    stop_reason: str = ""


def rollout_failure(
    release: ServiceRelease,
    observed: Observation,
    deployment: Deployment,
    now: datetime,
    waits_seconds: float = 0.0,
) -> Verdict | None:
    """Whether a rollout in progress has failed: every gate, then the timeout.

    ``waits_seconds`` is time the strategy waits on purpose (a canary's bake):
    it extends the timeout, which bounds the time ECS works.
    """
    rollout = release.spec.rollout
    if deployment.rollout_state is RolloutState.FAILED:
        ecs = ecs_failure(observed, deployment, Failure.CIRCUIT_BREAKER)
        return explained(ecs, release, observed)
    verdict: Verdict | None = failed_tasks(release, observed, deployment)
    verdict = verdict or health_failure(
        release, observed, ecs_rolls_back_on(observed, deployment, now)
    )
    allowed = rollout.timeout_seconds + waits_seconds
    if verdict is None and age(deployment, now) > allowed:
        waited = f" (and the strategy's {int(waits_seconds)}s of bakes)" if waits_seconds else ""
        verdict = Verdict(
            Failure.TIMEOUT,
            f"not completed {rollout.timeout_seconds}s{waited} after the deployment was created",
        )
    return explained(verdict, release, observed) if verdict else None


def bake_failure(
    release: ServiceRelease, observed: Observation, deployment: Deployment
) -> Verdict | None:
    """Whether a completed rollout fails during its bake (no timeout: it completed)."""
    if deployment.rollout_state is RolloutState.FAILED:
        ecs = ecs_failure(observed, deployment, Failure.CIRCUIT_BREAKER)
        return explained(ecs, release, observed)
    verdict: Verdict | None = failed_tasks(release, observed, deployment, during="during bake")
    verdict = verdict or health_failure(release, observed)
    return explained(verdict, release, observed) if verdict else None


def failed_tasks(
    release: ServiceRelease, observed: Observation, deployment: Deployment, during: str = ""
) -> Verdict | None:
    """More failed tasks than ``maxFailedTasks``, by ECS's count or ecsop's own.

    ECS's ``failedTasks`` counts tasks that fail to reach RUNNING and failed
    health checks; a container that starts and then exits is replaced while
    ``failedTasks`` stays 0 (aws/containers-roadmap#1206). ecsop counts the
    deployment's own stopped tasks too and judges the larger number.
    """
    allowed = release.spec.rollout.max_failed_tasks
    tally = failures.tally(observed.stopped.lines) if observed.stopped else failures.Tally()
    when = f" {during}" if during else ""
    if deployment.failed_tasks >= tally.failed and deployment.failed_tasks > allowed:
        return Verdict(
            Failure.FAILED_TASKS,
            f"{deployment.failed_tasks} failed tasks{when} (maxFailedTasks {allowed})",
        )
    if tally.failed > allowed:
        return Verdict(
            Failure.FAILED_TASKS,
            f"{_tally_words(tally)}{when}; ECS reports failedTasks {deployment.failed_tasks} "
            f"(maxFailedTasks {allowed})",
        )
    return None


def _tally_words(tally: failures.Tally) -> str:
    if tally.crashed_after_running == tally.failed and tally.exit_code is not None:
        container = f": essential container {tally.container} exited" if tally.container else ""
        return (
            f"{tally.failed} tasks exited with code {tally.exit_code} after reaching "
            f"RUNNING{container}"
        )
    first = failures.describe(tally.first) if tally.first else "unknown"
    return f"{tally.failed} tasks failed (first: {first})"


def ecs_failure(observed: Observation, deployment: Deployment, otherwise: Failure) -> Verdict:
    """Why ECS marked ``deployment`` FAILED: its deployment alarms, or ``otherwise``."""
    reason = deployment.rollout_state_reason or "deployment FAILED"
    alarm = failures.ecs_alarm_failure(reason, [e.message for e in observed.service.events])
    if alarm is None:
        return Verdict(otherwise, reason)
    names = alarm or ", ".join(observed.service.alarm_names) or "a deployment alarm"
    return Verdict(Failure.ALARM, f"ECS deployment alarm {names} in ALARM ({reason})")


def explained(verdict: Verdict, release: ServiceRelease, observed: Observation) -> Verdict:
    """``verdict`` with the first failed task's stop reason folded in, when it was read."""
    if observed.stopped is None:
        return verdict
    stop = failures.first_failure(observed.stopped.lines)
    if stop is None:
        return verdict
    failure = failures.retarget(
        verdict.failure, stop, target_health=target_health_enabled(release, observed.service)
    )
    detail = verdict.detail
    if failure is not verdict.failure:
        detail = f"new tasks failed their ELB health checks ({verdict.detail})"
    if stop.text not in detail and failures.describe(stop) not in detail:
        detail = f"{detail}; first stopped task: {failures.describe(stop)}"
    return Verdict(failure, detail, stop.text)


def target_health_enabled(release: ServiceRelease, service: ServiceState) -> bool:
    """``rollout.targetHealth``, defaulting to on when the service has load balancers."""
    target_health = release.spec.rollout.target_health
    return service.has_load_balancers if target_health is None else target_health


def ecs_rolls_back_on(
    observed: Observation, deployment: Deployment, now: datetime
) -> tuple[str, ...]:
    """The firing alarms ECS will roll ``deployment`` back on by itself, still within
    ``ECS_ALARM_GRACE_SECONDS``: ecsop does not act on these (yet)."""
    service = observed.service
    if not service.alarm_rollback or deployment.rollout_state is not RolloutState.IN_PROGRESS:
        return ()
    if service.primary is None or service.primary.id != deployment.id:
        return ()  # ECS rolls back the deployment it runs, not one it already replaced
    since = observed.health.alarms_firing_since
    firing = [name for name in observed.health.alarms_in_alarm if name in service.alarm_names]
    if any(name not in since or since[name] < deployment.created_at for name in firing):
        # One of them was in ALARM when the deployment began (or CloudWatch gave no
        # time): ECS watches none of them for this deployment.
        return ()
    # A time ahead of ``now`` is CloudWatch's clock ahead of ECS's: within the grace it
    # is skew; further, a time no clock explains, which must not hold a rollback.
    return tuple(
        name
        for name in firing
        if abs((now - since[name]).total_seconds()) < ECS_ALARM_GRACE_SECONDS
    )


def left_to_ecs(observed: Observation, deployment: Deployment, now: datetime) -> str:
    """Status words for alarms ECS is given the first move on ("" when none)."""
    names = ecs_rolls_back_on(observed, deployment, now)
    if not names:
        return ""
    since = min(observed.health.alarms_firing_since[name] for name in names)
    return (
        f"ECS deployment alarm {', '.join(names)} in ALARM for "
        f"{int((now - since).total_seconds())}s: ECS rolls back by itself (ecsop does after "
        f"{int(ECS_ALARM_GRACE_SECONDS)}s)"
    )


def health_failure(
    release: ServiceRelease, observed: Observation, left_to_ecs: tuple[str, ...] = ()
) -> Verdict | None:
    """The first failing health gate; alarms in ``left_to_ecs`` are ECS's to act on."""
    health = observed.health
    watched = set(release.spec.rollout.alarms) | set(observed.service.alarm_names)
    firing = [
        name for name in health.alarms_in_alarm if name in watched and name not in left_to_ecs
    ]
    if firing:
        return Verdict(Failure.ALARM, f"alarm {firing[0]} is in ALARM")
    if target_health_enabled(release, observed.service) and health.unhealthy_targets > 0:
        why = f": {health.target_detail}" if health.target_detail else ""
        return Verdict(Failure.TARGET_HEALTH, f"{health.unhealthy_targets} targets unhealthy{why}")
    if health.failing_http_checks:
        return Verdict(Failure.HTTP_CHECK, f"HTTP check failing: {health.failing_http_checks[0]}")
    failing_analysis = next((state for state in health.analyses if state.failing), None)
    if failing_analysis is not None:
        return Verdict(Failure.ANALYSIS, failing_analysis.failure_detail)
    return None


def age(deployment: Deployment, now: datetime) -> float:
    return (now - deployment.created_at).total_seconds()
