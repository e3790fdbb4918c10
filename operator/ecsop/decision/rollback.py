"""What the decision does once a rollout has failed: roll back, or record it once.

Part of the pure decision (``ecsop.decision.decide`` calls it). The rules:

- With ``rollback.automatic`` and a trusted last-good revision, roll back: the
  ``Rollback`` action carries the failed record, which the executor writes
  first, then points the service at last-good.
- Without automatic rollback, or with nothing proven to return to, record the
  failure (Degraded) and leave the service as it is, for a person to decide.
- A record already on the service is never written again: the next pass
  waits, so a Degraded release costs no AWS write per pass.
- A rollback that itself fails stops ecsop acting on the release.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecsop.decision.actions import Action, RecordFailure, Rollback, Wait
from ecsop.decision.ecs_state import Deployment, Fingerprint, short_name
from ecsop.decision.gates import Verdict
from ecsop.decision.memory import ServiceMemory
from ecsop.decision.observation import Traffic
from ecsop.decision.reasons import Failure, Phase, Reason
from ecsop.decision.situation import View
from ecsop.spec.model import ServiceRelease


@dataclass(frozen=True)
class FailedRollout:
    """Which rollout failed, how, and where: what every response to a failure records."""

    fingerprint: Fingerprint
    verdict: Verdict
    deployment_id: str = ""
    """The failed deployment (for logs and stopped-task lookups)."""


def on_failure(
    release: ServiceRelease,
    view: View,
    failed: FailedRollout,
    memory: ServiceMemory,
    poll: float,
    traffic: Traffic | None = None,
) -> Action:
    """Roll back if the spec allows it; otherwise record the failure once and stay put.

    ``memory`` is the memory to build the record on, already stamped with this
    release and instance.
    """
    verdict = failed.verdict
    if not release.spec.rollback.automatic:
        return record_once(
            view,
            failed,
            memory,
            Reason.RELEASE_FAILED,
            f"release {failed.fingerprint} failed ({verdict.failure}: {verdict.detail}); "
            "automatic rollback is off",
            poll,
        )
    return roll_back(view, failed, memory, poll, traffic)


def roll_back(
    view: View,
    failed: FailedRollout,
    memory: ServiceMemory,
    poll: float,
    traffic: Traffic | None = None,
) -> Action:
    """Point the service back at last-good; with none, record the failure once.

    A traffic-shifting rollout still under way is rolled back by ECS
    (``traffic``): blue is still running, so production returns to it at once,
    instead of waiting for a new deployment of last-good to start tasks.
    """
    verdict = failed.verdict
    if view.last_good is None:
        why = f"; {view.distrusted}" if view.distrusted else ""
        return record_once(
            view,
            failed,
            memory,
            Reason.NO_LAST_GOOD,
            f"release {failed.fingerprint} failed ({verdict.failure}: {verdict.detail}) "
            f"and there is no last-good revision{why}",
            poll,
        )
    return Rollback(
        Phase.ROLLING_BACK,
        Reason.ROLLING_BACK,
        f"rolling back {failed.fingerprint} to {short_name(view.last_good)}: "
        f"{verdict.failure}: {verdict.detail}",
        poll,
        to=view.last_good,
        failed_fingerprint=failed.fingerprint,
        failure=verdict.failure,
        detail=verdict.detail,
        memory=memory.failed_with(failed.fingerprint, verdict.failure),
        deployment_id=failed.deployment_id,
        stop_reason=verdict.stop_reason,
        service_deployment=traffic.service_deployment if traffic and traffic.ongoing else "",
        hook_id=traffic.paused.hook_id if traffic and traffic.ongoing and traffic.paused else "",
    )


def record_once(
    view: View,
    failed: FailedRollout,
    memory: ServiceMemory,
    reason: Reason,
    message: str,
    poll: float,
) -> Action:
    """Record a failure on the service (Degraded) unless it is recorded already: then wait."""
    recorded = view.memory.failed
    if (
        recorded is not None
        and recorded.fingerprint == failed.fingerprint
        and (
            recorded.failure is failed.verdict.failure
            or failed.verdict.failure is not Failure.ROLLBACK_FAILED
        )
    ):
        return Wait(Phase.DEGRADED, reason, message, None)
    return RecordFailure(
        Phase.DEGRADED,
        reason,
        message,
        poll,
        failed_fingerprint=failed.fingerprint,
        failure=failed.verdict.failure,
        detail=failed.verdict.detail,
        memory=memory.failed_with(failed.fingerprint, failed.verdict.failure),
        deployment_id=failed.deployment_id,
        stop_reason=failed.verdict.stop_reason,
    )


def rollback_failed(view: View, primary: Deployment, memory: ServiceMemory, poll: float) -> Action:
    """The rollback to last-good is failing too: record it once, then stop acting."""
    message = (
        f"rollback to {short_name(primary.task_definition)} is failing "
        f"({primary.failed_tasks} failed tasks, "
        f"{primary.rollout_state_reason or 'not completing'}); "
        "ecsop has stopped acting on this release"
    )
    failed_fp = view.memory.failed.fingerprint if view.memory.failed else Fingerprint("")
    failed = FailedRollout(
        failed_fp, Verdict(Failure.ROLLBACK_FAILED, primary.rollout_state_reason), primary.id
    )
    return record_once(view, failed, memory, Reason.ROLLBACK_FAILED, message, poll)
