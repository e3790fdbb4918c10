"""The words of a decision: phases, reasons, failures and rollout outcomes.

Spelled one way in logs, metrics, ``/status`` and the tags ecsop writes. Each
member says which branch of ``ecsop.decision.decide`` sets it (Flux's
convention for condition reasons), so a reader of a status line can find the
code that chose it.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """One word for where a release stands; derived every pass, never stored."""

    SYNCED = "Synced"
    """The service settled on the desired release and it is proven (baked, last-good)."""
    PROGRESSING = "Progressing"
    """Deploying, rolling out, baking, or waiting for someone else's deployment."""
    DEGRADED = "Degraded"
    """Needs a person: a release failed, a rollback failed, drift reported, AWS errors."""
    ROLLING_BACK = "RollingBack"
    """ecsop's or ECS's rollback to last-good is under way."""
    SUSPENDED = "Suspended"
    """``spec.suspend`` is true: observed only."""
    INVALID = "Invalid"
    """The spec is invalid (or names containers the task definition lacks): nothing is deployed."""


class Reason(StrEnum):
    """Machine-readable causes: the status ``reason`` and the log's ``reason`` field."""

    IN_SYNC = "InSync"
    """Situation SYNCED: running the desired release, already last-good."""
    SUSPENDED = "Suspended"
    """``spec.suspend`` is true."""
    DEPLOYING = "Deploying"
    """Situation OUT_OF_DATE: steady on ecsop's revision, the spec moved on: deploy."""
    ROLLOUT_IN_PROGRESS = "RolloutInProgress"
    """Situations ROLLING_OUT and SUPERSEDED with every gate green so far."""
    BAKING = "Baking"
    """Situation BAKING: completed, every gate must stay green for ``bakeSeconds``."""
    BAKED = "Baked"
    """Situation BAKING, bake over and every gate seen green: recorded as last-good."""
    AWAITING_TASKS = "AwaitingTasks"
    """Situation BAKING with no task running (desiredCount 0): nothing is proven yet."""
    ADOPTED = "AdoptedRunningRevision"
    """Situation FIRST_SIGHT: the running revision is adopted as last-good."""
    FOREIGN_DEPLOYMENT = "ForeignDeploymentInProgress"
    """Situation FOREIGN (and NO_PRIMARY): someone else's deployment; ecsop waits."""
    ROLLING_BACK = "RollingBack"
    """A gate failed: ecsop rolls back (Rollback), or its rollback is under way."""
    ECS_ROLLING_BACK = "EcsCircuitBreakerRollingBack"
    """Situation ECS_ROLLING_BACK: ECS (breaker or deployment alarms) rolls the release back."""
    ROLLBACK_FAILED = "RollbackFailed"
    """Situation ROLLING_BACK, and the rollback itself fails: ecsop stops acting."""
    RELEASE_FAILED = "ReleaseFailed"
    """Situation FAILED_BEFORE (or a failure with automatic rollback off): Degraded."""
    NO_LAST_GOOD = "NoLastGoodRevision"
    """A rollout failed and no trusted last-good revision exists to return to."""
    DRIFTED = "Drifted"
    """Situation DRIFTED with ``--no-self-heal``: reported only."""
    SELF_HEAL = "SelfHeal"
    """Situation DRIFTED: the service was changed outside ecsop; it is put back."""
    UNKNOWN_CONTAINER = "UnknownContainer"
    """Situation UNKNOWN_CONTAINER: ``spec.containers`` names a container the revision lacks."""
    SERVICE_NOT_FOUND = "ServiceNotFound"
    """DescribeServices does not know the service (set by the reconcile pass, not decide)."""
    INVALID_SPEC = "InvalidSpec"
    """The spec file is invalid: the last valid spec is still watched, nothing is deployed."""
    MEMORY_UNAVAILABLE = "MemoryUnavailable"
    """ecsop cannot keep its memory in the service's tags (tag limit, TagResource denied)."""
    ANOTHER_INSTANCE = "AnotherInstanceActing"
    """Another ecsop instance wrote to this service since this one did: refuse to act."""
    FINALIZING = "Finalizing"
    """The spec was removed; a rollout in flight is finished (or rolled back) first."""
    REMOVED = "Removed"
    """The spec was removed and nothing is in flight: ecsop lets go of the service."""
    STRATEGY_UNSUPPORTED = "StrategyUnsupported"
    """``rollout.strategy`` cannot run on this service (CODE_DEPLOY, no advancedConfiguration)."""
    TEST_TRAFFIC_PASSED = "TestTrafficPassed"
    """Situation ROLLING_OUT paused for test traffic, every check passed: ECS continues."""
    REVERTING = "Reverting"
    """Situation SUPERSEDED and the spec went back to last-good: the rollout is stopped now."""
    RUNNING_STEP = "RunningStep"
    """``decision.steps``: a pre-deploy or verify step is started, or its task runs."""
    STEP_FINISHED = "StepFinished"
    """``decision.steps``: a step's task stopped; its outcome is recorded on the revision."""
    STEP_FAILED = "StepFailed"
    """``decision.steps``: a pre-deploy step failed: nothing is deployed until the spec
    changes or ``ecsop retry``."""
    STEP_BLOCKED = "StepBlocked"
    """``decision.steps``: a step cannot be started (its container is not in the revision,
    no room for its tag, its state unreadable, or an earlier spec's step still runs)."""
    IMAGE_NOT_FOUND = "ImageNotFound"
    """Pre-flight (``_held``): an ECR image digest of the release is not in its repository."""
    EXECUTION_ROLE_NOT_FOUND = "ExecutionRoleNotFound"
    """Pre-flight (``_held``): the task definition's execution role does not exist."""
    PREFLIGHT_UNAVAILABLE = "PreflightUnavailable"
    """Pre-flight (``_held``): an image or the execution role could not be checked (AWS error)."""
    PROMOTION_BLOCKED = "PromotionBlocked"
    """``spec.promotion`` (``_held``): an image is not yet proven by every upstream release."""
    WAITING_FOR_DEPENDENCY = "WaitingForDependency"
    """``spec.dependsOn`` (``_held``): a release this one depends on is not Synced."""
    AWAITING_APPROVAL = "AwaitingApproval"
    """``rollout.approval: manual`` (``_held``): this fingerprint has no ``ecsop approve`` yet."""
    OUTSIDE_DEPLOY_WINDOW = "OutsideDeployWindow"
    """Deploy windows (``_held``): a deny window is open, or no allow window is."""
    INVALID_POLICY = "InvalidPolicy"
    """``_held``: the policy file (``ecsop-policy.yaml``) is invalid, so no window is known."""


