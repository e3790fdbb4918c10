"""Steps: migrations before a deploy, smoke tests in the bake, each run once per fingerprint.

A step is a one-off ECS task of the release's own revision (``spec.preDeploy``,
``spec.verify``; ``docs/design.md``, "Steps"). ``decide`` asks this module at
two points, and only there:

- ``before_deploy`` (from ``deploying.held``): a new release is deployed only
  once every pre-deploy step succeeded on the revision the deploy will point
  the service at. Rollbacks never pass here, so they never run a migration.
- ``during_bake`` (from ``decide._baking``): a deployed revision is proven only
  once every verify step succeeded on it; a failed one is a failed rollout
  (``Failure.VERIFY``), rolled back like any failed gate.

Each pass walks the steps in order (``step_walk``) and answers with one
action for the first step not yet succeeded. A ``failed`` record means
Degraded (pre-deploy) or a rollback (verify), until ``ecsop retry`` (the next
attempt) or a spec change (another fingerprint).

Pure, like the rest of the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ecsop.decision import rollback, step_walk
from ecsop.decision.actions import Action, Deploy, StopStep, Wait
from ecsop.decision.candidate import CloneSource, clone_source
from ecsop.decision.ecs_state import Fingerprint, TaskDefinitionArn
from ecsop.decision.gates import Verdict
from ecsop.decision.memory import ServiceMemory, StepState, room_for_memory
from ecsop.decision.observation import Observation, Options, fingerprint_of
from ecsop.decision.reasons import Failure, Phase, Reason
from ecsop.decision.rollback import FailedRollout
from ecsop.decision.situation import Situation, View
from ecsop.decision.step_state import Overdue, StepKind, describe_task
from ecsop.spec.model import ServiceRelease
from ecsop.spec.step import Step

STEP_SPAN_SECONDS = 86400 + 3600
"""How long after its start a step of another fingerprint may still be running
(the longest ``timeoutSeconds``, and an hour to be stopped)."""


@dataclass(frozen=True)
class StepQuery:
    """What the reconcile pass must read about a release's steps this pass."""

    kind: StepKind
    fingerprint: Fingerprint
    steps: tuple[Step, ...]
    revision: TaskDefinitionArn | None = None
    """Verify: the deployed revision."""
    source: CloneSource | None = None
    """Pre-deploy: where the deploy's revision comes from (register or reuse)."""


def query(
    release: ServiceRelease, observed: Observation, view: View, options: Options
) -> StepQuery | None:
    """The steps this pass may act on (``situation.Probe.STEPS``), or None."""
    spec = release.spec
    if view.situation in (Situation.OUT_OF_DATE, Situation.DRIFTED) and (
        spec.pre_deploy or spec.verify
    ):
        if view.situation is Situation.DRIFTED and not options.self_heal:
            return None
        if not room_for_memory(observed.service.tags) or observed.unwritten is not None:
            return None  # nothing will be deployed: ``deploying.memory_blocked``
        if _last_good_carries(release, observed, view):
            return None
        source = clone_source(release, observed, view)
        return StepQuery(StepKind.PRE_DEPLOY, view.desired, tuple(spec.pre_deploy), source=source)
    if view.situation is Situation.BAKING and spec.verify and _unproven(observed, view):
        revision = observed.service.task_definition
        return StepQuery(StepKind.VERIFY, view.desired, tuple(spec.verify), revision=revision)
    return None


def before_deploy(
    release: ServiceRelease,
    observed: Observation,
    view: View,
    now: datetime,
    poll: float,
    deploy: Deploy,
) -> Action | None:
    """What must happen before ``deploy``: the next pre-deploy step, or None when all succeeded."""
    steps = tuple(release.spec.pre_deploy)
    if _last_good_carries(release, observed, view):
        return None
    if not steps:
        return _verify_failed(release, observed, view)
    walk = step_walk.Walk(
        release, StepKind.PRE_DEPLOY, steps, observed.steps, view.desired, now, poll
    )
    blocked = walk.unreadable()
    if blocked is not None:
        return blocked
    seen = walk.seen
    assert seen is not None
    if seen.overdue:
        return _stop_overdue(seen.overdue[0])
    if seen.elsewhere:
        return Wait(
            Phase.PROGRESSING,
            Reason.STEP_BLOCKED,
            f"waiting for {seen.elsewhere[0]} to finish before running the pre-deploy steps "
            f"of {view.desired}",
            poll,
        )
    outcome = walk.next(deploy)
    if isinstance(outcome, step_walk.Failed):
        return _not_deploying(release, view, outcome)
    return outcome or _verify_failed(release, observed, view)


