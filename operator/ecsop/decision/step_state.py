"""What a pass saw of a release's steps, and the names that make each run findable.

A step (``spec.preDeploy``, ``spec.verify``) is a one-off ECS task of the
release's own revision. Exactly once per fingerprint rests on two facts kept
in AWS, never in the daemon:

- the step's **record** on the revision it runs on (``memory.StepRecord``,
  tag ``ecsop:step:NAME``), written before RunTask and when the task ends;
- the task's **startedBy**, which names the release, fingerprint, step and
  attempt (``started_by``), so ListTasks finds a task a killed daemon started,
  and RunTask's **clientToken** (``client_token``), so a RunTask whose answer
  was lost returns the task it started instead of starting another
  ("Ensuring idempotency", https://docs.aws.amazon.com/AmazonECS/latest/APIReference/ECS_Idempotency.html:
  a client token is valid for 24 hours).

``StepsSeen`` is what the reconcile pass read (``ecsop.controller.step_probe``)
and ``ecsop.decision.steps`` decides from. Pure values; no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ecsop.decision.ecs_state import Fingerprint, TaskDefinition, short_name
from ecsop.decision.memory import StepRecord, StepState
from ecsop.spec.step import Step

STARTED_BY_MAX = 36
"""ECS's limit on ``startedBy`` (the StartTask reference; RunTask's model now says 128)."""
CLIENT_TOKEN_MAX = 64
"""RunTask's limit on ``clientToken`` (API_RunTask)."""
MAX_ATTEMPT = 9999
"""Attempts of one step (``ecsop retry`` adds one): what ``startedBy`` has room for."""


class StepKind(StrEnum):
    """When a step runs."""

    PRE_DEPLOY = "pre_deploy"
    """``spec.preDeploy``: on the new revision, before UpdateService."""
    VERIFY = "verify"
    """``spec.verify``: on the deployed revision, once its rollout completed, in the bake."""

    @property
    def words(self) -> str:
        return "pre-deploy" if self is StepKind.PRE_DEPLOY else "verify"


@dataclass(frozen=True)
class StepTask:
    """One task of a step, as DescribeTasks reports it."""

    arn: str
    last_status: str
    desired_status: str
    created_at: datetime
    stopped_at: datetime | None = None
    exit_code: int | None = None
    """The step container's exit code (None until it exited, or when it never started)."""
    stop_code: str = ""
    stopped_reason: str = ""
    container_reason: str = ""
    """The step container's own ``reason`` (CannotStartContainerError, OutOfMemoryError, ...)."""

    @property
    def task_id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    @property
    def stopped(self) -> bool:
        """Over: its exit codes are final (STOPPING is not yet)."""
        return self.last_status == "STOPPED"

    @property
    def stopping(self) -> bool:
        """ECS is stopping it (its container exited, or StopTask): stopping it again is moot."""
        return self.desired_status == "STOPPED"


@dataclass(frozen=True)
class Overdue:
    """A step of an earlier spec whose task still runs past the timeout it was started with.

    Nobody else enforces it: the spec that set it moved on (a new commit, a revert).
    """

    revision: str
    """The revision its record is on."""
    step: str
    fingerprint: str
    record: StepRecord
    task: StepTask
    limit: int = 0
    """The timeout it is held to: the longer of its ``record.limit`` and the current spec's
    ``timeoutSeconds`` for the step of that name (a timeout raised with new images)."""


@dataclass(frozen=True)
class StepsSeen:
    """One pass's reading of a release's steps of one kind."""

    kind: StepKind
    fingerprint: Fingerprint
    revision: TaskDefinition | None
    """The revision the steps run on, its tags read fresh; None: not registered yet."""
    base: TaskDefinition | None = None
    """For pre-deploy steps, the revision a clone would copy (its containers, logs, tags)."""
    records: Mapping[str, StepRecord] = field(default_factory=dict)
    """Step name -> record: the revision's own, and successes of the same release and
    fingerprint recorded on its other revisions (a revert that registers a new one)."""
    tasks: Mapping[str, tuple[StepTask, ...]] = field(default_factory=dict)
    """Step name -> its tasks for the recorded attempt, oldest first; read for the first
    step not yet succeeded only."""
    elsewhere: tuple[str, ...] = ()
    """Steps of this release for another fingerprint (an earlier spec) still running."""
    overdue: tuple[Overdue, ...] = ()
    """Those of them past their own timeout: stopped before anything else."""

    @property
    def target(self) -> TaskDefinition | None:
        """What the steps' containers and logs are read from."""
        return self.revision or self.base


def started_by(release: str, fingerprint: str, step: str, attempt: int) -> str:
    """The ``startedBy`` of one attempt of one step: ``ecsop-FINGERPRINT-HASH-ATTEMPT``.

    The fingerprint is spelled out (a person finds the tasks of a release in
    the console by it); the hash binds the release and step names; at most
    ``STARTED_BY_MAX`` characters of ``[A-Za-z0-9_/-]``.
    """
    digest = hashlib.sha256(f"{release}\n{step}".encode()).hexdigest()[:8]
    value = f"ecsop-{fingerprint[:16]}-{digest}-{min(attempt, MAX_ATTEMPT)}"
    assert len(value) <= STARTED_BY_MAX
    return value


def client_token(release: str, fingerprint: str, step: str, attempt: int) -> str:
    """RunTask's idempotency token for one attempt of one step.

    Not bound to the revision: should a resent RunTask name another revision
    (the clone's base changed in between), ECS answers ConflictException
    rather than start a second task for the same attempt.
    """
    digest = hashlib.sha256(f"{release}\n{fingerprint}\n{step}\n{attempt}".encode())
    return f"ecsop-step-{digest.hexdigest()[:40]}"


def definition(step: Step) -> str:
    """A short digest of what one run of ``step`` is: container, command, environment, timeout.

    Kept in the step's record (``def=``), so a failure recorded for another
    definition (the command fixed in the spec, the timeout raised; the images,
    hence the fingerprint, unchanged) is not taken for the current step's. A
    digest, never the values: the environment may hold what must not be shown.
    """
    text = json.dumps([step.override(), step.timeout_seconds], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def redefined(record: StepRecord, step: Step) -> bool:
    """``record`` failed a definition of ``step`` that the spec has changed since."""
    changed = bool(record.definition) and record.definition != definition(step)
    return changed and record.state is StepState.FAILED


def describe_task(task: StepTask) -> str:
    """``task 0f1e2d3c`` for messages: the first eight characters of its id."""
    return f"task {task.task_id[:8]}"


def revision_name(revision: TaskDefinition | None) -> str:
    return short_name(revision.arn) if revision is not None else "the new revision"
