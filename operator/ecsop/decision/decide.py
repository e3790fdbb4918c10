"""The reconcile decision: (release, observed service, recorded history, now) -> one action.

This is the whole of ecsop's judgement, and it is a pure function: no I/O, no
clock reads, no globals. Everything it knows arrives as frozen values, so the
same inputs always give the same decision, every branch is a table-driven unit
test, and a daemon killed at any instant resumes correctly because the only
history is what ``Observation`` reads back from AWS tags.

It follows ``shared/DESIGN.md`` ("The reconcile decision") step by step:

1. suspended: no action;
2. a rollout in progress: ours -> judge its health (roll back on failure);
   ECS's circuit breaker already rolling back -> record, do not fight; our own
   rollback -> watch it, and if it fails stop acting; someone else's -> wait;
3. steady on the desired fingerprint: bake, then record last-good once;
4. steady elsewhere: failed before -> Degraded until spec change or retry;
   otherwise deploy (or, for drift, self-heal when allowed).

What follows a failure (roll back, or record it once) is ``ecsop.rollback``.

Callers: the controller (every pass) and ``ecsop plan`` (read-only).
"""

from __future__ import annotations

from datetime import datetime

from ecsop.decision import gates, rollback
from ecsop.decision.actions import (
    Action,
    Deploy,
    Failure,
    Phase,
    Reason,
    RecordFailure,
    RecordLastGood,
    Wait,
)
from ecsop.decision.ecs_state import (
    TAG_FINGERPRINT,
    TAG_RELEASE,
    Deployment,
    Fingerprint,
    RolloutState,
    short_name,
)
from ecsop.decision.observation import Observation, Options, fingerprint_of, in_progress
from ecsop.spec.model import ServiceRelease


def decide(
    release: ServiceRelease, observed: Observation, now: datetime, options: Options
) -> Action:
    """Choose the one action this pass takes for ``release``."""
    service = observed.service
    if release.spec.suspend:
        return Wait(Phase.SUSPENDED, Reason.SUSPENDED, "spec.suspend is true: observing only", None)
    desired = Fingerprint(release.fingerprint())
    primary = service.primary
    if primary is None:  # ECS always has a PRIMARY; treat its absence as a transient read
        return Wait(
            Phase.PROGRESSING,
            Reason.FOREIGN_DEPLOYMENT,
            "service has no PRIMARY deployment yet",
            options.active_poll_seconds,
        )
    if in_progress(service, primary):
        return _during_rollout(release, observed, primary, desired, now, options)
    return _when_steady(release, observed, primary, desired, now, options)


