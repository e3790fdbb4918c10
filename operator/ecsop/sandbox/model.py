"""The simulated ECS resources: clusters, task definitions, services,
deployments, tasks.

Plain mutable dataclasses owned by the simulator and only touched under its
lock.  Times are simulated epoch seconds.  How they are rendered on the wire
lives in ``wire_ecs``; how they change lives in ``lifecycle`` and ``rollout``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ecsop.sandbox.behaviours import TaskPlan
from ecsop.sandbox.events import EventLog
from ecsop.sandbox.throttle import LaunchThrottle

if TYPE_CHECKING:
    from ecsop.sandbox.shift_plan import ShiftProgress


class TaskStatus(StrEnum):
    """Task lifecycle states, in order (ECS Developer Guide, "Amazon ECS task lifecycle":
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-lifecycle-explanation.html).
    The sandbox skips ACTIVATING and DEPROVISIONING, which have no observable effect here."""

    PROVISIONING = "PROVISIONING"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DEACTIVATING = "DEACTIVATING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"


PENDING_STATES = frozenset({TaskStatus.PROVISIONING, TaskStatus.PENDING})


@dataclass
class Cluster:
    arn: str
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    settings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TaskDefinition:
    arn: str
    family: str
    revision: int
    body: dict[str, Any]
    """The registration request as sent (minus tags), with ECS's container defaults."""
    registered_at: float
    tags: dict[str, str] = field(default_factory=dict)
    status: str = "ACTIVE"
    deregistered_at: float | None = None

    def container_names(self) -> list[str]:
        return [c["name"] for c in self.body["containerDefinitions"]]


@dataclass
class Container:
    name: str
    image: str
    arn: str
    essential: bool
    has_health_check: bool
    last_status: str = "PENDING"
    exit_code: int | None = None
    reason: str | None = None
    image_digest: str | None = None
    runtime_id: str | None = None
    health_status: str = "UNKNOWN"


@dataclass
class Task:
    arn: str
    id: str
    cluster_arn: str
    task_definition_arn: str
    deployment_id: str
    service_key: tuple[str, str]
    """(cluster name, service name) of the service that started it."""
    group: str
    launch_type: str
    created_at: float
    containers: list[Container]
    plan: TaskPlan
    private_ip: str
    has_health_check: bool
    """A health signal exists: a target group or a container health check."""
    last_status: TaskStatus = TaskStatus.PROVISIONING
    desired_status: str = "RUNNING"
    health_status: str = "UNKNOWN"
    healthy: bool = False
    """Passed every health check (or RUNNING, when it has none)."""
    failed: bool = False
    """Stopped for a reason that counts against the deployment (failedTasks)."""
    registered_target: bool = False
    agenda: list[tuple[float, str]] = field(default_factory=list)
    """Lifecycle steps still to happen, (due time, step), earliest first."""
    pull_started_at: float | None = None
    pull_stopped_at: float | None = None
    started_at: float | None = None
    stopping_at: float | None = None
    execution_stopped_at: float | None = None
    stopped_at: float | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    connectivity_at: float | None = None
    version: int = 1
    tags: dict[str, str] = field(default_factory=dict)
    alarms_tripped: tuple[str, ...] = ()
    target_groups: dict[str, str] = field(default_factory=dict)
    """Binding target group -> the one this task registers in, when its deployment
    uses the other of a blue/green pair (``Deployment.target_groups``)."""

    def target_group(self, binding: LoadBalancerBinding) -> str:
        return self.target_groups.get(binding.target_group_arn, binding.target_group_arn)

    @property
    def next_at(self) -> float | None:
        return self.agenda[0][0] if self.agenda else None

    def plan_step(self, at: float, step: str) -> None:
        self.agenda.append((at, step))
        self.agenda.sort()

    @property
    def alive(self) -> bool:
        """Counted by the scheduler: launched and not yet told to stop."""
        return self.desired_status == "RUNNING"


@dataclass
class Deployment:
    """One entry of ``deployments`` in DescribeServices: a task definition the
    scheduler runs, and the tasks it started."""

    id: str
    status: str
    """PRIMARY or ACTIVE (drained deployments leave the list, as on ECS)."""
    task_definition_arn: str
    created_at: float
    updated_at: float
    launch_type: str
    network_configuration: dict[str, Any] | None
    service_deployment: ServiceDeployment
    """The service deployment this deployment carries out: its own, or, for a
    rollback, the one that failed (ECS rolls back within that service deployment)."""
    revision: ServiceRevision
    rollout_state: str = "IN_PROGRESS"
    rollout_state_reason: str = ""
    failed_tasks: int = 0
    """Consecutive failures; ECS resets it when a task turns healthy."""
    rollback: bool = False
    """Started by a rollback (breaker, alarms or StopServiceDeployment): it is
    not eligible for another rollback until it is COMPLETED."""
    alarms_ignored: bool = False
    """A deployment alarm was in ALARM when it started, so ECS does not monitor
    the deployment alarms for this deployment at all."""
    bake_ends_at: float | None = None
    """Steady, and baking (deployment alarms still watched) until then."""
    stuck_logged: bool = False
    """The "unable to stop or start tasks" event was logged for this deployment."""
    target_groups: dict[str, str] = field(default_factory=dict)
    """For services with ``advancedConfiguration``: binding target group -> the target
    group this deployment's tasks register in (``traffic_shift``)."""
    desired_count: int = 0
    tasks: dict[str, Task] = field(default_factory=dict)
    """Tasks of this deployment not yet settled (settled: STOPPED, targets gone);
    settled ones move to ``Service.stopped`` so that no step walks them again."""

    def live(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.alive]

    def running_count(self) -> int:
        return sum(1 for t in self.tasks.values() if t.last_status is TaskStatus.RUNNING)

    def pending_count(self) -> int:
        return sum(1 for t in self.tasks.values() if t.last_status in PENDING_STATES)

    def drained(self) -> bool:
        """No task left running, stopping or with a target still draining."""
        return not self.tasks