def _stop_overdue(overdue: Overdue) -> Action:
    """An earlier spec's step past its own timeout: recorded failed, then stopped, as
    ``step_walk`` does for the desired fingerprint's; one recorded failed, or whose
    container exited while its task runs on, is stopped without a new record."""
    task, record = overdue.task, overdue.record
    ended = record.state is StepState.FAILED or task.exit_code is not None
    why = f"timed out after {overdue.limit or record.limit}s ({task.last_status})"
    if task.exit_code is not None:
        why = f"exited with code {task.exit_code} (its task runs on)"
    elif record.state is StepState.FAILED:
        why = "failed"
    return StopStep(
        Phase.PROGRESSING,
        Reason.STEP_FINISHED,
        f"step {overdue.step} of {Fingerprint(overdue.fingerprint)} (an earlier spec) {why}: "
        f"stopping {describe_task(task)}",
        0,
        kind=StepKind.PRE_DEPLOY.value,
        step=overdue.step,
        revision=TaskDefinitionArn(overdue.revision),
        task_arn=task.arn,
        record=None if ended else record.finished(False, task.task_id, None, "", why),
        stop_reason=f"ecsop: step {overdue.step} of an earlier spec {why.split(' (')[0]}",
    )


def _verify_failed(release: ServiceRelease, observed: Observation, view: View) -> Action | None:
    """A verify step failed on the revision the deploy would use: deploying it again would
    serve production a whole rollout, only to roll it back at the bake's first pass.

    Only a revert can get here (the service's failed record names a later
    failure, else the situation is FAILED_BEFORE); unread steps deploy.
    """
    seen = observed.steps
    if not release.spec.verify or seen is None or seen.revision is None:
        return None
    walk = step_walk.Walk(
        release, StepKind.VERIFY, tuple(release.spec.verify), seen, view.desired, datetime.min, 0
    )
    failed = walk.failed()
    return _not_deploying(release, view, failed) if failed is not None else None


def _not_deploying(release: ServiceRelease, view: View, failed: step_walk.Failed) -> Action:
    return Wait(
        Phase.DEGRADED,
        Reason.STEP_FAILED,
        f"not deploying {view.desired}: {failed.detail}; fix its command, environment, "
        f"timeout or images in the spec, or run `ecsop retry {release.name}` to run the "
        "step again",
        None,
    )


def during_bake(
    release: ServiceRelease,
    observed: Observation,
    view: View,
    memory: ServiceMemory,
    now: datetime,
    poll: float,
) -> Action | None:
    """What the bake waits for: the next verify step, a rollback if one failed, or None."""
    steps = tuple(release.spec.verify)
    if not steps or not _unproven(observed, view):
        return None
    walk = step_walk.Walk(release, StepKind.VERIFY, steps, observed.steps, view.desired, now, poll)
    outcome = walk.unreadable() or walk.next(None)
    if isinstance(outcome, step_walk.Failed):
        judged = view.judged
        verdict = Verdict(Failure.VERIFY, outcome.detail)
        failed = FailedRollout(view.desired, verdict, judged.id if judged else "")
        return rollback.on_failure(release, view, failed, memory, poll)
    return outcome


def _last_good_carries(release: ServiceRelease, observed: Observation, view: View) -> bool:
    """The desired fingerprint is the proven last-good's: it ran in production already.

    A deploy back to it (a revert, a self-heal) is a return to what ran, like a
    rollback: the migrations it needs are in place, none is run.
    """
    last_good = view.last_good
    revision = observed.task_definitions.get(last_good) if last_good else None
    return fingerprint_of(release, revision) == view.desired


def _unproven(observed: Observation, view: View) -> bool:
    """Verify steps judge a revision not yet proven: never the last-good itself."""
    return view.last_good != observed.service.task_definition