def _during_rollout(
    release: ServiceRelease,
    observed: Observation,
    primary: Deployment,
    desired: Fingerprint,
    now: datetime,
    options: Options,
) -> Action:
    poll = options.active_poll_seconds
    primary_fp = fingerprint_of(release, observed.task_definitions.get(primary.task_definition))
    last_good = observed.last_good

    if primary_fp == desired:
        if (
            observed.failed_fingerprint == desired
            and release.spec.rollback.automatic
            and last_good
            and last_good != primary.task_definition
        ):
            # We recorded the failure but did not get to UpdateService (crash,
            # throttling): finish the rollback without judging health again.
            resumed = rollback.FailedRollout(
                desired,
                Failure(observed.failed_reason or "failed_tasks"),
                "resuming a rollback that was recorded but not yet issued",
                primary.id,
            )
            return rollback.roll_back(observed, resumed, poll)
        failure = gates.rollout_failure(release, observed, primary, now)
        if failure is None:
            age = int((now - primary.created_at).total_seconds())
            return Wait(
                Phase.PROGRESSING,
                Reason.ROLLOUT_IN_PROGRESS,
                f"rolling out {desired}: {primary.running_count}/{primary.desired_count} running, "
                f"{primary.failed_tasks} failed, {age}s of {release.spec.rollout.timeout_seconds}s",
                poll,
            )
        kind, detail = failure
        failed = rollback.FailedRollout(desired, kind, detail, primary.id)
        return rollback.on_failure(release, observed, failed, poll)

    ecs_failed = gates.failed_ecs_deployment(observed, release, desired)
    if ecs_failed is not None:
        detail = ecs_failed.rollout_state_reason or "ECS circuit breaker failed the deployment"
        if observed.failed_fingerprint != desired:
            kind, detail = gates.ecs_failure(observed, ecs_failed, Failure.ECS_ROLLBACK)
            return RecordFailure(
                Phase.ROLLING_BACK,
                Reason.ECS_ROLLING_BACK,
                f"ECS is rolling back {desired}: {detail}",
                poll,
                failed_fingerprint=desired,
                failure=kind,
                detail=detail,
                deployment_id=ecs_failed.id,
                rolled_back_by_ecs=True,
            )
        return Wait(
            Phase.ROLLING_BACK,
            Reason.ECS_ROLLING_BACK,
            f"ECS is rolling back {desired}: {detail}",
            poll,
        )

    if last_good and primary.task_definition == last_good and observed.failed_fingerprint:
        # Our own rollback (or ECS's, to the same revision) is under way.
        if (
            primary.rollout_state is RolloutState.FAILED
            or primary.failed_tasks > release.spec.rollout.max_failed_tasks
            or gates.age(primary, now) > release.spec.rollout.timeout_seconds
        ):
            return rollback.rollback_failed(observed, primary, poll)
        return Wait(
            Phase.ROLLING_BACK,
            Reason.ROLLING_BACK,
            f"rolling back to {short_name(last_good)} after "
            f"{observed.failed_reason or 'a failure'} of {observed.failed_fingerprint}: "
            f"{primary.running_count}/{primary.desired_count} running",
            poll,
        )

    primary_td = observed.task_definitions.get(primary.task_definition)
    if primary_td is not None and primary_td.tags.get(TAG_RELEASE) == release.name:
        # ecsop's own earlier rollout, superseded by a spec change. It is
        # judged like any of ours: a fix pushed while the previous release
        # crash-loops must not wait forever behind it. Healthy, it finishes
        # first: one change at a time.
        superseded = Fingerprint(primary_td.tags.get(TAG_FINGERPRINT) or primary_fp)
        failure = gates.rollout_failure(release, observed, primary, now)
        if failure is not None:
            kind, detail = failure
            failed = rollback.FailedRollout(superseded, kind, detail, primary.id)
            return rollback.on_failure(release, observed, failed, poll)
        return Wait(
            Phase.PROGRESSING,
            Reason.ROLLOUT_IN_PROGRESS,
            f"finishing the rollout of {superseded} before deploying {desired}",
            poll,
        )

    if gates.age(primary, now) > release.spec.rollout.timeout_seconds:
        return Wait(
            Phase.DEGRADED,
            Reason.FOREIGN_DEPLOYMENT,
            f"deployment {primary.id} ({short_name(primary.task_definition)}), not started "
            f"by ecsop for this spec, has not settled after {int(gates.age(primary, now))}s",
            poll,
        )
    return Wait(
        Phase.PROGRESSING,
        Reason.FOREIGN_DEPLOYMENT,
        f"waiting for deployment {primary.id} ({short_name(primary.task_definition)}), "
        "not started by ecsop for this spec, to settle",
        poll,
    )


def _when_steady(
    release: ServiceRelease,
    observed: Observation,
    primary: Deployment,
    desired: Fingerprint,
    now: datetime,
    options: Options,
) -> Action:
    service = observed.service
    running_td = observed.task_definitions.get(service.task_definition)
    running_fp = fingerprint_of(release, running_td)
    last_good = observed.last_good
    if running_td is not None:
        unknown = sorted(set(release.spec.containers) - set(running_td.images))
        if unknown:
            return Wait(
                Phase.INVALID,
                Reason.UNKNOWN_CONTAINER,
                f"spec.containers names {', '.join(unknown)}, not in the service's task "
                f"definition {short_name(running_td.arn)} "
                f"(containers: {', '.join(sorted(running_td.images))})",
                None,
            )

    if running_fp == desired:
        return _bake(release, observed, primary, desired, now, options)

    if last_good is None:
        return RecordLastGood(
            Phase.PROGRESSING,
            Reason.ADOPTED,
            f"first sight of the service: adopting {short_name(service.task_definition)} "
            "as last-good",
            0,
            task_definition=service.task_definition,
            clear_failure=False,
        )
    if observed.failed_fingerprint == desired:
        if observed.failed_reason == Failure.ROLLBACK_FAILED:
            reason, what = Reason.ROLLBACK_FAILED, "its rollback failed too"
        else:
            reason, what = (
                Reason.RELEASE_FAILED,
                f"it failed ({observed.failed_reason or 'unknown'})",
            )
        return Wait(
            Phase.DEGRADED,
            reason,
            f"release {desired} is not deployed again: {what}; change the spec or run "
            f"`ecsop retry {release.name}`",
            None,
        )
    if observed.deploying_fingerprint == desired:
        detail = (
            "ecsop deployed it, but the service no longer runs it and it never became "
            "last-good: rolled back by ECS or by hand while ecsop was not looking"
        )
        return RecordFailure(
            Phase.DEGRADED,
            Reason.RELEASE_FAILED,
            f"release {desired} failed: {detail}",
            options.active_poll_seconds,
            failed_fingerprint=desired,
            failure=Failure.ECS_ROLLBACK,
            detail=detail,
            rolled_back_by_ecs=True,
        )
    ours = service.task_definition == last_good or (
        running_td is not None and running_td.tags.get(TAG_RELEASE) == release.name
    )
    if ours:
        return _deploy(release, observed, desired, Reason.DEPLOYING, options)
    if options.self_heal:
        return _deploy(release, observed, desired, Reason.SELF_HEAL, options)
    return Wait(
        Phase.DEGRADED,
        Reason.DRIFTED,
        f"service runs {short_name(service.task_definition)}, changed outside ecsop; "
        "self-heal is off, so it is reported only",
        None,
    )


