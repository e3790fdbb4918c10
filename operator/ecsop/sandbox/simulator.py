"""The simulated ECS control plane: its state, its timers and its one lock.

Owns clusters, task definitions, services and tasks, and moves them forward in
simulated time.  It is event-driven: a service with something due (a task
starting, a health check passing, a target draining) has one entry in a timer
heap; ``advance_to(t)`` pops the due entries in time order and runs that
service's scheduler step at the entry's own time.  A steady service has no
timer and costs nothing, which is what lets a sandbox hold thousands of them.

Everything here runs under ``lock``; the HTTP layer takes it around each ECS
call and around ``advance_to``, so API calls and simulated time never
interleave.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import random
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ecsop.sandbox import (
    deployment_alarms,
    events,
    lifecycle,
    rollout,
    service_deployments,
    shift_plan,
)
from ecsop.sandbox.alarms import Alarms
from ecsop.sandbox.behaviours import ImageCatalog
from ecsop.sandbox.clock import SimClock
from ecsop.sandbox.ids import Ids
from ecsop.sandbox.lifecycle_hooks import LifecycleHooks
from ecsop.sandbox.listener_rules import ListenerRules
from ecsop.sandbox.loadbalancing import TargetGroups
from ecsop.sandbox.model import (
    Cluster,
    Deployment,
    LoadBalancerBinding,
    Service,
    ServiceDeployment,
    ServiceRevision,
    Task,
    TaskDefinition,
)
from ecsop.sandbox.oneoff import OneOffTasks
from ecsop.sandbox.scenario import Scenario, ServiceSpec

# ECS fills these into every container definition it returns.
_CONTAINER_DEFAULTS: dict[str, Any] = {
    "cpu": 0,
    "portMappings": [],
    "essential": True,
    "environment": [],
    "mountPoints": [],
    "volumesFrom": [],
}


MAX_STEPS_PER_INSTANT = 1000
"""A service stepped this often at one simulated instant is in a livelock (a
scheduler bug): ``advance_to`` raises rather than spin forever holding the lock."""


class Extension(Protocol):
    """Something else that moves with simulated time (one-off tasks, app metrics)."""

    def advance_to(self, until: float) -> None: ...


class Listener(Protocol):
    """Told of the changes ECS publishes as events (``ecs_eventbridge``), under ``lock``."""

    def task_changed(self, service: Service, task: Task, at: float) -> None: ...

    def service_event(self, service: Service, message: str, at: float) -> None: ...

    def deployment_started(self, service: Service, deployment: Deployment, at: float) -> None: ...


class SimulatorStuck(RuntimeError):
    """A service kept waking itself at the same simulated instant."""


class EcsError(Exception):
    """An ECS API error: ``code`` is the exception name botocore reports."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Simulator:
    def __init__(self, scenario: Scenario, clock: SimClock, account_id: str) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.region = scenario.region
        self.account_id = account_id
        self.rng = random.Random(scenario.seed)
        self.ids = Ids(self.rng, scenario.region, account_id)
        self.catalog = ImageCatalog(scenario.images)
        self.timings = scenario.timings
        self.target_groups = TargetGroups(account_id, scenario.region)
        self.alarms = Alarms(account_id, scenario.region, clock.now)
        self.rules = ListenerRules(account_id, scenario.region)
        self.hooks = LifecycleHooks(scenario.hooks)
        self.clusters: dict[str, Cluster] = {}
        self.task_definitions: dict[str, dict[int, TaskDefinition]] = {}
        self.task_definitions_by_arn: dict[str, TaskDefinition] = {}
        self.services: dict[tuple[str, str], Service] = {}
        self.services_by_cluster: dict[str, dict[str, Service]] = {}
        self.services_by_deployment: dict[str, Service] = {}
        """Deployment id -> its service: ListTasks(startedBy=...) without a scan."""
        self.service_deployments: dict[str, ServiceDeployment] = {}
        self.service_revisions: dict[str, ServiceRevision] = {}
        self.capacity: dict[str, int | None] = {}
        """Cluster name -> tasks it can run at once (scenario ``capacity.maxTasks``)."""
        self.crash_counts_as_failed = scenario.crash_after_running_counts_as_failed
        self.tasks: dict[str, Task] = {}
        self.task_visits = 0
        """Tasks examined by scheduler steps and ListTasks, ever: a cost counter
        (tests assert it stays proportional to live tasks, not to history)."""
        self.now = clock.now()
        self._timers: list[tuple[float, int, tuple[str, str]]] = []
        self._sequence = itertools.count()
        self._stopped: deque[Task] = deque()
        self.oneoff = OneOffTasks(self, scenario.commands)
        """RunTask's tasks (``oneoff``)."""
        self.extensions: list[Extension] = [self.oneoff]
        """Advanced after the services at every ``advance_to``, in this order."""
        self.new_task_hooks: list[Callable[[Service, Task], None]] = []
        """Called with every service task when it is created (``app_metrics``)."""
        self.listeners: list[Listener] = []
        """Told of task, deployment and service changes (``ecs_eventbridge``)."""

    # -- time -------------------------------------------------------------
    def advance_to(self, until: float) -> None:
        """Run every service step due up to ``until``, in simulated-time order."""
        with self.lock:
            instant: float | None = None
            steps: Counter[tuple[str, str]] = Counter()
            while self._timers and self._timers[0][0] <= until:
                at, _, key = heapq.heappop(self._timers)
                service = self.services.get(key)
                if service is None or service.wake_at != at:
                    continue  # superseded by an earlier wake, or deleted
                if at != instant:
                    instant, steps = at, Counter()
                steps[key] += 1
                if steps[key] > MAX_STEPS_PER_INSTANT:
                    # Leave it due (wake_at is still ``at``), so the next call reports it too.
                    heapq.heappush(self._timers, (at, next(self._sequence), key))
                    raise SimulatorStuck(
                        f"service {key[0]}/{key[1]} stepped {MAX_STEPS_PER_INSTANT} times "
                        f"at simulated time {at}: the scheduler does not settle"
                    )
                service.wake_at = None
                self.now = max(self.now, at)
                following = rollout.step(self, service, at)
                if following is not None:
                    self.wake(service, following)
            self.now = max(self.now, until)
            for extension in self.extensions:
                extension.advance_to(until)
            self._prune(self.now - self.timings.stopped_task_retention_seconds)

    def sync(self) -> float:
        """Advance to the clock's now and return it."""
        self.advance_to(self.clock.now())
        return self.now

    def next_wake(self) -> float | None:
        """The earliest simulated time a service step may be due (None: all steady)."""
        with self.lock:
            return self._timers[0][0] if self._timers else None

    def wake(self, service: Service, at: float) -> None:
        if service.wake_at is not None and service.wake_at <= at:
            return
        service.wake_at = at
        heapq.heappush(self._timers, (at, next(self._sequence), service.key))

    def settle(self, service: Service, deployment: Deployment, task: Task) -> None:
        """``task`` is STOPPED and its targets are gone: out of the scheduler's way,
        indexed by deployment until retention ends."""
        deployment.tasks.pop(task.arn, None)
        service.stopped.setdefault(task.deployment_id, {})[task.arn] = task
        self._stopped.append(task)

    def _prune(self, before: float) -> None:
        while self._stopped and (self._stopped[0].stopped_at or 0) < before:
            task = self._stopped.popleft()
            self.tasks.pop(task.arn, None)
            service = self.services.get(task.service_key)
            if service is None:
                continue
            by_deployment = service.stopped.get(task.deployment_id, {})
            by_deployment.pop(task.arn, None)
            if not by_deployment:
                service.stopped.pop(task.deployment_id, None)

    def add_event(self, service: Service, message: str, at: float) -> None:
        service.events.add(events.ServiceEvent(self.ids.event_id(), at, message))
        for listener in self.listeners:
            listener.service_event(service, message, at)

    def notice(self, service: Service, condition: str, message: str, at: float) -> None:
        """Log a condition's event, unless it was logged less than six hours ago."""
        logged = service.notices.get(condition)
        if logged is None or at - logged >= events.NOTICE_REPEAT_SECONDS:
            service.notices[condition] = at
            self.add_event(service, message, at)

    def resolve(self, service: Service, condition: str) -> None:
        """The condition's cause is gone: its event may be logged again at once."""
        service.notices.pop(condition, None)

    # -- clusters ---------------------------------------------------------
    def create_cluster(self, name: str, tags: dict[str, str] | None = None) -> Cluster:
        cluster = self.clusters.get(name)
        if cluster is None:
            cluster = Cluster(arn=self.ids.arn(f"cluster/{name}"), name=name, tags=tags or {})
            self.clusters[name] = cluster
        return cluster

    def cluster(self, name_or_arn: str | None) -> Cluster:
        name = (name_or_arn or "default").rsplit("/", 1)[-1]
        cluster = self.clusters.get(name)
        if cluster is None:
            raise EcsError("ClusterNotFoundException", "Cluster not found.")
        return cluster

    # -- task definitions -------------------------------------------------
    def register_task_definition(self, request: dict[str, Any]) -> TaskDefinition:
        body = copy.deepcopy({k: v for k, v in request.items() if k != "tags"})
        family = body.get("family")
        if not family or not body.get("containerDefinitions"):
            raise EcsError("ClientException", "Family and containerDefinitions are required.")
        _validate_memory(body)
        body["containerDefinitions"] = [
            {**_CONTAINER_DEFAULTS, **c} for c in body["containerDefinitions"]
        ]
        revisions = self.task_definitions.setdefault(family, {})
        revision = max(revisions, default=0) + 1
        definition = TaskDefinition(
            arn=self.ids.arn(f"task-definition/{family}:{revision}"),
            family=family,
            revision=revision,
            body=body,
            registered_at=self.now,
            tags=_tags_in(request.get("tags", [])),
        )
        revisions[revision] = definition
        self.task_definitions_by_arn[definition.arn] = definition
        return definition

    def task_definition(self, reference: str) -> TaskDefinition:
        """Resolve ``family``, ``family:revision`` or a full ARN."""
        name = reference.rsplit("/", 1)[-1] if reference.startswith("arn:") else reference
        family, _, revision = name.partition(":")
        revisions = self.task_definitions.get(family, {})
        if revision:
            found = revisions.get(int(revision)) if revision.isdigit() else None
        else:
            active = [r for r, d in revisions.items() if d.status == "ACTIVE"]
            found = revisions[max(active)] if active else None
        if found is None:
            raise EcsError("ClientException", "Unable to describe task definition.")
        return found

    # -- services ---------------------------------------------------------
    def service(self, cluster: Cluster, name_or_arn: str) -> Service:
        name = name_or_arn.rsplit("/", 1)[-1]
        service = self.services.get((cluster.name, name))
        if service is None:
            raise EcsError("ServiceNotFoundException", "Service not found.")
        return service

    def services_in(self, cluster: Cluster) -> Iterable[Service]:
        return self.services_by_cluster.get(cluster.name, {}).values()

    def new_service(
        self,
        cluster: Cluster,
        name: str,
        task_definition: TaskDefinition,
        desired_count: int,
        deployment_configuration: dict[str, Any],
        launch_type: str,
        load_balancers: list[LoadBalancerBinding],
        **attributes: Any,
    ) -> Service:
        existing = self.services.get((cluster.name, name))
        if existing is not None and existing.status != "INACTIVE":
            raise EcsError("InvalidParameterException", "Creation of service was not idempotent.")
        configuration = {
            "maximumPercent": rollout.DEFAULT_MAXIMUM_PERCENT,
            "minimumHealthyPercent": rollout.DEFAULT_MINIMUM_HEALTHY_PERCENT,
            "deploymentCircuitBreaker": {"enable": False, "rollback": False},
            **copy.deepcopy(deployment_configuration),
        }
        service = Service(
            arn=self.ids.arn(f"service/{cluster.name}/{name}"),
            name=name,
            cluster=cluster,
            task_definition_arn=task_definition.arn,
            desired_count=desired_count,
            deployment_configuration=configuration,
            launch_type=launch_type,
            created_at=self.now,
            load_balancers=load_balancers,
            crash_counts_as_failed=self.crash_counts_as_failed,
            **attributes,
        )
        self.services[service.key] = service
        self.services_by_cluster.setdefault(cluster.name, {})[name] = service
        return service

    def new_deployment(
        self,
        service: Service,
        task_definition_arn: str,
        at: float,
        *,
        rollback_of: ServiceDeployment | None = None,
        revision: ServiceRevision | None = None,
    ) -> Deployment:
        """Make a new PRIMARY deployment; the previous ones become ACTIVE.

        Without ``rollback_of`` it is a new service deployment toward a new
        revision; with it, the rollback deployment of that service deployment,
        re-deploying ``revision`` (its source)."""
        deployment_id = self.ids.deployment_id()
        if revision is None:
            revision = service_deployments.new_revision(self, service, task_definition_arn, at)
        sd = rollback_of or service_deployments.make(self, service, deployment_id, revision, at)
        deployment = Deployment(
            id=deployment_id,
            status="PRIMARY",
            task_definition_arn=task_definition_arn,
            created_at=at,
            updated_at=at,
            launch_type=service.launch_type,
            network_configuration=copy.deepcopy(service.network_configuration),
            service_deployment=sd,
            revision=revision,
            desired_count=service.desired_count,
        )
        deployment.rollout_state_reason = events.reason_in_progress(deployment.id)
        # "If an alarm is in the ALARM state at the beginning of a deployment,
        # Amazon ECS will not monitor alarms for the duration of that deployment"
        # (deployment-alarm-failure.html): so a rollback started by an alarm is
        # never failed by that same alarm.
        deployment.alarms_ignored = bool(deployment_alarms.firing_alarms(self, service))
        previous = service.deployments[0].task_definition_arn if service.deployments else None
        if previous != task_definition_arn:
            # "If you update your service to use a new task definition, your service
            # returns to a normal, non-throttled state immediately" (service-throttle-logic.html).
            service.throttle.reset()
            service.launch_not_before = 0.0
        for earlier in service.deployments:
            earlier.status = "ACTIVE"
            earlier.updated_at = at
        service.deployments.insert(0, deployment)
        self.services_by_deployment[deployment.id] = service
        if rollback_of is None:
            service_deployments.begin(self, service, deployment, at)
        shift_plan.began(self, service, deployment, at)
        service.task_definition_arn = task_definition_arn
        service.steady = False
        self.wake(service, at)
        for listener in self.listeners:
            listener.deployment_started(service, deployment, at)
        return deployment

    def start_steady(self, service: Service) -> None:
        """One COMPLETED PRIMARY deployment with every task RUNNING and healthy."""
        at = self.now
        deployment = self.new_deployment(service, service.task_definition_arn, at)
        for _ in range(service.desired_count):
            lifecycle.launch_running(self, service, deployment, at)
        deployment.rollout_state = "COMPLETED"
        deployment.rollout_state_reason = events.reason_completed(deployment.id)
        service_deployments.completed(deployment, at)
        service.last_completed = deployment
        service.steady = True
        tasks = [t.id for t in deployment.tasks.values()]
        if tasks:
            self.add_event(service, events.started_tasks(service.name, tasks), at)
        self.add_event(service, events.deployment_completed(service.name, deployment.id), at)
        self.add_event(service, events.steady_state(service.name), at)
        service.wake_at = None
        upcoming = [t.agenda[0][0] for t in deployment.tasks.values() if t.agenda]
        if upcoming:
            self.wake(service, min(upcoming))

    # -- scenario ---------------------------------------------------------
    def load(self, scenario: Scenario) -> None:
        """Create the scenario's alarms, clusters, task definitions and services."""
        with self.lock:
            for name in scenario.alarms:
                self.alarms.create(name, self.clock.now())
            for name, cluster_spec in scenario.clusters.items():
                self.create_cluster(name)
                self.capacity[name] = cluster_spec.capacity.max_tasks
            registered: dict[tuple[int, str], TaskDefinition] = {}
            for cluster_name, name, spec in scenario.services():
                requested = spec.task_definition_of(name)
                key = (id(spec), str(requested["family"]))
                definition = registered.get(key)
                if definition is None:
                    definition = self.register_task_definition(requested)
                    registered[key] = definition
                service = self.new_service(
                    self.clusters[cluster_name],
                    name,
                    definition,
                    spec.desired_count,
                    spec.deployment_configuration,
                    spec.launch_type,
                    self._bindings(cluster_name, name, spec),
                    health_check_grace_period=spec.health_check_grace_period_seconds,
                    tags=dict(spec.tags),
                    network_configuration=spec.network(cluster_name),
                )
                if spec.crash_after_running_counts_as_failed is not None:
                    service.crash_counts_as_failed = spec.crash_after_running_counts_as_failed
                self.start_steady(service)

    def _bindings(self, cluster: str, name: str, spec: ServiceSpec) -> list[LoadBalancerBinding]:
        lb = spec.load_balancer
        if lb is None:
            return []
        target_group = self.target_groups.create(cluster, name, lb.container_port)
        advanced = None
        if lb.advanced is not None:
            # Blue/green resources, as a user builds them (alb-resources-for-blue-green.html).
            alternate = self.target_groups.create(cluster, f"{name}-alt", lb.container_port)
            advanced = self.rules.create(
                f"{cluster}-{name}",
                target_group,
                alternate,
                production_port=lb.advanced.production_port,
                test_port=lb.advanced.test_port if lb.advanced.test_listener else None,
                role_arn=lb.advanced.role_arn,
            )
        return [
            LoadBalancerBinding(
                target_group_arn=target_group,
                container_name=lb.container_name,
                container_port=lb.container_port,
                deregistration_delay=lb.deregistration_delay_seconds,
                unhealthy_after=lb.unhealthy_after_seconds,
                advanced=advanced,
            )
        ]


def _tags_in(tags: list[dict[str, str]]) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in tags}


def _validate_memory(body: dict[str, Any]) -> None:
    """ECS's own rule: EC2 needs memory per container or per task; Fargate per task."""
    fargate = "FARGATE" in body.get("requiresCompatibilities", [])
    if fargate and not (body.get("cpu") and body.get("memory")):
        raise EcsError(
            "ClientException",
            "Fargate requires that 'cpu' be defined at the task level.",
        )
    if body.get("memory"):
        return
    for container in body["containerDefinitions"]:
        if not (container.get("memory") or container.get("memoryReservation")):
            raise EcsError(
                "ClientException",
                f"Invalid setting for container '{container.get('name')}'. At least one of "
                "'memory' or 'memoryReservation' must be specified.",
            )
