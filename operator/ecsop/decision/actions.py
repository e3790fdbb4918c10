"""The actions the decision can choose.

A decision is a value: the executor carries it out, status and metrics read
its phase and reason, tests compare it. Every action that changes ecsop's
memory carries the ``ServiceMemory`` to write, computed by the decision, so
the executor never decides what a record says, only when to write it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ecsop.decision.ecs_state import Fingerprint, TaskDefinitionArn
from ecsop.decision.memory import ServiceMemory
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
class LetGo(Action):
    """The release left the spec directory: stop managing the service.

    With ``untag``, ecsop's tags are removed from the service (nothing else is
    deleted or changed); without, another release manages the service now.
    """

    untag: bool


MEMORY_WRITES = (Deploy, Rollback, RecordFailure, RecordLastGood, ForgetRollout)
"""Actions that write ``memory``."""
