"""The reconcile decision: (release, observed service, recorded history, now) -> one action.

This is the whole of ecsop's judgement, and it is a pure function: no I/O, no
clock reads, no globals. Everything it knows arrives as frozen values (the
observation, with ecsop's memory read from its tags, the probes' signals, and
how the release stands in the spec directory), so the same inputs always give
the same decision, every branch is a table-driven unit test, and a daemon
killed at any instant resumes correctly.

It classifies first (``situation.classify``: one ``View`` naming every role),
then dispatches on the situation; ``docs/design.md`` ("The reconcile
decision") walks through every branch. Last, the spec's own state applies:
an invalid spec never deploys, and a removed release is watched until its
rollout in flight has finished, then let go.

Callers: ``ecsop.controller.reconciler.ReleaseReconciler`` (the daemon's
passes and ``ecsop plan`` alike).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from ecsop.decision import deploying, gates, in_progress, rollback, steps
from ecsop.decision.actions import (
    Action,
    Deploy,
    ForgetRollout,
    LetGo,
    RecordFailure,
    RecordLastGood,
    RunStep,
    Wait,
)
from ecsop.decision.ecs_state import short_name
from ecsop.decision.fate import Fate, fate_of
from ecsop.decision.memory import proof_tags
from ecsop.decision.observation import Observation, Options, SpecState
from ecsop.decision.pass_inputs import PassInputs
from ecsop.decision.reasons import Failure, Phase, Reason
from ecsop.decision.rollback import FailedRollout
from ecsop.decision.situation import IN_FLIGHT, Situation, View, classify
from ecsop.spec.model import ServiceRelease


def decide(
    release: ServiceRelease,
    observed: Observation,
    now: datetime,
    options: Options,
    spec: SpecState | None = None,
) -> Action:
    """Choose the one action this pass takes for ``release``."""
    view = classify(release, observed, options)
    pass_ = PassInputs(release, observed, view, now, options)
    action = _BRANCHES[view.situation](pass_)
    return _as_the_spec_stands(action, view, spec or SpecState())


# --- steady ----------------------------------------------------------------------------


def _unknown_container(p: PassInputs) -> Action:
    running = p.view.running
    assert running is not None
    unknown = sorted(set(p.release.spec.containers) - set(running.images))
    return Wait(
        Phase.INVALID,
        Reason.UNKNOWN_CONTAINER,
        f"spec.containers names {', '.join(unknown)}, not in the service's task definition "
        f"{short_name(running.arn)} (containers: {', '.join(sorted(running.images))})",
        None,
    )


def _first_sight(p: PassInputs) -> Action:
    service = p.observed.service
    blocked = deploying.memory_blocked(p)
    if blocked is not None:
        return blocked
    why = f" ({p.view.distrusted})" if p.view.distrusted else ""
    memory = p.memory.proven(
        service.arn,
        p.release.name,
        service.task_definition,
        fingerprint=p.view.running_fingerprint or None,
    )
    if p.view.running_fingerprint == p.view.desired:
        failed = p.view.memory.failed
        if failed is not None and failed.fingerprint == p.view.desired:
            memory = memory.without_failure()
        return RecordLastGood(
            Phase.SYNCED,
            Reason.ADOPTED,
            f"first sight of the service, already running {p.view.desired}: adopted as "
            f"last-good{why}",
            None,
            task_definition=service.task_definition,
            memory=memory,
        )
    return RecordLastGood(
        Phase.PROGRESSING,
        Reason.ADOPTED,
        f"first sight of the service: adopting {short_name(service.task_definition)} as "
        f"last-good{why}",
        0,
        task_definition=service.task_definition,
        memory=memory,
    )


def _synced(p: PassInputs) -> Action:
    service, desired = p.observed.service, p.view.desired
    if (
        p.view.running is not None
        and p.observed.unwritten is None
        and not p.view.memory.last_good_carries(service.arn, p.release.name, desired)
    ):
        # Memory from an earlier ecsop, or a spec edit that kept the revision in sync:
        # record what this pass read in it, once, so a restart need not read it again.
        return RecordLastGood(
            Phase.SYNCED,
            Reason.IN_SYNC,
            f"running {desired}; recorded that last-good carries it",
            None,
            task_definition=service.task_definition,
            memory=p.memory.carrying(service.arn, p.release.name, desired),
        )
    return Wait(Phase.SYNCED, Reason.IN_SYNC, f"running {desired}", None)


def _baking(p: PassInputs) -> Action:
    primary, service = p.view.judged, p.observed.service
    assert primary is not None
    verdict = gates.bake_failure(p.release, p.observed, primary)
    if verdict is not None and p.view.last_good != service.task_definition:
        failed = FailedRollout(p.view.desired, verdict, primary.id)
        return rollback.on_failure(p.release, p.view, failed, p.memory, p.poll)
    rollout = p.release.spec.rollout
    if primary.running_count == 0 or service.desired_count == 0:
        # A revision that never ran a task has proven nothing.
        return Wait(
            Phase.PROGRESSING,
            Reason.AWAITING_TASKS,
            f"running {p.view.desired} with no task (desiredCount {service.desired_count}): "
            "not proven until tasks run healthy for the bake",
            None,
        )
    if primary.running_count < primary.desired_count:
        return Wait(
            Phase.PROGRESSING,
            Reason.BAKING,
            f"running {p.view.desired}; {primary.running_count}/{primary.desired_count} tasks "
            "running, the bake starts when all are",
            p.poll,
        )
    verifying = steps.during_bake(p.release, p.observed, p.view, p.memory, p.now, p.poll)
    if verifying is not None:
        return verifying
    baked = (p.now - primary.updated_at).total_seconds()
    if baked < rollout.bake_seconds:
        remaining = rollout.bake_seconds - baked
        return Wait(
            Phase.PROGRESSING,
            Reason.BAKING,
            f"running {p.view.desired}; baking, {int(remaining)}s of {rollout.bake_seconds}s left",
            min(p.poll, max(remaining, 0.1)),
        )
    if p.observed.health.unknown:
        # Every gate must be seen green before the release is called good.
        return Wait(
            Phase.PROGRESSING,
            Reason.BAKING,
            f"running {p.view.desired}; baked, waiting to judge {p.observed.health.unknown[0]}",
            p.poll,
        )
    memory = p.memory.proven(
        service.arn,
        p.release.name,
        service.task_definition,
        fingerprint=p.view.running_fingerprint or None,
    )
    recorded = p.view.memory.failed
    if recorded is not None and recorded.fingerprint == p.view.desired:
        memory = memory.without_failure()
    return RecordLastGood(
        Phase.SYNCED,
        Reason.BAKED,
        f"running {p.view.desired}; healthy for {rollout.bake_seconds}s, recorded as last-good",
        None,
        task_definition=service.task_definition,
        memory=memory,
        proof=proof_tags(p.release.name, service.task_definition),
    )


def _failed_before(p: PassInputs) -> Action:
    failed = p.view.memory.failed
    assert failed is not None
    if failed.failure is Failure.ROLLBACK_FAILED:
        reason, what = Reason.ROLLBACK_FAILED, "its rollback failed too"
    else:
        reason, what = Reason.RELEASE_FAILED, f"it failed ({failed.failure.value})"
    return Wait(
        Phase.DEGRADED,
        reason,
        f"release {p.view.desired} is not deployed again: {what}; change the spec or run "
        f"`ecsop retry {p.release.name}`",
        None,
    )


def _gone_unseen(p: PassInputs) -> Action:
    fate = fate_of(p.release, p.observed, p.view)
    if fate.fate is Fate.REPLACED:
        return ForgetRollout(
            Phase.PROGRESSING,
            Reason.FOREIGN_DEPLOYMENT,
            f"the rollout of {p.view.desired} was {fate.detail}: someone else's deployment, "
            "not a failure of the release",
            0,
            memory=p.memory.without_rollout(),
        )
    by_ecs = fate.fate is Fate.ROLLED_BACK_BY_ECS
    if by_ecs:
        detail = (
            f"ecsop deployed it and ECS rolled it back while ecsop was not looking ({fate.detail})"
        )
    else:
        detail = (
            f"ecsop deployed it, it never became last-good, and {fate.detail}: "
            "returned to last-good by ecsop before a restart, or by a person"
        )
    return RecordFailure(
        Phase.DEGRADED,
        Reason.RELEASE_FAILED,
        f"release {p.view.desired} failed: {detail}",
        p.poll,
        failed_fingerprint=p.view.desired,
        failure=Failure.ECS_ROLLBACK,
        detail=detail,
        memory=p.memory.failed_with(p.view.desired, Failure.ECS_ROLLBACK),
        rolled_back_by_ecs=by_ecs,
        counted=by_ecs,
    )


def _out_of_date(p: PassInputs) -> Action:
    return deploying.deploy(p, Reason.DEPLOYING)


def _drifted(p: PassInputs) -> Action:
    if p.options.self_heal:
        return deploying.deploy(p, Reason.SELF_HEAL)
    return Wait(
        Phase.DEGRADED,
        Reason.DRIFTED,
        f"service runs {short_name(p.observed.service.task_definition)}, changed outside "
        "ecsop; self-heal is off, so it is reported only",
        None,
    )


def _another_instance(p: PassInputs) -> Action:
    return Wait(
        Phase.DEGRADED,
        Reason.ANOTHER_INSTANCE,
        f"ecsop instance {p.view.memory.writer} wrote this service's memory after this "
        f"instance ({p.options.instance_id}) did: two instances act on it, so this one "
        "refuses to; run a single replica (or --coordination) and restart it",
        None,
    )


def _suspended(p: PassInputs) -> Action:
    return Wait(Phase.SUSPENDED, Reason.SUSPENDED, "spec.suspend is true: observing only", None)


_BRANCHES: dict[Situation, Callable[[PassInputs], Action]] = {
    Situation.SUSPENDED: _suspended,
    Situation.ANOTHER_INSTANCE: _another_instance,
    Situation.NO_PRIMARY: in_progress.no_primary,
    Situation.ROLLING_OUT: in_progress.rolling_out,
    Situation.RESUMING_ROLLBACK: in_progress.resuming_rollback,
    Situation.ECS_ROLLING_BACK: in_progress.ecs_rolling_back,
    Situation.ROLLING_BACK: in_progress.rolling_back,
    Situation.SUPERSEDED: in_progress.superseded,
    Situation.FOREIGN: in_progress.foreign,
    Situation.UNKNOWN_CONTAINER: _unknown_container,
    Situation.FIRST_SIGHT: _first_sight,
    Situation.BAKING: _baking,
    Situation.SYNCED: _synced,
    Situation.FAILED_BEFORE: _failed_before,
    Situation.GONE_UNSEEN: _gone_unseen,
    Situation.OUT_OF_DATE: _out_of_date,
    Situation.DRIFTED: _drifted,
}


# --- the spec's own state --------------------------------------------------------------


def _as_the_spec_stands(action: Action, view: View, spec: SpecState) -> Action:
    """An invalid spec never deploys; a removed release is let go once nothing is in flight."""
    if spec.removed:
        if view.situation in IN_FLIGHT:
            note = "release removed from the spec directory; finishing its rollout first: "
            return replace(action, message=note + action.message)
        if view.situation is Situation.ANOTHER_INSTANCE:
            return action
        return LetGo(
            Phase.PROGRESSING,
            Reason.REMOVED,
            "release removed from the spec directory: no longer managed"
            + ("" if spec.claimed_elsewhere else "; ecsop's tags are removed from the service"),
            None,
            untag=not spec.claimed_elsewhere,
        )
    if not spec.problems:
        return action
    problem = spec.problems[0]
    if isinstance(action, Deploy | RunStep):
        return Wait(
            Phase.INVALID, Reason.INVALID_SPEC, f"spec is invalid, not deploying: {problem}", None
        )
    if isinstance(action, Wait) and action.phase in (Phase.SYNCED, Phase.PROGRESSING):
        return Wait(
            Phase.INVALID,
            Reason.INVALID_SPEC,
            f"spec is invalid (last valid spec still watched): {problem}",
            action.requeue_after,
        )
    if action.phase in (Phase.SYNCED, Phase.PROGRESSING):
        return replace(action, phase=Phase.INVALID, message=f"{action.message}; spec is invalid")
    return action
