"""What one reconcile pass saw: the decision's input, as frozen values.

``Observation`` bundles the service (with ecsop's tags, its memory), the task
definitions its deployments reference, and the health gates' signals. The
controller builds it (``observer.observation_of``); ``reconciler.decide`` and
``gates`` read it; tests construct it by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ecsop.decision.ecs_state import (
    TAG_DEPLOYING,
    TAG_FAILED_FINGERPRINT,
    TAG_FAILED_REASON,
    TAG_LAST_GOOD,
    Deployment,
    Fingerprint,
    RolloutState,
    ServiceState,
    TaskDefinition,
    TaskDefinitionArn,
)
from ecsop.spec import model as spec_model
from ecsop.spec.model import ServiceRelease


@dataclass(frozen=True)
class Health:
    """Signals from health probes beyond the ECS deployment (``ecsop.health``).

    Empty means "nothing known to be wrong"; the controller fills it only for
    releases that are rolling out or baking (``needs_health``).
    """

    alarms_in_alarm: tuple[str, ...] = ()
    unhealthy_targets: int = 0
    failing_http_checks: tuple[str, ...] = ()
    target_detail: str = ""
    """The first unhealthy target's reason, as the load balancer words it."""
    unknown: tuple[str, ...] = ()
    """Gates that could not be judged this pass (an AWS error, an HTTP check not yet run).

    They fail nothing, but a release is not recorded as last-good while any is unknown.
    """


@dataclass(frozen=True)
class Observation:
    """Everything one pass saw, read fresh from AWS."""

    service: ServiceState
    task_definitions: Mapping[TaskDefinitionArn, TaskDefinition]
    """At least the task definitions of every deployment of the service."""
    health: Health = field(default_factory=Health)

    @property
    def last_good(self) -> TaskDefinitionArn | None:
        value = self.service.tags.get(TAG_LAST_GOOD)
        return TaskDefinitionArn(value) if value else None

    @property
    def failed_fingerprint(self) -> Fingerprint | None:
        value = self.service.tags.get(TAG_FAILED_FINGERPRINT)
        return Fingerprint(value) if value else None

    @property
    def failed_reason(self) -> str:
        return self.service.tags.get(TAG_FAILED_REASON, "")

    @property
    def deploying_fingerprint(self) -> Fingerprint | None:
        value = self.service.tags.get(TAG_DEPLOYING)
        return Fingerprint(value) if value else None


@dataclass(frozen=True)
class Options:
    """Daemon-wide switches that change decisions."""

    self_heal: bool = True
    active_poll_seconds: float = 5.0


# --- the decision ------------------------------------------------------------------


def fingerprint_of(release: ServiceRelease, task_definition: TaskDefinition | None) -> Fingerprint:
    """The fingerprint a revision would carry for this release, from its images.

    Computed from the images rather than read from ecsop's tag, so a revision
    registered by hand with the right images counts as in sync, and a tag
    cannot claim images a revision does not have.
    """
    if task_definition is None:
        return Fingerprint("")
    images = {}
    for name in release.spec.containers:
        if name not in task_definition.images:
            return Fingerprint("")
        images[name] = task_definition.images[name]
    return Fingerprint(spec_model.fingerprint(images))


def in_progress(service: ServiceState, primary: Deployment) -> bool:
    """Whether the PRIMARY deployment is still rolling out."""
    if primary.rollout_state is RolloutState.IN_PROGRESS:
        return True
    if primary.rollout_state is None:  # services created before rolloutState existed
        return len(service.deployments) > 1 or primary.running_count != primary.desired_count
    return False
