"""Reading a release's steps for the decision: the revision they run on, its records, tasks.

Called by the reconcile pass when the situation may run steps
(``situation.Probe.STEPS``); ``ecsop.decision.steps.query`` says which ones.
What is read, and why each read:

- **The revision.** Verify steps run on the deployed revision. Pre-deploy
  steps run on the revision the deploy will point the service at: the same
  lookups the deploy makes (``decision.candidate``: reuse, else the revision
  ecsop registered for this release with the same content), without
  registering (that is ``RunStep``'s first act); none yet means no record.
- **Its records**, from its tags read fresh (``ecsop retry`` may have cleared one
  from another process), and, for a step it has none of, a success recorded
  on another revision of the same release and fingerprint (a revert that
  registered a new revision does not run its migration again).
- **Tasks**, by the attempt's ``startedBy``, for the first step not yet
  succeeded only: the steps run in order.
- **An earlier spec's step still running** (pre-deploy only, when nothing of
  this fingerprint runs): a migration of the previous fingerprint must end
  before the next one starts.

A release with verify steps only is read before a deploy too: a verify step
recorded failed on the revision the deploy would use holds it
(``steps.before_deploy``).

An AWS error leaves the steps unread: the decision then starts nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import structlog

from ecsop.aws.clients import AwsError
from ecsop.aws.ecs import EcsGateway
from ecsop.decision import steps
from ecsop.decision.ecs_state import Fingerprint, TaskDefinition
from ecsop.decision.memory import RevisionMemory, StepRecord, StepState, step_records
from ecsop.decision.observation import Observation, Options
from ecsop.decision.situation import View
from ecsop.decision.step_state import (
    Overdue,
    StepKind,
    StepsSeen,
    StepTask,
    describe_task,
    redefined,
    started_by,
)
from ecsop.spec.loader import LoadedRelease
from ecsop.spec.step import Step

log = structlog.get_logger("ecsop.controller.steps")


def read(
    loaded: LoadedRelease,
    gateway: EcsGateway,
    observation: Observation,
    view: View,
    options: Options,
    commit: str | None,
    now: datetime,
) -> Observation:
    """``observation`` with its ``steps`` read, when this pass may act on steps."""
    query = steps.query(loaded.release, observation, view, options)
    if query is None:
        return observation
    try:
        seen = _Reader(loaded, gateway, observation, query, commit, now).read()
    except AwsError as error:
        log.warning(
            "could not read the release's steps; none is started",
            release=loaded.name,
            kind=query.kind.value,
            error=f"{error.code}: {error.message}",
        )
        return observation
    return replace(observation, steps=seen)


class _Reader:
    def __init__(
        self,
        loaded: LoadedRelease,
        gateway: EcsGateway,
        observation: Observation,
        query: steps.StepQuery,
        commit: str | None,
        now: datetime,
    ) -> None:
        self.release = loaded.release
        self.gateway = gateway
        self.cluster = observation.service.cluster
        self.query = query
        self.commit = commit
        self.now = now

    def read(self) -> StepsSeen:
        query = self.query
        base = None
        arn: str | None = query.revision
        if query.source is not None:
            base = self.gateway.task_definition(query.source.base)
            arn = self._candidate()
        revision = self.gateway.fresh_revision(arn) if arn else None
        target = revision or base
        family = target.family if target is not None else ""
        records = step_records(revision.tags) if revision is not None else {}
        first = _first_pending(query.steps, records)
        if first is not None and records.get(first.name, StepRecord()).state is None:
            for name, success in self._successes_elsewhere(family, revision).items():
                if records.get(name, StepRecord()).state is None:
                    records[name] = success
            first = _first_pending(query.steps, records)
        tasks: dict[str, tuple[StepTask, ...]] = {}
        running = False
        record = records.get(first.name, StepRecord()) if first is not None else None
        if first is not None and record is not None and not self._settled(record):
            found = self.gateway.step_tasks(
                self.cluster,
                started_by(self.release.name, query.fingerprint, first.name, record.attempt),
                first.container,
            )
            tasks[first.name] = found
            running = any(not task.stopped for task in found)
        elsewhere: tuple[str, ...] = ()
        overdue: tuple[Overdue, ...] = ()
        about_to_start = record is None or record.state in (None, StepState.STARTED)
        if first is not None and record is not None and redefined(record, first):
            about_to_start = True  # its next attempt (``step_walk``)
        if query.kind is StepKind.PRE_DEPLOY and query.steps and about_to_start and not running:
            elsewhere, overdue = self._running_elsewhere(family) if family else ((), ())
        return StepsSeen(
            kind=query.kind,
            fingerprint=query.fingerprint,
            revision=revision,
            base=base,
            records=records,
            tasks=tasks,
            elsewhere=elsewhere,
            overdue=overdue,
        )

    def _settled(self, record: StepRecord) -> bool:
        """A failure old enough that no task of it can still run: nothing to look for."""
        old = self.now.timestamp() - record.at > steps.STEP_SPAN_SECONDS
        return record.state is StepState.FAILED and old

    def _candidate(self) -> str | None:
        """The revision the deploy would use, if it exists yet (``executor._revision_for``)."""
        source = self.query.source
        assert source is not None
        clone = self.gateway.prepare_clone(
            source.base,
            dict(self.release.spec.containers),
            self.release.name,
            self.query.fingerprint,
            self.commit,
        )
        if source.reuse is not None and self.gateway.reusable(source.reuse, clone):
            return source.reuse
        return self.gateway.find_revision(clone)

    def _siblings(self, family: str) -> list[TaskDefinition]:
        return self.gateway.release_revisions(family, self.release.name) if family else []

    def _successes_elsewhere(
        self, family: str, revision: TaskDefinition | None
    ) -> dict[str, StepRecord]:
        """Successes of this release's steps for this fingerprint on its other revisions."""
        found: dict[str, StepRecord] = {}
        for sibling in self._siblings(family):
            if revision is not None and sibling.arn == revision.arn:
                continue
            if RevisionMemory.read(sibling.tags).fingerprint != self.query.fingerprint:
                continue
            for name, record in step_records(sibling.tags).items():
                if record.state is StepState.SUCCEEDED:
                    found.setdefault(name, record)
        return found

    def _running_elsewhere(self, family: str) -> tuple[tuple[str, ...], tuple[Overdue, ...]]:
        """This release's steps of other fingerprints whose task still runs, and those of
        them past their timeout (or failed, or their container exited, and not yet stopped).

        The timeout is the longer of the one it was started with (``limit=``) and the
        current spec's for the step of that name: a timeout raised with new images (a new
        fingerprint) lets the running migration finish, as ``step_walk`` does for an edit
        that keeps the images."""
        timeouts = {step.name: step.timeout_seconds for step in self.query.steps}
        running, overdue = [], []
        for sibling in self._siblings(family):
            fingerprint = RevisionMemory.read(sibling.tags).fingerprint
            if fingerprint is None or fingerprint == self.query.fingerprint:
                continue
            for name, record in step_records(sibling.tags).items():
                recent = self.now.timestamp() - record.at < steps.STEP_SPAN_SECONDS
                ended = record.state not in (StepState.STARTED, StepState.FAILED)
                if ended or not recent:
                    continue
                tasks = self.gateway.step_tasks(
                    self.cluster,
                    started_by(self.release.name, fingerprint, name, record.attempt),
                    "",
                )
                live = [task for task in tasks if not task.stopped]
                if not live:
                    continue
                task = live[0]
                running.append(
                    f"step {name} of {Fingerprint(fingerprint)} (an earlier spec, "
                    f"{describe_task(task)})"
                )
                elapsed = (self.now - task.created_at).total_seconds()
                failed = record.state is StepState.FAILED
                limit = max(record.limit, timeouts.get(name, 0)) if record.limit else 0
                late = bool(limit) and elapsed > limit
                exited = task.exit_code is not None  # its container is not essential
                if not task.stopping and (failed or late or exited):
                    found = Overdue(sibling.arn, name, fingerprint, record, task, limit)
                    overdue.append(found)
        return tuple(running), tuple(overdue)


def _first_pending(all_steps: tuple[Step, ...], records: dict[str, StepRecord]) -> Step | None:
    for step in all_steps:
        record = records.get(step.name)
        if record is None or record.state is not StepState.SUCCEEDED:
            return step
    return None
