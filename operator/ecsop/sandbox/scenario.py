"""The scenario file: what the sandbox starts with and how each image behaves.

A scenario names the region, the simulated clock speed, the random seed, the
behaviour of every container image the simulated ECS may be asked to run, the
CloudWatch alarms, the clusters and services that exist at start, and the API
faults to inject.  The format is documented for users in ``docs/sandbox.md``.

Task definitions and deployment configurations are written exactly as the ECS
API takes them (``RegisterTaskDefinition`` / ``DeploymentConfiguration``
fields, camelCase); their keys are checked against botocore's service model
rather than a hand-written list, so every field the real API accepts works
here and a typo is an error naming the field.

Many services can be declared at once with ``count`` (for benchmarks): the
entry ``api: {count: 1000, ...}`` creates ``api-0001`` ... ``api-1000`` sharing
one task definition revision (or each in a family of its own, with
``familyPerService``).  Tests may also build ``Scenario`` objects in Python
directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from ecsop.sandbox import traffic_config
from ecsop.sandbox.scenario_extras import CommandBehaviour, EventsOptions, MetricsOptions

Behavior = Literal["healthy", "crashloop", "unhealthy", "pull-error", "slow", "flaky", "alarm"]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


class ImageBehaviour(_Model):
    """What a container running this image does once ECS starts it."""

    behavior: Behavior
    start_seconds: float | None = Field(default=None, ge=0)
    """Seconds from RUNNING until health checks pass (default 5; 90 for ``slow``).
    A task with no health check at all has nothing to pass, so for such tasks
    these seconds delay RUNNING instead (a slow start)."""
    exit_code: int = 1
    """Exit code of the essential container for ``crashloop`` and ``flaky``."""
    crash_after_seconds: float = Field(default=5.0, ge=0)
    """Seconds a ``crashloop`` (or unlucky ``flaky``) container runs before it exits."""
    fail_rate: float = Field(default=0.5, ge=0, le=1)
    """For ``flaky``: the fraction of tasks that crash (drawn from the seeded RNG)."""
    alarm: str | None = None
    """For ``alarm``: the CloudWatch alarm this image trips while it serves.
    ``{cluster}`` and ``{service}`` are replaced, e.g. ``api-{cluster}-5xx``."""
    health_check_codes: str = "[500]"
    """For ``unhealthy``: the codes quoted in the ELB health check failure."""
    error_rate: float | None = Field(default=None, ge=0, le=1)
    """Fraction of requests a serving task answers with 500 (its metrics endpoint
    and CloudWatch metrics, ``app_metrics``); set, or ``latencyMs``, to instrument."""
    latency_ms: float | None = Field(default=None, gt=0)
    """p99 request latency in milliseconds (log-normal, median p99 / 4)."""
    requests_per_second: float | None = Field(default=None, gt=0)
    """Requests per simulated second per serving task (default ``metrics.requestsPerSecond``)."""

    @field_validator("alarm")
    @classmethod
    def _alarm_template(cls, value: str | None) -> str | None:
        if value is not None:
            value.format(cluster="c", service="s")  # fail early on a bad template
        return value

    @model_validator(mode="after")
    def _alarm_named(self) -> Self:
        if self.behavior == "alarm" and not self.alarm:
            raise ValueError("behavior 'alarm' needs 'alarm': the alarm name (template)")
        return self

    @property
    def effective_start_seconds(self) -> float:
        if self.start_seconds is not None:
            return self.start_seconds
        return 90.0 if self.behavior == "slow" else 5.0


class AdvancedLoadBalancing(_Model):
    """Blue/green resources the sandbox creates next to the target group: an
    alternate target group, an internal ALB with a production listener and rule
    and, with ``testListener``, a test listener and rule (``listener_rules``).
    ``advancedConfiguration: true`` takes the defaults."""

    test_listener: bool = False
    production_port: int = Field(default=80, ge=1, le=65535)
    test_port: int = Field(default=8080, ge=1, le=65535)
    role_arn: str | None = None
    """The ``roleArn`` shown in ``advancedConfiguration`` (IAM is not modelled)."""
    local_production_port: int | None = Field(default=None, ge=1, le=65535)
    """Port of 127.0.0.1 where the sandbox serves the production listener as HTTP
    (``listener_endpoints``); default: any free port (``GET /_sandbox/listeners``)."""
    local_test_port: int | None = Field(default=None, ge=1, le=65535)
    """The same for the test listener: a spec's test-traffic checks can name it."""


