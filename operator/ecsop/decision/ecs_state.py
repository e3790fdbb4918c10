"""What ecsop observes in ECS, as frozen values.

The gateway (``ecsop.aws.ecs``) turns boto3's dicts into these types and nothing
else leaves it; the decision reads them without ever seeing boto3.
Keeping them plain and immutable is what lets the decision be a pure function
that tests can feed with hand-built states.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from operator import attrgetter
from typing import Any, NewType

TaskDefinitionArn = NewType("TaskDefinitionArn", str)
Fingerprint = NewType("Fingerprint", str)


def short_name(arn: str) -> str:
    """``arn:aws:ecs:...:task-definition/api:42`` -> ``api:42``, for messages."""
    return arn.rsplit("/", 1)[-1]


class DeploymentStatus(StrEnum):
    PRIMARY = "PRIMARY"
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class RolloutState(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class Deployment:
    """One entry of ``service.deployments`` (rolling update controller)."""

    id: str
    status: DeploymentStatus
    task_definition: TaskDefinitionArn
    rollout_state: RolloutState | None
    rollout_state_reason: str
    desired_count: int
    running_count: int
    pending_count: int
    failed_tasks: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ServiceEvent:
    id: str
    created_at: datetime
    message: str


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    """One entry of ``service.loadBalancers`` that names a target group (ALB/NLB)."""

    target_group_arn: str
    container_name: str
    container_port: int
    alternate_target_group_arn: str = ""
    """``advancedConfiguration``: the second target group a traffic-shifting strategy uses."""
    production_listener_rule: str = ""
    """``advancedConfiguration``: the listener rule whose weights carry production traffic."""
    test_listener_rule: str = ""
    """``advancedConfiguration``: the listener rule of the test listener, if any."""


@dataclass(frozen=True, slots=True)
class TaskTarget:
    """Where one running task is registered in target groups, from DescribeTasks.

    ``ip`` targets (awsvpc network mode) are the task's ENI private IPv4
    address; ``instance`` targets (bridge or host mode on EC2) are the
    container instance's EC2 id with the host port bound to a container port.
    """

    task_arn: str
    started_at: datetime | None
    ips: tuple[str, ...] = ()
    instance_id: str = ""
    host_ports: Mapping[tuple[str, int], int] = field(default_factory=dict)
    """(container name, container port) -> host port."""


@dataclass(frozen=True, slots=True)
class CapacityProviderItem:
    """One entry of a service's ``capacityProviderStrategy``."""

    provider: str
    weight: int = 0
    base: int = 0


@dataclass(frozen=True, slots=True)
class AwsVpc:
    """A service's ``networkConfiguration.awsvpcConfiguration``."""

    subnets: tuple[str, ...]
    security_groups: tuple[str, ...] = ()
    assign_public_ip: str = ""


@dataclass(frozen=True, slots=True)
class TaskLaunch:
    """How a service launches its tasks: what a one-off task of its own must use too.

    Read from DescribeServices; a step's RunTask repeats it, so a migration
    runs where the service runs (same subnets, security groups, Fargate
    platform, capacity providers).
    """

    launch_type: str = ""
    """FARGATE, EC2, EXTERNAL; "" when the service uses a capacity provider strategy."""
    capacity_provider_strategy: tuple[CapacityProviderItem, ...] = ()
    platform_version: str = ""
    awsvpc: AwsVpc | None = None


