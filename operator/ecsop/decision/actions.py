"""The actions the reconciler can choose, and the words status uses for them.

A decision is a value: the executor carries it out, status and metrics read
its phase and reason, tests compare it. Phase, reason and failure names are
constants here so they are spelled one way in logs, metrics and ``/status``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from ecsop.decision.ecs_state import Fingerprint, TaskDefinitionArn


class Phase(StrEnum):
    """One word for where a release stands; derived, never stored."""

    SYNCED = "Synced"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    ROLLING_BACK = "RollingBack"
    SUSPENDED = "Suspended"
    INVALID = "Invalid"


class Reason(StrEnum):
    """Machine-readable causes, used as status reasons and metric labels."""

    IN_SYNC = "InSync"
    SUSPENDED = "Suspended"
    DEPLOYING = "Deploying"
    ROLLOUT_IN_PROGRESS = "RolloutInProgress"
    BAKING = "Baking"
    BAKED = "Baked"
    ADOPTED = "AdoptedRunningRevision"
    FOREIGN_DEPLOYMENT = "ForeignDeploymentInProgress"
    ROLLING_BACK = "RollingBack"
    ECS_ROLLING_BACK = "EcsCircuitBreakerRollingBack"
    ROLLBACK_FAILED = "RollbackFailed"
    RELEASE_FAILED = "ReleaseFailed"
    NO_LAST_GOOD = "NoLastGoodRevision"
    DRIFTED = "Drifted"
    SELF_HEAL = "SelfHeal"
    UNKNOWN_CONTAINER = "UnknownContainer"
    SERVICE_NOT_FOUND = "ServiceNotFound"
    INVALID_SPEC = "InvalidSpec"


class Failure(StrEnum):
    """Why a rollout failed; the ``reason`` label of ``ecsop_rollbacks_total``."""

    FAILED_TASKS = "failed_tasks"
    CIRCUIT_BREAKER = "circuit_breaker"
    TIMEOUT = "timeout"
    ALARM = "alarm"
    TARGET_HEALTH = "target_health"
    HTTP_CHECK = "http_check"
    ECS_ROLLBACK = "ecs_rollback"
    ROLLBACK_FAILED = "rollback_failed"


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

    The executor reuses an existing revision with that fingerprint, or clones
    ``base`` with ``images`` and registers it, then calls UpdateService.
    """

    fingerprint: Fingerprint
    images: Mapping[str, str]
    base: TaskDefinitionArn
    reuse: TaskDefinitionArn | None = None
    """A known revision that already carries ``fingerprint`` (e.g. last-good on a revert)."""


@dataclass(frozen=True)
class Rollback(Action):
    """Record the failure on the service first, then point it back at ``to``."""

    to: TaskDefinitionArn
    failed_fingerprint: Fingerprint
    failure: Failure
    detail: str
    deployment_id: str = ""
    """The failed deployment, whose stopped tasks explain the failure."""
    stop_reason: str = ""
    """ECS's reason for the first failed task of that deployment, once looked up."""


@dataclass(frozen=True)
class RecordFailure(Action):
    """Remember that ``failed_fingerprint`` failed, without changing the service."""

    failed_fingerprint: Fingerprint
    failure: Failure
    detail: str
    deployment_id: str = ""
    """The failed deployment, whose stopped tasks explain the failure."""
    stop_reason: str = ""
    """ECS's reason for the first failed task of that deployment, once looked up."""
    rolled_back_by_ecs: bool = False
    """ECS itself is rolling back (circuit breaker or deployment alarms): a rollback to count."""


@dataclass(frozen=True)
class RecordLastGood(Action):
    """Tag the service with its proven-good revision (and clear a retried failure)."""

    task_definition: TaskDefinitionArn
    clear_failure: bool
