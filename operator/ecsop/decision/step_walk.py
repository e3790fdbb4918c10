"""One pass over a release's steps of one kind: the action for the first not yet succeeded.

``ecsop.decision.steps`` decides *when* steps matter (before a deploy, in the
bake) and what a failure means for the release; this module decides what
one step needs next, from what the pass read (``Observation.steps``):

- nothing recorded, no task: ``RunStep`` (its ``started`` record first);
- a task runs: ``StepRunning``, or past its timeout ``StopStep`` (the failure
  recorded first); a task ECS is already stopping is not stopped again; a
  task whose step container exited while others run on (it is not
  ``essential``) is stopped, and recorded once stopped;
- its task stopped: ``RecordStep`` (succeeded when the step's container exited 0);
- ``started`` recorded and no task found: RunTask was not sent, or its answer
  was lost: the same RunTask again (same ``clientToken``, so never a second
  task); after ``LOST_AFTER_SECONDS`` a task can have stopped and left
  ListTasks, so the step is recorded failed instead of risking a second run;
- ``failed`` recorded: ``Failed`` (the caller says what it means), after
  stopping a task of it still running; but a failure of a definition the
  spec has changed since (its command, environment or timeout: the images,
  hence the fingerprint, unchanged) is followed by the next attempt, once
  the failed attempt's task has stopped (``StepRunning`` until then). A
  failure records the definition in force when it is recorded (``def=``),
  so only an edit made after it starts the next attempt.

Pure, like the rest of the decision.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from ecsop.decision.actions import (
    Action,
    Deploy,
    RecordStep,
    RunStep,
    StepRunning,
    StopStep,
    Wait,
)
from ecsop.decision.ecs_state import Fingerprint, TaskDefinition, short_name
from ecsop.decision.memory import (
    MAX_TAGS,
    RESERVED_TAG_PREFIX,
    REVISION_KEYS,
    TAG_PREFIX,
    StepRecord,
    StepState,
    step_tag,
    step_task_tags,
)
from ecsop.decision.reasons import Phase, Reason
from ecsop.decision.step_state import (
    MAX_ATTEMPT,
    StepKind,
    StepsSeen,
    StepTask,
    client_token,
    definition,
    describe_task,
    redefined,
    revision_name,
    started_by,
)
from ecsop.spec.model import ServiceRelease
from ecsop.spec.step import Step

LOST_AFTER_SECONDS = 50 * 60
"""A ``started`` step whose task ListTasks no longer shows is lost after this long.

