"""What one reconcile pass saw: the decision's input, as frozen values.

``Observation`` bundles the service (whose tags hold ecsop's memory), the task
definitions its deployments reference, and what the probes read for the
gates this pass's situation needs (``ecsop.decision.situation.probes_for``):
health signals, the judged deployment's stopped tasks, the fate of a rollout
ecsop no longer sees. The reconcile pass builds it
(``ecsop.controller.reconciler``); ``decide`` reads it; tests construct it by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ecsop.decision.ecs_state import (
    Deployment,
    Fingerprint,
    RolloutState,
    ServiceState,
    TaskDefinition,
    TaskDefinitionArn,
)
from ecsop.decision.memory import ServiceMemory
from ecsop.decision.release_flow.inputs import FlowInputs
from ecsop.decision.step_state import StepsSeen
from ecsop.spec import model as spec_model
from ecsop.spec.model import ServiceRelease

if TYPE_CHECKING:  # decision.analysis reads observations: no import cycle at run time
    from ecsop.decision.analysis import AnalysisState


@dataclass(frozen=True)
class Health:
    """Signals from health probes beyond the ECS deployment (``ecsop.probes.health``).

    Empty means "nothing known to be wrong"; the pass fills it only when the
    situation judges a rollout (rolling out, superseded, baking).
    """

    alarms_in_alarm: tuple[str, ...] = ()
    alarms_firing_since: Mapping[str, datetime] = field(default_factory=dict)
    """When each alarm in ``alarms_in_alarm`` went to ALARM, where CloudWatch said."""
    unhealthy_targets: int = 0
    failing_http_checks: tuple[str, ...] = ()
    target_detail: str = ""
    """The first unhealthy target's reason, as the load balancer words it."""
    unknown: tuple[str, ...] = ()
    """Gates that could not be judged this pass (an AWS error, an HTTP check not yet run).

    They fail nothing, but a release is not recorded as last-good while any is unknown.
    """
    test_traffic: TestTraffic | None = None
    """Read only while ECS waits at ecsop's pause after moving test traffic."""
    analyses: tuple[AnalysisState, ...] = ()
    """``rollout.analysis`` gates: each one's latest measurements and where it stands
    (``ecsop.probes.analysis``). A failing one fails the rollout; one not green is
    also in ``unknown``."""


@dataclass(frozen=True)
class TestTraffic:
    """The blue/green test-traffic checks, run while ECS waits at ecsop's pause."""

    __test__ = False  # not a pytest test class, whatever its name

    passes: Mapping[str, int] = field(default_factory=dict)
    """Each check (redacted URL) -> its consecutive passes."""
    failing: tuple[str, ...] = ()
    """Checks that failed more often than allowed, with why."""
    unknown: tuple[str, ...] = ()
    """Checks that cannot be judged (a missing secret) or have no result yet."""


@dataclass(frozen=True)
class StoppedTasks:
    """The judged deployment's stopped tasks, as ECS describes them (newest first).

    Each line is ECS's own words for one task: stop code, stopped reason and
    container exit codes (``ecsop.aws.ecs_mapping.stopped_reason``).
    ``ecsop.decision.failures`` classifies them: ecsop counts failures itself
    because ECS's ``failedTasks`` misses a container that exits after reaching
    RUNNING (``docs/design.md``, "Crash loops ECS does not count").
    """

    lines: tuple[str, ...] = ()
    complete: bool = True
    """False when there were more stopped tasks than were read."""


@dataclass(frozen=True)
class ServiceDeploymentRecord:
    """One entry of ECS's service deployment history (ListServiceDeployments and
    DescribeServiceDeployments): what a tool reads to learn what happened while it
    was not looking."""

    arn: str
    status: str
    """PENDING, IN_PROGRESS, SUCCESSFUL, STOPPED, STOP_REQUESTED, ROLLBACK_REQUESTED,
    ROLLBACK_IN_PROGRESS, ROLLBACK_SUCCESSFUL or ROLLBACK_FAILED."""
    target_task_definition: TaskDefinitionArn
    created_at: datetime
    status_reason: str = ""
    rollback_reason: str = ""