class LoadBalancer(_Model):
    """Put the service behind a target group the sandbox creates (target type ip)."""

    container_name: str
    container_port: int = Field(ge=1, le=65535)
    deregistration_delay_seconds: float = Field(default=300, ge=0)
    """How long a stopped task's target stays ``draining`` (the ELB default is 300)."""
    unhealthy_after_seconds: float = Field(default=30, ge=0)
    """For images that fail health checks: seconds from RUNNING until the target is
    ``unhealthy`` (ALB defaults: 30 s interval x 2 unhealthy checks = 60 s)."""
    advanced_configuration: bool | AdvancedLoadBalancing = False
    """For BLUE_GREEN, LINEAR and CANARY: ``true`` (or the options) makes the sandbox
    create the alternate target group, listeners and rules and name them in
    ``loadBalancers[].advancedConfiguration``."""

    @property
    def advanced(self) -> AdvancedLoadBalancing | None:
        if isinstance(self.advanced_configuration, AdvancedLoadBalancing):
            return self.advanced_configuration
        return AdvancedLoadBalancing() if self.advanced_configuration else None


class ServiceSpec(_Model):
    desired_count: int = Field(ge=0)
    task_definition: dict[str, Any]
    deployment_configuration: dict[str, Any] = Field(default_factory=dict)
    load_balancer: LoadBalancer | None = None
    health_check_grace_period_seconds: int | None = Field(default=None, ge=0)
    launch_type: Literal["FARGATE", "EC2", "EXTERNAL"] = "FARGATE"
    tags: dict[str, str] = Field(default_factory=dict)
    count: int = Field(default=1, ge=1)
    """More than 1: create ``<name>-0001`` ... sharing one task definition revision."""
    family_per_service: bool = False
    """With ``count``: each service gets a revision of its own family,
    ``<family>-<service name>``, as in most fleets (one family per service)."""
    crash_after_running_counts_as_failed: bool | None = None
    """Overrides the scenario-wide ``crashAfterRunningCountsAsFailed`` for this service."""
    network_configuration: dict[str, Any] | None = None
    """ECS ``NetworkConfiguration``, as CreateService takes it. ECS requires one for an
    ``awsvpc`` task definition; left out, such a service gets ``default_network``."""

    @field_validator("network_configuration")
    @classmethod
    def _network_configuration(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            _check_keys(value, "NetworkConfiguration", "networkConfiguration")
            awsvpc = value.get("awsvpcConfiguration")
            if not isinstance(awsvpc, dict) or not awsvpc.get("subnets"):
                raise ValueError("networkConfiguration.awsvpcConfiguration.subnets is required")
            _check_keys(awsvpc, "AwsVpcConfiguration", "networkConfiguration.awsvpcConfiguration")
        return value

    def network(self, cluster: str) -> dict[str, Any] | None:
        """The service's network configuration: given, or the default for ``awsvpc``."""
        if self.network_configuration is not None:
            return self.network_configuration
        if self.task_definition.get("networkMode") != "awsvpc":
            return None
        return default_network(cluster)

    @field_validator("task_definition")
    @classmethod
    def _task_definition(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_keys(value, "RegisterTaskDefinitionRequest", "taskDefinition")
        for required in ("family", "containerDefinitions"):
            if required not in value:
                raise ValueError(f"taskDefinition.{required} is required")
        if not isinstance(value["containerDefinitions"], list) or not value["containerDefinitions"]:
            raise ValueError("taskDefinition.containerDefinitions must be a non-empty list")
        for container in value["containerDefinitions"]:
            if (
                not isinstance(container, dict)
                or "name" not in container
                or ("image" not in container)
            ):
                raise ValueError("every container definition needs 'name' and 'image'")
        return value

    @field_validator("deployment_configuration")
    @classmethod
    def _deployment_configuration(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_keys(value, "DeploymentConfiguration", "deploymentConfiguration")
        traffic_config.check_deployment_configuration(value)
        return value

    @model_validator(mode="after")
    def _lb_container(self) -> Self:
        if self.load_balancer is not None:
            names = {c["name"] for c in self.task_definition["containerDefinitions"]}
            if self.load_balancer.container_name not in names:
                raise ValueError(
                    f"loadBalancer.containerName {self.load_balancer.container_name!r} "
                    f"is not a container of the task definition ({sorted(names)})"
                )
        if (
            traffic_config.shifts_traffic(self.deployment_configuration)
            and self.load_balancer is not None
            and self.load_balancer.advanced is None
        ):
            raise ValueError(
                f"deploymentConfiguration.strategy "
                f"{traffic_config.strategy_of(self.deployment_configuration)} shifts traffic "
                "between two target groups: give loadBalancer.advancedConfiguration "
                "(true, or {testListener: true})"
            )
        return self

    def task_definition_of(self, service: str) -> dict[str, Any]:
        """The task definition service ``service`` (one of ``instance_names``) starts on."""
        if not self.family_per_service:
            return self.task_definition
        return {**self.task_definition, "family": f"{self.task_definition['family']}-{service}"}

    def instance_names(self, name: str) -> list[str]:
        if self.count == 1:
            return [name]
        width = max(4, len(str(self.count)))
        return [f"{name}-{i:0{width}d}" for i in range(1, self.count + 1)]


class Capacity(_Model):
    """What the cluster can place (EC2 container instances, or Fargate capacity)."""

    max_tasks: int | None = Field(default=None, ge=0)
    """Tasks the cluster can run at once, every service together (None: unlimited).
    A launch past it fails to place, with ECS's placement event, and counts as a
    failed task of the deployment; the control API changes it at run time."""


class HookBehaviour(_Model):
    """What a lifecycle hook's Lambda function answers when ECS invokes it."""

    behavior: Literal["succeed", "fail", "error"] = "succeed"
    """Its final ``hookStatus``: SUCCEEDED, FAILED, or ``error``: no valid hookStatus
    (a crash or a timeout of the function), which rolls back like FAILED."""
    in_progress_seconds: float = Field(default=0, ge=0)
    """It answers IN_PROGRESS until this long after its first invocation at a stage."""
    call_back_delay_seconds: float = Field(default=30, ge=1)
    """The ``callBackDelay`` it returns with IN_PROGRESS: when ECS invokes it again."""


class ClusterSpec(_Model):
    services: dict[str, ServiceSpec] = Field(default_factory=dict)
    capacity: Capacity = Field(default_factory=Capacity)


class OperationFaults(_Model):
    throttle_rate: float = Field(default=0.0, ge=0, le=1)
    """Fraction of calls answered with a throttling error (HTTP 400)."""
    error_rate: float = Field(default=0.0, ge=0, le=1)
    """Fraction of calls answered with HTTP 500 or 503 (half each)."""
    lost_answer_rate: float = Field(default=0.0, ge=0, le=1)
    """Fraction of calls carried out whose answer is then lost: the write happens,
    the caller gets HTTP 500 (as when a connection drops after AWS applied a call)
    and may retry what is already done."""
    refill_per_second: float | None = Field(default=None, gt=0)
    """Token bucket (with ``burst``): tokens added per wall-clock second; a call
    finding the bucket empty is throttled (``token_bucket``)."""
    burst: int | None = Field(default=None, ge=1)
    """Token bucket: its capacity, the calls allowed at once."""

    @model_validator(mode="after")
    def _rates(self) -> Self:
        if self.throttle_rate + self.error_rate + self.lost_answer_rate > 1:
            raise ValueError("throttleRate + errorRate + lostAnswerRate must not exceed 1")
        if (self.refill_per_second is None) != (self.burst is None):
            raise ValueError("a token bucket needs both refillPerSecond and burst")
        return self


class Faults(OperationFaults):
    """Rates for every AWS call, overridden per operation name (e.g. ``DescribeServices``)."""

    operations: dict[str, OperationFaults] = Field(default_factory=dict)
    preset: Literal["ecs-documented"] | None = None
    """``ecs-documented``: ECS calls are throttled by token buckets at ECS's
    documented rates (``ecs_rates``); ``operations`` entries take precedence."""

    def for_operation(self, operation: str) -> OperationFaults:
        return self.operations.get(operation, self)


class Timings(_Model):
    """Durations of the task lifecycle phases that do not depend on the image."""

    provisioning_seconds: float = Field(default=2, ge=0)
    """PROVISIONING -> PENDING (ENI attachment on Fargate)."""
    pull_seconds: float = Field(default=3, ge=0)
    """PENDING -> RUNNING (image pull and container start)."""
    steady_seconds: float = Field(default=30, ge=0)
    """A task with no health check at all counts as healthy after this long RUNNING."""
    stopping_seconds: float = Field(default=2, ge=0)
    """STOPPING -> STOPPED after the scheduler (or a crash) stops a task."""
    stopped_task_retention_seconds: float = Field(default=3600, ge=0)
    """Stopped tasks stay visible to DescribeTasks/ListTasks at least an hour on ECS."""
    launch_backoff_after_failures: int = Field(default=3, ge=1)
    """Consecutive tasks of a service that fail to start (or to be placed) before
    ECS's service throttle logic spaces out further launches (AWS gives no number)."""
    launch_backoff_initial_seconds: float = Field(default=30, ge=0)
    """The first throttled interval; it doubles with every further failure."""
    launch_backoff_max_seconds: float = Field(default=1620, ge=0)
    """The longest interval: 27 minutes in the current Developer Guide (15 formerly)."""
    placement_retry_seconds: float = Field(default=30, ge=0)
    """How soon the scheduler tries again to place a task that found no capacity,
    when the throttle does not already ask for longer."""
    alarm_poll_seconds: float = Field(default=60, ge=1)
    """How often ECS reads the deployment alarms of a deployment it monitors."""
    stop_request_seconds: float = Field(default=1, ge=0)
    """StopServiceDeployment to the scheduler acting on it (the request is asynchronous:
    ROLLBACK_REQUESTED / STOP_REQUESTED are visible meanwhile)."""
    service_deployment_retention_seconds: float = Field(default=90 * 86400, ge=0)
    """ListServiceDeployments shows the most recent 90 days of service deployments."""
    command_seconds: float = Field(default=5, ge=0)
    """A one-off task's command the scenario does not list runs this long, exit code 0."""


class Scenario(_Model):
    region: str = "us-east-1"
    clock_speed: float = Field(default=1.0, ge=0)
    seed: int = 0
    timings: Timings = Field(default_factory=Timings)
    images: dict[str, ImageBehaviour] = Field(default_factory=dict)
    alarms: list[str] = Field(default_factory=list)
    clusters: dict[str, ClusterSpec] = Field(default_factory=dict)
    faults: Faults = Field(default_factory=Faults)
    commands: list[CommandBehaviour] = Field(default_factory=list)
    """What one-off tasks (RunTask) do, by image and command (``oneoff``)."""
    metrics: MetricsOptions = Field(default_factory=MetricsOptions)
    """Per-task Prometheus endpoints and CloudWatch metrics (``app_metrics``)."""
    events: EventsOptions = Field(default_factory=EventsOptions)
    """How ECS events reach EventBridge's targets: late, lost, twice (``ecs_eventbridge``)."""
    hooks: dict[str, HookBehaviour] = Field(default_factory=dict)
    """Lifecycle hook target (Lambda function) ARN -> what it answers."""
    crash_after_running_counts_as_failed: bool = False
    """Whether a task that reached RUNNING and then exited, with no health check to
    fail, counts as a failed task of its deployment (the circuit breaker).  ECS's
    two documented stages do not cover it and users observe crash loops the breaker
    never trips on, so by default it does not; ``true`` counts it."""

    def services(self) -> Iterator[tuple[str, str, ServiceSpec]]:
        """(cluster, service name, spec) for every service, ``count`` expanded."""
        for cluster, spec in self.clusters.items():
            for name, service in spec.services.items():
                for instance in service.instance_names(name):
                    yield cluster, instance, service


class ScenarioError(ValueError):
    """A scenario file that cannot be read or does not validate; says where."""


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{path}: a scenario is a YAML mapping")
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"{path}: {'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ScenarioError("\n".join(lines)) from exc


@cache
def _shape_members(shape: str) -> frozenset[str]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("ecs")
    return frozenset(model.shape_for(shape).members)


def default_network(cluster: str) -> dict[str, Any]:
    """The network configuration of a scenario's ``awsvpc`` service that names none.

    ECS refuses an ``awsvpc`` service without subnets ("Network Configuration
    must be provided when networkMode 'awsvpc' is specified"); the sandbox
    gives each cluster one private subnet and security group, named after it,
    so a RunTask copying the service's configuration works as on ECS.
    """
    token = hashlib.sha256(cluster.encode()).hexdigest()
    return {
        "awsvpcConfiguration": {
            "subnets": [f"subnet-{token[:17]}"],
            "securityGroups": [f"sg-{token[17:34]}"],
            "assignPublicIp": "DISABLED",
        }
    }


def _check_keys(value: Mapping[str, Any], shape: str, where: str) -> None:
    unknown = sorted(set(value) - _shape_members(shape))
    if unknown:
        raise ValueError(
            f"{where}: unknown field(s) {unknown}; ECS {shape} has {sorted(_shape_members(shape))}"
        )