def _bake(
    release: ServiceRelease,
    observed: Observation,
    primary: Deployment,
    desired: Fingerprint,
    now: datetime,
    options: Options,
) -> Action:
    service = observed.service
    if observed.last_good == service.task_definition and observed.failed_fingerprint != desired:
        return Wait(Phase.SYNCED, Reason.IN_SYNC, f"running {desired}", None)
    rollout = release.spec.rollout
    failure: tuple[Failure, str] | None = None
    if primary.rollout_state is RolloutState.FAILED:
        failure = gates.ecs_failure(observed, primary, Failure.CIRCUIT_BREAKER)
    elif primary.failed_tasks > rollout.max_failed_tasks:
        failure = (
            Failure.FAILED_TASKS,
            f"{primary.failed_tasks} failed tasks during bake "
            f"(maxFailedTasks {rollout.max_failed_tasks})",
        )
    else:
        failure = gates.health_failure(release, observed)
    if failure is not None and observed.last_good and observed.last_good != service.task_definition:
        failed = rollback.FailedRollout(desired, failure[0], failure[1], primary.id)
        return rollback.on_failure(release, observed, failed, options.active_poll_seconds)
    baked = (now - primary.updated_at).total_seconds()
    if observed.last_good is not None and baked < rollout.bake_seconds:
        remaining = rollout.bake_seconds - baked
        return Wait(
            Phase.PROGRESSING,
            Reason.BAKING,
            f"running {desired}; baking, {int(remaining)}s of {rollout.bake_seconds}s left",
            min(options.active_poll_seconds, max(remaining, 0.1)),
        )
    if observed.last_good is not None and observed.health.unknown:
        # Every gate must be seen green before the release is called good.
        return Wait(
            Phase.PROGRESSING,
            Reason.BAKING,
            f"running {desired}; baked, waiting to judge {observed.health.unknown[0]}",
            options.active_poll_seconds,
        )
    if observed.last_good is None:
        reason = Reason.ADOPTED
        message = f"first sight of the service, already running {desired}: adopted as last-good"
    else:
        reason = Reason.BAKED
        message = f"running {desired}; healthy for {rollout.bake_seconds}s, recorded as last-good"
    return RecordLastGood(
        Phase.SYNCED,
        reason,
        message,
        None,
        task_definition=service.task_definition,
        clear_failure=observed.failed_fingerprint == desired,
    )


def _deploy(
    release: ServiceRelease,
    observed: Observation,
    desired: Fingerprint,
    reason: Reason,
    options: Options,
) -> Deploy:
    service = observed.service
    verb = "self-healing drift" if reason is Reason.SELF_HEAL else "deploying"
    last_good = observed.last_good
    reuse = None
    if last_good and fingerprint_of(release, observed.task_definitions.get(last_good)) == desired:
        reuse = last_good  # a revert: the proven revision is right there
    return Deploy(
        Phase.PROGRESSING,
        reason,
        f"{verb}: {short_name(service.task_definition)} -> {desired}",
        options.active_poll_seconds,
        fingerprint=desired,
        images=dict(release.spec.containers),
        base=service.task_definition,
        reuse=reuse,
    )
