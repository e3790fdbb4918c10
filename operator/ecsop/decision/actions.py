"""The actions the decision can choose.

A decision is a value: the executor carries it out, status and metrics read
its phase and reason, tests compare it. Every action that changes ecsop's
memory carries the ``ServiceMemory`` to write, computed by the decision, so
the executor never decides what a record says, only when to write it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ecsop.decision.ecs_state import Fingerprint, TaskDefinitionArn
from ecsop.decision.memory import ServiceMemory, StepRecord
from ecsop.decision.reasons import Failure, Phase, Reason


@dataclass(frozen=True)
class Action:
    """Base of every decision: what to show, and when to look again."""

    phase: Phase
    reason: Reason
    message: str
    requeue_after: float | None
    """Seconds until the next pass; None means "on the periodic resync"."""


@dataclass(frozen=True)
class Wait(Action):
    """Change nothing."""


@dataclass(frozen=True)
class Deploy(Action):
    """Point the service at a revision carrying ``fingerprint``.

    The executor reuses ``reuse`` or another revision of this release with
    exactly the content a fresh clone of ``base`` would have, else registers
    that clone; then UpdateService; then writes ``memory`` (the rollout record).
    """

    fingerprint: Fingerprint
    images: Mapping[str, str]
    base: TaskDefinitionArn
    memory: ServiceMemory
    """Written right after UpdateService: ``deploying`` is this fingerprint."""
    reuse: TaskDefinitionArn | None = None
    """A known revision that may carry ``fingerprint`` (last-good, on a revert); reused
    only if its content is what a fresh clone of ``base`` would register."""
    deployment_configuration: Mapping[str, Any] | None = None
    """Sent with the task definition when the spec sets ``rollout.strategy``: the
    service's configuration with the strategy's fields set (``decision.strategy``)."""


@dataclass(frozen=True)
class Rollback(Action):
    """Record the failure on the service first, then point it back at ``to``."""

    to: TaskDefinitionArn
    failed_fingerprint: Fingerprint
    failure: Failure
    detail: str
    memory: ServiceMemory
    """Written before UpdateService: the failed record."""
    deployment_id: str = ""
    """The failed deployment."""
    stop_reason: str = ""
    """ECS's reason for the first failed task of that deployment, if one was read."""
    service_deployment: str = ""
    """Set for a traffic-shifting rollout still under way: ECS rolls it back
    (StopServiceDeployment ROLLBACK) instead of a new deployment of ``to``,
    sending production back to blue at once."""
    hook_id: str = ""
    """ECS waits at this pause: roll back through it (ContinueServiceDeployment)."""


@dataclass(frozen=True)
class RecordFailure(Action):
    """Remember that ``failed_fingerprint`` failed, without changing the service."""

    failed_fingerprint: Fingerprint
    failure: Failure
    detail: str
    memory: ServiceMemory
    deployment_id: str = ""
    stop_reason: str = ""
    rolled_back_by_ecs: bool = False
    """ECS itself rolled back (circuit breaker or deployment alarms): a rollback to count."""
    counted: bool = True
    """Whether this is a deployment outcome to count (False: a failure inferred after
    the fact, whose rollback, if ecsop made it, was counted when it was made)."""


@dataclass(frozen=True)
class RecordLastGood(Action):
    """Tag the service with its proven-good revision (a bake ended, or first sight)."""

    task_definition: TaskDefinitionArn
    memory: ServiceMemory
    proof: Mapping[str, str] = field(default_factory=dict)
    """Tags recording ``task_definition`` as proven (a bake ended, not an adoption),
    written on the revision before the service's last-good (``memory.proof_tags``)."""


@dataclass(frozen=True)
class ForgetRollout(Action):
    """Clear the rollout record of a release someone else's deployment replaced."""

    memory: ServiceMemory


@dataclass(frozen=True)
class Continue(Action):
    """Let a service deployment ECS holds at ecsop's pause go on (ContinueServiceDeployment)."""

    service_deployment: str
    hook_id: str


@dataclass(frozen=True)
class Revert(Action):
    """The spec went back to last-good mid-rollout: stop the rollout now, without a failure.

    Through ECS (StopServiceDeployment ROLLBACK) when ``service_deployment`` is
    set, else a deploy of ``to``; ``memory`` drops the rollout record first.
    """

    to: TaskDefinitionArn
    memory: ServiceMemory
    service_deployment: str = ""


@dataclass(frozen=True)
class LetGo(Action):
    """The release left the spec directory: stop managing the service.

    With ``untag``, ecsop's tags are removed from the service (nothing else is
    deleted or changed); without, another release manages the service now.
    """

    untag: bool


MEMORY_WRITES = (Deploy, Rollback, RecordFailure, RecordLastGood, ForgetRollout, Revert)
"""Actions that write ``memory``."""


# --- steps (``ecsop.decision.steps``) ------------------------------------------------------


@dataclass(frozen=True)
class RunStep(Action):
    """Start one attempt of a step: its record on the revision first, then RunTask.

    Pre-deploy steps carry the ``Deploy`` they precede: the executor registers
    (or reuses) its revision exactly as that deploy would, unless ``revision``
    already names it; verify steps name the deployed revision.
    """

    kind: str
    """``step_state.StepKind`` value."""
    step: str
    container: str
    command: tuple[str, ...]
    environment: Mapping[str, str]
    started_by: str
    client_token: str
    record: StepRecord
    """Written on the revision before RunTask (``state=started``)."""
    task_tags: Mapping[str, str]
    revision: TaskDefinitionArn | None = None
    deploy: Deploy | None = None
    pending: tuple[str, ...] = ()
    """This step and the steps of its kind after it that have not succeeded yet."""
    timeout_seconds: int = 0


@dataclass(frozen=True)
class RecordStep(Action):
    """A step's task stopped (or was lost): write its outcome on the revision."""

    kind: str
    step: str
    revision: TaskDefinitionArn
    record: StepRecord
    outcome: str
    """``succeeded`` or ``failed``: the ``outcome`` label of ``ecsop_steps_total``."""
    duration_seconds: float | None = None
    """From the task's creation to its stop, when both are known."""


@dataclass(frozen=True)
class StopStep(Action):
    """Stop a step's task (a timeout): its failure is written on the revision first."""

    kind: str
    step: str
    revision: TaskDefinitionArn
    task_arn: str
    record: StepRecord | None
    """None when the failure is recorded already (a stop that did not happen before)."""
    stop_reason: str
    """StopTask's ``reason``, shown in the task's ``stoppedReason``."""


@dataclass(frozen=True)
class StepRunning(Wait):
    """A step's task runs: nothing to do but look again (shown in status)."""

    kind: str = ""
    step: str = ""
    task: str = ""
    elapsed_seconds: int = 0
    timeout_seconds: int = 0


STEP_ACTIONS = (RunStep, RecordStep, StopStep)
"""Actions that change a step (and write its record on a revision)."""