ECS keeps a stopped task listed "for at least one hour" (API_ListTasks); up to
then, no task means RunTask never started one, and sending it again (same
client token) is safe. Past it, the task may have run and gone: the step is
failed rather than run twice.
"""


@dataclass(frozen=True)
class Failed:
    """A step failed (recorded): the caller says what that means for the release."""

    detail: str


class Walk:
    """One pass over the steps of one kind, in order."""

    def __init__(
        self,
        release: ServiceRelease,
        kind: StepKind,
        steps: tuple[Step, ...],
        seen: StepsSeen | None,
        fingerprint: Fingerprint,
        now: datetime,
        poll: float,
    ) -> None:
        self.release = release
        self.kind = kind
        self.steps = steps
        self.seen = seen
        self.fingerprint = fingerprint
        self.now = now
        self.poll = poll

    def unreadable(self) -> Action | None:
        if self.seen is not None and self.seen.kind is self.kind:
            return None
        return Wait(
            Phase.PROGRESSING,
            Reason.STEP_BLOCKED,
            f"{self.kind.words} steps of {self.fingerprint}: their state could not be read "
            "yet (see the log); nothing is started until it is",
            self.poll,
        )

    def next(self, deploy: Deploy | None) -> Action | Failed | None:
        seen = self.seen
        assert seen is not None
        for index, step in enumerate(self.steps):
            record = seen.records.get(step.name, StepRecord())
            if record.state is StepState.SUCCEEDED:
                continue
            tasks = seen.tasks.get(step.name, ())
            live = [task for task in tasks if not task.stopped]
            pending = tuple(s.name for s in self.steps[index:] if not _succeeded(seen, s))
            if record.state is StepState.FAILED:
                stoppable = [task for task in live if not task.stopping]
                if stoppable:
                    return self._stop(step, stoppable[0], None, f"{self._name(step)} failed")
                if redefined(record, step) and live:  # ECS is still stopping the failed one
                    return self._still_stopping(step, record, live[0])
                if redefined(record, step):  # the spec changed the step since it failed
                    return self._run(step, record.retried(), deploy, pending)
                return Failed(self._failure(step, record))
            if live:
                return self._running(step, record, live[0])
            done = [task for task in tasks if task.stopped]
            if done:
                return self._finished(step, record, done[0])
            if record.state is StepState.STARTED and self._age(record) > LOST_AFTER_SECONDS:
                why = (
                    f"started {int(self._age(record))}s ago and its task is no longer listed "
                    "by ECS; not run again without `ecsop retry`"
                )
                return self._record(step, self._ended(step, record, False, "", None, "", why), None)
            return self._run(step, record, deploy, pending)
        return None

    def failed(self) -> Failed | None:
        """The first step recorded failed (for the spec's definition of it), or None."""
        seen = self.seen
        assert seen is not None
        for step in self.steps:
            record = seen.records.get(step.name, StepRecord())
            if record.state is StepState.FAILED and not redefined(record, step):
                return Failed(self._failure(step, record))
        return None

    # --- one step ---------------------------------------------------------------------

    def _run(
        self, step: Step, record: StepRecord, deploy: Deploy | None, pending: tuple[str, ...]
    ) -> Action:
        seen = self.seen
        assert seen is not None
        target = seen.target
        blocked = self._cannot_start(step, target)
        if blocked is not None:
            return blocked
        revision = seen.revision.arn if seen.revision is not None else None
        name, attempt = self.release.name, record.attempt
        if record.state is StepState.STARTED:
            what = f"{self._name(step)} (attempt {attempt}): started before, no task seen yet"
        else:
            what = f"{self._name(step)} (attempt {attempt})"
        later = f"; then {', '.join(pending[1:])}" if len(pending) > 1 else ""
        then = f", then deploy {self.fingerprint}" if self.kind is StepKind.PRE_DEPLOY else ""
        return RunStep(
            Phase.PROGRESSING,
            Reason.RUNNING_STEP,
            f"running {what} on {revision_name(seen.revision)}: {step.container} "
            f"{' '.join(step.command)}{later}{then}",
            self.poll,
            kind=self.kind.value,
            step=step.name,
            container=step.container,
            command=tuple(step.command),
            environment=dict(step.environment),
            started_by=started_by(name, self.fingerprint, step.name, attempt),
            client_token=client_token(name, self.fingerprint, step.name, attempt),
            record=record.started(
                int(self.now.timestamp()), definition(step), step.timeout_seconds
            ),
            task_tags=step_task_tags(name, self.fingerprint, step.name, attempt),
            revision=revision,
            deploy=deploy,
            pending=pending,
            timeout_seconds=step.timeout_seconds,
        )

    def _running(self, step: Step, record: StepRecord, task: StepTask) -> Action:
        if task.exit_code is not None and not task.stopping:
            return self._stop_exited(step, task)
        elapsed = (self.now - task.created_at).total_seconds()
        # A spec edit mid-run may raise the timeout (the migration needs longer), never
        # cut a running migration short: the longer of the two holds (``limit=``).
        timeout = max(record.limit, step.timeout_seconds)
        if elapsed > timeout and not task.stopping:
            why = f"timed out after {timeout}s ({task.last_status})"
            failed = self._ended(step, record, False, task.task_id, None, "", why)
            return self._stop(step, task, failed, f"{self._name(step)} {why}")
        remaining = timeout - elapsed
        target = self.seen.target if self.seen else None
        return StepRunning(
            Phase.PROGRESSING,
            Reason.RUNNING_STEP,
            f"{self._name(step)} running on {revision_name(target)} ({describe_task(task)}, "
            f"{task.last_status}): {int(elapsed)}s of {timeout}s",
            min(self.poll, max(remaining, 0.1)),
            kind=self.kind.value,
            step=step.name,
            task=task.arn,
            elapsed_seconds=int(elapsed),
            timeout_seconds=timeout,
        )

    def _finished(self, step: Step, record: StepRecord, task: StepTask) -> Action:
        succeeded = task.exit_code == 0
        why = "" if succeeded else _why(task)
        done = self._ended(
            step, record, succeeded, task.task_id, task.exit_code, task.stop_code, why
        )
        duration = None
        if task.stopped_at is not None:
            duration = max(0.0, (task.stopped_at - task.created_at).total_seconds())
        return self._record(step, done, duration)

    def _record(self, step: Step, record: StepRecord, duration: float | None) -> Action:
        seen = self.seen
        assert seen is not None and seen.target is not None
        succeeded = record.state is StepState.SUCCEEDED
        if succeeded:
            message = f"{self._name(step)} succeeded ({_task_words(record)})"
        else:
            message = f"{self._name(step)} failed: {self._failure_words(step, record)}"
        return RecordStep(
            Phase.PROGRESSING if succeeded else Phase.DEGRADED,
            Reason.STEP_FINISHED,
            message,
            0,
            kind=self.kind.value,
            step=step.name,
            revision=seen.target.arn,
            record=record,
            outcome="succeeded" if succeeded else "failed",
            duration_seconds=duration,
        )

    def _stop(self, step: Step, task: StepTask, record: StepRecord | None, why: str) -> StopStep:
        seen = self.seen
        assert seen is not None and seen.target is not None
        ending = "failed" if record is None else "timed out"
        return StopStep(
            Phase.DEGRADED if self.kind is StepKind.PRE_DEPLOY else Phase.PROGRESSING,
            Reason.STEP_FINISHED,
            f"{why}: stopping {describe_task(task)}",
            0,
            kind=self.kind.value,
            step=step.name,
            revision=seen.target.arn,
            task_arn=task.arn,
            record=record,
            stop_reason=f"ecsop: {self.kind.words} step {step.name} {ending}",
        )

    def _still_stopping(self, step: Step, record: StepRecord, task: StepTask) -> Action:
        """A failed attempt whose task ECS is still stopping (a timeout's StopTask waits out
        the container's ``stopTimeout``; a container may ignore SIGTERM): the spec's next
        attempt waits for it, as ``ecsop retry`` does, never runs next to it."""
        target = self.seen.target if self.seen else None
        elapsed = (self.now - task.created_at).total_seconds()
        return StepRunning(
            Phase.PROGRESSING,
            Reason.STEP_BLOCKED,
            f"{self._name(step)} failed (attempt {record.attempt}) and its task on "
            f"{revision_name(target)} ({describe_task(task)}, {task.last_status}) has not "
            f"stopped yet: attempt {record.attempt + 1} waits for it",
            self.poll,
            kind=self.kind.value,
            step=step.name,
            task=task.arn,
            elapsed_seconds=int(elapsed),
            timeout_seconds=max(record.limit, step.timeout_seconds),
        )

    def _ended(
        self,
        step: Step,
        record: StepRecord,
        succeeded: bool,
        task: str,
        exit_code: int | None,
        stop_code: str,
        why: str,
    ) -> StepRecord:
        """``record`` finished, its ``def=`` the spec's definition of ``step`` now: a failure
        is of the step as the spec stands when it is recorded, so an edit made while the
        attempt ran does not start the next one; only an edit made after it does."""
        done = record.finished(succeeded, task, exit_code, stop_code, why)
        return replace(done, definition=definition(step))

    def _stop_exited(self, step: Step, task: StepTask) -> Action:
        """The step's container exited, a container it does not end runs on (the step's is
        not ``essential``): the task is stopped, its outcome recorded once it stopped
        (``_finished``: the step container's exit code, not the others')."""
        why = (
            f"{self._name(step)}: container {step.container} exited with code "
            f"{task.exit_code}, the task's other containers still run"
        )
        return replace(
            self._stop(step, task, None, why),
            phase=Phase.PROGRESSING,
            reason=Reason.RUNNING_STEP,
            stop_reason=f"ecsop: {self.kind.words} step {step.name} exited",
        )

    def _cannot_start(self, step: Step, target: TaskDefinition | None) -> Action | None:
        field = f"spec.{'preDeploy' if self.kind is StepKind.PRE_DEPLOY else 'verify'}"
        if target is not None and step.container not in target.images:
            return Wait(
                Phase.INVALID,
                Reason.STEP_BLOCKED,
                f"{field} step {step.name} names container {step.container}, not in the task "
                f"definition {short_name(target.arn)} (containers: "
                f"{', '.join(sorted(target.images))})",
                None,
            )
        record = (self.seen.records if self.seen else {}).get(step.name, StepRecord())
        if record.attempt >= MAX_ATTEMPT:
            return Wait(
                Phase.DEGRADED,
                Reason.STEP_BLOCKED,
                f"{self._name(step)} was retried {record.attempt} times; change the spec",
                None,
            )
        if target is not None:
            tags = dict(target.tags)
            if self.seen is not None and self.seen.revision is None:
                # The clone: the base's own tags, and ecsop's on the new revision.
                tags = {k: v for k, v in tags.items() if not k.startswith(TAG_PREFIX)}
                tags |= dict.fromkeys(REVISION_KEYS, "")
            tags[step_tag(step.name)] = ""
            used = sum(1 for key in tags if not key.startswith(RESERVED_TAG_PREFIX))
            if used > MAX_TAGS:
                return Wait(
                    Phase.DEGRADED,
                    Reason.STEP_BLOCKED,
                    f"{self._name(step)} cannot be recorded: the revision would carry {used} "
                    f"tags, ECS allows {MAX_TAGS}; remove {used - MAX_TAGS} of its own tags "
                    "(the task definition's tags)",
                    None,
                )
        return None

    # --- words -------------------------------------------------------------------------

    def _name(self, step: Step) -> str:
        return f"{self.kind.words} step {step.name}"

    def _failure(self, step: Step, record: StepRecord) -> str:
        return f"{self._name(step)} failed (attempt {record.attempt}): " + self._failure_words(
            step, record
        )

    def _failure_words(self, step: Step, record: StepRecord) -> str:
        parts = []
        if record.exit_code is not None:
            parts.append(f"container {step.container} exited with code {record.exit_code}")
        if record.why:
            parts.append(record.why)
        if record.stop_code:
            parts.append(f"stop code {record.stop_code}")
        target = self.seen.target if self.seen else None
        logs = target.logs.get(step.container) if target is not None else None
        if record.task:
            where = logs.where(step.container, record.task) if logs else "no log configuration"
            parts.append(f"task {record.task}; logs: {where}")
        return "; ".join(parts) or "no detail recorded"

    def _age(self, record: StepRecord) -> float:
        return self.now.timestamp() - record.at if record.at else 0.0


def _succeeded(seen: StepsSeen, step: Step) -> bool:
    record = seen.records.get(step.name)
    return record is not None and record.state is StepState.SUCCEEDED


def _why(task: StepTask) -> str:
    """ECS's words for a failed step task: stopped reason and the container's own reason."""
    parts = [p for p in (task.stopped_reason, task.container_reason) if p]
    if task.exit_code is None and not parts:
        parts.append("the container reported no exit code")
    return "; ".join(parts)


def _task_words(record: StepRecord) -> str:
    return f"task {record.task[:8]}, exit code {record.exit_code}"
