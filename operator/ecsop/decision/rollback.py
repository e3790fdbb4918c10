"""What the decision does once a rollout has failed: roll back, or record it once.

Part of the pure decision (``ecsop.reconciler`` calls it; no I/O). The rules:

- With ``rollback.automatic`` and a last-good revision, roll back: the
  ``Rollback`` action records the failed fingerprint and points the service at
  last-good (the executor writes the record first).
- Without automatic rollback, or with nothing proven to return to, record the
  failure (Degraded) and leave the service as it is, for a person to decide.
- A record already on the service is never written again: the next pass
  waits, so a Degraded release costs no AWS write per pass.
- A rollback that itself fails stops ecsop acting on the release.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecsop.decision.actions import Action, Failure, Phase, Reason, RecordFailure, Rollback, Wait
from ecsop.decision.ecs_state import Deployment, Fingerprint, short_name
from ecsop.decision.observation import Observation
from ecsop.spec.model import ServiceRelease


@dataclass(frozen=True)
class FailedRollout:
    """Which rollout failed, how, and where: what every response to a failure records."""

    fingerprint: Fingerprint
    failure: Failure
    detail: str
    deployment_id: str = ""
    """The failed deployment (for logs and stopped-task lookups)."""


def on_failure(
    release: ServiceRelease, observed: Observation, failed: FailedRollout, poll: float
) -> Action:
    """Roll back if the spec allows it; otherwise record the failure once and stay put."""
    if not release.spec.rollback.automatic:
        return record_once(
            observed.failed_fingerprint == failed.fingerprint,
            failed,
            Reason.RELEASE_FAILED,
            f"release {failed.fingerprint} failed ({failed.failure}: {failed.detail}); "
            "automatic rollback is off",
            poll,
        )
    return roll_back(observed, failed, poll)


def roll_back(observed: Observation, failed: FailedRollout, poll: float) -> Action:
    """Point the service back at last-good; with none, record the failure once."""
    last_good = observed.last_good
    if last_good is None:
        return record_once(
            observed.failed_fingerprint == failed.fingerprint,
            failed,
            Reason.NO_LAST_GOOD,
            f"release {failed.fingerprint} failed ({failed.failure}: {failed.detail}) "
            "and there is no last-good revision",
            poll,
        )
    return Rollback(
        Phase.ROLLING_BACK,
        Reason.ROLLING_BACK,
        f"rolling back {failed.fingerprint} to {short_name(last_good)}: "
        f"{failed.failure}: {failed.detail}",
        poll,
        to=last_good,
        failed_fingerprint=failed.fingerprint,
        failure=failed.failure,
        detail=failed.detail,
        deployment_id=failed.deployment_id,
    )


def record_once(
    recorded: bool, failed: FailedRollout, reason: Reason, message: str, poll: float
) -> Action:
    """Record a failure on the service (Degraded) unless it is ``recorded`` already: then wait."""
    if recorded:
        return Wait(Phase.DEGRADED, reason, message, None)
    return RecordFailure(
        Phase.DEGRADED,
        reason,
        message,
        poll,
        failed_fingerprint=failed.fingerprint,
        failure=failed.failure,
        detail=failed.detail,
        deployment_id=failed.deployment_id,
    )


def rollback_failed(observed: Observation, primary: Deployment, poll: float) -> Action:
    """The rollback to last-good is failing too: record it once, then stop acting."""
    message = (
        f"rollback to {short_name(primary.task_definition)} is failing "
        f"({primary.failed_tasks} failed tasks, "
        f"{primary.rollout_state_reason or 'not completing'}); "
        "ecsop has stopped acting on this release"
    )
    failed = FailedRollout(
        observed.failed_fingerprint or Fingerprint(""),
        Failure.ROLLBACK_FAILED,
        primary.rollout_state_reason,
    )
    return record_once(
        observed.failed_reason == Failure.ROLLBACK_FAILED,
        failed,
        Reason.ROLLBACK_FAILED,
        message,
        poll,
    )