class Failure(StrEnum):
    """Why a rollout failed: the ``reason`` label of ``ecsop_rollbacks_total``, and memory."""

    FAILED_TASKS = "failed_tasks"
    """More failed tasks than ``rollout.maxFailedTasks`` (ECS's count, or ecsop's own)."""
    CIRCUIT_BREAKER = "circuit_breaker"
    """ECS's deployment circuit breaker marked ecsop's deployment FAILED."""
    TIMEOUT = "timeout"
    """Not completed and baked ``rollout.timeoutSeconds`` after the deployment was created."""
    ALARM = "alarm"
    """A watched CloudWatch alarm (spec or the service's deployment alarms) is in ALARM."""
    TARGET_HEALTH = "target_health"
    """The new tasks are unhealthy in their load balancer target groups."""
    HTTP_CHECK = "http_check"
    """An ``rollout.httpChecks`` request failed more often than allowed."""
    ANALYSIS = "analysis"
    """A ``rollout.analysis`` query failed more measurements in a row than allowed."""
    ECS_ROLLBACK = "ecs_rollback"
    """ECS rolled the release back itself (breaker), seen live or after the fact."""
    ROLLBACK_FAILED = "rollback_failed"
    """The rollback to last-good failed too."""
    TEST_TRAFFIC = "test_traffic"
    """A blue/green test-traffic check failed before production traffic moved."""
    VERIFY = "verify"
    """A ``spec.verify`` step failed during the bake (``decision.steps``)."""


class Outcome(StrEnum):
    """How a rollout ecsop judged ended: ``ecsop_deployments_total{outcome}``, status."""

    SUCCEEDED = "succeeded"
    """Proven: recorded as last-good after its bake."""
    ROLLED_BACK = "rolled_back"
    """Rolled back, by ecsop or by ECS."""
    FAILED = "failed"
    """Failed and not rolled back (rollback off, no last-good, or the rollback failed)."""


HELD = (
    Reason.IMAGE_NOT_FOUND,
    Reason.EXECUTION_ROLE_NOT_FOUND,
    Reason.PREFLIGHT_UNAVAILABLE,
    Reason.PROMOTION_BLOCKED,
    Reason.WAITING_FOR_DEPENDENCY,
    Reason.AWAITING_APPROVAL,
    Reason.OUTSIDE_DEPLOY_WINDOW,
    Reason.INVALID_POLICY,
)
"""Reasons a new release is held before it is deployed (``deploying.held``): the ``reason``
label of ``ecsop_release_held``."""