@dataclass
class ServiceRevision:
    """A version of a service's configuration (DescribeServiceRevisions): what a
    deployment deploys.  Immutable once made; several deployments may share one
    (a rollback re-deploys its source revision)."""

    arn: str
    service_arn: str
    cluster_arn: str
    task_definition_arn: str
    launch_type: str
    load_balancers: list[dict[str, Any]]
    network_configuration: dict[str, Any] | None
    container_images: list[dict[str, str]]
    created_at: float
    resolved_target_groups: dict[str, str] = field(default_factory=dict)
    """Binding target group -> the one serving this revision (``resolvedConfiguration``)."""


@dataclass
class ServiceDeployment:
    """A service deployment (DescribeServiceDeployments): one request to move the
    service to a target revision, and what became of it, rollback included.

    ``strategy`` and ``lifecycle_stage`` are per deployment so that other
    strategies (blue/green, linear, canary) can drive their own stages; the
    rolling update uses SCALE_UP, BAKE_TIME and CLEAN_UP."""

    arn: str
    service_arn: str
    cluster_arn: str
    created_at: float
    target: ServiceRevision
    sources: list[tuple[ServiceRevision, Deployment]]
    """The revisions running when it was created, with the deployment running each."""
    deployment_configuration: dict[str, Any]
    strategy: str = "ROLLING"
    status: str = "PENDING"
    status_reason: str = ""
    lifecycle_stage: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    stopped_at: float | None = None
    updated_at: float = 0.0
    target_deployment: Deployment | None = None
    rollback_deployment: Deployment | None = None
    rollback_reason: str | None = None
    rollback_started_at: float | None = None
    stop_requested: str | None = None
    """ROLLBACK or ABORT, asked by StopServiceDeployment and not yet acted on."""
    stop_requested_at: float = 0.0
    breaker_triggered: bool = False
    triggered_alarms: list[str] = field(default_factory=list)
    progress: ShiftProgress | None = None
    """Blue/green, linear and canary: where the stage machine stands (``shift_plan``)."""

    @property
    def ongoing(self) -> bool:
        return self.status in ONGOING_STATUSES


ONGOING_STATUSES = frozenset(
    {"PENDING", "IN_PROGRESS", "STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"}
)
"""Service deployment states of the "Pending" and "Ongoing" stages (service-deployment.html)."""


@dataclass
class LoadBalancerBinding:
    target_group_arn: str
    container_name: str
    container_port: int
    deregistration_delay: float = 300.0
    unhealthy_after: float = 30.0
    """Seconds after RUNNING when the ELB marks a failing target ``unhealthy``."""
    advanced: dict[str, Any] | None = None
    """``advancedConfiguration`` (alternateTargetGroupArn, productionListenerRule,
    testListenerRule, roleArn), for the traffic-shifting strategies."""


@dataclass
class Service:
    arn: str
    name: str
    cluster: Cluster
    task_definition_arn: str
    desired_count: int
    deployment_configuration: dict[str, Any]
    launch_type: str
    created_at: float
    load_balancers: list[LoadBalancerBinding] = field(default_factory=list)
    network_configuration: dict[str, Any] | None = None
    health_check_grace_period: int | None = None
    scheduling_strategy: str = "REPLICA"
    propagate_tags: str = "NONE"
    enable_ecs_managed_tags: bool = False
    enable_execute_command: bool = False
    platform_version: str | None = None
    placement_constraints: list[dict[str, Any]] = field(default_factory=list)
    placement_strategy: list[dict[str, Any]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    status: str = "ACTIVE"
    deployments: list[Deployment] = field(default_factory=list)
    """PRIMARY first, then ACTIVE ones newest first."""
    events: EventLog = field(default_factory=EventLog)
    last_completed: Deployment | None = None
    """The deployment a circuit-breaker rollback returns to."""
    steady: bool = False
    wake_at: float | None = None
    crash_counts_as_failed: bool = False
    """Scenario option ``crashAfterRunningCountsAsFailed`` for this service."""
    throttle: LaunchThrottle = field(default_factory=LaunchThrottle)
    launch_not_before: float = 0.0
    """No launch before this: the throttle, or a placement retry."""
    stopped: dict[str, dict[str, Task]] = field(default_factory=dict)
    """Settled stopped tasks by deployment id, then task ARN, until retention ends."""
    service_deployments: list[ServiceDeployment] = field(default_factory=list)
    """Oldest first; the last one is ``currentServiceDeployment``."""
    notices: dict[str, float] = field(default_factory=dict)
    """Condition events logged, by condition, with when: ECS repeats one only after
    six hours while the cause lasts (service-event-messages.html)."""

    @property
    def primary(self) -> Deployment:
        return self.deployments[0]

    @property
    def key(self) -> tuple[str, str]:
        return (self.cluster.name, self.name)

    def circuit_breaker(self) -> dict[str, Any]:
        value: dict[str, Any] = self.deployment_configuration.get("deploymentCircuitBreaker", {})
        return value

    def deployment_alarms(self) -> dict[str, Any]:
        value: dict[str, Any] = self.deployment_configuration.get("alarms", {})
        return value