@dataclass(frozen=True, slots=True)
class ServiceState:
    """One ECS service as DescribeServices (with tags) reports it."""

    arn: str
    cluster: str
    name: str
    status: str
    task_definition: TaskDefinitionArn
    desired_count: int
    running_count: int
    deployments: tuple[Deployment, ...]
    tags: Mapping[str, str] = field(default_factory=dict)
    circuit_breaker_enabled: bool = False
    circuit_breaker_rollback: bool = False
    alarm_names: tuple[str, ...] = ()
    """``deploymentConfiguration.alarms.alarmNames`` when ECS watches them (``enable``)."""
    alarm_rollback: bool = False
    """ECS rolls a deployment back by itself when one of ``alarm_names`` fires."""
    has_load_balancers: bool = False
    load_balancers: tuple[LoadBalancer, ...] = ()
    """The target-group entries of ``loadBalancers`` (Classic ELBs have none)."""
    health_check_grace_seconds: int = 0
    """``healthCheckGracePeriodSeconds``: ECS ignores ELB health this long after a task starts."""
    events: tuple[ServiceEvent, ...] = ()
    deployment_controller: str = "ECS"
    """``deploymentController.type``: ECS, CODE_DEPLOY or EXTERNAL."""
    strategy: str = "ROLLING"
    """``deploymentConfiguration.strategy``: ROLLING, BLUE_GREEN, CANARY or LINEAR."""
    deployment_configuration: Mapping[str, Any] = field(default_factory=dict)
    """``deploymentConfiguration`` as ECS reported it: what a deploy that sets the
    strategy sends back, with only the strategy's fields changed."""
    current_service_deployment: str = ""
    """``currentServiceDeployment``: the ARN of the service deployment ECS is running."""
    observed_at: datetime | None = None
    """AWS's clock when this was read (the response's Date header).

    Decisions compare deployment timestamps with this rather than the local
    clock: it is immune to skew on the daemon's host, and in the sandbox it is
    the simulator's (faster) clock.
    """
    launch: TaskLaunch = field(default_factory=TaskLaunch)
    """Launch type or capacity providers, network configuration, platform version."""

    @property
    def primary(self) -> Deployment | None:
        return next((d for d in self.deployments if d.status is DeploymentStatus.PRIMARY), None)

    def says_what(self, earlier: ServiceState) -> bool:
        """Whether this answer reports exactly what ``earlier`` did, read at another time.

        Every field but ``observed_at``, read in one C call: a resync asks this of
        every settled release, and a copy of each answer to compare cost more.
        """
        return _ANSWERED(self) == _ANSWERED(earlier)

    @property
    def account(self) -> str:
        """The AWS account id from the service ARN ("" if the ARN has none)."""
        parts = self.arn.split(":")
        return parts[4] if len(parts) > 5 else ""


_ANSWERED = attrgetter(*(f.name for f in fields(ServiceState) if f.name != "observed_at"))
"""What a DescribeServices answer reports, as a tuple: all but when it was read."""


@dataclass(frozen=True, slots=True)
class ServiceMissing:
    """DescribeServices named this service in ``failures`` or reported it INACTIVE."""

    cluster: str
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class ContainerLogs:
    """A container's ``logConfiguration``, as far as saying where its logs are goes."""

    driver: str
    group: str = ""
    """CloudWatch Logs group (awslogs ``awslogs-group``, FireLens ``log_group_name``)."""
    stream_prefix: str = ""
    """awslogs ``awslogs-stream-prefix``, FireLens ``log_stream_prefix``."""
    region: str = ""

    def where(self, container: str, task_id: str) -> str:
        """Where the logs of ``container`` in task ``task_id`` are, in words.

        awslogs names a stream ``prefix/container/task-id`` ("Using the awslogs
        log driver", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using_awslogs.html);
        FireLens tags a container's records ``<container>-firelens-<task id>``,
        and Fluent Bit's cloudwatch_logs output names the stream
        ``log_stream_prefix`` + tag.
        """
        if self.driver == "awslogs" and self.group:
            stream = f"{self.stream_prefix}/{container}/{task_id}" if self.stream_prefix else ""
            return f"CloudWatch Logs group {self.group}" + (f", stream {stream}" if stream else "")
        if self.driver == "awsfirelens" and self.group:
            stream = f"{self.stream_prefix}{container}-firelens-{task_id}"
            return f"CloudWatch Logs group {self.group}, stream {stream} (FireLens)"
        return f"log driver {self.driver}"


@dataclass(frozen=True, slots=True)
class TaskDefinition:
    """The parts of an (immutable) task definition revision the decision needs."""

    arn: TaskDefinitionArn
    family: str
    revision: int
    images: Mapping[str, str]
    """Container name -> image reference, for every container in the revision."""
    tags: Mapping[str, str] = field(default_factory=dict)
    content: str = ""
    """Hash of everything RegisterTaskDefinition would take to make this revision again,
    ecsop's own tags excepted (``ecsop.aws.taskdef.content_hash``): two revisions with
    the same content are interchangeable, whatever their family or revision number."""
    logs: Mapping[str, ContainerLogs] = field(default_factory=dict)
    """Container name -> its log configuration (containers without one are absent)."""
    execution_role: str = ""
    """``executionRoleArn`` ("" when it has none): the pre-flight checks it exists."""
