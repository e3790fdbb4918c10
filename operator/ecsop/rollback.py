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

from ecsop.actions import Action, Failure, Phase, Reason, RecordFailure, Rollback, Wait
from ecsop.observation import Observation
from ecsop.observed import Deployment, Fingerprint, short_name
from ecsop.spec import ServiceRelease


def on_failure(
    release: ServiceRelease,
    observed: Observation,
    desired: Fingerprint,
    failure: Failure,
    detail: str,
    poll: float,
    deployment_id: str,
) -> Action:
    if not release.spec.rollback.automatic:
        message = f"release {desired} failed ({failure}: {detail}); automatic rollback is off"
        return record_once(
            observed.failed_fingerprint == desired,
            desired,
            Reason.RELEASE_FAILED,
            message,
            poll,
            failure,
            detail,
            deployment_id,
        )
    return roll_back(release, observed, desired, failure, detail, poll, deployment_id)


def roll_back(
    release: ServiceRelease,
    observed: Observation,
    desired: Fingerprint,
    failure: Failure,
    detail: str,
    poll: float,
    deployment_id: str,
) -> Action:
    last_good = observed.last_good
    if last_good is None:
        message = (
            f"release {desired} failed ({failure}: {detail}) and there is no last-good revision"
        )
        return record_once(
            observed.failed_fingerprint == desired,
            desired,
            Reason.NO_LAST_GOOD,
            message,
            poll,
            failure,
            detail,
            deployment_id,
        )
    return Rollback(
        Phase.ROLLING_BACK,
        Reason.ROLLING_BACK,
        f"rolling back {desired} to {short_name(last_good)}: {failure}: {detail}",
        poll,
        to=last_good,
        failed_fingerprint=desired,
        failure=failure,
        detail=detail,
        deployment_id=deployment_id,
    )


def record_once(
    recorded: bool,
    failed: Fingerprint,
    reason: Reason,
    message: str,
    poll: float,
    failure: Failure,
    detail: str,
    deployment_id: str = "",
) -> Action:
    """Record a failure on the service (Degraded) unless it is ``recorded`` already: then wait."""
    if recorded:
        return Wait(Phase.DEGRADED, reason, message, None)
    return RecordFailure(
        Phase.DEGRADED,
        reason,
        message,
        poll,
        failed_fingerprint=failed,
        failure=failure,
        detail=detail,
        deployment_id=deployment_id,
    )


def rollback_failed(observed: Observation, primary: Deployment, poll: float) -> Action:
    message = (
        f"rollback to {short_name(primary.task_definition)} is failing "
        f"({primary.failed_tasks} failed tasks, "
        f"{primary.rollout_state_reason or 'not completing'}); "
        "ecsop has stopped acting on this release"
    )
    failed = observed.failed_fingerprint or Fingerprint("")
    return record_once(
        observed.failed_reason == Failure.ROLLBACK_FAILED,
        failed,
        Reason.ROLLBACK_FAILED,
        message,
        poll,
        Failure.ROLLBACK_FAILED,
        primary.rollout_state_reason,
    )