@dataclass(frozen=True)
class PausedHook:
    """A ``PAUSE`` lifecycle hook ECS waits at (``AWAITING_ACTION``)."""

    hook_id: str
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Traffic:
    """The service deployment of a traffic-shifting strategy, as read this pass.

    From DescribeServiceDeployments (status, stage, hooks), DescribeServiceRevisions
    (the target group green serves from) and the listener rules' weights
    (``elbv2:DescribeRules``): where production and test traffic are.
    """

    service_deployment: str
    status: str
    """PENDING, IN_PROGRESS, SUCCESSFUL, STOPPED, ROLLBACK_REQUESTED, ..."""
    stage: str
    """``lifecycleStage``: SCALE_UP, TEST_TRAFFIC_SHIFT, PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME, ..."""
    strategy: str
    green_target_group: str = ""
    production_on_green: float | None = None
    """Percent of production traffic the new revision gets (None: unknown)."""
    test_on_green: float | None = None
    paused: PausedHook | None = None
    target_task_definition: str = ""
    stage_since: datetime | None = None
    """The service deployment's ``updatedAt``: ECS updates it when the stage changes,
    so during a bake it says when the bake began."""
    configuration: Mapping[str, Any] = field(default_factory=dict)
    """The deployment configuration the service deployment runs with (bake times)."""

    @property
    def rolling_back(self) -> bool:
        return self.status.startswith("ROLLBACK")

    @property
    def ongoing(self) -> bool:
        return self.status in ("PENDING", "IN_PROGRESS")


@dataclass(frozen=True)
class Observation:
    """Everything one pass saw, read fresh from AWS."""

    service: ServiceState
    task_definitions: Mapping[TaskDefinitionArn, TaskDefinition]
    """The task definitions of every deployment of the service, and last-good's; empty
    when ecsop's record alone settles the pass as in sync (``controller.revision_reads``):
    read the running revision's fingerprint and images through ``running_fingerprint``
    and ``running_images``."""
    health: Health = field(default_factory=Health)
    stopped: StoppedTasks | None = None
    """Read only while a rollout is judged (``situation.Probe.STOPPED_TASKS``)."""
    history: tuple[ServiceDeploymentRecord, ...] | None = None
    """The service's recent deployments, newest first; read only for situation
    GONE_UNSEEN (``situation.Probe.ROLLOUT_FATE``). None: not read, or unavailable."""
    traffic: Traffic | None = None
    """Read only for traffic-shifting strategies (``situation.Probe.TRAFFIC``)."""
    unwritten: ServiceMemory | None = None
    """Memory this process could not write to the service's tags (tag limit, access
    denied), kept in-process so the failure it records still holds until it can be."""
    written_by_this_instance: bool = False
    """This daemon process has written this service's memory since it started."""
    steps: StepsSeen | None = None
    """The release's pre-deploy or verify steps, read only when the situation may run them
    (``situation.Probe.STEPS``, ``ecsop.decision.steps.query``). None: not read."""
    flow: FlowInputs | None = None
    """What the release-flow checks read (proofs, dependencies, pre-flight, windows);
    gathered only when a deploy is pending (``release_flow.needs``), else None."""

    @property
    def memory(self) -> ServiceMemory:
        """ecsop's memory of the service: its tags, or what could not be written to them."""
        return self.unwritten or ServiceMemory.read(self.service.tags)

    def running_fingerprint(self, release: ServiceRelease) -> Fingerprint:
        """The fingerprint of the revision the service points at, for ``release``.

        From its images when this pass described it; else from ecsop's record when
        that revision is last-good and ecsop recorded it carries this release
        (``ServiceMemory.last_good_carries``): a fresh process's pass on a steady
        service describes nothing (``controller.revision_reads``). "" when neither.
        """
        running = self.task_definitions.get(self.service.task_definition)
        if running is not None:
            return fingerprint_of(release, running)
        if self._runs_release(release):
            return Fingerprint(release.fingerprint())
        return Fingerprint("")

    def running_images(self, release: ServiceRelease) -> Mapping[str, str] | None:
        """The release's containers' images in the revision the service points at.

        When ecsop's record vouches that revision carries the release, they are the
        spec's own: the fingerprint is a hash of exactly those. None: not known.
        """
        running = self.task_definitions.get(self.service.task_definition)
        if running is not None:
            return {c: running.images[c] for c in release.spec.containers if c in running.images}
        return dict(release.spec.containers) if self._runs_release(release) else None

    def _runs_release(self, release: ServiceRelease) -> bool:
        service, memory = self.service, self.memory
        return service.task_definition == memory.last_good and memory.last_good_carries(
            service.arn, release.name, Fingerprint(release.fingerprint())
        )


@dataclass(frozen=True)
class Options:
    """Daemon-wide switches that change decisions."""

    self_heal: bool = True
    active_poll_seconds: float = 5.0
    instance_id: str = ""
    """This daemon process, as written in ``ecsop:state`` (``writer=``)."""


@dataclass(frozen=True)
class SpecState:
    """How the release stands in the spec directory, beyond its (last valid) spec."""

    problems: tuple[str, ...] = ()
    """The current spec file's errors: the last valid spec is watched, nothing deployed."""
    removed: bool = False
    """The release left the directory: finish what is in flight, then let go."""
    claimed_elsewhere: bool = False
    """Another release now manages the same service: let go without removing tags."""


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
