"""``ecsop retry`` for steps: the next attempt of every failed step of the desired release.

A failed step (``spec.preDeploy`` or ``spec.verify``) is run again only when a
person says so: ``ecsop retry NAME`` rewrites its record on each revision
ecsop registered for the release's desired fingerprint as the next attempt,
not started (``StepRecord.retried``). The next attempt has its own
``startedBy`` and client token, so the failed task (still listed for an hour)
is not mistaken for it. Steps that succeeded are left alone: they never run
twice for a fingerprint.

The CLI calls this before it clears the service's failed record, so a daemon
that deploys the release again at once never sees the old verify failure; and
it changes nothing while a failed step's task is still stopping (a timed-out
migration that ignores SIGTERM), so two attempts never run at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecsop.aws.ecs import EcsGateway
from ecsop.decision.ecs_state import ServiceState, short_name
from ecsop.decision.memory import (
    RevisionMemory,
    ServiceMemory,
    StepRecord,
    StepState,
    step_records,
)
from ecsop.decision.step_state import started_by
from ecsop.spec.model import ServiceRelease


@dataclass(frozen=True)
class Retried:
    revision: str
    step: str
    attempt: int
    """The attempt that runs next."""

    def __str__(self) -> str:
        return f"step {self.step} on {short_name(self.revision)} (attempt {self.attempt} next)"


@dataclass(frozen=True)
class StillStopping:
    """A failed step whose task ECS has not stopped yet (a timeout's StopTask takes up to
    the container's ``stopTimeout``): its next attempt would run next to it."""

    step: str
    task: str
    attempt: int

    def __str__(self) -> str:
        return (
            f"step {self.step}: its task {self.task[:8]} (attempt {self.attempt}) has not "
            "stopped yet; run `ecsop retry` again once it has"
        )


def clear_failed_steps(
    gateway: EcsGateway, service: ServiceState, release: ServiceRelease
) -> list[Retried] | StillStopping:
    """Make every failed step of the desired fingerprint runnable again; what was changed.

    Nothing is changed while the task of a failed step still runs (``StillStopping``):
    a migration's next attempt never runs next to the one it replaces.
    """
    if not release.spec.pre_deploy and not release.spec.verify:
        return []
    fingerprint = release.fingerprint()
    families = {gateway.task_definition(service.task_definition).family}
    last_good = ServiceMemory.read(service.tags).last_good
    if last_good is not None:
        families.add(gateway.task_definition(last_good).family)
    failed: list[tuple[str, str, StepRecord]] = []
    for family in sorted(families):
        for revision in gateway.release_revisions(family, release.name):
            if RevisionMemory.read(revision.tags).fingerprint != fingerprint:
                continue
            fresh = gateway.fresh_revision(revision.arn)
            for step, record in sorted(step_records(fresh.tags).items()):
                if record.state is StepState.FAILED:
                    failed.append((fresh.arn, step, record))
    for _, step, record in failed:
        identity = started_by(release.name, fingerprint, step, record.attempt)
        for task in gateway.step_tasks(service.cluster, identity, ""):
            if not task.stopped:
                return StillStopping(step, task.task_id, record.attempt)
    retried = []
    for arn, step, record in failed:
        next_attempt = record.retried()
        gateway.record_step(arn, step, next_attempt)
        retried.append(Retried(arn, step, next_attempt.attempt))
    return retried
